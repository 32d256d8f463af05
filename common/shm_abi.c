/*
 * shm_abi.c - the page/chunk state machine of the shared memory buffer.
 *
 * Owns every access to a page header bitmap: partitioning, the four chunk
 * state transitions and the read-only queries. The layout and the rules are
 * documented in include/tracebpf/shm_abi.h. Indices passed in may come from
 * a hostile producer (CommitData page/chunk numbers), and the bitmap itself
 * lives in memory the producer can write at any time, so every function
 * re-derives the layout from one atomic snapshot and checks it before use.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "tracebpf/shm_abi.h"

static const uint8_t layout_chunks[TB_SHM_NUM_LAYOUTS] = {0, 1, 2, 4, 7, 14, 0, 0};

/*
 * The bitmap is declared uint32_t in the ABI struct (it is shared memory laid
 * out by the ABI); _Atomic uint32_t has the same size and representation on
 * every target we build for, so view it as such.
 */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "atomic u32 layout");

static _Atomic uint32_t *page_bitmap(const struct tb_shm_abi *abi, size_t page)
{
    return (_Atomic uint32_t *)(void *)(abi->base + page * abi->page_size);
}

static inline unsigned int bitmap_layout(uint32_t bitmap)
{
    return (bitmap & TB_SHM_LAYOUT_MASK) >> TB_SHM_LAYOUT_SHIFT;
}

static inline unsigned int bitmap_chunk_state(uint32_t bitmap, size_t chunk)
{
    return (bitmap >> (chunk * 2)) & 0x3u;
}

static inline uint32_t bitmap_set_state(uint32_t bitmap, size_t chunk, unsigned int state)
{
    bitmap &= ~(0x3u << (chunk * 2));
    return bitmap | ((uint32_t)state << (chunk * 2));
}

bool tb_shm_page_size_valid(size_t page_size)
{
    return page_size == 4096 || page_size == 8192 || page_size == 16384 || page_size == 32768;
}

unsigned int tb_shm_layout_num_chunks(unsigned int layout)
{
    if (layout >= TB_SHM_NUM_LAYOUTS)
        return 0;
    return layout_chunks[layout];
}

size_t tb_shm_layout_chunk_size(unsigned int layout, size_t page_size)
{
    unsigned int n = tb_shm_layout_num_chunks(layout);

    if (!n || page_size <= TB_SHM_PAGE_HEADER_SIZE)
        return 0;
    return ((page_size - TB_SHM_PAGE_HEADER_SIZE) / n) & ~(size_t)3;
}

int tb_shm_abi_init(struct tb_shm_abi *abi, void *base, size_t size, size_t page_size)
{
    if (!abi || !base || !tb_shm_page_size_valid(page_size) || !size || size % page_size ||
        ((uintptr_t)base & (TB_SHM_MIN_PAGE_SIZE - 1)))
        return -EINVAL;
    abi->base = base;
    abi->size = size;
    abi->page_size = page_size;
    abi->num_pages = size / page_size;
    return 0;
}

int tb_shm_page_bitmap(const struct tb_shm_abi *abi, size_t page, uint32_t *out)
{
    if (!abi || page >= abi->num_pages || !out)
        return -EINVAL;
    *out = atomic_load_explicit(page_bitmap(abi, page), memory_order_acquire);
    return 0;
}

int tb_shm_page_layout(const struct tb_shm_abi *abi, size_t page)
{
    uint32_t bitmap;
    int err = tb_shm_page_bitmap(abi, page, &bitmap);

    return err ? err : (int)bitmap_layout(bitmap);
}

/* True if @chunk exists in a page whose bitmap is @bitmap. */
static bool chunk_in_layout(uint32_t bitmap, size_t chunk)
{
    return chunk < tb_shm_layout_num_chunks(bitmap_layout(bitmap));
}

static void fill_chunk(const struct tb_shm_abi *abi, size_t page, size_t chunk, unsigned int layout,
                       struct tb_shm_chunk *out)
{
    size_t chunk_size = tb_shm_layout_chunk_size(layout, abi->page_size);

    out->begin = abi->base + page * abi->page_size + TB_SHM_PAGE_HEADER_SIZE + chunk * chunk_size;
    out->size = (uint32_t)chunk_size;
    out->page = (uint32_t)page;
    out->chunk = (uint32_t)chunk;
}

int tb_shm_chunk_state(const struct tb_shm_abi *abi, size_t page, size_t chunk)
{
    uint32_t bitmap;
    int err = tb_shm_page_bitmap(abi, page, &bitmap);

    if (err)
        return err;
    if (!chunk_in_layout(bitmap, chunk))
        return -EINVAL;
    return (int)bitmap_chunk_state(bitmap, chunk);
}

int tb_shm_get_chunk(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                     struct tb_shm_chunk *out)
{
    uint32_t bitmap;
    int err = tb_shm_page_bitmap(abi, page, &bitmap);

    if (err)
        return err;
    if (!out || !chunk_in_layout(bitmap, chunk))
        return -EINVAL;
    fill_chunk(abi, page, chunk, bitmap_layout(bitmap), out);
    return 0;
}

