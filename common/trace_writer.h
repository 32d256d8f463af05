/*
 * trace_writer.h - the per-thread TraceWriter: TracePackets into SMB chunks.
 *
 * One TraceWriter belongs to one thread (one packet sequence). It owns at
 * most one chunk at a time, taken from a chunk provider (normally the SMB
 * arbiter, common/shm_arbiter.h), and writes packets into it with the
 * streaming encoder of common/pb_writer.h:
 *
 *   tb_tw_begin_packet()  bump the chunk's packet count (release store),
 *                         reserve a 4-byte size prefix, hand out a tb_pbw
 *   ... tb_pbw_append_*() on the returned writer ...
 *   tb_tw_end_packet()    back-fill the size (1 byte when the packet is
 *                         small and in one chunk), then inflate the count
 *                         by one so a scraper may read the finished packet
 *
 * A packet that does not fit is fragmented: the current chunk gets
 * LAST_CONTINUES and goes back to the provider; a new chunk with chunk_id+1
 * starts with count 1 and FIRST_CONTINUES. Nested size fields that lie in a
 * chunk already given back become 4-byte patches (offset from that chunk's
 * payload start) and the chunk is flagged NEEDS_PATCHING; the patches go to
 * the provider when the packet ends, with has_more_patches=false.
 *
 * When no chunk is free the default policy drops the packet and counts it:
 * writes go to a scratch area, a fragment already in the SMB gets the drop
 * sentinel as its size, and the next packet that makes it carries
 * previous_packet_dropped (TracePacket field 42, DATA_LOSS_PRESENT|SMB_FULL).
 * The stall policy retries for a bounded time first.
 *
 * Fast path (a packet that fits the owned chunk): no syscall, no lock, no
 * allocation. Context: every function is for the owning thread only.
 */
#ifndef TB_COMMON_TRACE_WRITER_H
#define TB_COMMON_TRACE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pb_writer.h"
#include "tracebpf/shm_abi.h"

/* TracePacket.previous_packet_dropped and the bits this writer sets. */
#define TB_TW_FIELD_PREVIOUS_PACKET_DROPPED 42u
#define TB_TW_DROP_PRESENT                  1u
#define TB_TW_DROP_SMB_FULL                 256u

/* Most packets a writer puts in one chunk (the ABI allows 1023). */
#define TB_TW_MAX_PACKETS_PER_CHUNK 1022u

/*
 * struct tb_tw_chunk_ops - where a TraceWriter gets and returns chunks.
 * The arbiter implements it (tb_tw_arbiter_ops); tests may supply their own.
 * Every callback gets the @ctx given in struct tb_tw_opts.
 *
 * @get_chunk: take a Free chunk, make it BeingWritten with header
 *     {chunk_id, writer_id, packets} and fill @out. Return 0, or -ENOSPC
 *     when none is free (any other negative errno is treated the same).
 * @return_chunk: the writer is done with @chunk (BeingWritten -> Complete,
 *     queue it for commit into @target_buffer). Return 0 or negative errno.
 * @add_patches: queue @n patches for chunk @chunk_id of @writer_id
 *     (@patches borrowed for the call; @has_more false once the chunk needs
 *     no more). Return 0 or negative errno.
 */
struct tb_tw_chunk_ops {
    int (*get_chunk)(void *ctx, uint16_t writer_id, uint32_t chunk_id, uint16_t packets,
                     struct tb_shm_chunk *out);
    int (*return_chunk)(void *ctx, const struct tb_shm_chunk *chunk, uint32_t target_buffer);
    int (*add_patches)(void *ctx, uint32_t target_buffer, uint16_t writer_id, uint32_t chunk_id,
                       const struct tb_shm_patch *patches, size_t n, bool has_more);
};

/*
 * tb_tw_arbiter_ops - chunk ops over a struct tb_arbiter (pass the arbiter
 * as tb_tw_opts.ops_ctx).
 */
extern const struct tb_tw_chunk_ops tb_tw_arbiter_ops;

enum tb_tw_policy {
    TB_TW_DROP = 0, /* no chunk: drop the packet, count it (default) */
    TB_TW_STALL,    /* no chunk: retry up to stall_timeout_ms, then drop */
};

