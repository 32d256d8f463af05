/*
 * svc_packets.h - the TracePackets the service writes itself: trace config,
 * clock snapshot, system info, trace stats and the synchronization marker.
 *
 * Every one is stamped the way consumers expect service packets to look:
 * trusted_uid = the service's uid, trusted_packet_sequence_id = 1, and (but
 * for the sync marker, whose marker must be the last field) a BOOTTIME
 * timestamp with timestamp_clock_id = 6.
 *
 * Each builder returns a heap buffer holding one serialized TracePacket
 * (without the outer Trace framing); the caller frees it with free().
 */
#ifndef TB_SERVICE_SVC_PACKETS_H
#define TB_SERVICE_SVC_PACKETS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sequence id of every packet the service writes (producers start at 2). */
#define TB_SVC_SEQ_ID 1

/* The 16-byte synchronization marker readers use to resync in a trace. */
extern const uint8_t tb_svc_sync_marker[16];

/*
 * tb_svc_pkt_clock_snapshot() - BOOTTIME, MONOTONIC, MONOTONIC_RAW,
 * REALTIME and the coarse clocks read back to back, primary clock BOOTTIME.
 * @uid: the service's uid; @out/@len: the packet, caller frees with free().
 * Return: 0 or -ENOMEM.
 */
int tb_svc_pkt_clock_snapshot(uid_t uid, uint8_t **out, size_t *len);

/*
 * tb_svc_pkt_system_info() - uname, page size, CPU count, clock ticks per
 * second (hz) and the service version.
 * Return: 0 or -ENOMEM; @out freed by the caller with free().
 */
int tb_svc_pkt_system_info(uid_t uid, uint8_t **out, size_t *len);

/*
 * tb_svc_pkt_trace_config() - wrap the serialized TraceConfig @cfg (@cfg_len
 * bytes, borrowed) as TracePacket.trace_config.
 * Return: 0 or -ENOMEM; @out freed by the caller with free().
 */
int tb_svc_pkt_trace_config(uid_t uid, const void *cfg, size_t cfg_len, uint8_t **out, size_t *len);

/*
 * tb_svc_pkt_trace_stats() - wrap the serialized TraceStats @stats
 * (borrowed) as TracePacket.trace_stats.
 * Return: 0 or -ENOMEM; @out freed by the caller with free().
 */
int tb_svc_pkt_trace_stats(uid_t uid, const void *stats, size_t stats_len, uint8_t **out,
                           size_t *len);

/*
 * tb_svc_pkt_sync_marker() - the synchronization marker packet.
 * Return: 0 or -ENOMEM; @out freed by the caller with free().
 */
int tb_svc_pkt_sync_marker(uid_t uid, uint8_t **out, size_t *len);

/*
 * tb_svc_pkt_compressed() - wrap @trace (a run of "0A varint(len) packet"
 * records, borrowed) deflated with zlib as TracePacket.compressed_packets.
 * Return: 0, -ENOMEM, or -EIO when zlib fails; @out freed with free().
 */
int tb_svc_pkt_compressed(uid_t uid, const void *trace, size_t trace_len, uint8_t **out,
                          size_t *len);

/* tb_svc_boottime_ns() - CLOCK_BOOTTIME now, in nanoseconds. */
uint64_t tb_svc_boottime_ns(void);

#endif /* TB_SERVICE_SVC_PACKETS_H */
