/*
 * service_core_test.c - drives the service core (service/core.h) directly,
 * without sockets: fake producer and consumer endpoints record what the
 * core sends, chunks are written into the real memfd SMB the core creates,
 * and packets are read back and decoded with protobuf-c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/event_loop.h"
#include "common/shm.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "service/core.h"
#include "service/trace_buffer.h"

#define TEST_PID 4242

/* ------------------------------------------------------------ fakes */

struct fake_prod {
    struct tb_svc_producer *p;
    Perfetto__Protos__GetAsyncCommandResponse *cmds[64];
    size_t ncmds;
    struct tb_shm *shm;
    int kicked;
};

static int fp_send(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    struct fake_prod *fp = ctx;
    size_t len = protobuf_c_message_get_packed_size(&cmd->base);
    uint8_t *buf = malloc(len + 1);

    assert_non_null(buf);
    protobuf_c_message_pack(&cmd->base, buf);
    assert_true(fp->ncmds < 64);
    fp->cmds[fp->ncmds++] = perfetto__protos__get_async_command_response__unpack(NULL, len, buf);
    free(buf);
    if (fd >= 0) {
        assert_null(fp->shm);
        assert_int_equal(
            tb_shm_attach(dup(fd), cmd->setup_tracing->shared_buffer_page_size_kb * 1024, &fp->shm),
            0);
    }
    return 0;
}

static void fp_kick(void *ctx, const char *why)
{
    ((struct fake_prod *)ctx)->kicked++;
}

static const struct tb_svc_producer_ops fp_ops = {.send_command = fp_send, .kick = fp_kick};

static void fp_free(struct fake_prod *fp)
{
    for (size_t i = 0; i < fp->ncmds; i++)
        perfetto__protos__get_async_command_response__free_unpacked(fp->cmds[i], NULL);
    tb_shm_destroy(fp->shm);
    free(fp);
}

/* Index of the @nth command of kind @c, or -1. */
static int find_cmd(struct fake_prod *fp, Perfetto__Protos__GetAsyncCommandResponse__CmdCase c,
                    int nth)
{
    for (size_t i = 0; i < fp->ncmds; i++)
        if (fp->cmds[i]->cmd_case == c && nth-- == 0)
            return (int)i;
    return -1;
}

struct fake_cons {
    struct tb_svc_consumer *c;
    int disabled;
    int flush_ok, flush_fail;
    uint64_t token;
};

static void fc_disabled(void *ctx, const char *error)
{
    ((struct fake_cons *)ctx)->disabled++;
}

static void fc_flush(void *ctx, uint64_t token, bool ok)
{
    struct fake_cons *fc = ctx;

    fc->token = token;
    if (ok)
        fc->flush_ok++;
    else
        fc->flush_fail++;
}

static const struct tb_svc_consumer_ops fc_ops = {.tracing_disabled = fc_disabled,
                                                  .flush_done = fc_flush};

/* ------------------------------------------------------------ fixture */

struct fix {
    struct tb_loop *loop;
    struct tb_svc_core *core;
    struct fake_cons cons;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_int_equal(tb_loop_new(&f->loop), 0);
    assert_int_equal(tb_svc_core_new(f->loop, NULL, &f->core), 0);
    assert_int_equal(tb_svc_consumer_connect(f->core, getuid(), &fc_ops, &f->cons, &f->cons.c), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    tb_svc_core_free(f->core);
    tb_loop_free(f->loop);
    free(f);
    return 0;
}

static void pump(struct fix *f, int ms)
{
    uint64_t end = tb_loop_now_ms() + (uint64_t)ms;

    while (tb_loop_now_ms() < end)
        tb_loop_run_once(f->loop, 5);
}

static struct fake_prod *add_producer(struct fix *f, const char *name, const char *ds,
                                      bool notify_stop)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct fake_prod *fp = calloc(1, sizeof(*fp));

