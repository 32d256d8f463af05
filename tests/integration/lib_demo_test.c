/*
 * lib_demo_test.c - an unmodified instrumented program (the demo) records
 * standalone just by setting TRACEBPF_OUTPUT: the .pftrace it writes at
 * exit decodes to its slices, counters and cross-thread flows; a .json
 * name gives Chrome JSON that python3's json module reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "producers/userspace/te_decode.h"

static char demo[512], out[256];

static void run_demo(const char *output)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("TRACEBPF_OUTPUT", output, 1);
        execl(demo, demo, "1", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int setup(void **state)
{
    const char *bd = getenv("TB_TEST_BUILD_DIR");

    snprintf(demo, sizeof(demo), "%s/producers/userspace/tracebpf_demo", bd ? bd : ".");
    return access(demo, X_OK);
}

static const char *thread_of(const struct tbl_decoded *d, const struct tbl_devent *e)
{
    const struct tbl_dtrack *t = tbl_decoded_track(d, e->track_uuid);

    return t && t->name ? t->name : "";
}

static void test_demo_pftrace(void **state)
{
    size_t frames = 0, items = 0, linked = 0, depth = 0, verbose = 0, batches = 0;
    struct tbl_decoded *d;
    uint8_t *buf;
    long len;
    FILE *f;

    snprintf(out, sizeof(out), "/tmp/lib_demo_test.%d.pftrace", getpid());
    run_demo(out);
    f = fopen(out, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    unlink(out);
    assert_int_equal(tbl_decode(buf, (size_t)len, &d), 0);
    assert_int_equal(d->unresolved, 0);
    assert_int_equal(d->dropped_marks, 0);
    for (size_t i = 0; i < d->nev; i++) {
        const struct tbl_devent *e = &d->ev[i];

        if (e->name && !strcmp(e->name, "frame")) {
            frames++;
            assert_string_equal(thread_of(d, e), "producer");
        } else if (e->name && !strcmp(e->name, "batch")) {
            batches++;
            assert_string_equal(thread_of(d, e), "batches");
        } else if (e->name && !strcmp(e->name, "process_item")) {
            items++;
            assert_non_null(strstr(thread_of(d, e), "worker-"));
            assert_int_equal(e->nterm_flows, 1);
            /* The flow was started by an enqueue on the producer thread. */
            for (size_t j = 0; j < i; j++) {
                if (d->ev[j].nflows && d->ev[j].flows[0] == e->term_flows[0]) {
                    assert_string_equal(d->ev[j].name, "enqueue");
                    assert_int_not_equal(d->ev[j].seq, e->seq);
                    linked++;
                    break;
                }
            }
        } else if (e->name && !strcmp(e->name, "checkpoint")) {
            verbose++;
        } else if (e->type == TRACEBPF_EVENT_COUNTER && !strcmp(thread_of(d, e), "queue_depth")) {
            depth++;
        }
    }
    print_message("demo: %zu frames, %zu batches, %zu items (%zu linked), %zu counter values\n",
                  frames, batches, items, linked, depth);
    assert_true(frames > 50);
    assert_int_equal(batches, frames);
    assert_true(items > 100);
    assert_int_equal(linked, items);
    assert_true(depth > items);
    assert_int_equal(verbose, 0); /* tagged "debug": off by default */
    tbl_decoded_free(d);
    free(buf);
}

static void test_demo_json(void **state)
{
    char cmd[1024];

    snprintf(out, sizeof(out), "/tmp/lib_demo_test.%d.json", getpid());
    run_demo(out);
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys; t=json.load(open(\"%s\"))[\"traceEvents\"]; "
             "ph=[e[\"ph\"] for e in t]; "
             "sys.exit(0 if ph.count(\"B\")==ph.count(\"E\")>100 and \"C\" in ph and "
             "ph.count(\"s\")>0 and ph.count(\"f\")>0 and "
             "any(e.get(\"name\")==\"thread_name\" and e[\"args\"][\"name\"]==\"producer\" "
             "for e in t) else 1)'",
             out);
    assert_int_equal(system(cmd), 0);
    unlink(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_pftrace),
        cmocka_unit_test(test_demo_json),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
