/*
 * producer_client.h - the producer side of the producer socket (spec §3.7):
 * connect, handshake, shared memory, commands, commits, reconnect. Shared by
 * libtracebpf (its own IPC thread) and the kernel producer (its drain loop).
 *
 * Wire order on every (re)connect:
 *   BindService "ProducerPort" -> InitializeConnection (hints) ->
 *   GetAsyncCommand (sent at once, a never-ending command stream) ->
 *   after the InitializeConnection reply: RegisterDataSource for every
 *   descriptor given to tb_pc_register_data_source(), then on_connected.
 * Commands then arrive on the GetAsyncCommand stream:
 *   SetupTracing(+memfd)  map the SMB, create its arbiter (new generation)
 *   SetupDataSource       on_setup
 *   StartDataSource       on_start, then NotifyDataSourceStarted if the
 *                         descriptor has will_notify_on_start
 *   StopDataSource        on_stop, then NotifyDataSourceStopped (at once, or
 *                         when the callee calls tb_pc_notify_stopped())
 *   Flush                 on_flush; the callee flushes its writers and calls
 *                         tb_pc_ack_flush(); the ack rides on a CommitData
 *   ClearIncrementalState on_clear_incremental_state
 * Chunks given back to the arbiter by any thread wake the IPC loop, which
 * batches them into CommitData requests (each frame < 128 KiB - 512).
 *
 * Threads. Every callback runs on the IPC thread: the client's own thread
 * (opts.own_thread) or the thread running the caller's loop (opts.loop).
 * Functions marked "any thread" post to that thread and never block on IPC.
 *
 * Shared memory lifetime (struct tb_pc_smb). The SMB is reference counted.
 * The client holds one reference while it is the connection's current SMB;
 * a TraceWriter holds one from tb_pc_smb_acquire() until it is destroyed.
 * When the connection drops (or the SMB is replaced), the client bumps the
 * generation (tb_pc_generation()) and drops its own reference; the mapping
 * stays until the last writer releases its reference, so a writer thread
 * never writes into unmapped memory. A writer notices the change by
 * comparing tb_pc_generation() with tb_pc_smb_generation() of the SMB it
 * writes into (one relaxed load, before each packet or each chunk switch),
 * and then destroys its TraceWriter (chunks go back to the retired arbiter
 * and are never committed: the service scraped or lost that SMB already),
 * releases the SMB and acquires the new one if any. Commits of chunks
 * given back before the drop were sent when given back; only chunks still
 * pending in a batch when the socket broke are lost with the connection.
 *
 * fork(): see tb_pc_after_fork_child().
 */
#ifndef TB_COMMON_PRODUCER_CLIENT_H
#define TB_COMMON_PRODUCER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "perfetto/common/data_source_descriptor.pb-c.h"
#include "perfetto/config/data_source_config.pb-c.h"

struct tb_loop;
struct tb_pc;
struct tb_pc_smb;

/* Writer ids are 1..TB_PC_MAX_WRITER_ID (spec: u16, 0 invalid, 15 bits). */
#define TB_PC_MAX_WRITER_ID 32767u

/* InitializeConnectionRequest.smb_scraping_mode values. */
enum tb_pc_scraping_mode {
    TB_PC_SCRAPING_UNSPECIFIED = 0,
    TB_PC_SCRAPING_ENABLED = 1, /* what the SDK sends; 0 in opts means this */
    TB_PC_SCRAPING_DISABLED = 2,
};

/*
 * Callbacks, all optional, all run on the IPC thread with the client (also
 * before tb_pc_create() returned, with own_thread) and opts.ctx. Configs
 * and id arrays are borrowed for the call only (copy what you keep). They
 * may call any tb_pc_* function except tb_pc_destroy().
 */
