/*
 * cli_export_test.c - "tracebpf export" and "tracebpf info" on a trace
 * built here with known content (process tree, two CPU bundles one of them
 * compact, an SDK-style track-event sequence with interning, clock 64 and
 * flows, trace stats, a compressed batch): ftrace text is checked line by
 * line, systrace and JSON are parsed with python3's json module, and a
 * truncated trace must fail without leaving an output file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../unit/cli_trace_build.h"
#include "cli_run.h"
#include "perfetto/trace/clock_snapshot.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event.pb-c.h"
#include "perfetto/trace/ftrace/ftrace_event_bundle.pb-c.h"
#include "perfetto/trace/ftrace/irq.pb-c.h"
#include "perfetto/trace/ftrace/power.pb-c.h"
#include "perfetto/trace/ftrace/raw_syscalls.pb-c.h"
#include "perfetto/trace/ftrace/sched.pb-c.h"
#include "perfetto/trace/ftrace/ftrace.pb-c.h"
#include "perfetto/trace/ftrace/task.pb-c.h"
#include "perfetto/trace/interned_data/interned_data.pb-c.h"
#include "perfetto/trace/ps/process_tree.pb-c.h"
#include "perfetto/trace/system_info.pb-c.h"
#include "perfetto/trace/trace_packet_defaults.pb-c.h"
#include "perfetto/trace/trace_stats.pb-c.h"
#include "perfetto/trace/track_event/counter_descriptor.pb-c.h"
#include "perfetto/trace/track_event/debug_annotation.pb-c.h"
#include "perfetto/trace/track_event/process_descriptor.pb-c.h"
#include "perfetto/trace/track_event/thread_descriptor.pb-c.h"
#include "perfetto/trace/track_event/track_descriptor.pb-c.h"
#include "perfetto/trace/track_event/track_event.pb-c.h"

#include <sys/stat.h>

#define SEQ_ID_CASE \
    PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_PACKET_SEQUENCE_ID_TRUSTED_PACKET_SEQUENCE_ID

static char trace_path[] = "/tmp/cli_export_XXXXXX";

typedef Perfetto__Protos__TracePacket Packet;
typedef Perfetto__Protos__FtraceEvent Event;

static void ev_init(Event *e, uint64_t ts, uint32_t pid, uint32_t flags)
{
    perfetto__protos__ftrace_event__init(e);
    e->has_timestamp = e->has_pid = 1;
    e->timestamp = ts;
    e->pid = pid;
    e->has_common_flags = flags != 0;
    e->common_flags = flags;
}

static void write_kernel(FILE *f)
{
    Packet p = PERFETTO__PROTOS__TRACE_PACKET__INIT;
    Perfetto__Protos__FtraceEventBundle b = PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__INIT;
    Perfetto__Protos__SchedSwitchFtraceEvent sw = PERFETTO__PROTOS__SCHED_SWITCH_FTRACE_EVENT__INIT;
    Perfetto__Protos__SchedWakingFtraceEvent wk = PERFETTO__PROTOS__SCHED_WAKING_FTRACE_EVENT__INIT;
    Perfetto__Protos__PrintFtraceEvent pr = PERFETTO__PROTOS__PRINT_FTRACE_EVENT__INIT;
    Perfetto__Protos__CpuFrequencyFtraceEvent cf =
        PERFETTO__PROTOS__CPU_FREQUENCY_FTRACE_EVENT__INIT;
    Perfetto__Protos__IrqHandlerEntryFtraceEvent ie =
        PERFETTO__PROTOS__IRQ_HANDLER_ENTRY_FTRACE_EVENT__INIT;
    Perfetto__Protos__IrqHandlerExitFtraceEvent ix =
        PERFETTO__PROTOS__IRQ_HANDLER_EXIT_FTRACE_EVENT__INIT;
    Perfetto__Protos__SoftirqEntryFtraceEvent se =
        PERFETTO__PROTOS__SOFTIRQ_ENTRY_FTRACE_EVENT__INIT;
    Perfetto__Protos__SysEnterFtraceEvent sen = PERFETTO__PROTOS__SYS_ENTER_FTRACE_EVENT__INIT;
    Perfetto__Protos__SysExitFtraceEvent sex = PERFETTO__PROTOS__SYS_EXIT_FTRACE_EVENT__INIT;
    Perfetto__Protos__TaskNewtaskFtraceEvent nt = PERFETTO__PROTOS__TASK_NEWTASK_FTRACE_EVENT__INIT;
    Perfetto__Protos__TaskRenameFtraceEvent rn = PERFETTO__PROTOS__TASK_RENAME_FTRACE_EVENT__INIT;
    Perfetto__Protos__SchedProcessExitFtraceEvent pe =
        PERFETTO__PROTOS__SCHED_PROCESS_EXIT_FTRACE_EVENT__INIT;
    Perfetto__Protos__CpuIdleFtraceEvent ci = PERFETTO__PROTOS__CPU_IDLE_FTRACE_EVENT__INIT;
    Perfetto__Protos__FtraceEventBundle__CompactSched cs =
        PERFETTO__PROTOS__FTRACE_EVENT_BUNDLE__COMPACT_SCHED__INIT;
    static uint64_t sargs[] = {3, 0x7ffd, 16};
    static char *intern[] = {"app", "worker", "swapper/1"};
    static uint64_t sw_ts[] = {1000000500, 1000};
    static int64_t sw_state[] = {0, 0x100};
    static int32_t sw_pid[] = {100, 0}, sw_prio[] = {120, 120};
    static uint32_t sw_comm[] = {0, 2};
    static uint64_t wk_ts[] = {1000001200};
    static int32_t wk_pid[] = {101}, wk_cpu[] = {0}, wk_prio[] = {120};
    static uint32_t wk_comm[] = {1}, wk_flags[] = {0};
    Event ev[13], *evp[13];
    int i;

    for (i = 0; i < 13; i++)
        evp[i] = &ev[i];
    sw.prev_comm = "app", sw.prev_pid = 100, sw.prev_prio = 120, sw.prev_state = 1;
    sw.next_comm = "worker", sw.next_pid = 101, sw.next_prio = 120;
    sw.has_prev_pid = sw.has_prev_prio = sw.has_prev_state = 1;
    sw.has_next_pid = sw.has_next_prio = 1;
    ev_init(&ev[0], 1000000000, 100, 0);
    ev[0].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH, ev[0].sched_switch = &sw;
    wk.comm = "app", wk.pid = 100, wk.prio = 120, wk.target_cpu = 1;
    wk.has_pid = wk.has_prio = wk.has_target_cpu = 1;
    ev_init(&ev[1], 1000001000, 101, 0x9);
    ev[1].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKING, ev[1].sched_waking = &wk;
    pr.buf = "B|100|hello\n";
    ev_init(&ev[2], 1000002000, 101, 0);
    ev[2].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_PRINT, ev[2].print = &pr;
    cf.state = 1800000, cf.cpu_id = 0, cf.has_state = cf.has_cpu_id = 1;
    ev_init(&ev[3], 1000003000, 101, 0);
    ev[3].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_CPU_FREQUENCY,
    ev[3].cpu_frequency = &cf;
    ie.irq = 24, ie.has_irq = 1, ie.name = "eth0";
    ev_init(&ev[4], 1000004000, 101, 0x9);
    ev[4].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_IRQ_HANDLER_ENTRY;
    ev[4].irq_handler_entry = &ie;
    ix.irq = 24, ix.ret = 1, ix.has_irq = ix.has_ret = 1;
    ev_init(&ev[5], 1000005000, 101, 0x9);
    ev[5].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_IRQ_HANDLER_EXIT;
    ev[5].irq_handler_exit = &ix;
    se.vec = 1, se.has_vec = 1;
    ev_init(&ev[6], 1000006000, 101, 0x10);
    ev[6].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SOFTIRQ_ENTRY,
    ev[6].softirq_entry = &se;
    sen.id = 0, sen.has_id = 1, sen.n_args = 3, sen.args = sargs;
    ev_init(&ev[7], 1000007000, 101, 0);
    ev[7].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_ENTER, ev[7].sys_enter = &sen;
    sex.id = 0, sex.ret = 16, sex.has_id = sex.has_ret = 1;
    ev_init(&ev[8], 1000008000, 101, 0);
    ev[8].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_EXIT, ev[8].sys_exit = &sex;
    nt.pid = 102, nt.comm = "worker", nt.clone_flags = 0x3d0f00, nt.has_pid = 1;
    nt.has_clone_flags = nt.has_oom_score_adj = 1;
    ev_init(&ev[9], 1000009000, 101, 0);
    ev[9].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_NEWTASK, ev[9].task_newtask = &nt;
    rn.pid = 102, rn.oldcomm = "worker", rn.newcomm = "io", rn.has_pid = rn.has_oom_score_adj = 1;
    ev_init(&ev[10], 1000010000, 102, 0);
    ev[10].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_RENAME, ev[10].task_rename = &rn;
    pe.comm = "io", pe.pid = 102, pe.prio = 120, pe.has_pid = pe.has_prio = 1;
    ev_init(&ev[11], 1000011000, 102, 0);
    ev[11].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXIT;
    ev[11].sched_process_exit = &pe;
    ci.state = 4294967295u, ci.cpu_id = 0, ci.has_state = ci.has_cpu_id = 1;
    ev_init(&ev[12], 1000012000, 0, 0);
    ev[12].event_case = PERFETTO__PROTOS__FTRACE_EVENT__EVENT_CPU_IDLE, ev[12].cpu_idle = &ci;

    b.has_cpu = 1, b.cpu = 0, b.n_event = 13, b.event = evp;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_FTRACE_EVENTS, p.ftrace_events = &b;
    p.optional_trusted_packet_sequence_id_case = SEQ_ID_CASE, p.trusted_packet_sequence_id = 3;
    tbt_write(f, &p);

    /* CPU 1, written after CPU 0 but overlapping it in time. */
    perfetto__protos__ftrace_event_bundle__init(&b);
    cs.n_intern_table = 3, cs.intern_table = intern;
    cs.n_switch_timestamp = 2, cs.switch_timestamp = sw_ts;
    cs.n_switch_prev_state = 2, cs.switch_prev_state = sw_state;
    cs.n_switch_next_pid = 2, cs.switch_next_pid = sw_pid;
    cs.n_switch_next_prio = 2, cs.switch_next_prio = sw_prio;
    cs.n_switch_next_comm_index = 2, cs.switch_next_comm_index = sw_comm;
    cs.n_waking_timestamp = 1, cs.waking_timestamp = wk_ts;
    cs.n_waking_pid = 1, cs.waking_pid = wk_pid;
    cs.n_waking_target_cpu = 1, cs.waking_target_cpu = wk_cpu;
    cs.n_waking_prio = 1, cs.waking_prio = wk_prio;
    cs.n_waking_comm_index = 1, cs.waking_comm_index = wk_comm;
    cs.n_waking_common_flags = 1, cs.waking_common_flags = wk_flags;
    b.has_cpu = 1, b.cpu = 1, b.compact_sched = &cs, b.has_lost_events = 1, b.lost_events = 1;
    p.ftrace_events = &b;
    tbt_write(f, &p);
}

