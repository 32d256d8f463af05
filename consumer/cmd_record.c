/*
 * cmd_record.c - "tracebpf record": build a TraceConfig from flags or a
 * config file, run it through the service and write the trace. The service
 * side (common/consumer_client.h) is not built yet, so for now the command
 * only documents its interface and says what is missing.
 */
#include "consumer/cli.h"

static int run_record(int argc, char **argv)
{
    return tb_cli_not_available("record", "needs the service (issue 3)");
}

const struct tb_cli_cmd tb_cli_cmd_record = {
    .name = "record",
    .summary = "record a system trace (needs the daemon or root)",
    .help = "usage: tracebpf record [options] [CATEGORY...]\n"
            "       tracebpf record -c CONFIG [--txt] [-o FILE]\n"
            "\n"
            "Records kernel and app activity into a Perfetto trace file.\n"
            "\n"
            "options:\n"
            "  -o, --out FILE        output trace (default trace.pftrace)\n"
            "  -t, --time DURATION   stop after 10s, 500ms, 2m ... (default: Ctrl-C)\n"
            "  -b, --buffer SIZE     main buffer size, e.g. 64mb (default 64mb)\n"
            "  -e, --event G/NAME    any tracefs event, e.g. -e block/block_rq_issue\n"
            "  -a, --app CAT         app track-event category (repeatable, '*' = all)\n"
            "      --pid PID         only this process (repeatable)\n"
            "      --comm NAME       only tasks with this command name (repeatable)\n"
            "      --cgroup PATH     only tasks in this cgroup (v2 path)\n"
            "  -c, --config FILE     a Perfetto TraceConfig (binary, or text with --txt)\n"
            "      --txt             CONFIG is text proto\n"
            "      --print-config    print the config the flags make, then exit\n"
            "      --ring            ring buffer: keep the newest data (default)\n"
            "      --discard         stop writing when the buffer is full\n"
            "      --long            stream to FILE while recording (write_into_file)\n"
            "      --compress        deflate packets (Perfetto compressed_packets)\n"
            "\n"
            "categories: sched freq idle irq syscalls proc\n"
            "\n"
            "Status: not available yet; it needs the service's consumer client\n"
            "(issue 3). The command exits 1 with a one-line message.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf record -t 10s sched irq\n"
            "  sudo tracebpf record -t 30s -b 256mb sched syscalls --pid 1234 -o app.pftrace\n"
            "  sudo tracebpf record -c config.pbtxt --txt -o trace.pftrace\n"
            "  tracebpf record -t 5s sched -a my_app --print-config\n",
    .run = run_record,
};
