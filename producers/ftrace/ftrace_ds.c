/*
 * ftrace_ds.c - the life of a linux.ftrace instance: splits the
 * FtraceConfig events between BPF units and the private ftrace instance,
 * refuses (with the reason logged and written into FtraceStats) what this
 * host cannot record, starts the BPF rings' drain thread (a system-wide ring
 * refills as fast as it drains and would starve IPC on the loop thread) and
 * the loop timer that drains the ftrace instance, and tears the kernel side
 * down on stop. The in-kernel filters (ftrace_filter.c) go to the BPF units
 * only; raw ftrace events are not filtered. What happens to the data in
 * between is ftrace_drain.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "producers/ftrace/bpf_probes.h"
#include "producers/ftrace/bundle.h"
#include "producers/ftrace/ftrace_ds.h"
#include "producers/ftrace/ftrace_filter.h"
#include "producers/ftrace/ftrace_instance.h"
#include "producers/ftrace/probe_check.h"
#include "producers/ftrace/probes_producer.h"

/* The process has one ftrace instance (traced-bpf-<pid>): one owner at a time. */
static bool raw_in_use;

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

static void on_timer(void *ctx)
{
    tb_ftrace_ds_drain(ctx);
}

static int split_events(struct tb_ftrace_ds *ds, const Perfetto__Protos__FtraceConfig *fc)
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
    struct tb_ftrace_ds *ds = state;

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
    struct tb_ftrace_ds *ds;
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
    struct tb_ftrace_ds *ds = state;
    struct tb_loop *loop = tb_probes_loop(ds->p);
    int err;

    err = tb_probes_writer_open(&ds->w, tb_probes_pc(ds->p), ds->target_buffer);
    if (err) {
        tb_err("probes: linux.ftrace has no writer: %s", strerror(-err));
        return err;
    }
    if (ds->refused) {
        tb_ftrace_ds_write_stats(ds, TB_FTRACE_STATS_START);
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
    tb_ftrace_ds_write_stats(ds, TB_FTRACE_STATS_START);
    pthread_mutex_unlock(&ds->lock);
    err = tb_bpf_probes_new(&bo, &ds->bpf);
    if (err)
        return err;
    ds->rings = tb_bpf_probes_rings(ds->bpf);
    if (ds->rings) {
        err = tb_bpf_rings_start(ds->rings, tb_ftrace_ds_on_record, ds);
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
    struct tb_ftrace_ds *ds = state;

    if (!ds->refused)
        tb_ftrace_ds_drain(ds);
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
    struct tb_ftrace_ds *ds = state;
    unsigned int cpu;
    int err = 0;

    pthread_mutex_lock(&ds->lock);
    for (cpu = 0; cpu < ds->ncpu && !ds->refused; cpu++) {
        tb_ftrace_ds_emit_cpu(ds, cpu);
        if (ds->cpu[cpu].lost)
            err = -EAGAIN;
    }
    if (!err && ds->end_owed) {
        err = tb_ftrace_ds_write_stats(ds, TB_FTRACE_STATS_END) == -ENOSPC ? -EAGAIN : 0;
        if (!err)
            ds->end_owed = false;
    }
    tb_probes_writer_flush(&ds->w);
    pthread_mutex_unlock(&ds->lock);
    return err;
}

static void ds_stop(void *state)
{
    struct tb_ftrace_ds *ds = state;
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
        tb_ftrace_ds_drain(ds);
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
