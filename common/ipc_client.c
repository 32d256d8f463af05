/*
 * ipc_client.c - client side of the IPC protocol: one connection, one bound
 * service, pending calls matched to replies by request id. This file owns
 * the connection, sending (bind, invoke) and the callback nesting; replies
 * are read in ipc_client_recv.c, blocking helpers live in ipc_client_sync.c.
 *
 * User callbacks run only from loop events, never from inside an API call:
 * a broken connection noticed while sending is reported from a zero-delay
 * timer. A depth counter lets callbacks free the client; the free completes
 * when the outermost dispatch unwinds.
 */
#include "common/ipc_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_client_priv.h"
#include "common/ipc_frame.h"
#include "common/ipc_sock.h"
#include "common/log.h"

#define DEFAULT_MAX_TX_QUEUE (16u << 20)

static void really_free(struct tb_ipc_client *c)
{
    struct tb_ipcc_pending *p;
    size_t i;

    if (c->fd >= 0) {
        tb_loop_del_fd(c->loop, c->fd);
        close(c->fd);
    }
    tb_loop_cancel_timer(c->loop, c->dc_timer);
    while ((p = c->pending)) {
        c->pending = p->next;
        free(p);
    }
    for (i = 0; i < c->n_methods; i++)
        free(c->methods[i].name);
    free(c->methods);
    tb_ipc_txq_clear(&c->txq);
    tb_ipc_frame_decoder_free(c->dec);
    free(c);
}

void tb_ipc_client_free(struct tb_ipc_client *client)
{
    if (!client)
        return;
    if (client->depth) {
        client->free_asked = true;
        return;
    }
    really_free(client);
}

/* Wrap every user callback: returns false when the client is gone. */
static void enter(struct tb_ipc_client *c)
{
    c->depth++;
}

static bool leave(struct tb_ipc_client *c)
{
    if (--c->depth == 0 && c->free_asked) {
        really_free(c);
        return false;
    }
    return !c->free_asked;
}

int tb_ipc_client_new(struct tb_loop *loop, const struct tb_ipc_client_opts *opts,
                      struct tb_ipc_client **out)
{
    struct tb_ipc_client *c;
    int err;

    if (!loop)
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->fd = -1;
    c->next_request_id = 1;
    if (opts)
        c->opts = *opts;
    if (!c->opts.max_tx_queue_bytes)
        c->opts.max_tx_queue_bytes = DEFAULT_MAX_TX_QUEUE;
    tb_ipc_txq_init(&c->txq);
    err = tb_ipc_frame_decoder_new(c->opts.max_frame_size, &c->dec);
    if (err) {
        free(c);
        return err;
    }
    *out = c;
    return 0;
}

/* Fails every pending call, then reports the disconnect. */
static void finish_disconnect(void *ctx)
{
    struct tb_ipc_client *c = ctx;
    struct tb_ipcc_pending *p;

    c->dc_timer = 0;
    enter(c);
    if (c->bind_request_id && c->bind_fn) {
        c->bind_request_id = 0;
        c->bind_fn(c, false, c->bind_ctx);
    }
    while (!c->free_asked && (p = c->pending)) {
        struct tb_ipc_reply r = {.request_id = p->id, .fd = -1};

        c->pending = p->next;
        p->fn(c, &r, p->ctx);
        free(p);
    }
    /* From here on the client may connect again. */
    c->dead = false;
    if (!c->free_asked && c->opts.on_disconnect)
        c->opts.on_disconnect(c, c->opts.ctx);
    leave(c);
}

