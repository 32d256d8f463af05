/*
 * writer_bench.c - cost of writing one small TracePacket (timestamp plus a
 * track event with type, track uuid and name): the bare encoder into a
 * flat buffer, the full TraceWriter path into a real memfd SMB (chunk
 * switches and draining included), and protobuf-c packing for comparison.
 *
 * Usage: writer_bench [packets]   (default 5,000,000)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pb_writer.h"
#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "common/trace_writer.h"
#include "perfetto/trace/trace_packet.pb-c.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void small_packet(struct tb_pbw *w, uint64_t i)
{
    tb_pbw_append_varint(w, 8, 1700000000000000000ull + i * 1000);
    tb_pbw_begin_nested(w, 11);
    tb_pbw_append_varint(w, 9, 1 + (i & 1));
    tb_pbw_append_varint(w, 11, 0xabcdef12u);
    tb_pbw_append_string(w, 23, "DoWork");
    tb_pbw_end_nested(w);
}

static void bench_flat(uint64_t n)
{
    static uint8_t buf[1 << 16];
    uint64_t t0, t1, bytes = 0;
    struct tb_pbw w;

    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        tb_pbw_init_buf(&w, buf + (i & 511) * 64, 64);
        small_packet(&w, i);
        bytes += tb_pbw_size(&w);
    }
    t1 = now_ns();
    __asm__ volatile("" : : "r"(buf) : "memory");
    printf("pb_writer, flat buffer:      %6.2f ns/packet  %4.1f bytes/packet\n",
           (double)(t1 - t0) / (double)n, (double)bytes / (double)n);
}

/* Stand-in for the service: commit and free what the writer gave back. */
static void drain(struct tb_shm *shm, struct tb_arbiter *arb)
{
    struct tb_arbiter_batch *b = NULL;

    if (tb_arbiter_take_commits(arb, &b) || !b)
        return;
    for (size_t i = 0; i < b->num_commits; i++) {
        if (!tb_shm_try_acquire_chunk_for_reading(&shm->abi, b->commits[i].page,
                                                  b->commits[i].chunk, NULL))
            tb_shm_release_chunk_as_free(&shm->abi, b->commits[i].page, b->commits[i].chunk);
    }
    tb_arbiter_batch_free(b);
}

static int bench_trace_writer(uint64_t n, size_t page_size)
{
    struct tb_arbiter *arb = NULL;
    struct tb_shm *shm = NULL;
    struct tb_tw *tw = NULL;
    struct tb_tw_stats st;
    uint64_t t0, t1, t_drain = 0;
    int err;

    err = tb_shm_create(TB_SHM_DEFAULT_SIZE, page_size, &shm);
    if (!err)
        err = tb_arbiter_create(shm, 0, &arb);
    if (!err) {
        struct tb_tw_opts o = {
            .ops = &tb_tw_arbiter_ops, .ops_ctx = arb, .writer_id = 1, .target_buffer = 1};

        err = tb_tw_create(&o, &tw);
    }
    if (err) {
        fprintf(stderr, "writer_bench: setup failed: %s\n", strerror(-err));
        goto out;
    }
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        small_packet(tb_tw_begin_packet(tw), i);
        tb_tw_end_packet(tw);
        if ((i & 4095) == 4095) {
            uint64_t d = now_ns();

            drain(shm, arb);
            t_drain += now_ns() - d;
        }
    }
    tb_tw_flush(tw);
    t1 = now_ns();
    tb_tw_stats(tw, &st);
    printf("TraceWriter, %2zu KiB pages:   %6.2f ns/packet  %4.1f bytes/packet  "
           "(drain %.2f ns/packet excluded; %llu chunks, %llu fragments, %llu dropped)\n",
           page_size / 1024, (double)(t1 - t0 - t_drain) / (double)n,
           (double)st.bytes_written / (double)st.packets_written, (double)t_drain / (double)n,
           (unsigned long long)st.chunks_returned, (unsigned long long)st.fragments,
           (unsigned long long)st.packets_dropped);
out:
    tb_tw_destroy(tw);
    tb_arbiter_destroy(arb);
    tb_shm_destroy(shm);
    return err;
}

static void bench_protobuf_c(uint64_t n)
{
    static uint8_t buf[256];
    Perfetto__Protos__TracePacket tp = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    Perfetto__Protos__TrackEvent te = PERFETTO__PROTOS__TRACK_EVENT__INIT;
    uint64_t t0, t1, bytes = 0;

    tp.has_timestamp = 1;
    tp.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT;
    tp.track_event = &te;
    te.has_type = 1;
    te.has_track_uuid = 1;
    te.track_uuid = 0xabcdef12u;
    te.name_field_case = PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME;
    te.name = "DoWork";
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        tp.timestamp = 1700000000000000000ull + i * 1000;
        te.type = 1 + (i & 1);
        bytes += perfetto__protos__trace_packet__pack(&tp, buf);
    }
    t1 = now_ns();
    printf("protobuf-c pack (reference): %6.2f ns/packet  %4.1f bytes/packet\n",
           (double)(t1 - t0) / (double)n, (double)bytes / (double)n);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 5000000;

    if (!n)
        n = 1;
    printf("writer_bench: %llu small packets each\n", (unsigned long long)n);
    bench_flat(n);
    if (bench_trace_writer(n, 4096) || bench_trace_writer(n, 32768))
        return 1;
    bench_protobuf_c(n / 10 ? n / 10 : 1);
    return 0;
}
