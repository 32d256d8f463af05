/*
 * packet_validator.h - checks on producer TracePackets and the trusted
 * trailer the service appends to them.
 *
 * Producers are untrusted: a packet must be a well-formed protobuf message at
 * its top level and must not carry the fields only the service may write
 * (trusted uid/pid/sequence id, trace config, stats, sync marker ...). The
 * service then appends its own values for the trusted fields after the
 * producer's bytes; protobuf's last-field-wins rule makes them authoritative.
 *
 * Context: pure functions, thread-safe, no allocation.
 */
#ifndef TB_SERVICE_PACKET_VALIDATOR_H
#define TB_SERVICE_PACKET_VALIDATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service/trace_buffer.h"

/* Longest trailer tb_pval_write_trusted() produces. */
#define TB_PVAL_TRAILER_MAX 48u

/*
 * tb_pval_is_reserved_field() - whether TracePacket field @field_id may only be
 * written by the service (3, 10, 33, 35, 36, 50, 69, 79, 98, 124, 125, 133).
 */
bool tb_pval_is_reserved_field(uint32_t field_id);

/*
 * tb_pval_check() - validate one producer packet.
 * @data: packet bytes (borrowed); may be NULL when @len is 0.
 * @len: packet length.
 *
 * Every top-level field must have a valid tag (field number 1..2^29-1), a
 * supported wire type (varint, fixed64, length-delimited, fixed32; no
 * groups), a varint of at most 10 bytes and a length that stays inside the
 * packet. Nested messages are not descended into.
 *
 * Return: 0 if valid; -EBADMSG if malformed or truncated; -EPERM if it carries
 * a reserved field. Either error means: drop the packet, count invalid_packets.
 */
int tb_pval_check(const uint8_t *data, size_t len);

/*
 * tb_pval_check_slices() - tb_pval_check() over a packet held in @num slices
 * (as returned by tb_tbuf_read_next()), without copying it.
 * Return: as tb_pval_check().
 */
int tb_pval_check_slices(const struct tb_tbuf_slice *slices, size_t num);

/* Values the service vouches for, appended to every producer packet. */
struct tb_pval_trusted {
    int32_t uid;          /* trusted_uid (3), peer uid */
    uint32_t sequence_id; /* trusted_packet_sequence_id (10), ≥ 2 */
    int32_t pid;          /* trusted_pid (79), if @has_pid */
    bool has_pid;
    uint32_t previous_packet_dropped; /* field 42, written only if non-zero */
};

/*
 * tb_pval_write_trusted() - encode the trusted trailer.
 * @t: the values.
 * @out: destination (caller-owned), at least TB_PVAL_TRAILER_MAX bytes is
 *       always enough.
 * @cap: bytes available at @out.
 *
 * Writes trusted_uid, trusted_packet_sequence_id, trusted_pid (if known) and
 * previous_packet_dropped (if non-zero) as top-level TracePacket fields; the
 * caller sends the bytes right after the packet, inside the same packet.
 * Return: bytes written, or -ENOBUFS if @cap is too small (nothing useful
 * written).
 */
int tb_pval_write_trusted(const struct tb_pval_trusted *t, uint8_t *out, size_t cap);

#endif /* TB_SERVICE_PACKET_VALIDATOR_H */
