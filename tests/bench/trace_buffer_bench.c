/*
 * trace_buffer_bench.c - throughput of the central trace buffer: 4 KiB chunks
 * copied in and drained back out as packets (each packet copied into an
 * output buffer, as ReadBuffers does into IPC frames), for the sequences of
 * 1 and of 4 producers. A plain memcpy of the same bytes is timed in the
 * same run as the yardstick.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/trace_buffer.h"
#include "tracebpf/shm_abi.h"

#define CHUNK_PAYLOAD (4096u - 8u)
#define PACKET_LEN    196u /* + 4-byte prefix = 200 bytes a record */
#define WRITERS       8u   /* writer threads per producer */
#define BUFFER_BYTES  (32u << 20)
#define BATCH_CHUNKS  2048u /* chunks copied between two drains (8 MiB) */

static uint8_t chunk[CHUNK_PAYLOAD];
static uint16_t chunk_packets;
static uint8_t out[1 << 20];

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One chunk full of 200-byte records, the shape the SDK produces. */
static void build_chunk(void)
{
    size_t len = 0;
    uint16_t n = 0;

    while (len + 4 + PACKET_LEN <= CHUNK_PAYLOAD) {
        tb_shm_write_size_prefix(chunk + len, PACKET_LEN);
        for (size_t i = 0; i < PACKET_LEN; i++)
            chunk[len + 4 + i] = (uint8_t)(n * 7 + i);
        len += 4 + PACKET_LEN;
        n++;
    }
    chunk_packets = tb_shm_packets_make(n, 0);
}

static int run(unsigned int producers, uint64_t total_bytes, double *mbps, uint64_t *packets)
{
    uint32_t next_id[4][WRITERS] = {{0}};
    uint64_t copied = 0, npk = 0;
    struct tb_tbuf_packet pkt;
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;
    double t0;
    int err;

    err = tb_tbuf_new(BUFFER_BYTES, TB_TBUF_POLICY_RING_BUFFER, &t);
    if (err)
        return err;
    t0 = now_s();
    while (copied < total_bytes) {
        for (uint32_t i = 0; i < BATCH_CHUNKS; i++) {
            unsigned int p = i % producers;
            unsigned int w = (i / producers) % WRITERS;

            err = tb_tbuf_copy_chunk(t, (uint16_t)(p + 1), (uint16_t)(w + 1), next_id[p][w]++,
                                     chunk_packets, chunk, CHUNK_PAYLOAD, true);
            if (err)
                goto out;
            copied += CHUNK_PAYLOAD + 8;
        }
        while (!tb_tbuf_read_next(t, &pkt)) {
            if (tb_tbuf_packet_copy(&pkt, out, sizeof(out)) < 0) {
                err = -1;
                goto out;
            }
            npk++;
        }
    }
    *mbps = (double)copied / (now_s() - t0) / 1e6;
    *packets = npk;
    tb_tbuf_get_stats(t, &st);
    if (st.chunks_overwritten || st.chunks_read != st.chunks_written)
        err = -1;
out:
    tb_tbuf_free(t);
    return err;
}

/*
 * The yardstick: the same chunks memcpy'd into a batch-sized area and, with
 * @twice, copied out again packet by packet (the two copies the buffer does).
 */
static double memcpy_mbps(uint64_t total_bytes, bool twice)
{
    static uint8_t dst[BATCH_CHUNKS][CHUNK_PAYLOAD + 8] __attribute__((aligned(64)));
    volatile uint8_t sink;
    uint64_t copied = 0;
    double t0 = now_s();

    while (copied < total_bytes) {
        for (uint32_t i = 0; i < BATCH_CHUNKS; i++) {
            memcpy(dst[i] + 8, chunk, CHUNK_PAYLOAD);
            copied += CHUNK_PAYLOAD + 8;
        }
        for (uint32_t i = 0; twice && i < BATCH_CHUNKS; i++) {
            for (size_t off = 0; off + 4 + PACKET_LEN <= CHUNK_PAYLOAD; off += 4 + PACKET_LEN)
                memcpy(out, dst[i] + 8 + off + 4, PACKET_LEN);
        }
        sink = dst[copied % BATCH_CHUNKS][100] ^ out[7];
    }
    (void)sink;
    return (double)copied / (now_s() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    uint64_t total = (uint64_t)(argc > 1 ? strtoul(argv[1], NULL, 0) : 1024) << 20;
    static const unsigned int prods[] = {1, 4};
    double mc, mc2;

    build_chunk();
    mc = memcpy_mbps(total, false);
    mc2 = memcpy_mbps(total, true);
    printf("trace_buffer_bench: %llu MiB in 4 KiB chunks, %u-byte packets, %u writers/producer\n",
           (unsigned long long)(total >> 20), PACKET_LEN, WRITERS);
    printf("  plain memcpy of the chunks:           %8.0f MB/s\n", mc);
    printf("  memcpy in + memcpy out per packet:    %8.0f MB/s\n", mc2);
    for (size_t i = 0; i < 2; i++) {
        uint64_t npk = 0;
        double mbps = 0;

        if (run(prods[i], total, &mbps, &npk)) {
            fprintf(stderr, "trace_buffer_bench: run with %u producers failed\n", prods[i]);
            return 1;
        }
        printf("  copy in + read back, %u producer(s): %8.0f MB/s (%.2fx the time of memcpy "
               "in+out), %llu packets\n",
               prods[i], mbps, mc2 / mbps, (unsigned long long)npk);
    }
    return 0;
}
