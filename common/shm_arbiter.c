/*
 * shm_arbiter.c - producer-side chunk allocation and commit batching.
 *
 * Owns the producer's view of its SMB: which free chunk a writer gets next
 * (a lock-free scan with CAS, so a chunk is never handed out twice), and the
 * pending CommitDataRequest contents (a small mutex, taken only on chunk
 * switches and patches, never while a writer fills its chunk).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/shm_arbiter.h"

struct tb_arbiter {
    struct tb_shm *shm;
    unsigned int layout;
    size_t total_chunks;
    atomic_size_t next_page;

    pthread_mutex_t lock; /* guards everything down to notify_ctx */
    struct tb_arbiter_commit *commits;
    size_t num_commits, cap_commits;
    struct tb_arbiter_chunk_patches *chunk_patches;
    size_t num_chunk_patches, cap_chunk_patches;
    struct tb_shm_patch *patches;
    size_t num_patches, cap_patches;
    bool urgent_sent;
    uint64_t pending_since_ns; /* when the batch last became non-empty */
    uint64_t max_delay_ns;
    tb_arbiter_notify_fn notify;
    void *notify_ctx;

    atomic_uint_least64_t total_missed;
    atomic_uint_least64_t missed[TB_SHM_MAX_WRITER_ID + 1];
};

int tb_arbiter_create(struct tb_shm *shm, unsigned int layout, struct tb_arbiter **out)
{
    struct tb_arbiter *arb;
    int err;

    *out = NULL;
    if (!layout)
        layout = TB_SHM_LAYOUT_DIV1;
    if (!shm || !shm->num_pages || !tb_shm_layout_num_chunks(layout))
        return -EINVAL;
    arb = calloc(1, sizeof(*arb));
    if (!arb)
        return -ENOMEM;
    arb->shm = shm;
    arb->layout = layout;
    arb->total_chunks = shm->num_pages * tb_shm_layout_num_chunks(layout);
    /*
     * A chunk is queued at most once until the service frees it, so room for
     * every chunk means giving a chunk back never needs to allocate.
     */
    arb->cap_commits = arb->total_chunks;
    arb->commits = calloc(arb->cap_commits, sizeof(*arb->commits));
    if (!arb->commits) {
        err = -ENOMEM;
        goto out;
    }
    err = -pthread_mutex_init(&arb->lock, NULL);
    if (err)
        goto out;
    *out = arb;
    return 0;
out:
    free(arb->commits);
    free(arb);
    return err;
}

void tb_arbiter_destroy(struct tb_arbiter *arb)
{
    if (!arb)
        return;
    pthread_mutex_destroy(&arb->lock);
    free(arb->commits);
    free(arb->chunk_patches);
    free(arb->patches);
    free(arb);
}

void tb_arbiter_set_notify(struct tb_arbiter *arb, tb_arbiter_notify_fn fn, void *ctx)
{
    pthread_mutex_lock(&arb->lock);
    arb->notify = fn;
    arb->notify_ctx = ctx;
    pthread_mutex_unlock(&arb->lock);
}

/* Try every chunk of @page; returns 0 and fills @out on success. */
static int try_page(struct tb_arbiter *arb, size_t page, const struct tb_shm_chunk_header *hdr,
                    struct tb_shm_chunk *out)
{
    const struct tb_shm_abi *abi = &arb->shm->abi;
    unsigned int layout, n, i;
    uint32_t bitmap;

    if (tb_shm_page_bitmap(abi, page, &bitmap))
        return -EINVAL;
    layout = (bitmap & TB_SHM_LAYOUT_MASK) >> TB_SHM_LAYOUT_SHIFT;
    if (layout == TB_SHM_LAYOUT_NONE) {
        /* Losing this race is fine: whoever won partitioned it for us. */
        tb_shm_try_partition_page(abi, page, arb->layout);
        if (tb_shm_page_bitmap(abi, page, &bitmap))
            return -EINVAL;
        layout = (bitmap & TB_SHM_LAYOUT_MASK) >> TB_SHM_LAYOUT_SHIFT;
    }
    n = tb_shm_layout_num_chunks(layout);
    for (i = 0; i < n; i++) {
        if (((bitmap >> (2 * i)) & 3u) != TB_SHM_CHUNK_FREE)
            continue;
        if (!tb_shm_try_acquire_chunk_for_writing(abi, page, i, hdr, out))
            return 0;
    }
    return -ENOSPC;
}