struct tb_pc_callbacks {
    /* InitializeConnection succeeded and data sources were (re)registered. */
    void (*on_connected)(struct tb_pc *pc, void *ctx);
    /*
     * The connection dropped after on_connected. Every instance is gone:
     * stop them, and make writers move off the SMB (the generation already
     * changed when this runs). Reconnection follows by itself.
     */
    void (*on_disconnected)(struct tb_pc *pc, void *ctx);
    /* SetupDataSource (also synthesised for a StartDataSource without one). */
    void (*on_setup)(struct tb_pc *pc, void *ctx, uint64_t instance_id,
                     const Perfetto__Protos__DataSourceConfig *cfg);
    /* StartDataSource. NotifyDataSourceStarted follows when it returns. */
    void (*on_start)(struct tb_pc *pc, void *ctx, uint64_t instance_id,
                     const Perfetto__Protos__DataSourceConfig *cfg);
    /*
     * StopDataSource. Return true to have NotifyDataSourceStopped sent at
     * once; false if the callee will call tb_pc_notify_stopped() later
     * (e.g. after its writers flushed). NULL callback = ack at once.
     */
    bool (*on_stop)(struct tb_pc *pc, void *ctx, uint64_t instance_id);
    /*
     * Flush. The callee flushes the writers of @ids (tb_tw_flush() on their
     * threads) and then calls tb_pc_ack_flush(@flush_request_id), from any
     * thread. NULL callback = acked at once with the pending commits.
     */
    void (*on_flush)(struct tb_pc *pc, void *ctx, const uint64_t *ids, size_t n,
                     uint64_t flush_request_id);
    /* ClearIncrementalState for instances whose descriptor handles it. */
    void (*on_clear_incremental_state)(struct tb_pc *pc, void *ctx, const uint64_t *ids, size_t n);
};

/*
 * struct tb_pc_opts - how to create a client.
 * @producer_name: InitializeConnectionRequest.producer_name; copied.
 *     NULL or "" = "tracebpf-<pid>".
 * @socket_name: producer socket; copied. NULL = tb_ipc_sock_default_name()
 *     ($PERFETTO_PRODUCER_SOCK_NAME, /run/perfetto/..., /tmp/...).
 * @smb_size_hint: bytes, 0 = let the service choose (256 KiB).
 * @smb_page_size_hint: bytes, 0 = let the service choose (4 KiB).
 * @scraping_mode: 0 = TB_PC_SCRAPING_ENABLED.
 * @sdk_version: InitializeConnectionRequest.sdk_version; copied; NULL = ours.
 * @loop: run on this caller-owned loop (borrowed, must outlive the client);
 *     tb_pc_create() and tb_pc_destroy() are then called on its thread.
 * @own_thread: ignore @loop; start an IPC thread with its own loop.
 * @backoff_initial_ms: first retry delay after a failed connect; later
 *     failures add this much again each time (1 s, 2 s, ...). 0 = 1000.
 * @backoff_max_ms: cap on the retry delay. 0 = 30000.
 * @max_reconnects: give up after this many drops of an established
 *     connection (logged once). 0 = never give up.
 * @smb_layout: arbiter page layout (TB_SHM_LAYOUT_*), 0 = Div1.
 * @cb, @ctx: callbacks and their context (borrowed).
 */
struct tb_pc_opts {
    const char *producer_name;
    const char *socket_name;
    uint32_t smb_size_hint;
    uint32_t smb_page_size_hint;
    enum tb_pc_scraping_mode scraping_mode;
    const char *sdk_version;
    struct tb_loop *loop;
    bool own_thread;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    uint32_t max_reconnects;
    unsigned int smb_layout;
    struct tb_pc_callbacks cb;
    void *ctx;
};

/* Counters of one client (tb_pc_get_stats()). */
struct tb_pc_stats {
    uint64_t connects;           /* InitializeConnection replies accepted */
    uint64_t connect_failures;   /* connect()/bind/init attempts that failed */
    uint64_t disconnects;        /* established connections lost */
    uint64_t commit_requests;    /* CommitData requests sent */
    uint64_t chunks_committed;   /* ChunksToMove entries sent */
    uint64_t commit_send_errors; /* batches lost because a send failed */
    uint64_t flush_acks;         /* CommitData requests carrying a flush id */
    uint64_t bad_commands;       /* commands ignored as malformed */
};

/**
 * tb_pc_create() - create a producer client and start connecting.
 * @opts: options, copied (strings duplicated).
 * @out: receives the client; free with tb_pc_destroy().
 *
 * Connecting is asynchronous: a missing service is not an error, the client
 * retries with back-off until tb_pc_destroy().
 * Return: 0, -EINVAL (neither @loop nor @own_thread), -ENOMEM, or the
 * thread/loop creation error.
 * Context: any thread with @own_thread; else the loop's thread.
 */
int tb_pc_create(const struct tb_pc_opts *opts, struct tb_pc **out);

/**
 * tb_pc_destroy() - disconnect and free the client. Accepts NULL.
 * @pc: the client.
 *
 * Pending commits are sent first and, with own_thread, the client waits
 * (up to 1 s) for the service to confirm it read them (a Sync round trip).
 * No callback runs during or after this call. Every SMB reference taken
 * with tb_pc_smb_acquire() must have been released before, or is leaked
 * on purpose (its mapping stays so late writers cannot fault).
 * Context: the thread that may own the client (not from a callback).
 */
