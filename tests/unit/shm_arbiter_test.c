/*
 * shm_arbiter_test.c - the producer arbiter on a real memfd SMB: writer
 * threads take and give back chunks while a "service" thread, woken through
 * an eventfd by the notify hook, takes commit batches and frees the chunks
 * the way the service does. Every given-back chunk must show up in exactly
 * one batch. Also: SMB-full accounting, notification rules, patches.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/shm_arbiter.h"

#define NUM_WRITERS       4
#define CHUNKS_PER_WRITER 3000

struct shared {
    struct tb_shm *shm;
    struct tb_arbiter *arb;
    int efd;
    _Atomic int writers_left;
    _Atomic unsigned int notifies;
};

struct writer {
    pthread_t thread;
    struct shared *sh;
    uint16_t writer_id;
    uint64_t full; /* times the writer saw -ENOSPC */
};

static void on_batch(void *ctx, bool urgent)
{
    struct shared *sh = ctx;
    uint64_t one = 1;

    (void)urgent;
    sh->notifies++;
    if (write(sh->efd, &one, sizeof(one)) != sizeof(one))
        abort();
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    uint32_t chunk_id;

    for (chunk_id = 0; chunk_id < CHUNKS_PER_WRITER; chunk_id++) {
        struct tb_shm_chunk c;
        int err;

        while ((err = tb_arbiter_get_chunk(w->sh->arb, w->writer_id, chunk_id, 0, &c)) == -ENOSPC) {
            w->full++;
            sched_yield();
        }
        if (err)
            return (void *)1;
        /* Payload: the writer and chunk id again, checked by the reader. */
        memcpy(tb_shm_chunk_payload(&c), &w->writer_id, 2);
        memcpy(tb_shm_chunk_payload(&c) + 2, &chunk_id, 4);
        tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&c), tb_shm_packets_make(1, 0));
        if (tb_arbiter_return_chunk(w->sh->arb, &c, 100u + w->writer_id))
            return (void *)2;
    }
    w->sh->writers_left--;
    return NULL;
}

/* Copy out and free every chunk of @b, marking seen[writer][chunk_id]. */
static void consume_batch(struct shared *sh, struct tb_arbiter_batch *b,
                          uint8_t seen[NUM_WRITERS + 1][CHUNKS_PER_WRITER], size_t *total)
{
    size_t i;

    for (i = 0; i < b->num_commits; i++) {
        const struct tb_arbiter_commit *cm = &b->commits[i];
        struct tb_shm_chunk c;
        uint16_t wid;
        uint32_t cid;

        assert_int_equal(
            tb_shm_try_acquire_chunk_for_reading(&sh->shm->abi, cm->page, cm->chunk, &c), 0);
        wid = tb_shm_chunk_hdr(&c)->writer_id;
        cid = tb_shm_chunk_hdr(&c)->chunk_id;
        assert_true(wid >= 1 && wid <= NUM_WRITERS);
        assert_true(cid < CHUNKS_PER_WRITER);
        assert_int_equal(cm->target_buffer, 100u + wid);
        assert_memory_equal(tb_shm_chunk_payload(&c), &wid, 2);
        assert_memory_equal(tb_shm_chunk_payload(&c) + 2, &cid, 4);
        assert_int_equal(tb_shm_packets_count(tb_shm_chunk_hdr(&c)->packets), 1);
        assert_int_equal(seen[wid][cid], 0);
        seen[wid][cid] = 1;
        (*total)++;
        assert_int_equal(tb_shm_release_chunk_as_free(&sh->shm->abi, cm->page, cm->chunk), 0);
    }
}

