/*
 * cli_util.c - helpers every tracebpf subcommand shares: one-line usage
 * errors, getopt state reset, and parsing of the duration and size
 * arguments users type ("10s", "64mb").
 */
#include "consumer/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int tb_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "tracebpf %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'tracebpf %s --help')\n", cmd);
    return TB_CLI_EXIT_USAGE;
}

int tb_cli_getopt_error(const char *cmd, int opt, char **argv)
{
    /* optind has moved past the offending word; name it as typed. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (opt == ':')
        return tb_cli_usage_error(cmd, "option '%s' needs a value", word);
    if (optopt && word[0] == '-' && word[1] != '-')
        return tb_cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return tb_cli_usage_error(cmd, "unknown option '%s'", word);
}

void tb_cli_getopt_reset(void)
{
    /* 0 rather than 1: glibc then also forgets its internal scan position. */
    optind = 0;
    opterr = 0;
    optopt = 0;
}

/* Splits "<digits><unit>" into a number and the unit string. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    uint64_t v = 0;
    const char *p = s;

    if (!s || !isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *num = v;
    *unit = p;
    return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a)
        return -EINVAL;
    *out = a * b;
    return 0;
}

int tb_cli_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000}};
    const char *unit;
    uint64_t n;
    size_t i;

    if (split_number(s, &n, &unit))
        return -EINVAL;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcasecmp(unit, units[i].unit))
            return mul_checked(n, units[i].ms, out);
    }
    return -EINVAL;
}

int tb_cli_parse_size_kb(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t bytes;
    } units[] = {{"b", 1},
                 {"k", 1024},
                 {"kb", 1024},
                 {"kib", 1024},
                 {"m", 1024 * 1024},
                 {"mb", 1024 * 1024},
                 {"mib", 1024 * 1024},
                 {"g", 1024 * 1024 * 1024ULL},
                 {"gb", 1024 * 1024 * 1024ULL},
                 {"gib", 1024 * 1024 * 1024ULL}};
    const char *unit;
    uint64_t n, bytes;
    size_t i;

    if (split_number(s, &n, &unit))
        return -EINVAL;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(unit, units[i].unit))
            continue;
        if (mul_checked(n, units[i].bytes, &bytes) || bytes > UINT64_MAX - 1023)
            return -EINVAL;
        *out = (bytes + 1023) / 1024;
        return 0;
    }
    return -EINVAL;
}

int tb_cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    const char *unit;
    uint64_t n;

    if (split_number(s, &n, &unit) || *unit || n > max)
        return -EINVAL;
    *out = n;
    return 0;
}

const char *tb_cli_human_bytes(uint64_t n, char *buf, unsigned long len)
{
    static const char *const suffix[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;

    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, suffix[i]);
    return buf;
}

int tb_cli_not_available(const char *cmd, const char *what)
{
    fprintf(stderr, "tracebpf %s: not available yet: %s\n", cmd, what);
    return TB_CLI_EXIT_FAIL;
}