static void write_track_events(FILE *f)
{
    Packet p;
    Perfetto__Protos__TrackDescriptor td = PERFETTO__PROTOS__TRACK_DESCRIPTOR__INIT;
    Perfetto__Protos__ProcessDescriptor pd = PERFETTO__PROTOS__PROCESS_DESCRIPTOR__INIT;
    Perfetto__Protos__ThreadDescriptor thd = PERFETTO__PROTOS__THREAD_DESCRIPTOR__INIT;
    Perfetto__Protos__CounterDescriptor cd = PERFETTO__PROTOS__COUNTER_DESCRIPTOR__INIT;
    Perfetto__Protos__TracePacketDefaults def = PERFETTO__PROTOS__TRACE_PACKET_DEFAULTS__INIT;
    Perfetto__Protos__TrackEventDefaults ted = PERFETTO__PROTOS__TRACK_EVENT_DEFAULTS__INIT;
    Perfetto__Protos__ClockSnapshot snap = PERFETTO__PROTOS__CLOCK_SNAPSHOT__INIT;
    Perfetto__Protos__ClockSnapshot__Clock c6 = PERFETTO__PROTOS__CLOCK_SNAPSHOT__CLOCK__INIT;
    Perfetto__Protos__ClockSnapshot__Clock c64 = PERFETTO__PROTOS__CLOCK_SNAPSHOT__CLOCK__INIT;
    Perfetto__Protos__ClockSnapshot__Clock *clocks[] = {&c6, &c64};
    Perfetto__Protos__InternedData idata = PERFETTO__PROTOS__INTERNED_DATA__INIT;
    Perfetto__Protos__EventName en = PERFETTO__PROTOS__EVENT_NAME__INIT, *ens[] = {&en};
    Perfetto__Protos__EventCategory ec = PERFETTO__PROTOS__EVENT_CATEGORY__INIT, *ecs[] = {&ec};
    Perfetto__Protos__TrackEvent te;
    Perfetto__Protos__DebugAnnotation da = PERFETTO__PROTOS__DEBUG_ANNOTATION__INIT, *das[] = {&da};
    static uint64_t cat_iids[] = {1}, flow[] = {42};

#define NEW_PACKET()                                              \
    do {                                                          \
        perfetto__protos__trace_packet__init(&p);                 \
        p.optional_trusted_packet_sequence_id_case = SEQ_ID_CASE; \
        p.trusted_packet_sequence_id = 2;                         \
        p.has_trusted_pid = 1, p.trusted_pid = 100;               \
    } while (0)

    NEW_PACKET();
    pd.has_pid = 1, pd.pid = 100, pd.process_name = "app";
    td.has_uuid = 1, td.uuid = 10, td.process = &pd;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR, p.track_descriptor = &td;
    tbt_write(f, &p);
    perfetto__protos__track_descriptor__init(&td);
    thd.has_pid = thd.has_tid = 1, thd.pid = 100, thd.tid = 101, thd.thread_name = "worker";
    td.has_uuid = td.has_parent_uuid = 1, td.uuid = 11, td.parent_uuid = 10, td.thread = &thd;
    tbt_write(f, &p);
    perfetto__protos__track_descriptor__init(&td);
    td.has_uuid = td.has_parent_uuid = 1, td.uuid = 12, td.parent_uuid = 10, td.counter = &cd;
    td.static_or_dynamic_name_case =
        PERFETTO__PROTOS__TRACK_DESCRIPTOR__STATIC_OR_DYNAMIC_NAME_NAME;
    td.name = "queue depth";
    tbt_write(f, &p);

    /* Incremental state: defaults (clock 64, track 11) and the clock's anchor. */
    NEW_PACKET();
    p.has_sequence_flags = 1, p.sequence_flags = 1;
    ted.has_track_uuid = 1, ted.track_uuid = 11;
    def.has_timestamp_clock_id = 1, def.timestamp_clock_id = 64, def.track_event_defaults = &ted;
    p.trace_packet_defaults = &def;
    c6.has_clock_id = c6.has_timestamp = 1, c6.clock_id = 6, c6.timestamp = 2000000000;
    c64.has_clock_id = c64.has_timestamp = c64.has_is_incremental = 1;
    c64.clock_id = 64, c64.timestamp = 2000000000, c64.is_incremental = 1;
    snap.n_clocks = 2, snap.clocks = clocks;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT, p.clock_snapshot = &snap;
    p.has_timestamp = p.has_timestamp_clock_id = 1, p.timestamp = 2000000000;
    p.timestamp_clock_id = 6;
    tbt_write(f, &p);

    NEW_PACKET();
    p.has_sequence_flags = 1, p.sequence_flags = 2;
    en.has_iid = 1, en.iid = 1, en.name = "frame";
    ec.has_iid = 1, ec.iid = 1, ec.name = "gfx";
    idata.n_event_names = 1, idata.event_names = ens;
    idata.n_event_categories = 1, idata.event_categories = ecs;
    p.interned_data = &idata;
    perfetto__protos__track_event__init(&te);
    te.has_type = 1, te.type = PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_BEGIN;
    te.name_field_case = PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME_IID, te.name_iid = 1;
    te.n_category_iids = 1, te.category_iids = cat_iids;
    te.n_flow_ids = 1, te.flow_ids = flow;
    da.name_field_case = PERFETTO__PROTOS__DEBUG_ANNOTATION__NAME_FIELD_NAME, da.name = "n";
    da.value_case = PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_INT_VALUE, da.int_value = 5;
    te.n_debug_annotations = 1, te.debug_annotations = das;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT, p.track_event = &te;
    p.has_timestamp = 1, p.timestamp = 1000;
    tbt_write(f, &p);

    NEW_PACKET();
    perfetto__protos__track_event__init(&te);
    te.has_type = 1, te.type = PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT, p.track_event = &te;
    p.has_timestamp = 1, p.timestamp = 500;
    tbt_write(f, &p);

    perfetto__protos__track_event__init(&te);
    te.has_type = 1, te.type = PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_COUNTER;
    te.has_track_uuid = 1, te.track_uuid = 12;
    te.counter_value_field_case = PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_COUNTER_VALUE;
    te.counter_value = 7;
    p.timestamp = 100;
    tbt_write(f, &p);

    perfetto__protos__track_event__init(&te);
    te.has_type = 1, te.type = PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_INSTANT;
    te.name_field_case = PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME, te.name = "tick";
    te.n_terminating_flow_ids = 1, te.terminating_flow_ids = flow;
    tbt_write(f, &p);
#undef NEW_PACKET
}

