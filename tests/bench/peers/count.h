/*
 * count.h - slots of the independent in-kernel event counter (count.bpf.c)
 * shared by its BPF half and the launcher (count.c). Fixed-width types only.
 *
 * The counter is the yardstick every tracer in the benchmark is checked
 * against: it counts the same five scheduler tracepoints twice, once for the
 * whole system and once for the tasks of the workload's process tree.
 */
#ifndef TB_BENCH_COUNT_H
#define TB_BENCH_COUNT_H

enum tb_count_tp {
    TB_COUNT_SWITCH = 0,
    TB_COUNT_WAKING,
    TB_COUNT_WAKEUP_NEW,
    TB_COUNT_FORK,
    TB_COUNT_EXIT,
    TB_COUNT_TPS, /* number of tracepoints */
};

/* Slot layout of the per-CPU "counts" array. */
#define TB_COUNT_SLOT_ALL(tp)  (tp)                  /* any task */
#define TB_COUNT_SLOT_TREE(tp) (TB_COUNT_TPS + (tp)) /* workload tree */
#define TB_COUNT_SLOT_OVERFLOW (2 * TB_COUNT_TPS)    /* tree map full */
#define TB_COUNT_SLOTS         (2 * TB_COUNT_TPS + 1)

/* Tasks (thread ids) the workload tree may hold; messaging runs ~400. */
#define TB_COUNT_MAX_TASKS 65536

#endif /* TB_BENCH_COUNT_H */
