/*
 * cli_record_config_test.c - flags -> TraceConfig (record_config.c): the
 * buffer layout, category expansion without duplicates, app categories,
 * streaming and compression, and loading configs from real files (binary,
 * text, broken text with line:col); the pid/comm/cgroup filters from the
 * command line (the real "record" command in a child process) into the
 * config, through --print-config and back, and onto a loaded config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer/cli.h"
#include "consumer/record_config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const Perfetto__Protos__DataSourceConfig *find_ds(const Perfetto__Protos__TraceConfig *c,
                                                         const char *name)
{
    size_t i;

    for (i = 0; i < c->n_data_sources; i++) {
        if (!strcmp(c->data_sources[i]->config->name, name))
            return c->data_sources[i]->config;
    }
    return NULL;
}

static size_t count_event(const Perfetto__Protos__FtraceConfig *fc, const char *ev)
{
    size_t i, n = 0;

    for (i = 0; i < fc->n_ftrace_events; i++)
        n += !strcmp(fc->ftrace_events[i], ev);
    return n;
}

static void test_categories_and_layout(void **state)
{
    const char *events[] = {"sched/sched_switch", "block/block_rq_issue"};
    struct tb_record_opts o = {
        .duration_ms = 3000, .buffer_kb = 8192, .events = events, .n_events = 2, .discard = true};
    Perfetto__Protos__TraceConfig *c = NULL;
    const Perfetto__Protos__DataSourceConfig *ft, *ps;

    (void)state;
    o.cats = tb_record_cat_parse("sched") | tb_record_cat_parse("syscalls") |
             tb_record_cat_parse("freq");
    assert_int_equal(tb_record_cat_parse("bogus"), 0);
    assert_int_equal(tb_record_config_build(&o, &c), 0);
    assert_int_equal(c->duration_ms, 3000);
    assert_int_equal(c->n_buffers, 2);
    assert_int_equal(c->buffers[0]->size_kb, 8192);
    assert_int_equal(c->buffers[0]->fill_policy,
                     PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD);
    ft = find_ds(c, "linux.ftrace");
    assert_non_null(ft);
    assert_int_equal(ft->target_buffer, 0);
    /* sched_switch asked twice (category and -e) is listed once. */
    assert_int_equal(count_event(ft->ftrace_config, "sched/sched_switch"), 1);
    assert_int_equal(count_event(ft->ftrace_config, "task/task_rename"), 1);
    assert_int_equal(count_event(ft->ftrace_config, "raw_syscalls/sys_enter"), 1);
    assert_int_equal(count_event(ft->ftrace_config, "power/cpu_frequency"), 1);
    assert_int_equal(count_event(ft->ftrace_config, "block/block_rq_issue"), 1);
    assert_int_equal(count_event(ft->ftrace_config, "irq/softirq_entry"), 0);
    assert_true(ft->ftrace_config->compact_sched->enabled);
    ps = find_ds(c, "linux.process_stats");
    assert_non_null(ps);
    assert_int_equal(ps->target_buffer, 1);
    assert_int_equal(find_ds(c, "linux.system_info")->target_buffer, 1);
    assert_null(find_ds(c, "track_event"));
    assert_false(c->write_into_file);
    tb_record_config_free(c);
}