static void write_trace(const char *path)
{
    Packet p = PERFETTO__PROTOS__TRACE_PACKET__INIT, *batch[1] = {&p};
    Perfetto__Protos__ProcessTree pt = PERFETTO__PROTOS__PROCESS_TREE__INIT;
    Perfetto__Protos__ProcessTree__Process pr = PERFETTO__PROTOS__PROCESS_TREE__PROCESS__INIT;
    Perfetto__Protos__ProcessTree__Thread th = PERFETTO__PROTOS__PROCESS_TREE__THREAD__INIT;
    Perfetto__Protos__ProcessTree__Process *prs[] = {&pr};
    Perfetto__Protos__ProcessTree__Thread *ths[] = {&th};
    Perfetto__Protos__SystemInfo si = PERFETTO__PROTOS__SYSTEM_INFO__INIT;
    Perfetto__Protos__Utsname un = PERFETTO__PROTOS__UTSNAME__INIT;
    Perfetto__Protos__TraceStats ts = PERFETTO__PROTOS__TRACE_STATS__INIT;
    Perfetto__Protos__TraceStats__BufferStats bs =
        PERFETTO__PROTOS__TRACE_STATS__BUFFER_STATS__INIT;
    Perfetto__Protos__TraceStats__BufferStats *bss[] = {&bs};
    static char *cmdline[] = {"/usr/bin/app", "--fast"};
    FILE *f = fopen(path, "w");

    /* The service's system info, inside a compressed batch. */
    un.sysname = "Linux", un.release = "6.1.0", un.machine = "x86_64";
    si.utsname = &un;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_SYSTEM_INFO, p.system_info = &si;
    p.optional_trusted_packet_sequence_id_case = SEQ_ID_CASE, p.trusted_packet_sequence_id = 1;
    tbt_write_compressed(f, batch, 1);

    perfetto__protos__trace_packet__init(&p);
    pr.has_pid = pr.has_ppid = 1, pr.pid = 100, pr.ppid = 1, pr.n_cmdline = 2, pr.cmdline = cmdline;
    th.has_tid = th.has_tgid = 1, th.tid = 101, th.tgid = 100, th.name = "worker";
    pt.n_processes = 1, pt.processes = prs, pt.n_threads = 1, pt.threads = ths;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_PROCESS_TREE, p.process_tree = &pt;
    p.has_timestamp = 1, p.timestamp = 999000000;
    p.optional_trusted_packet_sequence_id_case = SEQ_ID_CASE, p.trusted_packet_sequence_id = 3;
    tbt_write(f, &p);

    write_kernel(f);
    write_track_events(f);

    perfetto__protos__trace_packet__init(&p);
    bs.has_chunks_overwritten = 1, bs.chunks_overwritten = 3;
    ts.n_buffer_stats = 1, ts.buffer_stats = bss;
    p.data_case = PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACE_STATS, p.trace_stats = &ts;
    p.optional_trusted_packet_sequence_id_case = SEQ_ID_CASE, p.trusted_packet_sequence_id = 1;
    tbt_write(f, &p);
    fclose(f);
}

