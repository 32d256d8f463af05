/*
 * trace_buffer.h - the service's central trace buffer (one per BufferConfig).
 *
 * The service copies chunks out of a producer's shared memory into a central
 * buffer and reads whole TracePackets back out of it. Everything stored here
 * came from an untrusted producer, so every chunk is validated on the way in
 * (writer id, size, record framing) and parsed again defensively on the way
 * out (patches can change bytes after validation).
 *
 * Model:
 *
 *   buffer --(producer_id, writer_id)--> sequence --(chunk_id, wraps)--> chunk
 *                                                      |
 *                                 records: varint size + packet or fragment
 *
 * - Memory is bounded: each stored chunk is charged tb_tbuf_chunk_footprint()
 *   bytes against the configured size (freed blocks kept for reuse count
 *   against it too). RING_BUFFER evicts the oldest stored chunks (by copy
 *   order) to make room; DISCARD rejects a chunk that does not fit.
 * - Reading drains: packets come out whole, once, in chunk/record order per
 *   sequence (sequences interleave in no particular order); fully read chunks
 *   are freed and their bytes become available again.
 * - A chunk copied again with the same (producer, writer, chunk_id) (scraped
 *   while BeingWritten, committed later) never yields a packet twice: a copy
 *   still stored is superseded, keeping its read position; a copy already
 *   read is recognised from the sequence's read history (the newest chunk id
 *   fully read, which of the 64 ids before it were read, and the record
 *   counts of the last 8 chunks read while incomplete), and the new copy
 *   exposes only records beyond those read: a committed copy may hold more
 *   records than its scrape, and only those come out (after packets of later
 *   chunks already read, so out of order). A chunk up to 64 ids behind the
 *   newest read that was never read is stored and read as new (flagged
 *   READ_GAP); further behind (up to 65536) it is taken for a re-copy of data
 *   read long ago and adds nothing; further still, for a writer that started
 *   over, and read as new. A writer id that is reused must be forgotten
 *   first (tb_tbuf_forget_writer()).
 * - Losses (overwrite, gaps, orphan fragments, corrupt chunks, aborted
 *   packets) set previous_packet_dropped on the next packet of the sequence.
 *
 * Context: not thread-safe; the service drives a buffer from its one thread.
 */
#ifndef TB_SERVICE_TRACE_BUFFER_H
#define TB_SERVICE_TRACE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tb_tbuf;

/* Values of TraceConfig.BufferConfig.fill_policy. */
enum tb_tbuf_policy {
    TB_TBUF_POLICY_UNSPECIFIED = 0, /* treated as RING_BUFFER */
    TB_TBUF_POLICY_RING_BUFFER = 1,
    TB_TBUF_POLICY_DISCARD = 2,
};

/* Largest chunk payload accepted: a Div1 chunk of a 64 KiB page minus header. */
#define TB_TBUF_MAX_CHUNK_PAYLOAD (65536u - 8u - 8u)
/* Most patches accepted for one chunk in one call (as traced). */
#define TB_TBUF_MAX_PATCHES 1024u
/* Bytes every stored chunk costs besides its payload (index metadata). */
#define TB_TBUF_CHUNK_OVERHEAD 64u

/* Chunk header flags as they sit in the 6 high bits of the packets u16. */
#define TB_TBUF_FLAG_CONT_FROM_PREV 0x1u
#define TB_TBUF_FLAG_CONT_ON_NEXT   0x2u
#define TB_TBUF_FLAG_NEEDS_PATCHING 0x4u

/*
 * previous_packet_dropped bits (TracePacket field 42). PRESENT is always set
 * together with the cause bits so readers that treat the field as a bool
 * still see the loss.
 */
#define TB_TBUF_DROP_PRESENT             0x001u
#define TB_TBUF_DROP_READ_GAP            0x002u
#define TB_TBUF_DROP_CHUNK_CORRUPTED     0x004u
#define TB_TBUF_DROP_ORPHAN_CONTINUATION 0x008u
#define TB_TBUF_DROP_REASSEMBLY_GAP      0x010u
#define TB_TBUF_DROP_BROKEN_CHAIN        0x020u
#define TB_TBUF_DROP_OVERWRITE           0x040u
#define TB_TBUF_DROP_WRITER_ABORT        0x080u

