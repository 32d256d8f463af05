/*
 * log.h - the one logging sink every traced-bpf process writes through.
 *
 * Libraries never print directly: they call tb_log(), which goes to a
 * replaceable sink (stderr by default). Log once, where an error is handled,
 * naming the object and the value ("shm: chunk 12 of producer 3 ...").
 */
#ifndef TB_COMMON_LOG_H
#define TB_COMMON_LOG_H

#include <stdarg.h>

enum tb_log_level {
    TB_LOG_ERROR = 0,
    TB_LOG_WARN = 1,
    TB_LOG_INFO = 2,
    TB_LOG_DEBUG = 3,
};

/* A sink receives one formatted message (no trailing newline needed). */
typedef void (*tb_log_sink_fn)(enum tb_log_level level, const char *msg, void *ctx);

/*
 * tb_log_set_sink() - route messages to @fn (NULL restores stderr).
 * @ctx is passed back to @fn. Context: call before starting threads.
 */
void tb_log_set_sink(tb_log_sink_fn fn, void *ctx);

/* tb_log_set_level() - drop messages above @level (default TB_LOG_INFO). */
void tb_log_set_level(enum tb_log_level level);

/* tb_log_set_prefix() - program name printed before each stderr line. */
void tb_log_set_prefix(const char *prefix);

/* tb_log() - format and emit one message. Thread-safe. */
void tb_log(enum tb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tb_err(...)   tb_log(TB_LOG_ERROR, __VA_ARGS__)
#define tb_warn(...)  tb_log(TB_LOG_WARN, __VA_ARGS__)
#define tb_info(...)  tb_log(TB_LOG_INFO, __VA_ARGS__)
#define tb_debug(...) tb_log(TB_LOG_DEBUG, __VA_ARGS__)

#endif /* TB_COMMON_LOG_H */
