/*
 * trace_buffer_recopy_test.c - the central trace buffer when chunks come
 * more than once or writer ids are reused: commits arriving after their
 * scraped copies were read (each packet exactly once, records the scrape
 * did not have delivered late), late chunks that were never read, and
 * forgetting a writer so a recycled id starts a fresh sequence while the
 * old writer's unread chunks still drain first.
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

#define RG (TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_READ_GAP)

static struct cb b;
static uint8_t pk[256];

/* Chunk @id of (1, @wr) holding packets first .. first+n-1 (40 + index bytes). */
static void build(uint16_t wr, uint32_t first, uint32_t n)
{
    cb_reset(&b);
    for (uint32_t i = first; i < first + n; i++)
        cb_rec(&b, pk, make_packet(pk, 40 + i, 1, wr, i), false);
}

static void copy(struct tb_tbuf *t, uint16_t wr, uint32_t id, uint32_t first, uint32_t n,
                 bool complete)
{
    build(wr, first, n);
    assert_int_equal(cb_copy(t, 1, wr, id, &b, complete), 0);
}

static void expect(struct tb_tbuf *t, uint16_t wr, uint32_t idx, uint32_t dropped)
{
    expect_packet(t, 1, wr, idx, 40 + idx, dropped);
}

/*
 * The defect this guards: scrapes of chunks 0, 1, 2 are read, then all three
 * commits arrive. Only records the scrapes hid may come out, once each, even
 * where the committed copy holds more records than its scrape exposed.
 */
static void test_late_commits_after_scrapes(void **state)
{
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    /* Scrapes hide their last record: 0 shows 0-1, 1 shows 3, 2 shows 6. */
    copy(t, 1, 0, 0, 3, false);
    expect(t, 1, 0, 0);
    expect(t, 1, 1, 0);
    expect_empty(t);
    copy(t, 1, 1, 3, 2, false);
    expect(t, 1, 3, RG); /* the previous chunk was read while incomplete */
    expect_empty(t);
    copy(t, 1, 2, 6, 2, false);
    expect(t, 1, 6, RG);
    expect_empty(t);

    /* Commits: 0 as scraped (+2), 1 grew to 3-5 (+4, +5), 2 as scraped (+7). */
    copy(t, 1, 0, 0, 3, true);
    copy(t, 1, 1, 3, 3, true);
    copy(t, 1, 2, 6, 2, true);
    expect(t, 1, 2, 0);
    expect(t, 1, 4, 0);
    expect(t, 1, 5, 0);
    expect(t, 1, 7, 0);
    expect_empty(t);

    /* The same commits again (a confused producer) add nothing. */
    copy(t, 1, 0, 0, 3, true);
    copy(t, 1, 1, 3, 3, true);
    copy(t, 1, 2, 6, 2, true);
    expect_empty(t);

    /* The next chunk follows a completely read one: no loss reported. */
    copy(t, 1, 3, 8, 2, true);
    expect(t, 1, 8, 0);
    expect(t, 1, 9, 0);
    expect_empty(t);

    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_written, 10);
    assert_int_equal(st.chunks_rewritten, 6);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

