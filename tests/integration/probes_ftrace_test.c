/*
 * probes_ftrace_test.c - the raw-ftrace path against the real tracefs:
 * a private instance with ftrace/print enabled sees what we write into its
 * trace_marker (with a boot-clock timestamp), unknown events are refused by
 * name, stale instances of dead runs are removed, and the global tracing
 * state is the same after as before.
 */
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event-parse.h>

#include "common/pb_writer.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "producers/ftrace/bundle.h"
#include "producers/ftrace/ftrace_instance.h"

#define TRACEFS "/sys/kernel/tracing"

static int setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "probes_ftrace_test: SKIP: needs root for tracefs\n");
        return 0;
    }
    if (access(TRACEFS "/trace", F_OK)) {
        fprintf(stderr, "probes_ftrace_test: SKIP: tracefs not mounted "
                        "(mount -t tracefs nodev " TRACEFS ")\n");
        return 0;
    }
    *state = (void *)1;
    return 0;
}

#define NEED_KERNEL(state) \
    do {                   \
        if (!*(state))     \
            skip();        \
    } while (0)

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

static int instance_exists(const char *name)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof(path), TRACEFS "/instances/%s", name);
    return stat(path, &st) == 0;
}

struct marker_hunt {
    const char *want;
    int found;
    int renames;
    int events;
    uint64_t ts;
    struct tb_bundler *bundler;
};

static int on_event(void *ctx, int cpu, struct tep_event *ev, struct tep_record *rec)
{
    struct marker_hunt *h = ctx;
    const char *buf;
    int len;

    h->events++;
    assert_int_equal(tb_bundler_add_ftrace(h->bundler, cpu, ev, rec), 0);
    if (!strcmp(ev->name, "task_rename")) {
        unsigned long long pid = 0;
        buf = tep_get_field_raw(NULL, ev, "newcomm", rec, &len, 0);
        tep_get_field_val(NULL, ev, "pid", rec, &pid, 0);
        h->renames += buf && !strcmp(buf, "tbftrace") && (pid_t)pid == getpid();
        return 0;
    }
    if (strcmp(ev->name, "print"))
        return 0;
    buf = tep_get_field_raw(NULL, ev, "buf", rec, &len, 0);
    if (buf && strstr(buf, h->want)) {
        h->found++;
        h->ts = rec->ts;
    }
    return 0;
}

static uint64_t boot_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The same events as bundles: print typed, task_rename in the generic form. */
static void check_encoded(struct tb_bundler *b, const char *msg)
{
    int prints = 0, renames = 0;

    for (int cpu = 0; cpu < sysconf(_SC_NPROCESSORS_CONF); cpu++) {
        Perfetto__Protos__TracePacket *pkt;
        const uint8_t *data;
        struct tb_pbw w;
        size_t len;

        assert_int_equal(tb_pbw_init_dyn(&w, 0), 0);
        assert_true(tb_bundler_emit(b, cpu, &w) >= 0);
        data = tb_pbw_dyn_data(&w, &len);
        pkt = perfetto__protos__trace_packet__unpack(NULL, len, data);
        tb_pbw_dyn_free(&w);
        assert_non_null(pkt);
        for (size_t i = 0; pkt->ftrace_events && i < pkt->ftrace_events->n_event; i++) {
            Perfetto__Protos__FtraceEvent *e = pkt->ftrace_events->event[i];

            if (e->event_case == PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT &&
                strstr(e->print->buf, msg)) {
                assert_int_equal(e->pid, getpid());
                prints++;
            }
            if (e->event_case == PERFETTO__PROTOS__FTRACE_EVENT__EVENT_GENERIC &&
                !strcmp(e->generic->event_name, "task_rename")) {
                int comm_ok = 0, pid_ok = 0;

                for (size_t j = 0; j < e->generic->n_field; j++) {
                    Perfetto__Protos__GenericFtraceEvent__Field *f = e->generic->field[j];

                    if (!strcmp(f->name, "newcomm") && f->str_value &&
                        !strcmp(f->str_value, "tbftrace"))
                        comm_ok = 1;
                    if (!strcmp(f->name, "pid") &&
                        f->value_case ==
                            PERFETTO__PROTOS__GENERIC_FTRACE_EVENT__FIELD__VALUE_INT_VALUE &&
                        f->int_value == getpid())
                        pid_ok = 1;
                }
                renames += comm_ok && pid_ok;
            }
        }
        perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
    }
    assert_int_equal(prints, 3);
    assert_int_equal(renames, 1);
}

