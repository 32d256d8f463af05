/*
 * session_seq.c - a session's packet sequences: which trusted
 * packet_sequence_id, uid and pid the packets of one (producer, writer)
 * generation carry, and the key under which its chunks sit in the session's
 * central buffers.
 *
 * A writer id handed back (UnregisterTraceWriter) or a producer that goes
 * away ends its sequences; the next writer with the same (producer, writer)
 * gets a new sequence with a fresh id, even though the old one's chunks may
 * still wait unread in a buffer. To keep the two apart after the copy, the
 * buffers are not keyed by the producer's (producer, writer) pair but by the
 * sequence id itself (tb_svc_seq_tbuf_key()), so a packet read back names its
 * own sequence and never borrows a newer generation's identity. The same
 * holds for producer ids, which the core reuses after 65535 connections.
 *
 * A producer that went away sends nothing more: its sequences end at once.
 * An UnregisterTraceWriter may overtake the writer's last CommitData (our
 * own producer client sends queued requests before the round's commits), so
 * it only marks the sequence: chunks that carry it on (newer chunk ids, or
 * the committed copy of the chunk last scraped) still join it, and the first
 * chunk that starts over (a fresh writer numbers its chunks from 0) ends it
 * and opens the new one. A producer that keeps counting chunk ids across the
 * writers of one id stays on one sequence, which is what it asked for.
 *
 * Storage: every sequence the session ever saw, indexed by seq_id - 2 (ids
 * are dense, 1 is the service's own), plus an open-addressing index of the
 * live generation of each (producer, writer).
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "service/trace_buffer.h"
#include "tracebpf/shm_abi.h"

/* First id a producer sequence gets: 1 is the service's own packets. */
#define FIRST_SEQ_ID 2u
/*
 * Most sequences one session keeps. A producer cycling writer ids could
 * otherwise grow the table without end; past this its chunks are discarded.
 */
#define MAX_SEQS (1u << 20)
/* Writer ids one buffer key can hold (the buffer accepts 1..32767). */
#define KEY_WRITERS TB_SHM_MAX_WRITER_ID

_Static_assert((uint64_t)MAX_SEQS + FIRST_SEQ_ID <= (uint64_t)KEY_WRITERS * 65536u,
               "every sequence id must map to a buffer key");

static size_t home_slot(uint32_t key, size_t mask)
{
    return (size_t)(key * 2654435761u) & mask;
}

void tb_svc_seq_tbuf_key(uint32_t seq_id, uint16_t *producer_id, uint16_t *writer_id)
{
    *producer_id = (uint16_t)(seq_id / KEY_WRITERS);
    *writer_id = (uint16_t)(seq_id % KEY_WRITERS + 1);
}

struct tb_svc_seq *tb_svc_session_seq_by_tbuf_key(struct tb_svc_session *s, uint16_t producer_id,
                                                  uint16_t writer_id)
{
    uint64_t seq_id = (uint64_t)producer_id * KEY_WRITERS + writer_id - 1;

    if (!writer_id || seq_id < FIRST_SEQ_ID || seq_id - FIRST_SEQ_ID >= s->nseq)
        return NULL;
    return &s->seqs[seq_id - FIRST_SEQ_ID];
}

/* Slot of @key in the live index, or of the empty slot where it would go. */
static size_t index_find(const struct tb_svc_session *s, uint32_t key)
{
    size_t mask = s->seq_index_cap - 1, i;

    for (i = home_slot(key, mask); s->seq_index[i]; i = (i + 1) & mask)
        if (s->seqs[s->seq_index[i] - 1].key == key)
            break;
    return i;
}

static int index_grow(struct tb_svc_session *s)
{
    size_t ncap = s->seq_index_cap ? s->seq_index_cap * 2 : 64, mask = ncap - 1;
    uint32_t *n = calloc(ncap, sizeof(*n));

    if (!n)
        return -ENOMEM;
    for (size_t j = 0; j < s->seq_index_cap; j++) {
        size_t i;

        if (!s->seq_index[j])
            continue;
        for (i = home_slot(s->seqs[s->seq_index[j] - 1].key, mask); n[i]; i = (i + 1) & mask)
            ;
        n[i] = s->seq_index[j];
    }
    free(s->seq_index);
    s->seq_index = n;
    s->seq_index_cap = ncap;
    return 0;
}

/* Empties slot @i, shifting back later entries of its probe run (no tombstones). */
static void index_del(struct tb_svc_session *s, size_t i)
{
    size_t mask = s->seq_index_cap - 1, j = i;

    s->seq_index[i] = 0;
    s->seq_index_used--;
    for (;;) {
        size_t k;

        j = (j + 1) & mask;
        if (!s->seq_index[j])
            return;
        k = home_slot(s->seqs[s->seq_index[j] - 1].key, mask);
        /* The entry at j may fill the hole only if its home is not in (i, j]. */
        if (i <= j ? (k > i && k <= j) : (k > i || k <= j))
            continue;
        s->seq_index[i] = s->seq_index[j];
        s->seq_index[j] = 0;
        i = j;
    }
}

