/* Wire-format checks for the generated protobuf-c types: each test packs a
 * message and compares the exact bytes with encodings stated in the trace
 * format facts (tags, packed columns, framing), so a wrong field number, wire
 * type or packed flag in protos/ fails here; and unpacks known bytes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "perfetto/common/commit_data_request.pb-c.h"
#include "perfetto/config/trace_config.pb-c.h"
#include "perfetto/ipc/consumer_port.pb-c.h"
#include "perfetto/ipc/producer_port.pb-c.h"
#include "perfetto/trace/trace.pb-c.h"
#include "perfetto/trace/trace_packet.pb-c.h"

static const uint8_t sync_marker[16] = {0x82, 0x47, 0x7A, 0x76, 0xB2, 0x8D, 0x42, 0xBA,
                                        0x81, 0xDC, 0x33, 0x32, 0x6D, 0x57, 0xA0, 0x79};

/* Packs @msg and asserts it is exactly @want. */
static void assert_packs_to(const ProtobufCMessage *msg, const uint8_t *want, size_t want_len)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf;

    assert_int_equal(len, want_len);
    buf = malloc(len ? len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(msg, buf), len);
    assert_memory_equal(buf, want, len);
    free(buf);
}

#define ASSERT_PACKS_TO(msg, ...)                                               \
    do {                                                                        \
        static const uint8_t want_[] = {__VA_ARGS__};                           \
        assert_packs_to((const ProtobufCMessage *)(msg), want_, sizeof(want_)); \
    } while (0)

static void set_sync_marker(Perfetto__Protos__TracePacket *p, int32_t uid)
{
    p->optional_trusted_uid_case = PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_UID_TRUSTED_UID;
    p->trusted_uid = uid;
    p->optional_trusted_packet_sequence_id_case =
        PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_PACKET_SEQUENCE_ID_TRUSTED_PACKET_SEQUENCE_ID;
    p->trusted_packet_sequence_id = 1;
    p->data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_SYNCHRONIZATION_MARKER;
    p->synchronization_marker.data = (uint8_t *)sync_marker;
    p->synchronization_marker.len = sizeof(sync_marker);
}

/* The service's sync marker packet: 18 <uid> 50 01 A2 02 10 <marker>, and in
 * a file wrapped as 0A <len>. */
static void test_sync_marker_packet(void **state)
{
    Perfetto__Protos__TracePacket p = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    Perfetto__Protos__TracePacket *pp = &p;
    Perfetto__Protos__Trace t = PERFETTO__PROTOS__TRACE__INIT;

    set_sync_marker(&p, 1000);
    ASSERT_PACKS_TO(&p, 0x18, 0xE8, 0x07, 0x50, 0x01, 0xA2, 0x02, 0x10, 0x82, 0x47, 0x7A, 0x76,
                    0xB2, 0x8D, 0x42, 0xBA, 0x81, 0xDC, 0x33, 0x32, 0x6D, 0x57, 0xA0, 0x79);

    t.n_packet = 1;
    t.packet = &pp;
    set_sync_marker(&p, 0);
    ASSERT_PACKS_TO(&t, 0x0A, 0x17, 0x18, 0x00, 0x50, 0x01, 0xA2, 0x02, 0x10, 0x82, 0x47, 0x7A,
                    0x76, 0xB2, 0x8D, 0x42, 0xBA, 0x81, 0xDC, 0x33, 0x32, 0x6D, 0x57, 0xA0, 0x79);
}

/* A reader gets the trusted fields and the marker back from raw bytes, with
 * the last value of a repeated scalar winning (how the service overrides). */
