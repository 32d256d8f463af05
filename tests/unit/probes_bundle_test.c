/*
 * probes_bundle_test.c - the FtraceEventBundle encoder, checked by decoding
 * its output with protobuf-c: typed events keep every field, compact sched
 * reproduces the absolute timestamps, comms and states of the records (and
 * falls back to typed events where a reader could not infer the pids), and
 * loss is flagged on the bundle. A bundle the writer cannot take (as when
 * no SMB chunk is free) fails, and its queue is emptied so the caller can
 * count exactly what was lost.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bpf/irq.h"
#include "bpf/proc.h"
#include "bpf/sched.h"
#include "bpf/syscall.h"
#include "common/pb_writer.h"
#include "perfetto/trace/trace_packet.pb-c.h"
#include "producers/ftrace/bundle.h"

#define BOOT_BASE 123456789000ull

static Perfetto__Protos__TracePacket *emit_and_decode(struct tb_bundler *b, unsigned int cpu,
                                                      int *nr)
{
    Perfetto__Protos__TracePacket *pkt;
    const uint8_t *data;
    struct tb_pbw w;
    size_t len;

    assert_int_equal(tb_pbw_init_dyn(&w, 0), 0);
    *nr = tb_bundler_emit(b, cpu, &w);
    assert_true(*nr >= 0);
    data = tb_pbw_dyn_data(&w, &len);
    pkt = perfetto__protos__trace_packet__unpack(NULL, len, data);
    tb_pbw_dyn_free(&w);
    assert_non_null(pkt);
    return pkt;
}

static void hdr(struct tb_rec_hdr *h, uint16_t type, uint16_t cpu, uint32_t pid, uint64_t ts)
{
    h->type = type;
    h->cpu = cpu;
    h->pid = pid;
    h->ts = ts;
}

static void test_typed_events(void **state)
{
    struct tb_sched_switch sw = {.prev_state = TB_SCHED_STATE_PREEMPTED,
                                 .prev_pid = 10,
                                 .prev_prio = 120,
                                 .next_pid = 20,
                                 .next_prio = 98,
                                 .prev_comm = "alpha",
                                 .next_comm = "0123456789abcde"};
    struct tb_sched_wake wk = {
        .pid = 30, .prio = 110, .target_cpu = 1, .success = 1, .comm = "waker"};
    struct tb_proc_fork fk = {.parent_pid = 40,
                              .child_pid = 41,
                              .child_tgid = 41,
                              .parent_comm = "parent",
                              .child_comm = "child"};
    struct tb_proc_exec ex = {.pid = 41, .old_pid = 41, .filename = "/bin/true"};
    struct tb_task_rename rn = {
        .pid = 41, .oom_score_adj = -17, .oldcomm = "child", .newcomm = "renamed"};
    struct tb_sys_exit sx = {.id = 0, .ret = -EAGAIN};
    struct tb_irq_entry ie = {.irq = 9, .name = "acpi"};
    Perfetto__Protos__FtraceEventBundle *bu;
    Perfetto__Protos__TracePacket *pkt;
    struct tb_bundler *b;
    int nr;

    hdr(&sw.hdr, TB_REC_SCHED_SWITCH, 1, 10, BOOT_BASE + 1);
    hdr(&wk.hdr, TB_REC_SCHED_WAKEUP_NEW, 1, 10, BOOT_BASE + 2);
    hdr(&fk.hdr, TB_REC_PROC_FORK, 1, 40, BOOT_BASE + 3);
    hdr(&ex.hdr, TB_REC_PROC_EXEC, 1, 41, BOOT_BASE + 4);
    hdr(&rn.hdr, TB_REC_TASK_RENAME, 1, 41, BOOT_BASE + 5);
    hdr(&sx.hdr, TB_REC_SYS_EXIT, 1, 41, BOOT_BASE + 6);
    hdr(&ie.hdr, TB_REC_IRQ_ENTRY, 1, 0, BOOT_BASE + 7);
    assert_int_equal(tb_bundler_new(2, false, &b), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &sw, sizeof(sw)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &wk, sizeof(wk)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &fk, sizeof(fk)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &ex, sizeof(ex)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &rn, sizeof(rn)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &sx, sizeof(sx)), 0);
    assert_int_equal(tb_bundler_add_bpf(b, &ie, sizeof(ie)), 0);
    /* Short and unknown records are refused, not encoded as garbage. */
    assert_int_equal(tb_bundler_add_bpf(b, &sw, sizeof(sw) - 1), -EINVAL);
    assert_int_equal(tb_bundler_pending(b, 1), 7);
    assert_int_equal(tb_bundler_pending(b, 0), 0);

    pkt = emit_and_decode(b, 1, &nr);
    assert_int_equal(nr, 7);
    bu = pkt->ftrace_events;
    assert_non_null(bu);
    assert_true(bu->has_cpu && bu->cpu == 1);
    assert_false(bu->has_lost_events && bu->lost_events);
    assert_null(bu->compact_sched);
    assert_int_equal(bu->n_event, 7);

    Perfetto__Protos__FtraceEvent *e = bu->event[0];
    assert_int_equal(e->timestamp, BOOT_BASE + 1);
    assert_int_equal(e->pid, 10);
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH);
    assert_string_equal(e->sched_switch->prev_comm, "alpha");
    assert_int_equal(e->sched_switch->prev_pid, 10);
    assert_int_equal(e->sched_switch->prev_prio, 120);
    assert_int_equal(e->sched_switch->prev_state, 0x100);
    assert_string_equal(e->sched_switch->next_comm, "0123456789abcde");
    assert_int_equal(e->sched_switch->next_pid, 20);
    assert_int_equal(e->sched_switch->next_prio, 98);

    e = bu->event[1];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKEUP_NEW);
    assert_string_equal(e->sched_wakeup_new->comm, "waker");
    assert_int_equal(e->sched_wakeup_new->pid, 30);
    assert_int_equal(e->sched_wakeup_new->target_cpu, 1);

    e = bu->event[2];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_FORK);
    assert_string_equal(e->sched_process_fork->parent_comm, "parent");
    assert_int_equal(e->sched_process_fork->child_pid, 41);

    e = bu->event[3];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXEC);
    assert_string_equal(e->sched_process_exec->filename, "/bin/true");

    e = bu->event[4];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_TASK_RENAME);
    assert_string_equal(e->task_rename->newcomm, "renamed");
    assert_int_equal(e->task_rename->oom_score_adj, -17);

    e = bu->event[5];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SYS_EXIT);
    assert_int_equal(e->sys_exit->ret, -EAGAIN);

    e = bu->event[6];
    assert_int_equal(e->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_IRQ_HANDLER_ENTRY);
    assert_string_equal(e->irq_handler_entry->name, "acpi");
    assert_int_equal(e->irq_handler_entry->irq, 9);
    perfetto__protos__trace_packet__free_unpacked(pkt, NULL);

    /* Emptied by the emit: nothing more to write. */
    assert_int_equal(tb_bundler_pending(b, 1), 0);
    tb_bundler_free(b);
}

