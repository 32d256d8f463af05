/*
 * probes_producer.c - the kernel producer's connection: registers the data
 * sources, turns producer-client commands into data-source hooks, keeps the
 * table of running instances, and owns the small TraceWriter helpers every
 * data source writes through (see probes_producer.h).
 */
#include "producers/ftrace/probes_producer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/pb_writer.h"
#include "common/producer_client.h"
#include "common/trace_writer.h"

struct ds_inst {
    struct ds_inst *next;
    const struct tb_ds_ops *ops;
    void *state; /* NULL: refused at setup, or not created */
    uint64_t id;
    uint64_t session; /* tracing_session_id from the config, 0 if none */
    bool started;
    /* Stopped, acked once stop_pending() is done: */
    struct tb_probes *p;
    uint64_t linger_timer;
    uint64_t linger_deadline_ms;
};

/* How long a stopped instance may retry its last packets, and how often. */
#define LINGER_MS        2000u
#define LINGER_PERIOD_MS 5u

struct tb_probes {
    struct tb_pc *pc;
    struct tb_loop *loop;
    struct ds_inst *insts;
    struct ds_inst *lingering; /* stopped, writing their last packets */
};

static const struct tb_ds_ops *const all_ops[] = {
    &tb_ftrace_ds_ops,
    &tb_proc_ds_ops,
    &tb_sysinfo_ds_ops,
    &tb_sysstats_ds_ops,
};
#define NR_OPS (sizeof(all_ops) / sizeof(all_ops[0]))

uint64_t tb_probes_boot_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tb_probes_writer_open(struct tb_probes_writer *w, struct tb_pc *pc, uint32_t target_buffer)
{
    struct tb_tw_opts o = {0};
    int err;

    memset(w, 0, sizeof(*w));
    w->pc = pc;
    err = tb_pc_smb_acquire(pc, &w->smb);
    if (err)
        return err;
    w->id = tb_pc_alloc_writer_id(pc);
    if (!w->id) {
        err = -EBUSY;
        goto out;
    }
    o.ops = &tb_tw_arbiter_ops;
    o.ops_ctx = tb_pc_smb_arbiter(w->smb);
    o.writer_id = w->id;
    o.target_buffer = target_buffer;
    /*
     * Drop, not stall: commits leave from the loop thread, which also
     * writes (drain timer, flush, stop), so a stall there could never see a
     * chunk freed. Data sources count what a drop takes instead, and the
     * kernel data is cut into small bundles so one drop takes little.
     */
    o.policy = TB_TW_DROP;
    err = tb_tw_create(&o, &w->tw);
    if (err)
        goto out;
    err = tb_pc_register_trace_writer(pc, w->id, target_buffer);
    if (err)
        goto out;
    return 0;
out:
    tb_probes_writer_close(w);
    return err;
}

void tb_probes_writer_flush(struct tb_probes_writer *w)
{
    int err;

    if (!w->tw)
        return;
    err = tb_tw_flush(w->tw);
    if (err)
        tb_warn("probes: flushing writer %u: %s", w->id, strerror(-err));
}

void tb_probes_writer_close(struct tb_probes_writer *w)
{
    if (!w->pc)
        return;
    if (w->tw) {
        tb_tw_destroy(w->tw);
        tb_pc_unregister_trace_writer(w->pc, w->id);
    }
    tb_pc_free_writer_id(w->pc, w->id);
    tb_pc_smb_release(w->smb);
    memset(w, 0, sizeof(*w));
}

struct tb_pbw *tb_probes_begin_packet(struct tb_probes_writer *w)
{
    struct tb_pbw *pbw = tb_tw_begin_packet(w->tw);

    tb_pbw_append_varint(pbw, TB_PKT_TIMESTAMP, tb_probes_boot_ns());
    return pbw;
}

int tb_probes_end_packet(struct tb_probes_writer *w)
{
    return tb_tw_end_packet(w->tw);
}

struct tb_pc *tb_probes_pc(struct tb_probes *p)
{
    return p->pc;
}

struct tb_loop *tb_probes_loop(struct tb_probes *p)
{
    return p->loop;
}

static struct ds_inst *find_inst(struct tb_probes *p, uint64_t id)
{
    struct ds_inst *i;

    for (i = p->insts; i; i = i->next) {
        if (i->id == id)
            return i;
    }
    return NULL;
}

static void unlink_inst(struct tb_probes *p, struct ds_inst *inst)
{
    struct ds_inst **pp;

    for (pp = &p->insts; *pp; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            return;
        }
    }
}

