/*
 * bundle.h - encodes kernel events into FtraceEventBundle, one bundle per
 * CPU: BPF records (bpf/<stem>.h) and raw ftrace events (libtraceevent) are
 * queued per CPU, then written as one bundle into a TracePacket through a
 * pb_writer. With compact sched, sched_switch and sched_waking go into the
 * bundle's structure-of-arrays form (packed, per-kind delta timestamps,
 * comm intern table); everything else is a typed FtraceEvent, or
 * GenericFtraceEvent for ftrace events without a typed message.
 */
#ifndef TB_PRODUCERS_FTRACE_BUNDLE_H
#define TB_PRODUCERS_FTRACE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tb_pbw;
struct tep_event;
struct tep_record;
struct tb_bundler;

/* FtraceEventBundle / FtraceEvent / TracePacket field numbers we write. */
#define TB_PKT_FTRACE_EVENTS 1
#define TB_BUNDLE_CPU        1
#define TB_BUNDLE_EVENT      2
#define TB_BUNDLE_LOST       3
#define TB_BUNDLE_COMPACT    4

/*
 * tb_bundler_new() - per-CPU queues for @nr_cpus CPUs.
 * @compact_sched: FtraceConfig.compact_sched.enabled.
 * @out: receives the bundler; free with tb_bundler_free().
 * Return: 0 or -ENOMEM. Context: one thread uses a bundler at a time.
 */
int tb_bundler_new(unsigned int nr_cpus, bool compact_sched, struct tb_bundler **out);

/* tb_bundler_free() - free the queues. NULL ok. */
void tb_bundler_free(struct tb_bundler *b);

/*
 * tb_bundler_add_bpf() - queue one BPF record (@rec, @size as drained;
 * copied). Return: 0, -EINVAL for a short or unknown record, -ENOMEM.
 */
int tb_bundler_add_bpf(struct tb_bundler *b, const void *rec, size_t size);

/*
 * tb_bundler_add_ftrace() - queue one raw ftrace event read on @cpu
 * (@ev/@rec borrowed; encoded at once). Return: 0 or negative errno.
 */
int tb_bundler_add_ftrace(struct tb_bundler *b, int cpu, struct tep_event *ev,
                          struct tep_record *rec);

/* tb_bundler_mark_lost() - the next bundle of @cpu says events were lost. */
void tb_bundler_mark_lost(struct tb_bundler *b, unsigned int cpu);

/* tb_bundler_pending() - events queued for @cpu. */
size_t tb_bundler_pending(const struct tb_bundler *b, unsigned int cpu);

/* tb_bundler_pending_bytes() - rough bytes queued for @cpu (for flushing). */
size_t tb_bundler_pending_bytes(const struct tb_bundler *b, unsigned int cpu);

/*
 * tb_bundler_emit() - write @cpu's queue as TracePacket field 1
 * (ftrace_events) into @w, which is positioned inside a TracePacket, and
 * empty the queue. Nothing is written when the queue is empty and no loss
 * is pending. The queue is emptied even on error, when the caller must
 * count what tb_bundler_pending() said as lost.
 * Return: events written, or negative errno (writer error).
 */
int tb_bundler_emit(struct tb_bundler *b, unsigned int cpu, struct tb_pbw *w);

#endif /* TB_PRODUCERS_FTRACE_BUNDLE_H */
