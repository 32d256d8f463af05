/*
 * ipc_client.h - the client side of the Perfetto socket protocol (spec §2.3,
 * §3.7): what producers (libtracebpf, the kernel producer) and the tracebpf
 * CLI use to talk to traced-bpf, or to an upstream traced.
 *
 * A client owns one connection and binds one service on it. Calls are
 * asynchronous on a tb_loop: tb_ipc_client_invoke() sends an InvokeMethod
 * and the reply callback runs from the loop, once per reply for streaming
 * methods (has_more). Methods are looked up by name in the BindServiceReply,
 * so the host's ids do not matter. Request ids count from 1 per connection.
 *
 * Reentrancy: callbacks may invoke further methods, and may call
 * tb_ipc_client_free() (the free is then completed after the callback).
 */
#ifndef TB_COMMON_IPC_CLIENT_H
#define TB_COMMON_IPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tb_loop;
struct tb_ipc_client;

/* One reply, as handed to a tb_ipc_reply_fn. Valid during the callback only. */
struct tb_ipc_reply {
    uint64_t request_id;
    bool success;  /* false: the call was rejected (or the connection died) */
    bool has_more; /* true: more replies will follow for this call */
    /*
     * The decoded response, of the reply_desc type given to invoke; NULL when
     * !success, when no reply_desc was given, or when it failed to decode
     * (success is then false). Owned by the client and freed after the
     * callback; set to NULL to keep it (free with
     * protobuf_c_message_free_unpacked(msg, NULL)).
     */
    ProtobufCMessage *msg;
    /*
     * An fd passed with this reply (SCM_RIGHTS), or -1. Owned by the client
     * and closed after the callback; set to -1 to keep it.
     */
    int fd;
};

typedef void (*tb_ipc_reply_fn)(struct tb_ipc_client *client, struct tb_ipc_reply *reply,
                                void *ctx);
/* BindService finished: @success says whether the service exists. */
typedef void (*tb_ipc_bind_fn)(struct tb_ipc_client *client, bool success, void *ctx);
/* The connection is gone. Runs once, after pending calls were failed. */
typedef void (*tb_ipc_client_disconnect_fn)(struct tb_ipc_client *client, void *ctx);

struct tb_ipc_client_opts {
    size_t max_frame_size;                     /* 0: TB_IPC_MAX_FRAME_SIZE (header included) */
    size_t max_tx_queue_bytes;                 /* 0: 16 MiB queued before invoke fails -ENOBUFS */
    tb_ipc_client_disconnect_fn on_disconnect; /* may be NULL */
    void *ctx;                                 /* for on_disconnect, borrowed */
};

/**
 * tb_ipc_client_new() - create an unconnected client on @loop.
 * @loop: borrowed; must outlive the client.
 * @opts: copied; NULL for defaults.
 * @out: receives the client; free with tb_ipc_client_free().
 *
 * Return: 0, -EINVAL or -ENOMEM. Context: loop thread.
 */
int tb_ipc_client_new(struct tb_loop *loop, const struct tb_ipc_client_opts *opts,
                      struct tb_ipc_client **out);

/**
 * tb_ipc_client_free() - close the connection and free the client.
 * @client: the client, or NULL.
 *
 * Pending calls are dropped without their callbacks running and
 * on_disconnect does not run. Safe from inside this client's callbacks.
 * Context: loop thread.
 */
void tb_ipc_client_free(struct tb_ipc_client *client);

/**
 * tb_ipc_client_connect() - connect to the socket @name (non-blocking).
 * @client: an unconnected client.
 * @name: socket name ('@' = abstract); see tb_ipc_sock_default_name().
 *
 * Return: 0 when connected; -EISCONN; or the connect error (-ENOENT,
 * -ECONNREFUSED, ...) with the client still unconnected so the caller can
 * retry later. Context: loop thread.
 */
int tb_ipc_client_connect(struct tb_ipc_client *client, const char *name);

/**
 * tb_ipc_client_adopt_fd() - use an already connected stream socket.
 * @client: an unconnected client.
 * @fd: ownership passes to the client (closed on error too).
 *
 * Return: 0, -EISCONN or -ENOMEM. Context: loop thread.
 */
int tb_ipc_client_adopt_fd(struct tb_ipc_client *client, int fd);

