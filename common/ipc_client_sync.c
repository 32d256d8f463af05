/*
 * ipc_client_sync.c - blocking helpers over the asynchronous IPC client for
 * simple tools: connect+bind and invoke-and-wait, each pumping the client's
 * loop until the answer or a deadline. Nothing else may be running that
 * loop meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_client_priv.h"

struct sync_state {
    ProtobufCMessage *msg;
    int fd;
    bool done;
    bool success;
};

static void sync_bind_done(struct tb_ipc_client *c, bool success, void *ctx)
{
    struct sync_state *st = ctx;

    st->done = true;
    st->success = success;
}

static void sync_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct sync_state *st = ctx;

    /* Keep only the last reply of a stream, and the first fd seen. */
    if (st->msg)
        protobuf_c_message_free_unpacked(st->msg, NULL);
    st->msg = r->msg;
    r->msg = NULL;
    if (st->fd < 0) {
        st->fd = r->fd;
        r->fd = -1;
    }
    st->success = r->success;
    st->done = !r->has_more;
}

/* Pumps the loop until @st->done or the deadline. */
static int pump(struct tb_ipc_client *c, struct sync_state *st, uint64_t deadline)
{
    while (!st->done) {
        uint64_t now = tb_loop_now_ms();
        int err;

        if (now >= deadline)
            return -ETIMEDOUT;
        err = tb_loop_run_once(c->loop, (int)(deadline - now));
        if (err)
            return err;
    }
    return 0;
}

int tb_ipc_client_connect_sync(struct tb_ipc_client *client, const char *name,
                               const char *service_name, int timeout_ms)
{
    uint64_t deadline = tb_loop_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    struct sync_state st = {.fd = -1};
    int err;

    err = tb_ipc_client_connect(client, name);
    if (err)
        return err;
    err = tb_ipc_client_bind(client, service_name, sync_bind_done, &st);
    if (err)
        return err;
    err = pump(client, &st, deadline);
    if (err) {
        client->bind_fn = NULL; /* @st is going out of scope */
        return err;
    }
    return st.success ? 0 : (tb_ipc_client_connected(client) ? -EPROTONOSUPPORT : -ENOTCONN);
}

int tb_ipc_client_invoke_sync(struct tb_ipc_client *client, const char *method,
                              const ProtobufCMessage *args,
                              const ProtobufCMessageDescriptor *reply_desc, int fd_to_send,
                              int timeout_ms, ProtobufCMessage **reply_out, int *fd_out)
{
    uint64_t deadline = tb_loop_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    struct sync_state st = {.fd = -1};
    uint64_t id;
    int err;

    if (reply_out)
        *reply_out = NULL;
    if (fd_out)
        *fd_out = -1;
    err = tb_ipc_client_invoke(client, method, args, reply_desc, sync_reply, &st, fd_to_send, &id);
    if (err)
        return err;
    err = pump(client, &st, deadline);
    if (err) {
        free(tb_ipcc_take_pending(client, id)); /* @st is going out of scope */
        goto out;
    }
    if (!st.success) {
        err = tb_ipc_client_connected(client) ? -ECANCELED : -ENOTCONN;
        goto out;
    }
    if (reply_out) {
        *reply_out = st.msg;
        st.msg = NULL;
    }
    if (fd_out) {
        *fd_out = st.fd;
        st.fd = -1;
    }
out:
    if (st.msg)
        protobuf_c_message_free_unpacked(st.msg, NULL);
    if (st.fd >= 0)
        close(st.fd);
    return err;
}
