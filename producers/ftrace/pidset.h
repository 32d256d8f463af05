/*
 * pidset.h - a set of pids as a bitmap grown to the largest pid added, for
 * linux.process_stats (proc_ds.c): the processes already described and the
 * tids of the first scan. O(1) on every fork of a busy system, at most
 * pid_max bits (512 KiB at 4M pids).
 */
#ifndef TB_PRODUCERS_FTRACE_PIDSET_H
#define TB_PRODUCERS_FTRACE_PIDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * struct tb_pidset - zero-initialised is the empty set. @bits (owned) holds
 * @words 64-bit words.
 */
struct tb_pidset {
    uint64_t *bits;
    size_t words;
};

/**
 * tb_pidset_has() - whether @pid is in @s.
 * @s: the set.
 * @pid: any pid; negative ones are never in a set.
 *
 * Return: true when @pid was added since the last tb_pidset_free().
 * Context: any; not thread-safe against tb_pidset_add() on the same set.
 */
bool tb_pidset_has(const struct tb_pidset *s, pid_t pid);

/**
 * tb_pidset_add() - put @pid into @s, growing the bitmap as needed.
 * @s: the set.
 * @pid: a pid; negative ones are ignored.
 *
 * On ENOMEM the pid is just not remembered (the caller may then describe a
 * process twice), so nothing is returned.
 * Context: any; not thread-safe.
 */
void tb_pidset_add(struct tb_pidset *s, pid_t pid);

/**
 * tb_pidset_free() - free the bitmap and leave @s empty (reusable).
 * @s: the set; an already empty set is a no-op.
 */
void tb_pidset_free(struct tb_pidset *s);

#endif /* TB_PRODUCERS_FTRACE_PIDSET_H */
