/*
 * export_json.c - trace -> Chrome JSON trace events ({"traceEvents":[...]})
 * for the userspace side: track-event slices (B/E), instants (i), counters
 * (C), flows (s/t/f) and process/thread names (M), with interned names and
 * sequence clocks resolved per sequence. With --sched, scheduler slices per
 * CPU come out as complete (X) events under a "CPU n" thread of pid 0.
 * Events are written as they are read; Chrome and Perfetto sort them.
 */
#include "common/log.h"
#include "consumer/export.h"
#include "consumer/export_tasks.h"
#include "consumer/trace_seq.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/ftrace/sched.pb-c.h"
#include "perfetto/trace/track_event/debug_annotation.pb-c.h"
#include "perfetto/trace/track_event/track_event.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cpu_slice {
    uint64_t since;
    int32_t pid;
    int32_t prio;
    char comm[TB_COMM_LEN];
};

struct json_export {
    FILE *out;
    bool sched;
    bool first;
    struct tb_tasks tasks;
    struct tb_seqs seqs;
    struct tb_idmap cpu_slices; /* cpu -> struct cpu_slice */
    struct tb_idmap flows;      /* flow id -> (void *)1 once started */
    struct tb_idmap cgroups;    /* pid -> its last labelled cgroup (malloc'd) */
};

static void json_body(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    json_body(out, s);
    fputc('"', out);
}

/* Opens one event object: {"ph":..,"ts":..,"pid":..,"tid":.. */
static void begin_event(struct json_export *x, char ph, uint64_t ts, int32_t pid, int32_t tid)
{
    fputs(x->first ? "\n" : ",\n", x->out);
    x->first = false;
    fprintf(x->out, "{\"ph\":\"%c\",\"ts\":%" PRIu64 ".%03u,\"pid\":%d,\"tid\":%d", ph, ts / 1000,
            (unsigned)(ts % 1000), pid, tid);
}

static void metadata(struct json_export *x, const char *what, int32_t pid, int32_t tid,
                     const char *name)
{
    begin_event(x, 'M', 0, pid, tid);
    fprintf(x->out, ",\"name\":\"%s\",\"args\":{\"name\":", what);
    json_str(x->out, name);
    fputs("}}", x->out);
}

/*
 * A process's cgroup (ProcessTree.Process.tracebpf_cgroup, our extension)
 * as a Chrome "process_labels" metadata event, which the Perfetto UI shows
 * beside the process name. Once per pid and cgroup: the tree is re-sent
 * periodically.
 */
static void cgroup_labels(struct json_export *x, const Perfetto__Protos__ProcessTree *pt)
{
    size_t i;

    for (i = 0; i < pt->n_processes; i++) {
        const Perfetto__Protos__ProcessTree__Process *pr = pt->processes[i];
        const char *old;
        char *label;

        if (!pr->has_pid || !pr->tracebpf_cgroup || !pr->tracebpf_cgroup[0])
            continue;
        old = tb_idmap_get(&x->cgroups, (uint32_t)pr->pid);
        if (old && !strcmp(old, pr->tracebpf_cgroup))
            continue;
        label = strdup(pr->tracebpf_cgroup);
        if (label)
            tb_idmap_put(&x->cgroups, (uint32_t)pr->pid, label); /* else: a repeat follows */
        begin_event(x, 'M', 0, pr->pid, pr->pid);
        fputs(",\"name\":\"process_labels\",\"args\":{\"labels\":\"cgroup:", x->out);
        json_body(x->out, pr->tracebpf_cgroup);
        fputs("\"}}", x->out);
    }
}

static void debug_args(struct json_export *x, const Perfetto__Protos__TrackEvent *te)
{
    size_t i;

    fputs(",\"args\":{", x->out);
    for (i = 0; i < te->n_debug_annotations; i++) {
        const Perfetto__Protos__DebugAnnotation *a = te->debug_annotations[i];
        char iname[32];

        if (a->name_field_case == PERFETTO__PROTOS__DEBUG_ANNOTATION__NAME_FIELD_NAME) {
            json_str(x->out, a->name);
        } else {
            snprintf(iname, sizeof(iname), "arg%zu", i);
            json_str(x->out, iname);
        }
        fputc(':', x->out);
        switch (a->value_case) {
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_BOOL_VALUE:
            fputs(a->bool_value ? "true" : "false", x->out);
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_UINT_VALUE:
            fprintf(x->out, "%" PRIu64, a->uint_value);
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_INT_VALUE:
            fprintf(x->out, "%" PRId64, a->int_value);
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_DOUBLE_VALUE:
            if (isfinite(a->double_value))
                fprintf(x->out, "%.17g", a->double_value);
            else
                fputs("null", x->out);
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_STRING_VALUE:
            json_str(x->out, a->string_value);
            break;
        default:
            fputs("null", x->out);
        }
        if (i + 1 < te->n_debug_annotations)
            fputc(',', x->out);
    }
    fputc('}', x->out);
}

