/*
 * trace_buffer_test.c - the central trace buffer driven directly: ordering
 * over many writers, fragment reassembly, patches, chunk id wrap-around,
 * ring and discard policies, re-copied chunks, scraped (incomplete) chunks
 * and hostile chunk contents.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/trace_buffer.h"
#include "tbuf_test_util.h"
#include "tracebpf/shm_abi.h"

/* K writers of several producers; every packet back once, in writer order. */
static void test_many_writers_in_order(void **state)
{
    enum { PRODS = 3, WRITERS = 4, CHUNKS = 20 };
    static struct cb b;
    uint32_t next_idx[PRODS][WRITERS] = {0}, got[PRODS][WRITERS] = {0};
    struct tb_tbuf_stats st;
    uint8_t pk[512];
    struct tb_tbuf *t;
    uint64_t total = 0, n = 0;

    assert_int_equal(tb_tbuf_new(16 << 20, TB_TBUF_POLICY_UNSPECIFIED, &t), 0);
    assert_int_equal(tb_tbuf_get_policy(t), TB_TBUF_POLICY_RING_BUFFER);
    /* Interleave chunk copies over sequences as commits would. */
    for (uint32_t c = 0; c < CHUNKS; c++) {
        for (int p = 0; p < PRODS; p++) {
            for (int w = 0; w < WRITERS; w++) {
                cb_reset(&b);
                for (int k = 0; k < 1 + (int)((c + w) % 7); k++) {
                    uint32_t idx = next_idx[p][w]++;
                    size_t len = make_packet(pk, 8 + (idx * 37) % 400, p + 1, w + 1, idx);

                    cb_rec(&b, pk, len, idx % 2);
                    total += len;
                    n++;
                    if (k == 1)
                        cb_rec(&b, NULL, 0, false); /* inflated-count padding */
                }
                assert_int_equal(cb_copy(t, p + 1, w + 1, c, &b, true), 0);
            }
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        struct tb_tbuf_packet pkt;
        uint16_t prod, wr;
        uint32_t idx;
        long len = read_one(t, &pkt);

        assert_true(len >= 8);
        memcpy(&prod, scratch, 2);
        memcpy(&wr, scratch + 2, 2);
        memcpy(&idx, scratch + 4, 4);
        assert_int_equal(prod, pkt.producer_id);
        assert_int_equal(wr, pkt.writer_id);
        assert_int_equal(pkt.previous_packet_dropped, 0);
        assert_int_equal(idx, got[prod - 1][wr - 1]++);
        make_packet(pk, (size_t)len, prod, wr, idx);
        assert_memory_equal(scratch, pk, (size_t)len);
    }
    expect_empty(t);
    for (int p = 0; p < PRODS; p++)
        for (int w = 0; w < WRITERS; w++)
            assert_int_equal(got[p][w], next_idx[p][w]);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_written, PRODS * WRITERS * CHUNKS);
    assert_int_equal(st.chunks_read, PRODS * WRITERS * CHUNKS);
    assert_int_equal(st.bytes_read, total);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.abi_violations + st.chunks_overwritten + st.chunks_discarded, 0);
    tb_tbuf_free(t);
}

