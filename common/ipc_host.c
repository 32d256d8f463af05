/*
 * ipc_host.c - server side of the IPC protocol: accepts connections, reads
 * and decodes IPCFrames, answers BindService, dispatches InvokeMethod to the
 * registered method tables, and queues replies without ever blocking.
 *
 * Closing is two-step so no callback ever sees a freed connection: a
 * connection first moves to the dead list (socket closed, loop watch gone),
 * then a zero-delay timer runs on_disconnect and frees it.
 */
#include "common/ipc_host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_frame.h"
#include "common/ipc_sock.h"
#include "common/log.h"

#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_MAX_TX_QUEUE    (4u << 20)
/* Bound on recv() calls per wakeup, so one chatty peer cannot starve others. */
#define MAX_READS_PER_EVENT 16

struct service {
    const char *name;
    const struct tb_ipc_method *methods;
    size_t n_methods;
    void *ctx;
};

struct listener {
    struct listener *next;
    struct tb_ipc_host *host;
    char *path; /* filesystem socket we created, unlinked at free; or NULL */
    dev_t dev;
    ino_t ino;
    int fd;
};

struct tb_ipc_conn {
    struct tb_ipc_conn *prev, *next;
    struct tb_ipc_host *host;
    struct tb_ipc_frame_decoder *dec;
    struct tb_ipc_txq txq;
    void *user;
    uint64_t id;
    uint64_t cur_request_id; /* the InvokeMethod being dispatched */
    uint64_t dropped_seen;   /* decoder drops already added to host stats */
    uid_t uid;
    pid_t pid;
    int fd;
    bool closing;
    bool want_out;
    bool in_dispatch;
    bool cur_drop_reply;
};

struct tb_ipc_host {
    struct tb_loop *loop;
    struct tb_ipc_host_opts opts;
    struct service *services;
    size_t n_services;
    struct listener *listeners;
    struct tb_ipc_conn *live;
    struct tb_ipc_conn *dead;
    size_t n_live;
    uint64_t next_conn_id;
    uint64_t reap_timer;
    struct tb_ipc_host_stats stats;
};

static void conn_event(void *ctx, int fd, uint32_t events);

static void list_del(struct tb_ipc_conn **head, struct tb_ipc_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void list_add(struct tb_ipc_conn **head, struct tb_ipc_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void conn_free(struct tb_ipc_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        tb_loop_del_fd(c->host->loop, c->fd);
        close(c->fd);
    }
    tb_ipc_txq_clear(&c->txq);
    tb_ipc_frame_decoder_free(c->dec);
    free(c);
}

static void reap(void *ctx)
{
    struct tb_ipc_host *host = ctx;
    struct tb_ipc_conn *c;

    host->reap_timer = 0;
    while ((c = host->dead)) {
        list_del(&host->dead, c);
        if (host->opts.on_disconnect)
            host->opts.on_disconnect(c, host->opts.ctx);
        conn_free(c);
    }
}

static void conn_close(struct tb_ipc_conn *c, const char *why)
{
    struct tb_ipc_host *host = c->host;

    if (c->closing)
        return;
    tb_debug("ipc: closing connection %llu (pid %d): %s", (unsigned long long)c->id, (int)c->pid,
             why);
    c->closing = true;
    tb_loop_del_fd(host->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    tb_ipc_txq_clear(&c->txq);
    list_del(&host->live, c);
    host->n_live--;
    list_add(&host->dead, c);
    if (!host->reap_timer && tb_loop_add_timer(host->loop, 0, 0, reap, host, &host->reap_timer))
        tb_err("ipc: cannot schedule connection cleanup (out of memory)");
}

void tb_ipc_host_disconnect(struct tb_ipc_conn *conn)
{
    conn_close(conn, "closed by host");
}

static void update_out_watch(struct tb_ipc_conn *c)
{
    bool want = c->txq.head != NULL;

    if (want == c->want_out)
        return;
    c->want_out = want;
    tb_loop_mod_fd(c->host->loop, c->fd, TB_LOOP_IN | (want ? TB_LOOP_OUT : 0));
}

static void conn_flush(struct tb_ipc_conn *c)
{
    int err = tb_ipc_txq_flush(&c->txq, c->fd);

    if (err && err != -EAGAIN) {
        conn_close(c, strerror(-err));
        return;
    }
    if (c->txq.bytes > c->host->opts.max_tx_queue_bytes) {
        tb_warn("ipc: connection %llu (pid %d) is not reading; %zu bytes queued, disconnecting",
                (unsigned long long)c->id, (int)c->pid, c->txq.bytes);
        c->host->stats.disconnects_slow_reader++;
        conn_close(c, "tx queue over limit");
        return;
    }
    update_out_watch(c);
}

static int send_frame(struct tb_ipc_conn *c, const Perfetto__Protos__IPCFrame *frame, int fd)
{
    size_t len;
    uint8_t *buf;
    int err;

    if (c->closing)
        return -ENOTCONN;
    err = tb_ipc_frame_encode(frame, c->host->opts.max_frame_size, &buf, &len);
    if (err) {
        tb_err("ipc: reply to connection %llu not sent: %s", (unsigned long long)c->id,
               strerror(-err));
        return err;
    }
    err = tb_ipc_txq_push(&c->txq, buf, len, fd);
    if (err) {
        conn_close(c, "cannot queue reply");
        return err;
    }
    conn_flush(c);
    return 0;
}

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
    err = send_frame(conn, &frame, fd_to_send);
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
    send_frame(c, &frame, -1);
}

static void on_bind(struct tb_ipc_conn *c, uint64_t request_id, const char *name)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindServiceReply r =
        PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE_REPLY__INIT;
    Perfetto__Protos__IPCFrame__BindServiceReply__MethodInfo *infos = NULL, **ptrs = NULL;
    struct tb_ipc_host *host = c->host;
    const struct service *svc = NULL;
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
            conn_close(c, "out of memory");
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
    send_frame(c, &frame, -1);
out:
    free(ptrs);
    free(infos);
}

