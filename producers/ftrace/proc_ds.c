/*
 * proc_ds.c - the linux.process_stats data source: a ProcessTree of every
 * process and thread in /proc at start and again every proc_stats_poll_ms
 * (10 s by default, so a trace whose ring wrapped still names its threads),
 * plus the threads the kernel data shows being forked, renamed or exec'd,
 * described as soon as the drain that saw them ends.
 *
 * Order with linux.ftrace in the same session: the producer starts this
 * source (first scan) before the BPF programs are armed, then calls
 * tb_proc_ds_armed(), which describes whatever appeared in between. From
 * then on a new task shows up in the kernel data (fork, exec, rename) and
 * reaches tb_proc_ds_thread_seen(); a thread whose process was never
 * described brings its whole process along.
 *
 * Every process, and every thread in another cgroup than its process,
 * carries its cgroup v2 path in the tracebpf_cgroup extension (10000).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/pb_writer.h"
#include "producers/ftrace/pidset.h"
#include "producers/ftrace/probes_producer.h"
#include "producers/ftrace/proc_read.h"

/* ProcessTree fields. */
#define PT_PROCESSES    1
#define PT_THREADS      2
#define PT_END_TS       3
#define PR_PID          1
#define PR_PPID         2
#define PR_CMDLINE      3
#define PR_UID          5
#define PR_NSPID        6
#define PR_IS_KTHREAD   8
#define PR_CMDLINE_COMM 9
#define TH_TID          1
#define TH_NAME         2
#define TH_TGID         3
#define TH_NSTID        4
/* Our extension on Process and Thread (process_tree.proto says why 10000). */
#define PT_TB_CGROUP 10000

#define DEFAULT_POLL_MS  10000u
#define PROCS_PER_PACKET 64u
#define MAX_SEEN         4096u

struct seen {
    pid_t tid;
    pid_t tgid;
    char comm[16];
};

struct proc_ds {
    struct tb_probes *p;
    struct tb_probes_writer w;
    uint32_t target_buffer;
    uint32_t poll_ms;
    uint64_t timer;
    struct seen *seen;
    size_t nr_seen;
    struct tb_pidset procs;     /* tgids described so far */
    struct tb_pidset scan_tids; /* every tid of the first scan, until armed */
    bool first_scan_done;
    bool armed;
};

/* Appends the process's cmdline arguments; false when it has none (kthread). */
static bool append_cmdline(struct tb_pbw *pbw, pid_t pid)
{
    char path[64], buf[4096];
    size_t n, off = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    f = fopen(path, "re");
    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (off < n) {
        tb_pbw_append_string(pbw, PR_CMDLINE, buf + off);
        off += strlen(buf + off) + 1;
    }
    return n > 0;
}

/*
 * @pcg: the cgroup of the thread's process, NULL when the thread is gone
 * (then no cgroup is written).
 */
static void append_thread(struct tb_pbw *pbw, pid_t tid, pid_t tgid, const char *name,
                          const struct tb_proc_status *st, const char *pcg)
{
    char cg[PATH_MAX];
    int i;

    tb_pbw_begin_nested(pbw, PT_THREADS);
    tb_pbw_append_varint(pbw, TH_TID, (uint64_t)tid);
    if (name && name[0])
        tb_pbw_append_string(pbw, TH_NAME, name);
    if (tgid)
        tb_pbw_append_varint(pbw, TH_TGID, (uint64_t)tgid);
    for (i = 1; st && i < st->nr_ns; i++)
        tb_pbw_append_int(pbw, TH_NSTID, st->ns[i]);
    if (pcg && tgid) {
        /* Only a threaded cgroup puts a thread apart from its process. */
        tb_proc_read_cgroup(tgid, tid, cg, sizeof(cg));
        if (cg[0] && strcmp(cg, pcg))
            tb_pbw_append_string(pbw, PT_TB_CGROUP, cg);
    }
    tb_pbw_end_nested(pbw);
}

/*
 * One process and all its threads, remembered in @ds->procs (and, during the
 * first scan, every tid in @ds->scan_tids). Return: 0, or -ENOENT when it
 * is gone.
 */
