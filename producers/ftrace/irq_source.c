/*
 * irq_source.c - user half of the interrupt unit (bpf/irq.bpf.c):
 * irq_handler_entry/exit and softirq_entry/exit.
 */
#include <errno.h>
#include <stdbool.h>

#include <bpf/libbpf.h>

#include "bpf/irq.h"
#include "common/log.h"
#include "irq.skel.h"
#include "producers/ftrace/bpf_unit.h"

static int irq_load(const struct tb_bpf_unit_args *a, void **state)
{
    struct {
        struct bpf_program *prog;
        struct bpf_link **link;
        uint32_t ev;
    } progs[4];
    struct irq_bpf *skel;
    int err = 0;
    size_t i;

    *state = NULL;
    skel = irq_bpf__open();
    if (!skel) {
        err = -errno;
        tb_err("bpf: opening the irq unit: %s", strerror(-err));
        return err;
    }
    progs[0].prog = skel->progs.tb_irq_entry;
    progs[0].link = &skel->links.tb_irq_entry;
    progs[0].ev = TB_EV(TB_REC_IRQ_ENTRY);
    progs[1].prog = skel->progs.tb_irq_exit;
    progs[1].link = &skel->links.tb_irq_exit;
    progs[1].ev = TB_EV(TB_REC_IRQ_EXIT);
    progs[2].prog = skel->progs.tb_softirq_entry;
    progs[2].link = &skel->links.tb_softirq_entry;
    progs[2].ev = TB_EV(TB_REC_SOFTIRQ_ENTRY);
    progs[3].prog = skel->progs.tb_softirq_exit;
    progs[3].link = &skel->links.tb_softirq_exit;
    progs[3].ev = TB_EV(TB_REC_SOFTIRQ_EXIT);
    TB_BPF_SET_FILTERS(skel->rodata, a);
    err =
        tb_bpf_rings_share(a->rings, skel->maps.tb_rings, skel->maps.tb_stats, skel->maps.tb_tgids);
    if (err)
        goto out;
    for (i = 0; i < 4; i++)
        bpf_program__set_autoload(progs[i].prog, a->events & progs[i].ev);
    err = irq_bpf__load(skel);
    if (err) {
        tb_err("bpf: loading the irq unit: %s", strerror(-err));
        goto out;
    }
out:
    if (err) {
        irq_bpf__destroy(skel);
        return err;
    }
    *state = skel;
    return 0;
}

/* Attached apart from load so every unit starts emitting together. */
static int irq_attach(void *state)
{
    int err = irq_bpf__attach(state);

    if (err)
        tb_err("bpf: attaching the irq unit: %s", strerror(-err));
    return err;
}

static void irq_destroy(void *state)
{
    irq_bpf__destroy(state);
}

const struct tb_bpf_unit tb_irq_unit = {
    .name = "irq",
    .events = TB_EV(TB_REC_IRQ_ENTRY) | TB_EV(TB_REC_IRQ_EXIT) | TB_EV(TB_REC_SOFTIRQ_ENTRY) |
              TB_EV(TB_REC_SOFTIRQ_EXIT),
    .load = irq_load,
    .attach = irq_attach,
    .destroy = irq_destroy,
};
