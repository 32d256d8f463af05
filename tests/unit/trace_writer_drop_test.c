/*
 * trace_writer_drop_test.c - TraceWriter losses and concurrency on a real
 * memfd SMB through the real arbiter: drop-and-count when the SMB is full
 * (also in the middle of a fragmented packet), an encoder error that loses
 * only its own packet, the stall policy waiting for the service or timing
 * out into a counted drop, and writers on several threads. Framing and
 * fragments are in trace_writer_test.c.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/chunk_reader.h"
#include "common/shm.h"
#include "common/shm_arbiter.h"
#include "common/trace_writer.h"
#include "tw_fake_svc.h"

static void test_drop_and_count_when_full(void **state)
{
    struct svc *s = svc_new(16 * 1024, 4096); /* four chunks */
    struct tb_tw *tw = new_writer(s, 5);
    struct tb_tw_stats st;
    uint32_t written = 0, dropped = 0, i;
    int ret;

    /* nobody commits: the SMB fills up and packets start to drop */
    for (i = 0; i < 400; i++) {
        write_event(tb_tw_begin_packet(tw), i, 300);
        ret = tb_tw_end_packet(tw);
        if (ret == 0) {
            assert_int_equal(dropped, 0); /* no packet lands after a drop */
            written++;
        } else {
            assert_int_equal(ret, -ENOSPC);
            dropped++;
        }
    }
    assert_true(written > 0 && dropped > 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_written, written);
    assert_int_equal(st.packets_dropped, dropped);
    assert_true(st.chunks_missed >= dropped);
    assert_true(tb_arbiter_chunks_missed(s->arb, 5) >= dropped);

    /* the service drains; the next packet says data was lost before it */
    svc_commit(s);
    write_event(tb_tw_begin_packet(tw), i, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    write_event(tb_tw_begin_packet(tw), i + 1, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    svc_commit(s);
    svc_read(s);
    /* the packet cut short when the SMB filled up left a drop sentinel */
    assert_int_equal(s->aborted, 1);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, written + 2);
    for (uint32_t k = 0; k < written; k++)
        check_event(&s->packets[k], k, 300, 0);
    check_event(&s->packets[written], i, 0, TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    check_event(&s->packets[written + 1], i + 1, 0, 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

/* A packet that needs three chunks when only two are free: its fragments
 * are aborted, yet the patched chunk is released by has_more=false. */
static void test_drop_mid_fragment_releases_patches(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 6);
    struct tb_tw_stats st;

    write_event(tb_tw_begin_packet(tw), 0, 10000);
    assert_int_equal(tb_tw_end_packet(tw), -ENOSPC);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 1);
    svc_commit(s);
    write_event(tb_tw_begin_packet(tw), 1, 10);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->flagged, 1);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->aborted, 1);
    assert_int_equal(s->npackets, 1);
    check_event(&s->packets[0], 1, 10, TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    tb_tw_destroy(tw);
    svc_free(s);
}

static void test_encoder_error_drops_only_that_packet(void **state)
{
    struct svc *s = svc_new(16 * 1024, 4096);
    struct tb_tw *tw = new_writer(s, 4);
    struct tb_pbw *w;

    write_event(tb_tw_begin_packet(tw), 0, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    w = tb_tw_begin_packet(tw);
    tb_pbw_begin_nested(w, 11); /* left open */
    assert_int_equal(tb_tw_end_packet(tw), -EPROTO);
    write_event(tb_tw_begin_packet(tw), 2, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_end_packet(tw), -EINVAL);
    tb_tw_destroy(tw);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, 2);
    check_event(&s->packets[0], 0, 0, 0);
    check_event(&s->packets[1], 2, 0, TB_TW_DROP_PRESENT | 128);
    svc_free(s);
}

struct drainer {
    struct svc *s;
    unsigned int delay_ms;
};

static void *drain_later(void *p)
{
    struct drainer *d = p;
    struct timespec ts = {0, (long)d->delay_ms * 1000000L};

    nanosleep(&ts, NULL);
    svc_commit(d->s);
    return NULL;
}

