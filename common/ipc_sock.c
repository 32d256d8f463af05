/*
 * ipc_sock.c - AF_UNIX stream sockets for the IPC layer: name resolution
 * (spec §2.5), listen with stale-file recovery, connect, fd passing with
 * SCM_RIGHTS (spec §2.4), peer credentials, and the per-socket transmit
 * queue.
 */
#include "common/ipc_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ipc_frame.h"
#include "common/log.h"

/* Room for a few fds: extras are closed rather than leaked by truncation. */
#define MAX_RX_FDS 4

struct tb_ipc_txq_item {
    struct tb_ipc_txq_item *next;
    uint8_t *buf;
    size_t len;
    size_t off;
    int fd;
};

static pthread_once_t run_dir_once = PTHREAD_ONCE_INIT;
static bool run_dir_ok;

static void check_run_dir(void)
{
    run_dir_ok = access("/run/perfetto/", X_OK) == 0;
}

const char *tb_ipc_sock_default_name(enum tb_ipc_sock_kind kind)
{
    bool producer = kind == TB_IPC_SOCK_PRODUCER;
    const char *env;

    env = getenv(producer ? "PERFETTO_PRODUCER_SOCK_NAME" : "PERFETTO_CONSUMER_SOCK_NAME");
    if (env && *env)
        return env;
    pthread_once(&run_dir_once, check_run_dir);
    if (run_dir_ok)
        return producer ? "/run/perfetto/traced-producer.sock"
                        : "/run/perfetto/traced-consumer.sock";
    return producer ? "/tmp/perfetto-producer" : "/tmp/perfetto-consumer";
}

int tb_ipc_sock_addr(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
    size_t n = name ? strlen(name) : 0;

    if (!n)
        return -EINVAL;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (name[0] == '@') {
        /* Abstract: leading NUL, and no trailing NUL counted in the length. */
        if (n > sizeof(addr->sun_path))
            return -ENAMETOOLONG;
        memcpy(addr->sun_path + 1, name + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof(addr->sun_path))
        return -ENAMETOOLONG;
    memcpy(addr->sun_path, name, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int tb_ipc_sock_connect(const char *name, bool nonblock, int *fd_out)
{
    struct sockaddr_un addr;
    socklen_t alen;
    int fd, err;

    err = tb_ipc_sock_addr(name, &addr, &alen);
    if (err)
        return err;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, alen) < 0) {
        err = -errno;
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

/* Whether a listener answers on @name: only a refused connect means stale. */
static bool is_stale(const char *name)
{
    struct stat st;
    int fd, err;

    if (lstat(name, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    err = tb_ipc_sock_connect(name, true, &fd);
    if (!err) {
        close(fd);
        return false;
    }
    return err == -ECONNREFUSED;
}

int tb_ipc_sock_listen(const char *name, int *fd_out)
{
    struct sockaddr_un addr;
    socklen_t alen;
    int fd = -1, err;

    err = tb_ipc_sock_addr(name, &addr, &alen);
    if (err)
        return err;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&addr, alen) < 0) {
        err = -errno;
        if (err != -EADDRINUSE || name[0] == '@' || !is_stale(name))
            goto out;
        tb_info("ipc: removing stale socket %s (nobody listens on it)", name);
        if (unlink(name) < 0 && errno != ENOENT) {
            err = -errno;
            goto out;
        }
        if (bind(fd, (struct sockaddr *)&addr, alen) < 0) {
            err = -errno;
            goto out;
        }
    }
    if (listen(fd, SOMAXCONN) < 0) {
        err = -errno;
        goto out;
    }
    *fd_out = fd;
    return 0;
out:
    close(fd);
    return err;
}

ssize_t tb_ipc_sock_send(int fd, const void *buf, size_t len, int send_fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (send_fd >= 0) {
        struct cmsghdr *cmsg;

        memset(&ctrl, 0, sizeof(ctrl));
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = sizeof(ctrl.buf);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &send_fd, sizeof(int));
    }
    do {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t tb_ipc_sock_recv(int fd, void *buf, size_t len, int *recv_fd)
{
    union {
        char buf[CMSG_SPACE(MAX_RX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctrl.buf,
                         .msg_controllen = sizeof(ctrl.buf)};
    struct cmsghdr *cmsg;
    ssize_t n;

    *recv_fd = -1;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        size_t nfds, i;

        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < nfds; i++) {
            int rfd;

            memcpy(&rfd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (*recv_fd < 0)
                *recv_fd = rfd;
            else
                close(rfd); /* one fd a frame: extras are the peer's bug */
        }
    }
    if (msg.msg_flags & MSG_CTRUNC)
        tb_warn("ipc: peer passed more fds than a frame may carry; extras dropped");
    return n;
}

ssize_t tb_ipc_sock_recv_frames(int fd, struct tb_ipc_frame_decoder *dec, int *parse_err)
{
    size_t room;
    ssize_t n;
    void *dst;
    int err, rfd;

    *parse_err = 0;
    err = tb_ipc_frame_decoder_begin_receive(dec, &dst, &room);
    if (err)
        return err;
    n = tb_ipc_sock_recv(fd, dst, room, &rfd);
    if (n <= 0) {
        if (rfd >= 0)
            close(rfd);
        return n;
    }
    *parse_err = tb_ipc_frame_decoder_end_receive_fd(dec, (size_t)n, rfd);
    return n;
}

int tb_ipc_sock_peer_cred(int fd, uid_t *uid, pid_t *pid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    if (uid)
        *uid = cred.uid;
    if (pid)
        *pid = cred.pid;
    return 0;
}

void tb_ipc_txq_init(struct tb_ipc_txq *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static void item_free(struct tb_ipc_txq_item *it)
{
    if (it->fd >= 0)
        close(it->fd);
    free(it->buf);
    free(it);
}

void tb_ipc_txq_clear(struct tb_ipc_txq *q)
{
    struct tb_ipc_txq_item *it = q->head;

    while (it) {
        struct tb_ipc_txq_item *next = it->next;

        item_free(it);
        it = next;
    }
    tb_ipc_txq_init(q);
}

int tb_ipc_txq_push(struct tb_ipc_txq *q, uint8_t *buf, size_t len, int fd)
{
    struct tb_ipc_txq_item *it = calloc(1, sizeof(*it));
    int err;

    if (!it) {
        free(buf);
        return -ENOMEM;
    }
    it->buf = buf;
    it->len = len;
    it->fd = -1;
    if (fd >= 0) {
        it->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (it->fd < 0) {
            err = -errno;
            item_free(it);
            return err;
        }
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->bytes += len;
    return 0;
}

int tb_ipc_txq_flush(struct tb_ipc_txq *q, int sock)
{
    struct tb_ipc_txq_item *it;

    while ((it = q->head)) {
        ssize_t n = tb_ipc_sock_send(sock, it->buf + it->off, it->len - it->off, it->fd);

        if (n < 0)
            return (int)n;
        if (it->fd >= 0) {
            /* The kernel holds its own reference once the first byte went. */
            close(it->fd);
            it->fd = -1;
        }
        it->off += (size_t)n;
        q->bytes -= (size_t)n;
        if (it->off < it->len)
            return -EAGAIN;
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        item_free(it);
    }
    return 0;
}
