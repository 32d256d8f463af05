/*
 * shm_abi.h - the shared-memory ABI between a producer and traced-bpf.
 *
 * This header is the design document of the shared memory buffer (SMB) and
 * the only contract the producer and the service share about its bytes. It is
 * wire-compatible with Perfetto's SMB, so a Perfetto SDK app can write into an
 * SMB that traced-bpf created and the service reads it with these functions.
 *
 * Overview
 * --------
 * The service creates one SMB per producer connection (a sealed memfd, see
 * common/shm.h), sends its fd to the producer, and both map it. The SMB is cut
 * into equal pages; a page is cut into 1..14 equal chunks; a chunk holds a
 * sequence of length-prefixed records, each a TracePacket or a fragment of one.
 *
 *   SMB (size = num_pages * page_size, 256 KiB default, 32 MiB max)
 *   +------------+------------+------------+-----+------------+
 *   |   page 0   |   page 1   |   page 2   | ... |  page N-1  |
 *   +------------+------------+------------+-----+------------+
 *         |
 *         v  page (4, 8, 16 or 32 KiB)
 *   +--------+-----------+-----------+-----+-----------+------+
 *   | header |  chunk 0  |  chunk 1  | ... | chunk n-1 | tail |
 *   | 8 B    |           |           |     |           |unused|
 *   +--------+-----------+-----------+-----+-----------+------+
 *     u32 header_bitmap: 2 state bits per chunk + 3 layout bits
 *     u32 reserved
 *                  |
 *                  v  chunk (chunk_size bytes, 4-byte aligned)
 *   +------------------------+------+----------+------+------+-------+
 *   | chunk header 8 B       | size | packet 0 | size | pkt1 | ...   |
 *   | chunk_id  u32          | 1-4B |  bytes   | 1-4B |      |       |
 *   | writer_id u16          +------+----------+------+------+-------+
 *   | packets   u16 (count:10 | flags:6)      payload: `count` records
 *   +------------------------+
 *
 * A record is a varint size (normally a 4-byte redundant varint such as
 * 85 80 80 00 for 5, sometimes shrunk to 1 byte) followed by that many bytes.
 * There is no alignment between records; bytes after the last record are
 * undefined, so readers stop after `count` records. Size 0 is an empty record
 * (inflated-count padding) and FF FF FF 7F (TB_SHM_PACKET_SIZE_DROP) means the
 * writer aborted that packet.
 *
 * A packet that does not fit in one chunk is split over consecutive chunk_ids
 * of the same writer: the chunk with the first fragment has flag
 * LAST_CONTINUES, middle chunks have both flags and count 1, the last has
 * FIRST_CONTINUES. Nested-message sizes that lie in a chunk already handed to
 * the service are fixed by out-of-band patches (4 bytes at an offset counted
 * from the start of the chunk payload); such a chunk carries NEEDS_PATCHING.
 *
 * Chunk state machine (2 bits per chunk in the page header bitmap)
 * ----------------------------------------------------------------
 *
 *            producer: try_acquire_chunk_for_writing (CAS)
 *     +------+ ------------------------------------> +---------------+
 *     | Free |                                        | BeingWritten  |
 *     +------+ <---------+                            +---------------+
 *        ^               |                                   |
 *        |   service: release_chunk_as_free          producer: release_
 *        |   (clear header, CAS, de-partition        chunk_as_complete (CAS)
 *        |    the page when all chunks are Free)             v
 *     +-----------+   service: try_acquire_chunk   +---------------+
 *     | BeingRead | <----------------------------- |   Complete    |
 *     +-----------+        _for_reading (CAS)      +---------------+
 *
 * Who may write what:
 *  - Free: nobody writes the chunk. The producer may acquire it, or (when the
 *    page's every chunk is Free and the bitmap is 0) re-partition the page.
 *  - BeingWritten: exactly one producer writer thread owns the chunk's header
 *    and payload. The service only reads it when scraping, never frees it.
 *  - Complete: nobody writes. The service may acquire it for reading once the
 *    producer has named it in CommitData.
 *  - BeingRead: the service copies the chunk, then clears its header and
 *    frees it. The producer must not touch it.
 * The producer alone moves a page from unpartitioned (bitmap 0) to a layout.
 * Every transition is a compare-and-swap on the whole 32-bit bitmap, so
 * concurrent transitions of different chunks of one page never lose updates.
 * The service treats every byte of the SMB as hostile: page and chunk indices
 * come from the producer, and a producer may scribble over the bitmap at any
 * time. The functions below validate indices and fail on illegal transitions
 * instead of corrupting state.
 */
#ifndef TRACEBPF_SHM_ABI_H
#define TRACEBPF_SHM_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the traced-bpf shared-memory ABI is little-endian only"
#endif

