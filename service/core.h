/*
 * core.h - the traced-bpf service core: producers, consumers, tracing
 * sessions and their central buffers, with no socket in sight.
 *
 * The endpoints (producer_port.c, consumer_port.c) decode IPC frames and call
 * into this API; unit tests call it directly. The core talks back through the
 * small ops tables below (send a command to a producer, answer a consumer).
 * Timers (duration, flush timeouts, periodic snapshots, file writes) run on
 * the tb_loop the core is given; the core is single-threaded: every function
 * here must be called from the loop's thread.
 *
 * Protobuf messages passed in are borrowed for the call only; the core copies
 * whatever it keeps.
 */
#ifndef TB_SERVICE_CORE_H
#define TB_SERVICE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "perfetto/common/commit_data_request.pb-c.h"
#include "perfetto/common/data_source_descriptor.pb-c.h"
#include "perfetto/trace/trace_stats.pb-c.h"
#include "perfetto/common/tracing_service_state.pb-c.h"
#include "perfetto/config/trace_config.pb-c.h"
#include "perfetto/ipc/producer_port.pb-c.h"

struct tb_loop;
struct tb_svc_core;
struct tb_svc_producer;
struct tb_svc_consumer;

/* Limits on what untrusted clients may ask for. Zero fields take defaults. */
struct tb_svc_limits {
    unsigned max_producers;      /* connected at once; default 512 */
    size_t max_smb_bytes;        /* cap on one producer's SMB; default 32 MiB */
    unsigned max_commit_entries; /* chunks + patches in one CommitData; default 8192 */
    size_t max_buffer_kb_total;  /* sum of all central buffers; default 4 GiB */
    unsigned max_sessions;       /* concurrent sessions; default 32 */
};

/*
 * Callbacks from the core to a producer endpoint. @ctx is the pointer given
 * to tb_svc_producer_connect().
 */
struct tb_svc_producer_ops {
    /*
     * send_command() - queue one GetAsyncCommand reply. @fd (>= 0 only for
     * SetupTracing) is borrowed: the endpoint sends a copy of it.
     * Return: 0 or negative errno (the core then disconnects the producer).
     */
    int (*send_command)(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd);
    /*
     * kick() - the core gave up on this producer (lying input): the
     * endpoint must close the connection and later call
     * tb_svc_producer_disconnect(). Must not free the producer itself.
     */
    void (*kick)(void *ctx, const char *why);
};

/* Callbacks from the core to a consumer endpoint. */
struct tb_svc_consumer_ops {
    /*
     * tracing_disabled() - the session ended: answer the pending
     * EnableTracing. @error is NULL on success, else a message (borrowed).
     */
    void (*tracing_disabled)(void *ctx, const char *error);
    /* flush_done() - answer a Flush started with tb_svc_consumer_flush(). */
    void (*flush_done)(void *ctx, uint64_t token, bool success);
};

/*
 * Packet sink for reads: one packet as up to @nslices slices (the concatenation
 * is one serialized TracePacket). Slices are borrowed for the call.
 * Return 0 to go on, negative errno to stop the read.
 */
struct tb_svc_slice {
    const void *data;
    size_t len;
};
typedef int (*tb_svc_packet_fn)(void *ctx, const struct tb_svc_slice *slices, size_t nslices);

/*
 * tb_svc_core_new() - create the service core.
 * @loop: event loop for timers; borrowed, must outlive the core.
 * @limits: may be NULL for defaults; copied.
 * @out: the new core, freed with tb_svc_core_free().
 * Return: 0 or -ENOMEM.
 */
int tb_svc_core_new(struct tb_loop *loop, const struct tb_svc_limits *limits,
                    struct tb_svc_core **out);

/*
 * tb_svc_core_free() - end every session (consumers get an error reply),
 * drop every producer, free everything. Endpoints must already be closed or
 * must not call into the core afterwards. Accepts NULL.
 */
void tb_svc_core_free(struct tb_svc_core *core);

/* ------------------------------------------------------------------ producers */

