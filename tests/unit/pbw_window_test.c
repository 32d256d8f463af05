/*
 * pbw_window_test.c - pb_writer streaming over small windows: the same packet
 * written through windows of every size from 1 to 64 bytes is byte-identical
 * to the one written into a flat buffer once the windows are concatenated,
 * with and without moving pending size slots to patch entries (the way the
 * TraceWriter hands chunks off); callback failures leave handed-off windows
 * untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/pb_writer.h"

#define MEM_SIZE  16384
#define MAX_WIN   4096
#define MAX_PATCH 256
#define GUARD     0xEE

struct patch {
    size_t win;
    size_t off; /* from the window start, like a chunk payload offset */
    uint8_t data[4];
};

struct sink {
    struct tb_pbw w;
    size_t wsize;
    bool relocate;
    int fail_after; /* fail the Nth window request (0 = never) */
    size_t nwin;
    size_t win_off[MAX_WIN];
    size_t win_len[MAX_WIN];
    size_t npatch;
    struct patch patches[MAX_PATCH];
    size_t patch_cap;
    uint8_t mem[MEM_SIZE];
};

static uint8_t *reloc(void *ctx, uint8_t *slot)
{
    struct sink *s = ctx;
    struct patch *p;

    if (s->npatch >= s->patch_cap)
        return NULL;
    p = &s->patches[s->npatch++];
    p->win = s->nwin - 1;
    p->off = (size_t)(slot - (s->mem + s->win_off[p->win]));
    return p->data;
}

/* Windows are carved from mem with one guard byte between them. */
static int open_window(struct sink *s, uint8_t **cur, uint8_t **end)
{
    size_t off = s->nwin ? s->win_off[s->nwin - 1] + s->wsize + 1 : 0;

    if (s->nwin >= MAX_WIN || off + s->wsize > MEM_SIZE)
        return -ENOSPC;
    s->win_off[s->nwin] = off;
    s->win_len[s->nwin] = 0;
    s->nwin++;
    *cur = s->mem + off;
    *end = *cur + s->wsize;
    return 0;
}

static int next_cb(void *ctx, uint8_t **cur, uint8_t **end)
{
    struct sink *s = ctx;
    size_t k = s->nwin - 1;
    uint8_t *start = s->mem + s->win_off[k];

    s->win_len[k] = (size_t)(*cur - start);
    if (s->relocate) {
        int n = tb_pbw_relocate_slots(&s->w, start, start + s->wsize, reloc, s);

        if (n < 0)
            return n;
    }
    if (s->fail_after && (int)s->nwin >= s->fail_after)
        return -ENOBUFS;
    return open_window(s, cur, end);
}

static void sink_init(struct sink *s, size_t wsize, bool relocate)
{
    uint8_t *cur = NULL, *end = NULL;

    memset(s, 0, sizeof(*s));
    memset(s->mem, GUARD, sizeof(s->mem));
    s->wsize = wsize;
    s->relocate = relocate;
    s->patch_cap = MAX_PATCH;
    assert_int_equal(open_window(s, &cur, &end), 0);
    tb_pbw_init_stream(&s->w, cur, end, next_cb, s);
}

/* Apply patches, then concatenate the used part of every window. */
static size_t sink_reassemble(struct sink *s, uint8_t *out, size_t cap)
{
    size_t n = 0;

    s->win_len[s->nwin - 1] = (size_t)(s->w.cur - (s->mem + s->win_off[s->nwin - 1]));
    for (size_t i = 0; i < s->npatch; i++) {
        struct patch *p = &s->patches[i];

        assert_true(p->off + 4 <= s->win_len[p->win]);
        memcpy(s->mem + s->win_off[p->win] + p->off, p->data, 4);
    }
    for (size_t i = 0; i < s->nwin; i++) {
        assert_true(n + s->win_len[i] <= cap);
        memcpy(out + n, s->mem + s->win_off[i], s->win_len[i]);
        n += s->win_len[i];
        /* nothing was written past a window's end */
        if (i + 1 < s->nwin)
            assert_int_equal(s->mem[s->win_off[i] + s->wsize], GUARD);
    }
    return n;
}

static void write_flat(struct tb_pbw *w)
{
    static const uint8_t blob[70] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    tb_pbw_append_varint(w, 8, UINT64_C(0x1234567890abcdef));
    tb_pbw_append_int(w, 2, -5);
    tb_pbw_append_sint(w, 3, -1000);
    tb_pbw_append_fixed32(w, 4, 0xcafef00d);
    tb_pbw_append_double(w, 5, 1.5);
    tb_pbw_append_string(w, 6, "a comm name");
    tb_pbw_append_bytes(w, 7, blob, sizeof(blob));
    tb_pbw_append_varint(w, 300000, 1);
}

