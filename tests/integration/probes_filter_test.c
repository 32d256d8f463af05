/*
 * probes_filter_test.c - the in-kernel filters end to end: the real daemon
 * (--no-probes) on temp sockets and the real traced-bpf-probes, sessions
 * whose FtraceConfig carries tids_to_trace, tracebpf_filter.comm or
 * tracebpf_filter.cgroup_path, while an unrelated process (forked before the
 * session) keeps forking and exiting. The trace must hold the filtered
 * tasks' forks, execs and exits, children forked during the session
 * included, and nothing of the unrelated process. Also: a filter the kernel
 * side cannot hold refuses the data source with the reason in FtraceStats,
 * the syscall set (syscall_events) on raw_syscalls, and the resolver's
 * syscall and cgroup answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "producers/ftrace/ftrace_filter.h"
#include "probes_e2e_util.h"

#define NR_KIDS  3
#define CG_ROOT  "/sys/fs/cgroup/unified"
#define OTHER    "tbflt-other"
#define COMMNAME "tbflt-comm"

static struct probes_env env;

/* Shared with the workload processes. */
struct shared {
    volatile uint64_t other_forks; /* the unrelated process's loop count */
    volatile pid_t grandkids[NR_KIDS];
};
static struct shared *sh;
static pid_t other = -1, kids[NR_KIDS];

/* Forks and reaps a short-lived child forever, counting each round. */
static void other_loop(void)
{
    prctl(PR_SET_NAME, OTHER);
    for (;;) {
        pid_t c = fork();

        if (c == 0)
            _exit(0);
        if (c > 0)
            waitpid(c, NULL, 0);
        sh->other_forks++;
        probes_env_sleep_ms(2);
    }
}

static int setup(void **state)
{
    (void)state;
    if (!probes_env_start(&env, "probes_filter_test", "linux.ftrace"))
        return 0;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    /* Unrelated: exists before any session, so no filter follows it. */
    other = fork();
    assert_true(other >= 0);
    if (other == 0)
        other_loop();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    probes_env_stop_pid(&other, SIGKILL);
    probes_env_stop(&env);
    if (sh)
        munmap(sh, sizeof(*sh));
    return 0;
}

/* ------------------------------------------------------------ session */

struct cfg {
    Perfetto__Protos__TraceConfig tc;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__FtraceConfig fc;
    Perfetto__Protos__FtraceConfig__TracebpfFilter xf;
    uint32_t tid;
    char *comm, *cgroup;
};

static char *events[] = {
    "sched/sched_process_fork", "sched/sched_process_exec", "sched/sched_process_exit",
    "task/task_newtask",        "task/task_rename",
};
#define NR_LINKS 5 /* one program each */

static void make_config(struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    perfetto__protos__trace_config__init(&c->tc);
    perfetto__protos__trace_config__buffer_config__init(&c->buf);
    c->buf.has_size_kb = true;
    c->buf.size_kb = 16384;
    c->bufs[0] = &c->buf;
    c->tc.n_buffers = 1;
    c->tc.buffers = c->bufs;
    perfetto__protos__ftrace_config__init(&c->fc);
    perfetto__protos__ftrace_config__tracebpf_filter__init(&c->xf);
    c->fc.n_ftrace_events = sizeof(events) / sizeof(events[0]);
    c->fc.ftrace_events = events;
    c->fc.has_drain_period_ms = true;
    c->fc.drain_period_ms = 50;
    perfetto__protos__trace_config__data_source__init(&c->ds);
    perfetto__protos__data_source_config__init(&c->dsc);
    c->ds.config = &c->dsc;
    c->dss[0] = &c->ds;
    c->dsc.name = "linux.ftrace";
    c->dsc.ftrace_config = &c->fc;
    c->tc.n_data_sources = 1;
    c->tc.data_sources = c->dss;
}

static void filter_pid(struct cfg *c, pid_t pid)
{
    c->tid = (uint32_t)pid;
    c->fc.n_tids_to_trace = 1;
    c->fc.tids_to_trace = &c->tid;
}

static void filter_comm(struct cfg *c, const char *comm)
{
    c->comm = (char *)comm;
    c->xf.n_comm = 1;
    c->xf.comm = &c->comm;
    c->fc.tracebpf_filter = &c->xf;
}

static void filter_cgroup(struct cfg *c, const char *path)
{
    c->cgroup = (char *)path;
    c->xf.n_cgroup_path = 1;
    c->xf.cgroup_path = &c->cgroup;
    c->fc.tracebpf_filter = &c->xf;
}

