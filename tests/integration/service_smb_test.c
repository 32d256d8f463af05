/*
 * service_smb_test.c - producer-provided SMBs (the SDK's startup tracing) on
 * the real traced-bpf daemon: a sealed memfd of a valid geometry is adopted
 * and what is committed from it lands in the trace; an unsealed fd or a bad
 * geometry is refused, closed in the daemon, and the same producer works on
 * a service-provided SMB after reconnecting without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_util.h"
#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/shm.h"
#include "perfetto/ipc/producer_port.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#define NPKTS 500u

static struct td_daemon daemon_;

static int start_daemon(void **state)
{
    struct td_opts o = {.tag = "svc-smb"};
    struct stat st;

    (void)state;
    assert_int_equal(td_start(&daemon_, &o), 0);
    assert_int_equal(stat(daemon_.psock, &st), 0);
    return 0;
}

static int stop_daemon(void **state)
{
    (void)state;
    assert_int_equal(td_stop(&daemon_), 0);
    td_cleanup(&daemon_, false);
    return 0;
}

/* How many fds the daemon holds on memfds named @name. */
static int daemon_fds_named(const char *name)
{
    char path[64], link[PATH_MAX], want[128];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_.pid);
    snprintf(want, sizeof(want), "/memfd:%s ", name);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d))) {
        char p[PATH_MAX];
        ssize_t len;

        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        len = readlink(p, link, sizeof(link) - 2);
        if (len <= 0)
            continue;
        link[len] = ' '; /* "(deleted)" follows the name after a space */
        link[len + 1] = 0;
        n += strncmp(link, want, strlen(want)) == 0;
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ producer */

struct tprod {
    struct tb_loop *loop;
    struct tb_ipc_client *client;
    struct tb_shm *shm; /* ours (own_smb) or the service's */
    bool own_smb, setup, setup_had_fd, started;
    uint32_t setup_page_kb, target;
};

static void on_cmd(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__GetAsyncCommandResponse *cmd = (void *)r->msg;
    struct tprod *tp = ctx;

    if (!r->success || !cmd)
        return;
    switch (cmd->cmd_case) {
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING:
        tp->setup = true;
        tp->setup_had_fd = r->fd >= 0;
        tp->setup_page_kb = cmd->setup_tracing->shared_buffer_page_size_kb;
        if (r->fd >= 0 && !tp->own_smb) {
            assert_int_equal(tb_shm_attach(r->fd, tp->setup_page_kb * 1024, &tp->shm), 0);
            r->fd = -1;
        }
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE:
        tp->target = cmd->start_data_source->config->target_buffer;
        tp->started = true;
        break;
    default:
        break;
    }
}

/*
 * Connects and initializes, offering @smb_fd (or -1) with @page_hint.
 * Return: the InitializeConnection error, else using_shmem_provided_by_producer.
 */
static int tprod_connect(struct tprod *tp, int smb_fd, uint32_t page_hint)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__InitializeConnectionResponse *resp = NULL;
    Perfetto__Protos__RegisterDataSourceRequest reg =
        PERFETTO__PROTOS__REGISTER_DATA_SOURCE_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    int err, used;

    assert_int_equal(tb_loop_new(&tp->loop), 0);
    assert_int_equal(tb_ipc_client_new(tp->loop, NULL, &tp->client), 0);
    assert_int_equal(tb_ipc_client_connect_sync(tp->client, daemon_.psock, "ProducerPort", 5000),
                     0);
    init.producer_name = (char *)"smb-producer";
    init.has_shared_memory_page_size_hint_bytes = page_hint != 0;
    init.shared_memory_page_size_hint_bytes = page_hint;
    init.has_producer_provided_shmem = smb_fd >= 0;
    init.producer_provided_shmem = smb_fd >= 0;
    err = tb_ipc_client_invoke_sync(tp->client, "InitializeConnection", &init.base,
                                    &perfetto__protos__initialize_connection_response__descriptor,
                                    smb_fd, 5000, (ProtobufCMessage **)&resp, NULL);
    if (err)
        return err;
    assert_non_null(resp);
    assert_true(resp->has_using_shmem_provided_by_producer);
    used = resp->using_shmem_provided_by_producer;
    perfetto__protos__initialize_connection_response__free_unpacked(resp, NULL);
    if (!used)
        return 0;
    assert_int_equal(tb_ipc_client_invoke(tp->client, "GetAsyncCommand", NULL,
                                          &perfetto__protos__get_async_command_response__descriptor,
                                          on_cmd, tp, -1, NULL),
                     0);
    d.name = (char *)"smb.test";
    reg.data_source_descriptor = &d;
    assert_int_equal(tb_ipc_client_invoke_sync(tp->client, "RegisterDataSource", &reg.base, NULL,
                                               -1, 5000, NULL, NULL),
                     0);
    return 1;
}