static void free_inst(struct ds_inst *inst, bool stop)
{
    if (inst->state && inst->started && stop)
        inst->ops->stop(inst->state);
    if (inst->state)
        inst->ops->destroy(inst->state);
    free(inst);
}

static void on_setup(struct tb_pc *pc, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    const struct tb_ds_ops *ops = NULL;
    struct tb_probes *p = ctx;
    struct ds_inst *inst;
    size_t k;
    int err;

    (void)pc;
    if (find_inst(p, id))
        return;
    for (k = 0; k < NR_OPS && cfg->name; k++) {
        if (!strcmp(cfg->name, all_ops[k]->name))
            ops = all_ops[k];
    }
    if (!ops) {
        tb_warn("probes: setup of unknown data source '%s' ignored", cfg->name ? cfg->name : "");
        return;
    }
    inst = calloc(1, sizeof(*inst));
    if (!inst) {
        tb_err("probes: no memory for data source %s", ops->name);
        return;
    }
    inst->ops = ops;
    inst->id = id;
    inst->session = cfg->has_tracing_session_id ? cfg->tracing_session_id : 0;
    err = ops->create(p, id, cfg, &inst->state);
    if (err)
        inst->state = NULL; /* refused: logged by create(); stop acks at once */
    inst->next = p->insts;
    p->insts = inst;
}

static void start_inst(struct ds_inst *inst)
{
    int err;

    if (!inst->state || inst->started)
        return;
    err = inst->ops->start(inst->state);
    if (err) {
        tb_err("probes: %s instance %llu did not start: %s", inst->ops->name,
               (unsigned long long)inst->id, strerror(-err));
        inst->ops->destroy(inst->state);
        inst->state = NULL;
        return;
    }
    inst->started = true;
}

/* The process_stats instances of @session, @started or set up only. */
static bool session_proc(const struct ds_inst *i, uint64_t session)
{
    return i->ops == &tb_proc_ds_ops && i->state && session && i->session == session;
}

