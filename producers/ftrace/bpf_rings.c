/*
 * bpf_rings.c - owns the maps shared by all BPF units (per-CPU rings in an
 * ARRAY_OF_MAPS, loss counters, traced tgids) and the drain thread.
 *
 * BPF programs submit without waking us (BPF_RB_NO_WAKEUP) unless a ring is
 * past the wakeup fill level; so the drain thread wakes on a timer, on such a
 * fill-level wakeup, or when asked to (consume/stop) through an eventfd.
 */
#include "producers/ftrace/bpf_rings.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/record.h"
#include "common/log.h"
#include "common/thread_prio.h"

struct tb_bpf_rings {
    int *ring_fds;
    unsigned int nr_rings;
    unsigned int nr_cpus;
    unsigned int cpus_per_ring;
    unsigned int drain_period_ms;
    size_t ring_bytes;
    uint64_t wakeup_bytes;
    int outer_fd;
    int stats_fd;
    int tgids_fd;
    int kick_fd;
    int epoll_fd;
    struct ring_buffer *rb;
    tb_bpf_record_fn fn;
    void *ctx;
    pthread_t thread;
    bool running;
    volatile bool stopping;
};

static size_t round_pow2(size_t v)
{
    size_t p = 4096;

    while (p < v)
        p <<= 1;
    return p;
}

static int on_sample(void *ctx, void *data, size_t size)
{
    struct tb_bpf_rings *r = ctx;

    return r->fn ? r->fn(r->ctx, data, size) : 0;
}

static int create_maps(struct tb_bpf_rings *r)
{
    LIBBPF_OPTS(bpf_map_create_opts, outer_opts);
    unsigned int i;
    int err = 0;

    for (i = 0; i < r->nr_rings; i++) {
        r->ring_fds[i] = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tb_ring", 0, 0, r->ring_bytes, NULL);
        if (r->ring_fds[i] < 0) {
            err = -errno;
            tb_err("bpf: creating ring %u of %zu bytes: %s", i, r->ring_bytes, strerror(-err));
            return err;
        }
    }
    outer_opts.inner_map_fd = r->ring_fds[0];
    r->outer_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tb_rings", sizeof(__u32),
                                 sizeof(__u32), r->nr_rings, &outer_opts);
    if (r->outer_fd < 0) {
        err = -errno;
        tb_err("bpf: creating the ring array (%u rings): %s", r->nr_rings, strerror(-err));
        return err;
    }
    for (i = 0; i < r->nr_rings; i++) {
        __u32 key = i, val = r->ring_fds[i];

        if (bpf_map_update_elem(r->outer_fd, &key, &val, BPF_ANY)) {
            err = -errno;
            tb_err("bpf: inserting ring %u: %s", i, strerror(-err));
            return err;
        }
    }
    r->stats_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "tb_stats", sizeof(__u32),
                                 sizeof(struct tb_bpf_stats), 1, NULL);
    if (r->stats_fd < 0) {
        err = -errno;
        tb_err("bpf: creating the loss counters: %s", strerror(-err));
        return err;
    }
    r->tgids_fd =
        bpf_map_create(BPF_MAP_TYPE_HASH, "tb_tgids", sizeof(__u32), sizeof(__u8), 16384, NULL);
    if (r->tgids_fd < 0) {
        err = -errno;
        tb_err("bpf: creating the traced-tgid map: %s", strerror(-err));
        return err;
    }
    return 0;
}

