/*
 * trace_tally.c - the packet tally shared by "tracebpf info" and the
 * end-of-recording summary, so both count sources and word losses the same
 * way. The callers add what only they show (time span, tasks, file size).
 */
#include "consumer/trace_tally.h"

#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"

#include <inttypes.h>
#include <string.h>

void tb_trace_tally_init(struct tb_trace_tally *t)
{
    memset(t, 0, sizeof(*t));
}

static void count_type(struct tb_trace_tally *t, unsigned int data_case)
{
    unsigned int i;

    for (i = 0; i < t->n_types; i++) {
        if (t->types[i][0] == data_case) {
            t->types[i][1]++;
            return;
        }
    }
    if (t->n_types < TB_TALLY_MAX_TYPES) {
        t->types[t->n_types][0] = data_case;
        t->types[t->n_types++][1] = 1;
    }
}

static void see_bundle(struct tb_trace_tally *t, const Perfetto__Protos__FtraceEventBundle *b)
{
    uint64_t n = b->n_event;

    if (b->compact_sched)
        n += b->compact_sched->n_switch_timestamp + b->compact_sched->n_waking_timestamp;
    t->ftrace_events += n;
    if (b->cpu >= TB_TALLY_MAX_CPUS)
        return;
    t->cpu_bundles[b->cpu]++;
    t->cpu_events[b->cpu] += n;
    if (b->lost_events)
        t->cpu_lost[b->cpu]++;
    if (b->cpu + 1 > t->max_cpu)
        t->max_cpu = b->cpu + 1;
}

void tb_trace_tally_packet(struct tb_trace_tally *t, Perfetto__Protos__TracePacket *p)
{
    t->packets++;
    if (p->previous_packet_dropped)
        t->dropped_marks++;
    if (p->data_case)
        count_type(t, p->data_case);
    else
        t->no_data++;
    switch (p->data_case) {
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS:
        see_bundle(t, p->ftrace_events);
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS:
        /* Only the last one counts: it covers the whole session. */
        if (t->stats)
            perfetto__protos__trace_stats__free_unpacked(t->stats, NULL);
        t->stats = p->trace_stats;
        p->trace_stats = NULL;
        p->data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA__NOT_SET;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS:
        if (t->fstats)
            perfetto__protos__ftrace_stats__free_unpacked(t->fstats, NULL);
        t->fstats = p->ftrace_stats;
        p->ftrace_stats = NULL;
        p->data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA__NOT_SET;
        break;
    default:
        break;
    }
}

uint64_t tb_trace_tally_count(const struct tb_trace_tally *t, unsigned int data_case)
{
    unsigned int i;

    for (i = 0; i < t->n_types; i++) {
        if (t->types[i][0] == data_case)
            return t->types[i][1];
    }
    return 0;
}

static unsigned int buffer_losses(const Perfetto__Protos__TraceStats *st, FILE *f)
{
    unsigned int lines = 0;
    size_t i;

    for (i = 0; i < st->n_buffer_stats; i++) {
        const Perfetto__Protos__TraceStats__BufferStats *b = st->buffer_stats[i];

        if (!b->chunks_overwritten && !b->chunks_discarded && !b->abi_violations &&
            !b->trace_writer_packet_loss && !b->patches_failed)
            continue;
        lines++;
        if (f)
            fprintf(f,
                    "  buffer %zu: %" PRIu64 " chunks overwritten, %" PRIu64
                    " chunks discarded, %" PRIu64 " packets lost by writers, %" PRIu64
                    " ABI violations, %" PRIu64 " patches failed\n",
                    i, b->chunks_overwritten, b->chunks_discarded, b->trace_writer_packet_loss,
                    b->abi_violations, b->patches_failed);
    }
    if (st->chunks_discarded || st->patches_discarded || st->invalid_packets ||
        st->flushes_failed) {
        lines++;
        if (f)
            fprintf(f,
                    "  service: %" PRIu64 " chunks discarded, %" PRIu64
                    " patches discarded, %" PRIu64 " invalid packets, %" PRIu64 " failed flushes\n",
                    st->chunks_discarded, st->patches_discarded, st->invalid_packets,
                    st->flushes_failed);
    }
    return lines;
}

unsigned int tb_trace_tally_losses(const struct tb_trace_tally *t, FILE *f)
{
    unsigned int lines = 0;
    size_t i;

    for (i = 0; i < t->max_cpu; i++) {
        if (!t->cpu_lost[i])
            continue;
        lines++;
        if (f)
            fprintf(f,
                    "  ftrace cpu %zu: %" PRIu64 " bundle(s) flagged lost_events (kernel or "
                    "BPF ring overflowed)\n",
                    i, t->cpu_lost[i]);
    }
    for (i = 0; t->fstats && i < t->fstats->n_cpu_stats; i++) {
        const Perfetto__Protos__FtraceCpuStats *c = t->fstats->cpu_stats[i];

        if (!c->overrun && !c->dropped_events && !c->commit_overrun)
            continue;
        lines++;
        if (f)
            fprintf(f,
                    "  ftrace cpu %" PRIu64 ": %" PRIu64 " events overrun, %" PRIu64
                    " dropped, %" PRIu64 " commit overruns (ftrace stats)\n",
                    c->cpu, c->overrun, c->dropped_events, c->commit_overrun);
    }
    if (t->stats)
        lines += buffer_losses(t->stats, f);
    if (t->dropped_marks) {
        lines++;
        if (f)
            fprintf(f,
                    "  %" PRIu64 " packet(s) marked previous_packet_dropped (gaps in a "
                    "writer's sequence)\n",
                    t->dropped_marks);
    }
    return lines;
}

void tb_trace_tally_clear(struct tb_trace_tally *t)
{
    if (!t)
        return;
    if (t->stats)
        perfetto__protos__trace_stats__free_unpacked(t->stats, NULL);
    if (t->fstats)
        perfetto__protos__ftrace_stats__free_unpacked(t->fstats, NULL);
    t->stats = NULL;
    t->fstats = NULL;
}
