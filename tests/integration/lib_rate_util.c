/*
 * lib_rate_util.c - the private daemon, session, paced emitters and packet
 * counting that lib_rate_test and lib_service_bench share (see the header).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/consumer_client.h"
#include "lib_rate_util.h"
#include "perfetto/trace/trace_stats.pb-c.h"
#include "tracebpf/tracebpf.h"

TRACEBPF_DEFINE_CATEGORY(lr_rate, "rate", "paced load", NULL);

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lr_daemon_path(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len;

    if (getenv("TB_TEST_BUILD_DIR")) {
        td_build_path(out, n, "service/traced-bpf");
        return;
    }
    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = 0;
    /* <build>/tests/<exe> */
    snprintf(out, n, "%s/../service/traced-bpf", dirname(exe));
}

int lr_daemon_start(struct lr_daemon *d, const char *bin)
{
    const struct td_opts o = {.tag = "lib-rate", .export_env = true, .bin = bin};

    return td_start(&d->td, &o);
}

void lr_daemon_stop(struct lr_daemon *d)
{
    td_cleanup(&d->td, false);
}

bool lr_wait_lib(bool recording, int ms)
{
    TRACEBPF_OPTS(tracebpf_stats, s);

    for (int i = 0; i <= ms / 5; i++) {
        tracebpf_get_stats(&s);
        if (recording ? s.recording : s.connected)
            return true;
        td_sleep_ms(5);
    }
    return false;
}

int lr_session_start(const char *csock, uint32_t buffer_kb, struct tb_cc **out)
{
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig buf =
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__DataSource ds =
        PERFETTO__PROTOS__TRACE_CONFIG__DATA_SOURCE__INIT;
    Perfetto__Protos__DataSourceConfig dsc = PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig *bufs[1] = {&buf};
    Perfetto__Protos__TraceConfig__DataSource *dss[1] = {&ds};
    struct tb_cc *cc = NULL;
    int err;

    buf.has_size_kb = true;
    buf.size_kb = buffer_kb;
    cfg.n_buffers = 1;
    cfg.buffers = bufs;
    dsc.name = "track_event";
    ds.config = &dsc;
    cfg.n_data_sources = 1;
    cfg.data_sources = dss;
    err = tb_cc_connect(csock, 5000, &cc);
    if (!err)
        err = tb_cc_enable(cc, &cfg, -1);
    if (!err && !lr_wait_lib(true, 5000))
        err = -ETIMEDOUT;
    if (err) {
        tb_cc_free(cc);
        return err;
    }
    *out = cc;
    return 0;
}

struct reader {
    struct lr_count *c;
    uint8_t *p;
    size_t len, cap;
    bool keep;
};

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;

        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static void take_stats(struct lr_count *c, const uint8_t *p, size_t len)
{
    Perfetto__Protos__TraceStats *st = perfetto__protos__trace_stats__unpack(NULL, len, p);

    if (!st)
        return;
    c->has_stats = true;
    c->chunks_discarded = st->chunks_discarded;
    c->patches_discarded = st->patches_discarded;
    c->patches_failed = c->abi_violations = c->readaheads_failed = 0;
    c->chunks_overwritten = c->writer_packet_loss = 0;
    for (size_t i = 0; i < st->n_buffer_stats; i++) {
        const Perfetto__Protos__TraceStats__BufferStats *b = st->buffer_stats[i];

        c->chunks_discarded += b->chunks_discarded;
        c->patches_failed += b->patches_failed;
        c->abi_violations += b->abi_violations;
        c->readaheads_failed += b->readaheads_failed;
        c->chunks_overwritten += b->chunks_overwritten;
        c->writer_packet_loss += b->trace_writer_packet_loss;
    }
    perfetto__protos__trace_stats__free_unpacked(st, NULL);
}

/* Only the top-level fields of a TracePacket matter here. */
static void count_packet(struct lr_count *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint64_t key, v;

    c->packets++;
    c->bytes += len;
    while (p < end && varint(&p, end, &key)) {
        switch (key & 7) {
        case 0:
            if (!varint(&p, end, &v))
                return;
            if (key >> 3 == 42 && v) {
                c->dropped_marks++;
                c->dropped_bits |= (uint32_t)v;
            }
            break;
        case 1:
            p += 8;
            break;
        case 2:
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p))
                return;
            if (key >> 3 == 11)
                c->track_events++;
            else if (key >> 3 == 35)
                take_stats(c, p, (size_t)v);
            p += v;
            break;
        case 5:
            p += 4;
            break;
        default:
            return;
        }
    }
}

