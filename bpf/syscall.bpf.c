/*
 * syscall.bpf.c - raw_syscalls sys_enter/sys_exit into the shared rings as
 * bpf/syscall.h records, with an in-kernel syscall-set filter (a bitmap in
 * rodata) on top of the pid/comm/cgroup filters of common.bpf.h.
 */
#include "common.bpf.h"
#include "syscall.h"

/* libbpf 1.1 has no PT_REGS_PARM6_CORE_SYSCALL; the register is per arch. */
#if defined(__TARGET_ARCH_x86)
/* Direct reads: the tracepoint's regs is a trusted BTF pointer. */
#define TB_SYSCALL_ARGS(r, regs)   \
    do {                           \
        (r).args[0] = (regs)->di;  \
        (r).args[1] = (regs)->si;  \
        (r).args[2] = (regs)->dx;  \
        (r).args[3] = (regs)->r10; \
        (r).args[4] = (regs)->r8;  \
        (r).args[5] = (regs)->r9;  \
    } while (0)
#define TB_SYSCALL_NR(regs) ((regs)->orig_ax)
#else
#if defined(__TARGET_ARCH_arm64)
#define TB_SYSCALL_ARG6(regs) BPF_CORE_READ((struct user_pt_regs *)(regs), regs[5])
#define TB_SYSCALL_NR(regs)   BPF_CORE_READ(regs, syscallno)
#else
#define TB_SYSCALL_ARG6(regs) 0
#define TB_SYSCALL_NR(regs)   -1
#endif
#define TB_SYSCALL_ARGS(r, regs)                        \
    do {                                                \
        (r).args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs); \
        (r).args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs); \
        (r).args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs); \
        (r).args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs); \
        (r).args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs); \
        (r).args[5] = TB_SYSCALL_ARG6(regs);            \
    } while (0)
#endif

const volatile bool tb_filter_syscalls = false;
const volatile __u64 tb_syscall_mask[TB_SYSCALL_MAX / 64] = {};

static __always_inline bool tb_syscall_allowed(long id)
{
    if (!tb_filter_syscalls)
        return true;
    if (id < 0 || id >= TB_SYSCALL_MAX)
        return false;
    return tb_syscall_mask[(__u32)id / 64] & (1ull << ((__u32)id % 64));
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tb_sys_enter, struct pt_regs *regs, long id)
{
    struct tb_sys_enter r;

    if (!tb_syscall_allowed(id) || !tb_current_allowed())
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_SYS_ENTER, tb_current()->pid))
        return 0;
    r.id = id;
    TB_SYSCALL_ARGS(r, regs);
    tb_output(&r, sizeof(r));
    return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tb_sys_exit, struct pt_regs *regs, long ret)
{
    long id = TB_SYSCALL_NR(regs);
    struct tb_sys_exit r;

    if (!tb_syscall_allowed(id) || !tb_current_allowed())
        return 0;
    if (!tb_hdr(&r.hdr, TB_REC_SYS_EXIT, tb_current()->pid))
        return 0;
    r.id = id;
    r.ret = ret;
    tb_output(&r, sizeof(r));
    return 0;
}
