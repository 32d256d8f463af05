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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"

static char bin[512], dir[64], psock[128], csock[128];

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* Runs the daemon with @args; returns its pid (stdout/stderr to @out_fd if >= 0). */
static pid_t spawn(const char *const *args, int out_fd)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {bin};
        int n = 1;

        for (; args && args[n - 1] && n < 15; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        if (out_fd >= 0) {
            dup2(out_fd, 1);
            dup2(out_fd, 2);
        }
        setenv("PERFETTO_PRODUCER_SOCK_NAME", psock, 1);
        setenv("PERFETTO_CONSUMER_SOCK_NAME", csock, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status = 0;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static bool wait_file(const char *path, bool present)
{
    struct stat st;

    for (int i = 0; i < 500; i++) {
        if ((stat(path, &st) == 0) == present)
            return true;
        sleep_ms(10);
    }
    return false;
}

static int setup(void **state)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");

    snprintf(bin, sizeof(bin), "%s/service/traced-bpf", bd ? bd : ".");
    snprintf(dir, sizeof(dir), "/tmp/svc-daemon-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(psock, sizeof(psock), "%s/p.sock", dir);
    snprintf(csock, sizeof(csock), "%s/c.sock", dir);
    return 0;
}

static int teardown(void **state)
{
    unlink(psock);
    unlink(csock);
    rmdir(dir);
    return 0;
}

static void test_flags(void **state)
{
    const char *help[] = {"--help", NULL}, *bad[] = {"--no-such-flag", NULL},
               *ver[] = {"--version", NULL};
    char out[8192];
    FILE *f = tmpfile();
    ssize_t n;

    assert_non_null(f);
    assert_int_equal(wait_exit(spawn(help, fileno(f))), 0);
    n = pread(fileno(f), out, sizeof(out) - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "--no-probes"));
    assert_non_null(strstr(out, "EXAMPLES"));
    assert_int_equal(wait_exit(spawn(bad, fileno(f))), 2);
    assert_int_equal(wait_exit(spawn(ver, fileno(f))), 0);
    fclose(f);
}

static void test_stale_socket_and_second_instance(void **state)
{
    const char *args[] = {"--no-probes", NULL};
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    Perfetto__Protos__TracingServiceState *ss;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), devnull;
    struct tb_cc *cc;
    pid_t first;

    /* A crashed service's leftover: a socket file nobody listens on. */
    assert_true(strlen(csock) < sizeof(a.sun_path));
    memcpy(a.sun_path, csock, strlen(csock) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    assert_true(wait_file(csock, true));

    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    first = spawn(args, devnull);
    assert_true(wait_file(psock, true));
    assert_int_equal(tb_cc_connect(csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_query_state(cc, 5000, &ss), 0);
    perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    tb_cc_free(cc);

    /* A second instance on the same sockets refuses to start... */
    assert_int_equal(wait_exit(spawn(args, devnull)), 1);
    /* ...and leaves the first one serving. */
    assert_int_equal(tb_cc_connect(csock, 5000, &cc), 0);
    tb_cc_free(cc);

    kill(first, SIGTERM);
    assert_int_equal(wait_exit(first), 0);
    assert_true(wait_file(psock, false));
    assert_true(wait_file(csock, false));
    close(devnull);
}

static void test_background(void **state)
{
    const char *args[] = {"--no-probes", "--background", NULL};
    struct tb_cc *cc;
    pid_t daemon_pid = 0;
    char path[64];

    /* The launcher exits at once; the daemon keeps running. */
    assert_int_equal(wait_exit(spawn(args, -1)), 0);
    assert_true(wait_file(psock, true));
    assert_int_equal(tb_cc_connect(csock, 5000, &cc), 0);
    tb_cc_free(cc);
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
                    !strcmp(env + i + 28, csock)) {
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
    assert_true(wait_file(csock, false));
    for (int i = 0; i < 500 && kill(daemon_pid, 0) == 0; i++)
        sleep_ms(10);
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
    const char *args[] = {"--probes-dir", dir, NULL};
    struct probe_start st[16];
    struct tb_cc *cc;
    int queries = 0, devnull;
    struct timespec t0, now;
    size_t n;
    pid_t daemon;
    FILE *f;

    snprintf(probes, sizeof(probes), "%s/traced-bpf-probes", dir);
    snprintf(log, sizeof(log), "%s/starts.log", dir);
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

    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    daemon = spawn(args, devnull);
    close(devnull);
    assert_true(wait_file(csock, true));
    /* Starts at about 0, 1 and 3 s; ask the service questions all along. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        Perfetto__Protos__TracingServiceState *ss;

        assert_int_equal(tb_cc_connect(csock, 2000, &cc), 0);
        assert_int_equal(tb_cc_query_state(cc, 2000, &ss), 0);
        perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
        tb_cc_free(cc);
        queries++;
        sleep_ms(100);
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
        assert_string_equal(st[i].sock, psock); /* pointed at our producer socket */
    /* The first restart waits the minimum back-off, later ones no less. */
    assert_true(st[1].ns - st[0].ns >= 900 * 1000000LL);
    for (size_t i = 2; i < n; i++)
        assert_true(st[i].ns - st[i - 1].ns >= st[i - 1].ns - st[i - 2].ns - 50 * 1000000LL);

    kill(daemon, SIGTERM);
    assert_int_equal(wait_exit(daemon), 0);
    /* No child left behind: the one that stayed up went with the service. */
    for (size_t i = 0; i < n; i++) {
        bool gone = kill(st[i].pid, 0) != 0 && errno == ESRCH;

        if (!gone)
            kill(st[i].pid, SIGKILL);
        assert_true(gone);
    }
    unlink(probes);
    unlink(log);
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
