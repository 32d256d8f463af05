/*
 * producer_client_test.c - the producer client against a fake service built
 * on the real IPC host, on real UNIX sockets in a temporary directory, with
 * a real memfd SMB passed by SCM_RIGHTS: handshake wire order (through a
 * logging byte proxy), SetupTracing -> arbiter -> TraceWriter -> CommitData
 * naming the chunk the service then reads, start/stop notifications, flush
 * acks (coalesced), commit splitting under the frame limit, service restart
 * with reconnect and re-registration, garbage commands, writer ids, fork,
 * and descriptor updates (UpdateDataSource, or unregister + register for a
 * service without it).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/chunk_reader.h"
#include "common/event_loop.h"
#include "common/ipc_frame.h"
#include "common/ipc_host.h"
#include "common/ipc_sock.h"
#include "common/producer_client.h"
#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "common/trace_writer.h"
#include "perfetto/ipc/producer_port.pb-c.h"

#define MAX_LOG 256

typedef Perfetto__Protos__GetAsyncCommandResponse Cmd;

/* --- the fake service ---------------------------------------------------- */

struct fx {
    char dir[64];
    char path[128];  /* the fake service's socket */
    char ppath[128]; /* the logging proxy's socket */
    struct tb_loop *loop;
    struct tb_ipc_host *host;
    struct tb_shm *shm; /* the SMB the service hands out */

    char *log[MAX_LOG]; /* method names as the host dispatched them */
    size_t n_log;
    struct tb_ipc_conn *conn;
    uint64_t async_id;
    bool reject_init;
    Perfetto__Protos__InitializeConnectionRequest *init;
    size_t n_register_ds;
    bool no_update; /* serve ProducerPort without UpdateDataSource */
    /* Last descriptor received by RegisterDataSource / UpdateDataSource. */
    Perfetto__Protos__DataSourceDescriptor *registered, *updated;
    Perfetto__Protos__CommitDataRequest *commits[512];
    size_t n_commits;
    uint64_t started[16], stopped[16];
    size_t n_started, n_stopped;
    uint32_t writer_id, writer_buffer;

    /* proxy */
    int plisten, pclient, pserver;
    struct tb_ipc_frame_decoder *pdec;
    char *plog[MAX_LOG];
    size_t n_plog;
};

/* What the client's callbacks saw (own_thread tests read it under a lock). */
struct rec {
    pthread_mutex_t lock;
    int connected, disconnected, setups, starts, stops, flushes, clears;
    uint64_t last_setup, last_start, last_stop, last_flush;
    uint32_t target_buffer;
    bool defer_flush_ack;
    bool stop_later;
};

static void log_method(struct fx *f, const char *name)
{
    if (f->n_log < MAX_LOG)
        f->log[f->n_log++] = strdup(name);
}

static void m_init(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    f->conn = c->conn;
    if (f->init)
        protobuf_c_message_free_unpacked(&f->init->base, NULL);
    f->init = (void *)c->request;
    c->request = NULL;
    tb_ipc_host_reply(c->conn, c->request_id, NULL, !f->reject_init, false, -1);
}

static void m_async(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    f->async_id = c->request_id; /* never answered with has_more=false */
}

/* Take @from (a field of the request) into @to, freeing what @to held. */
static void keep_desc(Perfetto__Protos__DataSourceDescriptor **to,
                      Perfetto__Protos__DataSourceDescriptor **from)
{
    if (*to)
        protobuf_c_message_free_unpacked(&(*to)->base, NULL);
    *to = *from;
    *from = NULL;
}

static void m_register_ds(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    f->n_register_ds++;
    keep_desc(&f->registered,
              &((Perfetto__Protos__RegisterDataSourceRequest *)c->request)->data_source_descriptor);
    tb_ipc_host_reply(c->conn, c->request_id, NULL, true, false, -1);
}

static void m_commit(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    if (f->n_commits < 512) {
        f->commits[f->n_commits++] = (void *)c->request;
        c->request = NULL;
    }
    tb_ipc_host_reply(c->conn, c->request_id, NULL, true, false, -1);
}

static void m_started(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    if (f->n_started < 16)
        f->started[f->n_started++] =
            ((Perfetto__Protos__NotifyDataSourceStartedRequest *)c->request)->data_source_id;
}

static void m_stopped(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    if (f->n_stopped < 16)
        f->stopped[f->n_stopped++] =
            ((Perfetto__Protos__NotifyDataSourceStoppedRequest *)c->request)->data_source_id;
}

static void m_reg_writer(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;
    Perfetto__Protos__RegisterTraceWriterRequest *r = (void *)c->request;

    log_method(f, c->method);
    f->writer_id = r->trace_writer_id;
    f->writer_buffer = r->target_buffer;
    assert_true(c->drop_reply);
}

static void m_update_ds(struct tb_ipc_call *c)
{
    struct fx *f = c->service_ctx;

    log_method(f, c->method);
    keep_desc(&f->updated,
              &((Perfetto__Protos__UpdateDataSourceRequest *)c->request)->data_source_descriptor);
    tb_ipc_host_reply(c->conn, c->request_id, NULL, true, false, -1);
}

static void m_other(struct tb_ipc_call *c)
{
    log_method(c->service_ctx, c->method);
    tb_ipc_host_reply(c->conn, c->request_id, NULL, true, false, -1);
}

