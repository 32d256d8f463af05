/*
 * pbw_encode_test.c - pb_writer encodes every scalar type, strings, packed
 * and nested fields the way protobuf does; fixed and growable buffers; the
 * sticky error cases. Decoded with a small independent wire parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/pb_writer.h"
#include "perfetto/trace/trace_packet.pb-c.h"

struct field {
    uint32_t num;
    uint32_t wt;
    uint64_t v;       /* varint / fixed value */
    const uint8_t *p; /* length-delimited payload */
    size_t len;
};

/* Plain protobuf varint reader, independent of the writer's encoder. */
static size_t get_varint(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t r = 0;

    for (size_t i = 0; i < n && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* Parse one field at *p; returns 0 at the end, -1 on malformed input. */
static int next_field(const uint8_t **p, const uint8_t *end, struct field *f)
{
    uint64_t key, v = 0;
    size_t n;

    if (*p >= end)
        return 0;
    n = get_varint(*p, (size_t)(end - *p), &key);
    if (!n)
        return -1;
    *p += n;
    f->num = (uint32_t)(key >> 3);
    f->wt = key & 7;
    switch (f->wt) {
    case 0:
        n = get_varint(*p, (size_t)(end - *p), &f->v);
        if (!n)
            return -1;
        *p += n;
        return 1;
    case 1:
    case 5:
        n = f->wt == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -1;
        for (size_t i = 0; i < n; i++)
            v |= (uint64_t)(*p)[i] << (8 * i);
        f->v = v;
        *p += n;
        return 1;
    case 2:
        n = get_varint(*p, (size_t)(end - *p), &v);
        if (!n || v > (uint64_t)(end - *p - n))
            return -1;
        f->p = *p + n;
        f->len = (size_t)v;
        *p += n + v;
        return 1;
    }
    return -1;
}

static void expect_one(const uint8_t *buf, size_t len, uint32_t num, uint32_t wt, struct field *out)
{
    const uint8_t *p = buf;

    assert_int_equal(next_field(&p, buf + len, out), 1);
    assert_int_equal(out->num, num);
    assert_int_equal(out->wt, wt);
    assert_ptr_equal(p, buf + len);
}

static void test_varint_every_width(void **state)
{
    for (int bits = 0; bits <= 64; bits++) {
        uint64_t vals[3] = {
            bits ? (bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1) : 0,
            bits < 64 ? UINT64_C(1) << bits : UINT64_C(1) << 63,
            bits ? UINT64_C(1) << (bits - 1) : 1,
        };
        for (int k = 0; k < 3; k++) {
            uint8_t buf[32];
            struct tb_pbw w;
            struct field f;
            uint64_t v = vals[k];
            size_t width = 1;

            for (uint64_t t = v; t >= 0x80; t >>= 7)
                width++;
            tb_pbw_init_buf(&w, buf, sizeof(buf));
            tb_pbw_append_varint(&w, 3, v);
            assert_int_equal(tb_pbw_error(&w), 0);
            /* tag byte for field 3 is one byte */
            assert_int_equal(tb_pbw_size(&w), 1 + width);
            expect_one(buf, (size_t)tb_pbw_size(&w), 3, 0, &f);
            assert_true(f.v == v);
        }
    }
}

static void test_large_field_numbers(void **state)
{
    uint32_t nums[] = {1, 15, 16, 2047, 2048, 262143, 262144, 536870911};
    uint8_t buf[64];
    struct tb_pbw w;
    struct field f;

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        tb_pbw_init_buf(&w, buf, sizeof(buf));
        tb_pbw_append_varint(&w, nums[i], 42);
        expect_one(buf, (size_t)tb_pbw_size(&w), nums[i], 0, &f);
        assert_int_equal(f.v, 42);
    }
}

static void test_negative_ints(void **state)
{
    int64_t vals[] = {-1, -2, -64, -65, INT32_MIN, INT64_MIN, INT64_MAX, 0, 1, 63, 64};
    uint8_t buf[32];
    struct tb_pbw w;
    struct field f;

    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        int64_t v = vals[i];
        uint64_t zz = 0;

        /* int32/int64: two's complement, negatives are 10 bytes + tag */
        tb_pbw_init_buf(&w, buf, sizeof(buf));
        tb_pbw_append_int(&w, 1, v);
        expect_one(buf, (size_t)tb_pbw_size(&w), 1, 0, &f);
        assert_true((int64_t)f.v == v);
        if (v < 0)
            assert_int_equal(tb_pbw_size(&w), 11);

        /* sint: zigzag maps small magnitudes to small varints */
        tb_pbw_init_buf(&w, buf, sizeof(buf));
        tb_pbw_append_sint(&w, 2, v);
        expect_one(buf, (size_t)tb_pbw_size(&w), 2, 0, &f);
        zz = f.v;
        assert_true((int64_t)((zz >> 1) ^ (~(zz & 1) + 1)) == v);
        if (v == -1)
            assert_int_equal(f.v, 1);
        if (v == -64)
            assert_int_equal(tb_pbw_size(&w), 2);
    }
}

