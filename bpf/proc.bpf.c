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
    tgid = parent->tgid;
    if (!bpf_map_lookup_elem(&tb_tgids, &tgid))
        return;
    tgid = child->tgid;
    bpf_map_update_elem(&tb_tgids, &tgid, &one, BPF_ANY);
}

SEC("tp_btf/task_newtask")
int BPF_PROG(tb_task_newtask, struct task_struct *task, __u64 clone_flags)
{
    struct task_struct *cur = tb_current();
    struct tb_task_newtask r;

    tb_follow_child(cur, task);
    if (!tb_task_allowed(task))
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_TASK_NEWTASK, cur->pid))
        return 0;
    r.pid = task->pid;
    r.oom_score_adj = task->signal->oom_score_adj;
    r.clone_flags = clone_flags;
    __builtin_memcpy(r.comm, task->comm, TB_COMM_LEN);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tb_proc_fork, struct task_struct *parent, struct task_struct *child)
{
    struct tb_proc_fork r;

    tb_follow_child(parent, child);
    if (!tb_task_allowed(parent) && !tb_task_allowed(child))
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_PROC_FORK, tb_current()->pid))
        return 0;
    r.parent_pid = parent->pid;
    r.child_pid = child->pid;
    r.child_tgid = child->tgid;
    r.pad = 0;
    __builtin_memcpy(r.parent_comm, parent->comm, TB_COMM_LEN);
    __builtin_memcpy(r.child_comm, child->comm, TB_COMM_LEN);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tb_proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct tb_proc_exec r;

    if (!tb_task_allowed(p))
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_PROC_EXEC, tb_current()->pid))
        return 0;
    r.pid = p->pid;
    r.old_pid = old_pid;
    bpf_probe_read_kernel_str(r.filename, sizeof(r.filename), bprm->filename);
    tb_output(&r, sizeof(r));
    return 0;
}

static __always_inline int tb_emit_exit(struct task_struct *p, __u16 type)
{
    struct tb_proc_exit r;

    if (!tb_task_allowed(p))
        return 0;
    if (!tb_hdr(&r.hdr, type, tb_current()->pid))
        return 0;
    r.pid = p->pid;
    r.tgid = p->tgid;
    r.prio = p->prio;
    r.pad = 0;
    __builtin_memcpy(r.comm, p->comm, TB_COMM_LEN);
    tb_output(&r, sizeof(r));
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
    __u32 pid = p->pid, tgid = p->tgid;

    tb_emit_exit(p, TB_REC_PROC_FREE);
    /* The leader is freed last, so the whole group is gone. */
    if (tb_filter_tgid && pid == tgid)
        bpf_map_delete_elem(&tb_tgids, &tgid);
    return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(tb_task_rename, struct task_struct *task, const char *comm)
{
    struct tb_task_rename r;

    if (!tb_task_allowed(task))
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_TASK_RENAME, tb_current()->pid))
        return 0;
    r.pid = task->pid;
    r.oom_score_adj = task->signal->oom_score_adj;
    __builtin_memcpy(r.oldcomm, task->comm, TB_COMM_LEN);
    bpf_probe_read_kernel_str(r.newcomm, sizeof(r.newcomm), comm);
    tb_output(&r, sizeof(r));
    return 0;
}