static void categories(struct json_export *x, const Perfetto__Protos__TracePacket *p, char *buf,
                       size_t len)
{
    const Perfetto__Protos__TrackEvent *te = p->track_event;
    size_t i, n = 0;

    buf[0] = '\0';
    for (i = 0; i < te->n_categories && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", te->categories[i]);
    for (i = 0; i < te->n_category_iids && n < len; i++) {
        const char *c = tb_seqs_category(&x->seqs, p, te->category_iids[i]);

        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", c ? c : "?");
    }
}

static int flows(struct json_export *x, const Perfetto__Protos__TrackEvent *te, uint64_t ts,
                 int32_t pid, int32_t tid)
{
    size_t i;

    for (i = 0; i < te->n_flow_ids; i++) {
        bool started = tb_idmap_get(&x->flows, te->flow_ids[i]) != NULL;

        begin_event(x, started ? 't' : 's', ts, pid, tid);
        fprintf(x->out, ",\"name\":\"flow\",\"cat\":\"flow\",\"id\":%" PRIu64 ",\"bp\":\"e\"}",
                te->flow_ids[i]);
        if (!started && tb_idmap_put(&x->flows, te->flow_ids[i], (void *)1))
            return -ENOMEM;
    }
    for (i = 0; i < te->n_terminating_flow_ids; i++) {
        begin_event(x, 'f', ts, pid, tid);
        fprintf(x->out, ",\"name\":\"flow\",\"cat\":\"flow\",\"id\":%" PRIu64 ",\"bp\":\"e\"}",
                te->terminating_flow_ids[i]);
    }
    return 0;
}

static int track_event(struct json_export *x, const Perfetto__Protos__TracePacket *p, uint64_t ts)
{
    const Perfetto__Protos__TrackEvent *te = p->track_event;
    const struct tb_track *tr;
    struct tb_te_origin o;
    const char *name;
    int32_t pid, tid;
    char cats[512];
    char ph;

    tb_tasks_te_origin(&x->tasks, &x->seqs, p, &o);
    tr = o.track, name = o.name, pid = o.pid, tid = o.tid;
    switch (te->type) {
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN:
        ph = 'B';
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END:
        ph = 'E';
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_INSTANT:
        ph = 'i';
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_COUNTER:
        begin_event(x, 'C', ts, pid, pid);
        fputs(",\"name\":", x->out);
        json_str(x->out, tr && tr->name[0] ? tr->name : (name ? name : "counter"));
        if (te->counter_value_field_case ==
            PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_DOUBLE_COUNTER_VALUE)
            fprintf(x->out, ",\"args\":{\"value\":%.17g}}",
                    isfinite(te->double_counter_value) ? te->double_counter_value : 0.0);
        else
            fprintf(x->out, ",\"args\":{\"value\":%" PRId64 "}}", te->counter_value);
        return 0;
    default:
        return 0;
    }
    categories(x, p, cats, sizeof(cats));
    begin_event(x, ph, ts, pid, tid);
    if (ph != 'E' || name) {
        fputs(",\"name\":", x->out);
        json_str(x->out, name ? name : "");
    }
    if (cats[0]) {
        fputs(",\"cat\":", x->out);
        json_str(x->out, cats);
    }
    if (ph == 'i')
        fputs(",\"s\":\"t\"", x->out);
    if (te->n_debug_annotations)
        debug_args(x, te);
    fputc('}', x->out);
    return flows(x, te, ts, pid, tid);
}

/* A switch on @cpu at @ts closes the running task's slice. */
static int sched_switch(struct json_export *x, uint32_t cpu, uint64_t ts, int32_t next_pid,
                        const char *next_comm, int32_t next_prio)
{
    struct cpu_slice *cs = tb_idmap_get(&x->cpu_slices, cpu);
    char name[32];

    if (!cs) {
        cs = calloc(1, sizeof(*cs));
        if (!cs || tb_idmap_put(&x->cpu_slices, cpu, cs))
            return -ENOMEM;
        snprintf(name, sizeof(name), "CPU %u", cpu);
        metadata(x, "thread_name", 0, (int32_t)cpu, name);
    } else if (cs->pid > 0 && ts >= cs->since) {
        begin_event(x, 'X', cs->since, 0, (int32_t)cpu);
        fprintf(x->out,
                ",\"dur\":%" PRIu64 ".%03u,\"cat\":\"sched\",\"name\":", (ts - cs->since) / 1000,
                (unsigned)((ts - cs->since) % 1000));
        json_str(x->out, cs->comm);
        fprintf(x->out, ",\"args\":{\"tid\":%d,\"prio\":%d}}", cs->pid, cs->prio);
    }
    cs->since = ts;
    cs->pid = next_pid;
    cs->prio = next_prio;
    snprintf(cs->comm, sizeof(cs->comm), "%s", next_comm ? next_comm : "");
    return 0;
}

/* Typed and compact switches merged in time order: each closes the last. */
static int bundle(struct json_export *x, const Perfetto__Protos__FtraceEventBundle *b)
{
    const Perfetto__Protos__FtraceEventBundle__CompactSched *c = b->compact_sched;
    size_t n_sw = c ? c->n_switch_timestamp : 0, i = 0, j = 0;
    uint64_t ts = n_sw ? c->switch_timestamp[0] : 0;
    int err = 0;

    while (!err && (i < b->n_event || j < n_sw)) {
        const Perfetto__Protos__FtraceEvent *e = i < b->n_event ? b->event[i] : NULL;

        if (e && (j >= n_sw || e->timestamp <= ts)) {
            i++;
            if (e->event_case == PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH)
                err = sched_switch(x, b->cpu, e->timestamp, e->sched_switch->next_pid,
                                   e->sched_switch->next_comm, e->sched_switch->next_prio);
            continue;
        }
        uint32_t ci = j < c->n_switch_next_comm_index ? c->switch_next_comm_index[j] : 0;

        err = sched_switch(x, b->cpu, ts, j < c->n_switch_next_pid ? c->switch_next_pid[j] : 0,
                           ci < c->n_intern_table ? c->intern_table[ci] : "",
                           j < c->n_switch_next_prio ? c->switch_next_prio[j] : 0);
        if (++j < n_sw)
            ts += c->switch_timestamp[j];
    }
    return err;
}

static void names_from(struct json_export *x, const Perfetto__Protos__TracePacket *p)
{
    const Perfetto__Protos__TrackDescriptor *d = p->track_descriptor;

    if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE)
        cgroup_labels(x, p->process_tree);
    if (p->data_case != PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR)
        return;
    if (d->process && d->process->has_pid && d->process->process_name)
        metadata(x, "process_name", d->process->pid, d->process->pid, d->process->process_name);
    if (d->thread && d->thread->has_tid && d->thread->thread_name)
        metadata(x, "thread_name", d->thread->pid, (int32_t)d->thread->tid, d->thread->thread_name);
}

