/*
 * lib_bench.c - what a libtracebpf event costs: ns per slice (begin+end;
 * plain, and with an int and a string annotation),
 * instant and counter on 1, 2 and 4 threads, with the category enabled and
 * disabled, next to a bare clock_gettime(CLOCK_BOOTTIME) and a write() to
 * ftrace's trace_marker measured in the same run. Not run by ctest.
 *
 *   build/tests/lib_bench [iterations-per-thread]      (default 200000)
 *   valgrind --tool=callgrind --toggle-collect='cg_*' lib_bench -c 100000
 *
 * -c N runs each operation N times on the main thread only, in the
 * functions cg_slice/cg_slice_args/cg_instant/cg_counter/cg_clock, so callgrind's
 * instruction count of each divided by N is a repeatable cost per event
 * on a machine too busy for ns figures (under valgrind the clock read is
 * a syscall: subtract cg_clock per clock read, two per slice).
 *
 * Enabled events go to the standalone recorder (a private pool large
 * enough that nothing is dropped; its file goes to /dev/null), which runs
 * the same encoder and TraceWriter as the system backend; only the chunk
 * hand-over differs (an atomic add here, a CAS on the SMB page there).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tracebpf/tracebpf.h"

TRACEBPF_DEFINE_CATEGORY(on, "bench", "enabled", NULL);
TRACEBPF_DEFINE_CATEGORY(off, "bench.off", "disabled", NULL);

enum op { OP_SLICE, OP_SLICE_ARGS, OP_INSTANT, OP_COUNTER, OP_CLOCK, OP_MARKER, OP_N };
static const char *op_name[] = {
    "slice begin+end", "slice begin+end, 2 args", "instant",
    "counter",         "clock_gettime(BOOTTIME)", "write(trace_marker)"};

struct job {
    enum op op;
    bool enabled;
    unsigned iters;
    int marker_fd;
    pthread_barrier_t *bar;
    uint64_t ns;
};

/* Thread CPU time: on a shared 2-core VM, wall time mostly measures how
 * long other processes held the CPU. */
static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
    struct job *j = arg;
    struct timespec ts;
    uint64_t t0;
    unsigned n = j->iters;

    pthread_barrier_wait(j->bar);
    t0 = now_ns();
    switch (j->op) {
    case OP_SLICE:
        if (j->enabled)
            for (unsigned i = 0; i < n; i++) {
                TRACE_EVENT(on, "slice");
            }
        else
            for (unsigned i = 0; i < n; i++) {
                TRACE_EVENT(off, "slice");
            }
        break;
    case OP_SLICE_ARGS:
        if (j->enabled)
            for (unsigned i = 0; i < n; i++) {
                TRACE_EVENT(on, "slice", TRACEBPF_ARG("i", i), TRACEBPF_ARG("what", "bench"));
            }
        else
            for (unsigned i = 0; i < n; i++) {
                TRACE_EVENT(off, "slice", TRACEBPF_ARG("i", i), TRACEBPF_ARG("what", "bench"));
            }
        break;
    case OP_INSTANT:
        if (j->enabled)
            for (unsigned i = 0; i < n; i++)
                TRACE_EVENT_INSTANT(on, "instant");
        else
            for (unsigned i = 0; i < n; i++)
                TRACE_EVENT_INSTANT(off, "instant");
        break;
    case OP_COUNTER:
        if (j->enabled)
            for (unsigned i = 0; i < n; i++)
                TRACE_COUNTER(on, "counter", (int64_t)i);
        else
            for (unsigned i = 0; i < n; i++)
                TRACE_COUNTER(off, "counter", (int64_t)i);
        break;
    case OP_CLOCK:
        for (unsigned i = 0; i < n; i++)
            clock_gettime(CLOCK_BOOTTIME, &ts);
        break;
    case OP_MARKER:
        for (unsigned i = 0; i < n; i++)
            if (write(j->marker_fd, "bench marker\n", 13) < 0) {
                perror("lib_bench: write trace_marker");
                break;
            }
        break;
    default:
        break;
    }
    j->ns = now_ns() - t0;
    return NULL;
}

/* One warm-up event first: the sequence start and interning are one-off. */
__attribute__((noinline)) static void cg_slice(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        TRACE_EVENT(on, "slice");
    }
}

