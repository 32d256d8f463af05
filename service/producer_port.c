/*
 * producer_port.c - the ProducerPort endpoint: decodes producer calls into
 * core.h and streams the core's commands back on the producer's
 * GetAsyncCommand request (never ending it). Commands issued before the
 * producer asked for its command stream wait in a small queue.
 */
#include "service/ports.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc_host.h"
#include "common/log.h"
#include "perfetto/ipc/producer_port.pb-c.h"
#include "service/core.h"

#define MAX_QUEUED_COMMANDS 64

struct queued_cmd {
    Perfetto__Protos__GetAsyncCommandResponse *cmd;
    int fd;
};

/* Per-connection state, the ctx of the core's producer ops. */
struct pconn {
    struct tb_ipc_conn *conn;
    struct tb_svc_producer *p;
    uint64_t async_id;
    bool has_async;
    struct queued_cmd queue[MAX_QUEUED_COMMANDS];
    size_t nqueued;
};

static int send_command(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    struct pconn *pc = ctx;
    struct queued_cmd *q;
    size_t len;
    uint8_t *buf;

    if (pc->has_async)
        return tb_ipc_host_reply(pc->conn, pc->async_id, &cmd->base, true, true, fd);
    if (pc->nqueued >= MAX_QUEUED_COMMANDS)
        return -ENOBUFS;
    /* Keep a private copy until the producer opens its command stream. */
    len = protobuf_c_message_get_packed_size(&cmd->base);
    buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(&cmd->base, buf);
    q = &pc->queue[pc->nqueued];
    q->cmd = perfetto__protos__get_async_command_response__unpack(NULL, len, buf);
    free(buf);
    if (!q->cmd)
        return -ENOMEM;
    q->fd = fd >= 0 ? dup(fd) : -1;
    if (fd >= 0 && q->fd < 0) {
        perfetto__protos__get_async_command_response__free_unpacked(q->cmd, NULL);
        return -errno;
    }
    pc->nqueued++;
    return 0;
}

static void kick(void *ctx, const char *why)
{
    struct pconn *pc = ctx;

    tb_ipc_host_disconnect(pc->conn);
}

static const struct tb_svc_producer_ops producer_ops = {
    .send_command = send_command,
    .kick = kick,
};

static void drain_queue(struct pconn *pc)
{
    for (size_t i = 0; i < pc->nqueued; i++) {
        struct queued_cmd *q = &pc->queue[i];

        if (pc->has_async)
            tb_ipc_host_reply(pc->conn, pc->async_id, &q->cmd->base, true, true, q->fd);
        perfetto__protos__get_async_command_response__free_unpacked(q->cmd, NULL);
        if (q->fd >= 0)
            close(q->fd);
    }
    pc->nqueued = 0;
}

static int attach(struct tb_svc_port *port, struct tb_ipc_conn *conn, void *state)
{
    struct pconn *pc = state;

    pc->conn = conn;
    return tb_svc_producer_connect(port->core, tb_ipc_conn_uid(conn), tb_ipc_conn_pid(conn),
                                   &producer_ops, pc, &pc->p);
}

static void detach(void *state)
{
    struct pconn *pc = state;

    pc->has_async = false;
    drain_queue(pc);
    tb_svc_producer_disconnect(pc->p);
}

static void reply(struct tb_ipc_call *call, const ProtobufCMessage *msg, bool ok)
{
    tb_svc_port_reply(call, msg, ok);
}

/* Every call but InitializeConnection needs a prior InitializeConnection. */
static struct pconn *ready(struct tb_ipc_call *call)
{
    struct pconn *pc = tb_ipc_conn_user_data(call->conn);

    if (!pc || !tb_svc_producer_is_initialized(pc->p)) {
        reply(call, NULL, false);
        return NULL;
    }
    return pc;
}

static void m_initialize(struct tb_ipc_call *call)
{
    Perfetto__Protos__InitializeConnectionResponse resp =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_RESPONSE__INIT;
    Perfetto__Protos__InitializeConnectionRequest *req = (void *)call->request;
    struct pconn *pc = tb_ipc_conn_user_data(call->conn);
    int fd = call->fd;

    if (!pc || tb_svc_producer_initialize(pc->p, req)) {
        reply(call, NULL, false);
        return;
    }
    /*
     * Startup tracing: the SDK brings its own sealed SMB. A refused fd is
     * closed and the producer reconnects without one, so false is always safe.
     */
    if (req->has_producer_provided_shmem && req->producer_provided_shmem && fd >= 0) {
        call->fd = -1; /* ownership moves to the core, accepted or not */
        resp.using_shmem_provided_by_producer = tb_svc_producer_adopt_smb(pc->p, fd) == 0;
    }
    /* No direct patching, no emulation. */
    resp.has_using_shmem_provided_by_producer = true;
    resp.has_direct_smb_patching_supported = true;
    resp.has_use_shmem_emulation = true;
    reply(call, &resp.base, true);
}

