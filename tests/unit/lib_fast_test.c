/*
 * lib_fast_test.c - libtracebpf's fast path (te_fast.h) writes packets that
 * decode exactly like the general encoder's: the same script of slices,
 * instants and counters runs on one thread forced through the general
 * path and on another with the fast path, into one standalone trace, and
 * the two sequences must decode to the same events. Runs long enough to
 * cross many chunk boundaries (where the fast path hands over to the
 * general one and back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "producers/userspace/te_decode.h"
#include "producers/userspace/te_seq.h"
#include "tracebpf/tracebpf.h"

TRACEBPF_DEFINE_CATEGORY(fast, "fast", "fast path test events", NULL);
TRACEBPF_DEFINE_CATEGORY(other, "fast.other", "a second category", NULL);

#define ROUNDS           3000
#define EVENTS_PER_ROUND 15

static char path[256];

struct run {
    bool fast;
    pid_t tid;
    uint64_t t0, t1;
    uint64_t fast_events;
};

static void script(int i)
{
    TRACE_EVENT_BEGIN(fast, "begin");
    TRACE_EVENT_INSTANT(other, "instant");
    TRACE_COUNTER(fast, "int counter", (int64_t)i * 1000003 - 5000);
    TRACE_COUNTER(other, "double counter", i * 0.25 - 3.0);
    TRACE_COUNTER(fast, "int counter", -(int64_t)i);
    {
        TRACE_EVENT(other, "scope");
        tracebpf_instant(TRACEBPF_CATEGORY(fast), "fn instant");
    }
    TRACE_EVENT_END(fast);
    tracebpf_counter_int(TRACEBPF_CATEGORY(other), "fn counter", INT64_MIN + i);
    /* Annotations: every type; a string too long for te_fast.h on odd
     * rounds, so both paths interleave on one sequence. */
    TRACE_EVENT_INSTANT(fast, "annotated", TRACEBPF_ARG("n", (int64_t)i - 1000),
                        TRACEBPF_ARG("flag", (bool)(i & 1)));
    {
        TRACE_EVENT(
            other, "scope args", TRACEBPF_ARG("ratio", i / 7.0),
            TRACEBPF_ARG("who", (i & 1) ? "a string longer than twenty-four bytes" : "short"));
    }
    TRACE_EVENT_BEGIN(fast, "ptr", TRACEBPF_ARG("p", (void *)&path[i % 8]),
                      TRACEBPF_ARG("u", (uint64_t)i << 40));
    TRACE_EVENT_END(fast);
}

static void *thread_main(void *arg)
{
    struct run *r = arg;

    r->tid = gettid();
    tbl_tls_set_fast(r->fast);
    r->t0 = tracebpf_now();
    for (int i = 0; i < ROUNDS; i++)
        script(i);
    r->t1 = tracebpf_now();
    r->fast_events = tbl_tls_set_fast(true);
    return NULL;
}

