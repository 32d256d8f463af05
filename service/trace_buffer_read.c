/*
 * trace_buffer_read.c - the draining reader of the central trace buffer:
 * walks the ring of sequences holding chunks, hands out whole packets in
 * chunk/record order per sequence, reassembles packets fragmented over
 * consecutive chunks, and turns every loss it meets into
 * previous_packet_dropped bits on the next packet of the sequence.
 *
 * A sequence waits (is skipped for now) when its next record needs a patch
 * or the next fragment's chunk. A forgotten writer's sequence never waits,
 * since nothing more will arrive for it: what it waits for is dropped.
 * A newer generation of a forgotten writer is read only after the older one
 * has drained, so packets of one (producer, writer) keep their order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "service/trace_buffer_internal.h"
#include "tracebpf/shm_abi.h"

static int add_slice(struct tb_tbuf *buf, size_t *n, const uint8_t *data, size_t len)
{
    if (!len)
        return 0;
    if (*n == buf->slice_cap) {
        size_t cap = buf->slice_cap ? buf->slice_cap * 2 : 16;
        struct tb_tbuf_slice *sl = realloc(buf->slices, cap * sizeof(*sl));

        if (!sl)
            return -ENOMEM;
        buf->slices = sl;
        buf->slice_cap = cap;
    }
    buf->slices[*n].data = data;
    buf->slices[(*n)++].len = len;
    return 0;
}

static void consume(struct tb_tbuf *buf, struct tbuf_chunk *c, const struct tbuf_rec *r)
{
    c->records_read++;
    c->read_off = r->end;
    if (r->sentinel)
        c->records_read = c->count; /* nothing follows a drop sentinel */
    if (c->records_read >= c->count)
        tb_tbuf__chunk_retire(buf, c);
}

static void fill_packet(struct tb_tbuf *buf, struct tbuf_seq *s, size_t nslices,
                        struct tb_tbuf_packet *pkt)
{
    pkt->slices = buf->slices;
    pkt->num_slices = nslices;
    pkt->len = 0;
    for (size_t i = 0; i < nslices; i++)
        pkt->len += buf->slices[i].len;
    pkt->previous_packet_dropped = s->drop_flags;
    pkt->producer_id = (uint16_t)(s->key >> 16);
    pkt->writer_id = (uint16_t)s->key;
    s->drop_flags = 0;
    buf->st.bytes_read += pkt->len;
}

/* Drops a packet whose fragments span the first @upto chunks of @s. */
static void drop_chain(struct tb_tbuf *buf, struct tbuf_seq *s, uint32_t upto, uint32_t why)
{
    tbuf_seq_mark(s, why);
    while (upto--) {
        struct tbuf_chunk *c = tbuf_seq_at(s, 0);

        c->records_read = c->count;
        tb_tbuf__chunk_retire(buf, c);
    }
}

/*
 * Reassembles the packet that starts with the last record (@first) of the
 * front chunk. Return: 0 packet ready, 1 packet dropped (go on), -EAGAIN the
 * sequence must wait (a chunk or a patch is missing), -ENOMEM.
 */
static int assemble(struct tb_tbuf *buf, struct tbuf_seq *s, const struct tbuf_rec *first,
                    struct tb_tbuf_packet *pkt)
{
    struct tbuf_chunk *c = tbuf_seq_at(s, 0), *d;
    uint32_t prev_id = c->chunk_id, idx;
    size_t nslices = 0;
    struct tbuf_rec r;

    if (add_slice(buf, &nslices, c->payload + first->data_off, first->len))
        return -ENOMEM;
    for (idx = 1;; idx++) {
        if (idx >= s->n) {
            /* Gone for good: the writer was forgotten or the chunk was read. */
            if (s->forgotten || tb_tbuf__was_read(s, prev_id + 1, &(uint16_t){0})) {
                drop_chain(buf, s, idx, TB_TBUF_DROP_REASSEMBLY_GAP);
                return 1;
            }
            buf->st.readaheads_failed++;
            return -EAGAIN;
        }
        d = tbuf_seq_at(s, idx);
        if (d->chunk_id != prev_id + 1) {
            drop_chain(buf, s, idx, TB_TBUF_DROP_REASSEMBLY_GAP);
            return 1;
        }
        if (d->incomplete && !d->count) {
            if (s->forgotten) {
                drop_chain(buf, s, idx, TB_TBUF_DROP_REASSEMBLY_GAP);
                return 1;
            }
            return -EAGAIN; /* scraped before the fragment ended */
        }
        if (!(d->flags & TB_SHM_FLAG_FIRST_CONTINUES) || !d->count || d->records_read) {
            drop_chain(buf, s, idx, TB_TBUF_DROP_BROKEN_CHAIN);
            return 1;
        }
        if (tb_tbuf__parse_rec(d->payload, d->len, d->read_off, &r)) {
            buf->st.abi_violations++;
            drop_chain(buf, s, idx + 1, TB_TBUF_DROP_CHUNK_CORRUPTED);
            return 1;
        }
        if (d->count == 1 && (d->flags & TB_SHM_FLAG_NEEDS_PATCHING)) {
            if (!s->forgotten)
                return -EAGAIN;
            d->drop_last = true; /* the patches will never come */
        }
        if (r.sentinel || (d->count == 1 && d->drop_last)) {
            if (r.sentinel)
                buf->st.trace_writer_packet_loss++;
            drop_chain(buf, s, idx,
                       r.sentinel ? TB_TBUF_DROP_WRITER_ABORT : TB_TBUF_DROP_CHUNK_CORRUPTED);
            consume(buf, tbuf_seq_at(s, 0), &r);
            return 1;
        }
        if (add_slice(buf, &nslices, d->payload + r.data_off, r.len))
            return -ENOMEM;
        if (!(d->count == 1 && (d->flags & TB_SHM_FLAG_LAST_CONTINUES)))
            break;
        prev_id = d->chunk_id;
    }
    /* Complete: the chunks before @d are used up; @d loses its first record. */
    for (uint32_t i = 0; i < idx; i++) {
        c = tbuf_seq_at(s, 0);
        c->records_read = c->count;
        tb_tbuf__chunk_retire(buf, c);
    }
    d->started = true;
    consume(buf, d, &r);
    buf->st.readaheads_succeeded++;
    if (!nslices)
        return 1; /* an empty packet: nothing to hand out */
    fill_packet(buf, s, nslices, pkt);
    return 0;
}

