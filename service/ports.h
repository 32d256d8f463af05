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

/* An endpoint; fields are private to producer_port.c and consumer_port.c. */
struct tb_svc_port {
    struct tb_svc_core *core;
    struct tb_ipc_host *host;
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

/* tb_svc_consumer_allowed() - whether @uid may use the consumer socket. */
bool tb_svc_consumer_allowed(uid_t uid);

#endif /* TB_SERVICE_PORTS_H */