/**
 * tb_ipc_client_bind() - send BindService for @service_name.
 * @client: a connected client that has not bound yet.
 * @service_name: e.g. "ProducerPort"; copied.
 * @fn: called when the reply arrives (or with false on disconnect).
 * @ctx: for @fn, borrowed.
 *
 * Return: 0, -ENOTCONN, -EALREADY, -ENOMEM. Context: loop thread.
 */
int tb_ipc_client_bind(struct tb_ipc_client *client, const char *service_name, tb_ipc_bind_fn fn,
                       void *ctx);

/**
 * tb_ipc_client_has_method() - whether the bound service lists @method.
 * @client: the client.
 * @method: method name.
 *
 * Return: true if bound and listed. Context: loop thread.
 */
bool tb_ipc_client_has_method(const struct tb_ipc_client *client, const char *method);

/**
 * tb_ipc_client_invoke() - call @method of the bound service.
 * @client: a bound client.
 * @method: method name as in the .proto service.
 * @args: request message, borrowed (serialized here); NULL sends empty args.
 * @reply_desc: type to decode replies as; NULL to not decode (msg = NULL).
 * @fn: reply callback; NULL sets drop_reply (the host sends nothing back).
 * @ctx: for @fn, borrowed.
 * @fd_to_send: fd attached to this frame, or -1. Borrowed: the client
 *              dup()s it if it must queue; the caller keeps its copy.
 * @request_id_out: receives the request id; may be NULL.
 *
 * The callback runs for every reply until one has has_more=false or
 * success=false, and once with success=false if the connection drops first.
 * Return: 0; -ENOTCONN if not bound or disconnected; -EOPNOTSUPP if the
 * service did not list @method; -EMSGSIZE; -ENOBUFS if the transmit queue
 * is full; -ENOMEM. On error @fn is not called. Context: loop thread.
 */
int tb_ipc_client_invoke(struct tb_ipc_client *client, const char *method,
                         const ProtobufCMessage *args, const ProtobufCMessageDescriptor *reply_desc,
                         tb_ipc_reply_fn fn, void *ctx, int fd_to_send, uint64_t *request_id_out);

/**
 * tb_ipc_client_connected() - whether the connection is up.
 * @client: the client.
 *
 * Return: true between a successful connect/adopt and the disconnect.
 */
bool tb_ipc_client_connected(const struct tb_ipc_client *client);

/**
 * tb_ipc_client_connect_sync() - blocking convenience for simple tools:
 * connect to @name and bind @service_name, pumping @loop.
 * @client: an unconnected client whose loop nothing else is running.
 * @name: socket name.
 * @service_name: service to bind.
 * @timeout_ms: overall limit.
 *
 * Return: 0; -ETIMEDOUT; -EPROTONOSUPPORT if the service is unknown; the
 * connect error. Context: loop thread, not from a callback.
 */
int tb_ipc_client_connect_sync(struct tb_ipc_client *client, const char *name,
                               const char *service_name, int timeout_ms);

/**
 * tb_ipc_client_invoke_sync() - invoke and wait for the (last) reply.
 * @client: a bound client.
 * @method: method name.
 * @args: request, borrowed; may be NULL.
 * @reply_desc: type of the reply; may be NULL.
 * @fd_to_send: fd to attach or -1 (borrowed).
 * @timeout_ms: overall limit.
 * @reply_out: receives the last decoded reply (owned by the caller, free with
 *             protobuf_c_message_free_unpacked(msg, NULL)), or NULL; may be
 *             NULL to discard. Earlier streamed replies are discarded.
 * @fd_out: receives an fd passed with any reply (owned by the caller), or
 *          -1; may be NULL (then closed).
 *
 * Return: 0; -ECANCELED when the host answered success=false; -ETIMEDOUT
 * (the pending call is then forgotten); -ENOTCONN; invoke's errors.
 * Context: loop thread, not from a callback.
 */
int tb_ipc_client_invoke_sync(struct tb_ipc_client *client, const char *method,
                              const ProtobufCMessage *args,
                              const ProtobufCMessageDescriptor *reply_desc, int fd_to_send,
                              int timeout_ms, ProtobufCMessage **reply_out, int *fd_out);

#endif /* TB_COMMON_IPC_CLIENT_H */