/* Return: 0 packet ready, -EAGAIN nothing readable in @s now, -ENOMEM. */
static int seq_read(struct tb_tbuf *buf, struct tbuf_seq *s, struct tb_tbuf_packet *pkt)
{
    while (s->n) {
        struct tbuf_chunk *c = tbuf_seq_at(s, 0);
        struct tbuf_rec r;
        size_t n = 0;
        bool last;
        int err;

        if (!c->started) {
            c->started = true;
            if (s->has_read && (c->chunk_id != s->max_read + 1 || s->max_read_incomplete))
                tbuf_seq_mark(s, TB_TBUF_DROP_READ_GAP);
        }
        if (c->records_read >= c->count) {
            tb_tbuf__chunk_retire(buf, c);
            continue;
        }
        if (tb_tbuf__parse_rec(c->payload, c->len, c->read_off, &r)) {
            /* Framing was checked on copy; only a patch can break it here. */
            buf->st.abi_violations++;
            tbuf_seq_mark(s, TB_TBUF_DROP_CHUNK_CORRUPTED);
            c->records_read = c->count;
            tb_tbuf__chunk_retire(buf, c);
            continue;
        }
        last = c->records_read + 1 == c->count;
        if (last && (c->flags & TB_SHM_FLAG_NEEDS_PATCHING)) {
            if (!s->forgotten)
                return -EAGAIN;
            c->drop_last = true; /* the patches will never come */
        }
        if (r.sentinel) {
            buf->st.trace_writer_packet_loss++;
            tbuf_seq_mark(s, TB_TBUF_DROP_WRITER_ABORT);
            consume(buf, c, &r);
            continue;
        }
        if (last && c->drop_last) {
            tbuf_seq_mark(s, TB_TBUF_DROP_CHUNK_CORRUPTED);
            consume(buf, c, &r);
            continue;
        }
        if (c->records_read == 0 && (c->flags & TB_SHM_FLAG_FIRST_CONTINUES)) {
            tbuf_seq_mark(s, TB_TBUF_DROP_ORPHAN_CONTINUATION);
            consume(buf, c, &r);
            continue;
        }
        if (last && (c->flags & TB_SHM_FLAG_LAST_CONTINUES)) {
            err = assemble(buf, s, &r, pkt);
            if (err == 1)
                continue;
            return err;
        }
        if (!r.len) {
            consume(buf, c, &r);
            continue;
        }
        if (add_slice(buf, &n, c->payload + r.data_off, r.len))
            return -ENOMEM;
        consume(buf, c, &r);
        fill_packet(buf, s, n, pkt);
        return 0;
    }
    return -EAGAIN;
}

int tb_tbuf_read_next(struct tb_tbuf *buf, struct tb_tbuf_packet *pkt)
{
    size_t todo;

    tb_tbuf__graveyard_flush(buf);
    todo = buf->active_count;
    while (todo-- && buf->cursor) {
        struct tbuf_seq *s = buf->cursor, *r;
        int err;

        for (;;) {
            /* Oldest generation still holding chunks goes first. */
            for (r = s; r->prev_gen && r->prev_gen->n; r = r->prev_gen)
                ;
            err = seq_read(buf, r, pkt);
            if (!err)
                return 0;
            if (err != -EAGAIN)
                return err;
            /* A forgotten generation never waits: -EAGAIN means it drained. */
            if (r == s || r->n)
                break;
        }
        if (buf->cursor == s)
            buf->cursor = s->act_next;
    }
    return -ENODATA;
}

long tb_tbuf_packet_copy(const struct tb_tbuf_packet *pkt, uint8_t *dst, size_t cap)
{
    size_t off = 0;

    if (cap < pkt->len)
        return -ENOBUFS;
    for (size_t i = 0; i < pkt->num_slices; i++) {
        memcpy(dst + off, pkt->slices[i].data, pkt->slices[i].len);
        off += pkt->slices[i].len;
    }
    return (long)off;
}
