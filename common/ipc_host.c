/*
 * ipc_host.c - the IPC host itself: creation and teardown, the service
 * registry, listening sockets and accepting connections.
 *
 * Accepting pauses when the process or the system is out of file
 * descriptors: the listening socket stays readable while the pending
 * connection cannot be taken, so the watch is removed and re-armed from a
 * timer instead of letting the loop spin. Connections are handled in
 * ipc_host_conn.c, frames in ipc_host_dispatch.c.
 */
#include "common/ipc_host.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_host_priv.h"
#include "common/ipc_sock.h"
#include "common/log.h"

#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_MAX_TX_QUEUE    (4u << 20)
/* How long accepting pauses when no file descriptor is left for a new peer. */
#define ACCEPT_PAUSE_MS 100

static void on_accept(void *ctx, int fd, uint32_t events);

static void resume_accept(void *ctx)
{
    struct tb_ipch_listener *l = ctx;
    int err;

    l->resume_timer = 0;
    err = tb_loop_add_fd(l->host->loop, l->fd, TB_LOOP_IN, on_accept, l);
    if (err && err != -EEXIST) {
        /* Try again later rather than stop accepting for good. */
        if (tb_loop_add_timer(l->host->loop, ACCEPT_PAUSE_MS, 0, resume_accept, l,
                              &l->resume_timer))
            tb_err("ipc: listening socket fd %d left unwatched: %s", l->fd, strerror(-err));
    }
}

/*
 * Out of fds: the pending connection stays queued and the listening fd stays
 * readable, so a level-triggered watch would fire again at once forever.
 */
static void pause_accept(struct tb_ipch_listener *l, int err)
{
    struct tb_ipc_host *host = l->host;

    if (!l->warned) {
        tb_warn("ipc: cannot accept on fd %d: %s; pausing accepts for %d ms at a time", l->fd,
                strerror(err), ACCEPT_PAUSE_MS);
        l->warned = true;
    }
    if (tb_loop_add_timer(host->loop, ACCEPT_PAUSE_MS, 0, resume_accept, l, &l->resume_timer)) {
        /* Without a timer to re-arm it, keep the watch: spinning beats deafness. */
        l->resume_timer = 0;
        return;
    }
    tb_loop_del_fd(host->loop, l->fd);
    host->stats.accept_pauses++;
}

static void on_accept(void *ctx, int fd, uint32_t events)
{
    struct tb_ipch_listener *l = ctx;
    int i;

    for (i = 0; i < TB_IPCH_MAX_READS_PER_EVENT; i++) {
        int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
            int err = errno;

            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                pause_accept(l, err);
            else if (err != EAGAIN && err != EINTR && err != ECONNABORTED)
                tb_warn("ipc: accept on fd %d: %s", l->fd, strerror(err));
            return;
        }
        if (l->warned) {
            tb_info("ipc: accepting on fd %d again", l->fd);
            l->warned = false;
        }
        tb_ipc_host_adopt_conn_fd(l->host, cfd, NULL);
    }
}

int tb_ipc_host_adopt_listen_fd(struct tb_ipc_host *host, int fd)
{
    struct tb_ipch_listener *l = calloc(1, sizeof(*l));
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
    struct tb_ipch_listener *l;
    struct tb_ipc_conn *c;

    if (!host)
        return;
    while ((l = host->listeners)) {
        struct stat st;

        host->listeners = l->next;
        tb_loop_cancel_timer(host->loop, l->resume_timer);
        tb_loop_del_fd(host->loop, l->fd);
        close(l->fd);
        if (l->path && stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
            unlink(l->path);
        free(l->path);
        free(l);
    }
    while ((c = host->live))
        tb_ipch_conn_close(c, "host shutting down");
    tb_loop_cancel_timer(host->loop, host->reap_timer);
    tb_ipch_reap(host);
    free(host->services);
    free(host);
}

int tb_ipc_host_add_service(struct tb_ipc_host *host, const char *name,
                            const struct tb_ipc_method *methods, size_t n_methods,
                            void *service_ctx)
{
    struct tb_ipch_service *s;
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
    s[host->n_services++] = (struct tb_ipch_service){name, methods, n_methods, service_ctx};
    return 0;
}

void tb_ipc_host_get_stats(const struct tb_ipc_host *host, struct tb_ipc_host_stats *out)
{
    *out = host->stats;
}

size_t tb_ipc_host_num_connections(const struct tb_ipc_host *host)
{
    return host->n_live;
}
