/*
 * shm_chunk_reader_test.c - the untrusted chunk parser: well-formed chunks
 * (1- and 4-byte size prefixes, empty records, fragment flags, the drop
 * sentinel) and corrupt ones (size past the end, 5-byte varint, count larger
 * than the records present), plus patch bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/chunk_reader.h"

/* Builds a chunk the way a producer lays it out. */
struct builder {
    uint8_t buf[1024];
    size_t len;
};

static void b_header(struct builder *b, uint32_t chunk_id, uint16_t writer_id, uint16_t count,
                     uint8_t flags)
{
    uint16_t packets = tb_shm_packets_make(count, flags);

    memset(b->buf, 0xEE, sizeof(b->buf)); /* undefined bytes after the records */
    memcpy(b->buf, &chunk_id, 4);
    memcpy(b->buf + 4, &writer_id, 2);
    memcpy(b->buf + 6, &packets, 2);
    b->len = 8;
}

/* A record with a 1-byte (short) or 4-byte redundant size prefix. */
static void b_record(struct builder *b, bool short_prefix, const void *data, uint32_t len)
{
    if (short_prefix) {
        assert_true(len < 128);
        b->buf[b->len++] = (uint8_t)len;
    } else {
        tb_shm_write_size_prefix(b->buf + b->len, len);
        b->len += 4;
    }
    memcpy(b->buf + b->len, data, len);
    b->len += len;
}

static void b_raw(struct builder *b, const void *bytes, size_t n)
{
    memcpy(b->buf + b->len, bytes, n);
    b->len += n;
}

static void expect_record_n(struct tb_chunk_reader *r, const char *data, size_t len, bool from_prev,
                            bool on_next)
{
    struct tb_chunk_record rec;

    assert_int_equal(tb_chunk_reader_next(r, &rec), 1);
    assert_int_equal(rec.len, len);
    assert_memory_equal(rec.data, data, rec.len);
    assert_ptr_equal(rec.data, r->payload + rec.offset);
    assert_int_equal(rec.continues_from_prev, from_prev);
    assert_int_equal(rec.continues_on_next, on_next);
}

static void expect_record(struct tb_chunk_reader *r, const char *data, bool from_prev, bool on_next)
{
    expect_record_n(r, data, strlen(data), from_prev, on_next);
}

static void test_varint(void **state)
{
    static const struct {
        const char *bytes;
        size_t n;
        int want_ret;
        uint32_t want;
    } cases[] = {
        {"\x00", 1, 1, 0},
        {"\x7f", 1, 1, 127},
        {"\x80\x01", 2, 2, 128},
        {"\x85\x80\x80\x00", 4, 4, 5},
        {"\xff\xff\xff\x7f", 4, 4, TB_SHM_PACKET_SIZE_DROP},
        {"\x80\x80\x80\x80\x01", 5, -EBADMSG, 0}, /* would need a fifth byte */
        {"\x80\x80", 2, -EBADMSG, 0},             /* truncated */
        {"", 0, -EBADMSG, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t v = 0xdead;
        int ret = tb_chunk_read_varint((const uint8_t *)cases[i].bytes, cases[i].n, &v);

        assert_int_equal(ret, cases[i].want_ret);
        if (ret > 0)
            assert_int_equal(v, cases[i].want);
    }
}

static void test_well_formed(void **state)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct builder b;
    char big[200];

    (void)state;
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    b_header(&b, 9, 1, 5, 0);
    b_record(&b, false, "hello", 5);
    b_record(&b, true, "ab", 2);
    b_record(&b, false, "", 0); /* inflated-count padding, skipped */
    b_record(&b, false, big, (uint32_t)strlen(big));
    b_record(&b, true, "", 0);
    /* Read from an unaligned copy, as the service's buffer may be. */
    {
        uint8_t *copy = malloc(b.len + 1);

        memcpy(copy + 1, b.buf, b.len);
        assert_int_equal(tb_chunk_reader_init(&r, copy + 1, b.len), 0);
        assert_int_equal(r.count, 5);
        expect_record(&r, "hello", false, false);
        assert_int_equal(r.payload[0], 0x85); /* offsets count from the payload */
        expect_record(&r, "ab", false, false);
        expect_record(&r, big, false, false);
        assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
        assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
        assert_int_equal(r.empty, 2);
        assert_int_equal(r.aborted, 0);
        assert_false(r.corrupt);
        free(copy);
    }
}

/* Records past `count` are never read, even if the bytes look valid. */
static void test_count_limits(void **state)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct builder b;

    (void)state;
    b_header(&b, 1, 1, 1, 0);
    b_record(&b, true, "one", 3);
    b_record(&b, true, "two", 3);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "one", false, false);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);

    b_header(&b, 1, 1, 0, TB_SHM_FLAG_LAST_CONTINUES);
    b_record(&b, true, "one", 3);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
}

static void test_fragment_flags(void **state)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct builder b;

    (void)state;
    /* A middle chunk of a long packet: one record, both flags. */
    b_header(&b, 2, 7, 1, TB_SHM_FLAG_FIRST_CONTINUES | TB_SHM_FLAG_LAST_CONTINUES);
    b_record(&b, false, "middle", 6);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "middle", true, true);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);

    /* Continuation, whole packet, start of the next long one. */
    b_header(&b, 3, 7, 3, TB_SHM_FLAG_FIRST_CONTINUES | TB_SHM_FLAG_LAST_CONTINUES);
    b_record(&b, false, "tail", 4);
    b_record(&b, true, "whole", 5);
    b_record(&b, false, "head", 4);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "tail", true, false);
    expect_record(&r, "whole", false, false);
    expect_record(&r, "head", false, true);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);

    /* Flags on a chunk's edges apply to the edge records only. */
    b_header(&b, 4, 7, 2, TB_SHM_FLAG_LAST_CONTINUES);
    b_record(&b, true, "a", 1);
    b_record(&b, true, "", 0); /* an empty last fragment keeps its role */
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "a", false, false);
    expect_record(&r, "", false, true);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
    assert_int_equal(r.empty, 0);

    /* Unknown flag bits (and NEEDS_PATCHING) do not change framing. */
    b_header(&b, 5, 7, 1, 0x3C | TB_SHM_FLAG_NEEDS_PATCHING);
    b_record(&b, true, "x", 1);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "x", false, false);
}

