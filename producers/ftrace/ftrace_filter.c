/*
 * ftrace_filter.c - FtraceConfig filters -> struct tb_bpf_filter: pids to
 * tgids, syscall names to numbers, the cgroup path to its cgroup v2 id, the
 * comm checked against what the BPF side holds (one name, 15 characters).
 */
#include "producers/ftrace/ftrace_filter.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "bpf/syscall.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#ifdef __x86_64__
#include <asm/unistd_64.h>

/* The names the kernel's uapi header has, in its order. */
// clang-format off
#define S(n) {#n, __NR_##n}
static const struct {
    const char *name;
    int nr;
} syscalls[] = {
    S(read), S(write), S(open), S(close), S(stat), S(fstat), S(lstat), S(poll), S(lseek), S(mmap),
    S(mprotect), S(munmap), S(brk), S(rt_sigaction), S(rt_sigprocmask), S(rt_sigreturn), S(ioctl),
    S(pread64), S(pwrite64), S(readv), S(writev), S(access), S(pipe), S(select), S(sched_yield),
    S(mremap), S(msync), S(mincore), S(madvise), S(shmget), S(shmat), S(shmctl), S(dup), S(dup2),
    S(pause), S(nanosleep), S(getitimer), S(alarm), S(setitimer), S(getpid), S(sendfile), S(socket),
    S(connect), S(accept), S(sendto), S(recvfrom), S(sendmsg), S(recvmsg), S(shutdown), S(bind),
    S(listen), S(getsockname), S(getpeername), S(socketpair), S(setsockopt), S(getsockopt),
    S(clone), S(fork), S(vfork), S(execve), S(exit), S(wait4), S(kill), S(uname), S(semget),
    S(semop), S(semctl), S(shmdt), S(msgget), S(msgsnd), S(msgrcv), S(msgctl), S(fcntl), S(flock),
    S(fsync), S(fdatasync), S(truncate), S(ftruncate), S(getdents), S(getcwd), S(chdir), S(fchdir),
    S(rename), S(mkdir), S(rmdir), S(creat), S(link), S(unlink), S(symlink), S(readlink), S(chmod),
    S(fchmod), S(chown), S(fchown), S(lchown), S(umask), S(gettimeofday), S(getrlimit),
    S(getrusage), S(sysinfo), S(times), S(ptrace), S(getuid), S(syslog), S(getgid), S(setuid),
    S(setgid), S(geteuid), S(getegid), S(setpgid), S(getppid), S(getpgrp), S(setsid), S(setreuid),
    S(setregid), S(getgroups), S(setgroups), S(setresuid), S(getresuid), S(setresgid), S(getresgid),
    S(getpgid), S(setfsuid), S(setfsgid), S(getsid), S(capget), S(capset), S(rt_sigpending),
    S(rt_sigtimedwait), S(rt_sigqueueinfo), S(rt_sigsuspend), S(sigaltstack), S(utime), S(mknod),
    S(uselib), S(personality), S(ustat), S(statfs), S(fstatfs), S(sysfs), S(getpriority),
    S(setpriority), S(sched_setparam), S(sched_getparam), S(sched_setscheduler),
    S(sched_getscheduler), S(sched_get_priority_max), S(sched_get_priority_min),
    S(sched_rr_get_interval), S(mlock), S(munlock), S(mlockall), S(munlockall), S(vhangup),
    S(modify_ldt), S(pivot_root), S(_sysctl), S(prctl), S(arch_prctl), S(adjtimex), S(setrlimit),
    S(chroot), S(sync), S(acct), S(settimeofday), S(mount), S(umount2), S(swapon), S(swapoff),
    S(reboot), S(sethostname), S(setdomainname), S(iopl), S(ioperm), S(create_module),
    S(init_module), S(delete_module), S(get_kernel_syms), S(query_module), S(quotactl),
    S(nfsservctl), S(getpmsg), S(putpmsg), S(afs_syscall), S(tuxcall), S(security), S(gettid),
    S(readahead), S(setxattr), S(lsetxattr), S(fsetxattr), S(getxattr), S(lgetxattr), S(fgetxattr),
    S(listxattr), S(llistxattr), S(flistxattr), S(removexattr), S(lremovexattr), S(fremovexattr),
    S(tkill), S(time), S(futex), S(sched_setaffinity), S(sched_getaffinity), S(set_thread_area),
    S(io_setup), S(io_destroy), S(io_getevents), S(io_submit), S(io_cancel), S(get_thread_area),
    S(lookup_dcookie), S(epoll_create), S(epoll_ctl_old), S(epoll_wait_old), S(remap_file_pages),
    S(getdents64), S(set_tid_address), S(restart_syscall), S(semtimedop), S(fadvise64),
    S(timer_create), S(timer_settime), S(timer_gettime), S(timer_getoverrun), S(timer_delete),
    S(clock_settime), S(clock_gettime), S(clock_getres), S(clock_nanosleep), S(exit_group),
    S(epoll_wait), S(epoll_ctl), S(tgkill), S(utimes), S(vserver), S(mbind), S(set_mempolicy),
    S(get_mempolicy), S(mq_open), S(mq_unlink), S(mq_timedsend), S(mq_timedreceive), S(mq_notify),
    S(mq_getsetattr), S(kexec_load), S(waitid), S(add_key), S(request_key), S(keyctl),
    S(ioprio_set), S(ioprio_get), S(inotify_init), S(inotify_add_watch), S(inotify_rm_watch),
    S(migrate_pages), S(openat), S(mkdirat), S(mknodat), S(fchownat), S(futimesat), S(newfstatat),
    S(unlinkat), S(renameat), S(linkat), S(symlinkat), S(readlinkat), S(fchmodat), S(faccessat),
    S(pselect6), S(ppoll), S(unshare), S(set_robust_list), S(get_robust_list), S(splice), S(tee),
    S(sync_file_range), S(vmsplice), S(move_pages), S(utimensat), S(epoll_pwait), S(signalfd),
    S(timerfd_create), S(eventfd), S(fallocate), S(timerfd_settime), S(timerfd_gettime), S(accept4),
    S(signalfd4), S(eventfd2), S(epoll_create1), S(dup3), S(pipe2), S(inotify_init1), S(preadv),
    S(pwritev), S(rt_tgsigqueueinfo), S(perf_event_open), S(recvmmsg), S(fanotify_init),
    S(fanotify_mark), S(prlimit64), S(name_to_handle_at), S(open_by_handle_at), S(clock_adjtime),
    S(syncfs), S(sendmmsg), S(setns), S(getcpu), S(process_vm_readv), S(process_vm_writev), S(kcmp),
    S(finit_module), S(sched_setattr), S(sched_getattr), S(renameat2), S(seccomp), S(getrandom),
    S(memfd_create), S(kexec_file_load), S(bpf), S(execveat), S(userfaultfd), S(membarrier),
    S(mlock2), S(copy_file_range), S(preadv2), S(pwritev2), S(pkey_mprotect), S(pkey_alloc),
    S(pkey_free), S(statx), S(io_pgetevents), S(rseq), S(pidfd_send_signal), S(io_uring_setup),
    S(io_uring_enter), S(io_uring_register), S(open_tree), S(move_mount), S(fsopen), S(fsconfig),
    S(fsmount), S(fspick), S(pidfd_open), S(clone3), S(close_range), S(openat2), S(pidfd_getfd),
    S(faccessat2), S(process_madvise), S(epoll_pwait2), S(mount_setattr), S(quotactl_fd),
    S(landlock_create_ruleset), S(landlock_add_rule), S(landlock_restrict_self), S(memfd_secret),
    S(process_mrelease), S(futex_waitv), S(set_mempolicy_home_node)
};
#undef S
// clang-format on
#define NR_SYSCALLS (sizeof(syscalls) / sizeof(syscalls[0]))
#else
/* Other architectures: numbers only. */
static const struct {
    const char *name;
    int nr;
} syscalls[1] = {{NULL, -1}};
#define NR_SYSCALLS 0
#endif