static void test_unpack_trusted_fields(void **state)
{
    static const uint8_t bytes[] = {0x18, 0x05, 0x50, 0x07, 0xF8, 0x04, 0x2A,
                                    0x18, 0x09, 0x50, 0x02, 0x40, 0x64};
    Perfetto__Protos__TracePacket *p;

    p = perfetto__protos__trace_packet__unpack(NULL, sizeof(bytes), bytes);
    assert_non_null(p);
    assert_int_equal(p->optional_trusted_uid_case,
                     PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_UID_TRUSTED_UID);
    assert_int_equal(p->trusted_uid, 9);
    assert_int_equal(p->trusted_packet_sequence_id, 2);
    assert_true(p->has_trusted_pid);
    assert_int_equal(p->trusted_pid, 42);
    assert_true(p->has_timestamp);
    assert_int_equal(p->timestamp, 100);
    assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA__NOT_SET);
    perfetto__protos__trace_packet__free_unpacked(p, NULL);
}

/* One field at a time, so each tag is checked on its own. */
static void test_packet_tags(void **state)
{
    Perfetto__Protos__TracePacket p;
    Perfetto__Protos__TracePacketDefaults d = PERFETTO__PROTOS__TRACE_PACKET_DEFAULTS__INIT;
    Perfetto__Protos__InternedData in = PERFETTO__PROTOS__INTERNED_DATA__INIT;
    Perfetto__Protos__TraceUuid uuid = PERFETTO__PROTOS__TRACE_UUID__INIT;
    Perfetto__Protos__TracingServiceEvent ev = PERFETTO__PROTOS__TRACING_SERVICE_EVENT__INIT;
    Perfetto__Protos__SystemInfo si = PERFETTO__PROTOS__SYSTEM_INFO__INIT;
    Perfetto__Protos__Utsname uts = PERFETTO__PROTOS__UTSNAME__INIT;
    Perfetto__Protos__ClockSnapshot cs = PERFETTO__PROTOS__CLOCK_SNAPSHOT__INIT;
    Perfetto__Protos__ClockSnapshot__Clock clk = PERFETTO__PROTOS__CLOCK_SNAPSHOT__CLOCK__INIT;
    Perfetto__Protos__ClockSnapshot__Clock *clks[] = {&clk};

#define RESET() perfetto__protos__trace_packet__init(&p)
    RESET();
    p.has_timestamp = 1;
    p.timestamp = 1;
    ASSERT_PACKS_TO(&p, 0x40, 0x01);

    RESET();
    p.has_timestamp_clock_id = 1;
    p.timestamp_clock_id = 6;
    ASSERT_PACKS_TO(&p, 0xD0, 0x03, 0x06);

    RESET();
    p.has_trusted_pid = 1;
    p.trusted_pid = 5;
    ASSERT_PACKS_TO(&p, 0xF8, 0x04, 0x05);

    RESET();
    p.has_sequence_flags = 1;
    p.sequence_flags =
        PERFETTO__PROTOS__TRACE_PACKET__SEQUENCE_FLAGS__SEQ_INCREMENTAL_STATE_CLEARED;
    ASSERT_PACKS_TO(&p, 0x68, 0x01);

    RESET();
    p.has_incremental_state_cleared = 1;
    p.incremental_state_cleared = 1;
    ASSERT_PACKS_TO(&p, 0xC8, 0x02, 0x01);

    RESET();
    p.has_previous_packet_dropped = 1;
    p.previous_packet_dropped =
        PERFETTO__PROTOS__TRACE_PACKET__DATA_LOSS_REASON__DATA_LOSS_SMB_FULL;
    ASSERT_PACKS_TO(&p, 0xD0, 0x02, 0x80, 0x02);

    RESET();
    p.has_first_packet_on_sequence = 1;
    p.first_packet_on_sequence = 1;
    ASSERT_PACKS_TO(&p, 0xB8, 0x05, 0x01);

    RESET();
    p.has_machine_id = 1;
    p.machine_id = 7;
    ASSERT_PACKS_TO(&p, 0x90, 0x06, 0x07);

    RESET();
    d.has_timestamp_clock_id = 1;
    d.timestamp_clock_id = 64;
    p.trace_packet_defaults = &d;
    ASSERT_PACKS_TO(&p, 0xDA, 0x03, 0x03, 0xD0, 0x03, 0x40);

    RESET();
    p.interned_data = &in;
    ASSERT_PACKS_TO(&p, 0x62, 0x00);

    RESET();
    uuid.has_msb = 1;
    uuid.msb = 1;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_UUID;
    p.trace_uuid = &uuid;
    ASSERT_PACKS_TO(&p, 0xCA, 0x05, 0x02, 0x08, 0x01);

    RESET();
    ev.event_type_case = PERFETTO__PROTOS__TRACING_SERVICE_EVENT__EVENT_TYPE_TRACING_STARTED;
    ev.tracing_started = 1;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_SERVICE_EVENT;
    p.service_event = &ev;
    ASSERT_PACKS_TO(&p, 0xAA, 0x04, 0x02, 0x10, 0x01);

    RESET();
    uts.release = "6";
    si.utsname = &uts;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO;
    p.system_info = &si;
    ASSERT_PACKS_TO(&p, 0xEA, 0x02, 0x05, 0x0A, 0x03, 0x1A, 0x01, '6');

    RESET();
    clk.has_clock_id = 1;
    clk.clock_id = PERFETTO__PROTOS__BUILTIN_CLOCK__BUILTIN_CLOCK_BOOTTIME;
    clk.has_timestamp = 1;
    clk.timestamp = 100;
    cs.n_clocks = 1;
    cs.clocks = clks;
    cs.has_primary_trace_clock = 1;
    cs.primary_trace_clock = PERFETTO__PROTOS__BUILTIN_CLOCK__BUILTIN_CLOCK_BOOTTIME;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT;
    p.clock_snapshot = &cs;
    ASSERT_PACKS_TO(&p, 0x32, 0x08, 0x0A, 0x04, 0x08, 0x06, 0x10, 0x64, 0x10, 0x06);
#undef RESET
}

