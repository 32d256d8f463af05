/*
 * proc.bpf.c - process lifecycle tracepoints (sched_process_fork/exec/exit/
 * free, task_newtask, task_rename) into the shared rings as bpf/proc.h
 * records. With the pid filter on, newtask and fork add the child's tgid to
 * tb_tgids when the parent is traced, so the filter follows the children;
 * the entry goes when the thread-group leader is freed.
 */
#include "common.bpf.h"
#include "proc.h"

static __always_inline void tb_follow_child(struct task_struct *parent, struct task_struct *child)
{
    __u32 tgid;
    __u8 one = 1;

    if (!tb_filter_tgid)
        return;
    tgid = BPF_CORE_READ(parent, tgid);
    if (!bpf_map_lookup_elem(&tb_tgids, &tgid))
        return;
    tgid = BPF_CORE_READ(child, tgid);
    bpf_map_update_elem(&tb_tgids, &tgid, &one, BPF_ANY);
}

SEC("tp_btf/task_newtask")
int BPF_PROG(tb_task_newtask, struct task_struct *task, __u64 clone_flags)
{
    struct task_struct *cur = bpf_get_current_task_btf();
    struct tb_task_newtask *r;
    struct tb_slot s;

    tb_follow_child(cur, task);
    if (!tb_task_allowed(task))
        return 0;
    if (!tb_reserve(&s, sizeof(*r), TB_REC_TASK_NEWTASK))
        return 0;
    r = s.rec;
    r->pid = BPF_CORE_READ(task, pid);
    r->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
    r->clone_flags = clone_flags;
    BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
    tb_submit(&s);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tb_proc_fork, struct task_struct *parent, struct task_struct *child)
{
    struct tb_proc_fork *r;
    struct tb_slot s;

    tb_follow_child(parent, child);
    if (!tb_task_allowed(parent) && !tb_task_allowed(child))
        return 0;
    if (!tb_reserve(&s, sizeof(*r), TB_REC_PROC_FORK))
        return 0;
    r = s.rec;
    r->parent_pid = BPF_CORE_READ(parent, pid);
    r->child_pid = BPF_CORE_READ(child, pid);
    r->child_tgid = BPF_CORE_READ(child, tgid);
    r->pad = 0;
    BPF_CORE_READ_STR_INTO(&r->parent_comm, parent, comm);
    BPF_CORE_READ_STR_INTO(&r->child_comm, child, comm);
    tb_submit(&s);
    return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tb_proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct tb_proc_exec *r;
    struct tb_slot s;

    if (!tb_task_allowed(p))
        return 0;
    if (!tb_reserve(&s, sizeof(*r), TB_REC_PROC_EXEC))
        return 0;
    r = s.rec;
    r->pid = BPF_CORE_READ(p, pid);
    r->old_pid = old_pid;
    bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), BPF_CORE_READ(bprm, filename));
    tb_submit(&s);
    return 0;
}

static __always_inline int tb_emit_exit(struct task_struct *p, __u16 type)
{
    struct tb_proc_exit *r;
    struct tb_slot s;

    if (!tb_task_allowed(p))
        return 0;
    if (!tb_reserve(&s, sizeof(*r), type))
        return 0;
    r = s.rec;
    r->pid = BPF_CORE_READ(p, pid);
    r->tgid = BPF_CORE_READ(p, tgid);
    r->prio = BPF_CORE_READ(p, prio);
    r->pad = 0;
    BPF_CORE_READ_STR_INTO(&r->comm, p, comm);
    tb_submit(&s);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tb_proc_exit, struct task_struct *p)
{
    return tb_emit_exit(p, TB_REC_PROC_EXIT);
}

SEC("tp_btf/sched_process_free")
int BPF_PROG(tb_proc_free, struct task_struct *p)
{
    __u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);

    tb_emit_exit(p, TB_REC_PROC_FREE);
    /* The leader is freed last, so the whole group is gone. */
    if (tb_filter_tgid && pid == tgid)
        bpf_map_delete_elem(&tb_tgids, &tgid);
    return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(tb_task_rename, struct task_struct *task, const char *comm)
{
    struct tb_task_rename *r;
    struct tb_slot s;

    if (!tb_task_allowed(task))
        return 0;
    if (!tb_reserve(&s, sizeof(*r), TB_REC_TASK_RENAME))
        return 0;
    r = s.rec;
    r->pid = BPF_CORE_READ(task, pid);
    r->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
    BPF_CORE_READ_STR_INTO(&r->oldcomm, task, comm);
    bpf_probe_read_kernel_str(r->newcomm, sizeof(r->newcomm), comm);
    tb_submit(&s);
    return 0;
}
