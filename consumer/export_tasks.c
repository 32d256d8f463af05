/*
 * export_tasks.c - the task, CPU and track tables the exporters fill while
 * streaming (see export_tasks.h). A name already learnt from the kernel
 * (sched/task events) wins over a process-tree cmdline, as comm is what
 * the kernel itself would print.
 */
#include "consumer/export_tasks.h"
#include "common/log.h"
#include "perfetto/trace/ftrace/sched.pb-c.h"
#include "perfetto/trace/ftrace/task.pb-c.h"
#include "perfetto/trace/ps/process_tree.pb-c.h"
#include "perfetto/trace/track_event/counter_descriptor.pb-c.h"
#include "perfetto/trace/track_event/process_descriptor.pb-c.h"
#include "perfetto/trace/track_event/thread_descriptor.pb-c.h"
#include "perfetto/trace/track_event/track_descriptor.pb-c.h"
#include "perfetto/trace/track_event/track_event.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLONE_THREAD 0x00010000

void tb_tasks_init(struct tb_tasks *t)
{
    tb_idmap_init(&t->tasks, free);
    tb_idmap_init(&t->cpus, free);
    tb_idmap_init(&t->tracks, free);
}

void tb_tasks_free(struct tb_tasks *t)
{
    tb_idmap_clear(&t->tasks);
    tb_idmap_clear(&t->cpus);
    tb_idmap_clear(&t->tracks);
}

const struct tb_task *tb_tasks_get(const struct tb_tasks *t, int32_t tid)
{
    return tb_idmap_get(&t->tasks, (uint32_t)tid);
}

const struct tb_track *tb_tasks_track(const struct tb_tasks *t, uint64_t uuid)
{
    return tb_idmap_get(&t->tracks, uuid);
}

uint32_t tb_tasks_last_cpu(const struct tb_tasks *t, int32_t tid)
{
    const struct tb_task *k = tb_tasks_get(t, tid);

    return k ? k->last_cpu : 0;
}

struct tb_cpu_state *tb_tasks_cpu(struct tb_tasks *t, uint32_t cpu)
{
    struct tb_cpu_state *cs = tb_idmap_get(&t->cpus, cpu);

    if (cs)
        return cs;
    cs = calloc(1, sizeof(*cs));
    if (!cs || tb_idmap_put(&t->cpus, cpu, cs))
        return NULL;
    return cs;
}

static struct tb_task *task(struct tb_tasks *t, int32_t tid)
{
    struct tb_task *k = tb_idmap_get(&t->tasks, (uint32_t)tid);

    if (k)
        return k;
    k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->tgid = -1;
    if (tb_idmap_put(&t->tasks, (uint32_t)tid, k))
        return NULL;
    return k;
}

/* Records @comm (and @tgid when >= 0) for @tid. @weak: keep a known name. */
static int learn(struct tb_tasks *t, int32_t tid, const char *comm, int32_t tgid, bool weak)
{
    struct tb_task *k;

    if (tid <= 0)
        return 0;
    k = task(t, tid);
    if (!k)
        return -ENOMEM;
    if (comm && *comm && !(weak && k->comm[0]))
        snprintf(k->comm, sizeof(k->comm), "%s", comm);
    if (tgid >= 0)
        k->tgid = tgid;
    return 0;
}

int tb_tasks_learn_running(struct tb_tasks *t, uint32_t cpu, int32_t pid, const char *comm,
                           int32_t prio)
{
    struct tb_cpu_state *cs = tb_tasks_cpu(t, cpu);
    struct tb_task *k;

    if (!cs)
        return -ENOMEM;
    cs->known = true;
    cs->pid = pid;
    cs->prio = prio;
    snprintf(cs->comm, sizeof(cs->comm), "%s", comm ? comm : "");
    if (pid <= 0)
        return 0;
    if (learn(t, pid, comm, -1, false))
        return -ENOMEM;
    k = task(t, pid);
    if (k)
        k->last_cpu = cpu;
    return 0;
}