/* Oneof ids of the events the kernel producer emits. */
static void test_ftrace_event_oneof_tags(void **state)
{
    Perfetto__Protos__FtraceEvent e = PERFETTO__PROTOS__FTRACE_EVENT__INIT;
    Perfetto__Protos__SchedSwitchFtraceEvent sw = PERFETTO__PROTOS__SCHED_SWITCH_FTRACE_EVENT__INIT;
    Perfetto__Protos__SchedWakeupNewFtraceEvent wn =
        PERFETTO__PROTOS__SCHED_WAKEUP_NEW_FTRACE_EVENT__INIT;
    Perfetto__Protos__GenericFtraceEvent g = PERFETTO__PROTOS__GENERIC_FTRACE_EVENT__INIT;
    Perfetto__Protos__SysEnterFtraceEvent se = PERFETTO__PROTOS__SYS_ENTER_FTRACE_EVENT__INIT;
    Perfetto__Protos__SchedProcessForkFtraceEvent fk =
        PERFETTO__PROTOS__SCHED_PROCESS_FORK_FTRACE_EVENT__INIT;
    uint64_t args[] = {1, 2};

    e.has_timestamp = 1;
    e.timestamp = 10;
    e.has_pid = 1;
    e.pid = 42;
    sw.has_prev_pid = 1;
    sw.prev_pid = 42;
    sw.has_prev_state = 1;
    sw.prev_state = 0x100; /* preempted */
    sw.has_next_pid = 1;
    sw.next_pid = 0;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH;
    e.sched_switch = &sw;
    ASSERT_PACKS_TO(&e, 0x08, 0x0A, 0x10, 0x2A, 0x22, 0x07, 0x10, 0x2A, 0x20, 0x80, 0x02, 0x30,
                    0x00);

    perfetto__protos__ftrace_event__init(&e);
    wn.has_pid = 1;
    wn.pid = 3;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP_NEW;
    e.sched_wakeup_new = &wn;
    ASSERT_PACKS_TO(&e, 0x92, 0x07, 0x02, 0x10, 0x03);

    g.event_name = "x";
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_GENERIC;
    e.generic = &g;
    ASSERT_PACKS_TO(&e, 0xBA, 0x14, 0x03, 0x0A, 0x01, 'x');

    se.has_id = 1;
    se.id = 1;
    se.n_args = 2;
    se.args = args;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_ENTER;
    e.sys_enter = &se;
    /* args is not packed in the format: one tag per value. */
    ASSERT_PACKS_TO(&e, 0xCA, 0x14, 0x06, 0x08, 0x01, 0x10, 0x01, 0x10, 0x02);

    fk.has_child_pid = 1;
    fk.child_pid = 5;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK;
    e.sched_process_fork = &fk;
    ASSERT_PACKS_TO(&e, 0xFA, 0x0E, 0x02, 0x20, 0x05);
}