/* Counters with the meaning of Perfetto's TraceStats.BufferStats. */
struct tb_tbuf_stats {
    uint64_t buffer_size;              /* configured size in bytes */
    uint64_t bytes_written;            /* chunk bytes (header + payload) accepted */
    uint64_t bytes_overwritten;        /* chunk bytes evicted before being read */
    uint64_t bytes_read;               /* packet bytes returned by read_next */
    uint64_t chunks_written;           /* chunk copies accepted, rewrites included */
    uint64_t chunks_rewritten;         /* copies that superseded an earlier copy */
    uint64_t chunks_overwritten;       /* unread chunks evicted by the ring */
    uint64_t chunks_discarded;         /* chunks rejected: DISCARD full or too big */
    uint64_t chunks_read;              /* chunks fully consumed and freed */
    uint64_t patches_succeeded;        /* 4-byte patches applied */
    uint64_t patches_failed;           /* patches for missing chunks or bad offsets */
    uint64_t abi_violations;           /* malformed chunks or records */
    uint64_t trace_writer_packet_loss; /* drop sentinels (writer aborted) */
    uint64_t readaheads_succeeded;     /* fragmented packets reassembled */
    uint64_t readaheads_failed;        /* reassembly waited for a chunk */
    uint64_t bytes_used;               /* footprint currently charged (not in Perfetto) */
};

/* One contiguous piece of a packet; owned by the buffer. */
struct tb_tbuf_slice {
    const uint8_t *data;
    size_t len;
};

/*
 * A packet returned by tb_tbuf_read_next(). @slices points into the buffer's
 * own storage and stays valid until the next tb_tbuf_read_next(),
 * tb_tbuf_copy_chunk(), tb_tbuf_apply_patches() or tb_tbuf_free() on the same
 * buffer. The packet is the concatenation of the slices, without the record
 * size prefixes (one slice per fragment, each ≤ one chunk payload).
 */
struct tb_tbuf_packet {
    const struct tb_tbuf_slice *slices;
    size_t num_slices;
    size_t len;                       /* total bytes over all slices */
    uint32_t previous_packet_dropped; /* TB_TBUF_DROP_* bits, 0 if none */
    uint16_t producer_id;
    uint16_t writer_id;
};

/*
 * tb_tbuf_new() - create a central buffer.
 * @size_bytes: memory budget (BufferConfig.size_kb * 1024). Chunks whose
 *              footprint exceeds it are always discarded.
 * @policy: fill policy; unknown values are treated as RING_BUFFER.
 * @out: receives the buffer.
 *
 * Return: 0, -EINVAL if @size_bytes is 0 or @out is NULL, -ENOMEM.
 * Ownership: the caller frees *@out with tb_tbuf_free().
 */
int tb_tbuf_new(size_t size_bytes, enum tb_tbuf_policy policy, struct tb_tbuf **out);

/* tb_tbuf_free() - free a buffer and every chunk in it. Accepts NULL. */
void tb_tbuf_free(struct tb_tbuf *buf);

/*
 * tb_tbuf_chunk_footprint() - bytes a chunk with @payload_len payload bytes
 * is charged against the buffer size (payload + TB_TBUF_CHUNK_OVERHEAD).
 */
size_t tb_tbuf_chunk_footprint(size_t payload_len);

/*
 * tb_tbuf_copy_chunk() - copy one chunk into the buffer.
 * @buf: the buffer.
 * @producer_id: trusted producer id (assigned by the service).
 * @writer_id: from the chunk header; must be 1..32767.
 * @chunk_id: from the chunk header.
 * @packets: the header's packets u16 (count in bits 0-9, flags in 10-15).
 * @payload: chunk bytes after the 8-byte header, already copied out of the
 *           SMB by the caller (borrowed; copied, not kept).
 * @len: payload length, at most TB_TBUF_MAX_CHUNK_PAYLOAD.
 * @complete: false for a chunk scraped while BeingWritten: its last record is
 *            hidden and its CONT_ON_NEXT / NEEDS_PATCHING flags are ignored.
 *
 * Every record the chunk exposes must parse (varint size of at most 4 bytes
 * that fits in @len, or the drop sentinel). A copy of a key already stored,
 * or of a chunk already read on its sequence, supersedes it without repeating
 * packets already read (counted in chunks_rewritten); a scraped copy never
 * replaces a committed copy still stored.
 *
 * Return: 0 when stored; -EINVAL for a bad writer id, size or record framing
 * (counted in abi_violations); -ENOSPC when DISCARD is full or the chunk is
 * larger than the buffer (counted in chunks_discarded). The buffer is
 * unchanged on error. -ENOMEM on allocation failure.
 */
