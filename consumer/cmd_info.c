/*
 * cmd_info.c - "tracebpf info FILE": one streaming pass over a trace that
 * says what it holds: time span, packets per data type, writer sequences,
 * CPUs, processes and threads, and every loss the trace records (trace
 * stats, ftrace stats, bundles with lost events, dropped-packet marks).
 */
#include "consumer/cli.h"
#include "consumer/idmap.h"
#include "consumer/trace_reader.h"
#include "consumer/trace_seq.h"
#include "consumer/trace_tally.h"
#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/ftrace/sched.pb-c.h"
#include "perfetto/trace/ps/process_tree.pb-c.h"
#include "perfetto/trace/system_info.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "perfetto/trace/track_event/process_descriptor.pb-c.h"
#include "perfetto/trace/track_event/thread_descriptor.pb-c.h"
#include "perfetto/trace/track_event/track_descriptor.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What info shows beyond the shared tally: time, tasks, sequences, system. */
struct info {
    struct tb_trace_tally tally;
    uint64_t first_ts, last_ts;
    struct tb_idmap seqs, pids, tids; /* sets: value is a dummy non-NULL */
    char system[256];
    struct tb_seqs seq_state;
};

static void see_ts(struct info *in, uint64_t ts)
{
    if (!ts)
        return;
    if (!in->first_ts || ts < in->first_ts)
        in->first_ts = ts;
    if (ts > in->last_ts)
        in->last_ts = ts;
}

static void add_set(struct tb_idmap *m, uint64_t key)
{
    tb_idmap_put(m, key, (void *)1);
}

static void see_bundle(struct info *in, const Perfetto__Protos__FtraceEventBundle *b)
{
    uint64_t ts = 0;
    size_t i;

    for (i = 0; i < b->n_event; i++) {
        const Perfetto__Protos__FtraceEvent *e = b->event[i];

        see_ts(in, e->timestamp);
        if (e->pid)
            add_set(&in->tids, e->pid);
        if (e->event_case == PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH &&
            e->sched_switch->next_pid)
            add_set(&in->tids, (uint64_t)e->sched_switch->next_pid);
    }
    if (b->compact_sched) {
        const Perfetto__Protos__FtraceEventBundle__CompactSched *c = b->compact_sched;

        for (i = 0; i < c->n_switch_timestamp; i++) {
            ts += c->switch_timestamp[i];
            see_ts(in, ts);
            if (i < c->n_switch_next_pid && c->switch_next_pid[i])
                add_set(&in->tids, (uint64_t)c->switch_next_pid[i]);
        }
        for (i = 0, ts = 0; i < c->n_waking_timestamp; i++) {
            ts += c->waking_timestamp[i];
            see_ts(in, ts);
        }
    }
}

static void see_packet(struct info *in, Perfetto__Protos__TracePacket *p)
{
    const Perfetto__Protos__TrackDescriptor *td;
    uint64_t ts;
    size_t i;

    if (tb_seqs_packet(&in->seq_state, p, &ts) == 1 &&
        p->data_case != PERFETTO__PROTOS__TRACE_PACKET__DATA_SYNCHRONIZATION_MARKER)
        see_ts(in, ts);
    if (p->optional_trusted_packet_sequence_id_case)
        add_set(&in->seqs, p->trusted_packet_sequence_id);
    switch (p->data_case) {
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS:
        see_bundle(in, p->ftrace_events);
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE:
        for (i = 0; i < p->process_tree->n_processes; i++)
            add_set(&in->pids, (uint64_t)p->process_tree->processes[i]->pid);
        for (i = 0; i < p->process_tree->n_threads; i++)
            add_set(&in->tids, (uint64_t)p->process_tree->threads[i]->tid);
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR:
        td = p->track_descriptor;
        if (td->process && td->process->has_pid)
            add_set(&in->pids, (uint64_t)td->process->pid);
        if (td->thread && td->thread->has_tid)
            add_set(&in->tids, (uint64_t)td->thread->tid);
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO:
        if (p->system_info->utsname)
            snprintf(
                in->system, sizeof(in->system), "%s %s %s", p->system_info->utsname->sysname ?: "?",
                p->system_info->utsname->release ?: "?", p->system_info->utsname->machine ?: "?");
        break;
    default:
        break;
    }
    /* Last: the tally takes the stats messages out of @p. */
    tb_trace_tally_packet(&in->tally, p);
}

static void print_losses(const struct info *in)
{
    printf("losses:\n");
    if (!tb_trace_tally_losses(&in->tally, stdout))
        printf("  none recorded%s\n", in->tally.stats ? "" : " (no trace stats in this file)");
}

