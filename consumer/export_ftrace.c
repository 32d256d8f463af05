/*
 * export_ftrace.c - trace -> tracefs "trace" text (and the systrace JSON
 * envelope around it). Kernel events are printed as the kernel prints them,
 * compact sched arrays are expanded back into sched_switch/sched_waking
 * lines, and app track events become tracing_mark_write lines
 * (B|pid|name, E|pid, C|pid|name|value) so the merged timeline survives.
 * Task names and tgids come from the trace itself (process tree, sched and
 * task events), the way the kernel's saved_cmdlines would supply them.
 */
#include "consumer/export.h"
#include "common/log.h"
#include "consumer/export_tasks.h"
#include "consumer/ftrace_fmt.h"
#include "consumer/trace_seq.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/ftrace/sched.pb-c.h"
#include "perfetto/trace/track_event/track_event.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 4096

struct ftrace_export {
    FILE *out;
    bool systrace;
    struct tb_line_sorter sorter;
    struct tb_tasks tasks;
    struct tb_seqs seqs;
    uint64_t compact_skipped;
};

static int emit_plain(void *ctx, const char *line, size_t len)
{
    struct ftrace_export *x = ctx;

    return fwrite(line, 1, len, x->out) == len ? 0 : -EIO;
}

/* Writes @line as the body of a JSON string (the systrace envelope). */
static int emit_json(void *ctx, const char *line, size_t len)
{
    struct ftrace_export *x = ctx;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c == '"' || c == '\\')
            fprintf(x->out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", x->out);
        else if (c < 0x20)
            fprintf(x->out, "\\u%04x", c);
        else
            fputc(c, x->out);
    }
    return ferror(x->out) ? -EIO : 0;
}

static int add_line(struct ftrace_export *x, uint64_t ts, int32_t pid, uint32_t cpu, uint32_t flags,
                    const char *body)
{
    const struct tb_task *t = tb_tasks_get(&x->tasks, pid);
    char line[LINE_MAX_LEN];
    int n;

    /* The idle task is its own group (tgid 0), as the kernel prints it. */
    n = tb_ftrace_prefix(line, sizeof(line), t ? t->comm : NULL, pid,
                         pid == 0 ? 0
                         : t      ? t->tgid
                                  : -1,
                         cpu, flags, ts);
    snprintf(line + n, sizeof(line) - (size_t)n - 1, "%s", body);
    n = (int)strlen(line);
    line[n] = '\n';
    line[n + 1] = '\0';
    return tb_line_sorter_add(&x->sorter, ts, line);
}

static int do_event(struct ftrace_export *x, uint32_t cpu, const Perfetto__Protos__FtraceEvent *e)
{
    char body[LINE_MAX_LEN];
    int err;

    tb_ftrace_format(e, body, sizeof(body));
    err = add_line(x, e->timestamp, (int32_t)e->pid, cpu, e->common_flags, body);
    if (!err)
        err = tb_tasks_learn_event(&x->tasks, cpu, e);
    return err;
}

static int compact_switch(struct ftrace_export *x, uint32_t cpu,
                          const Perfetto__Protos__FtraceEventBundle__CompactSched *c, size_t i,
                          uint64_t ts)
{
    Perfetto__Protos__SchedSwitchFtraceEvent sw = PERFETTO__PROTOS__SCHED_SWITCH_FTRACE_EVENT__INIT;
    Perfetto__Protos__FtraceEvent e = PERFETTO__PROTOS__FTRACE_EVENT__INIT;
    struct tb_cpu_state *cs = tb_tasks_cpu(&x->tasks, cpu);
    uint32_t ci = i < c->n_switch_next_comm_index ? c->switch_next_comm_index[i] : 0;

    sw.next_pid = i < c->n_switch_next_pid ? c->switch_next_pid[i] : 0;
    sw.next_prio = i < c->n_switch_next_prio ? c->switch_next_prio[i] : 0;
    sw.next_comm = ci < c->n_intern_table ? c->intern_table[ci] : "";
    sw.prev_state = i < c->n_switch_prev_state ? c->switch_prev_state[i] : 0;
    if (!cs || !cs->known) {
        /* The first switch on a CPU does not say who ran before it. */
        x->compact_skipped++;
        return tb_tasks_learn_running(&x->tasks, cpu, sw.next_pid, sw.next_comm, sw.next_prio);
    }
    sw.prev_pid = cs->pid;
    sw.prev_prio = cs->prio;
    sw.prev_comm = cs->comm;
    e.has_timestamp = e.has_pid = 1;
    e.timestamp = ts;
    e.pid = (uint32_t)cs->pid;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH;
    e.sched_switch = &sw;
    return do_event(x, cpu, &e);
}

