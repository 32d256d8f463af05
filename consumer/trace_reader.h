/*
 * trace_reader.h - streaming reader of Perfetto trace files: yields one
 * TracePacket's bytes at a time ("0A varint(len) bytes" framing), so memory
 * stays bounded by the largest packet whatever the file size. Packets that
 * hold compressed_packets (field 50, zlib deflate) are inflated and their
 * inner packets yielded in place, transparently. A gzip-wrapped file is read
 * the same way.
 */
#ifndef TB_CONSUMER_TRACE_READER_H
#define TB_CONSUMER_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

/* Packets (and inflated compressed batches) larger than this are refused. */
#define TB_TRACE_READER_MAX_PACKET (256u << 20)

struct tb_trace_reader;

/*
 * tb_trace_reader_open() - open @path for reading.
 * @out: receives the reader; free with tb_trace_reader_free().
 * Return: 0 or negative errno (logged once, naming the file).
 */
int tb_trace_reader_open(const char *path, struct tb_trace_reader **out);

/*
 * tb_trace_reader_next() - the next packet.
 * @data, @len: receive the packet bytes; owned by the reader and valid
 *              until the next call or tb_trace_reader_free().
 * Return: 1 with a packet, 0 at the clean end of the file, or negative
 * errno: -EBADMSG for a malformed or truncated file (the reason is in
 * tb_trace_reader_error()), -EIO, -ENOMEM. After an error, stop reading.
 */
int tb_trace_reader_next(struct tb_trace_reader *r, const uint8_t **data, size_t *len);

/*
 * tb_trace_reader_error() - one line saying what was wrong and where (file
 * offset), e.g. "truncated: packet at offset 120 needs 57 bytes, the file
 * ends after 12". Return: owned by @r; "" when there was no error.
 */
const char *tb_trace_reader_error(const struct tb_trace_reader *r);

/*
 * tb_trace_reader_stats() - @packets: packets yielded so far (inner packets
 * of compressed batches counted one by one); @compressed: how many of them
 * came out of compressed batches; @bytes: file bytes consumed (uncompressed
 * view when the file is gzip-wrapped). Any pointer may be NULL.
 */
void tb_trace_reader_stats(const struct tb_trace_reader *r, uint64_t *packets, uint64_t *compressed,
                           uint64_t *bytes);

/* tb_trace_reader_free() - close the file and free the buffers. Accepts NULL. */
void tb_trace_reader_free(struct tb_trace_reader *r);

/*
 * tb_pb_read_varint() - decode a protobuf varint from [*p, end).
 * Return: 0 and advances *p, or -EBADMSG when truncated or over 10 bytes.
 * Shared by the exporters' small wire-format walks.
 */
int tb_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

#endif /* TB_CONSUMER_TRACE_READER_H */