int tb_export_json(struct tb_trace_reader *r, FILE *out, bool sched)
{
    struct json_export x = {.out = out, .sched = sched, .first = true};
    Perfetto__Protos__TracePacket *p;
    bool has_ts = false;
    uint64_t ts = 0;
    int ret = 0, err = 0;

    tb_tasks_init(&x.tasks);
    tb_seqs_init(&x.seqs);
    tb_idmap_init(&x.cpu_slices, free);
    tb_idmap_init(&x.flows, NULL);
    tb_idmap_init(&x.cgroups, free);
    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", out);
    if (sched)
        metadata(&x, "process_name", 0, 0, "CPU scheduling");
    while (!err && (ret = tb_tasks_next_packet(r, &x.seqs, &x.tasks, &p, &ts, &has_ts)) == 1) {
        names_from(&x, p);
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT && has_ts)
            err = track_event(&x, p, ts);
        else if (sched && p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS)
            err = bundle(&x, p->ftrace_events);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
    if (!err && ret < 0)
        err = ret;
    if (!err)
        fputs("\n]}\n", out);
    if (!err && ferror(out))
        err = -EIO;
    tb_idmap_clear(&x.cpu_slices);
    tb_idmap_clear(&x.flows);
    tb_idmap_clear(&x.cgroups);
    tb_tasks_free(&x.tasks);
    tb_seqs_free(&x.seqs);
    return err;
}
