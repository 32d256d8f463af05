/*
 * export.h - the trace converters behind "tracebpf export": ftrace text
 * (tracefs "trace" file format), systrace (the same text inside catapult's
 * JSON envelope) and Chrome JSON trace events. Each reads the trace as a
 * stream and writes as it goes; memory is bounded by per-thread tables and
 * a fixed reorder window, not by the trace size.
 */
#ifndef TB_CONSUMER_EXPORT_H
#define TB_CONSUMER_EXPORT_H

#include "consumer/trace_reader.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Lines waiting to be sorted across CPUs are capped at this many bytes. */
#define TB_EXPORT_REORDER_BYTES (64u << 20)

/*
 * struct tb_line_sorter - restores global timestamp order of text lines that
 * arrive per CPU bundle: lines wait in a min-heap until the window is full,
 * then the oldest go out first.
 */
struct tb_line_sorter {
    struct tb_sorted_line *heap;
    size_t len, cap;
    size_t bytes;
    uint64_t seq;
    int (*emit)(void *ctx, const char *line, size_t len);
    void *ctx;
};

/* tb_line_sorter_init() - lines are handed to @emit in timestamp order. */
void tb_line_sorter_init(struct tb_line_sorter *s, int (*emit)(void *, const char *, size_t),
                         void *ctx);

/*
 * tb_line_sorter_add() - queue a copy of @line (NUL-terminated) at @ts.
 * Return: 0, -ENOMEM, or what @emit returned for a line it flushed.
 */
int tb_line_sorter_add(struct tb_line_sorter *s, uint64_t ts, const char *line);

/* tb_line_sorter_flush() - emit every queued line. Return: 0 or @emit's error. */
int tb_line_sorter_flush(struct tb_line_sorter *s);

/* tb_line_sorter_free() - drop queued lines without emitting them. */
void tb_line_sorter_free(struct tb_line_sorter *s);

/*
 * tb_export_ftrace() - write the kernel events (and app track events as
 * tracing_mark_write lines) of @r to @out as tracefs "trace" text.
 * @systrace: wrap the text as {"traceEvents":[],"systemTraceEvents":"..."}.
 * Return: 0, -EBADMSG for a broken trace (reason from
 * tb_trace_reader_error() or logged), -EIO when writing failed, -ENOMEM.
 */
int tb_export_ftrace(struct tb_trace_reader *r, FILE *out, bool systrace);

/*
 * tb_export_json() - write the app track events of @r as Chrome JSON trace
 * events (B/E/i/C/M, flows as s/f), with scheduler slices per CPU as X
 * events when @sched.
 * Return: as tb_export_ftrace().
 */
int tb_export_json(struct tb_trace_reader *r, FILE *out, bool sched);

#endif /* TB_CONSUMER_EXPORT_H */
