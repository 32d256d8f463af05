/*
 * trace_buffer.c - the central trace buffer: chunk index, ring/discard
 * accounting, patching and the draining packet reader.
 *
 * Each stored chunk is one allocation (metadata + payload) charged
 * TB_TBUF_CHUNK_OVERHEAD + payload bytes against the budget. Chunks sit in
 * two structures: a FIFO in copy order (what the ring evicts first) and, per
 * sequence (producer, writer), a sorted deque ordered by chunk_id relative to
 * a per-sequence base, so wrapped ids keep their order and lookups are a
 * binary search. Sequences are found through an open-addressing hash table
 * and those holding chunks are linked in a ring the reader walks.
 *
 * Chunks retired by a read go to a graveyard that is freed on the next call,
 * so the slices of the packet just returned stay valid until then. Freed
 * blocks are kept for reuse while stored + spare bytes stay within the
 * budget: in steady state the buffer allocates nothing and the heap never
 * shrinks and regrows under it.
 */
#include "service/trace_buffer.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tracebpf/shm_abi.h"

struct tbuf_seq;

struct tbuf_chunk {
    struct tbuf_chunk *fifo_prev, *fifo_next; /* fifo_next links the graveyard too */
    struct tbuf_seq *seq;
    uint32_t chunk_id;
    uint32_t len;
    uint32_t cap;          /* payload bytes allocated (blocks are recycled) */
    uint32_t read_off;     /* payload offset of the next unread record */
    uint16_t count;        /* records exposed (incomplete copies hide their last) */
    uint16_t records_read; /* records consumed from the front */
    uint8_t flags;         /* TB_SHM_FLAG_* */
    bool incomplete;
    bool started;   /* the gap check against the previous chunk was done */
    bool drop_last; /* patches were rejected: drop the last record */
    uint8_t payload[];
};

_Static_assert(sizeof(struct tbuf_chunk) <= TB_TBUF_CHUNK_OVERHEAD, "chunk overhead");

struct tbuf_seq {
    struct tbuf_seq *act_prev, *act_next; /* ring of sequences holding chunks */
    struct tbuf_chunk **dq;               /* sorted deque: dq[head .. head+n) */
    uint32_t head, n, cap;
    uint32_t base; /* chunk ids are ordered by (id - base) */
    uint32_t key;  /* producer_id << 16 | writer_id */
    uint32_t drop_flags;
    uint32_t last_read_id;
    uint16_t last_read_records;
    bool has_last_read;
    bool last_read_incomplete;
    bool active;
};

struct tb_tbuf {
    size_t size;
    size_t used;
    enum tb_tbuf_policy policy;
    struct tbuf_chunk *fifo_head, *fifo_tail;
    struct tbuf_chunk *graveyard;
    struct tbuf_chunk *spare; /* freed blocks kept for reuse, within budget */
    size_t spare_bytes;
    struct tbuf_seq **seqs; /* hash table, seq_cap slots (power of two) */
    size_t seq_cap, seq_count;
    struct tbuf_seq *cursor; /* reader position in the active ring */
    size_t active_count;
    struct tb_tbuf_slice *slices;
    size_t slice_cap;
    struct tb_tbuf_stats st;
};

/* Record framing ------------------------------------------------------- */

struct tbuf_rec {
    uint32_t data_off; /* payload offset of the record bytes */
    uint32_t len;
    uint32_t end; /* payload offset just past the record */
    bool sentinel;
};

/*
 * Parses the record at @off. A drop sentinel has no bytes behind it (the
 * writer stops there), so it ends the chunk.
 */
static int parse_rec(const uint8_t *p, uint32_t len, uint32_t off, struct tbuf_rec *r)
{
    uint32_t val = 0;
    uint32_t i;

    for (i = 0; i < 4; i++) {
        if (off + i >= len)
            return -EBADMSG;
        val |= (uint32_t)(p[off + i] & 0x7f) << (7 * i);
        if (!(p[off + i] & 0x80))
            break;
    }
    if (i == 4)
        return -EBADMSG;
    off += i + 1;
    r->sentinel = val == TB_SHM_PACKET_SIZE_DROP;
    if (r->sentinel) {
        r->data_off = off;
        r->len = 0;
        r->end = len;
        return 0;
    }
    if (val > len - off)
        return -EBADMSG;
    r->data_off = off;
    r->len = val;
    r->end = off + val;
    return 0;
}