int tb_ftrace_filter_syscall_nr(const char *name)
{
    unsigned long v;
    char *end;
    size_t i;

    if (!name || !*name)
        return -EINVAL;
    if (*name >= '0' && *name <= '9') {
        errno = 0;
        v = strtoul(name, &end, 10);
        if (errno || *end || v > INT_MAX)
            return -EINVAL;
        return (int)v;
    }
    /* Perfetto's syscall_events spell them "sys_read". */
    if (!strncmp(name, "sys_", 4))
        name += 4;
    for (i = 0; i < NR_SYSCALLS; i++) {
        if (!strcmp(syscalls[i].name, name))
            return syscalls[i].nr;
    }
    return -EINVAL;
}

/* The first cgroup2 mount point in /proc/self/mounts. */
static int cgroup2_mount(char *out, size_t len)
{
    char line[1024], dev[256], mnt[512], type[64];
    int ret = -ENODEV;
    FILE *f;

    f = fopen("/proc/self/mounts", "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%255s %511s %63s", dev, mnt, type) == 3 && !strcmp(type, "cgroup2")) {
            snprintf(out, len, "%s", mnt);
            ret = 0;
            break;
        }
    }
    fclose(f);
    return ret;
}

static int stat_cgroup(const char *path, uint64_t *id)
{
    struct statfs sfs;
    struct stat st;

    if (stat(path, &st))
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (statfs(path, &sfs))
        return -errno;
    if ((unsigned long)sfs.f_type != CGROUP2_SUPER_MAGIC)
        return -EMEDIUMTYPE;
    *id = st.st_ino;
    return 0;
}

