/*
 * trace_tally.h - the per-packet tally both "tracebpf info" and the summary
 * "tracebpf record" prints share: packets per data type, ftrace events per
 * CPU, bundles flagged lost_events, previous_packet_dropped marks and the
 * last TraceStats/FtraceStats, plus the one way losses are worded.
 * Memory is fixed (per-CPU arrays), whatever the trace size.
 */
#ifndef TB_CONSUMER_TRACE_TALLY_H
#define TB_CONSUMER_TRACE_TALLY_H

#include "perfetto/trace/ftrace/ftrace_stats.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "perfetto/trace/trace_stats.pb-c.h"

#include <stdint.h>
#include <stdio.h>

#define TB_TALLY_MAX_TYPES 64
#define TB_TALLY_MAX_CPUS  4096

/*
 * struct tb_trace_tally - counts over the packets seen so far.
 * @types:       (data_case, packets) pairs in first-seen order.
 * @no_data:     packets with no payload.
 * @cpu_bundles: bundles per CPU (a CPU with a bundle "has kernel data").
 * @stats, @fstats: the last of each seen, owned by the tally.
 */
struct tb_trace_tally {
    uint64_t packets;
    uint64_t types[TB_TALLY_MAX_TYPES][2];
    unsigned int n_types;
    uint64_t no_data;
    uint64_t ftrace_events;
    uint64_t cpu_bundles[TB_TALLY_MAX_CPUS];
    uint64_t cpu_events[TB_TALLY_MAX_CPUS];
    uint64_t cpu_lost[TB_TALLY_MAX_CPUS];
    unsigned int max_cpu; /* one past the highest CPU with a bundle */
    uint64_t dropped_marks;
    Perfetto__Protos__TraceStats *stats;
    Perfetto__Protos__FtraceStats *fstats;
};

/* tb_trace_tally_init() - all zero; release with tb_trace_tally_clear(). */
void tb_trace_tally_init(struct tb_trace_tally *t);

/*
 * tb_trace_tally_packet() - count @p. A TraceStats or FtraceStats payload is
 * taken over by @t (detached from @p, whose data_case becomes NOT_SET), so
 * @p can be freed as usual.
 */
void tb_trace_tally_packet(struct tb_trace_tally *t, Perfetto__Protos__TracePacket *p);

/* tb_trace_tally_count() - packets seen whose payload is @data_case. */
uint64_t tb_trace_tally_count(const struct tb_trace_tally *t, unsigned int data_case);

/*
 * tb_trace_tally_losses() - write one line per loss the trace records
 * (indented by two spaces) to @f, or only count them when @f is NULL.
 * Return: the number of lines.
 */
unsigned int tb_trace_tally_losses(const struct tb_trace_tally *t, FILE *f);

/* tb_trace_tally_clear() - free the stats messages held. Accepts NULL. */
void tb_trace_tally_clear(struct tb_trace_tally *t);

#endif /* TB_CONSUMER_TRACE_TALLY_H */
