/*
 * probes_proc_test.c - linux.process_stats with linux.ftrace, end to end
 * (root, real kernel, the real daemon and traced-bpf-probes): the first
 * process-tree scan is taken before the BPF programs are armed, so it is
 * stamped no later than the first kernel event; children forked right
 * after the session is enabled (before, during and after the producer's
 * start) all get a Process entry; and every process carries its cgroup v2
 * path (tracebpf_cgroup), which `tracebpf export --format json` shows as a
 * process label.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "probes_e2e_util.h"

#define MAX_KIDS 400
/* Children forked once the programs are attached: the fork path's share. */
#define LATE_KIDS 5

static struct probes_env env;

static int setup(void **state)
{
    (void)state;
    probes_env_start(&env, "probes_proc_test", "linux.process_stats");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    probes_env_stop(&env);
    return 0;
}

/* ------------------------------------------------------------ config */

struct cfg {
    Perfetto__Protos__TraceConfig tc;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds[2], *dss[2];
    Perfetto__Protos__DataSourceConfig dsc[2];
    Perfetto__Protos__FtraceConfig fc;
    Perfetto__Protos__ProcessStatsConfig pc;
};

static char *events[] = {
    "sched/sched_switch",
    "sched/sched_process_fork",
    "sched/sched_process_exit",
    "task/task_rename",
};
/* One program, so one link, per event above. */
#define NR_BPF_LINKS 4

/* linux.ftrace first, as the Perfetto UI orders them. @poll_ms 0: default. */
static void make_config(struct cfg *c, uint32_t poll_ms)
{
    memset(c, 0, sizeof(*c));
    perfetto__protos__trace_config__init(&c->tc);
    perfetto__protos__trace_config__buffer_config__init(&c->buf);
    c->buf.has_size_kb = true;
    c->buf.size_kb = 32768;
    c->bufs[0] = &c->buf;
    c->tc.n_buffers = 1;
    c->tc.buffers = c->bufs;
    perfetto__protos__ftrace_config__init(&c->fc);
    c->fc.n_ftrace_events = sizeof(events) / sizeof(events[0]);
    c->fc.ftrace_events = events;
    c->fc.has_drain_period_ms = true;
    c->fc.drain_period_ms = 50;
    perfetto__protos__process_stats_config__init(&c->pc);
    if (poll_ms) {
        c->pc.has_proc_stats_poll_ms = true;
        c->pc.proc_stats_poll_ms = poll_ms;
    }
    for (int i = 0; i < 2; i++) {
        perfetto__protos__trace_config__data_source__init(&c->ds[i]);
        perfetto__protos__data_source_config__init(&c->dsc[i]);
        c->ds[i].config = &c->dsc[i];
        c->dss[i] = &c->ds[i];
    }
    c->dsc[0].name = "linux.ftrace";
    c->dsc[0].ftrace_config = &c->fc;
    c->dsc[1].name = "linux.process_stats";
    c->dsc[1].process_stats_config = &c->pc;
    c->tc.n_data_sources = 2;
    c->tc.data_sources = c->dss;
}

/* How many BPF links the producer holds: all attached means armed. */
static int probes_links(void)
{
    char path[64], link[PATH_MAX], target[128];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", env.probes_pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        ssize_t len;

        snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
        len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strstr(target, "bpf_link") != NULL;
    }
    closedir(d);
    return n;
}

static void end_session(struct tb_cc *cc)
{
    bool done = false;
    int err = 0;

    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
}

/* ------------------------------------------------------------ workload */

/*
 * A child named @name that lives until the write end of @hold is closed
 * everywhere (@hold NULL: for @ms).
 */
static pid_t spawn_kid(const char *name, const int *hold, int ms)
{
    pid_t pid = fork();
    char c;

    assert_true(pid >= 0);
    if (pid)
        return pid;
    prctl(PR_SET_NAME, name);
    if (hold) {
        close(hold[1]); /* else it would hold itself alive */
        if (read(hold[0], &c, 1) < 0)
            _exit(1);
    } else {
        probes_env_sleep_ms(ms);
    }
    _exit(0);
}

/* ------------------------------------------------------------ decoding */

struct kid_seen {
    pid_t pid;
    bool in_tree;       /* a Process entry with our pid as ppid */
    bool forked;        /* its sched_process_fork is in the trace */
    uint64_t tree_ts;   /* timestamp of the first tree naming it */
    char cgroup[256];   /* tracebpf_cgroup of its first entry */
    unsigned int trees; /* ProcessTree packets naming it */
};

