/*
 * shm_concurrency_test.c - many threads racing for chunks on one real memfd
 * mapping, with the raw ABI calls (partition + CAS acquire). Each round every
 * chunk of the SMB must be acquired exactly once: none twice, none lost.
 * Each winner stamps its thread id into the chunk, and the stamps must match
 * the winners' own lists.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/shm.h"

#define NUM_THREADS 6
#define NUM_ROUNDS  40
#define SMB_SIZE    (64 * 1024)
#define PAGE_SIZE   4096
#define MAX_CHUNKS  (SMB_SIZE / PAGE_SIZE * TB_SHM_MAX_CHUNKS_PER_PAGE)

struct worker {
    pthread_t thread;
    struct tb_shm *shm;
    pthread_barrier_t *start;
    unsigned int id;
    unsigned int layout; /* what this thread partitions free pages with */
    size_t num_got;
    struct {
        uint32_t page, chunk;
    } got[MAX_CHUNKS];
};

/* Grab every chunk this thread can win, scanning all pages from page 0. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct tb_shm *shm = w->shm;
    struct tb_shm_chunk_header hdr = {.writer_id = (uint16_t)w->id};
    size_t page, chunk;

    pthread_barrier_wait(w->start);
    for (page = 0; page < shm->num_pages; page++) {
        int layout;

        tb_shm_try_partition_page(&shm->abi, page, w->layout);
        layout = tb_shm_page_layout(&shm->abi, page);
        for (chunk = 0; chunk < tb_shm_layout_num_chunks((unsigned int)layout); chunk++) {
            struct tb_shm_chunk c;

            hdr.chunk_id = (uint32_t)w->num_got;
            if (tb_shm_try_acquire_chunk_for_writing(&shm->abi, page, chunk, &hdr, &c))
                continue;
            memcpy(tb_shm_chunk_payload(&c), &w->id, sizeof(w->id));
            w->got[w->num_got].page = (uint32_t)page;
            w->got[w->num_got].chunk = (uint32_t)chunk;
            w->num_got++;
        }
    }
    return NULL;
}

static void run_round(struct tb_shm *shm, unsigned int round)
{
    static struct worker workers[NUM_THREADS];
    uint8_t owner[SMB_SIZE / PAGE_SIZE][TB_SHM_MAX_CHUNKS_PER_PAGE];
    pthread_barrier_t start;
    size_t expected = 0, total = 0, page, chunk, i, t;

    memset(owner, 0, sizeof(owner));
    assert_int_equal(pthread_barrier_init(&start, NULL, NUM_THREADS), 0);
    for (t = 0; t < NUM_THREADS; t++) {
        struct worker *w = &workers[t];

        w->shm = shm;
        w->start = &start;
        w->id = (unsigned int)t + 1;
        /* Round 0..: all Div1, then mixed layouts per thread. */
        w->layout = round % 2 ? TB_SHM_LAYOUT_DIV1 + (unsigned int)((t + round) % 5)
                              : TB_SHM_LAYOUT_DIV1 + round / 2 % 5;
        w->num_got = 0;
        assert_int_equal(pthread_create(&w->thread, NULL, worker_main, w), 0);
    }
    for (t = 0; t < NUM_THREADS; t++)
        assert_int_equal(pthread_join(workers[t].thread, NULL), 0);
    pthread_barrier_destroy(&start);

    for (t = 0; t < NUM_THREADS; t++) {
        struct worker *w = &workers[t];

        for (i = 0; i < w->num_got; i++) {
            struct tb_shm_chunk c;
            unsigned int stamp;

            assert_int_equal(owner[w->got[i].page][w->got[i].chunk], 0); /* not twice */
            owner[w->got[i].page][w->got[i].chunk] = (uint8_t)w->id;
            assert_int_equal(tb_shm_get_chunk(&shm->abi, w->got[i].page, w->got[i].chunk, &c), 0);
            memcpy(&stamp, tb_shm_chunk_payload(&c), sizeof(stamp));
            assert_int_equal(stamp, w->id);
            assert_int_equal(tb_shm_chunk_hdr(&c)->writer_id, w->id);
            assert_int_equal(tb_shm_chunk_hdr(&c)->chunk_id, i);
        }
        total += w->num_got;
    }
    /* None lost: every chunk of every (now partitioned) page was won. */
    for (page = 0; page < shm->num_pages; page++) {
        int layout = tb_shm_page_layout(&shm->abi, page);
        size_t n = tb_shm_layout_num_chunks((unsigned int)layout);

        assert_true(layout >= TB_SHM_LAYOUT_DIV1 && layout <= TB_SHM_LAYOUT_DIV14);
        expected += n;
        for (chunk = 0; chunk < n; chunk++) {
            assert_int_not_equal(owner[page][chunk], 0);
            assert_int_equal(tb_shm_chunk_state(&shm->abi, page, chunk),
                             TB_SHM_CHUNK_BEING_WRITTEN);
        }
    }
    assert_int_equal(total, expected);

    /* Hand everything back through the full cycle; pages end unpartitioned. */
    for (page = 0; page < shm->num_pages; page++) {
        size_t n = tb_shm_layout_num_chunks((unsigned int)tb_shm_page_layout(&shm->abi, page));

        for (chunk = 0; chunk < n; chunk++) {
            assert_int_equal(tb_shm_release_chunk_as_complete(&shm->abi, page, chunk), 0);
            assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&shm->abi, page, chunk, NULL), 0);
            assert_int_equal(tb_shm_release_chunk_as_free(&shm->abi, page, chunk), 0);
        }
        assert_int_equal(tb_shm_page_layout(&shm->abi, page), TB_SHM_LAYOUT_NONE);
    }
}