/* CompactSched columns must be packed (one tag and a length per column). */
static void test_compact_sched_packed(void **state)
{
    Perfetto__Protos__FtraceEventBundle__CompactSched cs =
        PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__COMPACT_SCHED__INIT;
    uint64_t sw_ts[] = {1000, 5}, wk_ts[] = {2000};
    int64_t sw_state[] = {1, 0};
    int32_t sw_pid[] = {7, 8}, sw_prio[] = {120, 120};
    uint32_t sw_comm[] = {0, 0}, wk_comm[] = {0}, wk_flags[] = {1};
    int32_t wk_pid[] = {9}, wk_cpu[] = {1}, wk_prio[] = {120};
    char *intern[] = {"sh"};

    cs.n_switch_timestamp = 2;
    cs.switch_timestamp = sw_ts;
    cs.n_switch_prev_state = 2;
    cs.switch_prev_state = sw_state;
    cs.n_switch_next_pid = 2;
    cs.switch_next_pid = sw_pid;
    cs.n_switch_next_prio = 2;
    cs.switch_next_prio = sw_prio;
    cs.n_intern_table = 1;
    cs.intern_table = intern;
    cs.n_switch_next_comm_index = 2;
    cs.switch_next_comm_index = sw_comm;
    cs.n_waking_timestamp = 1;
    cs.waking_timestamp = wk_ts;
    cs.n_waking_pid = 1;
    cs.waking_pid = wk_pid;
    cs.n_waking_target_cpu = 1;
    cs.waking_target_cpu = wk_cpu;
    cs.n_waking_prio = 1;
    cs.waking_prio = wk_prio;
    cs.n_waking_comm_index = 1;
    cs.waking_comm_index = wk_comm;
    cs.n_waking_common_flags = 1;
    cs.waking_common_flags = wk_flags;

    ASSERT_PACKS_TO(&cs, 0x0A, 0x03, 0xE8, 0x07, 0x05, /* switch_timestamp */
                    0x12, 0x02, 0x01, 0x00,            /* switch_prev_state */
                    0x1A, 0x02, 0x07, 0x08,            /* switch_next_pid */
                    0x22, 0x02, 0x78, 0x78,            /* switch_next_prio */
                    0x2A, 0x02, 's', 'h',              /* intern_table */
                    0x32, 0x02, 0x00, 0x00,            /* switch_next_comm_index */
                    0x3A, 0x02, 0xD0, 0x0F,            /* waking_timestamp */
                    0x42, 0x01, 0x09,                  /* waking_pid */
                    0x4A, 0x01, 0x01,                  /* waking_target_cpu */
                    0x52, 0x01, 0x78,                  /* waking_prio */
                    0x5A, 0x01, 0x00,                  /* waking_comm_index */
                    0x62, 0x01, 0x01);                 /* waking_common_flags */
}