#define M(name, type, fn)                                  \
    {                                                      \
#name, &perfetto__protos__##type##__descriptor, fn \
    }
static const struct tb_ipc_method producer_port[] = {
    M(InitializeConnection, initialize_connection_request, m_init),
    M(RegisterDataSource, register_data_source_request, m_register_ds),
    M(UnregisterDataSource, unregister_data_source_request, m_other),
    M(CommitData, commit_data_request, m_commit),
    M(GetAsyncCommand, get_async_command_request, m_async),
    M(RegisterTraceWriter, register_trace_writer_request, m_reg_writer),
    M(UnregisterTraceWriter, unregister_trace_writer_request, m_other),
    M(NotifyDataSourceStarted, notify_data_source_started_request, m_started),
    M(NotifyDataSourceStopped, notify_data_source_stopped_request, m_stopped),
    M(ActivateTriggers, activate_triggers_request, m_other),
    M(Sync, sync_request, m_other),
    M(UpdateDataSource, update_data_source_request, m_update_ds), /* keep last */
};

static void on_host_disconnect(struct tb_ipc_conn *conn, void *ctx)
{
    struct fx *f = ctx;

    if (f->conn == conn) {
        f->conn = NULL;
        f->async_id = 0;
    }
}

static void start_host(struct fx *f)
{
    struct tb_ipc_host_opts o = {.on_disconnect = on_host_disconnect, .ctx = f};

    assert_int_equal(tb_ipc_host_new(f->loop, &o, &f->host), 0);
    assert_int_equal(
        tb_ipc_host_add_service(f->host, "ProducerPort", producer_port,
                                sizeof(producer_port) / sizeof(producer_port[0]) - f->no_update, f),
        0);
    assert_int_equal(tb_ipc_host_listen(f->host, f->path), 0);
}

static void stop_host(struct fx *f)
{
    tb_ipc_host_free(f->host);
    f->host = NULL;
    f->conn = NULL;
    f->async_id = 0;
}

static void send_cmd(struct fx *f, const Cmd *cmd, int fd)
{
    assert_non_null(f->conn);
    assert_true(f->async_id != 0);
    assert_int_equal(tb_ipc_host_reply(f->conn, f->async_id, &cmd->base, true, true, fd), 0);
}

static void send_setup_tracing(struct fx *f)
{
    Perfetto__Protos__GetAsyncCommandResponse__SetupTracing st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_TRACING__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;

    if (!f->shm)
        assert_int_equal(tb_shm_create(64 * 1024, 4096, &f->shm), 0);
    st.has_shared_buffer_page_size_kb = true;
    st.shared_buffer_page_size_kb = 4;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING;
    cmd.setup_tracing = &st;
    send_cmd(f, &cmd, f->shm->fd);
}

static void send_setup_start(struct fx *f, uint64_t id, const char *name, uint32_t buffer,
                             bool with_setup)
{
    Perfetto__Protos__GetAsyncCommandResponse__SetupDataSource sd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_DATA_SOURCE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__StartDataSource sa =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__START_DATA_SOURCE__INIT;
    Perfetto__Protos__DataSourceConfig cfg = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;

    cfg.name = (char *)name;
    cfg.has_target_buffer = true;
    cfg.target_buffer = buffer;
    sd.has_new_instance_id = sa.has_new_instance_id = true;
    sd.new_instance_id = sa.new_instance_id = id;
    sd.config = sa.config = &cfg;
    if (with_setup) {
        cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_DATA_SOURCE;
        cmd.setup_data_source = &sd;
        send_cmd(f, &cmd, -1);
    }
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE;
    cmd.start_data_source = &sa;
    send_cmd(f, &cmd, -1);
}

static void send_stop(struct fx *f, uint64_t id)
{
    Perfetto__Protos__GetAsyncCommandResponse__StopDataSource s =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__STOP_DATA_SOURCE__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;

    s.has_instance_id = true;
    s.instance_id = id;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE;
    cmd.stop_data_source = &s;
    send_cmd(f, &cmd, -1);
}

static void send_flush(struct fx *f, uint64_t id, uint64_t request_id)
{
    Perfetto__Protos__GetAsyncCommandResponse__Flush fl =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__FLUSH__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;

    fl.n_data_source_ids = 1;
    fl.data_source_ids = &id;
    fl.has_request_id = true;
    fl.request_id = request_id;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH;
    cmd.flush = &fl;
    send_cmd(f, &cmd, -1);
}

/* --- the logging proxy (client -> service frames, for the wire order) ---- */

static void proxy_close(struct fx *f)
{
    if (f->pclient >= 0) {
        tb_loop_del_fd(f->loop, f->pclient);
        close(f->pclient);
    }
    if (f->pserver >= 0) {
        tb_loop_del_fd(f->loop, f->pserver);
        close(f->pserver);
    }
    f->pclient = f->pserver = -1;
}

static void send_all(int fd, const uint8_t *buf, size_t len, int pass_fd)
{
    while (len) {
        ssize_t n = tb_ipc_sock_send(fd, buf, len, pass_fd);

        if (n == -EAGAIN) {
            usleep(1000);
            continue;
        }
        assert_true(n > 0);
        pass_fd = -1;
        buf += n;
        len -= (size_t)n;
    }
}