int tb_bpf_rings_new(const struct tb_bpf_rings_opts *opts, struct tb_bpf_rings **out)
{
    struct tb_bpf_rings_opts o = {0};
    struct tb_bpf_rings *r;
    unsigned int i;
    int ncpu, err;

    *out = NULL;
    if (opts)
        o = *opts;
    ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) {
        tb_err("bpf: cannot count possible CPUs: %s", strerror(ncpu ? -ncpu : EINVAL));
        return ncpu ? ncpu : -EINVAL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->outer_fd = r->stats_fd = r->tgids_fd = r->kick_fd = r->epoll_fd = -1;
    r->nr_cpus = ncpu;
    r->cpus_per_ring = o.cpus_per_ring ? o.cpus_per_ring : 1;
    r->nr_rings = (ncpu + r->cpus_per_ring - 1) / r->cpus_per_ring;
    r->ring_bytes = round_pow2(o.ring_bytes ? o.ring_bytes : TB_RING_DEFAULT_BYTES);
    r->wakeup_bytes = r->ring_bytes * (o.wakeup_percent ? o.wakeup_percent : 50) / 100;
    r->drain_period_ms = o.drain_period_ms ? o.drain_period_ms : 100;
    r->ring_fds = calloc(r->nr_rings, sizeof(int));
    if (!r->ring_fds) {
        err = -ENOMEM;
        goto out;
    }
    for (i = 0; i < r->nr_rings; i++)
        r->ring_fds[i] = -1;
    err = create_maps(r);
    if (err)
        goto out;
    for (i = 0; i < r->nr_rings; i++) {
        if (!r->rb) {
            r->rb = ring_buffer__new(r->ring_fds[i], on_sample, r, NULL);
            if (!r->rb)
                err = -errno;
        } else {
            err = ring_buffer__add(r->rb, r->ring_fds[i], on_sample, r);
        }
        if (err) {
            tb_err("bpf: mapping ring %u: %s", i, strerror(-err));
            goto out;
        }
    }
    r->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (r->kick_fd < 0 || r->epoll_fd < 0) {
        err = -errno;
        tb_err("bpf: drain thread fds: %s", strerror(-err));
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->kick_fd, &ev) < 0) {
        err = -errno;
        goto out;
    }
    /*
     * Edge-triggered, on each ring's own fd rather than libbpf's
     * (level-triggered) epoll fd: a ring that is never empty under load
     * would keep a level-triggered fd readable, and the drain thread would
     * spin on epoll_wait, tracing its own syscalls, instead of waiting for
     * the timer or a program's half-full wakeup.
     */
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = 1;
    for (i = 0; i < r->nr_rings; i++) {
        if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->ring_fds[i], &ev) < 0) {
            err = -errno;
            tb_err("bpf: watching ring %u: %s", i, strerror(-err));
            goto out;
        }
    }
    *out = r;
    return 0;
out:
    tb_bpf_rings_free(r);
    return err;
}

void tb_bpf_rings_free(struct tb_bpf_rings *r)
{
    unsigned int i;

    if (!r)
        return;
    tb_bpf_rings_stop(r);
    ring_buffer__free(r->rb);
    for (i = 0; r->ring_fds && i < r->nr_rings; i++) {
        if (r->ring_fds[i] >= 0)
            close(r->ring_fds[i]);
    }
    free(r->ring_fds);
    if (r->outer_fd >= 0)
        close(r->outer_fd);
    if (r->stats_fd >= 0)
        close(r->stats_fd);
    if (r->tgids_fd >= 0)
        close(r->tgids_fd);
    if (r->kick_fd >= 0)
        close(r->kick_fd);
    if (r->epoll_fd >= 0)
        close(r->epoll_fd);
    free(r);
}

int tb_bpf_rings_share(struct tb_bpf_rings *r, struct bpf_map *rings, struct bpf_map *stats,
                       struct bpf_map *tgids)
{
    int err;

    /* The outer map must be sized before its fd replaces the template. */
    err = bpf_map__set_max_entries(rings, r->nr_rings);
    if (!err)
        err = bpf_map__set_inner_map_fd(rings, r->ring_fds[0]);
    if (!err)
        err = bpf_map__reuse_fd(rings, r->outer_fd);
    if (!err)
        err = bpf_map__reuse_fd(stats, r->stats_fd);
    if (!err)
        err = bpf_map__reuse_fd(tgids, r->tgids_fd);
    if (err)
        tb_err("bpf: sharing the ring/counter maps with %s: %s", bpf_map__name(rings),
               strerror(-err));
    return err;
}

unsigned int tb_bpf_rings_cpus_per_ring(const struct tb_bpf_rings *r)
{
    return r->cpus_per_ring;
}