static void run_concurrent(unsigned int layout, size_t smb_size)
{
    static uint8_t seen[NUM_WRITERS + 1][CHUNKS_PER_WRITER];
    struct writer writers[NUM_WRITERS];
    struct shared sh = {0};
    size_t total = 0, batches = 0, w, c;
    uint64_t full = 0;

    memset(seen, 0, sizeof(seen));
    assert_int_equal(tb_shm_create(smb_size, 4096, &sh.shm), 0);
    assert_int_equal(tb_arbiter_create(sh.shm, layout, &sh.arb), 0);
    sh.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(sh.efd >= 0);
    tb_arbiter_set_notify(sh.arb, on_batch, &sh);
    sh.writers_left = NUM_WRITERS;
    for (w = 0; w < NUM_WRITERS; w++) {
        writers[w] = (struct writer){.sh = &sh, .writer_id = (uint16_t)(w + 1)};
        assert_int_equal(pthread_create(&writers[w].thread, NULL, writer_main, &writers[w]), 0);
    }
    /* The service loop: wait for a notification (or poll), take, free. */
    for (;;) {
        struct pollfd pfd = {.fd = sh.efd, .events = POLLIN};
        struct tb_arbiter_batch *b;
        uint64_t v;
        bool done = sh.writers_left == 0;

        if (poll(&pfd, 1, 5) > 0)
            assert_int_equal(read(sh.efd, &v, sizeof(v)), sizeof(v));
        assert_int_equal(tb_arbiter_take_commits(sh.arb, &b), 0);
        if (b) {
            batches++;
            assert_true(b->num_commits <=
                        tb_shm_layout_num_chunks(layout ? layout : 1) * sh.shm->num_pages);
            consume_batch(&sh, b, seen, &total);
            tb_arbiter_batch_free(b);
        } else if (done) {
            break;
        }
    }
    for (w = 0; w < NUM_WRITERS; w++) {
        void *ret;

        assert_int_equal(pthread_join(writers[w].thread, &ret), 0);
        assert_null(ret);
        full += writers[w].full;
        assert_int_equal(tb_arbiter_chunks_missed(sh.arb, writers[w].writer_id), writers[w].full);
    }
    /* Every chunk given back was committed exactly once, none lost. */
    assert_int_equal(total, NUM_WRITERS * CHUNKS_PER_WRITER);
    for (w = 1; w <= NUM_WRITERS; w++)
        for (c = 0; c < CHUNKS_PER_WRITER; c++)
            assert_int_equal(seen[w][c], 1);
    assert_int_equal(tb_arbiter_total_chunks_missed(sh.arb), full);
    assert_true(sh.notifies >= 1);
    assert_int_equal(tb_arbiter_pending_commits(sh.arb), 0);
    /* Everything freed: every page is unpartitioned again. */
    for (c = 0; c < sh.shm->num_pages; c++)
        assert_int_equal(tb_shm_page_layout(&sh.shm->abi, c), TB_SHM_LAYOUT_NONE);
    print_message("layout %u, %zu pages: %zu batches, %llu SMB-full retries, %u notifies\n", layout,
                  sh.shm->num_pages, batches, (unsigned long long)full, sh.notifies);
    tb_arbiter_destroy(sh.arb);
    tb_shm_destroy(sh.shm);
    close(sh.efd);
}

static void test_concurrent_div1(void **state)
{
    (void)state;
    run_concurrent(0, 32 * 1024); /* 8 chunks for 4 writers: often full */
}

static void test_concurrent_div4(void **state)
{
    (void)state;
    run_concurrent(TB_SHM_LAYOUT_DIV4, 256 * 1024);
}

static void count_notify(void *ctx, bool urgent)
{
    int *n = ctx;

    n[urgent ? 1 : 0]++;
}