/* Thousands of sequences (the index grows), each read back exactly once. */
static void test_many_sequences(void **state)
{
    enum { PRODS = 200, WRITERS = 20 };
    static uint8_t seen[PRODS][WRITERS];
    static struct cb b;
    struct tb_tbuf_packet pkt;
    uint8_t pk[64];
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(64 << 20, TB_TBUF_POLICY_DISCARD, &t), 0);
    for (int w = 0; w < WRITERS; w++) {
        for (int p = 0; p < PRODS; p++) {
            cb_reset(&b);
            cb_rec(&b, pk, make_packet(pk, 40, p + 1, w + 1000, 0), false);
            cb_rec(&b, pk, make_packet(pk, 41, p + 1, w + 1000, 1), false);
            assert_int_equal(cb_copy(t, p + 1, w + 1000, 3, &b, true), 0);
        }
    }
    for (int i = 0; i < PRODS * WRITERS * 2; i++) {
        long len = read_one(t, &pkt);
        uint8_t *n = &seen[pkt.producer_id - 1][pkt.writer_id - 1000];

        assert_int_equal(len, 40 + *n);
        make_packet(pk, (size_t)len, pkt.producer_id, pkt.writer_id, *n);
        assert_memory_equal(scratch, pk, (size_t)len);
        (*n)++;
    }
    expect_empty(t);
    for (int p = 0; p < PRODS; p++)
        for (int w = 0; w < WRITERS; w++)
            assert_int_equal(seen[p][w], 2);
    tb_tbuf_free(t);
}

/*
 * Writes packet @idx of @len bytes split over @nchunks chunks starting at
 * @first_id, with a whole packet before it in the first chunk and one after
 * it in the last chunk. @shuffle copies the chunks in reverse order.
 */
static void write_fragmented(struct tb_tbuf *t, uint16_t wr, uint32_t first_id, uint32_t idx,
                             size_t len, uint32_t nchunks, bool reverse)
{
    static uint8_t pk[1 << 20];
    static struct cb b[16];
    uint8_t small[32];
    size_t off = 0, per = len / nchunks;

    assert_true(nchunks <= 16);
    make_packet(pk, len, 1, wr, idx);
    for (uint32_t i = 0; i < nchunks; i++) {
        size_t n = i + 1 == nchunks ? len - off : per;

        cb_reset(&b[i]);
        if (i == 0)
            cb_rec(&b[i], small, make_packet(small, 20, 1, wr, idx - 1), false);
        cb_rec(&b[i], pk + off, n, true);
        off += n;
        if (i > 0)
            b[i].flags |= TB_SHM_FLAG_FIRST_CONTINUES;
        if (i + 1 < nchunks)
            b[i].flags |= TB_SHM_FLAG_LAST_CONTINUES;
        else
            cb_rec(&b[i], small, make_packet(small, 24, 1, wr, idx + 1), false);
    }
    for (uint32_t k = 0; k < nchunks; k++) {
        uint32_t i = reverse ? nchunks - 1 - k : k;

        assert_int_equal(cb_copy(t, 1, wr, first_id + i, &b[i], true), 0);
    }
}

static void test_fragments_reassemble(void **state)
{
    static const uint32_t spans[] = {2, 3, 10};
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(4 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    for (size_t i = 0; i < 3; i++) {
        uint16_t wr = (uint16_t)(i + 1);

        write_fragmented(t, wr, 100, 10, 3000 * spans[i] + 7, spans[i], i == 2);
        expect_packet(t, 1, wr, 9, 20, 0);
        expect_packet(t, 1, wr, 10, 3000 * spans[i] + 7, 0);
        expect_packet(t, 1, wr, 11, 24, 0);
        expect_empty(t);
    }
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.readaheads_succeeded, 3);
    assert_int_equal(st.chunks_read, 2 + 3 + 10);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

/* The next fragment is not there yet: wait, then reassemble when it comes. */
static void test_fragment_waits_for_next_chunk(void **state)
{
    static struct cb b;
    uint8_t pk[600];
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    make_packet(pk, sizeof(pk), 1, 1, 0);
    cb_reset(&b);
    cb_rec(&b, pk, 200, true);
    b.flags = TB_SHM_FLAG_LAST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 1, 7, &b, true), 0);
    expect_empty(t);
    cb_reset(&b);
    cb_rec(&b, pk + 200, 400, true);
    b.flags = TB_SHM_FLAG_FIRST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 1, 8, &b, true), 0);
    expect_packet(t, 1, 1, 0, 600, 0);
    expect_empty(t);
    tb_tbuf_free(t);
}