static int setup(void **state)
{
    close(mkstemp(trace_path));
    write_trace(trace_path);
    return 0;
}

static int teardown(void **state)
{
    unlink(trace_path);
    return 0;
}

static const char *const expected_ftrace[] = {
    "# tracer: nop",
    "#",
    "#                                _-----=> irqs-off/BH-disabled",
    "#                               / _----=> need-resched",
    "#                              | / _---=> hardirq/softirq",
    "#                              || / _--=> preempt-depth",
    "#                              ||| / _-=> migrate-disable",
    "#                              |||| /     delay",
    "#           TASK-PID     TGID     CPU#  |||||  TIMESTAMP  FUNCTION",
    "#              | |         |        |   |||||     |         |",
    "             app-100     (    100) [000] .....     1.000000: sched_switch: prev_comm=app "
    "prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=worker next_pid=101 next_prio=120",
    "          worker-101     (    100) [000] d.h..     1.000001: sched_waking: comm=app pid=100 "
    "prio=120 target_cpu=001",
    "             app-100     (    100) [001] .....     1.000001: sched_waking: comm=worker "
    "pid=101 prio=120 target_cpu=000",
    "             app-100     (    100) [001] .....     1.000001: sched_switch: prev_comm=app "
    "prev_pid=100 prev_prio=120 prev_state=R+ ==> next_comm=swapper/1 next_pid=0 next_prio=120",
    "          worker-101     (    100) [000] .....     1.000002: tracing_mark_write: B|100|hello",
    "          worker-101     (    100) [000] .....     1.000003: cpu_frequency: state=1800000 "
    "cpu_id=0",
    "          worker-101     (    100) [000] d.h..     1.000004: irq_handler_entry: irq=24 "
    "name=eth0",
    "          worker-101     (    100) [000] d.h..     1.000005: irq_handler_exit: irq=24 "
    "ret=handled",
    "          worker-101     (    100) [000] ..s..     1.000006: softirq_entry: vec=1 "
    "[action=TIMER]",
    "          worker-101     (    100) [000] .....     1.000007: sys_enter: NR 0 (3, 7ffd, 10, "
    "0, 0, 0)",
    "          worker-101     (    100) [000] .....     1.000008: sys_exit: NR 0 = 16",
    "          worker-101     (    100) [000] .....     1.000009: task_newtask: pid=102 "
    "comm=worker clone_flags=3d0f00 oom_score_adj=0",
    "          worker-102     (    100) [000] .....     1.000010: task_rename: pid=102 "
    "oldcomm=worker newcomm=io oom_score_adj=0",
    "              io-102     (    100) [000] .....     1.000011: sched_process_exit: comm=io "
    "pid=102 prio=120",
    "          <idle>-0       (      0) [000] .....     1.000012: cpu_idle: state=-1 cpu_id=0",
    "          worker-101     (    100) [000] .....     2.000001: tracing_mark_write: B|100|frame",
    "          worker-101     (    100) [000] .....     2.000001: tracing_mark_write: E|100",
    "             app-100     (    100) [001] .....     2.000001: tracing_mark_write: C|100|queue "
    "depth|7",
    "          worker-101     (    100) [000] .....     2.000001: tracing_mark_write: B|100|tick",
    "          worker-101     (    100) [000] .....     2.000001: tracing_mark_write: E|100",
    NULL,
};