/* Sizes and limits. */
#define TB_SHM_PAGE_HEADER_SIZE      8u
#define TB_SHM_CHUNK_HEADER_SIZE     8u
#define TB_SHM_MAX_CHUNKS_PER_PAGE   14u
#define TB_SHM_MIN_PAGE_SIZE         4096u
#define TB_SHM_MAX_PAGE_SIZE         32768u /* the service's cap; the ABI allows 64 KiB */
#define TB_SHM_DEFAULT_SIZE          (256u * 1024u)
#define TB_SHM_DEFAULT_PAGE_SIZE     4096u
#define TB_SHM_MAX_SIZE              (32u * 1024u * 1024u)
#define TB_SHM_PACKET_HEADER_SIZE    4u          /* redundant varint size prefix */
#define TB_SHM_PACKET_SIZE_DROP      0x0FFFFFFFu /* bytes FF FF FF 7F: writer aborted */
#define TB_SHM_MAX_PACKET_SIZE       0x0FFFFFFEu /* per fragment */
#define TB_SHM_MAX_PACKETS_PER_CHUNK 1023u
#define TB_SHM_MIN_WRITER_ID         1u
#define TB_SHM_MAX_WRITER_ID         32767u
#define TB_SHM_PATCH_SIZE            4u    /* a patch writes exactly 4 bytes */
#define TB_SHM_MAX_PATCHES_PER_CHUNK 1024u /* per ChunkToPatch entry */

/* Page header bitmap: bits 2i+1:2i state of chunk i, bits 30:28 layout. */
#define TB_SHM_LAYOUT_SHIFT      28u
#define TB_SHM_LAYOUT_MASK       0x70000000u
#define TB_SHM_CHUNK_STATES_MASK 0x0FFFFFFFu

enum tb_shm_chunk_state {
    TB_SHM_CHUNK_FREE = 0,
    TB_SHM_CHUNK_BEING_WRITTEN = 1,
    TB_SHM_CHUNK_BEING_READ = 2,
    TB_SHM_CHUNK_COMPLETE = 3,
};

/* Layout codes in bits 30:28 of the bitmap; 6 and 7 are reserved (0 chunks). */
enum tb_shm_page_layout {
    TB_SHM_LAYOUT_NONE = 0, /* page not partitioned, free */
    TB_SHM_LAYOUT_DIV1 = 1,
    TB_SHM_LAYOUT_DIV2 = 2,
    TB_SHM_LAYOUT_DIV4 = 3,
    TB_SHM_LAYOUT_DIV7 = 4,
    TB_SHM_LAYOUT_DIV14 = 5,
};
#define TB_SHM_NUM_LAYOUTS 8u

/* Chunk flags: values of the 6-bit flags field (raw u16 bit = flag << 10). */
#define TB_SHM_FLAG_FIRST_CONTINUES 0x1u /* first record continues chunk_id-1 */
#define TB_SHM_FLAG_LAST_CONTINUES  0x2u /* last record continues in chunk_id+1 */
#define TB_SHM_FLAG_NEEDS_PATCHING  0x4u /* last record waits for patches */
#define TB_SHM_FLAGS_KNOWN          0x7u
#define TB_SHM_PACKETS_COUNT_MASK   0x03FFu
#define TB_SHM_PACKETS_FLAGS_SHIFT  10u
#define TB_SHM_PACKETS_FLAGS_MASK   0x3Fu

/*
 * Layouts below: explicitly sized types only, little-endian, no padding.
 * The structs are overlaid on shared memory; offsets are pinned by the
 * static asserts and must never change.
 */

/* At the start of every page. header_bitmap is only accessed atomically. */
struct tb_shm_page_header {
    uint32_t header_bitmap;
    uint32_t reserved;
};

/*
 * At the start of every chunk. chunk_id and writer_id are written once when
 * the chunk goes Free -> BeingWritten; packets (count in bits 9:0, flags in
 * bits 15:10) is updated by the owning writer with release stores and read by
 * the service (scraping) with acquire loads: use the helpers below.
 */
struct tb_shm_chunk_header {
    uint32_t chunk_id;  /* per (producer, writer), wraps at 2^32 */
    uint16_t writer_id; /* 1..32767; 0 = cleared */
    uint16_t packets;   /* count:10 | flags:6 */
};

/* One out-of-band patch: 4 bytes at @offset from the chunk payload start. */
struct tb_shm_patch {
    uint32_t offset;
    uint8_t data[TB_SHM_PATCH_SIZE];
};