static int append_process(struct proc_ds *ds, struct tb_pbw *pbw, pid_t pid)
{
    char path[64], cg[PATH_MAX];
    struct tb_proc_status st, tst;
    struct dirent *de;
    DIR *d;
    int i;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (tb_proc_read_status(path, &st))
        return -ENOENT;
    tb_pbw_begin_nested(pbw, PT_PROCESSES);
    tb_pbw_append_varint(pbw, PR_PID, (uint64_t)pid);
    tb_pbw_append_varint(pbw, PR_PPID, (uint64_t)st.ppid);
    if (!append_cmdline(pbw, pid)) {
        /* Kernel threads have no cmdline: name them by comm, as ps does. */
        char comm[80];

        snprintf(comm, sizeof(comm), "[%s]", st.name);
        tb_pbw_append_string(pbw, PR_CMDLINE, comm);
        tb_pbw_append_varint(pbw, PR_CMDLINE_COMM, 1);
        if (pid == 2 || st.ppid == 2)
            tb_pbw_append_varint(pbw, PR_IS_KTHREAD, 1);
    }
    if (st.uid >= 0)
        tb_pbw_append_varint(pbw, PR_UID, (uint64_t)st.uid);
    for (i = 1; i < st.nr_ns; i++)
        tb_pbw_append_int(pbw, PR_NSPID, st.ns[i]);
    tb_proc_read_cgroup(pid, 0, cg, sizeof(cg));
    if (cg[0])
        tb_pbw_append_string(pbw, PT_TB_CGROUP, cg);
    tb_pbw_end_nested(pbw);
    tb_pidset_add(&ds->procs, pid);

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        char tpath[96];
        pid_t tid;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        tid = atoi(de->d_name);
        snprintf(tpath, sizeof(tpath), "/proc/%d/task/%d/status", pid, tid);
        if (tb_proc_read_status(tpath, &tst))
            continue;
        append_thread(pbw, tid, pid, tst.name, &tst, cg);
        if (!ds->first_scan_done)
            tb_pidset_add(&ds->scan_tids, tid);
    }
    closedir(d);
    return 0;
}

static void end_tree(struct proc_ds *ds, struct tb_pbw *pbw)
{
    tb_pbw_append_varint(pbw, PT_END_TS, tb_probes_boot_ns());
    tb_pbw_end_nested(pbw);
    tb_probes_end_packet(&ds->w);
}

static void dump_all(struct proc_ds *ds)
{
    struct tb_pbw *pbw = NULL;
    struct dirent *de;
    unsigned int n = 0;
    DIR *d;

    d = opendir("/proc");
    if (!d) {
        tb_err("probes: process_stats cannot list /proc: %s", strerror(errno));
        return;
    }
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        if (!pbw) {
            pbw = tb_probes_begin_packet(&ds->w);
            tb_pbw_begin_nested(pbw, TB_PKT_PROCESS_TREE);
        }
        if (append_process(ds, pbw, atoi(de->d_name)))
            continue;
        if (++n % PROCS_PER_PACKET == 0) {
            end_tree(ds, pbw);
            pbw = NULL;
        }
    }
    closedir(d);
    if (pbw)
        end_tree(ds, pbw);
    ds->first_scan_done = true;
}

/*
 * The threads of process @pid that the first scan did not see (created
 * between the scan and the arming of the BPF programs).
 */
static void append_new_threads(struct proc_ds *ds, struct tb_pbw *pbw, pid_t pid)
{
    char path[96], cg[PATH_MAX];
    struct tb_proc_status st;
    struct dirent *de;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (!d)
        return;
    cg[0] = '\0';
    while ((de = readdir(d))) {
        pid_t tid;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        tid = atoi(de->d_name);
        if (tb_pidset_has(&ds->scan_tids, tid))
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
        if (tb_proc_read_status(path, &st))
            continue;
        if (!cg[0])
            tb_proc_read_cgroup(pid, 0, cg, sizeof(cg));
        append_thread(pbw, tid, pid, st.name, &st, cg);
    }
    closedir(d);
}

void tb_proc_ds_armed(void *state)
{
    struct proc_ds *ds = state;
    struct tb_pbw *pbw = NULL;
    struct dirent *de;
    unsigned int n = 0;
    DIR *d;

    if (ds->armed || !ds->first_scan_done)
        return;
    ds->armed = true;
    /*
     * Whatever was forked between the first scan and now left no fork
     * event in the trace: describe it from /proc. What is forked from now
     * on comes through the kernel data.
     */
    d = opendir("/proc");
    if (!d) {
        tb_err("probes: process_stats cannot list /proc: %s", strerror(errno));
        goto out;
    }
    while ((de = readdir(d))) {
        pid_t pid;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid = atoi(de->d_name);
        if (!pbw) {
            pbw = tb_probes_begin_packet(&ds->w);
            tb_pbw_begin_nested(pbw, TB_PKT_PROCESS_TREE);
        }
        if (tb_pidset_has(&ds->procs, pid)) {
            append_new_threads(ds, pbw, pid);
            continue;
        }
        if (append_process(ds, pbw, pid))
            continue;
        if (++n % PROCS_PER_PACKET == 0) {
            end_tree(ds, pbw);
            pbw = NULL;
        }
    }
    closedir(d);
    if (pbw)
        end_tree(ds, pbw);
    tb_probes_writer_flush(&ds->w);
out:
    tb_pidset_free(&ds->scan_tids);
}

