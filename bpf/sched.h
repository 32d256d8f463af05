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
