/*
 * trace_writer_test.c - TraceWriter on a real memfd SMB through the real
 * arbiter. A small "service" here takes the commit batches, copies and frees
 * the chunks through the ABI state machine, applies the patches, reassembles
 * fragments with the chunk reader and decodes every packet with protobuf-c.
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
#include "perfetto/trace/trace_packet.pb-c.h"

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

static struct svc *svc_new(size_t size, size_t page_size)
{
    struct svc *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    assert_int_equal(tb_shm_create(size, page_size, &s->shm), 0);
    assert_int_equal(tb_arbiter_create(s->shm, 0, &s->arb), 0);
    return s;
}

static void svc_free(struct svc *s)
{
    for (size_t i = 0; i < s->nchunks; i++)
        free(s->chunks[i].bytes);
    for (size_t i = 0; i < s->npackets; i++)
        free(s->packets[i].data);
    tb_arbiter_destroy(s->arb);
    tb_shm_destroy(s->shm);
    free(s);
}

static struct stored_chunk *find_chunk(struct svc *s, uint16_t writer_id, uint32_t chunk_id)
{
    for (size_t i = 0; i < s->nchunks; i++)
        if (s->chunks[i].writer_id == writer_id && s->chunks[i].chunk_id == chunk_id)
            return &s->chunks[i];
    return NULL;
}

/* What CommitData does: move listed chunks out (Complete->BeingRead->Free),
 * then apply patches. */
static void svc_commit(struct svc *s)
{
    struct tb_arbiter_batch *b = NULL;

    assert_int_equal(tb_arbiter_take_commits(s->arb, &b), 0);
    if (!b)
        return;
    for (size_t i = 0; i < b->num_commits; i++) {
        struct stored_chunk *sc = &s->chunks[s->nchunks++];
        struct tb_shm_chunk c;
        struct tb_shm_chunk_header h;

        assert_true(s->nchunks <= MAX_CHUNKS);
        assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&s->shm->abi, b->commits[i].page,
                                                              b->commits[i].chunk, &c),
                         0);
        assert_int_equal(b->commits[i].target_buffer, 7);
        sc->bytes = malloc(c.size);
        assert_non_null(sc->bytes);
        memcpy(sc->bytes, c.begin, c.size);
        memcpy(&h, sc->bytes, sizeof(h));
        sc->chunk_id = h.chunk_id;
        sc->writer_id = h.writer_id;
        sc->packets = h.packets;
        sc->size = c.size;
        if (tb_shm_packets_flags(h.packets) & TB_SHM_FLAG_NEEDS_PATCHING)
            s->flagged++;
        assert_int_equal(
            tb_shm_release_chunk_as_free(&s->shm->abi, b->commits[i].page, b->commits[i].chunk), 0);
    }
    for (size_t i = 0; i < b->num_chunk_patches; i++) {
        struct tb_arbiter_chunk_patches *cp = &b->chunk_patches[i];
        struct stored_chunk *sc = find_chunk(s, cp->writer_id, cp->chunk_id);

        assert_non_null(sc);
        for (uint32_t k = 0; k < cp->count; k++) {
            struct tb_shm_patch *p = &b->patches[cp->first + k];

            assert_int_equal(tb_chunk_apply_patch(sc->bytes + TB_SHM_CHUNK_HEADER_SIZE,
                                                  sc->size - TB_SHM_CHUNK_HEADER_SIZE, p->offset,
                                                  p->data, sizeof(p->data)),
                             0);
            s->patched++;
        }
        if (!cp->has_more_patches)
            sc->packets &= (uint16_t) ~(TB_SHM_FLAG_NEEDS_PATCHING << TB_SHM_PACKETS_FLAGS_SHIFT);
    }
    tb_arbiter_batch_free(b);
}

