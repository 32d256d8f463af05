/*
 * service_packets_test.c - the service's own packets decode as TracePackets
 * with the fields consumers rely on (spec 5.7-5.9).
 */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_marker_bytes),
        cmocka_unit_test(test_clock_snapshot),
        cmocka_unit_test(test_system_info),
        cmocka_unit_test(test_compressed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
