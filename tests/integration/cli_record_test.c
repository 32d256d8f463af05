/*
 * cli_record_test.c - "tracebpf record", "stats" and "ls" run as a user runs
 * them: the built binary, a real embedded service (record with no daemon), a
 * real daemon from the build tree (ls/stats) with a real producer client, and
 * the resulting trace file decoded with protobuf-c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli_run.h"
#include "daemon_util.h"
#include "common/producer_client.h"
#include "consumer/textproto.h"
#include "consumer/trace_reader.h"
#include "perfetto/config/trace_config.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

struct fixture {
    char dir[64];
    char out[128];
    char tmp[160];
    struct td_daemon daemon; /* zeroed until a test starts it */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/cli_record_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->out, sizeof(f->out), "%s/t.pftrace", f->dir);
    snprintf(f->tmp, sizeof(f->tmp), "%s.tmp", f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    /* Also after a failed test: the next one must not find these. */
    td_cleanup(&f->daemon, false);
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    unsetenv("PERFETTO_PRODUCER_SOCK_NAME");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd))
        return -1;
    free(f);
    return 0;
}

static bool exists(const char *path)
{
    return !access(path, F_OK);
}

static bool probes_built(void)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/producers/ftrace/traced-bpf-probes",
             getenv("TB_TEST_BUILD_DIR") ?: ".");
    return !access(path, X_OK);
}

struct decoded {
    uint64_t packets, bundles, sched_switches, process_trees, system_info, trace_stats;
};

static void decode(const char *path, struct decoded *d)
{
    struct tb_trace_reader *r = NULL;
    const uint8_t *data;
    size_t len, i;
    int ret;

    memset(d, 0, sizeof(*d));
    assert_int_equal(tb_trace_reader_open(path, &r), 0);
    while ((ret = tb_trace_reader_next(r, &data, &len)) == 1) {
        Perfetto__Protos__TracePacket *p = perfetto__protos__trace_packet__unpack(NULL, len, data);

        assert_non_null(p);
        d->packets++;
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS) {
            const Perfetto__Protos__FtraceEventBundle *b = p->ftrace_events;

            d->bundles++;
            if (b->compact_sched)
                d->sched_switches += b->compact_sched->n_switch_timestamp;
            for (i = 0; i < b->n_event; i++)
                d->sched_switches +=
                    b->event[i]->event_case == PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH;
        }
        d->process_trees += p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE;
        d->system_info += p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO;
        d->trace_stats += p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS;
        perfetto__protos__trace_packet__free_unpacked(p, NULL);
    }
    assert_int_equal(ret, 0);
    tb_trace_reader_free(r);
}

/* (a) No daemon on the socket: record runs an embedded service. */
static void test_record_embedded_sched(void **state)
{
    struct fixture *f = *state;
    char sock[128], open_line[256];
    const char *args[] = {"record", "-t", "1s", "sched", "-o", f->out, NULL};
    struct cli_result r;
    struct decoded d;

    if (geteuid()) {
        skip();
        return;
    }
    snprintf(sock, sizeof(sock), "%s/nobody.sock", f->dir);
    setenv("PERFETTO_CONSUMER_SOCK_NAME", sock, 1);
    assert_int_equal(cli_run(&r, args), 0);
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    if (r.status)
        fprintf(stderr, "stderr: %s\n", r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "recording with an embedded service"));
    assert_non_null(strstr(r.err, sock));
    assert_non_null(strstr(r.out, f->out));
    snprintf(open_line, sizeof(open_line), "tracebpf open %s", f->out);
    assert_non_null(strstr(r.out, open_line));
    assert_true(exists(f->out));
    assert_false(exists(f->tmp));

    decode(f->out, &d);
    assert_true(d.system_info >= 1);
    assert_true(d.trace_stats >= 1);
    if (probes_built()) {
        assert_true(d.bundles > 0);
        assert_true(d.sched_switches > 0);
        assert_true(d.process_trees > 0);
        assert_non_null(strstr(r.out, "ftrace:"));
    } else {
        /* Without the kernel producer the summary must say what did not run. */
        print_message("traced-bpf-probes not built: checking the service-only trace\n");
        assert_non_null(strstr(r.err, "linux.ftrace: no producer offers it"));
    }
    cli_result_free(&r);
}