static void write_full(struct tb_pbw *w)
{
    write_flat(w);
    tb_pbw_begin_nested(w, 11);
    tb_pbw_append_varint(w, 9, 1);
    tb_pbw_begin_nested(w, 50);
    tb_pbw_append_string(w, 1, "outer");
    tb_pbw_begin_nested(w, 4);
    tb_pbw_append_string(w, 2, "deepest level string");
    tb_pbw_begin_packed(w, 9);
    for (int i = 0; i < 40; i++)
        tb_pbw_packed_sint(w, i * 1000 - 20000);
    tb_pbw_end_packed(w);
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    tb_pbw_append_fixed64(w, 12, 77);
    tb_pbw_end_nested(w);
    tb_pbw_begin_nested(w, 13); /* empty message */
    tb_pbw_end_nested(w);
    write_flat(w);
}

static size_t reference(void (*fn)(struct tb_pbw *), uint8_t *buf, size_t cap)
{
    struct tb_pbw w;

    tb_pbw_init_buf(&w, buf, cap);
    fn(&w);
    assert_int_equal(tb_pbw_error(&w), 0);
    return (size_t)tb_pbw_size(&w);
}

static void check_sizes(void (*fn)(struct tb_pbw *), size_t lo, size_t hi, bool relocate)
{
    static struct sink s;
    static uint8_t ref[4096], out[MEM_SIZE];
    size_t rlen = reference(fn, ref, sizeof(ref));

    for (size_t ws = lo; ws <= hi; ws++) {
        size_t n;

        sink_init(&s, ws, relocate);
        fn(&s.w);
        assert_int_equal(tb_pbw_error(&s.w), 0);
        assert_int_equal(tb_pbw_depth(&s.w), 0);
        assert_int_equal(tb_pbw_size(&s.w), rlen);
        n = sink_reassemble(&s, out, sizeof(out));
        if (n != rlen || memcmp(out, ref, n))
            fail_msg("window size %zu (relocate=%d): stream differs", ws, relocate);
        if (relocate && ws < rlen)
            assert_true(s.npatch > 0);
        if (!relocate)
            assert_int_equal(s.npatch, 0);
    }
}

static void test_flat_every_window_size(void **state)
{
    check_sizes(write_flat, 1, 64, false);
}

static void test_nested_every_window_size_in_place(void **state)
{
    check_sizes(write_full, 4, 64, false);
}

static void test_nested_every_window_size_patched(void **state)
{
    check_sizes(write_full, 4, 64, true);
}

static void test_window_too_small_for_slot(void **state)
{
    static struct sink s;

    sink_init(&s, 3, false);
    tb_pbw_begin_nested(&s.w, 1);
    assert_int_equal(tb_pbw_error(&s.w), -EINVAL);
}

static void test_next_failure_is_sticky_and_harmless(void **state)
{
    static struct sink s;
    uint64_t before;

    sink_init(&s, 16, false);
    s.fail_after = 3;
    write_full(&s.w);
    assert_int_equal(tb_pbw_error(&s.w), -ENOBUFS);
    assert_int_equal(s.nwin, 3);
    /* size keeps counting; nothing lands after the three windows */
    before = tb_pbw_size(&s.w);
    tb_pbw_append_string(&s.w, 1, "more bytes after the failure");
    assert_int_equal(tb_pbw_size(&s.w), before + 2 + 28);
    /* more than the scratch area at once: recycled, every byte counted */
    {
        static const uint8_t big[200];

        before = tb_pbw_size(&s.w);
        tb_pbw_append_bytes(&s.w, 2, big, sizeof(big));
        assert_int_equal(tb_pbw_size(&s.w), before + 1 + 2 + sizeof(big));
        assert_int_equal(tb_pbw_error(&s.w), -ENOBUFS);
    }
    for (size_t i = s.win_off[2] + 16; i < MEM_SIZE; i++)
        assert_int_equal(s.mem[i], GUARD);
}

static void test_relocation_out_of_storage(void **state)
{
    static struct sink s;

    sink_init(&s, 8, true);
    s.patch_cap = 1;
    write_full(&s.w);
    assert_int_equal(tb_pbw_error(&s.w), -ENOSPC);
    assert_int_equal(s.npatch, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_every_window_size),
        cmocka_unit_test(test_nested_every_window_size_in_place),
        cmocka_unit_test(test_nested_every_window_size_patched),
        cmocka_unit_test(test_window_too_small_for_slot),
        cmocka_unit_test(test_next_failure_is_sticky_and_harmless),
        cmocka_unit_test(test_relocation_out_of_storage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
