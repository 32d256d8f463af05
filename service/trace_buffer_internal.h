/*
 * trace_buffer_internal.h - the central trace buffer's data structures and
 * the helpers its three files share:
 *
 *   trace_buffer.c        construction, chunk memory and lifetime, the ring
 *                         of readable sequences, the sequence table and
 *                         forgetting writers;
 *   trace_buffer_index.c  record framing, the per-sequence sorted chunk
 *                         deque, read history, copy-in and patches;
 *   trace_buffer_read.c   the draining reader and fragment reassembly.
 *
 * Not installed; nothing outside these files (and the tests that compile
 * them) includes it. Context: single-threaded like the buffer itself.
 */
#ifndef TB_SERVICE_TRACE_BUFFER_INTERNAL_H
#define TB_SERVICE_TRACE_BUFFER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "service/trace_buffer.h"

/* Chunks read while incomplete whose record counts are remembered per sequence. */
#define TBUF_PARTIAL_HIST 8
/*
 * How far behind the newest chunk read a copy may be and still count as a
 * re-copy. A re-copy is a chunk still sitting in the producer's shared
 * memory, so no more chunks than one SMB holds lie between; further back is
 * a writer that started over without being forgotten, and is read as new.
 */
#define TBUF_RECOPY_WINDOW (1u << 16)

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

/* A chunk read while incomplete: how many of its records were consumed. */
struct tbuf_partial {
    uint32_t chunk_id;
    uint16_t records;
};

struct tbuf_seq {
    struct tbuf_seq *act_prev, *act_next; /* ring of sequences holding chunks */
    struct tbuf_seq *fg_prev, *fg_next;   /* buf->forgotten list, or dead list */
    /*
     * Older generations of the same key (forgotten, still holding chunks):
     * prev_gen is read out before this one.
     */
    struct tbuf_seq *prev_gen, *next_gen;
    struct tbuf_chunk **dq; /* sorted deque: dq[head .. head+n) */
    uint32_t head, n, cap;
    uint32_t base; /* chunk ids are ordered by (id - base) */
    uint32_t key;  /* producer_id << 16 | writer_id */
    uint32_t drop_flags;
    /* Read history: newest chunk fully read, and which of the 64 before it. */
    uint64_t read_mask; /* bit i: chunk max_read - i was fully read */
    uint32_t max_read;
    struct tbuf_partial partial[TBUF_PARTIAL_HIST];
    uint8_t n_partial;
    uint8_t partial_next; /* slot replaced next when the history is full */
    bool has_read;
    bool max_read_incomplete; /* the newest chunk read was a scraped copy */
    bool active;
    bool forgotten; /* writer forgotten; drains without waiting, then freed */
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
    struct tbuf_seq *forgotten; /* forgotten sequences still holding chunks */
    struct tbuf_seq *dead_seqs; /* drained forgotten sequences, freed next call */
    struct tbuf_seq *cursor;    /* reader position in the active ring */
    size_t active_count;
    struct tb_tbuf_slice *slices;
    size_t slice_cap;
    struct tb_tbuf_stats st;
};

/* One record of a chunk payload. */
struct tbuf_rec {
    uint32_t data_off; /* payload offset of the record bytes */
    uint32_t len;
    uint32_t end; /* payload offset just past the record */
    bool sentinel;
};

static inline struct tbuf_chunk *tbuf_seq_at(const struct tbuf_seq *s, uint32_t i)
{
    return s->dq[s->head + i];
}

static inline void tbuf_seq_mark(struct tbuf_seq *s, uint32_t bits)
{
    s->drop_flags |= TB_TBUF_DROP_PRESENT | bits;
}

/* trace_buffer_index.c ----------------------------------------------------- */

/*
 * tb_tbuf__parse_rec() - parse the record at @off of a payload of @len bytes.
 * A drop sentinel has no bytes behind it and ends the chunk.
 * Return: 0, or -EBADMSG if the record does not fit.
 */
int tb_tbuf__parse_rec(const uint8_t *p, uint32_t len, uint32_t off, struct tbuf_rec *r);

/* tb_tbuf__seq_find() - the stored chunk @id of @s (may be NULL), or NULL. */
struct tbuf_chunk *tb_tbuf__seq_find(const struct tbuf_seq *s, uint32_t id);

/* tb_tbuf__seq_remove() - take @c out of its sequence's deque. */
void tb_tbuf__seq_remove(struct tbuf_seq *s, struct tbuf_chunk *c);

/*
 * tb_tbuf__note_read() - record in @s's history that chunk @chunk_id is done with:
 * @records of it were consumed, from a scraped copy if @incomplete.
 */
void tb_tbuf__note_read(struct tbuf_seq *s, uint32_t chunk_id, uint16_t records, bool incomplete);

/*
 * tb_tbuf__was_read() - whether chunk @id of @s was already fully read.
 * @records: receives how many records were read (UINT16_MAX: all of them,
 *           the copy read was complete). Unchanged when false.
 */
bool tb_tbuf__was_read(const struct tbuf_seq *s, uint32_t id, uint16_t *records);

/* trace_buffer.c ----------------------------------------------------------- */

/* tb_tbuf__seq_lookup() - the current sequence of @key, or NULL. */
struct tbuf_seq *tb_tbuf__seq_lookup(const struct tb_tbuf *buf, uint32_t key);
/* tb_tbuf__seq_get() - the current sequence of @key, created if needed; NULL on ENOMEM. */
struct tbuf_seq *tb_tbuf__seq_get(struct tb_tbuf *buf, uint32_t key);
/* tb_tbuf__active_add() - put @s in the reader's ring (it holds chunks). */
void tb_tbuf__active_add(struct tb_tbuf *buf, struct tbuf_seq *s);

void tb_tbuf__fifo_push(struct tb_tbuf *buf, struct tbuf_chunk *c);
void tb_tbuf__fifo_unlink(struct tb_tbuf *buf, struct tbuf_chunk *c);
/* tb_tbuf__chunk_alloc() - a block for @len payload bytes, recycled if possible. */
struct tbuf_chunk *tb_tbuf__chunk_alloc(struct tb_tbuf *buf, size_t len);
/* tb_tbuf__chunk_free() - keep @c's block as a spare within budget, or free it. */
void tb_tbuf__chunk_free(struct tb_tbuf *buf, struct tbuf_chunk *c);
/* tb_tbuf__chunk_release() - unindex @c; with @bury its memory lives until the next call. */
void tb_tbuf__chunk_release(struct tb_tbuf *buf, struct tbuf_chunk *c, bool bury);
/* tb_tbuf__chunk_retire() - @c was consumed by the reader: note it, free it. */
void tb_tbuf__chunk_retire(struct tb_tbuf *buf, struct tbuf_chunk *c);
/* tb_tbuf__chunk_evict() - the ring drops unread @c to make room. */
void tb_tbuf__chunk_evict(struct tb_tbuf *buf, struct tbuf_chunk *c);
/* tb_tbuf__graveyard_flush() - free what the previous call retired. */
void tb_tbuf__graveyard_flush(struct tb_tbuf *buf);

#endif /* TB_SERVICE_TRACE_BUFFER_INTERNAL_H */