static void on_start(struct tb_pc *pc, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    struct tb_probes *p = ctx;
    struct ds_inst *inst = find_inst(p, id), *i;

    if (!inst) {
        on_setup(pc, ctx, id, cfg);
        inst = find_inst(p, id);
    }
    if (!inst || !inst->state || inst->started)
        return;
    if (inst->ops != &tb_ftrace_ds_ops) {
        start_inst(inst);
        return;
    }
    /*
     * Scan, then arm: the service sets up every data source of a session
     * before it starts any, so the session's process tree can be taken
     * before the first kernel event exists; its own StartDataSource then
     * finds it started. What is forked between the scan and the arming is
     * picked up by tb_proc_ds_armed() right after.
     */
    for (i = p->insts; i; i = i->next) {
        if (session_proc(i, inst->session))
            start_inst(i);
    }
    start_inst(inst);
    if (!inst->started)
        return;
    for (i = p->insts; i; i = i->next) {
        if (session_proc(i, inst->session) && i->started)
            tb_proc_ds_armed(i->state);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void unlink_lingering(struct tb_probes *p, struct ds_inst *inst)
{
    struct ds_inst **pp;

    for (pp = &p->lingering; *pp; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            return;
        }
    }
}

/* Ends a lingering instance: timer off, freed, stop acked when @ack. */
static void end_linger(struct tb_probes *p, struct ds_inst *inst, bool ack)
{
    uint64_t id = inst->id;

    if (inst->linger_timer)
        tb_loop_cancel_timer(p->loop, inst->linger_timer);
    unlink_lingering(p, inst);
    free_inst(inst, false);
    if (ack && p->pc)
        tb_pc_notify_stopped(p->pc, id);
}

static void on_linger(void *ctx)
{
    struct ds_inst *inst = ctx;
    struct tb_probes *p = inst->p;

    if (inst->ops->stop_pending(inst->state) != -EAGAIN)
        goto done;
    if (mono_ms() < inst->linger_deadline_ms)
        return;
    tb_warn("probes: %s instance %llu: last packets still not written after %u ms, giving up",
            inst->ops->name, (unsigned long long)inst->id, LINGER_MS);
done:
    end_linger(p, inst, true);
}

static bool on_stop(struct tb_pc *pc, void *ctx, uint64_t id)
{
    struct tb_probes *p = ctx;
    struct ds_inst *inst = find_inst(p, id);

    if (!inst)
        return true;
    unlink_inst(p, inst);
    if (inst->state && inst->started) {
        inst->ops->stop(inst->state);
        inst->started = false;
        /*
         * The SMB was full: the loop must run (to send the commits that free
         * chunks) before the last packets fit, so they are retried from a
         * timer and the stop acked after them.
         */
        if (inst->ops->stop_pending && inst->ops->stop_pending(inst->state) == -EAGAIN) {
            inst->p = p;
            inst->linger_deadline_ms = mono_ms() + LINGER_MS;
            if (!tb_loop_add_timer(p->loop, LINGER_PERIOD_MS, LINGER_PERIOD_MS, on_linger, inst,
                                   &inst->linger_timer)) {
                inst->next = p->lingering;
                p->lingering = inst;
                return false;
            }
        }
    }
    free_inst(inst, false);
    /* Sent after the commits the stop just queued. */
    tb_pc_notify_stopped(pc, id);
    return false;
}

static void on_flush(struct tb_pc *pc, void *ctx, const uint64_t *ids, size_t n, uint64_t req)
{
    struct tb_probes *p = ctx;
    struct ds_inst *inst;
    size_t k;

    for (k = 0; k < n; k++) {
        inst = find_inst(p, ids[k]);
        if (inst && inst->state && inst->started)
            inst->ops->flush(inst->state);
    }
    tb_pc_ack_flush(pc, req);
}

static void on_disconnected(struct tb_pc *pc, void *ctx)
{
    struct tb_probes *p = ctx;
    struct ds_inst *inst;

    (void)pc;
    /* The sessions are gone with the connection: stop recording, write nothing. */
    while ((inst = p->insts)) {
        p->insts = inst->next;
        free_inst(inst, true);
    }
    while (p->lingering)
        end_linger(p, p->lingering, false);
}

static void on_connected(struct tb_pc *pc, void *ctx)
{
    (void)pc;
    (void)ctx;
    tb_info("probes: connected to the service");
}

void tb_probes_thread_seen(struct tb_probes *p, pid_t tid, pid_t tgid, const char *comm)
{
    struct ds_inst *inst;

    for (inst = p->insts; inst; inst = inst->next) {
        if (inst->ops == &tb_proc_ds_ops && inst->state && inst->started)
            tb_proc_ds_thread_seen(inst->state, tid, tgid, comm);
    }
}

void tb_probes_threads_flush(struct tb_probes *p)
{
    struct ds_inst *inst;

    for (inst = p->insts; inst; inst = inst->next) {
        if (inst->ops == &tb_proc_ds_ops && inst->state && inst->started)
            tb_proc_ds_flush_seen(inst->state);
    }
}

int tb_probes_new(const struct tb_probes_opts *opts, struct tb_probes **out)
{
    Perfetto__Protos__DataSourceDescriptor d;
    struct tb_pc_opts o = {0};
    struct tb_probes *p;
    size_t k;
    int err;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = opts->loop;
    o.producer_name = TB_PROBES_PRODUCER_NAME;
    o.socket_name = opts->socket;
    o.loop = opts->loop;
    /*
     * Kernel data comes in bursts: a larger SMB absorbs them while commits
     * are in flight, and 32 KiB pages (the largest the ABI has) mean fewer
     * chunk switches per bundle.
     */
    o.smb_size_hint = 4u << 20;
    o.smb_page_size_hint = 32u << 10;
    o.cb.on_connected = on_connected;
    o.cb.on_disconnected = on_disconnected;
    o.cb.on_setup = on_setup;
    o.cb.on_start = on_start;
    o.cb.on_stop = on_stop;
    o.cb.on_flush = on_flush;
    o.ctx = p;
    err = tb_pc_create(&o, &p->pc);
    if (err) {
        tb_err("probes: creating the producer client: %s", strerror(-err));
        goto out;
    }
    for (k = 0; k < NR_OPS; k++) {
        perfetto__protos__data_source_descriptor__init(&d);
        d.name = (char *)all_ops[k]->name;
        d.has_will_notify_on_stop = true;
        d.will_notify_on_stop = true;
        err = tb_pc_register_data_source(p->pc, &d);
        if (err) {
            tb_err("probes: registering %s: %s", all_ops[k]->name, strerror(-err));
            goto out;
        }
    }
    *out = p;
    return 0;
out:
    tb_probes_free(p);
    return err;
}

void tb_probes_free(struct tb_probes *p)
{
    struct ds_inst *inst;

    if (!p)
        return;
    while ((inst = p->insts)) {
        uint64_t id = inst->id;

        p->insts = inst->next;
        free_inst(inst, true);
        if (p->pc)
            tb_pc_notify_stopped(p->pc, id);
    }
    while (p->lingering)
        end_linger(p, p->lingering, true);
    tb_pc_destroy(p->pc);
    free(p);
}
