/*
 * sched.h - records of the scheduler unit (bpf/sched.bpf.c ->
 * producers/ftrace/sched_source.c): sched_switch, sched_waking,
 * sched_wakeup_new. Fields mirror the kernel tracepoints' fields.
 */
#ifndef TB_BPF_SCHED_H
#define TB_BPF_SCHED_H

#include "record.h"

/* prev_state value the kernel reports for a preempted task (TASK_REPORT_MAX). */
#define TB_SCHED_STATE_PREEMPTED 0x100

/* Kernel task-state bits (include/linux/sched.h). */
#define TB_TASK_UNINTERRUPTIBLE 0x0002
#define TB_TASK_REPORT          0x007f
#define TB_TASK_IDLE            0x0402 /* TASK_UNINTERRUPTIBLE | TASK_NOLOAD */
#define TB_TASK_RTLOCK_WAIT     0x1000
#define TB_TASK_FROZEN          0x8000
#define TB_TASK_REPORT_IDLE     0x0080

/**
 * tb_sched_report_state() - prev_state as the sched_switch tracepoint prints it
 * @preempt: the switch was a preemption (task still runnable)
 * @state: prev->__state (or the tracepoint's prev_state argument)
 * @exit_state: prev->exit_state
 *
 * Mirrors the kernel's __task_state_index() plus the tracepoint's
 * 1 << (index - 1), so trace_processor decodes our value exactly like the
 * kernel's own event. Extra flag bits (TASK_FREEZABLE, ...) must not hide
 * TASK_IDLE, and RT-lock waits and frozen tasks read as uninterruptible.
 * Pure; shared by bpf/sched.bpf.c and the unit test.
 *
 * Return: 0 running, a single TASK_REPORT bit, 0x80 idle, or
 * TB_SCHED_STATE_PREEMPTED.
 */
static inline __s64 tb_sched_report_state(int preempt, unsigned int state, unsigned int exit_state)
{
    unsigned int rep;

    if (preempt)
        return TB_SCHED_STATE_PREEMPTED;
    rep = (state | exit_state) & TB_TASK_REPORT;
    if ((state & TB_TASK_IDLE) == TB_TASK_IDLE)
        rep = TB_TASK_REPORT_IDLE;
    /* Checked after idle on purpose: the kernel lets these win. */
    if ((state & TB_TASK_RTLOCK_WAIT) || (state & TB_TASK_FROZEN))
        rep = TB_TASK_UNINTERRUPTIBLE;
    if (!rep)
        return 0;
    /* 1 << (fls(rep) - 1): keep the highest set bit (BPF has no clz). */
    for (int bit = 7; bit >= 0; bit--) {
        if (rep & (1u << bit))
            return 1ll << bit;
    }
    return 0;
}

/*
 * struct tb_sched_switch - TB_REC_SCHED_SWITCH.
 * @prev_state: exactly what the sched_switch tracepoint prints: 0 running,
 *              1 << (__task_state_index - 1) otherwise, 0x100 when preempted.
 */
struct tb_sched_switch {
    struct tb_rec_hdr hdr;
    __s64 prev_state;
    __s32 prev_pid;
    __s32 prev_prio;
    __s32 next_pid;
    __s32 next_prio;
    char prev_comm[TB_COMM_LEN];
    char next_comm[TB_COMM_LEN];
};

/* struct tb_sched_wake - TB_REC_SCHED_WAKING or TB_REC_SCHED_WAKEUP_NEW. */
struct tb_sched_wake {
    struct tb_rec_hdr hdr;
    __s32 pid;
    __s32 prio;
    __s32 target_cpu;
    __s32 success;
    char comm[TB_COMM_LEN];
};

#endif /* TB_BPF_SCHED_H */
