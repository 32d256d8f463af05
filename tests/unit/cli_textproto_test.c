/*
 * cli_textproto_test.c - the text-format parser and printer over real
 * generated descriptors: Perfetto-style TraceConfigs parse into the values
 * they say, print back and re-parse to the same bytes, and broken configs
 * fail with the exact line:column and what was expected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer/textproto.h"
#include "perfetto/config/trace_config.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "perfetto/trace/track_event/debug_annotation.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef Perfetto__Protos__TraceConfig TraceConfig;

static TraceConfig *parse_ok(const char *text)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    int ret;

    ret = tb_textproto_parse(&perfetto__protos__trace_config__descriptor, text, strlen(text), &m,
                             err, sizeof(err));
    if (ret)
        fail_msg("parse failed: %s", err);
    assert_non_null(m);
    return (TraceConfig *)m;
}

static void expect_error(const ProtobufCMessageDescriptor *desc, const char *text, const char *want)
{
    ProtobufCMessage *m = (void *)1;
    char err[256];

    assert_int_equal(tb_textproto_parse(desc, text, strlen(text), &m, err, sizeof(err)), -EINVAL);
    assert_null(m);
    if (strcmp(err, want))
        fail_msg("error was\n  '%s'\nwanted\n  '%s'", err, want);
}

static void expect_cfg_error(const char *text, const char *want)
{
    expect_error(&perfetto__protos__trace_config__descriptor, text, want);
}

static const char perfetto_style[] =
    "# A system trace the way Perfetto's docs write one.\n"
    "buffers: {\n"
    "    size_kb: 63488\n"
    "    fill_policy: DISCARD\n"
    "}\n"
    "buffers {\n"
    "    size_kb: 2048\n"
    "    fill_policy: 1   # RING_BUFFER by number\n"
    "}\n"
    "data_sources: {\n"
    "    config {\n"
    "        name: \"linux.ftrace\"\n"
    "        target_buffer: 0\n"
    "        ftrace_config {\n"
    "            ftrace_events: \"sched/sched_switch\"\n"
    "            ftrace_events: \"sched/\" \"sched_waking\"\n"
    "            ftrace_events: [\"power/cpu_frequency\", 'power/cpu_idle']\n"
    "            compact_sched { enabled: true }\n"
    "            tids_to_trace: [1, 0x10, 010]\n"
    "        }\n"
    "    }\n"
    "}\n"
    "data_sources < config < name: \"linux.process_stats\"; target_buffer: 1 > >\n"
    "duration_ms: 10000;\n"
    "write_into_file: True, file_write_period_ms: 2500\n"
    "trigger_config { triggers { name: \"t\\n\\x41\\101\\\"\" skip_probability: 0.25 } }\n"
    "statsd_metadata { triggering_alert_id: -9223372036854775808 }\n";

static void test_perfetto_config(void **state)
{
    TraceConfig *c = parse_ok(perfetto_style);
    Perfetto__Protos__FtraceConfig *ft;

    assert_int_equal(c->n_buffers, 2);
    assert_int_equal(c->buffers[0]->size_kb, 63488);
    assert_true(c->buffers[0]->has_fill_policy);
    assert_int_equal(c->buffers[0]->fill_policy,
                     PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD);
    assert_int_equal(c->buffers[1]->fill_policy,
                     PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__RING_BUFFER);
    assert_int_equal(c->n_data_sources, 2);
    assert_string_equal(c->data_sources[0]->config->name, "linux.ftrace");
    assert_true(c->data_sources[0]->config->has_target_buffer);
    assert_int_equal(c->data_sources[0]->config->target_buffer, 0);
    ft = c->data_sources[0]->config->ftrace_config;
    assert_non_null(ft);
    assert_int_equal(ft->n_ftrace_events, 4);
    assert_string_equal(ft->ftrace_events[0], "sched/sched_switch");
    assert_string_equal(ft->ftrace_events[1], "sched/sched_waking");
    assert_string_equal(ft->ftrace_events[2], "power/cpu_frequency");
    assert_string_equal(ft->ftrace_events[3], "power/cpu_idle");
    assert_true(ft->compact_sched->has_enabled && ft->compact_sched->enabled);
    assert_int_equal(ft->n_tids_to_trace, 3);
    assert_int_equal(ft->tids_to_trace[0], 1);
    assert_int_equal(ft->tids_to_trace[1], 16);
    assert_int_equal(ft->tids_to_trace[2], 8);
    assert_string_equal(c->data_sources[1]->config->name, "linux.process_stats");
    assert_int_equal(c->data_sources[1]->config->target_buffer, 1);
    assert_true(c->has_duration_ms);
    assert_int_equal(c->duration_ms, 10000);
    assert_true(c->write_into_file);
    assert_int_equal(c->file_write_period_ms, 2500);
    assert_string_equal(c->trigger_config->triggers[0]->name, "t\nAA\"");
    assert_true(c->trigger_config->triggers[0]->skip_probability == 0.25);
    assert_true(c->statsd_metadata->triggering_alert_id == INT64_MIN);
    assert_false(c->has_lockdown_mode);
    tb_textproto_free(&c->base);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = protobuf_c_message_get_packed_size(m);
    buf = malloc(*len + 1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

static void test_print_round_trip(void **state)
{
    TraceConfig *a = parse_ok(perfetto_style), *b;
    size_t alen, blen, tlen;
    uint8_t *abuf, *bbuf;
    char *text;
    FILE *f;

    f = open_memstream(&text, &tlen);
    assert_int_equal(tb_textproto_print(&a->base, f), 0);
    fclose(f);
    /* Enums by name, nested blocks indented, strings escaped. */
    assert_non_null(strstr(text, "buffers {\n  size_kb: 63488\n  fill_policy: DISCARD\n}\n"));
    assert_non_null(strstr(text, "      compact_sched {\n        enabled: true\n      }\n"));
    assert_non_null(strstr(text, "name: \"t\\nAA\\\"\""));
    assert_non_null(strstr(text, "duration_ms: 10000\n"));
    b = parse_ok(text);
    abuf = pack(&a->base, &alen);
    bbuf = pack(&b->base, &blen);
    assert_int_equal(alen, blen);
    assert_memory_equal(abuf, bbuf, alen);
    free(abuf);
    free(bbuf);
    free(text);
    tb_textproto_free(&a->base);
    tb_textproto_free(&b->base);
}

