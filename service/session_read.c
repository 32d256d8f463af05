/*
 * session_read.c - a read pass over a session (ReadBuffers, and the file
 * writer): the service's own packets first (sync marker, trace config and
 * system info once, queued clock snapshots), then every readable producer
 * packet of every buffer, validated and followed by the trusted trailer
 * (trusted_uid, trusted_packet_sequence_id, trusted_pid and
 * previous_packet_dropped, appended so last-field-wins applies), and, once
 * the session is over, the final TraceStats. When the config asks for
 * deflate, ReadBuffers gets them as compressed_packets batches of about
 * READ_BATCH_BYTES of input each.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "service/packet_validator.h"
#include "service/svc_batch.h"
#include "service/svc_packets.h"
#include "service/trace_buffer.h"

#define SYNC_PERIOD_MS 10000u
/* Input bytes per compressed_packets batch on the ReadBuffers path. */
#define READ_BATCH_BYTES (128u * 1024u)

struct read_pass {
    struct tb_svc_session *s;
    tb_svc_packet_fn fn;
    void *ctx;
    struct tb_svc_slice *sl; /* a packet's slices plus the trusted trailer */
    size_t cap;
};

static int emit_owned(struct read_pass *rp, uint8_t *pkt, size_t len)
{
    struct tb_svc_slice sl = {pkt, len};
    int err = rp->fn(rp->ctx, &sl, 1);

    free(pkt);
    return err;
}

static int emit_service_packets(struct read_pass *rp)
{
    struct tb_svc_session *s = rp->s;
    const Perfetto__Protos__TraceConfig__BuiltinDataSource *b = s->cfg->builtin_data_sources;
    uid_t uid = s->core->own_uid;
    uint8_t *pkt;
    size_t len;
    int err;

    /* Frequent file writes need not repeat the marker every pass. */
    if ((!s->last_sync_ms || tb_loop_now_ms() - s->last_sync_ms >= SYNC_PERIOD_MS) &&
        !tb_svc_pkt_sync_marker(uid, &pkt, &len)) {
        s->last_sync_ms = tb_loop_now_ms();
        err = emit_owned(rp, pkt, len);
        if (err)
            return err;
    }
    if (!s->config_emitted) {
        s->config_emitted = true;
        if (!(b && b->has_disable_trace_config && b->disable_trace_config) &&
            !tb_svc_pkt_trace_config(uid, s->cfg_bytes, s->cfg_len, &pkt, &len)) {
            err = emit_owned(rp, pkt, len);
            if (err)
                return err;
        }
    }
    if (!s->sysinfo_emitted) {
        s->sysinfo_emitted = true;
        if (!(b && b->has_disable_system_info && b->disable_system_info) &&
            !tb_svc_pkt_system_info(uid, &pkt, &len)) {
            err = emit_owned(rp, pkt, len);
            if (err)
                return err;
        }
    }
    while (s->q_head) {
        struct tb_svc_qpkt *q = s->q_head;
        struct tb_svc_slice sl = {q->data, q->len};

        err = rp->fn(rp->ctx, &sl, 1);
        s->q_head = q->next;
        if (!s->q_head)
            s->q_tail = &s->q_head;
        free(q);
        if (err)
            return err;
    }
    return 0;
}

static int emit_producer_packet(struct read_pass *rp, const struct tb_tbuf_packet *pkt)
{
    struct tb_svc_session *s = rp->s;
    struct tb_pval_trusted t = {.previous_packet_dropped = pkt->previous_packet_dropped};
    uint8_t trailer[TB_PVAL_TRAILER_MAX];
    struct tb_svc_seq *seq;
    int n;

    /* Buffers are keyed by sequence (session_seq.c): this finds the packet's own. */
    seq = tb_svc_session_seq_by_tbuf_key(s, pkt->producer_id, pkt->writer_id);
    if (tb_pval_check_slices(pkt->slices, pkt->num_slices)) {
        s->invalid_packets++;
        /* The next packet of the sequence tells the reader one went missing. */
        if (seq)
            seq->pending_drop |= pkt->previous_packet_dropped | TB_TBUF_DROP_PRESENT;
        return 0;
    }
    if (pkt->num_slices + 1 > rp->cap) {
        size_t ncap = pkt->num_slices + 16;
        struct tb_svc_slice *ns = realloc(rp->sl, ncap * sizeof(*ns));

        if (!ns)
            return -ENOMEM;
        rp->sl = ns;
        rp->cap = ncap;
    }
    for (size_t i = 0; i < pkt->num_slices; i++) {
        rp->sl[i].data = pkt->slices[i].data;
        rp->sl[i].len = pkt->slices[i].len;
    }
    if (seq) {
        t.uid = seq->uid;
        t.sequence_id = seq->seq_id;
        t.pid = seq->pid;
        t.has_pid = seq->pid > 0;
        t.previous_packet_dropped |= seq->pending_drop;
        seq->pending_drop = 0;
    }
    n = tb_pval_write_trusted(&t, trailer, sizeof(trailer));
    if (n < 0)
        return n;
    rp->sl[pkt->num_slices].data = trailer;
    rp->sl[pkt->num_slices].len = (size_t)n;
    return rp->fn(rp->ctx, rp->sl, pkt->num_slices + 1);
}

static int emit_final_stats(struct read_pass *rp)
{
    Perfetto__Protos__TraceStats st;
    struct tb_svc_session *s = rp->s;
    uint8_t *bytes, *pkt;
    size_t n, len;
    int err;

    s->final_stats_emitted = true;
    err = tb_svc_session_stats(s, &st);
    if (err)
        return err;
    n = protobuf_c_message_get_packed_size(&st.base);
    bytes = malloc(n ? n : 1);
    if (!bytes) {
        tb_svc_stats_clear(&st);
        return -ENOMEM;
    }
    protobuf_c_message_pack(&st.base, bytes);
    tb_svc_stats_clear(&st);
    err = tb_svc_pkt_trace_stats(s->core->own_uid, bytes, n, &pkt, &len);
    free(bytes);
    if (err)
        return err;
    return emit_owned(rp, pkt, len);
}

int tb_svc_session_read(struct tb_svc_session *s, tb_svc_packet_fn fn, void *ctx)
{
    struct read_pass rp = {.s = s, .fn = fn, .ctx = ctx};
    int err;

    err = emit_service_packets(&rp);
    for (size_t i = 0; !err && i < s->nbufs; i++) {
        struct tb_tbuf_packet pkt;

        while (!err && tb_tbuf_read_next(s->bufs[i].tbuf, &pkt) == 0)
            err = emit_producer_packet(&rp, &pkt);
    }
    if (!err && s->state == TB_SVC_DISABLED && !s->final_stats_emitted)
        err = emit_final_stats(&rp);
    free(rp.sl);
    return err;
}

int tb_svc_consumer_read(struct tb_svc_consumer *c, tb_svc_packet_fn fn, void *ctx)
{
    struct tb_svc_session *s = c->session;
    struct tb_svc_deflate d = {.limit = READ_BATCH_BYTES, .fn = fn, .ctx = ctx};
    int err, err2;

    if (!s)
        return -ENOENT;
    if (!s->compress)
        return tb_svc_session_read(s, fn, ctx);
    d.uid = s->core->own_uid;
    err = tb_svc_session_read(s, tb_svc_deflate_packet, &d);
    /* A pause (-EAGAIN) comes from @fn after a whole batch: nothing is held. */
    if (!err || err == -EAGAIN) {
        err2 = tb_svc_deflate_flush(&d);
        if (!err)
            err = err2;
    }
    tb_svc_batch_free(&d.batch);
    return err;
}
