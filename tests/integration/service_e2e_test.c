/*
 * service_e2e_test.c - the real traced-bpf daemon on real sockets in a
 * temp dir. Test producers speak the ProducerPort through common/ipc_client
 * and write raw chunks into the SMB the service hands them; the consumer is
 * common/consumer_client. Counts are checked exactly.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "daemon_util.h"
#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_sock.h"
#include "common/shm.h"
#include "perfetto/ipc/producer_port.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/trace_buffer.h"

#define PAD_FIELD 2000u /* a field no one uses: producers may write it */

static struct td_daemon daemon_;

static int start_daemon(void **state)
{
    static const char *const args[] = {"--max-commit-entries", "4096", NULL};
    struct td_opts o = {.tag = "svc-e2e", .args = args};
    struct stat st;

    (void)state;
    assert_int_equal(td_start(&daemon_, &o), 0);
    assert_int_equal(stat(daemon_.psock, &st), 0);
    /* Anyone may produce. */
    assert_int_equal(st.st_mode & 0777, 0666);
    return 0;
}

static int stop_daemon(void **state)
{
    struct stat st;

    (void)state;
    /* Clean shutdown: exit 0 and the socket files removed. */
    assert_int_equal(td_stop(&daemon_), 0);
    assert_int_not_equal(stat(daemon_.psock, &st), 0);
    td_cleanup(&daemon_, false);
    return 0;
}

/* ------------------------------------------------------------ producer */

struct commit_q {
    pthread_mutex_t lock;
    uint32_t pages[4096];
    size_t n;
};

struct tprod {
    struct tb_loop *loop;
    struct tb_ipc_client *client;
    struct tb_shm *shm;
    uint32_t target;
    uint64_t instance;
    bool started, stopped;
    struct commit_q q;
};

static void on_cmd(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__GetAsyncCommandResponse *cmd = (void *)r->msg;
    struct tprod *tp = ctx;

    if (!r->success || !cmd)
        return;
    switch (cmd->cmd_case) {
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING:
        assert_true(r->fd >= 0);
        assert_int_equal(
            tb_shm_attach(r->fd, cmd->setup_tracing->shared_buffer_page_size_kb * 1024, &tp->shm),
            0);
        r->fd = -1;
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE:
        tp->target = cmd->start_data_source->config->target_buffer;
        tp->instance = cmd->start_data_source->new_instance_id;
        tp->started = true;
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE:
        tp->stopped = true;
        break;
    default:
        break;
    }
}

static int tprod_connect(struct tprod *tp, const char *name, const char *ds)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__RegisterDataSourceRequest reg =
        PERFETTO__PROTOS__REGISTER_DATA_SOURCE_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    int err;

    memset(tp, 0, sizeof(*tp));
    pthread_mutex_init(&tp->q.lock, NULL);
    if ((err = tb_loop_new(&tp->loop)) || (err = tb_ipc_client_new(tp->loop, NULL, &tp->client)) ||
        (err = tb_ipc_client_connect_sync(tp->client, daemon_.psock, "ProducerPort", 5000)))
        return err;
    init.producer_name = (char *)name;
    err = tb_ipc_client_invoke_sync(tp->client, "InitializeConnection", &init.base,
                                    &perfetto__protos__initialize_connection_response__descriptor,
                                    -1, 5000, NULL, NULL);
    if (err)
        return err;
    err = tb_ipc_client_invoke(tp->client, "GetAsyncCommand", NULL,
                               &perfetto__protos__get_async_command_response__descriptor, on_cmd,
                               tp, -1, NULL);
    if (err)
        return err;
    d.name = (char *)ds;
    reg.data_source_descriptor = &d;
    return tb_ipc_client_invoke_sync(tp->client, "RegisterDataSource", &reg.base, NULL, -1, 5000,
                                     NULL, NULL);
}

static void tprod_free(struct tprod *tp)
{
    tb_ipc_client_free(tp->client);
    tb_loop_free(tp->loop);
    tb_shm_destroy(tp->shm);
    pthread_mutex_destroy(&tp->q.lock);
}

