/*
 * probes_e2e_test.c - traced-bpf-probes end to end: the real daemon
 * (--no-probes) on temp sockets, the real kernel producer connected to it,
 * a session with linux.ftrace (compact sched, process lifecycle, one raw
 * ftrace event) and linux.process_stats, a known workload (children with
 * chosen names, a pipe ping-pong, a marker in our ftrace instance), then
 * the trace decoded with protobuf-c and checked event by event. Afterwards
 * the producer must hold no BPF object and its ftrace instance must be
 * gone, both after a session stop and after SIGTERM.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "probes_e2e_util.h"

#define NR_CHILDREN 4
#define PINGS       200

static struct probes_env env;

/*
 * How many BPF programs, maps and links (@links_only: links) the probes
 * process holds.
 */
static int probes_bpf_fds_of(bool links_only)
{
    char path[64], target[128], link[PATH_MAX];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", env.probes_pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        ssize_t len;

        if (de->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
        len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strstr(target, "bpf_link") ||
            (!links_only && (strstr(target, "bpf-prog") || strstr(target, "bpf-map"))))
            n++;
    }
    closedir(d);
    return n;
}

static int probes_bpf_fds(void)
{
    return probes_bpf_fds_of(false);
}

static void instance_path(char *out, size_t len)
{
    snprintf(out, len, "/sys/kernel/tracing/instances/traced-bpf-%d", env.probes_pid);
}

static int setup(void **state)
{
    (void)state;
    probes_env_start(&env, "probes_e2e_test", "linux.process_stats");
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
    Perfetto__Protos__FtraceConfig__CompactSchedConfig cs;
    Perfetto__Protos__ProcessStatsConfig pc;
};

static char *events[] = {
    "sched/sched_switch",       "sched/sched_waking", "sched/sched_process_fork",
    "sched/sched_process_exit", "task/task_rename",   "ftrace/print",
};

static void make_config(struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    perfetto__protos__trace_config__init(&c->tc);
    perfetto__protos__trace_config__buffer_config__init(&c->buf);
    c->buf.has_size_kb = true;
    c->buf.size_kb = 32768;
    c->buf.has_fill_policy = true;
    c->buf.fill_policy = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    c->bufs[0] = &c->buf;
    c->tc.n_buffers = 1;
    c->tc.buffers = c->bufs;
    perfetto__protos__ftrace_config__init(&c->fc);
    perfetto__protos__ftrace_config__compact_sched_config__init(&c->cs);
    c->cs.has_enabled = true;
    c->cs.enabled = true;
    c->fc.compact_sched = &c->cs;
    c->fc.n_ftrace_events = sizeof(events) / sizeof(events[0]);
    c->fc.ftrace_events = events;
    c->fc.has_drain_period_ms = true;
    c->fc.drain_period_ms = 50;
    perfetto__protos__process_stats_config__init(&c->pc);
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

static bool instance_on(void)
{
    char path[192], c = 0;
    int fd;

    instance_path(path, 128);
    strcat(path, "/tracing_on");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (read(fd, &c, 1) != 1)
        c = 0;
    close(fd);
    return c == '1';
}

/*
 * The BPF events of the config (all but ftrace/print): one program, so one
 * link, each.
 */
#define NR_BPF_LINKS 5

/*
 * Waits until the producer's instance records and every program is
 * attached: the maps exist long before (units load one after the other,
 * slowly under ASan on a loaded machine), so counting any BPF fd is not
 * enough.
 */
static void wait_recording(void)
{
    int i;

    for (i = 0; i < 800 && (probes_bpf_fds_of(true) < NR_BPF_LINKS || !instance_on()); i++)
        probes_env_sleep_ms(25);
    assert_true(instance_on());
    assert_true(probes_bpf_fds_of(true) >= NR_BPF_LINKS);
    /* The drain thread starts right after the last attach. */
    probes_env_sleep_ms(100);
}

/* ------------------------------------------------------------ workload */

static pid_t kids[NR_CHILDREN], pong;

static void run_children(void)
{
    for (int i = 0; i < NR_CHILDREN; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char name[16];

            snprintf(name, sizeof(name), "tbe2e-kid%d", i);
            prctl(PR_SET_NAME, name);
            probes_env_sleep_ms(5);
            _exit(0);
        }
    }
    for (int i = 0; i < NR_CHILDREN; i++)
        waitpid(kids[i], NULL, 0);
}

