/*
 * probes_check_test.c - the start-up check on this machine: real events
 * pass, a made-up event is named in the message, and an unprivileged
 * process is told which capability it lacks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "producers/ftrace/probe_check.h"

static int kernel_ready(void)
{
    if (geteuid() || access("/sys/kernel/tracing/trace", F_OK) ||
        access("/sys/kernel/btf/vmlinux", R_OK)) {
        fprintf(stderr, "probes_check_test: SKIP: needs root, tracefs and BTF\n");
        return 0;
    }
    return 1;
}

static void test_known_events_pass(void **state)
{
    static const char *const ev[] = {"sched/sched_switch", "sched_waking", "ftrace/print",
                                     "task/task_rename"};
    char msg[1024];

    if (!kernel_ready())
        skip();
    assert_int_equal(tb_probe_check(ev, 4, msg, sizeof(msg)), 0);
    assert_string_equal(msg, "");
}

static void test_unknown_event_named(void **state)
{
    static const char *const ev[] = {"sched/sched_switch", "bogus/not_an_event"};
    char msg[1024];

    if (!kernel_ready())
        skip();
    assert_int_equal(tb_probe_check(ev, 2, msg, sizeof(msg)), -ENOENT);
    assert_non_null(strstr(msg, "bogus/not_an_event does not exist"));
    assert_null(strstr(msg, "sched_switch"));
}

/* Drop every capability in a child and see the check say what is missing. */
static void test_missing_caps_named(void **state)
{
    static const char *const ev[] = {"sched/sched_switch"};
    int pfd[2], st;
    char msg[1024] = {0};
    pid_t pid;

    if (!kernel_ready())
        skip();
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char m[1024];
        int rc;

        close(pfd[0]);
        if (setgid(65534) || setuid(65534))
            _exit(2);
        rc = tb_probe_check(ev, 1, m, sizeof(m));
        if (write(pfd[1], m, strlen(m)) < 0)
            _exit(3);
        _exit(rc == -EPERM ? 0 : 1);
    }
    close(pfd[1]);
    assert_true(read(pfd[0], msg, sizeof(msg) - 1) > 0);
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_non_null(strstr(msg, "CAP_BPF"));
    assert_non_null(strstr(msg, "CAP_PERFMON"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_events_pass),
        cmocka_unit_test(test_unknown_event_named),
        cmocka_unit_test(test_missing_caps_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
