/*
 * ftrace_ds.c - the linux.ftrace data source: splits the FtraceConfig
 * events between BPF units and the private ftrace instance, refuses (with
 * the reason logged and written into FtraceStats) what this host cannot
 * record, drains the BPF rings on their own drain thread (a system-wide
 * ring refills as fast as it drains and would starve IPC on the loop
 * thread) and the ftrace instance on a loop timer, into per-CPU
 * FtraceEventBundles, marks and counts every
 * loss, and tears the kernel side down on stop. The in-kernel filters
 * (ftrace_filter.c) go to the BPF units only; raw ftrace events are not
 * filtered.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "bpf/proc.h"
#include "common/event_loop.h"
#include "common/log.h"
#include "common/pb_writer.h"
#include "common/trace_writer.h"
#include "producers/ftrace/bpf_probes.h"
#include "producers/ftrace/bundle.h"
#include "producers/ftrace/ftrace_filter.h"
#include "producers/ftrace/ftrace_instance.h"
#include "producers/ftrace/probe_check.h"
#include "producers/ftrace/probes_producer.h"

/* FtraceStats / FtraceCpuStats fields. */
#define FS_PHASE        1
#define FS_CPU_STATS    2
#define FS_UNKNOWN      6
#define FS_FAILED       7
#define FS_PHASE_START  1
#define FS_PHASE_END    2
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

struct cpu_acct {
    uint64_t bpf_dropped; /* last seen, to notice new drops */
    uint64_t overrun;     /* last seen ftrace overrun */
    uint64_t read_events; /* events in bundles the SMB accepted */
    uint64_t tw_dropped;  /* events in bundles the writer dropped */
    bool lost;            /* next bundle carries lost_events */
};

/*
 * A task the BPF drain thread saw born or renamed; handed to the loop
 * thread, which owns the data-source list the process tree hangs off.
 */
struct seen_task {
    pid_t tid;
    pid_t tgid;
    bool has_comm;
    char comm[16];
};

/* The process has one ftrace instance (traced-bpf-<pid>): one owner at a time. */
static bool raw_in_use;

struct ftrace_ds {
    struct tb_probes *p;
    struct tb_probes_writer w;
    uint32_t target_buffer;
    bool compact;
    bool refused;
    uint32_t drain_ms;
    size_t buffer_kb;
    char **events; /* every known event, as configured */
    size_t nr_events;
    char **raw; /* the non-BPF ones, resolved "group/name" */
    size_t nr_raw;
    char **unknown; /* what this kernel does not have */
    size_t nr_unknown;
    struct tb_ftrace_filter filter;
    struct tb_bpf_probes *bpf;
    struct tb_bpf_rings *rings; /* owned by bpf */
    struct tb_ftrace *ft;
    struct tb_bundler *b;
    unsigned int ncpu;
    struct cpu_acct *cpu;
    uint64_t timer;
    /*
     * Serialises the bundler, the TraceWriter, the loss accounting and the
     * seen-task queue between the BPF drain thread and the loop thread:
     * the writer is not thread-safe, and both feed the same per-CPU bundles.
     */
    pthread_mutex_t lock;
    bool drain_running; /* the BPF drain thread was started */
    bool end_owed;      /* stopped; the END FtraceStats not written yet */
    struct seen_task *seen;
    size_t nr_seen, cap_seen;
};