static void wait_started(struct tprod *tp)
{
    for (int i = 0; i < 2500 && !tp->started; i++)
        tb_loop_run_once(tp->loop, 2);
    assert_true(tp->started);
    assert_non_null(tp->shm);
    assert_true(tp->target != 0);
}

static void register_writer(struct tprod *tp, uint32_t wid)
{
    Perfetto__Protos__RegisterTraceWriterRequest req =
        PERFETTO__PROTOS__REGISTER_TRACE_WRITER_REQUEST__INIT;

    req.has_trace_writer_id = req.has_target_buffer = true;
    req.trace_writer_id = wid;
    req.target_buffer = tp->target;
    assert_int_equal(tb_ipc_client_invoke(tp->client, "RegisterTraceWriter", &req.base, NULL, NULL,
                                          NULL, -1, NULL),
                     0);
}

/* Sends queued commits; entries are page numbers (Div1: chunk 0). */
static void send_commits(struct tprod *tp, uint32_t target)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    static Perfetto__Protos__CommitDataRequest__ChunksToMove m[4096], *mp[4096];
    size_t n;

    pthread_mutex_lock(&tp->q.lock);
    n = tp->q.n;
    for (size_t i = 0; i < n; i++) {
        perfetto__protos__commit_data_request__chunks_to_move__init(&m[i]);
        m[i].has_page = m[i].has_chunk = m[i].has_target_buffer = true;
        m[i].page = tp->q.pages[i];
        m[i].chunk = 0;
        m[i].target_buffer = target;
        mp[i] = &m[i];
    }
    tp->q.n = 0;
    pthread_mutex_unlock(&tp->q.lock);
    if (!n)
        return;
    req.n_chunks_to_move = n;
    req.chunks_to_move = mp;
    assert_int_equal(
        tb_ipc_client_invoke(tp->client, "CommitData", &req.base, NULL, NULL, NULL, -1, NULL), 0);
}

/* Round trip: every frame sent before it has been handled by the service. */
static void sync_producer(struct tprod *tp)
{
    assert_int_equal(
        tb_ipc_client_invoke_sync(tp->client, "Sync", NULL, NULL, -1, 5000, NULL, NULL), 0);
}

/* A minimal TraceWriter on raw chunks: Div1 pages, fragments across chunks. */
struct mw {
    struct tprod *tp;
    uint16_t wid;
    uint32_t next_chunk_id;
    struct tb_shm_chunk cur;
    bool have;
    uint8_t *p, *end;
    uint16_t count;
    uint8_t flags;
    volatile int *stop;
};

static void mw_release(struct mw *w)
{
    const struct tb_shm_abi *abi = &w->tp->shm->abi;

    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&w->cur), tb_shm_packets_make(w->count, w->flags));
    assert_int_equal(tb_shm_release_chunk_as_complete(abi, w->cur.page, 0), 0);
    pthread_mutex_lock(&w->tp->q.lock);
    w->tp->q.pages[w->tp->q.n++] = w->cur.page;
    pthread_mutex_unlock(&w->tp->q.lock);
    w->have = false;
}

static void mw_acquire(struct mw *w)
{
    const struct tb_shm_abi *abi = &w->tp->shm->abi;
    struct tb_shm_chunk_header hdr = {.writer_id = w->wid};

    for (;;) {
        for (size_t pg = 0; pg < abi->num_pages; pg++) {
            size_t page = (pg + w->wid * 7u) % abi->num_pages;

            tb_shm_try_partition_page(abi, page, TB_SHM_LAYOUT_DIV1);
            hdr.chunk_id = w->next_chunk_id;
            if (tb_shm_try_acquire_chunk_for_writing(abi, page, 0, &hdr, &w->cur) == 0) {
                w->next_chunk_id++;
                w->have = true;
                w->p = tb_shm_chunk_payload(&w->cur);
                w->end = w->p + tb_shm_chunk_payload_size(&w->cur);
                w->count = 0;
                w->flags = 0;
                return;
            }
        }
        td_sleep_ms(1); /* SMB full: wait for the service to free chunks */
    }
}