    assert_int_equal(tb_svc_producer_connect(f->core, getuid(), TEST_PID, &fp_ops, fp, &fp->p), 0);
    init.producer_name = (char *)name;
    assert_int_equal(tb_svc_producer_initialize(fp->p, &init), 0);
    assert_int_equal(tb_svc_producer_initialize(fp->p, &init), -EALREADY);
    d.name = (char *)ds;
    d.has_will_notify_on_stop = true;
    d.will_notify_on_stop = notify_stop;
    assert_int_equal(tb_svc_producer_register_ds(fp->p, &d), 0);
    return fp;
}

/* A config with one buffer of @kb KiB and one data source named @ds. */
struct cfg_store {
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
};

static void make_cfg(struct cfg_store *c, uint32_t kb, const char *ds)
{
    perfetto__protos__trace_config__init(&c->cfg);
    perfetto__protos__trace_config__buffer_config__init(&c->buf);
    perfetto__protos__trace_config__data_source__init(&c->ds);
    perfetto__protos__data_source_config__init(&c->dsc);
    c->buf.has_size_kb = true;
    c->buf.size_kb = kb;
    c->bufs[0] = &c->buf;
    c->cfg.n_buffers = 1;
    c->cfg.buffers = c->bufs;
    c->dsc.name = (char *)ds;
    c->ds.config = &c->dsc;
    c->dss[0] = &c->ds;
    c->cfg.n_data_sources = 1;
    c->cfg.data_sources = c->dss;
}

/* A small TracePacket: timestamp = @ts, plus @pad bytes of for_testing-free filler. */
static size_t make_packet(uint8_t *out, uint64_t ts)
{
    size_t n = 0;

    out[n++] = 0x40; /* field 8, varint */
    do {
        out[n++] = (uint8_t)((ts & 0x7f) | (ts >= 0x80 ? 0x80 : 0));
        ts >>= 7;
    } while (ts);
    return n;
}

/* Writes @npkts packets (timestamps @ts0..) into page @page as one chunk. */
static void write_chunk(struct tb_shm *shm, size_t page, uint16_t writer, uint32_t chunk_id,
                        uint64_t ts0, unsigned npkts, bool complete)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = chunk_id, .writer_id = writer};
    struct tb_shm_chunk c;
    uint8_t *p;

    tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV1);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 0, &hdr, &c), 0);
    p = tb_shm_chunk_payload(&c);
    for (unsigned i = 0; i < npkts; i++) {
        size_t n = make_packet(p + 4, ts0 + i);

        tb_shm_write_size_prefix(p, (uint32_t)n);
        p += 4 + n;
    }
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make((uint16_t)npkts, 0));
    if (complete)
        assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, page, 0), 0);
}

static void commit(struct fake_prod *fp, uint32_t page, uint32_t chunk, uint32_t target,
                   uint64_t flush_id)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mp = &m;

    m.has_page = m.has_chunk = m.has_target_buffer = true;
    m.page = page;
    m.chunk = chunk;
    m.target_buffer = target;
    req.n_chunks_to_move = 1;
    req.chunks_to_move = &mp;
    if (flush_id) {
        req.has_flush_request_id = true;
        req.flush_request_id = flush_id;
    }
    assert_int_equal(tb_svc_producer_commit(fp->p, &req), 0);
}

/* Decoded packets of one read pass. */
struct readout {
    Perfetto__Protos__TracePacket *pkts[4096];
    size_t n;
};

static int collect(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    struct readout *r = ctx;
    uint8_t buf[65536];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        assert_true(len + sl[i].len <= sizeof(buf));
        memcpy(buf + len, sl[i].data, sl[i].len);
        len += sl[i].len;
    }
    assert_true(r->n < 4096);
    r->pkts[r->n] = perfetto__protos__trace_packet__unpack(NULL, len, buf);
    assert_non_null(r->pkts[r->n]);
    r->n++;
    return 0;
}

static void readout_free(struct readout *r)
{
    for (size_t i = 0; i < r->n; i++)
        perfetto__protos__trace_packet__free_unpacked(r->pkts[i], NULL);
    r->n = 0;
}

static size_t count_data(struct readout *r, Perfetto__Protos__TracePacket__DataCase c)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++)
        n += r->pkts[i]->data_case == c;
    return n;
}