/*
 * struct tb_tw_opts - how to create a TraceWriter.
 * @ops, @ops_ctx: the chunk provider (borrowed; must outlive the writer).
 * @writer_id: 1..32767, unique within the producer.
 * @target_buffer: global BufferID from the data source config (non-zero).
 * @first_chunk_id: chunk_id of the first chunk (normally 0).
 * @policy: what to do when no chunk is free.
 * @stall_timeout_ms: TB_TW_STALL only; 0 means 1000 ms.
 * @no_drop_mark: do not write previous_packet_dropped after a loss (the
 *     caller reads tb_tw_take_drop_mark() and writes it itself).
 * @no_shrink: always keep 4-byte size prefixes.
 */
struct tb_tw_opts {
    const struct tb_tw_chunk_ops *ops;
    void *ops_ctx;
    uint16_t writer_id;
    uint32_t target_buffer;
    uint32_t first_chunk_id;
    enum tb_tw_policy policy;
    uint32_t stall_timeout_ms;
    bool no_drop_mark;
    bool no_shrink;
};

/* Loss and volume counters of one writer (tb_tw_stats()). */
struct tb_tw_stats {
    uint64_t packets_written; /* packets finished in the SMB */
    uint64_t packets_dropped; /* packets lost: no chunk, or encoder error */
    uint64_t chunks_missed;   /* get_chunk failures */
    uint64_t chunks_returned; /* chunks given back */
    uint64_t fragments;       /* chunk switches inside a packet */
    uint64_t patches;         /* patches handed to the provider */
    uint64_t bytes_written;   /* packet payload bytes that made it */
};

struct tb_tw_patch;

/*
 * struct tb_tw - one TraceWriter. Private to trace_writer.c: the layout is
 * in this header only so tb_tw_fast_begin()/tb_tw_fast_commit() can be
 * inlined into an encoder's hot path. Do not touch the fields.
 */
struct tb_tw {
    struct tb_pbw pbw;
    struct tb_tw_opts o;
    struct tb_shm_chunk chunk; /* valid while has_chunk */
    uint8_t *chunk_end;
    /*
     * Where the next record starts; while a packet is open, the size prefix
     * of its open fragment, whose bytes follow at frag_start().
     */
    uint8_t *wp;
    uint32_t next_chunk_id; /* the owned chunk's id is one less */
    uint32_t drop_mark;     /* previous_packet_dropped bits owed */
    uint16_t count;
    uint8_t flags;
    bool has_chunk;
    bool inflated; /* count includes a record not started yet */
    bool in_packet;
    bool dropping;   /* the open packet is being discarded */
    bool fragmented; /* the open packet left at least one chunk behind */
    /*
     * Sizes left behind in returned chunks, for the open packet. Each open
     * slot moves at most once, but a packet whose successive nested fields
     * each cross a chunk end leaves one per crossing, so this grows.
     */
    struct tb_tw_patch *patches;
    uint32_t npatch, cap_patch;
    struct tb_tw_stats st;
};

/*
 * tb_tw_create() - a TraceWriter with no chunk yet (taken on first use).
 * @opts: options (copied).
 * @out: the writer.
 * Return: 0, -EINVAL (no ops, bad writer_id, target_buffer 0), -ENOMEM.
 * Ownership: free with tb_tw_destroy().
 */
int tb_tw_create(const struct tb_tw_opts *opts, struct tb_tw **out);

/*
 * tb_tw_destroy() - flush (tb_tw_flush()) and free @tw. NULL is a no-op.
 */
void tb_tw_destroy(struct tb_tw *tw);

/*
 * tb_tw_begin_packet() - start a TracePacket.
 * Ends the previous packet first if it is still open.
 * Return: the encoder for the packet's fields, owned by @tw and valid until
 * tb_tw_end_packet(). Never NULL: when the packet is being dropped the
 * encoder is in its error state and the bytes go nowhere.
 */
struct tb_pbw *tb_tw_begin_packet(struct tb_tw *tw);

