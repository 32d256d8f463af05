/*
 * syscall_source.c - user half of the syscall unit (bpf/syscall.bpf.c):
 * raw_syscalls sys_enter/sys_exit with the syscall-set bitmap in rodata.
 */
#include <errno.h>
#include <stdbool.h>

#include <bpf/libbpf.h>

#include "bpf/syscall.h"
#include "common/log.h"
#include "producers/ftrace/bpf_unit.h"
#include "syscall.skel.h"

static int syscall_load(const struct tb_bpf_unit_args *a, void **state)
{
    bool enter = a->events & TB_EV(TB_REC_SYS_ENTER), exit_ = a->events & TB_EV(TB_REC_SYS_EXIT);
    const struct tb_bpf_filter *f = a->filter;
    struct syscall_bpf *skel;
    int err = 0;
    size_t i;

    *state = NULL;
    skel = syscall_bpf__open();
    if (!skel) {
        err = -errno;
        tb_err("bpf: opening the syscall unit: %s", strerror(-err));
        return err;
    }
    TB_BPF_SET_FILTERS(skel->rodata, a);
    if (f && f->nr_syscalls) {
        skel->rodata->tb_filter_syscalls = true;
        for (i = 0; i < f->nr_syscalls; i++) {
            uint32_t nr = f->syscalls[i];

            if (nr >= TB_SYSCALL_MAX) {
                tb_err("bpf: syscall %u is beyond the filter's range (< %d)", nr, TB_SYSCALL_MAX);
                err = -EINVAL;
                goto out;
            }
            ((__u64 *)skel->rodata->tb_syscall_mask)[nr / 64] |= 1ull << (nr % 64);
        }
    }
    err =
        tb_bpf_rings_share(a->rings, skel->maps.tb_rings, skel->maps.tb_stats, skel->maps.tb_tgids);
    if (err)
        goto out;
    bpf_program__set_autoload(skel->progs.tb_sys_enter, enter);
    bpf_program__set_autoload(skel->progs.tb_sys_exit, exit_);
    err = syscall_bpf__load(skel);
    if (err) {
        tb_err("bpf: loading the syscall unit: %s", strerror(-err));
        goto out;
    }
out:
    if (err) {
        syscall_bpf__destroy(skel);
        return err;
    }
    *state = skel;
    return 0;
}

/* Attached apart from load so every unit starts emitting together. */
static int syscall_attach(void *state)
{
    int err = syscall_bpf__attach(state);

    if (err)
        tb_err("bpf: attaching the syscall unit: %s", strerror(-err));
    return err;
}

static void syscall_destroy(void *state)
{
    syscall_bpf__destroy(state);
}

const struct tb_bpf_unit tb_syscall_unit = {
    .name = "syscall",
    .events = TB_EV(TB_REC_SYS_ENTER) | TB_EV(TB_REC_SYS_EXIT),
    .load = syscall_load,
    .attach = syscall_attach,
    .destroy = syscall_destroy,
};
