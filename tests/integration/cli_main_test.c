/*
 * cli_main_test.c - the tracebpf binary as a user meets it: --help and
 * --version, per-command help with EXAMPLES, one-line errors with exit 2 for
 * unknown commands and flags, "open" serving a file to a real HTTP client,
 * and "doctor" on this host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli_run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

static const char *const all_commands[] = {"record", "export", "open",  "info",
                                           "stats",  "ls",     "doctor"};
#define N_COMMANDS (sizeof(all_commands) / sizeof(all_commands[0]))

static void test_main_help_lists_every_command(void **state)
{
    const char *args[] = {"--help", NULL};
    struct cli_result r;
    size_t i;

    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "usage: tracebpf", 15) == 0);
    for (i = 0; i < N_COMMANDS; i++) {
        char needle[32];

        snprintf(needle, sizeof(needle), "\n  %s ", all_commands[i]);
        assert_non_null(strstr(r.out, needle));
    }
    assert_non_null(strstr(r.out, "EXAMPLES"));
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_version(void **state)
{
    const char *args[] = {"--version", NULL};
    struct cli_result r;

    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "tracebpf ", 9) == 0);
    assert_int_equal(cli_count_lines(r.out), 1);
    cli_result_free(&r);
}

static void test_each_command_help(void **state)
{
    size_t i;

    for (i = 0; i < N_COMMANDS; i++) {
        const char *a1[] = {all_commands[i], "--help", NULL};
        const char *a2[] = {"help", all_commands[i], NULL};
        char usage[64];
        struct cli_result r1, r2;

        assert_int_equal(cli_run(&r1, a1), 0);
        assert_int_equal(cli_run(&r2, a2), 0);
        assert_int_equal(r1.status, 0);
        assert_int_equal(r2.status, 0);
        snprintf(usage, sizeof(usage), "usage: tracebpf %s", all_commands[i]);
        assert_true(strncmp(r1.out, usage, strlen(usage)) == 0);
        assert_non_null(strstr(r1.out, "\nEXAMPLES\n"));
        assert_string_equal(r1.out, r2.out);
        cli_result_free(&r1);
        cli_result_free(&r2);
    }
}

static void expect_usage_error(const char *const *args, const char *needle)
{
    struct cli_result r;

    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_int_equal(cli_count_lines(r.err), 1);
    if (!strstr(r.err, needle))
        fail_msg("stderr '%s' lacks '%s'", r.err, needle);
    cli_result_free(&r);
}

static void test_usage_errors(void **state)
{
    const char *a1[] = {"frobnicate", NULL};
    const char *a2[] = {"--frobnicate", NULL};
    const char *a3[] = {"open", "--bogus", "x.pftrace", NULL};
    const char *a4[] = {"open", "-z", "x.pftrace", NULL};
    const char *a5[] = {"open", "x.pftrace", "--port", NULL};
    const char *a6[] = {"open", "--port", "70000", "x.pftrace", NULL};
    const char *a7[] = {"open", NULL};
    const char *a8[] = {"help", "frobnicate", NULL};
    const char *a9[] = {"doctor", "--bogus", NULL};
    const char *a0[] = {NULL};

    expect_usage_error(a1, "unknown command 'frobnicate'");
    expect_usage_error(a2, "unknown option '--frobnicate'");
    expect_usage_error(a3, "unknown option '--bogus'");
    expect_usage_error(a4, "unknown option '-z'");
    expect_usage_error(a5, "option '--port' needs a value");
    expect_usage_error(a6, "bad port '70000'");
    expect_usage_error(a7, "exactly one trace file");
    expect_usage_error(a8, "unknown command 'frobnicate'");
    expect_usage_error(a9, "unknown option '--bogus'");

    struct cli_result r;
    assert_int_equal(cli_run(&r, a0), 0);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "usage: tracebpf"));
    cli_result_free(&r);
}

static void test_open_missing_file(void **state)
{
    const char *args[] = {"open", "--port", "0", "/nonexistent/t.pftrace", NULL};
    struct cli_result r;

    /* Port 0 is refused as a usage error before the file is looked at. */
    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 2);
    cli_result_free(&r);
    args[2] = "9123";
    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 1);
    assert_int_equal(cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "/nonexistent/t.pftrace"));
    assert_non_null(strstr(r.err, "No such file"));
    cli_result_free(&r);
}

