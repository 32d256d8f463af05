/*
 * cmd_export.c - "tracebpf export": convert a trace to ftrace text, systrace
 * or Chrome JSON. Placeholder until the trace protos land.
 */
#include "consumer/cli.h"

static int run_export(int argc, char **argv)
{
    return tb_cli_not_available("export", "waiting for the trace protos");
}

const struct tb_cli_cmd tb_cli_cmd_export = {
    .name = "export",
    .summary = "convert a trace to ftrace text, systrace or Chrome JSON",
    .help = "usage: tracebpf export --format systrace|ftrace|json FILE [-o OUT]\n"
            "\n"
            "EXAMPLES\n"
            "  tracebpf export --format json trace.pftrace -o trace.json\n",
    .run = run_export,
};