static void test_compact_sched(void **state)
{
    static const char *const comms[] = {"swapper/1", "tbping", "tbpong"};
    enum { NSW = 300, NWK = 120 };
    struct tb_sched_switch *sw = calloc(NSW, sizeof(*sw));
    struct tb_sched_wake *wk = calloc(NWK, sizeof(*wk));
    Perfetto__Protos__FtraceEventBundle__CompactSched *cs;
    struct tb_proc_exit px = {.pid = 5, .tgid = 5, .comm = "gone"};
    Perfetto__Protos__TracePacket *pkt;
    struct tb_bundler *b;
    uint64_t ts;
    int nr;

    assert_int_equal(tb_bundler_new(1, true, &b), 0);
    for (int i = 0; i < NSW; i++) {
        /* A consistent CPU: each switch takes off the task the last one put on. */
        sw[i].prev_pid = i ? sw[i - 1].next_pid : 7;
        hdr(&sw[i].hdr, TB_REC_SCHED_SWITCH, 0, (uint32_t)sw[i].prev_pid,
            BOOT_BASE + 1000ull * i + (i % 7));
        sw[i].prev_state = (i % 3 == 0) ? TB_SCHED_STATE_PREEMPTED : (i % 3);
        sw[i].next_pid = 100 + i % 3;
        sw[i].next_prio = i % 3 ? 120 : -2;
        strcpy(sw[i].next_comm, comms[i % 3]);
        assert_int_equal(tb_bundler_add_bpf(b, &sw[i], sizeof(sw[i])), 0);
        if (i < NWK) {
            hdr(&wk[i].hdr, TB_REC_SCHED_WAKING, 0, (uint32_t)sw[i].next_pid,
                BOOT_BASE + 1000ull * i + 500);
            wk[i].pid = 101 + i % 2;
            wk[i].target_cpu = 0;
            wk[i].prio = 120;
            strcpy(wk[i].comm, comms[1 + i % 2]);
            assert_int_equal(tb_bundler_add_bpf(b, &wk[i], sizeof(wk[i])), 0);
        }
    }
    hdr(&px.hdr, TB_REC_PROC_EXIT, 0, 5, BOOT_BASE + 7);
    assert_int_equal(tb_bundler_add_bpf(b, &px, sizeof(px)), 0);

    pkt = emit_and_decode(b, 0, &nr);
    assert_int_equal(nr, NSW + NWK + 1);
    /*
     * Full FtraceEvents: the CPU's first switch (nothing says who ran
     * before it) and the non-sched event; every other switch and waking is
     * compact.
     */
    assert_int_equal(pkt->ftrace_events->n_event, 2);
    assert_int_equal(pkt->ftrace_events->event[0]->event_case,
                     PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_SWITCH);
    assert_int_equal(pkt->ftrace_events->event[0]->sched_switch->prev_pid, 7);
    assert_int_equal(pkt->ftrace_events->event[1]->event_case,
                     PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_PROCESS_EXIT);
    cs = pkt->ftrace_events->compact_sched;
    assert_non_null(cs);
    assert_int_equal(cs->n_intern_table, 3);
    assert_int_equal(cs->n_switch_timestamp, NSW - 1);
    assert_int_equal(cs->n_switch_prev_state, NSW - 1);
    assert_int_equal(cs->n_switch_next_comm_index, NSW - 1);
    assert_int_equal(cs->n_waking_timestamp, NWK);
    assert_int_equal(cs->n_waking_comm_index, NWK);
    ts = 0;
    for (int i = 0; i < NSW - 1; i++) {
        ts += cs->switch_timestamp[i];
        assert_int_equal(ts, sw[i + 1].hdr.ts);
        assert_int_equal(cs->switch_prev_state[i], sw[i + 1].prev_state);
        assert_int_equal(cs->switch_next_pid[i], sw[i + 1].next_pid);
        assert_int_equal(cs->switch_next_prio[i], sw[i + 1].next_prio);
        assert_string_equal(cs->intern_table[cs->switch_next_comm_index[i]], sw[i + 1].next_comm);
    }
    ts = 0;
    for (int i = 0; i < NWK; i++) {
        ts += cs->waking_timestamp[i];
        assert_int_equal(ts, wk[i].hdr.ts);
        assert_int_equal(cs->waking_pid[i], wk[i].pid);
        assert_string_equal(cs->intern_table[cs->waking_comm_index[i]], wk[i].comm);
    }
    perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
    tb_bundler_free(b);
    free(sw);
    free(wk);
}