static void test_fixed_and_floats(void **state)
{
    uint8_t buf[64];
    const uint8_t *p = buf, *end;
    struct tb_pbw w;
    struct field f;
    double d;
    float fl;
    uint32_t u32;

    tb_pbw_init_buf(&w, buf, sizeof(buf));
    tb_pbw_append_fixed32(&w, 1, 0xdeadbeef);
    tb_pbw_append_fixed64(&w, 2, UINT64_C(0x0123456789abcdef));
    tb_pbw_append_double(&w, 3, -2.5e300);
    tb_pbw_append_float(&w, 4, 3.25f);
    assert_int_equal(tb_pbw_error(&w), 0);
    end = buf + tb_pbw_size(&w);
    /* little-endian on the wire, whatever the host */
    assert_int_equal(buf[1], 0xef);
    assert_int_equal(buf[4], 0xde);

    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 1 && f.wt == 5 && f.v == 0xdeadbeef);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 2 && f.wt == 1 && f.v == UINT64_C(0x0123456789abcdef));
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 3 && f.wt == 1);
    memcpy(&d, &f.v, 8);
    assert_true(d == -2.5e300);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 4 && f.wt == 5);
    u32 = (uint32_t)f.v;
    memcpy(&fl, &u32, 4);
    assert_true(fl == 3.25f);
    assert_int_equal(next_field(&p, end, &f), 0);
}

static void test_strings_and_bytes(void **state)
{
    static uint8_t big[300];
    uint8_t buf[512];
    const uint8_t *p = buf, *end;
    struct tb_pbw w;
    struct field f;

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    tb_pbw_init_buf(&w, buf, sizeof(buf));
    tb_pbw_append_string(&w, 1, "sched_switch");
    tb_pbw_append_string(&w, 2, "");
    tb_pbw_append_bytes(&w, 3, big, sizeof(big));
    assert_int_equal(tb_pbw_error(&w), 0);
    end = buf + tb_pbw_size(&w);

    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 1 && f.wt == 2 && f.len == 12);
    assert_memory_equal(f.p, "sched_switch", 12);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 2 && f.len == 0);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 3 && f.len == sizeof(big));
    assert_memory_equal(f.p, big, sizeof(big));
    assert_int_equal(next_field(&p, end, &f), 0);
}

static void test_packed(void **state)
{
    int64_t deltas[] = {0, 5, -3, 1000000, -1000000000000};
    uint8_t buf[256];
    const uint8_t *p = buf, *end, *q;
    struct tb_pbw w;
    struct field f;

    tb_pbw_init_buf(&w, buf, sizeof(buf));
    tb_pbw_begin_packed(&w, 7);
    for (size_t i = 0; i < 5; i++)
        tb_pbw_packed_sint(&w, deltas[i]);
    tb_pbw_end_packed(&w);
    tb_pbw_begin_packed(&w, 8);
    tb_pbw_packed_fixed32(&w, 11);
    tb_pbw_packed_fixed64(&w, 12);
    tb_pbw_end_packed(&w);
    assert_int_equal(tb_pbw_error(&w), 0);
    assert_int_equal(tb_pbw_depth(&w), 0);
    end = buf + tb_pbw_size(&w);

    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 7 && f.wt == 2);
    q = f.p;
    for (size_t i = 0; i < 5; i++) {
        uint64_t zz = 0;
        size_t n = get_varint(q, (size_t)(f.p + f.len - q), &zz);

        assert_true(n > 0);
        q += n;
        assert_true((int64_t)((zz >> 1) ^ (~(zz & 1) + 1)) == deltas[i]);
    }
    assert_ptr_equal(q, f.p + f.len);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 8 && f.len == 12);
    assert_int_equal(f.p[0], 11);
    assert_int_equal(f.p[4], 12);
}

/* Three levels: packet{1:ts, 11:track_event{9:type, 50:{1:a, 2:"n"}, 3:x}, 2:y} */
static size_t write_nested(struct tb_pbw *w)
{
    tb_pbw_append_varint(w, 8, 123456789012345);
    tb_pbw_begin_nested(w, 11);
    tb_pbw_append_varint(w, 9, 1);
    tb_pbw_begin_nested(w, 50);
    tb_pbw_append_varint(w, 1, 77);
    tb_pbw_begin_nested(w, 4);
    tb_pbw_append_string(w, 2, "deepest");
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    tb_pbw_append_sint(w, 3, -9);
    tb_pbw_end_nested(w);
    tb_pbw_append_varint(w, 10, 2);
    return (size_t)tb_pbw_size(w);
}

