/*
 * count.c - tb_bench_count, the benchmark's workload launcher and
 * independent event counter. It attaches count.bpf.c, starts the workload
 * command with its first task already in the counter's tree, waits for it,
 * and writes what the kernel counted (whole system and workload tree) as
 * JSON, plus the thread ids of the tree so a tracer's output can be filtered
 * to the same tasks.
 *
 *   tb_bench_count -o counts.json [-p tids.txt] -- cmd [args...]
 *
 * The exit status is the workload's. The workload's stdout and stderr are
 * inherited, so its own report (perf bench "Total time") reaches the caller.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "count.h"
#include "tb_bench_count.skel.h"

static const char *const tp_names[TB_COUNT_TPS] = {
    "sched_switch", "sched_waking", "sched_wakeup_new", "sched_process_fork", "sched_process_exit",
};

#define FINAL_SWITCH_GRACE_US 50000

struct totals {
    uint64_t slot[TB_COUNT_SLOTS];
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sums the per-CPU values of every slot. */
static int read_totals(struct tb_bench_count_bpf *skel, struct totals *t)
{
    int ncpu = libbpf_num_possible_cpus();
    uint64_t *vals = NULL;
    int err = 0;

    if (ncpu <= 0)
        return ncpu ? ncpu : -EINVAL;
    vals = calloc((size_t)ncpu, sizeof(*vals));
    if (!vals)
        return -ENOMEM;
    memset(t, 0, sizeof(*t));
    for (uint32_t s = 0; s < TB_COUNT_SLOTS; s++) {
        if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.counts), &s, vals)) {
            err = -errno;
            fprintf(stderr, "tb_bench_count: reading slot %u: %s\n", s, strerror(-err));
            goto out;
        }
        for (int c = 0; c < ncpu; c++)
            t->slot[s] += vals[c];
    }
out:
    free(vals);
    return err;
}

/* Writes the tree's thread ids, one a line; returns how many or -errno. */
static long write_tids(struct tb_bench_count_bpf *skel, const char *path)
{
    int fd = bpf_map__fd(skel->maps.tree);
    uint32_t key, next;
    void *prev = NULL;
    long n = 0;
    FILE *f;

    f = path ? fopen(path, "w") : NULL;
    if (path && !f) {
        fprintf(stderr, "tb_bench_count: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    while (!bpf_map_get_next_key(fd, prev, &next)) {
        if (f)
            fprintf(f, "%u\n", next);
        key = next;
        prev = &key;
        n++;
    }
    if (f && fclose(f))
        return -errno;
    return n;
}

static int write_json(const char *path, const struct totals *t, double elapsed, int status,
                      long tasks)
{
    uint64_t all = 0, tree = 0;
    FILE *f = fopen(path, "w");

    if (!f) {
        fprintf(stderr, "tb_bench_count: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    fprintf(f, "{\"elapsed_s\": %.6f, \"status\": %d, \"tree_tasks\": %ld,\n", elapsed, status,
            tasks);
    fprintf(f, " \"tree_overflow\": %llu,\n", (unsigned long long)t->slot[TB_COUNT_SLOT_OVERFLOW]);
    fprintf(f, " \"all\": {");
    for (int i = 0; i < TB_COUNT_TPS; i++) {
        all += t->slot[TB_COUNT_SLOT_ALL(i)];
        fprintf(f, "\"%s\": %llu, ", tp_names[i],
                (unsigned long long)t->slot[TB_COUNT_SLOT_ALL(i)]);
    }
    fprintf(f, "\"total\": %llu},\n \"workload\": {", (unsigned long long)all);
    for (int i = 0; i < TB_COUNT_TPS; i++) {
        tree += t->slot[TB_COUNT_SLOT_TREE(i)];
        fprintf(f, "\"%s\": %llu, ", tp_names[i],
                (unsigned long long)t->slot[TB_COUNT_SLOT_TREE(i)]);
    }
    fprintf(f, "\"total\": %llu}}\n", (unsigned long long)tree);
    return fclose(f) ? -errno : 0;
}

/* Forks and execs the workload; returns the child's pid or -errno. */
static pid_t start_workload(char **argv)
{
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "tb_bench_count: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static void usage(void)
{
    fprintf(stderr, "usage: tb_bench_count -o counts.json [-p tids.txt] -- cmd [args...]\n");
}

int main(int argc, char **argv)
{
    const char *json = NULL, *tids = NULL;
    struct tb_bench_count_bpf *skel = NULL;
    int err = 0, status = 0, opt;
    struct totals t;
    double t0, t1;
    long tasks;
    pid_t pid;

    while ((opt = getopt(argc, argv, "+o:p:h")) != -1) {
        switch (opt) {
        case 'o':
            json = optarg;
            break;
        case 'p':
            tids = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!json || optind >= argc) {
        usage();
        return 2;
    }
    skel = tb_bench_count_bpf__open();
    if (!skel) {
        err = -errno;
        fprintf(stderr, "tb_bench_count: opening count.bpf.o: %s\n", strerror(-err));
        goto out;
    }
    /* Our own fork is how the workload's first task enters the tree. */
    skel->rodata->launcher_tgid = (uint32_t)getpid();
    err = tb_bench_count_bpf__load(skel);
    if (err) {
        fprintf(stderr, "tb_bench_count: loading count.bpf.o: %s\n", strerror(-err));
        goto out;
    }
    err = tb_bench_count_bpf__attach(skel);
    if (err) {
        fprintf(stderr, "tb_bench_count: attaching: %s\n", strerror(-err));
        goto out;
    }
    t0 = now_s();
    pid = start_workload(argv + optind);
    if (pid < 0) {
        err = pid;
        fprintf(stderr, "tb_bench_count: starting %s: %s\n", argv[optind], strerror(-err));
        goto out;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            err = -errno;
            goto out;
        }
    }
    t1 = now_s();
    /*
     * The workload's last task is reaped before it has switched away for
     * the last time (exit wakes the parent, then schedules); give that final
     * sched_switch time to happen before the counter stops looking.
     */
    usleep(FINAL_SWITCH_GRACE_US);
    /* Detach first so the totals and the tree stop moving while read. */
    tb_bench_count_bpf__detach(skel);
    err = read_totals(skel, &t);
    if (err)
        goto out;
    tasks = write_tids(skel, tids);
    if (tasks < 0) {
        err = (int)tasks;
        goto out;
    }
    err = write_json(json, &t, t1 - t0, WIFEXITED(status) ? WEXITSTATUS(status) : -1, tasks);
out:
    tb_bench_count_bpf__destroy(skel);
    if (err)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
