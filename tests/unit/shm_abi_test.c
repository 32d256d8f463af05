/*
 * shm_abi_test.c - the page/chunk state machine on a real memfd mapping:
 * layouts and chunk sizes (spec table 1.4), every state x every transition,
 * index validation against hostile page/chunk numbers, header bytes, and
 * de-partitioning when a page's last chunk is freed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/shm.h"

static int setup(void **state)
{
    struct tb_shm *shm;

    if (tb_shm_create(64 * 1024, 4096, &shm))
        return -1;
    *state = shm;
    return 0;
}

static int teardown(void **state)
{
    tb_shm_destroy(*state);
    return 0;
}

static uint32_t *bitmap_ptr(struct tb_shm *shm, size_t page)
{
    return (uint32_t *)(void *)(shm->base + page * shm->page_size);
}

/* Chunk sizes from the spec's table 1.4, per layout and page size. */
static void test_layout_chunk_sizes(void **state)
{
    static const size_t page_sizes[] = {4096, 8192, 16384, 32768};
    static const struct {
        unsigned int layout, chunks;
        size_t size[4];
    } table[] = {
        {TB_SHM_LAYOUT_DIV1, 1, {4088, 8184, 16376, 32760}},
        {TB_SHM_LAYOUT_DIV2, 2, {2044, 4092, 8188, 16380}},
        {TB_SHM_LAYOUT_DIV4, 4, {1020, 2044, 4092, 8188}},
        {TB_SHM_LAYOUT_DIV7, 7, {584, 1168, 2336, 4680}},
        {TB_SHM_LAYOUT_DIV14, 14, {292, 584, 1168, 2340}},
    };
    size_t i, p;

    (void)state;
    assert_int_equal(tb_shm_layout_num_chunks(TB_SHM_LAYOUT_NONE), 0);
    assert_int_equal(tb_shm_layout_num_chunks(6), 0);
    assert_int_equal(tb_shm_layout_num_chunks(7), 0);
    assert_int_equal(tb_shm_layout_num_chunks(8), 0);
    assert_int_equal(tb_shm_layout_chunk_size(6, 4096), 0);
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_int_equal(tb_shm_layout_num_chunks(table[i].layout), table[i].chunks);
        for (p = 0; p < 4; p++)
            assert_int_equal(tb_shm_layout_chunk_size(table[i].layout, page_sizes[p]),
                             table[i].size[p]);
    }
}

/* Chunks of a partitioned page sit back to back after the page header. */
static void test_chunk_positions(void **state)
{
    struct tb_shm *shm = *state;
    struct tb_shm_chunk c;
    unsigned int layout, i;
    size_t page = 0;

    for (layout = TB_SHM_LAYOUT_DIV1; layout <= TB_SHM_LAYOUT_DIV14; layout++, page++) {
        unsigned int n = tb_shm_layout_num_chunks(layout);
        size_t sz = tb_shm_layout_chunk_size(layout, shm->page_size);
        uint8_t *page_start = shm->base + page * shm->page_size;

        assert_int_equal(tb_shm_page_layout(&shm->abi, page), TB_SHM_LAYOUT_NONE);
        assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, layout), 0);
        assert_int_equal(tb_shm_page_layout(&shm->abi, page), (int)layout);
        assert_int_equal(*bitmap_ptr(shm, page), layout << 28);
        for (i = 0; i < n; i++) {
            assert_int_equal(tb_shm_get_chunk(&shm->abi, page, i, &c), 0);
            assert_ptr_equal(c.begin, page_start + 8 + i * sz);
            assert_int_equal(c.size, sz);
            assert_int_equal((uintptr_t)c.begin % 4, 0);
            assert_true(c.begin + c.size <= page_start + shm->page_size);
            assert_int_equal(tb_shm_chunk_state(&shm->abi, page, i), TB_SHM_CHUNK_FREE);
        }
        assert_int_equal(tb_shm_get_chunk(&shm->abi, page, n, &c), -EINVAL);
        /* A partitioned page cannot be partitioned again. */
        assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV1), -EBUSY);
        assert_int_equal(*bitmap_ptr(shm, page), layout << 28);
    }
}

