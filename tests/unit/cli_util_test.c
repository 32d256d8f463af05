/*
 * cli_util_test.c - the duration and size arguments of tracebpf record
 * ("-t 10s", "-b 64mb"): accepted spellings, rejected junk, overflow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer/cli.h"

#include <errno.h>
#include <string.h>

static void test_durations(void **state)
{
    uint64_t ms;

    assert_int_equal(tb_cli_parse_duration_ms("10s", &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(tb_cli_parse_duration_ms("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(tb_cli_parse_duration_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(tb_cli_parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(tb_cli_parse_duration_ms("3S", &ms), 0);
    assert_int_equal(ms, 3000);
}

static void test_bad_durations(void **state)
{
    static const char *const bad[] = {"10",
                                      "",
                                      "s",
                                      "-1s",
                                      "1.5s",
                                      "10 s",
                                      "10sec",
                                      "10ss",
                                      "99999999999999999999s",
                                      "9999999999999999h"};
    uint64_t ms = 77;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tb_cli_parse_duration_ms(bad[i], &ms), -EINVAL);
        assert_int_equal(ms, 77);
    }
    assert_int_equal(tb_cli_parse_duration_ms(NULL, &ms), -EINVAL);
}

static void test_sizes(void **state)
{
    uint64_t kb;

    assert_int_equal(tb_cli_parse_size_kb("64mb", &kb), 0);
    assert_int_equal(kb, 65536);
    assert_int_equal(tb_cli_parse_size_kb("64MB", &kb), 0);
    assert_int_equal(kb, 65536);
    assert_int_equal(tb_cli_parse_size_kb("512k", &kb), 0);
    assert_int_equal(kb, 512);
    assert_int_equal(tb_cli_parse_size_kb("1gb", &kb), 0);
    assert_int_equal(kb, 1024 * 1024);
    assert_int_equal(tb_cli_parse_size_kb("1b", &kb), 0);
    assert_int_equal(kb, 1); /* rounded up, never to an empty buffer */
    assert_int_equal(tb_cli_parse_size_kb("64", &kb), -EINVAL);
    assert_int_equal(tb_cli_parse_size_kb("64tb", &kb), -EINVAL);
    assert_int_equal(tb_cli_parse_size_kb("mb", &kb), -EINVAL);
    assert_int_equal(tb_cli_parse_size_kb("99999999999999gb", &kb), -EINVAL);
}

static void test_uint(void **state)
{
    uint64_t v;

    assert_int_equal(tb_cli_parse_uint("9001", 65535, &v), 0);
    assert_int_equal(v, 9001);
    assert_int_equal(tb_cli_parse_uint("65536", 65535, &v), -EINVAL);
    assert_int_equal(tb_cli_parse_uint("12x", 65535, &v), -EINVAL);
    assert_int_equal(tb_cli_parse_uint("", 65535, &v), -EINVAL);
}

static void test_human_bytes(void **state)
{
    char buf[32];

    assert_string_equal(tb_cli_human_bytes(512, buf, sizeof(buf)), "512 B");
    assert_string_equal(tb_cli_human_bytes(1536, buf, sizeof(buf)), "1.5 KiB");
    assert_string_equal(tb_cli_human_bytes(64ULL << 20, buf, sizeof(buf)), "64.0 MiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),   cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_sizes),       cmocka_unit_test(test_uint),
        cmocka_unit_test(test_human_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