int tb_arbiter_get_chunk(struct tb_arbiter *arb, uint16_t writer_id, uint32_t chunk_id,
                         uint16_t packets, struct tb_shm_chunk *out)
{
    struct tb_shm_chunk_header hdr = {
        .chunk_id = chunk_id,
        .writer_id = writer_id,
        .packets = packets,
    };
    size_t num_pages, start, i;

    if (!arb || !out || writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID)
        return -EINVAL;
    num_pages = arb->shm->num_pages;
    start = atomic_load_explicit(&arb->next_page, memory_order_relaxed) % num_pages;
    for (i = 0; i < num_pages; i++) {
        size_t page = (start + i) % num_pages;

        if (!try_page(arb, page, &hdr, out)) {
            /* The next writer starts past us instead of racing on this page. */
            atomic_store_explicit(&arb->next_page, page + 1, memory_order_relaxed);
            return 0;
        }
    }
    atomic_fetch_add_explicit(&arb->missed[writer_id], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&arb->total_missed, 1, memory_order_relaxed);
    return -ENOSPC;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void notify(tb_arbiter_notify_fn fn, void *ctx, int what)
{
    if (fn && what)
        fn(ctx, what > 1);
}

int tb_arbiter_return_chunk(struct tb_arbiter *arb, const struct tb_shm_chunk *chunk,
                            uint32_t target_buffer)
{
    tb_arbiter_notify_fn fn;
    void *ctx;
    int err, what = 0;

    if (!arb || !chunk)
        return -EINVAL;
    err = tb_shm_release_chunk_as_complete(&arb->shm->abi, chunk->page, chunk->chunk);
    if (err) {
        tb_err("shm: giving back page %u chunk %u: %s", chunk->page, chunk->chunk, strerror(-err));
        return err;
    }
    pthread_mutex_lock(&arb->lock);
    if (arb->num_commits == arb->cap_commits) {
        /* Only if the service freed chunks we never committed: drop, loudly. */
        pthread_mutex_unlock(&arb->lock);
        tb_err("shm: commit batch full (%zu chunks), page %u chunk %u not committed",
               arb->cap_commits, chunk->page, chunk->chunk);
        return -ENOSPC;
    }
    if (!arb->num_commits && !arb->num_chunk_patches) {
        /* One clock read per batch, not per chunk. */
        arb->pending_since_ns = now_ns();
        what = 1;
    }
    arb->commits[arb->num_commits++] = (struct tb_arbiter_commit){
        .page = chunk->page,
        .chunk = chunk->chunk,
        .target_buffer = target_buffer,
    };
    if (!arb->urgent_sent && arb->num_commits > arb->total_chunks / 2) {
        arb->urgent_sent = true;
        what = 2;
    }
    fn = arb->notify;
    ctx = arb->notify_ctx;
    pthread_mutex_unlock(&arb->lock);
    notify(fn, ctx, what);
    return 0;
}

/* Grow *@arr (elements of @elem bytes) to hold @need; caller holds the lock. */
static int reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *p;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int tb_arbiter_add_patches(struct tb_arbiter *arb, uint32_t target_buffer, uint16_t writer_id,
                           uint32_t chunk_id, const struct tb_shm_patch *patches, size_t n,
                           bool has_more)
{
    tb_arbiter_notify_fn fn;
    void *ctx;
    int err, what = 0;

    if (!arb || (n && !patches) || n > TB_SHM_MAX_PATCHES_PER_CHUNK ||
        writer_id < TB_SHM_MIN_WRITER_ID || writer_id > TB_SHM_MAX_WRITER_ID)
        return -EINVAL;
    pthread_mutex_lock(&arb->lock);
    err = reserve((void **)&arb->chunk_patches, &arb->cap_chunk_patches, arb->num_chunk_patches + 1,
                  sizeof(*arb->chunk_patches));
    if (!err)
        err = reserve((void **)&arb->patches, &arb->cap_patches, arb->num_patches + n,
                      sizeof(*arb->patches));
    if (err) {
        pthread_mutex_unlock(&arb->lock);
        tb_err("shm: no memory to queue %zu patches of writer %u chunk %u", n, writer_id, chunk_id);
        return err;
    }
    /* Patches unblock the service's reading of a sequence: send soon. */
    if (!arb->num_chunk_patches)
        what = 2;
    if (!arb->num_commits && !arb->num_chunk_patches)
        arb->pending_since_ns = now_ns();
    arb->chunk_patches[arb->num_chunk_patches++] = (struct tb_arbiter_chunk_patches){
        .target_buffer = target_buffer,
        .chunk_id = chunk_id,
        .writer_id = writer_id,
        .has_more_patches = has_more,
        .first = (uint32_t)arb->num_patches,
        .count = (uint32_t)n,
    };
    if (n)
        memcpy(arb->patches + arb->num_patches, patches, n * sizeof(*patches));
    arb->num_patches += n;
    fn = arb->notify;
    ctx = arb->notify_ctx;
    pthread_mutex_unlock(&arb->lock);
    notify(fn, ctx, what);
    return 0;
}

/* Copy @n elements of @elem bytes; NULL copy for n == 0 is fine. */
static int dup_array(void **dst, const void *src, size_t n, size_t elem)
{
    *dst = NULL;
    if (!n)
        return 0;
    *dst = malloc(n * elem);
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, src, n * elem);
    return 0;
}