static void test_chunk_id_wraparound(void **state)
{
    static const uint32_t ids[] = {0xFFFFFFFEu, 0xFFFFFFFFu, 0, 1};
    static const int order[] = {2, 0, 3, 1};
    static struct cb b;
    uint8_t pk[300];
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    for (int k = 0; k < 4; k++) {
        int i = order[k];

        cb_reset(&b);
        /* Packet 2i-1 spans chunks i-1 and i (0xFFFFFFFF -> 0 included). */
        if (i > 0) {
            make_packet(pk, 300, 1, 3, (uint32_t)i * 2 - 1);
            cb_rec(&b, pk + 150, 150, true);
            b.flags |= TB_SHM_FLAG_FIRST_CONTINUES;
        }
        cb_rec(&b, pk, make_packet(pk, 50, 1, 3, (uint32_t)i * 2), false);
        if (i < 3) {
            make_packet(pk, 300, 1, 3, (uint32_t)i * 2 + 1);
            cb_rec(&b, pk, 150, true);
            b.flags |= TB_SHM_FLAG_LAST_CONTINUES;
        }
        assert_int_equal(cb_copy(t, 1, 3, ids[i], &b, true), 0);
    }
    for (uint32_t idx = 0; idx < 7; idx++)
        expect_packet(t, 1, 3, idx, idx % 2 ? 300 : 50, 0);
    expect_empty(t);
    tb_tbuf_free(t);
}

/* NeedsPatching blocks the sequence at the last record until patched. */
static void test_patches(void **state)
{
    static struct cb b;
    uint8_t pk[400], fixed[4] = {0xde, 0xad, 0xbe, 0xef}, three[3] = {1, 2, 3};
    struct tb_tbuf_patch p;
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;
    size_t at;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 30, 1, 1, 0), false);
    make_packet(pk, 400, 1, 1, 1);
    memset(pk + 10, 0, 4); /* the size field the patch fills in */
    at = cb_rec(&b, pk, 250, true);
    b.flags = TB_SHM_FLAG_LAST_CONTINUES | TB_SHM_FLAG_NEEDS_PATCHING;
    assert_int_equal(cb_copy(t, 1, 1, 5, &b, true), 0);
    cb_reset(&b);
    cb_rec(&b, pk + 250, 150, true);
    cb_rec(&b, pk, make_packet(pk, 40, 1, 1, 2), false);
    b.flags = TB_SHM_FLAG_FIRST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 1, 6, &b, true), 0);
    /* Another sequence is not blocked by this one. */
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 33, 1, 2, 0), false);
    assert_int_equal(cb_copy(t, 1, 2, 0, &b, true), 0);

    expect_packet(t, 1, 1, 0, 30, 0);
    expect_packet(t, 1, 2, 0, 33, 0);
    expect_empty(t);

    /* Bad patches: unknown chunk, offset past the end, wrong size. */
    p = (struct tb_tbuf_patch){.offset = (uint32_t)at + 10, .data = fixed, .size = 4};
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 99, &p, 1, true), -ENOENT);
    assert_int_equal(tb_tbuf_apply_patches(t, 2, 1, 5, &p, 1, true), -ENOENT);
    p.offset = (uint32_t)b.len + 10000;
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, true), -EINVAL);
    p.offset = 4 + 1 + 30 + 250 - 3; /* payload_size - 3 */
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, true), -EINVAL);
    p = (struct tb_tbuf_patch){.offset = (uint32_t)at + 10, .data = three, .size = 3};
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, true), -EINVAL);
    expect_empty(t);

    p = (struct tb_tbuf_patch){.offset = (uint32_t)at + 10, .data = fixed, .size = 4};
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, true), 0);
    expect_empty(t);                 /* has_more: still waiting */
    p.offset = 4 + 1 + 30 + 250 - 4; /* the last valid offset */
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, false), 0);

    make_packet(pk, 400, 1, 1, 1);
    memcpy(pk + 10, fixed, 4);
    memcpy(pk + 246, fixed, 4);
    assert_int_equal(read_one(t, &(struct tb_tbuf_packet){0}), 400);
    assert_memory_equal(scratch, pk, 400);
    expect_packet(t, 1, 1, 2, 40, 0);
    expect_empty(t);

    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.patches_succeeded, 2);
    assert_int_equal(st.patches_failed, 5);
    /* The chunk is gone once read: a late patch fails harmlessly. */
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 5, &p, 1, false), -ENOENT);
    tb_tbuf_free(t);
}

