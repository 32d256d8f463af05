/*
 * ipc_client_priv.h - state shared by the files of the IPC client:
 * ipc_client.c (connection, sending, bind and invoke, callback nesting),
 * ipc_client_recv.c (reading frames and matching replies to calls) and
 * ipc_client_sync.c (blocking helpers for simple tools). Not installed;
 * nothing outside these files includes it.
 */
#ifndef TB_COMMON_IPC_CLIENT_PRIV_H
#define TB_COMMON_IPC_CLIENT_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ipc_client.h"
#include "common/ipc_frame.h"
#include "common/ipc_sock.h"

/* Bound on recv() calls per wakeup, so a chatty host cannot starve the loop. */
#define TB_IPCC_MAX_READS_PER_EVENT 16

/* A call waiting for its reply (or replies, when streamed). */
struct tb_ipcc_pending {
    struct tb_ipcc_pending *next;
    const ProtobufCMessageDescriptor *desc;
    tb_ipc_reply_fn fn;
    void *ctx;
    uint64_t id;
};

struct tb_ipcc_method {
    char *name;
    uint32_t id;
};

struct tb_ipc_client {
    struct tb_loop *loop;
    struct tb_ipc_client_opts opts;
    struct tb_ipc_frame_decoder *dec;
    struct tb_ipc_txq txq;
    struct tb_ipcc_pending *pending;
    struct tb_ipcc_method *methods;
    size_t n_methods;
    tb_ipc_bind_fn bind_fn;
    void *bind_ctx;
    uint64_t bind_request_id; /* 0: no BindService outstanding */
    uint64_t next_request_id;
    uint64_t dc_timer;
    uint32_t service_id;
    int depth; /* nesting of user callbacks */
    int fd;
    bool bound;
    bool want_out;
    bool dead;       /* connection lost, on_disconnect still to run */
    bool free_asked; /* tb_ipc_client_free() called from a callback */
};

/*
 * tb_ipcc_take_pending() - unlink the pending call @id from @c.
 * Return: the call, owned by the caller (free()), or NULL if unknown.
 */
struct tb_ipcc_pending *tb_ipcc_take_pending(struct tb_ipc_client *c, uint64_t id);

/*
 * tb_ipcc_read_frames() - read what the socket has and dispatch the frames
 * (ipc_client_recv.c). Runs user callbacks; the caller holds the nesting
 * count. Context: loop event.
 */
void tb_ipcc_read_frames(struct tb_ipc_client *c);

/*
 * tb_ipcc_disconnect() - drop the connection now; pending calls fail and
 * on_disconnect runs from a zero-delay timer (ipc_client.c). Idempotent.
 */
void tb_ipcc_disconnect(struct tb_ipc_client *c, const char *why);

#endif /* TB_COMMON_IPC_CLIENT_PRIV_H */