/*
 * tb_svc_producer_connect() - a producer connection arrived.
 * @uid, @pid: from SO_PEERCRED (trusted).
 * @ops, @ctx: how to reach the endpoint; both borrowed until disconnect.
 * @out: the producer handle, valid until tb_svc_producer_disconnect().
 * Return: 0, -EMFILE past max_producers, -ENOMEM.
 */
int tb_svc_producer_connect(struct tb_svc_core *core, uid_t uid, pid_t pid,
                            const struct tb_svc_producer_ops *ops, void *ctx,
                            struct tb_svc_producer **out);

/*
 * tb_svc_producer_disconnect() - the connection is gone: scrape its SMB into
 * the sessions it wrote to, drop its data sources and free it. Accepts NULL.
 */
void tb_svc_producer_disconnect(struct tb_svc_producer *p);

/*
 * tb_svc_producer_initialize() - InitializeConnection.
 * Return: 0, or -EALREADY on a second call.
 */
int tb_svc_producer_initialize(struct tb_svc_producer *p,
                               const Perfetto__Protos__InitializeConnectionRequest *req);

/*
 * tb_svc_producer_adopt_smb() - take a producer-provided SMB (the fd attached
 * to InitializeConnection with producer_provided_shmem set).
 * @p: an initialized producer without an SMB yet.
 * @fd: the producer's memfd. Ownership passes here in every case: kept as
 *      the producer's SMB on success, closed on refusal.
 *
 * Accepted only if the fd carries the shrink, grow and seal seals (so the
 * producer cannot truncate it under the service's mapping), its size passes
 * tb_shm_validate_sizes() unchanged and within the core's SMB cap, and the
 * page size hint of InitializeConnection is given and valid. The contents
 * stay hostile like any SMB's. SetupTracing, with the page size but without
 * an fd, is queued at once and goes out when the command stream opens.
 * Return: 0 when adopted (answer using_shmem_provided_by_producer=true),
 * or the error of queueing SetupTracing (the producer is then kicked);
 * -EPERM (not sealed), -EINVAL (geometry), -EALREADY or a mapping errno when
 * refused (answer false; the producer reconnects without one).
 * Context: loop thread.
 */
int tb_svc_producer_adopt_smb(struct tb_svc_producer *p, int fd);

/* tb_svc_producer_is_initialized() - true after a successful initialize. */
bool tb_svc_producer_is_initialized(const struct tb_svc_producer *p);

/* tb_svc_producer_id() - the producer's service-assigned id (1..65535). */
uint16_t tb_svc_producer_id(const struct tb_svc_producer *p);

/*
 * tb_svc_producer_register_ds() - RegisterDataSource. Starts the data source
 * at once in any live session that wants it.
 * Return: 0, -EINVAL (empty name), -EEXIST (duplicate name or id).
 */
int tb_svc_producer_register_ds(struct tb_svc_producer *p,
                                const Perfetto__Protos__DataSourceDescriptor *desc);

/* tb_svc_producer_update_ds() - UpdateDataSource (matched by descriptor id). */
int tb_svc_producer_update_ds(struct tb_svc_producer *p,
                              const Perfetto__Protos__DataSourceDescriptor *desc);

/* tb_svc_producer_unregister_ds() - UnregisterDataSource by name. */
int tb_svc_producer_unregister_ds(struct tb_svc_producer *p, const char *name);

/* tb_svc_producer_register_writer() - RegisterTraceWriter. */
int tb_svc_producer_register_writer(struct tb_svc_producer *p, uint32_t writer_id,
                                    uint32_t target_buffer);

/* tb_svc_producer_unregister_writer() - UnregisterTraceWriter. */
int tb_svc_producer_unregister_writer(struct tb_svc_producer *p, uint32_t writer_id);

/*
 * tb_svc_producer_commit() - CommitData: move chunks, apply patches, ack
 * flushes. Bad entries are dropped and counted.
 * Return: 0, or -EPROTO when the producer lied badly enough that the caller
 * should disconnect it (the core has already called ops->kick()).
 */
int tb_svc_producer_commit(struct tb_svc_producer *p,
                           const Perfetto__Protos__CommitDataRequest *req);

/* tb_svc_producer_ds_started() - NotifyDataSourceStarted(instance id). */
void tb_svc_producer_ds_started(struct tb_svc_producer *p, uint64_t instance_id);