static void test_apps_long_compress(void **state)
{
    const char *apps[] = {"my_app"};
    struct tb_record_opts o = {
        .buffer_kb = 1024, .apps = apps, .n_apps = 1, .long_mode = true, .compress = true};
    Perfetto__Protos__TraceConfig *c = NULL;
    const Perfetto__Protos__DataSourceConfig *te;

    (void)state;
    assert_int_equal(tb_record_config_build(&o, &c), 0);
    assert_false(c->has_duration_ms);
    assert_null(find_ds(c, "linux.ftrace"));
    te = find_ds(c, "track_event");
    assert_non_null(te);
    assert_int_equal(te->track_event_config->n_enabled_categories, 1);
    assert_string_equal(te->track_event_config->enabled_categories[0], "my_app");
    assert_int_equal(te->track_event_config->n_disabled_categories, 1);
    assert_string_equal(te->track_event_config->disabled_categories[0], "*");
    assert_true(c->write_into_file);
    assert_true(c->file_write_period_ms > 0);
    assert_int_equal(c->compression_type,
                     PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE);
    tb_record_config_free(c);

    o.n_apps = 0;
    assert_int_equal(tb_record_config_build(&o, &c), -EINVAL);
    assert_null(c);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_load_files(void **state)
{
    char path[] = "/tmp/cli_record_cfgXXXXXX";
    struct tb_record_opts o = {.buffer_kb = 2048, .cats = TB_REC_CAT_IRQ};
    Perfetto__Protos__TraceConfig *built = NULL, *c = NULL;
    static const char text[] = "# comment\nbuffers { size_kb: 512 fill_policy: DISCARD }\n"
                               "duration_ms: 1500\n";
    static const char broken[] = "buffers { size_kb: 512 }\nduration_ms: 1500\nbogus_field: 1\n";
    char err[256];
    uint8_t *buf;
    size_t len;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(tb_record_config_build(&o, &built), 0);
    len = perfetto__protos__trace_config__get_packed_size(built);
    buf = malloc(len);
    perfetto__protos__trace_config__pack(built, buf);
    write_file(path, buf, len);
    assert_int_equal(tb_record_config_load(path, false, &c, err, sizeof(err)), 0);
    assert_int_equal(c->buffers[0]->size_kb, 2048);
    assert_non_null(find_ds(c, "linux.ftrace"));
    tb_record_config_free(c);
    free(buf);
    tb_record_config_free(built);

    write_file(path, text, sizeof(text) - 1);
    assert_int_equal(tb_record_config_load(path, true, &c, err, sizeof(err)), 0);
    assert_int_equal(c->n_buffers, 1);
    assert_int_equal(c->buffers[0]->size_kb, 512);
    assert_int_equal(c->duration_ms, 1500);
    tb_record_config_free(c);

    write_file(path, broken, sizeof(broken) - 1);
    assert_int_equal(tb_record_config_load(path, true, &c, err, sizeof(err)), -EINVAL);
    assert_null(c);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_int_equal(strncmp(err + strlen(path), ":3:1:", 5), 0);

    unlink(path);
    assert_int_equal(tb_record_config_load(path, true, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, path));
}

static void test_check_event(void **state)
{
    (void)state;
    assert_int_equal(tb_record_check_event("/sys/kernel/tracing", "noslash"), -EINVAL);
    assert_int_equal(tb_record_check_event("/sys/kernel/tracing", "a/../b"), -EINVAL);
    assert_int_equal(tb_record_check_event("/nonexistent-tracefs", "sched/sched_switch"), -ENODEV);
    if (access("/sys/kernel/tracing/events/sched/sched_switch", F_OK)) {
        skip();
        return;
    }
    assert_int_equal(tb_record_check_event("/sys/kernel/tracing", "sched/sched_switch"), 0);
    assert_int_equal(tb_record_check_event("/sys/kernel/tracing", "sched/no_such_event"), -ENOENT);
}

/*
 * Runs "tracebpf record ARGS" (the real command, in a child so getopt and
 * exit paths start clean) with stdout in @out and stderr in @err (files).
 * Return: its exit code.
 */
static int run_record(const char *out, const char *err, const char *const *args)
{
    char *argv[16];
    int argc = 0, status = -1;
    pid_t pid;

    argv[argc++] = "record";
    while (*args && argc < 15)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(99);
        status = tb_cli_cmd_record.run(argc, argv);
        fflush(NULL);
        _exit(status);
    }
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_filters_build(void **state)
{
    const uint32_t pids[] = {4321, 1};
    struct tb_record_opts o = {.buffer_kb = 1024, .cats = TB_REC_CAT_SCHED | TB_REC_CAT_SYSCALLS};
    const Perfetto__Protos__FtraceConfig *fc;
    Perfetto__Protos__TraceConfig *c = NULL;

    (void)state;
    /* No filter: nothing in the config says otherwise. */
    assert_int_equal(tb_record_config_build(&o, &c), 0);
    fc = find_ds(c, "linux.ftrace")->ftrace_config;
    assert_int_equal(fc->n_tids_to_trace, 0);
    assert_null(fc->tracebpf_filter);
    tb_record_config_free(c);

    o.pids = pids;
    o.n_pids = 2;
    o.comm = "nginx";
    o.cgroup = "system.slice";
    assert_int_equal(tb_record_config_build(&o, &c), 0);
    fc = find_ds(c, "linux.ftrace")->ftrace_config;
    assert_int_equal(fc->n_tids_to_trace, 2);
    assert_int_equal(fc->tids_to_trace[0], 4321);
    assert_int_equal(fc->tids_to_trace[1], 1);
    assert_non_null(fc->tracebpf_filter);
    assert_int_equal(fc->tracebpf_filter->n_comm, 1);
    assert_string_equal(fc->tracebpf_filter->comm[0], "nginx");
    assert_int_equal(fc->tracebpf_filter->n_cgroup_path, 1);
    assert_string_equal(fc->tracebpf_filter->cgroup_path[0], "system.slice");
    /* The filters are the kernel producer's; other data sources have none. */
    assert_null(find_ds(c, "linux.process_stats")->ftrace_config);
    tb_record_config_free(c);
}

static void test_filters_on_loaded_config(void **state)
{
    char path[] = "/tmp/cli_record_fltXXXXXX";
    static const char text[] = "buffers { size_kb: 512 }\n"
                               "data_sources { config { name: \"linux.ftrace\" ftrace_config {\n"
                               "  ftrace_events: \"sched/sched_switch\" tids_to_trace: [7, 8]\n"
                               "  tracebpf_filter { comm: \"old\" } } } }\n"
                               "data_sources { config { name: \"track_event\" } }\n";
    static const char no_ftrace[] = "data_sources { config { name: \"track_event\" } }\n";
    const uint32_t pids[] = {99};
    struct tb_record_opts o = {.pids = pids, .n_pids = 1, .comm = "new"};
    const Perfetto__Protos__FtraceConfig *fc;
    Perfetto__Protos__TraceConfig *c = NULL;
    char err[256];
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, text, sizeof(text) - 1);
    assert_int_equal(tb_record_config_load(path, true, &c, err, sizeof(err)), 0);
    fc = find_ds(c, "linux.ftrace")->ftrace_config;
    assert_int_equal(fc->n_tids_to_trace, 2);
    assert_string_equal(fc->tracebpf_filter->comm[0], "old");
    /* The flags replace the file's filters (freed by the config's free). */
    assert_int_equal(tb_record_config_set_filters(c, &o), 0);
    assert_int_equal(fc->n_tids_to_trace, 1);
    assert_int_equal(fc->tids_to_trace[0], 99);
    assert_int_equal(fc->tracebpf_filter->n_comm, 1);
    assert_string_equal(fc->tracebpf_filter->comm[0], "new");
    assert_int_equal(fc->tracebpf_filter->n_cgroup_path, 0);
    tb_record_config_free(c);

    write_file(path, no_ftrace, sizeof(no_ftrace) - 1);
    assert_int_equal(tb_record_config_load(path, true, &c, err, sizeof(err)), 0);
    assert_int_equal(tb_record_config_set_filters(c, &o), -ENOENT);
    tb_record_config_free(c);
    unlink(path);
}

