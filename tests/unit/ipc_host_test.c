/*
 * ipc_host_test.c - host and client end to end on real UNIX sockets in a
 * temporary directory, all on one event loop: bind, invoke, streamed and
 * deferred replies, drop_reply, bad requests, fd passing both ways, slow
 * and misbehaving peers, connection limits, socket file handling.
 *
 * The test service reuses small IPCFrame sub-messages as its request
 * (BindService: one string) and reply (RequestError: one string) types.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_frame.h"
#include "common/ipc_host.h"
#include "common/ipc_sock.h"

typedef Perfetto__Protos__IPCFrame__BindService Req;
typedef Perfetto__Protos__IPCFrame__RequestError Rep;
#define REQ_DESC (&perfetto__protos__ipcframe__bind_service__descriptor)
#define REP_DESC (&perfetto__protos__ipcframe__request_error__descriptor)

struct fx {
    char dir[64];
    char path[128];
    struct tb_loop *loop;
    struct tb_ipc_host *host;
    int connects;
    int disconnects;
    int silent_calls;
    int last_uid, last_pid;
    int host_pipe_r; /* read end of the pipe whose write end the host sent */
    struct tb_ipc_conn *deferred_conn;
    uint64_t deferred_id;
};

static struct fx *g_fx;

/* --- the test service ------------------------------------------------- */

static void reply_text(struct tb_ipc_call *call, const char *text, bool has_more)
{
    Rep r = PERFETTO__PROTOS__IPCFRAME__REQUEST_ERROR__INIT;

    r.error = (char *)text;
    tb_ipc_host_reply(call->conn, call->request_id, &r.base, true, has_more, -1);
}

static void m_echo(struct tb_ipc_call *call)
{
    struct fx *f = call->service_ctx;

    f->last_uid = (int)call->uid;
    f->last_pid = (int)call->pid;
    reply_text(call, ((Req *)call->request)->service_name, false);
}

static void m_stream(struct tb_ipc_call *call)
{
    int i, n = atoi(((Req *)call->request)->service_name);
    char num[16];

    for (i = 0; i < n; i++) {
        snprintf(num, sizeof(num), "%d", i);
        reply_text(call, num, i < n - 1);
    }
}

static void m_fd(struct tb_ipc_call *call)
{
    struct fx *f = call->service_ctx;
    Rep r = PERFETTO__PROTOS__IPCFRAME__REQUEST_ERROR__INIT;
    int p[2];

    assert_true(call->fd >= 0);
    assert_int_equal(write(call->fd, "to-client-pipe", 14), 14);
    assert_int_equal(pipe(p), 0);
    f->host_pipe_r = p[0];
    r.error = "fd attached";
    assert_int_equal(tb_ipc_host_reply(call->conn, call->request_id, &r.base, true, false, p[1]),
                     0);
    /* The host keeps its own copy until sent: ours can go now. */
    close(p[1]);
}

static void m_silent(struct tb_ipc_call *call)
{
    struct fx *f = call->service_ctx;

    f->silent_calls++;
    /* A no-op for drop_reply requests. */
    reply_text(call, "should not be sent", false);
}

static void deferred_reply(void *ctx)
{
    struct fx *f = ctx;
    Rep r = PERFETTO__PROTOS__IPCFRAME__REQUEST_ERROR__INIT;

    r.error = "late";
    if (f->deferred_conn)
        tb_ipc_host_reply(f->deferred_conn, f->deferred_id, &r.base, true, false, -1);
    f->deferred_conn = NULL;
}

static void m_defer(struct tb_ipc_call *call)
{
    struct fx *f = call->service_ctx;

    f->deferred_conn = call->conn;
    f->deferred_id = call->request_id;
    if (strcmp(((Req *)call->request)->service_name, "never"))
        assert_int_equal(tb_loop_add_timer(f->loop, 10, 0, deferred_reply, f, NULL), 0);
}

