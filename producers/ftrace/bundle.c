/*
 * bundle.c - per-CPU queues of kernel events and their encoding into
 * FtraceEventBundle (see bundle.h). Typed events are encoded when queued
 * (into a growable per-CPU buffer of ready FtraceEvent fields); compact sched
 * events are kept as records until emit, because the compact form is a
 * structure of arrays that needs them all.
 */
#include "producers/ftrace/bundle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/irq.h"
#include "bpf/proc.h"
#include "bpf/sched.h"
#include "bpf/syscall.h"
#include "common/pb_writer.h"
#include "producers/ftrace/compact_sched.h"
#include "producers/ftrace/ftrace_encode.h"

struct cpu_q {
    struct tb_pbw ev; /* encoded FtraceEvent fields (tag 2 + length + body) */
    size_t nr_ev;
    struct tb_sched_switch *sw;
    size_t nr_sw, cap_sw;
    struct tb_sched_wake *wk;
    size_t nr_wk, cap_wk;
    bool lost;
    /* The task the last switch on this CPU put on it (kept across bundles). */
    int32_t running;
    bool running_known;
};

struct tb_bundler {
    unsigned int nr_cpus;
    bool compact;
    struct cpu_q q[];
};

int tb_bundler_new(unsigned int nr_cpus, bool compact_sched, struct tb_bundler **out)
{
    struct tb_bundler *b;
    unsigned int i;

    *out = NULL;
    b = calloc(1, sizeof(*b) + nr_cpus * sizeof(struct cpu_q));
    if (!b)
        return -ENOMEM;
    b->nr_cpus = nr_cpus;
    b->compact = compact_sched;
    for (i = 0; i < nr_cpus; i++) {
        if (tb_pbw_init_dyn(&b->q[i].ev, 4096)) {
            b->nr_cpus = i;
            tb_bundler_free(b);
            return -ENOMEM;
        }
    }
    *out = b;
    return 0;
}

void tb_bundler_free(struct tb_bundler *b)
{
    unsigned int i;

    if (!b)
        return;
    for (i = 0; i < b->nr_cpus; i++) {
        tb_pbw_dyn_free(&b->q[i].ev);
        free(b->q[i].sw);
        free(b->q[i].wk);
    }
    free(b);
}

static void put_comm(struct tb_pbw *w, uint32_t field, const char *comm)
{
    tb_pbw_append_bytes(w, field, comm, strnlen(comm, TB_COMM_LEN));
}

static void encode_wake(struct tb_pbw *w, uint32_t field, const struct tb_sched_wake *r)
{
    tb_pbw_begin_nested(w, field);
    put_comm(w, 1, r->comm);
    tb_pbw_append_int(w, 2, r->pid);
    tb_pbw_append_int(w, 3, r->prio);
    tb_pbw_append_int(w, 4, r->success);
    tb_pbw_append_int(w, 5, r->target_cpu);
    tb_pbw_end_nested(w);
}

static void encode_proc(struct tb_pbw *w, const struct tb_rec_hdr *h)
{
    switch (h->type) {
    case TB_REC_PROC_FORK: {
        const struct tb_proc_fork *r = (const void *)h;
        tb_pbw_begin_nested(w, 239);
        put_comm(w, 1, r->parent_comm);
        tb_pbw_append_int(w, 2, r->parent_pid);
        put_comm(w, 3, r->child_comm);
        tb_pbw_append_int(w, 4, r->child_pid);
        break;
    }
    case TB_REC_PROC_EXEC: {
        const struct tb_proc_exec *r = (const void *)h;
        tb_pbw_begin_nested(w, 237);
        tb_pbw_append_bytes(w, 1, r->filename, strnlen(r->filename, sizeof(r->filename)));
        tb_pbw_append_int(w, 2, r->pid);
        tb_pbw_append_int(w, 3, r->old_pid);
        break;
    }
    case TB_REC_PROC_EXIT:
    case TB_REC_PROC_FREE: {
        const struct tb_proc_exit *r = (const void *)h;
        tb_pbw_begin_nested(w, h->type == TB_REC_PROC_EXIT ? 238 : 240);
        put_comm(w, 1, r->comm);
        tb_pbw_append_int(w, 2, r->pid);
        if (h->type == TB_REC_PROC_EXIT) {
            tb_pbw_append_int(w, 3, r->tgid);
            tb_pbw_append_int(w, 4, r->prio);
        } else {
            tb_pbw_append_int(w, 3, r->prio);
        }
        break;
    }
    case TB_REC_TASK_NEWTASK: {
        const struct tb_task_newtask *r = (const void *)h;
        tb_pbw_begin_nested(w, 235);
        tb_pbw_append_int(w, 1, r->pid);
        put_comm(w, 2, r->comm);
        tb_pbw_append_varint(w, 3, r->clone_flags);
        tb_pbw_append_int(w, 4, r->oom_score_adj);
        break;
    }
    default: { /* TB_REC_TASK_RENAME */
        const struct tb_task_rename *r = (const void *)h;
        tb_pbw_begin_nested(w, 236);
        tb_pbw_append_int(w, 1, r->pid);
        put_comm(w, 2, r->oldcomm);
        put_comm(w, 3, r->newcomm);
        tb_pbw_append_int(w, 4, r->oom_score_adj);
        break;
    }
    }
    tb_pbw_end_nested(w);
}

