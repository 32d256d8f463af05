/*
 * compact_sched.h - FtraceEventBundle.CompactSched: sched_switch and
 * sched_waking as packed arrays with delta timestamps (one accumulator per
 * kind) and an intern table of comms. It is what keeps scheduler traces
 * small: no prev_* fields, no per-event tags.
 */
#ifndef TB_PRODUCERS_FTRACE_COMPACT_SCHED_H
#define TB_PRODUCERS_FTRACE_COMPACT_SCHED_H

#include <stddef.h>

struct tb_pbw;
struct tb_sched_switch;
struct tb_sched_wake;

/*
 * tb_compact_sched_encode() - write a CompactSched message as field @field
 * of the bundle open in @w. @sw/@nr_sw and @wk/@nr_wk are the CPU's events
 * in time order (borrowed). Return: 0, -ENOMEM, or the writer's error.
 */
int tb_compact_sched_encode(struct tb_pbw *w, unsigned int field, const struct tb_sched_switch *sw,
                            size_t nr_sw, const struct tb_sched_wake *wk, size_t nr_wk);

#endif /* TB_PRODUCERS_FTRACE_COMPACT_SCHED_H */
