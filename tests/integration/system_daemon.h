/*
 * system_daemon.h - test helper of the whole-system tests: the build-tree
 * traced-bpf daemon WITH its kernel producer on private sockets in a temp
 * dir (daemon_util.h; the tests point tracebpf at it through
 * PERFETTO_*_SOCK_NAME), up once `tracebpf ls` lists the producer, the
 * checks a user would make after its stop, and a walk over a recorded
 * trace file's packets. Header-only, like cli_run.h, so each test stays
 * one executable.
 */
#ifndef TB_TESTS_SYSTEM_DAEMON_H
#define TB_TESTS_SYSTEM_DAEMON_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "daemon_util.h"
#include "consumer/trace_reader.h"
#include "perfetto/trace/trace_packet.pb-c.h"

/*
 * struct sys_daemon - @d: the daemon. @dir: its temp dir, which also holds
 * the traces a test writes; @log: its stdout + stderr (both point into @d,
 * valid after sys_daemon_start()). @probes_pid: its traced-bpf-probes
 * child, as `tracebpf ls` shows it.
 */
struct sys_daemon {
    struct td_daemon d;
    const char *dir;
    const char *log;
    pid_t probes_pid;
};

static inline void sys_sleep_ms(long ms)
{
    td_sleep_ms(ms);
}

/* Root, BTF and a writable tracefs: what the kernel producer needs. */
static inline bool sys_can_run(const char *test)
{
    if (geteuid() == 0 && !access("/sys/kernel/btf/vmlinux", R_OK) &&
        !access("/sys/kernel/tracing/instances", W_OK))
        return true;
    fprintf(stderr, "%s: SKIPPED: needs root, kernel BTF and tracefs at /sys/kernel/tracing\n",
            test);
    return false;
}

/* pid of traced-bpf-probes in `tracebpf ls` output, or -1. */
static inline pid_t sys_ls_probes_pid(const char *ls_out)
{
    const char *p = strstr(ls_out, "traced-bpf-probes (");

    p = p ? strstr(p, "pid ") : NULL;
    return p ? (pid_t)atoi(p + 4) : -1;
}

/*
 * sys_daemon_start() - start <build>/service/traced-bpf (probes included,
 * output in <dir>/daemon.log, this process's socket variables pointed at
 * it) and wait until `tracebpf ls` lists traced-bpf-probes. Return: 0, or
 * -1 when either never came up (the daemon log is printed).
 */
static inline int sys_daemon_start(struct sys_daemon *s)
{
    struct td_opts o = {.tag = "tb-system", .probes = true, .log = true, .export_env = true};
    const char *ls[] = {"ls", NULL};
    int i;

    s->probes_pid = -1;
    s->dir = s->d.dir;
    s->log = s->d.log;
    if (td_start(&s->d, &o))
        return -1;
    /* The probes parse BTF and load BPF at start: give them seconds. */
    for (i = 0; i < 150 && s->probes_pid <= 0; i++) {
        struct cli_result r;

        sys_sleep_ms(100);
        if (!cli_run(&r, ls) && r.status == 0)
            s->probes_pid = sys_ls_probes_pid(r.out);
        cli_result_free(&r);
    }
    if (s->probes_pid <= 0) {
        fprintf(stderr, "probes did not come up\n");
        td_print_log(&s->d);
        return -1;
    }
    return 0;
}

/* True while @pid exists and is no zombie. */
static inline bool sys_pid_alive(pid_t pid)
{
    char path[64], *stat;
    bool alive;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (access(path, F_OK))
        return false;
    stat = cli_slurp(path);
    alive = !strstr(stat, ") Z ");
    free(stat);
    return alive;
}

/*
 * sys_daemon_stop() - SIGTERM the daemon and reap it. Return: its exit
 * code, 128 + signal, or -1 when it was not running or did not exit in 10 s
 * (then it is killed).
 */
static inline int sys_daemon_stop(struct sys_daemon *s)
{
    return td_stop(&s->d);
}

/* Remove the temp dir (the log is printed first when @print_log). */
static inline void sys_daemon_cleanup(struct sys_daemon *s, bool print_log)
{
    td_cleanup(&s->d, print_log);
}

/*
 * sys_for_each_packet() - decode every TracePacket of the trace file @path
 * and call @fn with it (freed after the call). Return: packets seen, or -1
 * when the file cannot be read or a packet does not decode.
 */
static inline long sys_for_each_packet(const char *path,
                                       void (*fn)(void *ctx, const Perfetto__Protos__TracePacket *),
                                       void *ctx)
{
    struct tb_trace_reader *r;
    const uint8_t *data;
    long n = 0;
    size_t len;
    int err;

    if (tb_trace_reader_open(path, &r))
        return -1;
    while ((err = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        if (!p) {
            n = -1;
            break;
        }
        fn(ctx, p);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
        n++;
    }
    if (err < 0)
        n = -1;
    tb_trace_reader_free(r);
    return n;
}

#endif /* TB_TESTS_SYSTEM_DAEMON_H */
