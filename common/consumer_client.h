/*
 * consumer_client.h - a small blocking-friendly client of the service's
 * consumer socket (ConsumerPort), for the tracebpf CLI and for tests.
 *
 * The client owns a private event loop; every call pumps it only as long
 * as needed, so the caller keeps control: start a session with
 * tb_cc_enable(), then call tb_cc_wait() in a loop with a short timeout to
 * show progress and react to Ctrl-C (tb_cc_flush() + tb_cc_disable()), and
 * finally tb_cc_read_buffers() into a file.
 *
 * Context: one thread at a time per client; not async-signal-safe (set a
 * flag in the signal handler and act on it after tb_cc_wait() returns).
 */
#ifndef TB_COMMON_CONSUMER_CLIENT_H
#define TB_COMMON_CONSUMER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perfetto/common/tracing_service_state.pb-c.h"
#include "perfetto/config/trace_config.pb-c.h"
#include "perfetto/trace/trace_stats.pb-c.h"

struct tb_cc;

/*
 * tb_cc_connect() - connect to a service's consumer socket and bind
 * ConsumerPort.
 * @name: socket name, or NULL for tb_ipc_sock_default_name(consumer).
 * @timeout_ms: limit for connect + bind.
 * @out: the client; free with tb_cc_free().
 * Return: 0; -ENOENT / -ECONNREFUSED when no service listens (the CLI's cue
 * for embedded mode); -EACCES without permission; -ETIMEDOUT; -ENOMEM.
 */
int tb_cc_connect(const char *name, int timeout_ms, struct tb_cc **out);

/* tb_cc_free() - close the connection (ending any session). Accepts NULL. */
void tb_cc_free(struct tb_cc *cc);

/*
 * tb_cc_enable() - send EnableTracing with @cfg (borrowed) and return at
 * once; the session's end is reported by tb_cc_wait().
 * @out_fd: file for write_into_file, or -1. Borrowed (a copy is sent).
 * Return: 0, -EBUSY if a session is already running on this client,
 * -ENOTCONN, -ENOMEM.
 */
int tb_cc_enable(struct tb_cc *cc, const Perfetto__Protos__TraceConfig *cfg, int out_fd);

/*
 * tb_cc_wait() - pump the connection for up to @timeout_ms (0 = poll) or
 * until the session ends.
 * @done: set to true once the session has ended (EnableTracing answered or
 *        the connection lost).
 * Return: 0; or, once @done, the session's outcome: 0 = ended normally,
 * -EIO with tb_cc_error() set when the service refused or aborted it,
 * -ECONNRESET when the connection dropped.
 */
int tb_cc_wait(struct tb_cc *cc, int timeout_ms, bool *done);

/*
 * tb_cc_error() - the service's error message for the session, or NULL.
 * Owned by @cc, valid until the next tb_cc_enable() or tb_cc_free().
 */
const char *tb_cc_error(const struct tb_cc *cc);

/* tb_cc_start() - StartTracing (for configs with deferred_start). */
int tb_cc_start(struct tb_cc *cc, int timeout_ms);

/* tb_cc_disable() - DisableTracing; the end still comes via tb_cc_wait(). */
int tb_cc_disable(struct tb_cc *cc, int timeout_ms);

/*
 * tb_cc_flush() - Flush every data source of the session.
 * @timeout_ms: the service's flush timeout (0 = 5 s); the call waits a
 *              little longer than that for the answer.
 * Return: 0 when every producer acknowledged; -ECANCELED when the service
 * reported a timeout; -ETIMEDOUT; -ENOTCONN.
 */
int tb_cc_flush(struct tb_cc *cc, uint32_t timeout_ms);

/*
 * tb_cc_packet_fn - one whole TracePacket read back (borrowed for the call).
 * Return 0 to go on, negative errno to abort the read.
 */
typedef int (*tb_cc_packet_fn)(void *ctx, const uint8_t *packet, size_t len);

/*
 * tb_cc_read_buffers_cb() - ReadBuffers: hand every packet available now to
 * @fn, reassembled from its slices.
 * @timeout_ms: inactivity limit: the read fails when no reply arrived for
 *              this long. There is no limit on the whole read, which for a
 *              big buffer on a loaded host can take minutes.
 * @packets: if not NULL, receives the number of packets @fn accepted, also
 *           when the read fails part way.
 * Return: 0, @fn's error, -ETIMEDOUT after @timeout_ms without a reply,
 * -ENOTCONN or -ECANCELED when the connection or the call is lost.
 */
int tb_cc_read_buffers_cb(struct tb_cc *cc, tb_cc_packet_fn fn, void *ctx, int timeout_ms,
                          uint64_t *packets);

/*
 * tb_cc_read_buffers() - ReadBuffers into @fd (borrowed) as a trace file:
 * each packet written as "0A varint(len) packet" in one write.
 * @timeout_ms: inactivity limit, as tb_cc_read_buffers_cb().
 * @packets, @bytes: if not NULL, receive what was written, also on failure
 *                   (the file then holds exactly that many whole records).
 * Return: 0, a write error, or as tb_cc_read_buffers_cb().
 */
int tb_cc_read_buffers(struct tb_cc *cc, int fd, int timeout_ms, uint64_t *packets,
                       uint64_t *bytes);

/* tb_cc_free_buffers() - FreeBuffers: end the session and free its buffers. */
int tb_cc_free_buffers(struct tb_cc *cc, int timeout_ms);

/*
 * tb_cc_get_stats() - GetTraceStats.
 * @out: the stats, owned by the caller: free with
 *       perfetto__protos__trace_stats__free_unpacked(*out, NULL).
 */
int tb_cc_get_stats(struct tb_cc *cc, int timeout_ms, Perfetto__Protos__TraceStats **out);

/*
 * tb_cc_query_state() - QueryServiceState: producers and their data sources.
 * @out: owned by the caller: free with
 *       perfetto__protos__tracing_service_state__free_unpacked(*out, NULL).
 */
int tb_cc_query_state(struct tb_cc *cc, int timeout_ms,
                      Perfetto__Protos__TracingServiceState **out);

#endif /* TB_COMMON_CONSUMER_CLIENT_H */
