/*
 * ipc_loop_test.c - the epoll event loop: fd watches, stale events after a
 * removal, timers, same-thread and cross-thread tasks, quit.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/event_loop.h"

struct pipe_ctx {
    struct tb_loop *loop;
    int fds[2];
    int calls;
    char got;
};

static void on_readable(void *ctx, int fd, uint32_t events)
{
    struct pipe_ctx *p = ctx;

    assert_true(events & TB_LOOP_IN);
    assert_int_equal(read(fd, &p->got, 1), 1);
    p->calls++;
    tb_loop_quit(p->loop);
}

static void test_fd_watch(void **state)
{
    struct pipe_ctx p = {0};

    assert_int_equal(tb_loop_new(&p.loop), 0);
    assert_int_equal(pipe(p.fds), 0);
    assert_int_equal(tb_loop_add_fd(p.loop, p.fds[0], TB_LOOP_IN, on_readable, &p), 0);
    assert_int_equal(tb_loop_add_fd(p.loop, p.fds[0], TB_LOOP_IN, on_readable, &p), -EEXIST);
    assert_int_equal(write(p.fds[1], "x", 1), 1);
    assert_int_equal(tb_loop_run(p.loop), 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.got, 'x');
    /* Nothing more to read: a poll round must not call back again. */
    assert_int_equal(tb_loop_run_once(p.loop, 0), 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(tb_loop_del_fd(p.loop, p.fds[0]), 0);
    assert_int_equal(tb_loop_del_fd(p.loop, p.fds[0]), -ENOENT);
    assert_int_equal(tb_loop_mod_fd(p.loop, p.fds[0], TB_LOOP_IN), -ENOENT);
    close(p.fds[0]);
    close(p.fds[1]);
    tb_loop_free(p.loop);
}

static void on_writable(void *ctx, int fd, uint32_t events)
{
    struct pipe_ctx *p = ctx;

    assert_true(events & TB_LOOP_OUT);
    p->calls++;
    assert_int_equal(tb_loop_mod_fd(p->loop, fd, 0), 0);
}

static void test_write_watch_and_mod(void **state)
{
    struct pipe_ctx p = {0};
    int i;

    assert_int_equal(tb_loop_new(&p.loop), 0);
    assert_int_equal(pipe(p.fds), 0);
    assert_int_equal(tb_loop_add_fd(p.loop, p.fds[1], TB_LOOP_OUT, on_writable, &p), 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(tb_loop_run_once(p.loop, 100), 0);
    /* Fired once, then the callback stopped asking for writability. */
    assert_int_equal(p.calls, 1);
    tb_loop_del_fd(p.loop, p.fds[1]);
    close(p.fds[0]);
    close(p.fds[1]);
    tb_loop_free(p.loop);
}

struct two {
    struct tb_loop *loop;
    int a[2], b[2];
    int calls;
};

static void remove_other(void *ctx, int fd, uint32_t events)
{
    struct two *t = ctx;
    int other = fd == t->a[0] ? t->b[0] : t->a[0];

    t->calls++;
    tb_loop_del_fd(t->loop, other);
    tb_loop_del_fd(t->loop, fd);
}

static void test_removed_watch_gets_no_stale_event(void **state)
{
    struct two t = {0};

    assert_int_equal(tb_loop_new(&t.loop), 0);
    assert_int_equal(pipe(t.a), 0);
    assert_int_equal(pipe(t.b), 0);
    assert_int_equal(tb_loop_add_fd(t.loop, t.a[0], TB_LOOP_IN, remove_other, &t), 0);
    assert_int_equal(tb_loop_add_fd(t.loop, t.b[0], TB_LOOP_IN, remove_other, &t), 0);
    assert_int_equal(write(t.a[1], "x", 1), 1);
    assert_int_equal(write(t.b[1], "x", 1), 1);
    /* Both are ready in the same epoll_wait; the first removes the second. */
    assert_int_equal(tb_loop_run_once(t.loop, 100), 0);
    assert_int_equal(t.calls, 1);
    close(t.a[0]);
    close(t.a[1]);
    close(t.b[0]);
    close(t.b[1]);
    tb_loop_free(t.loop);
}

struct timer_ctx {
    struct tb_loop *loop;
    uint64_t id;
    uint64_t start;
    uint64_t fired_at;
    int count;
    int stop_at;
};

static void one_shot(void *ctx)
{
    struct timer_ctx *t = ctx;

    t->count++;
    t->fired_at = tb_loop_now_ms();
    tb_loop_quit(t->loop);
}

static void test_one_shot_timer(void **state)
{
    struct timer_ctx t = {0};
    int i;

    assert_int_equal(tb_loop_new(&t.loop), 0);
    t.start = tb_loop_now_ms();
    assert_int_equal(tb_loop_add_timer(t.loop, 30, 0, one_shot, &t, &t.id), 0);
    assert_true(t.id != 0);
    assert_int_equal(tb_loop_run(t.loop), 0);
    assert_int_equal(t.count, 1);
    assert_true(t.fired_at - t.start >= 30);
    assert_true(t.fired_at - t.start < 1000);
    for (i = 0; i < 3; i++)
        assert_int_equal(tb_loop_run_once(t.loop, 20), 0);
    assert_int_equal(t.count, 1);
    /* An expired one-shot is gone. */
    assert_int_equal(tb_loop_cancel_timer(t.loop, t.id), -ENOENT);
    tb_loop_free(t.loop);
}

static void periodic(void *ctx)
{
    struct timer_ctx *t = ctx;

    if (++t->count == t->stop_at) {
        assert_int_equal(tb_loop_cancel_timer(t->loop, t->id), 0);
        tb_loop_quit(t->loop);
    }
}

static void test_periodic_timer_cancel_from_callback(void **state)
{
    struct timer_ctx t = {.stop_at = 5};
    uint64_t elapsed;
    int i;

    assert_int_equal(tb_loop_new(&t.loop), 0);
    t.start = tb_loop_now_ms();
    assert_int_equal(tb_loop_add_timer(t.loop, 10, 10, periodic, &t, &t.id), 0);
    assert_int_equal(tb_loop_run(t.loop), 0);
    elapsed = tb_loop_now_ms() - t.start;
    assert_int_equal(t.count, 5);
    assert_true(elapsed >= 50);
    for (i = 0; i < 3; i++)
        assert_int_equal(tb_loop_run_once(t.loop, 15), 0);
    assert_int_equal(t.count, 5);
    tb_loop_free(t.loop);
}

static void never(void *ctx)
{
    fail_msg("cancelled timer fired");
}

static void test_cancel_before_expiry(void **state)
{
    struct tb_loop *loop;
    uint64_t id;

    assert_int_equal(tb_loop_new(&loop), 0);
    assert_int_equal(tb_loop_add_timer(loop, 10, 0, never, NULL, &id), 0);
    assert_int_equal(tb_loop_cancel_timer(loop, id), 0);
    assert_int_equal(tb_loop_run_once(loop, 30), 0);
    /* Freed with an armed timer: no leak, no call. */
    assert_int_equal(tb_loop_add_timer(loop, 1000, 0, never, NULL, NULL), 0);
    tb_loop_free(loop);
}

struct order {
    struct tb_loop *loop;
    int seq[8];
    int n;
};

static void task_c(void *ctx)
{
    struct order *o = ctx;

    o->seq[o->n++] = 3;
}

static void task_a(void *ctx)
{
    struct order *o = ctx;

    o->seq[o->n++] = 1;
    /* Posted from a task: runs in the next round, not this one. */
    assert_int_equal(tb_loop_post(o->loop, task_c, o), 0);
}

static void task_b(void *ctx)
{
    struct order *o = ctx;

    o->seq[o->n++] = 2;
}

static void test_post_order(void **state)
{
    struct order o = {0};

    assert_int_equal(tb_loop_new(&o.loop), 0);
    assert_int_equal(tb_loop_post(o.loop, task_a, &o), 0);
    assert_int_equal(tb_loop_post(o.loop, task_b, &o), 0);
    assert_int_equal(tb_loop_run_once(o.loop, 1000), 0);
    assert_int_equal(o.n, 2);
    assert_int_equal(tb_loop_run_once(o.loop, 1000), 0);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.seq[0], 1);
    assert_int_equal(o.seq[1], 2);
    assert_int_equal(o.seq[2], 3);
    tb_loop_free(o.loop);
}