/* Producer packets (those with a sequence id >= 2), in read order. */
static size_t producer_packets(struct readout *r, Perfetto__Protos__TracePacket **out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++)
        if (r->pkts[i]->trusted_packet_sequence_id >= 2 && n < cap)
            out[n++] = r->pkts[i];
    return n;
}

static uint32_t started_target(struct fake_prod *fp)
{
    int i = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 0);

    assert_true(i >= 0);
    return fp->cmds[i]->start_data_source->config->target_buffer;
}

/* ------------------------------------------------------------ tests */

static void test_commit_and_read(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", true);
    Perfetto__Protos__TracePacket *pp[64];
    struct readout r = {0};
    struct cfg_store c;
    char err[128];
    uint32_t target;
    int is, isd, ist;

    make_cfg(&c, 256, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    /* Command order: SetupTracing (with the SMB), SetupDataSource, StartDataSource. */
    is = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING, 0);
    isd = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_DATA_SOURCE, 0);
    ist = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 0);
    assert_true(is == 0 && isd == 1 && ist == 2);
    assert_non_null(fp->shm);
    assert_int_equal(fp->shm->size, 256 * 1024);
    assert_int_equal(fp->shm->page_size, 4096);
    target = started_target(fp);
    assert_true(target != 0);
    assert_int_equal(fp->cmds[ist]->start_data_source->config->tracing_session_id,
                     fp->cmds[isd]->setup_data_source->config->tracing_session_id);

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, target), 0);
    for (unsigned ch = 0; ch < 3; ch++) {
        write_chunk(fp->shm, ch, 1, ch, 1000 + ch * 10, 10, true);
        commit(fp, ch, 0, target, 0);
        /* The service freed the chunk after copying it. */
        assert_int_equal(tb_shm_page_layout(&fp->shm->abi, ch), 0);
    }
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 64), 30);
    for (unsigned i = 0; i < 30; i++) {
        assert_int_equal(pp[i]->timestamp, 1000 + i);
        assert_int_equal(pp[i]->trusted_packet_sequence_id, 2);
        assert_int_equal(pp[i]->trusted_uid, (int32_t)getuid());
        assert_int_equal(pp[i]->trusted_pid, TEST_PID);
    }
    assert_int_equal(count_data(&r, PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_CONFIG), 1);
    assert_int_equal(count_data(&r, PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO), 1);
    assert_int_equal(count_data(&r, PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT), 1);
    assert_int_equal(count_data(&r, PERFETTO__PROTOS__TRACE_PACKET__DATA_SYNCHRONIZATION_MARKER),
                     1);
    for (size_t i = 0; i < r.n; i++)
        if (r.pkts[i]->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT) {
            assert_int_equal(r.pkts[i]->trusted_packet_sequence_id, 1);
            assert_int_equal(r.pkts[i]->timestamp_clock_id, 6);
        }
    readout_free(&r);

    /* Stop: waits for the data source's stop ack, then answers the consumer. */
    assert_int_equal(tb_svc_consumer_disable(f->cons.c), 0);
    assert_true(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE, 0) >= 0);
    assert_int_equal(f->cons.disabled, 0);
    tb_svc_producer_ds_stopped(fp->p, fp->cmds[ist]->start_data_source->new_instance_id);
    assert_int_equal(f->cons.disabled, 1);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(count_data(&r, PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS), 1);
    for (size_t i = 0; i < r.n; i++) {
        Perfetto__Protos__TraceStats *st = r.pkts[i]->trace_stats;

        if (r.pkts[i]->data_case != PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS)
            continue;
        assert_int_equal(st->n_buffer_stats, 1);
        assert_int_equal(st->buffer_stats[0]->chunks_written, 3);
        assert_int_equal(st->producers_connected, 1);
        assert_int_equal(st->invalid_packets, 0);
    }
    readout_free(&r);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_lying_producer(void **state)
{
    struct fix *f = *state;
    struct fake_prod *good = add_producer(f, "good", "test.ds", false);
    struct fake_prod *bad = add_producer(f, "bad", "test.ds", false);
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch cp =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNK_TO_PATCH__INIT;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch pt =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNK_TO_PATCH__PATCH__INIT;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch *cpp = &cp;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch *ptp = &pt;
    Perfetto__Protos__TracePacket *pp[256];
    Perfetto__Protos__TraceStats st;
    struct readout r = {0};
    struct cfg_store c;
    uint8_t four[4] = {1, 2, 3, 4};
    char err[128];
    uint32_t target;

    make_cfg(&c, 512, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    target = started_target(good);
    assert_int_equal(tb_svc_producer_register_writer(good->p, 1, target), 0);
    assert_int_equal(tb_svc_producer_register_writer(bad->p, 1, target), 0);
    write_chunk(good->shm, 0, 1, 0, 1, 20, true);

    /* Bad page and chunk indices, a wrong buffer, a chunk still being written. */
    commit(bad, 100000, 0, target, 0);
    commit(bad, 0, 13, target, 0);
    write_chunk(bad->shm, 0, 1, 0, 500, 3, true);
    commit(bad, 0, 0, 4242, 0);
    write_chunk(bad->shm, 1, 1, 1, 600, 3, false);
    commit(bad, 1, 0, target, 0);
    /* A patch out of range, of the wrong size, and for an unknown buffer. */
    cp.has_target_buffer = cp.has_writer_id = cp.has_chunk_id = true;
    cp.target_buffer = target;
    cp.writer_id = 1;
    cp.chunk_id = 0;
    pt.has_offset = pt.has_data = true;
    pt.offset = 1u << 30;
    pt.data.data = four;
    pt.data.len = 4;
    cp.n_patches = 1;
    cp.patches = &ptp;
    req.n_chunks_to_patch = 1;
    req.chunks_to_patch = &cpp;
    assert_int_equal(tb_svc_producer_commit(bad->p, &req), 0);
    pt.data.len = 3;
    assert_int_equal(tb_svc_producer_commit(bad->p, &req), 0);
    cp.target_buffer = 999;
    assert_int_equal(tb_svc_producer_commit(bad->p, &req), 0);
    cp.target_buffer = target;
    cp.writer_id = 0; /* writer ids start at 1 */
    assert_int_equal(tb_svc_producer_commit(bad->p, &req), 0);
    assert_int_equal(bad->kicked, 0);

    commit(good, 0, 0, target, 0);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 256), 20);
    for (unsigned i = 0; i < 20; i++)
        assert_int_equal(pp[i]->timestamp, 1 + i);
    readout_free(&r);
    assert_int_equal(tb_svc_consumer_stats(f->cons.c, &st), 0);
    /* page 100000, chunk 13, the BeingWritten chunk (the foreign buffer belongs to no
     * session, so nobody counts it). */
    assert_int_equal(st.chunks_discarded, 3);
    assert_int_equal(st.patches_discarded, 1);
    assert_int_equal(st.buffer_stats[0]->patches_succeeded, 0);
    tb_svc_stats_clear(&st);

    /* A commit with absurdly many entries gets the producer disconnected. */
    req.n_chunks_to_patch = 100000;
    assert_int_equal(tb_svc_producer_commit(bad->p, &req), -EPROTO);
    assert_int_equal(bad->kicked, 1);
    tb_svc_producer_disconnect(bad->p);
    fp_free(bad);
    tb_svc_producer_disconnect(good->p);
    fp_free(good);
}

