/*
 * export_tasks.h - what the exporters learn about tasks and tracks while
 * streaming a trace: each thread's name, tgid and last CPU (from the
 * process tree, sched and task events), which task runs on each CPU (to
 * expand compact sched), and track descriptors (uuid -> pid, tid, name).
 * Memory grows with the number of threads and tracks, not with events.
 */
#ifndef TB_CONSUMER_EXPORT_TASKS_H
#define TB_CONSUMER_EXPORT_TASKS_H

#include "consumer/idmap.h"
#include "consumer/trace_reader.h"
#include "consumer/trace_seq.h"
#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

#define TB_COMM_LEN 16 /* the kernel's TASK_COMM_LEN */

struct tb_task {
    char comm[TB_COMM_LEN];
    int32_t tgid; /* -1 when unknown */
    uint32_t last_cpu;
};

struct tb_cpu_state {
    bool known; /* a switch told us who runs here */
    int32_t pid;
    int32_t prio;
    char comm[TB_COMM_LEN];
};

struct tb_track {
    int32_t pid;
    int32_t tid; /* 0 for process and counter tracks */
    bool counter;
    char name[128];
};

struct tb_tasks {
    struct tb_idmap tasks;  /* tid -> struct tb_task */
    struct tb_idmap cpus;   /* cpu -> struct tb_cpu_state */
    struct tb_idmap tracks; /* uuid -> struct tb_track */
};

/* tb_tasks_init() - empty tables; free with tb_tasks_free(). */
void tb_tasks_init(struct tb_tasks *t);
void tb_tasks_free(struct tb_tasks *t);

/* tb_tasks_get() - what is known of @tid. Return: owned by @t, or NULL. */
const struct tb_task *tb_tasks_get(const struct tb_tasks *t, int32_t tid);

/* tb_tasks_cpu() - the state of @cpu, created on first use. Return: NULL on -ENOMEM. */
struct tb_cpu_state *tb_tasks_cpu(struct tb_tasks *t, uint32_t cpu);

/* tb_tasks_track() - a track by uuid. Return: owned by @t, or NULL. */
const struct tb_track *tb_tasks_track(const struct tb_tasks *t, uint64_t uuid);

/* tb_tasks_last_cpu() - the CPU @tid was last seen running on (0 if never). */
uint32_t tb_tasks_last_cpu(const struct tb_tasks *t, int32_t tid);

/*
 * tb_tasks_learn_running() - @pid (named @comm, priority @prio) now runs on
 * @cpu. Return: 0 or -ENOMEM.
 */
int tb_tasks_learn_running(struct tb_tasks *t, uint32_t cpu, int32_t pid, const char *comm,
                           int32_t prio);

/* tb_tasks_learn_event() - names, tgids and CPUs an ftrace event reveals. */
int tb_tasks_learn_event(struct tb_tasks *t, uint32_t cpu, const Perfetto__Protos__FtraceEvent *e);

/* tb_tasks_learn_packet() - process tree and track descriptor packets. */
int tb_tasks_learn_packet(struct tb_tasks *t, const Perfetto__Protos__TracePacket *p);

/*
 * struct tb_te_origin - where a TrackEvent belongs, as both exporters show it.
 * @track: its track (owned by the struct tb_tasks), or NULL when unknown.
 * @pid:   the track's process, else the packet's trusted pid, else 0.
 * @tid:   the track's thread, else @pid.
 * @name:  the event name, inline or interned (owned by the packet or the
 *         struct tb_seqs); NULL when it has none.
 */
struct tb_te_origin {
    const struct tb_track *track;
    const char *name;
    int32_t pid;
    int32_t tid;
};

/*
 * tb_tasks_te_origin() - resolve the track, pid/tid and name of the
 * TrackEvent in @p: its track_uuid, else the sequence's default track.
 * @p must hold a track_event. Pointers in @o stay valid while @t, @seqs and
 * @p do.
 */
void tb_tasks_te_origin(const struct tb_tasks *t, const struct tb_seqs *seqs,
                        const Perfetto__Protos__TracePacket *p, struct tb_te_origin *o);

/*
 * tb_tasks_next_packet() - the exporters' read step: decode the next packet
 * of @r and learn from it, the sequence state (interning, clocks) into
 * @seqs and tasks and tracks into @t.
 * @p:      receives the packet when 1 is returned; owned by the caller, free
 *          with perfetto__protos__trace_packet__free_unpacked().
 * @ts:     receives its timestamp when @has_ts is set.
 * @has_ts: whether the packet has a timestamp on a clock that resolved.
 * Return: 1 a packet, 0 the end of the trace, -EBADMSG a packet that does
 * not decode (logged) or a broken file (see tb_trace_reader_error()),
 * -ENOMEM.
 */
int tb_tasks_next_packet(struct tb_trace_reader *r, struct tb_seqs *seqs, struct tb_tasks *t,
                         Perfetto__Protos__TracePacket **p, uint64_t *ts, bool *has_ts);

#endif /* TB_CONSUMER_EXPORT_TASKS_H */