/* Rejected patches with has_more=false drop the waiting packet, not the sequence. */
static void test_rejected_patch_unblocks(void **state)
{
    static struct cb b;
    uint8_t pk[100], three[3] = {0};
    struct tb_tbuf_patch p = {.offset = 0, .data = three, .size = 3};
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 60, 1, 1, 0), false);
    b.flags = TB_SHM_FLAG_NEEDS_PATCHING;
    assert_int_equal(cb_copy(t, 1, 1, 0, &b, true), 0);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 61, 1, 1, 1), false);
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    expect_empty(t);
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 1, 0, &p, 1, false), -EINVAL);
    expect_packet(t, 1, 1, 1, 61, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_CHUNK_CORRUPTED);
    expect_empty(t);
    tb_tbuf_free(t);
}

/* Write M chunks into a ring that holds P: M-P overwritten, newest P read. */
static void test_ring_overwrite_counts(void **state)
{
    enum { P = 16, M = 40, PAYLOAD = 4096 - TB_TBUF_CHUNK_OVERHEAD };
    static struct cb b;
    uint8_t pk[PAYLOAD];
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_chunk_footprint(PAYLOAD), 4096);
    assert_int_equal(tb_tbuf_new(P * 4096, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    /* Writers 1 and 2 alternate; writer 3 only writes the last chunks. */
    for (uint32_t i = 0; i < M; i++) {
        uint16_t wr = i >= M - 4 ? 3 : (uint16_t)(1 + i % 2);
        uint32_t id = wr == 3 ? i - (M - 4) : i / 2;

        cb_reset(&b);
        cb_rec(&b, pk, make_packet(pk, PAYLOAD - 4, 1, wr, id), true);
        assert_int_equal(b.len, PAYLOAD);
        assert_int_equal(cb_copy(t, 1, wr, id, &b, true), 0);
    }
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_overwritten, M - P);
    assert_int_equal(st.bytes_overwritten, (uint64_t)(M - P) * (PAYLOAD + 8));
    assert_int_equal(st.bytes_used, P * 4096);
    /* Survivors: chunks M-P .. M-5 of writers 1/2 (ids 12..17), then writer 3. */
    for (uint32_t i = M - P; i < M - 4; i += 2) {
        uint32_t drop = i == M - P ? TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_OVERWRITE : 0;

        expect_packet(t, 1, 1, i / 2, PAYLOAD - 4, drop);
    }
    for (uint32_t i = M - P + 1; i < M - 4; i += 2) {
        uint32_t drop = i == M - P + 1 ? TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_OVERWRITE : 0;

        expect_packet(t, 1, 2, i / 2, PAYLOAD - 4, drop);
    }
    for (uint32_t i = 0; i < 4; i++)
        expect_packet(t, 1, 3, i, PAYLOAD - 4, 0);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_read, P);
    tb_tbuf_free(t);
}