_Static_assert(sizeof(struct tb_shm_page_header) == TB_SHM_PAGE_HEADER_SIZE, "page header");
_Static_assert(offsetof(struct tb_shm_page_header, header_bitmap) == 0, "bitmap at +0");
_Static_assert(offsetof(struct tb_shm_page_header, reserved) == 4, "reserved at +4");
_Static_assert(sizeof(struct tb_shm_chunk_header) == TB_SHM_CHUNK_HEADER_SIZE, "chunk header");
_Static_assert(offsetof(struct tb_shm_chunk_header, chunk_id) == 0, "chunk_id at +0");
_Static_assert(offsetof(struct tb_shm_chunk_header, writer_id) == 4, "writer_id at +4");
_Static_assert(offsetof(struct tb_shm_chunk_header, packets) == 6, "packets at +6");
_Static_assert(sizeof(struct tb_shm_patch) == 8, "patch");

/* tb_shm_packets_count() - number of records from a chunk header's packets u16. */
static inline uint16_t tb_shm_packets_count(uint16_t packets)
{
    return packets & TB_SHM_PACKETS_COUNT_MASK;
}

/* tb_shm_packets_flags() - the 6-bit flags field (TB_SHM_FLAG_*) of @packets. */
static inline uint8_t tb_shm_packets_flags(uint16_t packets)
{
    return (uint8_t)((packets >> TB_SHM_PACKETS_FLAGS_SHIFT) & TB_SHM_PACKETS_FLAGS_MASK);
}

/* tb_shm_packets_make() - pack @count (<= 1023) and @flags into the u16. */
static inline uint16_t tb_shm_packets_make(uint16_t count, uint8_t flags)
{
    return (uint16_t)((count & TB_SHM_PACKETS_COUNT_MASK) |
                      ((flags & TB_SHM_PACKETS_FLAGS_MASK) << TB_SHM_PACKETS_FLAGS_SHIFT));
}

/*
 * tb_shm_chunk_packets_load() - acquire-load of a chunk header's packets u16.
 * Context: any thread; pairs with tb_shm_chunk_packets_store().
 */
static inline uint16_t tb_shm_chunk_packets_load(const struct tb_shm_chunk_header *hdr)
{
    return __atomic_load_n(&hdr->packets, __ATOMIC_ACQUIRE);
}

/*
 * tb_shm_chunk_packets_store() - release-store of a chunk header's packets u16,
 * so the record bytes written before it are visible to a scraper that reads
 * the new count. Context: only the writer that owns the chunk.
 */
static inline void tb_shm_chunk_packets_store(struct tb_shm_chunk_header *hdr, uint16_t packets)
{
    __atomic_store_n(&hdr->packets, packets, __ATOMIC_RELEASE);
}

/*
 * tb_shm_write_size_prefix() - encode @size (< 2^28) as a 4-byte redundant
 * varint at @dst (bytes 0-2 carry the continuation bit, byte 3 does not).
 */
static inline void tb_shm_write_size_prefix(uint8_t *dst, uint32_t size)
{
    dst[0] = (uint8_t)((size & 0x7F) | 0x80);
    dst[1] = (uint8_t)(((size >> 7) & 0x7F) | 0x80);
    dst[2] = (uint8_t)(((size >> 14) & 0x7F) | 0x80);
    dst[3] = (uint8_t)((size >> 21) & 0x7F);
}

/*
 * struct tb_shm_abi - the geometry of one mapped SMB. Filled by
 * tb_shm_abi_init() (or embedded in struct tb_shm, common/shm.h). @base is
 * borrowed: the mapping belongs to whoever mapped it.
 */
struct tb_shm_abi {
    uint8_t *base;
    size_t size;
    size_t page_size;
    size_t num_pages;
};

/*
 * struct tb_shm_chunk - a chunk located in the SMB. @begin points at the chunk
 * header inside the mapping (borrowed, valid while the SMB is mapped); @size
 * includes the 8-byte header.
 */
struct tb_shm_chunk {
    uint8_t *begin;
    uint32_t size;
    uint32_t page;
    uint32_t chunk;
};

/* tb_shm_chunk_hdr() - the header at the start of @c (inside the SMB). */
static inline struct tb_shm_chunk_header *tb_shm_chunk_hdr(const struct tb_shm_chunk *c)
{
    return (struct tb_shm_chunk_header *)(void *)c->begin;
}

/* tb_shm_chunk_payload() - first payload byte of @c (header + 8). */
static inline uint8_t *tb_shm_chunk_payload(const struct tb_shm_chunk *c)
{
    return c->begin + TB_SHM_CHUNK_HEADER_SIZE;
}

/* tb_shm_chunk_payload_size() - payload bytes of @c. */
static inline uint32_t tb_shm_chunk_payload_size(const struct tb_shm_chunk *c)
{
    return c->size - TB_SHM_CHUNK_HEADER_SIZE;
}