static void test_race_for_chunks(void **state)
{
    struct tb_shm *shm;
    unsigned int round;

    (void)state;
    assert_int_equal(tb_shm_create(SMB_SIZE, PAGE_SIZE, &shm), 0);
    for (round = 0; round < NUM_ROUNDS; round++)
        run_round(shm, round);
    tb_shm_destroy(shm);
}

struct cycler {
    pthread_t thread;
    pthread_barrier_t *start;
    struct tb_shm *shm;
    size_t page;
    unsigned int chunk;
    unsigned int iterations;
};

/*
 * Each thread cycles its own chunk of one shared Div14 page through all four
 * states; the CAS loops must never lose a neighbour's concurrent update.
 */
static void *cycler_main(void *arg)
{
    struct cycler *c = arg;
    struct tb_shm_chunk_header hdr = {.writer_id = (uint16_t)(c->chunk + 1)};
    const struct tb_shm_abi *abi = &c->shm->abi;
    unsigned int i;

    pthread_barrier_wait(c->start);
    for (i = 0; i < c->iterations; i++) {
        hdr.chunk_id = i;
        /*
         * Whoever frees the page's last chunk de-partitions it, possibly
         * between our partition and our acquire: then re-partition. Our own
         * chunk is never taken by anyone else, so -EBUSY is a failure.
         */
        for (;;) {
            int err;

            tb_shm_try_partition_page(abi, c->page, TB_SHM_LAYOUT_DIV14);
            err = tb_shm_try_acquire_chunk_for_writing(abi, c->page, c->chunk, &hdr, NULL);
            if (!err)
                break;
            if (err != -EINVAL)
                return (void *)1;
        }
        if (tb_shm_release_chunk_as_complete(abi, c->page, c->chunk) ||
            tb_shm_try_acquire_chunk_for_reading(abi, c->page, c->chunk, NULL) ||
            tb_shm_release_chunk_as_free(abi, c->page, c->chunk))
            return (void *)2;
    }
    return NULL;
}

static void test_neighbour_transitions(void **state)
{
    struct cycler cyclers[TB_SHM_MAX_CHUNKS_PER_PAGE];
    pthread_barrier_t start;
    struct tb_shm *shm;
    unsigned int i;

    (void)state;
    assert_int_equal(pthread_barrier_init(&start, NULL, TB_SHM_MAX_CHUNKS_PER_PAGE), 0);
    assert_int_equal(tb_shm_create(16 * 1024, 4096, &shm), 0);
    for (i = 0; i < TB_SHM_MAX_CHUNKS_PER_PAGE; i++) {
        cyclers[i] = (struct cycler){
            .start = &start, .shm = shm, .page = 2, .chunk = i, .iterations = 50000};
        assert_int_equal(pthread_create(&cyclers[i].thread, NULL, cycler_main, &cyclers[i]), 0);
    }
    for (i = 0; i < TB_SHM_MAX_CHUNKS_PER_PAGE; i++) {
        void *ret;

        assert_int_equal(pthread_join(cyclers[i].thread, &ret), 0);
        assert_null(ret);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(tb_shm_page_layout(&shm->abi, 2), TB_SHM_LAYOUT_NONE);
    tb_shm_destroy(shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_for_chunks),
        cmocka_unit_test(test_neighbour_transitions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
