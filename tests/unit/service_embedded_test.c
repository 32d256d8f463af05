/*
 * service_embedded_test.c - the in-process service (service/embedded.h)
 * answers a real consumer on its private socket, refuses a second service
 * on the same sockets, and cleans up after itself; consumer admission.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/consumer_client.h"
#include "service/embedded.h"
#include "service/ports.h"

static void test_embedded_roundtrip(void **state)
{
    struct tb_svc_embedded_opts opts = {0};
    Perfetto__Protos__TracingServiceState *ss;
    Perfetto__Protos__TraceStats *st;
    struct tb_svc_embedded *e, *e2;
    char csock[512];
    struct tb_cc *cc;
    struct stat sb;

    assert_int_equal(tb_svc_embedded_start(NULL, &e), 0);
    snprintf(csock, sizeof(csock), "%s", tb_svc_embedded_consumer_sock(e));
    assert_int_equal(stat(csock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0660);
    assert_int_equal(tb_cc_connect(csock, 5000, &cc), 0);
    assert_int_equal(tb_cc_query_state(cc, 5000, &ss), 0);
    assert_int_equal(ss->n_producers, 0);
    assert_int_equal(ss->num_sessions, 0);
    perfetto__protos__tracing_service_state__free_unpacked(ss, NULL);
    assert_int_equal(tb_cc_get_stats(cc, 5000, &st), 0);
    assert_int_equal(st->tracing_sessions, 0);
    perfetto__protos__trace_stats__free_unpacked(st, NULL);

    /* A second service on the same sockets is refused. */
    opts.producer_sock = tb_svc_embedded_producer_sock(e);
    opts.consumer_sock = csock;
    assert_int_equal(tb_svc_embedded_start(&opts, &e2), -EADDRINUSE);

    tb_cc_free(cc);
    tb_svc_embedded_stop(e);
    /* The private socket files are gone. */
    assert_int_not_equal(stat(csock, &sb), 0);
    assert_int_equal(tb_cc_connect(csock, 500, &cc), -ENOENT);
}

static void test_consumer_admission(void **state)
{
    assert_true(tb_svc_consumer_allowed(0));
    assert_true(tb_svc_consumer_allowed(geteuid()));
    /* "nobody" is neither root nor, on a test machine, in group tracebpf. */
    assert_false(tb_svc_consumer_allowed(65534));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_roundtrip),
        cmocka_unit_test(test_consumer_admission),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
