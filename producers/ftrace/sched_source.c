/*
 * sched_source.c - user half of the scheduler unit (bpf/sched.bpf.c):
 * sched_switch, sched_waking and sched_wakeup_new. Picks the sched_switch
 * variant this kernel supports before load.
 */
#include <errno.h>
#include <stdbool.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bpf/sched.h"
#include "common/log.h"
#include "producers/ftrace/bpf_unit.h"
#include "sched.skel.h"

int tb_bpf_sched_switch_has_state_arg(void)
{
    const struct btf_type *t;
    struct btf *btf;
    int id, ret = 0;

    btf = btf__load_vmlinux_btf();
    if (!btf)
        return 0;
    id = btf__find_by_name_kind(btf, "btf_trace_sched_switch", BTF_KIND_TYPEDEF);
    if (id > 0) {
        /* typedef -> pointer -> func proto(void *, preempt, prev, next[, prev_state]) */
        t = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);
        if (t && btf_is_ptr(t))
            t = btf__type_by_id(btf, t->type);
        ret = t && btf_is_func_proto(t) && btf_vlen(t) >= 5;
    }
    btf__free(btf);
    return ret;
}

static int sched_load(const struct tb_bpf_unit_args *a, void **state)
{
    bool sw = a->events & TB_EV(TB_REC_SCHED_SWITCH);
    struct sched_bpf *skel;
    bool new_switch = false;
    int err;

    *state = NULL;
    skel = sched_bpf__open();
    if (!skel) {
        err = -errno;
        tb_err("bpf: opening the sched unit: %s", strerror(-err));
        return err;
    }
    TB_BPF_SET_FILTERS(skel->rodata, a);
    err =
        tb_bpf_rings_share(a->rings, skel->maps.tb_rings, skel->maps.tb_stats, skel->maps.tb_tgids);
    if (err)
        goto out;
    if (sw)
        new_switch = tb_bpf_sched_switch_has_state_arg();
    bpf_program__set_autoload(skel->progs.tb_sched_switch, sw && new_switch);
    bpf_program__set_autoload(skel->progs.tb_sched_switch_old, sw && !new_switch);
    bpf_program__set_autoload(skel->progs.tb_sched_waking, a->events & TB_EV(TB_REC_SCHED_WAKING));
    bpf_program__set_autoload(skel->progs.tb_sched_wakeup_new,
                              a->events & TB_EV(TB_REC_SCHED_WAKEUP_NEW));
    err = sched_bpf__load(skel);
    if (err) {
        tb_err("bpf: loading the sched unit: %s", strerror(-err));
        goto out;
    }
out:
    if (err) {
        sched_bpf__destroy(skel);
        return err;
    }
    *state = skel;
    return 0;
}

/* Attached apart from load so every unit starts emitting together. */
static int sched_attach(void *state)
{
    int err = sched_bpf__attach(state);

    if (err)
        tb_err("bpf: attaching the sched unit: %s", strerror(-err));
    return err;
}

static void sched_destroy(void *state)
{
    sched_bpf__destroy(state);
}

const struct tb_bpf_unit tb_sched_unit = {
    .name = "sched",
    .events =
        TB_EV(TB_REC_SCHED_SWITCH) | TB_EV(TB_REC_SCHED_WAKING) | TB_EV(TB_REC_SCHED_WAKEUP_NEW),
    .load = sched_load,
    .attach = sched_attach,
    .destroy = sched_destroy,
};
