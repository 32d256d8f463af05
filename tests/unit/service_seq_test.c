/*
 * service_seq_test.c - trusted packet sequences across recycled ids: a
 * writer id given back and handed out again, and a producer id reused by a
 * later connection, start fresh trusted_packet_sequence_ids while the old
 * generation's unread packets keep their own id, uid and pid, also when the
 * writer's last commit arrives after its UnregisterTraceWriter. Drives the
 * service core directly with real memfd SMBs; packets are decoded with
 * protobuf-c.
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

/* ------------------------------------------------------------ fakes */

struct fake_prod {
    struct tb_svc_producer *p;
    struct tb_shm *shm;
    uint32_t target;   /* from the first StartDataSource */
    uint64_t flush_id; /* the last Flush request */
};

static int fp_send(void *ctx, const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd)
{
    struct fake_prod *fp = ctx;

    if (fd >= 0) {
        assert_null(fp->shm);
        assert_int_equal(
            tb_shm_attach(dup(fd), cmd->setup_tracing->shared_buffer_page_size_kb * 1024, &fp->shm),
            0);
    }
    if (cmd->cmd_case == PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE &&
        !fp->target)
        fp->target = cmd->start_data_source->config->target_buffer;
    if (cmd->cmd_case == PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH)
        fp->flush_id = cmd->flush->request_id;
    return 0;
}

static void fp_kick(void *ctx, const char *why)
{
    fail_msg("producer kicked: %s", why);
}

static const struct tb_svc_producer_ops fp_ops = {.send_command = fp_send, .kick = fp_kick};

static void fc_disabled(void *ctx, const char *error)
{
}

static void fc_flush(void *ctx, uint64_t token, bool ok)
{
}

static const struct tb_svc_consumer_ops fc_ops = {.tracing_disabled = fc_disabled,
                                                  .flush_done = fc_flush};

struct fix {
    struct tb_loop *loop;
    struct tb_svc_core *core;
    struct tb_svc_consumer *cons;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig buf =
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__DataSource ds =
        PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT;
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource *dss[1] = {&ds};
    char err[128];

    assert_non_null(f);
    assert_int_equal(tb_loop_new(&f->loop), 0);
    assert_int_equal(tb_svc_core_new(f->loop, NULL, &f->core), 0);
    assert_int_equal(tb_svc_consumer_connect(f->core, getuid(), &fc_ops, NULL, &f->cons), 0);
    buf.has_size_kb = true;
    buf.size_kb = 256;
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    dsc.name = "seq.ds";
    ds.config = &dsc;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;
    assert_int_equal(tb_svc_consumer_enable(f->cons, &cfg, -1, err, sizeof(err)), 0);
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

/* A producer of "seq.ds" (pid @pid) that joined the running session. */
static struct fake_prod *add_producer(struct fix *f, pid_t pid)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct fake_prod *fp = calloc(1, sizeof(*fp));

    assert_non_null(fp);
    assert_int_equal(tb_svc_producer_connect(f->core, getuid(), pid, &fp_ops, fp, &fp->p), 0);
    init.producer_name = "seq-prod";
    assert_int_equal(tb_svc_producer_initialize(fp->p, &init), 0);
    d.name = "seq.ds";
    assert_int_equal(tb_svc_producer_register_ds(fp->p, &d), 0);
    assert_non_null(fp->shm);
    assert_true(fp->target != 0);
    return fp;
}

static void drop_producer(struct fake_prod *fp)
{
    tb_svc_producer_disconnect(fp->p);
    tb_shm_destroy(fp->shm);
    free(fp);
}

/*
 * Writes @npkts packets with timestamps @ts0.. as one chunk in page @page,
 * left BeingWritten unless @complete. Timestamps of 2^28 and more take a
 * 5-byte varint, which a patch can rewrite in place (see
 * test_patch_reaches_new_generation).
 */
static void write_chunk_state(struct tb_shm *shm, size_t page, uint16_t writer, uint32_t chunk_id,
                              uint64_t ts0, unsigned npkts, uint8_t flags, bool complete)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = chunk_id, .writer_id = writer};
    struct tb_shm_chunk c;
    uint8_t *p;

    tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV1);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 0, &hdr, &c), 0);
    p = tb_shm_chunk_payload(&c);
    for (unsigned i = 0; i < npkts; i++) {
        uint64_t ts = ts0 + i;
        size_t n = 0;

        p[4 + n++] = 0x40; /* TracePacket.timestamp, varint */
        do {
            p[4 + n++] = (uint8_t)((ts & 0x7f) | (ts >= 0x80 ? 0x80 : 0));
            ts >>= 7;
        } while (ts);
        tb_shm_write_size_prefix(p, (uint32_t)n);
        p += 4 + n;
    }
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make((uint16_t)npkts, flags));
    if (complete)
        assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, page, 0), 0);
}

