/*
 * ipc_host_conn.c - one connection of the IPC host: adopting a socket,
 * reading and decoding frames, the bounded transmit queue, and the two-step
 * close.
 *
 * Closing is two-step so no callback ever sees a freed connection: a
 * connection first moves to the dead list (socket closed, loop watch gone),
 * then a zero-delay timer runs on_disconnect and frees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_host_priv.h"
#include "common/ipc_sock.h"
#include "common/log.h"

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
    tb_loop_cancel_timer(c->host->loop, c->drain_timer);
    tb_ipc_txq_clear(&c->txq);
    tb_ipc_frame_decoder_free(c->dec);
    free(c);
}

void tb_ipch_reap(void *ctx)
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

void tb_ipch_conn_close(struct tb_ipc_conn *c, const char *why)
{
    struct tb_ipc_host *host = c->host;

    if (c->closing)
        return;
    tb_debug("ipc: closing connection %llu (pid %d): %s", (unsigned long long)c->id, (int)c->pid,
             why);
    c->closing = true;
    c->drain_fn = NULL;
    tb_loop_cancel_timer(host->loop, c->drain_timer);
    c->drain_timer = 0;
    tb_loop_del_fd(host->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    tb_ipc_txq_clear(&c->txq);
    list_del(&host->live, c);
    host->n_live--;
    list_add(&host->dead, c);
    if (!host->reap_timer &&
        tb_loop_add_timer(host->loop, 0, 0, tb_ipch_reap, host, &host->reap_timer))
        tb_err("ipc: cannot schedule connection cleanup (out of memory)");
}

void tb_ipc_host_disconnect(struct tb_ipc_conn *conn)
{
    tb_ipch_conn_close(conn, "closed by host");
}

static void update_out_watch(struct tb_ipc_conn *c)
{
    bool want = c->txq.head != NULL;

    if (want == c->want_out)
        return;
    c->want_out = want;
    tb_loop_mod_fd(c->host->loop, c->fd, TB_LOOP_IN | (want ? TB_LOOP_OUT : 0));
}

static void drain_task(void *ctx)
{
    struct tb_ipc_conn *c = ctx;
    tb_ipc_drain_fn fn = c->drain_fn;

    c->drain_timer = 0;
    if (c->closing || !fn || c->txq.bytes > c->drain_below)
        return;
    c->drain_fn = NULL;
    fn(c, c->drain_ctx);
}

/* Deferred to a loop task so the callback never runs inside a reply. */
static int check_drain(struct tb_ipc_conn *c)
{
    if (!c->drain_fn || c->drain_timer || c->closing || c->txq.bytes > c->drain_below)
        return 0;
    if (tb_loop_add_timer(c->host->loop, 0, 0, drain_task, c, &c->drain_timer)) {
        tb_ipch_conn_close(c, "cannot schedule drain notification");
        return -ENOMEM;
    }
    return 0;
}

int tb_ipc_conn_notify_drained(struct tb_ipc_conn *conn, size_t below, tb_ipc_drain_fn fn,
                               void *ctx)
{
    conn->drain_fn = fn;
    conn->drain_ctx = ctx;
    conn->drain_below = below;
    if (!fn) {
        tb_loop_cancel_timer(conn->host->loop, conn->drain_timer);
        conn->drain_timer = 0;
        return 0;
    }
    return check_drain(conn);
}

size_t tb_ipc_conn_tx_queued(const struct tb_ipc_conn *conn)
{
    return conn->txq.bytes;
}

static void conn_flush(struct tb_ipc_conn *c)
{
    int err = tb_ipc_txq_flush(&c->txq, c->fd);

    if (err && err != -EAGAIN) {
        tb_ipch_conn_close(c, strerror(-err));
        return;
    }
    if (c->txq.bytes > c->host->opts.max_tx_queue_bytes) {
        tb_warn("ipc: connection %llu (pid %d) is not reading; %zu bytes queued, disconnecting",
                (unsigned long long)c->id, (int)c->pid, c->txq.bytes);
        c->host->stats.disconnects_slow_reader++;
        tb_ipch_conn_close(c, "tx queue over limit");
        return;
    }
    update_out_watch(c);
    check_drain(c);
}

int tb_ipch_send_frame(struct tb_ipc_conn *c, const Perfetto__Protos__IPCFrame *frame, int fd)
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
        tb_ipch_conn_close(c, "cannot queue reply");
        return err;
    }
    if (c->txq.bytes > c->host->stats.tx_queue_peak_bytes)
        c->host->stats.tx_queue_peak_bytes = c->txq.bytes;
    conn_flush(c);
    return 0;
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

    for (i = 0; i < TB_IPCH_MAX_READS_PER_EVENT && !c->closing; i++) {
        Perfetto__Protos__IPCFrame *frame;
        int err, rfd;
        ssize_t n;

        n = tb_ipc_sock_recv_frames(c->fd, c->dec, &err);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            tb_ipch_conn_close(c, n ? strerror((int)-n) : "peer closed");
            return;
        }
        count_drops(c);
        while (!c->closing && (frame = tb_ipc_frame_decoder_pop_fd(c->dec, &rfd))) {
            c->host->stats.frames_received++;
            tb_ipch_on_frame(c, frame, rfd);
            tb_ipc_frame_free(frame);
        }
        if (err == -EMSGSIZE) {
            c->host->stats.disconnects_oversize++;
            tb_warn("ipc: connection %llu (pid %d) sent an oversize frame, disconnecting",
                    (unsigned long long)c->id, (int)c->pid);
            tb_ipch_conn_close(c, "oversize frame");
        } else if (err) {
            tb_ipch_conn_close(c, strerror(-err));
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
