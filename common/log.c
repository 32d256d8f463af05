/*
 * log.c - the replaceable log sink behind tb_log(). Formats into a stack
 * buffer so a message is written with one call and lines from several
 * threads never interleave.
 */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static tb_log_sink_fn sink_fn;
static void *sink_ctx;
static enum tb_log_level max_level = TB_LOG_INFO;
static const char *prefix = "traced-bpf";

void tb_log_set_sink(tb_log_sink_fn fn, void *ctx)
{
    sink_fn = fn;
    sink_ctx = ctx;
}

void tb_log_set_level(enum tb_log_level level)
{
    max_level = level;
}

void tb_log_set_prefix(const char *p)
{
    prefix = p ? p : "traced-bpf";
}

void tb_log(enum tb_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char msg[1024];
    char line[1200];
    va_list ap;
    int n;

    if (level > max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (sink_fn) {
        sink_fn(level, msg, sink_ctx);
        return;
    }
    n = snprintf(line, sizeof(line), "%s: %s%s%s\n", prefix,
                 level == TB_LOG_INFO ? "" : names[level], level == TB_LOG_INFO ? "" : ": ", msg);
    if (n > (int)sizeof(line))
        n = sizeof(line);
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}