static void on_poll(void *ctx)
{
    dump_all(ctx);
}

void tb_proc_ds_thread_seen(void *state, pid_t tid, pid_t tgid, const char *comm)
{
    struct proc_ds *ds = state;
    struct seen *s;

    if (ds->nr_seen >= MAX_SEEN)
        return; /* the periodic dump catches up */
    s = &ds->seen[ds->nr_seen++];
    s->tid = tid;
    s->tgid = tgid;
    snprintf(s->comm, sizeof(s->comm), "%s", comm ? comm : "");
}

void tb_proc_ds_flush_seen(void *state)
{
    struct proc_ds *ds = state;
    char path[64], cg[PATH_MAX];
    struct tb_pbw *pbw;
    struct tb_proc_status st;
    size_t i, j;

    if (!ds->nr_seen)
        return;
    pbw = tb_probes_begin_packet(&ds->w);
    tb_pbw_begin_nested(pbw, TB_PKT_PROCESS_TREE);
    for (i = 0; i < ds->nr_seen; i++) {
        struct seen *s = &ds->seen[i];
        bool later = false;

        /* Only the last sighting of a tid in this batch counts. */
        for (j = i + 1; j < ds->nr_seen && !later; j++)
            later = ds->seen[j].tid == s->tid;
        if (later)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/status", s->tid);
        if (!tb_proc_read_status(path, &st)) {
            /* A thread of a process never described brings it along. */
            bool whole = st.tgid == s->tid || !tb_pidset_has(&ds->procs, st.tgid);

            if (whole && !append_process(ds, pbw, st.tgid))
                continue;
            if (st.tgid != s->tid) {
                tb_proc_read_cgroup(st.tgid, 0, cg, sizeof(cg));
                append_thread(pbw, s->tid, st.tgid, st.name, &st, cg);
                continue;
            }
        }
        /* Already gone: what the kernel event told us is all there is. */
        if (s->tgid || s->comm[0])
            append_thread(pbw, s->tid, s->tgid, s->comm, NULL, NULL);
    }
    ds->nr_seen = 0;
    end_tree(ds, pbw);
}

static void ds_destroy(void *state)
{
    struct proc_ds *ds = state;

    if (!ds)
        return;
    if (ds->timer)
        tb_loop_cancel_timer(tb_probes_loop(ds->p), ds->timer);
    tb_probes_writer_close(&ds->w);
    tb_pidset_free(&ds->procs);
    tb_pidset_free(&ds->scan_tids);
    free(ds->seen);
    free(ds);
}

static int ds_create(struct tb_probes *p, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg, void **state)
{
    const Perfetto__Protos__ProcessStatsConfig *pc = cfg->process_stats_config;
    struct proc_ds *ds;

    (void)id;
    *state = NULL;
    ds = calloc(1, sizeof(*ds));
    if (!ds)
        return -ENOMEM;
    ds->seen = calloc(MAX_SEEN, sizeof(*ds->seen));
    if (!ds->seen) {
        free(ds);
        return -ENOMEM;
    }
    ds->p = p;
    ds->target_buffer = cfg->target_buffer;
    ds->poll_ms = pc && pc->proc_stats_poll_ms ? pc->proc_stats_poll_ms : DEFAULT_POLL_MS;
    *state = ds;
    return 0;
}

static int ds_start(void *state)
{
    struct proc_ds *ds = state;
    int err;

    err = tb_probes_writer_open(&ds->w, tb_probes_pc(ds->p), ds->target_buffer);
    if (err)
        return err;
    dump_all(ds);
    tb_probes_writer_flush(&ds->w);
    return tb_loop_add_timer(tb_probes_loop(ds->p), ds->poll_ms, ds->poll_ms, on_poll, ds,
                             &ds->timer);
}

static void ds_flush(void *state)
{
    struct proc_ds *ds = state;

    tb_proc_ds_flush_seen(ds);
    tb_probes_writer_flush(&ds->w);
}

static void ds_stop(void *state)
{
    struct proc_ds *ds = state;

    if (ds->timer)
        tb_loop_cancel_timer(tb_probes_loop(ds->p), ds->timer);
    ds->timer = 0;
    tb_proc_ds_flush_seen(ds);
    tb_probes_writer_flush(&ds->w);
}

const struct tb_ds_ops tb_proc_ds_ops = {
    .name = "linux.process_stats",
    .create = ds_create,
    .start = ds_start,
    .flush = ds_flush,
    .stop = ds_stop,
    .destroy = ds_destroy,
};