/* A full bundle packet survives pack/unpack, with the bundle at tag 0A. */
static void test_bundle_roundtrip(void **state)
{
    Perfetto__Protos__TracePacket p = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    Perfetto__Protos__FtraceEventBundle b = PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__INIT;
    Perfetto__Protos__FtraceEventBundle__CompactSched cs =
        PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__COMPACT_SCHED__INIT;
    Perfetto__Protos__FtraceEvent e = PERFETTO__PROTOS__FTRACE_EVENT__INIT;
    Perfetto__Protos__FtraceEvent *ev[] = {&e};
    Perfetto__Protos__PrintFtraceEvent pr = PERFETTO__PROTOS__PRINT_FTRACE_EVENT__INIT;
    Perfetto__Protos__TracePacket *out;
    uint64_t sw_ts[] = {1000000, 250};
    int32_t sw_pid[] = {100, 0};
    char *intern[] = {"bash", "swapper/1"};
    uint32_t sw_comm[] = {0, 1};
    uint8_t *buf;
    size_t len;

    pr.buf = "B|1|work\n";
    e.has_timestamp = 1;
    e.timestamp = 999999;
    e.event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT;
    e.print = &pr;
    cs.n_switch_timestamp = 2;
    cs.switch_timestamp = sw_ts;
    cs.n_switch_next_pid = 2;
    cs.switch_next_pid = sw_pid;
    cs.n_intern_table = 2;
    cs.intern_table = intern;
    cs.n_switch_next_comm_index = 2;
    cs.switch_next_comm_index = sw_comm;
    b.has_cpu = 1;
    b.cpu = 1;
    b.n_event = 1;
    b.event = ev;
    b.compact_sched = &cs;
    b.has_previous_bundle_end_timestamp = 1;
    b.previous_bundle_end_timestamp = 12345;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS;
    p.ftrace_events = &b;

    len = perfetto__protos__trace_packet__get_packed_size(&p);
    buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(perfetto__protos__trace_packet__pack(&p, buf), len);
    assert_int_equal(buf[0], 0x0A);
    assert_int_equal(buf[1], len - 2); /* fits in a 1-byte varint */
    assert_int_equal(buf[2], 0x08);    /* cpu is the first field of the bundle */
    assert_int_equal(buf[3], 0x01);

    out = perfetto__protos__trace_packet__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(out);
    assert_int_equal(out->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS);
    assert_int_equal(out->ftrace_events->cpu, 1);
    assert_int_equal(out->ftrace_events->previous_bundle_end_timestamp, 12345);
    assert_int_equal(out->ftrace_events->n_event, 1);
    assert_int_equal(out->ftrace_events->event[0]->event_case,
                     PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT);
    assert_string_equal(out->ftrace_events->event[0]->print->buf, "B|1|work\n");
    assert_int_equal(out->ftrace_events->event[0]->timestamp, 999999);
    assert_non_null(out->ftrace_events->compact_sched);
    assert_int_equal(out->ftrace_events->compact_sched->n_switch_timestamp, 2);
    assert_int_equal(out->ftrace_events->compact_sched->switch_timestamp[1], 250);
    assert_int_equal(out->ftrace_events->compact_sched->switch_next_pid[0], 100);
    assert_string_equal(out->ftrace_events->compact_sched->intern_table[1], "swapper/1");
    assert_int_equal(out->ftrace_events->compact_sched->switch_next_comm_index[1], 1);
    perfetto__protos__trace_packet__free_unpacked(out, NULL);
}

/* A packet written unpacked (one tag per value) must still decode: readers
 * accept both encodings of repeated scalars. */
static void test_compact_sched_accepts_unpacked(void **state)
{
    static const uint8_t bytes[] = {0x08, 0x0A, 0x08, 0x14, 0x18, 0x07};
    Perfetto__Protos__FtraceEventBundle__CompactSched *cs;

    /* protoc-c has no unpack helpers for nested types. */
    cs = (Perfetto__Protos__FtraceEventBundle__CompactSched *)protobuf_c_message_unpack(
        &perfetto__protos__ftrace_event_bundle__compact_sched__descriptor, NULL, sizeof(bytes),
        bytes);
    assert_non_null(cs);
    assert_int_equal(cs->n_switch_timestamp, 2);
    assert_int_equal(cs->switch_timestamp[0], 10);
    assert_int_equal(cs->switch_timestamp[1], 20);
    assert_int_equal(cs->n_switch_next_pid, 1);
    assert_int_equal(cs->switch_next_pid[0], 7);
    protobuf_c_message_free_unpacked(&cs->base, NULL);
}