int tb_ftrace_filter_cgroup_id(const char *path, uint64_t *id, char *resolved, size_t len)
{
    char mnt[512], full[PATH_MAX];
    int err, abs_err;

    if (!path || !*path)
        return -ENOENT;
    if (resolved)
        snprintf(resolved, len, "%s", path);
    abs_err = path[0] == '/' ? stat_cgroup(path, id) : -ENOENT;
    if (!abs_err)
        return 0;
    /* Relative, or "/a/b" within the hierarchy as /proc/PID/cgroup shows it. */
    err = cgroup2_mount(mnt, sizeof(mnt));
    if (!err &&
        snprintf(full, sizeof(full), "%s/%s", mnt, path + (path[0] == '/')) >= (int)sizeof(full))
        err = -ENAMETOOLONG;
    if (!err) {
        err = stat_cgroup(full, id);
        if (resolved)
            snprintf(resolved, len, "%s", full);
    }
    if (err && path[0] == '/') {
        if (resolved)
            snprintf(resolved, len, "%s", path);
        return abs_err;
    }
    return err;
}

/* The process @tid belongs to, or @tid when /proc does not know it. */
static pid_t tgid_of(pid_t tid)
{
    char path[64], line[128];
    pid_t tgid = tid;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", tid);
    f = fopen(path, "re");
    if (!f)
        return tid;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Tgid: %d", &tgid) == 1)
            break;
    }
    fclose(f);
    return tgid > 0 ? tgid : tid;
}

int tb_ftrace_filter_parse(const Perfetto__Protos__FtraceConfig *fc, struct tb_ftrace_filter *f,
                           char *err, size_t errlen)
{
    const Perfetto__Protos__FtraceConfig__TracebpfFilter *x;
    size_t i;
    int ret = 0, nr;

    memset(f, 0, sizeof(*f));
    if (errlen)
        err[0] = '\0';
    if (!fc)
        return 0;
    x = fc->tracebpf_filter;
    if (fc->n_tids_to_trace) {
        f->tgids = calloc(fc->n_tids_to_trace, sizeof(*f->tgids));
        if (!f->tgids) {
            ret = -ENOMEM;
            goto out;
        }
        for (i = 0; i < fc->n_tids_to_trace; i++) {
            if (!fc->tids_to_trace[i] || fc->tids_to_trace[i] > INT_MAX) {
                snprintf(err, errlen, "tids_to_trace: %u is not a pid", fc->tids_to_trace[i]);
                ret = -EINVAL;
                goto out;
            }
            f->tgids[i] = tgid_of((pid_t)fc->tids_to_trace[i]);
        }
        f->bpf.tgids = f->tgids;
        f->bpf.nr_tgids = fc->n_tids_to_trace;
    }
    if (fc->n_syscall_events) {
        f->syscalls = calloc(fc->n_syscall_events, sizeof(*f->syscalls));
        if (!f->syscalls) {
            ret = -ENOMEM;
            goto out;
        }
        for (i = 0; i < fc->n_syscall_events; i++) {
            nr = tb_ftrace_filter_syscall_nr(fc->syscall_events[i]);
            if (nr < 0 || nr >= TB_SYSCALL_MAX) {
                snprintf(err, errlen, "syscall_events: unknown syscall '%s'",
                         fc->syscall_events[i]);
                ret = -EINVAL;
                goto out;
            }
            f->syscalls[i] = (uint32_t)nr;
        }
        f->bpf.syscalls = f->syscalls;
        f->bpf.nr_syscalls = fc->n_syscall_events;
    }
    if (x && x->n_comm > 1) {
        snprintf(err, errlen, "tracebpf_filter: %zu comm values; the kernel filter holds one",
                 x->n_comm);
        ret = -EINVAL;
        goto out;
    }
    if (x && x->n_comm) {
        if (!x->comm[0][0] || strlen(x->comm[0]) >= sizeof(f->comm)) {
            snprintf(err, errlen, "tracebpf_filter: comm '%s' is not 1 to %zu characters",
                     x->comm[0], sizeof(f->comm) - 1);
            ret = -EINVAL;
            goto out;
        }
        memcpy(f->comm, x->comm[0], strlen(x->comm[0]) + 1);
        f->bpf.comm = f->comm;
    }
    if (x && x->n_cgroup_path > 1) {
        snprintf(err, errlen,
                 "tracebpf_filter: %zu cgroup_path values; the kernel filter holds one",
                 x->n_cgroup_path);
        ret = -EINVAL;
        goto out;
    }
    if (x && x->n_cgroup_path) {
        char where[PATH_MAX];

        where[0] = '\0';
        ret =
            tb_ftrace_filter_cgroup_id(x->cgroup_path[0], &f->bpf.cgroup_id, where, sizeof(where));
        if (ret) {
            snprintf(err, errlen, "tracebpf_filter: cgroup '%s'%s%s: %s", x->cgroup_path[0],
                     where[0] ? " at " : "", where,
                     ret == -EMEDIUMTYPE ? "not on a cgroup v2 hierarchy" : strerror(-ret));
            goto out;
        }
    }
out:
    if (ret)
        tb_ftrace_filter_release(f);
    return ret;
}

void tb_ftrace_filter_release(struct tb_ftrace_filter *f)
{
    if (!f)
        return;
    free(f->tgids);
    free(f->syscalls);
    memset(f, 0, sizeof(*f));
}