static void test_drop_sentinel(void **state)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct builder b;

    (void)state;
    /* A fragmenting writer ran out of chunks: its last fragment is dropped. */
    b_header(&b, 6, 2, 2, TB_SHM_FLAG_LAST_CONTINUES);
    b_record(&b, true, "kept", 4);
    b_raw(&b, "\xff\xff\xff\x7f", 4);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "kept", false, false);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
    assert_int_equal(r.aborted, 1);
    assert_true(r.aborted_last);
    assert_false(r.aborted_first);
    assert_false(r.corrupt);

    /* Nothing follows a sentinel: the chunk ends there, cleanly. */
    b_header(&b, 7, 2, 3, 0);
    b_raw(&b, "\xff\xff\xff\x7f", 4);
    b_record(&b, true, "ghost", 5);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
    assert_int_equal(r.aborted, 1);
    assert_false(r.aborted_last);
}

static void test_corrupt(void **state)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    struct builder b;

    (void)state;
    /* Size runs past the end of the copy. */
    b_header(&b, 1, 1, 2, 0);
    b_record(&b, true, "ok", 2);
    tb_shm_write_size_prefix(b.buf + b.len, 100);
    b.len += 4;
    b_raw(&b, "short", 5);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "ok", false, false);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);
    assert_true(r.corrupt);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* A size of exactly the remaining bytes is fine; one more is not. */
    b_header(&b, 1, 1, 1, 0);
    b_record(&b, true, "abc", 3);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "abc", false, false);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len - 1), 0);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* Five-byte varint. */
    b_header(&b, 1, 1, 1, 0);
    b_raw(&b, "\x81\x80\x80\x80\x00xyz", 8);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* Count larger than the records present in an exact-size copy. */
    b_header(&b, 1, 1, 4, 0);
    b_record(&b, false, "r1", 2);
    b_record(&b, true, "r2", 2);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record(&r, "r1", false, false);
    expect_record(&r, "r2", false, false);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* ... and with 0xEE garbage after them (varint over 4 bytes). */
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len + 16), 0);
    expect_record(&r, "r1", false, false);
    expect_record(&r, "r2", false, false);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* Largest legal size (below the sentinel) in a small chunk. */
    b_header(&b, 1, 1, 1, 0);
    b_raw(&b, "\xfe\xff\xff\x7f", 4);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), -EBADMSG);

    /* Too small to hold a header. */
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, 7), -EINVAL);
    assert_int_equal(tb_chunk_reader_next(&r, &rec), 0);
    assert_int_equal(tb_chunk_reader_init(&r, NULL, 64), -EINVAL);
}

/* A size prefix left for patching, then patched, reads back correctly. */
static void test_patch(void **state)
{
    struct tb_chunk_reader r;
    struct builder b;
    uint8_t patch[4];
    uint8_t *payload;
    size_t payload_size;

    (void)state;
    b_header(&b, 1, 1, 1, TB_SHM_FLAG_NEEDS_PATCHING);
    b_record(&b, false, "\x0a\x80\x80\x80\x00xyz", 8); /* nested size unknown */
    payload = b.buf + 8;
    payload_size = b.len - 8;
    tb_shm_write_size_prefix(patch, 3);
    /* Patch offset 5 = 4-byte record prefix + 1-byte field tag. */
    assert_int_equal(tb_chunk_apply_patch(payload, payload_size, 5, patch, 4), 0);
    assert_memory_equal(payload + 5, "\x83\x80\x80\x00", 4);
    assert_int_equal(tb_chunk_reader_init(&r, b.buf, b.len), 0);
    expect_record_n(&r, "\x0a\x83\x80\x80\x00xyz", 8, false, false);

    /* The last 4 bytes are patchable (rewritten with what is there)... */
    memcpy(patch, payload + payload_size - 4, 4);
    assert_int_equal(
        tb_chunk_apply_patch(payload, payload_size, (uint32_t)payload_size - 4, patch, 4), 0);
    /* ... one byte further is not. */
    memcpy(patch, "\x11\x22\x33\x44", 4);
    assert_int_equal(
        tb_chunk_apply_patch(payload, payload_size, (uint32_t)payload_size - 3, patch, 4), -EINVAL);
    assert_int_equal(tb_chunk_apply_patch(payload, payload_size, UINT32_MAX, patch, 4), -EINVAL);
    assert_int_equal(tb_chunk_apply_patch(payload, payload_size, 0, patch, 3), -EINVAL);
    assert_int_equal(tb_chunk_apply_patch(payload, payload_size, 0, patch, 5), -EINVAL);
    assert_int_equal(tb_chunk_apply_patch(payload, 3, 0, patch, 4), -EINVAL);
    /* None of the refused patches wrote anything. */
    assert_memory_equal(payload, "\x88\x80\x80\x00\x0a\x83\x80\x80\x00xyz", 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint),        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_count_limits),  cmocka_unit_test(test_fragment_flags),
        cmocka_unit_test(test_drop_sentinel), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_patch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
