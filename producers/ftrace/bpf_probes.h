/*
 * bpf_probes.h - the BPF half of the kernel producer as one object: maps the
 * FtraceConfig event names it handles to BPF units, creates the shared rings,
 * seeds the pid filter, loads and attaches the units, and tears all of it
 * down again (links detached, programs and maps closed).
 */
#ifndef TB_PRODUCERS_FTRACE_BPF_PROBES_H
#define TB_PRODUCERS_FTRACE_BPF_PROBES_H

#include <stddef.h>
#include <stdint.h>

#include "producers/ftrace/bpf_rings.h"
#include "producers/ftrace/bpf_unit.h"

struct tb_bpf_probes;

/*
 * struct tb_bpf_probes_opts - @events: "group/name" or "name" strings
 * (borrowed); names BPF does not handle are ignored here (they go to raw
 * ftrace). @filter and @rings as in bpf_unit.h / bpf_rings.h.
 */
struct tb_bpf_probes_opts {
    const char *const *events;
    size_t nr_events;
    struct tb_bpf_filter filter;
    struct tb_bpf_rings_opts rings;
};

/*
 * tb_bpf_event_type() - the record type BPF produces for event @name.
 * Return: TB_REC_* (> 0), or -ENOENT when the event is not a BPF one.
 */
int tb_bpf_event_type(const char *name);

/* tb_bpf_event_name() - "group/name" of record type @type, or NULL. Static. */
const char *tb_bpf_event_name(int type);

/*
 * tb_bpf_probes_new() - load and attach the units @opts->events need.
 * @out: receives the probes (NULL-safe tb_bpf_probes_free() releases them);
 * nothing is recorded until tb_bpf_rings_start() on tb_bpf_probes_rings().
 * With no BPF event among @opts->events, *@out is still a valid, empty set.
 * Return: 0 or negative errno (logged). Context: root / CAP_BPF+CAP_PERFMON.
 */
int tb_bpf_probes_new(const struct tb_bpf_probes_opts *opts, struct tb_bpf_probes **out);

/* tb_bpf_probes_rings() - the shared rings; owned by @p, NULL if no BPF event. */
struct tb_bpf_rings *tb_bpf_probes_rings(struct tb_bpf_probes *p);

/* tb_bpf_probes_events() - bitmask (1u << TB_REC_*) of attached events. */
uint32_t tb_bpf_probes_events(const struct tb_bpf_probes *p);

/*
 * tb_bpf_probes_stop() - detach every program, then drain the rings one last
 * time and stop the drain thread: every record counted in the loss counters'
 * total has then been delivered or counted as dropped. The rings and
 * counters stay readable until tb_bpf_probes_free(). Idempotent.
 */
void tb_bpf_probes_stop(struct tb_bpf_probes *p);

/* tb_bpf_probes_free() - stop (see above) and close everything. NULL ok. */
void tb_bpf_probes_free(struct tb_bpf_probes *p);

#endif /* TB_PRODUCERS_FTRACE_BPF_PROBES_H */
