/*
 * consumer_port.c - the ConsumerPort endpoint: admits only privileged
 * consumers, decodes their calls into core.h, holds the EnableTracing reply
 * until the session ends, and streams ReadBuffers as slices of at most
 * ~120 KiB per reply so every frame stays under the 128 KiB IPC limit.
 *
 * ReadBuffers runs with bounded memory: once the connection's transmit
 * queue passes TXQ_HIGH after a whole packet, the read pauses (the rest stays
 * in the trace buffers) and resumes when the queue is back under TXQ_LOW.
 */
#include "service/ports.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc_host.h"
#include "common/log.h"
#include "perfetto/ipc/consumer_port.pb-c.h"
#include "service/core.h"

#define CONSUMER_GROUP   "tracebpf"
#define REPLY_BUDGET     (120u * 1024u)
#define SLICE_OVERHEAD   12u
#define MAX_SLICES       4096u
#define TOKEN_DROP_REPLY (1ull << 63)
#define TXQ_HIGH         (1u << 20)
#define TXQ_LOW          (256u * 1024u)
/* Default send-queue limit: TXQ_HIGH plus room for the packet being read. */
#define TXQ_LIMIT (8u << 20)

struct rb_pass;

struct cconn {
    struct tb_ipc_conn *conn;
    struct tb_svc_consumer *c;
    struct rb_pass *rb; /* the ReadBuffers in progress, or NULL; owned */
    uint64_t enable_id;
    bool enable_pending;
};

bool tb_svc_consumer_allowed(uid_t uid)
{
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    gid_t groups[256];
    int ngroups = 256;
    char buf[4096];

    if (uid == 0 || uid == geteuid())
        return true;
    if (getgrnam_r(CONSUMER_GROUP, &gr, buf, sizeof(buf), &grp) || !grp)
        return false;
    {
        gid_t want = grp->gr_gid;
        char pbuf[4096];

        if (getpwuid_r(uid, &pw, pbuf, sizeof(pbuf), &pwp) || !pwp)
            return false;
        if (getgrouplist(pwp->pw_name, pwp->pw_gid, groups, &ngroups) < 0)
            return false;
        for (int i = 0; i < ngroups; i++)
            if (groups[i] == want)
                return true;
    }
    return false;
}

static void tracing_disabled(void *ctx, const char *error)
{
    Perfetto__Protos__EnableTracingResponse resp = PERFETTO__PROTOS__ENABLE_TRACING_RESPONSE__INIT;
    struct cconn *cc = ctx;

    if (!cc->enable_pending)
        return;
    cc->enable_pending = false;
    resp.state_case = PERFETTO__PROTOS__ENABLE_TRACING_RESPONSE__STATE_DISABLED;
    resp.disabled = true;
    resp.error = (char *)error;
    tb_ipc_host_reply(cc->conn, cc->enable_id, &resp.base, true, false, -1);
}

static void flush_done(void *ctx, uint64_t token, bool ok)
{
    struct cconn *cc = ctx;

    if (!(token & TOKEN_DROP_REPLY))
        tb_ipc_host_reply(cc->conn, token, NULL, ok, false, -1);
}

static const struct tb_svc_consumer_ops consumer_ops = {
    .tracing_disabled = tracing_disabled,
    .flush_done = flush_done,
};

static int attach(struct tb_svc_port *port, struct tb_ipc_conn *conn, void *state)
{
    struct cconn *cc = state;
    uid_t uid = tb_ipc_conn_uid(conn);

    if (!tb_svc_consumer_allowed(uid)) {
        tb_warn("svc: consumer uid %u refused: not root and not in group " CONSUMER_GROUP,
                (unsigned)uid);
        return -EACCES;
    }
    cc->conn = conn;
    return tb_svc_consumer_connect(port->core, uid, &consumer_ops, cc, &cc->c);
}

static void detach(void *state)
{
    struct cconn *cc = state;

    cc->enable_pending = false;
    tb_svc_consumer_disconnect(cc->c);
    free(cc->rb);
}

static void reply(struct tb_ipc_call *call, const ProtobufCMessage *msg, bool ok)
{
    tb_svc_port_reply(call, msg, ok);
}