void tb_ipcc_disconnect(struct tb_ipc_client *c, const char *why)
{
    if (c->dead || c->fd < 0)
        return;
    tb_debug("ipc: client connection lost: %s", why);
    c->dead = true;
    tb_loop_del_fd(c->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    c->bound = false;
    c->service_id = 0;
    while (c->n_methods)
        free(c->methods[--c->n_methods].name);
    free(c->methods);
    c->methods = NULL;
    c->want_out = false;
    tb_ipc_txq_clear(&c->txq);
    if (tb_loop_add_timer(c->loop, 0, 0, finish_disconnect, c, &c->dc_timer))
        tb_err("ipc: cannot schedule client disconnect report (out of memory)");
}

static void flush(struct tb_ipc_client *c)
{
    int err = tb_ipc_txq_flush(&c->txq, c->fd);
    bool want;

    if (err && err != -EAGAIN) {
        tb_ipcc_disconnect(c, strerror(-err));
        return;
    }
    want = c->txq.head != NULL;
    if (want != c->want_out) {
        c->want_out = want;
        tb_loop_mod_fd(c->loop, c->fd, TB_LOOP_IN | (want ? TB_LOOP_OUT : 0));
    }
}

static int send_frame(struct tb_ipc_client *c, Perfetto__Protos__IPCFrame *frame, int fd)
{
    size_t len;
    uint8_t *buf;
    int err;

    if (c->fd < 0 || c->dead)
        return -ENOTCONN;
    if (c->txq.bytes > c->opts.max_tx_queue_bytes)
        return -ENOBUFS;
    frame->has_request_id = true;
    frame->request_id = c->next_request_id;
    err = tb_ipc_frame_encode(frame, c->opts.max_frame_size, &buf, &len);
    if (err)
        return err;
    err = tb_ipc_txq_push(&c->txq, buf, len, fd);
    if (err)
        return err;
    c->next_request_id++;
    flush(c);
    return 0;
}

static void on_event(void *ctx, int fd, uint32_t events)
{
    struct tb_ipc_client *c = ctx;

    enter(c);
    if (events & TB_LOOP_OUT)
        flush(c);
    if (!c->dead && (events & (TB_LOOP_IN | TB_LOOP_ERR)))
        tb_ipcc_read_frames(c);
    leave(c);
}

int tb_ipc_client_adopt_fd(struct tb_ipc_client *client, int fd)
{
    struct tb_ipc_frame_decoder *dec;
    int err;

    if (client->fd >= 0 || client->dead) {
        close(fd);
        return -EISCONN;
    }
    /* A fresh stream: no bytes or request ids carried over from before. */
    err = tb_ipc_frame_decoder_new(client->opts.max_frame_size, &dec);
    if (err) {
        close(fd);
        return err;
    }
    tb_ipc_frame_decoder_free(client->dec);
    client->dec = dec;
    client->next_request_id = 1;
    err = tb_loop_add_fd(client->loop, fd, TB_LOOP_IN, on_event, client);
    if (err) {
        close(fd);
        return err;
    }
    client->fd = fd;
    return 0;
}

int tb_ipc_client_connect(struct tb_ipc_client *client, const char *name)
{
    int fd, err;

    if (client->fd >= 0 || client->dead)
        return -EISCONN;
    err = tb_ipc_sock_connect(name, true, &fd);
    if (err)
        return err;
    return tb_ipc_client_adopt_fd(client, fd);
}

bool tb_ipc_client_connected(const struct tb_ipc_client *client)
{
    return client->fd >= 0 && !client->dead;
}

int tb_ipc_client_bind(struct tb_ipc_client *client, const char *service_name, tb_ipc_bind_fn fn,
                       void *ctx)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindService b = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    uint64_t id = client->next_request_id;
    int err;

    if (!tb_ipc_client_connected(client))
        return -ENOTCONN;
    if (client->bound || client->bind_request_id)
        return -EALREADY;
    b.service_name = (char *)service_name;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE;
    frame.msg_bind_service = &b;
    err = send_frame(client, &frame, -1);
    if (err)
        return err;
    client->bind_request_id = id;
    client->bind_fn = fn;
    client->bind_ctx = ctx;
    return 0;
}

static const struct tb_ipcc_method *find_method(const struct tb_ipc_client *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->n_methods; i++) {
        if (!strcmp(c->methods[i].name, name))
            return &c->methods[i];
    }
    return NULL;
}

bool tb_ipc_client_has_method(const struct tb_ipc_client *client, const char *method)
{
    return client->bound && find_method(client, method);
}

int tb_ipc_client_invoke(struct tb_ipc_client *client, const char *method,
                         const ProtobufCMessage *args, const ProtobufCMessageDescriptor *reply_desc,
                         tb_ipc_reply_fn fn, void *ctx, int fd_to_send, uint64_t *request_id_out)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__InvokeMethod im = PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD__INIT;
    uint64_t id = client->next_request_id;
    const struct tb_ipcc_method *m;
    struct tb_ipcc_pending *p = NULL;
    uint8_t *payload = NULL;
    int err;

    if (!client->bound || !tb_ipc_client_connected(client))
        return -ENOTCONN;
    m = find_method(client, method);
    if (!m) {
        tb_warn("ipc: service does not offer method %s", method);
        return -EOPNOTSUPP;
    }
    if (fn) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
    }
    if (args) {
        size_t sz = protobuf_c_message_get_packed_size(args);

        payload = malloc(sz ? sz : 1);
        if (!payload) {
            err = -ENOMEM;
            goto out;
        }
        protobuf_c_message_pack(args, payload);
        im.args_proto.data = payload;
        im.args_proto.len = sz;
    }
    im.has_service_id = im.has_method_id = im.has_args_proto = true;
    im.service_id = client->service_id;
    im.method_id = m->id;
    if (!fn) {
        im.has_drop_reply = true;
        im.drop_reply = true;
    }
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD;
    frame.msg_invoke_method = &im;
    err = send_frame(client, &frame, fd_to_send);
    if (err)
        goto out;
    if (p) {
        p->id = id;
        p->fn = fn;
        p->ctx = ctx;
        p->desc = reply_desc;
        p->next = client->pending;
        client->pending = p;
        p = NULL;
    }
    if (request_id_out)
        *request_id_out = id;
out:
    free(payload);
    free(p);
    return err;
}