#define N_THREADS 4
#define N_POSTS   2000

struct mt {
    struct tb_loop *loop;
    pthread_t loop_thread;
    int count; /* touched only on the loop thread */
};

static void count_task(void *ctx)
{
    struct mt *m = ctx;

    if (++m->count == N_THREADS * N_POSTS)
        tb_loop_quit(m->loop);
}

static void *poster(void *arg)
{
    struct mt *m = arg;
    int i;

    for (i = 0; i < N_POSTS; i++)
        assert_int_equal(tb_loop_post_from_any_thread(m->loop, count_task, m), 0);
    return NULL;
}

static void test_post_from_any_thread(void **state)
{
    pthread_t th[N_THREADS];
    struct mt m = {0};
    int i;

    assert_int_equal(tb_loop_new(&m.loop), 0);
    for (i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, poster, &m), 0);
    /* The loop sleeps with no timeout: only the eventfd can wake it. */
    assert_int_equal(tb_loop_run(m.loop), 0);
    for (i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(m.count, N_THREADS * N_POSTS);
    tb_loop_free(m.loop);
}

static void *run_loop(void *arg)
{
    struct mt *m = arg;

    assert_int_equal(tb_loop_run(m->loop), 0);
    return NULL;
}

static void test_quit_from_other_thread(void **state)
{
    struct mt m = {0};
    uint64_t t0;

    assert_int_equal(tb_loop_new(&m.loop), 0);
    assert_int_equal(pthread_create(&m.loop_thread, NULL, run_loop, &m), 0);
    usleep(20000);
    t0 = tb_loop_now_ms();
    tb_loop_quit(m.loop);
    pthread_join(m.loop_thread, NULL);
    assert_true(tb_loop_now_ms() - t0 < 1000);
    tb_loop_free(m.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_watch),
        cmocka_unit_test(test_write_watch_and_mod),
        cmocka_unit_test(test_removed_watch_gets_no_stale_event),
        cmocka_unit_test(test_one_shot_timer),
        cmocka_unit_test(test_periodic_timer_cancel_from_callback),
        cmocka_unit_test(test_cancel_before_expiry),
        cmocka_unit_test(test_post_order),
        cmocka_unit_test(test_post_from_any_thread),
        cmocka_unit_test(test_quit_from_other_thread),
    };

    tb_loop_free(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