/* SMB full is counted per writer; freed chunks become available again. */
static void test_full_and_notify(void **state)
{
    struct tb_shm_chunk chunks[16], extra;
    struct tb_arbiter_batch *b;
    struct tb_arbiter *arb;
    struct tb_shm *shm;
    int notes[2] = {0, 0};
    unsigned int i;

    (void)state;
    assert_int_equal(tb_shm_create(64 * 1024, 4096, &shm), 0);
    assert_int_equal(tb_arbiter_create(shm, 0, &arb), 0);
    tb_arbiter_set_notify(arb, count_notify, notes);
    assert_int_equal(tb_arbiter_get_chunk(arb, 0, 0, 0, &extra), -EINVAL);
    assert_int_equal(tb_arbiter_get_chunk(arb, 32768, 0, 0, &extra), -EINVAL);
    for (i = 0; i < 16; i++) {
        assert_int_equal(tb_arbiter_get_chunk(arb, 1, i, 0, &chunks[i]), 0);
        assert_int_equal(chunks[i].size, 4088); /* Div1 by default */
    }
    assert_int_equal(tb_arbiter_get_chunk(arb, 7, 0, 0, &extra), -ENOSPC);
    assert_int_equal(tb_arbiter_get_chunk(arb, 7, 0, 0, &extra), -ENOSPC);
    assert_int_equal(tb_arbiter_get_chunk(arb, 2, 0, 0, &extra), -ENOSPC);
    assert_int_equal(tb_arbiter_chunks_missed(arb, 7), 2);
    assert_int_equal(tb_arbiter_chunks_missed(arb, 2), 1);
    assert_int_equal(tb_arbiter_chunks_missed(arb, 1), 0);
    assert_int_equal(tb_arbiter_total_chunks_missed(arb), 3);

    /* Nothing pending: take gives NULL. */
    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_null(b);

    /* First commit after empty: one plain notification; > half: one urgent. */
    for (i = 0; i < 10; i++)
        assert_int_equal(tb_arbiter_return_chunk(arb, &chunks[i], 5), 0);
    assert_int_equal(notes[0], 1);
    assert_int_equal(notes[1], 1);
    /* Giving back twice is refused and not queued. */
    assert_int_equal(tb_arbiter_return_chunk(arb, &chunks[0], 5), -EBUSY);
    assert_int_equal(tb_arbiter_pending_commits(arb), 10);

    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->num_commits, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(b->commits[i].page, chunks[i].page);
        assert_int_equal(b->commits[i].chunk, 0);
        assert_int_equal(b->commits[i].target_buffer, 5);
        assert_int_equal(tb_shm_chunk_state(&shm->abi, chunks[i].page, 0), TB_SHM_CHUNK_COMPLETE);
    }
    assert_int_equal(b->num_chunk_patches, 0);
    /* Still full until the service frees something. */
    assert_int_equal(tb_arbiter_get_chunk(arb, 7, 0, 0, &extra), -ENOSPC);
    assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&shm->abi, b->commits[3].page, 0, NULL),
                     0);
    assert_int_equal(tb_shm_release_chunk_as_free(&shm->abi, b->commits[3].page, 0), 0);
    assert_int_equal(tb_arbiter_get_chunk(arb, 7, 99, 0, &extra), 0);
    assert_int_equal(extra.page, b->commits[3].page);
    assert_int_equal(tb_shm_chunk_hdr(&extra)->chunk_id, 99);
    tb_arbiter_batch_free(b);

    /* After a take, the next commit notifies again. */
    assert_int_equal(tb_arbiter_return_chunk(arb, &extra, 5), 0);
    assert_int_equal(notes[0], 2);
    assert_int_equal(notes[1], 1);
    tb_arbiter_destroy(arb);
    tb_shm_destroy(shm);
    tb_arbiter_destroy(NULL);
    tb_arbiter_batch_free(NULL);
}