/*
 * tb_tw_end_packet() - finish the open packet: back-fill its size, make it
 * readable for scraping, send its patches.
 * Return: 0 if the packet is in the SMB; -ENOSPC if it was dropped for lack
 * of a chunk; the encoder's error (e.g. -E2BIG, -EMSGSIZE) or -EPROTO for
 * unbalanced nested fields (the packet is then dropped: its size prefix is
 * the drop sentinel); -EINVAL if no packet was open. Drops are counted.
 */
int tb_tw_end_packet(struct tb_tw *tw);

/*
 * tb_tw_flush() - end the open packet, if any, and give the current chunk
 * back as complete (its commit is then queued by the provider).
 * Return: 0 or the provider's negative errno.
 */
int tb_tw_flush(struct tb_tw *tw);

/*
 * tb_tw_take_drop_mark() - the previous_packet_dropped bits owed to the
 * next packet, cleared by this call. With no_drop_mark the caller writes
 * them; otherwise the writer already does and this returns 0 in practice.
 */
uint32_t tb_tw_take_drop_mark(struct tb_tw *tw);

/* tb_tw_stats() - copy the writer's counters into @out. */
void tb_tw_stats(const struct tb_tw *tw, struct tb_tw_stats *out);

/* tb_tw_writer_id() - the writer id given at creation. */
uint16_t tb_tw_writer_id(const struct tb_tw *tw);

/* tb_tw_next_chunk_id() - chunk_id the writer will use for its next chunk. */
uint32_t tb_tw_next_chunk_id(const struct tb_tw *tw);

/* Largest packet tb_tw_fast_begin() can make room for (1-byte size prefix). */
#define TB_TW_FAST_MAX 127u

/*
 * tb_tw_fast_begin() - room for one whole small packet of at most @max
 * bytes (<= TB_TW_FAST_MAX; a constant at the call site) in the owned chunk,
 * for encoders that write a packet's bytes directly (no tb_pbw, no nested
 * bookkeeping). Finish with tb_tw_fast_commit(); nothing else may run on
 * @tw in between.
 * Return: where the packet's first byte goes (@max bytes are free there),
 * or NULL when the general path must be taken: no chunk, a
 * packet open, the chunk's packet count or room exhausted, a drop mark
 * owed, or no_shrink set.
 * Context: owning thread; no lock, syscall or allocation.
 */
static inline uint8_t *tb_tw_fast_begin(struct tb_tw *tw, size_t max)
{
    if (__builtin_expect(!tw->has_chunk || tw->in_packet || tw->o.no_shrink, 0))
        return NULL;
    if (__builtin_expect(tw->drop_mark && !tw->o.no_drop_mark, 0))
        return NULL;
    if (__builtin_expect(!tw->inflated && tw->count >= TB_TW_MAX_PACKETS_PER_CHUNK, 0))
        return NULL;
    if (__builtin_expect(max > TB_TW_FAST_MAX || (size_t)(tw->chunk_end - tw->wp) < 1u + max, 0))
        return NULL;
    return tw->wp + 1;
}

/*
 * tb_tw_fast_commit() - make the packet written at tb_tw_fast_begin()'s
 * pointer up to @end (at most the @max given there, at least 1) a record
 * of the chunk, readable by a scraper, exactly as tb_tw_end_packet() would
 * leave a small packet.
 * Context: owning thread, right after tb_tw_fast_begin() returned non-NULL.
 */
static inline void tb_tw_fast_commit(struct tb_tw *tw, uint8_t *end)
{
    uint8_t *rec = tw->wp;
    uint32_t size = (uint32_t)(end - rec - 1);
    struct tb_shm_chunk_header *hdr = tb_shm_chunk_hdr(&tw->chunk);

    rec[0] = (uint8_t)size;
    tw->wp = end;
    /* Counted before it is complete is fine: a scraper skips the last
     * record. The next record is counted ahead (inflated) so this one is
     * not last any more. */
    if (!tw->inflated)
        tw->count++;
    if (tw->count < TB_TW_MAX_PACKETS_PER_CHUNK && end < tw->chunk_end) {
        tw->count++;
        tw->inflated = true;
    } else {
        tw->inflated = false;
    }
    tb_shm_chunk_packets_store(hdr, tb_shm_packets_make(tw->count, tw->flags));
    tw->st.packets_written++;
    tw->st.bytes_written += size;
}

#endif /* TB_COMMON_TRACE_WRITER_H */