static void mw_write(struct mw *w, const uint8_t *data, size_t len)
{
    if (!w->have || w->end - w->p < 5 || w->count >= 1000) {
        if (w->have)
            mw_release(w);
        mw_acquire(w);
    }
    for (;;) {
        size_t avail = (size_t)(w->end - w->p) - 4;
        size_t take = len < avail ? len : avail;

        w->count++;
        tb_shm_write_size_prefix(w->p, (uint32_t)take);
        memcpy(w->p + 4, data, take);
        w->p += 4 + take;
        /* Publish as we go, like real writers: a scraper may read it. */
        tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&w->cur),
                                   tb_shm_packets_make(w->count, w->flags));
        data += take;
        len -= take;
        if (!len)
            return;
        w->flags |= TB_SHM_FLAG_LAST_CONTINUES;
        mw_release(w);
        mw_acquire(w);
        w->flags = TB_SHM_FLAG_FIRST_CONTINUES;
    }
}

/* Packet: timestamp = writer << 32 | seq, then @pad bytes of a private field. */
static size_t make_packet(uint8_t *out, uint16_t wid, uint32_t seq, size_t pad)
{
    uint64_t ts = (uint64_t)wid << 32 | seq;
    size_t n = 0;

    out[n++] = 0x40;
    do {
        out[n++] = (uint8_t)((ts & 0x7f) | (ts >= 0x80 ? 0x80 : 0));
        ts >>= 7;
    } while (ts);
    out[n++] = (uint8_t)((PAD_FIELD << 3 | 2) | 0x80);
    out[n++] = (uint8_t)((PAD_FIELD << 3 | 2) >> 7);
    {
        size_t v = pad;

        do {
            out[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
            v >>= 7;
        } while (v);
    }
    memset(out + n, (int)(seq & 0xff), pad);
    return n + pad;
}

struct wthread {
    struct mw w;
    unsigned npkts;
};

static void *writer_main(void *arg)
{
    struct wthread *t = arg;
    static __thread uint8_t buf[320 * 1024];

    for (unsigned i = 0; i < t->npkts; i++) {
        /* Mostly small packets; every 97th spans several 4 KiB chunks, and
         * one of writer 1 is bigger than the SMB and than an IPC frame. */
        size_t pad = i % 97 == 0 ? 9000 + i % 7 : 10 + (i * 37) % 300;

        if (t->w.wid == 1 && i == t->npkts / 2)
            pad = 300 * 1024;

        mw_write(&t->w, buf, make_packet(buf, t->w.wid, i, pad));
    }
    if (t->w.have)
        mw_release(&t->w);
    return NULL;
}

/* ------------------------------------------------------------ consumer */

static void config(Perfetto__Protos__TraceConfig *cfg,
                   Perfetto__Protos__TraceConfig__BufferConfig *buf,
                   Perfetto__Protos__TraceConfig__BufferConfig **bufs,
                   Perfetto__Protos__TraceConfig__DataSource *ds,
                   Perfetto__Protos__TraceConfig__DataSource **dss,
                   Perfetto__Protos__DataSourceConfig *dsc, uint32_t kb, bool ring)
{
    perfetto__protos__trace_config__init(cfg);
    perfetto__protos__trace_config__buffer_config__init(buf);
    perfetto__protos__trace_config__data_source__init(ds);
    perfetto__protos__data_source_config__init(dsc);
    buf->has_size_kb = true;
    buf->size_kb = kb;
    buf->has_fill_policy = true;
    buf->fill_policy = ring
                           ? PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__RING_BUFFER
                           : PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    bufs[0] = buf;
    cfg->n_buffers = 1;
    cfg->buffers = bufs;
    dsc->name = (char *)"e2e.test";
    ds->config = dsc;
    dss[0] = ds;
    cfg->n_data_sources = 1;
    cfg->data_sources = dss;
}

#define MAX_WRITERS 8

struct tally {
    uint32_t next[MAX_WRITERS + 1]; /* next expected seq per writer */
    uint64_t packets, bad_order, service;
    uint64_t chunks_overwritten, chunks_written;
    uint64_t max_batch; /* largest inflated compressed_packets payload */
    bool stats;
};

static int tally_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct tally *t = ctx;

    assert_non_null(p);
    if (p->trusted_packet_sequence_id == 1) {
        t->service++;
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS) {
            t->stats = true;
            t->chunks_overwritten = p->trace_stats->buffer_stats[0]->chunks_overwritten;
            t->chunks_written = p->trace_stats->buffer_stats[0]->chunks_written;
        }
    } else {
        uint32_t wid = (uint32_t)(p->timestamp >> 32), seq = (uint32_t)p->timestamp;

        assert_true(p->trusted_packet_sequence_id >= 2);
        assert_int_equal(p->trusted_uid, (int32_t)getuid());
        assert_true(wid >= 1 && wid <= MAX_WRITERS);
        if (seq != t->next[wid])
            t->bad_order++;
        t->next[wid] = seq + 1;
        t->packets++;
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

static void finish_session(struct tb_cc *cc, struct tally *t)
{
    bool done = false;
    int err;

    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, t, 10000, NULL), 0);
    assert_true(t->stats);
}