static void test_patches(void **state)
{
    struct tb_shm_patch p[3] = {
        {.offset = 10, .data = {1, 2, 3, 4}},
        {.offset = 20, .data = {5, 6, 7, 8}},
        {.offset = 30, .data = {9, 10, 11, 12}},
    };
    struct tb_shm_patch *many;
    struct tb_arbiter_batch *b;
    struct tb_arbiter *arb;
    struct tb_shm *shm;
    int notes[2] = {0, 0};

    (void)state;
    assert_int_equal(tb_shm_create(64 * 1024, 4096, &shm), 0);
    assert_int_equal(tb_arbiter_create(shm, TB_SHM_LAYOUT_DIV14, &arb), 0);
    tb_arbiter_set_notify(arb, count_notify, notes);
    assert_int_equal(tb_arbiter_add_patches(arb, 3, 9, 41, p, 2, true), 0);
    assert_int_equal(notes[1], 1); /* patches are urgent */
    assert_int_equal(tb_arbiter_add_patches(arb, 3, 9, 41, p + 2, 1, false), 0);
    assert_int_equal(notes[1], 1);
    assert_int_equal(tb_arbiter_add_patches(arb, 3, 0, 41, p, 1, false), -EINVAL);
    many = calloc(TB_SHM_MAX_PATCHES_PER_CHUNK + 1, sizeof(*many));
    assert_int_equal(
        tb_arbiter_add_patches(arb, 3, 9, 42, many, TB_SHM_MAX_PATCHES_PER_CHUNK + 1, false),
        -EINVAL);
    assert_int_equal(
        tb_arbiter_add_patches(arb, 3, 9, 43, many, TB_SHM_MAX_PATCHES_PER_CHUNK, false), 0);
    free(many);

    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->num_commits, 0);
    assert_int_equal(b->num_chunk_patches, 3);
    assert_int_equal(b->num_patches, 3 + TB_SHM_MAX_PATCHES_PER_CHUNK);
    assert_int_equal(b->chunk_patches[0].chunk_id, 41);
    assert_int_equal(b->chunk_patches[0].writer_id, 9);
    assert_int_equal(b->chunk_patches[0].target_buffer, 3);
    assert_true(b->chunk_patches[0].has_more_patches);
    assert_int_equal(b->chunk_patches[0].count, 2);
    assert_memory_equal(&b->patches[b->chunk_patches[0].first], p, 2 * sizeof(p[0]));
    assert_false(b->chunk_patches[1].has_more_patches);
    assert_int_equal(b->chunk_patches[1].count, 1);
    assert_int_equal(b->patches[b->chunk_patches[1].first].offset, 30);
    assert_int_equal(b->chunk_patches[2].chunk_id, 43);
    assert_int_equal(b->chunk_patches[2].count, TB_SHM_MAX_PATCHES_PER_CHUNK);
    tb_arbiter_batch_free(b);
    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_null(b);
    tb_arbiter_destroy(arb);
    tb_shm_destroy(shm);
}

/*
 * The commit delay runs from the first chunk into an empty batch to the
 * take: a second chunk queued later does not restart it, and a take of an
 * empty batch or a reset window reads 0.
 */
static void test_commit_delay(void **state)
{
    struct timespec ms20 = {0, 20 * 1000 * 1000}, ms5 = {0, 5 * 1000 * 1000};
    struct tb_shm_chunk c[2];
    struct tb_arbiter_batch *b;
    struct tb_arbiter *arb;
    struct tb_shm *shm;
    uint64_t d;

    (void)state;
    assert_int_equal(tb_shm_create(64 * 1024, 4096, &shm), 0);
    assert_int_equal(tb_arbiter_create(shm, 0, &arb), 0);
    assert_int_equal(tb_arbiter_max_commit_delay_ns(arb, false), 0);
    assert_int_equal(tb_arbiter_get_chunk(arb, 1, 0, 0, &c[0]), 0);
    assert_int_equal(tb_arbiter_get_chunk(arb, 1, 1, 0, &c[1]), 0);
    assert_int_equal(tb_arbiter_return_chunk(arb, &c[0], 5), 0);
    nanosleep(&ms20, NULL);
    assert_int_equal(tb_arbiter_return_chunk(arb, &c[1], 5), 0);
    nanosleep(&ms5, NULL);
    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->num_commits, 2);
    tb_arbiter_batch_free(b);
    d = tb_arbiter_max_commit_delay_ns(arb, false);
    assert_true(d >= 25u * 1000 * 1000);
    assert_true(d < 2000u * 1000 * 1000);
    /* Nothing pending: the maximum stays, until a reset. */
    assert_int_equal(tb_arbiter_take_commits(arb, &b), 0);
    assert_null(b);
    assert_int_equal(tb_arbiter_max_commit_delay_ns(arb, true), d);
    assert_int_equal(tb_arbiter_max_commit_delay_ns(arb, false), 0);
    tb_arbiter_destroy(arb);
    tb_shm_destroy(shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_and_notify), cmocka_unit_test(test_patches),
        cmocka_unit_test(test_commit_delay),    cmocka_unit_test(test_concurrent_div1),
        cmocka_unit_test(test_concurrent_div4),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