enum op { OP_ACQ_WRITE, OP_COMPLETE, OP_ACQ_READ, OP_FREE, NUM_OPS };

static int do_op(struct tb_shm *shm, enum op op, size_t page, size_t chunk)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = 77, .writer_id = 5, .packets = 0};

    switch (op) {
    case OP_ACQ_WRITE:
        return tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, chunk, &hdr, NULL);
    case OP_COMPLETE:
        return tb_shm_release_chunk_as_complete(&shm->abi, page, chunk);
    case OP_ACQ_READ:
        return tb_shm_try_acquire_chunk_for_reading(&shm->abi, page, chunk, NULL);
    case OP_FREE:
        return tb_shm_release_chunk_as_free(&shm->abi, page, chunk);
    default:
        return -1;
    }
}

/*
 * Every state x every transition on chunk 1 of a Div4 page whose other chunks
 * hold distinct states: only the legal one succeeds, it changes exactly the
 * chunk's two bits, and every refused one leaves the bitmap and the chunk
 * header byte-for-byte unchanged.
 */
static void test_transition_matrix(void **state)
{
    /* Source state of each op, and the state it leads to. */
    static const unsigned int from[NUM_OPS] = {TB_SHM_CHUNK_FREE, TB_SHM_CHUNK_BEING_WRITTEN,
                                               TB_SHM_CHUNK_COMPLETE, TB_SHM_CHUNK_BEING_READ};
    static const unsigned int to[NUM_OPS] = {TB_SHM_CHUNK_BEING_WRITTEN, TB_SHM_CHUNK_COMPLETE,
                                             TB_SHM_CHUNK_BEING_READ, TB_SHM_CHUNK_FREE};
    struct tb_shm *shm = *state;
    const size_t page = 3, chunk = 1;
    unsigned int st;
    int op;

    for (st = 0; st < 4; st++) {
        for (op = 0; op < NUM_OPS; op++) {
            /* chunk0 Complete, chunk2 BeingWritten, chunk3 BeingRead. */
            uint32_t others = (TB_SHM_LAYOUT_DIV4 << 28) | (3u << 0) | (1u << 4) | (2u << 6);
            uint32_t before = others | (st << 2), after;
            struct tb_shm_chunk c;
            uint8_t hdr_before[8];
            int ret;

            *bitmap_ptr(shm, page) = before;
            assert_int_equal(tb_shm_get_chunk(&shm->abi, page, chunk, &c), 0);
            memcpy(c.begin, "\x11\x22\x33\x44\x55\x66\x77\x08", 8);
            memcpy(hdr_before, c.begin, 8);

            ret = do_op(shm, op, page, chunk);
            after = *bitmap_ptr(shm, page);
            if (from[op] == st) {
                assert_int_equal(ret, 0);
                assert_int_equal(after, others | (to[op] << 2));
                assert_int_equal(tb_shm_chunk_state(&shm->abi, page, chunk), (int)to[op]);
            } else {
                assert_int_equal(ret, -EBUSY);
                assert_int_equal(after, before);
                assert_memory_equal(c.begin, hdr_before, 8);
            }
        }
    }
    *bitmap_ptr(shm, page) = 0;
}

