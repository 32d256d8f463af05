/*
 * record_summary.c - the tally "tracebpf record" prints when it is done: one
 * streaming pass over the written file (so --long traces of any size are
 * fine), per-source counts, and every loss the trace records. "tracebpf info"
 * gives the fuller picture of a file; this is the short after-recording view.
 */
#include "consumer/record_summary.h"

#include "consumer/trace_reader.h"
#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_stats.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "perfetto/trace/trace_stats.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CPUS 1024

struct tb_record_summary {
    uint64_t packets;
    uint64_t ftrace_events, cpu_events[MAX_CPUS], cpu_lost[MAX_CPUS];
    unsigned int max_cpu;
    uint64_t track_events, track_descriptors, process_trees;
    uint64_t system_info, clock_snapshots, dropped_marks, other;
    Perfetto__Protos__TraceStats *stats;   /* last one seen, owned */
    Perfetto__Protos__FtraceStats *fstats; /* last one seen, owned */
};

static void see_bundle(struct tb_record_summary *s, const Perfetto__Protos__FtraceEventBundle *b)
{
    uint64_t n = b->n_event;

    if (b->compact_sched)
        n += b->compact_sched->n_switch_timestamp + b->compact_sched->n_waking_timestamp;
    s->ftrace_events += n;
    if (b->cpu < MAX_CPUS) {
        s->cpu_events[b->cpu] += n;
        if (b->lost_events)
            s->cpu_lost[b->cpu]++;
        if (b->cpu + 1 > s->max_cpu)
            s->max_cpu = b->cpu + 1;
    }
}

/* Return: true when the packet's stats message was taken over by @s. */
static bool see_packet(struct tb_record_summary *s, Perfetto__Protos__TracePacket *p)
{
    if (p->previous_packet_dropped)
        s->dropped_marks++;
    switch (p->data_case) {
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS:
        see_bundle(s, p->ftrace_events);
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT:
        s->track_events++;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR:
        s->track_descriptors++;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE:
        s->process_trees++;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO:
        s->system_info++;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT:
        s->clock_snapshots++;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS:
        if (s->stats)
            perfetto__protos__trace_stats__free_unpacked(s->stats, NULL);
        s->stats = p->trace_stats;
        p->trace_stats = NULL;
        p->data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA__NOT_SET;
        return true;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS:
        if (s->fstats)
            perfetto__protos__ftrace_stats__free_unpacked(s->fstats, NULL);
        s->fstats = p->ftrace_stats;
        p->ftrace_stats = NULL;
        p->data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA__NOT_SET;
        return true;
    default:
        s->other++;
        break;
    }
    return false;
}