static void m_big(struct tb_ipc_call *call)
{
    Rep r = PERFETTO__PROTOS__IPCFRAME__REQUEST_ERROR__INIT;
    char *text = malloc(60000);
    int i;

    memset(text, 'b', 59999);
    text[59999] = '\0';
    r.error = text;
    for (i = 0; i < 40; i++) {
        if (tb_ipc_host_reply(call->conn, call->request_id, &r.base, true, i < 39, -1))
            break; /* disconnected as a slow reader */
    }
    free(text);
}

static const struct tb_ipc_method test_methods[] = {
    {"Echo", REQ_DESC, m_echo},     {"Stream", REQ_DESC, m_stream}, {"Fd", REQ_DESC, m_fd},
    {"Silent", REQ_DESC, m_silent}, {"Defer", REQ_DESC, m_defer},   {"Big", REQ_DESC, m_big},
};
enum { M_ECHO = 1, M_STREAM, M_FD, M_SILENT, M_DEFER, M_BIG };

static int on_connect(struct tb_ipc_conn *conn, void *ctx)
{
    struct fx *f = ctx;

    f->connects++;
    tb_ipc_conn_set_user_data(conn, f);
    assert_int_equal(tb_ipc_conn_uid(conn), getuid());
    assert_int_equal(tb_ipc_conn_pid(conn), getpid());
    assert_true(tb_ipc_conn_id(conn) > 0);
    return 0;
}

static void on_disconnect(struct tb_ipc_conn *conn, void *ctx)
{
    struct fx *f = ctx;

    assert_ptr_equal(tb_ipc_conn_user_data(conn), f);
    if (conn == f->deferred_conn)
        f->deferred_conn = NULL;
    f->disconnects++;
}

static struct tb_ipc_host *make_host(struct fx *f, size_t max_conns, size_t max_txq)
{
    struct tb_ipc_host_opts o = {.max_connections = max_conns,
                                 .max_tx_queue_bytes = max_txq,
                                 .on_connect = on_connect,
                                 .on_disconnect = on_disconnect,
                                 .ctx = f};
    struct tb_ipc_host *h;

    assert_int_equal(tb_ipc_host_new(f->loop, &o, &h), 0);
    assert_int_equal(tb_ipc_host_add_service(h, "TestPort", test_methods, 6, f), 0);
    assert_int_equal(tb_ipc_host_add_service(h, "TestPort", test_methods, 6, f), -EEXIST);
    return h;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/tb_ipc_host_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/test.sock", f->dir);
    f->host_pipe_r = -1;
    if (tb_loop_new(&f->loop))
        return -1;
    f->host = make_host(f, 0, 0);
    if (tb_ipc_host_listen(f->host, f->path))
        return -1;
    g_fx = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tb_ipc_host_free(f->host);
    tb_loop_free(f->loop);
    if (f->host_pipe_r >= 0)
        close(f->host_pipe_r);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Pumps the loop until *flag becomes true (or fails after 5 s). */
static void pump_until(struct fx *f, bool (*cond)(struct fx *, void *), void *arg)
{
    uint64_t deadline = tb_loop_now_ms() + 5000;

    while (!cond(f, arg)) {
        assert_true(tb_loop_now_ms() < deadline);
        assert_int_equal(tb_loop_run_once(f->loop, 10), 0);
    }
}

static void pump_ms(struct fx *f, int ms)
{
    uint64_t end = tb_loop_now_ms() + (uint64_t)ms;

    while (tb_loop_now_ms() < end)
        assert_int_equal(tb_loop_run_once(f->loop, 5), 0);
}

static struct tb_ipc_client *connect_client(struct fx *f)
{
    struct tb_ipc_client *c;