/*
 * Functions below are implemented in common/shm_abi.c. Unless stated,
 * they return 0 or a negative errno:
 *   -EINVAL  page out of range, page not partitioned (or reserved layout),
 *            chunk index >= the page's chunk count, bad argument;
 *   -EBUSY   the chunk (or page) is not in the state the transition starts
 *            from; nothing was changed.
 * Context: any thread; lock-free (CAS loops retry only while other chunks of
 * the same page change concurrently).
 */

/*
 * tb_shm_abi_init() - describe an SMB mapped at @base.
 * @abi: filled on success.
 * @base: start of the mapping (borrowed; 4 KiB aligned).
 * @size: bytes mapped, a multiple of @page_size.
 * @page_size: 4, 8, 16 or 32 KiB.
 * Return: 0 or -EINVAL.
 */
int tb_shm_abi_init(struct tb_shm_abi *abi, void *base, size_t size, size_t page_size);

/* tb_shm_page_size_valid() - true for 4, 8, 16 and 32 KiB. */
bool tb_shm_page_size_valid(size_t page_size);

/* tb_shm_layout_num_chunks() - chunks per page for @layout (0 for NONE/6/7). */
unsigned int tb_shm_layout_num_chunks(unsigned int layout);

/*
 * tb_shm_layout_chunk_size() - bytes per chunk (header included) for @layout
 * in a page of @page_size: the largest multiple of 4 <= (page_size - 8) / n.
 * Return: the size, or 0 for a layout with no chunks.
 */
size_t tb_shm_layout_chunk_size(unsigned int layout, size_t page_size);

/*
 * tb_shm_page_bitmap() - acquire-load of page @page's header bitmap.
 * Return: the bitmap in @out and 0, or -EINVAL for a page out of range.
 */
int tb_shm_page_bitmap(const struct tb_shm_abi *abi, size_t page, uint32_t *out);

/*
 * tb_shm_page_layout() - the layout code of page @page.
 * Return: 0..7 (0 = not partitioned) or -EINVAL.
 */
int tb_shm_page_layout(const struct tb_shm_abi *abi, size_t page);

/*
 * tb_shm_chunk_state() - the state of chunk @chunk of page @page.
 * Return: enum tb_shm_chunk_state, or -EINVAL (bad page/chunk, unpartitioned).
 */
int tb_shm_chunk_state(const struct tb_shm_abi *abi, size_t page, size_t chunk);

/*
 * tb_shm_get_chunk() - locate chunk @chunk of page @page without changing its
 * state (for scraping and tests). @out is filled on success.
 */
int tb_shm_get_chunk(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                     struct tb_shm_chunk *out);

/*
 * tb_shm_try_partition_page() - producer: CAS page @page from unpartitioned
 * (bitmap 0) to @layout (TB_SHM_LAYOUT_DIV1..DIV14), all chunks Free.
 * Return: 0; -EBUSY if the page is already partitioned; -EINVAL.
 */
int tb_shm_try_partition_page(const struct tb_shm_abi *abi, size_t page, unsigned int layout);

/*
 * tb_shm_try_acquire_chunk_for_writing() - producer: Free -> BeingWritten,
 * then write @hdr (chunk_id, writer_id, packets) into the chunk header.
 * @out: filled with the chunk on success (may be NULL).
 * Return: 0; -EBUSY if not Free; -EINVAL (bad indices, writer_id 0 or
 * > 32767, NULL @hdr).
 */
int tb_shm_try_acquire_chunk_for_writing(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                                         const struct tb_shm_chunk_header *hdr,
                                         struct tb_shm_chunk *out);

/*
 * tb_shm_release_chunk_as_complete() - producer: BeingWritten -> Complete.
 * Return: 0; -EBUSY if not BeingWritten; -EINVAL.
 */
int tb_shm_release_chunk_as_complete(const struct tb_shm_abi *abi, size_t page, size_t chunk);

/*
 * tb_shm_try_acquire_chunk_for_reading() - service: Complete -> BeingRead.
 * @out: filled on success (may be NULL); copy out at most @out->size bytes.
 * Return: 0; -EBUSY if not Complete; -EINVAL.
 */
int tb_shm_try_acquire_chunk_for_reading(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                                         struct tb_shm_chunk *out);

/*
 * tb_shm_release_chunk_as_free() - service: clear the chunk header, then
 * BeingRead -> Free; when every chunk of the page is then Free the whole
 * bitmap is reset to 0 (page de-partitioned) in the same CAS.
 * Return: 0; -EBUSY if not BeingRead (header left untouched); -EINVAL.
 */
int tb_shm_release_chunk_as_free(const struct tb_shm_abi *abi, size_t page, size_t chunk);

#ifdef __cplusplus
}
#endif

#endif /* TRACEBPF_SHM_ABI_H */