static void on_invoke(struct tb_ipc_conn *c, uint64_t request_id,
                      const Perfetto__Protos__IPCFrame__InvokeMethod *im, int fd)
{
    struct tb_ipc_host *host = c->host;
    const struct tb_ipc_method *m = NULL;
    const struct service *svc = NULL;
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

static void on_frame(struct tb_ipc_conn *c, Perfetto__Protos__IPCFrame *frame, int fd)
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

static void count_drops(struct tb_ipc_conn *c)
{
    struct tb_ipc_frame_decoder_stats ds;

    tb_ipc_frame_decoder_get_stats(c->dec, &ds);
    c->host->stats.frames_dropped += ds.frames_dropped - c->dropped_seen;
    c->dropped_seen = ds.frames_dropped;
}

static void conn_read(struct tb_ipc_conn *c)
{
    int i;

    for (i = 0; i < MAX_READS_PER_EVENT && !c->closing; i++) {
        Perfetto__Protos__IPCFrame *frame;
        int err, rfd;
        size_t room;
        ssize_t n;
        void *dst;

        err = tb_ipc_frame_decoder_begin_receive(c->dec, &dst, &room);
        if (err)
            break;
        n = tb_ipc_sock_recv(c->fd, dst, room, &rfd);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            conn_close(c, n ? strerror((int)-n) : "peer closed");
            return;
        }
        err = tb_ipc_frame_decoder_end_receive_fd(c->dec, (size_t)n, rfd);
        count_drops(c);
        while (!c->closing && (frame = tb_ipc_frame_decoder_pop_fd(c->dec, &rfd))) {
            c->host->stats.frames_received++;
            on_frame(c, frame, rfd);
            tb_ipc_frame_free(frame);
        }
        if (err == -EMSGSIZE) {
            c->host->stats.disconnects_oversize++;
            tb_warn("ipc: connection %llu (pid %d) sent an oversize frame, disconnecting",
                    (unsigned long long)c->id, (int)c->pid);
            conn_close(c, "oversize frame");
        } else if (err) {
            conn_close(c, strerror(-err));
        }
    }
}

static void conn_event(void *ctx, int fd, uint32_t events)
{
    struct tb_ipc_conn *c = ctx;

    if (events & TB_LOOP_OUT)
        conn_flush(c);
    if (!c->closing && (events & (TB_LOOP_IN | TB_LOOP_ERR)))
        conn_read(c);
}

int tb_ipc_host_adopt_conn_fd(struct tb_ipc_host *host, int fd, struct tb_ipc_conn **out)
{
    struct tb_ipc_conn *c = NULL;
    int err, flags;

    if (host->n_live >= host->opts.max_connections) {
        host->stats.connections_refused++;
        tb_warn("ipc: refusing connection, already %zu (limit)", host->n_live);
        err = -EMFILE;
        goto fail;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        err = -errno;
        goto fail;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        err = -ENOMEM;
        goto fail;
    }
    c->host = host;
    c->fd = fd;
    c->uid = (uid_t)-1;
    tb_ipc_txq_init(&c->txq);
    err = tb_ipc_frame_decoder_new(host->opts.max_frame_size, &c->dec);
    if (err)
        goto fail;
    if (tb_ipc_sock_peer_cred(fd, &c->uid, &c->pid) < 0)
        tb_debug("ipc: no SO_PEERCRED for fd %d", fd);
    err = tb_loop_add_fd(host->loop, fd, TB_LOOP_IN, conn_event, c);
    if (err)
        goto fail;
    c->id = host->next_conn_id++;
    list_add(&host->live, c);
    host->n_live++;
    if (host->opts.on_connect) {
        err = host->opts.on_connect(c, host->opts.ctx);
        if (err) {
            list_del(&host->live, c);
            host->n_live--;
            host->stats.connections_refused++;
            conn_free(c);
            return err;
        }
    }
    host->stats.connections_accepted++;
    if (out)
        *out = c;
    return 0;
fail:
    if (c) {
        c->fd = -1;
        conn_free(c);
    }
    close(fd);
    return err;
}

