/*
 * cmd_record.c - "tracebpf record": the command line (flags, category words,
 * -c CONFIG) and its checks; record_config.c turns the flags into a
 * TraceConfig and record_run.c runs it through the service.
 */
#include "consumer/cli.h"
#include "consumer/record_config.h"
#include "consumer/record_run.h"
#include "consumer/textproto.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACEFS             "/sys/kernel/tracing"
#define DEFAULT_DURATION_MS 10000u
#define DEFAULT_BUFFER_KB   (64u * 1024u)
#define MAX_BUFFER_KB       (4u * 1024u * 1024u)
#define MAX_COMM            15

enum {
    OPT_PID = 0x100,
    OPT_COMM,
    OPT_CGROUP,
    OPT_TXT,
    OPT_PRINT,
    OPT_RING,
    OPT_DISCARD,
    OPT_LONG,
    OPT_COMPRESS,
};

static const struct option opts[] = {
    {"out", required_argument, NULL, 'o'},           {"time", required_argument, NULL, 't'},
    {"buffer", required_argument, NULL, 'b'},        {"event", required_argument, NULL, 'e'},
    {"app", required_argument, NULL, 'a'},           {"config", required_argument, NULL, 'c'},
    {"pid", required_argument, NULL, OPT_PID},       {"comm", required_argument, NULL, OPT_COMM},
    {"cgroup", required_argument, NULL, OPT_CGROUP}, {"txt", no_argument, NULL, OPT_TXT},
    {"print-config", no_argument, NULL, OPT_PRINT},  {"ring", no_argument, NULL, OPT_RING},
    {"discard", no_argument, NULL, OPT_DISCARD},     {"long", no_argument, NULL, OPT_LONG},
    {"compress", no_argument, NULL, OPT_COMPRESS},   {NULL, 0, NULL, 0},
};

struct args {
    struct tb_record_opts o;
    const char *out, *config;
    bool txt, print, time_set, buffer_set;
    int policies;
    uint32_t *pids;
};

static int push(const char ***v, size_t *n, const char *s)
{
    const char **nv = realloc(*v, (*n + 1) * sizeof(**v));

    if (!nv)
        return -ENOMEM;
    nv[(*n)++] = s;
    *v = nv;
    return 0;
}

/* --pid PID[,PID...]: appended to a->pids. Return: -1 to go on, or the exit code. */
static int parse_pids(struct args *a, const char *arg)
{
    const char *p = arg;
    unsigned long v;
    uint32_t *nv;
    char *end, path[32];

    do {
        errno = 0;
        v = (*p >= '0' && *p <= '9') ? strtoul(p, &end, 10) : 0;
        if (!v || errno || v > INT_MAX || (*end && *end != ','))
            return tb_cli_usage_error("record",
                                      "bad pid list '%s' (use --pid 1234 or "
                                      "--pid 1234,5678)",
                                      arg);
        /* A typo'd pid would record nothing at all; say so now. */
        snprintf(path, sizeof(path), "/proc/%lu", v);
        if (access(path, F_OK))
            return tb_cli_usage_error("record", "no process with pid %lu", v);
        nv = realloc(a->pids, (a->o.n_pids + 1) * sizeof(*nv));
        if (!nv)
            return TB_CLI_EXIT_FAIL;
        nv[a->o.n_pids++] = (uint32_t)v;
        a->pids = nv;
        a->o.pids = nv;
        p = *end ? end + 1 : end;
    } while (*p);
    return -1;
}

static int check_cgroup(const char *path)
{
    char where[512];
    int err = tb_record_check_cgroup(path, where, sizeof(where));

    if (!err)
        return -1;
    if (err == -EMEDIUMTYPE)
        return tb_cli_usage_error("record",
                                  "--cgroup %s: %s is not on the cgroup v2 hierarchy (the kernel "
                                  "filter matches cgroup v2 only)",
                                  path, where);
    if (err == -ENODEV)
        return tb_cli_usage_error("record", "--cgroup %s: this host has no cgroup2 mount", path);
    return tb_cli_usage_error("record", "--cgroup %s: %s: %s", path, where, strerror(-err));
}