    assert_int_equal(tb_ipc_client_new(f->loop, NULL, &c), 0);
    assert_int_equal(tb_ipc_client_connect_sync(c, f->path, "TestPort", 2000), 0);
    return c;
}

static Rep *call_text(struct tb_ipc_client *c, const char *method, const char *arg)
{
    Req q = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    ProtobufCMessage *out = NULL;

    q.service_name = (char *)arg;
    assert_int_equal(tb_ipc_client_invoke_sync(c, method, &q.base, REP_DESC, -1, 2000, &out, NULL),
                     0);
    assert_non_null(out);
    return (Rep *)out;
}

/* --- raw peers, to check exactly what goes on the wire ---------------- */

struct raw {
    int fd;
    struct tb_ipc_frame_decoder *dec;
};

static void raw_open(struct fx *f, struct raw *r)
{
    assert_int_equal(tb_ipc_sock_connect(f->path, true, &r->fd), 0);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &r->dec), 0);
}

static void raw_close(struct raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    tb_ipc_frame_decoder_free(r->dec);
}

static void raw_send(struct raw *r, Perfetto__Protos__IPCFrame *frame)
{
    uint8_t *buf;
    size_t len;

    assert_int_equal(tb_ipc_frame_encode(frame, 0, &buf, &len), 0);
    assert_int_equal(write(r->fd, buf, len), (ssize_t)len);
    free(buf);
}

static void raw_invoke(struct raw *r, uint64_t id, uint32_t svc, uint32_t method, const char *arg,
                       bool drop)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__InvokeMethod im = PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD__INIT;
    Req q = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    uint8_t args[256];

    q.service_name = (char *)arg;
    im.has_args_proto = im.has_service_id = im.has_method_id = true;
    im.service_id = svc;
    im.method_id = method;
    im.args_proto.len = protobuf_c_message_pack(&q.base, args);
    im.args_proto.data = args;
    im.has_drop_reply = drop;
    im.drop_reply = drop;
    frame.has_request_id = true;
    frame.request_id = id;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD;
    frame.msg_invoke_method = &im;
    raw_send(r, &frame);
}

static void raw_bind(struct raw *r, uint64_t id)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindService b = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;

    b.service_name = "TestPort";
    frame.has_request_id = true;
    frame.request_id = id;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE;
    frame.msg_bind_service = &b;
    raw_send(r, &frame);
}

/* Next frame from the host, pumping the loop meanwhile; NULL at EOF. */
static Perfetto__Protos__IPCFrame *raw_next(struct fx *f, struct raw *r)
{
    uint64_t deadline = tb_loop_now_ms() + 5000;
    Perfetto__Protos__IPCFrame *frame;

    while (!(frame = tb_ipc_frame_decoder_pop(r->dec))) {
        size_t room;
        ssize_t n;
        void *dst;
        int fd;

        assert_true(tb_loop_now_ms() < deadline);
        assert_int_equal(tb_ipc_frame_decoder_begin_receive(r->dec, &dst, &room), 0);
        n = tb_ipc_sock_recv(r->fd, dst, room, &fd);
        if (n == 0)
            return NULL;
        if (n > 0) {
            assert_int_equal(tb_ipc_frame_decoder_end_receive_fd(r->dec, (size_t)n, fd), 0);
            continue;
        }
        assert_int_equal(n, -EAGAIN);
        assert_int_equal(tb_loop_run_once(f->loop, 5), 0);
    }
    return frame;
}

/* --- tests ------------------------------------------------------------- */

static void test_bind_and_invoke(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_client *c, *c2;
    Rep *rep;

    c = connect_client(f);
    assert_true(tb_ipc_client_has_method(c, "Echo"));
    assert_true(tb_ipc_client_has_method(c, "Big"));
    assert_false(tb_ipc_client_has_method(c, "Nope"));
    rep = call_text(c, "Echo", "hello");
    assert_string_equal(rep->error, "hello");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    /* The handler saw the kernel-vouched identity of this process. */
    assert_int_equal(f->last_uid, (int)getuid());
    assert_int_equal(f->last_pid, (int)getpid());
    assert_int_equal(tb_ipc_host_num_connections(f->host), 1);

    assert_int_equal(tb_ipc_client_new(f->loop, NULL, &c2), 0);
    assert_int_equal(tb_ipc_client_connect_sync(c2, f->path, "NoSuchPort", 2000), -EPROTONOSUPPORT);
    tb_ipc_client_free(c2);
    tb_ipc_client_free(c);
    pump_ms(f, 20);
    assert_int_equal(f->connects, 2);
    assert_int_equal(f->disconnects, 2);
    assert_int_equal(tb_ipc_host_num_connections(f->host), 0);
}

