/*
 * cli_trace_reader_test.c - the streaming trace reader on real files:
 * packets come back byte for byte and in order (zero-length ones too),
 * compressed batches are expanded in place, gzip-wrapped files read the
 * same, and truncated or foreign files fail with the offset of the damage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli_trace_build.h"
#include "consumer/trace_reader.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/cli_reader_XXXXXX";

static int setup(void **state)
{
    int fd = mkstemp(path);

    close(fd);
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
    return 0;
}

static Perfetto__Protos__TracePacket *packet_ts(uint64_t ts)
{
    Perfetto__Protos__TracePacket *p = calloc(1, sizeof(*p));

    perfetto__protos__trace_packet__init(p);
    p->has_timestamp = 1;
    p->timestamp = ts;
    return p;
}

/* Reads every packet; returns the count and the timestamps in @ts. */
static int read_all(uint64_t *ts, int max, int *ret_out, struct tb_trace_reader **keep)
{
    struct tb_trace_reader *r;
    const uint8_t *data;
    size_t len;
    int n = 0, ret;

    assert_int_equal(tb_trace_reader_open(path, &r), 0);
    while ((ret = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        assert_non_null(p);
        assert_true(n < max);
        ts[n++] = p->has_timestamp ? p->timestamp : 0;
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
    *ret_out = ret;
    if (keep)
        *keep = r;
    else
        tb_trace_reader_free(r);
    return n;
}

static void test_plain_and_empty_packets(void **state)
{
    FILE *f = fopen(path, "w");
    Perfetto__Protos__TracePacket *a = packet_ts(100), *b = packet_ts(1ULL << 40);
    uint64_t ts[8];
    int ret;

    tbt_write(f, a);
    tbt_write_raw(f, (const uint8_t *)"", 0); /* legal: zero-length packet */
    tbt_write(f, b);
    fclose(f);
    assert_int_equal(read_all(ts, 8, &ret, NULL), 3);
    assert_int_equal(ret, 0);
    assert_int_equal(ts[0], 100);
    assert_int_equal(ts[1], 0);
    assert_int_equal(ts[2], 1ULL << 40);
    free(a);
    free(b);
}

static void test_compressed_batch_in_order(void **state)
{
    Perfetto__Protos__TracePacket *p[5];
    struct tb_trace_reader *r;
    uint64_t ts[8], packets, compressed;
    FILE *f = fopen(path, "w");
    int i, ret;

    for (i = 0; i < 5; i++)
        p[i] = packet_ts(10 + (uint64_t)i);
    tbt_write(f, p[0]);
    tbt_write_compressed(f, &p[1], 3);
    tbt_write(f, p[4]);
    fclose(f);
    assert_int_equal(read_all(ts, 8, &ret, &r), 5);
    assert_int_equal(ret, 0);
    for (i = 0; i < 5; i++)
        assert_int_equal(ts[i], 10 + i);
    tb_trace_reader_stats(r, &packets, &compressed, NULL);
    assert_int_equal(packets, 5);
    assert_int_equal(compressed, 3);
    tb_trace_reader_free(r);
    for (i = 0; i < 5; i++)
        free(p[i]);
}

static void test_gzip_wrapped(void **state)
{
    Perfetto__Protos__TracePacket *a = packet_ts(7);
    size_t len = protobuf_c_message_get_packed_size(&a->base), pos = 0;
    uint8_t buf[2 * (32 + 11)];
    uint64_t ts[4];
    uint8_t tmp[32];
    gzFile gz;
    int ret;

    if (len > 31) {
        free(a);
        fail_msg("a timestamp-only packet should be tiny, got %zu bytes", len);
        return; /* also tells gcc the bound of len */
    }
    protobuf_c_message_pack(&a->base, tmp);
    tbt_frame(buf, &pos, tmp, len);
    tbt_frame(buf, &pos, tmp, len);
    gz = gzopen(path, "wb");
    gzwrite(gz, buf, (unsigned)pos);
    gzclose(gz);
    assert_int_equal(read_all(ts, 4, &ret, NULL), 2);
    assert_int_equal(ret, 0);
    assert_int_equal(ts[1], 7);
    free(a);
}

static void test_truncated(void **state)
{
    Perfetto__Protos__TracePacket *a = packet_ts(1), *b = packet_ts(2);
    struct tb_trace_reader *r;
    FILE *f = fopen(path, "w");
    uint64_t ts[4];
    long size;
    int ret;

    tbt_write(f, a); /* 0a 02 40 01 : 4 bytes */
    tbt_write(f, b);
    size = ftell(f);
    fclose(f);
    assert_int_equal(size, 8);
    assert_int_equal(truncate(path, 7), 0);
    assert_int_equal(read_all(ts, 4, &ret, &r), 1);
    assert_int_equal(ret, -EBADMSG);
    assert_string_equal(tb_trace_reader_error(r),
                        "truncated: the packet at offset 4 needs 2 bytes, the file ends after 1");
    tb_trace_reader_free(r);

    assert_int_equal(truncate(path, 5), 0);
    assert_int_equal(read_all(ts, 4, &ret, &r), 1);
    assert_int_equal(ret, -EBADMSG);
    assert_string_equal(tb_trace_reader_error(r),
                        "truncated: the file ends inside the length of the packet at offset 4");
    tb_trace_reader_free(r);
    free(a);
    free(b);
}

static void test_not_a_trace(void **state)
{
    struct tb_trace_reader *r;
    FILE *f = fopen(path, "w");
    uint64_t ts[2];
    int ret;

    fputs("{\"traceEvents\": []}", f);
    fclose(f);
    assert_int_equal(read_all(ts, 2, &ret, &r), 0);
    assert_int_equal(ret, -EBADMSG);
    assert_string_equal(tb_trace_reader_error(r), "not a Perfetto trace: byte 0x7b at offset 0 "
                                                  "where a packet (0x0a) should start");
    tb_trace_reader_free(r);
}

static void test_corrupt_compressed(void **state)
{
    static const uint8_t pkt[] = {0x92, 0x03, 0x04, 'j', 'u', 'n', 'k'}; /* field 50, 4 bytes */
    struct tb_trace_reader *r;
    FILE *f = fopen(path, "w");
    uint64_t ts[2];
    int ret;

    tbt_write_raw(f, pkt, sizeof(pkt));
    fclose(f);
    assert_int_equal(read_all(ts, 2, &ret, &r), 0);
    assert_int_equal(ret, -EBADMSG);
    assert_non_null(strstr(tb_trace_reader_error(r), "compressed packets at offset 0 are corrupt"));
    tb_trace_reader_free(r);
}

static void test_missing_file(void **state)
{
    struct tb_trace_reader *r = (void *)1;

    assert_int_equal(tb_trace_reader_open("/nonexistent/t.pftrace", &r), -ENOENT);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_empty_packets),
        cmocka_unit_test(test_compressed_batch_in_order),
        cmocka_unit_test(test_gzip_wrapped),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_not_a_trace),
        cmocka_unit_test(test_corrupt_compressed),
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