static void on_accept(void *ctx, int fd, uint32_t events)
{
    struct listener *l = ctx;
    int i;

    for (i = 0; i < MAX_READS_PER_EVENT; i++) {
        int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                tb_warn("ipc: accept on fd %d: %s", l->fd, strerror(errno));
            return;
        }
        tb_ipc_host_adopt_conn_fd(l->host, cfd, NULL);
    }
}

int tb_ipc_host_adopt_listen_fd(struct tb_ipc_host *host, int fd)
{
    struct listener *l = calloc(1, sizeof(*l));
    int err;

    if (!l) {
        close(fd);
        return -ENOMEM;
    }
    l->host = host;
    l->fd = fd;
    err = tb_loop_add_fd(host->loop, fd, TB_LOOP_IN, on_accept, l);
    if (err) {
        close(fd);
        free(l);
        return err;
    }
    l->next = host->listeners;
    host->listeners = l;
    return 0;
}

int tb_ipc_host_listen(struct tb_ipc_host *host, const char *name)
{
    struct stat st;
    int fd, err;

    err = tb_ipc_sock_listen(name, &fd);
    if (err) {
        tb_err("ipc: cannot listen on %s: %s", name, strerror(-err));
        return err;
    }
    err = tb_ipc_host_adopt_listen_fd(host, fd);
    if (err)
        return err;
    if (name[0] != '@' && stat(name, &st) == 0) {
        /* Remember which file is ours, so we never unlink a successor's. */
        host->listeners->path = strdup(name);
        host->listeners->dev = st.st_dev;
        host->listeners->ino = st.st_ino;
    }
    return 0;
}

int tb_ipc_host_new(struct tb_loop *loop, const struct tb_ipc_host_opts *opts,
                    struct tb_ipc_host **out)
{
    struct tb_ipc_host *host;

    if (!loop)
        return -EINVAL;
    host = calloc(1, sizeof(*host));
    if (!host)
        return -ENOMEM;
    host->loop = loop;
    if (opts)
        host->opts = *opts;
    if (!host->opts.max_connections)
        host->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (!host->opts.max_tx_queue_bytes)
        host->opts.max_tx_queue_bytes = DEFAULT_MAX_TX_QUEUE;
    if (!host->opts.max_frame_size)
        host->opts.max_frame_size = TB_IPC_MAX_FRAME_SIZE;
    if (host->opts.max_frame_size <= TB_IPC_FRAME_HEADER_SIZE) {
        free(host);
        return -EINVAL;
    }
    host->next_conn_id = 1;
    *out = host;
    return 0;
}

void tb_ipc_host_free(struct tb_ipc_host *host)
{
    struct listener *l;
    struct tb_ipc_conn *c;

    if (!host)
        return;
    while ((l = host->listeners)) {
        struct stat st;

        host->listeners = l->next;
        tb_loop_del_fd(host->loop, l->fd);
        close(l->fd);
        if (l->path && stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
            unlink(l->path);
        free(l->path);
        free(l);
    }
    while ((c = host->live))
        conn_close(c, "host shutting down");
    tb_loop_cancel_timer(host->loop, host->reap_timer);
    reap(host);
    free(host->services);
    free(host);
}

int tb_ipc_host_add_service(struct tb_ipc_host *host, const char *name,
                            const struct tb_ipc_method *methods, size_t n_methods,
                            void *service_ctx)
{
    struct service *s;
    size_t i;

    if (!name || (!methods && n_methods))
        return -EINVAL;
    for (i = 0; i < n_methods; i++) {
        if (!methods[i].name || !methods[i].request_desc || !methods[i].handler)
            return -EINVAL;
    }
    for (i = 0; i < host->n_services; i++) {
        if (!strcmp(host->services[i].name, name))
            return -EEXIST;
    }
    s = realloc(host->services, (host->n_services + 1) * sizeof(*s));
    if (!s)
        return -ENOMEM;
    host->services = s;
    s[host->n_services++] = (struct service){name, methods, n_methods, service_ctx};
    return 0;
}

void tb_ipc_conn_set_user_data(struct tb_ipc_conn *conn, void *data)
{
    conn->user = data;
}

void *tb_ipc_conn_user_data(const struct tb_ipc_conn *conn)
{
    return conn->user;
}

uid_t tb_ipc_conn_uid(const struct tb_ipc_conn *conn)
{
    return conn->uid;
}

pid_t tb_ipc_conn_pid(const struct tb_ipc_conn *conn)
{
    return conn->pid;
}

uint64_t tb_ipc_conn_id(const struct tb_ipc_conn *conn)
{
    return conn->id;
}

struct tb_ipc_host *tb_ipc_conn_host(const struct tb_ipc_conn *conn)
{
    return conn->host;
}

void tb_ipc_host_get_stats(const struct tb_ipc_host *host, struct tb_ipc_host_stats *out)
{
    *out = host->stats;
}

size_t tb_ipc_host_num_connections(const struct tb_ipc_host *host)
{
    return host->n_live;
}