uint64_t tb_bpf_rings_wakeup_bytes(const struct tb_bpf_rings *r)
{
    return r->wakeup_bytes;
}

int tb_bpf_rings_add_tgid(struct tb_bpf_rings *r, pid_t tgid)
{
    __u32 key = tgid;
    __u8 one = 1;

    if (bpf_map_update_elem(r->tgids_fd, &key, &one, BPF_ANY))
        return -errno;
    return 0;
}

int tb_bpf_rings_has_tgid(const struct tb_bpf_rings *r, pid_t tgid)
{
    __u32 key = tgid;
    __u8 val;

    return bpf_map_lookup_elem(r->tgids_fd, &key, &val) == 0;
}

static void *drain_main(void *arg)
{
    struct tb_bpf_rings *r = arg;
    struct epoll_event evs[2];
    uint64_t v;
    int n, err;

    /* Woken at half-full, it must run before the other half fills too. */
    tb_thread_short_slice(TB_DRAIN_SLICE_US);
    while (!r->stopping) {
        n = epoll_wait(r->epoll_fd, evs, 2, r->drain_period_ms);
        if (n < 0 && errno != EINTR) {
            tb_err("bpf: drain thread epoll: %s", strerror(errno));
            break;
        }
        if (read(r->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            tb_warn("bpf: drain kick: %s", strerror(errno));
        err = ring_buffer__consume(r->rb);
        if (err < 0 && err != -EINTR)
            tb_warn("bpf: draining rings: %s", strerror(-err));
    }
    /* Whatever the programs wrote before stop was requested. */
    ring_buffer__consume(r->rb);
    return NULL;
}

int tb_bpf_rings_start(struct tb_bpf_rings *r, tb_bpf_record_fn fn, void *ctx)
{
    int err;

    if (r->running)
        return -EBUSY;
    r->fn = fn;
    r->ctx = ctx;
    r->stopping = false;
    err = -pthread_create(&r->thread, NULL, drain_main, r);
    if (err) {
        tb_err("bpf: starting the drain thread: %s", strerror(-err));
        return err;
    }
    r->running = true;
    return 0;
}

static void kick(struct tb_bpf_rings *r)
{
    uint64_t one = 1;

    if (write(r->kick_fd, &one, sizeof(one)) < 0)
        tb_warn("bpf: waking the drain thread: %s", strerror(errno));
}

void tb_bpf_rings_stop(struct tb_bpf_rings *r)
{
    if (!r || !r->running)
        return;
    r->stopping = true;
    kick(r);
    pthread_join(r->thread, NULL);
    r->running = false;
}

int tb_bpf_rings_consume(struct tb_bpf_rings *r, tb_bpf_record_fn fn, void *ctx)
{
    if (r->running) {
        kick(r);
        return 0;
    }
    r->fn = fn;
    r->ctx = ctx;
    return ring_buffer__consume(r->rb);
}

int tb_bpf_rings_loss_cpu(const struct tb_bpf_rings *r, unsigned int cpu, struct tb_bpf_loss *out)
{
    struct tb_bpf_stats *vals;
    __u32 key = 0;
    int err = 0;

    memset(out, 0, sizeof(*out));
    if (cpu >= r->nr_cpus)
        return -EINVAL;
    vals = calloc(r->nr_cpus, sizeof(*vals));
    if (!vals)
        return -ENOMEM;
    if (bpf_map_lookup_elem(r->stats_fd, &key, vals)) {
        err = -errno;
        goto out;
    }
    out->total = vals[cpu].total;
    out->dropped = vals[cpu].dropped;
out:
    free(vals);
    return err;
}

int tb_bpf_rings_loss(const struct tb_bpf_rings *r, struct tb_bpf_loss *out)
{
    struct tb_bpf_loss c;
    unsigned int cpu;
    int err;

    memset(out, 0, sizeof(*out));
    for (cpu = 0; cpu < r->nr_cpus; cpu++) {
        err = tb_bpf_rings_loss_cpu(r, cpu, &c);
        if (err)
            return err;
        out->total += c.total;
        out->dropped += c.dropped;
    }
    return 0;
}
