/*
 * bpf_probes.c - assembles the BPF units the config asks for over one set
 * of shared rings, and owns their lifetime (see bpf_probes.h).
 */
#include "producers/ftrace/bpf_probes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "bpf/record.h"
#include "common/log.h"

static const char *const event_names[TB_REC_TYPE_MAX] = {
    [TB_REC_SCHED_SWITCH] = "sched/sched_switch",
    [TB_REC_SCHED_WAKING] = "sched/sched_waking",
    [TB_REC_SCHED_WAKEUP_NEW] = "sched/sched_wakeup_new",
    [TB_REC_PROC_FORK] = "sched/sched_process_fork",
    [TB_REC_PROC_EXEC] = "sched/sched_process_exec",
    [TB_REC_PROC_EXIT] = "sched/sched_process_exit",
    [TB_REC_PROC_FREE] = "sched/sched_process_free",
    [TB_REC_TASK_NEWTASK] = "task/task_newtask",
    [TB_REC_TASK_RENAME] = "task/task_rename",
    [TB_REC_IRQ_ENTRY] = "irq/irq_handler_entry",
    [TB_REC_IRQ_EXIT] = "irq/irq_handler_exit",
    [TB_REC_SOFTIRQ_ENTRY] = "irq/softirq_entry",
    [TB_REC_SOFTIRQ_EXIT] = "irq/softirq_exit",
    [TB_REC_SYS_ENTER] = "raw_syscalls/sys_enter",
    [TB_REC_SYS_EXIT] = "raw_syscalls/sys_exit",
};

static const struct tb_bpf_unit *const units[] = {
    &tb_sched_unit,
    &tb_proc_unit,
    &tb_irq_unit,
    &tb_syscall_unit,
};
#define NR_UNITS (sizeof(units) / sizeof(units[0]))

struct tb_bpf_probes {
    struct tb_bpf_rings *rings;
    void *state[NR_UNITS];
    uint32_t events;
};

int tb_bpf_event_type(const char *name)
{
    const char *slash;
    int t;

    for (t = 1; t < TB_REC_TYPE_MAX; t++) {
        if (!event_names[t])
            continue;
        if (!strcmp(name, event_names[t]))
            return t;
        /* A bare "name" matches too, as in FtraceConfig. */
        slash = strchr(event_names[t], '/');
        if (!strchr(name, '/') && !strcmp(name, slash + 1))
            return t;
    }
    return -ENOENT;
}

const char *tb_bpf_event_name(int type)
{
    return type > 0 && type < TB_REC_TYPE_MAX ? event_names[type] : NULL;
}

int tb_bpf_attach_prog(const char *unit, struct bpf_program *prog, int want, struct bpf_link **link)
{
    int err;

    if (!want)
        return 0;
    *link = bpf_program__attach(prog);
    if (!*link) {
        err = -errno;
        tb_err("bpf: attaching %s/%s: %s", unit, bpf_program__name(prog), strerror(-err));
        return err;
    }
    return 0;
}

int tb_bpf_probes_new(const struct tb_bpf_probes_opts *opts, struct tb_bpf_probes **out)
{
    struct tb_bpf_unit_args args = {0};
    struct tb_bpf_probes *p;
    size_t i;
    int err = 0, t;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    for (i = 0; i < opts->nr_events; i++) {
        t = tb_bpf_event_type(opts->events[i]);
        if (t > 0)
            p->events |= TB_EV(t);
    }
    if (!p->events)
        goto done;
    err = tb_bpf_rings_new(&opts->rings, &p->rings);
    if (err)
        goto out;
    /* Seed the pid filter before anything is attached. */
    for (i = 0; i < opts->filter.nr_tgids; i++) {
        err = tb_bpf_rings_add_tgid(p->rings, opts->filter.tgids[i]);
        if (err) {
            tb_err("bpf: adding pid %d to the filter: %s", opts->filter.tgids[i], strerror(-err));
            goto out;
        }
    }
    args.rings = p->rings;
    args.filter = &opts->filter;
    for (i = 0; i < NR_UNITS; i++) {
        args.events = p->events & units[i]->events;
        /* proc keeps the pid filter following children even unasked. */
        if (!args.events && !(units[i] == &tb_proc_unit && opts->filter.nr_tgids))
            continue;
        err = units[i]->load(&args, &p->state[i]);
        if (err)
            goto out;
    }
    /*
     * Loading (verifier, BTF) takes tens of ms a unit; attaching only once
     * all are loaded keeps every event kind starting within a few ms, so
     * no fork or exit is missed while sched records already flow.
     */
    for (i = 0; i < NR_UNITS; i++) {
        if (!p->state[i])
            continue;
        err = units[i]->attach(p->state[i]);
        if (err)
            goto out;
    }
done:
    *out = p;
    return 0;
out:
    tb_bpf_probes_free(p);
    return err;
}

struct tb_bpf_rings *tb_bpf_probes_rings(struct tb_bpf_probes *p)
{
    return p->rings;
}

uint32_t tb_bpf_probes_events(const struct tb_bpf_probes *p)
{
    return p->events;
}

void tb_bpf_probes_stop(struct tb_bpf_probes *p)
{
    size_t i;

    /* Detach first so nothing writes into rings being drained for the last time. */
    for (i = 0; i < NR_UNITS; i++) {
        if (p->state[i])
            units[i]->destroy(p->state[i]);
        p->state[i] = NULL;
    }
    if (p->rings)
        tb_bpf_rings_stop(p->rings);
}

void tb_bpf_probes_free(struct tb_bpf_probes *p)
{
    if (!p)
        return;
    tb_bpf_probes_stop(p);
    tb_bpf_rings_free(p->rings);
    free(p);
}