static void test_reserved_field_dropped(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", false);
    struct tb_shm_chunk_header hdr = {.chunk_id = 0, .writer_id = 3};
    Perfetto__Protos__TracePacket *pp[8];
    Perfetto__Protos__TraceStats st;
    struct readout r = {0};
    struct tb_shm_chunk ch;
    struct cfg_store c;
    char err[128];
    uint8_t *p;
    uint32_t target;

    make_cfg(&c, 64, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    target = started_target(fp);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 3, target), 0);
    tb_shm_try_partition_page(&fp->shm->abi, 0, TB_SHM_LAYOUT_DIV1);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&fp->shm->abi, 0, 0, &hdr, &ch), 0);
    p = tb_shm_chunk_payload(&ch);
    /* A legitimate packet, one forging trusted_uid = 0, then another legitimate one. */
    memcpy(p, "\x02\x40\x05\x02\x18\x00\x02\x40\x07", 9);
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&ch), tb_shm_packets_make(3, 0));
    assert_int_equal(tb_shm_release_chunk_as_complete(&fp->shm->abi, 0, 0), 0);
    commit(fp, 0, 0, target, 0);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 8), 2);
    assert_int_equal(pp[0]->timestamp, 5);
    assert_int_equal(pp[1]->timestamp, 7);
    /* The rejected packet is reported as dropped on the one after it. */
    assert_true(pp[1]->has_previous_packet_dropped);
    assert_true(pp[1]->previous_packet_dropped & TB_TBUF_DROP_PRESENT);
    readout_free(&r);
    assert_int_equal(tb_svc_consumer_stats(f->cons.c, &st), 0);
    assert_int_equal(st.invalid_packets, 1);
    tb_svc_stats_clear(&st);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

