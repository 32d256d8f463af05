/*
 * service_cc_read_test.c - the consumer client's ReadBuffers limit is on
 * silence, not on the whole read: a ConsumerPort on a real socket (a forked
 * child running common/ipc_host) streams replies slowly, and the read into
 * a real file succeeds although it takes three times the limit; a service
 * that stalls part way fails the read with the packets and bytes already
 * written reported and exactly those whole records in the file; and
 * "tracebpf record" against a service lost part way keeps them as
 * FILE.partial and never writes FILE.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "common/event_loop.h"
#include "common/ipc_host.h"
#include "consumer/cli.h"
#include "consumer/record_run.h"
#include "perfetto/ipc/consumer_port.pb-c.h"

#define GAP_MS  100 /* between two replies of the fake service */
#define IDLE_MS 400 /* the client's limit */
#define PKT_LEN 3000

static char dir[256], sock[300];

/* ------------------------------------------------------------ fake service */

struct fake {
    struct tb_loop *loop;
    struct tb_ipc_conn *conn;
    uint64_t req, timer;
    unsigned sent, total, stall_after;
    bool hang_up; /* at stall_after: close the connection instead */
};

static void fill_packet(uint8_t *p, unsigned i)
{
    for (size_t k = 0; k < PKT_LEN; k++)
        p[k] = (uint8_t)(i * 31 + k);
}

/* One packet a reply, cut in two slices like a packet over a frame's size. */
static void send_next(void *ctx)
{
    Perfetto__Protos__ReadBuffersResponse resp = PERFETTO__PROTOS__READ_BUFFERS_RESPONSE__INIT;
    Perfetto__Protos__ReadBuffersResponse__Slice s[2], *sp[2] = {&s[0], &s[1]};
    struct fake *f = ctx;
    uint8_t pkt[PKT_LEN];
    bool last;

    if (f->sent == f->stall_after) {
        if (f->hang_up)
            tb_ipc_host_disconnect(f->conn);
        else
            return; /* stays silent, connection open */
        tb_loop_cancel_timer(f->loop, f->timer);
        return;
    }
    fill_packet(pkt, f->sent);
    for (int i = 0; i < 2; i++) {
        perfetto__protos__read_buffers_response__slice__init(&s[i]);
        s[i].has_data = s[i].has_last_slice_for_packet = true;
        s[i].data.data = pkt + i * (PKT_LEN / 2);
        s[i].data.len = PKT_LEN / 2;
        s[i].last_slice_for_packet = i == 1;
    }
    resp.n_slices = 2;
    resp.slices = sp;
    last = ++f->sent == f->total;
    tb_ipc_host_reply(f->conn, f->req, &resp.base, true, !last, -1);
    if (last)
        tb_loop_cancel_timer(f->loop, f->timer);
}

static void m_read_buffers(struct tb_ipc_call *call)
{
    struct fake *f = call->service_ctx;

    f->conn = call->conn;
    f->req = call->request_id;
    assert_int_equal(tb_loop_add_timer(f->loop, GAP_MS, GAP_MS, send_next, f, &f->timer), 0);
}

/* A session that is over at once: what "record" sees after duration_ms. */
static void m_enable(struct tb_ipc_call *call)
{
    Perfetto__Protos__EnableTracingResponse resp = PERFETTO__PROTOS__ENABLE_TRACING_RESPONSE__INIT;

    tb_ipc_host_reply(call->conn, call->request_id, &resp.base, true, false, -1);
}

static void m_reject(struct tb_ipc_call *call)
{
    tb_ipc_host_reply(call->conn, call->request_id, NULL, false, false, -1);
}

static const struct tb_ipc_method methods[] = {
    {"ReadBuffers", &perfetto__protos__read_buffers_request__descriptor, m_read_buffers},
    {"EnableTracing", &perfetto__protos__enable_tracing_request__descriptor, m_enable},
    {"QueryServiceState", &perfetto__protos__query_service_state_request__descriptor, m_reject},
    {"FreeBuffers", &perfetto__protos__free_buffers_request__descriptor, m_reject},
};

