/*
 * export_sort.c - the bounded reorder window of the text exporters. Kernel
 * data arrives one CPU bundle at a time, so lines from different CPUs
 * overlap in time; a min-heap keyed by (timestamp, arrival) puts them back
 * in order, emitting the oldest whenever the window exceeds its byte cap.
 */
#include "consumer/export.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tb_sorted_line {
    uint64_t ts;
    uint64_t seq;
    char *line;
    size_t len;
};

void tb_line_sorter_init(struct tb_line_sorter *s, int (*emit)(void *, const char *, size_t),
                         void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->emit = emit;
    s->ctx = ctx;
}

static bool less(const struct tb_sorted_line *a, const struct tb_sorted_line *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

static void swap(struct tb_sorted_line *a, struct tb_sorted_line *b)
{
    struct tb_sorted_line t = *a;

    *a = *b;
    *b = t;
}

static int pop(struct tb_line_sorter *s)
{
    struct tb_sorted_line top = s->heap[0];
    size_t i = 0;
    int err;

    s->heap[0] = s->heap[--s->len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < s->len && less(&s->heap[l], &s->heap[m]))
            m = l;
        if (r < s->len && less(&s->heap[r], &s->heap[m]))
            m = r;
        if (m == i)
            break;
        swap(&s->heap[i], &s->heap[m]);
        i = m;
    }
    s->bytes -= top.len;
    err = s->emit(s->ctx, top.line, top.len);
    free(top.line);
    return err;
}

int tb_line_sorter_add(struct tb_line_sorter *s, uint64_t ts, const char *line)
{
    struct tb_sorted_line e = {.ts = ts, .seq = s->seq++};
    size_t i;
    int err;

    e.len = strlen(line);
    e.line = malloc(e.len + 1);
    if (!e.line)
        return -ENOMEM;
    memcpy(e.line, line, e.len + 1);
    if (s->len == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        struct tb_sorted_line *nh = realloc(s->heap, ncap * sizeof(*nh));

        if (!nh) {
            free(e.line);
            return -ENOMEM;
        }
        s->heap = nh;
        s->cap = ncap;
    }
    i = s->len++;
    s->heap[i] = e;
    while (i && less(&s->heap[i], &s->heap[(i - 1) / 2])) {
        swap(&s->heap[i], &s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    s->bytes += e.len;
    while (s->bytes > TB_EXPORT_REORDER_BYTES) {
        err = pop(s);
        if (err)
            return err;
    }
    return 0;
}

int tb_line_sorter_flush(struct tb_line_sorter *s)
{
    int err;

    while (s->len) {
        err = pop(s);
        if (err)
            return err;
    }
    return 0;
}

void tb_line_sorter_free(struct tb_line_sorter *s)
{
    size_t i;

    for (i = 0; i < s->len; i++)
        free(s->heap[i].line);
    free(s->heap);
    memset(s, 0, sizeof(*s));
}
