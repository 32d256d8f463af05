/*
 * service_packets_test.c - the service's own packets decode as TracePackets
 * with the fields consumers rely on (spec 5.7-5.9), and the deflating batch
 * adapter of the ReadBuffers path hands out every packet once, in order, in
 * bounded batches, holding nothing when its sink pauses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/svc_batch.h"
#include "service/svc_packets.h"

static Perfetto__Protos__TracePacket *decode(uint8_t *buf, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, buf);

    assert_non_null(p);
    free(buf);
    assert_int_equal(p->trusted_uid, 1234);
    assert_int_equal(p->trusted_packet_sequence_id, 1);
    return p;
}

static void test_sync_marker_bytes(void **state)
{
    static const uint8_t want[] = {0x18, 0xd2, 0x09, 0x50, 0x01, 0xa2, 0x02, 0x10};
    uint8_t *buf;
    size_t len;

    assert_int_equal(tb_svc_pkt_sync_marker(1234, &buf, &len), 0);
    /* 18 <uid> 50 01 A2 02 10 <16 marker bytes>, the marker last. */
    assert_int_equal(len, sizeof(want) + 16);
    assert_memory_equal(buf, want, sizeof(want));
    assert_memory_equal(buf + sizeof(want), tb_svc_sync_marker, 16);
    free(buf);
}

static void test_clock_snapshot(void **state)
{
    Perfetto__Protos__TracePacket *p;
    bool seen_boot = false;
    uint8_t *buf;
    size_t len;

    assert_int_equal(tb_svc_pkt_clock_snapshot(1234, &buf, &len), 0);
    p = decode(buf, len);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT);
    assert_int_equal(p->timestamp_clock_id, 6);
    assert_true(p->clock_snapshot->n_clocks >= 3);
    for (size_t i = 0; i < p->clock_snapshot->n_clocks; i++) {
        if (p->clock_snapshot->clocks[i]->clock_id == 6) {
            seen_boot = true;
            assert_int_equal(p->clock_snapshot->clocks[i]->timestamp, p->timestamp);
        }
        assert_true(p->clock_snapshot->clocks[i]->timestamp > 0);
    }
    assert_true(seen_boot);
    assert_int_equal(p->clock_snapshot->primary_trace_clock, 6);
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
}

static void test_system_info(void **state)
{
    Perfetto__Protos__TracePacket *p;
    uint8_t *buf;
    size_t len;

    assert_int_equal(tb_svc_pkt_system_info(1234, &buf, &len), 0);
    p = decode(buf, len);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO);
    assert_non_null(p->system_info->utsname);
    assert_string_equal(p->system_info->utsname->sysname, "Linux");
    assert_true(strlen(p->system_info->utsname->release) > 0);
    assert_int_equal(p->system_info->page_size, (uint32_t)sysconf(_SC_PAGESIZE));
    assert_int_equal(p->system_info->num_cpus, (uint32_t)sysconf(_SC_NPROCESSORS_CONF));
    assert_int_equal(p->system_info->hz, sysconf(_SC_CLK_TCK));
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
}

static void test_compressed(void **state)
{
    /* Two records of a Trace: 0A 02 40 05 | 0A 02 40 06. */
    static const uint8_t trace[] = {0x0a, 0x02, 0x40, 0x05, 0x0a, 0x02, 0x40, 0x06};
    Perfetto__Protos__TracePacket *p;
    uint8_t out[64], *buf;
    uLongf outlen = sizeof(out);
    size_t len;

    assert_int_equal(tb_svc_pkt_compressed(1234, trace, sizeof(trace), &buf, &len), 0);
    p = decode(buf, len);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_COMPRESSED_PACKETS);
    assert_int_equal(
        uncompress(out, &outlen, p->compressed_packets.data, p->compressed_packets.len), Z_OK);
    assert_int_equal(outlen, sizeof(trace));
    assert_memory_equal(out, trace, sizeof(trace));
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
}

/* What the deflate adapter's sink saw, inflated back into packets. */
struct sink {
    unsigned batches, packets;
    size_t max_inflated;
    uint32_t next_id; /* each test packet carries its index as its timestamp */
    int ret;          /* what the sink answers */
};