/* Serves @total packets, GAP_MS apart, going silent after @stall_after. */
static pid_t start_fake_mode(unsigned total, unsigned stall_after, bool hang_up)
{
    int ready[2];
    pid_t pid;
    char c;

    assert_int_equal(pipe(ready), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fake f = {.total = total, .stall_after = stall_after, .hang_up = hang_up};
        struct tb_ipc_host *host;

        close(ready[0]);
        if (tb_loop_new(&f.loop) || tb_ipc_host_new(f.loop, NULL, &host) ||
            tb_ipc_host_add_service(host, "ConsumerPort", methods,
                                    sizeof(methods) / sizeof(methods[0]), &f) ||
            tb_ipc_host_listen(host, sock))
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        tb_loop_run(f.loop);
        _exit(0);
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return pid;
}

static pid_t start_fake(unsigned total, unsigned stall_after)
{
    return start_fake_mode(total, stall_after, false);
}

static void stop_fake(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(sock);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/svc-ccread-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/consumer.sock", dir);
    return 0;
}

static int teardown(void **state)
{
    rmdir(dir);
    return 0;
}

/* ------------------------------------------------------------ checks */

/* Parses @path as a trace file; every record must be packet i in order. */
static unsigned check_file(const char *path, uint64_t size_expected)
{
    FILE *fp = fopen(path, "rb");
    uint8_t want[PKT_LEN], got[PKT_LEN], hdr[3];
    unsigned n = 0;
    struct stat st;

    assert_non_null(fp);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size_expected);
    while (fread(hdr, 1, 3, fp) == 3) {
        /* 0A, then PKT_LEN (3000) as a two-byte varint. */
        assert_int_equal(hdr[0], 0x0A);
        assert_int_equal(hdr[1] | (hdr[2] & 0x7f) << 7, PKT_LEN);
        assert_int_equal(fread(got, 1, PKT_LEN, fp), PKT_LEN);
        fill_packet(want, n);
        assert_memory_equal(got, want, PKT_LEN);
        n++;
    }
    assert_true(feof(fp));
    fclose(fp);
    return n;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ tests */

static void test_slow_read_outlasts_limit(void **state)
{
    const unsigned total = 12; /* 1.2 s of replies against a 0.4 s limit */
    char path[400];
    uint64_t packets = 0, bytes = 0, t0;
    struct tb_cc *cc;
    pid_t pid = start_fake(total, UINT32_MAX);
    FILE *fp;

    snprintf(path, sizeof(path), "%s/trace", dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(tb_cc_connect(sock, 5000, &cc), 0);
    t0 = now_ms();
    assert_int_equal(tb_cc_read_buffers(cc, fileno(fp), IDLE_MS, &packets, &bytes), 0);
    /* The read really took longer than one limit would have allowed. */
    assert_true(now_ms() - t0 >= 2 * IDLE_MS);
    fclose(fp);
    assert_int_equal(packets, total);
    assert_int_equal(bytes, (uint64_t)total * (3 + PKT_LEN));
    assert_int_equal(check_file(path, bytes), total);
    tb_cc_free(cc);
    stop_fake(pid);
    unlink(path);
}

static void test_stall_reports_what_was_written(void **state)
{
    char path[400];
    uint64_t packets = 0, bytes = 0, t0, took;
    struct tb_cc *cc;
    pid_t pid = start_fake(20, 5);
    FILE *fp;

    snprintf(path, sizeof(path), "%s/trace", dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(tb_cc_connect(sock, 5000, &cc), 0);
    t0 = now_ms();
    assert_int_equal(tb_cc_read_buffers(cc, fileno(fp), IDLE_MS, &packets, &bytes), -ETIMEDOUT);
    took = now_ms() - t0;
    /* Five replies, then the limit of silence after the last of them. */
    assert_true(took >= 5 * GAP_MS + IDLE_MS);
    assert_true(took < 5 * GAP_MS + IDLE_MS + 3000);
    fclose(fp);
    assert_int_equal(packets, 5);
    assert_int_equal(bytes, 5u * (3 + PKT_LEN));
    assert_int_equal(check_file(path, bytes), 5);
    tb_cc_free(cc);
    stop_fake(pid);
    unlink(path);
}

static void record_against_fake(unsigned total, unsigned hang_up_after, char *path, size_t len)
{
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    pid_t pid = start_fake_mode(total, hang_up_after, true);
    int rc;

    snprintf(path, len, "%s/rec.pftrace", dir);
    setenv("PERFETTO_CONSUMER_SOCK_NAME", sock, 1);
    rc = tb_record_run(&cfg, path);
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    stop_fake(pid);
    assert_int_equal(rc, hang_up_after < total ? TB_CLI_EXIT_FAIL : TB_CLI_EXIT_OK);
}

static void test_record_keeps_partial(void **state)
{
    char path[400], partial[420], tmp[420];
    struct stat st;

    record_against_fake(10, 4, path, sizeof(path));
    snprintf(partial, sizeof(partial), "%s.partial", path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* Nothing that looks whole, and the four packets that came are kept. */
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_not_equal(stat(tmp, &st), 0);
    assert_int_equal(check_file(partial, 4u * (3 + PKT_LEN)), 4);
    unlink(partial);
}

static void test_record_whole(void **state)
{
    char path[400], partial[420];
    struct stat st;

    record_against_fake(6, UINT32_MAX, path, sizeof(path));
    snprintf(partial, sizeof(partial), "%s.partial", path);
    assert_int_equal(check_file(path, 6u * (3 + PKT_LEN)), 6);
    assert_int_not_equal(stat(partial, &st), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_read_outlasts_limit),
        cmocka_unit_test(test_stall_reports_what_was_written),
        cmocka_unit_test(test_record_keeps_partial),
        cmocka_unit_test(test_record_whole),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
