/*
 * lib_standalone_test.c - libtracebpf in standalone mode: every API call
 * round-trips through the in-process recorder into a trace file, which is
 * decoded with protobuf-c (raw packets for the wire facts of spec §5.6,
 * resolved events for names, nesting, values, flows and annotations).
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

#include "perfetto/trace/trace.pb-c.h"
#include "producers/userspace/te_decode.h"
#include "tracebpf/tracebpf.h"

TRACEBPF_DEFINE_CATEGORY(test, "test", "unit test events", NULL);
TRACEBPF_DEFINE_CATEGORY(slow, "test.slow", "tagged slow: off by default", "slow");
TRACEBPF_DEFINE_CATEGORY(off, "test.off", "disabled by the category list", NULL);
TRACEBPF_DEFINE_CATEGORY(ddd, "disabled-by-default-test", "implicitly slow", NULL);

static char path[256];

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
    assert_true(len > 0);
    assert_int_equal(buf[0], 0x0A); /* what Trace Processor sniffs */
    assert_int_equal(tbl_decode(buf, len, &d), 0);
    free(buf);
    assert_int_equal(d->unresolved, 0);
    return d;
}

/* Events whose name (or, for ends and counters, whose position right
 * after a named one) starts with @prefix: tests use unique names. */
static size_t find(const struct tbl_decoded *d, const char *name, size_t from)
{
    for (size_t i = from; i < d->nev; i++)
        if (d->ev[i].name && !strcmp(d->ev[i].name, name))
            return i;
    return (size_t)-1;
}

static int setup(void **state)
{
    TRACEBPF_OPTS(tracebpf_init_opts, o, .output = path, .categories = "-test.off");

    snprintf(path, sizeof(path), "/tmp/lib_standalone_test.%d.pftrace", getpid());
    return tracebpf_init(&o);
}

static int teardown(void **state)
{
    tracebpf_shutdown();
    unlink(path);
    return 0;
}

static void nested(void)
{
    TRACE_EVENT(test, "inner", TRACEBPF_ARG("depth", 2));
}

static void test_scoped_slices_nest(void **state)
{
    struct tbl_decoded *d;
    size_t i;

    {
        TRACE_EVENT(test, "outer");
        nested();
    }
    d = snapshot();
    i = find(d, "outer", 0);
    assert_true(i != (size_t)-1);
    assert_true(i + 3 < d->nev);
    assert_int_equal(d->ev[i].type, TRACEBPF_EVENT_SLICE_BEGIN);
    assert_string_equal(d->ev[i].cat, "test");
    assert_string_equal(d->ev[i + 1].name, "inner");
    assert_int_equal(d->ev[i + 1].type, TRACEBPF_EVENT_SLICE_BEGIN);
    assert_int_equal(d->ev[i + 2].type, TRACEBPF_EVENT_SLICE_END);
    assert_int_equal(d->ev[i + 3].type, TRACEBPF_EVENT_SLICE_END);
    assert_true(d->ev[i].ts <= d->ev[i + 1].ts && d->ev[i + 1].ts <= d->ev[i + 2].ts &&
                d->ev[i + 2].ts <= d->ev[i + 3].ts);
    /* Timestamps are CLOCK_BOOTTIME, resolved through clock 64. */
    assert_true(d->ev[i + 3].ts <= tracebpf_now());
    assert_true(tracebpf_now() - d->ev[i].ts < 10ull * 1000 * 1000 * 1000);
    {
        const struct tbl_dtrack *t = tbl_decoded_track(d, d->ev[i].track_uuid);

        assert_non_null(t);
        assert_true(t->is_thread);
        assert_int_equal(t->tid, gettid());
        assert_int_equal(t->pid, getpid());
    }
    tbl_decoded_free(d);
}