static void check_nested(const uint8_t *buf, size_t len)
{
    const uint8_t *p = buf, *end = buf + len, *p1, *p2, *p3;
    struct field f, g, h, k;

    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 8 && f.v == 123456789012345);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 11 && f.wt == 2);
    p1 = f.p;
    assert_int_equal(next_field(&p1, f.p + f.len, &g), 1);
    assert_true(g.num == 9 && g.v == 1);
    assert_int_equal(next_field(&p1, f.p + f.len, &g), 1);
    assert_true(g.num == 50 && g.wt == 2);
    p2 = g.p;
    assert_int_equal(next_field(&p2, g.p + g.len, &h), 1);
    assert_true(h.num == 1 && h.v == 77);
    assert_int_equal(next_field(&p2, g.p + g.len, &h), 1);
    assert_true(h.num == 4 && h.wt == 2);
    p3 = h.p;
    assert_int_equal(next_field(&p3, h.p + h.len, &k), 1);
    assert_true(k.num == 2 && k.len == 7);
    assert_memory_equal(k.p, "deepest", 7);
    assert_int_equal(next_field(&p3, h.p + h.len, &k), 0);
    assert_int_equal(next_field(&p2, g.p + g.len, &h), 0);
    assert_int_equal(next_field(&p1, f.p + f.len, &g), 1);
    assert_true(g.num == 3 && g.v == 17); /* zigzag(-9) */
    assert_int_equal(next_field(&p1, f.p + f.len, &g), 0);
    assert_int_equal(next_field(&p, end, &f), 1);
    assert_true(f.num == 10 && f.v == 2);
    assert_int_equal(next_field(&p, end, &f), 0);
}

static void test_nested_three_deep(void **state)
{
    uint8_t buf[256];
    struct tb_pbw w;
    size_t len;

    tb_pbw_init_buf(&w, buf, sizeof(buf));
    len = write_nested(&w);
    assert_int_equal(tb_pbw_error(&w), 0);
    assert_int_equal(tb_pbw_depth(&w), 0);
    check_nested(buf, len);
    /* field 8 takes 8 bytes, the tag of 11 one; then the 4-byte slot with
     * continuation bits on its first three bytes only */
    assert_int_equal(buf[8], (11 << 3) | 2);
    assert_true((buf[9] & buf[10] & buf[11] & 0x80) && !(buf[12] & 0x80));
}

static void test_dyn_grows_and_matches_fixed(void **state)
{
    static uint8_t ref[32768];
    struct tb_pbw w, r;
    const uint8_t *data;
    uint8_t *taken;
    size_t len;

    tb_pbw_init_buf(&r, ref, sizeof(ref));
    assert_int_equal(tb_pbw_init_dyn(&w, 8), 0);
    for (int i = 0; i < 100; i++) {
        write_nested(&w);
        write_nested(&r);
        tb_pbw_begin_nested(&w, 5);
        tb_pbw_begin_nested(&r, 5);
        tb_pbw_append_string(&w, 1, "a string long enough to force a few reallocs");
        tb_pbw_append_string(&r, 1, "a string long enough to force a few reallocs");
        tb_pbw_end_nested(&w);
        tb_pbw_end_nested(&r);
    }
    assert_int_equal(tb_pbw_error(&w), 0);
    assert_int_equal(tb_pbw_error(&r), 0);
    data = tb_pbw_dyn_data(&w, &len);
    assert_non_null(data);
    assert_int_equal(len, tb_pbw_size(&r));
    assert_memory_equal(data, ref, len);
    taken = tb_pbw_dyn_take(&w, &len);
    assert_non_null(taken);
    assert_int_equal(len, tb_pbw_size(&r));
    free(taken);
    tb_pbw_dyn_free(&w); /* nothing left: must be harmless */
    tb_pbw_dyn_free(NULL);
}

static void test_errors_are_sticky(void **state)
{
    uint8_t buf[8];
    struct tb_pbw w;

    /* overflow of a fixed buffer: size still counts what was asked */
    tb_pbw_init_buf(&w, buf, sizeof(buf));
    tb_pbw_append_string(&w, 1, "0123456789");
    assert_int_equal(tb_pbw_error(&w), -ENOBUFS);
    assert_int_equal(tb_pbw_size(&w), 12);
    tb_pbw_append_varint(&w, 2, 1);
    assert_int_equal(tb_pbw_error(&w), -ENOBUFS);

    tb_pbw_init_buf(&w, buf, sizeof(buf));
    tb_pbw_end_nested(&w);
    assert_int_equal(tb_pbw_error(&w), -EINVAL);

    {
        uint8_t big[256];

        tb_pbw_init_buf(&w, big, sizeof(big));
        for (int i = 0; i < TB_PBW_MAX_DEPTH; i++)
            tb_pbw_begin_nested(&w, 1);
        assert_int_equal(tb_pbw_error(&w), 0);
        tb_pbw_begin_nested(&w, 1);
        assert_int_equal(tb_pbw_error(&w), -E2BIG);
        for (int i = 0; i <= TB_PBW_MAX_DEPTH; i++)
            tb_pbw_end_nested(&w);
        assert_int_equal(tb_pbw_depth(&w), 0);
        assert_int_equal(tb_pbw_error(&w), -E2BIG);
    }
}

