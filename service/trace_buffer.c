/*
 * trace_buffer.c - the central trace buffer's memory and bookkeeping:
 * construction, the budget, chunk blocks and their lifetime, the sequence
 * table, the ring of sequences the reader walks, and forgetting writers.
 *
 * Each stored chunk is one allocation (metadata + payload) charged
 * TB_TBUF_CHUNK_OVERHEAD + payload bytes against the budget. Chunks sit in
 * two structures: a FIFO in copy order (what the ring evicts first) and, per
 * sequence (producer, writer), a sorted deque (trace_buffer_index.c).
 * Sequences are found through an open-addressing hash table and those
 * holding chunks are linked in a ring the reader walks.
 *
 * Chunks retired by a read go to a graveyard that is freed on the next call,
 * so the slices of the packet just returned stay valid until then. Freed
 * blocks are kept for reuse while stored + spare bytes stay within the
 * budget: in steady state the buffer allocates nothing and the heap never
 * shrinks and regrows under it.
 *
 * A forgotten writer's sequence leaves the table at once, so the next chunk
 * with its key starts a fresh sequence; if it still holds chunks it stays
 * readable (before the fresh one, through prev_gen) and is freed once
 * drained.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "service/trace_buffer_internal.h"
#include "tracebpf/shm_abi.h"

/* Reader ring ---------------------------------------------------------------- */

void tb_tbuf__active_add(struct tb_tbuf *buf, struct tbuf_seq *s)
{
    if (s->active)
        return;
    s->active = true;
    if (!buf->cursor) {
        s->act_prev = s->act_next = s;
        buf->cursor = s;
    } else {
        s->act_next = buf->cursor;
        s->act_prev = buf->cursor->act_prev;
        s->act_prev->act_next = s;
        buf->cursor->act_prev = s;
    }
    buf->active_count++;
}

static void active_del(struct tb_tbuf *buf, struct tbuf_seq *s)
{
    if (!s->active)
        return;
    s->active = false;
    if (s->act_next == s) {
        buf->cursor = NULL;
    } else {
        s->act_prev->act_next = s->act_next;
        s->act_next->act_prev = s->act_prev;
        if (buf->cursor == s)
            buf->cursor = s->act_next;
    }
    s->act_prev = s->act_next = NULL;
    buf->active_count--;
}

/* Sequence table ------------------------------------------------------------- */

/* Mixes producer (high half) and writer (low half) bits into the low bits. */
static inline size_t seq_hash(uint32_t key, size_t cap)
{
    key ^= key >> 16;
    key *= 0x45d9f3bu;
    key ^= key >> 16;
    return (size_t)(key & (cap - 1));
}

static size_t seq_slot(const struct tb_tbuf *buf, uint32_t key)
{
    size_t i = seq_hash(key, buf->seq_cap);

    while (buf->seqs[i] && buf->seqs[i]->key != key)
        i = (i + 1) & (buf->seq_cap - 1);
    return i;
}

struct tbuf_seq *tb_tbuf__seq_lookup(const struct tb_tbuf *buf, uint32_t key)
{
    return buf->seqs[seq_slot(buf, key)];
}

static int seq_table_grow(struct tb_tbuf *buf)
{
    size_t cap = buf->seq_cap * 2;
    struct tbuf_seq **t = calloc(cap, sizeof(*t));

    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < buf->seq_cap; i++) {
        struct tbuf_seq *s = buf->seqs[i];
        size_t j;

        if (!s)
            continue;
        for (j = seq_hash(s->key, cap); t[j]; j = (j + 1) & (cap - 1))
            ;
        t[j] = s;
    }
    free(buf->seqs);
    buf->seqs = t;
    buf->seq_cap = cap;
    return 0;
}

/* Linear-probing delete: shift later entries of the probe run into the hole. */
static void seq_table_del(struct tb_tbuf *buf, size_t hole)
{
    size_t mask = buf->seq_cap - 1, j = hole;

    buf->seqs[hole] = NULL;
    buf->seq_count--;
    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (!buf->seqs[j])
            return;
        home = seq_hash(buf->seqs[j]->key, buf->seq_cap);
        /* Stays if its home lies cyclically in (hole, j]. */
        if (hole <= j ? (home > hole && home <= j) : (home > hole || home <= j))
            continue;
        buf->seqs[hole] = buf->seqs[j];
        buf->seqs[j] = NULL;
        hole = j;
    }
}