static int bpf_links(void)
{
    char path[64], target[64];
    int n = 0;

    for (int fd = 0; fd < 1024; fd++) {
        ssize_t len;

        snprintf(path, sizeof(path), "/proc/%d/fd/%d", env.probes_pid, fd);
        len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strstr(target, "bpf_link") != NULL;
    }
    return n;
}

static void wait_links(int want)
{
    for (int i = 0; i < 800 && bpf_links() < want; i++)
        probes_env_sleep_ms(25);
    assert_true(bpf_links() >= want);
    probes_env_sleep_ms(100); /* the drain thread starts after the last attach */
}

/* What the trace held, in the terms the tests ask about. */
struct seen {
    uint64_t events, bundles, foreign, other_events;
    bool kid_fork[NR_KIDS], kid_exec[NR_KIDS], kid_exit[NR_KIDS];
    bool grandkid_fork[NR_KIDS], grandkid_exit[NR_KIDS];
    uint64_t self_events;                       /* current task = this test process */
    uint64_t sys_enter[2], sys_exit, sys_other; /* getppid, getpgrp, else */
    size_t failed;                              /* FtraceStats failed_ftrace_events */
};

static int index_of(const volatile pid_t *v, pid_t pid)
{
    for (int i = 0; pid > 0 && i < NR_KIDS; i++) {
        if (v[i] == pid)
            return i;
    }
    return -1;
}

static void check_event(struct seen *s, const Perfetto__Protos__FtraceEvent *e)
{
    pid_t cur = (pid_t)e->pid;
    int k;

    s->events++;
    if (cur == other)
        s->other_events++;
    if (cur == getpid())
        s->self_events++;
    else if (index_of(kids, cur) < 0 && index_of(sh->grandkids, cur) < 0)
        s->foreign++;
    switch (e->event_case) {
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK:
        k = index_of(kids, e->sched_process_fork->child_pid);
        if (k >= 0)
            s->kid_fork[k] = true;
        k = index_of(sh->grandkids, e->sched_process_fork->child_pid);
        if (k >= 0 && e->sched_process_fork->parent_pid == kids[k])
            s->grandkid_fork[k] = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXEC:
        k = index_of(kids, e->sched_process_exec->pid);
        if (k >= 0 && e->sched_process_exec->filename &&
            strstr(e->sched_process_exec->filename, "true"))
            s->kid_exec[k] = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXIT:
        k = index_of(kids, e->sched_process_exit->pid);
        if (k >= 0)
            s->kid_exit[k] = true;
        k = index_of(sh->grandkids, e->sched_process_exit->pid);
        if (k >= 0)
            s->grandkid_exit[k] = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_ENTER:
        if (e->sys_enter->id == SYS_getppid)
            s->sys_enter[0]++;
        else if (e->sys_enter->id == SYS_getpgrp)
            s->sys_enter[1]++;
        else
            s->sys_other++;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_EXIT:
        if (e->sys_exit->id == SYS_getppid || e->sys_exit->id == SYS_getpgrp)
            s->sys_exit++;
        else
            s->sys_other++;
        break;
    default:
        break;
    }
}

static int on_packet(void *ctx, const uint8_t *data, size_t len)
{
    Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);
    struct seen *s = ctx;

    assert_non_null(p);
    if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS) {
        s->bundles++;
        for (size_t i = 0; i < p->ftrace_events->n_event; i++)
            check_event(s, p->ftrace_events->event[i]);
    } else if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS) {
        s->failed += p->ftrace_stats->n_failed_ftrace_events;
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
}

/*
 * The workload: NR_KIDS children, each named @comm, each forking one child
 * (which exits) and then exec'ing /bin/true. @cgroup_procs: a cgroup.procs
 * file each child moves itself into first, or NULL.
 */
