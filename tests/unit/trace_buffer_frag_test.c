/*
 * trace_buffer_frag_test.c - the central trace buffer when a packet
 * fragmented over two chunks meets scrapes and late commits, as the kernel
 * producer's big ftrace bundles do: chunk K is scraped while its last record
 * (the packet's first fragment) is still being written and read up to it,
 * then K and K+1 are committed, in either order, with or without a scrape of
 * K+1 in between. The packet must come out whole, once, with no loss flag.
 * Also what happens when the writer is forgotten between K and K+1 (the
 * service's UnregisterTraceWriter): the packet is lost and the next one is
 * flagged, which is why a producer must commit before it unregisters.
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

enum { WR = 3, K = 41, BIG = 2, BIG_LEN = 1500, HEAD_LEN = 600 };

/*
 * Chunk K: packets 0 and 1, then the first HEAD_LEN bytes of packet BIG.
 * Chunk K+1: the rest of packet BIG, then packets 3 and 4.
 */
static struct cb ck, ck1;

static size_t small_len(uint32_t idx)
{
    return 40 + idx;
}

static void build_chunks(void)
{
    static uint8_t big[BIG_LEN];
    uint8_t pk[64];

    make_packet(big, sizeof(big), 1, WR, BIG);
    cb_reset(&ck);
    cb_rec(&ck, pk, make_packet(pk, small_len(0), 1, WR, 0), false);
    cb_rec(&ck, pk, make_packet(pk, small_len(1), 1, WR, 1), false);
    cb_rec(&ck, big, HEAD_LEN, true);
    ck.flags = TB_SHM_FLAG_LAST_CONTINUES;

    cb_reset(&ck1);
    cb_rec(&ck1, big + HEAD_LEN, BIG_LEN - HEAD_LEN, true);
    cb_rec(&ck1, pk, make_packet(pk, small_len(3), 1, WR, 3), false);
    cb_rec(&ck1, pk, make_packet(pk, small_len(4), 1, WR, 4), false);
    ck1.flags = TB_SHM_FLAG_FIRST_CONTINUES;
}

/*
 * A scrape of @c as the service sees it while the writer is still in the
 * last record: the header has no LAST_CONTINUES yet and the record's size
 * prefix is not final (a fragment's size is written when it ends).
 */
static void scrape(struct tb_tbuf *t, uint32_t id, const struct cb *c, size_t last_rec_off)
{
    static struct cb s;

    s = *c;
    s.flags &= (uint8_t)~TB_SHM_FLAG_LAST_CONTINUES;
    memset(s.p + last_rec_off, 0, 4);
    assert_int_equal(cb_copy(t, 1, WR, id, &s, false), 0);
}

static void scrape_k(struct tb_tbuf *t)
{
    /* The fragment's 4-byte prefix sits just before its HEAD_LEN bytes. */
    scrape(t, K, &ck, ck.len - HEAD_LEN - 4);
}

static void scrape_k1(struct tb_tbuf *t)
{
    scrape(t, K + 1, &ck1, ck1.len - small_len(4) - 1);
}

static void commit(struct tb_tbuf *t, uint32_t id, const struct cb *c)
{
    assert_int_equal(cb_copy(t, 1, WR, id, c, true), 0);
}

static void expect_small(struct tb_tbuf *t, uint32_t idx, uint32_t dropped)
{
    expect_packet(t, 1, WR, idx, small_len(idx), dropped);
}

/* The rest of the sequence after packets 0 and 1 were read: whole, once, no loss. */
static void expect_rest(struct tb_tbuf *t, uint32_t from)
{
    struct tb_tbuf_stats st;

    if (from <= BIG)
        expect_packet(t, 1, WR, BIG, BIG_LEN, 0);
    for (uint32_t idx = from > 3 ? from : 3; idx <= 4; idx++)
        expect_small(t, idx, 0);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.readaheads_succeeded, 1);
    assert_int_equal(st.abi_violations, 0);
    assert_int_equal(st.bytes_used, 0);
}

