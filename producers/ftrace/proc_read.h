/*
 * proc_read.h - the /proc files linux.process_stats (proc_ds.c) reads for
 * one task: its status (name, tgid, ppid, uid, namespaced pids) and its
 * cgroup v2 path. Plain readers: no trace encoding here.
 */
#ifndef TB_PRODUCERS_FTRACE_PROC_READ_H
#define TB_PRODUCERS_FTRACE_PROC_READ_H

#include <stddef.h>
#include <sys/types.h>

/* Namespace levels kept from an NSpid line; deeper nesting is cut. */
#define TB_PROC_MAX_NS 8

/*
 * struct tb_proc_status - what /proc/<pid>/status says about one task.
 * @uid: the real uid, -1 when the file has none. @ns: the NSpid line, the
 * outermost namespace first (@ns[0] is the pid as this process sees it).
 */
struct tb_proc_status {
    char name[64];
    pid_t tgid;
    pid_t ppid;
    int uid;
    int ns[TB_PROC_MAX_NS];
    int nr_ns;
};

/**
 * tb_proc_read_status() - parse a status file.
 * @path: "/proc/<pid>/status" or "/proc/<pid>/task/<tid>/status" (borrowed).
 * @st: filled (zeroed first, @st->uid -1) even on failure.
 *
 * Return: 0, or the negative errno of opening @path (-ENOENT: the task is
 * gone). Not logged: a task vanishing mid-scan is routine.
 */
int tb_proc_read_status(const char *path, struct tb_proc_status *st);

/**
 * tb_proc_read_cgroup() - the cgroup v2 path of a process or a thread, as
 * the "0::" line of its cgroup file shows it.
 * @pid: the process.
 * @tid: one of its threads, or 0 for the process itself.
 * @out: receives the path, NUL-terminated; empty when there is none (cgroup
 *       v1 only, or the task is gone). Truncated to @len.
 * @len: size of @out.
 */
void tb_proc_read_cgroup(pid_t pid, pid_t tid, char *out, size_t len);

#endif /* TB_PRODUCERS_FTRACE_PROC_READ_H */