static void m_enable(struct tb_ipc_call *call)
{
    Perfetto__Protos__EnableTracingRequest *req = (void *)call->request;
    Perfetto__Protos__EnableTracingResponse resp = PERFETTO__PROTOS__ENABLE_TRACING_RESPONSE__INIT;
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);
    char err[256] = "";
    int fd = call->fd;

    call->fd = -1; /* the core takes it */
    if (!req->trace_config ||
        (req->has_attach_notification_only && req->attach_notification_only)) {
        if (fd >= 0)
            close(fd);
        resp.error = (char *)(req->trace_config ? "attach_notification_only is not supported"
                                                : "EnableTracing without a trace_config");
        reply(call, &resp.base, true);
        return;
    }
    if (tb_svc_consumer_enable(cc->c, req->trace_config, fd, err, sizeof(err))) {
        tb_warn("svc: EnableTracing refused: %s", err);
        resp.error = err;
        reply(call, &resp.base, true);
        return;
    }
    if (call->drop_reply)
        return;
    cc->enable_id = call->request_id;
    cc->enable_pending = true;
}

static void m_disable(struct tb_ipc_call *call)
{
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);

    reply(call, NULL, tb_svc_consumer_disable(cc->c) == 0);
}

static void m_start(struct tb_ipc_call *call)
{
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);

    reply(call, NULL, tb_svc_consumer_start(cc->c) == 0);
}

static void m_flush(struct tb_ipc_call *call)
{
    Perfetto__Protos__FlushRequest *req = (void *)call->request;
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);
    uint64_t token = call->request_id | (call->drop_reply ? TOKEN_DROP_REPLY : 0);

    if (tb_svc_consumer_flush(cc->c, req->has_timeout_ms ? req->timeout_ms : 0, token))
        reply(call, NULL, false);
}

/* ReadBuffers: packets are packed into replies of at most REPLY_BUDGET bytes. */
struct rb_pass {
    struct tb_ipc_conn *conn;
    uint64_t request_id;
    Perfetto__Protos__ReadBuffersResponse__Slice slices[MAX_SLICES];
    Perfetto__Protos__ReadBuffersResponse__Slice *ptrs[MAX_SLICES];
    uint8_t data[REPLY_BUDGET];
    size_t nslices, used, budget;
    bool sent_any;
};

static int rb_send(struct rb_pass *rb, bool has_more)
{
    Perfetto__Protos__ReadBuffersResponse resp = PERFETTO__PROTOS__READ_BUFFERS_RESPONSE__INIT;
    int err;

    resp.slices = rb->ptrs;
    resp.n_slices = rb->nslices;
    err = tb_ipc_host_reply(rb->conn, rb->request_id, &resp.base, true, has_more, -1);
    rb->nslices = 0;
    rb->used = 0;
    rb->budget = 0;
    rb->sent_any = true;
    return err;
}

static int rb_packet(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    struct rb_pass *rb = ctx;
    size_t left = 0;

    for (size_t i = 0; i < n; i++)
        left += sl[i].len;
    /* Copy the packet, cutting it wherever the reply budget runs out. */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = sl[i].data;
        size_t len = sl[i].len;

        while (len) {
            Perfetto__Protos__ReadBuffersResponse__Slice *s;
            size_t room, take;
            int err;

            if (rb->nslices == MAX_SLICES || rb->budget + SLICE_OVERHEAD + 1 > REPLY_BUDGET) {
                err = rb_send(rb, true);
                if (err)
                    return err;
            }
            room = REPLY_BUDGET - rb->budget - SLICE_OVERHEAD;
            take = len < room ? len : room;
            memcpy(rb->data + rb->used, p, take);
            s = &rb->slices[rb->nslices];
            perfetto__protos__read_buffers_response__slice__init(s);
            s->has_data = true;
            s->data.data = rb->data + rb->used;
            s->data.len = take;
            left -= take;
            s->has_last_slice_for_packet = true;
            s->last_slice_for_packet = left == 0;
            rb->ptrs[rb->nslices++] = s;
            rb->used += take;
            rb->budget += take + SLICE_OVERHEAD;
            p += take;
            len -= take;
        }
    }
    /* Only between packets: the buffer's slices are not ours past this call. */
    if (tb_ipc_conn_tx_queued(rb->conn) > TXQ_HIGH)
        return -EAGAIN;
    return 0;
}

static void rb_continue(struct tb_ipc_conn *conn, void *ctx);

/* Read on from where the last pass stopped; finish or pause until drained. */
static void rb_run(struct cconn *cc)
{
    struct rb_pass *rb = cc->rb;
    int err;

    err = tb_svc_consumer_read(cc->c, rb_packet, rb);
    if (err == -EAGAIN) {
        if (!tb_ipc_conn_notify_drained(cc->conn, TXQ_LOW, rb_continue, cc))
            return;
        err = -ENOMEM;
    }
    if (err == -ENOENT && !rb->sent_any)
        tb_ipc_host_reply(cc->conn, rb->request_id, NULL, false, false, -1);
    else
        rb_send(rb, false);
    if (err && err != -ENOENT)
        tb_warn("svc: ReadBuffers for consumer uid %u ended early: %s",
                (unsigned)tb_ipc_conn_uid(cc->conn), strerror(-err));
    free(rb);
    cc->rb = NULL;
}