struct stream_rec {
    char seq[64];
    int n;
    bool done;
};

static void on_stream(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct stream_rec *s = ctx;

    assert_true(r->success);
    assert_non_null(r->msg);
    s->seq[s->n++] = ((Rep *)r->msg)->error[0];
    s->seq[s->n++] = r->has_more ? '+' : '.';
    s->done = !r->has_more;
}

static bool stream_done(struct fx *f, void *arg)
{
    return ((struct stream_rec *)arg)->done;
}

static void test_streamed_and_deferred_replies(void **state)
{
    Req q = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    struct fx *f = *state;
    struct stream_rec s = {0}, d = {0};
    struct tb_ipc_client *c = connect_client(f);
    uint64_t id1, id2;

    q.service_name = "5";
    assert_int_equal(tb_ipc_client_invoke(c, "Stream", &q.base, REP_DESC, on_stream, &s, -1, &id1),
                     0);
    q.service_name = "x";
    assert_int_equal(tb_ipc_client_invoke(c, "Defer", &q.base, REP_DESC, on_stream, &d, -1, &id2),
                     0);
    assert_int_equal(id2, id1 + 1);
    pump_until(f, stream_done, &s);
    assert_string_equal(s.seq, "0+1+2+3+4.");
    pump_until(f, stream_done, &d);
    assert_string_equal(d.seq, "l.");
    tb_ipc_client_free(c);
}

static void test_drop_reply_gets_no_reply(void **state)
{
    struct fx *f = *state;
    Perfetto__Protos__IPCFrame *fr;
    struct raw r;
    size_t i;

    raw_open(f, &r);
    raw_bind(&r, 1);
    raw_invoke(&r, 2, 1, M_SILENT, "a", true);
    raw_invoke(&r, 3, 1, M_ECHO, "after", false);
    fr = raw_next(f, &r);
    assert_non_null(fr);
    assert_int_equal(fr->request_id, 1);
    assert_int_equal(fr->msg_case, PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE_REPLY);
    assert_true(fr->msg_bind_service_reply->success);
    assert_int_equal(fr->msg_bind_service_reply->n_methods, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(fr->msg_bind_service_reply->methods[i]->id, i + 1);
        assert_string_equal(fr->msg_bind_service_reply->methods[i]->name, test_methods[i].name);
    }
    tb_ipc_frame_free(fr);
    /* Request 2 had drop_reply: the next frame answers request 3. */
    fr = raw_next(f, &r);
    assert_non_null(fr);
    assert_int_equal(fr->request_id, 3);
    assert_int_equal(fr->msg_case, PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD_REPLY);
    tb_ipc_frame_free(fr);
    assert_int_equal(f->silent_calls, 1);
    raw_close(&r);

    /* Through the client: no callback means drop_reply. */
    {
        struct tb_ipc_client *c = connect_client(f);
        Rep *rep;

        assert_int_equal(tb_ipc_client_invoke(c, "Silent", NULL, NULL, NULL, NULL, -1, NULL), 0);
        rep = call_text(c, "Echo", "sync");
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        assert_int_equal(f->silent_calls, 2);
        tb_ipc_client_free(c);
    }
}

static void expect_failed_reply(struct fx *f, struct raw *r, uint64_t id)
{
    Perfetto__Protos__IPCFrame *fr = raw_next(f, r);

    assert_non_null(fr);
    assert_int_equal(fr->request_id, id);
    assert_int_equal(fr->msg_case, PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD_REPLY);
    assert_false(fr->msg_invoke_method_reply->success);
    tb_ipc_frame_free(fr);
}

