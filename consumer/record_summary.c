/*
 * record_summary.c - the tally "tracebpf record" prints when it is done: one
 * streaming pass over the written file (so --long traces of any size are
 * fine), per-source counts, and every loss the trace records. "tracebpf info"
 * gives the fuller picture of a file; this is the short after-recording view.
 */
#include "consumer/record_summary.h"

#include "consumer/trace_reader.h"
#include "consumer/trace_tally.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

struct tb_record_summary {
    struct tb_trace_tally t;
};

int tb_record_summary_scan(const char *path, struct tb_record_summary **out)
{
    struct tb_trace_reader *r = NULL;
    struct tb_record_summary *s;
    const uint8_t *data;
    size_t len;
    int ret;

    *out = NULL;
    s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    tb_trace_tally_init(&s->t);
    ret = tb_trace_reader_open(path, &r);
    if (ret)
        goto out;
    while ((ret = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        if (!p) {
            ret = -EBADMSG;
            break;
        }
        tb_trace_tally_packet(&s->t, p);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
out:
    tb_trace_reader_free(r);
    *out = s;
    return ret < 0 ? ret : 0;
}

/* Packets of the types the summary does not name on a line of their own. */
static uint64_t other_packets(const struct tb_trace_tally *t)
{
    static const unsigned int named[] = {
        PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS,
        PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS,
    };
    uint64_t n = t->packets;
    size_t i;

    for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        n -= tb_trace_tally_count(t, named[i]);
    return n;
}

void tb_record_summary_print(const struct tb_record_summary *s, FILE *f)
{
    const struct tb_trace_tally *t = &s->t;
    unsigned int i, n_cpus = 0;
    bool first = true;
    size_t j;

    fprintf(f, "packets:     %" PRIu64 "\n", t->packets);
    for (i = 0; i < t->max_cpu; i++)
        n_cpus += t->cpu_events[i] ? 1 : 0;
    fprintf(f, "ftrace:      %" PRIu64 " events on %u cpu(s)", t->ftrace_events, n_cpus);
    for (i = 0; i < t->max_cpu; i++) {
        if (t->cpu_events[i]) {
            fprintf(f, "%s%u:%" PRIu64, first ? " [cpu " : " ", i, t->cpu_events[i]);
            first = false;
        }
    }
    fprintf(f, "%s\n", n_cpus ? "]" : "");
    fprintf(f, "track event: %" PRIu64 " events, %" PRIu64 " track descriptors\n",
            tb_trace_tally_count(t, PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT),
            tb_trace_tally_count(t, PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR));
    fprintf(f, "processes:   %" PRIu64 " process tree packet(s)\n",
            tb_trace_tally_count(t, PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE));
    fprintf(f, "system info: %" PRIu64 ", clock snapshots: %" PRIu64 ", other: %" PRIu64 "\n",
            tb_trace_tally_count(t, PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO),
            tb_trace_tally_count(t, PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT),
            other_packets(t));
    if (t->fstats) {
        for (j = 0; j < t->fstats->n_unknown_ftrace_events; j++)
            fprintf(f, "not recorded: %s: the kernel has no such event\n",
                    t->fstats->unknown_ftrace_events[j]);
        for (j = 0; j < t->fstats->n_failed_ftrace_events; j++)
            fprintf(f, "not recorded: %s: could not be enabled\n",
                    t->fstats->failed_ftrace_events[j]);
    }
    if (tb_trace_tally_losses(t, NULL)) {
        fprintf(f, "losses:\n");
        tb_trace_tally_losses(t, f);
    } else if (t->stats) {
        fprintf(f, "no data lost\n");
    } else {
        fprintf(f, "losses: unknown (the trace holds no trace stats)\n");
    }
}

unsigned int tb_record_summary_losses(const struct tb_record_summary *s)
{
    return tb_trace_tally_losses(&s->t, NULL);
}

uint64_t tb_record_summary_packets(const struct tb_record_summary *s)
{
    return s->t.packets;
}

void tb_record_summary_free(struct tb_record_summary *s)
{
    if (!s)
        return;
    tb_trace_tally_clear(&s->t);
    free(s);
}