static void m_register_ds(struct tb_ipc_call *call)
{
    Perfetto__Protos__RegisterDataSourceRequest *req = (void *)call->request;
    Perfetto__Protos__RegisterDataSourceResponse resp =
        PERFETTO__PROTOS__REGISTER_DATA_SOURCE_RESPONSE__INIT;
    struct pconn *pc = ready(call);
    int err;

    if (!pc)
        return;
    err = tb_svc_producer_register_ds(pc->p, req->data_source_descriptor);
    if (err)
        resp.error = (char *)(err == -EEXIST ? "data source already registered"
                                             : "invalid data source descriptor");
    reply(call, &resp.base, true);
}

static void m_update_ds(struct tb_ipc_call *call)
{
    Perfetto__Protos__UpdateDataSourceRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc)
        reply(call, NULL, tb_svc_producer_update_ds(pc->p, req->data_source_descriptor) == 0);
}

static void m_unregister_ds(struct tb_ipc_call *call)
{
    Perfetto__Protos__UnregisterDataSourceRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc) {
        tb_svc_producer_unregister_ds(pc->p, req->data_source_name);
        reply(call, NULL, true);
    }
}

static void m_commit(struct tb_ipc_call *call)
{
    struct pconn *pc = ready(call);

    if (pc && tb_svc_producer_commit(pc->p, (void *)call->request) == 0)
        reply(call, NULL, true);
}

static void m_get_async(struct tb_ipc_call *call)
{
    struct pconn *pc = ready(call);

    if (!pc)
        return;
    if (call->drop_reply || pc->has_async) {
        /* A second stream or one nobody listens to cannot carry commands. */
        reply(call, NULL, false);
        return;
    }
    pc->async_id = call->request_id;
    pc->has_async = true;
    drain_queue(pc);
}

static void m_register_writer(struct tb_ipc_call *call)
{
    Perfetto__Protos__RegisterTraceWriterRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc)
        reply(call, NULL,
              tb_svc_producer_register_writer(pc->p, req->trace_writer_id, req->target_buffer) ==
                  0);
}

static void m_unregister_writer(struct tb_ipc_call *call)
{
    Perfetto__Protos__UnregisterTraceWriterRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc)
        reply(call, NULL, tb_svc_producer_unregister_writer(pc->p, req->trace_writer_id) == 0);
}

static void m_ds_started(struct tb_ipc_call *call)
{
    Perfetto__Protos__NotifyDataSourceStartedRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc) {
        tb_svc_producer_ds_started(pc->p, req->data_source_id);
        reply(call, NULL, true);
    }
}

static void m_ds_stopped(struct tb_ipc_call *call)
{
    Perfetto__Protos__NotifyDataSourceStoppedRequest *req = (void *)call->request;
    struct pconn *pc = ready(call);

    if (pc) {
        tb_svc_producer_ds_stopped(pc->p, req->data_source_id);
        reply(call, NULL, true);
    }
}

static void m_accept(struct tb_ipc_call *call)
{
    /* ActivateTriggers (triggers are not supported: accepted, ignored), Sync. */
    if (ready(call))
        reply(call, NULL, true);
}

static const struct tb_ipc_method producer_methods[] = {
    {"InitializeConnection", &perfetto__protos__initialize_connection_request__descriptor,
     m_initialize},
    {"RegisterDataSource", &perfetto__protos__register_data_source_request__descriptor,
     m_register_ds},
    {"UnregisterDataSource", &perfetto__protos__unregister_data_source_request__descriptor,
     m_unregister_ds},
    {"CommitData", &perfetto__protos__commit_data_request__descriptor, m_commit},
    {"GetAsyncCommand", &perfetto__protos__get_async_command_request__descriptor, m_get_async},
    {"RegisterTraceWriter", &perfetto__protos__register_trace_writer_request__descriptor,
     m_register_writer},
    {"UnregisterTraceWriter", &perfetto__protos__unregister_trace_writer_request__descriptor,
     m_unregister_writer},
    {"NotifyDataSourceStarted", &perfetto__protos__notify_data_source_started_request__descriptor,
     m_ds_started},
    {"NotifyDataSourceStopped", &perfetto__protos__notify_data_source_stopped_request__descriptor,
     m_ds_stopped},
    {"ActivateTriggers", &perfetto__protos__activate_triggers_request__descriptor, m_accept},
    {"Sync", &perfetto__protos__sync_request__descriptor, m_accept},
    {"UpdateDataSource", &perfetto__protos__update_data_source_request__descriptor, m_update_ds},
};

static const struct tb_svc_port_kind producer_kind = {
    .service = "ProducerPort",
    .methods = producer_methods,
    .n_methods = sizeof(producer_methods) / sizeof(producer_methods[0]),
    .conn_size = sizeof(struct pconn),
    .attach = attach,
    .detach = detach,
};

int tb_svc_producer_port_new(struct tb_loop *loop, struct tb_svc_core *core,
                             const struct tb_svc_port_opts *opts, struct tb_svc_port **out)
{
    return tb_svc_port_create(loop, core, opts, &producer_kind, out);
}