void tb_pc_destroy(struct tb_pc *pc);

/**
 * tb_pc_register_data_source() - offer a data source to the service.
 * @pc: the client.
 * @desc: the descriptor, copied (name must be non-empty and unique here).
 *
 * Sent now if connected and on every later reconnect. The descriptor's
 * will_notify_on_start/stop decide whether NotifyDataSourceStarted/Stopped
 * are sent for its instances.
 * Return: 0, -EINVAL, -EEXIST (same name), -ENOMEM. Context: any thread.
 */
int tb_pc_register_data_source(struct tb_pc *pc,
                               const Perfetto__Protos__DataSourceDescriptor *desc);

/**
 * tb_pc_update_data_source() - replace the descriptor of a registered data
 * source (e.g. a track_event producer announcing categories it learned
 * after connecting).
 * @pc: the client.
 * @desc: the new descriptor, copied. Its id must be non-zero and equal the
 *     id of a descriptor given to tb_pc_register_data_source(), and its
 *     name that descriptor's name (UpdateDataSource matches on the id and
 *     cannot rename).
 *
 * If the old descriptor was already sent on the live connection, the IPC
 * thread sends UpdateDataSource (or, to a service without that method,
 * UnregisterDataSource + RegisterDataSource); otherwise the new descriptor
 * is what the next (re)registration sends. Instances already running are
 * not touched.
 * Return: 0, -EINVAL (no name or id, or a different name for the id),
 * -ENOENT (no data source with that id), -ENOMEM. Context: any thread.
 */
int tb_pc_update_data_source(struct tb_pc *pc, const Perfetto__Protos__DataSourceDescriptor *desc);

/**
 * tb_pc_alloc_writer_id() - reserve a writer id, lowest free first.
 * @pc: the client.
 *
 * Return: 1..32767, or 0 when all are in use. Context: any thread.
 */
uint16_t tb_pc_alloc_writer_id(struct tb_pc *pc);

/**
 * tb_pc_free_writer_id() - give a writer id back (0 is ignored).
 * @pc: the client. @id: from tb_pc_alloc_writer_id().
 * Context: any thread.
 */
void tb_pc_free_writer_id(struct tb_pc *pc, uint16_t id);

/**
 * tb_pc_register_trace_writer() - tell the service which buffer a writer
 * targets (RegisterTraceWriter, drop_reply). Call before the writer's first
 * commit, after acquiring the current SMB. Not re-sent on reconnect: a
 * writer moving to the new SMB registers again.
 * @pc: the client. @writer_id: 1..32767. @target_buffer: global BufferID.
 *
 * Return: 0, -EINVAL, -ENOMEM. Sending is asynchronous; if not connected the
 * request is dropped. Context: any thread.
 */
int tb_pc_register_trace_writer(struct tb_pc *pc, uint16_t writer_id, uint32_t target_buffer);

/**
 * tb_pc_unregister_trace_writer() - UnregisterTraceWriter (drop_reply).
 * @pc: the client. @writer_id: the writer.
 *
 * Return: 0, -EINVAL, -ENOMEM. Context: any thread.
 */
int tb_pc_unregister_trace_writer(struct tb_pc *pc, uint16_t writer_id);

/**
 * tb_pc_notify_stopped() - send NotifyDataSourceStopped for an instance
 * whose on_stop returned false.
 * @pc: the client. @instance_id: the instance.
 *
 * Pending commits go out first, so the service has the instance's last
 * chunks before it reads. Return: 0 or -ENOMEM. Context: any thread.
 */
int tb_pc_notify_stopped(struct tb_pc *pc, uint64_t instance_id);

/**
 * tb_pc_ack_flush() - acknowledge a Flush after flushing the writers.
 * @pc: the client. @flush_request_id: from on_flush.
 *
 * Sends the pending commits with flush_request_id set. Acks that pile up
 * before the IPC thread runs are coalesced into the highest id (the service
 * treats an ack of N as acking every flush <= N).
 * Return: 0 or -ENOMEM. Context: any thread.
 */
int tb_pc_ack_flush(struct tb_pc *pc, uint64_t flush_request_id);

/**
 * tb_pc_commit() - send the pending commit batch soon. Writers returning
 * chunks through the arbiter already trigger this; use it after writing
 * into the SMB without the arbiter's notify.
 * @pc: the client.
 *
 * Return: 0 or -ENOMEM. Context: any thread.
 */
