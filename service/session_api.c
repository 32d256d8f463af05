/*
 * session_api.c - the consumer-facing entry points of the core
 * (EnableTracing, StartTracing, DisableTracing, Flush, FreeBuffers,
 * GetTraceStats) and the TraceStats a session reports.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "service/trace_buffer.h"

int tb_svc_consumer_enable(struct tb_svc_consumer *c, const Perfetto__Protos__TraceConfig *cfg,
                           int fd, char *errbuf, size_t errlen)
{
    struct tb_svc_session *s;
    int err;

    if (errlen)
        errbuf[0] = '\0';
    /* A finished session the consumer never freed makes way for the next. */
    if (c->session && c->session->state == TB_SVC_DISABLED)
        tb_svc_consumer_free_buffers(c);
    if (c->session) {
        if (fd >= 0)
            close(fd);
        snprintf(errbuf, errlen, "this consumer already has a tracing session");
        return -EBUSY;
    }
    err = tb_svc_session_new(c, cfg, fd, errbuf, errlen, &s);
    if (err)
        return err;
    c->session = s;
    if (cfg->has_deferred_start && cfg->deferred_start) {
        tb_svc_session_setup_instances(s);
        return 0;
    }
    return tb_svc_session_start(s);
}

int tb_svc_consumer_start(struct tb_svc_consumer *c)
{
    if (!c->session)
        return -ENOENT;
    return tb_svc_session_start(c->session);
}

int tb_svc_consumer_disable(struct tb_svc_consumer *c)
{
    if (!c->session)
        return -ENOENT;
    tb_svc_session_disable(c->session, false);
    return 0;
}

int tb_svc_consumer_flush(struct tb_svc_consumer *c, uint32_t timeout_ms, uint64_t token)
{
    if (!c->session)
        return -ENOENT;
    return tb_svc_session_flush(c->session, timeout_ms, true, token);
}

void tb_svc_consumer_free_buffers(struct tb_svc_consumer *c)
{
    struct tb_svc_session *s = c->session;

    if (!s)
        return;
    /* A consumer freeing a live session gets its EnableTracing answered. */
    if (s->state != TB_SVC_DISABLED && c->ops && c->ops->tracing_disabled) {
        c->session = NULL;
        c->ops->tracing_disabled(c->ctx, NULL);
    }
    tb_svc_session_free(s);
    c->session = NULL;
}

int tb_svc_consumer_stats(struct tb_svc_consumer *c, Perfetto__Protos__TraceStats *out)
{
    if (!c->session) {
        /* Service-wide numbers are still useful without a session. */
        struct tb_svc_core *core = c->core;

        perfetto__protos__trace_stats__init(out);
        out->has_producers_connected = true;
        out->producers_connected = core->num_producers;
        out->has_producers_seen = true;
        out->producers_seen = core->counters.producers_seen;
        out->has_data_sources_registered = true;
        out->data_sources_registered = core->num_data_sources;
        out->has_data_sources_seen = true;
        out->data_sources_seen = core->counters.data_sources_seen;
        out->has_tracing_sessions = true;
        out->tracing_sessions = core->num_sessions;
        return 0;
    }
    return tb_svc_session_stats(c->session, out);
}

#define SET(msg, field, val)       \
    do {                           \
        (msg)->has_##field = true; \
        (msg)->field = (val);      \
    } while (0)

int tb_svc_session_stats(struct tb_svc_session *s, Perfetto__Protos__TraceStats *out)
{
    struct tb_svc_core *core = s->core;
    size_t total_buffers = 0;
    struct tb_svc_list *pos;

    perfetto__protos__trace_stats__init(out);
    out->buffer_stats = calloc(s->nbufs ? s->nbufs : 1, sizeof(*out->buffer_stats));
    if (!out->buffer_stats)
        return -ENOMEM;
    for (size_t i = 0; i < s->nbufs; i++) {
        Perfetto__Protos__TraceStats__BufferStats *b = calloc(1, sizeof(*b));
        struct tb_tbuf_stats st;

        if (!b) {
            tb_svc_stats_clear(out);
            return -ENOMEM;
        }
        perfetto__protos__trace_stats__buffer_stats__init(b);
        tb_tbuf_get_stats(s->bufs[i].tbuf, &st);
        SET(b, buffer_size, st.buffer_size);
        SET(b, bytes_written, st.bytes_written);
        SET(b, bytes_overwritten, st.bytes_overwritten);
        SET(b, bytes_read, st.bytes_read);
        SET(b, chunks_written, st.chunks_written);
        SET(b, chunks_rewritten, st.chunks_rewritten);
        SET(b, chunks_overwritten, st.chunks_overwritten);
        SET(b, chunks_discarded, st.chunks_discarded);
        SET(b, chunks_read, st.chunks_read);
        SET(b, patches_succeeded, st.patches_succeeded);
        SET(b, patches_failed, st.patches_failed);
        SET(b, abi_violations, st.abi_violations);
        SET(b, trace_writer_packet_loss, st.trace_writer_packet_loss);
        SET(b, readaheads_succeeded, st.readaheads_succeeded);
        SET(b, readaheads_failed, st.readaheads_failed);
        out->buffer_stats[out->n_buffer_stats++] = b;
    }
    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next)
        total_buffers += tb_svc_container_of(pos, struct tb_svc_session, node)->nbufs;
    SET(out, producers_connected, core->num_producers);
    SET(out, producers_seen, core->counters.producers_seen);
    SET(out, data_sources_registered, core->num_data_sources);
    SET(out, data_sources_seen, core->counters.data_sources_seen);
    SET(out, tracing_sessions, core->num_sessions);
    SET(out, total_buffers, (uint32_t)total_buffers);
    SET(out, chunks_discarded, s->chunks_discarded);
    SET(out, patches_discarded, s->patches_discarded);
    SET(out, invalid_packets, s->invalid_packets);
    SET(out, flushes_requested, s->flushes_requested);
    SET(out, flushes_succeeded, s->flushes_succeeded);
    SET(out, flushes_failed, s->flushes_failed);
    return 0;
}

void tb_svc_stats_clear(Perfetto__Protos__TraceStats *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_buffer_stats; i++)
        free(st->buffer_stats[i]);
    free(st->buffer_stats);
    perfetto__protos__trace_stats__init(st);
}
