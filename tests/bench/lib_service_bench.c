/*
 * lib_service_bench.c - libtracebpf through the real service: starts the
 * build's traced-bpf (--no-probes, private sockets), records a track_event
 * session with the default shared memory (256 KiB unless -s), and emits
 * events spin-paced on CLOCK_BOOTTIME at a fixed total rate from 1, 2 and 4
 * threads. For each run it prints events emitted, events read back from
 * the trace, events the library dropped and packets the service marked
 * previous_packet_dropped, the achieved rate, and the enabled-path cost
 * (thread CPU ns per event, timed over the back-to-back bursts only).
 * Not run by ctest.
 *
 *   build/tests/lib_service_bench [-r events/s] [-d seconds] [-k instant|slice|counter]
 *                                 [-t threads,...] [-b burst] [-s shm_kb]
 *
 * Defaults: -r 1000000 -d 2 -k instant -t 1,2,4 -b 64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../integration/lib_rate_util.h"
#include "tracebpf/tracebpf.h"

static void usage(void)
{
    fprintf(stderr, "usage: lib_service_bench [-r events/s] [-d seconds] "
                    "[-k instant|slice|counter] [-t 1,2,4] [-b burst] [-s shm_kb]\n");
}

static int run_one(const struct lr_daemon *d, enum lr_kind kind, int threads, uint64_t rate,
                   double secs, unsigned burst)
{
    TRACEBPF_OPTS(tracebpf_stats, before);
    TRACEBPF_OPTS(tracebpf_stats, after);
    struct lr_emitter em[16];
    struct lr_count c;
    struct tb_cc *cc;
    uint64_t emitted = 0, cpu = 0, wall = 0, lag = 0, dropped;
    /* ~40 bytes a packet in the central buffer, with room to spare. */
    uint64_t need_kb = (uint64_t)((double)rate * secs * 64 / 1024) + 4096;
    int err;

    err = lr_session_start(d->csock, (uint32_t)need_kb, &cc);
    if (err) {
        fprintf(stderr, "lib_service_bench: session: %s\n", strerror(-err));
        return err;
    }
    tracebpf_get_stats(&before);
    lr_run_emitters(em, threads, kind, rate, (uint64_t)(secs * 1e9), burst);
    tracebpf_get_stats(&after);
    err = lr_session_finish(cc, &c, NULL, NULL);
    if (err) {
        fprintf(stderr, "lib_service_bench: read back: %s\n", strerror(-err));
        return err;
    }
    for (int i = 0; i < threads; i++) {
        emitted += em[i].events;
        cpu += em[i].burst_cpu_ns;
        wall = em[i].wall_ns > wall ? em[i].wall_ns : wall;
        lag = em[i].max_lag_ns > lag ? em[i].max_lag_ns : lag;
    }
    dropped = after.events_dropped - before.events_dropped;
    printf("%7d %10llu %10.0f %10llu %10llu %8llu %8llu %8.1f %9.2f\n", threads,
           (unsigned long long)emitted, (double)emitted * 1e9 / (double)wall,
           (unsigned long long)c.track_events, (unsigned long long)(emitted - c.track_events),
           (unsigned long long)dropped, (unsigned long long)c.dropped_marks, (double)lag / 1e3,
           (double)cpu / (double)emitted);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *kinds[] = {"instant", "instant", "slice", "counter"};
    uint64_t rate = 1000000;
    double secs = 2;
    enum lr_kind kind = LR_INSTANT;
    unsigned burst = 64, shm_kb = 0;
    int threads[8] = {1, 2, 4}, nthreads = 3, opt, err = 0;
    char bin[4096];
    struct lr_daemon d;

    while ((opt = getopt(argc, argv, "r:d:k:t:b:s:h")) != -1) {
        switch (opt) {
        case 'r':
            rate = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 'k':
            kind = !strcmp(optarg, "slice")     ? LR_SLICE
                   : !strcmp(optarg, "counter") ? LR_COUNTER
                                                : LR_INSTANT;
            break;
        case 't':
            nthreads = 0;
            for (char *s = strtok(optarg, ","); s && nthreads < 8; s = strtok(NULL, ","))
                threads[nthreads++] = atoi(s);
            break;
        case 'b':
            burst = (unsigned)atoi(optarg);
            break;
        case 's':
            shm_kb = (unsigned)atoi(optarg);
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!rate || secs <= 0) {
        usage();
        return 2;
    }
    lr_daemon_path(bin, sizeof(bin));
    err = lr_daemon_start(&d, bin);
    if (err) {
        fprintf(stderr, "lib_service_bench: cannot start %s: %s\n", bin, strerror(-err));
        lr_daemon_stop(&d);
        return 1;
    }
    {
        TRACEBPF_OPTS(tracebpf_init_opts, o, .shm_size_hint_kb = shm_kb);

        err = tracebpf_init(&o);
    }
    if (err || !lr_wait_lib(false, 5000)) {
        fprintf(stderr, "lib_service_bench: library did not connect\n");
        err = 1;
        goto out;
    }
    printf("libtracebpf through traced-bpf: %s at %llu events/s in total for %.1f s, "
           "shm %u KiB, bursts of %u\n",
           kinds[kind], (unsigned long long)rate, secs, shm_kb ? shm_kb : 256, burst);
    printf("%7s %10s %10s %10s %10s %8s %8s %8s %9s\n", "threads", "emitted", "achieved/s",
           "in trace", "missing", "dropped", "marks", "lag us", "ns/event");
    for (int i = 0; i < nthreads && !err; i++)
        err = run_one(&d, kind, threads[i], rate, secs, burst);
out:
    tracebpf_shutdown();
    lr_daemon_stop(&d);
    return err ? 1 : 0;
}