static void encode_other(struct tb_pbw *w, const struct tb_rec_hdr *h)
{
    switch (h->type) {
    case TB_REC_IRQ_ENTRY: {
        const struct tb_irq_entry *r = (const void *)h;
        tb_pbw_begin_nested(w, 36);
        tb_pbw_append_int(w, 1, r->irq);
        tb_pbw_append_bytes(w, 2, r->name, strnlen(r->name, sizeof(r->name)));
        break;
    }
    case TB_REC_IRQ_EXIT: {
        const struct tb_irq_exit *r = (const void *)h;
        tb_pbw_begin_nested(w, 37);
        tb_pbw_append_int(w, 1, r->irq);
        tb_pbw_append_int(w, 2, r->ret);
        break;
    }
    case TB_REC_SOFTIRQ_ENTRY:
    case TB_REC_SOFTIRQ_EXIT: {
        const struct tb_softirq *r = (const void *)h;
        tb_pbw_begin_nested(w, h->type == TB_REC_SOFTIRQ_ENTRY ? 24 : 25);
        tb_pbw_append_varint(w, 1, r->vec);
        break;
    }
    case TB_REC_SYS_ENTER: {
        const struct tb_sys_enter *r = (const void *)h;
        tb_pbw_begin_nested(w, 329);
        tb_pbw_append_int(w, 1, r->id);
        for (int i = 0; i < 6; i++)
            tb_pbw_append_varint(w, 2, r->args[i]);
        break;
    }
    default: { /* TB_REC_SYS_EXIT */
        const struct tb_sys_exit *r = (const void *)h;
        tb_pbw_begin_nested(w, 330);
        tb_pbw_append_int(w, 1, r->id);
        tb_pbw_append_int(w, 2, r->ret);
        break;
    }
    }
    tb_pbw_end_nested(w);
}

static size_t rec_size(uint16_t type)
{
    switch (type) {
    case TB_REC_SCHED_SWITCH:
        return sizeof(struct tb_sched_switch);
    case TB_REC_SCHED_WAKING:
    case TB_REC_SCHED_WAKEUP_NEW:
        return sizeof(struct tb_sched_wake);
    case TB_REC_PROC_FORK:
        return sizeof(struct tb_proc_fork);
    case TB_REC_PROC_EXEC:
        return sizeof(struct tb_proc_exec);
    case TB_REC_PROC_EXIT:
    case TB_REC_PROC_FREE:
        return sizeof(struct tb_proc_exit);
    case TB_REC_TASK_NEWTASK:
        return sizeof(struct tb_task_newtask);
    case TB_REC_TASK_RENAME:
        return sizeof(struct tb_task_rename);
    case TB_REC_IRQ_ENTRY:
        return sizeof(struct tb_irq_entry);
    case TB_REC_IRQ_EXIT:
        return sizeof(struct tb_irq_exit);
    case TB_REC_SOFTIRQ_ENTRY:
    case TB_REC_SOFTIRQ_EXIT:
        return sizeof(struct tb_softirq);
    case TB_REC_SYS_ENTER:
        return sizeof(struct tb_sys_enter);
    case TB_REC_SYS_EXIT:
        return sizeof(struct tb_sys_exit);
    default:
        return 0;
    }
}

static int push(void **arr, size_t *nr, size_t *cap, const void *rec, size_t size)
{
    if (*nr == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        void *n = realloc(*arr, ncap * size);

        if (!n)
            return -ENOMEM;
        *arr = n;
        *cap = ncap;
    }
    memcpy((char *)*arr + *nr * size, rec, size);
    (*nr)++;
    return 0;
}