/* write_chunk_state() of a complete chunk. */
static void write_chunk(struct tb_shm *shm, size_t page, uint16_t writer, uint32_t chunk_id,
                        uint64_t ts0, unsigned npkts, uint8_t flags)
{
    write_chunk_state(shm, page, writer, chunk_id, ts0, npkts, flags, true);
}

static void commit(struct fake_prod *fp, uint32_t page)
{
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove m =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mp = &m;

    m.has_page = m.has_chunk = m.has_target_buffer = true;
    m.page = page;
    m.chunk = 0;
    m.target_buffer = fp->target;
    req.n_chunks_to_move = 1;
    req.chunks_to_move = &mp;
    assert_int_equal(tb_svc_producer_commit(fp->p, &req), 0);
}

/* Producer packets of one read, decoded (service packets, sequence 1, skipped). */
struct readout {
    Perfetto__Protos__TracePacket *pkts[256];
    size_t n;
};

static int collect(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    Perfetto__Protos__TracePacket *pkt;
    struct readout *r = ctx;
    uint8_t buf[65536];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        assert_true(len + sl[i].len <= sizeof(buf));
        memcpy(buf + len, sl[i].data, sl[i].len);
        len += sl[i].len;
    }
    pkt = perfetto__protos__trace_packet__unpack(NULL, len, buf);
    assert_non_null(pkt);
    if (pkt->trusted_packet_sequence_id < 2) {
        perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
        return 0;
    }
    assert_true(r->n < 256);
    r->pkts[r->n++] = pkt;
    return 0;
}

static void readout_free(struct readout *r)
{
    for (size_t i = 0; i < r->n; i++)
        perfetto__protos__trace_packet__free_unpacked(r->pkts[i], NULL);
    r->n = 0;
}

/*
 * Checks that the packets with timestamps @ts0 .. @ts0 + @n - 1 were read,
 * in order, all on one sequence with pid @pid, and returns that sequence id.
 */
static uint32_t check_run(const struct readout *r, uint64_t ts0, unsigned n, pid_t pid)
{
    uint32_t seq = 0;
    unsigned seen = 0;

    for (size_t i = 0; i < r->n; i++) {
        const Perfetto__Protos__TracePacket *p = r->pkts[i];

        if (p->timestamp < ts0 || p->timestamp >= ts0 + n)
            continue;
        assert_int_equal(p->timestamp, ts0 + seen);
        if (!seen)
            seq = p->trusted_packet_sequence_id;
        assert_int_equal(p->trusted_packet_sequence_id, seq);
        assert_true(p->has_trusted_pid);
        assert_int_equal(p->trusted_pid, pid);
        assert_int_equal(p->trusted_uid, getuid());
        /* A fresh writer's first packet lost nothing. */
        assert_false(p->has_previous_packet_dropped && p->previous_packet_dropped);
        seen++;
    }
    assert_int_equal(seen, n);
    return seq;
}

/* ------------------------------------------------------------ tests */

/* Both generations of writer 1 still unread when the read comes. */
static void test_recycled_writer_fresh_sequence(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, 1001);
    struct readout r = {0};
    uint32_t s_old, s_new, s_third;

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, fp->target), 0);
    write_chunk(fp->shm, 0, 1, 0, 100, 5, 0);
    commit(fp, 0);
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 1), 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, fp->target), 0);
    write_chunk(fp->shm, 1, 1, 0, 200, 5, 0);
    commit(fp, 1);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 10);
    s_old = check_run(&r, 100, 5, 1001);
    s_new = check_run(&r, 200, 5, 1001);
    assert_true(s_old >= 2 && s_new >= 2);
    assert_int_not_equal(s_old, s_new);
    readout_free(&r);

    /* Read in between: the third generation is fresh again, the second stays put. */
    write_chunk(fp->shm, 2, 1, 1, 300, 3, 0);
    commit(fp, 2);
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 1), 0);
    write_chunk(fp->shm, 3, 1, 0, 400, 3, 0); /* unregistered writers may write too */
    commit(fp, 3);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 6);
    assert_int_equal(check_run(&r, 300, 3, 1001), s_new);
    s_third = check_run(&r, 400, 3, 1001);
    assert_true(s_third != s_old && s_third != s_new);
    readout_free(&r);
    drop_producer(fp);
}