struct tbuf_seq *tb_tbuf__seq_get(struct tb_tbuf *buf, uint32_t key)
{
    struct tbuf_seq *s = tb_tbuf__seq_lookup(buf, key), *old;

    if (s)
        return s;
    if ((buf->seq_count + 1) * 2 > buf->seq_cap && seq_table_grow(buf))
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->key = key;
    buf->seqs[seq_slot(buf, key)] = s;
    buf->seq_count++;
    /* The forgotten list is newest first: link to the latest generation. */
    for (old = buf->forgotten; old; old = old->fg_next) {
        if (old->key == key && !old->next_gen) {
            s->prev_gen = old;
            old->next_gen = s;
            break;
        }
    }
    return s;
}

static void gen_unlink(struct tbuf_seq *s)
{
    if (s->next_gen)
        s->next_gen->prev_gen = s->prev_gen;
    if (s->prev_gen)
        s->prev_gen->next_gen = s->next_gen;
    s->prev_gen = s->next_gen = NULL;
}

static void seq_free(struct tbuf_seq *s)
{
    if (!s)
        return;
    free(s->dq);
    free(s);
}

/* A drained forgotten sequence: off every list, freed by the next call. */
static void forgotten_drained(struct tb_tbuf *buf, struct tbuf_seq *s)
{
    if (s->fg_prev)
        s->fg_prev->fg_next = s->fg_next;
    else
        buf->forgotten = s->fg_next;
    if (s->fg_next)
        s->fg_next->fg_prev = s->fg_prev;
    gen_unlink(s);
    s->fg_prev = NULL;
    s->fg_next = buf->dead_seqs;
    buf->dead_seqs = s;
}

static void forget_slot(struct tb_tbuf *buf, size_t slot)
{
    struct tbuf_seq *s = buf->seqs[slot];

    seq_table_del(buf, slot);
    if (!s->n) {
        /* Nothing left to read: the old writer's history just goes. */
        gen_unlink(s);
        seq_free(s);
        return;
    }
    s->forgotten = true;
    s->fg_prev = NULL;
    s->fg_next = buf->forgotten;
    if (buf->forgotten)
        buf->forgotten->fg_prev = s;
    buf->forgotten = s;
}

void tb_tbuf_forget_writer(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id)
{
    uint32_t key = (uint32_t)producer_id << 16 | writer_id;
    size_t slot = seq_slot(buf, key);

    if (buf->seqs[slot])
        forget_slot(buf, slot);
}

void tb_tbuf_forget_producer(struct tb_tbuf *buf, uint16_t producer_id)
{
    size_t i = 0;

    while (i < buf->seq_cap) {
        struct tbuf_seq *s = buf->seqs[i];

        /* A delete may shift another entry into slot i: look at it again. */
        if (s && s->key >> 16 == producer_id)
            forget_slot(buf, i);
        else
            i++;
    }
}

/* Chunk lifetime ------------------------------------------------------------- */

size_t tb_tbuf_chunk_footprint(size_t payload_len)
{
    return TB_TBUF_CHUNK_OVERHEAD + payload_len;
}

void tb_tbuf__fifo_unlink(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    if (c->fifo_prev)
        c->fifo_prev->fifo_next = c->fifo_next;
    else
        buf->fifo_head = c->fifo_next;
    if (c->fifo_next)
        c->fifo_next->fifo_prev = c->fifo_prev;
    else
        buf->fifo_tail = c->fifo_prev;
    c->fifo_prev = c->fifo_next = NULL;
}

void tb_tbuf__fifo_push(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    c->fifo_next = NULL;
    c->fifo_prev = buf->fifo_tail;
    if (buf->fifo_tail)
        buf->fifo_tail->fifo_next = c;
    else
        buf->fifo_head = c;
    buf->fifo_tail = c;
}

/*
 * Reuses a spare block of exactly @len payload bytes (chunks come in a few
 * page-derived sizes, so a short look finds one), so the budget charged for a
 * chunk is always what it occupies.
 */
struct tbuf_chunk *tb_tbuf__chunk_alloc(struct tb_tbuf *buf, size_t len)
{
    struct tbuf_chunk **pp = &buf->spare, *c;

    for (int i = 0; *pp && i < 4; i++, pp = &(*pp)->fifo_next) {
        if ((*pp)->cap == len) {
            c = *pp;
            *pp = c->fifo_next;
            buf->spare_bytes -= tb_tbuf_chunk_footprint(len);
            return c;
        }
    }
    c = malloc(sizeof(*c) + len);
    if (c)
        c->cap = (uint32_t)len;
    return c;
}