/* A writer id given back and handed out again starts a fresh sequence. */
static void test_writer_id_recycled(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", false);
    Perfetto__Protos__TracePacket *pp[16];
    struct readout r = {0};
    uint32_t target, seq[2] = {0, 0};
    struct cfg_store c;
    char err[128];
    size_t n;

    make_cfg(&c, 256, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    target = started_target(fp);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, target), 0);
    write_chunk(fp->shm, 0, 1, 0, 100, 5, true);
    commit(fp, 0, 0, target, 0);
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 1), 0);
    /* The new writer's chunk ids restart at 0: not a re-copy of the old one. */
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, target), 0);
    write_chunk(fp->shm, 1, 1, 0, 200, 5, true);
    commit(fp, 1, 0, target, 0);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    n = producer_packets(&r, pp, 16);
    assert_int_equal(n, 10);
    /* Two sequences, each in order; which one is read first is not specified. */
    for (unsigned i = 0, k[2] = {0, 0}; i < n; i++) {
        unsigned gen = pp[i]->timestamp >= 200;

        assert_int_equal(pp[i]->timestamp, (gen ? 200 : 100) + k[gen]++);
        if (!seq[gen])
            seq[gen] = pp[i]->trusted_packet_sequence_id;
        assert_int_equal(pp[i]->trusted_packet_sequence_id, seq[gen]);
    }
    assert_int_not_equal(seq[0], seq[1]);
    readout_free(&r);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_scrape_on_disconnect(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", false);
    Perfetto__Protos__TracePacket *pp[16];
    struct readout r = {0};
    struct cfg_store c;
    char err[128];
    uint32_t target;

    make_cfg(&c, 64, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    target = started_target(fp);
    /* Writer 2 is registered, writer 5 is not: only writer 2 is scraped. */
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 2, target), 0);
    write_chunk(fp->shm, 0, 2, 0, 100, 5, false);
    write_chunk(fp->shm, 1, 5, 0, 200, 5, false);
    write_chunk(fp->shm, 2, 2, 1, 105, 1, false); /* count < 2: not scraped */
    tb_svc_producer_disconnect(fp->p);
    fp->p = NULL;
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    /* The BeingWritten chunk loses its last (maybe unfinished) packet. */
    assert_int_equal(producer_packets(&r, pp, 16), 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(pp[i]->timestamp, 100 + i);
    readout_free(&r);
    fp_free(fp);
}

