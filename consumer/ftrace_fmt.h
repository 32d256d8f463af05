/*
 * ftrace_fmt.h - formatting of kernel events the way the tracefs "trace"
 * file shows them, used by the ftrace/systrace exporter.
 */
#ifndef TB_CONSUMER_FTRACE_FMT_H
#define TB_CONSUMER_FTRACE_FMT_H

#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/*
 * tb_ftrace_format() - "<event name>: <fields>" for @e into @buf, as the
 * event's kernel TP_printk prints it; print events come out as
 * "tracing_mark_write: <text>" without the trailing newline.
 * Return: snprintf-style length.
 */
int tb_ftrace_format(const Perfetto__Protos__FtraceEvent *e, char *buf, size_t len);

/*
 * tb_ftrace_prefix() - the line head "<comm>-<pid> (<tgid>) [cpu] flags ts: ".
 * @comm: NULL or "" prints "<...>" (unknown), pid 0 prints "<idle>".
 * @tgid: negative prints "(-------)".
 * Return: snprintf-style length.
 */
int tb_ftrace_prefix(char *buf, size_t len, const char *comm, int32_t pid, int32_t tgid,
                     uint32_t cpu, uint32_t flags, uint64_t ts);

/* tb_ftrace_flags() - the 5 latency-format characters for common_flags @f. */
void tb_ftrace_flags(uint32_t f, char out[6]);

/*
 * tb_ftrace_task_state() - sched_switch prev_state as the kernel prints it
 * (4.14+ layout): "R", "S", "D|K"-style joins, "R+" when preempted.
 */
void tb_ftrace_task_state(int64_t state, char *out, size_t len);

#endif /* TB_CONSUMER_FTRACE_FMT_H */
