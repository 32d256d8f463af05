/*
 * lib_service_test.c - libtracebpf against the real traced-bpf daemon on
 * private sockets: events round-trip through shared memory, CommitData,
 * the central buffer and ReadBuffers, and decode to what was emitted;
 * TrackEventConfig selects categories; many threads lose nothing when the
 * buffer suffices and count exactly what they drop; the library reconnects
 * after a service restart; a forked child never writes into the parent's
 * shared memory; a category registered while connected reaches the
 * service's data source list at once and records in a running session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "daemon_util.h"
#include "common/consumer_client.h"
#include "producers/userspace/te_decode.h"
#include "tracebpf/tracebpf.h"

TRACEBPF_DEFINE_CATEGORY(app, "app", "app events", NULL);
TRACEBPF_DEFINE_CATEGORY(net, "net", "network events", NULL);

/* The library finds the daemon through the environment (export_env). */
static const struct td_opts daemon_opts = {.tag = "lib-svc", .export_env = true};
static struct td_daemon daemon_;
static int main_argc;
static char **main_argv;

static bool wait_for(bool (*cond)(void), int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (cond())
            return true;
        td_sleep_ms(5);
    }
    return cond();
}

static bool is_connected(void)
{
    TRACEBPF_OPTS(tracebpf_stats, s);

    tracebpf_get_stats(&s);
    return s.connected;
}

static bool is_recording(void)
{
    TRACEBPF_OPTS(tracebpf_stats, s);

    tracebpf_get_stats(&s);
    return s.recording;
}

static int setup(void **state)
{
    assert_int_equal(td_start(&daemon_, &daemon_opts), 0);
    assert_int_equal(tracebpf_init(NULL), 0);
    assert_true(wait_for(is_connected, 5000));
    return 0;
}

static int teardown(void **state)
{
    tracebpf_shutdown();
    td_cleanup(&daemon_, false);
    return 0;
}

/* A session recording track_event with the given category lists. */
struct session {
    struct tb_cc *cc;
    Perfetto__Protos__TraceConfig cfg;
    Perfetto__Protos__TraceConfig__BufferConfig buf, *bufs[1];
    Perfetto__Protos__TraceConfig__DataSource ds, *dss[1];
    Perfetto__Protos__DataSourceConfig dsc;
    Perfetto__Protos__TrackEventConfig te;
};

static void session_start(struct session *s, char **enabled, size_t ne, char **disabled, size_t nd)
{
    memset(s, 0, sizeof(*s));
    perfetto__protos__trace_config__init(&s->cfg);
    perfetto__protos__trace_config__buffer_config__init(&s->buf);
    perfetto__protos__trace_config__data_source__init(&s->ds);
    perfetto__protos__data_source_config__init(&s->dsc);
    perfetto__protos__track_event_config__init(&s->te);
    s->buf.has_size_kb = true;
    s->buf.size_kb = 64 * 1024;
    s->bufs[0] = &s->buf;
    s->cfg.n_buffers = 1;
    s->cfg.buffers = s->bufs;
    s->dsc.name = "track_event";
    s->te.enabled_categories = enabled;
    s->te.n_enabled_categories = ne;
    s->te.disabled_categories = disabled;
    s->te.n_disabled_categories = nd;
    s->dsc.track_event_config = &s->te;
    s->ds.config = &s->dsc;
    s->dss[0] = &s->ds;
    s->cfg.n_data_sources = 1;
    s->cfg.data_sources = s->dss;
    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &s->cc), 0);
    assert_int_equal(tb_cc_enable(s->cc, &s->cfg, -1), 0);
    assert_true(wait_for(is_recording, 5000));
}

struct collect {
    uint8_t *p;
    size_t len, cap;
};