int tb_pc_commit(struct tb_pc *pc);

/**
 * tb_pc_smb_acquire() - take a reference on the current SMB.
 * @pc: the client.
 * @out: receives the SMB; release with tb_pc_smb_release().
 *
 * Return: 0; -ENOTCONN when there is no SMB yet (not connected, or no
 * SetupTracing so far) or the client is inert after fork.
 * Context: any thread.
 */
int tb_pc_smb_acquire(struct tb_pc *pc, struct tb_pc_smb **out);

/**
 * tb_pc_smb_release() - drop a reference. Accepts NULL.
 * @smb: from tb_pc_smb_acquire().
 *
 * The last reference of a retired SMB unmaps it and frees its arbiter, so
 * no TraceWriter over it may be used afterwards. Context: any thread.
 */
void tb_pc_smb_release(struct tb_pc_smb *smb);

/**
 * tb_pc_smb_arbiter() - the arbiter over @smb, for tb_tw_opts.ops_ctx with
 * tb_tw_arbiter_ops. Owned by @smb, valid while the reference is held.
 */
struct tb_arbiter *tb_pc_smb_arbiter(const struct tb_pc_smb *smb);

/**
 * tb_pc_smb_shm() - the mapping of @smb. Owned by @smb, valid while the
 * reference is held.
 */
struct tb_shm *tb_pc_smb_shm(const struct tb_pc_smb *smb);

/**
 * tb_pc_smb_generation() - the client generation @smb was attached in.
 * While it equals tb_pc_generation(), @smb is the connection's SMB.
 */
uint64_t tb_pc_smb_generation(const struct tb_pc_smb *smb);

/**
 * tb_pc_generation() - changes whenever the current SMB changes (attached
 * on SetupTracing, retired on disconnect, on fork in the child).
 * @pc: the client.
 *
 * Return: the generation; one relaxed atomic load. Context: any thread.
 */
uint64_t tb_pc_generation(const struct tb_pc *pc);

/**
 * tb_pc_arbiter() - the current SMB's arbiter, without a reference.
 * @pc: the client.
 *
 * Return: NULL when there is no SMB. Owned by the client; valid on the IPC
 * thread until the on_disconnected callback returns (what a producer whose
 * writers live on the IPC loop, like the kernel producer, may use). Other
 * threads must use tb_pc_smb_acquire(). Context: IPC thread.
 */
struct tb_arbiter *tb_pc_arbiter(struct tb_pc *pc);

/**
 * tb_pc_shm() - the current SMB mapping, without a reference; same rules
 * as tb_pc_arbiter(). Return: NULL when there is no SMB.
 */
struct tb_shm *tb_pc_shm(struct tb_pc *pc);

/**
 * tb_pc_connected() - whether InitializeConnection succeeded on the live
 * connection. Context: any thread (a snapshot).
 */
bool tb_pc_connected(const struct tb_pc *pc);

/**
 * tb_pc_get_stats() - copy the counters. Context: any thread (a snapshot).
 */
void tb_pc_get_stats(const struct tb_pc *pc, struct tb_pc_stats *out);

/**
 * tb_pc_after_fork_child() - make the client inert in a forked child.
 * @pc: the client, as copied into the child.
 *
 * The child has no IPC thread, shares the parent's socket and epoll
 * instance, and maps the parent's SMB MAP_SHARED: any write from the child
 * would corrupt the parent's chunks, and any epoll change would break the
 * parent's loop. So this only flips state, touching no fd and no memory
 * mapping: the generation changes (so the child's writers move off the
 * SMB), tb_pc_smb_acquire() fails from now on, tb_pc_* posting functions
 * become no-ops returning 0, and the client's own locks are reinitialised
 * (a parent thread may have held them at fork). A writer in the child must
 * leak its TraceWriter rather than tb_tw_destroy() it (that would give the
 * chunk back, writing its header in the parent's SMB), and leak its SMB
 * reference (tb_pc_smb_release() is a no-op there anyway).
 * tb_pc_destroy() in the child frees only plain memory and leaks the
 * socket, loop and mapping (closed by exec or exit). The child may create
 * a new client of its own.
 * Context: the child, right after fork() (e.g. a pthread_atfork child
 * handler); no allocation, no locking.
 */
void tb_pc_after_fork_child(struct tb_pc *pc);

#endif /* TB_COMMON_PRODUCER_CLIENT_H */