int tb_bundler_add_bpf(struct tb_bundler *b, const void *rec, size_t size)
{
    const struct tb_rec_hdr *h = rec;
    struct tb_pbw *w;
    struct cpu_q *q;
    size_t need;

    if (size < sizeof(*h))
        return -EINVAL;
    need = rec_size(h->type);
    if (!need || size < need || h->cpu >= b->nr_cpus)
        return -EINVAL;
    q = &b->q[h->cpu];
    /*
     * The compact form has no prev_pid and no waker: a reader takes both
     * from the previous switch on the CPU. Where that would be wrong (the
     * first switch seen, or the kernel did not report a switch: on some
     * machines a task's switch-out never reaches the tracepoint), the event
     * is written typed, with the pids spelled out.
     */
    if (b->compact && h->type == TB_REC_SCHED_SWITCH) {
        const struct tb_sched_switch *r = rec;
        bool inferable = q->running_known && q->running == r->prev_pid;

        q->running = r->next_pid;
        q->running_known = true;
        if (inferable)
            return push((void **)&q->sw, &q->nr_sw, &q->cap_sw, rec, need);
    } else if (b->compact && h->type == TB_REC_SCHED_WAKING) {
        if (q->running_known && q->running == (int32_t)h->pid)
            return push((void **)&q->wk, &q->nr_wk, &q->cap_wk, rec, need);
    }
    w = &q->ev;
    tb_pbw_begin_nested(w, TB_BUNDLE_EVENT);
    tb_pbw_append_varint(w, 1, h->ts);
    tb_pbw_append_varint(w, 2, h->pid);
    if (h->type == TB_REC_SCHED_SWITCH) {
        const struct tb_sched_switch *r = rec;
        tb_pbw_begin_nested(w, 4);
        put_comm(w, 1, r->prev_comm);
        tb_pbw_append_int(w, 2, r->prev_pid);
        tb_pbw_append_int(w, 3, r->prev_prio);
        tb_pbw_append_int(w, 4, r->prev_state);
        put_comm(w, 5, r->next_comm);
        tb_pbw_append_int(w, 6, r->next_pid);
        tb_pbw_append_int(w, 7, r->next_prio);
        tb_pbw_end_nested(w);
    } else if (h->type == TB_REC_SCHED_WAKING || h->type == TB_REC_SCHED_WAKEUP_NEW) {
        encode_wake(w, h->type == TB_REC_SCHED_WAKING ? 20 : 114, rec);
    } else if (h->type <= TB_REC_TASK_RENAME) {
        encode_proc(w, h);
    } else {
        encode_other(w, h);
    }
    tb_pbw_end_nested(w);
    q->nr_ev++;
    return tb_pbw_error(w);
}

int tb_bundler_add_ftrace(struct tb_bundler *b, int cpu, struct tep_event *ev,
                          struct tep_record *rec)
{
    struct cpu_q *q;
    int err;

    if (cpu < 0 || (unsigned int)cpu >= b->nr_cpus)
        return -EINVAL;
    q = &b->q[cpu];
    if (tb_ftrace_record_missed(rec))
        q->lost = true;
    err = tb_ftrace_encode_event(&q->ev, TB_BUNDLE_EVENT, ev, rec);
    if (!err)
        q->nr_ev++;
    return err;
}

void tb_bundler_mark_lost(struct tb_bundler *b, unsigned int cpu)
{
    if (cpu < b->nr_cpus)
        b->q[cpu].lost = true;
}

size_t tb_bundler_pending(const struct tb_bundler *b, unsigned int cpu)
{
    const struct cpu_q *q = &b->q[cpu];

    return cpu < b->nr_cpus ? q->nr_ev + q->nr_sw + q->nr_wk : 0;
}

size_t tb_bundler_pending_bytes(const struct tb_bundler *b, unsigned int cpu)
{
    const struct cpu_q *q = &b->q[cpu];

    return cpu < b->nr_cpus ? tb_pbw_size(&q->ev) + 8 * (q->nr_sw + q->nr_wk) : 0;
}

int tb_bundler_emit(struct tb_bundler *b, unsigned int cpu, struct tb_pbw *w)
{
    const uint8_t *data;
    struct cpu_q *q;
    size_t len, n;
    int err;

    if (cpu >= b->nr_cpus)
        return -EINVAL;
    q = &b->q[cpu];
    n = q->nr_ev + q->nr_sw + q->nr_wk;
    if (!n && !q->lost)
        return 0;
    tb_pbw_begin_nested(w, TB_PKT_FTRACE_EVENTS);
    tb_pbw_append_varint(w, TB_BUNDLE_CPU, cpu);
    data = tb_pbw_dyn_data(&q->ev, &len);
    if (len)
        tb_pbw_write(w, data, len);
    if (q->lost)
        tb_pbw_append_varint(w, TB_BUNDLE_LOST, 1);
    err = 0;
    if (q->nr_sw || q->nr_wk)
        err = tb_compact_sched_encode(w, TB_BUNDLE_COMPACT, q->sw, q->nr_sw, q->wk, q->nr_wk);
    tb_pbw_end_nested(w);
    /* Emptied even on error: the caller counts the events as lost. */
    q->nr_ev = q->nr_sw = q->nr_wk = 0;
    q->lost = false;
    tb_pbw_dyn_free(&q->ev);
    if (tb_pbw_init_dyn(&q->ev, 4096) && !err)
        err = -ENOMEM;
    if (!err)
        err = tb_pbw_error(w);
    return err ? err : (int)n;
}
