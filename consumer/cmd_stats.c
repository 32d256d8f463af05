/*
 * cmd_stats.c - "tracebpf stats": the daemon's statistics (GetTraceStats)
 * printed for people: producers and data sources, sessions, and per buffer
 * what was written, read, overwritten, discarded or refused.
 */
#include "common/consumer_client.h"
#include "consumer/cli.h"
#include "consumer/cli_connect.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define RPC_TIMEOUT_MS 5000

static void print_buffer(size_t i, const Perfetto__Protos__TraceStats__BufferStats *b)
{
    char size[32], wr[32], rd[32], ov[32];

    printf("buffer %zu: size %s, written %s in %" PRIu64 " chunks, read %s, wrapped %" PRIu64
           " time(s)\n",
           i, tb_cli_human_bytes(b->buffer_size, size, sizeof(size)),
           tb_cli_human_bytes(b->bytes_written, wr, sizeof(wr)), b->chunks_written,
           tb_cli_human_bytes(b->bytes_read, rd, sizeof(rd)), b->write_wrap_count);
    printf("  chunks overwritten %" PRIu64 " (%s), discarded %" PRIu64 ", rewritten %" PRIu64
           ", out of order %" PRIu64 "\n",
           b->chunks_overwritten, tb_cli_human_bytes(b->bytes_overwritten, ov, sizeof(ov)),
           b->chunks_discarded, b->chunks_rewritten, b->chunks_committed_out_of_order);
    printf("  patches ok %" PRIu64 ", failed %" PRIu64 "; ABI violations %" PRIu64
           "; packets lost by writers %" PRIu64 "\n",
           b->patches_succeeded, b->patches_failed, b->abi_violations, b->trace_writer_packet_loss);
}

static int run_stats(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    Perfetto__Protos__TraceStats *st = NULL;
    struct tb_cc *cc = NULL;
    int opt, err;
    size_t i;

    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return tb_cli_getopt_error("stats", opt, argv);
    if (optind != argc)
        return tb_cli_usage_error("stats", "takes no arguments");
    if (tb_cli_connect("stats", &cc))
        return TB_CLI_EXIT_FAIL;
    err = tb_cc_get_stats(cc, RPC_TIMEOUT_MS, &st);
    if (err) {
        fprintf(stderr, "tracebpf stats: GetTraceStats failed: %s\n", strerror(-err));
        tb_cc_free(cc);
        return TB_CLI_EXIT_FAIL;
    }
    printf("producers:    %" PRIu32 " connected, %" PRIu64 " seen since start\n",
           st->producers_connected, st->producers_seen);
    printf("data sources: %" PRIu32 " registered, %" PRIu64 " seen since start\n",
           st->data_sources_registered, st->data_sources_seen);
    printf("sessions:     %" PRIu32 " tracing, %" PRIu32 " buffers in total\n",
           st->tracing_sessions, st->total_buffers);
    printf("service:      %" PRIu64 " chunks discarded, %" PRIu64 " patches discarded, %" PRIu64
           " invalid packets\n",
           st->chunks_discarded, st->patches_discarded, st->invalid_packets);
    printf("flushes:      %" PRIu64 " requested, %" PRIu64 " succeeded, %" PRIu64 " failed\n",
           st->flushes_requested, st->flushes_succeeded, st->flushes_failed);
    for (i = 0; i < st->n_buffer_stats; i++)
        print_buffer(i, st->buffer_stats[i]);
    if (!st->n_buffer_stats)
        printf("no buffers (no session of yours is running)\n");
    perfetto__protos__trace_stats__free_unpacked(st, NULL);
    tb_cc_free(cc);
    return TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_stats = {
    .name = "stats",
    .summary = "service and session statistics (needs the daemon)",
    .help = "usage: tracebpf stats\n"
            "\n"
            "Asks the traced-bpf daemon for its statistics: producers connected and\n"
            "seen, data sources, sessions and buffers, service-wide losses and\n"
            "flushes, and per buffer of this consumer's session: bytes and chunks\n"
            "written, bytes read, ring wraps, chunks overwritten or discarded,\n"
            "patches, ABI violations and packets writers lost. The socket is\n"
            "$PERFETTO_CONSUMER_SOCK_NAME or the default.\n"
            "\n"
            "When no daemon answers: one line saying so, exit 1.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf stats\n",
    .run = run_stats,
};