/* tb_svc_producer_ds_stopped() - NotifyDataSourceStopped(instance id). */
void tb_svc_producer_ds_stopped(struct tb_svc_producer *p, uint64_t instance_id);

/* ------------------------------------------------------------------ consumers */

/*
 * tb_svc_consumer_connect() - a consumer connection arrived.
 * @ops, @ctx: borrowed until disconnect.
 * @out: the consumer handle, valid until tb_svc_consumer_disconnect().
 * Return: 0 or -ENOMEM.
 */
int tb_svc_consumer_connect(struct tb_svc_core *core, uid_t uid,
                            const struct tb_svc_consumer_ops *ops, void *ctx,
                            struct tb_svc_consumer **out);

/*
 * tb_svc_consumer_disconnect() - the consumer is gone: its session (if any)
 * is torn down and its buffers freed. No callback is made. Accepts NULL.
 */
void tb_svc_consumer_disconnect(struct tb_svc_consumer *c);

/*
 * tb_svc_consumer_enable() - EnableTracing. Creates a session from @cfg
 * (copied) and starts it (unless deferred_start). The answer comes later
 * through ops->tracing_disabled().
 * @fd: output file for write_into_file, or -1. Ownership passes to the core
 *      on success and on failure alike.
 * @errbuf: on failure, a message for the consumer.
 * Return: 0, -EBUSY (session exists), -EINVAL (bad config), -ENOMEM.
 */
int tb_svc_consumer_enable(struct tb_svc_consumer *c, const Perfetto__Protos__TraceConfig *cfg,
                           int fd, char *errbuf, size_t errlen);

/* tb_svc_consumer_start() - StartTracing for a deferred_start session. */
int tb_svc_consumer_start(struct tb_svc_consumer *c);

/*
 * tb_svc_consumer_disable() - DisableTracing: stop the data sources, wait
 * for stop acks (bounded), scrape, then ops->tracing_disabled().
 */
int tb_svc_consumer_disable(struct tb_svc_consumer *c);

/*
 * tb_svc_consumer_flush() - Flush the session's data sources; answers
 * through ops->flush_done(@token, ok) within @timeout_ms (0 = default 5 s).
 * Return: 0 or -ENOENT (no session).
 */
int tb_svc_consumer_flush(struct tb_svc_consumer *c, uint32_t timeout_ms, uint64_t token);

/*
 * tb_svc_consumer_read() - ReadBuffers: hand every packet available now
 * (service packets first, then producer packets with trusted fields
 * appended) to @fn. When the session's config asks for deflate, @fn gets
 * compressed_packets packets instead, each a batch of ~128 KiB of them.
 * The slices are borrowed for the call only. @fn may return -EAGAIN after a
 * packet to pause: what was not read stays in the buffers for the next call.
 * Return: 0, -ENOENT (no session), or @fn's error.
 */
int tb_svc_consumer_read(struct tb_svc_consumer *c, tb_svc_packet_fn fn, void *ctx);

/* tb_svc_consumer_free_buffers() - FreeBuffers: end and free the session. */
void tb_svc_consumer_free_buffers(struct tb_svc_consumer *c);

/*
 * tb_svc_consumer_stats() - GetTraceStats: fill @out (caller's message,
 * initialized with perfetto__protos__trace_stats__init); free the arrays
 * with tb_svc_stats_clear().
 */
int tb_svc_consumer_stats(struct tb_svc_consumer *c, Perfetto__Protos__TraceStats *out);

/* tb_svc_stats_clear() - free what tb_svc_consumer_stats() allocated. */
void tb_svc_stats_clear(Perfetto__Protos__TraceStats *st);

/*
 * tb_svc_core_query_state() - QueryServiceState: producers, their data
 * sources and the session count. Free with tb_svc_state_clear().
 */
int tb_svc_core_query_state(struct tb_svc_core *core, Perfetto__Protos__TracingServiceState *out);

/* tb_svc_state_clear() - free what tb_svc_core_query_state() allocated. */
void tb_svc_state_clear(Perfetto__Protos__TracingServiceState *st);

#endif /* TB_SERVICE_CORE_H */
