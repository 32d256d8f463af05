/*
 * service_hostile_test.c - a producer that scribbles random bytes over its
 * whole SMB (page bitmaps and chunk headers included) and sends random
 * CommitData requests, while the service commits, scrapes, flushes and
 * reads. Under ASan/UBSan the core must survive every round, and a
 * well-behaved producer in the same session must lose nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/event_loop.h"
#include "common/shm.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/core.h"

struct prod {
    struct tb_svc_producer *p;
    struct tb_shm *shm;
    uint32_t target;
};

static int send_cmd(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    struct prod *pr = ctx;

    if (fd >= 0 && !pr->shm)
        assert_int_equal(tb_shm_attach(dup(fd), 4096, &pr->shm), 0);
    if (cmd->cmd_case == PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE)
        pr->target = cmd->start_data_source->config->target_buffer;
    return 0;
}

static void kick(void *ctx, const char *why)
{
}

static const struct tb_svc_producer_ops ops = {.send_command = send_cmd, .kick = kick};

static void noop_disabled(void *ctx, const char *e)
{
}

static void noop_flush(void *ctx, uint64_t t, bool ok)
{
}

static const struct tb_svc_consumer_ops cops = {.tracing_disabled = noop_disabled,
                                                .flush_done = noop_flush};

static void add(struct tb_svc_core *core, struct prod *pr, const char *name, pid_t pid)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;

    assert_int_equal(tb_svc_producer_connect(core, getuid(), pid, &ops, pr, &pr->p), 0);
    init.producer_name = (char *)name;
    assert_int_equal(tb_svc_producer_initialize(pr->p, &init), 0);
    d.name = (char *)"ds";
    assert_int_equal(tb_svc_producer_register_ds(pr->p, &d), 0);
}

static uint32_t rnd(void)
{
    return (uint32_t)random();
}

/* A commit of random entries, biased towards plausible values. */
static void random_commit(struct prod *pr)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m[8], *mp[8];
    Perfetto__Protos__CommitDataRequest__ChunkToPatch cp[4], *cpp[4];
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch pt[4][3], *ptp[4][3];
    uint8_t data[4][3][6];

    for (int i = 0; i < 8; i++) {
        perfetto__protos__commit_data_request__chunks_to_move__init(&m[i]);
        m[i].has_page = m[i].has_chunk = m[i].has_target_buffer = rnd() % 8 != 0;
        m[i].page = rnd() % 4 ? rnd() % 70 : rnd();
        m[i].chunk = rnd() % 4 ? rnd() % 14 : rnd();
        m[i].target_buffer = rnd() % 4 ? pr->target : rnd() % 5;
        mp[i] = &m[i];
    }
    for (int i = 0; i < 4; i++) {
        perfetto__protos__commit_data_request__chunk_to_patch__init(&cp[i]);
        cp[i].has_target_buffer = cp[i].has_writer_id = cp[i].has_chunk_id = true;
        cp[i].target_buffer = rnd() % 4 ? pr->target : rnd();
        cp[i].writer_id = rnd() % 4 ? 1 + rnd() % 3 : rnd();
        cp[i].chunk_id = rnd() % 8;
        cp[i].has_has_more_patches = true;
        cp[i].has_more_patches = rnd() % 2;
        for (int j = 0; j < 3; j++) {
            perfetto__protos__commit_data_request__chunk_to_patch__patch__init(&pt[i][j]);
            pt[i][j].has_offset = pt[i][j].has_data = true;
            pt[i][j].offset = rnd() % 2 ? rnd() % 5000 : rnd();
            for (int k = 0; k < 6; k++)
                data[i][j][k] = (uint8_t)rnd();
            pt[i][j].data.data = data[i][j];
            pt[i][j].data.len = rnd() % 4 ? 4 : rnd() % 7;
            ptp[i][j] = &pt[i][j];
        }
        cp[i].n_patches = rnd() % 4;
        cp[i].patches = ptp[i];
        cpp[i] = &cp[i];
    }
    req.n_chunks_to_move = rnd() % 9;
    req.chunks_to_move = mp;
    req.n_chunks_to_patch = rnd() % 5;
    req.chunks_to_patch = cpp;
    req.has_flush_request_id = rnd() % 3 == 0;
    req.flush_request_id = rnd() % 10;
    tb_svc_producer_commit(pr->p, &req);
}

/* Mostly plausible chunk headers and states, then random bytes anywhere. */
static void scribble(struct tb_shm *shm)
{
    for (int i = 0; i < 64; i++) {
        size_t page = rnd() % shm->num_pages;
        uint8_t *pg = shm->base + page * shm->page_size;
        uint32_t bitmap = rnd() % 2 ? (1u + rnd() % 5) << 28 | (rnd() & 0x0fffffff) : rnd();
        struct tb_shm_chunk_header h = {rnd() % 8, (uint16_t)(rnd() % 2 ? 1 + rnd() % 3 : rnd()),
                                        (uint16_t)rnd()};
        size_t off = 8 + (rnd() % 2 ? 0 : rnd() % (shm->page_size - 16));

        memcpy(pg, &bitmap, 4);
        memcpy(pg + off, &h, sizeof(h));
        for (int j = 0; j < 32; j++)
            pg[8 + rnd() % (shm->page_size - 8)] = (uint8_t)rnd();
    }
}