struct trace_seen {
    struct kid_seen kids[MAX_KIDS + 2];
    size_t nr_kids;
    uint64_t first_tree_ts, first_event_ts;
    char self_cgroup[256];
    bool self_in_tree;
    /* Thread entries of one process (test_threaded_cgroup): */
    pid_t th_tid, th_leader;
    bool th_seen, leader_seen, leader_has_cgroup;
    char th_cgroup[256];
    FILE *file; /* the trace written out, when set */
};

/* Static: a failed assertion leaves the test without freeing. */
static struct trace_seen seen;

static struct kid_seen *find_kid(struct trace_seen *s, int32_t pid)
{
    for (size_t i = 0; i < s->nr_kids; i++) {
        if (s->kids[i].pid == pid)
            return &s->kids[i];
    }
    return NULL;
}

static void min_ts(uint64_t *v, uint64_t ts)
{
    if (!*v || ts < *v)
        *v = ts;
}

static void see_threads(struct trace_seen *s, const Perfetto__Protos__ProcessTree *pt)
{
    for (size_t i = 0; s->th_tid && i < pt->n_threads; i++) {
        const Perfetto__Protos__ProcessTree__Thread *th = pt->threads[i];

        if (th->tid == s->th_tid && !s->th_seen) {
            s->th_seen = true;
            snprintf(s->th_cgroup, sizeof(s->th_cgroup), "%s",
                     th->tracebpf_cgroup ? th->tracebpf_cgroup : "");
        } else if (th->tid == s->th_leader) {
            s->leader_seen = true;
            s->leader_has_cgroup |= th->tracebpf_cgroup != NULL;
        }
    }
}

static void see_tree(struct trace_seen *s, const Perfetto__Protos__TracePacket *p)
{
    const Perfetto__Protos__ProcessTree *pt = p->process_tree;

    min_ts(&s->first_tree_ts, p->timestamp);
    see_threads(s, pt);
    for (size_t i = 0; i < pt->n_processes; i++) {
        const Perfetto__Protos__ProcessTree__Process *pr = pt->processes[i];
        struct kid_seen *k = find_kid(s, pr->pid);

        if (pr->pid == getpid()) {
            s->self_in_tree = true;
            snprintf(s->self_cgroup, sizeof(s->self_cgroup), "%s",
                     pr->tracebpf_cgroup ? pr->tracebpf_cgroup : "");
        }
        if (!k)
            continue;
        if (!k->in_tree) {
            k->tree_ts = p->timestamp;
            snprintf(k->cgroup, sizeof(k->cgroup), "%s",
                     pr->tracebpf_cgroup ? pr->tracebpf_cgroup : "");
        }
        k->in_tree = true;
        k->trees++;
    }
}