/* Runs "tracebpf open" in the background and fetches the file over TCP. */
static void test_open_serves_once_and_exits(void **state)
{
    const char *port = "9137";
    char path[] = "/tmp/cli_main_open_XXXXXX";
    char *argv[] = {(char *)cli_binary(), "open", "--port", (char *)port, path, NULL};
    struct sockaddr_in a = {.sin_family = AF_INET};
    char out_path[] = "/tmp/cli_main_out_XXXXXX";
    char resp[8192], req[256], *out;
    posix_spawn_file_actions_t fa;
    int fd, ofd, st, tries;
    size_t n = 0;
    ssize_t k;
    pid_t pid;

    fd = mkstemp(path);
    assert_int_equal(write(fd, "\x0a\x02\x08\x01", 4), 4);
    close(fd);
    ofd = mkstemp(out_path);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, ofd, 1);
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(ofd);

    a.sin_port = htons((uint16_t)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (tries = 0; tries < 100; tries++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(50 * 1000);
    }
    assert_true(fd >= 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nOrigin: https://ui.perfetto.dev\r\n\r\n",
             strrchr(path, '/'));
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    while ((k = recv(fd, resp + n, sizeof(resp) - 1 - n, 0)) > 0)
        n += (size_t)k;
    resp[n] = '\0';
    close(fd);
    assert_true(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(resp, "Access-Control-Allow-Origin: https://ui.perfetto.dev\r\n"));
    assert_int_equal(n - (size_t)(strstr(resp, "\r\n\r\n") + 4 - resp), 4);
    assert_memory_equal(strstr(resp, "\r\n\r\n") + 4, "\x0a\x02\x08\x01", 4);

    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    out = cli_slurp(out_path);
    snprintf(req, sizeof(req), "https://ui.perfetto.dev/#!/?url=http://127.0.0.1:%s%s", port,
             strrchr(path, '/'));
    assert_non_null(strstr(out, req));
    free(out);
    unlink(out_path);
    unlink(path);
}

static void test_doctor_on_this_host(void **state)
{
    static const char *const items[] = {"kernel", "btf",      "tracefs", "bpf",
                                        "perf",   "lockdown", "daemon",  "producers"};
    char sock[] = "/tmp/cli_doctor_sock_XXXXXX";
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const char *args[] = {"doctor", NULL};
    struct cli_result r;
    int lfd;
    size_t i;

    /* A listening socket stands in for the daemon's consumer socket. */
    close(mkstemp(sock));
    unlink(sock);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", sock);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    setenv("PERFETTO_CONSUMER_SOCK_NAME", sock, 1);
    setenv("PERFETTO_PRODUCER_SOCK_NAME", "/nonexistent/producer.sock", 1);

    assert_int_equal(cli_run(&r, args), 0);
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    unsetenv("PERFETTO_PRODUCER_SOCK_NAME");
    close(lfd);
    unlink(sock);
    for (i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        char needle[32];

        snprintf(needle, sizeof(needle), " %-10s ", items[i]);
        if (!strstr(r.out, needle))
            fail_msg("doctor output lacks the %s line:\n%s", items[i], r.out);
    }
    assert_non_null(strstr(r.out, "a service answers on the consumer socket"));
    assert_non_null(strstr(r.out, "no service on the producer socket /nonexistent/producer.sock"));
    if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) ||
        access("/sys/kernel/tracing/trace", F_OK)) {
        print_message("not root, or no BTF/tracefs: only the report format was checked\n");
        assert_true(r.status == 0 || r.status == 1);
    } else {
        /* Root with BTF and tracefs: this host records, so doctor must say so. */
        if (r.status != 0)
            fail_msg("doctor failed on a capable host:\n%s", r.out);
        assert_non_null(strstr(r.out, "Recording will work"));
        assert_null(strstr(r.out, "FAIL"));
    }
    cli_result_free(&r);
}

static void test_service_commands_say_why(void **state)
{
    static const char *const cmds[] = {"record", "stats", "ls"};
    size_t i;

    for (i = 0; i < 3; i++) {
        const char *args[] = {cmds[i], NULL};
        struct cli_result r;

        assert_int_equal(cli_run(&r, args), 0);
        if (r.status == 1 && strstr(r.err, "not available yet")) {
            assert_int_equal(cli_count_lines(r.err), 1);
            assert_non_null(strstr(r.err, "needs the service"));
        }
        cli_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_help_lists_every_command),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_each_command_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_open_missing_file),
        cmocka_unit_test(test_open_serves_once_and_exits),
        cmocka_unit_test(test_doctor_on_this_host),
        cmocka_unit_test(test_service_commands_say_why),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
