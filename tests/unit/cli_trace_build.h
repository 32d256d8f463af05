/*
 * cli_trace_build.h - test helper: write trace files packet by packet from
 * protobuf-c messages, in the file framing ("0A varint(len) bytes"),
 * optionally as a compressed_packets batch. Header-only, shared by the CLI
 * unit and integration tests.
 */
#ifndef TB_TESTS_CLI_TRACE_BUILD_H
#define TB_TESTS_CLI_TRACE_BUILD_H

#include "perfetto/trace/trace_packet.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

static inline size_t tbt_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* Appends one framed packet of @len bytes to @buf at *@pos (caller sized it). */
static inline void tbt_frame(uint8_t *buf, size_t *pos, const uint8_t *data, size_t len)
{
    buf[(*pos)++] = 0x0A;
    *pos += tbt_varint(buf + *pos, len);
    for (size_t i = 0; i < len; i++)
        buf[(*pos)++] = data[i];
}

static inline void tbt_write_raw(FILE *f, const uint8_t *data, size_t len)
{
    uint8_t hdr[11];
    size_t n = 0;

    hdr[n++] = 0x0A;
    n += tbt_varint(hdr + n, len);
    fwrite(hdr, 1, n, f);
    fwrite(data, 1, len, f);
}

static inline void tbt_write(FILE *f, const Perfetto__Protos__TracePacket *p)
{
    size_t len = protobuf_c_message_get_packed_size(&p->base);
    uint8_t *buf = malloc(len + 1);

    protobuf_c_message_pack(&p->base, buf);
    tbt_write_raw(f, buf, len);
    free(buf);
}

/* Writes @n packets as one compressed_packets batch (zlib deflate). */
static inline void tbt_write_compressed(FILE *f, Perfetto__Protos__TracePacket **ps, size_t n)
{
    Perfetto__Protos__TracePacket outer = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    size_t total = 0, pos = 0, i;
    uint8_t *plain, *packed;
    uLongf zlen;

    for (i = 0; i < n; i++)
        total += protobuf_c_message_get_packed_size(&ps[i]->base) + 11;
    plain = malloc(total + 1);
    for (i = 0; i < n; i++) {
        size_t len = protobuf_c_message_get_packed_size(&ps[i]->base);
        uint8_t *tmp = malloc(len + 1);

        protobuf_c_message_pack(&ps[i]->base, tmp);
        tbt_frame(plain, &pos, tmp, len);
        free(tmp);
    }
    zlen = compressBound(pos);
    packed = malloc(zlen);
    compress2(packed, &zlen, plain, pos, 6);
    outer.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_COMPRESSED_PACKETS;
    outer.compressed_packets.data = packed;
    outer.compressed_packets.len = zlen;
    outer.optional_trusted_packet_sequence_id_case =
        PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_PACKET_SEQUENCE_ID_TRUSTED_PACKET_SEQUENCE_ID;
    outer.trusted_packet_sequence_id = 1;
    tbt_write(f, &outer);
    free(plain);
    free(packed);
}

#endif /* TB_TESTS_CLI_TRACE_BUILD_H */