/* Return: -1 to go on, or the exit code. */
static int parse(int argc, char **argv, struct args *a)
{
    uint64_t v;
    int opt, i, rc;
    unsigned int bit;

    a->out = "trace.pftrace";
    a->o.duration_ms = DEFAULT_DURATION_MS;
    a->o.buffer_kb = DEFAULT_BUFFER_KB;
    while ((opt = getopt_long(argc, argv, ":o:t:b:e:a:c:", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            a->out = optarg;
            break;
        case 't':
            if (tb_cli_parse_duration_ms(optarg, &v) || !v || v > UINT32_MAX)
                return tb_cli_usage_error("record", "bad duration '%s' (use 10s, 500ms, 2m)",
                                          optarg);
            a->o.duration_ms = v;
            a->time_set = true;
            break;
        case 'b':
            if (tb_cli_parse_size_kb(optarg, &v) || v < 64 || v > MAX_BUFFER_KB)
                return tb_cli_usage_error("record", "bad buffer size '%s' (use 64mb; 64kb..4gb)",
                                          optarg);
            a->o.buffer_kb = v;
            a->buffer_set = true;
            break;
        case 'e':
            if (push(&a->o.events, &a->o.n_events, optarg))
                return TB_CLI_EXIT_FAIL;
            break;
        case 'a':
            if (push(&a->o.apps, &a->o.n_apps, optarg))
                return TB_CLI_EXIT_FAIL;
            break;
        case 'c':
            a->config = optarg;
            break;
        case OPT_PID:
            rc = parse_pids(a, optarg);
            if (rc >= 0)
                return rc;
            break;
        case OPT_COMM:
            if (!*optarg || strlen(optarg) > MAX_COMM)
                return tb_cli_usage_error("record",
                                          "bad comm '%s': 1 to %d characters (the kernel keeps "
                                          "that much of a task name)",
                                          optarg, MAX_COMM);
            a->o.comm = optarg;
            break;
        case OPT_CGROUP:
            rc = check_cgroup(optarg);
            if (rc >= 0)
                return rc;
            a->o.cgroup = optarg;
            break;
        case OPT_TXT:
            a->txt = true;
            break;
        case OPT_PRINT:
            a->print = true;
            break;
        case OPT_RING:
            a->o.discard = false;
            a->policies |= 1;
            break;
        case OPT_DISCARD:
            a->o.discard = true;
            a->policies |= 2;
            break;
        case OPT_LONG:
            a->o.long_mode = true;
            break;
        case OPT_COMPRESS:
            a->o.compress = true;
            break;
        default:
            return tb_cli_getopt_error("record", opt, argv);
        }
    }
    if (a->policies == 3)
        return tb_cli_usage_error("record", "--ring and --discard exclude each other");
    if (a->txt && !a->config)
        return tb_cli_usage_error("record", "--txt needs -c CONFIG");
    for (i = optind; i < argc; i++) {
        bit = tb_record_cat_parse(argv[i]);
        if (!bit)
            return tb_cli_usage_error("record",
                                      "unknown category '%s' (categories: sched freq idle irq "
                                      "syscalls proc; any tracefs event with -e GROUP/NAME)",
                                      argv[i]);
        a->o.cats |= bit;
    }
    if (a->config && (a->o.cats || a->o.n_events || a->o.n_apps || a->buffer_set || a->policies))
        return tb_cli_usage_error("record", "-c CONFIG takes the data sources and buffers from "
                                            "the file; drop the category words, -e, -a, -b, "
                                            "--ring and --discard");
    if (!a->config && !a->o.cats && !a->o.n_events && !a->o.n_apps)
        return tb_cli_usage_error("record", "nothing to record: name a category (sched freq "
                                            "idle irq syscalls proc), -e GROUP/NAME, -a CAT or "
                                            "-c CONFIG");
    if (!a->config && (a->o.n_pids || a->o.comm || a->o.cgroup) && !a->o.n_events &&
        !(a->o.cats & ~TB_REC_CAT_PROC))
        return tb_cli_usage_error("record", "--pid, --comm and --cgroup filter kernel events: "
                                            "name a kernel category (sched freq idle irq "
                                            "syscalls) or -e GROUP/NAME");
    return -1;
}

static int check_events(const struct tb_record_opts *o)
{
    size_t i;
    int err;

    for (i = 0; i < o->n_events; i++) {
        err = tb_record_check_event(TRACEFS, o->events[i]);
        if (err == -EINVAL)
            return tb_cli_usage_error("record",
                                      "bad event '%s': expected GROUP/NAME, e.g. "
                                      "block/block_rq_issue",
                                      o->events[i]);
        if (err == -ENODEV) {
            fprintf(stderr,
                    "tracebpf record: cannot check event '%s': no tracefs at " TRACEFS
                    " (mount it: mount -t tracefs nodev " TRACEFS ")\n",
                    o->events[i]);
            return TB_CLI_EXIT_FAIL;
        }
        if (err)
            return tb_cli_usage_error("record",
                                      "unknown event '%s': " TRACEFS "/events/%s does not exist",
                                      o->events[i], o->events[i]);
    }
    return -1;
}

static int run_record(int argc, char **argv)
{
    Perfetto__Protos__TraceConfig *cfg = NULL;
    struct args a = {0};
    char err[512];
    int rc;

    rc = parse(argc, argv, &a);
    if (rc >= 0)
        goto out;
    rc = check_events(&a.o);
    if (rc >= 0)
        goto out;
    if (a.config) {
        if (tb_record_config_load(a.config, a.txt, &cfg, err, sizeof(err))) {
            fprintf(stderr, "tracebpf record: %s\n", err);
            rc = TB_CLI_EXIT_FAIL;
            goto out;
        }
        /* Flags that make sense on top of a config file win over it. */
        if (a.time_set) {
            cfg->has_duration_ms = true;
            cfg->duration_ms = (uint32_t)a.o.duration_ms;
        }
        if (a.o.long_mode) {
            cfg->has_write_into_file = cfg->write_into_file = true;
            if (!cfg->has_file_write_period_ms) {
                cfg->has_file_write_period_ms = true;
                cfg->file_write_period_ms = TB_REC_FILE_WRITE_PERIOD_MS;
            }
        }
        if (a.o.compress) {
            cfg->has_compression_type = true;
            cfg->compression_type =
                PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE;
        }
        rc = tb_record_config_set_filters(cfg, &a.o);
        if (rc == -ENOENT) {
            rc = tb_cli_usage_error("record",
                                    "%s has no linux.ftrace data source for --pid, --comm "
                                    "or --cgroup to filter",
                                    a.config);
            goto out;
        }
        if (rc) {
            fprintf(stderr, "tracebpf record: out of memory adding the filters\n");
            rc = TB_CLI_EXIT_FAIL;
            goto out;
        }
    } else if (tb_record_config_build(&a.o, &cfg)) {
        fprintf(stderr, "tracebpf record: out of memory building the config\n");
        rc = TB_CLI_EXIT_FAIL;
        goto out;
    }
    if (a.print) {
        rc = tb_textproto_print(&cfg->base, stdout) ? TB_CLI_EXIT_FAIL : TB_CLI_EXIT_OK;
        goto out;
    }
    rc = tb_record_run(cfg, a.out);
out:
    tb_record_config_free(cfg);
    free(a.o.events);
    free(a.o.apps);
    free(a.pids);
    return rc;
}

const struct tb_cli_cmd tb_cli_cmd_record = {
    .name = "record",
    .summary = "record a system trace (needs the daemon or root)",
    .help = "usage: tracebpf record [options] CATEGORY...\n"
            "       tracebpf record -c CONFIG [--txt] [-o FILE] [-t DURATION]\n"
            "\n"
            "Records kernel and app activity into a Perfetto trace file. When no\n"
            "traced-bpf daemon answers on the consumer socket, a private service and\n"
            "kernel producer run inside this process (needs root).\n"
            "\n"
            "options:\n"
            "  -o, --out FILE        output trace (default trace.pftrace)\n"
            "  -t, --time DURATION   stop after 10s, 500ms, 2m ... (default 10s; Ctrl-C\n"
            "                        stops early and keeps what was recorded)\n"
            "  -b, --buffer SIZE     main buffer size, e.g. 64mb (default 64mb)\n"
            "  -e, --event G/NAME    any tracefs event, e.g. -e block/block_rq_issue\n"
            "  -a, --app CAT         app track-event category (repeatable, '*' = all)\n"
            "      --pid PID[,PID...]\n"
            "                        kernel events of these processes and of every child\n"
            "                        they fork while recording (repeatable)\n"
            "      --comm NAME       kernel events of tasks named NAME (up to 15 chars)\n"
            "      --cgroup PATH     kernel events of tasks in this cgroup v2 directory\n"
            "                        (absolute, or relative to the cgroup2 mount)\n"
            "                        The filters run in the kernel, on the sched, irq and\n"
            "                        syscalls events; freq, idle and other -e events are\n"
            "                        not filtered. They also apply on top of -c CONFIG.\n"
            "  -c, --config FILE     a Perfetto TraceConfig (binary, or text with --txt)\n"
            "      --txt             CONFIG is text proto\n"
            "      --print-config    print the config (text proto) the flags make, then exit\n"
            "      --ring            ring buffer: keep the newest data (default)\n"
            "      --discard         stop writing when the buffer is full\n"
            "      --long            stream to FILE while recording (write_into_file)\n"
            "      --compress        deflate packets (Perfetto compressed_packets)\n"
            "\n"
            "categories:\n"
            "  sched     scheduling, wakeups, fork/exec/exit, renames (compact encoding);\n"
            "            implies proc\n"
            "  freq      power/cpu_frequency\n"
            "  idle      power/cpu_idle\n"
            "  irq       hard and soft interrupts\n"
            "  syscalls  raw_syscalls/sys_enter and sys_exit\n"
            "  proc      process tree and thread names (linux.process_stats)\n"
            "\n"
            "The trace is written to FILE.tmp and renamed to FILE when complete. At the\n"
            "end: the file and its size, counts per source, every loss, and how to\n"
            "open it.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf record -t 10s sched irq\n"
            "  sudo tracebpf record -t 30s -b 256mb sched syscalls -o app.pftrace\n"
            "  sudo tracebpf record -c config.pbtxt --txt -o trace.pftrace\n"
            "  tracebpf record -t 5s sched -a my_app --print-config\n"
            "  sudo tracebpf record -t 10s sched syscalls --pid 1234\n"
            "  sudo tracebpf record -t 10s sched --comm nginx --cgroup system.slice\n",
    .run = run_record,
};