/* Validates @count records; returns in @skip_off the offset after @skip of them. */
static int check_records(const uint8_t *p, uint32_t len, uint16_t count, uint16_t skip,
                         uint32_t *skip_off)
{
    struct tbuf_rec r;
    uint32_t off = 0;

    *skip_off = 0;
    for (uint16_t i = 0; i < count; i++) {
        if (parse_rec(p, len, off, &r))
            return -EBADMSG;
        off = r.end;
        if (i + 1 == skip)
            *skip_off = off;
        if (r.sentinel)
            break;
    }
    if (skip > 0 && *skip_off == 0)
        *skip_off = off;
    return 0;
}

/* Sequences ------------------------------------------------------------- */

static inline uint32_t seq_rel(const struct tbuf_seq *s, uint32_t id)
{
    return id - s->base;
}

static inline struct tbuf_chunk *seq_at(const struct tbuf_seq *s, uint32_t i)
{
    return s->dq[s->head + i];
}

/* First position whose chunk id is not before @id. */
static uint32_t seq_lower_bound(const struct tbuf_seq *s, uint32_t id)
{
    uint32_t lo = 0, hi = s->n, rel = seq_rel(s, id);

    if (hi && seq_rel(s, seq_at(s, hi - 1)->chunk_id) < rel)
        return hi; /* the common case: appending the newest chunk */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (seq_rel(s, seq_at(s, mid)->chunk_id) < rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct tbuf_chunk *seq_find(const struct tbuf_seq *s, uint32_t id)
{
    uint32_t pos;

    if (!s || !s->n)
        return NULL;
    pos = seq_lower_bound(s, id);
    if (pos < s->n && seq_at(s, pos)->chunk_id == id)
        return seq_at(s, pos);
    return NULL;
}

static int seq_insert(struct tbuf_seq *s, struct tbuf_chunk *c)
{
    uint32_t pos;

    if (!s->n) {
        /* Room for ids a little older than the first one to sort before it. */
        s->base = c->chunk_id - 0x40000000u;
        s->head = 0;
    }
    pos = seq_lower_bound(s, c->chunk_id);
    if (pos == 0 && s->head > 0) {
        s->dq[--s->head] = c;
        s->n++;
        return 0;
    }
    if (s->head + s->n == s->cap) {
        if (s->head > 0) {
            memmove(s->dq, s->dq + s->head, s->n * sizeof(*s->dq));
            s->head = 0;
        } else {
            uint32_t cap = s->cap ? s->cap * 2 : 8;
            struct tbuf_chunk **dq = realloc(s->dq, cap * sizeof(*dq));

            if (!dq)
                return -ENOMEM;
            s->dq = dq;
            s->cap = cap;
        }
    }
    memmove(s->dq + s->head + pos + 1, s->dq + s->head + pos, (s->n - pos) * sizeof(*s->dq));
    s->dq[s->head + pos] = c;
    s->n++;
    return 0;
}

static void seq_remove(struct tbuf_seq *s, struct tbuf_chunk *c)
{
    uint32_t pos = seq_lower_bound(s, c->chunk_id);

    if (pos >= s->n || seq_at(s, pos) != c)
        return; /* not reachable: ids are unique per sequence */
    if (pos == 0) {
        s->head++;
    } else {
        memmove(s->dq + s->head + pos, s->dq + s->head + pos + 1,
                (s->n - pos - 1) * sizeof(*s->dq));
    }
    if (!--s->n)
        s->head = 0;
}

static void seq_mark(struct tbuf_seq *s, uint32_t bits)
{
    s->drop_flags |= TB_TBUF_DROP_PRESENT | bits;
}

static void active_add(struct tb_tbuf *buf, struct tbuf_seq *s)
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

/* Mixes producer (high half) and writer (low half) bits into the low bits. */
static inline size_t seq_hash(uint32_t key, size_t cap)
{
    key ^= key >> 16;
    key *= 0x45d9f3bu;
    key ^= key >> 16;
    return (size_t)(key & (cap - 1));
}

static struct tbuf_seq *seq_lookup(const struct tb_tbuf *buf, uint32_t key)
{
    for (size_t i = seq_hash(key, buf->seq_cap);; i = (i + 1) & (buf->seq_cap - 1)) {
        if (!buf->seqs[i])
            return NULL;
        if (buf->seqs[i]->key == key)
            return buf->seqs[i];
    }
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

static struct tbuf_seq *seq_get(struct tb_tbuf *buf, uint32_t key)
{
    struct tbuf_seq *s = seq_lookup(buf, key);
    size_t i;

    if (s)
        return s;
    if ((buf->seq_count + 1) * 2 > buf->seq_cap && seq_table_grow(buf))
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->key = key;
    for (i = seq_hash(key, buf->seq_cap); buf->seqs[i]; i = (i + 1) & (buf->seq_cap - 1))
        ;
    buf->seqs[i] = s;
    buf->seq_count++;
    return s;
}

/* Chunk lifetime --------------------------------------------------------- */

size_t tb_tbuf_chunk_footprint(size_t payload_len)
{
    return TB_TBUF_CHUNK_OVERHEAD + payload_len;
}

static void fifo_unlink(struct tb_tbuf *buf, struct tbuf_chunk *c)
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

static void fifo_push(struct tb_tbuf *buf, struct tbuf_chunk *c)
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
static struct tbuf_chunk *chunk_alloc(struct tb_tbuf *buf, size_t len)
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

static void chunk_free(struct tb_tbuf *buf, struct tbuf_chunk *c)
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

/* Takes @c out of the index; with @bury its memory lives until the next call. */
static void chunk_release(struct tb_tbuf *buf, struct tbuf_chunk *c, bool bury)
{
    struct tbuf_seq *s = c->seq;

    fifo_unlink(buf, c);
    seq_remove(s, c);
    if (!s->n)
        active_del(buf, s);
    buf->used -= tb_tbuf_chunk_footprint(c->len);
    if (bury) {
        c->fifo_next = buf->graveyard;
        buf->graveyard = c;
    } else {
        chunk_free(buf, c);
    }
}

static void graveyard_flush(struct tb_tbuf *buf)
{
    while (buf->graveyard) {
        struct tbuf_chunk *c = buf->graveyard;

        buf->graveyard = c->fifo_next;
        chunk_free(buf, c);
    }
}

/* A chunk the reader has consumed: remember where the sequence stands. */
static void chunk_retire(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    struct tbuf_seq *s = c->seq;

    s->has_last_read = true;
    s->last_read_id = c->chunk_id;
    s->last_read_records = c->records_read;
    s->last_read_incomplete = c->incomplete;
    buf->st.chunks_read++;
    chunk_release(buf, c, true);
}

static void chunk_evict(struct tb_tbuf *buf, struct tbuf_chunk *c)
{
    buf->st.chunks_overwritten++;
    buf->st.bytes_overwritten += TB_SHM_CHUNK_HEADER_SIZE + c->len;
    seq_mark(c->seq, TB_TBUF_DROP_OVERWRITE);
    chunk_release(buf, c, false);
}

/* Construction ------------------------------------------------------------ */

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
    graveyard_flush(buf);
    while (buf->fifo_head) {
        struct tbuf_chunk *c = buf->fifo_head;

        buf->fifo_head = c->fifo_next;
        free(c);
    }
    for (size_t i = 0; i < buf->seq_cap; i++) {
        if (buf->seqs[i]) {
            free(buf->seqs[i]->dq);
            free(buf->seqs[i]);
        }
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

/* Writing ----------------------------------------------------------------- */

static int abi_violation(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                         uint32_t chunk_id, const char *why)
{
    buf->st.abi_violations++;
    tb_debug("tbuf: chunk %u of producer %u writer %u rejected: %s", chunk_id, producer_id,
             writer_id, why);
    return -EINVAL;
}

int tb_tbuf_copy_chunk(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                       uint32_t chunk_id, uint16_t packets, const uint8_t *payload, size_t len,
                       bool complete)
{
    uint16_t count = tb_shm_packets_count(packets), skip = 0;
    uint8_t flags = tb_shm_packets_flags(packets) & TB_SHM_FLAGS_KNOWN;
    uint32_t key = (uint32_t)producer_id << 16 | writer_id;
    size_t fp = tb_tbuf_chunk_footprint(len), old_fp = 0;
    struct tbuf_chunk *old = NULL, *c;
    bool resumes_read = false;
    struct tbuf_seq *s;
    uint32_t skip_off;

    graveyard_flush(buf);
    if (writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID)
        return abi_violation(buf, producer_id, writer_id, chunk_id, "bad writer id");
    if (len > TB_TBUF_MAX_CHUNK_PAYLOAD || (len && !payload))
        return abi_violation(buf, producer_id, writer_id, chunk_id, "bad size");
    if (!complete) {
        /* Scraped while being written: the last record may be half-written. */
        flags &= (uint8_t) ~(TB_SHM_FLAG_LAST_CONTINUES | TB_SHM_FLAG_NEEDS_PATCHING);
        count = count ? count - 1 : 0;
    }
    if (check_records(payload, (uint32_t)len, count, 0, &skip_off))
        return abi_violation(buf, producer_id, writer_id, chunk_id, "bad record framing");

    s = seq_lookup(buf, key);
    old = seq_find(s, chunk_id);
    if (old) {
        skip = old->records_read;
        old_fp = tb_tbuf_chunk_footprint(old->len);
    } else if (s && s->has_last_read && s->last_read_id == chunk_id) {
        skip = s->last_read_records;
        resumes_read = true;
    }
    if (skip > 0 && skip >= count) {
        /* Nothing new in this copy: every record it exposes was read. */
        buf->st.chunks_written++;
        buf->st.chunks_rewritten++;
        buf->st.bytes_written += TB_SHM_CHUNK_HEADER_SIZE + len;
        if (old)
            chunk_release(buf, old, false);
        s->has_last_read = true;
        s->last_read_id = chunk_id;
        s->last_read_records = skip;
        s->last_read_incomplete = !complete;
        return 0;
    }
    if (fp > buf->size ||
        (buf->policy == TB_TBUF_POLICY_DISCARD && buf->used - old_fp + fp > buf->size)) {
        buf->st.chunks_discarded++;
        return -ENOSPC;
    }
    c = chunk_alloc(buf, len);
    if (!c)
        return -ENOMEM;
    if (!s) {
        s = seq_get(buf, key);
        if (!s) {
            chunk_free(buf, c);
            return -ENOMEM;
        }
    }
    if (!old && s->n == s->cap - s->head && !s->head) {
        /* Make the deque insert infallible before evicting anything. */
        uint32_t cap = s->cap ? s->cap * 2 : 8;
        struct tbuf_chunk **dq = realloc(s->dq, cap * sizeof(*dq));

        if (!dq) {
            chunk_free(buf, c);
            return -ENOMEM;
        }
        s->dq = dq;
        s->cap = cap;
    }
    while (buf->used - old_fp + fp > buf->size) {
        struct tbuf_chunk *victim = buf->fifo_head == old ? old->fifo_next : buf->fifo_head;

        chunk_evict(buf, victim);
    }

    memset(c, 0, offsetof(struct tbuf_chunk, cap));
    memset(&c->read_off, 0, sizeof(*c) - offsetof(struct tbuf_chunk, read_off));
    memcpy(c->payload, payload, len);
    c->seq = s;
    c->chunk_id = chunk_id;
    c->len = (uint32_t)len;
    c->count = count;
    c->flags = flags;
    c->incomplete = !complete;
    c->records_read = skip;
    if (skip) {
        check_records(c->payload, c->len, count, skip, &skip_off);
        c->read_off = skip_off;
    }
    if (old) {
        c->started = old->started;
        s->dq[s->head + seq_lower_bound(s, chunk_id)] = c;
        fifo_unlink(buf, old);
        buf->used -= old_fp;
        chunk_free(buf, old);
        buf->st.chunks_rewritten++;
    } else {
        c->started = resumes_read;
        seq_insert(s, c); /* capacity ensured above */
        if (resumes_read)
            buf->st.chunks_rewritten++;
    }
    fifo_push(buf, c);
    active_add(buf, s);
    buf->used += fp;
    buf->st.chunks_written++;
    buf->st.bytes_written += TB_SHM_CHUNK_HEADER_SIZE + len;
    return 0;
}

int tb_tbuf_apply_patches(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                          uint32_t chunk_id, const struct tb_tbuf_patch *patches, size_t num,
                          bool has_more)
{
    struct tbuf_seq *s = seq_lookup(buf, (uint32_t)producer_id << 16 | writer_id);
    struct tbuf_chunk *c = seq_find(s, chunk_id);
    bool ok = num <= TB_TBUF_MAX_PATCHES && (num == 0 || patches);

    graveyard_flush(buf);
    if (!c) {
        buf->st.patches_failed += num;
        return -ENOENT;
    }
    for (size_t i = 0; ok && i < num; i++) {
        ok = patches[i].size == TB_SHM_PATCH_SIZE && patches[i].data && c->len >= 4 &&
             patches[i].offset <= c->len - 4;
    }
    if (!ok) {
        buf->st.patches_failed += num;
        tb_debug("tbuf: bad patches for chunk %u of producer %u writer %u", chunk_id, producer_id,
                 writer_id);
        if (!has_more && (c->flags & TB_SHM_FLAG_NEEDS_PATCHING)) {
            c->flags &= (uint8_t)~TB_SHM_FLAG_NEEDS_PATCHING;
            c->drop_last = true;
        }
        return -EINVAL;
    }
    for (size_t i = 0; i < num; i++)
        memcpy(c->payload + patches[i].offset, patches[i].data, TB_SHM_PATCH_SIZE);
    buf->st.patches_succeeded += num;
    if (!has_more)
        c->flags &= (uint8_t)~TB_SHM_FLAG_NEEDS_PATCHING;
    return 0;
}

/* Reading ----------------------------------------------------------------- */

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
        chunk_retire(buf, c);
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
    seq_mark(s, why);
    while (upto--) {
        struct tbuf_chunk *c = seq_at(s, 0);

        c->records_read = c->count;
        chunk_retire(buf, c);
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
    struct tbuf_chunk *c = seq_at(s, 0), *d;
    uint32_t prev_id = c->chunk_id, idx;
    size_t nslices = 0;
    struct tbuf_rec r;

    if (add_slice(buf, &nslices, c->payload + first->data_off, first->len))
        return -ENOMEM;
    for (idx = 1;; idx++) {
        if (idx >= s->n) {
            buf->st.readaheads_failed++;
            return -EAGAIN;
        }
        d = seq_at(s, idx);
        if (d->chunk_id != prev_id + 1) {
            drop_chain(buf, s, idx, TB_TBUF_DROP_REASSEMBLY_GAP);
            return 1;
        }
        if (d->incomplete && !d->count)
            return -EAGAIN; /* scraped before the fragment ended */
        if (!(d->flags & TB_SHM_FLAG_FIRST_CONTINUES) || !d->count || d->records_read) {
            drop_chain(buf, s, idx, TB_TBUF_DROP_BROKEN_CHAIN);
            return 1;
        }
        if (parse_rec(d->payload, d->len, d->read_off, &r)) {
            buf->st.abi_violations++;
            drop_chain(buf, s, idx + 1, TB_TBUF_DROP_CHUNK_CORRUPTED);
            return 1;
        }
        if (d->count == 1 && (d->flags & TB_SHM_FLAG_NEEDS_PATCHING))
            return -EAGAIN;
        if (r.sentinel || (d->count == 1 && d->drop_last)) {
            if (r.sentinel)
                buf->st.trace_writer_packet_loss++;
            drop_chain(buf, s, idx,
                       r.sentinel ? TB_TBUF_DROP_WRITER_ABORT : TB_TBUF_DROP_CHUNK_CORRUPTED);
            consume(buf, seq_at(s, 0), &r);
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
        c = seq_at(s, 0);
        c->records_read = c->count;
        chunk_retire(buf, c);
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
        struct tbuf_chunk *c = seq_at(s, 0);
        struct tbuf_rec r;
        size_t n = 0;
        bool last;
        int err;

        if (!c->started) {
            c->started = true;
            if (s->has_last_read && (c->chunk_id != s->last_read_id + 1 || s->last_read_incomplete))
                seq_mark(s, TB_TBUF_DROP_READ_GAP);
        }
        if (c->records_read >= c->count) {
            chunk_retire(buf, c);
            continue;
        }
        if (parse_rec(c->payload, c->len, c->read_off, &r)) {
            /* Framing was checked on copy; only a patch can break it here. */
            buf->st.abi_violations++;
            seq_mark(s, TB_TBUF_DROP_CHUNK_CORRUPTED);
            c->records_read = c->count;
            chunk_retire(buf, c);
            continue;
        }
        last = c->records_read + 1 == c->count;
        if (last && (c->flags & TB_SHM_FLAG_NEEDS_PATCHING))
            return -EAGAIN;
        if (r.sentinel) {
            buf->st.trace_writer_packet_loss++;
            seq_mark(s, TB_TBUF_DROP_WRITER_ABORT);
            consume(buf, c, &r);
            continue;
        }
        if (last && c->drop_last) {
            seq_mark(s, TB_TBUF_DROP_CHUNK_CORRUPTED);
            consume(buf, c, &r);
            continue;
        }
        if (c->records_read == 0 && (c->flags & TB_SHM_FLAG_FIRST_CONTINUES)) {
            seq_mark(s, TB_TBUF_DROP_ORPHAN_CONTINUATION);
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

    graveyard_flush(buf);
    todo = buf->active_count;
    while (todo-- && buf->cursor) {
        struct tbuf_seq *s = buf->cursor;
        int err = seq_read(buf, s, pkt);

        if (!err)
            return 0;
        if (err != -EAGAIN)
            return err;
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
