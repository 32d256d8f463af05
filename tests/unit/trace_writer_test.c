/*
 * trace_writer_test.c - TraceWriter framing on a real memfd SMB through the
 * real arbiter: many small packets, packets fragmented over 2, 3 and 9
 * chunks with their size patches, a packet leaving more sizes behind than
 * any nesting depth, and what a scraper sees in a chunk still being
 * written, alone and racing the writer thread. Every packet is reassembled by the stand-in service
 * (tw_fake_svc.c) and decoded with protobuf-c. Drops, stalls and threads
 * are in trace_writer_drop_test.c.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
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
#include "perfetto/trace/trace_packet.pb-c.h"
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

/* Shared by the writer and scraper threads of test_scrape_while_writing. */
struct scrape {
    struct svc *s;
    uint32_t n;
    int writer_done; /* atomic */
    uint64_t seen, bad, scrapes;
};

static void scrape_packet(struct tb_pbw *w, uint32_t i)
{
    tb_pbw_append_varint(w, 8, 1000 + (uint64_t)i);
    tb_pbw_begin_nested(w, 11);
    tb_pbw_append_varint(w, 11, i);
    tb_pbw_append_string(w, 23, "scraped while written");
    tb_pbw_end_nested(w);
}

static void *scrape_writer(void *arg)
{
    struct scrape *sc = arg;
    struct tb_tw *tw = new_writer(sc->s, 5);

    for (uint32_t i = 0; i < sc->n; i++) {
        scrape_packet(tb_tw_begin_packet(tw), i);
        tb_tw_end_packet(tw);
        /* Let the scraper in now and then even on a loaded host. */
        if (i % 500 == 250) {
            uint64_t seen = __atomic_load_n(&sc->scrapes, __ATOMIC_ACQUIRE);

            for (int k = 0; k < 100000 && __atomic_load_n(&sc->scrapes, __ATOMIC_ACQUIRE) == seen;
                 k++)
                sched_yield();
        }
    }
    tb_tw_destroy(tw);
    __atomic_store_n(&sc->writer_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A record the scraper may read must be a whole packet, right field by field. */
static bool record_ok(const struct tb_chunk_record *rec)
{
    Perfetto__Protos__TracePacket *tp;
    bool ok;

    tp = perfetto__protos__trace_packet__unpack(NULL, rec->len, rec->data);
    if (!tp)
        return false;
    ok = tp->has_timestamp && tp->track_event && tp->track_event->has_track_uuid &&
         tp->timestamp == 1000 + tp->track_event->track_uuid && tp->track_event->name &&
         !strcmp(tp->track_event->name, "scraped while written");
    perfetto__protos__trace_packet__free_unpacked(tp, NULL);
    return ok;
}

/* What the service does on a flush: read a chunk still being written, all
 * but its last counted record. */
static void scrape_once(struct scrape *sc)
{
    const struct tb_shm_abi *abi = &sc->s->shm->abi;
    static uint8_t copy[32768];

    for (size_t p = 0; p < abi->num_pages; p++) {
        struct tb_chunk_reader r;
        struct tb_chunk_record rec;
        struct tb_shm_chunk c;
        uint16_t packets, count;

        if (tb_shm_chunk_state(abi, p, 0) != TB_SHM_CHUNK_BEING_WRITTEN ||
            tb_shm_get_chunk(abi, p, 0, &c))
            continue;
        packets = tb_shm_chunk_packets_load(tb_shm_chunk_hdr(&c));
        count = tb_shm_packets_count(packets);
        if (count < 2)
            continue;
        memcpy(copy, c.begin, c.size);
        /* the last record is not read, so neither is its continuation */
        tb_chunk_reader_init_payload(
            &r,
            tb_shm_packets_make(count - 1, tb_shm_packets_flags(packets) &
                                               (uint8_t)~TB_SHM_FLAG_LAST_CONTINUES),
            copy + TB_SHM_CHUNK_HEADER_SIZE, c.size - TB_SHM_CHUNK_HEADER_SIZE);
        __atomic_add_fetch(&sc->scrapes, 1, __ATOMIC_RELEASE);
        for (;;) {
            int ret = tb_chunk_reader_next(&r, &rec);

            if (ret < 0)
                sc->bad++;
            if (ret <= 0)
                break;
            if (rec.continues_from_prev)
                continue;
            sc->seen++;
            if (!record_ok(&rec))
                sc->bad++;
        }
    }
}

/* The count is published with release after the record bytes and read with
 * acquire: a scraper racing the writer never reads a torn record. */
static void test_scrape_while_writing(void **state)
{
    struct scrape sc = {.n = MAX_PACKETS - 1000};
    pthread_t th;

    sc.s = svc_new(4 * 1024 * 1024, 32768);
    assert_int_equal(pthread_create(&th, NULL, scrape_writer, &sc), 0);
    while (!__atomic_load_n(&sc.writer_done, __ATOMIC_ACQUIRE))
        scrape_once(&sc);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sc.bad, 0);
    assert_true(sc.scrapes > 0);
    assert_true(sc.seen > 0);
    /* and the whole stream still reads back after the commit */
    svc_commit(sc.s);
    svc_read(sc.s);
    assert_int_equal(sc.s->npackets, sc.n);
    for (uint32_t i = 0; i < sc.n; i += 997) {
        struct tb_chunk_record rec = {.data = sc.s->packets[i].data,
                                      .len = (uint32_t)sc.s->packets[i].len};

        assert_true(record_ok(&rec));
    }
    svc_free(sc.s);
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
        cmocka_unit_test(test_scrape_while_writing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
