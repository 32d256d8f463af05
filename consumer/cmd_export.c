/*
 * cmd_export.c - "tracebpf export --format systrace|ftrace|json FILE [-o
 * OUT]": converts a trace while streaming it. Output goes to OUT.tmp and is
 * renamed to OUT only once complete, so a failed or interrupted export
 * never leaves a file that looks whole.
 */
#include "consumer/cli.h"
#include "consumer/export.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum format { FMT_NONE, FMT_FTRACE, FMT_SYSTRACE, FMT_JSON };

static int run_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},
        {"sched", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    struct tb_trace_reader *r = NULL;
    enum format fmt = FMT_NONE;
    const char *out_path = NULL, *in_path;
    char *tmp_path = NULL;
    bool sched = false;
    FILE *out = stdout;
    int opt, err;

    while ((opt = getopt_long(argc, argv, ":f:o:", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (!strcmp(optarg, "ftrace"))
                fmt = FMT_FTRACE;
            else if (!strcmp(optarg, "systrace"))
                fmt = FMT_SYSTRACE;
            else if (!strcmp(optarg, "json"))
                fmt = FMT_JSON;
            else
                return tb_cli_usage_error("export", "unknown format '%s' (systrace, ftrace, json)",
                                          optarg);
            break;
        case 'o':
            out_path = optarg;
            break;
        case 's':
            sched = true;
            break;
        default:
            return tb_cli_getopt_error("export", opt, argv);
        }
    }
    if (fmt == FMT_NONE)
        return tb_cli_usage_error("export", "needs --format systrace, ftrace or json");
    if (optind != argc - 1)
        return tb_cli_usage_error("export", "expects exactly one trace file");
    if (sched && fmt != FMT_JSON)
        return tb_cli_usage_error("export", "--sched only applies to --format json");
    in_path = argv[optind];

    if (tb_trace_reader_open(in_path, &r))
        return TB_CLI_EXIT_FAIL;
    if (out_path && strcmp(out_path, "-")) {
        if (asprintf(&tmp_path, "%s.tmp", out_path) < 0) {
            tb_trace_reader_free(r);
            return TB_CLI_EXIT_FAIL;
        }
        out = fopen(tmp_path, "we");
        if (!out) {
            fprintf(stderr, "tracebpf export: cannot write %s: %s\n", tmp_path, strerror(errno));
            free(tmp_path);
            tb_trace_reader_free(r);
            return TB_CLI_EXIT_FAIL;
        }
    }

    if (fmt == FMT_JSON)
        err = tb_export_json(r, out, sched);
    else
        err = tb_export_ftrace(r, out, fmt == FMT_SYSTRACE);
    if (out != stdout && fclose(out) && !err)
        err = -EIO;
    else if (out == stdout && fflush(stdout) && !err)
        err = -EIO;

    if (err == -EBADMSG && tb_trace_reader_error(r)[0])
        fprintf(stderr, "tracebpf export: %s: %s\n", in_path, tb_trace_reader_error(r));
    else if (err)
        fprintf(stderr, "tracebpf export: %s: %s\n", in_path, strerror(-err));
    if (tmp_path) {
        if (err) {
            unlink(tmp_path);
        } else if (rename(tmp_path, out_path)) {
            fprintf(stderr, "tracebpf export: cannot rename %s to %s: %s\n", tmp_path, out_path,
                    strerror(errno));
            unlink(tmp_path);
            err = -EIO;
        }
        free(tmp_path);
    }
    tb_trace_reader_free(r);
    if (err && !tmp_path && out == stdout)
        fprintf(stderr, "tracebpf export: the output above is incomplete\n");
    return err ? TB_CLI_EXIT_FAIL : TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_export = {
    .name = "export",
    .summary = "convert a trace to ftrace text, systrace or Chrome JSON",
    .help = "usage: tracebpf export --format systrace|ftrace|json FILE [-o OUT] [--sched]\n"
            "\n"
            "Converts a Perfetto trace while streaming it (memory stays bounded).\n"
            "\n"
            "formats:\n"
            "  ftrace    text in the format of tracefs' 'trace' file (record-tgid layout):\n"
            "            '<comm>-<pid> (<tgid>) [cpu] flags seconds: event: fields', fields\n"
            "            printed as the kernel prints them; compact sched expanded; app\n"
            "            track events as tracing_mark_write lines (B|pid|name, E|pid,\n"
            "            C|pid|name|value; instants as a B/E pair)\n"
            "  systrace  the same text inside catapult's JSON envelope\n"
            "            {\"traceEvents\":[],\"systemTraceEvents\":\"...\"} (chrome://tracing,\n"
            "            Perfetto UI, systrace tools)\n"
            "  json      Chrome JSON trace events from app track events: B/E slices,\n"
            "            i instants, C counters, s/t/f flows, M process/thread names\n"
            "\n"
            "options:\n"
            "  -f, --format F   output format (required)\n"
            "  -o, --out OUT    output file (default: stdout). Written to OUT.tmp and\n"
            "                   renamed when complete; removed on error.\n"
            "      --sched      json only: add scheduler slices (X events, one thread per\n"
            "                   CPU under pid 0)\n"
            "\n"
            "A malformed or truncated trace: one line naming the damage and its offset,\n"
            "exit 1, and no OUT file.\n"
            "\n"
            "EXAMPLES\n"
            "  tracebpf export --format ftrace trace.pftrace -o trace.txt\n"
            "  tracebpf export --format systrace trace.pftrace -o trace.systrace.json\n"
            "  tracebpf export --format json --sched trace.pftrace -o trace.json\n",
    .run = run_export,
};
