/*
 * ipc_frame.h - framing of IPCFrame messages on a byte stream (spec §2.1).
 *
 * Each frame is a 4-byte little-endian payload length followed by the
 * serialized perfetto.protos.IPCFrame. The decoder takes bytes cut at any
 * boundary and yields whole parsed frames; a header announcing more than the
 * limit is a protocol error after which the connection must be closed.
 * Zero-length frames are skipped and frames that fail to parse are dropped
 * and counted, as the Perfetto peers do.
 */
#ifndef TB_COMMON_IPC_FRAME_H
#define TB_COMMON_IPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "perfetto/ipc/wire_protocol.pb-c.h"

/* Size of the length prefix. */
#define TB_IPC_FRAME_HEADER_SIZE 4u
/* Perfetto's receive buffer, header included: payloads top out at 131068. */
#define TB_IPC_MAX_FRAME_SIZE 131072u

struct tb_ipc_frame_decoder;

struct tb_ipc_frame_decoder_stats {
    uint64_t frames_decoded; /* parsed and queued for tb_ipc_frame_decoder_pop() */
    uint64_t frames_dropped; /* complete but not a valid IPCFrame */
    uint64_t frames_empty;   /* zero-length frames skipped */
    uint64_t bytes_received;
};

/**
 * tb_ipc_frame_decoder_new() - create a stream decoder.
 * @max_frame_size: largest frame accepted, header included; 0 means
 *                  TB_IPC_MAX_FRAME_SIZE. Must be > TB_IPC_FRAME_HEADER_SIZE.
 * @out: receives the decoder; free with tb_ipc_frame_decoder_free().
 *
 * The decoder keeps one buffer of @max_frame_size bytes.
 * Return: 0, -EINVAL or -ENOMEM. Context: any; one decoder per stream.
 */
int tb_ipc_frame_decoder_new(size_t max_frame_size, struct tb_ipc_frame_decoder **out);

/**
 * tb_ipc_frame_decoder_free() - free the decoder and any frame still queued.
 * @d: the decoder, or NULL.
 */
void tb_ipc_frame_decoder_free(struct tb_ipc_frame_decoder *d);

/**
 * tb_ipc_frame_decoder_begin_receive() - where the next recv() should write.
 * @d: the decoder.
 * @buf: receives a pointer into the decoder's buffer (owned by @d, valid
 *       until the next call on @d).
 * @len: receives how many bytes fit there (always > 0 unless in error).
 *
 * Lets the caller recv() straight into the decoder with no copy; pair with
 * tb_ipc_frame_decoder_end_receive().
 * Return: 0, or the sticky error of an earlier end_receive().
 */
int tb_ipc_frame_decoder_begin_receive(struct tb_ipc_frame_decoder *d, void **buf, size_t *len);

/**
 * tb_ipc_frame_decoder_end_receive() - account @n bytes written at the
 * position begin_receive() returned, and parse every complete frame.
 * @d: the decoder.
 * @n: bytes received (<= the length begin_receive() gave).
 *
 * Return: 0; -EMSGSIZE when a header announces a frame over the limit (the
 * decoder then stays in error: close the connection; frames queued before
 * the bad header can still be popped); -EINVAL if @n is too large;
 * -ENOMEM.
 */
int tb_ipc_frame_decoder_end_receive(struct tb_ipc_frame_decoder *d, size_t n);

/**
 * tb_ipc_frame_decoder_end_receive_fd() - as end_receive(), for a recvmsg()
 * that also delivered a passed fd.
 * @d: the decoder.
 * @n: bytes received.
 * @fd: the fd that came with them, or -1. Ownership passes to @d.
 *
 * The sender attaches an fd to the first sendmsg() of its frame, and the
 * kernel ends a stream read right after the data carrying it, so the fd
 * belongs to the last frame that begins in these @n bytes. It is handed out
 * with that frame by tb_ipc_frame_decoder_pop_fd(), and closed if the frame
 * is dropped or the decoder freed.
 * Return: as tb_ipc_frame_decoder_end_receive().
 */
int tb_ipc_frame_decoder_end_receive_fd(struct tb_ipc_frame_decoder *d, size_t n, int fd);

/**
 * tb_ipc_frame_decoder_feed() - copy @len bytes in (any split) and parse.
 * @d: the decoder.
 * @data: bytes of the stream, borrowed.
 * @len: how many.
 *
 * Return: as tb_ipc_frame_decoder_end_receive().
 */
int tb_ipc_frame_decoder_feed(struct tb_ipc_frame_decoder *d, const void *data, size_t len);

/**
 * tb_ipc_frame_decoder_pop() - take the oldest complete frame.
 * @d: the decoder.
 *
 * Return: a frame owned by the caller (free with tb_ipc_frame_free()), or
 * NULL when none is queued. An fd that came with the frame is closed.
 */
Perfetto__Protos__IPCFrame *tb_ipc_frame_decoder_pop(struct tb_ipc_frame_decoder *d);

/**
 * tb_ipc_frame_decoder_pop_fd() - tb_ipc_frame_decoder_pop() plus the fd
 * that arrived with the frame.
 * @d: the decoder.
 * @fd: receives the frame's fd (owned by the caller) or -1.
 *
 * Return: as tb_ipc_frame_decoder_pop().
 */
Perfetto__Protos__IPCFrame *tb_ipc_frame_decoder_pop_fd(struct tb_ipc_frame_decoder *d, int *fd);

/**
 * tb_ipc_frame_decoder_get_stats() - counters since creation.
 * @d: the decoder.
 * @out: filled in.
 */
void tb_ipc_frame_decoder_get_stats(const struct tb_ipc_frame_decoder *d,
                                    struct tb_ipc_frame_decoder_stats *out);

/**
 * tb_ipc_frame_free() - free a frame from tb_ipc_frame_decoder_pop().
 * @frame: the frame, or NULL.
 */
void tb_ipc_frame_free(Perfetto__Protos__IPCFrame *frame);

/**
 * tb_ipc_frame_encode() - serialize @frame with its length prefix.
 * @frame: the frame, borrowed.
 * @max_frame_size: limit including the header; 0 means TB_IPC_MAX_FRAME_SIZE.
 * @out: receives a malloc()ed buffer, owned by the caller (free()).
 * @out_len: receives its length (header + payload).
 *
 * Return: 0, -EMSGSIZE if the frame would exceed the limit, -EINVAL for a
 * limit of 1..TB_IPC_FRAME_HEADER_SIZE, or -ENOMEM.
 */
int tb_ipc_frame_encode(const Perfetto__Protos__IPCFrame *frame, size_t max_frame_size,
                        uint8_t **out, size_t *out_len);

#endif /* TB_COMMON_IPC_FRAME_H */