static struct tb_tw *new_stall_writer(struct svc *s, uint32_t timeout_ms)
{
    struct tb_tw_opts o = {
        .ops = &tb_tw_arbiter_ops,
        .ops_ctx = s->arb,
        .writer_id = 9,
        .target_buffer = 7,
        .policy = TB_TW_STALL,
        .stall_timeout_ms = timeout_ms,
    };
    struct tb_tw *tw;

    assert_int_equal(tb_tw_create(&o, &tw), 0);
    return tw;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Stall policy: a packet that needs a chunk waits until the service frees
 * one, and nothing is lost. */
static void test_stall_waits_for_service(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096); /* two chunks */
    struct tb_tw *tw = new_stall_writer(s, 5000);
    struct drainer d = {s, 50};
    struct tb_tw_stats st;
    pthread_t th;
    uint64_t t0;

    /* the first packet needs both chunks: the SMB is then full */
    write_event(tb_tw_begin_packet(tw), 0, 6000);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_int_equal(tb_tw_flush(tw), 0);
    assert_int_equal(pthread_create(&th, NULL, drain_later, &d), 0);
    t0 = mono_ms();
    write_event(tb_tw_begin_packet(tw), 1, 0);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    assert_true(mono_ms() - t0 >= 40);
    pthread_join(th, NULL);
    assert_int_equal(tb_tw_flush(tw), 0);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 0);
    assert_int_equal(st.chunks_missed, 0);
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->npackets, 2);
    check_event(&s->packets[0], 0, 6000, 0);
    check_event(&s->packets[1], 1, 0, 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

/* Stall policy with nobody draining: give up after the timeout, drop. */
static void test_stall_times_out_then_drops(void **state)
{
    struct svc *s = svc_new(8 * 1024, 4096);
    struct tb_tw *tw = new_stall_writer(s, 30);
    struct tb_tw_stats st;
    uint64_t t0;

    write_event(tb_tw_begin_packet(tw), 0, 6000);
    assert_int_equal(tb_tw_end_packet(tw), 0);
    t0 = mono_ms();
    write_event(tb_tw_begin_packet(tw), 1, 5000);
    assert_int_equal(tb_tw_end_packet(tw), -ENOSPC);
    assert_true(mono_ms() - t0 >= 30);
    tb_tw_stats(tw, &st);
    assert_int_equal(st.packets_dropped, 1);
    assert_int_equal(tb_tw_take_drop_mark(tw), TB_TW_DROP_PRESENT | TB_TW_DROP_SMB_FULL);
    assert_int_equal(tb_tw_take_drop_mark(tw), 0);
    tb_tw_destroy(tw);
    svc_free(s);
}

struct thread_arg {
    struct svc *s;
    uint16_t writer_id;
    uint32_t n;
};

static void *writer_thread(void *p)
{
    struct thread_arg *a = p;
    struct tb_tw *tw = new_writer(a->s, a->writer_id);

    for (uint32_t i = 0; i < a->n; i++) {
        write_event(tb_tw_begin_packet(tw), i, (i % 50 == 0) ? 5000 : 0);
        if (tb_tw_end_packet(tw))
            return (void *)1;
    }
    tb_tw_destroy(tw);
    return NULL;
}

static void test_writers_on_threads(void **state)
{
    struct svc *s = svc_new(2 * 1024 * 1024, 8192);
    struct thread_arg args[4];
    pthread_t th[4];
    size_t next[5] = {0};

    for (int t = 0; t < 4; t++) {
        args[t] = (struct thread_arg){s, (uint16_t)(t + 1), 1000};
        assert_int_equal(pthread_create(&th[t], NULL, writer_thread, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        void *ret;

        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    svc_commit(s);
    svc_read(s);
    assert_int_equal(s->blocked, 0);
    assert_int_equal(s->npackets, 4000);
    for (size_t k = 0; k < s->npackets; k++) {
        struct packet *p = &s->packets[k];
        uint32_t i = (uint32_t)next[p->writer_id]++;

        check_event(p, i, (i % 50 == 0) ? 5000 : 0, 0);
    }
    svc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_and_count_when_full),
        cmocka_unit_test(test_drop_mid_fragment_releases_patches),
        cmocka_unit_test(test_encoder_error_drops_only_that_packet),
        cmocka_unit_test(test_stall_waits_for_service),
        cmocka_unit_test(test_stall_times_out_then_drops),
        cmocka_unit_test(test_writers_on_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
