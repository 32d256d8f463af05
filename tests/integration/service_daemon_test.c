/*
 * service_daemon_test.c - the traced-bpf binary as a user runs it: flags,
 * a stale socket file taken over, a second instance refused, --background,
 * a clean SIGTERM shutdown, and a dying kernel producer child restarted
 * with back-off (a fake traced-bpf-probes script in --probes-dir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_util.h"

/*
 * The temp dir and socket paths come from daemon_util.h, but each test
 * spawns and stops the daemon itself (td_spawn_daemon()): how it starts,
 * refuses to start and exits is what is under test.
 */
static struct td_daemon daemon_;

/* Runs the daemon with @args to the end (output to @out); its exit code. */
static int run_to_exit(const char *const *args, const char *out)
{
    pid_t pid = td_spawn_daemon(&daemon_, args, out);

    assert_true(pid > 0);
    return td_wait_exit(&pid, TD_STOP_TIMEOUT_MS);
}

static bool wait_file(const char *path, bool present)
{
    struct stat st;

    for (int i = 0; i < 500; i++) {
        if ((stat(path, &st) == 0) == present)
            return true;
        td_sleep_ms(10);
    }
    return false;
}

static int setup(void **state)
{
    /* The daemons write to <dir>/daemon.log, not into the test's output. */
    struct td_opts o = {.tag = "svc-daemon", .log = true};

    assert_int_equal(td_prepare(&daemon_, &o), 0);
    return 0;
}

static int teardown(void **state)
{
    td_cleanup(&daemon_, false);
    return 0;
}

static void test_flags(void **state)
{
    const char *help[] = {"--help", NULL}, *bad[] = {"--no-such-flag", NULL},
               *ver[] = {"--version", NULL};
    char out[8192], path[128];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/out.txt", daemon_.dir);
    assert_int_equal(run_to_exit(help, path), 0);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    n = read(fd, out, sizeof(out) - 1);
    close(fd);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "--no-probes"));
    assert_non_null(strstr(out, "EXAMPLES"));
    assert_int_equal(run_to_exit(bad, path), 2);
    assert_int_equal(run_to_exit(ver, path), 0);
}

static void test_stale_socket_and_second_instance(void **state)
{
    const char *args[] = {"--no-probes", NULL};
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    /* A crashed service's leftover: a socket file nobody listens on. */
    assert_true(strlen(daemon_.csock) < sizeof(a.sun_path));
    memcpy(a.sun_path, daemon_.csock, strlen(daemon_.csock) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    assert_true(wait_file(daemon_.csock, true));

    daemon_.pid = td_spawn_daemon(&daemon_, args, daemon_.log);
    assert_true(daemon_.pid > 0);
    /* Only once the new one listens: the stale file refuses connections. */
    assert_true(wait_file(daemon_.psock, true));
    assert_int_equal(td_wait_answer(&daemon_, NULL, 5000), 0);

    /* A second instance on the same sockets refuses to start... */
    assert_int_equal(run_to_exit(args, daemon_.log), 1);
    /* ...and leaves the first one serving. */
    assert_int_equal(td_query(&daemon_, NULL), 0);

    assert_int_equal(td_stop(&daemon_), 0);
    assert_true(wait_file(daemon_.psock, false));
    assert_true(wait_file(daemon_.csock, false));
}

static void test_background(void **state)
{
    const char *args[] = {"--no-probes", "--background", NULL};
    pid_t daemon_pid = 0;
    char path[64];

    /* The launcher exits at once; the daemon keeps running. */
    assert_int_equal(run_to_exit(args, NULL), 0);
    assert_true(wait_file(daemon_.psock, true));
    /* daemon_.pid stays -1: it is not our child. */
    assert_int_equal(td_wait_answer(&daemon_, NULL, 5000), 0);
    /* Find it by the socket it listens on: its pid is in no file we own. */
    {
        DIR *proc = opendir("/proc");
        struct dirent *de;

        assert_non_null(proc);
        while (!daemon_pid && (de = readdir(proc))) {
            pid_t p = (pid_t)atoi(de->d_name);
            char env[8192];
            ssize_t n;
            int fd;

            if (p <= 1)
                continue;
            snprintf(path, sizeof(path), "/proc/%d/environ", (int)p);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            n = read(fd, env, sizeof(env) - 1);
            close(fd);
            if (n <= 0)
                continue;
            env[n] = '\0';
            for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1) {
                if (!strncmp(env + i, "PERFETTO_CONSUMER_SOCK_NAME=", 28) &&
                    !strcmp(env + i + 28, daemon_.csock)) {
                    daemon_pid = p;
                    break;
                }
            }
        }
        closedir(proc);
    }
    assert_true(daemon_pid > 0);
    kill(daemon_pid, SIGTERM);
    /* Not our child: watch it remove its sockets and go away. */
    assert_true(wait_file(daemon_.csock, false));
    for (int i = 0; i < 500 && kill(daemon_pid, 0) == 0; i++)
        td_sleep_ms(10);
    assert_int_not_equal(kill(daemon_pid, 0), 0);
}

