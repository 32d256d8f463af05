/*
 * ipc_host.h - the server side of the Perfetto socket protocol (spec §2.3).
 *
 * A host runs on a tb_loop, accepts AF_UNIX connections, decodes IPCFrames
 * and dispatches InvokeMethod calls to services registered by name
 * ("ProducerPort", "ConsumerPort") with a static method table. It knows
 * nothing about tracing: handlers get decoded request messages and answer
 * with tb_ipc_host_reply(), at once or later (streamed replies included).
 *
 * Peers are untrusted: every connection has a bounded receive buffer (the
 * frame limit) and a bounded transmit queue; a peer that sends an oversize
 * frame or stops reading while replies pile up is disconnected, and the loop
 * never blocks on a socket. Identity comes only from SO_PEERCRED.
 *
 * Lifetimes: a struct tb_ipc_conn is owned by the host. It stays valid until
 * the host's on_disconnect callback for it has returned; after that, drop
 * every pointer to it. Requests, replies and fds are owned as documented on
 * each call.
 */
#ifndef TB_COMMON_IPC_HOST_H
#define TB_COMMON_IPC_HOST_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tb_loop;
struct tb_ipc_host;
struct tb_ipc_conn;

/*
 * One InvokeMethod being dispatched. Lives only during the handler call; copy
 * what you need (conn, request_id) to reply later.
 */
struct tb_ipc_call {
    struct tb_ipc_conn *conn; /* owned by the host (see lifetimes above) */
    uint64_t request_id;      /* pass back to tb_ipc_host_reply() */
    /*
     * The decoded request, of the method's request_desc type. Owned by the
     * host and freed after the handler returns; a handler that wants to keep
     * it sets this to NULL and later frees it with
     * protobuf_c_message_free_unpacked(msg, NULL).
     */
    ProtobufCMessage *request;
    /*
     * The fd that arrived with this frame (SCM_RIGHTS), or -1. Owned by the
     * host and closed after the handler returns; set to -1 to keep it.
     */
    int fd;
    uid_t uid;          /* SO_PEERCRED of the connection */
    pid_t pid;          /* SO_PEERCRED of the connection */
    bool drop_reply;    /* the client wants no reply; see tb_ipc_host_reply() */
    void *service_ctx;  /* from tb_ipc_host_add_service() */
    const char *method; /* the method's name, static */
};

typedef void (*tb_ipc_method_fn)(struct tb_ipc_call *call);

/* One entry of a service's method table. Method ids are index + 1. */
struct tb_ipc_method {
    const char *name;                               /* proto method name */
    const ProtobufCMessageDescriptor *request_desc; /* args_proto type */
    tb_ipc_method_fn handler;
};

/* Called for every accepted connection; return < 0 to refuse it. */
typedef int (*tb_ipc_conn_fn)(struct tb_ipc_conn *conn, void *ctx);
/* Called once when a connection goes away (peer, error, or host decision). */
typedef void (*tb_ipc_disconnect_fn)(struct tb_ipc_conn *conn, void *ctx);

struct tb_ipc_host_opts {
    size_t max_connections;             /* 0: 256. Further connects are closed at once. */
    size_t max_tx_queue_bytes;          /* 0: 4 MiB queued per connection, then disconnect */
    size_t max_frame_size;              /* 0: TB_IPC_MAX_FRAME_SIZE (header included) */
    tb_ipc_conn_fn on_connect;          /* may be NULL */
    tb_ipc_disconnect_fn on_disconnect; /* may be NULL */
    void *ctx;                          /* passed to both, borrowed */
};

