/*
 * ports.h - the service's two IPC endpoints. Each is a thin adapter: it
 * owns an ipc_host listening on one socket, decodes ProducerPort or
 * ConsumerPort calls into core.h calls, and turns the core's callbacks back
 * into replies. One host per socket, so a producer can never bind the
 * ConsumerPort.
 */
#ifndef TB_SERVICE_PORTS_H
#define TB_SERVICE_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tb_loop;
struct tb_svc_core;
struct tb_ipc_host;
struct tb_ipc_conn;
struct tb_ipc_call;
struct tb_ipc_method;
struct ProtobufCMessage;
struct tb_svc_port;

/*
 * What tells one endpoint from the other, for the code they share
 * (port_util.c): the service and its methods, and how a connection's state
 * is tied to the core. Static const, in producer_port.c / consumer_port.c.
 */
struct tb_svc_port_kind {
    const char *service; /* "ProducerPort" or "ConsumerPort" */
    const struct tb_ipc_method *methods;
    size_t n_methods;
    size_t conn_size;    /* per-connection state, zeroed, owned by the port */
    size_t max_tx_queue; /* 0: the ipc_host default */
    /* Tie @state to the core for @conn; < 0 refuses the connection. */
    int (*attach)(struct tb_svc_port *port, struct tb_ipc_conn *conn, void *state);
    /* Undo attach() as the connection goes; @state is freed after. */
    void (*detach)(void *state);
};

/* An endpoint; fields are private to the port files. */
struct tb_svc_port {
    struct tb_svc_core *core;
    struct tb_ipc_host *host;
    const struct tb_svc_port_kind *kind;
};

/* Knobs for both ports; zero fields take the ipc_host defaults. */
struct tb_svc_port_opts {
    size_t max_connections;
    size_t max_frame_size;
    size_t max_tx_queue_bytes;
};

/*
 * tb_svc_producer_port_new() - create the ProducerPort endpoint.
 * @loop, @core: borrowed, must outlive the port.
 * @opts: may be NULL.
 * @out: the port; free with tb_svc_port_free().
 * Return: 0 or negative errno. Context: loop thread.
 */
int tb_svc_producer_port_new(struct tb_loop *loop, struct tb_svc_core *core,
                             const struct tb_svc_port_opts *opts, struct tb_svc_port **out);

/*
 * tb_svc_consumer_port_new() - create the ConsumerPort endpoint. Only root,
 * the service's own uid and members of group "tracebpf" are admitted
 * (checked on every connection from SO_PEERCRED).
 * Same arguments and ownership as tb_svc_producer_port_new().
 */
int tb_svc_consumer_port_new(struct tb_loop *loop, struct tb_svc_core *core,
                             const struct tb_svc_port_opts *opts, struct tb_svc_port **out);

/*
 * tb_svc_port_listen() - listen on socket @name (stale file removed, a live
 * service refused with -EADDRINUSE).
 */
int tb_svc_port_listen(struct tb_svc_port *port, const char *name);

/*
 * tb_svc_port_host() - the port's ipc_host, e.g. to adopt one end of a
 * socketpair for an in-process client. Owned by the port.
 */
struct tb_ipc_host *tb_svc_port_host(struct tb_svc_port *port);

/*
 * tb_svc_port_free() - close every connection (the core sees them
 * disconnect) and the listening socket. Accepts NULL. Context: loop thread.
 */
void tb_svc_port_free(struct tb_svc_port *port);

/*
 * tb_svc_port_create() - the body of both *_port_new(): an ipc_host with
 * @opts (may be NULL; a zero max_tx_queue_bytes takes @kind's) that
 * allocates and attaches per-connection state as @kind says, and serves
 * @kind's methods with the port as their service_ctx.
 * @kind: borrowed, must outlive the port. Other arguments as
 * tb_svc_producer_port_new(). Return: 0 or negative errno.
 */
int tb_svc_port_create(struct tb_loop *loop, struct tb_svc_core *core,
                       const struct tb_svc_port_opts *opts, const struct tb_svc_port_kind *kind,
                       struct tb_svc_port **out);

/* tb_svc_port_reply() - answer @call (once, final) unless nobody waits for it. */
void tb_svc_port_reply(struct tb_ipc_call *call, const struct ProtobufCMessage *msg, bool ok);

/* tb_svc_consumer_allowed() - whether @uid may use the consumer socket. */
bool tb_svc_consumer_allowed(uid_t uid);

#endif /* TB_SERVICE_PORTS_H */