static void test_ftrace_line_by_line(void **state)
{
    char out[] = "/tmp/cli_export_out_XXXXXX.txt";
    const char *args[] = {"export", "--format", "ftrace", trace_path, "-o", out, NULL};
    struct cli_result r;
    char *text, *line, *save = NULL;
    int i = 0;

    close(mkstemps(out, 4));
    assert_int_equal(cli_run(&r, args), 0);
    if (r.status != 0)
        fail_msg("export failed: %s", r.err);
    text = cli_slurp(out);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        if (!expected_ftrace[i])
            fail_msg("extra line %d: '%s'", i + 1, line);
        if (strcmp(line, expected_ftrace[i]))
            fail_msg("line %d:\n  got  '%s'\n  want '%s'", i + 1, line, expected_ftrace[i]);
    }
    assert_null(expected_ftrace[i]);
    free(text);
    cli_result_free(&r);
    unlink(out);
}

/* Runs python3 on @script with @file; the script exits non-zero on a mismatch. */
static void python_check(const char *script, const char *file)
{
    char cmd[8192];
    int st;

    snprintf(cmd, sizeof(cmd), "python3 -c '%s' '%s'", script, file);
    st = system(cmd);
    if (st != 0)
        fail_msg("python3 check failed (status %d) for %s", st, file);
}

