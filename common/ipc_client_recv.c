/*
 * ipc_client_recv.c - the receiving half of the IPC client: reads the
 * socket, decodes frames and hands each reply to the call waiting for it
 * (BindServiceReply to the bind callback, InvokeMethodReply and
 * RequestError to the pending call with that request id). Replies to calls
 * the client no longer waits for are dropped quietly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc_client_priv.h"
#include "common/ipc_sock.h"
#include "common/log.h"

struct tb_ipcc_pending *tb_ipcc_take_pending(struct tb_ipc_client *c, uint64_t id)
{
    struct tb_ipcc_pending **pp;

    for (pp = &c->pending; *pp; pp = &(*pp)->next) {
        struct tb_ipcc_pending *p = *pp;

        if (p->id == id) {
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

static void on_bind_reply(struct tb_ipc_client *c,
                          const Perfetto__Protos__IPCFrame__BindServiceReply *r)
{
    bool ok = r->success && r->service_id;
    size_t i;

    c->bind_request_id = 0;
    if (ok) {
        c->methods = calloc(r->n_methods ? r->n_methods : 1, sizeof(*c->methods));
        if (!c->methods) {
            ok = false;
        } else {
            for (i = 0; i < r->n_methods; i++) {
                const char *name = r->methods[i]->name;

                /* Id 0 or a nameless entry cannot be called: skip it. */
                if (!name || !r->methods[i]->id)
                    continue;
                c->methods[c->n_methods].name = strdup(name);
                if (!c->methods[c->n_methods].name)
                    continue;
                c->methods[c->n_methods++].id = r->methods[i]->id;
            }
            c->service_id = r->service_id;
            c->bound = true;
        }
    }
    if (c->bind_fn)
        c->bind_fn(c, ok, c->bind_ctx);
}

static void on_invoke_reply(struct tb_ipc_client *c, uint64_t id,
                            const Perfetto__Protos__IPCFrame__InvokeMethodReply *r, int *fd)
{
    struct tb_ipcc_pending *p = tb_ipcc_take_pending(c, id);
    struct tb_ipc_reply reply = {.request_id = id, .fd = -1};

    if (!p)
        return; /* unknown id: late reply to a forgotten call */
    reply.success = r->success;
    reply.has_more = r->success && r->has_more;
    if (reply.success && p->desc) {
        reply.msg =
            protobuf_c_message_unpack(p->desc, NULL, r->reply_proto.len, r->reply_proto.data);
        if (!reply.msg) {
            tb_warn("ipc: cannot decode %s reply to request %llu", p->desc->name,
                    (unsigned long long)id);
            reply.success = false;
            reply.has_more = false;
        }
    }
    reply.fd = *fd;
    *fd = -1;
    if (reply.has_more) {
        /* Still streaming: keep the call first so the callback may see it. */
        p->next = c->pending;
        c->pending = p;
    }
    p->fn(c, &reply, p->ctx);
    if (!reply.has_more)
        free(p);
    if (reply.msg)
        protobuf_c_message_free_unpacked(reply.msg, NULL);
    if (reply.fd >= 0)
        close(reply.fd);
}

static void on_request_error(struct tb_ipc_client *c, uint64_t id, const char *msg)
{
    struct tb_ipcc_pending *p = tb_ipcc_take_pending(c, id);
    struct tb_ipc_reply reply = {.request_id = id, .fd = -1};

    tb_warn("ipc: host rejected request %llu: %s", (unsigned long long)id, msg ? msg : "");
    if (c->bind_request_id == id) {
        c->bind_request_id = 0;
        if (c->bind_fn)
            c->bind_fn(c, false, c->bind_ctx);
    }
    if (p) {
        p->fn(c, &reply, p->ctx);
        free(p);
    }
}

static void on_frame(struct tb_ipc_client *c, const Perfetto__Protos__IPCFrame *f, int fd)
{
    switch (f->msg_case) {
    case PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE_REPLY:
        if (c->bind_request_id && f->request_id == c->bind_request_id)
            on_bind_reply(c, f->msg_bind_service_reply);
        break;
    case PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD_REPLY:
        on_invoke_reply(c, f->request_id, f->msg_invoke_method_reply, &fd);
        break;
    case PERFETTO__PROTOS__IPCFRAME__MSG_MSG_REQUEST_ERROR:
        on_request_error(c, f->request_id, f->msg_request_error->error);
        break;
    default:
        tb_debug("ipc: client ignoring frame of type %d", (int)f->msg_case);
        break;
    }
    if (fd >= 0)
        close(fd);
}

void tb_ipcc_read_frames(struct tb_ipc_client *c)
{
    int i;

    for (i = 0; i < TB_IPCC_MAX_READS_PER_EVENT && !c->dead && !c->free_asked; i++) {
        Perfetto__Protos__IPCFrame *frame;
        int err, rfd;
        ssize_t n;

        n = tb_ipc_sock_recv_frames(c->fd, c->dec, &err);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            tb_ipcc_disconnect(c, n ? strerror((int)-n) : "host closed the connection");
            return;
        }
        while (!c->free_asked && (frame = tb_ipc_frame_decoder_pop_fd(c->dec, &rfd))) {
            on_frame(c, frame, rfd);
            tb_ipc_frame_free(frame);
        }
        if (err) {
            tb_warn("ipc: bad stream from host: %s", strerror(-err));
            tb_ipcc_disconnect(c, "bad stream");
        }
    }
}