static struct tb_tbuf *scraped_k_read(void)
{
    struct tb_tbuf *t;

    build_chunks();
    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    scrape_k(t);
    expect_small(t, 0, 0);
    expect_small(t, 1, 0);
    expect_empty(t); /* the first fragment stays hidden */
    return t;
}

/* Scrape of K read, then K and K+1 committed in order. */
static void test_scrape_then_commits(void **state)
{
    struct tb_tbuf *t = scraped_k_read();

    commit(t, K, &ck);
    expect_empty(t); /* the packet waits for K+1 */
    commit(t, K + 1, &ck1);
    expect_rest(t, BIG);
    tb_tbuf_free(t);
}

/* Scrape of K read, a scrape of K+1 arrives before both commits. */
static void test_scrape_next_before_commits(void **state)
{
    struct tb_tbuf *t = scraped_k_read();

    scrape_k1(t);
    commit(t, K, &ck);
    commit(t, K + 1, &ck1);
    expect_rest(t, BIG);
    tb_tbuf_free(t);
}

/*
 * The writer moved on to K+1, so a later scrape finds K Complete (copied
 * whole) and K+1 being written; read in between, then both commits arrive.
 */
static void test_second_scrape_completes_k(void **state)
{
    struct tb_tbuf *t = scraped_k_read();

    commit(t, K, &ck);
    scrape_k1(t);
    expect_packet(t, 1, WR, BIG, BIG_LEN, 0);
    expect_small(t, 3, 0);
    expect_empty(t); /* packet 4 is still being written */
    commit(t, K, &ck);
    commit(t, K + 1, &ck1);
    expect_rest(t, 4);
    tb_tbuf_free(t);
}

/* Scrape of K read, then the commits arrive K+1 first. */
static void test_next_committed_first(void **state)
{
    struct tb_tbuf *t = scraped_k_read();

    commit(t, K + 1, &ck1);
    commit(t, K, &ck);
    expect_rest(t, BIG);
    tb_tbuf_free(t);
}

/* No scrape at all, the commits reversed: the same packets. */
static void test_commits_reversed_no_scrape(void **state)
{
    struct tb_tbuf *t;

    build_chunks();
    assert_int_equal(tb_tbuf_new(1 << 20, TB_TBUF_POLICY_RING_BUFFER, &t), 0);
    commit(t, K + 1, &ck1);
    commit(t, K, &ck);
    expect_small(t, 0, 0);
    expect_small(t, 1, 0);
    expect_rest(t, BIG);
    tb_tbuf_free(t);
}

/*
 * The e2e symptom: the writer is forgotten (UnregisterTraceWriter) after K
 * was committed but before K+1. The old writer's packet can never be
 * completed and is dropped; K+1, committed late, starts the new writer's
 * sequence with a continuation of nothing, flagged as an orphan.
 */
static void test_forget_between_fragments(void **state)
{
    struct tb_tbuf_stats st;
    struct tb_tbuf *t = scraped_k_read();

    commit(t, K, &ck);
    tb_tbuf_forget_writer(t, 1, WR);
    commit(t, K + 1, &ck1);
    expect_small(t, 3, TB_TBUF_DROP_PRESENT | TB_TBUF_DROP_ORPHAN_CONTINUATION);
    expect_small(t, 4, 0);
    expect_empty(t);
    tb_tbuf_get_stats(t, &st);
    assert_int_equal(st.readaheads_succeeded, 0);
    assert_int_equal(st.bytes_used, 0);
    tb_tbuf_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_then_commits),
        cmocka_unit_test(test_scrape_next_before_commits),
        cmocka_unit_test(test_second_scrape_completes_k),
        cmocka_unit_test(test_next_committed_first),
        cmocka_unit_test(test_commits_reversed_no_scrape),
        cmocka_unit_test(test_forget_between_fragments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
