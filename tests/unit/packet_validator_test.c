/*
 * packet_validator_test.c - producer packet validation and the trusted
 * trailer, checked against packets encoded and decoded by protobuf-c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/packet_validator.h"

static const uint32_t reserved[] = {3, 10, 33, 35, 36, 50, 69, 79, 98, 124, 125, 133};

static uint8_t good[512];
static size_t good_len;

/* A realistic producer packet: timestamps, flags, a nested descriptor. */
static int setup_good(void **state)
{
    Perfetto__Protos__TracePacket p = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    Perfetto__Protos__TrackDescriptor td = PERFETTO__PROTOS__TRACK_DESCRIPTOR__INIT;

    p.has_timestamp = 1;
    p.timestamp = 123456789012345ull;
    p.has_timestamp_clock_id = 1;
    p.timestamp_clock_id = 6;
    p.has_sequence_flags = 1;
    p.sequence_flags = 1;
    p.has_previous_packet_dropped = 1; /* SDK writers may set it themselves */
    p.previous_packet_dropped = 1;
    p.has_first_packet_on_sequence = 1;
    p.first_packet_on_sequence = 1;
    td.has_uuid = 1;
    td.uuid = 0xfeedfacecafebeefull;
    td.static_or_dynamic_name_case =
        PERFETTO__PROTOS__TRACK_DESCRIPTOR__STATIC_OR_DYNAMIC_NAME_NAME;
    td.name = "main thread";
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR;
    p.track_descriptor = &td;
    good_len = perfetto__protos__trace_packet__pack(&p, good);
    /* Unknown fields of every wire type are legal: fixed64 #5000, fixed32 #5001. */
    memcpy(good + good_len, (uint8_t[]){0xc1, 0xb8, 0x02, 1, 2, 3, 4, 5, 6, 7, 8}, 11);
    good_len += 11;
    memcpy(good + good_len, (uint8_t[]){0xcd, 0xb8, 0x02, 9, 9, 9, 9}, 7);
    good_len += 7;
    return 0;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void test_accepts_good_packets(void **state)
{
    assert_int_equal(tb_pval_check(good, good_len), 0);
    assert_int_equal(tb_pval_check(NULL, 0), 0); /* an empty TracePacket */
    /* Non-reserved neighbours of reserved ids pass. */
    for (uint32_t f = 1; f < 140; f++) {
        uint8_t p[16];
        size_t n = put_varint(p, (uint64_t)f << 3);

        n += put_varint(p + n, 1);
        assert_int_equal(tb_pval_check(p, n), tb_pval_is_reserved_field(f) ? -EPERM : 0);
    }
}

static void test_rejects_each_reserved_field(void **state)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        for (int wt = 0; wt < 2; wt++) {
            uint8_t p[600];
            size_t n = good_len;

            assert_true(tb_pval_is_reserved_field(reserved[i]));
            memcpy(p, good, good_len);
            if (wt == 0) {
                n += put_varint(p + n, (uint64_t)reserved[i] << 3);
                n += put_varint(p + n, 1000);
            } else {
                n += put_varint(p + n, (uint64_t)reserved[i] << 3 | 2);
                n += put_varint(p + n, 3);
                memcpy(p + n, "abc", 3);
                n += 3;
            }
            assert_int_equal(tb_pval_check(p, n), -EPERM);
            /* Placed first, before the legal fields, too. */
            memmove(p, p + good_len, n - good_len);
            memcpy(p + (n - good_len), good, good_len);
            assert_int_equal(tb_pval_check(p, n), -EPERM);
        }
    }
}

static void expect_bad(const uint8_t *tail, size_t tail_len)
{
    uint8_t p[600];

    memcpy(p, good, good_len);
    memcpy(p + good_len, tail, tail_len);
    assert_int_equal(tb_pval_check(p, good_len + tail_len), -EBADMSG);
    assert_int_equal(tb_pval_check(tail, tail_len), -EBADMSG);
}