/*
 * The producer goes away with its packets unread and a later producer gets
 * the same id: each keeps its own sequence id and pid.
 */
static void test_reused_producer_id(void **state)
{
    struct fix *f = *state;
    struct fake_prod *a = add_producer(f, 2001), *b;
    struct readout r = {0};
    uint16_t a_id = tb_svc_producer_id(a->p);
    uint32_t s_a, s_b;
    unsigned cycles = 0;

    assert_int_equal(tb_svc_producer_register_writer(a->p, 7, a->target), 0);
    write_chunk(a->shm, 0, 7, 0, 100, 4, 0);
    commit(a, 0);
    drop_producer(a);
    /* Producer ids are 16 bits: connect until the core hands a_id out again. */
    for (;;) {
        struct tb_svc_producer *p;

        assert_int_equal(tb_svc_producer_connect(f->core, getuid(), 1, &fp_ops, NULL, &p), 0);
        if (tb_svc_producer_id(p) + 1 == a_id || (a_id == 1 && tb_svc_producer_id(p) == 65535)) {
            tb_svc_producer_disconnect(p);
            break;
        }
        tb_svc_producer_disconnect(p);
        assert_true(++cycles < 70000);
    }
    b = add_producer(f, 2002);
    assert_int_equal(tb_svc_producer_id(b->p), a_id);
    assert_int_equal(tb_svc_producer_register_writer(b->p, 7, b->target), 0);
    write_chunk(b->shm, 0, 7, 0, 500, 4, 0); /* same writer id, same chunk id */
    commit(b, 0);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 8);
    s_a = check_run(&r, 100, 4, 2001);
    s_b = check_run(&r, 500, 4, 2002);
    assert_int_not_equal(s_a, s_b);
    readout_free(&r);
    drop_producer(b);
}

/*
 * Both generations hold a chunk 0 when a patch for writer 1 chunk 0 comes:
 * it belongs to the live one.
 */
static void test_patch_reaches_new_generation(void **state)
{
    /* 2^28 + 5 as a varint: 85 80 80 80 01 (2^28 is 80 80 80 80 01). */
    static const uint8_t patch_bytes[4] = {0x85, 0x80, 0x80, 0x80};
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch pt =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNK_TO_PATCH__PATCH__INIT;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch cp =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNK_TO_PATCH__INIT;
    Perfetto__Protos__CommitDataRequest req = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch__Patch *ptp = &pt;
    Perfetto__Protos__CommitDataRequest__ChunkToPatch *cpp = &cp;
    const uint64_t base = 1ull << 28;
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, 3001);
    struct readout r = {0};
    uint32_t s_old = 0, s_new = 0;

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, fp->target), 0);
    write_chunk(fp->shm, 0, 1, 0, base, 1, 0);
    commit(fp, 0);
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 1), 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 1, fp->target), 0);
    /* The last record waits for its patch. */
    write_chunk(fp->shm, 1, 1, 0, base, 1, TB_SHM_FLAG_NEEDS_PATCHING);
    commit(fp, 1);
    /* Offset 5: past the record's 4-byte size prefix and the field tag. */
    pt.has_offset = pt.has_data = true;
    pt.offset = 5;
    pt.data.data = (uint8_t *)patch_bytes;
    pt.data.len = sizeof(patch_bytes);
    cp.has_target_buffer = cp.has_writer_id = cp.has_chunk_id = true;
    cp.target_buffer = fp->target;
    cp.writer_id = 1;
    cp.chunk_id = 0;
    cp.n_patches = 1;
    cp.patches = &ptp;
    req.n_chunks_to_patch = 1;
    req.chunks_to_patch = &cpp;
    assert_int_equal(tb_svc_producer_commit(fp->p, &req), 0);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 2);
    for (size_t i = 0; i < r.n; i++) {
        if (r.pkts[i]->timestamp == base)
            s_old = r.pkts[i]->trusted_packet_sequence_id;
        else if (r.pkts[i]->timestamp == base + 5)
            s_new = r.pkts[i]->trusted_packet_sequence_id;
    }
    assert_true(s_old >= 2 && s_new >= 2 && s_old != s_new);
    readout_free(&r);
    drop_producer(fp);
}

