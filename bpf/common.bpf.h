/*
 * common.bpf.h - what every BPF unit shares on the kernel side: the per-CPU
 * ring buffers (an ARRAY_OF_MAPS keyed by ring index), the per-CPU loss
 * counters, the traced-tgid map, the in-kernel filters and the output
 * helpers that count every record and every failed one.
 *
 * The maps are created once by user space (producers/ftrace/bpf_rings.c) and
 * handed to every unit's object with bpf_map__reuse_fd() before load, so all
 * units write into the same rings and counters.
 */
#ifndef TB_BPF_COMMON_BPF_H
#define TB_BPF_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "record.h"

char LICENSE[] SEC("license") = "GPL";

/* Template only: the real rings are created by user space at its size. */
struct tb_ring_map {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, TB_RING_DEFAULT_BYTES);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1);
    __type(key, __u32);
    __array(values, struct tb_ring_map);
} tb_rings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tb_bpf_stats);
} tb_stats SEC(".maps");

/* tgids whose events pass the pid filter; fork/newtask add the children. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);
    __type(value, __u8);
} tb_tgids SEC(".maps");

/* Filters, written by user space between open and load (rodata). */
const volatile __u32 tb_cpus_per_ring = 1;
const volatile __u64 tb_wakeup_bytes = TB_RING_DEFAULT_BYTES / 2;
/* Record types user space asked for (bit 1 << TB_REC_*); a program may run
 * only for upkeep (the tgid map) without writing its record. */
const volatile __u32 tb_events = ~0u;
const volatile bool tb_filter_tgid = false;
const volatile bool tb_filter_comm = false;
const volatile char tb_targ_comm[TB_COMM_LEN] = {};
const volatile bool tb_filter_cgroup = false;
const volatile __u64 tb_targ_cgroup = 0;

static __always_inline bool tb_comm_eq(const char *comm)
{
    for (int i = 0; i < TB_COMM_LEN; i++) {
        if (comm[i] != tb_targ_comm[i])
            return false;
        if (!comm[i])
            break;
    }
    return true;
}

static __always_inline __u64 tb_task_cgroup(struct task_struct *t)
{
    return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

/*
 * tb_task_allowed() - does @t pass every enabled filter? Disabled filters are
 * constants after load, so the verifier drops their code entirely.
 */
static __always_inline bool tb_task_allowed(struct task_struct *t)
{
    if (!t)
        return false;
    if (tb_filter_tgid) {
        __u32 tgid = BPF_CORE_READ(t, tgid);
        if (!bpf_map_lookup_elem(&tb_tgids, &tgid))
            return false;
    }
    if (tb_filter_comm) {
        char comm[TB_COMM_LEN];
        BPF_CORE_READ_STR_INTO(&comm, t, comm);
        if (!tb_comm_eq(comm))
            return false;
    }
    if (tb_filter_cgroup && tb_task_cgroup(t) != tb_targ_cgroup)
        return false;
    return true;
}

static __always_inline bool tb_current_allowed(void)
{
    if (!tb_filter_tgid && !tb_filter_comm && !tb_filter_cgroup)
        return true;
    return tb_task_allowed(bpf_get_current_task_btf());
}

/*
 * Every unit builds its record on the stack and hands it over with one
 * bpf_ringbuf_output() call instead of reserve + probe reads + submit. On
 * this kernel every helper call costs a return through the SRSO "safe RET"
 * thunk, so the count of calls, not the bytes moved, is what a record
 * costs: task fields are read directly too (tp_btf arguments are trusted
 * BTF pointers) rather than through probe reads.
 */

/*
 * tb_hdr() - fill @h for a record of @type by task @pid on this CPU.
 * Return: false if user space did not ask for @type (nothing is counted).
 */
static __always_inline bool tb_hdr(struct tb_rec_hdr *h, __u16 type, __u32 pid)
{
    if (!(tb_events & (1u << type)))
        return false;
    h->ts = bpf_ktime_get_boot_ns();
    h->type = type;
    h->cpu = bpf_get_smp_processor_id();
    h->pid = pid;
    return true;
}

/*
 * tb_output() - copy the @size byte record at @rec into its CPU's ring,
 * counting the attempt in total and a failure in dropped, waking the reader
 * only when the ring is half full. The fill level is checked on every record:
 * checking every 8th or 64th saved nothing measurable and let the rings
 * overflow under load (probes_bench dropped records, this way none).
 */
static __always_inline void tb_output(void *rec, __u32 size)
{
    const struct tb_rec_hdr *h = rec;
    __u32 zero = 0, idx = h->cpu / (tb_cpus_per_ring ? tb_cpus_per_ring : 1);
    struct tb_bpf_stats *st = bpf_map_lookup_elem(&tb_stats, &zero);
    __u64 flags = BPF_RB_NO_WAKEUP;
    void *ring;

    if (st)
        __sync_fetch_and_add(&st->total, 1);
    ring = bpf_map_lookup_elem(&tb_rings, &idx);
    if (ring && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= tb_wakeup_bytes)
        flags = BPF_RB_FORCE_WAKEUP;
    if (!ring || bpf_ringbuf_output(ring, rec, size, flags)) {
        if (st)
            __sync_fetch_and_add(&st->dropped, 1);
    }
}

/* tb_current() - the running task, as a trusted pointer for direct reads. */
static __always_inline struct task_struct *tb_current(void)
{
    return bpf_get_current_task_btf();
}

#endif /* TB_BPF_COMMON_BPF_H */