static void test_bad_requests(void **state)
{
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__InvokeMethod im = PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD__INIT;
    struct tb_ipc_host_stats st;
    struct fx *f = *state;
    Perfetto__Protos__IPCFrame *fr;
    ProtobufCBinaryData testing;
    static uint8_t garbage[] = {0x0A, 0x7F, 0x01};
    struct raw r;

    raw_open(f, &r);
    raw_bind(&r, 1);
    tb_ipc_frame_free(raw_next(f, &r));
    raw_invoke(&r, 2, 1, 99, "x", false); /* unknown method */
    expect_failed_reply(f, &r, 2);
    raw_invoke(&r, 3, 1, 0, "x", false); /* method id 0 */
    expect_failed_reply(f, &r, 3);
    raw_invoke(&r, 4, 7, M_ECHO, "x", false); /* unknown service */
    expect_failed_reply(f, &r, 4);
    /* Args that do not decode as the method's request type. */
    im.has_service_id = im.has_method_id = im.has_args_proto = true;
    im.service_id = 1;
    im.method_id = M_ECHO;
    im.args_proto.data = garbage;
    im.args_proto.len = sizeof(garbage);
    frame.has_request_id = true;
    frame.request_id = 5;
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD;
    frame.msg_invoke_method = &im;
    raw_send(&r, &frame);
    expect_failed_reply(f, &r, 5);
    /* Unknown method with drop_reply: silence; then a frame with no request. */
    raw_invoke(&r, 6, 1, 99, "x", true);
    frame = (Perfetto__Protos__IPCFrame)PERFETTO__PROTOS__IPCFRAME__INIT;
    frame.has_request_id = true;
    frame.request_id = 7;
    testing.data = garbage;
    testing.len = sizeof(garbage);
    frame.n_data_for_testing = 1;
    frame.data_for_testing = &testing;
    raw_send(&r, &frame);
    fr = raw_next(f, &r);
    assert_non_null(fr);
    assert_int_equal(fr->request_id, 7);
    assert_int_equal(fr->msg_case, PERFETTO__PROTOS__IPCFRAME__MSG_MSG_REQUEST_ERROR);
    assert_non_null(fr->msg_request_error->error);
    tb_ipc_frame_free(fr);
    /* The connection survived all of that. */
    raw_invoke(&r, 8, 1, M_ECHO, "still here", false);
    fr = raw_next(f, &r);
    assert_non_null(fr);
    assert_int_equal(fr->request_id, 8);
    assert_true(fr->msg_invoke_method_reply->success);
    tb_ipc_frame_free(fr);
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.invoke_errors, 5);
    assert_int_equal(st.frames_received, 8); /* requests 1..8 */
    raw_close(&r);

    {
        struct tb_ipc_client *c = connect_client(f);

        assert_int_equal(tb_ipc_client_invoke(c, "NoSuch", NULL, NULL, NULL, NULL, -1, NULL),
                         -EOPNOTSUPP);
        tb_ipc_client_free(c);
    }
}