static int compact_waking(struct ftrace_export *x, uint32_t cpu,
                          const Perfetto__Protos__FtraceEventBundle__CompactSched *c, size_t i,
                          uint64_t ts)
{
    Perfetto__Protos__SchedWakingFtraceEvent wk = PERFETTO__PROTOS__SCHED_WAKING_FTRACE_EVENT__INIT;
    Perfetto__Protos__FtraceEvent e = PERFETTO__PROTOS__FTRACE_EVENT__INIT;
    struct tb_cpu_state *cs = tb_tasks_cpu(&x->tasks, cpu);
    uint32_t ci = i < c->n_waking_comm_index ? c->waking_comm_index[i] : 0;

    wk.pid = i < c->n_waking_pid ? c->waking_pid[i] : 0;
    wk.target_cpu = i < c->n_waking_target_cpu ? c->waking_target_cpu[i] : 0;
    wk.prio = i < c->n_waking_prio ? c->waking_prio[i] : 0;
    wk.comm = ci < c->n_intern_table ? c->intern_table[ci] : "";
    wk.success = 1;
    e.has_timestamp = 1;
    e.timestamp = ts;
    /* The waker is whoever runs on this CPU at that moment. */
    e.pid = cs && cs->known ? (uint32_t)cs->pid : 0;
    e.common_flags = i < c->n_waking_common_flags ? c->waking_common_flags[i] : 0;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKING;
    e.sched_waking = &wk;
    return do_event(x, cpu, &e);
}

/*
 * Replays a bundle in time order: its typed events and the compact switch
 * and waking arrays (each delta-encoded) merged, because a compact event's
 * previous task is whoever the CPU's last switch, typed or compact, put on
 * it.
 */
static int do_bundle(struct ftrace_export *x, const Perfetto__Protos__FtraceEventBundle *b)
{
    static const Perfetto__Protos__FtraceEventBundle__CompactSched none =
        PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__COMPACT_SCHED__INIT;
    const Perfetto__Protos__FtraceEventBundle__CompactSched *c =
        b->compact_sched ? b->compact_sched : &none;
    uint64_t sts = 0, wts = 0, ets;
    size_t si = 0, wi = 0, ei = 0;
    int err = 0;

    if (c->n_switch_timestamp)
        sts = c->switch_timestamp[0];
    if (c->n_waking_timestamp)
        wts = c->waking_timestamp[0];
    while (!err && (ei < b->n_event || si < c->n_switch_timestamp || wi < c->n_waking_timestamp)) {
        bool s_ok = si < c->n_switch_timestamp, w_ok = wi < c->n_waking_timestamp;

        ets = ei < b->n_event ? b->event[ei]->timestamp : UINT64_MAX;
        if (ei < b->n_event && (!s_ok || ets <= sts) && (!w_ok || ets <= wts)) {
            err = do_event(x, b->cpu, b->event[ei++]);
        } else if (s_ok && (!w_ok || sts <= wts)) {
            err = compact_switch(x, b->cpu, c, si, sts);
            if (++si < c->n_switch_timestamp)
                sts += c->switch_timestamp[si];
        } else {
            err = compact_waking(x, b->cpu, c, wi, wts);
            if (++wi < c->n_waking_timestamp)
                wts += c->waking_timestamp[wi];
        }
    }
    return err;
}

