/*
 * record.h - the record header and loss counters every BPF unit shares with
 * the kernel producer (producers/ftrace).
 *
 * Every record a BPF program writes into a ring buffer starts with
 * struct tb_rec_hdr; the rest of the record is the fixed-size struct named by
 * the header's type (bpf/sched.h, bpf/proc.h, bpf/irq.h, bpf/syscall.h).
 * Explicitly sized types only, little-endian (host order of the traced
 * machine); no holes, so both halves agree on every offset.
 */
#ifndef TB_BPF_RECORD_H
#define TB_BPF_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TB_COMM_LEN 16

/* Record types, one per tracepoint. Values are ABI between the two halves. */
enum tb_rec_type {
    TB_REC_SCHED_SWITCH = 1,
    TB_REC_SCHED_WAKING = 2,
    TB_REC_SCHED_WAKEUP_NEW = 3,
    TB_REC_PROC_FORK = 4,
    TB_REC_PROC_EXEC = 5,
    TB_REC_PROC_EXIT = 6,
    TB_REC_PROC_FREE = 7,
    TB_REC_TASK_NEWTASK = 8,
    TB_REC_TASK_RENAME = 9,
    TB_REC_IRQ_ENTRY = 10,
    TB_REC_IRQ_EXIT = 11,
    TB_REC_SOFTIRQ_ENTRY = 12,
    TB_REC_SOFTIRQ_EXIT = 13,
    TB_REC_SYS_ENTER = 14,
    TB_REC_SYS_EXIT = 15,
    TB_REC_TYPE_MAX = 16,
};

/*
 * struct tb_rec_hdr - first 16 bytes of every record.
 * @ts:   CLOCK_BOOTTIME ns (bpf_ktime_get_boot_ns), the trace's time base.
 * @type: enum tb_rec_type.
 * @cpu:  CPU the event happened on (selects the FtraceEventBundle).
 * @pid:  tid of the task running when the event fired (ftrace common_pid).
 */
struct tb_rec_hdr {
    __u64 ts;
    __u16 type;
    __u16 cpu;
    __u32 pid;
};

/*
 * struct tb_bpf_stats - loss accounting, one slot per CPU (PERCPU_ARRAY,
 * key 0). @total counts every record a program tried to write, @dropped the
 * ones whose ring-buffer reserve failed (or whose ring was missing). Both are
 * shared by all units, so the sum over CPUs is the producer's loss figure.
 */
struct tb_bpf_stats {
    __u64 total;
    __u64 dropped;
};

/* Default size of each per-CPU ring buffer (a power of two, >= page size). */
#define TB_RING_DEFAULT_BYTES (4u << 20)

#endif /* TB_BPF_RECORD_H */