/* Commits interleaved with reads, one scrape of each of 8 chunks in flight. */
static void test_many_scrapes_in_flight(void **state)
{
    enum { N = 8 };
    uint32_t seen[N * 3] = {0};
    struct tb_tbuf_packet pkt;
    struct tb_tbuf *t;
    long len;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    for (uint32_t id = 0; id < N; id++) {
        copy(t, 2, id, id * 3, 3, false);
        /* A second, identical scrape before the read must not matter. */
        copy(t, 2, id, id * 3, 3, false);
    }
    for (uint32_t id = 0; id < N; id++)
        copy(t, 2, id, id * 3, 3, true);
    while ((len = read_one(t, &pkt)) > 0) {
        uint32_t idx;

        memcpy(&idx, scratch + 4, 4);
        assert_true(idx < N * 3);
        assert_int_equal(len, 40 + idx);
        seen[idx]++;
    }
    assert_int_equal(len, -ENODATA);
    for (uint32_t i = 0; i < N * 3; i++)
        assert_int_equal(seen[i], 1);

    /* Read the scrapes first, then the commits: still each packet once. */
    memset(seen, 0, sizeof(seen));
    for (uint32_t id = N; id < 2 * N; id++) {
        copy(t, 2, id, (id - N) * 3, 3, false);
        while (read_one(t, &pkt) > 0) {
            uint32_t idx;

            memcpy(&idx, scratch + 4, 4);
            seen[idx]++;
        }
    }
    for (uint32_t id = N; id < 2 * N; id++)
        copy(t, 2, id, (id - N) * 3, 3, true);
    while (read_one(t, &pkt) > 0) {
        uint32_t idx;

        memcpy(&idx, scratch + 4, 4);
        seen[idx]++;
    }
    for (uint32_t i = 0; i < N * 3; i++)
        assert_int_equal(seen[i], 1);
    tb_tbuf_free(t);
}

/* A chunk that arrives after later ones were read, but was never read itself. */
static void test_late_unread_chunk_is_new(void **state)
{
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    copy(t, 3, 0, 0, 1, true);
    copy(t, 3, 2, 2, 1, true);
    expect(t, 3, 0, 0);
    expect(t, 3, 2, RG);
    copy(t, 3, 1, 1, 1, true);
    expect(t, 3, 1, RG);
    expect_empty(t);
    copy(t, 3, 1, 1, 1, true);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_rewritten, 1);
    tb_tbuf_free(t);
}

/* A scrape arriving after the committed copy (still stored) changes nothing. */
static void test_scrape_never_replaces_commit(void **state)
{
    static const uint8_t fix[4] = {0};
    struct tb_tbuf_patch patch = {.offset = 0, .data = fix, .size = 4};
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    /* The committed copy's last record waits for a patch. */
    build(4, 0, 3);
    b.flags = TB_SHM_FLAG_NEEDS_PATCHING;
    assert_int_equal(cb_copy(t, 1, 4, 0, &b, true), 0);
    expect(t, 4, 0, 0);
    expect(t, 4, 1, 0);
    expect_empty(t);
    copy(t, 4, 0, 0, 3, false);
    expect_empty(t);
    /* Patch bytes over record 0, already read: record 2 is untouched. */
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 4, 0, &patch, 1, false), 0);
    expect(t, 4, 2, 0);
    expect_empty(t);
    tb_tbuf_free(t);
}

/* A recycled writer id starts over at chunk 0: not a re-copy, no stale flags. */
static void test_forget_writer_fresh_sequence(void **state)
{
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    for (uint32_t id = 0; id < 4; id++)
        copy(t, 5, id, id * 2, 2, true);
    /* The old writer's last chunk ends in an aborted packet. */
    build(5, 8, 1);
    memcpy(b.p + b.len, (uint8_t[]){0xff, 0xff, 0xff, 0x7f}, 4);
    b.len += 4;
    b.count++;
    assert_int_equal(cb_copy(t, 1, 5, 4, &b, true), 0);
    for (uint32_t i = 0; i < 9; i++)
        expect(t, 5, i, 0);
    expect_empty(t);

    tb_tbuf_forget_writer(t, 1, 5);
    tb_tbuf_forget_writer(t, 1, 77); /* unknown: ignored */
    copy(t, 5, 0, 100, 2, true);
    copy(t, 5, 1, 102, 1, true);
    expect(t, 5, 100, 0);
    expect(t, 5, 101, 0);
    expect(t, 5, 102, 0);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_rewritten, 0);
    assert_int_equal(st.trace_writer_packet_loss, 1);

    /* Without forgetting, the same restart would be taken for re-copies. */
    copy(t, 5, 0, 200, 2, true);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.chunks_rewritten, 1);
    tb_tbuf_free(t);
}

