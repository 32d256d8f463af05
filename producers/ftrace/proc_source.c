/*
 * proc_source.c - user half of the process-lifecycle unit (bpf/proc.bpf.c):
 * fork/exec/exit/free, task_newtask and task_rename. With a pid filter the
 * fork and newtask programs must run even when their records are not
 * wanted, since they are what makes the filter follow the children.
 */
#include <errno.h>
#include <stdbool.h>

#include <bpf/libbpf.h>

#include "bpf/proc.h"
#include "common/log.h"
#include "producers/ftrace/bpf_unit.h"
#include "proc.skel.h"

struct proc_prog {
    struct bpf_program *prog;
    struct bpf_link **link;
    uint32_t ev;
};

static int proc_load(const struct tb_bpf_unit_args *a, void **state)
{
    bool follow = a->filter && a->filter->nr_tgids;
    struct proc_prog progs[6];
    struct proc_bpf *skel;
    int err = 0;
    size_t i;

    *state = NULL;
    skel = proc_bpf__open();
    if (!skel) {
        err = -errno;
        tb_err("bpf: opening the proc unit: %s", strerror(-err));
        return err;
    }
    progs[0] = (struct proc_prog){skel->progs.tb_task_newtask, &skel->links.tb_task_newtask,
                                  TB_EV(TB_REC_TASK_NEWTASK)};
    progs[1] = (struct proc_prog){skel->progs.tb_proc_fork, &skel->links.tb_proc_fork,
                                  TB_EV(TB_REC_PROC_FORK)};
    progs[2] = (struct proc_prog){skel->progs.tb_proc_exec, &skel->links.tb_proc_exec,
                                  TB_EV(TB_REC_PROC_EXEC)};
    progs[3] = (struct proc_prog){skel->progs.tb_proc_exit, &skel->links.tb_proc_exit,
                                  TB_EV(TB_REC_PROC_EXIT)};
    progs[4] = (struct proc_prog){skel->progs.tb_proc_free, &skel->links.tb_proc_free,
                                  TB_EV(TB_REC_PROC_FREE)};
    progs[5] = (struct proc_prog){skel->progs.tb_task_rename, &skel->links.tb_task_rename,
                                  TB_EV(TB_REC_TASK_RENAME)};
    TB_BPF_SET_FILTERS(skel->rodata, a);
    err =
        tb_bpf_rings_share(a->rings, skel->maps.tb_rings, skel->maps.tb_stats, skel->maps.tb_tgids);
    if (err)
        goto out;
    /* Following children needs newtask, fork and free (map upkeep). */
    for (i = 0; i < 6; i++) {
        bool upkeep = follow && (i == 0 || i == 1 || i == 4);

        bpf_program__set_autoload(progs[i].prog, (a->events & progs[i].ev) || upkeep);
    }
    err = proc_bpf__load(skel);
    if (err) {
        tb_err("bpf: loading the proc unit: %s", strerror(-err));
        goto out;
    }
out:
    if (err) {
        proc_bpf__destroy(skel);
        return err;
    }
    *state = skel;
    return 0;
}

/* Attached apart from load so every unit starts emitting together. */
static int proc_attach(void *state)
{
    int err = proc_bpf__attach(state);

    if (err)
        tb_err("bpf: attaching the proc unit: %s", strerror(-err));
    return err;
}

static void proc_destroy(void *state)
{
    proc_bpf__destroy(state);
}

const struct tb_bpf_unit tb_proc_unit = {
    .name = "proc",
    .events = TB_EV(TB_REC_PROC_FORK) | TB_EV(TB_REC_PROC_EXEC) | TB_EV(TB_REC_PROC_EXIT) |
              TB_EV(TB_REC_PROC_FREE) | TB_EV(TB_REC_TASK_NEWTASK) | TB_EV(TB_REC_TASK_RENAME),
    .load = proc_load,
    .attach = proc_attach,
    .destroy = proc_destroy,
};