struct tb_ipc_host_stats {
    uint64_t connections_accepted;
    uint64_t connections_refused;     /* over max_connections or by on_connect */
    uint64_t frames_received;         /* parsed IPCFrames */
    uint64_t frames_dropped;          /* complete frames that failed to parse */
    uint64_t disconnects_oversize;    /* header over max_frame_size */
    uint64_t disconnects_slow_reader; /* tx queue over max_tx_queue_bytes */
    uint64_t invoke_errors;           /* success=false replies for bad invokes */
    uint64_t accept_pauses;           /* accepting paused ~100 ms: out of fds (EMFILE/ENFILE) */
    uint64_t tx_queue_peak_bytes;     /* most bytes ever queued on one connection */
};

/**
 * tb_ipc_host_new() - create a host on @loop.
 * @loop: the loop, borrowed; must outlive the host.
 * @opts: limits and callbacks, copied; NULL for defaults.
 * @out: receives the host; free with tb_ipc_host_free().
 *
 * Return: 0, -EINVAL or -ENOMEM. Context: loop thread.
 */
int tb_ipc_host_new(struct tb_loop *loop, const struct tb_ipc_host_opts *opts,
                    struct tb_ipc_host **out);

/**
 * tb_ipc_host_free() - close every connection and listening socket.
 * @host: the host, or NULL.
 *
 * on_disconnect runs for each live connection before it is freed.
 * Context: loop thread, not from inside one of this host's callbacks.
 */
void tb_ipc_host_free(struct tb_ipc_host *host);

/**
 * tb_ipc_host_add_service() - register a service by name.
 * @host: the host.
 * @name: service name as clients bind it, e.g. "ProducerPort"; borrowed,
 *        must stay valid for the host's life (a literal).
 * @methods: method table; borrowed, must outlive the host (static const).
 * @n_methods: entries in @methods.
 * @service_ctx: passed to handlers as call->service_ctx; borrowed.
 *
 * Service ids are assigned from 1 in registration order.
 * Return: 0, -EEXIST, -EINVAL or -ENOMEM. Context: loop thread.
 */
int tb_ipc_host_add_service(struct tb_ipc_host *host, const char *name,
                            const struct tb_ipc_method *methods, size_t n_methods,
                            void *service_ctx);

/**
 * tb_ipc_host_listen() - listen on @name and accept from the loop.
 * @host: the host.
 * @name: socket name (see tb_ipc_sock_listen(): stale files are removed,
 *        live ones refused).
 *
 * May be called more than once (several sockets share the services).
 * Return: 0, -EADDRINUSE, or the socket error. Context: loop thread.
 */
int tb_ipc_host_listen(struct tb_ipc_host *host, const char *name);

/**
 * tb_ipc_host_adopt_listen_fd() - accept from an existing listening socket.
 * @host: the host.
 * @fd: a listening AF_UNIX stream socket; ownership passes to the host
 *      (closed by tb_ipc_host_free(), also on error).
 *
 * Return: 0 or negative errno. Context: loop thread.
 */
int tb_ipc_host_adopt_listen_fd(struct tb_ipc_host *host, int fd);

/**
 * tb_ipc_host_adopt_conn_fd() - serve an already connected socket, e.g. one
 * end of a socketpair for an in-process producer.
 * @host: the host.
 * @fd: connected AF_UNIX stream socket; ownership passes to the host
 *      (closed on error too). Made non-blocking here.
 * @out: receives the connection (owned by the host); may be NULL.
 *
 * on_connect runs as for accepted sockets.
 * Return: 0, -EMFILE over max_connections, on_connect's error, -ENOMEM.
 * Context: loop thread.
 */
int tb_ipc_host_adopt_conn_fd(struct tb_ipc_host *host, int fd, struct tb_ipc_conn **out);