/* The chunk header bytes on acquire (little-endian ABI) and on free. */
static void test_header_bytes(void **state)
{
    static const uint8_t want[8] = {0x04, 0x03, 0x02, 0x01, 0x39, 0x30, 0x05, 0x04};
    struct tb_shm_chunk_header hdr = {
        .chunk_id = 0x01020304,
        .writer_id = 12345,
        .packets = tb_shm_packets_make(5, TB_SHM_FLAG_FIRST_CONTINUES),
    };
    struct tb_shm *shm = *state;
    struct tb_shm_chunk c, r;

    assert_int_equal(tb_shm_try_partition_page(&shm->abi, 6, TB_SHM_LAYOUT_DIV2), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, 6, 1, &hdr, &c), 0);
    assert_memory_equal(c.begin, want, 8);
    assert_int_equal(tb_shm_packets_count(tb_shm_chunk_packets_load(tb_shm_chunk_hdr(&c))), 5);
    assert_int_equal(tb_shm_packets_flags(tb_shm_chunk_packets_load(tb_shm_chunk_hdr(&c))),
                     TB_SHM_FLAG_FIRST_CONTINUES);
    assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, 6, 1), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&shm->abi, 6, 1, &r), 0);
    assert_ptr_equal(r.begin, c.begin);
    assert_int_equal(r.size, c.size);
    assert_int_equal(tb_shm_release_chunk_as_free(&shm->abi, 6, 1), 0);
    assert_memory_equal(c.begin, "\0\0\0\0\0\0\0\0", 8);
    /* Last chunk of the page freed: the page is unpartitioned again. */
    assert_int_equal(*bitmap_ptr(shm, 6), 0);
}

/* Bad writer ids, pages, chunks and layouts are refused without effect. */
static void test_invalid_arguments(void **state)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = 1, .writer_id = 0};
    struct tb_shm *shm = *state;
    const size_t page = 7, np = shm->num_pages;
    uint32_t bm;
    int op;

    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_NONE), -EINVAL);
    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, 6), -EINVAL);
    assert_int_equal(tb_shm_try_partition_page(&shm->abi, np, TB_SHM_LAYOUT_DIV1), -EINVAL);
    assert_int_equal(tb_shm_try_partition_page(&shm->abi, SIZE_MAX, TB_SHM_LAYOUT_DIV1), -EINVAL);
    assert_int_equal(*bitmap_ptr(shm, page), 0);

    /* Unpartitioned page: no chunk exists. */
    for (op = 0; op < NUM_OPS; op++)
        assert_int_equal(do_op(shm, op, page, 0), -EINVAL);
    assert_int_equal(tb_shm_chunk_state(&shm->abi, page, 0), -EINVAL);

    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV7), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 0, &hdr, NULL), -EINVAL);
    hdr.writer_id = TB_SHM_MAX_WRITER_ID + 1;
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 0, &hdr, NULL), -EINVAL);
    for (op = 0; op < NUM_OPS; op++) {
        assert_int_equal(do_op(shm, op, page, 7), -EINVAL);
        assert_int_equal(do_op(shm, op, page, 14), -EINVAL);
        assert_int_equal(do_op(shm, op, page, SIZE_MAX), -EINVAL);
        assert_int_equal(do_op(shm, op, np, 0), -EINVAL);
        assert_int_equal(do_op(shm, op, SIZE_MAX / 2, 0), -EINVAL);
    }
    assert_int_equal(*bitmap_ptr(shm, page), TB_SHM_LAYOUT_DIV7 << 28);

    /* A producer wrote a reserved layout: the page is unusable, not fatal. */
    *bitmap_ptr(shm, page) = (6u << 28) | 0x3;
    for (op = 0; op < NUM_OPS; op++)
        assert_int_equal(do_op(shm, op, page, 0), -EINVAL);
    assert_int_equal(tb_shm_page_bitmap(&shm->abi, page, &bm), 0);
    assert_int_equal(bm, (6u << 28) | 0x3);
    assert_int_equal(tb_shm_page_bitmap(&shm->abi, np, &bm), -EINVAL);
    *bitmap_ptr(shm, page) = 0;
}