static void test_begin_end_instant_chromium(void **state)
{
    struct tbl_decoded *d;
    size_t i;

    TRACE_EVENT_BEGIN0(test, "cr_begin");
    TRACE_EVENT_INSTANT1(test, "cr_instant", TRACE_EVENT_SCOPE_THREAD, "k", 7);
    TRACE_EVENT_END0(test, "cr_begin");
    TRACE_EVENT_INSTANT0(test, "cr_proc_instant", TRACE_EVENT_SCOPE_PROCESS);
    d = snapshot();
    i = find(d, "cr_begin", 0);
    assert_true(i != (size_t)-1 && i + 3 < d->nev);
    assert_int_equal(d->ev[i + 1].type, TRACEBPF_EVENT_INSTANT);
    assert_string_equal(d->ev[i + 1].name, "cr_instant");
    assert_int_equal(d->ev[i + 1].nannots, 1);
    assert_string_equal(d->ev[i + 1].annots[0].name, "k");
    assert_int_equal(d->ev[i + 1].annots[0].v.i, 7);
    assert_int_equal(d->ev[i + 2].type, TRACEBPF_EVENT_SLICE_END);
    assert_int_equal(d->ev[i + 2].track_uuid, d->ev[i].track_uuid);
    assert_string_equal(d->ev[i + 3].name, "cr_proc_instant");
    assert_int_equal(d->ev[i + 3].track_uuid, tracebpf_track_uuid(tracebpf_track_process()));
    assert_true(tbl_decoded_track(d, d->ev[i + 3].track_uuid)->is_process);
    tbl_decoded_free(d);
}

static void test_annotation_types(void **state)
{
    int x = 0;
    const char *s = "hello";
    struct tbl_decoded *d;
    size_t i;

    TRACE_EVENT_INSTANT(test, "annots", TRACEBPF_ARG("i", -5), TRACEBPF_ARG("u", 7u),
                        TRACEBPF_ARG("d", 2.5), TRACEBPF_ARG("b", (bool)true), TRACEBPF_ARG("s", s),
                        TRACEBPF_ARG("p", &x), TRACEBPF_ARG_U("big", UINT64_MAX));
    d = snapshot();
    i = find(d, "annots", 0);
    assert_true(i != (size_t)-1);
    assert_int_equal(d->ev[i].nannots, 7);
    assert_string_equal(d->ev[i].annots[0].name, "i");
    assert_int_equal(d->ev[i].annots[0].type, TRACEBPF_ARG_INT);
    assert_int_equal(d->ev[i].annots[0].v.i, -5);
    assert_int_equal(d->ev[i].annots[1].type, TRACEBPF_ARG_UINT);
    assert_int_equal(d->ev[i].annots[1].v.u, 7);
    assert_int_equal(d->ev[i].annots[2].type, TRACEBPF_ARG_DOUBLE);
    assert_true(d->ev[i].annots[2].v.d == 2.5);
    assert_int_equal(d->ev[i].annots[3].type, TRACEBPF_ARG_BOOL);
    assert_true(d->ev[i].annots[3].v.b);
    assert_int_equal(d->ev[i].annots[4].type, TRACEBPF_ARG_STRING);
    assert_string_equal(d->ev[i].annots[4].v.s, "hello");
    assert_int_equal(d->ev[i].annots[5].type, TRACEBPF_ARG_POINTER);
    assert_int_equal(d->ev[i].annots[5].v.u, (uint64_t)(uintptr_t)&x);
    assert_int_equal(d->ev[i].annots[6].v.u, UINT64_MAX);
    tbl_decoded_free(d);
}

static void test_counters(void **state)
{
    struct tracebpf_track mem;
    struct tbl_decoded *d;
    const struct tbl_dtrack *t;
    size_t i = 0, n_int = 0, n_dbl = 0, n_mem = 0;

    assert_int_equal(tracebpf_track_init_counter(&mem, "heap", TRACEBPF_UNIT_SIZE_BYTES, 0, NULL),
                     0);
    TRACE_COUNTER(test, "queue_depth", 3);
    TRACE_COUNTER(test, "queue_depth", -4);
    TRACE_COUNTER(test, "fps", 59.5);
    TRACE_COUNTER_TRACK(test, &mem, 4096);
    d = snapshot();
    for (i = 0; i < d->nev; i++) {
        const struct tbl_devent *e = &d->ev[i];

        if (e->type != TRACEBPF_EVENT_COUNTER)
            continue;
        t = tbl_decoded_track(d, e->track_uuid);
        assert_non_null(t);
        assert_true(t->is_counter);
        assert_string_equal(e->cat, "test");
        if (!strcmp(t->name, "queue_depth")) {
            assert_false(e->counter_is_double);
            assert_int_equal(e->ci, n_int++ ? -4 : 3);
        } else if (!strcmp(t->name, "fps")) {
            assert_true(e->counter_is_double && e->cd == 59.5);
            n_dbl++;
        } else if (!strcmp(t->name, "heap")) {
            assert_int_equal(e->ci, 4096);
            assert_int_equal(t->pid, getpid());
            n_mem++;
        }
    }
    assert_int_equal(n_int, 2);
    assert_int_equal(n_dbl, 1);
    assert_int_equal(n_mem, 1);
    tbl_decoded_free(d);
}