static void test_empty_and_comments(void **state)
{
    TraceConfig *c = parse_ok("  # nothing but a comment\n\n");

    assert_int_equal(c->n_buffers, 0);
    assert_false(c->has_duration_ms);
    tb_textproto_free(&c->base);
}

static void test_broken_configs(void **state)
{
    expect_cfg_error("duration_ms: 10\nbufers { size_kb: 1 }\n",
                     "2:1: unknown field 'bufers' in perfetto.protos.TraceConfig");
    expect_cfg_error("buffers {\n  size_kb: 1\n  fill_policy: RING\n}\n",
                     "3:16: unknown value 'RING' for enum 'fill_policy' "
                     "(perfetto.protos.TraceConfig.BufferConfig.FillPolicy); expected e.g. "
                     "UNSPECIFIED");
    expect_cfg_error("buffers {\n  size_kb: 1\n", "3:1: expected '}' to close 'buffers' opened "
                                                  "at 1:9, got end of input");
    expect_cfg_error("duration_ms 10\n", "1:13: expected ':' after 'duration_ms', got '10'");
    expect_cfg_error("duration_ms: \"10s\"\n",
                     "1:14: expected an integer for 'duration_ms' (uint32), got '\"10s\"'");
    expect_cfg_error("duration_ms: 4294967296\n",
                     "1:14: '4294967296' is out of range for 'duration_ms' (uint32)");
    expect_cfg_error("duration_ms: -1\n", "1:14: '-1' is out of range for 'duration_ms' (uint32)");
    expect_cfg_error("duration_ms: 1\nduration_ms: 2\n",
                     "2:14: 'duration_ms' is not repeated but is given twice");
    expect_cfg_error("write_into_file: yes\n",
                     "1:18: expected true or false for 'write_into_file', got 'yes'");
    expect_cfg_error("data_sources { config { name: \"linux.ftrace }\n",
                     "1:31: unterminated string for 'name'");
    expect_cfg_error("data_sources { config { name: \"a\\qb\" } }\n",
                     "1:33: bad escape sequence in string");
    expect_cfg_error("duration_ms: [1, 2]\n",
                     "1:14: 'duration_ms' is not repeated; a [list] needs a repeated field");
    expect_cfg_error("buffers { size_kb: 1 }\n}\n", "2:1: unexpected '}' (no block is open)");
    expect_cfg_error("buffers < size_kb: 1 }\n",
                     "1:22: unexpected '}' (the block is closed with the other bracket)");
    expect_cfg_error("buffers: 5\n", "1:10: expected '{' after 'buffers', got '5'");
    expect_cfg_error("data_sources { config { ftrace_config { ftrace_events: [\"a\" \"b\" 3] } } }",
                     "1:65: expected ',' or ']' in the list for 'ftrace_events' (opened at 1:56), "
                     "got '3'");
    expect_cfg_error("[ext.field]: 1\n", "1:1: extensions and Any fields are not supported");
    expect_cfg_error("duration_ms: 1 @\n",
                     "1:16: expected a field name in perfetto.protos.TraceConfig, got '@'");
}

static void test_deep_nesting_is_refused(void **state)
{
    size_t n = 200, i, len = 0;
    char *text = malloc(n * 16 + 1);
    ProtobufCMessage *m;
    char err[256];

    /* DebugAnnotation nests itself; hostile input must not blow the stack. */
    for (i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "dict_entries { ");
    assert_int_equal(tb_textproto_parse(&perfetto__protos__debug_annotation__descriptor, text, len,
                                        &m, err, sizeof(err)),
                     -EINVAL);
    /* The top level counts as one: the 64th "{" (column 63 * 15 + 14) is refused. */
    assert_string_equal(err, "1:959: nesting deeper than 64 blocks");
    free(text);
}

static void test_oneof_and_bytes(void **state)
{
    const char *text = "timestamp: 18446744073709551615\n"
                       "synchronization_marker: \"\\x82\\x47z\\000\"\n";
    Perfetto__Protos__TracePacket *p;
    ProtobufCMessage *m;
    char err[256];

    assert_int_equal(tb_textproto_parse(&perfetto__protos__trace_packet__descriptor, text,
                                        strlen(text), &m, err, sizeof(err)),
                     0);
    p = (Perfetto__Protos__TracePacket *)m;
    assert_true(p->timestamp == UINT64_MAX);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_SYNCHRONIZATION_MARKER);
    assert_int_equal(p->synchronization_marker.len, 4);
    assert_memory_equal(p->synchronization_marker.data, "\x82\x47z\0", 4);
    tb_textproto_free(m);

    expect_error(&perfetto__protos__trace_packet__descriptor,
                 "synchronization_marker: \"x\"\ntrace_config { duration_ms: 1 }\n",
                 "2:14: 'synchronization_marker' and 'trace_config' are alternatives (oneof); "
                 "give only one");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfetto_config),         cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_empty_and_comments),      cmocka_unit_test(test_broken_configs),
        cmocka_unit_test(test_deep_nesting_is_refused), cmocka_unit_test(test_oneof_and_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
