/*
 * shm_arbiter.h - producer-side chunk allocation and commit batching.
 *
 * One arbiter sits over a producer's SMB. Trace writers (one per thread) ask
 * it for a free chunk when they start or fill one, and give the chunk back
 * when it is full or flushed. Given-back chunks and finished patches queue up
 * in a pending commit batch; the producer's IPC code takes the batch
 * (tb_arbiter_take_commits) and sends it as a CommitDataRequest.
 *
 * Chunk switches are the slow path (a CAS scan plus a small mutex for the
 * batch); writing records into an owned chunk never touches the arbiter.
 */
#ifndef TB_COMMON_SHM_ARBITER_H
#define TB_COMMON_SHM_ARBITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/shm.h"
#include "tracebpf/shm_abi.h"

struct tb_arbiter;

/* One CommitDataRequest.ChunksToMove entry. */
struct tb_arbiter_commit {
    uint32_t page;
    uint32_t chunk;
    uint32_t target_buffer;
};

/*
 * One CommitDataRequest.ChunkToPatch entry: patches[first .. first+count-1]
 * of the batch's patch array belong to it.
 */
struct tb_arbiter_chunk_patches {
    uint32_t target_buffer;
    uint32_t chunk_id;
    uint16_t writer_id;
    bool has_more_patches;
    uint32_t first;
    uint32_t count;
};

/*
 * struct tb_arbiter_batch - a taken commit batch, owned by the caller of
 * tb_arbiter_take_commits() and freed with tb_arbiter_batch_free(). Each
 * chunk given back since the previous take appears exactly once in
 * @commits, in the order it was given back.
 */
struct tb_arbiter_batch {
    struct tb_arbiter_commit *commits;
    size_t num_commits;
    struct tb_arbiter_chunk_patches *chunk_patches;
    size_t num_chunk_patches;
    struct tb_shm_patch *patches;
    size_t num_patches;
};

/*
 * Notification that a batch is worth sending. Called on the thread that gave
 * back the chunk or added the patch, with no arbiter lock held; it must be
 * quick and must not call back into the arbiter's chunk functions (posting
 * to an event loop or writing an eventfd is the intended use).
 * @urgent is false for the first commit after the batch was empty, true when
 * more than half of the SMB's chunks are pending or patches were queued.
 */
typedef void (*tb_arbiter_notify_fn)(void *ctx, bool urgent);

/*
 * tb_arbiter_create() - an arbiter over @shm.
 * @shm: the mapped SMB (borrowed; must outlive the arbiter).
 * @layout: how to partition free pages, TB_SHM_LAYOUT_DIV1..DIV14, or 0 for
 *        the default Div1 (what Perfetto producers use).
 * @out: the new arbiter.
 * Return: 0, -EINVAL, -ENOMEM. Ownership: free with tb_arbiter_destroy().
 */
int tb_arbiter_create(struct tb_shm *shm, unsigned int layout, struct tb_arbiter **out);

/*
 * tb_arbiter_destroy() - free @arb and any batch it still holds (the SMB is
 * untouched). NULL is a no-op. Context: no other thread may use @arb.
 */
void tb_arbiter_destroy(struct tb_arbiter *arb);

/*
 * tb_arbiter_set_notify() - install @fn (NULL to remove) with @ctx.
 * Context: call before writers start.
 */
void tb_arbiter_set_notify(struct tb_arbiter *arb, tb_arbiter_notify_fn fn, void *ctx);

/*
 * tb_arbiter_get_chunk() - take a free chunk for writer @writer_id.
 * @writer_id: 1..32767.
 * @chunk_id: the writer's next chunk id, written into the chunk header.
 * @packets: initial packets u16 (0, or count 1 | FIRST_CONTINUES for a
 *        fragment carried over).
 * @out: the chunk, now BeingWritten and owned by the caller until it is
 *        given back with tb_arbiter_return_chunk().
 *
 * Pages are scanned from a rotating start; unpartitioned pages are
 * partitioned with the arbiter's layout. A chunk is never handed out twice.
 * Return: 0; -ENOSPC when no chunk is free (counted for @writer_id); -EINVAL.
 * Context: any thread, lock-free.
 */
int tb_arbiter_get_chunk(struct tb_arbiter *arb, uint16_t writer_id, uint32_t chunk_id,
                         uint16_t packets, struct tb_shm_chunk *out);

/*
 * tb_arbiter_return_chunk() - give back a chunk from tb_arbiter_get_chunk():
 * BeingWritten -> Complete, then queue {page, chunk, @target_buffer} for
 * commit. The caller must not touch the chunk afterwards.
 * Return: 0; -EBUSY if the chunk was not BeingWritten (not queued); -EINVAL.
 * Context: any thread; takes the batch mutex briefly.
 */
int tb_arbiter_return_chunk(struct tb_arbiter *arb, const struct tb_shm_chunk *chunk,
                            uint32_t target_buffer);

/*
 * tb_arbiter_add_patches() - queue one ChunkToPatch entry for the next batch.
 * @patches/@n: the patches (copied; @n <= TB_SHM_MAX_PATCHES_PER_CHUNK).
 * @has_more: more patches for this chunk will follow in a later call.
 * Return: 0, -EINVAL, -ENOMEM (nothing queued).
 * Context: any thread; takes the batch mutex briefly.
 */
int tb_arbiter_add_patches(struct tb_arbiter *arb, uint32_t target_buffer, uint16_t writer_id,
                           uint32_t chunk_id, const struct tb_shm_patch *patches, size_t n,
                           bool has_more);

/*
 * tb_arbiter_take_commits() - take the pending batch, leaving it empty.
 * @out: the batch, or NULL when nothing is pending.
 * Return: 0 or -ENOMEM (the pending batch is kept for the next try).
 * Ownership: free *@out with tb_arbiter_batch_free().
 * Context: any thread (normally the producer's IPC thread).
 */
int tb_arbiter_take_commits(struct tb_arbiter *arb, struct tb_arbiter_batch **out);

/* tb_arbiter_batch_free() - free a taken batch. NULL is a no-op. */
void tb_arbiter_batch_free(struct tb_arbiter_batch *batch);

/*
 * tb_arbiter_chunks_missed() - how many times @writer_id could not get a
 * chunk because the SMB was full (loss to report in the trace).
 */
uint64_t tb_arbiter_chunks_missed(const struct tb_arbiter *arb, uint16_t writer_id);

/* tb_arbiter_total_chunks_missed() - the same summed over all writers. */
uint64_t tb_arbiter_total_chunks_missed(const struct tb_arbiter *arb);

/* tb_arbiter_pending_commits() - chunks queued in the pending batch now. */
size_t tb_arbiter_pending_commits(struct tb_arbiter *arb);

/**
 * tb_arbiter_max_commit_delay_ns() - the longest time a commit waited in
 * the pending batch: from the first chunk or patch queued into an empty
 * batch to tb_arbiter_take_commits() taking it (CLOCK_MONOTONIC).
 * @arb: the arbiter.
 * @reset: start a new measurement window after reading.
 *
 * Writers get chunks back only after the commit went out and the service
 * freed them; this is the producer's share of that delay, so a loss with a
 * small value here points at the service side.
 * Context: any thread.
 * Return: nanoseconds, 0 when nothing was taken since the last reset.
 */
uint64_t tb_arbiter_max_commit_delay_ns(struct tb_arbiter *arb, bool reset);

#endif /* TB_COMMON_SHM_ARBITER_H */