/*
 * The producer's UnregisterTraceWriter overtakes the writer's last commit
 * (as our producer client sends them) and the id is registered again before
 * that commit lands: the late chunk still belongs to the old writer, and
 * the new writer, numbering its chunks from 0, starts a fresh sequence.
 */
static void test_late_commit_after_unregister(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, 4001);
    struct readout r = {0};
    uint32_t s_old, s_new;

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 3, fp->target), 0);
    write_chunk(fp->shm, 0, 3, 0, 100, 4, 0);
    commit(fp, 0);
    write_chunk(fp->shm, 1, 3, 1, 104, 4, 0); /* complete, not committed yet */
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 3), 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 3, fp->target), 0);
    commit(fp, 1);
    write_chunk(fp->shm, 2, 3, 0, 200, 4, 0);
    commit(fp, 2);
    write_chunk(fp->shm, 3, 3, 1, 204, 4, 0);
    commit(fp, 3);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 16);
    s_old = check_run(&r, 100, 8, 4001);
    s_new = check_run(&r, 200, 8, 4001);
    assert_int_not_equal(s_old, s_new);
    readout_free(&r);
    drop_producer(fp);
}

/*
 * A chunk scraped while being written (at a flush) and committed after the
 * writer was unregistered is the same chunk: its last packet joins the old
 * sequence, once.
 */
static void test_scraped_then_committed_after_unregister(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, 5001);
    Perfetto__Protos__CommitDataRequest ack = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    struct readout r = {0};
    uint32_t s_old, s_new;

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 9, fp->target), 0);
    write_chunk_state(fp->shm, 0, 9, 0, 100, 3, 0, false);
    assert_int_equal(tb_svc_consumer_flush(f->cons, 1000, 1), 0);
    assert_true(fp->flush_id != 0);
    ack.has_flush_request_id = true;
    ack.flush_request_id = fp->flush_id;
    assert_int_equal(tb_svc_producer_commit(fp->p, &ack), 0); /* the flush ends: scrape */
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 2); /* the last record of a chunk being written stays hidden */
    s_old = check_run(&r, 100, 2, 5001);
    readout_free(&r);

    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 9), 0);
    assert_int_equal(tb_shm_release_chunk_as_complete(&fp->shm->abi, 0, 0), 0);
    commit(fp, 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 9, fp->target), 0);
    write_chunk(fp->shm, 1, 9, 0, 300, 2, 0);
    commit(fp, 1);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(check_run(&r, 102, 1, 5001), s_old);
    s_new = check_run(&r, 300, 2, 5001);
    assert_int_not_equal(s_old, s_new);
    readout_free(&r);
    drop_producer(fp);
}

/*
 * A producer that goes on counting chunk ids when it hands a writer id to a
 * new writer asked for one sequence (libtracebpf did, to survive services
 * that never forget a writer): it keeps it, and nothing is read twice.
 */
static void test_continued_chunk_ids_keep_sequence(void **state)
{
    struct fix *f = *state;
    struct fake_prod *fp = add_producer(f, 6001);
    struct readout r = {0};
    uint32_t seq;

    assert_int_equal(tb_svc_producer_register_writer(fp->p, 2, fp->target), 0);
    write_chunk(fp->shm, 0, 2, 0, 100, 3, 0);
    commit(fp, 0);
    write_chunk(fp->shm, 1, 2, 1, 103, 3, 0);
    commit(fp, 1);
    assert_int_equal(tb_svc_producer_unregister_writer(fp->p, 2), 0);
    assert_int_equal(tb_svc_producer_register_writer(fp->p, 2, fp->target), 0);
    write_chunk(fp->shm, 2, 2, 2, 106, 3, 0);
    commit(fp, 2);
    assert_int_equal(tb_svc_consumer_read(f->cons, collect, &r), 0);
    assert_int_equal(r.n, 9);
    seq = check_run(&r, 100, 9, 6001);
    assert_true(seq >= 2);
    readout_free(&r);
    drop_producer(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recycled_writer_fresh_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_producer_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_reaches_new_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_commit_after_unregister, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scraped_then_committed_after_unregister, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_continued_chunk_ids_keep_sequence, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