/* ------------------------------------------------------------ tests */

static void run_writers(struct tprod *tp, unsigned k, unsigned per)
{
    struct wthread th[MAX_WRITERS];
    pthread_t tid[MAX_WRITERS];
    volatile int stop = 0;

    for (unsigned i = 0; i < k; i++) {
        memset(&th[i], 0, sizeof(th[i]));
        th[i].w.tp = tp;
        th[i].w.wid = (uint16_t)(i + 1);
        th[i].w.stop = &stop;
        th[i].npkts = per;
        register_writer(tp, i + 1);
        assert_int_equal(pthread_create(&tid[i], NULL, writer_main, &th[i]), 0);
    }
    for (unsigned i = 0; i < k; i++) {
        /* Keep committing while the writers run, so chunks get recycled. */
        while (pthread_tryjoin_np(tid[i], NULL) == EBUSY) {
            send_commits(tp, tp->target);
            tb_loop_run_once(tp->loop, 1);
        }
    }
    send_commits(tp, tp->target);
    sync_producer(tp);
}

static void test_n_packets_k_threads(void **state)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    struct tally t = {0};
    struct tprod tp;
    struct tb_cc *cc;
    const unsigned k = 4, per = 3000;

    assert_int_equal(tprod_connect(&tp, "e2e-producer", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 64 * 1024, false);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    wait_started(&tp);
    run_writers(&tp, k, per);
    finish_session(cc, &t);
    assert_int_equal(t.packets, (uint64_t)k * per);
    assert_int_equal(t.bad_order, 0);
    for (unsigned i = 1; i <= k; i++)
        assert_int_equal(t.next[i], per);
    tb_cc_free(cc);
    tprod_free(&tp);
}

static void test_ring_wrap(void **state)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    struct tally t = {0};
    struct wthread th;
    struct tprod tp;
    struct tb_cc *cc;
    uint8_t pkt[8192];
    const unsigned m = 60;
    size_t fit, payload;

    assert_int_equal(tprod_connect(&tp, "e2e-ring", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 64, true);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    wait_started(&tp);
    register_writer(&tp, 1);
    memset(&th, 0, sizeof(th));
    th.w.tp = &tp;
    th.w.wid = 1;
    /* One packet per chunk, each chunk committed on its own. */
    for (unsigned i = 0; i < m; i++) {
        mw_write(&th.w, pkt, make_packet(pkt, 1, i, 100));
        mw_release(&th.w);
        send_commits(&tp, tp.target);
        sync_producer(&tp);
    }
    payload = tb_shm_chunk_payload_size(&th.w.cur);
    fit = (64 * 1024) / tb_tbuf_chunk_footprint(payload);
    finish_session(cc, &t);
    assert_int_equal(t.chunks_written, m);
    assert_int_equal(t.chunks_overwritten, m - fit);
    assert_int_equal(t.packets, fit);
    /* Only the newest chunks survive, still in order. */
    assert_int_equal(t.next[1], m);
    tb_cc_free(cc);
    tprod_free(&tp);
}

