/*
 * cli_record_config_test.c - flags -> TraceConfig (record_config.c): the
 * buffer layout, category expansion without duplicates, app categories,
 * streaming and compression, and loading configs from real files (binary,
 * text, broken text with line:col).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer/record_config.h"

#include <errno.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_categories_and_layout),
        cmocka_unit_test(test_apps_long_compress),
        cmocka_unit_test(test_load_files),
        cmocka_unit_test(test_check_event),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
