/*
 * consumer_client.c - the blocking-friendly ConsumerPort client
 * (consumer_client.h) over ipc_client and a private event loop.
 */
#include "common/consumer_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_sock.h"
#include "common/log.h"
#include "common/trace_frame.h"
#include "perfetto/ipc/consumer_port.pb-c.h"

struct tb_cc {
    struct tb_loop *loop;
    struct tb_ipc_client *client;
    bool session;      /* an EnableTracing is outstanding */
    bool session_done; /* ...and it has been answered */
    int session_err;
    char *error;
    bool disconnected;
    /* ReadBuffers in progress */
    bool read_done;
    int read_err;
    uint8_t *pkt;
    size_t pkt_len, pkt_cap;
    tb_cc_packet_fn fn;
    void *fn_ctx;
    uint64_t packets;
    uint64_t last_reply_ms; /* a reply of the read in progress came then */
};

static void on_disconnect(struct tb_ipc_client *client, void *ctx)
{
    struct tb_cc *cc = ctx;

    cc->disconnected = true;
}

int tb_cc_connect(const char *name, int timeout_ms, struct tb_cc **out)
{
    struct tb_ipc_client_opts opts = {0};
    struct tb_cc *cc = calloc(1, sizeof(*cc));
    int err;

    if (!cc)
        return -ENOMEM;
    if (!name)
        name = tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER);
    err = tb_loop_new(&cc->loop);
    if (err)
        goto fail;
    opts.on_disconnect = on_disconnect;
    opts.ctx = cc;
    err = tb_ipc_client_new(cc->loop, &opts, &cc->client);
    if (err)
        goto fail;
    err = tb_ipc_client_connect_sync(cc->client, name, "ConsumerPort", timeout_ms);
    if (err)
        goto fail;
    *out = cc;
    return 0;
fail:
    tb_cc_free(cc);
    return err;
}

void tb_cc_free(struct tb_cc *cc)
{
    if (!cc)
        return;
    tb_ipc_client_free(cc->client);
    tb_loop_free(cc->loop);
    free(cc->error);
    free(cc->pkt);
    free(cc);
}

static void on_enable_reply(struct tb_ipc_client *client, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__EnableTracingResponse *resp = (void *)r->msg;
    struct tb_cc *cc = ctx;

    if (r->has_more && r->success)
        return;
    cc->session_done = true;
    if (!r->success) {
        cc->session_err = cc->disconnected ? -ECONNRESET : -EIO;
        return;
    }
    if (resp && resp->error && resp->error[0]) {
        free(cc->error);
        cc->error = strdup(resp->error);
        cc->session_err = -EIO;
    }
}

int tb_cc_enable(struct tb_cc *cc, const Perfetto__Protos__TraceConfig *cfg, int out_fd)
{
    Perfetto__Protos__EnableTracingRequest req = PERFETTO__PROTOS__ENABLE_TRACING_REQUEST__INIT;
    int err;

    if (cc->session && !cc->session_done)
        return -EBUSY;
    free(cc->error);
    cc->error = NULL;
    req.trace_config = (Perfetto__Protos__TraceConfig *)cfg;
    err = tb_ipc_client_invoke(cc->client, "EnableTracing", &req.base,
                               &perfetto__protos__enable_tracing_response__descriptor,
                               on_enable_reply, cc, out_fd, NULL);
    if (err)
        return err;
    cc->session = true;
    cc->session_done = false;
    cc->session_err = 0;
    return 0;
}

int tb_cc_wait(struct tb_cc *cc, int timeout_ms, bool *done)
{
    uint64_t deadline = tb_loop_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

    *done = false;
    for (;;) {
        int64_t left = (int64_t)(deadline - tb_loop_now_ms());
        int err;

        if (cc->session_done || (cc->disconnected && !cc->session)) {
            *done = true;
            return cc->session_done ? cc->session_err : -ECONNRESET;
        }
        if (left < 0)
            left = 0;
        err = tb_loop_run_once(cc->loop, (int)left);
        if (err)
            return err;
        if (left == 0 && !cc->session_done)
            return 0;
    }
}

const char *tb_cc_error(const struct tb_cc *cc)
{
    return cc->error;
}

static int simple_call(struct tb_cc *cc, const char *method, const ProtobufCMessage *args,
                       const ProtobufCMessageDescriptor *desc, int timeout_ms,
                       ProtobufCMessage **out)
{
    return tb_ipc_client_invoke_sync(cc->client, method, args, desc, -1, timeout_ms, out, NULL);
}

int tb_cc_start(struct tb_cc *cc, int timeout_ms)
{
    return simple_call(cc, "StartTracing", NULL, NULL, timeout_ms, NULL);
}

int tb_cc_disable(struct tb_cc *cc, int timeout_ms)
{
    return simple_call(cc, "DisableTracing", NULL, NULL, timeout_ms, NULL);
}

int tb_cc_free_buffers(struct tb_cc *cc, int timeout_ms)
{
    return simple_call(cc, "FreeBuffers", NULL, NULL, timeout_ms, NULL);
}

int tb_cc_flush(struct tb_cc *cc, uint32_t timeout_ms)
{
    Perfetto__Protos__FlushRequest req = PERFETTO__PROTOS__FLUSH_REQUEST__INIT;
    uint32_t t = timeout_ms ? timeout_ms : 5000;

    req.has_timeout_ms = true;
    req.timeout_ms = t;
    return simple_call(cc, "Flush", &req.base, NULL, (int)t + 2000, NULL);
}