/* (b) --print-config output is a TraceConfig with the flags' layout. */
static void test_print_config_parses_back(void **state)
{
    const char *args[] = {"record", "sched",          "irq", "-b", "32mb", "-t",
                          "2s",     "--print-config", NULL};
    Perfetto__Protos__TraceConfig *cfg;
    ProtobufCMessage *msg = NULL;
    bool has_switch = false, has_irq = false, has_proc = false;
    struct cli_result r;
    char err[256];
    size_t i, j;

    (void)state;
    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(tb_textproto_parse(&perfetto__protos__trace_config__descriptor, r.out,
                                        strlen(r.out), &msg, err, sizeof(err)),
                     0);
    cfg = (Perfetto__Protos__TraceConfig *)msg;
    assert_int_equal(cfg->duration_ms, 2000);
    assert_int_equal(cfg->n_buffers, 2);
    assert_int_equal(cfg->buffers[0]->size_kb, 32 * 1024);
    assert_int_equal(cfg->buffers[0]->fill_policy,
                     PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__RING_BUFFER);
    assert_true(cfg->buffers[1]->size_kb < cfg->buffers[0]->size_kb);
    for (i = 0; i < cfg->n_data_sources; i++) {
        const Perfetto__Protos__DataSourceConfig *c = cfg->data_sources[i]->config;

        if (!strcmp(c->name, "linux.ftrace")) {
            assert_int_equal(c->target_buffer, 0);
            assert_non_null(c->ftrace_config->compact_sched);
            assert_true(c->ftrace_config->compact_sched->enabled);
            for (j = 0; j < c->ftrace_config->n_ftrace_events; j++) {
                has_switch |= !strcmp(c->ftrace_config->ftrace_events[j], "sched/sched_switch");
                has_irq |= !strcmp(c->ftrace_config->ftrace_events[j], "irq/irq_handler_entry");
            }
        } else if (!strcmp(c->name, "linux.process_stats")) {
            assert_int_equal(c->target_buffer, 1);
            has_proc = true;
        }
    }
    assert_true(has_switch);
    assert_true(has_irq);
    assert_true(has_proc);
    tb_textproto_free(msg);
    cli_result_free(&r);
}

static void expect_one_line_failure(const char *const *args, const char *out, const char *needle)
{
    struct cli_result r;

    assert_int_equal(cli_run(&r, args), 0);
    assert_int_not_equal(r.status, 0);
    assert_int_equal(cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, needle));
    assert_false(exists(out));
    cli_result_free(&r);
}

/* (c) bad flag, unknown event, broken config: one line, non-zero, no file. */
static void test_errors_leave_no_file(void **state)
{
    struct fixture *f = *state;
    char cfg[128], out_tmp[200];
    FILE *fp;

    {
        const char *args[] = {"record", "--bogus", "sched", "-o", f->out, NULL};

        expect_one_line_failure(args, f->out, "--bogus");
    }
    if (exists("/sys/kernel/tracing/events")) {
        const char *args[] = {"record", "-e", "nosuchgroup/nosuchevent", "-o", f->out, NULL};

        expect_one_line_failure(args, f->out, "nosuchgroup/nosuchevent");
    }
    snprintf(cfg, sizeof(cfg), "%s/broken.pbtxt", f->dir);
    fp = fopen(cfg, "w");
    assert_non_null(fp);
    fputs("buffers { size_kb: 1024 }\nduration_ms: \"ten\"\n", fp);
    fclose(fp);
    {
        const char *args[] = {"record", "-c", cfg, "--txt", "-o", f->out, NULL};
        char where[160];

        snprintf(where, sizeof(where), "%s:2:", cfg);
        expect_one_line_failure(args, f->out, where);
    }
    {
        const char *args[] = {"record", "--pid", "nosuchpid", "sched", "-o", f->out, NULL};

        expect_one_line_failure(args, f->out, "--pid");
    }
    snprintf(out_tmp, sizeof(out_tmp), "%s.tmp", f->out);
    assert_false(exists(out_tmp));
}

/* (d) ls and stats against a real daemon with a real producer. */
static void test_ls_and_stats_with_daemon(void **state)
{
    struct fixture *f = *state;
    Perfetto__Protos__DataSourceDescriptor desc = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    struct tb_pc_opts po = {.producer_name = "cli_record_test_producer", .own_thread = true};
    const char *ls[] = {"ls", NULL}, *stats[] = {"stats", NULL};
    /* tracebpf finds the daemon through the environment, as a user's would. */
    struct td_opts o = {.tag = "cli-record", .export_env = true};
    struct tb_pc *pc = NULL;
    struct cli_result r;
    char pid_str[32];
    int i;

    assert_int_equal(td_start(&f->daemon, &o), 0);
    po.socket_name = f->daemon.psock;
    desc.name = "test.cli_record.source";
    assert_int_equal(tb_pc_create(&po, &pc), 0);
    assert_int_equal(tb_pc_register_data_source(pc, &desc), 0);
    for (i = 0; i < 100; i++) {
        assert_int_equal(cli_run(&r, ls), 0);
        if (r.status == 0 && strstr(r.out, "test.cli_record.source"))
            break;
        cli_result_free(&r);
        usleep(50 * 1000);
    }
    assert_true(i < 100);
    assert_non_null(strstr(r.out, "1 producer(s)"));
    assert_non_null(strstr(r.out, "cli_record_test_producer"));
    snprintf(pid_str, sizeof(pid_str), "pid %d,", (int)getpid());
    assert_non_null(strstr(r.out, pid_str));
    cli_result_free(&r);

    assert_int_equal(cli_run(&r, stats), 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "producers:    1 connected"));
    assert_non_null(strstr(r.out, "data sources: 1 registered"));
    cli_result_free(&r);

    tb_pc_destroy(pc);
    td_stop(&f->daemon);

    /* The daemon is gone: one line naming the socket, exit 1. */
    assert_int_equal(cli_run(&r, ls), 0);
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    unsetenv("PERFETTO_PRODUCER_SOCK_NAME");
    assert_int_equal(r.status, 1);
    assert_int_equal(cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "no traced-bpf daemon answered"));
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_print_config_parses_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_leave_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ls_and_stats_with_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_embedded_sched, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
