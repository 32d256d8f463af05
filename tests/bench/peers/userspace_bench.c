/*
 * userspace_bench.c - tb_bench_user, the per-event cost of the userspace
 * peers of libtracebpf, measured the same way for each: THREADS threads
 * released together, each firing COUNT events back to back; the cost is the
 * CPU time (user + system) a thread spends per event, averaged over the
 * threads. CPU time rather than wall time because the machines this runs on
 * are busy: preemption by other work would otherwise count as event cost.
 *
 *   tb_bench_user clock  THREADS COUNT        clock_gettime(CLOCK_BOOTTIME)
 *   tb_bench_user marker THREADS COUNT PATH   write() of 16 bytes to PATH
 *                                             (an ftrace trace_marker)
 *   tb_bench_user lttng  THREADS COUNT        one LTTng-UST tracepoint (only
 *                                             when built with TB_BENCH_LTTNG)
 *
 * Prints one line: "MODE threads=N events=M ns_per_event=X errors=E".
 * Whether a tracer is enabled is the caller's business (tracing_on, an
 * LTTng session); this program only fires.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef TB_BENCH_LTTNG
#include "tb_lttng_tp.h"
#endif

#define MAX_THREADS 64

enum mode { MODE_CLOCK, MODE_MARKER, MODE_LTTNG };

struct shared {
    pthread_barrier_t start;
    enum mode mode;
    uint64_t count;
    int fd;
};

struct worker {
    pthread_t thread;
    struct shared *sh;
    uint64_t errors;
    uint64_t sink; /* keeps the clock reads alive */
    double elapsed_s;
};

static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Each thread times itself: the cost is what the caller of one event pays. */
static void *run(void *arg)
{
    static const char payload[16] = "tb-bench-marker\n";
    struct worker *w = arg;
    struct shared *sh = w->sh;
    struct timespec ts;
    double t0;

    pthread_barrier_wait(&sh->start);
    t0 = thread_cpu_s();
    for (uint64_t i = 0; i < sh->count; i++) {
        switch (sh->mode) {
        case MODE_CLOCK:
            clock_gettime(CLOCK_BOOTTIME, &ts);
            w->sink += (uint64_t)ts.tv_nsec;
            break;
        case MODE_MARKER:
            if (write(sh->fd, payload, sizeof(payload)) != (ssize_t)sizeof(payload))
                w->errors++;
            break;
        case MODE_LTTNG:
#ifdef TB_BENCH_LTTNG
            lttng_ust_tracepoint(tb_bench, event, i);
#endif
            break;
        }
    }
    w->elapsed_s = thread_cpu_s() - t0;
    return NULL;
}

static int parse_mode(const char *s, enum mode *m)
{
    if (!strcmp(s, "clock"))
        *m = MODE_CLOCK;
    else if (!strcmp(s, "marker"))
        *m = MODE_MARKER;
    else if (!strcmp(s, "lttng"))
        *m = MODE_LTTNG;
    else
        return -EINVAL;
#ifndef TB_BENCH_LTTNG
    if (*m == MODE_LTTNG)
        return -ENOTSUP;
#endif
    return 0;
}

int main(int argc, char **argv)
{
    struct worker workers[MAX_THREADS] = {0};
    struct shared sh = {.fd = -1};
    unsigned long threads;
    uint64_t errors = 0;
    int err = 0, ret = 1;
    unsigned long i;
    double busy_s = 0;

    if (argc < 4 || parse_mode(argv[1], &sh.mode)) {
        fprintf(stderr, "usage: tb_bench_user clock|marker PATH|lttng THREADS COUNT [PATH]\n");
        return 2;
    }
    threads = strtoul(argv[2], NULL, 0);
    sh.count = strtoull(argv[3], NULL, 0);
    if (threads < 1 || threads > MAX_THREADS || !sh.count) {
        fprintf(stderr, "tb_bench_user: THREADS must be 1..%d and COUNT > 0\n", MAX_THREADS);
        return 2;
    }
    if (sh.mode == MODE_MARKER) {
        if (argc < 5) {
            fprintf(stderr, "tb_bench_user: marker needs the trace_marker path\n");
            return 2;
        }
        sh.fd = open(argv[4], O_WRONLY | O_CLOEXEC);
        if (sh.fd < 0) {
            fprintf(stderr, "tb_bench_user: %s: %s\n", argv[4], strerror(errno));
            return 1;
        }
    }
    pthread_barrier_init(&sh.start, NULL, (unsigned int)threads + 1);
    for (i = 0; i < threads; i++) {
        workers[i].sh = &sh;
        err = pthread_create(&workers[i].thread, NULL, run, &workers[i]);
        if (err) {
            fprintf(stderr, "tb_bench_user: thread %lu: %s\n", i, strerror(err));
            /* Nothing started can pass the barrier now; exit tears down. */
            _exit(1);
        }
    }
    pthread_barrier_wait(&sh.start);
    for (i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        errors += workers[i].errors;
        busy_s += workers[i].elapsed_s;
    }
    printf("%s threads=%lu events=%llu ns_per_event=%.2f errors=%llu\n", argv[1], threads,
           (unsigned long long)(sh.count * threads), busy_s * 1e9 / (double)(sh.count * threads),
           (unsigned long long)errors);
    ret = errors ? 1 : 0;
    pthread_barrier_destroy(&sh.start);
    if (sh.fd >= 0)
        close(sh.fd);
    return ret;
}