static void proxy_log_frames(struct fx *f)
{
    Perfetto__Protos__IPCFrame *fr;

    while ((fr = tb_ipc_frame_decoder_pop(f->pdec))) {
        const char *name = "other";

        if (fr->msg_case == PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE)
            name = "BindService";
        else if (fr->msg_case == PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD &&
                 fr->msg_invoke_method->method_id >= 1 && fr->msg_invoke_method->method_id <= 12)
            /* The host numbers methods from 1 in table order. */
            name = producer_port[fr->msg_invoke_method->method_id - 1].name;
        if (f->n_plog < MAX_LOG)
            f->plog[f->n_plog++] = strdup(name);
        tb_ipc_frame_free(fr);
    }
}

static void proxy_io(void *ctx, int fd, uint32_t events)
{
    struct fx *f = ctx;
    uint8_t buf[65536];
    int passed = -1;
    ssize_t n;

    (void)events;
    n = tb_ipc_sock_recv(fd, buf, sizeof(buf), &passed);
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        proxy_close(f);
        return;
    }
    if (fd == f->pclient) {
        assert_int_equal(tb_ipc_frame_decoder_feed(f->pdec, buf, (size_t)n), 0);
        proxy_log_frames(f);
        send_all(f->pserver, buf, (size_t)n, passed);
    } else {
        send_all(f->pclient, buf, (size_t)n, passed);
    }
    if (passed >= 0)
        close(passed);
}

static void proxy_accept(void *ctx, int fd, uint32_t events)
{
    struct fx *f = ctx;
    int c;

    (void)events;
    c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    proxy_close(f);
    f->pclient = c;
    assert_int_equal(tb_ipc_sock_connect(f->path, true, &f->pserver), 0);
    assert_int_equal(tb_loop_add_fd(f->loop, f->pclient, TB_LOOP_IN, proxy_io, f), 0);
    assert_int_equal(tb_loop_add_fd(f->loop, f->pserver, TB_LOOP_IN, proxy_io, f), 0);
}

static void start_proxy(struct fx *f)
{
    assert_int_equal(tb_ipc_sock_listen(f->ppath, &f->plisten), 0);
    assert_int_equal(tb_loop_add_fd(f->loop, f->plisten, TB_LOOP_IN, proxy_accept, f), 0);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &f->pdec), 0);
}