/*
 * Where a reader could not infer the previous task or the waker from the
 * CPU's last switch (the kernel did not report a switch in between), the
 * event is written typed, pids spelled out; the rest stays compact.
 */
static void test_compact_falls_back_to_typed(void **state)
{
    struct tb_sched_switch sw[3] = {0};
    struct tb_sched_wake wk[2] = {0};
    Perfetto__Protos__FtraceEventBundle *fb;
    Perfetto__Protos__TracePacket *pkt;
    struct tb_bundler *b;
    int nr;

    (void)state;
    assert_int_equal(tb_bundler_new(1, true, &b), 0);
    /* 0 -> 100 (first: typed), 100 -> 101 (compact), 55 -> 102 (typed). */
    const int32_t prev[3] = {0, 100, 55}, next[3] = {100, 101, 102};
    for (int i = 0; i < 3; i++) {
        sw[i].prev_pid = prev[i];
        sw[i].next_pid = next[i];
        strcpy(sw[i].next_comm, "t");
        hdr(&sw[i].hdr, TB_REC_SCHED_SWITCH, 0, (uint32_t)prev[i], BOOT_BASE + 10ull * i);
        assert_int_equal(tb_bundler_add_bpf(b, &sw[i], sizeof(sw[i])), 0);
    }
    /* Woken by 999 while 102 should be running (typed), then by 102. */
    const uint32_t waker[2] = {999, 102};
    for (int i = 0; i < 2; i++) {
        wk[i].pid = 7;
        strcpy(wk[i].comm, "w");
        hdr(&wk[i].hdr, TB_REC_SCHED_WAKING, 0, waker[i], BOOT_BASE + 30 + i);
        assert_int_equal(tb_bundler_add_bpf(b, &wk[i], sizeof(wk[i])), 0);
    }
    pkt = emit_and_decode(b, 0, &nr);
    assert_int_equal(nr, 5);
    fb = pkt->ftrace_events;
    assert_int_equal(fb->n_event, 3);
    assert_int_equal(fb->event[0]->sched_switch->prev_pid, 0);
    assert_int_equal(fb->event[1]->sched_switch->prev_pid, 55);
    assert_int_equal(fb->event[1]->pid, 55);
    assert_int_equal(fb->event[2]->event_case, PERFETTO__PROTOS__FTRACE_EVENT__EVENT_SCHED_WAKING);
    assert_int_equal(fb->event[2]->pid, 999);
    assert_non_null(fb->compact_sched);
    assert_int_equal(fb->compact_sched->n_switch_next_pid, 1);
    assert_int_equal(fb->compact_sched->switch_next_pid[0], 101);
    assert_int_equal(fb->compact_sched->n_waking_pid, 1);
    assert_int_equal(fb->compact_sched->waking_timestamp[0], BOOT_BASE + 31);
    perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
    tb_bundler_free(b);
}