static void test_fd_both_ways(void **state)
{
    Req q = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    struct fx *f = *state;
    struct tb_ipc_client *c = connect_client(f);
    ProtobufCMessage *out = NULL;
    char buf[32] = {0};
    int p[2], rfd = -1;

    assert_int_equal(pipe(p), 0);
    q.service_name = "fd";
    assert_int_equal(tb_ipc_client_invoke_sync(c, "Fd", &q.base, REP_DESC, p[1], 2000, &out, &rfd),
                     0);
    close(p[1]);
    assert_string_equal(((Rep *)out)->error, "fd attached");
    protobuf_c_message_free_unpacked(out, NULL);
    /* The host wrote through the fd we sent... */
    assert_int_equal(read(p[0], buf, sizeof(buf)), 14);
    assert_string_equal(buf, "to-client-pipe");
    close(p[0]);
    /* ...and we write through the fd it sent back. */
    assert_true(rfd >= 0);
    assert_true(fcntl(rfd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(rfd, "to-host-pipe", 12), 12);
    close(rfd);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(read(f->host_pipe_r, buf, sizeof(buf)), 12);
    assert_string_equal(buf, "to-host-pipe");
    /* All write ends are closed: nobody leaked a copy. */
    assert_int_equal(read(f->host_pipe_r, buf, sizeof(buf)), 0);
    tb_ipc_client_free(c);
}

static bool disconnected_one(struct fx *f, void *arg)
{
    return f->disconnects >= *(int *)arg;
}

static void test_slow_reader_disconnected(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_host_stats st;
    struct tb_ipc_client *good;
    int rcvbuf = 4096, want = 1, i;
    struct raw slow;

    /* A fresh host with a 256 KiB queue limit on the same socket path. */
    tb_ipc_host_free(f->host);
    f->host = make_host(f, 0, 256 * 1024);
    assert_int_equal(tb_ipc_host_listen(f->host, f->path), 0);
    f->disconnects = 0;

    raw_open(f, &slow);
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    good = connect_client(f);
    raw_bind(&slow, 1);
    /* 40 x 60 KB of replies that the slow peer never reads. */
    raw_invoke(&slow, 2, 1, M_BIG, "", false);
    for (i = 0; i < 20; i++) {
        Rep *rep = call_text(good, "Echo", "served");

        assert_string_equal(rep->error, "served");
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    pump_until(f, disconnected_one, &want);
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.disconnects_slow_reader, 1);
    assert_int_equal(tb_ipc_host_num_connections(f->host), 1);
    {
        Rep *rep = call_text(good, "Echo", "still served");

        assert_string_equal(rep->error, "still served");
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    raw_close(&slow);
    tb_ipc_client_free(good);
}

static void test_oversize_header_disconnects(void **state)
{
    static const uint8_t hdr[8] = {0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4};
    struct fx *f = *state;
    struct tb_ipc_host_stats st;
    struct raw r;

    raw_open(f, &r);
    assert_int_equal(write(r.fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    /* The host closes: we read EOF. */
    assert_null(raw_next(f, &r));
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.disconnects_oversize, 1);
    pump_ms(f, 10);
    assert_int_equal(f->disconnects, 1);
    raw_close(&r);
}

static void test_peer_closes_mid_frame(void **state)
{
    struct fx *f = *state;
    int want = 1, p[2];
    uint8_t *buf;
    size_t len;
    struct raw r;
    char c;
    Perfetto__Protos__IPCFrame frame = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindService b = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;

    raw_open(f, &r);
    b.service_name = "TestPort";
    frame.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE;
    frame.msg_bind_service = &b;
    assert_int_equal(tb_ipc_frame_encode(&frame, 0, &buf, &len), 0);
    /* Half a frame, with an fd riding on it, then gone. */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tb_ipc_sock_send(r.fd, buf, len / 2, p[1]), (ssize_t)(len / 2));
    close(p[1]);
    free(buf);
    close(r.fd);
    r.fd = -1;
    pump_until(f, disconnected_one, &want);
    assert_int_equal(tb_ipc_host_num_connections(f->host), 0);
    /* The host closed the fd of the unfinished frame. */
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
    raw_close(&r);
}

static void test_connection_limit(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_host_stats st;
    struct raw r[3];
    int i;

    tb_ipc_host_free(f->host);
    f->host = make_host(f, 2, 0);
    assert_int_equal(tb_ipc_host_listen(f->host, f->path), 0);
    for (i = 0; i < 3; i++)
        raw_open(f, &r[i]);
    pump_ms(f, 20);
    /* The third is closed at once; the first two are served. */
    assert_null(raw_next(f, &r[2]));
    for (i = 0; i < 2; i++) {
        Perfetto__Protos__IPCFrame *fr;

        raw_bind(&r[i], 1);
        fr = raw_next(f, &r[i]);
        assert_non_null(fr);
        assert_true(fr->msg_bind_service_reply->success);
        tb_ipc_frame_free(fr);
    }
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.connections_refused, 1);
    assert_int_equal(st.connections_accepted, 2);
    for (i = 0; i < 3; i++)
        raw_close(&r[i]);
}

struct gone {
    bool replied, success, disconnected;
};

static void on_gone_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct gone *g = ctx;

    g->replied = true;
    g->success = r->success;
    assert_false(r->has_more);
}