static int on_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct trace_seen *s = ctx;

    assert_non_null(p);
    if (s->file) {
        /* Trace.packet (field 1): tag, varint length, bytes. */
        uint8_t hdr[11];
        size_t n = 0, v = len;

        hdr[n++] = 0x0a;
        do {
            hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        assert_int_equal(fwrite(hdr, 1, n, s->file), n);
        assert_int_equal(fwrite(data, 1, len, s->file), len);
    }
    if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE && p->has_timestamp) {
        see_tree(s, p);
    } else if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS) {
        const Perfetto__Protos__FtraceEventBundle *b = p->ftrace_events;

        for (size_t i = 0; i < b->n_event; i++) {
            const Perfetto__Protos__FtraceEvent *e = b->event[i];
            struct kid_seen *k;

            if (e->has_timestamp)
                min_ts(&s->first_event_ts, e->timestamp);
            if (e->event_case != PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK)
                continue;
            k = find_kid(s, e->sched_process_fork->child_pid);
            if (k)
                k->forked = true;
        }
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

/* ------------------------------------------------------------ tests */

/*
 * Children are forked from the moment the session is enabled until the
 * programs are attached, then a few more: each window (before the first
 * scan, between scan and arming, after arming) may hold some, and every
 * one must be named in the trace.
 */
static void test_scan_before_arm(void **state)
{
    struct trace_seen *s = &seen;
    size_t in_scan = 0, in_between = 0, by_fork = 0;
    int hold[2], late = 0;
    struct tb_cc *cc;
    struct cfg c;

    (void)state;
    memset(s, 0, sizeof(*s));
    if (env.probes_pid <= 0)
        skip();
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    make_config(&c, 0);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.tc, -1), 0);
    while (s->nr_kids < MAX_KIDS && late < LATE_KIDS) {
        char name[16];

        snprintf(name, sizeof(name), "tbproc-%zu", s->nr_kids);
        if (probes_links() >= NR_BPF_LINKS) {
            /* Armed: these come through their fork event, and exit soon. */
            s->kids[s->nr_kids++].pid = spawn_kid(name, NULL, 150);
            late++;
            probes_env_sleep_ms(20);
            continue;
        }
        s->kids[s->nr_kids++].pid = spawn_kid(name, hold, 0);
        probes_env_sleep_ms(3);
    }
    close(hold[0]);
    close(hold[1]); /* the early children exit now */
    for (size_t i = 0; i < s->nr_kids; i++)
        waitpid(s->kids[i].pid, NULL, 0);
    probes_env_sleep_ms(200);
    end_session(cc);
    assert_int_equal(tb_cc_read_buffers_cb(cc, on_packet, s, 10000, NULL), 0);
    tb_cc_free(cc);

    for (size_t i = 0; i < s->nr_kids; i++) {
        struct kid_seen *k = &s->kids[i];

        if (k->forked)
            by_fork++;
        else if (k->in_tree && k->tree_ts <= s->first_event_ts)
            in_scan++;
        else if (k->in_tree)
            in_between++;
    }
    print_message("first tree %llu first event %llu (tree %lld ns earlier); %zu children: "
                  "%zu in the first scan, %zu described after it without a fork event, "
                  "%zu through their fork event\n",
                  (unsigned long long)s->first_tree_ts, (unsigned long long)s->first_event_ts,
                  (long long)(s->first_event_ts - s->first_tree_ts), s->nr_kids, in_scan,
                  in_between, by_fork);
    assert_true(s->first_tree_ts > 0);
    assert_true(s->first_event_ts > 0);
    assert_true(s->first_tree_ts <= s->first_event_ts);
    for (size_t i = 0; i < s->nr_kids; i++) {
        if (!s->kids[i].in_tree)
            print_message("child %zu (pid %d, forked %d) has no Process entry\n", i, s->kids[i].pid,
                          s->kids[i].forked);
    }
    for (size_t i = 0; i < s->nr_kids; i++)
        assert_true(s->kids[i].in_tree);
    /* The late ones were forked while the programs were attached. */
    for (size_t i = s->nr_kids - LATE_KIDS; i < s->nr_kids; i++)
        assert_true(s->kids[i].forked);
}

/* ------------------------------------------------------------ cgroup */

static char cg_dir[PATH_MAX], cg_sub[PATH_MAX + 8];
static pid_t cg_kid = -1;

/* The cgroup v2 mount point from mountinfo; false when there is none. */
static bool cgroup2_mount(char *out, size_t len)
{
    char line[1024], mnt[512], fstype[64];
    bool found = false;
    FILE *f = fopen("/proc/self/mountinfo", "re");

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        const char *dash = strstr(line, " - ");

        if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
            sscanf(dash + 3, "%63s", fstype) != 1)
            continue;
        if (!strcmp(fstype, "cgroup2")) {
            snprintf(out, len, "%s", mnt);
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* The "0::" line of /proc/@pid/cgroup, as our producer must report it. */
static void own_cgroup(pid_t pid, char *out, size_t len)
{
    char path[64], line[1024];
    FILE *f;

    out[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    f = fopen(path, "re");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = '\0';
            assert_true(strlen(line + 3) < len);
            memcpy(out, line + 3, strlen(line + 3) + 1);
        }
    }
    fclose(f);
}

/* Runs even when the test failed: the child gone first, then its cgroup. */
static int cg_teardown(void **state)
{
    (void)state;
    if (cg_kid > 0) {
        kill(cg_kid, SIGKILL);
        waitpid(cg_kid, NULL, 0);
        cg_kid = -1;
    }
    for (int i = 0; cg_sub[0] && i < 50; i++) {
        if (!rmdir(cg_sub) || errno == ENOENT)
            break;
        probes_env_sleep_ms(20);
    }
    cg_sub[0] = '\0';
    for (int i = 0; cg_dir[0] && i < 50; i++) {
        if (!rmdir(cg_dir) || errno == ENOENT)
            break;
        probes_env_sleep_ms(20); /* an exited task may leave it a moment later */
    }
    if (cg_dir[0] && !access(cg_dir, F_OK))
        print_message("could not remove %s: %s\n", cg_dir, strerror(errno));
    cg_dir[0] = '\0';
    return 0;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        fail_msg("writing %s: %s", path, strerror(errno));
    close(fd);
}