static void test_redundant_varint(void **state)
{
    uint32_t vals[] = {0, 5, 127, 128, 16383, 16384, 0x0FFFFFFF};
    uint8_t b[4];

    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint64_t v;

        tb_pbw_put_redundant_varint(b, vals[i]);
        assert_int_equal(get_varint(b, 4, &v), 4);
        assert_true(v == vals[i]);
    }
    tb_pbw_put_redundant_varint(b, 5);
    assert_int_equal(b[0], 0x85);
    assert_int_equal(b[1], 0x80);
    assert_int_equal(b[2], 0x80);
    assert_int_equal(b[3], 0x00);
}

/* The same values through the generated protobuf-c decoder. */
static void test_protobuf_c_decodes(void **state)
{
    for (int bits = 0; bits <= 64; bits++) {
        uint64_t ts = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - (bits ? 1 : 0);
        int64_t neg = bits == 64 ? INT64_MIN : -(int64_t)(UINT64_C(1) << (bits / 2));
        Perfetto__Protos__TracePacket *tp;
        Perfetto__Protos__DebugAnnotation__NestedValue *nv;
        uint8_t buf[256];
        struct tb_pbw w;

        tb_pbw_init_buf(&w, buf, sizeof(buf));
        tb_pbw_append_varint(&w, 8, ts);
        tb_pbw_append_varint(&w, 58, (uint32_t)bits + 64);
        tb_pbw_begin_nested(&w, 11);             /* track_event */
        tb_pbw_append_int(&w, 30, neg);          /* counter_value */
        tb_pbw_append_string(&w, 23, "counter"); /* name */
        tb_pbw_begin_nested(&w, 4);              /* debug_annotations */
        tb_pbw_append_string(&w, 10, "arg");     /* name */
        tb_pbw_begin_nested(&w, 8);              /* nested_value */
        tb_pbw_append_varint(&w, 1, 2);          /* ARRAY */
        tb_pbw_begin_nested(&w, 4);              /* array_values */
        tb_pbw_append_int(&w, 5, neg);           /* int_value */
        tb_pbw_append_double(&w, 6, -0.125);     /* double_value */
        tb_pbw_end_nested(&w);
        tb_pbw_end_nested(&w);
        tb_pbw_end_nested(&w);
        tb_pbw_end_nested(&w);
        assert_int_equal(tb_pbw_error(&w), 0);

        tp = perfetto__protos__trace_packet__unpack(NULL, (size_t)tb_pbw_size(&w), buf);
        assert_non_null(tp);
        assert_true(tp->timestamp == ts);
        assert_int_equal(tp->timestamp_clock_id, bits + 64);
        assert_non_null(tp->track_event);
        assert_int_equal(tp->track_event->counter_value_field_case,
                         PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_COUNTER_VALUE);
        assert_true(tp->track_event->counter_value == neg);
        assert_string_equal(tp->track_event->name, "counter");
        assert_int_equal(tp->track_event->n_debug_annotations, 1);
        assert_string_equal(tp->track_event->debug_annotations[0]->name, "arg");
        nv = tp->track_event->debug_annotations[0]->nested_value;
        assert_non_null(nv);
        assert_int_equal(nv->nested_type,
                         PERFETTO__PROTOS__DEBUG_ANNOTATION__NESTED_VALUE__NESTED_TYPE__ARRAY);
        assert_int_equal(nv->n_array_values, 1);
        assert_true(nv->array_values[0]->int_value == neg);
        assert_true(nv->array_values[0]->double_value == -0.125);
        perfetto__protos__trace_packet__free_unpacked(tp, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_every_width),
        cmocka_unit_test(test_large_field_numbers),
        cmocka_unit_test(test_negative_ints),
        cmocka_unit_test(test_fixed_and_floats),
        cmocka_unit_test(test_strings_and_bytes),
        cmocka_unit_test(test_packed),
        cmocka_unit_test(test_nested_three_deep),
        cmocka_unit_test(test_dyn_grows_and_matches_fixed),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_redundant_varint),
        cmocka_unit_test(test_protobuf_c_decodes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
