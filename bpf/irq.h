/*
 * irq.h - records of the interrupt unit (bpf/irq.bpf.c ->
 * producers/ftrace/irq_source.c): irq_handler_entry/exit, softirq_entry/exit.
 */
#ifndef TB_BPF_IRQ_H
#define TB_BPF_IRQ_H

#include "record.h"

#define TB_IRQ_NAME_LEN 32

/* struct tb_irq_entry - TB_REC_IRQ_ENTRY; @name is the irqaction's name. */
struct tb_irq_entry {
    struct tb_rec_hdr hdr;
    __s32 irq;
    __u32 pad;
    char name[TB_IRQ_NAME_LEN];
};

/* struct tb_irq_exit - TB_REC_IRQ_EXIT; @ret is the irqreturn_t value. */
struct tb_irq_exit {
    struct tb_rec_hdr hdr;
    __s32 irq;
    __s32 ret;
};

/* struct tb_softirq - TB_REC_SOFTIRQ_ENTRY or TB_REC_SOFTIRQ_EXIT. */
struct tb_softirq {
    struct tb_rec_hdr hdr;
    __u32 vec;
    __u32 pad;
};

#endif /* TB_BPF_IRQ_H */