int tb_shm_try_partition_page(const struct tb_shm_abi *abi, size_t page, unsigned int layout)
{
    uint32_t expected = 0;

    if (!abi || page >= abi->num_pages || !tb_shm_layout_num_chunks(layout))
        return -EINVAL;
    if (!atomic_compare_exchange_strong_explicit(page_bitmap(abi, page), &expected,
                                                 (uint32_t)layout << TB_SHM_LAYOUT_SHIFT,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return -EBUSY;
    return 0;
}

/*
 * Move chunk @chunk of @page from state @from to @to with a CAS on the whole
 * bitmap. The CAS is retried only when the failure came from another chunk's
 * bits changing; if our chunk left @from or the layout changed under us, the
 * transition is refused. @free_page resets the bitmap to 0 when the result
 * would leave every chunk Free. On success, @layout_out gets the layout the
 * transition was made under.
 */
static int transition(const struct tb_shm_abi *abi, size_t page, size_t chunk, unsigned int from,
                      unsigned int to, bool free_page, unsigned int *layout_out)
{
    _Atomic uint32_t *bm;
    uint32_t cur, next;
    unsigned int layout;

    if (!abi || page >= abi->num_pages || chunk >= TB_SHM_MAX_CHUNKS_PER_PAGE)
        return -EINVAL;
    bm = page_bitmap(abi, page);
    cur = atomic_load_explicit(bm, memory_order_acquire);
    layout = bitmap_layout(cur);
    for (;;) {
        if (bitmap_layout(cur) != layout || !chunk_in_layout(cur, chunk))
            return -EINVAL;
        if (bitmap_chunk_state(cur, chunk) != from)
            return -EBUSY;
        next = bitmap_set_state(cur, chunk, to);
        if (free_page && !(next & TB_SHM_CHUNK_STATES_MASK))
            next = 0;
        if (atomic_compare_exchange_weak_explicit(bm, &cur, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    *layout_out = layout;
    return 0;
}

int tb_shm_try_acquire_chunk_for_writing(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                                         const struct tb_shm_chunk_header *hdr,
                                         struct tb_shm_chunk *out)
{
    struct tb_shm_chunk_header *dst;
    struct tb_shm_chunk c;
    unsigned int layout;
    int err;

    if (!hdr || hdr->writer_id < TB_SHM_MIN_WRITER_ID || hdr->writer_id > TB_SHM_MAX_WRITER_ID)
        return -EINVAL;
    err =
        transition(abi, page, chunk, TB_SHM_CHUNK_FREE, TB_SHM_CHUNK_BEING_WRITTEN, false, &layout);
    if (err)
        return err;
    fill_chunk(abi, page, chunk, layout, &c);
    dst = tb_shm_chunk_hdr(&c);
    dst->chunk_id = hdr->chunk_id;
    dst->writer_id = hdr->writer_id;
    /* Release: a scraper that sees the count also sees chunk_id/writer_id. */
    tb_shm_chunk_packets_store(dst, hdr->packets);
    if (out)
        *out = c;
    return 0;
}

int tb_shm_release_chunk_as_complete(const struct tb_shm_abi *abi, size_t page, size_t chunk)
{
    unsigned int layout;

    return transition(abi, page, chunk, TB_SHM_CHUNK_BEING_WRITTEN, TB_SHM_CHUNK_COMPLETE, false,
                      &layout);
}

int tb_shm_try_acquire_chunk_for_reading(const struct tb_shm_abi *abi, size_t page, size_t chunk,
                                         struct tb_shm_chunk *out)
{
    unsigned int layout;
    int err;

    err = transition(abi, page, chunk, TB_SHM_CHUNK_COMPLETE, TB_SHM_CHUNK_BEING_READ, false,
                     &layout);
    if (err)
        return err;
    if (out)
        fill_chunk(abi, page, chunk, layout, out);
    return 0;
}

int tb_shm_release_chunk_as_free(const struct tb_shm_abi *abi, size_t page, size_t chunk)
{
    struct tb_shm_chunk_header *hdr;
    struct tb_shm_chunk c;
    unsigned int layout;
    uint32_t bitmap;
    int err;

    /*
     * Check the state first so a wrong call never wipes a header a writer
     * owns; the header must be cleared before the chunk becomes Free, since
     * a producer may take it the instant it is. A producer scribbling on the
     * bitmap in between can at worst make us clear bytes of its own page.
     */
    err = tb_shm_page_bitmap(abi, page, &bitmap);
    if (err)
        return err;
    if (!chunk_in_layout(bitmap, chunk))
        return -EINVAL;
    if (bitmap_chunk_state(bitmap, chunk) != TB_SHM_CHUNK_BEING_READ)
        return -EBUSY;
    fill_chunk(abi, page, chunk, bitmap_layout(bitmap), &c);
    hdr = tb_shm_chunk_hdr(&c);
    hdr->chunk_id = 0;
    hdr->writer_id = 0;
    __atomic_store_n(&hdr->packets, 0, __ATOMIC_RELAXED);
    return transition(abi, page, chunk, TB_SHM_CHUNK_BEING_READ, TB_SHM_CHUNK_FREE, true, &layout);
}