struct tb_svc_seq *tb_svc_session_seq_find(struct tb_svc_session *s, uint16_t producer_id,
                                           uint16_t writer_id)
{
    uint32_t key = (uint32_t)producer_id << 16 | writer_id;
    size_t i;

    if (!key || !s->seq_index_cap)
        return NULL;
    i = index_find(s, key);
    return s->seq_index[i] ? &s->seqs[s->seq_index[i] - 1] : NULL;
}

/* Ends the live sequence in slot @i: its unread chunks drain, then it is done. */
static void retire_slot(struct tb_svc_session *s, size_t i)
{
    const struct tb_svc_seq *q = &s->seqs[s->seq_index[i] - 1];
    uint16_t kp, kw;

    tb_svc_seq_tbuf_key(q->seq_id, &kp, &kw);
    /* Its chunks waiting for patches or a next fragment will get neither. */
    for (size_t b = 0; b < s->nbufs; b++)
        tb_tbuf_forget_writer(s->bufs[b].tbuf, kp, kw);
    index_del(s, i);
}

/* Whether chunk @id carries sequence @q on. */
static bool continues(const struct tb_svc_seq *q, uint32_t id)
{
    uint32_t ahead = id - q->max_chunk_id;

    if (!q->has_chunk)
        return true;
    if (ahead == 0)
        return q->max_incomplete; /* the commit of the chunk last scraped */
    return ahead < (1u << 31);
}

static void note_chunk(struct tb_svc_seq *q, uint32_t id, bool complete)
{
    uint32_t ahead = id - q->max_chunk_id;

    if (!q->has_chunk || (ahead && ahead < (1u << 31))) {
        q->has_chunk = true;
        q->max_chunk_id = id;
        q->max_incomplete = !complete;
    } else if (!ahead && complete) {
        q->max_incomplete = false;
    }
}

struct tb_svc_seq *tb_svc_session_seq(struct tb_svc_session *s, uint16_t producer_id,
                                      uint16_t writer_id, uint32_t chunk_id, bool complete,
                                      int32_t uid, int32_t pid)
{
    uint32_t key = (uint32_t)producer_id << 16 | writer_id;
    struct tb_svc_seq *q;
    size_t i;

    if (!key)
        return NULL;
    if (s->seq_index_cap) {
        i = index_find(s, key);
        if (s->seq_index[i]) {
            q = &s->seqs[s->seq_index[i] - 1];
            if (!q->unregistered || continues(q, chunk_id)) {
                note_chunk(q, chunk_id, complete);
                return q;
            }
            retire_slot(s, i); /* a new writer with this id */
        }
    }
    if (s->nseq >= MAX_SEQS) {
        if (!s->seq_full_warned)
            tb_warn("svc: session %llu has %u packet sequences, discarding chunks of new ones",
                    (unsigned long long)s->id, MAX_SEQS);
        s->seq_full_warned = true;
        return NULL;
    }
    if (s->nseq == s->seqs_cap) {
        size_t ncap = s->seqs_cap ? s->seqs_cap * 2 : 32;
        struct tb_svc_seq *n = realloc(s->seqs, ncap * sizeof(*n));

        if (!n)
            return NULL;
        s->seqs = n;
        s->seqs_cap = ncap;
    }
    if ((s->seq_index_used + 1) * 2 > s->seq_index_cap && index_grow(s))
        return NULL;
    q = &s->seqs[s->nseq];
    q->key = key;
    q->seq_id = (uint32_t)s->nseq + FIRST_SEQ_ID;
    q->uid = uid;
    q->pid = pid;
    q->pending_drop = 0;
    q->has_chunk = q->max_incomplete = q->unregistered = false;
    note_chunk(q, chunk_id, complete);
    i = index_find(s, key);
    s->seq_index[i] = (uint32_t)++s->nseq;
    s->seq_index_used++;
    return q;
}

void tb_svc_session_seq_unregister(struct tb_svc_session *s, uint16_t producer_id,
                                   uint16_t writer_id)
{
    struct tb_svc_seq *q = tb_svc_session_seq_find(s, producer_id, writer_id);

    if (q)
        q->unregistered = true;
}

void tb_svc_session_seq_retire_producer(struct tb_svc_session *s, uint16_t producer_id)
{
    size_t i = 0;

    while (i < s->seq_index_cap) {
        /* A delete may shift another entry into slot i: look at it again. */
        if (s->seq_index[i] && s->seqs[s->seq_index[i] - 1].key >> 16 == producer_id)
            retire_slot(s, i);
        else
            i++;
    }
}

void tb_svc_session_seq_free(struct tb_svc_session *s)
{
    free(s->seqs);
    free(s->seq_index);
    s->seqs = NULL;
    s->seq_index = NULL;
    s->nseq = s->seqs_cap = s->seq_index_cap = s->seq_index_used = 0;
}
