/*
 * service_stuck_test.c - a producer that stops reading its socket must not
 * stall the real traced-bpf daemon. The stuck producer registers a data
 * source and then never reads its GetAsyncCommand stream again; consumers
 * start sessions that send it large SetupDataSource/StartDataSource commands
 * until its queue passes the service's limit. Meanwhile a well-behaved
 * producer (a thread of this process) and a consumer run a session to its
 * end and read every packet back; the stuck one is disconnected (the service
 * logs it, drops it from QueryServiceState and closes its socket).
 */
#include <errno.h>
#include <poll.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_util.h"
#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_sock.h"
#include "common/shm.h"
#include "perfetto/ipc/producer_port.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#define GOOD_PKTS   40u
#define GOOD_TS0    7000000u
#define BIG_CFG_LEN 100000u /* one command carrying it stays under the 128 KiB frame limit */

static struct td_daemon daemon_;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ daemon */

/* Its log is kept: the test checks why the service let the stuck one go. */
static int start_daemon(void **state)
{
    struct td_opts o = {.tag = "svc-stuck", .log = true};

    assert_int_equal(td_start(&daemon_, &o), 0);
    return 0;
}

static int stop_daemon(void **state)
{
    assert_int_equal(td_stop(&daemon_), 0);
    td_cleanup(&daemon_, false);
    return 0;
}

/* ------------------------------------------------------------ producers */

struct prod {
    struct tb_loop *loop;
    struct tb_ipc_client *client;
    struct tb_shm *shm;
    uint32_t target;
    bool started;
    uint64_t flush_id; /* a Flush to answer, 0 = none */
};

static void on_cmd(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__GetAsyncCommandResponse *cmd = (void *)r->msg;
    struct prod *p = ctx;

    if (!r->success || !cmd)
        return;
    switch (cmd->cmd_case) {
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING:
        if (!p->shm && r->fd >= 0 &&
            !tb_shm_attach(r->fd, cmd->setup_tracing->shared_buffer_page_size_kb * 1024, &p->shm))
            r->fd = -1;
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE:
        p->target = cmd->start_data_source->config->target_buffer;
        p->started = true;
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH:
        p->flush_id = cmd->flush->request_id;
        break;
    default:
        break;
    }
}

static void on_bound(struct tb_ipc_client *c, bool ok, void *ctx)
{
    *(int *)ctx = ok ? 1 : -1;
}

/*
 * Connects a producer named @name offering data source @ds. With @keep_fd,
 * *@keep_fd receives a duplicate of its socket (owned by the caller).
 */
static int prod_connect(struct prod *p, const char *name, const char *ds, bool notify_stop,
                        int *keep_fd)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__RegisterDataSourceRequest reg =
        PERFETTO__PROTOS__REGISTER_DATA_SOURCE_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    int err, fd, bound = 0;

    memset(p, 0, sizeof(*p));
    if ((err = tb_loop_new(&p->loop)) || (err = tb_ipc_client_new(p->loop, NULL, &p->client)) ||
        (err = tb_ipc_sock_connect(daemon_.psock, false, &fd)))
        return err;
    if (keep_fd)
        *keep_fd = dup(fd);
    if ((err = tb_ipc_client_adopt_fd(p->client, fd)) ||
        (err = tb_ipc_client_bind(p->client, "ProducerPort", on_bound, &bound)))
        return err;
    for (int i = 0; i < 500 && !bound; i++)
        tb_loop_run_once(p->loop, 10);
    if (bound != 1)
        return -EPROTO;
    init.producer_name = (char *)name;
    err = tb_ipc_client_invoke_sync(p->client, "InitializeConnection", &init.base,
                                    &perfetto__protos__initialize_connection_response__descriptor,
                                    -1, 5000, NULL, NULL);
    if (!err)
        err = tb_ipc_client_invoke(p->client, "GetAsyncCommand", NULL,
                                   &perfetto__protos__get_async_command_response__descriptor,
                                   on_cmd, p, -1, NULL);
    if (err)
        return err;
    d.name = (char *)ds;
    d.has_will_notify_on_stop = true;
    d.will_notify_on_stop = notify_stop;
    reg.data_source_descriptor = &d;
    return tb_ipc_client_invoke_sync(p->client, "RegisterDataSource", &reg.base, NULL, -1, 5000,
                                     NULL, NULL);
}

static void prod_free(struct prod *p)
{
    tb_ipc_client_free(p->client);
    tb_loop_free(p->loop);
    tb_shm_destroy(p->shm);
}

/* CommitData of page @page (Div1, chunk 0) and/or a flush ack. */
static int commit(struct prod *p, int page, uint64_t flush_id)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mp = &m;

    if (page >= 0) {
        m.has_page = m.has_chunk = m.has_target_buffer = true;
        m.page = (uint32_t)page;
        m.target_buffer = p->target;
        req.n_chunks_to_move = 1;
        req.chunks_to_move = &mp;
    }
    if (flush_id) {
        req.has_flush_request_id = true;
        req.flush_request_id = flush_id;
    }
    return tb_ipc_client_invoke(p->client, "CommitData", &req.base, NULL, NULL, NULL, -1, NULL);
}