static void test_lost_flag(void **state)
{
    Perfetto__Protos__TracePacket *pkt;
    struct tb_bundler *b;
    struct tb_pbw w;
    int nr;

    assert_int_equal(tb_bundler_new(2, true, &b), 0);
    /* Nothing queued, nothing lost: no bundle at all. */
    assert_int_equal(tb_pbw_init_dyn(&w, 0), 0);
    assert_int_equal(tb_bundler_emit(b, 0, &w), 0);
    assert_int_equal(tb_pbw_size(&w), 0);
    tb_pbw_dyn_free(&w);
    tb_bundler_mark_lost(b, 1);
    pkt = emit_and_decode(b, 1, &nr);
    assert_int_equal(nr, 0);
    assert_true(pkt->ftrace_events->has_lost_events && pkt->ftrace_events->lost_events);
    assert_int_equal(pkt->ftrace_events->cpu, 1);
    perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
    /* The flag is for one bundle only. */
    assert_int_equal(tb_pbw_init_dyn(&w, 0), 0);
    assert_int_equal(tb_bundler_emit(b, 1, &w), 0);
    assert_int_equal(tb_pbw_size(&w), 0);
    tb_pbw_dyn_free(&w);
    tb_bundler_free(b);
}

/*
 * A pb_writer with no room (the trace writer's state when it found no free
 * chunk): emit fails, and the queue counted by tb_bundler_pending() before is
 * gone, so that count is what the caller reports lost, once.
 */
static void test_emit_failure_empties_queue(void **state)
{
    struct tb_sched_switch sw = {.next_pid = 2, .next_comm = "x"};
    struct tb_sched_wake wk = {.pid = 3, .comm = "y"};
    struct tb_bundler *b;
    uint8_t small[64];
    struct tb_pbw w;
    int nr;

    (void)state;
    for (int compact = 0; compact < 2; compact++) {
        assert_int_equal(tb_bundler_new(1, compact, &b), 0);
        for (int i = 0; i < 100; i++) {
            hdr(&sw.hdr, TB_REC_SCHED_SWITCH, 0, 1, BOOT_BASE + 10ull * i);
            hdr(&wk.hdr, TB_REC_SCHED_WAKING, 0, 1, BOOT_BASE + 10ull * i + 5);
            assert_int_equal(tb_bundler_add_bpf(b, &sw, sizeof(sw)), 0);
            assert_int_equal(tb_bundler_add_bpf(b, &wk, sizeof(wk)), 0);
        }
        assert_int_equal(tb_bundler_pending(b, 0), 200);
        tb_pbw_init_buf(&w, small, sizeof(small));
        nr = tb_bundler_emit(b, 0, &w);
        assert_true(nr < 0);
        assert_int_equal(tb_bundler_pending(b, 0), 0);
        assert_int_equal(tb_bundler_pending_bytes(b, 0), 0);
        /* The queue is usable again: the next bundle holds only new events. */
        assert_int_equal(tb_bundler_add_bpf(b, &sw, sizeof(sw)), 0);
        {
            Perfetto__Protos__TracePacket *pkt = emit_and_decode(b, 0, &nr);

            assert_int_equal(nr, 1);
            perfetto__protos__trace_packet__free_unpacked(pkt, NULL);
        }
        tb_bundler_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_events),
        cmocka_unit_test(test_compact_sched),
        cmocka_unit_test(test_compact_falls_back_to_typed),
        cmocka_unit_test(test_lost_flag),
        cmocka_unit_test(test_emit_failure_empties_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