static void test_filter_flags(void **state)
{
    char dir[] = "/tmp/cli_record_flagsXXXXXX", out[64], err[64], cfg[64], pid[32], pids[48];
    const char *text;
    char *first;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    snprintf(cfg, sizeof(cfg), "%s/cfg.pbtxt", dir);
    snprintf(pid, sizeof(pid), "%d", getpid());
    snprintf(pids, sizeof(pids), "%d,1", getpid());

    assert_int_equal(run_record(out, err,
                                (const char *[]){"sched", "--pid", pids, "--comm", "tbtest",
                                                 "--print-config", NULL}),
                     TB_CLI_EXIT_OK);
    text = slurp(out);
    assert_non_null(strstr(text, "tracebpf_filter"));
    assert_non_null(strstr(text, "comm: \"tbtest\""));
    assert_non_null(strstr(text, "tids_to_trace: 1"));
    /* --print-config's output is a config -c --txt reads back unchanged. */
    f = fopen(cfg, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(
        run_record(out, err, (const char *[]){"-c", cfg, "--txt", "--print-config", NULL}),
        TB_CLI_EXIT_OK);
    first = strdup(slurp(cfg));
    assert_string_equal(slurp(out), first);
    free(first);

    /* Flags on top of -c: the pid replaces the file's two. */
    assert_int_equal(
        run_record(out, err,
                   (const char *[]){"-c", cfg, "--txt", "--pid", pid, "--print-config", NULL}),
        TB_CLI_EXIT_OK);
    text = slurp(out);
    assert_non_null(strstr(text, pid));
    assert_null(strstr(text, "tids_to_trace: 1\n"));

    /* Bad values: usage errors that name the value. */
    assert_int_equal(run_record(out, err, (const char *[]){"sched", "--pid", "12x", NULL}),
                     TB_CLI_EXIT_USAGE);
    assert_non_null(strstr(slurp(err), "12x"));
    assert_int_equal(run_record(out, err, (const char *[]){"sched", "--pid", "2147483647", NULL}),
                     TB_CLI_EXIT_USAGE);
    assert_non_null(strstr(slurp(err), "no process"));
    assert_int_equal(
        run_record(out, err, (const char *[]){"sched", "--comm", "sixteen-chars-xx", NULL}),
        TB_CLI_EXIT_USAGE);
    assert_non_null(strstr(slurp(err), "15"));
    assert_int_equal(
        run_record(out, err, (const char *[]){"sched", "--cgroup", "/no/such/cgroup-tb", NULL}),
        TB_CLI_EXIT_USAGE);
    assert_non_null(strstr(slurp(err), "No such file"));
    assert_int_equal(run_record(out, err, (const char *[]){"-a", "app", "--comm", "x", NULL}),
                     TB_CLI_EXIT_USAGE);
    assert_non_null(strstr(slurp(err), "kernel"));

    unlink(out);
    unlink(err);
    unlink(cfg);
    rmdir(dir);
}

static void test_check_cgroup(void **state)
{
    char where[256];
    struct stat st;

    (void)state;
    assert_int_equal(tb_record_check_cgroup("/no/such/cgroup-tb", where, sizeof(where)), -ENOENT);
    if (stat("/sys/fs/cgroup/unified/cgroup.procs", &st)) {
        skip();
        return;
    }
    /* "/" is the cgroup2 root as /proc/PID/cgroup names it. */
    assert_int_equal(tb_record_check_cgroup("/", where, sizeof(where)), 0);
    assert_string_equal(where, "/sys/fs/cgroup/unified/");
    assert_int_equal(tb_record_check_cgroup("/sys/fs/cgroup/unified", where, sizeof(where)), 0);
    assert_int_equal(
        tb_record_check_cgroup("/sys/fs/cgroup/unified/cgroup.procs", where, sizeof(where)),
        -ENOTDIR);
    /* A cgroup v1 directory exists but is not what the kernel filter matches. */
    if (!stat("/sys/fs/cgroup/pids", &st))
        assert_int_equal(tb_record_check_cgroup("/sys/fs/cgroup/pids", where, sizeof(where)),
                         -EMEDIUMTYPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_categories_and_layout),
        cmocka_unit_test(test_apps_long_compress),
        cmocka_unit_test(test_load_files),
        cmocka_unit_test(test_check_event),
        cmocka_unit_test(test_filters_build),
        cmocka_unit_test(test_filters_on_loaded_config),
        cmocka_unit_test(test_filter_flags),
        cmocka_unit_test(test_check_cgroup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
