/*
 * daemon_util.h - the one way integration tests run a private traced-bpf:
 * a temp dir, the producer and consumer socket paths in it, the build
 * tree's daemon spawned on them (with or without its kernel producer, plus
 * extra arguments), a wait until the consumer socket answers a
 * QueryServiceState, a stop by SIGTERM with SIGKILL after a timeout, a
 * restart on the same sockets, and the temp dir removed. Also the pieces
 * the wrappers over it need, and the tests whose subject is the daemon's
 * own start and stop: spawning the daemon or another build-tree binary on
 * the same sockets without waiting, waiting for or stopping any child,
 * asking which data sources are registered.
 *
 * Header-only (static inline), like cli_run.h, so a test stays one source
 * file in its cmake fragment; the functions use tb_common (consumer client),
 * which every integration test links. Nothing here calls cmocka: functions
 * return 0 or a negative errno and the test asserts on that.
 */
#ifndef TB_TESTS_DAEMON_UTIL_H
#define TB_TESTS_DAEMON_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/consumer_client.h"

/* How long a daemon gets to answer, and to exit after SIGTERM. */
#define TD_START_TIMEOUT_MS 10000
#define TD_STOP_TIMEOUT_MS  10000

/*
 * struct td_opts - how to run the daemon. Zeroed means: --no-probes, no
 * extra arguments, output inherited, sockets not exported.
 * @tag: temp dir stem, "/tmp/<tag>-XXXXXX" (borrowed; NULL: "tb-daemon").
 * @probes: let the daemon start its kernel producer (no --no-probes).
 * @args: extra arguments, NULL-terminated (borrowed; may be NULL).
 * @log: send the daemon's stdout and stderr to <dir>/daemon.log.
 * @export_env: also point PERFETTO_PRODUCER_SOCK_NAME and
 *     PERFETTO_CONSUMER_SOCK_NAME of this process at the sockets, for the
 *     tracebpf runs a test makes (cli_run.h), and a library the test
 *     process itself starts (tracebpf_init()).
 * @bin: the daemon binary (borrowed; NULL: td_build_path()'s
 *     "service/traced-bpf"), for a program run outside ctest that finds the
 *     build tree its own way.
 */
struct td_opts {
    const char *tag;
    bool probes;
    const char *const *args;
    bool log;
    bool export_env;
    const char *bin;
};

/*
 * struct td_daemon - one private daemon. All strings are inline. @pid is -1
 * when not running; @dir is empty once cleaned up; @log is empty without
 * td_opts.log.
 */
struct td_daemon {
    char dir[64];
    char psock[128];
    char csock[128];
    char log[96];
    pid_t pid;
};

static inline void td_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * td_build_path() - <TB_TEST_BUILD_DIR>/@rel (or ./@rel when unset) into
 * @out of @len bytes, e.g. "service/traced-bpf".
 */
static inline void td_build_path(char *out, size_t len, const char *rel)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");

    snprintf(out, len, "%s/%s", bd ? bd : ".", rel);
}

/*
 * td_spawn() - run @argv[0] with @argv (NULL-terminated, borrowed) with
 * both socket variables pointing at @d's sockets, stdin from /dev/null, and
 * stdout + stderr appended to @log_path when not NULL.
 * Return: the child's pid, or a negative errno.
 */