static void print_info(struct info *in, const char *path, struct tb_trace_reader *r)
{
    uint64_t packets, compressed, bytes;
    const struct tb_trace_tally *t = &in->tally;
    unsigned int i, n_cpus = 0;
    char hb[32];

    tb_trace_reader_stats(r, &packets, &compressed, &bytes);
    printf("file:       %s (%s, %" PRIu64 " packets%s)\n", path,
           tb_cli_human_bytes(bytes, hb, sizeof(hb)), packets,
           compressed ? ", some compressed" : "");
    if (in->last_ts)
        printf("time span:  %.6f s (boot time %.6f .. %.6f s)\n",
               (double)(in->last_ts - in->first_ts) / 1e9, (double)in->first_ts / 1e9,
               (double)in->last_ts / 1e9);
    else
        printf("time span:  no timestamped data\n");
    if (in->system[0])
        printf("system:     %s\n", in->system);
    printf("packets by type:\n");
    for (i = 0; i < t->n_types; i++) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
            &perfetto__protos__trace_packet__descriptor, (unsigned)t->types[i][0]);

        printf("  %-24s %" PRIu64 "\n", f ? f->name : "?", t->types[i][1]);
    }
    if (t->no_data)
        printf("  %-24s %" PRIu64 "\n", "(no payload)", t->no_data);
    printf("ftrace events: %" PRIu64 "\n", t->ftrace_events);
    printf("sequences:  %zu writer sequence(s)\n", in->seqs.len);
    printf("cpus:       ");
    for (i = 0; i < t->max_cpu; i++) {
        if (t->cpu_bundles[i]) {
            printf("%s%u", n_cpus ? "," : "", i);
            n_cpus++;
        }
    }
    printf(n_cpus ? " (%u with kernel data)\n" : "none with kernel data\n", n_cpus);
    printf("processes:  %zu, threads: %zu\n", in->pids.len, in->tids.len);
    print_losses(in);
}

static int run_info(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    struct tb_trace_reader *r = NULL;
    struct info *in;
    const uint8_t *data;
    size_t len;
    int opt, ret;

    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return tb_cli_getopt_error("info", opt, argv);
    if (optind != argc - 1)
        return tb_cli_usage_error("info", "expects exactly one trace file");
    if (tb_trace_reader_open(argv[optind], &r))
        return TB_CLI_EXIT_FAIL;
    in = calloc(1, sizeof(*in));
    if (!in) {
        tb_trace_reader_free(r);
        return TB_CLI_EXIT_FAIL;
    }
    tb_trace_tally_init(&in->tally);
    tb_idmap_init(&in->seqs, NULL);
    tb_idmap_init(&in->pids, NULL);
    tb_idmap_init(&in->tids, NULL);
    tb_seqs_init(&in->seq_state);
    while ((ret = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        if (!p) {
            ret = -EBADMSG;
            fprintf(stderr, "tracebpf info: %s: a packet does not decode as TracePacket\n",
                    argv[optind]);
            break;
        }
        see_packet(in, p);
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
    print_info(in, argv[optind], r);
    if (ret < 0 && tb_trace_reader_error(r)[0])
        fprintf(stderr, "tracebpf info: %s: %s (the summary above covers what came before)\n",
                argv[optind], tb_trace_reader_error(r));
    else if (ret < 0 && ret != -EBADMSG)
        fprintf(stderr, "tracebpf info: %s: %s\n", argv[optind], strerror(-ret));
    tb_trace_tally_clear(&in->tally);
    tb_idmap_clear(&in->seqs);
    tb_idmap_clear(&in->pids);
    tb_idmap_clear(&in->tids);
    tb_seqs_free(&in->seq_state);
    free(in);
    tb_trace_reader_free(r);
    return ret < 0 ? TB_CLI_EXIT_FAIL : TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_info = {
    .name = "info",
    .summary = "what a trace holds: time span, sources, CPUs, processes, losses",
    .help = "usage: tracebpf info FILE\n"
            "\n"
            "Reads FILE once, packet by packet (memory stays small whatever its size),\n"
            "and prints: the time span (boot-time clock), the system it was recorded\n"
            "on, packets per data type, the number of writer sequences, CPUs with\n"
            "kernel data, processes and threads seen, and every loss the trace\n"
            "records: kernel ring-buffer overruns, chunks overwritten or discarded in\n"
            "the service's buffers, packets writers could not write, invalid packets.\n"
            "Compressed packets are inflated transparently.\n"
            "\n"
            "A truncated or malformed file: the summary of what came before the damage\n"
            "is printed, then one line saying where the file is broken; exit 1.\n"
            "\n"
            "EXAMPLES\n"
            "  tracebpf info trace.pftrace\n",
    .run = run_info,
};
