/*
 * ftrace_instance.h - raw ftrace in a private instance
 * (/sys/kernel/tracing/instances/traced-bpf-<pid>) for every config event
 * BPF does not handle: create it, set the boot clock and buffer size,
 * enable the events, read the per-CPU raw pages parsed with libtraceevent
 * from the events' format files, report overruns, and remove it again.
 * Only event files are touched: never the function-tracer files.
 */
#ifndef TB_PRODUCERS_FTRACE_FTRACE_INSTANCE_H
#define TB_PRODUCERS_FTRACE_FTRACE_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

struct tep_event;
struct tep_record;
struct tb_ftrace;

#define TB_FTRACE_INSTANCE_PREFIX "traced-bpf-"

/*
 * tb_ftrace_event_fn - one raw event, on the reading thread. @ev and @rec
 * are borrowed for the call. Return 0 to go on, non-zero to stop the pass.
 */
typedef int (*tb_ftrace_event_fn)(void *ctx, int cpu, struct tep_event *ev, struct tep_record *rec);

/*
 * struct tb_ftrace_opts - @events: "group/name" or "name" (borrowed);
 * @buffer_size_kb: per-CPU kernel buffer (0 = kernel default).
 */
struct tb_ftrace_opts {
    const char *const *events;
    size_t nr_events;
    size_t buffer_size_kb;
};

/*
 * tb_ftrace_resolve() - full "group/name" of event @name as this kernel
 * has it. @out/@len: caller buffer. Return: 0, -ENOENT when the event does
 * not exist, -ENODEV when tracefs is not mounted.
 */
int tb_ftrace_resolve(const char *name, char *out, size_t len);

/*
 * tb_ftrace_cleanup_stale() - remove instances "traced-bpf-<pid>" whose
 * process is gone (left by a crashed run). Return: how many were removed.
 */
int tb_ftrace_cleanup_stale(void);

/*
 * tb_ftrace_new() - create this process's instance and enable @opts->events
 * (tracing starts at once). Events are all resolved first; an unknown one
 * fails the call with -ENOENT naming it, and nothing is left behind.
 * With "ftrace/print" among them the instance also takes a copy of every
 * write to the top-level trace_marker, where apps write (kernel >= 6.17,
 * options/copy_trace_marker; older kernels: a warning, and only writes to
 * the instance's own trace_marker reach it).
 * @out: receives the instance; tb_ftrace_free() removes it.
 * Return: 0 or negative errno (logged).
 */
int tb_ftrace_new(const struct tb_ftrace_opts *opts, struct tb_ftrace **out);

/*
 * tb_ftrace_read() - read every page available now on every CPU, calling
 * @fn per event. Return: events seen, or negative errno.
 */
int tb_ftrace_read(struct tb_ftrace *f, tb_ftrace_event_fn fn, void *ctx);

/* tb_ftrace_overrun() - events the kernel overwrote on @cpu (per_cpu stats). */
int tb_ftrace_overrun(struct tb_ftrace *f, int cpu, uint64_t *out);

/* tb_ftrace_name() - the instance name; owned by @f, valid until free. */
const char *tb_ftrace_name(const struct tb_ftrace *f);

/*
 * tb_ftrace_write_marker() - write @msg into the instance's trace_marker
 * (what an ftrace/print event then carries). Return: 0 or negative errno.
 */
int tb_ftrace_write_marker(struct tb_ftrace *f, const char *msg);

/* tb_ftrace_free() - disable the events and remove the instance. NULL ok. */
void tb_ftrace_free(struct tb_ftrace *f);

#endif /* TB_PRODUCERS_FTRACE_FTRACE_INSTANCE_H */
