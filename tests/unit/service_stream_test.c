/*
 * service_stream_test.c - ReadBuffers streams with bounded memory: the core
 * and the real ConsumerPort run on a loop thread, a producer fills a 64 MiB
 * buffer, a slow consumer (the real consumer client over a real socket)
 * reads every packet back in order, and the port's peak transmit queue stays
 * near its high-water mark instead of holding the whole buffer.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/ipc_host.h"
#include "common/shm.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/core.h"
#include "service/ports.h"

#define BUF_KB       (64u * 1024u)
#define PKT_PAD      380u
#define PKTS_A_CHUNK 10u
#define PAD_FIELD    2000u

struct prod {
    struct tb_svc_producer *p;
    struct tb_shm *shm;
    uint32_t target;
    uint64_t next_ts;
    uint64_t chunks;
    atomic_int filled; /* 1 once the buffer is full, -1 on error */
};

struct fix {
    struct tb_loop *loop;
    struct tb_svc_core *core;
    struct tb_svc_port *port;
    struct prod prod;
    pthread_t thread;
    char dir[64], sock[96];
};

static int p_send(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    struct prod *pr = ctx;

    if (cmd->cmd_case == PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING &&
        fd >= 0 && !pr->shm)
        return tb_shm_attach(dup(fd), cmd->setup_tracing->shared_buffer_page_size_kb * 1024,
                             &pr->shm);
    if (cmd->cmd_case == PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE)
        pr->target = cmd->start_data_source->config->target_buffer;
    return 0;
}

static void p_kick(void *ctx, const char *why)
{
    (void)ctx;
    (void)why;
}

static const struct tb_svc_producer_ops p_ops = {.send_command = p_send, .kick = p_kick};

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* TracePacket{timestamp = @ts, field PAD_FIELD = PKT_PAD bytes}. */
static size_t make_packet(uint8_t *out, uint64_t ts)
{
    size_t n = 0;

    out[n++] = 0x40;
    n += put_varint(out + n, ts);
    n += put_varint(out + n, PAD_FIELD << 3 | 2);
    n += put_varint(out + n, PKT_PAD);
    memset(out + n, (int)(ts & 0xff), PKT_PAD);
    return n + PKT_PAD;
}

static int commit_page(struct prod *pr, uint32_t page)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mp = &m;

    m.has_page = m.has_chunk = m.has_target_buffer = true;
    m.page = page;
    m.target_buffer = pr->target;
    req.n_chunks_to_move = 1;
    req.chunks_to_move = &mp;
    return tb_svc_producer_commit(pr->p, &req);
}

/* One chunk of PKTS_A_CHUNK packets in page 0, committed (the service frees it). */
static int write_chunk(struct prod *pr)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = (uint32_t)pr->chunks, .writer_id = 1};
    struct tb_shm_chunk c;
    uint8_t *p;

    tb_shm_try_partition_page(&pr->shm->abi, 0, TB_SHM_LAYOUT_DIV1);
    if (tb_shm_try_acquire_chunk_for_writing(&pr->shm->abi, 0, 0, &hdr, &c))
        return -EBUSY;
    p = tb_shm_chunk_payload(&c);
    for (unsigned i = 0; i < PKTS_A_CHUNK; i++) {
        size_t n = make_packet(p + 4, pr->next_ts++);

        tb_shm_write_size_prefix(p, (uint32_t)n);
        p += 4 + n;
    }
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make(PKTS_A_CHUNK, 0));
    if (tb_shm_release_chunk_as_complete(&pr->shm->abi, 0, 0))
        return -EIO;
    pr->chunks++;
    return commit_page(pr, 0);
}

/* Loop task: wait for the session to start, then fill its buffer to ~62 MiB. */
static void fill(void *ctx)
{
    struct fix *f = ctx;
    struct prod *pr = &f->prod;
    const uint64_t nchunks = (uint64_t)(BUF_KB - 2048) / 4;

    if (!pr->target || !pr->shm) {
        if (tb_loop_add_timer(f->loop, 5, 0, fill, f, NULL))
            atomic_store(&pr->filled, -1);
        return;
    }
    if (tb_svc_producer_register_writer(pr->p, 1, pr->target)) {
        atomic_store(&pr->filled, -1);
        return;
    }
    while (pr->chunks < nchunks)
        if (write_chunk(pr)) {
            atomic_store(&pr->filled, -1);
            return;
        }
    atomic_store(&pr->filled, 1);
}

