/*
 * event_loop.c - single-threaded epoll loop: fd watches, timers kept in a
 * deadline-sorted list (the wait timeout is computed from the first one),
 * same-thread tasks, and cross-thread tasks handed over under a mutex with an
 * eventfd wakeup.
 *
 * Watches are indexed by fd. Each registration gets a generation number that
 * travels in the epoll cookie, so events fetched before a callback removed
 * (or removed and re-added) a watch are recognised as stale and skipped.
 */
#include "common/event_loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define MAX_EVENTS 64

struct watch {
    tb_loop_fd_fn fn;
    void *ctx;
    uint32_t events;
    uint32_t gen; /* 0 = not watched */
};

struct timer {
    struct timer *next;
    uint64_t id;
    uint64_t deadline_ms;
    uint32_t period_ms;
    tb_loop_task_fn fn;
    void *ctx;
};

struct task {
    struct task *next;
    tb_loop_task_fn fn;
    void *ctx;
};

struct task_list {
    struct task *head;
    struct task *tail;
};

struct tb_loop {
    struct watch *watches; /* indexed by fd */
    size_t n_watches;
    struct timer *timers; /* sorted by deadline, FIFO among equals */
    struct task_list tasks;
    struct task_list remote; /* guarded by mu */
    pthread_mutex_t mu;
    uint64_t next_timer_id;
    int epfd;
    int evfd;
    uint32_t next_gen;
    atomic_bool quit;
};

uint64_t tb_loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t to_epoll(uint32_t events)
{
    uint32_t ev = 0;

    if (events & TB_LOOP_IN)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & TB_LOOP_OUT)
        ev |= EPOLLOUT;
    return ev;
}

static void task_list_push(struct task_list *l, struct task *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
}

static void task_list_free(struct task_list *l)
{
    struct task *t = l->head;

    while (t) {
        struct task *next = t->next;
        free(t);
        t = next;
    }
    l->head = l->tail = NULL;
}

static void wake(struct tb_loop *loop)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the loop will wake. */
    if (write(loop->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        tb_warn("loop: eventfd wakeup failed: %s", strerror(errno));
}

int tb_loop_new(struct tb_loop **out)
{
    struct epoll_event ev = {.events = EPOLLIN};
    struct tb_loop *loop;
    int err = 0;

    loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    loop->epfd = -1;
    loop->evfd = -1;
    loop->next_timer_id = 1;
    loop->next_gen = 1;
    pthread_mutex_init(&loop->mu, NULL);

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        err = -errno;
        tb_err("loop: epoll_create1: %s", strerror(-err));
        goto out;
    }
    loop->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->evfd < 0) {
        err = -errno;
        tb_err("loop: eventfd: %s", strerror(-err));
        goto out;
    }
    /* The eventfd is not a watch: its cookie is the all-ones value. */
    ev.data.u64 = UINT64_MAX;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->evfd, &ev) < 0) {
        err = -errno;
        tb_err("loop: epoll_ctl(eventfd): %s", strerror(-err));
        goto out;
    }
    *out = loop;
    return 0;
out:
    tb_loop_free(loop);
    return err;
}

void tb_loop_free(struct tb_loop *loop)
{
    struct timer *t;

    if (!loop)
        return;
    while ((t = loop->timers)) {
        loop->timers = t->next;
        free(t);
    }
    task_list_free(&loop->tasks);
    task_list_free(&loop->remote);
    free(loop->watches);
    if (loop->evfd >= 0)
        close(loop->evfd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    pthread_mutex_destroy(&loop->mu);
    free(loop);
}

static struct watch *find_watch(struct tb_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->n_watches || !loop->watches[fd].gen)
        return NULL;
    return &loop->watches[fd];
}

int tb_loop_add_fd(struct tb_loop *loop, int fd, uint32_t events, tb_loop_fd_fn fn, void *ctx)
{
    struct epoll_event ev;
    struct watch *w;

    if (fd < 0 || !fn || (events & ~(TB_LOOP_IN | TB_LOOP_OUT)))
        return -EINVAL;
    if (find_watch(loop, fd))
        return -EEXIST;
    if ((size_t)fd >= loop->n_watches) {
        size_t n = loop->n_watches ? loop->n_watches : 64;

        while (n <= (size_t)fd)
            n *= 2;
        w = realloc(loop->watches, n * sizeof(*w));
        if (!w)
            return -ENOMEM;
        memset(w + loop->n_watches, 0, (n - loop->n_watches) * sizeof(*w));
        loop->watches = w;
        loop->n_watches = n;
    }
    w = &loop->watches[fd];
    if (++loop->next_gen == 0)
        loop->next_gen = 1;
    ev.events = to_epoll(events);
    ev.data.u64 = (uint64_t)loop->next_gen << 32 | (uint32_t)fd;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    w->fn = fn;
    w->ctx = ctx;
    w->events = events;
    w->gen = loop->next_gen;
    return 0;
}

int tb_loop_mod_fd(struct tb_loop *loop, int fd, uint32_t events)
{
    struct watch *w = find_watch(loop, fd);
    struct epoll_event ev;

    if (!w)
        return -ENOENT;
    if (events & ~(TB_LOOP_IN | TB_LOOP_OUT))
        return -EINVAL;
    if (w->events == events)
        return 0;
    ev.events = to_epoll(events);
    ev.data.u64 = (uint64_t)w->gen << 32 | (uint32_t)fd;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    w->events = events;
    return 0;
}

