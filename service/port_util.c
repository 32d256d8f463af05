/*
 * port_util.c - what the ProducerPort and ConsumerPort endpoints share:
 * creating the ipc_host and its service, the per-connection state's life
 * (allocated at connect, attached to the core, detached and freed at
 * disconnect, as the port's kind says), replies that respect drop_reply, and
 * the port's accessors and destructor.
 */
#include "service/ports.h"

#include <errno.h>
#include <stdlib.h>

#include "common/ipc_host.h"

static int on_connect(struct tb_ipc_conn *conn, void *ctx)
{
    struct tb_svc_port *port = ctx;
    void *state = calloc(1, port->kind->conn_size);
    int err;

    if (!state)
        return -ENOMEM;
    err = port->kind->attach(port, conn, state);
    if (err) {
        free(state);
        return err;
    }
    tb_ipc_conn_set_user_data(conn, state);
    return 0;
}

static void on_disconnect(struct tb_ipc_conn *conn, void *ctx)
{
    struct tb_svc_port *port = ctx;
    void *state = tb_ipc_conn_user_data(conn);

    if (!state)
        return;
    port->kind->detach(state);
    tb_ipc_conn_set_user_data(conn, NULL);
    free(state);
}

int tb_svc_port_create(struct tb_loop *loop, struct tb_svc_core *core,
                       const struct tb_svc_port_opts *opts, const struct tb_svc_port_kind *kind,
                       struct tb_svc_port **out)
{
    struct tb_ipc_host_opts ho = {0};
    struct tb_svc_port *port = calloc(1, sizeof(*port));
    int err;

    if (!port)
        return -ENOMEM;
    port->core = core;
    port->kind = kind;
    if (opts) {
        ho.max_connections = opts->max_connections;
        ho.max_frame_size = opts->max_frame_size;
        ho.max_tx_queue_bytes = opts->max_tx_queue_bytes;
    }
    if (!ho.max_tx_queue_bytes)
        ho.max_tx_queue_bytes = kind->max_tx_queue;
    ho.on_connect = on_connect;
    ho.on_disconnect = on_disconnect;
    ho.ctx = port;
    err = tb_ipc_host_new(loop, &ho, &port->host);
    if (!err)
        err = tb_ipc_host_add_service(port->host, kind->service, kind->methods, kind->n_methods,
                                      port);
    if (err) {
        tb_svc_port_free(port);
        return err;
    }
    *out = port;
    return 0;
}

void tb_svc_port_reply(struct tb_ipc_call *call, const struct ProtobufCMessage *msg, bool ok)
{
    if (!call->drop_reply)
        tb_ipc_host_reply(call->conn, call->request_id, msg, ok, false, -1);
}

int tb_svc_port_listen(struct tb_svc_port *port, const char *name)
{
    return tb_ipc_host_listen(port->host, name);
}

struct tb_ipc_host *tb_svc_port_host(struct tb_svc_port *port)
{
    return port->host;
}

void tb_svc_port_free(struct tb_svc_port *port)
{
    if (!port)
        return;
    tb_ipc_host_free(port->host);
    free(port);
}