static void test_trace_config_bytes(void **state)
{
    Perfetto__Protos__TraceConfig tc = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig buf =
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig *bufs[] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource ds =
        PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT;
    Perfetto__Protos__TraceConfig__DataSource *dss[] = {&ds};
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    Perfetto__Protos__FtraceConfig fc = PERFETTO__PROTOS__FTRACE_CONFIG__INIT;
    Perfetto__Protos__FtraceConfig__CompactSchedConfig csc =
        PERFETTO__PROTOS__FTRACE_CONFIG__COMPACT_SCHED_CONFIG__INIT;
    char *events[] = {"a"};

    buf.has_size_kb = 1;
    buf.size_kb = 1024;
    buf.has_fill_policy = 1;
    buf.fill_policy = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    csc.has_enabled = 1;
    csc.enabled = 1;
    fc.n_ftrace_events = 1;
    fc.ftrace_events = events;
    fc.compact_sched = &csc;
    dsc.name = "f";
    dsc.ftrace_config = &fc;
    ds.config = &dsc;
    tc.n_buffers = 1;
    tc.buffers = bufs;
    tc.n_data_sources = 1;
    tc.data_sources = dss;
    tc.has_duration_ms = 1;
    tc.duration_ms = 1000;
    tc.has_compression_type = 1;
    tc.compression_type =
        PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE;

    ASSERT_PACKS_TO(&tc, 0x0A, 0x05, 0x08, 0x80, 0x08, 0x20, 0x02, /* buffers */
                    0x12, 0x0F, 0x0A, 0x0D,                        /* data_sources { config { */
                    0x0A, 0x01, 'f',                               /* name */
                    0xA2, 0x06, 0x07,                              /* ftrace_config = 100 */
                    0x0A, 0x01, 'a',                               /* ftrace_events */
                    0x62, 0x02, 0x08, 0x01, /* compact_sched = 12 { enabled } */
                    0x18, 0xE8, 0x07,       /* duration_ms = 3 */
                    0xC0, 0x01, 0x01);      /* compression_type = 24 */
}

static void test_ipc_message_bytes(void **state)
{
    Perfetto__Protos__InitializeConnectionRequest ic =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__GetAsyncCommandResponse cmd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__SetupTracing st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_TRACING__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__Flush fl =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__FLUSH__INIT;
    Perfetto__Protos__CommitDataRequest cd = PERFETTO__PROTOS__COMMIT_DATA_REQUEST__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove mv =
        PERFETTO__PROTOS__COMMIT_DATA_REQUEST__CHUNKS_TO_MOVE__INIT;
    Perfetto__Protos__CommitDataRequest__ChunksToMove *mvs[] = {&mv};
    Perfetto__Protos__ReadBuffersResponse rb = PERFETTO__PROTOS__READ_BUFFERS_RESPONSE__INIT;
    Perfetto__Protos__ReadBuffersResponse__Slice sl =
        PERFETTO__PROTOS__READ_BUFFERS_RESPONSE__SLICE__INIT;
    Perfetto__Protos__ReadBuffersResponse__Slice *sls[] = {&sl};
    uint8_t payload[] = {0x40, 0x01};

    /* Field 1 is the page size hint, field 2 the SMB size hint. */
    ic.has_shared_memory_page_size_hint_bytes = 1;
    ic.shared_memory_page_size_hint_bytes = 4096;
    ic.producer_name = "p";
    ic.has_smb_scraping_mode = 1;
    ic.smb_scraping_mode =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__PRODUCER_SMBSCRAPING_MODE__SMB_SCRAPING_ENABLED;
    ASSERT_PACKS_TO(&ic, 0x08, 0x80, 0x20, 0x1A, 0x01, 'p', 0x20, 0x01);

    st.has_shared_buffer_page_size_kb = 1;
    st.shared_buffer_page_size_kb = 4;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING;
    cmd.setup_tracing = &st;
    ASSERT_PACKS_TO(&cmd, 0x1A, 0x02, 0x08, 0x04);

    fl.has_request_id = 1;
    fl.request_id = 3;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH;
    cmd.flush = &fl;
    ASSERT_PACKS_TO(&cmd, 0x2A, 0x02, 0x10, 0x03);

    mv.has_page = 1;
    mv.page = 1;
    mv.has_chunk = 1;
    mv.chunk = 2;
    mv.has_target_buffer = 1;
    mv.target_buffer = 3;
    cd.n_chunks_to_move = 1;
    cd.chunks_to_move = mvs;
    cd.has_flush_request_id = 1;
    cd.flush_request_id = 9;
    ASSERT_PACKS_TO(&cd, 0x0A, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x18, 0x09);

    sl.has_data = 1;
    sl.data.data = payload;
    sl.data.len = sizeof(payload);
    sl.has_last_slice_for_packet = 1;
    sl.last_slice_for_packet = 1;
    rb.n_slices = 1;
    rb.slices = sls;
    ASSERT_PACKS_TO(&rb, 0x12, 0x06, 0x0A, 0x02, 0x40, 0x01, 0x10, 0x01);
}

