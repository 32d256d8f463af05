/*
 * ftrace_drain.c - the data path of linux.ftrace: BPF records (drain
 * thread) and raw ftrace events (loop thread) into per-CPU
 * FtraceEventBundles, each bundle written out once large enough or at the
 * end of a pass; every loss (rings full, ftrace overrun, a bundle the writer
 * dropped) counted per CPU and marked on the CPU's next bundle; the
 * FtraceStats packets that report those counters; and the forked, renamed
 * and exec'd tasks handed to the process tree.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpf/proc.h"
#include "common/log.h"
#include "common/pb_writer.h"
#include "common/trace_writer.h"
#include "producers/ftrace/bpf_probes.h"
#include "producers/ftrace/bundle.h"
#include "producers/ftrace/ftrace_ds.h"
#include "producers/ftrace/ftrace_instance.h"

/* FtraceStats / FtraceCpuStats fields. */
#define FS_PHASE        1
#define FS_CPU_STATS    2
#define FS_UNKNOWN      6
#define FS_FAILED       7
#define FCS_CPU         1
#define FCS_ENTRIES     2
#define FCS_OVERRUN     3
#define FCS_DROPPED     8
#define FCS_READ_EVENTS 9

/*
 * A CPU's queue is written out mid-drain past either bound. Small bundles
 * keep commits flowing during a pass and cap what one writer drop (no free
 * chunk) can take: a bundle of a whole pass could be larger than the SMB.
 */
#define EMIT_BYTES  (16u << 10)
#define EMIT_EVENTS 512u

/*
 * Write @cpu's bundle. A bundle the writer drops (no free chunk, or an
 * encoder error) is counted event by event, so the FtraceStats say how many
 * events went, and the CPU's next bundle carries lost_events.
 */
void tb_ftrace_ds_emit_cpu(struct tb_ftrace_ds *ds, unsigned int cpu)
{
    struct tb_ftrace_cpu_acct *a = &ds->cpu[cpu];
    size_t pending = tb_bundler_pending(ds->b, cpu);
    struct tb_pbw *pbw;
    int n, err;

    if (!pending && !a->lost)
        return;
    if (a->lost)
        tb_bundler_mark_lost(ds->b, cpu);
    a->lost = false;
    pbw = tb_tw_begin_packet(ds->w.tw);
    n = tb_bundler_emit(ds->b, cpu, pbw);
    err = tb_tw_end_packet(ds->w.tw);
    if (n < 0 && !err)
        err = n;
    if (!err) {
        a->read_events += (uint64_t)n;
        return;
    }
    /*
     * With no chunk the encoder fails too, and the queue is emptied anyway:
     * the count taken before, not n, says what went.
     */
    a->lost = true;
    if (pending) {
        if (!a->tw_dropped)
            tb_warn("probes: cpu %u: a bundle of %zu events was dropped by the writer: %s", cpu,
                    pending, strerror(-err));
        a->tw_dropped += pending;
    }
}

static bool emit_due(const struct tb_ftrace_ds *ds, unsigned int cpu)
{
    return tb_bundler_pending_bytes(ds->b, cpu) >= EMIT_BYTES ||
           tb_bundler_pending(ds->b, cpu) >= EMIT_EVENTS;
}

/* Context: ds->lock held (BPF drain thread). */
static void queue_seen(struct tb_ftrace_ds *ds, pid_t tid, pid_t tgid, const char *comm)
{
    struct tb_ftrace_seen_task *t;

    if (ds->nr_seen == ds->cap_seen) {
        size_t cap = ds->cap_seen ? 2 * ds->cap_seen : 64;

        t = realloc(ds->seen, cap * sizeof(*t));
        if (!t)
            return; /* the process tree misses a name; the events stay */
        ds->seen = t;
        ds->cap_seen = cap;
    }
    t = &ds->seen[ds->nr_seen++];
    t->tid = tid;
    t->tgid = tgid;
    t->has_comm = comm != NULL;
    if (comm) {
        memcpy(t->comm, comm, sizeof(t->comm) - 1);
        t->comm[sizeof(t->comm) - 1] = '\0';
    }
}

int tb_ftrace_ds_on_record(void *ctx, const void *rec, size_t size)
{
    const struct tb_rec_hdr *h = rec;
    struct tb_ftrace_ds *ds = ctx;

    if (size < sizeof(*h))
        return 0;
    pthread_mutex_lock(&ds->lock);
    if (h->type == TB_REC_PROC_FORK && size >= sizeof(struct tb_proc_fork)) {
        const struct tb_proc_fork *f = rec;

        queue_seen(ds, f->child_pid, f->child_tgid, f->child_comm);
    } else if (h->type == TB_REC_TASK_RENAME && size >= sizeof(struct tb_task_rename)) {
        const struct tb_task_rename *r = rec;

        queue_seen(ds, r->pid, 0, r->newcomm);
    } else if (h->type == TB_REC_PROC_EXEC && size >= sizeof(struct tb_proc_exec)) {
        const struct tb_proc_exec *e = rec;

        queue_seen(ds, e->pid, e->pid, NULL);
    }
    /* A malformed record is skipped, never fatal. */
    if (!tb_bundler_add_bpf(ds->b, rec, size) && h->cpu < ds->ncpu && emit_due(ds, h->cpu))
        tb_ftrace_ds_emit_cpu(ds, h->cpu);
    pthread_mutex_unlock(&ds->lock);
    return 0;
}