static inline pid_t td_spawn(const struct td_daemon *d, const char *const *argv,
                             const char *log_path)
{
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd >= 0)
            dup2(fd, 0);
        if (log_path) {
            fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        setenv("PERFETTO_PRODUCER_SOCK_NAME", d->psock, 1);
        setenv("PERFETTO_CONSUMER_SOCK_NAME", d->csock, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/*
 * td_query() - connect to @d's consumer socket and ask QueryServiceState.
 * @name: when not NULL, the data source to look for.
 * Return: 0 when the service answered (and lists @name, if given), -ENOENT
 * when it answered without @name, or the consumer client's error.
 */
static inline int td_query(const struct td_daemon *d, const char *name)
{
    Perfetto__Protos__TracingServiceState *ss = NULL;
    struct tb_cc *cc = NULL;
    int err;

    err = tb_cc_connect(d->csock, 2000, &cc);
    if (!err)
        err = tb_cc_query_state(cc, 2000, &ss);
    if (!err && name) {
        err = -ENOENT;
        for (size_t i = 0; i < ss->n_data_sources; i++) {
            const char *n = ss->data_sources[i]->ds_descriptor->name;

            if (n && !strcmp(n, name))
                err = 0;
        }
    }
    if (ss)
        perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    tb_cc_free(cc);
    return err;
}

/*
 * td_wait_answer() - poll until @d's service answers (listing data source
 * @name when not NULL) or @timeout_ms pass. Return: 0, -ECHILD when the
 * daemon exited meanwhile, or -ETIMEDOUT.
 */
static inline int td_wait_answer(struct td_daemon *d, const char *name, int timeout_ms)
{
    struct stat st;
    int waited, status;

    for (waited = 0; waited < timeout_ms; waited += 20) {
        if (d->pid > 0 && waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = -1;
            return -ECHILD;
        }
        /* No connect before the socket exists: the client would log each try. */
        if (!stat(d->csock, &st) && !td_query(d, name))
            return 0;
        td_sleep_ms(20);
    }
    return -ETIMEDOUT;
}

/* Print @d's log to stderr, framed (nothing without a log). */
static inline void td_print_log(const struct td_daemon *d)
{
    char buf[4096];
    size_t n;
    FILE *f;

    if (!d->log[0] || !(f = fopen(d->log, "re")))
        return;
    fprintf(stderr, "--- daemon log %s ---\n", d->log);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "--- end ---\n");
    fclose(f);
}

/*
 * td_prepare() - make the temp dir and fill in @d's socket (and log) paths,
 * without spawning anything: for a test that runs the daemon its own way
 * (td_spawn_daemon()) or starts it later (td_launch()).
 * @d: filled in, @d->pid is -1; pass it to td_cleanup() whatever this returns.
 * @o: options (borrowed; NULL = all defaults); only @tag, @log and
 *     @export_env matter here.
 * Return: 0, or the negative errno of mkdtemp().
 */
static inline int td_prepare(struct td_daemon *d, const struct td_opts *o)
{
    static const struct td_opts defaults;
    int err;

    if (!o)
        o = &defaults;
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    snprintf(d->dir, sizeof(d->dir), "/tmp/%s-XXXXXX", o->tag ? o->tag : "tb-daemon");
    if (!mkdtemp(d->dir)) {
        err = -errno;
        d->dir[0] = '\0';
        return err;
    }
    snprintf(d->psock, sizeof(d->psock), "%s/producer.sock", d->dir);
    snprintf(d->csock, sizeof(d->csock), "%s/consumer.sock", d->dir);
    if (o->log)
        snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    if (o->export_env) {
        setenv("PERFETTO_PRODUCER_SOCK_NAME", d->psock, 1);
        setenv("PERFETTO_CONSUMER_SOCK_NAME", d->csock, 1);
    }
    return 0;
}

/*
 * td_spawn_daemon_bin() - td_spawn_daemon() with the binary named.
 * @bin: the daemon binary (borrowed; NULL: <build>/service/traced-bpf).
 * Return: the child's pid (not stored in @d), or a negative errno.
 */
static inline pid_t td_spawn_daemon_bin(const struct td_daemon *d, const char *bin,
                                        const char *const *args, const char *log_path)
{
    const char *argv[40];
    char def[PATH_MAX];
    size_t n = 0;

    if (!bin) {
        td_build_path(def, sizeof(def), "service/traced-bpf");
        bin = def;
    }
    argv[n++] = bin;
    for (size_t i = 0; args && args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return td_spawn(d, argv, log_path);
}

/*
 * td_spawn_daemon() - run <build>/service/traced-bpf with exactly @args
 * (NULL-terminated, borrowed, may be NULL; no --no-probes added) on @d's
 * sockets, output appended to @log_path when not NULL. Nothing waits: for
 * the tests whose subject is how the daemon starts or refuses to.
 * Return: the child's pid (not stored in @d), or a negative errno.
 */
static inline pid_t td_spawn_daemon(const struct td_daemon *d, const char *const *args,
                                    const char *log_path)
{
    return td_spawn_daemon_bin(d, NULL, args, log_path);
}

/*
 * td_launch() - spawn the daemon on @d's existing dir and sockets (after
 * td_prepare(), or again after td_stop() for a restart) and wait until its
 * consumer socket answers. @d->pid is the daemon's.
 * @o: options (borrowed; NULL = all defaults); @probes, @args and @bin
 *     matter.
 * Return: 0, or a negative errno (-ECHILD: the daemon exited; -ETIMEDOUT:
 * it never answered; the log, if any, is printed).
 */
static inline int td_launch(struct td_daemon *d, const struct td_opts *o)
{
    static const struct td_opts defaults;
    const char *args[40];
    size_t n = 0;
    int err;

    if (!o)
        o = &defaults;
    if (!o->probes)
        args[n++] = "--no-probes";
    for (size_t i = 0; o->args && o->args[i] && n < 38; i++)
        args[n++] = o->args[i];
    args[n] = NULL;
    d->pid = td_spawn_daemon_bin(d, o->bin, args, d->log[0] ? d->log : NULL);
    if (d->pid < 0) {
        err = d->pid;
        d->pid = -1;
        return err;
    }
    err = td_wait_answer(d, NULL, TD_START_TIMEOUT_MS);
    if (err) {
        fprintf(stderr, "traced-bpf in %s did not answer: %s\n", d->dir, strerror(-err));
        td_print_log(d);
    }
    return err;
}

/*
 * td_start() - td_prepare() then td_launch(): a temp dir, the daemon
 * spawned on sockets in it, answering.
 * @d: filled in; pass it to td_cleanup() whatever this returns.
 * @o: options (borrowed; NULL = all defaults).
 * Return: 0, or a negative errno, as td_prepare() and td_launch().
 */
static inline int td_start(struct td_daemon *d, const struct td_opts *o)
{
    int err = td_prepare(d, o);

    return err ? err : td_launch(d, o);
}

/*
 * td_stop_pid() - send @sig to *@pid and reap it, with SIGKILL after
 * @timeout_ms. *@pid becomes -1. @sig 0 sends nothing: a plain wait.
 * @status: receives the raw wait status (may be NULL).
 * Return: 0 when it exited in time, -ETIMEDOUT when it had to be killed,
 * -ECHILD when *@pid was not running.
 */
static inline int td_stop_pid(pid_t *pid, int sig, int timeout_ms, int *status)
{
    int st = 0, waited, err = 0;
    pid_t r = 0;

    if (*pid <= 0)
        return -ECHILD;
    kill(*pid, sig);
    for (waited = 0; waited < timeout_ms; waited += 10) {
        r = waitpid(*pid, &st, WNOHANG);
        if (r != 0)
            break;
        td_sleep_ms(10);
    }
    if (r == 0) {
        kill(*pid, SIGKILL);
        r = waitpid(*pid, &st, 0);
        err = -ETIMEDOUT;
    }
    if (r < 0)
        err = -ECHILD;
    *pid = -1;
    if (status)
        *status = st;
    return err;
}

/* Exit code, or 128 + signal, of a raw wait status. */
static inline int td_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * td_wait_exit() - wait for child *@pid to exit by itself and reap it
 * (SIGKILL after @timeout_ms). *@pid becomes -1.
 * Return: its exit code, 128 + signal, or -1 when it was not running or
 * did not exit in time.
 */
static inline int td_wait_exit(pid_t *pid, int timeout_ms)
{
    int status;

    /* Signal 0 sends nothing: td_stop_pid() then only waits. */
    if (td_stop_pid(pid, 0, timeout_ms, &status))
        return -1;
    return td_exit_code(status);
}

/*
 * td_stop() - SIGTERM the daemon and reap it (SIGKILL after
 * TD_STOP_TIMEOUT_MS). Return: its exit code, 128 + signal, or -1 when it
 * was not running or did not exit in time.
 */
static inline int td_stop(struct td_daemon *d)
{
    int status;

    if (td_stop_pid(&d->pid, SIGTERM, TD_STOP_TIMEOUT_MS, &status))
        return -1;
    return td_exit_code(status);
}

/*
 * td_cleanup() - stop the daemon if it still runs, print its log when
 * @print_log, and remove the temp dir with the files in it (sockets, log,
 * traces a test wrote there). Safe to call twice, or after a failed start.
 */
static inline void td_cleanup(struct td_daemon *d, bool print_log)
{
    struct dirent *de;
    char path[PATH_MAX];
    DIR *dir;

    if (d->pid > 0)
        td_stop(d);
    if (!d->dir[0])
        return;
    if (print_log)
        td_print_log(d);
    dir = opendir(d->dir);
    while (dir && (de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", d->dir, de->d_name);
        unlink(path);
    }
    if (dir)
        closedir(dir);
    rmdir(d->dir);
    d->dir[0] = '\0';
}

#endif /* TB_TESTS_DAEMON_UTIL_H */
