/*
 * session.c - a tracing session's lifecycle: validate and copy the
 * TraceConfig, create its central buffers, start it, stop it (stop data
 * sources, wait for acks with a bound, final scrape, answer the consumer),
 * free it. Also the session's queue of service packets. Data-source
 * instances are in session_ds.c, packet sequences in session_seq.c.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "service/svc_packets.h"
#include "service/trace_buffer.h"

#define DEFAULT_STOP_TIMEOUT_MS 5000u
#define SNAPSHOT_PERIOD_MS      10000u
#define MIN_FILE_PERIOD_MS      100u
#define DEFAULT_FILE_PERIOD_MS  5000u

static void cancel_timer(struct tb_svc_session *s, uint64_t *id)
{
    if (*id)
        tb_loop_cancel_timer(s->core->loop, *id);
    *id = 0;
}

int tb_svc_session_queue(struct tb_svc_session *s, uint8_t *data, size_t len)
{
    struct tb_svc_qpkt *q = malloc(sizeof(*q) + len);

    if (!q) {
        free(data);
        return -ENOMEM;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    free(data);
    *s->q_tail = q;
    s->q_tail = &q->next;
    return 0;
}

void tb_svc_session_queue_clear(struct tb_svc_session *s)
{
    while (s->q_head) {
        struct tb_svc_qpkt *q = s->q_head;

        s->q_head = q->next;
        free(q);
    }
    s->q_tail = &s->q_head;
}

static void queue_clock_snapshot(struct tb_svc_session *s)
{
    uint8_t *pkt;
    size_t len;
    const Perfetto__Protos__TraceConfig__BuiltinDataSource *b = s->cfg->builtin_data_sources;

    if (b && b->has_disable_clock_snapshotting && b->disable_clock_snapshotting)
        return;
    if (!tb_svc_pkt_clock_snapshot(s->core->own_uid, &pkt, &len))
        tb_svc_session_queue(s, pkt, len);
}

bool tb_svc_session_has_buffer(const struct tb_svc_session *s, uint16_t buffer_id)
{
    for (size_t i = 0; i < s->nbufs; i++)
        if (s->bufs[i].id == buffer_id)
            return true;
    return false;
}

static int check_config(struct tb_svc_core *core, const Perfetto__Protos__TraceConfig *cfg,
                        char *errbuf, size_t errlen)
{
    size_t total_kb = 0;

    if (!cfg->n_buffers) {
        snprintf(errbuf, errlen, "the config has no buffers");
        return -EINVAL;
    }
    if (cfg->n_buffers > 64) {
        snprintf(errbuf, errlen, "too many buffers (%zu, max 64)", cfg->n_buffers);
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->n_buffers; i++) {
        if (!cfg->buffers[i]->has_size_kb || !cfg->buffers[i]->size_kb) {
            snprintf(errbuf, errlen, "buffer %zu has size_kb 0", i);
            return -EINVAL;
        }
        total_kb += cfg->buffers[i]->size_kb;
    }
    if (total_kb + core->buffer_kb_total > core->limits.max_buffer_kb_total) {
        snprintf(errbuf, errlen, "buffers of %zu KiB exceed the service limit of %zu KiB", total_kb,
                 core->limits.max_buffer_kb_total - core->buffer_kb_total);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_data_sources; i++) {
        const Perfetto__Protos__DataSourceConfig *dc = cfg->data_sources[i]->config;

        if (!dc || !dc->name || !dc->name[0]) {
            snprintf(errbuf, errlen, "data source %zu has no name", i);
            return -EINVAL;
        }
        if (dc->has_target_buffer && dc->target_buffer >= cfg->n_buffers) {
            snprintf(errbuf, errlen, "data source \"%s\" targets buffer %u of %zu", dc->name,
                     dc->target_buffer, cfg->n_buffers);
            return -EINVAL;
        }
    }
    if (core->num_sessions >= core->limits.max_sessions) {
        snprintf(errbuf, errlen, "too many tracing sessions (%u)", core->num_sessions);
        return -EBUSY;
    }
    return 0;
}

/* Either spelling asks for deflate: both ReadBuffers and the file obey it. */
static bool wants_deflate(const Perfetto__Protos__TraceConfig *cfg)
{
    /* compression_type is deprecated upstream but still what configs use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return (cfg->has_compression_type &&
            cfg->compression_type ==
                PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE) ||
           (cfg->compression && cfg->compression->deflate);
#pragma GCC diagnostic pop
}

static int copy_config(struct tb_svc_session *s, const Perfetto__Protos__TraceConfig *cfg)
{
    s->cfg_len = protobuf_c_message_get_packed_size(&cfg->base);
    s->cfg_bytes = malloc(s->cfg_len ? s->cfg_len : 1);
    if (!s->cfg_bytes)
        return -ENOMEM;
    protobuf_c_message_pack(&cfg->base, s->cfg_bytes);
    s->cfg = perfetto__protos__trace_config__unpack(NULL, s->cfg_len, s->cfg_bytes);
    if (!s->cfg)
        return -ENOMEM;
    s->compress = wants_deflate(s->cfg);
    return 0;
}

int tb_svc_session_new(struct tb_svc_consumer *c, const Perfetto__Protos__TraceConfig *cfg, int fd,
                       char *errbuf, size_t errlen, struct tb_svc_session **out)
{
    struct tb_svc_core *core = c->core;
    struct tb_svc_session *s = NULL;
    int err;

    err = check_config(core, cfg, errbuf, errlen);
    if (err)
        goto fail;
    s = calloc(1, sizeof(*s));
    if (!s) {
        err = -ENOMEM;
        goto fail;
    }
    s->core = core;
    s->consumer = c;
    s->id = core->next_session_id++;
    s->out_fd = fd;
    fd = -1;
    s->q_tail = &s->q_head;
    tb_svc_list_init(&s->instances);
    tb_svc_list_add_tail(&core->sessions, &s->node);
    core->num_sessions++;
    core->counters.sessions_seen++;
    err = copy_config(s, cfg);
    if (err)
        goto fail;
    s->bufs = calloc(cfg->n_buffers, sizeof(*s->bufs));
    if (!s->bufs) {
        err = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_buffers; i++) {
        const Perfetto__Protos__TraceConfig__BufferConfig *bc = cfg->buffers[i];
        enum tb_tbuf_policy pol =
            bc->has_fill_policy ? (enum tb_tbuf_policy)bc->fill_policy : TB_TBUF_POLICY_RING_BUFFER;

        s->bufs[i].id = tb_svc_core_alloc_buffer_id(core);
        if (!s->bufs[i].id) {
            err = -ENOSPC;
            goto fail;
        }
        err = tb_tbuf_new((size_t)bc->size_kb * 1024, pol, &s->bufs[i].tbuf);
        if (err) {
            s->bufs[i].id = 0;
            goto fail;
        }
        s->nbufs++;
        core->buffer_kb_total += bc->size_kb;
    }
    if (s->cfg->write_into_file || (s->cfg->output_path && s->cfg->output_path[0])) {
        err = tb_svc_session_file_start(s);
        if (err) {
            snprintf(errbuf, errlen, "cannot open the output file: %s", strerror(-err));
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (err && errbuf[0] == '\0')
        snprintf(errbuf, errlen, "cannot create the session: %s", strerror(-err));
    tb_svc_session_free(s);
    return err;
}

static void on_snapshot(void *ctx)
{
    queue_clock_snapshot(ctx);
}

static void on_duration(void *ctx)
{
    struct tb_svc_session *s = ctx;

    s->t_duration = 0;
    tb_info("svc: session %llu reached its duration", (unsigned long long)s->id);
    tb_svc_session_disable(s, true);
}

static void on_flush_period(void *ctx)
{
    struct tb_svc_session *s = ctx;

    tb_svc_session_flush(s, s->cfg->has_flush_timeout_ms ? s->cfg->flush_timeout_ms : 0, false, 0);
}

int tb_svc_session_start(struct tb_svc_session *s)
{
    struct tb_loop *loop = s->core->loop;
    const Perfetto__Protos__TraceConfig *cfg = s->cfg;
    uint32_t snap = SNAPSHOT_PERIOD_MS;

    if (s->state != TB_SVC_CONFIGURED)
        return -EBUSY;
    s->state = TB_SVC_STARTED;
    queue_clock_snapshot(s);
    if (cfg->builtin_data_sources && cfg->builtin_data_sources->has_snapshot_interval_ms &&
        cfg->builtin_data_sources->snapshot_interval_ms)
        snap = cfg->builtin_data_sources->snapshot_interval_ms;
    if (snap < 100)
        snap = 100;
    tb_loop_add_timer(loop, snap, snap, on_snapshot, s, &s->t_snapshot);
    if (cfg->has_duration_ms && cfg->duration_ms)
        tb_loop_add_timer(loop, cfg->duration_ms, 0, on_duration, s, &s->t_duration);
    if (cfg->has_flush_period_ms && cfg->flush_period_ms)
        tb_loop_add_timer(loop, cfg->flush_period_ms,
                          cfg->flush_period_ms < 100 ? 100 : cfg->flush_period_ms, on_flush_period,
                          s, &s->t_flush_period);
    tb_svc_session_start_instances(s);
    tb_info("svc: session %llu started (%zu buffers, %zu data sources matched)",
            (unsigned long long)s->id, s->nbufs, tb_svc_session_num_instances(s));
    return 0;
}

static void finalize(struct tb_svc_session *s)
{
    struct tb_svc_consumer *c = s->consumer;
    struct tb_svc_list *pos;

    cancel_timer(s, &s->t_stop_timeout);
    cancel_timer(s, &s->t_snapshot);
    cancel_timer(s, &s->t_flush_period);
    cancel_timer(s, &s->t_clear_incr);
    cancel_timer(s, &s->t_duration);
    /* Last chance for data still sitting in the producers' SMBs. */
    for (pos = s->core->producers.next; pos != &s->core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);

        if (p->scraping)
            tb_svc_producer_scrape(p, s);
    }
    queue_clock_snapshot(s);
    s->state = TB_SVC_DISABLED;
    tb_info("svc: session %llu disabled", (unsigned long long)s->id);
    tb_svc_session_file_close(s);
    if (c && c->ops && c->ops->tracing_disabled)
        c->ops->tracing_disabled(c->ctx, s->error);
}

