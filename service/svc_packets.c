/*
 * svc_packets.c - encodes the service's own TracePackets (see svc_packets.h)
 * with the growable pb_writer. Field numbers are TracePacket's (spec 5.2,
 * 5.7-5.9).
 */
#include "service/svc_packets.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/pb_writer.h"

#ifndef TB_VERSION_STRING
#define TB_VERSION_STRING "traced-bpf"
#endif

enum {
    PKT_TRUSTED_UID = 3,
    PKT_CLOCK_SNAPSHOT = 6,
    PKT_TIMESTAMP = 8,
    PKT_TRUSTED_SEQ_ID = 10,
    PKT_TRACE_CONFIG = 33,
    PKT_TRACE_STATS = 35,
    PKT_SYNC_MARKER = 36,
    PKT_SYSTEM_INFO = 45,
    PKT_COMPRESSED = 50,
    PKT_TIMESTAMP_CLOCK_ID = 58,
};

enum {
    CLK_REALTIME = 1,
    CLK_REALTIME_COARSE = 2,
    CLK_MONOTONIC = 3,
    CLK_MONOTONIC_COARSE = 4,
    CLK_MONOTONIC_RAW = 5,
    CLK_BOOTTIME = 6,
};

const uint8_t tb_svc_sync_marker[16] = {0x82, 0x47, 0x7A, 0x76, 0xB2, 0x8D, 0x42, 0xBA,
                                        0x81, 0xDC, 0x33, 0x32, 0x6D, 0x57, 0xA0, 0x79};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts))
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t tb_svc_boottime_ns(void)
{
    return clock_ns(CLOCK_BOOTTIME);
}

/* Opens a service packet: timestamp first, trusted fields last-wins safe. */
static int begin(struct tb_pbw *w, uid_t uid, bool stamp)
{
    int err = tb_pbw_init_dyn(w, 256);

    if (err)
        return err;
    if (stamp) {
        tb_pbw_append_varint(w, PKT_TIMESTAMP, tb_svc_boottime_ns());
        tb_pbw_append_varint(w, PKT_TIMESTAMP_CLOCK_ID, CLK_BOOTTIME);
    }
    tb_pbw_append_int(w, PKT_TRUSTED_UID, (int32_t)uid);
    tb_pbw_append_varint(w, PKT_TRUSTED_SEQ_ID, TB_SVC_SEQ_ID);
    return 0;
}

static int finish(struct tb_pbw *w, uint8_t **out, size_t *len)
{
    int err = tb_pbw_error(w);

    if (err) {
        tb_pbw_dyn_free(w);
        return err;
    }
    *out = tb_pbw_dyn_take(w, len);
    return *out ? 0 : -ENOMEM;
}

int tb_svc_pkt_clock_snapshot(uid_t uid, uint8_t **out, size_t *len)
{
    static const struct {
        clockid_t id;
        uint32_t builtin;
    } clocks[] = {
        {CLOCK_BOOTTIME, CLK_BOOTTIME},           {CLOCK_MONOTONIC, CLK_MONOTONIC},
        {CLOCK_MONOTONIC_RAW, CLK_MONOTONIC_RAW}, {CLOCK_MONOTONIC_COARSE, CLK_MONOTONIC_COARSE},
        {CLOCK_REALTIME, CLK_REALTIME},           {CLOCK_REALTIME_COARSE, CLK_REALTIME_COARSE},
    };
    uint64_t now[sizeof(clocks) / sizeof(clocks[0])];
    struct tb_pbw w;
    int err;

    /* Read every clock first so the snapshot is as tight as it can be. */
    for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++)
        now[i] = clock_ns(clocks[i].id);
    err = begin(&w, uid, false);
    if (err)
        return err;
    tb_pbw_append_varint(&w, PKT_TIMESTAMP, now[0]);
    tb_pbw_append_varint(&w, PKT_TIMESTAMP_CLOCK_ID, CLK_BOOTTIME);
    tb_pbw_begin_nested(&w, PKT_CLOCK_SNAPSHOT);
    for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
        tb_pbw_begin_nested(&w, 1);
        tb_pbw_append_varint(&w, 1, clocks[i].builtin);
        tb_pbw_append_varint(&w, 2, now[i]);
        tb_pbw_end_nested(&w);
    }
    tb_pbw_append_varint(&w, 2, CLK_BOOTTIME); /* primary_trace_clock */
    tb_pbw_end_nested(&w);
    return finish(&w, out, len);
}

int tb_svc_pkt_system_info(uid_t uid, uint8_t **out, size_t *len)
{
    struct utsname un;
    struct tb_pbw w;
    long v;
    int err;

    err = begin(&w, uid, true);
    if (err)
        return err;
    tb_pbw_begin_nested(&w, PKT_SYSTEM_INFO);
    if (uname(&un) == 0) {
        tb_pbw_begin_nested(&w, 1);
        tb_pbw_append_string(&w, 1, un.sysname);
        tb_pbw_append_string(&w, 2, un.version);
        tb_pbw_append_string(&w, 3, un.release);
        tb_pbw_append_string(&w, 4, un.machine);
        tb_pbw_end_nested(&w);
    }
    v = sysconf(_SC_CLK_TCK);
    if (v > 0)
        tb_pbw_append_int(&w, 3, v);
    tb_pbw_append_string(&w, 4, TB_VERSION_STRING);
    v = sysconf(_SC_PAGESIZE);
    if (v > 0)
        tb_pbw_append_varint(&w, 6, (uint64_t)v);
    v = sysconf(_SC_NPROCESSORS_CONF);
    if (v > 0)
        tb_pbw_append_varint(&w, 8, (uint64_t)v);
    tb_pbw_end_nested(&w);
    return finish(&w, out, len);
}

static int wrap_bytes(uid_t uid, uint32_t field, const void *data, size_t n, uint8_t **out,
                      size_t *len)
{
    struct tb_pbw w;
    int err = begin(&w, uid, true);

    if (err)
        return err;
    tb_pbw_append_bytes(&w, field, data, n);
    return finish(&w, out, len);
}

int tb_svc_pkt_trace_config(uid_t uid, const void *cfg, size_t cfg_len, uint8_t **out, size_t *len)
{
    return wrap_bytes(uid, PKT_TRACE_CONFIG, cfg, cfg_len, out, len);
}

int tb_svc_pkt_trace_stats(uid_t uid, const void *stats, size_t stats_len, uint8_t **out,
                           size_t *len)
{
    return wrap_bytes(uid, PKT_TRACE_STATS, stats, stats_len, out, len);
}

int tb_svc_pkt_sync_marker(uid_t uid, uint8_t **out, size_t *len)
{
    struct tb_pbw w;
    int err = begin(&w, uid, false);

    if (err)
        return err;
    /* The marker must be the packet's last field (spec 5.9). */
    tb_pbw_append_bytes(&w, PKT_SYNC_MARKER, tb_svc_sync_marker, sizeof(tb_svc_sync_marker));
    return finish(&w, out, len);
}

int tb_svc_pkt_compressed(uid_t uid, const void *trace, size_t trace_len, uint8_t **out,
                          size_t *len)
{
    uLongf zlen = compressBound(trace_len);
    uint8_t *z = malloc(zlen ? zlen : 1);
    int err;

    if (!z)
        return -ENOMEM;
    if (compress2(z, &zlen, trace, trace_len, Z_DEFAULT_COMPRESSION) != Z_OK) {
        free(z);
        return -EIO;
    }
    err = wrap_bytes(uid, PKT_COMPRESSED, z, zlen, out, len);
    free(z);
    return err;
}