/* Writes GOOD_PKTS packets (timestamps GOOD_TS0..) into page 0 as one chunk of writer 1. */
static int write_packets(struct prod *p)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = 0, .writer_id = 1};
    struct tb_shm_chunk c;
    uint8_t *w;
    int err;

    tb_shm_try_partition_page(&p->shm->abi, 0, TB_SHM_LAYOUT_DIV1);
    err = tb_shm_try_acquire_chunk_for_writing(&p->shm->abi, 0, 0, &hdr, &c);
    if (err)
        return err;
    w = tb_shm_chunk_payload(&c);
    for (unsigned i = 0; i < GOOD_PKTS; i++) {
        uint64_t ts = GOOD_TS0 + i;
        size_t n = 0;

        w[4 + n++] = 0x40; /* TracePacket.timestamp */
        do {
            w[4 + n++] = (uint8_t)((ts & 0x7f) | (ts >= 0x80 ? 0x80 : 0));
            ts >>= 7;
        } while (ts);
        tb_shm_write_size_prefix(w, (uint32_t)n);
        w += 4 + n;
    }
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make(GOOD_PKTS, 0));
    err = tb_shm_release_chunk_as_complete(&p->shm->abi, 0, 0);
    return err ? err : commit(p, 0, 0);
}

/* The well-behaved producer: an app thread that writes once and answers flushes. */
struct good {
    pthread_t th;
    struct prod p;
    volatile int connected, written, stop, err;
    volatile unsigned flushes_acked;
};

static void *good_main(void *arg)
{
    struct good *g = arg;
    int err = prod_connect(&g->p, "good-prod", "good.ds", false, NULL);

    if (err)
        goto out;
    g->connected = 1;
    while (!g->stop) {
        tb_loop_run_once(g->p.loop, 10);
        if (g->p.started && g->p.shm && !g->written) {
            err = write_packets(&g->p);
            if (err)
                goto out;
            g->written = 1;
        }
        if (g->p.flush_id) {
            err = commit(&g->p, -1, g->p.flush_id);
            if (err)
                goto out;
            g->p.flush_id = 0;
            g->flushes_acked++;
        }
    }
out:
    g->err = err;
    prod_free(&g->p);
    return NULL;
}

/* ------------------------------------------------------------ consumer side */

struct cfg_store {
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds[2], *dss[2];
    Perfetto__Protos__DataSourceConfig dsc[2];
};

static void make_cfg(struct cfg_store *c, uint32_t kb, const char *ds0, const char *ds1,
                     char *legacy)
{
    perfetto__protos__trace_config__init(&c->cfg);
    perfetto__protos__trace_config__buffer_config__init(&c->buf);
    c->buf.has_size_kb = true;
    c->buf.size_kb = kb;
    c->bufs[0] = &c->buf;
    c->cfg.n_buffers = 1;
    c->cfg.buffers = c->bufs;
    c->cfg.data_sources = c->dss;
    for (size_t i = 0; i < 2; i++) {
        const char *name = i ? ds1 : ds0;

        if (!name)
            continue;
        perfetto__protos__trace_config__data_source__init(&c->ds[i]);
        perfetto__protos__data_source_config__init(&c->dsc[i]);
        c->dsc[i].name = (char *)name;
        c->dsc[i].legacy_config = legacy;
        c->ds[i].config = &c->dsc[i];
        c->dss[c->cfg.n_data_sources++] = &c->ds[i];
    }
    c->cfg.has_data_source_stop_timeout_ms = true;
    c->cfg.data_source_stop_timeout_ms = 1000;
}

/* Whether a producer named @name is connected; the round trip time goes to *@rtt_ms. */
static bool producer_listed(const char *name, int64_t *rtt_ms)
{
    Perfetto__Protos__TracingServiceState *ss;
    int64_t t0 = now_ms();
    bool found = false;
    struct tb_cc *cc;

    assert_int_equal(tb_cc_connect(daemon_.csock, 2000, &cc), 0);
    assert_int_equal(tb_cc_query_state(cc, 2000, &ss), 0);
    for (size_t i = 0; i < ss->n_producers; i++)
        found |= ss->producers[i]->name && !strcmp(ss->producers[i]->name, name);
    perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    tb_cc_free(cc);
    if (rtt_ms && now_ms() - t0 > *rtt_ms)
        *rtt_ms = now_ms() - t0;
    return found;
}