static void test_discard_policy(void **state)
{
    enum { P = 8, PAYLOAD = 1000 };
    static struct cb b;
    uint8_t pk[PAYLOAD];
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(P * tb_tbuf_chunk_footprint(PAYLOAD), TB_TBUF_POLICY_DISCARD, &t),
                     0);
    for (uint32_t i = 0; i < P + 3; i++) {
        cb_reset(&b);
        cb_rec(&b, pk, make_packet(pk, PAYLOAD - 4, 1, 1, i), true);
        assert_int_equal(cb_copy(t, 1, 1, i, &b, true), i < P ? 0 : -ENOSPC);
    }
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_discarded, 3);
    assert_int_equal(st.chunks_overwritten, 0);
    for (uint32_t i = 0; i < P; i++)
        expect_packet(t, 1, 1, i, PAYLOAD - 4, 0);
    expect_empty(t);
    /* Reading drained the buffer: writing works again; the gap is flagged. */
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, PAYLOAD - 4, 1, 1, P + 3), true);
    assert_int_equal(cb_copy(t, 1, 1, P + 3, &b, true), 0);
    expect_packet(t, 1, 1, P + 3, PAYLOAD - 4, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_READ_GAP);
    /* A chunk bigger than the whole buffer is discarded under any policy. */
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 1, 99, tb_shm_packets_make(0, 0), b.p,
                                        TB_TBUF_MAX_CHUNK_PAYLOAD, true),
                     -ENOSPC);
    tb_tbuf_free(t);
}

/* Scrape (incomplete) then commit: the last record appears once, late. */
static void test_rewrite_after_scrape(void **state)
{
    static struct cb b;
    uint8_t pk[100];
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    cb_reset(&b);
    for (uint32_t i = 0; i < 3; i++)
        cb_rec(&b, pk, make_packet(pk, 40 + i, 1, 1, i), false);
    /* The hidden last record may be half-written garbage: not a violation. */
    b.p[b.len - 42] = 0xff;
    assert_int_equal(cb_copy(t, 1, 1, 0, &b, false), 0);
    expect_packet(t, 1, 1, 0, 40, 0);
    expect_packet(t, 1, 1, 1, 41, 0);
    expect_empty(t);

    cb_reset(&b);
    for (uint32_t i = 0; i < 3; i++)
        cb_rec(&b, pk, make_packet(pk, 40 + i, 1, 1, i), false);
    assert_int_equal(cb_copy(t, 1, 1, 0, &b, true), 0);
    expect_packet(t, 1, 1, 2, 42, 0);
    expect_empty(t);

    /* Copied twice before any read (scrape then commit): no duplicates. */
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 50, 1, 1, 3), false);
    cb_rec(&b, pk, make_packet(pk, 51, 1, 1, 4), false);
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, false), 0);
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    expect_packet(t, 1, 1, 3, 50, 0);
    expect_packet(t, 1, 1, 4, 51, 0);
    expect_empty(t);
    /* A commit of a chunk already read whole adds nothing. */
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    expect_empty(t);

    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_rewritten, 4);
    assert_int_equal(st.abi_violations, 0);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

static void test_corrupt_chunks_rejected(void **state)
{
    static struct cb b;
    uint8_t pk[64];
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 30, 1, 1, 0), false);
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 0, 0, tb_shm_packets_make(1, 0), b.p, b.len, true),
                     -EINVAL);
    assert_int_equal(
        tb_tbuf_copy_chunk(t, 1, 32768, 0, tb_shm_packets_make(1, 0), b.p, b.len, true), -EINVAL);
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 1, 0, tb_shm_packets_make(1, 0), b.p,
                                        TB_TBUF_MAX_CHUNK_PAYLOAD + 1, true),
                     -EINVAL);
    /* Size past the end, count larger than the records, 5-byte varint. */
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 1, 0, tb_shm_packets_make(1, 0), b.p, 20, true),
                     -EINVAL);
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 1, 0, tb_shm_packets_make(2, 0), b.p, b.len, true),
                     -EINVAL);
    memset(b.p, 0x80, 8);
    assert_int_equal(tb_tbuf_copy_chunk(t, 1, 1, 0, tb_shm_packets_make(1, 0), b.p, 8, true),
                     -EINVAL);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.abi_violations, 6);
    assert_int_equal(st.chunks_written, 0);
    expect_empty(t);

    /* A patch that breaks a stored chunk's framing is caught on read. */
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 30, 1, 1, 1), true);
    cb_rec(&b, pk, make_packet(pk, 31, 1, 1, 2), true);
    b.flags = TB_SHM_FLAG_NEEDS_PATCHING;
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    assert_int_equal(tb_tbuf_apply_patches(
                         t, 1, 1, 1,
                         &(struct tb_tbuf_patch){
                             .offset = 34, .data = (uint8_t[]){0xff, 0xff, 0xff, 0x0f}, .size = 4},
                         1, false),
                     0);
    expect_packet(t, 1, 1, 1, 30, 0);
    expect_empty(t);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 32, 1, 1, 3), true);
    assert_int_equal(cb_copy(t, 1, 1, 2, &b, true), 0);
    expect_packet(t, 1, 1, 3, 32, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_CHUNK_CORRUPTED);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.abi_violations, 7);
    tb_tbuf_free(t);
}

