/*
 * count.bpf.c - the independent in-kernel counter of the benchmark: one
 * per-CPU increment per hit of sched_switch, sched_waking, sched_wakeup_new,
 * sched_process_fork and sched_process_exit, counted for the whole system
 * and, separately, for the workload's tree of tasks.
 *
 * BTF tracepoints (tp_btf) on purpose: a classic tracepoint program that
 * returns 0 suppresses the perf samples of that tracepoint for every perf
 * user, which would starve the "perf record" run under test; tp_btf
 * programs sit beside ftrace and perf without touching them.
 *
 * The tree is keyed by thread id because every tracer names the current task
 * by its thread id. Its root is the child the launcher forks (the launcher's
 * tgid is set before load), added in sched_process_fork before the child
 * first runs; each child of a member is added the same way, so threads and
 * processes the workload spawns are followed from birth with no race.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "count.h"

char LICENSE[] SEC("license") = "GPL";

/* The launcher (count.c), whose one child is the workload's first task. */
const volatile __u32 launcher_tgid = 0;

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TB_COUNT_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TB_COUNT_MAX_TASKS);
    __type(key, __u32);
    __type(value, __u8);
} tree SEC(".maps");

static __always_inline void add(__u32 slot)
{
    __u64 *c = bpf_map_lookup_elem(&counts, &slot);

    if (c)
        (*c)++;
}

/* Counts one hit; returns whether the current task is in the tree. */
static __always_inline bool hit(__u32 tp)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();

    add(TB_COUNT_SLOT_ALL(tp));
    if (!bpf_map_lookup_elem(&tree, &tid))
        return false;
    add(TB_COUNT_SLOT_TREE(tp));
    return true;
}

SEC("tp_btf/sched_switch")
int count_switch(void *ctx)
{
    hit(TB_COUNT_SWITCH);
    return 0;
}

SEC("tp_btf/sched_waking")
int count_waking(void *ctx)
{
    hit(TB_COUNT_WAKING);
    return 0;
}

SEC("tp_btf/sched_wakeup_new")
int count_wakeup_new(void *ctx)
{
    hit(TB_COUNT_WAKEUP_NEW);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(count_fork, struct task_struct *parent, struct task_struct *child)
{
    __u32 tid;
    __u8 one = 1;

    /* The fork tracepoint runs in the parent, so "current" is the parent. */
    if (!hit(TB_COUNT_FORK) && (__u32)(bpf_get_current_pid_tgid() >> 32) != launcher_tgid)
        return 0;
    tid = (__u32)child->pid;
    if (bpf_map_update_elem(&tree, &tid, &one, BPF_ANY))
        add(TB_COUNT_SLOT_OVERFLOW);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int count_exit(void *ctx)
{
    hit(TB_COUNT_EXIT);
    return 0;
}