/* One session that matches only the stuck producer, with a large config, then gone. */
static void poke_stuck(char *big)
{
    Perfetto__Protos__TraceStats *st;
    struct cfg_store c;
    struct tb_cc *cc;

    make_cfg(&c, 64, "stuck.ds", NULL, big);
    assert_int_equal(tb_cc_connect(daemon_.csock, 2000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.cfg, -1), 0);
    /* A round trip, so EnableTracing was handled before the disconnect. */
    assert_int_equal(tb_cc_get_stats(cc, 2000, &st), 0);
    perfetto__protos__trace_stats__free_unpacked(st, NULL);
    tb_cc_free(cc);
}

struct tally {
    unsigned good, other;
    pid_t pid;
};

static int tally_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct tally *t = ctx;

    if (!p)
        return -EBADMSG;
    if (p->trusted_packet_sequence_id >= 2) {
        if (p->timestamp == GOOD_TS0 + t->good && p->trusted_pid == t->pid)
            t->good++;
        else
            t->other++;
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

/* Reads what is left on @fd until EOF; returns the bytes read, or -1 without EOF. */
static long drain_to_eof(int fd, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    static char buf[65536];
    long total = 0;

    while (now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            return total;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return errno == ECONNRESET ? total : -1;
        if (n > 0)
            total += n;
    }
    return -1;
}

/* ------------------------------------------------------------ test */

static void test_stuck_producer(void **state)
{
    char *big = malloc(BIG_CFG_LEN + 1);
    struct tally t = {.pid = getpid()};
    struct good g = {0};
    struct prod stuck;
    struct cfg_store c;
    int64_t t0, rtt_max = 0;
    int stuck_fd = -1, pokes = 0, err = 0;
    bool done = false, logged = false;
    struct tb_cc *cc;
    char *line = NULL;
    size_t cap = 0;
    long drained;
    FILE *f;

    assert_non_null(big);
    memset(big, 'x', BIG_CFG_LEN);
    big[BIG_CFG_LEN] = '\0';
    /* Registered, then never pumped again: its socket is never read. */
    assert_int_equal(prod_connect(&stuck, "stuck-prod", "stuck.ds", true, &stuck_fd), 0);
    assert_true(stuck_fd >= 0);
    assert_int_equal(pthread_create(&g.th, NULL, good_main, &g), 0);
    for (int i = 0; i < 500 && !g.connected && !g.err; i++)
        td_sleep_ms(10);
    assert_true(g.connected);

    /* A session over both producers. */
    make_cfg(&c, 1024, "good.ds", "stuck.ds", NULL);
    assert_int_equal(tb_cc_connect(daemon_.csock, 2000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.cfg, -1), 0);
    for (int i = 0; i < 500 && !g.written && !g.err; i++)
        td_sleep_ms(10);
    assert_true(g.written);

    /* Fill the stuck producer's socket and part of its queue: still tolerated. */
    for (; pokes < 8; pokes++)
        poke_stuck(big);
    assert_true(producer_listed("stuck-prod", &rtt_max));
    /* It never acks: the flush fails at its timeout instead of hanging. */
    t0 = now_ms();
    assert_int_equal(tb_cc_flush(cc, 500), -ECANCELED);
    assert_true(now_ms() - t0 < 3000);
    assert_true(g.flushes_acked >= 1);

    /* Past the limit it is dropped; the service answers all along. */
    while (producer_listed("stuck-prod", &rtt_max)) {
        assert_true(pokes < 80);
        poke_stuck(big);
        pokes++;
    }
    print_message("stuck producer dropped after %d sessions of ~%u KiB of commands each; "
                  "slowest QueryServiceState %lld ms\n",
                  pokes, 2 * BIG_CFG_LEN / 1024, (long long)rtt_max);
    assert_true(rtt_max < 2000);
    assert_true(producer_listed("good-prod", NULL));

    /* The session goes on with the good producer and ends normally. */
    assert_int_equal(tb_cc_flush(cc, 2000), 0);
    t0 = now_ms();
    assert_int_equal(tb_cc_disable(cc, 2000), 0);
    while (!done && now_ms() - t0 < 5000)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, &t, 5000, NULL), 0);
    print_message("good producer: %u of %u packets read back, %u others\n", t.good, GOOD_PKTS,
                  t.other);
    assert_int_equal(t.good, GOOD_PKTS);
    assert_int_equal(t.other, 0);
    tb_cc_free(cc);

    /* The stuck producer's socket was closed: what was sent, then EOF. */
    drained = drain_to_eof(stuck_fd, 5000);
    print_message("stuck producer socket: %ld bytes pending, then EOF\n", drained);
    assert_true(drained > 0);
    /* The service says why it let go. */
    f = fopen(daemon_.log, "r");
    assert_non_null(f);
    while (!logged && getline(&line, &cap, f) > 0)
        logged = strstr(line, "is not reading") != NULL;
    free(line);
    fclose(f);
    assert_true(logged);

    g.stop = 1;
    assert_int_equal(pthread_join(g.th, NULL), 0);
    assert_int_equal(g.err, 0);
    close(stuck_fd);
    prod_free(&stuck);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stuck_producer, start_daemon, stop_daemon),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
