/*
 * ipc_host_priv.h - state shared by the three files of the IPC host:
 * ipc_host.c (host lifecycle, services, listening sockets and accept),
 * ipc_host_conn.c (one connection: IO, transmit queue, two-step close) and
 * ipc_host_dispatch.c (BindService, InvokeMethod and replies). Not
 * installed; nothing outside these files includes it.
 */
#ifndef TB_COMMON_IPC_HOST_PRIV_H
#define TB_COMMON_IPC_HOST_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc_frame.h"
#include "common/ipc_sock.h"
#include "common/ipc_host.h"

/* Bound on recv()/accept() calls per wakeup, so one peer cannot starve others. */
#define TB_IPCH_MAX_READS_PER_EVENT 16

struct tb_ipch_service {
    const char *name;
    const struct tb_ipc_method *methods;
    size_t n_methods;
    void *ctx;
};

struct tb_ipch_listener {
    struct tb_ipch_listener *next;
    struct tb_ipc_host *host;
    char *path;            /* filesystem socket we created, unlinked at free; or NULL */
    uint64_t resume_timer; /* non-zero while accepting is paused */
    dev_t dev;
    ino_t ino;
    int fd;
    bool warned; /* the fd-exhaustion warning was logged for this episode */
};

struct tb_ipc_conn {
    struct tb_ipc_conn *prev, *next;
    struct tb_ipc_host *host;
    struct tb_ipc_frame_decoder *dec;
    struct tb_ipc_txq txq;
    void *user;
    uint64_t id;
    uint64_t cur_request_id;  /* the InvokeMethod being dispatched */
    uint64_t dropped_seen;    /* decoder drops already added to host stats */
    tb_ipc_drain_fn drain_fn; /* tb_ipc_conn_notify_drained(), or NULL */
    void *drain_ctx;
    size_t drain_below;
    uint64_t drain_timer; /* the loop task that calls drain_fn, or 0 */
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
    struct tb_ipch_service *services;
    size_t n_services;
    struct tb_ipch_listener *listeners;
    struct tb_ipc_conn *live;
    struct tb_ipc_conn *dead;
    size_t n_live;
    uint64_t next_conn_id;
    uint64_t reap_timer;
    struct tb_ipc_host_stats stats;
};

/*
 * tb_ipch_conn_close() - start the two-step close of @c (ipc_host_conn.c):
 * the socket is closed now, on_disconnect runs from a zero-delay timer.
 * @why: for the debug log. Idempotent.
 */
void tb_ipch_conn_close(struct tb_ipc_conn *c, const char *why);

/*
 * tb_ipch_reap() - run on_disconnect for, and free, every closed connection
 * (ipc_host_conn.c). @ctx is the host. Context: loop task or host free.
 */
void tb_ipch_reap(void *ctx);

/*
 * tb_ipch_send_frame() - encode @frame and queue it on @c with @fd (borrowed;
 * dup()ed when queued) (ipc_host_conn.c).
 * Return: 0; -ENOTCONN if closing; the encode error; -ENOMEM (the connection
 * is then closed).
 */
int tb_ipch_send_frame(struct tb_ipc_conn *c, const Perfetto__Protos__IPCFrame *frame, int fd);

/*
 * tb_ipch_on_frame() - dispatch one decoded frame that arrived on @c
 * (ipc_host_dispatch.c). @fd (or -1) passes to the callee, which closes it.
 */
void tb_ipch_on_frame(struct tb_ipc_conn *c, Perfetto__Protos__IPCFrame *frame, int fd);

#endif /* TB_COMMON_IPC_HOST_PRIV_H */