/* --- fixture ----------------------------------------------------------- */

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/tb_pclient_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/producer.sock", f->dir);
    snprintf(f->ppath, sizeof(f->ppath), "%s/proxy.sock", f->dir);
    f->plisten = f->pclient = f->pserver = -1;
    assert_int_equal(tb_loop_new(&f->loop), 0);
    start_host(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    size_t i;

    stop_host(f);
    proxy_close(f);
    if (f->plisten >= 0) {
        tb_loop_del_fd(f->loop, f->plisten);
        close(f->plisten);
        unlink(f->ppath);
    }
    tb_ipc_frame_decoder_free(f->pdec);
    tb_loop_free(f->loop);
    tb_shm_destroy(f->shm);
    for (i = 0; i < f->n_log; i++)
        free(f->log[i]);
    for (i = 0; i < f->n_plog; i++)
        free(f->plog[i]);
    for (i = 0; i < f->n_commits; i++)
        protobuf_c_message_free_unpacked(&f->commits[i]->base, NULL);
    if (f->init)
        protobuf_c_message_free_unpacked(&f->init->base, NULL);
    if (f->registered)
        protobuf_c_message_free_unpacked(&f->registered->base, NULL);
    if (f->updated)
        protobuf_c_message_free_unpacked(&f->updated->base, NULL);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Run the service loop until @cond holds or @ms pass. */
#define PUMP_UNTIL(f, cond, ms)                    \
    ({                                             \
        uint64_t _end = tb_loop_now_ms() + (ms);   \
        while (!(cond) && tb_loop_now_ms() < _end) \
            tb_loop_run_once((f)->loop, 5);        \
        (cond);                                    \
    })

static int rec_get(struct rec *r, const int *field)
{
    int v;

    pthread_mutex_lock(&r->lock);
    v = *field;
    pthread_mutex_unlock(&r->lock);
    return v;
}

/* --- client callbacks -------------------------------------------------- */

static void cb_connected(struct tb_pc *pc, void *ctx)
{
    struct rec *r = ctx;

    (void)pc;
    pthread_mutex_lock(&r->lock);
    r->connected++;
    pthread_mutex_unlock(&r->lock);
}

static void cb_disconnected(struct tb_pc *pc, void *ctx)
{
    struct rec *r = ctx;

    (void)pc;
    pthread_mutex_lock(&r->lock);
    r->disconnected++;
    pthread_mutex_unlock(&r->lock);
}

static void cb_setup(struct tb_pc *pc, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    struct rec *r = ctx;

    (void)pc;
    pthread_mutex_lock(&r->lock);
    r->setups++;
    r->last_setup = id;
    r->target_buffer = cfg->target_buffer;
    pthread_mutex_unlock(&r->lock);
}

static void cb_start(struct tb_pc *pc, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    struct rec *r = ctx;

    (void)pc;
    (void)cfg;
    pthread_mutex_lock(&r->lock);
    r->starts++;
    r->last_start = id;
    pthread_mutex_unlock(&r->lock);
}

static bool cb_stop(struct tb_pc *pc, void *ctx, uint64_t id)
{
    struct rec *r = ctx;
    bool later;

    (void)pc;
    pthread_mutex_lock(&r->lock);
    r->stops++;
    r->last_stop = id;
    later = r->stop_later;
    pthread_mutex_unlock(&r->lock);
    return !later;
}

static void cb_flush(struct tb_pc *pc, void *ctx, const uint64_t *ids, size_t n, uint64_t req)
{
    struct rec *r = ctx;
    bool defer;

    (void)ids;
    (void)n;
    pthread_mutex_lock(&r->lock);
    r->flushes++;
    r->last_flush = req;
    defer = r->defer_flush_ack;
    pthread_mutex_unlock(&r->lock);
    if (!defer)
        assert_int_equal(tb_pc_ack_flush(pc, req), 0);
}

static void cb_clear(struct tb_pc *pc, void *ctx, const uint64_t *ids, size_t n)
{
    struct rec *r = ctx;

    (void)pc;
    (void)ids;
    (void)n;
    pthread_mutex_lock(&r->lock);
    r->clears++;
    pthread_mutex_unlock(&r->lock);
}

static struct tb_pc_opts client_opts(struct fx *f, struct rec *r, const char *sock, bool own)
{
    struct tb_pc_opts o = {
        .producer_name = "pc-test",
        .socket_name = sock ? sock : f->path,
        .loop = own ? NULL : f->loop,
        .own_thread = own,
        .backoff_initial_ms = 20,
        .backoff_max_ms = 50,
        .cb =
            {
                .on_connected = cb_connected,
                .on_disconnected = cb_disconnected,
                .on_setup = cb_setup,
                .on_start = cb_start,
                .on_stop = cb_stop,
                .on_flush = cb_flush,
                .on_clear_incremental_state = cb_clear,
            },
        .ctx = r,
    };

    pthread_mutex_init(&r->lock, NULL);
    return o;
}

static void register_ds(struct tb_pc *pc, const char *name, bool notify)
{
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;

    d.name = (char *)name;
    d.has_will_notify_on_start = d.has_will_notify_on_stop = true;
    d.will_notify_on_start = d.will_notify_on_stop = notify;
    assert_int_equal(tb_pc_register_data_source(pc, &d), 0);
}

static size_t count_log(struct fx *f, const char *name)
{
    size_t i, n = 0;

    for (i = 0; i < f->n_log; i++)
        n += !strcmp(f->log[i], name);
    return n;
}

/* --- tests --------------------------------------------------------------- */

/* Spec §3.7: exactly this order on the wire, hints in the right fields. */
static void test_handshake_wire_order(void **state)
{
    static const char *const want[] = {"BindService", "InitializeConnection", "GetAsyncCommand",
                                       "RegisterDataSource", "RegisterDataSource"};
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, f->ppath, false);
    struct tb_pc *pc;
    size_t i;

    start_proxy(f);
    o.smb_page_size_hint = 8192;
    o.smb_size_hint = 128 * 1024;
    assert_int_equal(tb_pc_create(&o, &pc), 0);
    register_ds(pc, "track_event", true);
    register_ds(pc, "linux.ftrace", false);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 2 && r.connected == 1, 2000));

    assert_int_equal(f->n_plog, 5);
    for (i = 0; i < 5; i++)
        assert_string_equal(f->plog[i], want[i]);
    assert_non_null(f->init);
    assert_string_equal(f->init->producer_name, "pc-test");
    assert_int_equal(f->init->shared_memory_page_size_hint_bytes, 8192);
    assert_int_equal(f->init->shared_memory_size_hint_bytes, 128 * 1024);
    assert_int_equal(f->init->smb_scraping_mode, 1);
    assert_true(tb_pc_connected(pc));

    /* Registered after connecting: sent at once, once. */
    register_ds(pc, "late", false);
    assert_int_equal(
        tb_pc_register_data_source(pc, &(Perfetto__Protos__DataSourceDescriptor)
                                           PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT),
        -EINVAL);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 3, 2000));
    PUMP_UNTIL(f, false, 50);
    assert_int_equal(f->n_register_ds, 3);
    assert_string_equal(f->plog[5], "RegisterDataSource");
    tb_pc_destroy(pc);
}

/*
 * SetupTracing with a real memfd; a TraceWriter on the test thread writes a
 * packet through the client's arbiter; the service gets CommitData naming
 * that chunk and reads the same bytes from its own mapping.
 */
