/*
 * probes_ui_config_test.c - the TraceConfig the Perfetto UI's "Record new
 * trace" page makes for CPU scheduling (two buffers, compact sched, power
 * and task events, process_stats into buffer 1, sys_stats), recorded with
 * the built `tracebpf record -c FILE --txt` against the build-tree daemon
 * with its kernel producer, then decoded: compact sched_switch on every
 * CPU, wakings, a process tree naming this test, sys_stats cpu times, no
 * data source failed, exit 0. Events this kernel lacks are named in the
 * FtraceStats and never fail the session.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "system_daemon.h"

#define MAX_CPUS 256
#define SPIN_MS  3500

static const char *const ui_events[] = {
    "sched/sched_switch",     "power/suspend_resume",     "sched/sched_wakeup",
    "sched/sched_wakeup_new", "sched/sched_waking",       "power/cpu_frequency",
    "power/cpu_idle",         "sched/sched_process_exit", "sched/sched_process_free",
    "task/task_newtask",      "task/task_rename",
};

static struct sys_daemon daemon_;
static bool up;

static int setup(void **state)
{
    (void)state;
    if (!sys_can_run("probes_ui_config_test"))
        return 0;
    if (sys_daemon_start(&daemon_)) {
        sys_daemon_cleanup(&daemon_, true);
        return -1;
    }
    up = true;
    return 0;
}

static int teardown(void **state)
{
    int code;

    (void)state;
    if (!up)
        return 0;
    code = sys_daemon_stop(&daemon_);
    sys_daemon_cleanup(&daemon_, code != 0);
    return code == 0 ? 0 : -1;
}

/* The UI's config, with @extra appended to the ftrace events when given. */
static void write_config(const char *path, const char *extra)
{
    FILE *f = fopen(path, "we");

    assert_non_null(f);
    fputs("buffers { size_kb: 63488 fill_policy: DISCARD }\n"
          "buffers { size_kb: 2048 fill_policy: DISCARD }\n"
          "data_sources {\n  config {\n    name: \"linux.ftrace\"\n    ftrace_config {\n",
          f);
    for (size_t i = 0; i < sizeof(ui_events) / sizeof(ui_events[0]); i++)
        fprintf(f, "      ftrace_events: \"%s\"\n", ui_events[i]);
    if (extra)
        fprintf(f, "      ftrace_events: \"%s\"\n", extra);
    fputs("      buffer_size_kb: 2048\n      drain_period_ms: 250\n"
          "      compact_sched { enabled: true }\n    }\n  }\n}\n"
          "data_sources {\n  config {\n    name: \"linux.process_stats\"\n    target_buffer: 1\n"
          "    process_stats_config { scan_all_processes_on_start: true }\n  }\n}\n"
          "data_sources {\n  config {\n    name: \"linux.sys_stats\"\n"
          "    sys_stats_config {\n      stat_period_ms: 1000\n"
          "      stat_counters: STAT_CPU_TIMES\n      stat_counters: STAT_FORK_COUNT\n"
          "    }\n  }\n}\n"
          "duration_ms: 2000\n",
          f);
    fclose(f);
}

/*
 * One child pinned to each online CPU that sleeps and wakes for longer than
 * the session, so every CPU switches and wakes while we record.
 */
static int start_spinners(pid_t *kids, int max)
{
    int n = 0;

    for (int cpu = 0; cpu < MAX_CPUS && n < max; cpu++) {
        cpu_set_t set;
        pid_t pid;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set))
            continue;
        pid = fork();
        if (pid == 0) {
            for (int i = 0; i < SPIN_MS / 5; i++)
                sys_sleep_ms(5);
            _exit(0);
        }
        if (pid > 0)
            kids[n++] = pid;
    }
    /* Back to every CPU for the rest of the test. */
    {
        cpu_set_t all;

        CPU_ZERO(&all);
        for (int cpu = 0; cpu < MAX_CPUS; cpu++)
            CPU_SET(cpu, &all);
        sched_setaffinity(0, sizeof(all), &all);
    }
    return n;
}

struct seen {
    uint64_t switches[MAX_CPUS], wakings;
    bool tree_self, cpu_times, ftrace_stats;
    size_t failed;
    char unknown[1024]; /* unknown_ftrace_events, space separated */
};