static void *flow_end_thread(void *arg)
{
    tracebpf_set_thread_name("flow-peer");
    TRACE_EVENT(test, "flow_consumer", TRACEBPF_TERMINATING_FLOW(*(uint64_t *)arg));
    return NULL;
}

static void test_flows_across_threads(void **state)
{
    uint64_t id = tracebpf_flow_process_scoped(99);
    struct tbl_decoded *d;
    pthread_t th;
    size_t a, b;

    {
        TRACE_EVENT(test, "flow_producer", TRACEBPF_FLOW(id));
    }
    assert_int_equal(pthread_create(&th, NULL, flow_end_thread, &id), 0);
    pthread_join(th, NULL);
    d = snapshot();
    a = find(d, "flow_producer", 0);
    b = find(d, "flow_consumer", 0);
    assert_true(a != (size_t)-1 && b != (size_t)-1);
    assert_int_equal(d->ev[a].nflows, 1);
    assert_int_equal(d->ev[a].flows[0], id);
    assert_int_equal(d->ev[b].nterm_flows, 1);
    assert_int_equal(d->ev[b].term_flows[0], id);
    assert_int_not_equal(d->ev[a].seq, d->ev[b].seq); /* one sequence per thread */
    assert_int_not_equal(d->ev[a].track_uuid, d->ev[b].track_uuid);
    assert_string_equal(tbl_decoded_track(d, d->ev[b].track_uuid)->name, "flow-peer");
    tbl_decoded_free(d);
}

static void test_named_tracks_and_dynamic_names(void **state)
{
    struct tracebpf_track async, child;
    char dyn[32];
    struct tbl_decoded *d;
    const struct tbl_dtrack *t;
    size_t i;

    assert_int_equal(tracebpf_track_init_named(&async, "requests", 1, NULL, 0), 0);
    assert_int_equal(tracebpf_track_init_named(&child, "request 1 io", 0, &async, 0), 0);
    snprintf(dyn, sizeof(dyn), "dyn_%d", 42);
    TRACE_EVENT_BEGIN(test, "req", TRACEBPF_ON_TRACK(&async));
    TRACE_EVENT_INSTANT(test, "ignored", TRACEBPF_ON_TRACK(&child), TRACEBPF_DYNAMIC_NAME(dyn));
    TRACE_EVENT_END(test, TRACEBPF_ON_TRACK(&async));
    d = snapshot();
    i = find(d, "req", 0);
    assert_true(i != (size_t)-1 && i + 2 < d->nev);
    t = tbl_decoded_track(d, d->ev[i].track_uuid);
    assert_non_null(t);
    assert_string_equal(t->name, "requests");
    assert_int_equal(t->parent, tracebpf_track_uuid(tracebpf_track_process()));
    assert_string_equal(d->ev[i + 1].name, "dyn_42");
    t = tbl_decoded_track(d, d->ev[i + 1].track_uuid);
    assert_string_equal(t->name, "request 1 io");
    assert_int_equal(t->parent, tracebpf_track_uuid(&async));
    assert_int_equal(d->ev[i + 2].type, TRACEBPF_EVENT_SLICE_END);
    assert_int_equal(d->ev[i + 2].track_uuid, tracebpf_track_uuid(&async));
    tbl_decoded_free(d);
}