/* Runs `tracebpf export --format json @trace` into @out. */
static void export_json(const char *trace, const char *out)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");
    char bin[PATH_MAX];
    int status;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/consumer/tracebpf", bd ? bd : ".");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "export", "--format", "json", trace, "-o", out, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/*
 * A child moved into a fresh cgroup before recording, and a grandchild it
 * forks while recording (inheriting the cgroup, so it comes through the
 * fork path): both carry the cgroup's path; this test process carries its
 * own. A short poll period makes the re-dump name the child again.
 */
static void test_cgroup(void **state)
{
    struct trace_seen *s = &seen;
    char mnt[512], procs[PATH_MAX + 32], want[300], mine[256], pid_s[16];
    char trace[128], json[128], label[400], *text;
    int hold[2], go[2], back[2];
    struct kid_seen *k, *gk;
    pid_t grandkid = 0;
    struct tb_cc *cc;
    struct cfg c;

    (void)state;
    memset(s, 0, sizeof(*s));
    if (env.probes_pid <= 0)
        skip();
    if (!cgroup2_mount(mnt, sizeof(mnt))) {
        print_message("probes_proc_test: SKIPPING the cgroup test: no cgroup2 file system is "
                      "mounted on this host (/proc/self/mountinfo lists none)\n");
        skip();
    }
    snprintf(cg_dir, sizeof(cg_dir), "%s/tb-test-%d", mnt, getpid());
    assert_int_equal(mkdir(cg_dir, 0755), 0);
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(back, O_CLOEXEC), 0);
    cg_kid = fork();
    assert_true(cg_kid >= 0);
    if (cg_kid == 0) {
        pid_t g;
        char ch;

        prctl(PR_SET_NAME, "tbproc-cg");
        close(hold[1]);
        if (read(go[0], &ch, 1) != 1)
            _exit(1);
        g = spawn_kid("tbproc-cg2", hold, 0);
        if (write(back[1], &g, sizeof(g)) != sizeof(g))
            _exit(1);
        if (read(hold[0], &ch, 1) < 0)
            _exit(1);
        waitpid(g, NULL, 0);
        _exit(0);
    }
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg_dir);
    snprintf(pid_s, sizeof(pid_s), "%d", cg_kid);
    write_file(procs, pid_s);
    snprintf(want, sizeof(want), "/tb-test-%d", getpid());
    own_cgroup(cg_kid, mine, sizeof(mine));
    assert_string_equal(mine, want); /* the kernel agrees it moved */
    own_cgroup(getpid(), mine, sizeof(mine));

    make_config(&c, 200);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.tc, -1), 0);
    for (int i = 0; i < 800 && probes_links() < NR_BPF_LINKS; i++)
        probes_env_sleep_ms(25);
    assert_true(probes_links() >= NR_BPF_LINKS);
    assert_int_equal(write(go[1], "g", 1), 1);
    assert_int_equal(read(back[0], &grandkid, sizeof(grandkid)), sizeof(grandkid));
    probes_env_sleep_ms(600); /* a few re-dumps */
    close(hold[1]);
    waitpid(cg_kid, NULL, 0);
    cg_kid = -1;
    close(hold[0]);
    close(go[0]);
    close(go[1]);
    close(back[0]);
    close(back[1]);

    end_session(cc);
    s->kids[0].pid = (pid_t)atoi(pid_s);
    s->kids[1].pid = grandkid;
    s->nr_kids = 2;
    snprintf(trace, sizeof(trace), "%s/trace.pftrace", env.dir);
    snprintf(json, sizeof(json), "%s/trace.json", env.dir);
    s->file = fopen(trace, "we");
    assert_non_null(s->file);
    assert_int_equal(tb_cc_read_buffers_cb(cc, on_packet, s, 10000, NULL), 0);
    tb_cc_free(cc);
    assert_int_equal(fclose(s->file), 0);
    s->file = NULL;

    k = &s->kids[0];
    gk = &s->kids[1];
    print_message("child %d: cgroup '%s' in %u trees; grandchild %d: cgroup '%s', forked %d; "
                  "this process: '%s' (expected '%s')\n",
                  k->pid, k->cgroup, k->trees, gk->pid, gk->cgroup, gk->forked, s->self_cgroup,
                  mine);
    assert_true(k->in_tree);
    assert_string_equal(k->cgroup, want);
    assert_true(k->trees >= 2); /* the initial scan and a re-dump */
    assert_true(gk->in_tree);
    assert_true(gk->forked);
    assert_string_equal(gk->cgroup, want);
    assert_true(s->self_in_tree);
    assert_string_equal(s->self_cgroup, mine);
    assert_string_not_equal(s->self_cgroup, want);

    /* What a user sees: the JSON export labels the child's process. */
    export_json(trace, json);
    text = slurp(json);
    snprintf(
        label, sizeof(label),
        "\"pid\":%d,\"tid\":%d,\"name\":\"process_labels\",\"args\":{\"labels\":\"cgroup:%s\"}",
        k->pid, k->pid, want);
    if (!strstr(text, label))
        print_message("no '%s' in the JSON export\n", label);
    assert_non_null(strstr(text, label));
    free(text);
    unlink(json);
    unlink(trace);
}

