/*
 * probes_e2e_util.h - test helper shared by the kernel producer's end-to-end
 * tests: start the build tree's daemon (--no-probes) on temp sockets and the
 * build tree's traced-bpf-probes pointed at it, wait until the producer has
 * registered, stop both. Header-only so each test stays one executable;
 * include after cmocka.h.
 */
#ifndef TB_TESTS_PROBES_E2E_UTIL_H
#define TB_TESTS_PROBES_E2E_UTIL_H

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

/* The processes and sockets of one test binary; pids are -1 when not running. */
struct probes_env {
    char dir[64], psock[128], csock[128];
    pid_t daemon_pid, probes_pid;
};

static inline void probes_env_sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* Runs @bin @a1 @a2 with both socket variables pointing into @e->dir. */
static inline pid_t probes_env_spawn(const struct probes_env *e, const char *bin, const char *a1,
                                     const char *a2)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("PERFETTO_PRODUCER_SOCK_NAME", e->psock, 1);
        setenv("PERFETTO_CONSUMER_SOCK_NAME", e->csock, 1);
        execl(bin, bin, a1, a2, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Does the service list data source @name (asked over the consumer socket)? */
static inline bool probes_env_registered(const struct probes_env *e, const char *name)
{
    Perfetto__Protos__TracingServiceState *ss = NULL;
    struct tb_cc *cc = NULL;
    bool found = false;

    if (tb_cc_connect(e->csock, 2000, &cc))
        return false;
    if (!tb_cc_query_state(cc, 2000, &ss)) {
        for (size_t i = 0; i < ss->n_data_sources; i++) {
            const char *n = ss->data_sources[i]->ds_descriptor->name;

            found |= n && !strcmp(n, name);
        }
        perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    }
    tb_cc_free(cc);
    return found;
}

/*
 * Starts the daemon and the producer (paths from TB_TEST_BUILD_DIR), and
 * waits until the producer's data source @ready_ds is registered.
 * Return: false (with a note) when this host cannot run the producer (not
 * root, no BTF, no writable tracefs), so the caller skips.
 */
static inline bool probes_env_start(struct probes_env *e, const char *test, const char *ready_ds)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");
    char svc[512], probes[512];
    struct stat st;

    memset(e, 0, sizeof(*e));
    e->daemon_pid = e->probes_pid = -1;
    if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) ||
        access("/sys/kernel/tracing/instances", W_OK)) {
        print_message("%s: needs root, kernel BTF and tracefs; skipping\n", test);
        return false;
    }
    snprintf(e->dir, sizeof(e->dir), "/tmp/probes-e2e-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->psock, sizeof(e->psock), "%s/producer.sock", e->dir);
    snprintf(e->csock, sizeof(e->csock), "%s/consumer.sock", e->dir);
    snprintf(svc, sizeof(svc), "%s/service/traced-bpf", bd ? bd : ".");
    snprintf(probes, sizeof(probes), "%s/producers/ftrace/traced-bpf-probes", bd ? bd : ".");
    e->daemon_pid = probes_env_spawn(e, svc, "--no-probes", NULL);
    for (int i = 0; i < 500 && stat(e->psock, &st); i++)
        probes_env_sleep_ms(10);
    assert_int_equal(stat(e->psock, &st), 0);
    e->probes_pid = probes_env_spawn(e, probes, "--socket", e->psock);
    for (int i = 0; i < 100 && !probes_env_registered(e, ready_ds); i++)
        probes_env_sleep_ms(50);
    assert_true(probes_env_registered(e, ready_ds));
    return true;
}

/* Sends @sig to *@pid and reaps it. Return: its wait status (-1 if none). */
static inline int probes_env_stop_pid(pid_t *pid, int sig)
{
    int status = -1;

    if (*pid <= 0)
        return 0;
    kill(*pid, sig);
    waitpid(*pid, &status, 0);
    *pid = -1;
    return status;
}

/* Stops the producer, then the daemon, and removes the socket directory. */
static inline void probes_env_stop(struct probes_env *e)
{
    probes_env_stop_pid(&e->probes_pid, SIGTERM);
    probes_env_stop_pid(&e->daemon_pid, SIGTERM);
    if (e->dir[0])
        rmdir(e->dir);
}

#endif /* TB_TESTS_PROBES_E2E_UTIL_H */