static uint8_t *read_all(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    uint8_t *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n ? (size_t)n : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static struct tbl_decoded *snapshot(void)
{
    struct tbl_decoded *d;
    uint8_t *buf;
    size_t len;

    assert_int_equal(tracebpf_flush_to_file(path), 0);
    buf = read_all(path, &len);
    assert_int_equal(tbl_decode(buf, len, &d), 0);
    free(buf);
    assert_int_equal(d->unresolved, 0);
    assert_int_equal(d->dropped_marks, 0);
    return d;
}

static void run_thread(struct run *r)
{
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, thread_main, r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* The events of the thread @tid, in order; their count in *n. */
static const struct tbl_devent **events_of(const struct tbl_decoded *d, pid_t tid, size_t *n)
{
    const struct tbl_devent **v = calloc(d->nev ? d->nev : 1, sizeof(*v));
    uint32_t seq = 0;

    assert_non_null(v);
    *n = 0;
    for (size_t i = 0; i < d->nev; i++) {
        const struct tbl_dtrack *t = tbl_decoded_track(d, d->ev[i].track_uuid);

        /* Slices and instants are on the thread's track: they name the
         * sequence; counters follow on the same sequence. */
        if (t && t->is_thread && t->tid == tid)
            seq = d->ev[i].seq;
        if (seq && d->ev[i].seq == seq)
            v[(*n)++] = &d->ev[i];
    }
    return v;
}

static void test_fast_decodes_like_general(void **state)
{
    struct run slow = {.fast = false}, quick = {.fast = true};
    const struct tbl_devent **a, **b;
    struct tbl_decoded *d;
    size_t na, nb;

    (void)state;
    run_thread(&slow);
    run_thread(&quick);
    /* The forced thread never took the fast path; the other took it for
     * all but the first events of each string and the chunk switches. */
    assert_int_equal(slow.fast_events, 0);
    assert_true(quick.fast_events > ROUNDS * EVENTS_PER_ROUND * 9 / 10);

    d = snapshot();
    a = events_of(d, slow.tid, &na);
    b = events_of(d, quick.tid, &nb);
    assert_int_equal(na, ROUNDS * EVENTS_PER_ROUND);
    assert_int_equal(nb, ROUNDS * EVENTS_PER_ROUND);
    for (size_t i = 0; i < na; i++) {
        const struct tbl_devent *x = a[i], *y = b[i];

        assert_int_equal(x->type, y->type);
        if (x->cat || y->cat)
            assert_string_equal(x->cat, y->cat);
        if (x->name || y->name)
            assert_string_equal(x->name, y->name);
        assert_int_equal(x->has_counter, y->has_counter);
        assert_int_equal(x->counter_is_double, y->counter_is_double);
        assert_int_equal(x->ci, y->ci);
        assert_true(x->cd == y->cd);
        assert_int_equal(x->nannots, y->nannots);
        for (size_t j = 0; j < x->nannots; j++) {
            const struct tbl_dannot *p = &x->annots[j], *q = &y->annots[j];

            assert_string_equal(p->name, q->name);
            assert_int_equal(p->type, q->type);
            if (p->type == TRACEBPF_ARG_STRING)
                assert_string_equal(p->v.s, q->v.s);
            else if (p->type == TRACEBPF_ARG_DOUBLE)
                assert_true(p->v.d == q->v.d);
            else if (p->type == TRACEBPF_ARG_BOOL)
                assert_int_equal(p->v.b, q->v.b);
            else
                assert_int_equal(p->v.u, q->v.u);
        }
        assert_int_equal(x->nflows + x->nterm_flows + y->nflows + y->nterm_flows, 0);
        if (x->has_counter) {
            /* The same process counter track from both threads. */
            assert_int_equal(x->track_uuid, y->track_uuid);
            assert_true(tbl_decoded_track(d, x->track_uuid)->is_counter);
        } else {
            assert_int_equal(tbl_decoded_track(d, x->track_uuid)->tid, slow.tid);
            assert_int_equal(tbl_decoded_track(d, y->track_uuid)->tid, quick.tid);
        }
        /* Each run's times in order and inside the run. */
        assert_true(x->ts >= slow.t0 && x->ts <= slow.t1);
        assert_true(y->ts >= quick.t0 && y->ts <= quick.t1);
        if (i) {
            assert_true(x->ts >= a[i - 1]->ts);
            assert_true(y->ts >= b[i - 1]->ts);
        }
    }
    /* Spot-check values against the script, not only against each other. */
    assert_string_equal(tbl_decoded_track(d, b[2]->track_uuid)->name, "int counter");
    assert_int_equal(b[2]->ci, -5000);
    assert_true(b[EVENTS_PER_ROUND + 3]->cd == 0.25 - 3.0);
    assert_int_equal(b[(ROUNDS - 1) * EVENTS_PER_ROUND + 9]->ci, INT64_MIN + ROUNDS - 1);
    {
        const struct tbl_devent *ann = b[5 * EVENTS_PER_ROUND + 10];
        const struct tbl_devent *who = b[5 * EVENTS_PER_ROUND + 11];
        const struct tbl_devent *ptr = b[5 * EVENTS_PER_ROUND + 13];

        assert_string_equal(ann->name, "annotated");
        assert_int_equal(ann->nannots, 2);
        assert_string_equal(ann->annots[0].name, "n");
        assert_int_equal(ann->annots[0].v.i, 5 - 1000);
        assert_int_equal(ann->annots[1].type, TRACEBPF_ARG_BOOL);
        assert_true(ann->annots[1].v.b);
        assert_string_equal(who->annots[1].v.s, "a string longer than twenty-four bytes");
        assert_true(who->annots[0].v.d == 5 / 7.0);
        assert_int_equal(ptr->annots[0].type, TRACEBPF_ARG_POINTER);
        assert_int_equal(ptr->annots[0].v.u, (uint64_t)(uintptr_t)&path[5]);
        assert_int_equal(ptr->annots[1].v.u, (uint64_t)5 << 40);
    }
    free(a);
    free(b);
    tbl_decoded_free(d);
}

/* An explicit time ahead of the clock, then plain events: those must not
 * go back in time on the fast path (they are written absolute). */
static void test_future_timestamp_then_plain(void **state)
{
    uint64_t future = tracebpf_now() + 5ull * 1000 * 1000 * 1000, t0, t1;
    struct tbl_decoded *d;
    size_t i;

    (void)state;
    TRACE_EVENT_INSTANT(fast, "warm"); /* interned: later ones may go fast */
    TRACE_EVENT_INSTANT(fast, "future", TRACEBPF_AT(future));
    t0 = tracebpf_now();
    TRACE_EVENT_INSTANT(fast, "warm");
    TRACE_EVENT_INSTANT(fast, "warm");
    t1 = tracebpf_now();
    d = snapshot();
    for (i = 0; i < d->nev; i++)
        if (d->ev[i].name && !strcmp(d->ev[i].name, "future"))
            break;
    assert_true(i + 2 < d->nev);
    assert_int_equal(d->ev[i].ts, future);
    assert_string_equal(d->ev[i + 1].name, "warm");
    assert_string_equal(d->ev[i + 2].name, "warm");
    assert_true(d->ev[i + 1].ts >= t0 && d->ev[i + 1].ts <= t1);
    assert_true(d->ev[i + 2].ts >= d->ev[i + 1].ts && d->ev[i + 2].ts <= t1);
    tbl_decoded_free(d);
}

static volatile sig_atomic_t signals_seen;
static volatile bool stop_kicker;

static void on_signal(int sig)
{
    (void)sig;
    signals_seen++;
    /* Longer than the loop's packets: one written over the other would
     * leave bytes a reader trips on. */
    TRACE_EVENT_INSTANT(fast, "from signal", TRACEBPF_ARG("n", (int)signals_seen));
}

static void *kicker(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    struct timespec ts = {0, 20 * 1000};

    while (!stop_kicker) {
        pthread_kill(target, SIGUSR1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Events from a signal handler that interrupts the fast path are dropped
 * (the thread is busy) or written whole between two events: the trace
 * decodes, and every event of the interrupted loop is there, in order. */
static void test_signal_handler_events(void **state)
{
    struct sigaction sa = {.sa_handler = on_signal}, old;
    const int n = 300000;
    pthread_t self = pthread_self(), th;
    size_t mine = 0, from_signal = 0;
    uint64_t last = 0;
    struct tbl_decoded *d;

    (void)state;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    TRACE_EVENT_INSTANT(fast, "loop"); /* interned before the storm */
    TRACE_EVENT_INSTANT(fast, "from signal", TRACEBPF_ARG("n", 0));
    stop_kicker = false;
    assert_int_equal(pthread_create(&th, NULL, kicker, &self), 0);
    for (int i = 0; i < n; i++)
        TRACE_EVENT_INSTANT(fast, "loop");
    stop_kicker = true;
    pthread_join(th, NULL);
    sigaction(SIGUSR1, &old, NULL);

    d = snapshot();
    for (size_t i = 0; i < d->nev; i++) {
        if (!d->ev[i].name)
            continue;
        if (!strcmp(d->ev[i].name, "loop")) {
            mine++;
            assert_true(d->ev[i].ts >= last);
            last = d->ev[i].ts;
        } else if (!strcmp(d->ev[i].name, "from signal")) {
            from_signal++;
        }
    }
    print_message("signals %d, events from the handler in the trace %zu\n", (int)signals_seen,
                  from_signal - 1);
    assert_int_equal(mine, (size_t)n + 1);
    assert_true(signals_seen > 0);
    assert_true(from_signal - 1 <= (size_t)signals_seen);
    tbl_decoded_free(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/lib_fast_test.%d.pftrace", getpid());
    TRACEBPF_OPTS(tracebpf_init_opts, o, .output = path);
    return tracebpf_init(&o);
}

static int teardown(void **state)
{
    (void)state;
    tracebpf_shutdown();
    unlink(path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_decodes_like_general),
        cmocka_unit_test(test_future_timestamp_then_plain),
        cmocka_unit_test(test_signal_handler_events),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