static void on_stop_timeout(void *ctx)
{
    struct tb_svc_session *s = ctx;

    s->t_stop_timeout = 0;
    tb_warn("svc: session %llu: %u data sources did not ack the stop in time",
            (unsigned long long)s->id, s->stop_acks_pending);
    s->stop_acks_pending = 0;
    finalize(s);
}

void tb_svc_session_instance_stopped(struct tb_svc_session *s, struct tb_svc_instance *inst)
{
    bool waited = inst->state == TB_SVC_INST_STOPPING;

    inst->state = TB_SVC_INST_STOPPED;
    if (s->state != TB_SVC_DISABLING || !waited || !s->stop_acks_pending)
        return;
    if (--s->stop_acks_pending == 0)
        finalize(s);
}

void tb_svc_session_disable(struct tb_svc_session *s, bool flush_first)
{
    const Perfetto__Protos__TraceConfig *cfg = s->cfg;
    uint32_t timeout;

    if (s->state == TB_SVC_DISABLED || (s->state == TB_SVC_DISABLING && !s->stop_after_flush))
        return;
    if (flush_first && s->state == TB_SVC_STARTED && !s->stop_after_flush) {
        s->stop_after_flush = true;
        s->state = TB_SVC_DISABLING;
        if (!tb_svc_session_flush(s, cfg->has_flush_timeout_ms ? cfg->flush_timeout_ms : 0, false,
                                  0))
            return; /* tb_svc_flush completion calls us back */
    }
    s->stop_after_flush = false;
    s->state = TB_SVC_DISABLING;
    cancel_timer(s, &s->t_duration);
    cancel_timer(s, &s->t_flush_period);
    cancel_timer(s, &s->t_clear_incr);
    s->stop_acks_pending = tb_svc_session_stop_instances(s);
    if (!s->stop_acks_pending) {
        finalize(s);
        return;
    }
    timeout = cfg->has_data_source_stop_timeout_ms && cfg->data_source_stop_timeout_ms
                  ? cfg->data_source_stop_timeout_ms
                  : DEFAULT_STOP_TIMEOUT_MS;
    tb_loop_add_timer(s->core->loop, timeout, 0, on_stop_timeout, s, &s->t_stop_timeout);
}