/*
 * Forgotten with chunks still unread: they come out first and never wait for
 * patches or fragments that will not come; the new writer's packets follow.
 */
static void test_forget_writer_with_unread_chunks(void **state)
{
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;

    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    copy(t, 6, 0, 0, 2, true);
    /* Chunk 1: packet 2, then a record that waits for a patch. */
    build(6, 2, 2);
    b.flags = TB_SHM_FLAG_NEEDS_PATCHING;
    assert_int_equal(cb_copy(t, 1, 6, 1, &b, true), 0);
    expect(t, 6, 0, 0);
    expect(t, 6, 1, 0);
    expect(t, 6, 2, 0);
    expect_empty(t); /* waits for the patch */
    /* Chunk 2: packet 4, then the start of a packet continued in chunk 3. */
    build(6, 4, 2);
    b.flags = TB_SHM_FLAG_LAST_CONTINUES;
    assert_int_equal(cb_copy(t, 1, 6, 2, &b, true), 0);
    copy(t, 7, 0, 0, 1, true); /* another writer, to share the reader's ring */

    tb_tbuf_forget_writer(t, 1, 6);
    /* Patches for the old chunk no longer find it: the key is the new writer's. */
    assert_int_equal(tb_tbuf_apply_patches(t, 1, 6, 1, NULL, 0, false), -ENOENT);
    copy(t, 6, 0, 10, 2, true);

    /* Old writer: packet 4 after the dropped record; the fragment is dropped. */
    expect(t, 6, 4, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_CHUNK_CORRUPTED);
    expect(t, 7, 0, 0);
    expect(t, 6, 10, 0);
    expect(t, 6, 11, 0);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

/* Forgetting a producer ends all its writers and no other producer's. */
static void test_forget_producer(void **state)
{
    enum { WRITERS = 300 };
    struct tb_tbuf_packet pkt;
    struct tb_tbuf *t;
    uint32_t got = 0;

    assert_int_equal(tb_tbuf_new(8 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    for (uint16_t wr = 1; wr <= WRITERS; wr++) {
        build(wr, 0, 1);
        assert_int_equal(cb_copy(t, 1, wr, 0, &b, true), 0);
        assert_int_equal(cb_copy(t, 2, wr, 0, &b, true), 0);
    }
    while (read_one(t, &pkt) > 0)
        got++;
    assert_int_equal(got, 2 * WRITERS);
    /* Producer 1 leaves while producer 2 still has an unread chunk per writer. */
    for (uint16_t wr = 1; wr <= WRITERS; wr++) {
        build(wr, 1, 1);
        assert_int_equal(cb_copy(t, 2, wr, 1, &b, true), 0);
    }
    tb_tbuf_forget_producer(t, 1);
    /* Producer 1's id comes back: chunk 0 is new; producer 2's chunk 0 is not. */
    for (uint16_t wr = 1; wr <= WRITERS; wr++) {
        build(wr, 0, 1);
        assert_int_equal(cb_copy(t, 1, wr, 0, &b, true), 0);
        assert_int_equal(cb_copy(t, 2, wr, 0, &b, true), 0);
    }
    got = 0;
    while (read_one(t, &pkt) > 0) {
        uint32_t idx;

        memcpy(&idx, scratch + 4, 4);
        assert_int_equal(pkt.previous_packet_dropped, 0);
        assert_int_equal(idx, pkt.producer_id == 1 ? 0 : 1);
        got++;
    }
    assert_int_equal(got, 2 * WRITERS);
    tb_tbuf_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_commits_after_scrapes),
        cmocka_unit_test(test_many_scrapes_in_flight),
        cmocka_unit_test(test_late_unread_chunk_is_new),
        cmocka_unit_test(test_scrape_never_replaces_commit),
        cmocka_unit_test(test_forget_writer_fresh_sequence),
        cmocka_unit_test(test_forget_writer_with_unread_chunks),
        cmocka_unit_test(test_forget_producer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