static void test_liar_and_good_producer(void **state)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__TraceStats *st;
    struct tally t = {0};
    struct tprod good, bad;
    struct tb_cc *cc;
    uint8_t junk[64];
    int fd;

    assert_int_equal(tprod_connect(&good, "good", "e2e.test"), 0);
    assert_int_equal(tprod_connect(&bad, "bad", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 16 * 1024, false);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    wait_started(&good);
    wait_started(&bad);
    /* The liar commits pages that do not exist and chunks it never completed. */
    for (uint32_t pg = 0; pg < 100; pg++) {
        pthread_mutex_lock(&bad.q.lock);
        bad.q.pages[bad.q.n++] = pg * 1000 + 7;
        pthread_mutex_unlock(&bad.q.lock);
    }
    send_commits(&bad, bad.target);
    sync_producer(&bad);
    /* A raw peer sends an absurd frame header and garbage. */
    assert_int_equal(tb_ipc_sock_connect(daemon_.psock, false, &fd), 0);
    memset(junk, 0xff, sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    assert_int_equal(read(fd, junk, sizeof(junk)), 0); /* the service hung up */
    close(fd);
    run_writers(&good, 2, 1500);
    assert_int_equal(tb_cc_get_stats(cc, 5000, &st), 0);
    assert_int_equal(st->chunks_discarded, 100);
    perfetto__protos__trace_stats__free_unpacked(st, NULL);
    finish_session(cc, &t);
    assert_int_equal(t.packets, 3000);
    assert_int_equal(t.bad_order, 0);
    tb_cc_free(cc);
    tprod_free(&bad);
    tprod_free(&good);
}

/* Child: commit 100 packets, leave 50 in a chunk being written, then wait to die. */
static void killed_producer_child(int ready_fd)
{
    struct wthread th;
    struct tprod tp;
    uint8_t pkt[256];

    if (tprod_connect(&tp, "doomed", "e2e.test"))
        _exit(1);
    while (!tp.started)
        tb_loop_run_once(tp.loop, 10);
    register_writer(&tp, 1);
    memset(&th, 0, sizeof(th));
    th.w.tp = &tp;
    th.w.wid = 1;
    for (unsigned i = 0; i < 100; i++) {
        mw_write(&th.w, pkt, make_packet(pkt, 1, i, 20));
        if (i % 10 == 9)
            mw_release(&th.w);
    }
    send_commits(&tp, tp.target);
    for (unsigned i = 100; i < 150; i++)
        mw_write(&th.w, pkt, make_packet(pkt, 1, i, 20));
    sync_producer(&tp);
    if (write(ready_fd, "1", 1) != 1)
        _exit(1);
    for (;;)
        tb_loop_run_once(tp.loop, 1000);
}

static void test_sigkill_producer(void **state)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__TracingServiceState *ss;
    struct tally t = {0};
    struct tb_cc *cc;
    int pfd[2];
    pid_t child;
    char c;

    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 1024, false);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    assert_int_equal(pipe(pfd), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pfd[0]);
        killed_producer_child(pfd[1]);
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    /* Give the service a moment to see the hang-up and scrape. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tb_cc_query_state(cc, 5000, &ss), 0);
        c = ss->n_producers == 0;
        perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
        if (c)
            break;
        td_sleep_ms(10);
    }
    finish_session(cc, &t);
    /* 100 committed + 49 scraped (the last packet of a chunk being written is unsafe). */
    assert_int_equal(t.packets, 149);
    assert_int_equal(t.bad_order, 0);
    tb_cc_free(cc);
}

static void test_consumer_disconnect_frees_session(void **state)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__TracingServiceState *ss;
    struct tprod tp;
    struct tb_cc *cc;
    int sessions = -1;

    assert_int_equal(tprod_connect(&tp, "watcher", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 1024, false);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    wait_started(&tp);
    tb_cc_free(cc);
    for (int i = 0; i < 500 && !tp.stopped; i++)
        tb_loop_run_once(tp.loop, 2);
    assert_true(tp.stopped);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_query_state(cc, 5000, &ss), 0);
    sessions = ss->num_sessions;
    perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    assert_int_equal(sessions, 0);
    tb_cc_free(cc);
    tprod_free(&tp);
}