/* After a refusal the SDK reconnects without an SMB; so do we. */
static void tprod_connect_plain(struct tprod *tp)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__RegisterDataSourceRequest reg =
        PERFETTO__PROTOS__REGISTER_DATA_SOURCE_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;

    assert_int_equal(tb_loop_new(&tp->loop), 0);
    assert_int_equal(tb_ipc_client_new(tp->loop, NULL, &tp->client), 0);
    assert_int_equal(tb_ipc_client_connect_sync(tp->client, daemon_.psock, "ProducerPort", 5000),
                     0);
    init.producer_name = (char *)"smb-producer";
    assert_int_equal(tb_ipc_client_invoke_sync(tp->client, "InitializeConnection", &init.base, NULL,
                                               -1, 5000, NULL, NULL),
                     0);
    assert_int_equal(tb_ipc_client_invoke(tp->client, "GetAsyncCommand", NULL,
                                          &perfetto__protos__get_async_command_response__descriptor,
                                          on_cmd, tp, -1, NULL),
                     0);
    d.name = (char *)"smb.test";
    reg.data_source_descriptor = &d;
    assert_int_equal(tb_ipc_client_invoke_sync(tp->client, "RegisterDataSource", &reg.base, NULL,
                                               -1, 5000, NULL, NULL),
                     0);
}

static void tprod_close(struct tprod *tp)
{
    tb_ipc_client_free(tp->client);
    tb_loop_free(tp->loop);
    tp->client = NULL;
    tp->loop = NULL;
}

/* Writes NPKTS one-packet chunks (timestamp = index) and commits them. */
static void write_and_commit(struct tprod *tp)
{
    Perfetto__Protos__RegisterTraceWriterRequest rw =
        PERFETTO__PROTOS__REGISTER_TRACE_WRITER_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m, *mp = &m;
    const struct tb_shm_abi *abi = &tp->shm->abi;

    rw.has_trace_writer_id = rw.has_target_buffer = true;
    rw.trace_writer_id = 1;
    rw.target_buffer = tp->target;
    assert_int_equal(tb_ipc_client_invoke(tp->client, "RegisterTraceWriter", &rw.base, NULL, NULL,
                                          NULL, -1, NULL),
                     0);
    for (uint32_t i = 0; i < NPKTS; i++) {
        struct tb_shm_chunk_header hdr = {.writer_id = 1, .chunk_id = i};
        size_t page = i % abi->num_pages;
        struct tb_shm_chunk c;
        uint8_t *p;

        tb_shm_try_partition_page(abi, page, TB_SHM_LAYOUT_DIV1);
        /* Commits are synchronous below, so the chunk is always free again. */
        assert_int_equal(tb_shm_try_acquire_chunk_for_writing(abi, page, 0, &hdr, &c), 0);
        p = tb_shm_chunk_payload(&c);
        tb_shm_write_size_prefix(p, 6);
        p[4] = 0x40; /* timestamp, varint */
        p[5] = (uint8_t)(0x80 | (i & 0x7f));
        p[6] = (uint8_t)((i >> 7) | 0x80);
        p[7] = 0x80;
        p[8] = 0x80;
        p[9] = 0x00;
        tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make(1, 0));
        assert_int_equal(tb_shm_release_chunk_as_complete(abi, page, 0), 0);
        perfetto__protos__commit_data_request__chunks_to_move__init(&m);
        m.has_page = m.has_chunk = m.has_target_buffer = true;
        m.page = (uint32_t)page;
        m.target_buffer = tp->target;
        req.n_chunks_to_move = 1;
        req.chunks_to_move = &mp;
        assert_int_equal(tb_ipc_client_invoke_sync(tp->client, "CommitData", &req.base, NULL, -1,
                                                   5000, NULL, NULL),
                         0);
    }
}

/* ------------------------------------------------------------ consumer */

struct tally {
    uint64_t packets;
    bool seen[NPKTS];
};