static int sink_fn(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    struct sink *k = ctx;
    Perfetto__Protos__TracePacket *p;
    uLongf cap = 1 << 20, out_len = cap;
    uint8_t *out = malloc(cap);
    size_t off = 0;

    /* One whole compressed_packets packet a call, never split. */
    assert_int_equal(n, 1);
    p = perfetto__protos__trace_packet__unpack(NULL, sl[0].len, sl[0].data);
    assert_non_null(p);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_COMPRESSED_PACKETS);
    assert_int_equal(p->trusted_uid, 1234);
    assert_int_equal(p->trusted_packet_sequence_id, 1);
    assert_int_equal(
        uncompress(out, &out_len, p->compressed_packets.data, p->compressed_packets.len), Z_OK);
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    k->batches++;
    if (out_len > k->max_inflated)
        k->max_inflated = out_len;
    while (off < out_len) {
        Perfetto__Protos__TracePacket *in;
        size_t len;

        assert_int_equal(out[off++], 0x0a);
        len = out[off++];
        if (len & 0x80)
            len = (len & 0x7f) | (size_t)out[off++] << 7;
        in = perfetto__protos__trace_packet__unpack(NULL, len, out + off);
        assert_non_null(in);
        assert_int_equal(in->timestamp, k->next_id);
        k->next_id++;
        k->packets++;
        perfetto__protos__trace_packet__free_unpacked(in, NULL);
        off += len;
    }
    assert_int_equal(off, out_len);
    free(out);
    return k->ret;
}

/* Packet @i: timestamp = i, then a 100-byte field 2000, in two slices. */
static int feed(struct tb_svc_deflate *d, uint32_t i)
{
    uint8_t head[8], body[104];
    size_t h = 0;
    uint32_t v = i;
    struct tb_svc_slice sl[2];

    head[h++] = 0x40; /* timestamp, varint */
    do {
        head[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    body[0] = 0x82; /* field 2000, length-delimited */
    body[1] = 0x7d;
    body[2] = 100;
    memset(body + 3, (int)i, 100);
    sl[0].data = head;
    sl[0].len = h;
    sl[1].data = body;
    sl[1].len = 103;
    return tb_svc_deflate_packet(d, sl, 2);
}

static void test_deflate_batches(void **state)
{
    struct sink k = {0};
    struct tb_svc_deflate d = {.limit = 4096, .uid = 1234, .fn = sink_fn, .ctx = &k};

    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(feed(&d, i), 0);
    assert_int_equal(tb_svc_deflate_flush(&d), 0);
    /* An empty batch sends nothing. */
    assert_int_equal(tb_svc_deflate_flush(&d), 0);
    tb_svc_batch_free(&d.batch);
    assert_int_equal(k.packets, 1000);
    /* ~110-byte records: a batch closes at the first record past 4096. */
    assert_true(k.max_inflated >= 4096 && k.max_inflated < 4096 + 120);
    assert_true(k.batches >= 1000 * 108 / (4096 + 120) && k.batches <= 1000 * 112 / 4096 + 1);
}

static void test_deflate_pause_holds_nothing(void **state)
{
    struct sink k = {.ret = -EAGAIN};
    struct tb_svc_deflate d = {.limit = 4096, .uid = 1234, .fn = sink_fn, .ctx = &k};
    unsigned pauses = 0;

    for (uint32_t i = 0; i < 1000; i++) {
        int err = feed(&d, i);

        if (err) {
            /* The pause comes with a batch handed over, none kept back. */
            assert_int_equal(err, -EAGAIN);
            assert_int_equal(d.batch.len, 0);
            assert_int_equal(k.packets, i + 1);
            pauses++;
        }
    }
    assert_int_equal(tb_svc_deflate_flush(&d), -EAGAIN);
    tb_svc_batch_free(&d.batch);
    assert_int_equal(pauses + 1, k.batches);
    assert_int_equal(k.packets, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_marker_bytes),
        cmocka_unit_test(test_clock_snapshot),
        cmocka_unit_test(test_system_info),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_deflate_batches),
        cmocka_unit_test(test_deflate_pause_holds_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