static void test_marker_roundtrip(void **state)
{
    static const char *const ev[] = {"ftrace/print", "task_rename"};
    struct tb_ftrace_opts o = {.events = ev, .nr_events = 2, .buffer_size_kb = 512};
    char comm[16] = {0};
    char *clock_before, *on_before, *clock_after, *on_after, msg[64], name[64];
    struct marker_hunt h = {.want = msg};
    struct tb_ftrace *f;
    uint64_t t0, t1, over;

    NEED_KERNEL(state);
    clock_before = slurp(TRACEFS "/trace_clock");
    on_before = slurp(TRACEFS "/tracing_on");
    assert_int_equal(tb_bundler_new(sysconf(_SC_NPROCESSORS_CONF), false, &h.bundler), 0);
    assert_int_equal(tb_ftrace_new(&o, &f), 0);
    snprintf(name, sizeof(name), "%s", tb_ftrace_name(f));
    assert_true(instance_exists(name));
    snprintf(msg, sizeof(msg), "tb-marker-%d", (int)getpid());
    t0 = boot_ns();
    for (int i = 0; i < 3; i++)
        assert_int_equal(tb_ftrace_write_marker(f, msg), 0);
    t1 = boot_ns();
    prctl(PR_GET_NAME, comm);
    prctl(PR_SET_NAME, "tbftrace");
    prctl(PR_SET_NAME, comm);
    assert_true(tb_ftrace_read(f, on_event, &h) >= 3);
    assert_int_equal(h.found, 3);
    assert_int_equal(h.renames, 1);
    /* The instance runs on the boot clock, the trace's time base. */
    assert_true(h.ts >= t0 && h.ts <= t1);
    for (int cpu = 0; cpu < sysconf(_SC_NPROCESSORS_ONLN); cpu++) {
        assert_int_equal(tb_ftrace_overrun(f, cpu, &over), 0);
        assert_int_equal(over, 0);
    }
    assert_int_equal(tb_ftrace_overrun(f, 9999, &over) < 0, 1);
    check_encoded(h.bundler, msg);
    /* Read once, gone: a second pass sees nothing new. */
    h.found = 0;
    assert_int_equal(tb_ftrace_read(f, on_event, &h), 0);
    tb_ftrace_free(f);
    tb_bundler_free(h.bundler);
    assert_false(instance_exists(name));
    clock_after = slurp(TRACEFS "/trace_clock");
    on_after = slurp(TRACEFS "/tracing_on");
    assert_string_equal(clock_before, clock_after);
    assert_string_equal(on_before, on_after);
    free(clock_before);
    free(on_before);
    free(clock_after);
    free(on_after);
}

static void test_unknown_event_refused(void **state)
{
    static const char *const ev[] = {"ftrace/print", "nosuchgroup/nosuchevent"};
    struct tb_ftrace_opts o = {.events = ev, .nr_events = 2};
    struct tb_ftrace *f = (void *)1;
    char name[64];

    NEED_KERNEL(state);
    assert_int_equal(tb_ftrace_new(&o, &f), -ENOENT);
    assert_null(f);
    snprintf(name, sizeof(name), TB_FTRACE_INSTANCE_PREFIX "%d", (int)getpid());
    assert_false(instance_exists(name));
    /* A bare name resolves to its group. */
    assert_int_equal(tb_ftrace_resolve("sched_switch", name, sizeof(name)), 0);
    assert_string_equal(name, "sched/sched_switch");
}

static void test_stale_instance_removed(void **state)
{
    char path[256], live[256];
    pid_t dead;

    NEED_KERNEL(state);
    dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    snprintf(path, sizeof(path), TRACEFS "/instances/" TB_FTRACE_INSTANCE_PREFIX "%d", dead);
    assert_int_equal(mkdir(path, 0755), 0);
    /* One of a live process (ourselves' parent) must stay. */
    snprintf(live, sizeof(live), TRACEFS "/instances/" TB_FTRACE_INSTANCE_PREFIX "%d",
             (int)getppid());
    int made_live = mkdir(live, 0755) == 0;
    assert_true(tb_ftrace_cleanup_stale() >= 1);
    assert_int_equal(access(path, F_OK), -1);
    if (made_live) {
        assert_int_equal(access(live, F_OK), 0);
        rmdir(live);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marker_roundtrip),
        cmocka_unit_test(test_unknown_event_refused),
        cmocka_unit_test(test_stale_instance_removed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
