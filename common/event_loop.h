/*
 * event_loop.h - the single-threaded epoll loop every traced-bpf process
 * runs its IPC on.
 *
 * One loop per thread: fd watches, one-shot and periodic timers and deferred
 * tasks all run on the thread inside tb_loop_run(). Only
 * tb_loop_post_from_any_thread() and tb_loop_quit() may be called from other
 * threads (an eventfd wakes the loop), which is how libtracebpf's app threads
 * hand work to their producer IPC thread.
 *
 * Callbacks may add or remove any watch, timer or task, including their own;
 * a watch removed during a dispatch round gets no further events from that
 * round, even if its fd number is reused at once.
 */
#ifndef TB_COMMON_EVENT_LOOP_H
#define TB_COMMON_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct tb_loop;

/* Event bits for fd watches (what to wait for, and what happened). */
#define TB_LOOP_IN  0x1u /* readable, or a peer hung up (read returns 0) */
#define TB_LOOP_OUT 0x2u /* writable */
#define TB_LOOP_ERR 0x4u /* error or hang-up; reported whether asked or not */

/* Called with the events that fired (a mix of TB_LOOP_*). */
typedef void (*tb_loop_fd_fn)(void *ctx, int fd, uint32_t events);
/* A deferred task or a timer expiry. */
typedef void (*tb_loop_task_fn)(void *ctx);

/**
 * tb_loop_new() - create an empty loop.
 * @out: receives the loop. Owned by the caller, free with tb_loop_free().
 *
 * Return: 0 or negative errno (-ENOMEM, or the epoll/eventfd error).
 * Context: any thread; the loop then belongs to the thread that runs it.
 */
int tb_loop_new(struct tb_loop **out);

/**
 * tb_loop_free() - destroy a loop. Accepts NULL.
 * @loop: the loop; must not be running.
 *
 * Watched fds are not closed (the watchers own them). Tasks still queued
 * and timers still armed are discarded without running, so their ctx must
 * not need freeing, or the owner must cancel/drain them first.
 * Context: the loop's thread, after every other thread stopped posting.
 */
void tb_loop_free(struct tb_loop *loop);

/**
 * tb_loop_add_fd() - start watching @fd.
 * @loop: the loop.
 * @fd: the fd, owned by the caller; remove the watch before closing it.
 * @events: TB_LOOP_IN and/or TB_LOOP_OUT (0 is allowed: errors only).
 * @fn: called on the loop thread with the fired events.
 * @ctx: passed back to @fn; borrowed.
 *
 * Level-triggered. Return: 0, -EEXIST if @fd is already watched, -EINVAL,
 * -ENOMEM or the epoll_ctl error. Context: loop thread.
 */
int tb_loop_add_fd(struct tb_loop *loop, int fd, uint32_t events, tb_loop_fd_fn fn, void *ctx);

/**
 * tb_loop_mod_fd() - change what a watched fd waits for.
 * @loop: the loop.
 * @fd: a watched fd.
 * @events: the new TB_LOOP_IN / TB_LOOP_OUT mask.
 *
 * Return: 0, -ENOENT if @fd is not watched, or the epoll_ctl error.
 * Context: loop thread.
 */
int tb_loop_mod_fd(struct tb_loop *loop, int fd, uint32_t events);

/**
 * tb_loop_del_fd() - stop watching @fd. Safe from any callback.
 * @loop: the loop.
 * @fd: a watched fd (not closed here).
 *
 * Return: 0 or -ENOENT. Context: loop thread.
 */
int tb_loop_del_fd(struct tb_loop *loop, int fd);

/**
 * tb_loop_post() - run @fn(@ctx) on the next loop iteration.
 * @loop: the loop.
 * @fn: the task.
 * @ctx: borrowed; the task owns whatever it needs to free.
 *
 * Tasks run in posting order, after the current dispatch round.
 * Return: 0 or -ENOMEM. Context: loop thread only.
 */
int tb_loop_post(struct tb_loop *loop, tb_loop_task_fn fn, void *ctx);

/**
 * tb_loop_post_from_any_thread() - like tb_loop_post(), from any thread.
 * @loop: the loop; must outlive the call.
 * @fn: the task, run on the loop thread.
 * @ctx: handed to the loop thread.
 *
 * Wakes the loop through an eventfd. Return: 0 or -ENOMEM.
 * Context: any thread, including signal-free app threads; takes a mutex.
 */
int tb_loop_post_from_any_thread(struct tb_loop *loop, tb_loop_task_fn fn, void *ctx);

/**
 * tb_loop_add_timer() - arm a one-shot or periodic timer.
 * @loop: the loop.
 * @delay_ms: first expiry, from now (CLOCK_MONOTONIC).
 * @period_ms: 0 for one-shot; otherwise the interval between expiries.
 * @fn: called on the loop thread at each expiry.
 * @ctx: borrowed.
 * @id_out: receives a non-zero id for tb_loop_cancel_timer(); may be NULL.
 *
 * A one-shot timer is forgotten after it fires. Missed periods of a late
 * periodic timer are skipped, not replayed. Return: 0 or -ENOMEM.
 * Context: loop thread.
 */
int tb_loop_add_timer(struct tb_loop *loop, uint32_t delay_ms, uint32_t period_ms,
                      tb_loop_task_fn fn, void *ctx, uint64_t *id_out);

/**
 * tb_loop_cancel_timer() - disarm a timer. Safe from the timer's own callback.
 * @loop: the loop.
 * @id: from tb_loop_add_timer(); 0 or an expired one-shot id is ignored.
 *
 * Return: 0 or -ENOENT. Context: loop thread.
 */
int tb_loop_cancel_timer(struct tb_loop *loop, uint64_t id);

/**
 * tb_loop_run() - dispatch events until tb_loop_quit().
 * @loop: the loop.
 *
 * Return: 0 after a quit, or negative errno if epoll_wait fails.
 * Context: the loop thread; not reentrant.
 */
int tb_loop_run(struct tb_loop *loop);

/**
 * tb_loop_run_once() - one dispatch round: wait up to @timeout_ms for
 * something to happen (fd event, timer, task), then run what is ready.
 * @loop: the loop.
 * @timeout_ms: upper bound on the wait; -1 waits for the next event, 0 polls.
 *
 * For blocking helpers and tests that pump the loop themselves.
 * Return: 0 or negative errno. Context: loop thread; not from a callback.
 */
int tb_loop_run_once(struct tb_loop *loop, int timeout_ms);

/**
 * tb_loop_quit() - make tb_loop_run() return after the current round.
 * @loop: the loop.
 *
 * Context: any thread.
 */
void tb_loop_quit(struct tb_loop *loop);

/**
 * tb_loop_now_ms() - CLOCK_MONOTONIC in milliseconds (the timers' clock).
 *
 * Return: milliseconds. Context: any.
 */
uint64_t tb_loop_now_ms(void);

#endif /* TB_COMMON_EVENT_LOOP_H */