static void test_category_selection(void **state)
{
    struct tbl_decoded *d;

    assert_true(TRACEBPF_ENABLED(test));
    assert_false(TRACEBPF_ENABLED(slow));
    assert_false(TRACEBPF_ENABLED(off));
    assert_false(TRACEBPF_ENABLED(ddd));
    TRACE_EVENT_INSTANT(slow, "slow_event");
    TRACE_EVENT_INSTANT(off, "off_event");
    tracebpf_instant(TRACEBPF_CATEGORY(ddd), "ddd_event");
    d = snapshot();
    assert_true(find(d, "slow_event", 0) == (size_t)-1);
    assert_true(find(d, "off_event", 0) == (size_t)-1);
    assert_true(find(d, "ddd_event", 0) == (size_t)-1);
    tbl_decoded_free(d);
}

/* The wire facts of spec §5.6, checked on raw packets. */
static void test_sequence_wire_format(void **state)
{
    Perfetto__Protos__Trace *tr;
    uint8_t *buf;
    size_t len, firsts = 0, events = 0;
    uint32_t seen[64] = {0};
    size_t nseen = 0;

    TRACE_EVENT_INSTANT(test, "wire");
    assert_int_equal(tracebpf_flush_to_file(path), 0);
    buf = read_all(path, &len);
    tr = perfetto__protos__trace__unpack(NULL, len, buf);
    assert_non_null(tr);
    for (size_t i = 0; i < tr->n_packet; i++) {
        const Perfetto__Protos__TracePacket *p = tr->packet[i];
        bool first = true;

        assert_int_equal(
            p->optional_trusted_packet_sequence_id_case,
            PERFETTO__PROTOS__TRACE_PACKET__OPTIONAL_TRUSTED_PACKET_SEQUENCE_ID_TRUSTED_PACKET_SEQUENCE_ID);
        assert_true(p->trusted_packet_sequence_id >= 2);
        assert_true(p->has_sequence_flags);
        for (size_t j = 0; j < nseen; j++)
            first = first && seen[j] != p->trusted_packet_sequence_id;
        if (first) {
            /* A sequence opens with cleared state, defaults and clocks. */
            assert_true(nseen < 64);
            seen[nseen++] = p->trusted_packet_sequence_id;
            firsts++;
            assert_int_equal(p->sequence_flags, 1);
            assert_true(p->has_first_packet_on_sequence && p->first_packet_on_sequence);
            assert_non_null(p->trace_packet_defaults);
            assert_int_equal(p->trace_packet_defaults->timestamp_clock_id, 64);
            assert_non_null(p->trace_packet_defaults->track_event_defaults);
            assert_int_equal(p->data_case, PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT);
            assert_int_equal(p->clock_snapshot->n_clocks, 2);
            assert_int_equal(p->clock_snapshot->clocks[0]->clock_id, 6);
            assert_int_equal(p->clock_snapshot->clocks[1]->clock_id, 64);
            assert_true(p->clock_snapshot->clocks[1]->is_incremental);
            assert_int_equal(p->clock_snapshot->clocks[0]->timestamp,
                             p->clock_snapshot->clocks[1]->timestamp);
            /* Then the process and thread descriptors. */
            assert_true(i + 2 < tr->n_packet);
            assert_int_equal(tr->packet[i + 1]->data_case,
                             PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR);
            assert_non_null(tr->packet[i + 1]->track_descriptor->process);
            assert_int_equal(tr->packet[i + 1]->track_descriptor->process->pid, getpid());
            assert_non_null(tr->packet[i + 2]->track_descriptor->thread);
            assert_int_equal(tr->packet[i + 2]->track_descriptor->uuid,
                             p->trace_packet_defaults->track_event_defaults->track_uuid);
        } else {
            assert_int_equal(p->sequence_flags, 2);
        }
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT) {
            events++;
            /* Interned, never inline, for static names. */
            if (p->track_event->type != PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_SLICE_END &&
                p->track_event->type != PERFETTO__PROTOS__TRACK_EVENT__TYPE__TYPE_COUNTER)
                assert_int_equal(p->track_event->n_category_iids, 1);
        }
    }
    assert_true(firsts >= 2); /* main thread and the flow thread */
    assert_true(events > 10);
    perfetto__protos__trace__free_unpacked(tr, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scoped_slices_nest),
        cmocka_unit_test(test_begin_end_instant_chromium),
        cmocka_unit_test(test_annotation_types),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_flows_across_threads),
        cmocka_unit_test(test_named_tracks_and_dynamic_names),
        cmocka_unit_test(test_category_selection),
        cmocka_unit_test(test_sequence_wire_format),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