/* Walks "0A varint(len) packet" records, inflating compressed_packets. */
static void tally_trace(struct tally *t, const uint8_t *d, size_t n, unsigned *compressed)
{
    size_t off = 0;

    while (off < n) {
        uint64_t len = 0;
        unsigned shift = 0;
        Perfetto__Protos__TracePacket *p;

        assert_int_equal(d[off++], 0x0a);
        while (d[off] & 0x80) {
            len |= (uint64_t)(d[off++] & 0x7f) << shift;
            shift += 7;
        }
        len |= (uint64_t)d[off++] << shift;
        assert_true(off + len <= n);
        p = perfetto__protos__trace_packet__unpack(NULL, len, d + off);
        assert_non_null(p);
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_COMPRESSED_PACKETS) {
            uLongf cap = 64u << 20, out_len = cap;
            uint8_t *out = malloc(cap);

            assert_int_equal(
                uncompress(out, &out_len, p->compressed_packets.data, p->compressed_packets.len),
                Z_OK);
            (*compressed)++;
            if (out_len > t->max_batch)
                t->max_batch = out_len;
            tally_trace(t, out, out_len, compressed);
            free(out);
        } else {
            tally_packet(t, d + off, len);
        }
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
        off += len;
    }
}

static void run_file_session(bool deflate)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__TraceConfig__CompressionConfig cc_cfg;
    Perfetto__Protos__TraceConfig__CompressionConfig__Deflate dfl;
    char path[400];
    struct tally t = {0};
    unsigned compressed = 0;
    struct tprod tp;
    struct tb_cc *cc;
    bool done = false;
    struct stat st;
    uint8_t *data;
    int fd, err = 0;

    snprintf(path, sizeof(path), "%s/trace-%d.pftrace", daemon_.dir, deflate);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(tprod_connect(&tp, "file-producer", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    /* A buffer far smaller than the data: only periodic writes keep it all. */
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 512, false);
    cfg.has_write_into_file = true;
    cfg.write_into_file = true;
    cfg.has_file_write_period_ms = true;
    cfg.file_write_period_ms = 100;
    if (deflate) {
        perfetto__protos__trace_config__compression_config__init(&cc_cfg);
        perfetto__protos__trace_config__compression_config__deflate__init(&dfl);
        cc_cfg.deflate = &dfl;
        cfg.compression = &cc_cfg;
    }
    assert_int_equal(tb_cc_enable(cc, &cfg, fd), 0);
    wait_started(&tp);
    register_writer(&tp, 1);
    {
        struct wthread th;
        uint8_t pkt[512];

        memset(&th, 0, sizeof(th));
        th.w.tp = &tp;
        th.w.wid = 1;
        for (unsigned i = 0; i < 6000; i++) {
            mw_write(&th.w, pkt, make_packet(pkt, 1, i, 200));
            if (i % 500 == 499) {
                mw_release(&th.w);
                send_commits(&tp, tp.target);
                sync_producer(&tp);
                td_sleep_ms(120); /* let a file write pass drain the buffer */
            }
        }
    }
    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(fstat(fd, &st), 0);
    data = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, data, (size_t)st.st_size, 0), st.st_size);
    tally_trace(&t, data, (size_t)st.st_size, &compressed);
    free(data);
    close(fd);
    unlink(path);
    assert_int_equal(t.packets, 6000);
    assert_int_equal(t.bad_order, 0);
    assert_true(t.stats);
    assert_true(deflate ? compressed > 0 : compressed == 0);
    tb_cc_free(cc);
    tprod_free(&tp);
}

static void test_write_into_file(void **state)
{
    run_file_session(false);
}

static void test_write_into_file_deflate(void **state)
{
    run_file_session(true);
}

