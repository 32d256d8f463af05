/*
 * probes_e2e_util.h - test helper shared by the kernel producer's end-to-end
 * tests: the build tree's daemon (--no-probes) on temp sockets through
 * daemon_util.h, and the build tree's traced-bpf-probes pointed at it, up
 * once its data source is registered; both stopped afterwards. Header-only
 * so each test stays one executable; include after cmocka.h.
 */
#ifndef TB_TESTS_PROBES_E2E_UTIL_H
#define TB_TESTS_PROBES_E2E_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon_util.h"

/*
 * The processes and sockets of one test binary. @dir, @psock and @csock
 * point into @daemon (valid after probes_env_start()). Pids are -1 when
 * not running.
 */
struct probes_env {
    struct td_daemon daemon;
    const char *dir, *psock, *csock;
    pid_t probes_pid;
};

static inline void probes_env_sleep_ms(int ms)
{
    td_sleep_ms(ms);
}

/*
 * Starts the daemon and the producer (paths from TB_TEST_BUILD_DIR), and
 * waits until the producer's data source @ready_ds is registered.
 * Return: false (with a note) when this host cannot run the producer (not
 * root, no BTF, no writable tracefs), so the caller skips.
 */
static inline bool probes_env_start(struct probes_env *e, const char *test, const char *ready_ds)
{
    char probes[PATH_MAX];
    const char *argv[] = {probes, "--socket", NULL, NULL};
    struct td_opts o = {.tag = "probes-e2e"};
    pid_t pid;

    memset(e, 0, sizeof(*e));
    e->daemon.pid = e->probes_pid = -1;
    if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) ||
        access("/sys/kernel/tracing/instances", W_OK)) {
        print_message("%s: needs root, kernel BTF and tracefs; skipping\n", test);
        return false;
    }
    assert_int_equal(td_start(&e->daemon, &o), 0);
    e->dir = e->daemon.dir;
    e->psock = e->daemon.psock;
    e->csock = e->daemon.csock;
    td_build_path(probes, sizeof(probes), "producers/ftrace/traced-bpf-probes");
    argv[2] = e->psock;
    pid = td_spawn(&e->daemon, argv, NULL);
    assert_true(pid > 0);
    e->probes_pid = pid;
    assert_int_equal(td_wait_answer(&e->daemon, ready_ds, TD_START_TIMEOUT_MS), 0);
    return true;
}

/*
 * Sends @sig to *@pid and reaps it (SIGKILL after TD_STOP_TIMEOUT_MS).
 * Return: its wait status, 0 when it was not running.
 */
static inline int probes_env_stop_pid(pid_t *pid, int sig)
{
    int status = -1;

    if (*pid <= 0)
        return 0;
    td_stop_pid(pid, sig, TD_STOP_TIMEOUT_MS, &status);
    return status;
}

/* Stops the producer, then the daemon, and removes the socket directory. */
static inline void probes_env_stop(struct probes_env *e)
{
    probes_env_stop_pid(&e->probes_pid, SIGTERM);
    probes_env_stop_pid(&e->daemon.pid, SIGTERM);
    td_cleanup(&e->daemon, false);
}

#endif /* TB_TESTS_PROBES_E2E_UTIL_H */