static void quit(void *ctx)
{
    tb_loop_quit(ctx);
}

static void *loop_main(void *arg)
{
    tb_loop_run(((struct fix *)arg)->loop);
    return NULL;
}

static int setup(void **state)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/svc-stream-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/consumer.sock", f->dir);
    assert_int_equal(tb_loop_new(&f->loop), 0);
    assert_int_equal(tb_svc_core_new(f->loop, NULL, &f->core), 0);
    assert_int_equal(tb_svc_consumer_port_new(f->loop, f->core, NULL, &f->port), 0);
    assert_int_equal(tb_svc_port_listen(f->port, f->sock), 0);
    assert_int_equal(
        tb_svc_producer_connect(f->core, getuid(), getpid(), &p_ops, &f->prod, &f->prod.p), 0);
    init.producer_name = (char *)"stream-producer";
    assert_int_equal(tb_svc_producer_initialize(f->prod.p, &init), 0);
    d.name = (char *)"stream.ds";
    assert_int_equal(tb_svc_producer_register_ds(f->prod.p, &d), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
    *state = f;
    return 0;
}

/* Stops the loop thread; the fixture is then single-threaded again. */
static void stop_loop(struct fix *f)
{
    if (!f->thread)
        return;
    assert_int_equal(tb_loop_post_from_any_thread(f->loop, quit, f->loop), 0);
    pthread_join(f->thread, NULL);
    f->thread = 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    stop_loop(f);
    tb_svc_port_free(f->port);
    tb_svc_producer_disconnect(f->prod.p);
    tb_shm_destroy(f->prod.shm);
    tb_svc_core_free(f->core);
    tb_loop_free(f->loop);
    rmdir(f->dir);
    free(f);
    return 0;
}

struct tally {
    uint64_t packets, bytes, next_ts, bad;
};

static int tally_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct tally *t = ctx;

    if (!p)
        return -EBADMSG;
    t->bytes += len;
    if (p->trusted_packet_sequence_id >= 2) {
        if (p->timestamp != t->next_ts)
            t->bad++;
        t->next_ts = p->timestamp + 1;
        /* A slow reader: the service must wait for it, not queue for it. */
        if (++t->packets % 20000 == 0)
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

static void test_read_64mib_bounded(void **state)
{
    struct fix *f = *state;
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig buf =
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource ds =
        PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT;
    Perfetto__Protos__TraceConfig__DataSource *dss[1] = {&ds};
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    struct tb_ipc_host_stats hs;
    struct tally t = {0};
    struct tb_cc *cc;
    uint64_t want;

    buf.has_size_kb = true;
    buf.size_kb = BUF_KB;
    buf.has_fill_policy = true;
    buf.fill_policy = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    dsc.name = (char *)"stream.ds";
    ds.config = &dsc;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;

    assert_int_equal(tb_cc_connect(f->sock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    assert_int_equal(tb_loop_post_from_any_thread(f->loop, fill, f), 0);
    for (int i = 0; i < 3000 && !atomic_load(&f->prod.filled); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_int_equal(atomic_load(&f->prod.filled), 1);

    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, &t, 120000, NULL), 0);
    want = f->prod.chunks * PKTS_A_CHUNK;
    assert_int_equal(t.packets, want);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.next_ts, want);
    assert_true(t.bytes >= want * PKT_PAD); /* over 57 MiB went through the queue */

    /* A second read finds nothing left but still ends its stream. */
    memset(&t, 0, sizeof(t));
    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, &t, 10000, NULL), 0);
    assert_int_equal(t.packets, 0);

    stop_loop(f);
    tb_ipc_host_get_stats(tb_svc_port_host(f->port), &hs);
    printf("read %llu packets; peak consumer tx queue %llu bytes\n", (unsigned long long)want,
           (unsigned long long)hs.tx_queue_peak_bytes);
    /* High-water mark (1 MiB) plus the reply that crossed it. */
    assert_true(hs.tx_queue_peak_bytes <= (1u << 20) + 256u * 1024u);
    assert_int_equal(hs.disconnects_slow_reader, 0);
    tb_cc_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_64mib_bounded, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
