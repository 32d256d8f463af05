/*
 * cmd_stats.c - "tracebpf stats": service and session statistics read over
 * the consumer socket (GetTraceStats / QueryServiceState). Needs the
 * service's consumer client (common/consumer_client.h), not built yet.
 */
#include "consumer/cli.h"

static int run_stats(int argc, char **argv)
{
    return tb_cli_not_available("stats", "needs the service (issue 3)");
}

const struct tb_cli_cmd tb_cli_cmd_stats = {
    .name = "stats",
    .summary = "service and session statistics (needs the daemon)",
    .help = "usage: tracebpf stats\n"
            "\n"
            "Asks the traced-bpf daemon for its statistics: producers connected,\n"
            "sessions, buffer use, chunks written, overwritten and discarded, and\n"
            "every loss counter.\n"
            "\n"
            "Status: not available yet; it needs the service's consumer client\n"
            "(issue 3). The command exits 1 with a one-line message.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf stats\n",
    .run = run_stats,
};