static void test_setup_write_commit(void **state)
{
    static const char payload[] = "bytes through the shared memory buffer";
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, true);
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mv;
    struct tb_tw_opts two = {0};
    struct tb_chunk_record rec;
    struct tb_chunk_reader rd;
    struct tb_pc_smb *smb;
    uint8_t *copy;
    struct tb_shm_chunk chunk;
    struct tb_tw *tw;
    struct tb_pc *pc;
    uint16_t wid;

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    assert_int_equal(tb_pc_smb_acquire(pc, &smb), -ENOTCONN);
    register_ds(pc, "ds", true);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 1, 2000));
    send_setup_tracing(f);
    send_setup_start(f, 7, "ds", 3, true);
    assert_true(PUMP_UNTIL(f, f->n_started == 1, 2000));
    assert_int_equal(f->started[0], 7);
    assert_int_equal(rec_get(&r, &r.setups), 1);
    assert_int_equal(rec_get(&r, &r.starts), 1);
    assert_int_equal(r.target_buffer, 3);

    assert_int_equal(tb_pc_smb_acquire(pc, &smb), 0);
    assert_int_equal(tb_pc_smb_generation(smb), tb_pc_generation(pc));
    assert_int_equal(tb_pc_smb_shm(smb)->size, 64 * 1024);
    wid = tb_pc_alloc_writer_id(pc);
    assert_true(wid >= 1);
    assert_int_equal(tb_pc_register_trace_writer(pc, wid, 3), 0);
    two.ops = &tb_tw_arbiter_ops;
    two.ops_ctx = tb_pc_smb_arbiter(smb);
    two.writer_id = wid;
    two.target_buffer = 3;
    assert_int_equal(tb_tw_create(&two, &tw), 0);
    tb_pbw_append_string(tb_tw_begin_packet(tw), 900, payload);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);

    assert_true(PUMP_UNTIL(f, f->n_commits >= 1, 2000));
    assert_int_equal(f->writer_id, wid);
    assert_int_equal(f->writer_buffer, 3);
    assert_int_equal(f->commits[0]->n_chunks_to_move, 1);
    mv = f->commits[0]->chunks_to_move[0];
    assert_int_equal(mv->target_buffer, 3);
    assert_int_equal(tb_shm_chunk_state(&f->shm->abi, mv->page, mv->chunk), TB_SHM_CHUNK_COMPLETE);
    assert_int_equal(tb_shm_get_chunk(&f->shm->abi, mv->page, mv->chunk, &chunk), 0);
    assert_int_equal(tb_shm_chunk_hdr(&chunk)->writer_id, wid);
    /* Read it the way the service does: a private copy, record by record. */
    copy = malloc(chunk.size);
    memcpy(copy, chunk.begin, chunk.size);
    assert_int_equal(tb_chunk_reader_init(&rd, copy, chunk.size), 0);
    assert_int_equal(tb_chunk_reader_next(&rd, &rec), 1);
    /* TracePacket field 900, string: tag 0xA2 0x38, length, the bytes. */
    assert_int_equal(rec.len, 3 + sizeof(payload) - 1);
    assert_memory_equal(rec.data, "\xa2\x38", 2);
    assert_int_equal(rec.data[2], sizeof(payload) - 1);
    assert_memory_equal(rec.data + 3, payload, sizeof(payload) - 1);
    assert_int_equal(tb_chunk_reader_next(&rd, &rec), 0); /* padding only */
    free(copy);

    /* Stop: acked at once by the callback, NotifyDataSourceStopped follows. */
    send_stop(f, 7);
    assert_true(PUMP_UNTIL(f, f->n_stopped == 1, 2000));
    assert_int_equal(f->stopped[0], 7);
    assert_int_equal(rec_get(&r, &r.stops), 1);

    tb_tw_destroy(tw);
    tb_pc_free_writer_id(pc, wid);
    tb_pc_smb_release(smb);
    tb_pc_destroy(pc);
}

static uint64_t last_flush_ack(struct fx *f, size_t *n_acks)
{
    uint64_t id = 0;
    size_t i;

    *n_acks = 0;
    for (i = 0; i < f->n_commits; i++) {
        if (f->commits[i]->has_flush_request_id && f->commits[i]->flush_request_id) {
            id = f->commits[i]->flush_request_id;
            (*n_acks)++;
        }
    }
    return id;
}

/* Flush acks carry the id; acks queued together go out as the highest one. */
static void test_flush_ack(void **state)
{
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    struct tb_pc *pc;
    size_t n;

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    register_ds(pc, "ds", true);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 1, 2000));
    send_setup_tracing(f);
    send_setup_start(f, 11, "ds", 1, false); /* no SetupDataSource: synthesised */
    assert_true(PUMP_UNTIL(f, f->n_started == 1, 2000));
    assert_int_equal(rec_get(&r, &r.setups), 1);

    send_flush(f, 11, 42);
    assert_true(PUMP_UNTIL(f, f->n_commits >= 1, 2000));
    assert_int_equal(last_flush_ack(f, &n), 42);
    assert_int_equal(n, 1);

    r.defer_flush_ack = true;
    send_flush(f, 11, 43);
    send_flush(f, 11, 44);
    assert_true(PUMP_UNTIL(f, r.flushes == 3, 2000));
    assert_int_equal(tb_pc_ack_flush(pc, 43), 0);
    assert_int_equal(tb_pc_ack_flush(pc, 44), 0);
    assert_true(PUMP_UNTIL(f, last_flush_ack(f, &n) == 44, 2000));
    assert_int_equal(n, 2); /* 42, then 43 and 44 coalesced into one */

    /* Stop acked later by the owner. */
    r.stop_later = true;
    send_stop(f, 11);
    assert_true(PUMP_UNTIL(f, r.stops == 1, 2000));
    PUMP_UNTIL(f, false, 30);
    assert_int_equal(f->n_stopped, 0);
    assert_int_equal(tb_pc_notify_stopped(pc, 11), 0);
    assert_true(PUMP_UNTIL(f, f->n_stopped == 1, 2000));
    assert_int_equal(f->stopped[0], 11);
    tb_pc_destroy(pc);
}