static int hold_fd = -1;

static void *blocked_thread(void *arg)
{
    int *back = arg;
    pid_t tid = gettid();
    char c;

    if (write(*back, &tid, sizeof(tid)) != sizeof(tid))
        _exit(1);
    if (read(hold_fd, &c, 1) < 0)
        _exit(1);
    return NULL;
}

/*
 * A threaded cgroup: the child process in cgroup D ("domain threaded"),
 * one of its threads moved to D/t. That thread's entry carries "/D/t", the
 * main thread's none (it is where its process is), the process "/D".
 */
static void test_threaded_cgroup(void **state)
{
    struct trace_seen *s = &seen;
    char mnt[512], path[PATH_MAX + 32], want[300], want_t[310], num[16];
    int hold[2], back[2];
    struct tb_cc *cc;
    struct cfg c;
    pid_t tid = 0;

    (void)state;
    memset(s, 0, sizeof(*s));
    if (env.probes_pid <= 0)
        skip();
    if (!cgroup2_mount(mnt, sizeof(mnt))) {
        print_message("probes_proc_test: SKIPPING the threaded cgroup test: no cgroup2 file "
                      "system is mounted on this host\n");
        skip();
    }
    snprintf(cg_dir, sizeof(cg_dir), "%s/tb-test-%d", mnt, getpid());
    snprintf(cg_sub, sizeof(cg_sub), "%s/t", cg_dir);
    assert_int_equal(mkdir(cg_dir, 0755), 0);
    assert_int_equal(mkdir(cg_sub, 0755), 0);
    snprintf(path, sizeof(path), "%s/cgroup.type", cg_sub);
    write_file(path, "threaded");
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    assert_int_equal(pipe2(back, O_CLOEXEC), 0);
    cg_kid = fork();
    assert_true(cg_kid >= 0);
    if (cg_kid == 0) {
        pthread_t t;

        prctl(PR_SET_NAME, "tbproc-thr");
        close(hold[1]);
        hold_fd = hold[0];
        if (pthread_create(&t, NULL, blocked_thread, &back[1]))
            _exit(1);
        pthread_join(t, NULL);
        _exit(0);
    }
    assert_int_equal(read(back[0], &tid, sizeof(tid)), sizeof(tid));
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dir);
    snprintf(num, sizeof(num), "%d", cg_kid);
    write_file(path, num);
    snprintf(path, sizeof(path), "%s/cgroup.threads", cg_sub);
    snprintf(num, sizeof(num), "%d", tid);
    write_file(path, num);
    snprintf(want, sizeof(want), "/tb-test-%d", getpid());
    snprintf(want_t, sizeof(want_t), "%s/t", want);

    s->kids[0].pid = cg_kid;
    s->nr_kids = 1;
    s->th_tid = tid;
    s->th_leader = cg_kid;
    make_config(&c, 0);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.tc, -1), 0);
    for (int i = 0; i < 800 && probes_links() < NR_BPF_LINKS; i++)
        probes_env_sleep_ms(25);
    assert_true(probes_links() >= NR_BPF_LINKS);
    probes_env_sleep_ms(100);
    end_session(cc);
    assert_int_equal(tb_cc_read_buffers_cb(cc, on_packet, s, 10000, NULL), 0);
    tb_cc_free(cc);
    close(hold[1]);
    close(hold[0]);
    close(back[0]);
    close(back[1]);

    print_message("process %d: '%s'; thread %d: '%s'; main thread seen %d with a cgroup %d\n",
                  cg_kid, s->kids[0].cgroup, tid, s->th_cgroup, s->leader_seen,
                  s->leader_has_cgroup);
    assert_true(s->kids[0].in_tree);
    assert_string_equal(s->kids[0].cgroup, want);
    assert_true(s->th_seen);
    assert_string_equal(s->th_cgroup, want_t);
    assert_true(s->leader_seen);
    assert_false(s->leader_has_cgroup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_before_arm),
        cmocka_unit_test_teardown(test_cgroup, cg_teardown),
        cmocka_unit_test_teardown(test_threaded_cgroup, cg_teardown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