int tb_record_summary_scan(const char *path, struct tb_record_summary **out)
{
    struct tb_trace_reader *r = NULL;
    struct tb_record_summary *s;
    const uint8_t *data;
    size_t len;
    int ret;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    ret = tb_trace_reader_open(path, &r);
    if (ret)
        goto out;
    while ((ret = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        if (!p) {
            ret = -EBADMSG;
            break;
        }
        s->packets++;
        see_packet(s, p);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
out:
    tb_trace_reader_free(r);
    *out = s;
    return ret < 0 ? ret : 0;
}

static unsigned int losses(const struct tb_record_summary *s, FILE *f)
{
    unsigned int lines = 0;
    size_t i;

#define LOSS(...)                    \
    do {                             \
        if (f)                       \
            fprintf(f, __VA_ARGS__); \
        lines++;                     \
    } while (0)
    for (i = 0; i < s->max_cpu; i++) {
        if (s->cpu_lost[i])
            LOSS("  ftrace cpu %zu: %" PRIu64 " bundle(s) flagged lost_events (kernel or BPF "
                 "ring overflowed)\n",
                 i, s->cpu_lost[i]);
    }
    for (i = 0; s->fstats && i < s->fstats->n_cpu_stats; i++) {
        const Perfetto__Protos__FtraceCpuStats *c = s->fstats->cpu_stats[i];

        if (c->overrun || c->dropped_events || c->commit_overrun)
            LOSS("  ftrace cpu %" PRIu64 ": %" PRIu64 " events overrun, %" PRIu64
                 " events dropped, %" PRIu64 " commit overruns (ftrace_stats)\n",
                 c->cpu, c->overrun, c->dropped_events, c->commit_overrun);
    }
    for (i = 0; s->stats && i < s->stats->n_buffer_stats; i++) {
        const Perfetto__Protos__TraceStats__BufferStats *b = s->stats->buffer_stats[i];

        if (b->chunks_overwritten)
            LOSS("  buffer %zu: %" PRIu64 " chunks overwritten (%" PRIu64
                 " bytes; ring wrapped, oldest data gone)\n",
                 i, b->chunks_overwritten, b->bytes_overwritten);
        if (b->chunks_discarded)
            LOSS("  buffer %zu: %" PRIu64 " chunks discarded (buffer full)\n", i,
                 b->chunks_discarded);
        if (b->patches_failed)
            LOSS("  buffer %zu: %" PRIu64 " patches failed\n", i, b->patches_failed);
        if (b->abi_violations)
            LOSS("  buffer %zu: %" PRIu64 " ABI violations (chunks refused)\n", i,
                 b->abi_violations);
        if (b->trace_writer_packet_loss)
            LOSS("  buffer %zu: %" PRIu64 " packets lost by trace writers "
                 "(trace_writer_packet_loss)\n",
                 i, b->trace_writer_packet_loss);
    }
    if (s->stats && s->stats->chunks_discarded)
        LOSS("  service: %" PRIu64 " chunks discarded\n", s->stats->chunks_discarded);
    if (s->stats && s->stats->patches_discarded)
        LOSS("  service: %" PRIu64 " patches discarded\n", s->stats->patches_discarded);
    if (s->stats && s->stats->invalid_packets)
        LOSS("  service: %" PRIu64 " invalid packets\n", s->stats->invalid_packets);
    if (s->stats && s->stats->flushes_failed)
        LOSS("  service: %" PRIu64 " flushes failed (a producer did not answer in time)\n",
             s->stats->flushes_failed);
    if (s->dropped_marks)
        LOSS("  writers: %" PRIu64 " packet(s) marked previous_packet_dropped\n", s->dropped_marks);
#undef LOSS
    return lines;
}

void tb_record_summary_print(const struct tb_record_summary *s, FILE *f)
{
    unsigned int i, n_cpus = 0;
    bool first = true;
    size_t j;

    fprintf(f, "packets:     %" PRIu64 "\n", s->packets);
    for (i = 0; i < s->max_cpu; i++)
        n_cpus += s->cpu_events[i] ? 1 : 0;
    fprintf(f, "ftrace:      %" PRIu64 " events on %u cpu(s)", s->ftrace_events, n_cpus);
    for (i = 0; i < s->max_cpu; i++) {
        if (s->cpu_events[i]) {
            fprintf(f, "%s%u:%" PRIu64, first ? " [cpu " : " ", i, s->cpu_events[i]);
            first = false;
        }
    }
    fprintf(f, "%s\n", n_cpus ? "]" : "");
    fprintf(f, "track event: %" PRIu64 " events, %" PRIu64 " track descriptors\n", s->track_events,
            s->track_descriptors);
    fprintf(f, "processes:   %" PRIu64 " process tree packet(s)\n", s->process_trees);
    fprintf(f, "system info: %" PRIu64 ", clock snapshots: %" PRIu64 ", other: %" PRIu64 "\n",
            s->system_info, s->clock_snapshots, s->other);
    if (s->fstats) {
        for (j = 0; j < s->fstats->n_unknown_ftrace_events; j++)
            fprintf(f, "not recorded: %s: the kernel has no such event\n",
                    s->fstats->unknown_ftrace_events[j]);
        for (j = 0; j < s->fstats->n_failed_ftrace_events; j++)
            fprintf(f, "not recorded: %s: could not be enabled\n",
                    s->fstats->failed_ftrace_events[j]);
    }
    if (losses(s, NULL)) {
        fprintf(f, "losses:\n");
        losses(s, f);
    } else if (s->stats) {
        fprintf(f, "no data lost\n");
    } else {
        fprintf(f, "losses: unknown (the trace holds no trace stats)\n");
    }
}

unsigned int tb_record_summary_losses(const struct tb_record_summary *s)
{
    return losses(s, NULL);
}

uint64_t tb_record_summary_packets(const struct tb_record_summary *s)
{
    return s->packets;
}

void tb_record_summary_free(struct tb_record_summary *s)
{
    if (!s)
        return;
    if (s->stats)
        perfetto__protos__trace_stats__free_unpacked(s->stats, NULL);
    if (s->fstats)
        perfetto__protos__ftrace_stats__free_unpacked(s->fstats, NULL);
    free(s);
}