int tb_loop_del_fd(struct tb_loop *loop, int fd)
{
    struct watch *w = find_watch(loop, fd);

    if (!w)
        return -ENOENT;
    /* Fails only if the owner already closed the fd; the watch goes anyway. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(w, 0, sizeof(*w));
    return 0;
}

int tb_loop_post(struct tb_loop *loop, tb_loop_task_fn fn, void *ctx)
{
    struct task *t = malloc(sizeof(*t));

    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->ctx = ctx;
    task_list_push(&loop->tasks, t);
    return 0;
}

int tb_loop_post_from_any_thread(struct tb_loop *loop, tb_loop_task_fn fn, void *ctx)
{
    struct task *t = malloc(sizeof(*t));
    bool was_empty;

    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->ctx = ctx;
    pthread_mutex_lock(&loop->mu);
    was_empty = !loop->remote.head;
    task_list_push(&loop->remote, t);
    pthread_mutex_unlock(&loop->mu);
    if (was_empty)
        wake(loop);
    return 0;
}

static void insert_timer(struct tb_loop *loop, struct timer *t)
{
    struct timer **pp = &loop->timers;

    while (*pp && (*pp)->deadline_ms <= t->deadline_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
}

int tb_loop_add_timer(struct tb_loop *loop, uint32_t delay_ms, uint32_t period_ms,
                      tb_loop_task_fn fn, void *ctx, uint64_t *id_out)
{
    struct timer *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    t->id = loop->next_timer_id++;
    t->deadline_ms = tb_loop_now_ms() + delay_ms;
    t->period_ms = period_ms;
    t->fn = fn;
    t->ctx = ctx;
    insert_timer(loop, t);
    if (id_out)
        *id_out = t->id;
    return 0;
}

int tb_loop_cancel_timer(struct tb_loop *loop, uint64_t id)
{
    struct timer **pp = &loop->timers;

    if (!id)
        return -ENOENT;
    for (; *pp; pp = &(*pp)->next) {
        struct timer *t = *pp;

        if (t->id == id) {
            *pp = t->next;
            free(t);
            return 0;
        }
    }
    return -ENOENT;
}

static void run_timers(struct tb_loop *loop)
{
    /* Timers armed by callbacks of this round wait for the next round. */
    uint64_t last_id = loop->next_timer_id - 1;
    uint64_t now = tb_loop_now_ms();
    struct timer *t;

    while ((t = loop->timers) && t->deadline_ms <= now && t->id <= last_id) {
        tb_loop_task_fn fn = t->fn;
        void *ctx = t->ctx;

        loop->timers = t->next;
        if (t->period_ms) {
            t->deadline_ms += t->period_ms;
            if (t->deadline_ms <= now)
                t->deadline_ms = now + t->period_ms;
            insert_timer(loop, t);
        } else {
            free(t);
        }
        fn(ctx);
    }
}

static void take_remote_tasks(struct tb_loop *loop)
{
    struct task_list l;
    uint64_t cnt;

    if (read(loop->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        tb_warn("loop: eventfd read failed: %s", strerror(errno));
    pthread_mutex_lock(&loop->mu);
    l = loop->remote;
    loop->remote.head = loop->remote.tail = NULL;
    pthread_mutex_unlock(&loop->mu);
    if (!l.head)
        return;
    if (loop->tasks.tail)
        loop->tasks.tail->next = l.head;
    else
        loop->tasks.head = l.head;
    loop->tasks.tail = l.tail;
}

static void run_tasks(struct tb_loop *loop)
{
    /* Only what was queued at the start: tasks posted now run next round. */
    struct task *t = loop->tasks.head;

    loop->tasks.head = loop->tasks.tail = NULL;
    while (t) {
        struct task *next = t->next;

        t->fn(t->ctx);
        free(t);
        t = next;
    }
}

static int wait_timeout(struct tb_loop *loop, int timeout_ms)
{
    uint64_t now, delta;

    if (loop->tasks.head || atomic_load(&loop->quit))
        return 0;
    if (!loop->timers)
        return timeout_ms;
    now = tb_loop_now_ms();
    delta = loop->timers->deadline_ms > now ? loop->timers->deadline_ms - now : 0;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < delta)
        return timeout_ms;
    return delta > INT32_MAX ? INT32_MAX : (int)delta;
}

int tb_loop_run_once(struct tb_loop *loop, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n, i;

    n = epoll_wait(loop->epfd, evs, MAX_EVENTS, wait_timeout(loop, timeout_ms));
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        tb_err("loop: epoll_wait: %s", strerror(errno));
        return -errno;
    }
    for (i = 0; i < n; i++) {
        uint64_t cookie = evs[i].data.u64;
        uint32_t e = evs[i].events, fired = 0;
        int fd = (int)(uint32_t)cookie;
        struct watch *w;

        if (cookie == UINT64_MAX) {
            take_remote_tasks(loop);
            continue;
        }
        w = find_watch(loop, fd);
        if (!w || w->gen != (uint32_t)(cookie >> 32))
            continue; /* removed by an earlier callback of this round */
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
            fired |= TB_LOOP_IN;
        if (e & EPOLLOUT)
            fired |= TB_LOOP_OUT;
        if (e & (EPOLLERR | EPOLLHUP))
            fired |= TB_LOOP_ERR;
        w->fn(w->ctx, fd, fired);
    }
    run_timers(loop);
    run_tasks(loop);
    return 0;
}

int tb_loop_run(struct tb_loop *loop)
{
    int err = 0;

    while (!atomic_load(&loop->quit)) {
        err = tb_loop_run_once(loop, -1);
        if (err)
            break;
    }
    atomic_store(&loop->quit, false);
    return err;
}

void tb_loop_quit(struct tb_loop *loop)
{
    atomic_store(&loop->quit, true);
    wake(loop);
}
