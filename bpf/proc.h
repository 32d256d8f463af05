/*
 * proc.h - records of the process-lifecycle unit (bpf/proc.bpf.c ->
 * producers/ftrace/proc_source.c): sched_process_fork/exec/exit/free,
 * task_newtask and task_rename. The fork and newtask programs also keep the
 * traced-tgid map current, so a pid filter follows the children.
 */
#ifndef TB_BPF_PROC_H
#define TB_BPF_PROC_H

#include "record.h"

/* Bytes of the exec filename kept (longer paths are cut, NUL-terminated). */
#define TB_EXEC_FILENAME_LEN 128

/* struct tb_proc_fork - TB_REC_PROC_FORK. */
struct tb_proc_fork {
    struct tb_rec_hdr hdr;
    __s32 parent_pid;
    __s32 child_pid;
    __s32 child_tgid;
    __s32 pad;
    char parent_comm[TB_COMM_LEN];
    char child_comm[TB_COMM_LEN];
};

/* struct tb_proc_exec - TB_REC_PROC_EXEC. */
struct tb_proc_exec {
    struct tb_rec_hdr hdr;
    __s32 pid;
    __s32 old_pid;
    char filename[TB_EXEC_FILENAME_LEN];
};

/* struct tb_proc_exit - TB_REC_PROC_EXIT or TB_REC_PROC_FREE. */
struct tb_proc_exit {
    struct tb_rec_hdr hdr;
    __s32 pid;
    __s32 tgid;
    __s32 prio;
    __s32 pad;
    char comm[TB_COMM_LEN];
};

/* struct tb_task_newtask - TB_REC_TASK_NEWTASK. */
struct tb_task_newtask {
    struct tb_rec_hdr hdr;
    __s32 pid;
    __s32 oom_score_adj;
    __u64 clone_flags;
    char comm[TB_COMM_LEN];
};

/* struct tb_task_rename - TB_REC_TASK_RENAME. */
struct tb_task_rename {
    struct tb_rec_hdr hdr;
    __s32 pid;
    __s32 oom_score_adj;
    char oldcomm[TB_COMM_LEN];
    char newcomm[TB_COMM_LEN];
};

#endif /* TB_BPF_PROC_H */
