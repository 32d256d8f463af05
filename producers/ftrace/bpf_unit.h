/*
 * bpf_unit.h - the shape every BPF unit's user half has (sched_source.c,
 * proc_source.c, irq_source.c, syscall_source.c): open the skeleton, write
 * the filters into rodata, share the rings, pick the programs, load, attach.
 */
#ifndef TB_PRODUCERS_FTRACE_BPF_UNIT_H
#define TB_PRODUCERS_FTRACE_BPF_UNIT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "producers/ftrace/bpf_rings.h"

/*
 * struct tb_bpf_filter - in-kernel filters; every member off when zero/NULL.
 * @tgids:     processes to trace; their children are followed (borrowed).
 * @comm:      only tasks with this comm (at most 15 chars, borrowed).
 * @cgroup_id: only tasks in this cgroup v2 (inode number of its directory).
 * @syscalls:  syscall numbers sys_enter/sys_exit keep (borrowed).
 */
struct tb_bpf_filter {
    const pid_t *tgids;
    size_t nr_tgids;
    const char *comm;
    uint64_t cgroup_id;
    const uint32_t *syscalls;
    size_t nr_syscalls;
};

/* struct tb_bpf_unit_args - what a unit needs to load (all borrowed). */
struct tb_bpf_unit_args {
    struct tb_bpf_rings *rings;
    const struct tb_bpf_filter *filter;
    uint32_t events; /* bit (1u << TB_REC_*) per wanted record type */
};

/*
 * struct tb_bpf_unit - one BPF unit.
 * @events: the record types the unit can produce (same bit layout).
 * @load:   open, configure and load (not attach) the programs for @args->events;
 *          *@state receives the unit's skeleton, freed by @destroy.
 *          Return 0 or negative errno (logged).
 * @attach: attach the loaded programs (@state from @load); called for every
 *          unit only after all units loaded, so they start together.
 *          Return 0 or negative errno (logged).
 * @destroy: detach and free; NULL ok.
 */
struct tb_bpf_unit {
    const char *name;
    uint32_t events;
    int (*load)(const struct tb_bpf_unit_args *args, void **state);
    int (*attach)(void *state);
    void (*destroy)(void *state);
};

extern const struct tb_bpf_unit tb_sched_unit;
extern const struct tb_bpf_unit tb_proc_unit;
extern const struct tb_bpf_unit tb_irq_unit;
extern const struct tb_bpf_unit tb_syscall_unit;

#define TB_EV(t) (1u << (t))

/*
 * Every unit's rodata has the same filter globals (bpf/common.bpf.h); this
 * fills them, whatever the skeleton's rodata type is.
 */
#define TB_BPF_SET_FILTERS(ro, args)                                                       \
    do {                                                                                   \
        const struct tb_bpf_filter *f_ = (args)->filter;                                   \
        (ro)->tb_cpus_per_ring = tb_bpf_rings_cpus_per_ring((args)->rings);                \
        (ro)->tb_wakeup_bytes = tb_bpf_rings_wakeup_bytes((args)->rings);                  \
        (ro)->tb_events = (args)->events;                                                  \
        if (f_ && f_->nr_tgids)                                                            \
            (ro)->tb_filter_tgid = true;                                                   \
        if (f_ && f_->comm && f_->comm[0]) {                                               \
            (ro)->tb_filter_comm = true;                                                   \
            strncpy((char *)(ro)->tb_targ_comm, f_->comm, sizeof((ro)->tb_targ_comm) - 1); \
        }                                                                                  \
        if (f_ && f_->cgroup_id) {                                                         \
            (ro)->tb_filter_cgroup = true;                                                 \
            (ro)->tb_targ_cgroup = f_->cgroup_id;                                          \
        }                                                                                  \
    } while (0)

/*
 * tb_bpf_attach_prog() - attach @prog when @want, else leave it unloaded.
 * Used after load; @link receives the link (owned by the skeleton).
 * Return: 0 or negative errno (logged with @unit and the program's name).
 */
struct bpf_program;
struct bpf_link;
int tb_bpf_attach_prog(const char *unit, struct bpf_program *prog, int want,
                       struct bpf_link **link);

/* tb_bpf_sched_switch_has_state_arg() - does the kernel pass prev_state? */
int tb_bpf_sched_switch_has_state_arg(void);

#endif /* TB_PRODUCERS_FTRACE_BPF_UNIT_H */