/* Drop sentinel, orphan continuation and a gap inside a fragment chain. */
static void test_losses_flag_next_packet(void **state)
{
    static struct cb b;
    uint8_t pk[200];
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    /* Writer 1: a packet, then an aborted one (sentinel), then chunk 1. */
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 20, 1, 1, 0), false);
    memcpy(b.p + b.len, (uint8_t[]){0xff, 0xff, 0xff, 0x7f}, 4);
    b.len += 4;
    b.count++;
    assert_int_equal(cb_copy(t, 1, 1, 0, &b, true), 0);
    cb_reset(&b);
    cb_rec(&b, pk, make_packet(pk, 21, 1, 1, 1), false);
    assert_int_equal(cb_copy(t, 1, 1, 1, &b, true), 0);
    expect_packet(t, 1, 1, 0, 20, 0);
    expect_packet(t, 1, 1, 1, 21, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_WRITER_ABORT);
    expect_empty(t);

    /* Writer 2: chunk 5 continues a packet whose start was never copied. */
    cb_reset(&b);
    cb_rec(&b, pk, 100, true);
    cb_rec(&b, pk, make_packet(pk, 22, 1, 2, 0), false);
    b.flags = TB_SHM_FLAG_FIRST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 2, 5, &b, true), 0);
    expect_packet(t, 1, 2, 0, 22, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_ORPHAN_CONTINUATION);

    /* Writer 3: chunk 0 starts a packet, chunk 1 is lost, chunk 2 continues. */
    cb_reset(&b);
    cb_rec(&b, pk, 100, true);
    b.flags = TB_SHM_FLAG_LAST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 3, 0, &b, true), 0);
    cb_reset(&b);
    cb_rec(&b, pk, 50, true);
    cb_rec(&b, pk, make_packet(pk, 23, 1, 3, 0), false);
    b.flags = TB_SHM_FLAG_FIRST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 3, 2, &b, true), 0);
    expect_packet(t, 1, 3, 0, 23,
                  TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_REASSEMBLY_GAP | TB_TBUF_DROP_READ_GAP |
                      TB_TBUF_DROP_ORPHAN_CONTINUATION);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.trace_writer_packet_loss, 1);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_writers_in_order),
        cmocka_unit_test(test_many_sequences),
        cmocka_unit_test(test_fragments_reassemble),
        cmocka_unit_test(test_fragment_waits_for_next_chunk),
        cmocka_unit_test(test_chunk_id_wraparound),
        cmocka_unit_test(test_patches),
        cmocka_unit_test(test_rejected_patch_unblocks),
        cmocka_unit_test(test_ring_overwrite_counts),
        cmocka_unit_test(test_discard_policy),
        cmocka_unit_test(test_rewrite_after_scrape),
        cmocka_unit_test(test_corrupt_chunks_rejected),
        cmocka_unit_test(test_losses_flag_next_packet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