static int tally_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct tally *t = ctx;

    assert_non_null(p);
    if (p->trusted_packet_sequence_id != 1) {
        assert_true(p->timestamp < NPKTS);
        assert_false(t->seen[p->timestamp]);
        t->seen[p->timestamp] = true;
        t->packets++;
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

/* One session with smb.test: the producer writes NPKTS packets through tp->shm. */
static void record(struct tprod *tp, struct tally *t)
{
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig buf =
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource ds =
        PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT;
    Perfetto__Protos__TraceConfig__DataSource *dss[1] = {&ds};
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    bool done = false;
    struct tb_cc *cc;
    int err = 0;

    buf.has_size_kb = true;
    buf.size_kb = 4096;
    dsc.name = (char *)"smb.test";
    ds.config = &dsc;
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &cfg, -1), 0);
    for (int i = 0; i < 2500 && !tp->started; i++)
        tb_loop_run_once(tp->loop, 2);
    assert_true(tp->started);
    assert_true(tp->setup || tp->own_smb);
    assert_non_null(tp->shm);
    write_and_commit(tp);
    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(tb_cc_read_buffers_cb(cc, tally_packet, t, 10000, NULL), 0);
    tb_cc_free(cc);
}

/* ------------------------------------------------------------ tests */

static int make_memfd(const char *name, size_t size, bool seal)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (seal)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    return fd;
}

static void test_sealed_smb_adopted(void **state)
{
    struct tally t = {0};
    struct tprod tp = {.own_smb = true};
    int fd = make_memfd("tb_smb_good", 128 * 1024, true);

    /* The SDK's startup SMB: sealed memfd, 8 KiB pages announced in the hint. */
    assert_int_equal(tprod_connect(&tp, fd, 8192), 1);
    assert_int_equal(daemon_fds_named("tb_smb_good"), 1);
    assert_int_equal(tb_shm_attach(fd, 8192, &tp.shm), 0);
    /*
     * SetupTracing still comes, before any session as from traced, with our
     * page size and no fd (the SDK aborts on an fd once its own SMB is in use).
     */
    for (int i = 0; i < 2500 && !tp.setup; i++)
        tb_loop_run_once(tp.loop, 2);
    assert_true(tp.setup);
    assert_false(tp.setup_had_fd);
    assert_int_equal(tp.setup_page_kb, 8);
    tp.setup = false;
    record(&tp, &t);
    assert_false(tp.setup); /* once per connection */
    assert_int_equal(t.packets, NPKTS);
    tprod_close(&tp);
    tb_shm_destroy(tp.shm);
    /* Gone with the connection. */
    for (int i = 0; i < 200 && daemon_fds_named("tb_smb_good"); i++)
        td_sleep_ms(5);
    assert_int_equal(daemon_fds_named("tb_smb_good"), 0);
}

/* The refused fd is closed in the daemon; a plain reconnect then works. */
static void refused_then_plain(int fd, uint32_t page_hint, const char *name)
{
    struct tally t = {0};
    struct tprod tp = {0};

    assert_int_equal(tprod_connect(&tp, fd, page_hint), 0);
    close(fd);
    assert_int_equal(daemon_fds_named(name), 0);
    tprod_close(&tp);
    tprod_connect_plain(&tp);
    record(&tp, &t);
    assert_true(tp.setup_had_fd);
    assert_int_equal(t.packets, NPKTS);
    tprod_close(&tp);
    tb_shm_destroy(tp.shm);
}

static void test_unsealed_refused(void **state)
{
    /* Without F_SEAL_SHRINK the producer could truncate it and fault the daemon. */
    refused_then_plain(make_memfd("tb_smb_unsealed", 256 * 1024, false), 4096, "tb_smb_unsealed");
}

static void test_partly_sealed_refused(void **state)
{
    int fd = make_memfd("tb_smb_partly", 256 * 1024, false);

    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SEAL), 0);
    refused_then_plain(fd, 4096, "tb_smb_partly");
}

static void test_bad_size_refused(void **state)
{
    /* Not a multiple of the page size. */
    refused_then_plain(make_memfd("tb_smb_badsize", 256 * 1024 + 512, true), 4096,
                       "tb_smb_badsize");
}

static void test_bad_page_refused(void **state)
{
    /* 12 KiB is not a valid page size; a missing hint is not either. */
    refused_then_plain(make_memfd("tb_smb_badpage", 96 * 1024, true), 12 * 1024, "tb_smb_badpage");
    refused_then_plain(make_memfd("tb_smb_nohint", 256 * 1024, true), 0, "tb_smb_nohint");
}

static void test_too_big_refused(void **state)
{
    refused_then_plain(make_memfd("tb_smb_big", 64u << 20, true), 4096, "tb_smb_big");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_smb_adopted),    cmocka_unit_test(test_unsealed_refused),
        cmocka_unit_test(test_partly_sealed_refused), cmocka_unit_test(test_bad_size_refused),
        cmocka_unit_test(test_bad_page_refused),      cmocka_unit_test(test_too_big_refused),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