static void test_flush(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", false);
    Perfetto__Protos__TracePacket *pp[32];
    Perfetto__Protos__TraceStats st;
    struct readout r = {0};
    struct cfg_store c;
    char err[128];
    uint32_t target;
    uint64_t id;
    int i;

    make_cfg(&c, 64, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    target = started_target(fp);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, target), 0);
    assert_int_equal(tb_svc_consumer_flush(f->cons.c, 5000, 77), 0);
    i = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH, 0);
    assert_true(i >= 0);
    id = fp->cmds[i]->flush->request_id;
    assert_int_equal(fp->cmds[i]->flush->n_data_source_ids, 1);
    /* The ack rides on a commit carrying the flushed data. */
    write_chunk(fp->shm, 0, 1, 0, 50, 7, true);
    commit(fp, 0, 0, target, id);
    assert_int_equal(f->cons.flush_ok, 1);
    assert_int_equal(f->cons.token, 77);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 32), 7);
    readout_free(&r);

    /* No ack: the flush fails after its timeout. */
    assert_int_equal(tb_svc_consumer_flush(f->cons.c, 50, 78), 0);
    pump(f, 300);
    assert_int_equal(f->cons.flush_fail, 1);
    assert_int_equal(f->cons.token, 78);
    assert_int_equal(tb_svc_consumer_stats(f->cons.c, &st), 0);
    assert_int_equal(st.flushes_requested, 2);
    assert_int_equal(st.flushes_succeeded, 1);
    assert_int_equal(st.flushes_failed, 1);
    tb_svc_stats_clear(&st);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_duration_and_late_producer(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp;
    struct cfg_store c;
    char err[128];

    make_cfg(&c, 64, "late.ds");
    c.cfg.has_duration_ms = true;
    c.cfg.duration_ms = 100;
    c.cfg.has_flush_timeout_ms = true;
    c.cfg.flush_timeout_ms = 100;
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    /* A data source registered after the start joins the running session. */
    fp = add_producer(f, "late", "late.ds", false);
    assert_true(started_target(fp) != 0);
    assert_int_equal(f->cons.disabled, 0);
    pump(f, 600);
    assert_int_equal(f->cons.disabled, 1);
    /* Duration expiry flushes first (the flush times out here), then stops. */
    assert_true(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH, 0) <
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE, 0));
    assert_true(find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH, 0) >= 0);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_consumer_disconnect_frees_session(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", true);
    Perfetto__Protos__TracingServiceState st;
    struct cfg_store c;
    char err[128];

    make_cfg(&c, 64, "test.ds");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), -EBUSY);
    assert_int_equal(tb_svc_core_query_state(f->core, &st), 0);
    assert_int_equal(st.num_sessions, 1);
    assert_int_equal(st.n_producers, 1);
    assert_string_equal(st.producers[0]->name, "prod");
    assert_int_equal(st.n_data_sources, 1);
    assert_string_equal(st.data_sources[0]->ds_descriptor->name, "test.ds");
    assert_int_equal(st.n_tracing_sessions, 1);
    assert_string_equal(st.tracing_sessions[0]->state, "STARTED");
    assert_int_equal(st.tracing_sessions[0]->n_buffer_size_kb, 1);
    assert_int_equal(st.tracing_sessions[0]->buffer_size_kb[0], 64);
    assert_int_equal(st.tracing_sessions[0]->num_data_sources, 1);
    tb_svc_state_clear(&st);
    tb_svc_consumer_disconnect(f->cons.c);
    f->cons.c = NULL;
    assert_true(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE, 0) >= 0);
    assert_int_equal(tb_svc_core_query_state(f->core, &st), 0);
    assert_int_equal(st.num_sessions, 0);
    tb_svc_state_clear(&st);
    assert_int_equal(f->cons.disabled, 0);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_bad_configs(void **state)
{
    struct fix *f = *state;
    struct cfg_store c;
    char err[128];

    make_cfg(&c, 0, "x");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "size_kb"));
    make_cfg(&c, 64, "x");
    c.dsc.has_target_buffer = true;
    c.dsc.target_buffer = 3;
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), -EINVAL);
    make_cfg(&c, 64, "x");
    c.cfg.n_buffers = 0;
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), -EINVAL);
    make_cfg(&c, 64u * 1024 * 1024, "x");
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), -ENOMEM);
}