void tb_svc_session_free(struct tb_svc_session *s)
{
    struct tb_svc_core *core;

    if (!s)
        return;
    core = s->core;
    cancel_timer(s, &s->t_duration);
    cancel_timer(s, &s->t_snapshot);
    cancel_timer(s, &s->t_flush_period);
    cancel_timer(s, &s->t_clear_incr);
    cancel_timer(s, &s->t_stop_timeout);
    cancel_timer(s, &s->t_file);
    tb_svc_flush_session_gone(s);
    tb_svc_session_drop_instances(s);
    for (size_t i = 0; i < s->nbufs; i++) {
        tb_tbuf_free(s->bufs[i].tbuf);
        if (s->cfg && i < s->cfg->n_buffers)
            core->buffer_kb_total -= s->cfg->buffers[i]->size_kb;
    }
    free(s->bufs);
    tb_svc_session_seq_free(s);
    tb_svc_session_queue_clear(s);
    if (s->out_fd >= 0)
        close(s->out_fd);
    if (s->cfg)
        perfetto__protos__trace_config__free_unpacked(s->cfg, NULL);
    free(s->cfg_bytes);
    free(s->error);
    if (s->consumer && s->consumer->session == s)
        s->consumer->session = NULL;
    tb_svc_list_del(&s->node);
    core->num_sessions--;
    free(s);
}