/* Thousands of chunks: several CommitData requests, each under the limit. */
static void test_commit_split(void **state)
{
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    Perfetto__Protos__GetAsyncCommandResponse__SetupTracing st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_TRACING__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    struct tb_shm_chunk c;
    size_t i, total = 0, n_chunks = 0;
    struct tb_arbiter *arb;
    struct tb_pc *pc;
    uint8_t *seen;

    o.smb_layout = TB_SHM_LAYOUT_DIV14;
    assert_int_equal(tb_pc_create(&o, &pc), 0);
    assert_true(PUMP_UNTIL(f, r.connected == 1, 2000));
    assert_int_equal(tb_shm_create(8u << 20, 4096, &f->shm), 0);
    st.has_shared_buffer_page_size_kb = true;
    st.shared_buffer_page_size_kb = 4;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING;
    cmd.setup_tracing = &st;
    send_cmd(f, &cmd, f->shm->fd);
    assert_true(PUMP_UNTIL(f, tb_pc_arbiter(pc) != NULL, 2000));
    arb = tb_pc_arbiter(pc);
    /* Fill the whole SMB before the IPC loop runs again: one big batch. */
    while (tb_arbiter_get_chunk(arb, 5, (uint32_t)n_chunks, 0, &c) == 0) {
        assert_int_equal(tb_arbiter_return_chunk(arb, &c, 9), 0);
        n_chunks++;
    }
    assert_int_equal(n_chunks, (8u << 20) / 4096 * 14);
    assert_true(PUMP_UNTIL(f, ({
                                  size_t t = 0;
                                  for (i = 0; i < f->n_commits; i++)
                                      t += f->commits[i]->n_chunks_to_move;
                                  t;
                              }) == n_chunks,
                           5000));
    assert_true(f->n_commits >= 7); /* 28672 chunks, at most 4096 a request */
    seen = calloc(n_chunks, 1);
    for (i = 0; i < f->n_commits; i++) {
        size_t j, sz = protobuf_c_message_get_packed_size(&f->commits[i]->base);

        assert_true(sz < TB_IPC_MAX_FRAME_SIZE - 512);
        /* traced-bpf's default --max-commit-entries is 8192. */
        assert_true(f->commits[i]->n_chunks_to_move + f->commits[i]->n_chunks_to_patch <= 8192);
        for (j = 0; j < f->commits[i]->n_chunks_to_move; j++) {
            const Perfetto__Protos__CommitDataRequest__ChunksToMove *m =
                f->commits[i]->chunks_to_move[j];
            size_t k = m->page * 14 + m->chunk;

            assert_int_equal(m->target_buffer, 9);
            assert_true(k < n_chunks);
            assert_int_equal(seen[k], 0); /* each chunk exactly once */
            seen[k] = 1;
            total++;
        }
    }
    assert_int_equal(total, n_chunks);
    free(seen);
    tb_pc_destroy(pc);
}

/*
 * No service at first (connect fails, back-off), then the service appears;
 * then it dies and comes back: the client reconnects, re-registers, the old
 * SMB stays mapped for a writer that still holds it, the generation moves.
 */
static void test_reconnect(void **state)
{
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    struct tb_pc_stats st;
    struct tb_pc_smb *smb, *smb2;
    struct tb_shm_chunk c;
    uint64_t gen;
    struct tb_pc *pc;

    stop_host(f);
    unlink(f->path);
    assert_int_equal(tb_pc_create(&o, &pc), 0);
    register_ds(pc, "ds", true);
    PUMP_UNTIL(f, false, 120);
    tb_pc_get_stats(pc, &st);
    assert_true(st.connect_failures >= 2);
    assert_int_equal(r.connected, 0);

    start_host(f);
    assert_true(PUMP_UNTIL(f, r.connected == 1 && f->n_register_ds == 1, 2000));
    send_setup_tracing(f);
    send_setup_start(f, 1, "ds", 2, true);
    assert_true(PUMP_UNTIL(f, f->n_started == 1, 2000));
    assert_int_equal(tb_pc_smb_acquire(pc, &smb), 0);
    gen = tb_pc_generation(pc);
    assert_int_equal(tb_pc_smb_generation(smb), gen);

    /* The service dies. */
    stop_host(f);
    assert_true(PUMP_UNTIL(f, r.disconnected == 1, 2000));
    assert_true(tb_pc_generation(pc) != gen);
    assert_false(tb_pc_connected(pc));
    assert_null(tb_pc_arbiter(pc));
    assert_int_equal(tb_pc_smb_acquire(pc, &smb2), -ENOTCONN);
    /* The retired SMB is still mapped for the writer holding it. */
    assert_int_equal(tb_arbiter_get_chunk(tb_pc_smb_arbiter(smb), 1, 0, 0, &c), 0);
    memset(tb_shm_chunk_payload(&c), 0xab, tb_shm_chunk_payload_size(&c));
    assert_int_equal(tb_arbiter_return_chunk(tb_pc_smb_arbiter(smb), &c, 2), 0);
    tb_pc_smb_release(smb);

    /* It comes back: same client, new connection, data sources again. */
    f->n_register_ds = 0;
    tb_shm_destroy(f->shm);
    f->shm = NULL;
    start_host(f);
    assert_true(PUMP_UNTIL(f, r.connected == 2 && f->n_register_ds == 1, 3000));
    assert_int_equal(count_log(f, "InitializeConnection"), 2);
    send_setup_tracing(f);
    send_setup_start(f, 2, "ds", 2, true);
    assert_true(PUMP_UNTIL(f, f->n_started == 2, 2000));
    assert_int_equal(tb_pc_smb_acquire(pc, &smb2), 0);
    assert_true(tb_pc_smb_generation(smb2) > gen);
    tb_pc_smb_release(smb2);
    tb_pc_get_stats(pc, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.disconnects, 1);
    tb_pc_destroy(pc);
}

