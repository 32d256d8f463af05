/*
 * ipc_host_dispatch.c - what the IPC host does with a decoded frame: answers
 * BindService from the registered service tables, decodes InvokeMethod
 * arguments and calls the method's handler, and builds InvokeMethodReply
 * frames for tb_ipc_host_reply(). Bad invokes get a success=false reply
 * (never a disconnect), since a peer may simply speak a newer protocol.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc_host_priv.h"
#include "common/log.h"

int tb_ipc_host_reply(struct tb_ipc_conn *conn, uint64_t request_id, const ProtobufCMessage *reply,
                      bool success, bool has_more, int fd_to_send)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__InvokeMethodReply r =
        PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD_REPLY__INIT;
    uint8_t *payload = NULL;
    int err;

    if (conn->in_dispatch && conn->cur_drop_reply && conn->cur_request_id == request_id)
        return 0;
    if (conn->closing)
        return -ENOTCONN;
    if (reply) {
        size_t sz = protobuf_c_message_get_packed_size(reply);

        if (sz > conn->host->opts.max_frame_size)
            return -EMSGSIZE;
        payload = malloc(sz ? sz : 1);
        if (!payload)
            return -ENOMEM;
        protobuf_c_message_pack(reply, payload);
        r.reply_proto.data = payload;
        r.reply_proto.len = sz;
    }
    r.has_reply_proto = true;
    r.has_success = true;
    r.success = success;
    r.has_has_more = true;
    r.has_more = has_more;
    frame.has_request_id = true;
    frame.request_id = request_id;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD_REPLY;
    frame.msg_invoke_method_reply = &r;
    err = tb_ipch_send_frame(conn, &frame, fd_to_send);
    free(payload);
    return err;
}

static void send_request_error(struct tb_ipc_conn *c, uint64_t request_id, const char *msg)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__RequestError e = PERFETTO__PROTOS__IPCFRAME__REQUEST_ERROR__INIT;

    e.error = (char *)msg;
    frame.has_request_id = true;
    frame.request_id = request_id;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_REQUEST_ERROR;
    frame.msg_request_error = &e;
    tb_ipch_send_frame(c, &frame, -1);
}

static void on_bind(struct tb_ipc_conn *c, uint64_t request_id, const char *name)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindServiceReply r =
        PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE_REPLY__INIT;
    Perfetto__Protos__IPCFrame__BindServiceReply__MethodInfo *infos = NULL, **ptrs = NULL;
    struct tb_ipc_host *host = c->host;
    const struct tb_ipch_service *svc = NULL;
    size_t i;

    for (i = 0; name && i < host->n_services; i++) {
        if (!strcmp(host->services[i].name, name)) {
            svc = &host->services[i];
            break;
        }
    }
    r.has_success = true;
    if (svc) {
        infos = calloc(svc->n_methods ? svc->n_methods : 1, sizeof(*infos));
        ptrs = calloc(svc->n_methods ? svc->n_methods : 1, sizeof(*ptrs));
        if (!infos || !ptrs) {
            tb_ipch_conn_close(c, "out of memory");
            goto out;
        }
        for (i = 0; i < svc->n_methods; i++) {
            perfetto__protos__ipcframe__bind_service_reply__method_info__init(&infos[i]);
            infos[i].has_id = true;
            infos[i].id = (uint32_t)(i + 1);
            infos[i].name = (char *)svc->methods[i].name;
            ptrs[i] = &infos[i];
        }
        r.success = true;
        r.has_service_id = true;
        r.service_id = (uint32_t)(svc - host->services + 1);
        r.n_methods = svc->n_methods;
        r.methods = ptrs;
    } else {
        tb_debug("ipc: connection %llu asked for unknown service '%s'", (unsigned long long)c->id,
                 name ? name : "");
    }
    frame.has_request_id = true;
    frame.request_id = request_id;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE_REPLY;
    frame.msg_bind_service_reply = &r;
    tb_ipch_send_frame(c, &frame, -1);
out:
    free(ptrs);
    free(infos);
}

static void on_invoke(struct tb_ipc_conn *c, uint64_t request_id,
                      const Perfetto__Protos__IPCFrame__InvokeMethod *im, int fd)
{
    struct tb_ipc_host *host = c->host;
    const struct tb_ipc_method *m = NULL;
    const struct tb_ipch_service *svc = NULL;
    struct tb_ipc_call call = {0};
    bool drop = im->has_drop_reply && im->drop_reply;

    if (im->service_id >= 1 && im->service_id <= host->n_services)
        svc = &host->services[im->service_id - 1];
    if (svc && im->method_id >= 1 && im->method_id <= svc->n_methods)
        m = &svc->methods[im->method_id - 1];
    if (!m) {
        tb_debug("ipc: connection %llu invoked unknown method %u of service %u",
                 (unsigned long long)c->id, im->method_id, im->service_id);
        goto fail;
    }
    call.request =
        protobuf_c_message_unpack(m->request_desc, NULL, im->args_proto.len, im->args_proto.data);
    if (!call.request) {
        tb_debug("ipc: connection %llu sent undecodable args for %s", (unsigned long long)c->id,
                 m->name);
        goto fail;
    }
    call.conn = c;
    call.request_id = request_id;
    call.fd = fd;
    call.uid = c->uid;
    call.pid = c->pid;
    call.drop_reply = drop;
    call.service_ctx = svc->ctx;
    call.method = m->name;
    c->in_dispatch = true;
    c->cur_request_id = request_id;
    c->cur_drop_reply = drop;
    m->handler(&call);
    c->in_dispatch = false;
    if (call.request)
        protobuf_c_message_free_unpacked(call.request, NULL);
    if (call.fd >= 0)
        close(call.fd);
    return;
fail:
    host->stats.invoke_errors++;
    if (fd >= 0)
        close(fd);
    if (!drop)
        tb_ipc_host_reply(c, request_id, NULL, false, false, -1);
}

void tb_ipch_on_frame(struct tb_ipc_conn *c, Perfetto__Protos__IPCFrame *frame, int fd)
{
    uint64_t id = frame->request_id;

    switch (frame->msg_case) {
    case PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE:
        on_bind(c, id, frame->msg_bind_service->service_name);
        break;
    case PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD:
        on_invoke(c, id, frame->msg_invoke_method, fd);
        fd = -1;
        break;
    case PERFETTO__PROTOS__IPCFRAME__MSG_SET_PEER_IDENTITY:
        /* Relays only; on AF_UNIX the kernel's SO_PEERCRED is the identity. */
        break;
    default:
        send_request_error(c, id, "unknown request");
        break;
    }
    if (fd >= 0)
        close(fd);
}
