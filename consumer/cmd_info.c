/*
 * cmd_info.c - "tracebpf info FILE": what a trace holds (time span, packets
 * per source, CPUs, processes, losses). Placeholder until the trace protos
 * land.
 */
#include "consumer/cli.h"

static int run_info(int argc, char **argv)
{
    return tb_cli_not_available("info", "waiting for the trace protos");
}

const struct tb_cli_cmd tb_cli_cmd_info = {
    .name = "info",
    .summary = "what a trace holds: time span, sources, CPUs, processes, losses",
    .help = "usage: tracebpf info FILE\n"
            "\n"
            "EXAMPLES\n"
            "  tracebpf info trace.pftrace\n",
    .run = run_info,
};