static void on_client_disconnect(struct tb_ipc_client *c, void *ctx)
{
    struct gone *g = ctx;

    /* Pending calls were failed before the disconnect is reported. */
    assert_true(g->replied);
    g->disconnected = true;
    tb_ipc_client_free(c); /* allowed from a callback */
}

static bool client_gone(struct fx *f, void *arg)
{
    return ((struct gone *)arg)->disconnected;
}

static void test_client_sees_host_going_away(void **state)
{
    Req q = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;
    struct fx *f = *state;
    struct gone g = {0};
    struct tb_ipc_client_opts o = {.on_disconnect = on_client_disconnect, .ctx = &g};
    struct tb_ipc_client *c;

    assert_int_equal(tb_ipc_client_new(f->loop, &o, &c), 0);
    assert_int_equal(tb_ipc_client_connect_sync(c, f->path, "TestPort", 2000), 0);
    q.service_name = "never";
    assert_int_equal(
        tb_ipc_client_invoke(c, "Defer", &q.base, REP_DESC, on_gone_reply, &g, -1, NULL), 0);
    pump_ms(f, 20);
    assert_false(g.replied);
    tb_ipc_host_free(f->host);
    f->host = NULL;
    pump_until(f, client_gone, &g);
    assert_true(g.replied);
    assert_false(g.success);
    /* The host removed its socket file. */
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_socket_file_handling(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_host *h2;
    int fd;

    assert_int_equal(tb_ipc_host_new(f->loop, NULL, &h2), 0);
    /* A live host owns the path. */
    assert_int_equal(tb_ipc_host_listen(h2, f->path), -EADDRINUSE);
    tb_ipc_host_free(f->host);
    f->host = NULL;
    assert_int_equal(access(f->path, F_OK), -1);
    /* A crashed daemon's leftover file is taken over. */
    assert_int_equal(tb_ipc_sock_listen(f->path, &fd), 0);
    close(fd);
    assert_int_equal(access(f->path, F_OK), 0);
    assert_int_equal(tb_ipc_host_listen(h2, f->path), 0);
    assert_int_equal(tb_ipc_sock_connect(f->path, true, &fd), 0);
    close(fd);
    tb_ipc_host_free(h2);
}

static void on_bound(struct tb_ipc_client *c, bool success, void *ctx)
{
    struct gone *g = ctx;

    g->replied = true;
    g->success = success;
}

static bool bound(struct fx *f, void *arg)
{
    return ((struct gone *)arg)->replied;
}

static void test_socketpair_adoption(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_client *c;
    struct tb_ipc_conn *conn;
    struct gone g = {0};
    Rep *rep;
    int sp[2];

    /* The embedded mode: service and producer in one process. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(tb_ipc_host_adopt_conn_fd(f->host, sp[0], &conn), 0);
    assert_ptr_equal(tb_ipc_conn_host(conn), f->host);
    assert_int_equal(tb_ipc_client_new(f->loop, NULL, &c), 0);
    assert_int_equal(tb_ipc_client_adopt_fd(c, sp[1]), 0);
    assert_true(tb_ipc_client_connected(c));
    assert_int_equal(tb_ipc_client_invoke(c, "Echo", NULL, NULL, NULL, NULL, -1, NULL),
                     -ENOTCONN); /* not bound yet */
    assert_int_equal(tb_ipc_client_bind(c, "TestPort", on_bound, &g), 0);
    assert_int_equal(tb_ipc_client_bind(c, "TestPort", on_bound, &g), -EALREADY);
    pump_until(f, bound, &g);
    assert_true(g.success);
    rep = call_text(c, "Echo", "paired");
    assert_string_equal(rep->error, "paired");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    tb_ipc_client_free(c);
    pump_ms(f, 10);
    assert_int_equal(f->disconnects, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bind_and_invoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_and_deferred_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_reply_gets_no_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_disconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_header_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes_mid_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_sees_host_going_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file_handling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socketpair_adoption, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