static int collect_packet(void *ctx, const uint8_t *pkt, size_t len)
{
    struct collect *c = ctx;
    uint8_t hdr[16];
    size_t n = 0;
    uint64_t v = len;

    hdr[n++] = 0x0A;
    do {
        hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    while (c->len + n + len > c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1 << 20;
        c->p = realloc(c->p, c->cap);
        assert_non_null(c->p);
    }
    memcpy(c->p + c->len, hdr, n);
    memcpy(c->p + c->len + n, pkt, len);
    c->len += n + len;
    return 0;
}

/* Stop the session, read everything back, decode. */
static struct tbl_decoded *session_finish(struct session *s)
{
    struct collect c = {0};
    struct tbl_decoded *d;
    bool done = false;

    assert_int_equal(tracebpf_flush(1000), 0);
    assert_int_equal(tb_cc_disable(s->cc, 5000), 0);
    for (int i = 0; i < 200 && !done; i++)
        tb_cc_wait(s->cc, 50, &done);
    assert_true(done);
    assert_int_equal(tb_cc_read_buffers_cb(s->cc, collect_packet, &c, 10000, NULL), 0);
    tb_cc_free(s->cc);
    assert_int_equal(tbl_decode(c.p, c.len, &d), 0);
    free(c.p);
    assert_int_equal(d->unresolved, 0);
    assert_false(is_recording());
    return d;
}

static size_t find(const struct tbl_decoded *d, const char *name)
{
    for (size_t i = 0; i < d->nev; i++)
        if (d->ev[i].name && !strcmp(d->ev[i].name, name))
            return i;
    return (size_t)-1;
}

static void *peer(void *arg)
{
    TRACE_EVENT(net, "recv", TRACEBPF_TERMINATING_FLOW(*(uint64_t *)arg),
                TRACEBPF_ARG("bytes", 512u));
    return NULL;
}

static void test_round_trip(void **state)
{
    uint64_t flow = tracebpf_flow_process_scoped(7);
    struct session s;
    struct tbl_decoded *d;
    pthread_t th;
    size_t i, j;

    session_start(&s, NULL, 0, NULL, 0);
    {
        TRACE_EVENT(app, "frame", TRACEBPF_ARG("n", 1), TRACEBPF_ARG("label", "first"));
        TRACE_EVENT(net, "send", TRACEBPF_FLOW(flow), TRACEBPF_ARG("ok", (bool)true));
        TRACE_COUNTER(app, "queue", 12);
        TRACE_COUNTER(app, "load", 0.75);
    }
    assert_int_equal(pthread_create(&th, NULL, peer, &flow), 0);
    pthread_join(th, NULL);
    d = session_finish(&s);

    i = find(d, "frame");
    assert_true(i != (size_t)-1 && i + 5 < d->nev);
    assert_string_equal(d->ev[i].cat, "app");
    assert_int_equal(d->ev[i].type, TRACEBPF_EVENT_SLICE_BEGIN);
    assert_int_equal(d->ev[i].nannots, 2);
    assert_string_equal(d->ev[i].annots[0].name, "n");
    assert_int_equal(d->ev[i].annots[0].v.i, 1);
    assert_string_equal(d->ev[i].annots[1].v.s, "first");
    assert_string_equal(d->ev[i + 1].name, "send");
    assert_string_equal(d->ev[i + 1].cat, "net");
    assert_int_equal(d->ev[i + 1].flows[0], flow);
    assert_true(d->ev[i + 1].annots[0].v.b);
    assert_int_equal(d->ev[i + 2].type, TRACEBPF_EVENT_COUNTER);
    assert_int_equal(d->ev[i + 2].ci, 12);
    assert_string_equal(tbl_decoded_track(d, d->ev[i + 2].track_uuid)->name, "queue");
    assert_true(d->ev[i + 3].counter_is_double && d->ev[i + 3].cd == 0.75);
    assert_int_equal(d->ev[i + 4].type, TRACEBPF_EVENT_SLICE_END); /* send */
    assert_int_equal(d->ev[i + 5].type, TRACEBPF_EVENT_SLICE_END); /* frame */
    j = find(d, "recv");
    assert_true(j != (size_t)-1);
    assert_int_equal(d->ev[j].term_flows[0], flow);
    assert_int_equal(d->ev[j].annots[0].v.u, 512);
    assert_int_not_equal(d->ev[j].seq, d->ev[i].seq);
    assert_int_equal(tbl_decoded_track(d, d->ev[i].track_uuid)->pid, getpid());
    /* The process track carries the command line, argument by argument. */
    for (j = 0; j < d->ntracks && !d->tracks[j].is_process; j++)
        ;
    assert_true(j < d->ntracks);
    assert_int_equal(d->tracks[j].ncmdline, main_argc);
    for (int k = 0; k < main_argc; k++)
        assert_string_equal(d->tracks[j].cmdline[k], main_argv[k]);
    tbl_decoded_free(d);
}

static void test_config_selects_categories(void **state)
{
    char *en[] = {"net"}, *dis[] = {"*"};
    struct session s;
    struct tbl_decoded *d;

    session_start(&s, en, 1, dis, 1);
    assert_false(TRACEBPF_ENABLED(app));
    assert_true(TRACEBPF_ENABLED(net));
    TRACE_EVENT_INSTANT(app, "app_hidden");
    TRACE_EVENT_INSTANT(net, "net_shown");
    d = session_finish(&s);
    assert_true(find(d, "app_hidden") == (size_t)-1);
    assert_true(find(d, "net_shown") != (size_t)-1);
    tbl_decoded_free(d);
    assert_false(TRACEBPF_ENABLED(net)); /* stopped: all off */
}

/*
 * The categories the service lists for our track_event data source
 * (QueryServiceState); 1 if @name is among them, 0 if not, -1 if the data
 * source is missing.
 */
static int service_lists_category(const char *name)
{
    Perfetto__Protos__TracingServiceState *st = NULL;
    struct tb_cc *cc;
    int found = -1;

    assert_int_equal(tb_cc_connect(daemon_.csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_query_state(cc, 5000, &st), 0);
    for (size_t i = 0; i < st->n_data_sources; i++) {
        const Perfetto__Protos__DataSourceDescriptor *d = st->data_sources[i]->ds_descriptor;

        if (!d || !d->name || strcmp(d->name, "track_event") || !d->track_event_descriptor)
            continue;
        found = 0;
        for (size_t j = 0; j < d->track_event_descriptor->n_available_categories; j++)
            if (!strcmp(d->track_event_descriptor->available_categories[j]->name, name))
                found = 1;
    }
    perfetto__protos__tracing_service_state__free_unpacked(st, NULL);
    tb_cc_free(cc);
    return found;
}

static bool late_listed(void)
{
    return service_lists_category("late") == 1;
}

static bool late_gone(void)
{
    return service_lists_category("late") == 0;
}

/* Registered by hand (as a plugin would), not before main(). */
static struct tracebpf_category tracebpf_cat_late = {
    .name = "late", .description = "registered after connecting", .tags = "plugin"};

static void test_late_category(void **state)
{
    TRACEBPF_OPTS(tracebpf_stats, st);
    struct session s;
    struct tbl_decoded *d;
    uint64_t conns;
    size_t i;

    tracebpf_get_stats(&st);
    conns = st.connections;
    assert_int_equal(service_lists_category("app"), 1);
    assert_int_equal(service_lists_category("late"), 0);

    session_start(&s, NULL, 0, NULL, 0);
    assert_int_equal(tracebpf_category_register(TRACEBPF_CATEGORY(late)), 0);
    assert_true(TRACEBPF_ENABLED(late)); /* the running session selects everything */
    assert_true(wait_for(late_listed, 2000));
    TRACE_EVENT_INSTANT(late, "late_event");
    d = session_finish(&s);
    i = find(d, "late_event");
    assert_true(i != (size_t)-1);
    assert_string_equal(d->ev[i].cat, "late");
    tbl_decoded_free(d);

    tracebpf_category_unregister(TRACEBPF_CATEGORY(late));
    assert_false(TRACEBPF_ENABLED(late));
    /* Taken off the service's list too, as a dlclose()d plugin's would be. */
    assert_true(wait_for(late_gone, 2000));
    assert_int_equal(service_lists_category("app"), 1);
    /* Announced on the live connection, not through a reconnect. */
    tracebpf_get_stats(&st);
    assert_int_equal(st.connections, conns);
}

#define NTHREADS 4

struct burst {
    unsigned n;
    int idx;
};

static void *burst_thread(void *arg)
{
    struct burst *b = arg;

    for (unsigned i = 0; i < b->n; i++)
        TRACE_EVENT_INSTANT(app, "burst", TRACEBPF_ARG("i", i), TRACEBPF_ARG("t", b->idx));
    return NULL;
}

static void run_burst(unsigned per, uint64_t *in_trace, uint64_t *dropped, size_t *marks)
{
    TRACEBPF_OPTS(tracebpf_stats, before);
    TRACEBPF_OPTS(tracebpf_stats, after);
    struct burst b[NTHREADS];
    pthread_t th[NTHREADS];
    struct session s;
    struct tbl_decoded *d;

    session_start(&s, NULL, 0, NULL, 0);
    tracebpf_get_stats(&before);
    for (int i = 0; i < NTHREADS; i++) {
        b[i] = (struct burst){per, i};
        assert_int_equal(pthread_create(&th[i], NULL, burst_thread, &b[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    d = session_finish(&s);
    tracebpf_get_stats(&after);
    *in_trace = 0;
    for (size_t i = 0; i < d->nev; i++)
        if (d->ev[i].name && !strcmp(d->ev[i].name, "burst"))
            (*in_trace)++;
    *dropped = after.events_dropped - before.events_dropped;
    *marks = d->dropped_marks;
    assert_int_equal(after.events_written - before.events_written, *in_trace);
    tbl_decoded_free(d);
}

static void test_threads_lose_nothing(void **state)
{
    uint64_t in_trace, dropped;
    size_t marks;

    /* 4 x 500 events of ~40 bytes fit the 256 KiB SMB even if the service
     * drained nothing meanwhile. */
    run_burst(500, &in_trace, &dropped, &marks);
    assert_int_equal(dropped, 0);
    assert_int_equal(in_trace, NTHREADS * 500);
    assert_int_equal(marks, 0);
}

static void test_threads_count_drops(void **state)
{
    uint64_t in_trace, dropped;
    size_t marks;

    /* Far more than 256 KiB of shared memory at once: whatever cannot be
     * written is counted, event for event. */
    run_burst(50000, &in_trace, &dropped, &marks);
    assert_int_equal(in_trace + dropped, (uint64_t)NTHREADS * 50000);
    if (dropped)
        assert_true(marks > 0);
    print_message("burst: %llu in trace, %llu dropped, %zu loss marks\n",
                  (unsigned long long)in_trace, (unsigned long long)dropped, marks);
}

static void test_fork_child_stays_quiet(void **state)
{
    struct session s;
    struct tbl_decoded *d;
    int status;
    pid_t child;

    session_start(&s, NULL, 0, NULL, 0);
    TRACE_EVENT_INSTANT(app, "parent_before");
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* Recording is off in the child until it initialises again. */
        if (TRACEBPF_ENABLED(app))
            _exit(3);
        for (int i = 0; i < 10000; i++)
            TRACE_EVENT_INSTANT(app, "child_event");
        tracebpf_emit(TRACEBPF_CATEGORY(app), TRACEBPF_EVENT_INSTANT, "child_forced", NULL, 0);
        _exit(0);
    }
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    TRACE_EVENT_INSTANT(app, "parent_after");
    d = session_finish(&s);
    assert_true(find(d, "parent_before") != (size_t)-1);
    assert_true(find(d, "parent_after") != (size_t)-1);
    assert_true(find(d, "child_event") == (size_t)-1);
    assert_true(find(d, "child_forced") == (size_t)-1);
    tbl_decoded_free(d);
}

static void test_service_restart(void **state)
{
    TRACEBPF_OPTS(tracebpf_stats, st);
    struct session s;
    struct tbl_decoded *d;
    uint64_t conns;

    tracebpf_get_stats(&st);
    conns = st.connections;
    td_stop(&daemon_);
    for (int i = 0; i < 200 && is_connected(); i++)
        td_sleep_ms(10);
    assert_false(is_connected());
    TRACE_EVENT_INSTANT(app, "while_down"); /* nowhere to go: ignored */
    /* Same sockets: the library only knows those. */
    assert_int_equal(td_launch(&daemon_, &daemon_opts), 0);
    /* Back-off starts at 1 s after the first failed attempt. */
    assert_true(wait_for(is_connected, 15000));
    tracebpf_get_stats(&st);
    assert_true(st.connections > conns);
    session_start(&s, NULL, 0, NULL, 0);
    TRACE_EVENT_INSTANT(app, "after_restart");
    d = session_finish(&s);
    assert_true(find(d, "after_restart") != (size_t)-1);
    assert_true(find(d, "while_down") == (size_t)-1);
    tbl_decoded_free(d);
}

int main(int argc, char **argv)
{
    main_argc = argc;
    main_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_config_selects_categories),
        cmocka_unit_test(test_late_category),
        cmocka_unit_test(test_threads_lose_nothing),
        cmocka_unit_test(test_threads_count_drops),
        cmocka_unit_test(test_fork_child_stays_quiet),
        cmocka_unit_test(test_service_restart),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
