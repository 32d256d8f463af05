/*
 * cmd_ls.c - "tracebpf ls": the producers connected to the service and the
 * data sources each offers (QueryServiceState). Needs the service's consumer
 * client (common/consumer_client.h), not built yet.
 */
#include "consumer/cli.h"

static int run_ls(int argc, char **argv)
{
    return tb_cli_not_available("ls", "needs the service (issue 3)");
}

const struct tb_cli_cmd tb_cli_cmd_ls = {
    .name = "ls",
    .summary = "producers connected to the daemon and their data sources",
    .help = "usage: tracebpf ls\n"
            "\n"
            "Lists the producers connected to the traced-bpf daemon (name, pid, uid)\n"
            "and the data sources each one offers, i.e. what a config can ask for.\n"
            "\n"
            "Status: not available yet; it needs the service's consumer client\n"
            "(issue 3). The command exits 1 with a one-line message.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf ls\n",
    .run = run_ls,
};