static void run_ping_pong(void)
{
    int a[2], b[2];
    char c = 'x';

    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    pong = fork();
    assert_true(pong >= 0);
    if (pong == 0) {
        prctl(PR_SET_NAME, "tbe2e-pong");
        for (int i = 0; i < PINGS; i++) {
            if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    for (int i = 0; i < PINGS; i++) {
        assert_int_equal(write(a[1], &c, 1), 1);
        assert_int_equal(read(b[0], &c, 1), 1);
    }
    waitpid(pong, NULL, 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static void write_marker(const char *msg)
{
    char path[192];
    int fd;

    instance_path(path, 128);
    strcat(path, "/trace_marker");
    fd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
        fail_msg("writing %s: %s", path, strerror(errno));
    close(fd);
}

/* ------------------------------------------------------------ decoding */

struct seen {
    bool fork[NR_CHILDREN], rename[NR_CHILDREN], exit[NR_CHILDREN];
    bool pong_forked;
    uint64_t wake_pong, wake_self, switch_to_pong, switch_to_self;
    uint64_t lost_bundles, dropped_packets, bundles;
    uint32_t seqs[16]; /* sequences seen so far */
    size_t nr_seqs;
    uint32_t ftrace_seqs[4]; /* sequences carrying ftrace bundles */
    size_t nr_ftrace_seqs;
    bool marker, tree_self, stats_end;
    uint64_t stats_dropped, stats_overrun;
};

static int kid_index(int32_t pid)
{
    for (int i = 0; i < NR_CHILDREN; i++) {
        if (kids[i] == pid)
            return i;
    }
    return -1;
}

static void check_event(struct seen *s, const Perfetto__Protos__FtraceEvent *e)
{
    char want[16];
    int k;

    switch (e->event_case) {
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK:
        k = kid_index(e->sched_process_fork->child_pid);
        if (k >= 0 && e->sched_process_fork->parent_pid == getpid())
            s->fork[k] = true;
        if (e->sched_process_fork->child_pid == pong)
            s->pong_forked = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_RENAME:
        k = kid_index(e->task_rename->pid);
        snprintf(want, sizeof(want), "tbe2e-kid%d", k);
        if (k >= 0 && e->task_rename->newcomm && !strcmp(e->task_rename->newcomm, want))
            s->rename[k] = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXIT:
        k = kid_index(e->sched_process_exit->pid);
        snprintf(want, sizeof(want), "tbe2e-kid%d", k);
        if (k >= 0 && e->sched_process_exit->comm && !strcmp(e->sched_process_exit->comm, want))
            s->exit[k] = true;
        break;
    case PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT:
        if (e->print->buf && strstr(e->print->buf, "tbe2e-marker"))
            s->marker = true;
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
    /*
     * A service may flag the first packet of every sequence as a bare
     * "dropped" (nothing vouches for what came before it), so a first packet
     * with PRESENT alone is no loss. A cause bit is, even on a first packet:
     * a writer's late chunks that land in a new sequence (unregistered
     * before its last commit) carry ORPHAN_CONTINUATION there.
     */
    if (p->optional_trusted_packet_sequence_id_case ==
        PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_PACKET_SEQUENCE_ID_TRUSTED_PACKET_SEQUENCE_ID) {
        uint32_t dropped = p->has_previous_packet_dropped ? p->previous_packet_dropped : 0;
        bool first;
        size_t i;

        for (i = 0; i < s->nr_seqs && s->seqs[i] != p->trusted_packet_sequence_id; i++)
            ;
        first = i == s->nr_seqs;
        if (first && i < sizeof(s->seqs) / sizeof(s->seqs[0]))
            s->seqs[s->nr_seqs++] = p->trusted_packet_sequence_id;
        if (dropped && (!first || dropped != 1)) {
            print_message("sequence %u: packet after a loss (causes 0x%x)\n",
                          p->trusted_packet_sequence_id, p->previous_packet_dropped);
            s->dropped_packets++;
        }
    }
    if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS) {
        const Perfetto__Protos__FtraceEventBundle *b = p->ftrace_events;
        const Perfetto__Protos__FtraceEventBundle__CompactSched *cs = b->compact_sched;
        size_t j;

        s->bundles++;
        for (j = 0; j < s->nr_ftrace_seqs && s->ftrace_seqs[j] != p->trusted_packet_sequence_id;
             j++)
            ;
        if (j == s->nr_ftrace_seqs && j < sizeof(s->ftrace_seqs) / sizeof(s->ftrace_seqs[0]))
            s->ftrace_seqs[s->nr_ftrace_seqs++] = p->trusted_packet_sequence_id;
        if (b->lost_events)
            s->lost_bundles++;
        for (size_t i = 0; i < b->n_event; i++)
            check_event(s, b->event[i]);
        for (size_t i = 0; cs && i < cs->n_waking_pid; i++) {
            s->wake_pong += cs->waking_pid[i] == pong;
            s->wake_self += cs->waking_pid[i] == getpid();
        }
        for (size_t i = 0; cs && i < cs->n_switch_next_pid; i++) {
            s->switch_to_pong += cs->switch_next_pid[i] == pong;
            s->switch_to_self += cs->switch_next_pid[i] == getpid();
        }
    } else if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE) {
        for (size_t i = 0; i < p->process_tree->n_processes; i++) {
            const Perfetto__Protos__ProcessTree__Process *pr = p->process_tree->processes[i];

            if (pr->pid == getpid() && pr->ppid == getppid() && pr->n_cmdline &&
                strstr(pr->cmdline[0], "probes_e2e_test"))
                s->tree_self = true;
        }
    } else if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS &&
               p->ftrace_stats->phase == PERFETTO__PROTOS__FTRACE_STATS__PHASE__END_OF_TRACE) {
        s->stats_end = true;
        for (size_t i = 0; i < p->ftrace_stats->n_cpu_stats; i++) {
            s->stats_dropped += p->ftrace_stats->cpu_stats[i]->dropped_events;
            s->stats_overrun += p->ftrace_stats->cpu_stats[i]->overrun;
        }
    }
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
    return 0;
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

/* ------------------------------------------------------------ tests */

static void test_sched_and_process_tree(void **state)
{
    struct seen s = {0};
    char inst[128];
    struct tb_cc *cc;
    struct cfg c;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.tc, -1), 0);
    wait_recording();

    run_children();
    run_ping_pong();
    if (getenv("TB_E2E_MARKER"))
        write_marker("tbe2e-marker hello");
    probes_env_sleep_ms(200);

    end_session(cc);
    assert_int_equal(tb_cc_read_buffers_cb(cc, on_packet, &s, 10000, NULL), 0);
    tb_cc_free(cc);

    /* What was seen, so a failure says more than its first assertion. */
    print_message("bundles %llu lost %llu dropped_packets %llu stats_dropped %llu overrun %llu "
                  "fork0 %d rename0 %d exit0 %d pong_forked %d wake_pong %llu wake_self %llu "
                  "switch_to_pong %llu switch_to_self %llu tree_self %d stats_end %d "
                  "ftrace_seqs %zu\n",
                  (unsigned long long)s.bundles, (unsigned long long)s.lost_bundles,
                  (unsigned long long)s.dropped_packets, (unsigned long long)s.stats_dropped,
                  (unsigned long long)s.stats_overrun, s.fork[0], s.rename[0], s.exit[0],
                  s.pong_forked, (unsigned long long)s.wake_pong, (unsigned long long)s.wake_self,
                  (unsigned long long)s.switch_to_pong, (unsigned long long)s.switch_to_self,
                  s.tree_self, s.stats_end, s.nr_ftrace_seqs);
    for (int i = 0; i < NR_CHILDREN; i++) {
        assert_true(s.fork[i]);
        assert_true(s.rename[i]);
        assert_true(s.exit[i]);
    }
    assert_true(s.pong_forked);
    /*
     * Every round trip switches to each side. Not every one wakes it: a side
     * that has not gone to sleep yet when the byte arrives needs no wakeup,
     * and the kernel's own sched_waking event shows the same (measured on
     * this VM: 0 to 230 wakings per 200 round trips for one side). In a round
     * trip at least one side blocks in read() and is woken, though.
     */
    assert_true(s.wake_pong + s.wake_self >= PINGS - 1);
    assert_true(s.switch_to_pong >= PINGS - 1);
    assert_true(s.switch_to_self >= PINGS - 1);
    if (getenv("TB_E2E_MARKER"))
        assert_true(s.marker);
    assert_true(s.tree_self);
    assert_true(s.stats_end);
    assert_int_equal(s.lost_bundles, 0);
    assert_int_equal(s.dropped_packets, 0);
    /* One TraceWriter writes the bundles: a second sequence means it was split. */
    assert_int_equal(s.nr_ftrace_seqs, 1);
    assert_int_equal(s.stats_dropped, 0);
    assert_int_equal(s.stats_overrun, 0);

    /* The kernel is left as it was found. */
    instance_path(inst, sizeof(inst));
    for (int i = 0; i < 100 && (probes_bpf_fds() || !access(inst, F_OK)); i++)
        probes_env_sleep_ms(20);
    assert_int_equal(probes_bpf_fds(), 0);
    assert_int_not_equal(access(inst, F_OK), 0);
}

static void test_sigterm_while_recording(void **state)
{
    char inst[128];
    struct tb_cc *cc;
    struct cfg c;
    int status;

    (void)state;
    if (env.probes_pid <= 0)
        skip();
    make_config(&c);
    assert_int_equal(tb_cc_connect(env.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_enable(cc, &c.tc, -1), 0);
    wait_recording();
    instance_path(inst, sizeof(inst));
    status = probes_env_stop_pid(&env.probes_pid, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_not_equal(access(inst, F_OK), 0);
    end_session(cc);
    tb_cc_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_and_process_tree),
        cmocka_unit_test(test_sigterm_while_recording),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