int tb_tasks_learn_event(struct tb_tasks *t, uint32_t cpu, const Perfetto__Protos__FtraceEvent *e)
{
    const struct tb_task *parent;

    switch (e->event_case) {
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH:
        if (learn(t, e->sched_switch->prev_pid, e->sched_switch->prev_comm, -1, false))
            return -ENOMEM;
        return tb_tasks_learn_running(t, cpu, e->sched_switch->next_pid, e->sched_switch->next_comm,
                                      e->sched_switch->next_prio);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKING:
        return learn(t, e->sched_waking->pid, e->sched_waking->comm, -1, false);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP:
        return learn(t, e->sched_wakeup->pid, e->sched_wakeup->comm, -1, false);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP_NEW:
        return learn(t, e->sched_wakeup_new->pid, e->sched_wakeup_new->comm, -1, false);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK:
        return learn(t, e->sched_process_fork->child_pid, e->sched_process_fork->child_comm, -1,
                     false);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_NEWTASK:
        /* A new thread joins its creator's tgid; a new process leads its own. */
        parent = tb_tasks_get(t, (int32_t)e->pid);
        return learn(t, e->task_newtask->pid, e->task_newtask->comm,
                     (e->task_newtask->clone_flags & CLONE_THREAD) ? (parent ? parent->tgid : -1)
                                                                   : e->task_newtask->pid,
                     false);
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_RENAME:
        return learn(t, e->task_rename->pid, e->task_rename->newcomm, -1, false);
    default:
        return 0;
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

static int learn_tree(struct tb_tasks *t, const Perfetto__Protos__ProcessTree *pt)
{
    size_t i;

    for (i = 0; i < pt->n_processes; i++) {
        const Perfetto__Protos__ProcessTree__Process *pr = pt->processes[i];
        const char *name = pr->n_cmdline ? base_name(pr->cmdline[0]) : NULL;

        if (learn(t, pr->pid, name, pr->pid, true))
            return -ENOMEM;
    }
    for (i = 0; i < pt->n_threads; i++) {
        const Perfetto__Protos__ProcessTree__Thread *th = pt->threads[i];

        if (learn(t, th->tid, th->name, th->has_tgid ? th->tgid : -1, true))
            return -ENOMEM;
    }
    return 0;
}

static int learn_track(struct tb_tasks *t, const Perfetto__Protos__TrackDescriptor *d)
{
    const struct tb_track *parent;
    struct tb_track *tr;

    if (!d->has_uuid)
        return 0;
    tr = calloc(1, sizeof(*tr));
    if (!tr)
        return -ENOMEM;
    if (d->static_or_dynamic_name_case && d->name)
        snprintf(tr->name, sizeof(tr->name), "%s", d->name);
    parent = d->has_parent_uuid ? tb_tasks_track(t, d->parent_uuid) : NULL;
    if (parent) {
        tr->pid = parent->pid;
        tr->tid = parent->tid;
    }
    if (d->process && d->process->has_pid) {
        tr->pid = d->process->pid;
        if (!tr->name[0] && d->process->process_name)
            snprintf(tr->name, sizeof(tr->name), "%s", d->process->process_name);
        if (learn(t, tr->pid, d->process->process_name, tr->pid, true))
            goto nomem;
    }
    if (d->thread && d->thread->has_tid) {
        tr->pid = d->thread->pid;
        tr->tid = (int32_t)d->thread->tid;
        if (!tr->name[0] && d->thread->thread_name)
            snprintf(tr->name, sizeof(tr->name), "%s", d->thread->thread_name);
        if (learn(t, tr->tid, d->thread->thread_name, d->thread->pid, true))
            goto nomem;
    }
    if (d->counter) {
        tr->counter = true;
        tr->tid = 0;
    }
    return tb_idmap_put(&t->tracks, d->uuid, tr);
nomem:
    free(tr);
    return -ENOMEM;
}

int tb_tasks_learn_packet(struct tb_tasks *t, const Perfetto__Protos__TracePacket *p)
{
    switch (p->data_case) {
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE:
        return learn_tree(t, p->process_tree);
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR:
        return learn_track(t, p->track_descriptor);
    default:
        return 0;
    }
}

void tb_tasks_te_origin(const struct tb_tasks *t, const struct tb_seqs *seqs,
                        const Perfetto__Protos__TracePacket *p, struct tb_te_origin *o)
{
    const Perfetto__Protos__TrackEvent *te = p->track_event;
    const struct tb_track *tr = NULL;
    uint64_t uuid;

    if (te->has_track_uuid)
        tr = tb_tasks_track(t, te->track_uuid);
    else if (tb_seqs_default_track(seqs, p, &uuid))
        tr = tb_tasks_track(t, uuid);
    o->track = tr;
    o->pid = tr ? tr->pid : (p->has_trusted_pid ? p->trusted_pid : 0);
    o->tid = tr && tr->tid ? tr->tid : o->pid;
    o->name = NULL;
    if (te->name_field_case == PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME)
        o->name = te->name;
    else if (te->name_field_case == PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME_IID)
        o->name = tb_seqs_name(seqs, p, te->name_iid);
}

int tb_tasks_next_packet(struct tb_trace_reader *r, struct tb_seqs *seqs, struct tb_tasks *t,
                         Perfetto__Protos__TracePacket **p, uint64_t *ts, bool *has_ts)
{
    Perfetto__Protos__TracePacket *pk;
    const uint8_t *data;
    size_t len;
    int ret;

    *p = NULL;
    ret = tb_trace_reader_next(r, &data, &len);
    if (ret != 1)
        return ret;
    pk = perfetto__protos__trace_packet__unpack(NULL, len, data);
    if (!pk) {
        tb_err("export: a packet does not decode as a TracePacket");
        return -EBADMSG;
    }
    ret = tb_seqs_packet(seqs, pk, ts);
    if (ret >= 0) {
        *has_ts = ret == 1;
        ret = tb_tasks_learn_packet(t, pk);
    }
    if (ret < 0) {
        perfetto__protos__trace_packet__free_unpacked(pk, NULL);
        return ret;
    }
    *p = pk;
    return 1;
}