void tb_tbuf__chunk_free(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    size_t fp = tb_tbuf_chunk_footprint(c->cap);

    if (buf->used + buf->spare_bytes + fp > buf->size) {
        free(c);
        return;
    }
    c->fifo_next = buf->spare;
    buf->spare = c;
    buf->spare_bytes += fp;
}

void tb_tbuf__chunk_release(struct tb_tbuf *buf, struct tbuf_chunk *c, bool bury)
{
    struct tbuf_seq *s = c->seq;

    tb_tbuf__fifo_unlink(buf, c);
    tb_tbuf__seq_remove(s, c);
    if (!s->n) {
        active_del(buf, s);
        if (s->forgotten)
            forgotten_drained(buf, s);
    }
    buf->used -= tb_tbuf_chunk_footprint(c->len);
    if (bury) {
        c->fifo_next = buf->graveyard;
        buf->graveyard = c;
    } else {
        tb_tbuf__chunk_free(buf, c);
    }
}

void tb_tbuf__graveyard_flush(struct tb_tbuf *buf)
{
    while (buf->graveyard) {
        struct tbuf_chunk *c = buf->graveyard;

        buf->graveyard = c->fifo_next;
        tb_tbuf__chunk_free(buf, c);
    }
    while (buf->dead_seqs) {
        struct tbuf_seq *s = buf->dead_seqs;

        buf->dead_seqs = s->fg_next;
        seq_free(s);
    }
}

void tb_tbuf__chunk_retire(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    tb_tbuf__note_read(c->seq, c->chunk_id, c->records_read, c->incomplete);
    buf->st.chunks_read++;
    tb_tbuf__chunk_release(buf, c, true);
}

void tb_tbuf__chunk_evict(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    buf->st.chunks_overwritten++;
    buf->st.bytes_overwritten += TB_SHM_CHUNK_HEADER_SIZE + c->len;
    tbuf_seq_mark(c->seq, TB_TBUF_DROP_OVERWRITE);
    /* Records already read must not come back if the chunk is copied again. */
    if (c->records_read)
        tb_tbuf__note_read(c->seq, c->chunk_id, c->records_read, true);
    tb_tbuf__chunk_release(buf, c, false);
}

/* Construction --------------------------------------------------------------- */

int tb_tbuf_new(size_t size_bytes, enum tb_tbuf_policy policy, struct tb_tbuf **out)
{
    struct tb_tbuf *buf;

    if (!out || !size_bytes)
        return -EINVAL;
    buf = calloc(1, sizeof(*buf));
    if (!buf)
        return -ENOMEM;
    buf->seq_cap = 16;
    buf->seqs = calloc(buf->seq_cap, sizeof(*buf->seqs));
    if (!buf->seqs) {
        free(buf);
        return -ENOMEM;
    }
    buf->size = size_bytes;
    buf->policy =
        policy == TB_TBUF_POLICY_DISCARD ? TB_TBUF_POLICY_DISCARD : TB_TBUF_POLICY_RING_BUFFER;
    buf->st.buffer_size = size_bytes;
    *out = buf;
    return 0;
}

void tb_tbuf_free(struct tb_tbuf *buf)
{
    if (!buf)
        return;
    tb_tbuf__graveyard_flush(buf);
    while (buf->fifo_head) {
        struct tbuf_chunk *c = buf->fifo_head;

        buf->fifo_head = c->fifo_next;
        free(c);
    }
    for (size_t i = 0; i < buf->seq_cap; i++)
        seq_free(buf->seqs[i]);
    while (buf->forgotten) {
        struct tbuf_seq *s = buf->forgotten;

        buf->forgotten = s->fg_next;
        seq_free(s);
    }
    while (buf->spare) {
        struct tbuf_chunk *c = buf->spare;

        buf->spare = c->fifo_next;
        free(c);
    }
    free(buf->seqs);
    free(buf->slices);
    free(buf);
}

size_t tb_tbuf_size(const struct tb_tbuf *buf)
{
    return buf->size;
}

enum tb_tbuf_policy tb_tbuf_get_policy(const struct tb_tbuf *buf)
{
    return buf->policy;
}

void tb_tbuf_get_stats(const struct tb_tbuf *buf, struct tb_tbuf_stats *out)
{
    *out = buf->st;
    out->bytes_used = buf->used;
}
