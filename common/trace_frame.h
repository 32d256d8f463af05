/*
 * trace_frame.h - the framing of a Perfetto trace file: a Trace message is
 * a run of records "0A varint(len) packet" (Trace.packet, field 1,
 * length-delimited), so a file is built by appending records, and writing
 * them to a file descriptor in full. The service's file writer and batches
 * and the consumer client's ReadBuffers-to-file sink share it.
 */
#ifndef TB_COMMON_TRACE_FRAME_H
#define TB_COMMON_TRACE_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Bytes a record header can take: the tag and a 10-byte varint. */
#define TB_TFRAME_HDR_MAX 11

/*
 * tb_tframe_hdr() - encode the header of a record holding @len packet bytes.
 * @hdr: caller's buffer of TB_TFRAME_HDR_MAX bytes.
 * Return: the header's length (2..11). Context: any; no allocation.
 */
size_t tb_tframe_hdr(uint8_t hdr[TB_TFRAME_HDR_MAX], uint64_t len);

/*
 * tb_tframe_write_all() - write all @n bytes at @p (borrowed) to @fd,
 * retrying short writes and EINTR.
 * Return: 0 or the negative errno of the failed write(). Context: blocks
 * when @fd does.
 */
int tb_tframe_write_all(int fd, const void *p, size_t n);

/*
 * tb_tframe_write() - write one packet (@pkt, @len bytes, borrowed) to @fd
 * as a record, in one writev() unless the fd takes it short.
 * @bytes: when not NULL, incremented by the bytes written (only on success).
 * Return: 0 or as tb_tframe_write_all().
 */
int tb_tframe_write(int fd, const void *pkt, size_t len, uint64_t *bytes);

#endif /* TB_COMMON_TRACE_FRAME_H */