static int add_slice(struct tb_cc *cc, const Perfetto__Protos__ReadBuffersResponse__Slice *s)
{
    size_t n = s->has_data ? s->data.len : 0;
    int err;

    if (cc->pkt_len + n > cc->pkt_cap) {
        size_t ncap = cc->pkt_cap ? cc->pkt_cap : 4096;
        uint8_t *p;

        while (ncap < cc->pkt_len + n)
            ncap *= 2;
        p = realloc(cc->pkt, ncap);
        if (!p)
            return -ENOMEM;
        cc->pkt = p;
        cc->pkt_cap = ncap;
    }
    if (n)
        memcpy(cc->pkt + cc->pkt_len, s->data.data, n);
    cc->pkt_len += n;
    if (!(s->has_last_slice_for_packet && s->last_slice_for_packet))
        return 0;
    n = cc->pkt_len;
    cc->pkt_len = 0;
    err = cc->fn ? cc->fn(cc->fn_ctx, cc->pkt, n) : 0;
    if (!err)
        cc->packets++; /* only what the sink took */
    return err;
}

static void on_read_reply(struct tb_ipc_client *client, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__ReadBuffersResponse *resp = (void *)r->msg;
    struct tb_cc *cc = ctx;

    cc->last_reply_ms = tb_loop_now_ms();
    if (!r->success) {
        cc->read_done = true;
        if (!cc->read_err)
            cc->read_err =
                cc->disconnected || !tb_ipc_client_connected(client) ? -ENOTCONN : -ECANCELED;
        return;
    }
    for (size_t i = 0; resp && !cc->read_err && i < resp->n_slices; i++)
        cc->read_err = add_slice(cc, resp->slices[i]);
    if (!r->has_more)
        cc->read_done = true;
}

int tb_cc_read_buffers_cb(struct tb_cc *cc, tb_cc_packet_fn fn, void *ctx, int timeout_ms,
                          uint64_t *packets)
{
    uint64_t idle = (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int err;

    cc->fn = fn;
    cc->fn_ctx = ctx;
    cc->read_done = false;
    cc->read_err = 0;
    cc->pkt_len = 0;
    cc->packets = 0;
    cc->last_reply_ms = tb_loop_now_ms();
    err = tb_ipc_client_invoke(cc->client, "ReadBuffers", NULL,
                               &perfetto__protos__read_buffers_response__descriptor, on_read_reply,
                               cc, -1, NULL);
    if (err)
        goto out;
    /*
     * The limit is on silence, not on the whole read: a big buffer on a
     * loaded host may take minutes, and every reply shows the service is
     * still sending.
     */
    while (!cc->read_done) {
        int64_t left = (int64_t)(cc->last_reply_ms + idle - tb_loop_now_ms());

        if (left <= 0) {
            /* Late replies must not reach the caller's (gone) sink. */
            cc->fn = NULL;
            cc->read_done = true;
            err = -ETIMEDOUT;
            goto out;
        }
        err = tb_loop_run_once(cc->loop, (int)left);
        if (err)
            goto out;
    }
    err = cc->read_err;
out:
    if (packets)
        *packets = cc->packets;
    return err;
}

struct fd_sink {
    int fd;
    uint64_t bytes;
};

static int to_fd(void *ctx, const uint8_t *packet, size_t len)
{
    struct fd_sink *s = ctx;

    return tb_tframe_write(s->fd, packet, len, &s->bytes);
}

int tb_cc_read_buffers(struct tb_cc *cc, int fd, int timeout_ms, uint64_t *packets, uint64_t *bytes)
{
    struct fd_sink s = {.fd = fd};
    int err = tb_cc_read_buffers_cb(cc, to_fd, &s, timeout_ms, packets);

    if (bytes)
        *bytes = s.bytes;
    return err;
}

int tb_cc_get_stats(struct tb_cc *cc, int timeout_ms, Perfetto__Protos__TraceStats **out)
{
    Perfetto__Protos__GetTraceStatsResponse *resp = NULL;
    int err;

    *out = NULL;
    err = simple_call(cc, "GetTraceStats", NULL,
                      &perfetto__protos__get_trace_stats_response__descriptor, timeout_ms,
                      (ProtobufCMessage **)&resp);
    if (err)
        return err;
    if (!resp || !resp->trace_stats) {
        if (resp)
            perfetto__protos__get_trace_stats_response__free_unpacked(resp, NULL);
        return -EBADMSG;
    }
    *out = resp->trace_stats;
    resp->trace_stats = NULL;
    perfetto__protos__get_trace_stats_response__free_unpacked(resp, NULL);
    return 0;
}

int tb_cc_query_state(struct tb_cc *cc, int timeout_ms, Perfetto__Protos__TracingServiceState **out)
{
    Perfetto__Protos__QueryServiceStateResponse *resp = NULL;
    int err;

    *out = NULL;
    err = simple_call(cc, "QueryServiceState", NULL,
                      &perfetto__protos__query_service_state_response__descriptor, timeout_ms,
                      (ProtobufCMessage **)&resp);
    if (err)
        return err;
    if (!resp || !resp->service_state) {
        if (resp)
            perfetto__protos__query_service_state_response__free_unpacked(resp, NULL);
        return -EBADMSG;
    }
    *out = resp->service_state;
    resp->service_state = NULL;
    perfetto__protos__query_service_state_response__free_unpacked(resp, NULL);
    return 0;
}
