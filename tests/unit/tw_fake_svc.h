/*
 * tw_fake_svc.h - a small stand-in for the tracing service, shared by the
 * TraceWriter tests: a real memfd SMB and arbiter, CommitData handling that
 * copies and frees chunks through the ABI state machine and applies
 * patches, a reader that joins fragments per writer in chunk order, and a
 * track event written and checked field by field with protobuf-c.
 * Test code: failures are cmocka assertions. Include after <cmocka.h>.
 */
#ifndef TB_TESTS_TW_FAKE_SVC_H
#define TB_TESTS_TW_FAKE_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pb_writer.h"
#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "common/trace_writer.h"

#define MAX_CHUNKS  4096
#define MAX_PACKETS 20000

struct stored_chunk {
    uint32_t chunk_id;
    uint16_t writer_id;
    uint16_t packets; /* header u16, flags updated by patching */
    uint32_t size;
    uint8_t *bytes; /* whole chunk copy, header included */
};

struct packet {
    uint16_t writer_id;
    size_t len;
    uint8_t *data;
};

struct svc {
    struct tb_shm *shm;
    struct tb_arbiter *arb;
    size_t nchunks;
    struct stored_chunk chunks[MAX_CHUNKS];
    size_t npackets;
    struct packet packets[MAX_PACKETS];
    uint32_t aborted; /* drop sentinels seen */
    uint32_t empty;   /* zero-length records seen */
    uint32_t patched; /* patches applied */
    uint32_t flagged; /* chunks that arrived with NEEDS_PATCHING */
    uint32_t blocked; /* chunks still NEEDS_PATCHING at read time */
};

/* svc_new() - an SMB of @size bytes in @page_size pages with its arbiter. Free with svc_free(). */
struct svc *svc_new(size_t size, size_t page_size);
/* svc_free() - free @s, its SMB, arbiter, chunk copies and packets. */
void svc_free(struct svc *s);
/* svc_commit() - what CommitData does: move listed chunks out, then apply patches. */
void svc_commit(struct svc *s);
/* svc_read() - read every stored chunk per writer in chunk_id order into s->packets. */
void svc_read(struct svc *s);
/* big_string() - a deterministic string of @len chars (static storage, < 40000). */
const char *big_string(size_t len);
/* write_event() - a track event 4 levels deep whose innermost string is @big_len long. */
void write_event(struct tb_pbw *w, uint32_t i, size_t big_len);
/* check_event() - decode @p and assert it is write_event(@i, @big_len) with @drop_mark. */
void check_event(const struct packet *p, uint32_t i, size_t big_len, uint32_t drop_mark);
/* new_writer() - a TraceWriter on @s's arbiter (target buffer 7). */
struct tb_tw *new_writer(struct svc *s, uint16_t writer_id);

#endif /* TB_TESTS_TW_FAKE_SVC_H */
