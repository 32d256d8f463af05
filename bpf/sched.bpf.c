/*
 * sched.bpf.c - scheduler tracepoints (sched_switch, sched_waking,
 * sched_wakeup_new) into the shared per-CPU rings as bpf/sched.h records.
 *
 * sched_switch has two variants chosen by user space before load: the
 * 6.x tracepoint passes prev_state as an argument (the value the kernel's
 * own event reports); older kernels only have prev->__state to read.
 */
#include "common.bpf.h"
#include "sched.h"

static __always_inline int tb_emit_switch(bool preempt, struct task_struct *prev,
                                          struct task_struct *next, unsigned int state)
{
    struct tb_sched_switch r;

    if (!tb_task_allowed(prev) && !tb_task_allowed(next))
        return 0;
    /* prev is the task running when the event fires: the header's pid. */
    if (!tb_hdr(&r.hdr, TB_REC_SCHED_SWITCH, prev->pid))
        return 0;
    r.prev_state = tb_sched_report_state(preempt, state, prev->exit_state);
    r.prev_pid = prev->pid;
    r.prev_prio = prev->prio;
    r.next_pid = next->pid;
    r.next_prio = next->prio;
    __builtin_memcpy(r.prev_comm, prev->comm, TB_COMM_LEN);
    __builtin_memcpy(r.next_comm, next->comm, TB_COMM_LEN);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tb_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state)
{
    return tb_emit_switch(preempt, prev, next, prev_state);
}

/* Kernels before 5.18: no prev_state argument, read the task's state. */
SEC("tp_btf/sched_switch")
int BPF_PROG(tb_sched_switch_old, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return tb_emit_switch(preempt, prev, next, prev->__state);
}

/* 5.16..6.x kept the cpu in task_struct; other kernels in thread_info. */
struct task_struct___tb_cpu {
    unsigned int cpu;
} __attribute__((preserve_access_index));

static __always_inline __s32 tb_task_cpu(struct task_struct *p)
{
    struct task_struct___tb_cpu *alt = (void *)p;

    if (bpf_core_field_exists(alt->cpu))
        return alt->cpu;
    return p->thread_info.cpu;
}

static __always_inline int tb_emit_wake(struct task_struct *p, __u16 type)
{
    struct tb_sched_wake r;

    if (!tb_task_allowed(p))
        return 0;
    if (!tb_hdr(&r.hdr, type, tb_current()->pid))
        return 0;
    r.pid = p->pid;
    r.prio = p->prio;
    r.target_cpu = tb_task_cpu(p);
    r.success = 1;
    __builtin_memcpy(r.comm, p->comm, TB_COMM_LEN);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(tb_sched_waking, struct task_struct *p)
{
    return tb_emit_wake(p, TB_REC_SCHED_WAKING);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tb_sched_wakeup_new, struct task_struct *p)
{
    return tb_emit_wake(p, TB_REC_SCHED_WAKEUP_NEW);
}
