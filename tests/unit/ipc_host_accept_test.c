/*
 * ipc_host_accept_test.c - the IPC host when the process runs out of file
 * descriptors: a peer waiting in the listen backlog cannot be accepted, the
 * listening socket stays readable, and the host must pause accepting instead
 * of spinning its loop; once fds are free again the peer gets in. Real
 * sockets, a real RLIMIT_NOFILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/event_loop.h"
#include "common/ipc_host.h"
#include "common/ipc_sock.h"

#define MAX_FILLERS 4096

struct fx {
    char name[64];
    struct tb_loop *loop;
    struct tb_ipc_host *host;
    struct rlimit saved;
    int fillers[MAX_FILLERS];
    int n_fillers;
    int client_fd;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->name, sizeof(f->name), "@tb-accept-test-%d", (int)getpid());
    f->client_fd = -1;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &f->saved), 0);
    assert_int_equal(tb_loop_new(&f->loop), 0);
    assert_int_equal(tb_ipc_host_new(f->loop, NULL, &f->host), 0);
    assert_int_equal(tb_ipc_host_listen(f->host, f->name), 0);
    *state = f;
    return 0;
}

static void release_fillers(struct fx *f)
{
    while (f->n_fillers)
        close(f->fillers[--f->n_fillers]);
}

static int teardown(void **state)
{
    struct fx *f = *state;

    release_fillers(f);
    setrlimit(RLIMIT_NOFILE, &f->saved);
    if (f->client_fd >= 0)
        close(f->client_fd);
    tb_ipc_host_free(f->host);
    tb_loop_free(f->loop);
    free(f);
    return 0;
}

/* Connects a peer (it waits in the backlog), then uses up every fd left. */
static void connect_then_exhaust(struct fx *f)
{
    struct rlimit rl = f->saved;
    int fd;

    assert_int_equal(tb_ipc_sock_connect(f->name, true, &f->client_fd), 0);
    /* A low limit keeps the number of filler fds small. */
    rl.rlim_cur = 128;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    while (f->n_fillers < MAX_FILLERS && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        f->fillers[f->n_fillers++] = fd;
    assert_int_equal(errno, EMFILE);
}

/* Pumps the loop for @ms; returns how many dispatch rounds that took. */
static int pump_rounds(struct fx *f, uint64_t ms)
{
    uint64_t deadline = tb_loop_now_ms() + ms;
    int rounds = 0;

    for (uint64_t now; (now = tb_loop_now_ms()) < deadline; rounds++)
        assert_int_equal(tb_loop_run_once(f->loop, (int)(deadline - now)), 0);
    return rounds;
}

static void test_emfile_pauses_then_accepts(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_host_stats st;
    uint64_t deadline;
    int rounds;

    connect_then_exhaust(f);
    rounds = pump_rounds(f, 350);
    tb_ipc_host_get_stats(f->host, &st);
    /* A spinning loop makes thousands of rounds here; a paused one wakes per timer. */
    printf("# %d loop rounds in 350 ms, %llu accept pauses\n", rounds,
           (unsigned long long)st.accept_pauses);
    assert_true(rounds < 40);
    assert_true(st.accept_pauses >= 2);
    assert_true(st.accept_pauses <= 5);
    assert_int_equal(st.connections_accepted, 0);
    assert_int_equal(tb_ipc_host_num_connections(f->host), 0);

    release_fillers(f);
    deadline = tb_loop_now_ms() + 1000;
    while (tb_ipc_host_num_connections(f->host) == 0 && tb_loop_now_ms() < deadline)
        assert_int_equal(tb_loop_run_once(f->loop, 50), 0);
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.connections_accepted, 1);
    assert_int_equal(tb_ipc_host_num_connections(f->host), 1);

    /* Accepting is fully re-armed: a second peer gets in without a pause. */
    {
        uint64_t pauses = st.accept_pauses;
        int fd2;

        assert_int_equal(tb_ipc_sock_connect(f->name, true, &fd2), 0);
        deadline = tb_loop_now_ms() + 1000;
        while (tb_ipc_host_num_connections(f->host) < 2 && tb_loop_now_ms() < deadline)
            assert_int_equal(tb_loop_run_once(f->loop, 50), 0);
        tb_ipc_host_get_stats(f->host, &st);
        assert_int_equal(tb_ipc_host_num_connections(f->host), 2);
        assert_int_equal(st.accept_pauses, pauses);
        close(fd2);
    }
}

/* Freeing the host while accepting is paused must cancel the resume timer. */
static void test_free_while_paused(void **state)
{
    struct fx *f = *state;
    struct tb_ipc_host_stats st;

    connect_then_exhaust(f);
    pump_rounds(f, 30);
    tb_ipc_host_get_stats(f->host, &st);
    assert_int_equal(st.accept_pauses, 1);
    tb_ipc_host_free(f->host);
    f->host = NULL;
    release_fillers(f);
    /* The resume timer would fire in here and touch the freed listener. */
    pump_rounds(f, 250);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_emfile_pauses_then_accepts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_paused, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