int tb_arbiter_take_commits(struct tb_arbiter *arb, struct tb_arbiter_batch **out)
{
    struct tb_arbiter_batch *b = NULL;
    uint64_t delay;
    int err = 0;

    *out = NULL;
    pthread_mutex_lock(&arb->lock);
    if (!arb->num_commits && !arb->num_chunk_patches)
        goto out;
    b = calloc(1, sizeof(*b));
    if (!b) {
        err = -ENOMEM;
        goto out;
    }
    err = dup_array((void **)&b->commits, arb->commits, arb->num_commits, sizeof(*b->commits));
    if (!err)
        err = dup_array((void **)&b->chunk_patches, arb->chunk_patches, arb->num_chunk_patches,
                        sizeof(*b->chunk_patches));
    if (!err)
        err = dup_array((void **)&b->patches, arb->patches, arb->num_patches, sizeof(*b->patches));
    if (err)
        goto out;
    delay = now_ns() - arb->pending_since_ns;
    if (delay > arb->max_delay_ns)
        arb->max_delay_ns = delay;
    b->num_commits = arb->num_commits;
    b->num_chunk_patches = arb->num_chunk_patches;
    b->num_patches = arb->num_patches;
    arb->num_commits = 0;
    arb->num_chunk_patches = 0;
    arb->num_patches = 0;
    arb->urgent_sent = false;
    *out = b;
    b = NULL;
out:
    pthread_mutex_unlock(&arb->lock);
    tb_arbiter_batch_free(b);
    if (err)
        tb_err("shm: no memory to take the commit batch");
    return err;
}

void tb_arbiter_batch_free(struct tb_arbiter_batch *batch)
{
    if (!batch)
        return;
    free(batch->commits);
    free(batch->chunk_patches);
    free(batch->patches);
    free(batch);
}

uint64_t tb_arbiter_chunks_missed(const struct tb_arbiter *arb, uint16_t writer_id)
{
    if (!arb || writer_id > TB_SHM_MAX_WRITER_ID)
        return 0;
    return atomic_load_explicit(&arb->missed[writer_id], memory_order_relaxed);
}

uint64_t tb_arbiter_total_chunks_missed(const struct tb_arbiter *arb)
{
    return arb ? atomic_load_explicit(&arb->total_missed, memory_order_relaxed) : 0;
}

size_t tb_arbiter_pending_commits(struct tb_arbiter *arb)
{
    size_t n;

    pthread_mutex_lock(&arb->lock);
    n = arb->num_commits;
    pthread_mutex_unlock(&arb->lock);
    return n;
}

uint64_t tb_arbiter_max_commit_delay_ns(struct tb_arbiter *arb, bool reset)
{
    uint64_t d;

    pthread_mutex_lock(&arb->lock);
    d = arb->max_delay_ns;
    if (reset)
        arb->max_delay_ns = 0;
    pthread_mutex_unlock(&arb->lock);
    return d;
}
