/*
 * tw_fake_svc.c - the stand-in service of the TraceWriter tests (see
 * tw_fake_svc.h): commit, patch, read back and decode, all through the real
 * shared-memory ABI and chunk reader.
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

#include "common/chunk_reader.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "tw_fake_svc.h"

struct svc *svc_new(size_t size, size_t page_size)
{
    struct svc *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    assert_int_equal(tb_shm_create(size, page_size, &s->shm), 0);
    assert_int_equal(tb_arbiter_create(s->shm, 0, &s->arb), 0);
    return s;
}

void svc_free(struct svc *s)
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
void svc_commit(struct svc *s)
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
void svc_read(struct svc *s)
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

const char *big_string(size_t len)
{
    static char buf[40000];

    assert_true(len < sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + len) % 26);
    buf[len] = 0;
    return buf;
}

/* A track event 4 levels deep whose innermost string is @big_len long. */
void write_event(struct tb_pbw *w, uint32_t i, size_t big_len)
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

void check_event(const struct packet *p, uint32_t i, size_t big_len, uint32_t drop_mark)
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

struct tb_tw *new_writer(struct svc *s, uint16_t writer_id)
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