static void test_rejects_malformed(void **state)
{
    /* Truncated tag varint; field number 0; 6-byte tag varint. */
    expect_bad((uint8_t[]){0x80}, 1);
    expect_bad((uint8_t[]){0x00, 0x01}, 2);
    expect_bad((uint8_t[]){0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01}, 7);
    /* Wire types 3 and 4 (groups), 6 and 7 (undefined). */
    expect_bad((uint8_t[]){0x0b, 0x0c}, 2);
    expect_bad((uint8_t[]){0x0c}, 1);
    expect_bad((uint8_t[]){0x0e, 0, 0, 0, 0}, 5);
    expect_bad((uint8_t[]){0x0f, 0, 0, 0, 0}, 5);
    /* Varint value truncated, or longer than 10 bytes. */
    expect_bad((uint8_t[]){0x40, 0x80, 0x80}, 3);
    expect_bad((uint8_t[]){0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
               12);
    /* Fixed64 / fixed32 truncated. */
    expect_bad((uint8_t[]){0x41, 1, 2, 3, 4, 5, 6, 7}, 8);
    expect_bad((uint8_t[]){0x45, 1, 2, 3}, 4);
    /* Length past the end, length varint truncated, huge length. */
    expect_bad((uint8_t[]){0x62, 0x05, 1, 2, 3, 4}, 6);
    expect_bad((uint8_t[]){0x62, 0x85}, 2);
    expect_bad((uint8_t[]){0x62, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0},
               12);
    /* Malformed beats reserved: the verdict is the more serious one. */
    expect_bad((uint8_t[]){0x18, 0x01, 0x62, 0x05}, 4);
}

/* Checking over slices gives the flat verdict at every split point. */
static void test_slices_match_flat(void **state)
{
    uint8_t bad[600];
    size_t bad_len = good_len + 2;

    memcpy(bad, good, good_len);
    bad[good_len] = 0x62;
    bad[good_len + 1] = 0x7f;
    for (size_t a = 0; a <= good_len; a += 3) {
        for (size_t b = a; b <= good_len; b += 7) {
            struct tb_tbuf_slice s[4] = {
                {good, a}, {good + a, 0}, {good + a, b - a}, {good + b, good_len - b}};
            struct tb_tbuf_slice t[3] = {{bad, a}, {bad + a, b - a}, {bad + b, bad_len - b}};

            assert_int_equal(tb_pval_check_slices(s, 4), 0);
            assert_int_equal(tb_pval_check_slices(t, 3), -EBADMSG);
        }
    }
}

/* The trailer decodes as the trusted fields and overrides producer values. */
static void test_trusted_trailer(void **state)
{
    const struct tb_pval_trusted cases[] = {
        {.uid = 1000,
         .sequence_id = 2,
         .pid = 4242,
         .has_pid = true,
         .previous_packet_dropped = 0x41},
        {.uid = -1,
         .sequence_id = UINT32_MAX,
         .pid = INT32_MIN,
         .has_pid = true,
         .previous_packet_dropped = UINT32_MAX},
        {.uid = 0, .sequence_id = 7},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tb_pval_trusted *c = &cases[i];
        Perfetto__Protos__TracePacket *p;
        uint8_t buf[600];
        int n;

        memcpy(buf, good, good_len);
        assert_int_equal(tb_pval_write_trusted(c, buf + good_len, 3), -ENOBUFS);
        n = tb_pval_write_trusted(c, buf + good_len, TB_PVAL_TRAILER_MAX);
        assert_true(n > 0 && n <= (int)TB_PVAL_TRAILER_MAX);
        p = perfetto__protos__trace_packet__unpack(NULL, good_len + (size_t)n, buf);
        assert_non_null(p);
        assert_int_equal(p->optional_trusted_uid_case,
                         PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_UID_TRUSTED_UID);
        assert_int_equal(p->trusted_uid, c->uid);
        assert_int_equal(p->trusted_packet_sequence_id, c->sequence_id);
        assert_int_equal(p->has_trusted_pid, c->has_pid);
        if (c->has_pid)
            assert_int_equal(p->trusted_pid, c->pid);
        /* The producer wrote 1; the service's non-zero value wins. */
        assert_int_equal(p->previous_packet_dropped,
                         c->previous_packet_dropped ? c->previous_packet_dropped : 1);
        assert_int_equal(p->timestamp, 123456789012345ull);
        assert_string_equal(p->track_descriptor->name, "main thread");
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_good_packets),
        cmocka_unit_test(test_rejects_each_reserved_field),
        cmocka_unit_test(test_rejects_malformed),
        cmocka_unit_test(test_slices_match_flat),
        cmocka_unit_test(test_trusted_trailer),
    };

    return cmocka_run_group_tests(tests, setup_good, NULL);
}