static int do_track_event(struct ftrace_export *x, const Perfetto__Protos__TracePacket *p,
                          uint64_t ts)
{
    const Perfetto__Protos__TrackEvent *te = p->track_event;
    const struct tb_track *tr;
    char body[LINE_MAX_LEN];
    struct tb_te_origin o;
    int32_t pid, tid;
    const char *name;
    int err;

    tb_tasks_te_origin(&x->tasks, &x->seqs, p, &o);
    tr = o.track, pid = o.pid, tid = o.tid;
    name = o.name ? o.name : "";

    switch (te->type) {
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN:
        snprintf(body, sizeof(body), "tracing_mark_write: B|%d|%s", pid, name);
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END:
        snprintf(body, sizeof(body), "tracing_mark_write: E|%d", pid);
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_INSTANT:
        /* ftrace text has no instants: a zero-length slice shows the same. */
        snprintf(body, sizeof(body), "tracing_mark_write: B|%d|%s", pid, name);
        err = add_line(x, ts, tid, tb_tasks_last_cpu(&x->tasks, tid), 0, body);
        if (err)
            return err;
        snprintf(body, sizeof(body), "tracing_mark_write: E|%d", pid);
        break;
    case PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_COUNTER:
        if (te->counter_value_field_case ==
            PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_DOUBLE_COUNTER_VALUE)
            snprintf(body, sizeof(body), "tracing_mark_write: C|%d|%s|%.17g", pid,
                     tr ? tr->name : name, te->double_counter_value);
        else
            snprintf(body, sizeof(body), "tracing_mark_write: C|%d|%s|%" PRId64, pid,
                     tr ? tr->name : name, te->counter_value);
        break;
    default:
        return 0;
    }
    return add_line(x, ts, tid, tb_tasks_last_cpu(&x->tasks, tid), 0, body);
}

static const char header[] = "# tracer: nop\n"
                             "#\n"
                             "#                                _-----=> irqs-off/BH-disabled\n"
                             "#                               / _----=> need-resched\n"
                             "#                              | / _---=> hardirq/softirq\n"
                             "#                              || / _--=> preempt-depth\n"
                             "#                              ||| / _-=> migrate-disable\n"
                             "#                              |||| /     delay\n"
                             "#           TASK-PID     TGID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
                             "#              | |         |        |   |||||     |         |\n";

int tb_export_ftrace(struct tb_trace_reader *r, FILE *out, bool systrace)
{
    struct ftrace_export x = {.out = out, .systrace = systrace};
    Perfetto__Protos__TracePacket *p;
    bool has_ts = false;
    uint64_t ts = 0;
    int ret = 0, err = 0;

    tb_line_sorter_init(&x.sorter, systrace ? emit_json : emit_plain, &x);
    tb_tasks_init(&x.tasks);
    tb_seqs_init(&x.seqs);
    if (systrace)
        fputs("{\"traceEvents\":[],\"systemTraceEvents\":\"", out);
    err = x.sorter.emit(&x, header, sizeof(header) - 1);
    while (!err && (ret = tb_tasks_next_packet(r, &x.seqs, &x.tasks, &p, &ts, &has_ts)) == 1) {
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS)
            err = do_bundle(&x, p->ftrace_events);
        else if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT && has_ts)
            err = do_track_event(&x, p, ts);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
    if (!err && ret < 0)
        err = ret;
    if (!err)
        err = tb_line_sorter_flush(&x.sorter);
    if (!err && systrace)
        fputs("\"}\n", out);
    if (!err && ferror(out))
        err = -EIO;
    if (x.compact_skipped)
        tb_debug("export: %" PRIu64 " compact sched_switch events had no previous task "
                 "(first on their CPU) and were left out",
                 x.compact_skipped);
    tb_line_sorter_free(&x.sorter);
    tb_tasks_free(&x.tasks);
    tb_seqs_free(&x.seqs);
    return err;
}