/* Clients bind methods by name, and traced numbers them in declaration
 * order, so both the names and the order matter. */
static void test_service_method_order(void **state)
{
    static const char *const producer[] = {
        "InitializeConnection",
        "RegisterDataSource",
        "UnregisterDataSource",
        "CommitData",
        "GetAsyncCommand",
        "RegisterTraceWriter",
        "UnregisterTraceWriter",
        "NotifyDataSourceStarted",
        "NotifyDataSourceStopped",
        "ActivateTriggers",
        "Sync",
        "UpdateDataSource",
    };
    static const char *const consumer[] = {
        "EnableTracing",
        "DisableTracing",
        "ReadBuffers",
        "FreeBuffers",
        "Flush",
        "StartTracing",
        "ChangeTraceConfig",
        "Detach",
        "Attach",
        "GetTraceStats",
        "ObserveEvents",
        "QueryServiceState",
        "QueryCapabilities",
        "SaveTraceForBugreport",
        "CloneSession",
    };
    const ProtobufCServiceDescriptor *pd = &perfetto__protos__producer_port__descriptor;
    const ProtobufCServiceDescriptor *cd = &perfetto__protos__consumer_port__descriptor;
    size_t i;

    /* short_name is what BindService carries. */
    assert_string_equal(pd->short_name, "ProducerPort");
    assert_int_equal(pd->n_methods, sizeof(producer) / sizeof(producer[0]));
    for (i = 0; i < pd->n_methods; i++)
        assert_string_equal(pd->methods[i].name, producer[i]);
    assert_ptr_equal(pd->methods[3].input, &perfetto__protos__commit_data_request__descriptor);

    assert_string_equal(cd->short_name, "ConsumerPort");
    assert_int_equal(cd->n_methods, sizeof(consumer) / sizeof(consumer[0]));
    for (i = 0; i < cd->n_methods; i++)
        assert_string_equal(cd->methods[i].name, consumer[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_marker_packet),
        cmocka_unit_test(test_unpack_trusted_fields),
        cmocka_unit_test(test_packet_tags),
        cmocka_unit_test(test_ftrace_event_oneof_tags),
        cmocka_unit_test(test_compact_sched_packed),
        cmocka_unit_test(test_bundle_roundtrip),
        cmocka_unit_test(test_compact_sched_accepts_unpacked),
        cmocka_unit_test(test_trace_config_bytes),
        cmocka_unit_test(test_ipc_message_bytes),
        cmocka_unit_test(test_service_method_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
