/*
 * trace_buffer_index.c - getting chunks into the central trace buffer:
 * record framing checks, the per-sequence sorted chunk deque, the read
 * history that recognises re-copies, copy-in and patches.
 *
 * Per sequence, chunks sit in a deque sorted by chunk_id relative to a
 * per-sequence base, so wrapped ids keep their order and lookups are a
 * binary search.
 *
 * A chunk can be copied more than once: scraped while BeingWritten (a flush
 * or a read before the commit) and then committed. If the earlier copy is
 * still stored, the new one replaces it and keeps its read position. If the
 * earlier copy was already read and freed, the read history says so: the
 * newest chunk id fully read, a bitmap of the 64 ids before it, and the
 * record counts of the last few chunks read while incomplete. The re-copy
 * then exposes only the records beyond those already read (a committed copy
 * may hold more records than the scraped one).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "service/trace_buffer_internal.h"
#include "tracebpf/shm_abi.h"

/* Record framing ------------------------------------------------------------- */

int tb_tbuf__parse_rec(const uint8_t *p, uint32_t len, uint32_t off, struct tbuf_rec *r)
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
        if (tb_tbuf__parse_rec(p, len, off, &r))
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

/* Sorted deque --------------------------------------------------------------- */

static inline uint32_t seq_rel(const struct tbuf_seq *s, uint32_t id)
{
    return id - s->base;
}

/* First position whose chunk id is not before @id. */
static uint32_t seq_lower_bound(const struct tbuf_seq *s, uint32_t id)
{
    uint32_t lo = 0, hi = s->n, rel = seq_rel(s, id);

    if (hi && seq_rel(s, tbuf_seq_at(s, hi - 1)->chunk_id) < rel)
        return hi; /* the common case: appending the newest chunk */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (seq_rel(s, tbuf_seq_at(s, mid)->chunk_id) < rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct tbuf_chunk *tb_tbuf__seq_find(const struct tbuf_seq *s, uint32_t id)
{
    uint32_t pos;

    if (!s || !s->n)
        return NULL;
    pos = seq_lower_bound(s, id);
    if (pos < s->n && tbuf_seq_at(s, pos)->chunk_id == id)
        return tbuf_seq_at(s, pos);
    return NULL;
}

/* Makes the next insert into @s infallible. */
static int seq_reserve(struct tbuf_seq *s)
{
    uint32_t cap;
    struct tbuf_chunk **dq;

    if (s->head + s->n < s->cap || s->head > 0)
        return 0;
    cap = s->cap ? s->cap * 2 : 8;
    dq = realloc(s->dq, cap * sizeof(*dq));
    if (!dq)
        return -ENOMEM;
    s->dq = dq;
    s->cap = cap;
    return 0;
}

/* Inserts @c in order; the caller made room with seq_reserve(). */
static void seq_insert(struct tbuf_seq *s, struct tbuf_chunk *c)
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
        return;
    }
    if (s->head + s->n == s->cap) {
        memmove(s->dq, s->dq + s->head, s->n * sizeof(*s->dq));
        s->head = 0;
    }
    memmove(s->dq + s->head + pos + 1, s->dq + s->head + pos, (s->n - pos) * sizeof(*s->dq));
    s->dq[s->head + pos] = c;
    s->n++;
}

