/*
 * ftrace_filter.h - the in-kernel filters of a linux.ftrace data source, read
 * from its FtraceConfig: tids_to_trace (pid filter, children followed),
 * syscall_events (the syscall set) and traced-bpf's tracebpf_filter extension
 * (comm, cgroup path). Resolves names to what the BPF units compare against:
 * tgids, syscall numbers (x86_64 table, numbers accepted as well) and the
 * cgroup v2 id.
 */
#ifndef TB_PRODUCERS_FTRACE_FTRACE_FILTER_H
#define TB_PRODUCERS_FTRACE_FTRACE_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "perfetto/config/ftrace/ftrace_config.pb-c.h"
#include "producers/ftrace/bpf_unit.h"

/*
 * struct tb_ftrace_filter - a resolved filter. @bpf points into the other
 * members (owned here), so pass &f->bpf to tb_bpf_probes_opts.filter and
 * keep @f alive while it is used.
 */
struct tb_ftrace_filter {
    struct tb_bpf_filter bpf;
    pid_t *tgids;
    uint32_t *syscalls;
    char comm[16];
};

/*
 * tb_ftrace_filter_parse() - resolve the filters of @fc into @f.
 * @fc:  the data source's FtraceConfig (borrowed; NULL = no filter).
 * @f:   zeroed by the call; release with tb_ftrace_filter_release().
 * @err: receives one line naming the bad value on -EINVAL / -ENOENT.
 * A tid in tids_to_trace is replaced by its process (tgid) when /proc knows
 * it; a pid that no longer exists is kept (its filter entry matches nothing).
 * Return: 0; -EINVAL for a comm over 15 characters, more than one comm or
 * cgroup, an unknown syscall name or a number >= TB_SYSCALL_MAX; -ENOENT for
 * a cgroup path that does not exist; -ENOTDIR / -EMEDIUMTYPE for one that is
 * not a cgroup v2 directory; -ENOMEM. Context: any; reads /proc and stats
 * the cgroup path.
 */
int tb_ftrace_filter_parse(const Perfetto__Protos__FtraceConfig *fc, struct tb_ftrace_filter *f,
                           char *err, size_t errlen);

/* tb_ftrace_filter_release() - free what @f owns and zero it. NULL ok. */
void tb_ftrace_filter_release(struct tb_ftrace_filter *f);

/*
 * tb_ftrace_filter_syscall_nr() - syscall number of @name: "read",
 * "sys_read" or a decimal number. x86_64 names only.
 * Return: the number (>= 0), or -EINVAL when unknown.
 */
int tb_ftrace_filter_syscall_nr(const char *name);

/*
 * tb_ftrace_filter_cgroup_id() - the id BPF sees for the cgroup v2
 * directory @path (its inode number, which is the kernfs id
 * bpf_get_current_cgroup_id() and task->cgroups->dfl_cgrp->kn->id give).
 * @path: absolute ("/sys/fs/cgroup/unified/user.slice"), or relative to the
 * cgroup2 mount ("user.slice", or "/user.slice" as /proc/PID/cgroup prints
 * it when no such absolute path exists).
 * @resolved/@len: receive the directory used (may be NULL).
 * Return: 0, -ENOENT, -ENOTDIR, -EMEDIUMTYPE (not on cgroup2), -ENODEV (no
 * cgroup2 mount for a relative path).
 */
int tb_ftrace_filter_cgroup_id(const char *path, uint64_t *id, char *resolved, size_t len);

#endif /* TB_PRODUCERS_FTRACE_FTRACE_FILTER_H */
