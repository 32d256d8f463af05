/*
 * system_daemon.h - test helper of the whole-system tests: the build-tree
 * traced-bpf daemon WITH its kernel producer on private sockets in a temp
 * dir (the tests point tracebpf at it through PERFETTO_*_SOCK_NAME), its
 * stop by SIGTERM with the checks a user would make afterwards, and a walk
 * over a recorded trace file's packets. Header-only, like cli_run.h, so
 * each test stays one executable.
 */
#ifndef TB_TESTS_SYSTEM_DAEMON_H
#define TB_TESTS_SYSTEM_DAEMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "consumer/trace_reader.h"
#include "perfetto/trace/trace_packet.pb-c.h"

struct sys_daemon {
    char dir[64];     /* temp dir holding the sockets and the daemon log */
    char log[96];     /* the daemon's stdout + stderr */
    pid_t pid;        /* the daemon, -1 when not running */
    pid_t probes_pid; /* its traced-bpf-probes child, as `tracebpf ls` shows */
};

static inline void sys_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
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
 * sys_daemon_start() - start <build>/service/traced-bpf (probes included)
 * and wait until `tracebpf ls` lists traced-bpf-probes. Return: 0, or -1
 * when either never came up (the daemon log is printed).
 */
static inline int sys_daemon_start(struct sys_daemon *d)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");
    posix_spawn_file_actions_t fa;
    char svc[PATH_MAX], sock[128];
    char *argv[] = {svc, NULL};
    const char *ls[] = {"ls", NULL};
    int fd, i;

    memset(d, 0, sizeof(*d));
    d->pid = d->probes_pid = -1;
    snprintf(d->dir, sizeof(d->dir), "/tmp/tb-system-XXXXXX");
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    snprintf(sock, sizeof(sock), "%s/producer.sock", d->dir);
    setenv("PERFETTO_PRODUCER_SOCK_NAME", sock, 1);
    snprintf(sock, sizeof(sock), "%s/consumer.sock", d->dir);
    setenv("PERFETTO_CONSUMER_SOCK_NAME", sock, 1);
    snprintf(svc, sizeof(svc), "%s/service/traced-bpf", bd ? bd : ".");
    fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    if (posix_spawn(&d->pid, svc, &fa, NULL, argv, environ))
        d->pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (d->pid <= 0)
        return -1;
    /* The probes parse BTF and load BPF at start: give them seconds. */
    for (i = 0; i < 150 && d->probes_pid <= 0; i++) {
        struct cli_result r;

        sys_sleep_ms(100);
        if (!cli_run(&r, ls) && r.status == 0)
            d->probes_pid = sys_ls_probes_pid(r.out);
        cli_result_free(&r);
    }
    if (d->probes_pid <= 0) {
        char *log = cli_slurp(d->log);

        fprintf(stderr, "daemon or probes did not come up; daemon log:\n%s\n", log);
        free(log);
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
static inline int sys_daemon_stop(struct sys_daemon *d)
{
    int st = 0, i;
    pid_t r = 0;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    for (i = 0; i < 1000 && (r = waitpid(d->pid, &st, WNOHANG)) == 0; i++)
        sys_sleep_ms(10);
    if (r != d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        d->pid = -1;
        return -1;
    }
    d->pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Remove the temp dir (the log is printed first when @print_log). */
static inline void sys_daemon_cleanup(struct sys_daemon *d, bool print_log)
{
    char path[160];

    if (d->pid > 0)
        sys_daemon_stop(d);
    if (!d->dir[0])
        return;
    if (print_log) {
        char *log = cli_slurp(d->log);

        fprintf(stderr, "--- daemon log ---\n%s--- end ---\n", log);
        free(log);
    }
    unlink(d->log);
    snprintf(path, sizeof(path), "%s/producer.sock", d->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/consumer.sock", d->dir);
    unlink(path);
    rmdir(d->dir);
    d->dir[0] = '\0';
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