/* A Div14 page goes back to bitmap 0 only when its last chunk is freed. */
static void test_departition(void **state)
{
    struct tb_shm *shm = *state;
    struct tb_shm_chunk_header hdr = {.chunk_id = 1, .writer_id = 1};
    const size_t page = 8;
    unsigned int i, n = 14;

    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV14), 0);
    for (i = 0; i < n; i++) {
        hdr.chunk_id = i;
        assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, i, &hdr, NULL), 0);
        assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, page, i), 0);
    }
    /* All complete: every used 2-bit slot is 3. */
    assert_int_equal(*bitmap_ptr(shm, page), (TB_SHM_LAYOUT_DIV14 << 28) | 0x0FFFFFFF);
    for (i = 0; i < n; i++) {
        assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&shm->abi, page, i, NULL), 0);
        assert_int_equal(tb_shm_release_chunk_as_free(&shm->abi, page, i), 0);
        if (i + 1 < n) {
            assert_int_equal(tb_shm_page_layout(&shm->abi, page), TB_SHM_LAYOUT_DIV14);
            assert_int_equal(tb_shm_chunk_state(&shm->abi, page, i), TB_SHM_CHUNK_FREE);
        }
    }
    assert_int_equal(*bitmap_ptr(shm, page), 0);
    /* And it can be partitioned again, with another layout. */
    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV2), 0);
    *bitmap_ptr(shm, page) = 0;
}

/* A freed chunk on a page with other chunks in use keeps the layout. */
static void test_free_keeps_busy_page(void **state)
{
    struct tb_shm *shm = *state;
    struct tb_shm_chunk_header hdr = {.chunk_id = 9, .writer_id = 2};
    const size_t page = 9;

    assert_int_equal(tb_shm_try_partition_page(&shm->abi, page, TB_SHM_LAYOUT_DIV2), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 0, &hdr, NULL), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 1, &hdr, NULL), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, 1, &hdr, NULL), -EBUSY);
    assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, page, 0), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&shm->abi, page, 0, NULL), 0);
    assert_int_equal(tb_shm_release_chunk_as_free(&shm->abi, page, 0), 0);
    assert_int_equal(*bitmap_ptr(shm, page), (TB_SHM_LAYOUT_DIV2 << 28) | (1u << 2));
    *bitmap_ptr(shm, page) = 0;
}

static void test_abi_init(void **state)
{
    struct tb_shm *shm = *state;
    struct tb_shm_abi abi;

    assert_int_equal(tb_shm_abi_init(&abi, shm->base, shm->size, 4096), 0);
    assert_int_equal(abi.num_pages, shm->size / 4096);
    assert_int_equal(tb_shm_abi_init(&abi, shm->base, shm->size, 16384), 0);
    assert_int_equal(abi.num_pages, shm->size / 16384);
    assert_int_equal(tb_shm_abi_init(&abi, shm->base, shm->size, 65536 * 2), -EINVAL);
    assert_int_equal(tb_shm_abi_init(&abi, shm->base, shm->size, 2048), -EINVAL);
    assert_int_equal(tb_shm_abi_init(&abi, shm->base, 4096 + 100, 4096), -EINVAL);
    assert_int_equal(tb_shm_abi_init(&abi, shm->base + 8, shm->size - 4096, 4096), -EINVAL);
    assert_int_equal(tb_shm_abi_init(&abi, NULL, shm->size, 4096), -EINVAL);
}

static void test_size_prefix(void **state)
{
    uint8_t b[4];

    (void)state;
    tb_shm_write_size_prefix(b, 5);
    assert_memory_equal(b, "\x85\x80\x80\x00", 4);
    tb_shm_write_size_prefix(b, TB_SHM_PACKET_SIZE_DROP);
    assert_memory_equal(b, "\xff\xff\xff\x7f", 4);
    tb_shm_write_size_prefix(b, 300);
    assert_memory_equal(b, "\xac\x82\x80\x00", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_chunk_sizes),
        cmocka_unit_test_setup_teardown(test_chunk_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transition_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_departition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_keeps_busy_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abi_init, setup, teardown),
        cmocka_unit_test(test_size_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