/* A track_event-like descriptor with id 7 and categories "c0".."c<n-1>". */
static void te_desc(Perfetto__Protos__DataSourceDescriptor *d,
                    Perfetto__Protos__TrackEventDescriptor *ted,
                    Perfetto__Protos__TrackEventCategory *cats,
                    Perfetto__Protos__TrackEventCategory **ptrs, char names[][8], size_t n)
{
    perfetto__protos__data_source_descriptor__init(d);
    perfetto__protos__track_event_descriptor__init(ted);
    for (size_t i = 0; i < n; i++) {
        perfetto__protos__track_event_category__init(&cats[i]);
        snprintf(names[i], 8, "c%zu", i);
        cats[i].name = names[i];
        ptrs[i] = &cats[i];
    }
    ted->available_categories = ptrs;
    ted->n_available_categories = n;
    d->name = "track_event";
    d->has_id = true;
    d->id = 7;
    d->track_event_descriptor = ted;
}

static size_t n_cats(const Perfetto__Protos__DataSourceDescriptor *d)
{
    return d && d->track_event_descriptor ? d->track_event_descriptor->n_available_categories : 0;
}

/*
 * A descriptor updated while connected goes out as UpdateDataSource (matched
 * on the id) and is what later reconnects register; one updated while
 * disconnected is only registered; a service without UpdateDataSource gets
 * UnregisterDataSource + RegisterDataSource.
 */
static void test_update_data_source(void **state)
{
    Perfetto__Protos__TrackEventCategory cats[4], *ptrs[4];
    Perfetto__Protos__TrackEventDescriptor ted;
    Perfetto__Protos__DataSourceDescriptor d;
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    struct tb_pc *pc;
    char names[4][8];

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    te_desc(&d, &ted, cats, ptrs, names, 1);
    assert_int_equal(tb_pc_register_data_source(pc, &d), 0);
    assert_true(PUMP_UNTIL(f, r.connected == 1 && f->n_register_ds == 1, 2000));
    assert_int_equal(n_cats(f->registered), 1);

    te_desc(&d, &ted, cats, ptrs, names, 2);
    assert_int_equal(tb_pc_update_data_source(pc, &d), 0);
    assert_true(PUMP_UNTIL(f, f->updated != NULL, 2000));
    assert_string_equal(f->updated->name, "track_event");
    assert_int_equal(f->updated->id, 7);
    assert_int_equal(n_cats(f->updated), 2);
    assert_string_equal(f->updated->track_event_descriptor->available_categories[1]->name, "c1");
    assert_int_equal(f->n_register_ds, 1);

    /* Refused: no id, an unknown id, a new name for the id. */
    d.id = 0;
    assert_int_equal(tb_pc_update_data_source(pc, &d), -EINVAL);
    d.has_id = false;
    d.id = 7;
    assert_int_equal(tb_pc_update_data_source(pc, &d), -EINVAL);
    d.has_id = true;
    d.id = 8;
    assert_int_equal(tb_pc_update_data_source(pc, &d), -ENOENT);
    d.id = 7;
    d.name = "renamed";
    assert_int_equal(tb_pc_update_data_source(pc, &d), -EINVAL);

    /* Updated while the service is away: the reconnect registers it. */
    stop_host(f);
    assert_true(PUMP_UNTIL(f, r.disconnected == 1, 2000));
    te_desc(&d, &ted, cats, ptrs, names, 3);
    assert_int_equal(tb_pc_update_data_source(pc, &d), 0);
    PUMP_UNTIL(f, false, 30);
    start_host(f);
    assert_true(PUMP_UNTIL(f, r.connected == 2 && f->n_register_ds == 2, 3000));
    assert_int_equal(n_cats(f->registered), 3);
    assert_int_equal(count_log(f, "UpdateDataSource"), 1);

    /* A service without UpdateDataSource: withdrawn and registered again. */
    stop_host(f);
    assert_true(PUMP_UNTIL(f, r.disconnected == 2, 2000));
    f->no_update = true;
    start_host(f);
    assert_true(PUMP_UNTIL(f, r.connected == 3 && f->n_register_ds == 3, 3000));
    te_desc(&d, &ted, cats, ptrs, names, 4);
    assert_int_equal(tb_pc_update_data_source(pc, &d), 0);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 4, 2000));
    assert_int_equal(n_cats(f->registered), 4);
    assert_int_equal(count_log(f, "UnregisterDataSource"), 1);
    assert_int_equal(count_log(f, "UpdateDataSource"), 1);
    tb_pc_destroy(pc);
}