static void test_json_parses_with_expected_events(void **state)
{
    char out[] = "/tmp/cli_export_out_XXXXXX.json";
    const char *args[] = {"export", "--format", "json", "--sched", trace_path, "-o", out, NULL};
    static const char script[] =
        "import json,sys\n"
        "d=json.load(open(sys.argv[1]))\n"
        "ev=d[\"traceEvents\"]\n"
        "def one(**k):\n"
        "  m=[e for e in ev if all(e.get(a)==b for a,b in k.items())]\n"
        "  assert len(m)==1, (k, m)\n"
        "  return m[0]\n"
        "b=one(ph=\"B\",name=\"frame\")\n"
        "assert (b[\"cat\"],b[\"pid\"],b[\"tid\"],b[\"ts\"],b[\"args\"])==(\"gfx\",100,101,"
        "2000001.0,{\"n\":5}), b\n"
        "assert one(ph=\"E\")[\"ts\"]==2000001.5\n"
        "c=one(ph=\"C\")\n"
        "assert (c[\"name\"],c[\"pid\"],c[\"ts\"],c[\"args\"])==(\"queue depth\",100,2000001.6,"
        "{\"value\":7}), c\n"
        "i=one(ph=\"i\")\n"
        "assert (i[\"name\"],i[\"tid\"],i[\"ts\"])==(\"tick\",101,2000001.7), i\n"
        "assert one(ph=\"s\")[\"id\"]==42 and one(ph=\"f\")[\"id\"]==42\n"
        "one(ph=\"M\",name=\"process_name\",pid=100)[\"args\"]==dict(name=\"app\") or exit(1)\n"
        "assert one(ph=\"M\",name=\"thread_name\",tid=101)[\"args\"][\"name\"]==\"worker\"\n"
        "x=one(ph=\"X\")\n"
        "assert (x[\"name\"],x[\"tid\"],x[\"ts\"],x[\"dur\"],x[\"args\"][\"tid\"])==(\"app\",1,"
        "1000000.5,1.0,100), x\n"
        "assert len(ev)==12, len(ev)\n";
    struct cli_result r;

    close(mkstemps(out, 5));
    assert_int_equal(cli_run(&r, args), 0);
    if (r.status != 0)
        fail_msg("export failed: %s", r.err);
    python_check(script, out);
    cli_result_free(&r);
    unlink(out);
}