__attribute__((noinline)) static void cg_slice_args(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        TRACE_EVENT(on, "slice", TRACEBPF_ARG("i", i), TRACEBPF_ARG("what", "bench"));
    }
}

__attribute__((noinline)) static void cg_instant(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        TRACE_EVENT_INSTANT(on, "instant");
}

__attribute__((noinline)) static void cg_counter(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        TRACE_COUNTER(on, "counter", (int64_t)i);
}

__attribute__((noinline)) static void cg_clock(unsigned n)
{
    struct timespec ts;

    for (unsigned i = 0; i < n; i++)
        clock_gettime(CLOCK_BOOTTIME, &ts);
}

static int run_callgrind(unsigned n)
{
    TRACEBPF_OPTS(tracebpf_init_opts, o, .output = "/dev/null", .categories = "-bench.off",
                  .buffer_size_kb = 256u * 1024);

    if (tracebpf_init(&o)) {
        fprintf(stderr, "lib_bench: tracebpf_init failed\n");
        return 1;
    }
    cg_slice(1);
    cg_slice_args(1);
    cg_instant(1);
    cg_counter(1);
    cg_slice(n);
    cg_slice_args(n);
    cg_instant(n);
    cg_counter(n);
    cg_clock(n);
    printf("ran %u of each: divide callgrind's cg_* inclusive counts by %u\n", n, n);
    return 0;
}

/* Mean ns per operation per thread with @threads threads. */
static double measure(enum op op, bool enabled, int threads, unsigned iters, int marker_fd)
{
    pthread_barrier_t bar;
    pthread_t th[4];
    struct job jobs[4];
    double sum = 0;

    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){op, enabled, iters, marker_fd, &bar, 0};
        pthread_create(&th[i], NULL, run, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        sum += (double)jobs[i].ns / iters;
    }
    pthread_barrier_destroy(&bar);
    return sum / threads;
}

int main(int argc, char **argv)
{
    unsigned iters;
    static const int nthreads[] = {1, 2, 4};
    TRACEBPF_OPTS(tracebpf_init_opts, o, .output = "/dev/null", .categories = "-bench.off",
                  .buffer_size_kb = 2u * 1024 * 1024);
    TRACEBPF_OPTS(tracebpf_stats, st);
    char inst[128], marker[192];
    int marker_fd;

    if (argc > 2 && !strcmp(argv[1], "-c"))
        return run_callgrind((unsigned)strtoul(argv[2], NULL, 10));
    iters = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200000;
    /* A private ftrace instance: its own tracing_on and buffer, so the
     * marker writes really record and nobody else's tracing is touched. */
    snprintf(inst, sizeof(inst), "/sys/kernel/tracing/instances/lib_bench_%d", getpid());
    snprintf(marker, sizeof(marker), "%s/trace_marker", inst);
    marker_fd = mkdir(inst, 0700) ? -1 : open(marker, O_WRONLY | O_CLOEXEC);

    if (tracebpf_init(&o)) {
        fprintf(stderr, "lib_bench: tracebpf_init failed\n");
        return 1;
    }
    printf("libtracebpf benchmark: %u iterations per thread, thread CPU ns per operation\n", iters);
    printf("%-26s %-9s %10s %10s %10s\n", "operation", "category", "1 thread", "2 threads",
           "4 threads");
    for (int op = 0; op < OP_N; op++) {
        for (int en = 1; en >= 0; en--) {
            if (op >= OP_CLOCK && !en)
                continue;
            if (op == OP_MARKER && marker_fd < 0) {
                printf("%-26s %-9s %10s\n", op_name[op], "-", "n/a (no tracefs)");
                continue;
            }
            printf("%-26s %-9s", op_name[op], op >= OP_CLOCK ? "-" : en ? "enabled" : "disabled");
            for (int t = 0; t < 3; t++)
                printf(" %10.2f", measure(op, en, nthreads[t], iters, marker_fd));
            printf("\n");
        }
    }
    tracebpf_get_stats(&st);
    printf("events written %llu, dropped %llu\n", (unsigned long long)st.events_written,
           (unsigned long long)st.events_dropped);
    if (marker_fd >= 0)
        close(marker_fd);
    rmdir(inst);
    return 0;
}