/* Malformed commands are counted and skipped; a broken stream reconnects. */
static void test_garbage_commands(void **state)
{
    Perfetto__Protos__GetAsyncCommandResponse__SetupTracing st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_TRACING__INIT;
    Perfetto__Protos__NotifyDataSourceStartedRequest wrong =
        PERFETTO__PROTOS__NOTIFY_DATA_SOURCE_STARTED_REQUEST__INIT;
    Cmd cmd = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    struct tb_pc_stats s;
    struct tb_pc_smb *smb;
    struct tb_pc *pc;
    int pipefd[2];

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    register_ds(pc, "ds", true);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 1, 2000));

    /* SetupTracing without an fd, and with a pipe instead of a memfd. */
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING;
    cmd.setup_tracing = &st;
    send_cmd(f, &cmd, -1);
    assert_int_equal(pipe(pipefd), 0);
    st.has_shared_buffer_page_size_kb = true;
    st.shared_buffer_page_size_kb = 0xffffffffu;
    send_cmd(f, &cmd, pipefd[0]);
    close(pipefd[0]);
    close(pipefd[1]);
    /* Start of a data source nobody registered, stop and flush of nothing. */
    send_setup_start(f, 5, "nobody", 1, true);
    send_stop(f, 99);
    send_flush(f, 99, 7);
    assert_true(PUMP_UNTIL(f, f->n_commits == 1, 2000));
    tb_pc_get_stats(pc, &s);
    assert_int_equal(s.bad_commands, 4); /* 2 SetupTracing, Setup, Start */
    assert_int_equal(rec_get(&r, &r.setups), 0);
    assert_int_equal(f->n_started, 0);
    assert_int_equal(tb_pc_smb_acquire(pc, &smb), -ENOTCONN);
    assert_true(tb_pc_connected(pc));

    /* Bytes that do not decode as a command: the stream is lost, reconnect. */
    wrong.has_data_source_id = true;
    wrong.data_source_id = 5;
    assert_int_equal(tb_ipc_host_reply(f->conn, f->async_id, &wrong.base, true, true, -1), 0);
    assert_true(PUMP_UNTIL(f, r.connected == 2, 3000));
    assert_int_equal(r.disconnected, 1);

    /* A rejected InitializeConnection: retried with back-off, no on_connected. */
    f->reject_init = true;
    tb_ipc_host_disconnect(f->conn);
    assert_true(PUMP_UNTIL(f, r.disconnected == 2, 2000));
    PUMP_UNTIL(f, false, 100);
    assert_int_equal(r.connected, 2);
    tb_pc_get_stats(pc, &s);
    assert_true(s.connect_failures >= 2);
    f->reject_init = false;
    assert_true(PUMP_UNTIL(f, r.connected == 3, 2000));
    tb_pc_destroy(pc);
}

static void test_writer_ids(void **state)
{
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, false);
    struct tb_pc *pc;
    uint8_t *seen = calloc(TB_PC_MAX_WRITER_ID + 1, 1);
    uint32_t i;

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    for (i = 0; i < TB_PC_MAX_WRITER_ID; i++) {
        uint16_t id = tb_pc_alloc_writer_id(pc);

        assert_true(id >= 1 && id <= TB_PC_MAX_WRITER_ID);
        assert_int_equal(seen[id], 0);
        seen[id] = 1;
    }
    assert_int_equal(tb_pc_alloc_writer_id(pc), 0);
    tb_pc_free_writer_id(pc, 1234);
    assert_int_equal(tb_pc_alloc_writer_id(pc), 1234);
    assert_int_equal(tb_pc_register_trace_writer(pc, 0, 1), -EINVAL);
    assert_int_equal(tb_pc_register_trace_writer(pc, 1, 0), -EINVAL);
    free(seen);
    tb_pc_destroy(pc);
}

/* The child of a fork is inert; the parent's connection keeps working. */
static void test_fork_child(void **state)
{
    struct fx *f = *state;
    struct rec r = {0};
    struct tb_pc_opts o = client_opts(f, &r, NULL, true);
    struct tb_pc_smb *smb;
    struct tb_pc *pc;
    uint64_t gen;
    size_t n;
    int status;
    pid_t pid;

    assert_int_equal(tb_pc_create(&o, &pc), 0);
    register_ds(pc, "ds", true);
    assert_true(PUMP_UNTIL(f, f->n_register_ds == 1, 2000));
    send_setup_tracing(f);
    send_setup_start(f, 3, "ds", 1, true);
    assert_true(PUMP_UNTIL(f, f->n_started == 1, 2000));
    assert_int_equal(tb_pc_smb_acquire(pc, &smb), 0);
    gen = tb_pc_generation(pc);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct tb_pc_smb *s2;
        int bad = 0;

        tb_pc_after_fork_child(pc);
        bad |= tb_pc_generation(pc) == gen;
        bad |= tb_pc_smb_acquire(pc, &s2) != -ENOTCONN;
        bad |= tb_pc_connected(pc);
        bad |= tb_pc_register_trace_writer(pc, 1, 1) != 0;
        bad |= tb_pc_ack_flush(pc, 5) != 0;
        tb_pc_smb_release(smb); /* a no-op in the child */
        tb_pc_destroy(pc);
        _exit(bad ? 1 : 0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* The parent: same generation, SMB intact, round trips still work. */
    assert_int_equal(tb_pc_generation(pc), gen);
    assert_true(tb_pc_connected(pc));
    send_flush(f, 3, 77);
    assert_true(PUMP_UNTIL(f, last_flush_ack(f, &n) == 77, 2000));
    tb_pc_smb_release(smb);
    tb_pc_destroy(pc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_wire_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_write_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_data_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_child, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