void tb_tbuf__seq_remove(struct tbuf_seq *s, struct tbuf_chunk *c)
{
    uint32_t pos = seq_lower_bound(s, c->chunk_id);

    if (pos >= s->n || tbuf_seq_at(s, pos) != c)
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

/* Read history --------------------------------------------------------------- */

static struct tbuf_partial *partial_find(const struct tbuf_seq *s, uint32_t id)
{
    for (uint8_t i = 0; i < s->n_partial; i++) {
        if (s->partial[i].chunk_id == id)
            return (struct tbuf_partial *)&s->partial[i];
    }
    return NULL;
}

static void partial_put(struct tbuf_seq *s, uint32_t id, uint16_t records)
{
    struct tbuf_partial *p = partial_find(s, id);

    if (!p) {
        if (s->n_partial < TBUF_PARTIAL_HIST) {
            p = &s->partial[s->n_partial++];
        } else {
            p = &s->partial[s->partial_next];
            s->partial_next = (uint8_t)((s->partial_next + 1) % TBUF_PARTIAL_HIST);
        }
    }
    p->chunk_id = id;
    p->records = records;
}

static void partial_del(struct tbuf_seq *s, uint32_t id)
{
    struct tbuf_partial *p = partial_find(s, id);

    if (p) {
        *p = s->partial[--s->n_partial];
        s->partial_next = 0;
    }
}

void tb_tbuf__note_read(struct tbuf_seq *s, uint32_t chunk_id, uint16_t records, bool incomplete)
{
    int32_t ahead = (int32_t)(chunk_id - s->max_read);

    if (!s->has_read || ahead > 0) {
        s->read_mask = (s->has_read && ahead < 64) ? (s->read_mask << ahead) | 1u : 1u;
        s->max_read = chunk_id;
        s->max_read_incomplete = incomplete;
        s->has_read = true;
    } else {
        /* A re-copy or a late chunk: the newest read stays where it is. */
        if (-(int64_t)ahead < 64)
            s->read_mask |= 1ull << -ahead;
        if (ahead == 0)
            s->max_read_incomplete = incomplete;
    }
    if (incomplete)
        partial_put(s, chunk_id, records);
    else
        partial_del(s, chunk_id);
}

bool tb_tbuf__was_read(const struct tbuf_seq *s, uint32_t id, uint16_t *records)
{
    const struct tbuf_partial *p;
    uint32_t behind;

    if (!s || !s->has_read)
        return false;
    behind = s->max_read - id;
    if (behind >= TBUF_RECOPY_WINDOW)
        return false; /* newer than anything read, or a writer starting over */
    p = partial_find(s, id);
    if (p) {
        *records = p->records;
        return true;
    }
    if (behind < 64 && !(s->read_mask & (1ull << behind)))
        return false; /* never read: a late chunk, read as new */
    /* Read whole (or too long ago to remember how much: assume whole). */
    *records = UINT16_MAX;
    return true;
}

/* Copy-in -------------------------------------------------------------------- */

static int abi_violation(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                         uint32_t chunk_id, const char *why)
{
    buf->st.abi_violations++;
    tb_debug("tbuf: chunk %u of producer %u writer %u rejected: %s", chunk_id, producer_id,
             writer_id, why);
    return -EINVAL;
}

static void count_copy(struct tb_tbuf *buf, size_t len, bool rewrite)
{
    buf->st.chunks_written++;
    buf->st.chunks_rewritten += rewrite;
    buf->st.bytes_written += TB_SHM_CHUNK_HEADER_SIZE + len;
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
    bool recopy = false;
    struct tbuf_seq *s;
    uint32_t skip_off;

    tb_tbuf__graveyard_flush(buf);
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

    s = tb_tbuf__seq_lookup(buf, key);
    old = tb_tbuf__seq_find(s, chunk_id);
    if (old) {
        if (!old->incomplete && !complete) {
            /* A scrape never replaces the committed copy it lags behind. */
            count_copy(buf, len, true);
            return 0;
        }
        skip = old->records_read;
        old_fp = tb_tbuf_chunk_footprint(old->len);
    } else if (tb_tbuf__was_read(s, chunk_id, &skip)) {
        recopy = true;
    }
    if ((old && skip > 0 && skip >= count) || (recopy && skip >= count)) {
        /* Nothing new: every record this copy exposes was read. */
        count_copy(buf, len, true);
        if (old) {
            tb_tbuf__note_read(s, chunk_id, skip, !complete);
            tb_tbuf__chunk_release(buf, old, false);
        } else if (complete) {
            tb_tbuf__note_read(s, chunk_id, count, false);
        }
        return 0;
    }
    if (fp > buf->size ||
        (buf->policy == TB_TBUF_POLICY_DISCARD && buf->used - old_fp + fp > buf->size)) {
        buf->st.chunks_discarded++;
        return -ENOSPC;
    }
    c = tb_tbuf__chunk_alloc(buf, len);
    if (!c)
        return -ENOMEM;
    if (!s)
        s = tb_tbuf__seq_get(buf, key);
    if (!s || (!old && seq_reserve(s))) {
        /* Reserved before evicting anything, so a failure changes nothing. */
        tb_tbuf__chunk_free(buf, c);
        return -ENOMEM;
    }
    while (buf->used - old_fp + fp > buf->size) {
        struct tbuf_chunk *victim = buf->fifo_head == old ? old->fifo_next : buf->fifo_head;

        tb_tbuf__chunk_evict(buf, victim);
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
        tb_tbuf__fifo_unlink(buf, old);
        buf->used -= old_fp;
        tb_tbuf__chunk_free(buf, old);
    } else {
        /* A re-copy continues a chunk already read: no gap check against it. */
        c->started = recopy;
        seq_insert(s, c);
    }
    tb_tbuf__fifo_push(buf, c);
    tb_tbuf__active_add(buf, s);
    buf->used += fp;
    count_copy(buf, len, old || recopy);
    return 0;
}

int tb_tbuf_apply_patches(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                          uint32_t chunk_id, const struct tb_tbuf_patch *patches, size_t num,
                          bool has_more)
{
    struct tbuf_seq *s = tb_tbuf__seq_lookup(buf, (uint32_t)producer_id << 16 | writer_id);
    struct tbuf_chunk *c = tb_tbuf__seq_find(s, chunk_id);
    bool ok = num <= TB_TBUF_MAX_PATCHES && (num == 0 || patches);

    tb_tbuf__graveyard_flush(buf);
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