/* One session of @k writers x @per packets, read back with tb_cc_read_buffers. */
static void read_session_to_file(bool deflate, const char *path, unsigned k, unsigned per)
{
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    uint64_t packets = 0, bytes = 0;
    struct tprod tp;
    struct tb_cc *cc;
    bool done = false;
    struct stat st;
    int fd, err = 0;

    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(tprod_connect(&tp, "read-producer", "e2e.test"), 0);
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    config(&cfg, &buf, bufs, &ds, dss, &dsc, 64 * 1024, false);
    if (deflate) {
        /* The deprecated spelling: what tracebpf record --compress sends. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        cfg.has_compression_type = true;
        cfg.compression_type =
            PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE;
#pragma GCC diagnostic pop
    }
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    wait_started(&tp);
    run_writers(&tp, k, per);
    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(tb_cc_read_buffers(cc, fd, 10000, &packets, &bytes), 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, bytes);
    close(fd);
    tb_cc_free(cc);
    tprod_free(&tp);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    struct stat st;
    uint8_t *data;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return data;
}

/* Top-level records of a trace file, without looking inside them. */
static unsigned count_records(const uint8_t *d, size_t n)
{
    unsigned count = 0;
    size_t off = 0;

    while (off < n) {
        uint64_t len = 0;
        unsigned shift = 0;

        assert_int_equal(d[off++], 0x0a);
        while (d[off] & 0x80) {
            len |= (uint64_t)(d[off++] & 0x7f) << shift;
            shift += 7;
        }
        len |= (uint64_t)d[off++] << shift;
        off += len;
        count++;
    }
    assert_int_equal(off, n);
    return count;
}

/* "tracebpf info @path" output but the lines that differ between two runs:
 * the file name and the time span (the service's own timestamps). */
static char *cli_info(const char *path)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");
    char cmd[1024], line[512];
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    FILE *f;

    snprintf(cmd, sizeof(cmd), "%s/consumer/tracebpf info %s 2>&1", bd ? bd : ".", path);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, path) || !strncmp(line, "time span:", 10))
            continue;
        assert_true(len + strlen(line) < cap);
        memcpy(out + len, line, strlen(line));
        len += strlen(line);
    }
    assert_int_equal(pclose(f), 0);
    return out;
}

static void test_read_buffers_deflate(void **state)
{
    const unsigned k = 3, per = 3000;
    char plain[400], packed[400];
    struct tally tp = {0}, tz = {0};
    unsigned cp = 0, cz = 0, records;
    char *info_plain, *info_packed;
    size_t np, nz;
    bool same;
    uint8_t *d;

    snprintf(plain, sizeof(plain), "%s/read-plain.pftrace", daemon_.dir);
    snprintf(packed, sizeof(packed), "%s/read-deflate.pftrace", daemon_.dir);
    read_session_to_file(false, plain, k, per);
    read_session_to_file(true, packed, k, per);

    d = slurp(plain, &np);
    tally_trace(&tp, d, np, &cp);
    free(d);
    assert_int_equal(cp, 0);
    assert_int_equal(tp.packets, (uint64_t)k * per);

    d = slurp(packed, &nz);
    records = count_records(d, nz);
    tally_trace(&tz, d, nz, &cz);
    free(d);
    /* Every record of the file is a batch; together they hold every packet. */
    assert_true(cz > 1);
    assert_int_equal(records, cz);
    assert_int_equal(tz.packets, (uint64_t)k * per);
    assert_int_equal(tz.bad_order, 0);
    for (unsigned i = 1; i <= k; i++)
        assert_int_equal(tz.next[i], per);
    assert_true(tz.stats);
    /* Sync marker, config, system info, final stats at least; as uncompressed. */
    assert_true(tz.service >= 4);
    assert_int_equal(tz.service, tp.service);
    /* Batches stay bounded: ~128 KiB plus the packet that crossed the line
     * (writer 1 has one of 300 KiB). */
    assert_true(tz.max_batch < 128 * 1024 + 320 * 1024);
    assert_true(nz < np);

    info_plain = cli_info(plain);
    info_packed = cli_info(packed);
    same = strcmp(info_packed, info_plain) == 0;
    if (!same)
        fprintf(stderr, "compressed:\n%s\nplain:\n%s\n", info_packed, info_plain);
    free(info_plain);
    free(info_packed);
    /* Same packets by type, sequences and losses: the reader inflates. */
    assert_true(same);
    unlink(plain);
    unlink(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_packets_k_threads),
        cmocka_unit_test(test_ring_wrap),
        cmocka_unit_test(test_liar_and_good_producer),
        cmocka_unit_test(test_sigkill_producer),
        cmocka_unit_test(test_consumer_disconnect_frees_session),
        cmocka_unit_test(test_write_into_file),
        cmocka_unit_test(test_write_into_file_deflate),
        cmocka_unit_test(test_read_buffers_deflate),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