static int on_packet(void *ctx, const uint8_t *pkt, size_t len)
{
    struct reader *r = ctx;
    uint8_t hdr[11];
    size_t n = 0;
    uint64_t v = len;

    count_packet(r->c, pkt, len);
    if (!r->keep)
        return 0;
    hdr[n++] = 0x0A;
    do {
        hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    if (r->len + n + len > r->cap) {
        size_t cap = r->cap ? r->cap : 1 << 20;
        void *np;

        while (r->len + n + len > cap)
            cap *= 2;
        np = realloc(r->p, cap);
        if (!np)
            return -ENOMEM;
        r->p = np;
        r->cap = cap;
    }
    memcpy(r->p + r->len, hdr, n);
    memcpy(r->p + r->len + n, pkt, len);
    r->len += n + len;
    return 0;
}

int lr_session_finish(struct tb_cc *cc, struct lr_count *c, uint8_t **keep, size_t *keep_len)
{
    struct reader r = {.c = c, .keep = keep != NULL};
    bool done = false;
    int err;

    memset(c, 0, sizeof(*c));
    tracebpf_flush(2000);
    err = tb_cc_disable(cc, 5000);
    for (int i = 0; !err && i < 400 && !done; i++)
        err = tb_cc_wait(cc, 50, &done);
    if (!err && !done)
        err = -ETIMEDOUT;
    if (!err)
        err = tb_cc_read_buffers_cb(cc, on_packet, &r, 60000, NULL);
    tb_cc_free(cc);
    if (err || !keep) {
        free(r.p);
        return err;
    }
    *keep = r.p;
    *keep_len = r.len;
    return 0;
}

static void emit_burst(enum lr_kind kind, uint64_t first, unsigned n)
{
    switch (kind) {
    case LR_INSTANT:
        for (unsigned i = 0; i < n; i++)
            TRACE_EVENT_INSTANT(lr_rate, "tick");
        break;
    case LR_INSTANT_INDEXED:
        for (unsigned i = 0; i < n; i++)
            TRACE_EVENT_INSTANT(lr_rate, "tick", TRACEBPF_ARG("i", first + i));
        break;
    case LR_SLICE:
        /* n events: n / 2 scopes */
        for (unsigned i = 0; i < n / 2; i++) {
            TRACE_EVENT(lr_rate, "slice");
        }
        break;
    case LR_COUNTER:
        for (unsigned i = 0; i < n; i++)
            TRACE_COUNTER(lr_rate, "counter", (int64_t)(first + i));
        break;
    }
}

void *lr_emit_thread(void *arg)
{
    struct lr_emitter *e = arg;
    uint64_t total = e->rate * e->duration_ns / 1000000000ull;
    unsigned burst = e->burst ? e->burst : 64;
    uint64_t catchup = e->max_catchup_ns ? e->max_catchup_ns : 1000000;
    uint64_t start, t0, due_at, now, c0, done = 0;

    if (e->kind == LR_SLICE)
        burst += burst & 1;
    total -= total % (e->kind == LR_SLICE ? 2 : 1);
    pthread_barrier_wait(e->start);
    start = t0 = clock_ns(CLOCK_BOOTTIME);
    while (done < total) {
        unsigned n = total - done < burst ? (unsigned)(total - done) : burst;

        /* The last event of the burst is due at t0 + (done + n) / rate. */
        due_at = t0 + (uint64_t)((double)(done + n) * 1e9 / (double)e->rate);
        do
            now = clock_ns(CLOCK_BOOTTIME);
        while (now < due_at);
        if (now - due_at > e->max_lag_ns)
            e->max_lag_ns = now - due_at;
        if (now - due_at > catchup) {
            e->shifted_ns += now - due_at;
            t0 += now - due_at;
        }
        c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        emit_burst(e->kind, done, n);
        e->burst_cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
        done += n;
    }
    e->events = done;
    e->wall_ns = clock_ns(CLOCK_BOOTTIME) - start;
    return NULL;
}

int lr_run_emitters(struct lr_emitter *em, int n, enum lr_kind kind, uint64_t total_rate,
                    uint64_t duration_ns, unsigned burst, uint64_t max_catchup_ns)
{
    pthread_barrier_t bar;
    pthread_t th[16];
    int err = 0, started = 0;

    if (n < 1 || n > 16)
        return -EINVAL;
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        em[i] = (struct lr_emitter){.kind = kind,
                                    .rate = total_rate / (uint64_t)n,
                                    .duration_ns = duration_ns,
                                    .burst = burst,
                                    .max_catchup_ns = max_catchup_ns,
                                    .start = &bar};
    }
    for (; started < n; started++) {
        err = -pthread_create(&th[started], NULL, lr_emit_thread, &em[started]);
        if (err)
            break;
    }
    if (err) {
        /* Threads already waiting on the barrier would wait forever. */
        fprintf(stderr, "lib_rate: pthread_create: %s\n", strerror(-err));
        abort();
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    return err;
}