int tb_tbuf_copy_chunk(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                       uint32_t chunk_id, uint16_t packets, const uint8_t *payload, size_t len,
                       bool complete);

/* One CommitDataRequest.ChunkToPatch.Patch, borrowed from the request. */
struct tb_tbuf_patch {
    uint32_t offset;     /* from the start of the chunk payload */
    const uint8_t *data; /* must be exactly 4 bytes */
    size_t size;
};

/*
 * tb_tbuf_apply_patches() - patch a stored chunk in place.
 * @patches: @num patches; all are checked before any is applied
 *           (offset + 4 ≤ payload length, size == 4, @num ≤ TB_TBUF_MAX_PATCHES).
 * @has_more: false clears NEEDS_PATCHING so the chunk's last record becomes
 *            readable. If the patches were rejected, that last record is
 *            dropped instead (the sequence never stalls on a bad producer).
 *
 * Counts every patch in patches_succeeded or patches_failed.
 * Return: 0; -ENOENT if the chunk is not stored (never copied, overwritten,
 * or already read); -EINVAL if any patch is malformed (none applied).
 */
int tb_tbuf_apply_patches(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id,
                          uint32_t chunk_id, const struct tb_tbuf_patch *patches, size_t num,
                          bool has_more);

/*
 * tb_tbuf_read_next() - take the next whole packet out of the buffer.
 * @pkt: receives the packet; its slices are owned by @buf (see struct).
 *
 * Packets of one sequence come out in order; a sequence whose next record
 * waits for a patch or for the next fragment's chunk is skipped until then.
 * Chunks consumed are freed. Zero-length records are skipped silently.
 *
 * Return: 0 with *@pkt filled; -ENODATA when nothing is readable now.
 */
int tb_tbuf_read_next(struct tb_tbuf *buf, struct tb_tbuf_packet *pkt);

/*
 * tb_tbuf_packet_copy() - flatten a packet into @dst.
 * Return: bytes copied (pkt->len), or -ENOBUFS if @cap < pkt->len.
 */
long tb_tbuf_packet_copy(const struct tb_tbuf_packet *pkt, uint8_t *dst, size_t cap);

/*
 * tb_tbuf_forget_writer() - end the sequence of (@producer_id, @writer_id).
 * @buf: the buffer.
 * @producer_id: trusted producer id.
 * @writer_id: the writer id being released.
 *
 * Call on UnregisterTraceWriter (for every buffer of the producer's
 * sessions), so that the writer id, when the producer hands it out again,
 * starts a fresh sequence: its chunk ids restart and must not be taken for
 * re-copies of what the old writer wrote, and the old writer's losses must
 * not flag the new writer's first packet.
 *
 * Chunks of the old writer still stored stay readable and come out before
 * any packet of the new one (same producer_id/writer_id in the packet).
 * They no longer wait for patches or for a next fragment's chunk, since none
 * will come: such records are dropped and flagged. Later copies and patches
 * with this key go to the new sequence. Unknown keys are ignored.
 *
 * Context: the buffer's thread; packet slices returned before stay valid.
 */
void tb_tbuf_forget_writer(struct tb_tbuf *buf, uint16_t producer_id, uint16_t writer_id);

/*
 * tb_tbuf_forget_producer() - tb_tbuf_forget_writer() for every writer of
 * @producer_id. Call when the producer disconnects (before its id can be
 * given to another producer). Cost: one pass over the sequence table.
 */
void tb_tbuf_forget_producer(struct tb_tbuf *buf, uint16_t producer_id);

/* tb_tbuf_get_stats() - snapshot the counters into @out. */
void tb_tbuf_get_stats(const struct tb_tbuf *buf, struct tb_tbuf_stats *out);

/* tb_tbuf_size() - the configured size in bytes. */
size_t tb_tbuf_size(const struct tb_tbuf *buf);

/* tb_tbuf_get_policy() - the effective fill policy (never UNSPECIFIED). */
enum tb_tbuf_policy tb_tbuf_get_policy(const struct tb_tbuf *buf);

#endif /* TB_SERVICE_TRACE_BUFFER_H */
