/*
 * irq.bpf.c - hard and soft interrupt tracepoints into the shared rings as
 * bpf/irq.h records. Filters apply to the interrupted task (current), so a
 * pid-filtered trace keeps only the interrupts that hit the traced tasks.
 */
#include "common.bpf.h"
#include "irq.h"

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(tb_irq_entry, int irq, struct irqaction *action)
{
    struct tb_irq_entry r;

    if (!tb_current_allowed())
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_IRQ_ENTRY, tb_current()->pid))
        return 0;
    r.irq = irq;
    r.pad = 0;
    bpf_probe_read_kernel_str(r.name, sizeof(r.name), action->name);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(tb_irq_exit, int irq, struct irqaction *action, int ret)
{
    struct tb_irq_exit r;

    if (!tb_current_allowed())
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_IRQ_EXIT, tb_current()->pid))
        return 0;
    r.irq = irq;
    r.ret = ret;
    tb_output(&r, sizeof(r));
    return 0;
}

static __always_inline int tb_emit_softirq(unsigned int vec, __u16 type)
{
    struct tb_softirq r;

    if (!tb_current_allowed())
        return 0;
    if (!tb_hdr(&r.hdr, type, tb_current()->pid))
        return 0;
    r.vec = vec;
    r.pad = 0;
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tb_softirq_entry, unsigned int vec)
{
    return tb_emit_softirq(vec, TB_REC_SOFTIRQ_ENTRY);
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(tb_softirq_exit, unsigned int vec)
{
    return tb_emit_softirq(vec, TB_REC_SOFTIRQ_EXIT);
}