/* Lines of the fake probes' start log: "<realtime ns> <pid> <producer socket>". */
struct probe_start {
    long long ns;
    pid_t pid;
    char sock[128];
};

static size_t read_starts(const char *path, struct probe_start *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (!f)
        return 0;
    while (n < cap && fscanf(f, "%lld %d %127s", &out[n].ns, &out[n].pid, out[n].sock) == 3)
        n++;
    fclose(f);
    return n;
}

/*
 * A kernel producer that dies at once is restarted with a back-off that
 * grows, while the service keeps answering consumers; the third start stays
 * up, and SIGTERM on the service stops it too.
 */
static void test_probes_restart_backoff(void **state)
{
    char probes[128], log[128];
    const char *args[] = {"--probes-dir", daemon_.dir, NULL};
    /* With the kernel producer: here it is the fake script. */
    struct td_opts o = {.probes = true, .args = args};
    struct probe_start st[16];
    int queries = 0;
    struct timespec t0, now;
    size_t n;
    FILE *f;

    snprintf(probes, sizeof(probes), "%s/traced-bpf-probes", daemon_.dir);
    snprintf(log, sizeof(log), "%s/starts.log", daemon_.dir);
    f = fopen(probes, "w");
    assert_non_null(f);
    fprintf(f,
            "#!/bin/sh\n"
            "echo \"$(date +%%s%%N) $$ $PERFETTO_PRODUCER_SOCK_NAME\" >> %s\n"
            "[ \"$(wc -l < %s)\" -ge 3 ] && exec sleep 30\n"
            "exit 1\n",
            log, log);
    fclose(f);
    assert_int_equal(chmod(probes, 0755), 0);

    assert_int_equal(td_launch(&daemon_, &o), 0);
    /* Starts at about 0, 1 and 3 s; ask the service questions all along. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        assert_int_equal(td_query(&daemon_, NULL), 0);
        queries++;
        td_sleep_ms(100);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 < 4500);
    assert_true(queries >= 20);

    n = read_starts(log, st, 16);
    print_message("probes started %zu times; gaps:", n);
    for (size_t i = 1; i < n; i++)
        print_message(" %lld ms", (st[i].ns - st[i - 1].ns) / 1000000);
    print_message("\n");
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(st[i].sock, daemon_.psock); /* pointed at our producer socket */
    /* The first restart waits the minimum back-off, later ones no less. */
    assert_true(st[1].ns - st[0].ns >= 900 * 1000000LL);
    for (size_t i = 2; i < n; i++)
        assert_true(st[i].ns - st[i - 1].ns >= st[i - 1].ns - st[i - 2].ns - 50 * 1000000LL);

    assert_int_equal(td_stop(&daemon_), 0);
    /* No child left behind: the one that stayed up went with the service. */
    for (size_t i = 0; i < n; i++) {
        bool gone = kill(st[i].pid, 0) != 0 && errno == ESRCH;

        if (!gone)
            kill(st[i].pid, SIGKILL);
        assert_true(gone);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_and_second_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes_restart_backoff, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