static int by_chunk_id(const void *a, const void *b)
{
    const struct stored_chunk *x = a, *y = b;

    if (x->writer_id != y->writer_id)
        return x->writer_id < y->writer_id ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static void append(uint8_t **buf, size_t *len, const uint8_t *p, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* Read every stored chunk per writer in chunk_id order, joining fragments. */
static void svc_read(struct svc *s)
{
    uint8_t *pend = NULL;
    size_t plen = 0;
    bool open = false;
    uint32_t prev_id = 0;

    qsort(s->chunks, s->nchunks, sizeof(s->chunks[0]), by_chunk_id);
    for (size_t i = 0; i < s->nchunks; i++) {
        struct stored_chunk *sc = &s->chunks[i];
        struct tb_chunk_reader r;
        struct tb_chunk_record rec;
        int ret;

        if (tb_shm_packets_flags(sc->packets) & TB_SHM_FLAG_NEEDS_PATCHING)
            s->blocked++;
        if (open &&
            (i == 0 || sc->chunk_id != prev_id + 1 || sc->writer_id != s->chunks[i - 1].writer_id))
            fail_msg("fragment chain broken at chunk %u", sc->chunk_id);
        prev_id = sc->chunk_id;
        assert_int_equal(tb_chunk_reader_init_payload(&r, sc->packets,
                                                      sc->bytes + TB_SHM_CHUNK_HEADER_SIZE,
                                                      sc->size - TB_SHM_CHUNK_HEADER_SIZE),
                         0);
        while ((ret = tb_chunk_reader_next(&r, &rec)) == 1) {
            if (rec.continues_from_prev)
                assert_true(open);
            else
                assert_false(open);
            append(&pend, &plen, rec.data, rec.len);
            open = rec.continues_on_next;
            if (!open) {
                struct packet *p = &s->packets[s->npackets++];

                assert_true(s->npackets <= MAX_PACKETS);
                p->writer_id = sc->writer_id;
                p->data = pend;
                p->len = plen;
                pend = NULL;
                plen = 0;
            }
        }
        assert_int_equal(ret, 0);
        s->aborted += r.aborted;
        s->empty += r.empty;
        if (r.aborted_last || r.aborted_first) {
            /* the packet being assembled is lost */
            free(pend);
            pend = NULL;
            plen = 0;
            open = false;
        }
    }
    assert_false(open);
    free(pend);
}

static const char *big_string(size_t len)
{
    static char buf[40000];

    assert_true(len < sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + len) % 26);
    buf[len] = 0;
    return buf;
}

/* A track event 4 levels deep whose innermost string is @big_len long. */
static void write_event(struct tb_pbw *w, uint32_t i, size_t big_len)
{
    char name[32];

    snprintf(name, sizeof(name), "event-%u", i);
    tb_pbw_append_varint(w, 8, 1000 + i);
    tb_pbw_begin_nested(w, 11);
    tb_pbw_append_varint(w, 9, 1);
    tb_pbw_append_varint(w, 11, 0x1234 + i);
    tb_pbw_append_string(w, 23, name);
    tb_pbw_begin_packed(w, 12);
    tb_pbw_packed_varint(w, i);
    tb_pbw_packed_varint(w, (uint64_t) - (int64_t)i);
    tb_pbw_packed_varint(w, UINT64_C(1) << 40);
    tb_pbw_end_packed(w);
    if (big_len) {
        tb_pbw_begin_nested(w, 4);
        tb_pbw_append_string(w, 10, "arg");
        tb_pbw_begin_nested(w, 8);
        tb_pbw_append_varint(w, 1, 1);
        tb_pbw_append_string(w, 2, "k");
        tb_pbw_begin_nested(w, 3);
        tb_pbw_append_string(w, 8, big_string(big_len));
        tb_pbw_end_nested(w);
        tb_pbw_append_int(w, 5, -(int64_t)i);
        tb_pbw_end_nested(w);
        tb_pbw_end_nested(w);
    }
    tb_pbw_end_nested(w);
}

static void check_event(const struct packet *p, uint32_t i, size_t big_len, uint32_t drop_mark)
{
    Perfetto__Protos__TracePacket *tp;
    Perfetto__Protos__TrackEvent *te;
    char name[32];

    tp = perfetto__protos__trace_packet__unpack(NULL, p->len, p->data);
    assert_non_null(tp);
    assert_true(tp->has_timestamp);
    assert_int_equal(tp->timestamp, 1000 + i);
    assert_int_equal(tp->has_previous_packet_dropped, drop_mark != 0);
    if (drop_mark)
        assert_int_equal(tp->previous_packet_dropped, drop_mark);
    te = tp->track_event;
    assert_non_null(te);
    assert_int_equal(te->type, PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN);
    assert_int_equal(te->track_uuid, 0x1234 + i);
    snprintf(name, sizeof(name), "event-%u", i);
    assert_int_equal(te->name_field_case, PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME);
    assert_string_equal(te->name, name);
    assert_int_equal(te->n_extra_counter_values, 3);
    assert_int_equal(te->extra_counter_values[0], i);
    assert_int_equal(te->extra_counter_values[1], -(int64_t)i);
    assert_int_equal(te->extra_counter_values[2], INT64_C(1) << 40);
    if (big_len) {
        Perfetto__Protos__DebugAnnotation *da;
        Perfetto__Protos__DebugAnnotation__NestedValue *nv;

        assert_int_equal(te->n_debug_annotations, 1);
        da = te->debug_annotations[0];
        assert_string_equal(da->name, "arg");
        assert_int_equal(da->value_case, PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_NESTED_VALUE);
        nv = da->nested_value;
        assert_int_equal(nv->n_dict_keys, 1);
        assert_string_equal(nv->dict_keys[0], "k");
        assert_int_equal(nv->n_dict_values, 1);
        assert_int_equal(strlen(nv->dict_values[0]->string_value), big_len);
        assert_string_equal(nv->dict_values[0]->string_value, big_string(big_len));
        assert_int_equal(nv->int_value, -(int64_t)i);
    } else {
        assert_int_equal(te->n_debug_annotations, 0);
    }
    perfetto__protos__trace_packet__free_unpacked(tp, NULL);
}

static struct tb_tw *new_writer(struct svc *s, uint16_t writer_id)
{
    struct tb_tw_opts o = {
        .ops = &tb_tw_arbiter_ops,
        .ops_ctx = s->arb,
        .writer_id = writer_id,
        .target_buffer = 7,
    };
    struct tb_tw *tw;

    assert_int_equal(tb_tw_create(&o, &tw), 0);
    return tw;
}

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

static void test_drop_and_count_when_full(void **state)
{
    struct svc *s = svc_new(16 * 1024, 4096); /* four chunks */
    struct tb_tw *tw = new_writer(s, 5);
    struct tb_tw_stats st;
    uint32_t written = 0, dropped = 0, i;
    int ret;

    /* nobody commits: the SMB fills up and packets start to drop */
    for (i = 0; i < 400; i++) {
        write_event(tb_tw_begin_packet(tw), i, 300);
        ret = tb_tw_end_packet(tw);
        if (ret == 0) {
            assert_int_equal(dropped, 0); /* no packet lands after a drop */
            written++;
        } else {
            assert_int_equal(ret, -ENOSPC);
            dropped++;
        }
    }
    assert_true(written > 0 && dropped > 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_written, written);
    assert_int_equal(st.packets_dropped, dropped);
    assert_true(st.chunks_missed >= dropped);
    assert_true(tb_arbiter_chunks_missed(s->arb, 5) >= dropped);

    /* the service drains; the next packet says data was lost before it */
    svc_commit(s);
    write_event(tb_tw_begin_packet(tw), i, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    write_event(tb_tw_begin_packet(tw), i + 1, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    svc_commit(s);
    svc_read(s);
    /* the packet cut short when the SMB filled up left a drop sentinel */
    assert_int_equal(s->aborted, 1);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, written + 2);
    for (uint32_t k = 0; k < written; k++)
        check_event(&s->packets[k], k, 300, 0);
    check_event(&s->packets[written], i, 0, TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    check_event(&s->packets[written + 1], i + 1, 0, 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

/* A packet that needs three chunks when only two are free: its fragments
 * are aborted, yet the patched chunk is released by has_more=false. */
static void test_drop_mid_fragment_releases_patches(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 6);
    struct tb_tw_stats st;

    write_event(tb_tw_begin_packet(tw), 0, 10000);
    assert_int_equal(tb_tw_end_packet(tw), -ENOSPC);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 1);
    svc_commit(s);
    write_event(tb_tw_begin_packet(tw), 1, 10);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->flagged, 1);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->aborted, 1);
    assert_int_equal(s->npackets, 1);
    check_event(&s->packets[0], 1, 10, TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    tb_tw_destroy(tw);
    svc_free(s);
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

static void test_encoder_error_drops_only_that_packet(void **state)
{
    struct svc *s = svc_new(16 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 4);
    struct tb_pbw *w;

    write_event(tb_tw_begin_packet(tw), 0, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    w = tb_tw_begin_packet(tw);
    tb_pbw_begin_nested(w, 11); /* left open */
    assert_int_equal(tb_tw_end_packet(tw), -EPROTO);
    write_event(tb_tw_begin_packet(tw), 2, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_end_packet(tw), -EINVAL);
    tb_tw_destroy(tw);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, 2);
    check_event(&s->packets[0], 0, 0, 0);
    check_event(&s->packets[1], 2, 0, TB_TW_DROP_PRESENT | 128);
    svc_free(s);
}

struct drainer {
    struct svc *s;
    unsigned int delay_ms;
};

static void *drain_later(void *p)
{
    struct drainer *d = p;
    struct timespec ts = {0, (long)d->delay_ms * 1000000L};

    nanosleep(&ts, NULL);
    svc_commit(d->s);
    return NULL;
}

static struct tb_tw *new_stall_writer(struct svc *s, uint32_t timeout_ms)
{
    struct tb_tw_opts o = {
        .ops = &tb_tw_arbiter_ops,
        .ops_ctx = s->arb,
        .writer_id = 9,
        .target_buffer = 7,
        .policy = TB_TW_STALL,
        .stall_timeout_ms = timeout_ms,
    };
    struct tb_tw *tw;

    assert_int_equal(tb_tw_create(&o, &tw), 0);
    return tw;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Stall policy: a packet that needs a chunk waits until the service frees
 * one, and nothing is lost. */
static void test_stall_waits_for_service(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096); /* two chunks */
    struct tb_tw *tw = new_stall_writer(s, 5000);
    struct drainer d = {s, 50};
    struct tb_tw_stats st;
    pthread_t th;
    uint64_t t0;

    /* the first packet needs both chunks: the SMB is then full */
    write_event(tb_tw_begin_packet(tw), 0, 6000);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    assert_int_equal(pthread_create(&th, NULL, drain_later, &d), 0);
    t0 = mono_ms();
    write_event(tb_tw_begin_packet(tw), 1, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_true(mono_ms() - t0 >= 40);
    pthread_join(th, NULL);
    assert_int_equal(tb_tw_flush(tw), 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 0);
    assert_int_equal(st.chunks_missed, 0);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, 2);
    check_event(&s->packets[0], 0, 6000, 0);
    check_event(&s->packets[1], 1, 0, 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

/* Stall policy with nobody draining: give up after the timeout, drop. */
static void test_stall_times_out_then_drops(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096);
    struct tb_tw *tw = new_stall_writer(s, 30);
    struct tb_tw_stats st;
    uint64_t t0;

    write_event(tb_tw_begin_packet(tw), 0, 6000);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    t0 = mono_ms();
    write_event(tb_tw_begin_packet(tw), 1, 5000);
    assert_int_equal(tb_tw_end_packet(tw), -ENOSPC);
    assert_true(mono_ms() - t0 >= 30);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 1);
    assert_int_equal(tb_tw_take_drop_mark(tw), TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    assert_int_equal(tb_tw_take_drop_mark(tw), 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

struct thread_arg {
    struct svc *s;
    uint16_t writer_id;
    uint32_t n;
};

static void *writer_thread(void *p)
{
    struct thread_arg *a = p;
    struct tb_tw *tw = new_writer(a->s, a->writer_id);

    for (uint32_t i = 0; i < a->n; i++) {
        write_event(tb_tw_begin_packet(tw), i, (i % 50 == 0) ? 5000 : 0);
        if (tb_tw_end_packet(tw))
            return (void *)1;
    }
    tb_tw_destroy(tw);
    return NULL;
}

static void test_writers_on_threads(void **state)
{
    struct svc *s = svc_new(2 * 1024 * 1024, 8192);
    struct thread_arg args[4];
    pthread_t th[4];
    size_t next[5] = {0};

    for (int t = 0; t < 4; t++) {
        args[t] = (struct thread_arg){s, (uint16_t)(t + 1), 1000};
        assert_int_equal(pthread_create(&th[t], NULL, writer_thread, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        void *ret;

        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, 4000);
    for (size_t k = 0; k < s->npackets; k++) {
        struct packet *p = &s->packets[k];
        uint32_t i = (uint32_t)next[p->writer_id]++;

        check_event(p, i, (i % 50 == 0) ? 5000 : 0, 0);
    }
    svc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_small_packets),
        cmocka_unit_test(test_fragment_over_two_chunks),
        cmocka_unit_test(test_fragment_over_three_chunks),
        cmocka_unit_test(test_fragment_over_many_chunks),
        cmocka_unit_test(test_drop_and_count_when_full),
        cmocka_unit_test(test_drop_mid_fragment_releases_patches),
        cmocka_unit_test(test_inflated_count_lets_scraper_read),
        cmocka_unit_test(test_encoder_error_drops_only_that_packet),
        cmocka_unit_test(test_stall_waits_for_service),
        cmocka_unit_test(test_stall_times_out_then_drops),
        cmocka_unit_test(test_writers_on_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
