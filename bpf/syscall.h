/*
 * syscall.h - records of the syscall unit (bpf/syscall.bpf.c ->
 * producers/ftrace/syscall_source.c): raw_syscalls sys_enter/sys_exit.
 */
#ifndef TB_BPF_SYSCALL_H
#define TB_BPF_SYSCALL_H

#include "record.h"

/* Syscall numbers the in-kernel syscall-set filter can name (bitmap bits). */
#define TB_SYSCALL_MAX 1024

/* struct tb_sys_enter - TB_REC_SYS_ENTER; the six argument registers. */
struct tb_sys_enter {
    struct tb_rec_hdr hdr;
    __s64 id;
    __u64 args[6];
};

/* struct tb_sys_exit - TB_REC_SYS_EXIT. */
struct tb_sys_exit {
    struct tb_rec_hdr hdr;
    __s64 id;
    __s64 ret;
};

#endif /* TB_BPF_SYSCALL_H */
