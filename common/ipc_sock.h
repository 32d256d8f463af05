/*
 * ipc_sock.h - AF_UNIX stream socket helpers for the producer and consumer
 * sockets (spec §2.1, §2.4, §2.5).
 *
 * Names follow Perfetto's syntax: a leading '@' is an abstract socket, any
 * other string a filesystem path. Every socket is SOCK_CLOEXEC; every send
 * uses MSG_NOSIGNAL; every receive passes a control buffer so a passed fd is
 * never lost, and received fds are marked FD_CLOEXEC.
 */
#ifndef TB_COMMON_IPC_SOCK_H
#define TB_COMMON_IPC_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <stdint.h>
#include <sys/un.h>

enum tb_ipc_sock_kind {
    TB_IPC_SOCK_PRODUCER = 0,
    TB_IPC_SOCK_CONSUMER = 1,
};

/**
 * tb_ipc_sock_default_name() - the socket name Perfetto clients would use.
 * @kind: producer or consumer socket.
 *
 * $PERFETTO_PRODUCER_SOCK_NAME / $PERFETTO_CONSUMER_SOCK_NAME if set (used
 * verbatim, not split at commas); else /run/perfetto/traced-{producer,
 * consumer}.sock when access("/run/perfetto/", X_OK) == 0; else
 * /tmp/perfetto-{producer,consumer}. The /run decision is made once per
 * process, like the SDK does; the environment is read on every call.
 * Return: a string owned by the environment or static storage; do not free;
 * valid until the environment variable changes. Context: any thread.
 */
const char *tb_ipc_sock_default_name(enum tb_ipc_sock_kind kind);

/**
 * tb_ipc_sock_addr() - fill a sockaddr_un for @name.
 * @name: '@'-prefixed abstract name or a path.
 * @addr: filled in.
 * @len: receives the address length to pass to bind()/connect().
 *
 * Return: 0, -EINVAL if @name is empty, -ENAMETOOLONG if it does not fit.
 */
int tb_ipc_sock_addr(const char *name, struct sockaddr_un *addr, socklen_t *len);

/**
 * tb_ipc_sock_listen() - bind and listen on @name (non-blocking, CLOEXEC).
 * @name: socket name.
 * @fd_out: receives the listening fd, owned by the caller (close()).
 *
 * A leftover socket file is removed only when a connect() to it is refused
 * (nobody listens); a file that is not a socket is never removed.
 * Return: 0; -EADDRINUSE when a live listener owns @name; or the socket /
 * bind / listen error.
 */
int tb_ipc_sock_listen(const char *name, int *fd_out);

/**
 * tb_ipc_sock_connect() - connect a CLOEXEC stream socket to @name.
 * @name: socket name.
 * @nonblock: leave the connected fd O_NONBLOCK (what loop users want).
 * @fd_out: receives the fd, owned by the caller (close()).
 *
 * AF_UNIX connects complete at once or fail, even when non-blocking.
 * Return: 0, or negative errno (-ENOENT, -ECONNREFUSED, -EAGAIN when the
 * listener's backlog is full, -EACCES, ...).
 */
int tb_ipc_sock_connect(const char *name, bool nonblock, int *fd_out);

/**
 * tb_ipc_sock_send() - one sendmsg() of @buf, with @send_fd attached.
 * @fd: connected socket.
 * @buf: bytes, borrowed.
 * @len: how many.
 * @send_fd: fd to pass with SCM_RIGHTS, or -1. Not closed here. Attach it
 *           only to the first send of a frame.
 *
 * MSG_NOSIGNAL | MSG_DONTWAIT: never blocks, never raises SIGPIPE.
 * Return: bytes sent (may be short), or -EAGAIN, -EPIPE, ... .
 */
ssize_t tb_ipc_sock_send(int fd, const void *buf, size_t len, int send_fd);

/**
 * tb_ipc_sock_recv() - one recvmsg() with room for one passed fd.
 * @fd: connected socket.
 * @buf: destination.
 * @len: its size.
 * @recv_fd: receives a passed fd (FD_CLOEXEC set, owned by the caller) or
 *           -1. Any further fds in the same message are closed.
 *
 * Never blocks (MSG_DONTWAIT).
 * Return: bytes received, 0 at end of stream, or negative errno (-EAGAIN).
 */
ssize_t tb_ipc_sock_recv(int fd, void *buf, size_t len, int *recv_fd);

struct tb_ipc_frame_decoder;

/**
 * tb_ipc_sock_recv_frames() - one tb_ipc_sock_recv() straight into the free
 * tail of a frame decoder (common/ipc_frame.h), which then parses every
 * frame completed by it; a passed fd goes to the decoder with the bytes.
 * @fd: connected socket.
 * @dec: the connection's decoder (borrowed).
 * @parse_err: receives the decoder's verdict on the new bytes (0, -EMSGSIZE
 *             or -ENOMEM). Pop the frames queued so far first, then close
 *             the connection if it is not 0.
 *
 * Both ends of the IPC layer read this way; what differs is what they do
 * with the frames and the errors.
 * Return: bytes received (> 0); 0 at end of stream; -EAGAIN when there is
 * nothing to read; another negative errno from recvmsg(), or the decoder's
 * sticky error from an earlier call.
 * Context: the connection's thread; never blocks.
 */
ssize_t tb_ipc_sock_recv_frames(int fd, struct tb_ipc_frame_decoder *dec, int *parse_err);

/**
 * tb_ipc_sock_peer_cred() - the peer's uid and pid from SO_PEERCRED.
 * @fd: connected AF_UNIX socket.
 * @uid: receives the uid (may be NULL).
 * @pid: receives the pid (may be NULL).
 *
 * Vouched for by the kernel at connect time; the only identity to trust.
 * Return: 0 or negative errno.
 */
int tb_ipc_sock_peer_cred(int fd, uid_t *uid, pid_t *pid);

/*
 * A transmit queue of encoded frames for one non-blocking socket, so a
 * loop never waits on a slow peer. Owned by whoever embeds it; not
 * thread-safe. Initialise with tb_ipc_txq_init(), release with
 * tb_ipc_txq_clear().
 */
struct tb_ipc_txq_item;
struct tb_ipc_txq {
    struct tb_ipc_txq_item *head;
    struct tb_ipc_txq_item *tail;
    size_t bytes; /* not yet sent */
};

/* tb_ipc_txq_init() - make @q empty. */
void tb_ipc_txq_init(struct tb_ipc_txq *q);

/* tb_ipc_txq_clear() - drop everything queued (closing queued fds). */
void tb_ipc_txq_clear(struct tb_ipc_txq *q);

/**
 * tb_ipc_txq_push() - append one encoded frame.
 * @q: the queue.
 * @buf: malloc()ed frame bytes; ownership passes to @q (freed on error too).
 * @len: their number.
 * @fd: fd to pass with the frame's first sendmsg(), or -1. Borrowed: @q
 *      keeps a dup().
 *
 * Return: 0, -ENOMEM, or the dup() error.
 */
int tb_ipc_txq_push(struct tb_ipc_txq *q, uint8_t *buf, size_t len, int fd);

/**
 * tb_ipc_txq_flush() - send as much as the socket takes.
 * @q: the queue.
 * @sock: connected non-blocking socket.
 *
 * Return: 0 when the queue is empty, -EAGAIN when data remains (wait for
 * the socket to become writable), or the send error (-EPIPE, ...): the
 * connection is then broken.
 */
int tb_ipc_txq_flush(struct tb_ipc_txq *q, int sock);

#endif /* TB_COMMON_IPC_SOCK_H */
