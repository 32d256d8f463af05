/*
 * producer_client_test.c (integration) - the producer client against the
 * real traced-bpf daemon (--no-probes, sockets in a temp dir, run through
 * daemon_util.h): a consumer
 * enables a session through common/consumer_client, writer threads put N
 * packets each through TraceWriters over the client's SMB, and the consumer
 * reads exactly N per writer back, in order. Then the daemon is restarted
 * and the same client reconnects and traces again.
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
#include <time.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/producer_client.h"
#include "common/trace_writer.h"
#include "daemon_util.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#define DS_NAME   "pc.integration"
#define PAD_FIELD 2000u /* unused by TracePacket, so the service keeps it */
#define N_WRITERS 3
#define N_PACKETS 4000u
#define WAIT_MS   5000

static struct td_daemon daemon_;

struct state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int connected, disconnected, started, stopped;
    uint32_t target_buffer;
    struct tb_pc *pc;
};

/* The daemon shut down cleanly on SIGTERM. */
static void daemon_stop(void)
{
    assert_int_equal(td_stop(&daemon_), 0);
}

/* Wait until @field reaches @want (callbacks run on the client's thread). */
static bool wait_for(struct state *s, const int *field, int want)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&s->lock);
    while (*field < want && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    ok = *field >= want;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void bump(struct state *s, int *field)
{
    pthread_mutex_lock(&s->lock);
    (*field)++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void cb_connected(struct tb_pc *pc, void *ctx)
{
    struct state *s = ctx;

    (void)pc;
    bump(s, &s->connected);
}

static void cb_disconnected(struct tb_pc *pc, void *ctx)
{
    struct state *s = ctx;

    (void)pc;
    bump(s, &s->disconnected);
}

static void cb_start(struct tb_pc *pc, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    struct state *s = ctx;

    (void)pc;
    (void)id;
    pthread_mutex_lock(&s->lock);
    s->target_buffer = cfg->target_buffer;
    pthread_mutex_unlock(&s->lock);
    bump(s, &s->started);
}

static bool cb_stop(struct tb_pc *pc, void *ctx, uint64_t id)
{
    struct state *s = ctx;

    (void)pc;
    (void)id;
    bump(s, &s->stopped);
    return true; /* the writers flushed before the session was disabled */
}

/* ------------------------------------------------------------ writers */

struct writer_arg {
    struct state *s;
    int err;
};

/* One thread, one sequence: N packets, timestamp = writer id << 32 | seq. */
static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    struct tb_tw_opts o = {.ops = &tb_tw_arbiter_ops, .policy = TB_TW_STALL};
    struct tb_pc *pc = a->s->pc;
    static const char pad[200] = "padding so the SMB wraps several times";
    struct tb_pc_smb *smb;
    struct tb_tw *tw;
    uint32_t i;

    a->err = tb_pc_smb_acquire(pc, &smb);
    if (a->err)
        return NULL;
    o.ops_ctx = tb_pc_smb_arbiter(smb);
    o.writer_id = tb_pc_alloc_writer_id(pc);
    o.target_buffer = a->s->target_buffer;
    a->err = tb_pc_register_trace_writer(pc, o.writer_id, o.target_buffer);
    if (!a->err)
        a->err = tb_tw_create(&o, &tw);
    if (a->err)
        goto out;
    for (i = 0; i < N_PACKETS && !a->err; i++) {
        struct tb_pbw *w = tb_tw_begin_packet(tw);

        tb_pbw_append_varint(w, 8, (uint64_t)o.writer_id << 32 | i);
        tb_pbw_append_bytes(w, PAD_FIELD, pad, sizeof(pad));
        a->err = tb_tw_end_packet(tw);
    }
    if (!a->err)
        a->err = tb_tw_flush(tw);
    tb_tw_destroy(tw);
    tb_pc_unregister_trace_writer(pc, o.writer_id);
out:
    tb_pc_free_writer_id(pc, o.writer_id);
    tb_pc_smb_release(smb);
    return NULL;
}

/* ------------------------------------------------------------ consumer */

struct tally {
    uint32_t next[TB_PC_MAX_WRITER_ID + 1];
    uint64_t packets, out_of_order;
};

static int tally_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct tally *t = ctx;
    uint32_t wid, seq;

    if (!p)
        return -EBADMSG;
    if (p->trusted_packet_sequence_id >= 2 && p->has_timestamp) {
        wid = (uint32_t)(p->timestamp >> 32);
        seq = (uint32_t)p->timestamp;
        if (wid && wid <= TB_PC_MAX_WRITER_ID) {
            t->out_of_order += seq != t->next[wid];
            t->next[wid] = seq + 1;
            t->packets++;
        }
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

/* One session: enable, write from N_WRITERS threads, disable, read back. */
static void run_session(struct state *s, int round)
{
    Perfetto__Protos__TraceConfig__BufferConfig
        buf = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT,
        *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource ds =
                                                  PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT,
                                              *dss[1] = {&ds};
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    struct writer_arg args[N_WRITERS];
    pthread_t th[N_WRITERS];
    struct tally *t = calloc(1, sizeof(*t));
    bool done = false;
    struct tb_cc *cc;
    int i, err = 0;

    buf.has_size_kb = true;
    buf.size_kb = 8 * 1024; /* room for every packet: the count must be exact */
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    dsc.name = (char *)DS_NAME;
    ds.config = &dsc;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;

    assert_int_equal(tb_cc_connect(daemon_.csock, WAIT_MS, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    assert_true(wait_for(s, &s->started, round));
    assert_true(s->target_buffer != 0);

    for (i = 0; i < N_WRITERS; i++) {
        args[i] = (struct writer_arg){.s = s};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
    }
    for (i = 0; i < N_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].err, 0);
    }

    assert_int_equal(tb_cc_disable(cc, WAIT_MS), 0);
    for (i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_true(wait_for(s, &s->stopped, round));
    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, t, 10000, NULL), 0);
    assert_int_equal(t->packets, (uint64_t)N_WRITERS * N_PACKETS);
    assert_int_equal(t->out_of_order, 0);
    tb_cc_free(cc);
    free(t);
}

static int setup(void **state)
{
    const struct td_opts o = {.tag = "pc-integ"};
    int err;

    *state = NULL;
    err = td_start(&daemon_, &o);
    if (err)
        td_cleanup(&daemon_, false);
    assert_int_equal(err, 0);
    return 0;
}

static int teardown(void **state)
{
    int code;

    (void)state;
    code = td_stop(&daemon_);
    td_cleanup(&daemon_, false);
    assert_int_equal(code, 0);
    return 0;
}

static void test_write_read_restart(void **unused)
{
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct state s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct tb_pc_opts o = {
        .producer_name = "pc-integration",
        .socket_name = daemon_.psock,
        .own_thread = true,
        .backoff_initial_ms = 50,
        .backoff_max_ms = 200,
        .cb = {.on_connected = cb_connected,
               .on_disconnected = cb_disconnected,
               .on_start = cb_start,
               .on_stop = cb_stop},
        .ctx = &s,
    };
    struct tb_pc_stats st;

    (void)unused;
    assert_int_equal(tb_pc_create(&o, &s.pc), 0);
    d.name = (char *)DS_NAME;
    d.has_will_notify_on_start = d.has_will_notify_on_stop = true;
    d.will_notify_on_start = d.will_notify_on_stop = true;
    assert_int_equal(tb_pc_register_data_source(s.pc, &d), 0);
    assert_true(wait_for(&s, &s.connected, 1));

    run_session(&s, 1);

    /* The daemon restarts: the client notices, reconnects, re-registers. */
    daemon_stop();
    assert_true(wait_for(&s, &s.disconnected, 1));
    assert_int_equal(td_launch(&daemon_, NULL), 0);
    assert_true(wait_for(&s, &s.connected, 2));
    run_session(&s, 2);

    tb_pc_get_stats(s.pc, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.commit_send_errors, 0);
    assert_true(st.chunks_committed > 0);
    tb_pc_destroy(s.pc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_restart, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
