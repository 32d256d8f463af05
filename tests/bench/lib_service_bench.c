/*
 * lib_service_bench.c - libtracebpf through the real service: starts the
 * build's traced-bpf (--no-probes, private sockets), records a track_event
 * session with the default shared memory (libtracebpf's 1 MiB unless -s), and emits
 * events spin-paced on CLOCK_BOOTTIME at a fixed total rate from 1, 2 and 4
 * threads. For each run it prints events emitted, events read back from
 * the trace, events the library dropped and packets the service marked
 * previous_packet_dropped, the achieved rate, and the enabled-path cost
 * (thread CPU ns per event, timed over the back-to-back bursts only).
 * Not run by ctest.
 *
 *   build/tests/lib_service_bench [-r events/s] [-d seconds] [-k instant|indexed|slice|counter]
 *                                 [-t threads,...] [-b burst] [-s shm_kb] [-c catchup_us]
 *
 * -k indexed: instants carrying their index; with one thread the trace is
 * decoded and the missing indices and loss marks are listed.
 * "commit ms": the longest a completed chunk waited for the library's IPC
 * thread to take it for a CommitData; a loss with a small value there was
 * the service's delay (or the emitter outran a drain that kept up).
 * "steal ms": time the hypervisor took our vCPUs away during the run
 * (/proc/stat, summed over CPUs); on a VM, a gap there stalls every drain
 * thread at once.
 * Defaults: -r 1000000 -d 2 -k instant -t 1,2,4 -b 64 -c 1000. A thread
 * kept off the CPU for longer than -c moves its schedule later rather than
 * emitting its backlog at full speed (-c 0: always catch up); "shift ms"
 * says by how much in total, and the achieved rate shows it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../integration/lib_rate_util.h"
#include "producers/userspace/producer.h"
#include "producers/userspace/te_decode.h"
#include "tracebpf/tracebpf.h"

static void usage(void)
{
    fprintf(
        stderr,
        "usage: lib_service_bench [-r events/s] [-d seconds] "
        "[-k instant|indexed|slice|counter] [-t 1,2,4] [-b burst] [-s shm_kb] [-c catchup_us]\n");
}

/*
 * -k indexed, one thread: which indices are missing from the trace, as runs
 * (a library drop loses a run of consecutive events; a lone index outside
 * them is a loss the library did not count), and where the loss marks sit.
 */
static void report_missing(const uint8_t *trace, size_t len, uint64_t emitted)
{
    struct tbl_decoded *d = NULL;
    uint8_t *seen = calloc(emitted, 1);
    uint64_t runs = 0, i, first;

    if (!seen || tbl_decode(trace, len, &d)) {
        fprintf(stderr, "lib_service_bench: cannot decode the trace\n");
        goto out;
    }
    for (size_t k = 0; k < d->nev; k++) {
        const struct tbl_devent *e = &d->ev[k];

        if (e->nannots == 1 && e->annots[0].v.u < emitted)
            seen[e->annots[0].v.u] = 1;
        if (e->dropped_before)
            printf("  loss mark 0x%x before index %llu\n", e->dropped_before,
                   e->nannots == 1 ? (unsigned long long)e->annots[0].v.u : 0ull);
    }
    for (i = 0; i < emitted; i++) {
        if (seen[i])
            continue;
        for (first = i; i + 1 < emitted && !seen[i + 1]; i++)
            ;
        if (++runs <= 40)
            printf("  missing indices %llu..%llu (%llu)\n", (unsigned long long)first,
                   (unsigned long long)i, (unsigned long long)(i - first + 1));
    }
    if (runs > 40)
        printf("  ... %llu runs of missing indices in all\n", (unsigned long long)runs);
out:
    tbl_decoded_free(d);
    free(seen);
}

/*
 * Time the hypervisor ran something else on our vCPUs (the "steal" column
 * of /proc/stat, all CPUs), in ms: a drain thread that was runnable but
 * whose vCPU was not running shows here, not in the scheduler's view.
 */
static uint64_t steal_ms(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    long hz = sysconf(_SC_CLK_TCK);

    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) != 8)
        v[7] = 0;
    fclose(f);
    return hz > 0 ? v[7] * 1000u / (uint64_t)hz : 0;
}