static int push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(char *));

    if (!nv)
        return -ENOMEM;
    *v = nv;
    nv[*n] = strdup(s);
    if (!nv[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

static void free_strv(char **v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/*
 * Write @cpu's bundle. A bundle the writer drops (no free chunk, or an
 * encoder error) is counted event by event, so the FtraceStats say how many
 * events went, and the CPU's next bundle carries lost_events.
 */
static void emit_cpu(struct ftrace_ds *ds, unsigned int cpu)
{
    struct cpu_acct *a = &ds->cpu[cpu];
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

static bool emit_due(const struct ftrace_ds *ds, unsigned int cpu)
{
    return tb_bundler_pending_bytes(ds->b, cpu) >= EMIT_BYTES ||
           tb_bundler_pending(ds->b, cpu) >= EMIT_EVENTS;
}

/* Context: ds->lock held (BPF drain thread). */
static void queue_seen(struct ftrace_ds *ds, pid_t tid, pid_t tgid, const char *comm)
{
    struct seen_task *t;

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

static int on_record(void *ctx, const void *rec, size_t size)
{
    const struct tb_rec_hdr *h = rec;
    struct ftrace_ds *ds = ctx;

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
        emit_cpu(ds, h->cpu);
    pthread_mutex_unlock(&ds->lock);
    return 0;
}

/* Hand the queued tasks to the process tree. Context: loop thread, unlocked. */
static void pass_seen(struct ftrace_ds *ds)
{
    struct seen_task *v;
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
    struct ftrace_ds *ds = ctx;

    if (cpu < 0 || (unsigned int)cpu >= ds->ncpu)
        return 0;
    if (tb_bundler_add_ftrace(ds->b, cpu, ev, rec))
        return 0;
    if (emit_due(ds, cpu))
        emit_cpu(ds, cpu);
    return 0;
}

static void check_losses(struct ftrace_ds *ds)
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
static void drain(struct ftrace_ds *ds)
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
        emit_cpu(ds, cpu);
    pthread_mutex_unlock(&ds->lock);
    pass_seen(ds);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tb_debug("probes: drain pass %lld us",
             (long long)((t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000));
}

static void on_timer(void *ctx)
{
    drain(ctx);
}

/* Return: 0, or the writer's error (-ENOSPC: SMB full, packet dropped). */
static int write_stats(struct ftrace_ds *ds, int phase)
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

static int split_events(struct ftrace_ds *ds, const Perfetto__Protos__FtraceConfig *fc)
{
    char full[256];
    size_t i;
    int err = 0, r;

    for (i = 0; fc && i < fc->n_ftrace_events && !err; i++) {
        const char *ev = fc->ftrace_events[i];

        if (tb_bpf_event_type(ev) > 0) {
            err = push(&ds->events, &ds->nr_events, ev);
            continue;
        }
        r = tb_ftrace_resolve(ev, full, sizeof(full));
        if (r == -ENOENT) {
            err = push(&ds->unknown, &ds->nr_unknown, ev);
            continue;
        }
        /* Other failures (no tracefs) are named by the check below. */
        err = push(&ds->events, &ds->nr_events, ev);
        if (!err && !r)
            err = push(&ds->raw, &ds->nr_raw, full);
    }
    return err;
}

static void ds_destroy(void *state)
{
    struct ftrace_ds *ds = state;

    if (!ds)
        return;
    if (ds->timer)
        tb_loop_cancel_timer(tb_probes_loop(ds->p), ds->timer);
    /* Joins the drain thread before anything it touches goes away. */
    tb_bpf_probes_free(ds->bpf);
    if (ds->ft)
        raw_in_use = false;
    tb_ftrace_free(ds->ft);
    tb_bundler_free(ds->b);
    tb_probes_writer_close(&ds->w);
    free_strv(ds->events, ds->nr_events);
    free_strv(ds->raw, ds->nr_raw);
    free_strv(ds->unknown, ds->nr_unknown);
    tb_ftrace_filter_release(&ds->filter);
    free(ds->cpu);
    free(ds->seen);
    pthread_mutex_destroy(&ds->lock);
    free(ds);
}

static int ds_create(struct tb_probes *p, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg, void **state)
{
    const Perfetto__Protos__FtraceConfig *fc = cfg->ftrace_config;
    struct ftrace_ds *ds;
    char msg[1024];
    size_t i;
    int err, n;

    *state = NULL;
    ds = calloc(1, sizeof(*ds));
    if (!ds)
        return -ENOMEM;
    ds->p = p;
    pthread_mutex_init(&ds->lock, NULL);
    ds->target_buffer = cfg->target_buffer;
    ds->compact = fc && fc->compact_sched && fc->compact_sched->enabled;
    ds->drain_ms = fc && fc->drain_period_ms ? fc->drain_period_ms : 100;
    ds->buffer_kb = fc ? fc->buffer_size_kb : 0;
    n = libbpf_num_possible_cpus();
    ds->ncpu = n > 0 ? (unsigned int)n : 1;
    ds->cpu = calloc(ds->ncpu, sizeof(*ds->cpu));
    err = ds->cpu ? split_events(ds, fc) : -ENOMEM;
    if (err)
        goto out;
    for (i = 0; i < ds->nr_unknown; i++)
        tb_warn("probes: ftrace event '%s' does not exist on this kernel; recording the rest",
                ds->unknown[i]);
    msg[0] = '\0';
    /*
     * A filter that cannot be applied refuses the instance: recording
     * everything instead would hand the user data they asked to leave out.
     */
    err = tb_ftrace_filter_parse(fc, &ds->filter, msg, sizeof(msg));
    if (err == -ENOMEM)
        goto out;
    if (!err)
        err = tb_probe_check((const char *const *)ds->events, ds->nr_events, msg, sizeof(msg));
    if (err) {
        /* Kept as an instance so the trace says why it has no kernel data. */
        tb_err("probes: linux.ftrace instance %llu refused: %s", (unsigned long long)id, msg);
        ds->refused = true;
    }
    err = tb_bundler_new(ds->ncpu, ds->compact, &ds->b);
    if (err)
        goto out;
    *state = ds;
    return 0;
out:
    ds_destroy(ds);
    return err;
}

static int ds_start(void *state)
{
    struct tb_bpf_probes_opts bo = {0};
    struct tb_ftrace_opts fo = {0};
    struct ftrace_ds *ds = state;
    struct tb_loop *loop = tb_probes_loop(ds->p);
    int err;

    err = tb_probes_writer_open(&ds->w, tb_probes_pc(ds->p), ds->target_buffer);
    if (err) {
        tb_err("probes: linux.ftrace has no writer: %s", strerror(-err));
        return err;
    }
    if (ds->refused) {
        write_stats(ds, FS_PHASE_START);
        tb_probes_writer_flush(&ds->w);
        return 0;
    }
    /*
     * The instance first: parsing the event formats takes a while, and BPF
     * programs attached before would fill their rings before the drain
     * thread starts.
     */
    if (ds->nr_raw && raw_in_use) {
        tb_err("probes: another linux.ftrace instance owns the ftrace instance of this "
               "process; %zu raw ftrace event(s) not recorded in this one",
               ds->nr_raw);
    } else if (ds->nr_raw) {
        fo.events = (const char *const *)ds->raw;
        fo.nr_events = ds->nr_raw;
        fo.buffer_size_kb = ds->buffer_kb;
        err = tb_ftrace_new(&fo, &ds->ft);
        if (err)
            return err;
        raw_in_use = true;
    }
    bo.events = (const char *const *)ds->events;
    bo.nr_events = ds->nr_events;
    bo.filter = ds->filter.bpf;
    bo.rings.ring_bytes = ds->buffer_kb * 1024;
    bo.rings.drain_period_ms = ds->drain_ms;
    /*
     * START_OF_TRACE before any program is attached: it must precede the
     * first event in the trace (all counters are still zero here).
     */
    pthread_mutex_lock(&ds->lock);
    write_stats(ds, FS_PHASE_START);
    pthread_mutex_unlock(&ds->lock);
    err = tb_bpf_probes_new(&bo, &ds->bpf);
    if (err)
        return err;
    ds->rings = tb_bpf_probes_rings(ds->bpf);
    if (ds->rings) {
        err = tb_bpf_rings_start(ds->rings, on_record, ds);
        if (err)
            return err;
        ds->drain_running = true;
    }
    err = tb_loop_add_timer(loop, ds->drain_ms, ds->drain_ms, on_timer, ds, &ds->timer);
    if (err)
        return err;
    tb_info("probes: linux.ftrace started: %zu events (%zu raw ftrace), %s sched encoding; "
            "filters: %zu pid(s), comm '%s', cgroup id %llu, %zu syscall(s)",
            ds->nr_events, ds->nr_raw, ds->compact ? "compact" : "typed", ds->filter.bpf.nr_tgids,
            ds->filter.comm, (unsigned long long)ds->filter.bpf.cgroup_id,
            ds->filter.bpf.nr_syscalls);
    return 0;
}

static void ds_flush(void *state)
{
    struct ftrace_ds *ds = state;

    if (!ds->refused)
        drain(ds);
    pthread_mutex_lock(&ds->lock);
    tb_probes_writer_flush(&ds->w);
    pthread_mutex_unlock(&ds->lock);
}

/*
 * After the stop: the lost_events marks still owed (the last bundle of a
 * CPU was dropped) and the END FtraceStats. With the SMB full they wait for
 * the loop thread to send the commits that free chunks, so the producer
 * calls this again from a timer rather than this spinning.
 * Context: loop thread, drain thread joined.
 */
static int ds_stop_pending(void *state)
{
    struct ftrace_ds *ds = state;
    unsigned int cpu;
    int err = 0;

    pthread_mutex_lock(&ds->lock);
    for (cpu = 0; cpu < ds->ncpu && !ds->refused; cpu++) {
        emit_cpu(ds, cpu);
        if (ds->cpu[cpu].lost)
            err = -EAGAIN;
    }
    if (!err && ds->end_owed) {
        err = write_stats(ds, FS_PHASE_END) == -ENOSPC ? -EAGAIN : 0;
        if (!err)
            ds->end_owed = false;
    }
    tb_probes_writer_flush(&ds->w);
    pthread_mutex_unlock(&ds->lock);
    return err;
}

static void ds_stop(void *state)
{
    struct ftrace_ds *ds = state;
    struct tb_bpf_loss l = {0};
    struct tb_loop *loop = tb_probes_loop(ds->p);
    uint64_t tw_dropped = 0;
    unsigned int cpu;

    if (ds->timer)
        tb_loop_cancel_timer(loop, ds->timer);
    ds->timer = 0;
    if (!ds->refused) {
        /*
         * Detach first, then the drain thread's last pass and join: the
         * rings only shrink after the detach, so this ends, and afterwards
         * delivered + dropped == attempted.
         */
        if (ds->bpf)
            tb_bpf_probes_stop(ds->bpf);
        ds->drain_running = false;
        drain(ds);
        if (ds->rings && !tb_bpf_rings_loss(ds->rings, &l) && l.dropped)
            tb_warn("probes: %llu of %llu BPF events were dropped (rings full)",
                    (unsigned long long)l.dropped, (unsigned long long)l.total);
        for (cpu = 0; cpu < ds->ncpu; cpu++)
            tw_dropped += ds->cpu[cpu].tw_dropped;
        if (tw_dropped)
            tb_warn("probes: %llu events were dropped by the writer (shared memory full)",
                    (unsigned long long)tw_dropped);
    }
    ds->end_owed = true;
    /* What does not fit now is retried by ds_stop_pending(). */
    ds_stop_pending(ds);
    if (ds->ft)
        raw_in_use = false;
    tb_ftrace_free(ds->ft);
    ds->ft = NULL;
}

const struct tb_ds_ops tb_ftrace_ds_ops = {
    .name = "linux.ftrace",
    .create = ds_create,
    .start = ds_start,
    .flush = ds_flush,
    .stop = ds_stop,
    .stop_pending = ds_stop_pending,
    .destroy = ds_destroy,
};