static int count_good(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    uint8_t buf[65536];
    size_t len = 0;
    Perfetto__Protos__TracePacket *p;

    for (size_t i = 0; i < n; i++) {
        assert_true(len + sl[i].len <= sizeof(buf));
        memcpy(buf + len, sl[i].data, sl[i].len);
        len += sl[i].len;
    }
    p = perfetto__protos__trace_packet__unpack(NULL, len, buf);
    /* Hostile packets may not even decode; the good producer (pid 1) always does. */
    if (p && p->trusted_pid == 1 && p->timestamp >= 1000000)
        (*(unsigned *)ctx)++;
    if (p)
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

static void test_hostile_producer(void **state)
{
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig
        buf = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT,
        *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource ds =
                                                  PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT,
                                              *dss[1] = {&ds};
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    struct tb_svc_consumer *c;
    struct tb_svc_core *core;
    struct tb_loop *loop;
    struct prod bad = {0}, good = {0};
    unsigned good_read = 0, good_sent = 0;
    char err[128];

    srandom(12345);
    assert_int_equal(tb_loop_new(&loop), 0);
    assert_int_equal(tb_svc_core_new(loop, NULL, &core), 0);
    assert_int_equal(tb_svc_consumer_connect(core, 0, &cops, NULL, &c), 0);
    buf.has_size_kb = true;
    buf.size_kb = 4096;
    buf.has_fill_policy = true;
    buf.fill_policy = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    dsc.name = (char *)"ds";
    ds.config = &dsc;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;
    add(core, &bad, "bad", 2);
    add(core, &good, "good", 1);
    assert_int_equal(tb_svc_consumer_enable(c, &cfg, -1, err, sizeof(err)), 0);
    assert_non_null(bad.shm);
    assert_non_null(good.shm);
    for (uint32_t w = 1; w <= 3; w++)
        tb_svc_producer_register_writer(bad.p, w, bad.target);
    tb_svc_producer_register_writer(good.p, 1, good.target);

    for (unsigned round = 0; round < 3000; round++) {
        scribble(bad.shm);
        random_commit(&bad);
        if (round % 10 == 0) {
            /* The good producer: one chunk of 5 packets, committed properly. */
            struct tb_shm_chunk_header h = {.chunk_id = round / 10, .writer_id = 1};
            struct tb_shm_chunk ch;
            uint8_t *p;

            tb_shm_try_partition_page(&good.shm->abi, 0, TB_SHM_LAYOUT_DIV1);
            assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&good.shm->abi, 0, 0, &h, &ch),
                             0);
            p = tb_shm_chunk_payload(&ch);
            for (unsigned i = 0; i < 5; i++) {
                uint64_t ts = 1000000 + good_sent++;

                tb_shm_write_size_prefix(p, 4);
                p[4] = 0x40;
                p[5] = (uint8_t)(ts | 0x80);
                p[6] = (uint8_t)((ts >> 7) | 0x80);
                p[7] = (uint8_t)(ts >> 14);
                p += 8;
            }
            tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&ch), tb_shm_packets_make(5, 0));
            assert_int_equal(tb_shm_release_chunk_as_complete(&good.shm->abi, 0, 0), 0);
            {
                Perfetto__Protos__CommitDataRequest req =
                    PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
                Perfetto__Protos__CommitDataRequest__ChunksToMove m =
                    PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
                Perfetto__Protos__CommitDataRequest__ChunksToMove *mp = &m;

                m.has_page = m.has_chunk = m.has_target_buffer = true;
                m.target_buffer = good.target;
                req.n_chunks_to_move = 1;
                req.chunks_to_move = &mp;
                assert_int_equal(tb_svc_producer_commit(good.p, &req), 0);
            }
        }
        if (round % 50 == 0) {
            tb_svc_consumer_flush(c, 1, round);
            tb_loop_run_once(loop, 0);
        }
        if (round % 100 == 0)
            assert_int_equal(tb_svc_consumer_read(c, count_good, &good_read), 0);
    }
    /* The liar leaves; its SMB is scraped one last time on the way out. */
    tb_svc_producer_disconnect(bad.p);
    assert_int_equal(tb_svc_consumer_read(c, count_good, &good_read), 0);
    assert_int_equal(good_read, good_sent);
    {
        Perfetto__Protos__TraceStats st;

        assert_int_equal(tb_svc_consumer_stats(c, &st), 0);
        printf("hostile: %u good packets kept; discarded %llu chunks, %llu patches; %llu invalid "
               "packets; %llu chunks written, %llu abi violations, %llu patches failed\n",
               good_read, (unsigned long long)st.chunks_discarded,
               (unsigned long long)st.patches_discarded, (unsigned long long)st.invalid_packets,
               (unsigned long long)st.buffer_stats[0]->chunks_written,
               (unsigned long long)st.buffer_stats[0]->abi_violations,
               (unsigned long long)st.buffer_stats[0]->patches_failed);
        /* The liar really exercised the rejection paths. */
        assert_true(st.chunks_discarded > 0);
        assert_true(st.patches_discarded > 0);
        tb_svc_stats_clear(&st);
    }
    tb_svc_producer_disconnect(good.p);
    tb_svc_consumer_disconnect(c);
    tb_svc_core_free(core);
    tb_loop_free(loop);
    tb_shm_destroy(bad.shm);
    tb_shm_destroy(good.shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_producer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