static int run_one(const struct lr_daemon *d, enum lr_kind kind, int threads, uint64_t rate,
                   double secs, unsigned burst, uint64_t catchup_ns)
{
    TRACEBPF_OPTS(tracebpf_stats, before);
    TRACEBPF_OPTS(tracebpf_stats, after);
    struct lr_emitter em[16];
    struct lr_count c;
    struct tb_cc *cc;
    uint8_t *trace = NULL;
    size_t trace_len = 0;
    uint64_t emitted = 0, cpu = 0, wall = 0, lag = 0, shifted = 0, dropped, commit_ns, steal;
    /* ~40 bytes a packet in the central buffer, with room to spare. */
    uint64_t need_kb = (uint64_t)((double)rate * secs * 64 / 1024) + 4096;
    int err;

    err = lr_session_start(d->td.csock, (uint32_t)need_kb, &cc);
    if (err) {
        fprintf(stderr, "lib_service_bench: session: %s\n", strerror(-err));
        return err;
    }
    tracebpf_get_stats(&before);
    tbl_producer_max_commit_delay_ns(true);
    steal = steal_ms();
    lr_run_emitters(em, threads, kind, rate, (uint64_t)(secs * 1e9), burst, catchup_ns);
    commit_ns = tbl_producer_max_commit_delay_ns(false);
    steal = steal_ms() - steal;
    tracebpf_get_stats(&after);
    err = lr_session_finish(cc, &c, kind == LR_INSTANT_INDEXED ? &trace : NULL, &trace_len);
    if (err) {
        fprintf(stderr, "lib_service_bench: read back: %s\n", strerror(-err));
        return err;
    }
    if (c.dropped_bits)
        fprintf(stderr, "lib_service_bench: previous_packet_dropped causes 0x%x\n", c.dropped_bits);
    if (c.has_stats)
        fprintf(stderr,
                "lib_service_bench: service: %llu chunks discarded, %llu overwritten, %llu "
                "patches failed, %llu discarded, %llu abi violations, %llu readaheads failed, "
                "%llu writer aborts\n",
                (unsigned long long)c.chunks_discarded, (unsigned long long)c.chunks_overwritten,
                (unsigned long long)c.patches_failed, (unsigned long long)c.patches_discarded,
                (unsigned long long)c.abi_violations, (unsigned long long)c.readaheads_failed,
                (unsigned long long)c.writer_packet_loss);
    for (int i = 0; i < threads; i++) {
        emitted += em[i].events;
        cpu += em[i].burst_cpu_ns;
        wall = em[i].wall_ns > wall ? em[i].wall_ns : wall;
        lag = em[i].max_lag_ns > lag ? em[i].max_lag_ns : lag;
        shifted = em[i].shifted_ns > shifted ? em[i].shifted_ns : shifted;
    }
    dropped = after.events_dropped - before.events_dropped;
    printf(
        "%7d %10llu %10.0f %10llu %10llu %10llu %8llu %6llu %8.1f %8.1f %9.2f %8llu %5.1f %9.2f\n",
        threads, (unsigned long long)emitted, (double)emitted * 1e9 / (double)wall,
        (unsigned long long)(after.events_written - before.events_written),
        (unsigned long long)c.track_events, (unsigned long long)(emitted - c.track_events),
        (unsigned long long)dropped, (unsigned long long)c.dropped_marks, (double)lag / 1e6,
        (double)shifted / 1e6, (double)commit_ns / 1e6, (unsigned long long)steal,
        c.packets ? (double)c.bytes / (double)c.packets : 0.0, (double)cpu / (double)emitted);
    if (trace && threads == 1)
        report_missing(trace, trace_len, emitted);
    free(trace);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *kinds[] = {"instant", "indexed instant", "slice", "counter"};
    uint64_t rate = 1000000;
    double secs = 2;
    enum lr_kind kind = LR_INSTANT;
    unsigned burst = 64, shm_kb = 0;
    uint64_t catchup_ns = 1000000;
    int threads[8] = {1, 2, 4}, nthreads = 3, opt, err = 0;
    char bin[4096], catchup_buf[32];
    struct lr_daemon d;

    while ((opt = getopt(argc, argv, "r:d:k:t:b:s:c:h")) != -1) {
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
                   : !strcmp(optarg, "indexed") ? LR_INSTANT_INDEXED
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
        case 'c':
            catchup_ns = strtoull(optarg, NULL, 10) * 1000;
            if (!catchup_ns)
                catchup_ns = UINT64_MAX;
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
    if (catchup_ns == UINT64_MAX)
        snprintf(catchup_buf, sizeof(catchup_buf), "none");
    else
        snprintf(catchup_buf, sizeof(catchup_buf), "%llu", (unsigned long long)(catchup_ns / 1000));
    printf("libtracebpf through traced-bpf: %s at %llu events/s in total for %.1f s, "
           "shm %u KiB, bursts of %u, catch-up limit %s us\n",
           kinds[kind], (unsigned long long)rate, secs, shm_kb ? shm_kb : 1024, burst, catchup_buf);
    printf("%7s %10s %10s %10s %10s %10s %8s %6s %8s %8s %9s %8s %5s %9s\n", "threads", "emitted",
           "achieved/s", "written", "in trace", "missing", "dropped", "marks", "lag ms", "shift ms",
           "commit ms", "steal ms", "B/pkt", "ns/event");
    for (int i = 0; i < nthreads && !err; i++)
        err = run_one(&d, kind, threads[i], rate, secs, burst, catchup_ns);
out:
    tracebpf_shutdown();
    lr_daemon_stop(&d);
    return err ? 1 : 0;
}