static void run_kids(const char *comm, const char *cgroup_procs)
{
    char buf[32];
    int fd;

    for (int i = 0; i < NR_KIDS; i++) {
        sh->grandkids[i] = 0;
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            pid_t g;

            if (cgroup_procs) {
                fd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);
                snprintf(buf, sizeof(buf), "%d", getpid());
                if (fd < 0 || write(fd, buf, strlen(buf)) < 0)
                    _exit(2);
                close(fd);
            }
            prctl(PR_SET_NAME, comm);
            g = fork();
            if (g == 0) {
                probes_env_sleep_ms(5);
                _exit(0);
            }
            sh->grandkids[i] = g;
            waitpid(g, NULL, 0);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < NR_KIDS; i++) {
        int status = -1;

        waitpid(kids[i], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

/* Runs a session with @c around the workload (@workload, else run_kids); fills @s. */
static void record_with(struct cfg *c, struct seen *s, const char *comm, const char *cgroup_procs,
                        bool refused, int links, void (*workload)(void))
{
    uint64_t other_before;
    struct tb_cc *cc;
    bool done = false;
    int err = 0;

    memset(s, 0, sizeof(*s));
    /* The previous session's programs go away after its end is reported. */
    for (int i = 0; i < 400 && bpf_links(); i++)
        probes_env_sleep_ms(25);
    assert_int_equal(bpf_links(), 0);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c->tc, -1), 0);
    if (refused)
        probes_env_sleep_ms(500);
    else
        wait_links(links);
    other_before = sh->other_forks;
    if (workload)
        workload();
    else
        run_kids(comm, cgroup_procs);
    /* The unrelated process forks while we record, however loaded the host. */
    for (int i = 0; i < 200 && sh->other_forks - other_before < 20; i++)
        probes_env_sleep_ms(10);
    assert_true(sh->other_forks - other_before >= 20);
    probes_env_sleep_ms(200);
    assert_int_equal(tb_cc_disable(cc, 5000), 0);
    for (int i = 0; i < 100 && !done; i++)
        err = tb_cc_wait(cc, 100, &done);
    assert_true(done);
    assert_int_equal(err, 0);
    assert_int_equal(tb_cc_read_buffers_cb(cc, on_packet, s, 10000, NULL), 0);
    tb_cc_free(cc);
    print_message("events %llu bundles %llu foreign %llu other %llu self %llu failed %zu\n",
                  (unsigned long long)s->events, (unsigned long long)s->bundles,
                  (unsigned long long)s->foreign, (unsigned long long)s->other_events,
                  (unsigned long long)s->self_events, s->failed);
}

static void record(struct cfg *c, struct seen *s, const char *comm, const char *cgroup_procs,
                   bool refused)
{
    record_with(c, s, comm, cgroup_procs, refused, NR_LINKS, NULL);
}

static void assert_kids_seen(const struct seen *s)
{
    for (int i = 0; i < NR_KIDS; i++) {
        assert_true(s->grandkid_fork[i]);
        assert_true(s->grandkid_exit[i]);
        assert_true(s->kid_exec[i]);
        assert_true(s->kid_exit[i]);
    }
}

/* ------------------------------------------------------------ tests */

static void test_pid_follows_children(void **state)
{
    struct seen s;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    filter_pid(&c, getpid());
    record(&c, &s, "tbflt-kid", NULL, false);
    assert_kids_seen(&s);
    /* Our own forks of the kids: the current task is this process. */
    for (int i = 0; i < NR_KIDS; i++)
        assert_true(s.kid_fork[i]);
    assert_int_equal(s.other_events, 0);
    assert_int_equal(s.foreign, 0);
}

static void test_comm(void **state)
{
    struct seen s;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    filter_comm(&c, COMMNAME);
    record(&c, &s, COMMNAME, NULL, false);
    /*
     * The comm of the current task decides: the kids fork under the name,
     * their children exit under it; our forks of the kids are not under it,
     * nor are the kids' exits (exec renamed them "true").
     */
    for (int i = 0; i < NR_KIDS; i++) {
        assert_true(s.grandkid_fork[i]);
        assert_true(s.grandkid_exit[i]);
        assert_false(s.kid_fork[i]);
        assert_false(s.kid_exit[i]);
    }
    assert_int_equal(s.self_events, 0);
    assert_int_equal(s.other_events, 0);
    assert_int_equal(s.foreign, 0);
}

static void test_cgroup(void **state)
{
    char cg[128], procs[160];
    struct seen s;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    snprintf(cg, sizeof(cg), CG_ROOT "/tbflt-%d", getpid());
    if (mkdir(cg, 0755) && errno != EEXIST) {
        print_message("no cgroup v2 at " CG_ROOT " (%s); skipping\n", strerror(errno));
        skip();
    }
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
    make_config(&c);
    /* Relative to the cgroup2 mount, as /proc/PID/cgroup prints it. */
    filter_cgroup(&c, cg + strlen(CG_ROOT));
    record(&c, &s, "tbflt-cg", procs, false);
    rmdir(cg);
    assert_kids_seen(&s);
    assert_int_equal(s.self_events, 0);
    assert_int_equal(s.other_events, 0);
    assert_int_equal(s.foreign, 0);
}

