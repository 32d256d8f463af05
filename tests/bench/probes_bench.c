/*
 * probes_bench.c - what the kernel producer's scheduler path costs, on the
 * real kernel: a pipe ping-pong between two processes (the shape of
 * `perf bench sched pipe`) runs untraced, then while the BPF sched unit
 * records system-wide; the records are encoded both typed and compact.
 * Prints the slowdown, events/s, drops and trace bytes per sched event.
 *   tests/probes_bench [round_trips] [repeats]      (root)
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bpf/record.h"
#include "common/pb_writer.h"
#include "producers/ftrace/bpf_probes.h"
#include "producers/ftrace/bundle.h"

struct sink {
    struct tb_bundler *typed, *compact;
    unsigned int nr_cpus;
    uint64_t events, typed_bytes, compact_bytes;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void flush_cpu(struct sink *s, unsigned int cpu)
{
    struct tb_pbw w;

    if (tb_pbw_init_dyn(&w, 0) == 0) {
        tb_bundler_emit(s->typed, cpu, &w);
        s->typed_bytes += tb_pbw_size(&w);
        tb_pbw_dyn_free(&w);
    }
    if (tb_pbw_init_dyn(&w, 0) == 0) {
        tb_bundler_emit(s->compact, cpu, &w);
        s->compact_bytes += tb_pbw_size(&w);
        tb_pbw_dyn_free(&w);
    }
}

static int on_rec(void *ctx, const void *rec, size_t size)
{
    const struct tb_rec_hdr *h = rec;
    struct sink *s = ctx;

    s->events++;
    tb_bundler_add_bpf(s->typed, rec, size);
    tb_bundler_add_bpf(s->compact, rec, size);
    /* Bundles of ~1000 events, as a drain period would give. */
    if (tb_bundler_pending(s->compact, h->cpu) >= 1000)
        flush_cpu(s, h->cpu);
    return 0;
}

/* Two processes bouncing a byte over two pipes @n times; returns ns. */
static uint64_t pipe_workload(long n)
{
    int ab[2], ba[2];
    uint64_t t0;
    char c = 0;
    pid_t pid;

    if (pipe(ab) || pipe(ba))
        return 0;
    /* Pinned to one CPU like `perf bench sched pipe -T`-style runs. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof(one), &one);
    t0 = now_ns();
    pid = fork();
    if (pid == 0) {
        for (long i = 0; i < n; i++) {
            if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    for (long i = 0; i < n; i++) {
        if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
            break;
    }
    waitpid(pid, NULL, 0);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE && c < sysconf(_SC_NPROCESSORS_CONF); c++)
        CPU_SET(c, &one);
    sched_setaffinity(0, sizeof(one), &one);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    return now_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const char *const ev[] = {"sched/sched_switch", "sched/sched_waking",
                                     "sched/sched_wakeup_new", "sched/sched_process_fork",
                                     "sched/sched_process_exit"};
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    uint64_t *base = calloc(reps, 8), *traced = calloc(reps, 8), traced_total = 0;
    struct tb_bpf_probes_opts o = {.events = ev, .nr_events = 5};
    struct sink s = {.nr_cpus = sysconf(_SC_NPROCESSORS_CONF)};
    struct tb_bpf_loss loss = {0};
    struct tb_bpf_probes *p;

    if (geteuid()) {
        fprintf(stderr, "probes_bench: needs root\n");
        return 1;
    }
    if (tb_bundler_new(s.nr_cpus, false, &s.typed) || tb_bundler_new(s.nr_cpus, true, &s.compact))
        return 1;
    o.rings.drain_period_ms = 100;
    /* Interleaved: untraced, traced, untraced, traced, ... */
    for (int r = 0; r < reps; r++) {
        base[r] = pipe_workload(n);
        if (tb_bpf_probes_new(&o, &p) || tb_bpf_rings_start(tb_bpf_probes_rings(p), on_rec, &s))
            return 1;
        traced[r] = pipe_workload(n);
        traced_total += traced[r];
        tb_bpf_probes_stop(p);
        struct tb_bpf_loss l;
        tb_bpf_rings_loss(tb_bpf_probes_rings(p), &l);
        loss.total += l.total;
        loss.dropped += l.dropped;
        tb_bpf_probes_free(p);
    }
    for (unsigned int cpu = 0; cpu < s.nr_cpus; cpu++)
        flush_cpu(&s, cpu);
    qsort(base, reps, 8, cmp_u64);
    qsort(traced, reps, 8, cmp_u64);
    printf("pipe round trips per run: %ld, repeats: %d (interleaved)\n", n, reps);
    printf("untraced median: %.1f ms, traced median: %.1f ms, slowdown %.2fx\n",
           base[reps / 2] / 1e6, traced[reps / 2] / 1e6, (double)traced[reps / 2] / base[reps / 2]);
    printf("events delivered: %llu (%.0f/s while traced), in-kernel count %llu, dropped %llu\n",
           (unsigned long long)s.events, s.events / (traced_total / 1e9),
           (unsigned long long)loss.total, (unsigned long long)loss.dropped);
    printf("bytes/event: typed %.2f, compact sched %.2f\n",
           s.events ? (double)s.typed_bytes / s.events : 0,
           s.events ? (double)s.compact_bytes / s.events : 0);
    tb_bundler_free(s.typed);
    tb_bundler_free(s.compact);
    free(base);
    free(traced);
    return 0;
}