static void rb_continue(struct tb_ipc_conn *conn, void *ctx)
{
    struct cconn *cc = ctx;

    (void)conn;
    if (cc->rb)
        rb_run(cc);
}

static void m_read(struct tb_ipc_call *call)
{
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);
    struct rb_pass *rb;

    if (call->drop_reply)
        return;
    if (cc->rb) {
        /* One read at a time: the first one owns the buffers' read cursor. */
        reply(call, NULL, false);
        return;
    }
    rb = calloc(1, sizeof(*rb));
    if (!rb) {
        reply(call, NULL, false);
        return;
    }
    rb->conn = call->conn;
    rb->request_id = call->request_id;
    cc->rb = rb;
    rb_run(cc);
}

static void m_free_buffers(struct tb_ipc_call *call)
{
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);

    tb_svc_consumer_free_buffers(cc->c);
    reply(call, NULL, true);
}

static void m_stats(struct tb_ipc_call *call)
{
    Perfetto__Protos__GetTraceStatsResponse resp = PERFETTO__PROTOS__GET_TRACE_STATS_RESPONSE__INIT;
    struct cconn *cc = tb_ipc_conn_user_data(call->conn);
    Perfetto__Protos__TraceStats st;

    if (tb_svc_consumer_stats(cc->c, &st)) {
        reply(call, NULL, false);
        return;
    }
    resp.trace_stats = &st;
    reply(call, &resp.base, true);
    tb_svc_stats_clear(&st);
}

static void m_query_state(struct tb_ipc_call *call)
{
    Perfetto__Protos__QueryServiceStateResponse resp =
        PERFETTO__PROTOS__QUERY_SERVICE_STATE_RESPONSE__INIT;
    struct tb_svc_port *port = call->service_ctx;
    Perfetto__Protos__TracingServiceState st;

    if (tb_svc_core_query_state(port->core, &st)) {
        reply(call, NULL, false);
        return;
    }
    resp.service_state = &st;
    reply(call, &resp.base, true);
    tb_svc_state_clear(&st);
}

static void m_capabilities(struct tb_ipc_call *call)
{
    Perfetto__Protos__QueryCapabilitiesResponse resp =
        PERFETTO__PROTOS__QUERY_CAPABILITIES_RESPONSE__INIT;

    reply(call, &resp.base, true);
}

static void m_observe(struct tb_ipc_call *call)
{
    /* Accepted; no events are produced, the stream simply stays open. */
}

static void m_unsupported(struct tb_ipc_call *call)
{
    reply(call, NULL, false);
}

static const struct tb_ipc_method consumer_methods[] = {
    {"EnableTracing", &perfetto__protos__enable_tracing_request__descriptor, m_enable},
    {"DisableTracing", &perfetto__protos__disable_tracing_request__descriptor, m_disable},
    {"ReadBuffers", &perfetto__protos__read_buffers_request__descriptor, m_read},
    {"FreeBuffers", &perfetto__protos__free_buffers_request__descriptor, m_free_buffers},
    {"Flush", &perfetto__protos__flush_request__descriptor, m_flush},
    {"StartTracing", &perfetto__protos__start_tracing_request__descriptor, m_start},
    {"ChangeTraceConfig", &perfetto__protos__change_trace_config_request__descriptor,
     m_unsupported},
    {"Detach", &perfetto__protos__detach_request__descriptor, m_unsupported},
    {"Attach", &perfetto__protos__attach_request__descriptor, m_unsupported},
    {"GetTraceStats", &perfetto__protos__get_trace_stats_request__descriptor, m_stats},
    {"ObserveEvents", &perfetto__protos__observe_events_request__descriptor, m_observe},
    {"QueryServiceState", &perfetto__protos__query_service_state_request__descriptor,
     m_query_state},
    {"QueryCapabilities", &perfetto__protos__query_capabilities_request__descriptor,
     m_capabilities},
};

static const struct tb_svc_port_kind consumer_kind = {
    .service = "ConsumerPort",
    .methods = consumer_methods,
    .n_methods = sizeof(consumer_methods) / sizeof(consumer_methods[0]),
    .conn_size = sizeof(struct cconn),
    .max_tx_queue = TXQ_LIMIT,
    .attach = attach,
    .detach = detach,
};

int tb_svc_consumer_port_new(struct tb_loop *loop, struct tb_svc_core *core,
                             const struct tb_svc_port_opts *opts, struct tb_svc_port **out)
{
    return tb_svc_port_create(loop, core, opts, &consumer_kind, out);
}
