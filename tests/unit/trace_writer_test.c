/*
 * trace_writer_test.c - TraceWriter framing on a real memfd SMB through the
 * real arbiter: many small packets, packets fragmented over 2, 3 and 9
 * chunks with their size patches, and what a scraper sees in a chunk still
 * being written. Every packet is reassembled by the stand-in service
 * (tw_fake_svc.c) and decoded with protobuf-c. Drops, stalls and threads
 * are in trace_writer_drop_test.c.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/chunk_reader.h"
#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "common/trace_writer.h"
#include "tw_fake_svc.h"

static void test_many_small_packets(void **state)
{
    struct svc *s = svc_new(256 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 1);
    struct tb_tw_stats st;
    const uint32_t n = 5000;

    for (uint32_t i = 0; i < n; i++) {
        write_event(tb_tw_begin_packet(tw), i, 0);
        assert_int_equal(tb_tw_end_packet(tw), 0);
        if (i % 500 == 0)
            svc_commit(s);
    }
    assert_int_equal(tb_tw_flush(tw), 0);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, n);
    for (uint32_t i = 0; i < n; i++)
        check_event(&s->packets[i], i, 0, 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_written, n);
    assert_int_equal(st.packets_dropped, 0);
    /* a packet straddling a chunk end is split, not moved */
    assert_true(st.fragments < s->nchunks);
    /* chunk ids are consecutive from 0 and every chunk came back */
    assert_int_equal(st.chunks_returned, s->nchunks);
    assert_int_equal(tb_tw_next_chunk_id(tw), s->nchunks);
    for (size_t i = 0; i < s->nchunks; i++)
        assert_int_equal(s->chunks[i].chunk_id, i);
    /* a chunk given back between packets still had its count inflated:
     * that record became an empty one; a chunk left mid-packet had not */
    assert_int_equal(s->empty, s->nchunks - st.fragments);
    /* a small packet that stayed in its chunk has a 1-byte size prefix */
    assert_int_equal(s->chunks[0].bytes[TB_SHM_CHUNK_HEADER_SIZE], s->packets[0].len);
    assert_true(s->packets[0].len < 0x80);
    tb_tw_destroy(tw);
    svc_free(s);
}

static void run_fragmented(size_t big_len, uint32_t expect_fragments)
{
    struct svc *s = svc_new(64 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 3);
    struct tb_tw_stats st;

    write_event(tb_tw_begin_packet(tw), 1, 100);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    write_event(tb_tw_begin_packet(tw), 2, big_len);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    write_event(tb_tw_begin_packet(tw), 3, 50);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.fragments, expect_fragments);
    /* track_event, debug annotation, nested value, dict value: four sizes
     * lie in the first chunk of the big packet */
    assert_int_equal(st.patches, 4);

    svc_commit(s);
    assert_int_equal(s->nchunks, expect_fragments + 1);
    assert_int_equal(s->flagged, 1);
    assert_int_equal(s->patched, 4);
    svc_read(s);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, 3);
    check_event(&s->packets[0], 1, 100, 0);
    check_event(&s->packets[1], 2, big_len, 0);
    check_event(&s->packets[2], 3, 50, 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

static void test_fragment_over_two_chunks(void **state)
{
    run_fragmented(6000, 1); /* chunk payload is 4080 bytes */
}

static void test_fragment_over_three_chunks(void **state)
{
    run_fragmented(10000, 2);
}

static void test_fragment_over_many_chunks(void **state)
{
    run_fragmented(36000, 8);
}

/* What a scraper sees in a chunk still being written. */
static void test_inflated_count_lets_scraper_read(void **state)
{
    struct svc *s = svc_new(16 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 2);
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct tb_shm_chunk c;
    uint8_t copy[4096];
    uint16_t packets;
    int found = -1;

    for (uint32_t i = 0; i < 3; i++) {
        write_event(tb_tw_begin_packet(tw), i, 0);
        assert_int_equal(tb_tw_end_packet(tw), 0);
    }
    for (size_t p = 0; p < s->shm->num_pages && found < 0; p++)
        if (tb_shm_chunk_state(&s->shm->abi, p, 0) == TB_SHM_CHUNK_BEING_WRITTEN)
            found = (int)p;
    assert_true(found >= 0);
    assert_int_equal(tb_shm_get_chunk(&s->shm->abi, (size_t)found, 0, &c), 0);
    packets = tb_shm_chunk_packets_load(tb_shm_chunk_hdr(&c));
    assert_int_equal(tb_shm_packets_count(packets), 4);
    /* scraping rule: the last counted record is ignored; the rest are whole */
    memcpy(copy, c.begin, c.size);
    assert_int_equal(tb_chunk_reader_init_payload(&r, tb_shm_packets_make(3, 0),
                                                  copy + TB_SHM_CHUNK_HEADER_SIZE,
                                                  c.size - TB_SHM_CHUNK_HEADER_SIZE),
                     0);
    for (uint32_t i = 0; i < 3; i++) {
        struct packet p;

        assert_int_equal(tb_chunk_reader_next(&r, &rec), 1);
        p.data = (uint8_t *)rec.data;
        p.len = rec.len;
        check_event(&p, i, 0, 0);
    }
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
    tb_tw_destroy(tw);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, 3);
    assert_int_equal(s->empty, 1);
    svc_free(s);
}

/* Write one packet: an outer message around @n children of @child_len
 * bytes each, so every child crosses a chunk boundary. */
static void write_bundle(struct tb_pbw *w, uint32_t n, size_t child_len)
{
    tb_pbw_begin_nested(w, 42);
    for (uint32_t i = 0; i < n; i++) {
        tb_pbw_begin_nested(w, 3);
        tb_pbw_append_varint(w, 1, i);
        tb_pbw_append_bytes(w, 2, big_string(child_len), child_len);
        tb_pbw_end_nested(w);
    }
    tb_pbw_end_nested(w);
}

/* A long bundle whose children each straddle a chunk end: more sizes are
 * left behind in returned chunks than any nesting depth, and every one of
 * them must still be patched. The reassembled packet is compared with the
 * same message encoded in memory. */
static void test_patches_beyond_depth(void **state)
{
    const uint32_t n = 3 * TB_PBW_MAX_DEPTH;
    struct svc *s = svc_new(512 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 4);
    struct tb_tw_stats st;
    struct tb_pbw ref;
    const uint8_t *want;
    size_t want_len;

    write_bundle(tb_tw_begin_packet(tw), n, 4000);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 0);
    assert_true(st.fragments > TB_PBW_MAX_DEPTH);
    assert_true(st.patches > TB_PBW_MAX_DEPTH);

    svc_commit(s);
    assert_int_equal(s->patched, st.patches);
    svc_read(s);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, 1);
    assert_int_equal(tb_pbw_init_dyn(&ref, 0), 0);
    write_bundle(&ref, n, 4000);
    want = tb_pbw_dyn_data(&ref, &want_len);
    assert_non_null(want);
    assert_int_equal(s->packets[0].len, want_len);
    assert_memory_equal(s->packets[0].data, want, want_len);
    tb_pbw_dyn_free(&ref);
    tb_tw_destroy(tw);
    svc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_small_packets),
        cmocka_unit_test(test_fragment_over_two_chunks),
        cmocka_unit_test(test_fragment_over_three_chunks),
        cmocka_unit_test(test_fragment_over_many_chunks),
        cmocka_unit_test(test_inflated_count_lets_scraper_read),
        cmocka_unit_test(test_patches_beyond_depth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