/* Hand the queued tasks to the process tree. Context: loop thread, unlocked. */
static void pass_seen(struct tb_ftrace_ds *ds)
{
    struct tb_ftrace_seen_task *v;
    size_t i, n;

    pthread_mutex_lock(&ds->lock);
    v = ds->seen;
    n = ds->nr_seen;
    ds->seen = NULL;
    ds->nr_seen = ds->cap_seen = 0;
    pthread_mutex_unlock(&ds->lock);
    for (i = 0; i < n; i++)
        tb_probes_thread_seen(ds->p, v[i].tid, v[i].tgid, v[i].has_comm ? v[i].comm : NULL);
    free(v);
    tb_probes_threads_flush(ds->p);
}

static int on_raw(void *ctx, int cpu, struct tep_event *ev, struct tep_record *rec)
{
    struct tb_ftrace_ds *ds = ctx;

    if (cpu < 0 || (unsigned int)cpu >= ds->ncpu)
        return 0;
    if (tb_bundler_add_ftrace(ds->b, cpu, ev, rec))
        return 0;
    if (emit_due(ds, cpu))
        tb_ftrace_ds_emit_cpu(ds, cpu);
    return 0;
}

static void check_losses(struct tb_ftrace_ds *ds)
{
    struct tb_bpf_loss l;
    unsigned int cpu;
    uint64_t ov;

    for (cpu = 0; cpu < ds->ncpu; cpu++) {
        if (ds->rings && !tb_bpf_rings_loss_cpu(ds->rings, cpu, &l) &&
            l.dropped > ds->cpu[cpu].bpf_dropped) {
            ds->cpu[cpu].bpf_dropped = l.dropped;
            ds->cpu[cpu].lost = true;
        }
        if (ds->ft && !tb_ftrace_overrun(ds->ft, (int)cpu, &ov) && ov > ds->cpu[cpu].overrun) {
            ds->cpu[cpu].overrun = ov;
            ds->cpu[cpu].lost = true;
        }
    }
}

/*
 * The loop thread's pass: the raw ftrace instance, the loss counters, every
 * CPU's pending bundle out, the seen tasks to the process tree. The BPF rings
 * are emptied by their drain thread meanwhile. Context: loop thread.
 */
void tb_ftrace_ds_drain(struct tb_ftrace_ds *ds)
{
    struct timespec t0, t1;
    unsigned int cpu;
    int err;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&ds->lock);
    if (ds->ft) {
        err = tb_ftrace_read(ds->ft, on_raw, ds);
        if (err < 0)
            tb_warn("probes: reading ftrace instance %s: %s", tb_ftrace_name(ds->ft),
                    strerror(-err));
    }
    check_losses(ds);
    for (cpu = 0; cpu < ds->ncpu; cpu++)
        tb_ftrace_ds_emit_cpu(ds, cpu);
    pthread_mutex_unlock(&ds->lock);
    pass_seen(ds);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tb_debug("probes: drain pass %lld us",
             (long long)((t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000));
}

int tb_ftrace_ds_write_stats(struct tb_ftrace_ds *ds, int phase)
{
    struct tb_bpf_loss l = {0};
    struct tb_pbw *pbw;
    unsigned int cpu;
    size_t i;

    pbw = tb_probes_begin_packet(&ds->w);
    tb_pbw_begin_nested(pbw, TB_PKT_FTRACE_STATS);
    tb_pbw_append_varint(pbw, FS_PHASE, phase);
    for (cpu = 0; cpu < ds->ncpu && !ds->refused; cpu++) {
        if (ds->rings)
            tb_bpf_rings_loss_cpu(ds->rings, cpu, &l);
        tb_pbw_begin_nested(pbw, FS_CPU_STATS);
        tb_pbw_append_varint(pbw, FCS_CPU, cpu);
        /*
         * entries: every event the BPF programs of this CPU produced, so a
         * reader can check entries == read_events + dropped_events.
         */
        tb_pbw_append_varint(pbw, FCS_ENTRIES, l.total);
        tb_pbw_append_varint(pbw, FCS_OVERRUN, ds->cpu[cpu].overrun);
        /* Lost in the rings (full) plus lost in the writer (SMB full). */
        tb_pbw_append_varint(pbw, FCS_DROPPED, l.dropped + ds->cpu[cpu].tw_dropped);
        tb_pbw_append_varint(pbw, FCS_READ_EVENTS, ds->cpu[cpu].read_events);
        tb_pbw_end_nested(pbw);
    }
    for (i = 0; i < ds->nr_unknown; i++)
        tb_pbw_append_string(pbw, FS_UNKNOWN, ds->unknown[i]);
    for (i = 0; ds->refused && i < ds->nr_events; i++)
        tb_pbw_append_string(pbw, FS_FAILED, ds->events[i]);
    tb_pbw_end_nested(pbw);
    return tb_probes_end_packet(&ds->w);
}