/**
 * tb_ipc_host_reply() - send one InvokeMethodReply for @request_id.
 * @conn: the connection the request came on.
 * @request_id: call->request_id.
 * @reply: the response message, borrowed (serialized here); NULL sends an
 *         empty reply_proto.
 * @success: false rejects the client's call (reply content is then ignored
 *           by clients).
 * @has_more: true for all but the last reply of a streaming method.
 * @fd_to_send: fd attached to this frame (SCM_RIGHTS), or -1. Borrowed: the
 *              host dup()s it if it must queue, the caller keeps its copy.
 *
 * Inside the handler of a drop_reply request, replying to that request is a
 * no-op returning 0. A handler that stores a drop_reply request to answer
 * later must check call->drop_reply itself.
 * If the reply cannot be queued within the connection's limit, the
 * connection is scheduled for disconnection (on_disconnect runs from a later
 * loop task, never from inside this call).
 * Return: 0; -EMSGSIZE if the frame is over the limit (nothing sent);
 * -ENOTCONN if @conn is already closing; -ENOMEM. Context: loop thread.
 */
int tb_ipc_host_reply(struct tb_ipc_conn *conn, uint64_t request_id, const ProtobufCMessage *reply,
                      bool success, bool has_more, int fd_to_send);

/**
 * tb_ipc_host_disconnect() - close @conn from the host side.
 * @conn: the connection.
 *
 * Deferred: on_disconnect runs from a later loop task, so @conn stays valid
 * until then, and the call is safe from handlers. Queued replies are
 * discarded. Context: loop thread.
 */
void tb_ipc_host_disconnect(struct tb_ipc_conn *conn);

/* tb_ipc_conn_set_user_data() - attach a pointer (borrowed) to @conn. */
void tb_ipc_conn_set_user_data(struct tb_ipc_conn *conn, void *data);
/* tb_ipc_conn_user_data() - the pointer set above, or NULL. */
void *tb_ipc_conn_user_data(const struct tb_ipc_conn *conn);
/* tb_ipc_conn_uid() - the peer's uid (SO_PEERCRED; -1 if unknown). */
uid_t tb_ipc_conn_uid(const struct tb_ipc_conn *conn);
/* tb_ipc_conn_pid() - the peer's pid (SO_PEERCRED; 0 if unknown). */
pid_t tb_ipc_conn_pid(const struct tb_ipc_conn *conn);
/* tb_ipc_conn_id() - a host-unique id (from 1) for logs and maps. */
uint64_t tb_ipc_conn_id(const struct tb_ipc_conn *conn);
/* tb_ipc_conn_host() - the host owning @conn. */
struct tb_ipc_host *tb_ipc_conn_host(const struct tb_ipc_conn *conn);

/* tb_ipc_conn_tx_queued() - bytes queued on @conn, not yet taken by the socket. */
size_t tb_ipc_conn_tx_queued(const struct tb_ipc_conn *conn);

/* Called once the transmit queue of @conn has drained (see below). */
typedef void (*tb_ipc_drain_fn)(struct tb_ipc_conn *conn, void *ctx);

/**
 * tb_ipc_conn_notify_drained() - call @fn once @conn's transmit queue holds
 * at most @below bytes, so a long streamed reply can pause instead of
 * queueing without bound.
 * @conn: the connection.
 * @below: the low watermark in bytes.
 * @fn: called once, from a loop task (never from inside this call or
 *      tb_ipc_host_reply()), with @ctx (borrowed). Not called if the
 *      connection closes first: on_disconnect is the only callback then.
 *      NULL disarms.
 * @ctx: passed to @fn.
 *
 * One notification per connection: arming again replaces the previous one.
 * Return: 0 or -ENOMEM. Context: loop thread.
 */
int tb_ipc_conn_notify_drained(struct tb_ipc_conn *conn, size_t below, tb_ipc_drain_fn fn,
                               void *ctx);

/**
 * tb_ipc_host_get_stats() - counters since creation.
 * @host: the host.
 * @out: filled in.
 */
void tb_ipc_host_get_stats(const struct tb_ipc_host *host, struct tb_ipc_host_stats *out);

/* tb_ipc_host_num_connections() - live connections right now. */
size_t tb_ipc_host_num_connections(const struct tb_ipc_host *host);

#endif /* TB_COMMON_IPC_HOST_H */