static void test_deferred_start_and_incremental_clear(void **state)
{
    Perfetto__Protos__TraceConfig__IncrementalStateConfig ic =
        PERFETTO__PROTOS__TRACE_CONFIG__INCREMENTAL_STATE_CONFIG__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", false);
    struct cfg_store c;
    char err[128];
    int i;

    d.name = (char *)"inc.ds";
    d.has_handles_incremental_state_clear = true;
    d.handles_incremental_state_clear = true;
    assert_int_equal(tb_svc_producer_register_ds(fp->p, &d), 0);
    assert_int_equal(tb_svc_producer_register_ds(fp->p, &d), -EEXIST);
    make_cfg(&c, 64, "inc.ds");
    c.cfg.has_deferred_start = true;
    c.cfg.deferred_start = true;
    ic.has_clear_period_ms = true;
    ic.clear_period_ms = 50;
    c.cfg.incremental_state_config = &ic;
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c.cfg, -1, err, sizeof(err)), 0);
    /* Set up, but not started until StartTracing. */
    assert_true(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_DATA_SOURCE, 0) >= 0);
    assert_int_equal(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 0), -1);
    assert_int_equal(tb_svc_consumer_start(f->cons.c), 0);
    assert_true(
        find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 0) >= 0);
    assert_int_equal(tb_svc_consumer_start(f->cons.c), -EBUSY);
    pump(f, 250);
    i = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_CLEAR_INCREMENTAL_STATE, 1);
    assert_true(i >= 0);
    assert_int_equal(fp->cmds[i]->clear_incremental_state->n_data_source_ids, 1);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

static void test_two_sessions_and_stop_timeout(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, "prod", "test.ds", true);
    Perfetto__Protos__TracePacket *pp[32];
    struct fake_cons other = {0};
    struct readout r = {0};
    struct cfg_store c1, c2;
    uint32_t t1, t2;
    char err[128];
    int i1, i2;

    assert_int_equal(tb_svc_consumer_connect(f->core, getuid(), &fc_ops, &other, &other.c), 0);
    make_cfg(&c1, 64, "test.ds");
    make_cfg(&c2, 64, "test.ds");
    c2.cfg.has_data_source_stop_timeout_ms = true;
    c2.cfg.data_source_stop_timeout_ms = 100;
    assert_int_equal(tb_svc_consumer_enable(f->cons.c, &c1.cfg, -1, err, sizeof(err)), 0);
    assert_int_equal(tb_svc_consumer_enable(other.c, &c2.cfg, -1, err, sizeof(err)), 0);
    /* One SMB for the producer, one instance per session, distinct buffers. */
    assert_true(find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING, 1) <
                0);
    i1 = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 0);
    i2 = find_cmd(fp, PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE, 1);
    assert_true(i1 >= 0 && i2 >= 0);
    t1 = fp->cmds[i1]->start_data_source->config->target_buffer;
    t2 = fp->cmds[i2]->start_data_source->config->target_buffer;
    assert_true(t1 && t2 && t1 != t2);
    assert_int_equal(fp->cmds[i2]->start_data_source->config->stop_timeout_ms, 100);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, t1), 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 2, t2), 0);
    write_chunk(fp->shm, 0, 1, 0, 10, 3, true);
    commit(fp, 0, 0, t1, 0);
    write_chunk(fp->shm, 1, 2, 0, 20, 4, true);
    commit(fp, 1, 0, t2, 0);
    assert_int_equal(tb_svc_consumer_read(f->cons.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 32), 3);
    assert_int_equal(pp[0]->timestamp, 10);
    readout_free(&r);
    assert_int_equal(tb_svc_consumer_read(other.c, collect, &r), 0);
    assert_int_equal(producer_packets(&r, pp, 32), 4);
    assert_int_equal(pp[0]->timestamp, 20);
    readout_free(&r);

    /* The producer never acks the stop: the session ends at its stop timeout. */
    assert_int_equal(tb_svc_consumer_disable(other.c), 0);
    assert_int_equal(other.disabled, 0);
    pump(f, 400);
    assert_int_equal(other.disabled, 1);
    assert_int_equal(f->cons.disabled, 0);
    tb_svc_consumer_disconnect(other.c);
    tb_svc_producer_disconnect(fp->p);
    fp_free(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lying_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_id_recycled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserved_field_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrape_on_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_and_late_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_disconnect_frees_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_configs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_sessions_and_stop_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_start_and_incremental_clear, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
