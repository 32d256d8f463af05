/*
 * probes_sched_state_test.c - tb_sched_report_state() (bpf/sched.h) maps
 * task states the way the kernel's sched_switch event reports them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "bpf/sched.h"

#define FREEZABLE 0x2000 /* TASK_FREEZABLE: a flag the kernel ignores here */

static void test_basic_states(void **state)
{
    (void)state;
    assert_int_equal(tb_sched_report_state(0, 0, 0), 0);       /* R */
    assert_int_equal(tb_sched_report_state(0, 0x1, 0), 0x1);   /* S */
    assert_int_equal(tb_sched_report_state(0, 0x2, 0), 0x2);   /* D */
    assert_int_equal(tb_sched_report_state(0, 0x4, 0), 0x4);   /* T */
    assert_int_equal(tb_sched_report_state(0, 0, 0x10), 0x10); /* Z */
    assert_int_equal(tb_sched_report_state(0, 0, 0x20), 0x20); /* X */
    assert_int_equal(tb_sched_report_state(1, 0x1, 0), 0x100); /* preempted */
    assert_int_equal(tb_sched_report_state(0, 0x1 | FREEZABLE, 0), 0x1);
}

static void test_idle_with_flags(void **state)
{
    (void)state;
    assert_int_equal(tb_sched_report_state(0, 0x402, 0), 0x80);
    /* TASK_IDLE | TASK_FREEZABLE is still idle, not D. */
    assert_int_equal(tb_sched_report_state(0, 0x402 | FREEZABLE, 0), 0x80);
    /* NOLOAD alone is not idle. */
    assert_int_equal(tb_sched_report_state(0, 0x400, 0), 0);
}

static void test_rtlock_and_frozen_are_d(void **state)
{
    (void)state;
    assert_int_equal(tb_sched_report_state(0, 0x1000, 0), 0x2);
    assert_int_equal(tb_sched_report_state(0, 0x1000 | FREEZABLE, 0), 0x2);
    assert_int_equal(tb_sched_report_state(0, 0x8000, 0), 0x2);
    /* A frozen sleeper was 'S' before; the kernel reports it as D. */
    assert_int_equal(tb_sched_report_state(0, 0x8000 | 0x1, 0), 0x2);
    assert_int_equal(tb_sched_report_state(0, 0x8000 | 0x402, 0), 0x2);
    assert_int_equal(tb_sched_report_state(1, 0x8000, 0), 0x100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_states),
        cmocka_unit_test(test_idle_with_flags),
        cmocka_unit_test(test_rtlock_and_frozen_are_d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