static void test_systrace_envelope(void **state)
{
    char out[] = "/tmp/cli_export_out_XXXXXX.json";
    const char *args[] = {"export", "--format", "systrace", trace_path, "-o", out, NULL};
    static const char script[] = "import json,sys\n"
                                 "d=json.load(open(sys.argv[1]))\n"
                                 "assert d[\"traceEvents\"]==[]\n"
                                 "t=d[\"systemTraceEvents\"].splitlines()\n"
                                 "assert t[0]==\"# tracer: nop\" and len(t)==30, len(t)\n"
                                 "assert t[-1].endswith(\"tracing_mark_write: E|100\")\n";
    struct cli_result r;

    close(mkstemps(out, 5));
    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 0);
    python_check(script, out);
    cli_result_free(&r);
    unlink(out);
}

static void test_truncated_leaves_no_output(void **state)
{
    char bad[] = "/tmp/cli_export_bad_XXXXXX", out[600], tmp[640];
    const char *args[] = {"export", "--format", "ftrace", bad, "-o", out, NULL};
    struct cli_result r;
    struct stat st;
    char *data = cli_slurp(trace_path);
    FILE *f;

    assert_int_equal(stat(trace_path, &st), 0);
    close(mkstemp(bad));
    f = fopen(bad, "w");
    fwrite(data, 1, (size_t)st.st_size - 3, f); /* cut inside the last packet */
    fclose(f);
    snprintf(out, sizeof(out), "%s.txt", bad);
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 1);
    assert_int_equal(cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "truncated: the packet at offset"));
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    cli_result_free(&r);
    unlink(bad);
    free(data);
}