#define NR_GETPPID 50
#define NR_GETPGRP 20

static void syscalls_workload(void)
{
    char buf[64];
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    for (int i = 0; i < NR_GETPPID; i++) {
        syscall(SYS_getppid);
        assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
    }
    for (int i = 0; i < NR_GETPGRP; i++)
        syscall(SYS_getpgrp);
    close(fd);
}

static void test_syscall_set(void **state)
{
    char *set[] = {"sys_getppid", "getpgrp"};
    static char *sys_events[] = {"raw_syscalls/sys_enter", "raw_syscalls/sys_exit"};
    struct seen s;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    c.fc.n_ftrace_events = 2;
    c.fc.ftrace_events = sys_events;
    c.fc.n_syscall_events = 2;
    c.fc.syscall_events = set;
    filter_pid(&c, getpid());
    record_with(&c, &s, NULL, NULL, false, 2, syscalls_workload);
    print_message("getppid %llu getpgrp %llu exits %llu other %llu\n",
                  (unsigned long long)s.sys_enter[0], (unsigned long long)s.sys_enter[1],
                  (unsigned long long)s.sys_exit, (unsigned long long)s.sys_other);
    /* Every call of the set, in and out; nothing else (the writes included). */
    assert_true(s.sys_enter[0] >= NR_GETPPID);
    assert_true(s.sys_enter[1] >= NR_GETPGRP);
    assert_true(s.sys_exit >= NR_GETPPID + NR_GETPGRP);
    assert_int_equal(s.sys_other, 0);
    assert_int_equal(s.other_events, 0);
    assert_int_equal(s.foreign, 0);
}

static void test_bad_filter_refused(void **state)
{
    struct seen s;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    filter_comm(&c, "a-name-over-15-chars");
    record(&c, &s, "tbflt-kid", NULL, true);
    /* Refused, and the trace says which events it could not record. */
    assert_int_equal(s.events, 0);
    assert_true(s.failed >= sizeof(events) / sizeof(events[0]));
}

static void test_resolver(void **state)
{
    Perfetto__Protos__FtraceConfig fc = PERFETTO__PROTOS__FTRACE_CONFIG__INIT;
    char *sys[] = {"sys_read", "openat", "60"};
    struct tb_ftrace_filter f;
    char err[256], where[256];
    struct stat st;
    uint64_t id;

    (void)state;
    assert_int_equal(tb_ftrace_filter_syscall_nr("read"), 0);
    assert_int_equal(tb_ftrace_filter_syscall_nr("sys_exit_group"), 231);
    assert_int_equal(tb_ftrace_filter_syscall_nr("no_such_call"), -EINVAL);
    fc.n_syscall_events = 3;
    fc.syscall_events = sys;
    assert_int_equal(tb_ftrace_filter_parse(&fc, &f, err, sizeof(err)), 0);
    assert_int_equal(f.bpf.nr_syscalls, 3);
    assert_int_equal(f.bpf.syscalls[1], 257);
    assert_int_equal(f.bpf.syscalls[2], 60);
    tb_ftrace_filter_release(&f);
    sys[1] = "bogus";
    assert_int_equal(tb_ftrace_filter_parse(&fc, &f, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bogus"));
    if (stat(CG_ROOT, &st))
        return;
    /* The cgroup2 root: "/" as /proc/PID/cgroup has it, and absolute. */
    assert_int_equal(tb_ftrace_filter_cgroup_id("/", &id, where, sizeof(where)), 0);
    assert_int_equal(id, st.st_ino);
    assert_int_equal(tb_ftrace_filter_cgroup_id(CG_ROOT, &id, NULL, 0), 0);
    assert_int_equal(tb_ftrace_filter_cgroup_id("/no-such-cgroup", &id, NULL, 0), -ENOENT);
    assert_int_equal(tb_ftrace_filter_cgroup_id(CG_ROOT "/cgroup.procs", &id, NULL, 0), -ENOTDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolver),    cmocka_unit_test(test_pid_follows_children),
        cmocka_unit_test(test_comm),        cmocka_unit_test(test_cgroup),
        cmocka_unit_test(test_syscall_set), cmocka_unit_test(test_bad_filter_refused),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