static void on_packet(void *ctx, const Perfetto__Protos__TracePacket *p)
{
    struct seen *s = ctx;

    switch (p->data_case) {
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS: {
        const Perfetto__Protos__FtraceEventBundle *b = p->ftrace_events;

        if (b->compact_sched && b->cpu < MAX_CPUS) {
            s->switches[b->cpu] += b->compact_sched->n_switch_timestamp;
            s->wakings += b->compact_sched->n_waking_timestamp;
        }
        break;
    }
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE:
        for (size_t i = 0; i < p->process_tree->n_processes; i++) {
            const Perfetto__Protos__ProcessTree__Process *pr = p->process_tree->processes[i];

            if (pr->pid == getpid() && pr->n_cmdline &&
                strstr(pr->cmdline[0], "probes_ui_config_test"))
                s->tree_self = true;
        }
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_SYS_STATS:
        s->cpu_times |= p->sys_stats->n_cpu_stat > 0;
        break;
    case PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_STATS:
        s->ftrace_stats = true;
        s->failed += p->ftrace_stats->n_failed_ftrace_events;
        for (size_t i = 0; i < p->ftrace_stats->n_unknown_ftrace_events; i++) {
            const char *u = p->ftrace_stats->unknown_ftrace_events[i];

            /* Both phases (start, end) name them: keep each once. */
            if (!strstr(s->unknown, u) && strlen(s->unknown) + strlen(u) + 2 < sizeof(s->unknown)) {
                strcat(s->unknown, u);
                strcat(s->unknown, " ");
            }
        }
        break;
    default:
        break;
    }
}

static bool kernel_has(const char *event)
{
    char path[256];

    snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s/format", event);
    return access(path, F_OK) == 0;
}

/* Record the UI config (+ @extra), check the trace; @s receives what it held. */
static void record_and_check(const char *extra, struct seen *s)
{
    char cfg[128], out[128];
    const char *rec[] = {"record", "-c", cfg, "--txt", "-o", out, NULL};
    pid_t kids[MAX_CPUS];
    struct cli_result r;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nkids;
    char *log;

    memset(s, 0, sizeof(*s));
    snprintf(cfg, sizeof(cfg), "%s/ui.cfg", daemon_.dir);
    snprintf(out, sizeof(out), "%s/ui.pftrace", daemon_.dir);
    write_config(cfg, extra);
    nkids = start_spinners(kids, MAX_CPUS);
    assert_true(nkids >= 1);
    assert_int_equal(cli_run(&r, rec), 0);
    for (int i = 0; i < nkids; i++)
        waitpid(kids[i], NULL, 0);
    if (r.status != 0)
        fail_msg("tracebpf record exited %d:\n%s%s", r.status, r.out, r.err);
    assert_null(strstr(r.err, "did not start"));
    cli_result_free(&r);

    assert_true(sys_for_each_packet(out, on_packet, s) > 0);
    print_message("cpus %ld, wakings %llu, unknown events: %s\n", ncpu,
                  (unsigned long long)s->wakings, s->unknown[0] ? s->unknown : "none");
    for (long cpu = 0; cpu < ncpu && cpu < MAX_CPUS; cpu++) {
        print_message("cpu %ld: %llu compact sched_switch\n", cpu,
                      (unsigned long long)s->switches[cpu]);
        assert_true(s->switches[cpu] > 0);
    }
    assert_true(s->wakings > 0);
    assert_true(s->tree_self);
    assert_true(s->cpu_times);
    assert_true(s->ftrace_stats);
    assert_int_equal(s->failed, 0);
    /* The kernel's missing events, and only those, are named. */
    for (size_t i = 0; i < sizeof(ui_events) / sizeof(ui_events[0]); i++) {
        bool named = strstr(s->unknown, ui_events[i]) != NULL;

        if (kernel_has(ui_events[i]) == named)
            fail_msg("%s: on this kernel %d, named unknown %d", ui_events[i],
                     kernel_has(ui_events[i]), named);
    }
    log = cli_slurp(daemon_.log);
    assert_null(strstr(log, "did not start"));
    assert_null(strstr(log, "refused"));
    free(log);
    unlink(out);
    unlink(cfg);
}

static void test_ui_cpu_config(void **state)
{
    struct seen s;

    (void)state;
    if (!up)
        skip();
    record_and_check(NULL, &s);
}

static void test_missing_event_named_not_fatal(void **state)
{
    static const char missing[] = "power/tb_no_such_event";
    struct seen s;

    (void)state;
    if (!up)
        skip();
    assert_false(kernel_has(missing));
    record_and_check(missing, &s);
    assert_non_null(strstr(s.unknown, missing));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_cpu_config),
        cmocka_unit_test(test_missing_event_named_not_fatal),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
