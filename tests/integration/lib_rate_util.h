/*
 * lib_rate_util.h - shared by lib_rate_test (integration) and
 * lib_service_bench (bench): a private traced-bpf daemon on temporary
 * sockets, a track_event session on it, paced emitter threads, and a
 * streaming count of what came back. Test support, not library API.
 */
#ifndef TB_TESTS_LIB_RATE_UTIL_H
#define TB_TESTS_LIB_RATE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon_util.h"

struct tb_cc;

/*
 * struct lr_daemon - a traced-bpf --no-probes child on sockets in a
 * private temporary directory, run through daemon_util.h (@td.csock is the
 * consumer socket). lr_daemon_start() exports both socket names
 * (PERFETTO_PRODUCER_SOCK_NAME / PERFETTO_CONSUMER_SOCK_NAME) so a later
 * tracebpf_init() finds it.
 */
struct lr_daemon {
    struct td_daemon td;
};

/*
 * lr_daemon_start() - td_start() of @bin on a "lib-rate" temp dir, with the
 * socket names exported: returns once the service answers.
 * @d: filled in; pass it to lr_daemon_stop() whatever this returns.
 * @bin: path of traced-bpf (borrowed).
 * Return: 0, or td_start()'s negative errno (-ECHILD: the daemon exited,
 * -ETIMEDOUT: it never answered).
 */
int lr_daemon_start(struct lr_daemon *d, const char *bin);
/*
 * lr_daemon_stop() - stop the daemon (SIGTERM, SIGKILL after a timeout) and
 * remove the directory: td_cleanup(). Safe after a failed start or twice.
 */
void lr_daemon_stop(struct lr_daemon *d);
/*
 * lr_daemon_path() - where the build put traced-bpf: $TB_TEST_BUILD_DIR
 * (td_build_path()), else two levels above this executable, plus
 * /service/traced-bpf, so the bench runs from any directory.
 */
void lr_daemon_path(char *out, size_t n);

/* lr_wait_lib() - poll tracebpf_get_stats() until connected (or recording
 * when @recording) for up to @ms. Return: true once it holds. */
bool lr_wait_lib(bool recording, int ms);

/*
 * lr_session_start() - connect to @csock and enable one session with a
 * track_event data source (all categories) into a ring buffer of
 * @buffer_kb, then wait until the library records.
 * @out: the consumer client, owned by the caller (lr_session_finish()).
 * Return: 0 or negative errno (-ETIMEDOUT if recording never started).
 */
int lr_session_start(const char *csock, uint32_t buffer_kb, struct tb_cc **out);

/* What came back: counted packet by packet, top-level fields only. */
struct lr_count {
    uint64_t packets;
    uint64_t bytes;         /* of all packets, without the Trace framing */
    uint64_t track_events;  /* packets with TracePacket.track_event (11) */
    uint64_t dropped_marks; /* packets with previous_packet_dropped (42) != 0 */
    uint32_t dropped_bits;  /* OR of those values (the causes, spec 5.2) */
    /*
     * From the last TraceStats packet (35), summed over buffers, plus the
     * service-wide chunks_discarded and patches_discarded: losses the
     * service saw that no packet may carry a mark for.
     */
    bool has_stats;
    uint64_t chunks_discarded, patches_failed, abi_violations, readaheads_failed;
    uint64_t chunks_overwritten, writer_packet_loss, patches_discarded;
};

/*
 * lr_session_finish() - flush the library, DisableTracing, wait for the
 * end, ReadBuffers; count into @c; frees @cc.
 * @keep, @keep_len: if @keep is not NULL, receive the whole trace as a
 *     Trace (0A len packet ...), malloc'ed, owned by the caller.
 * Return: 0 or negative errno.
 */
int lr_session_finish(struct tb_cc *cc, struct lr_count *c, uint8_t **keep, size_t *keep_len);

enum lr_kind { LR_INSTANT, LR_INSTANT_INDEXED, LR_SLICE, LR_COUNTER };

/*
 * struct lr_emitter - one emitting thread, spin-paced on CLOCK_BOOTTIME:
 * it waits until @burst more events are due at @rate per second, emits
 * them back to back, and times only those bursts (thread CPU time), so
 * @burst_cpu_ns / @events is the cost of the enabled path without the
 * pacing spin.
 * When the thread was kept off the CPU and is behind its schedule by more
 * than @max_catchup_ns (0 = 1 ms), it moves its schedule later instead of
 * emitting the backlog back to back: a paced source never exceeds its rate
 * over a window longer than that, so a descheduling cannot turn into a
 * burst far above the rate. The events are all emitted, later.
 * In: @kind, @rate (events/s), @duration_ns (sets the event count),
 * @burst, @max_catchup_ns, @start (a barrier every emitter and the caller
 * wait on, borrowed).
 * Out: @events (a slice counts 2), @burst_cpu_ns, @wall_ns (first to last
 * event), @max_lag_ns (worst time a burst was emitted after it was due),
 * @shifted_ns (total schedule moves).
 */
struct lr_emitter {
    enum lr_kind kind;
    uint64_t rate;
    uint64_t duration_ns;
    unsigned burst;
    uint64_t max_catchup_ns;
    void *start;
    uint64_t events;
    uint64_t burst_cpu_ns;
    uint64_t wall_ns;
    uint64_t max_lag_ns;
    uint64_t shifted_ns;
};

/* lr_emit_thread() - pthread body for one struct lr_emitter. */
void *lr_emit_thread(void *arg);

/*
 * lr_run_emitters() - run @n emitters (n <= 16) of @kind, together at
 * @total_rate events/s split evenly, for @duration_ns, with @burst and
 * @max_catchup_ns as in struct lr_emitter; fills @em[0..n).
 * Return: 0 or the pthread error (negative).
 */
int lr_run_emitters(struct lr_emitter *em, int n, enum lr_kind kind, uint64_t total_rate,
                    uint64_t duration_ns, unsigned burst, uint64_t max_catchup_ns);

#endif /* TB_TESTS_LIB_RATE_UTIL_H */