static void test_info_summary(void **state)
{
    const char *args[] = {"info", trace_path, NULL};
    static const char *const want[] = {
        "time span:  1.001002 s (boot time 0.999000 .. 2.000002 s)\n",
        "system:     Linux 6.1.0 x86_64\n",
        "  system_info              1\n",
        "  process_tree             1\n",
        "  ftrace_events            2\n",
        "  track_descriptor         3\n",
        "  clock_snapshot           1\n",
        "  track_event              4\n",
        "  trace_stats              1\n",
        "ftrace events: 16\n",
        "sequences:  3 writer sequence(s)\n",
        "cpus:       0,1 (2 with kernel data)\n",
        "processes:  1, threads: 3\n",
        "  ftrace cpu 1: 1 bundle(s) flagged lost_events",
        "  buffer 0: 3 chunks overwritten, 0 chunks discarded",
    };
    struct cli_result r;
    size_t i;

    assert_int_equal(cli_run(&r, args), 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "13 packets, some compressed"));
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(r.out, want[i]))
            fail_msg("info lacks '%s':\n%s", want[i], r.out);
    }
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ftrace_line_by_line),
        cmocka_unit_test(test_json_parses_with_expected_events),
        cmocka_unit_test(test_systrace_envelope),
        cmocka_unit_test(test_truncated_leaves_no_output),
        cmocka_unit_test(test_info_summary),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
