/*
 * trace_writer.c - the per-thread TraceWriter: packet framing inside SMB
 * chunks, the inflated packet count, fragmentation over chunks, patches for
 * nested sizes left behind in returned chunks, and drop-and-count when the
 * SMB is full. See trace_writer.h for the model.
 */
#include "common/trace_writer.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/shm_arbiter.h"

/* Don't start a packet in a chunk with less room than this: the first
 * fragment would be a few bytes and cost a chunk switch anyway. */
#define MIN_START_ROOM   (TB_SHM_PACKET_HEADER_SIZE + 16u)
#define DEFAULT_STALL_MS 1000u
/* previous_packet_dropped bit for a packet the writer itself aborted. */
#define DROP_WRITER_ABORT 128u

/* A nested size slot moved out of a returned chunk. */
struct tb_tw_patch {
    uint32_t chunk_id;
    uint32_t offset; /* from the chunk payload start */
    uint8_t data[TB_SHM_PATCH_SIZE];
};

static uint8_t *frag_start(const struct tb_tw *tw)
{
    return tw->wp + TB_SHM_PACKET_HEADER_SIZE;
}

static uint32_t owned_chunk_id(const struct tb_tw *tw)
{
    return tw->next_chunk_id - 1;
}

static void publish(struct tb_tw *tw)
{
    tb_shm_chunk_packets_store(tb_shm_chunk_hdr(&tw->chunk),
                               tb_shm_packets_make(tw->count, tw->flags));
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Take a chunk for the next chunk id; the policy decides how hard to try. */
static int get_chunk(struct tb_tw *tw, uint16_t packets, struct tb_shm_chunk *out)
{
    uint64_t deadline = 0;
    unsigned int tries = 0;
    int err;

    for (;;) {
        err = tw->o.ops->get_chunk(tw->o.ops_ctx, tw->o.writer_id, tw->next_chunk_id, packets, out);
        if (!err)
            return 0;
        if (tw->o.policy != TB_TW_STALL)
            break;
        if (!deadline)
            deadline = now_ms() + tw->o.stall_timeout_ms;
        else if (now_ms() >= deadline)
            break;
        if (++tries < 16) {
            sched_yield();
        } else {
            struct timespec ts = {0, 100 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    tw->st.chunks_missed++;
    return err < 0 ? err : -ENOSPC;
}

static void install_chunk(struct tb_tw *tw, const struct tb_shm_chunk *c, uint16_t packets)
{
    tw->chunk = *c;
    tw->chunk_end = c->begin + c->size;
    tw->next_chunk_id++;
    tw->count = tb_shm_packets_count(packets);
    tw->flags = tb_shm_packets_flags(packets);
    tw->wp = tb_shm_chunk_payload(c);
    tw->inflated = false;
    tw->has_chunk = true;
}

/* Give the owned chunk back; an inflated count becomes an empty record. */
static int release_chunk(struct tb_tw *tw)
{
    int err;

    if (!tw->has_chunk)
        return 0;
    if (tw->inflated) {
        *tw->wp = 0;
        tw->inflated = false;
    }
    publish(tw);
    tw->has_chunk = false;
    tw->st.chunks_returned++;
    err = tw->o.ops->return_chunk(tw->o.ops_ctx, &tw->chunk, tw->o.target_buffer);
    if (err)
        tb_warn("trace_writer: writer %u could not return chunk %u: %s", tw->o.writer_id,
                owned_chunk_id(tw), strerror(-err));
    return err;
}

static void send_patches(struct tb_tw *tw)
{
    struct tb_shm_patch p[TB_PBW_MAX_DEPTH];
    uint32_t i = 0;

    while (i < tw->npatch) {
        uint32_t id = tw->patches[i].chunk_id;
        size_t n = 0;
        int err;

        for (; i < tw->npatch && tw->patches[i].chunk_id == id; i++, n++) {
            p[n].offset = tw->patches[i].offset;
            memcpy(p[n].data, tw->patches[i].data, TB_SHM_PATCH_SIZE);
        }
        err = tw->o.ops->add_patches(tw->o.ops_ctx, tw->o.target_buffer, tw->o.writer_id, id, p, n,
                                     false);
        if (err)
            tb_warn("trace_writer: writer %u lost %zu patches of chunk %u: %s", tw->o.writer_id, n,
                    id, strerror(-err));
        else
            tw->st.patches += n;
    }
    tw->npatch = 0;
}

/* Growing the patch array: open slots that live in the old one follow. */
static uint8_t *rebase_slot(void *ctx, uint8_t *slot)
{
    struct tb_tw_patch **arr = ctx;

    return (uint8_t *)arr[1] + (slot - (uint8_t *)arr[0]);
}

/* Room for every slot a chunk switch can move (at most one per open level). */
static int reserve_patches(struct tb_tw *tw)
{
    uint32_t need = tw->npatch + TB_PBW_MAX_DEPTH, cap = tw->cap_patch ? tw->cap_patch : need;
    struct tb_tw_patch *arr[2];

    if (need <= tw->cap_patch)
        return 0;
    while (cap < need)
        cap *= 2;
    arr[0] = tw->patches;
    arr[1] = malloc(cap * sizeof(*arr[1]));
    if (!arr[1])
        return -ENOMEM;
    if (tw->npatch) {
        memcpy(arr[1], arr[0], tw->npatch * sizeof(*arr[1]));
        tb_pbw_relocate_slots(&tw->pbw, (uint8_t *)arr[0], (uint8_t *)(arr[0] + tw->npatch),
                              rebase_slot, arr);
    }
    free(tw->patches);
    tw->patches = arr[1];
    tw->cap_patch = cap;
    return 0;
}

static uint8_t *relocate_slot(void *ctx, uint8_t *slot)
{
    struct tb_tw *tw = ctx;
    struct tb_tw_patch *p;

    if (tw->npatch >= tw->cap_patch)
        return NULL;
    p = &tw->patches[tw->npatch++];
    p->chunk_id = owned_chunk_id(tw);
    p->offset = (uint32_t)(slot - tb_shm_chunk_payload(&tw->chunk));
    return p->data;
}

/* The open fragment is aborted: mark it so and hand its chunk back, since
 * no record can follow a drop sentinel. */
static void abort_fragment(struct tb_tw *tw)
{
    tb_shm_write_size_prefix(tw->wp, TB_SHM_PACKET_SIZE_DROP);
    tw->inflated = false;
    release_chunk(tw);
    tw->dropping = true;
}

/* pb_writer callback: the packet outgrew the chunk; continue in a new one. */
static int next_window(void *ctx, uint8_t **cur, uint8_t **end)
{
    const uint16_t cont = tb_shm_packets_make(1, TB_SHM_FLAG_FIRST_CONTINUES);
    struct tb_tw *tw = ctx;
    struct tb_shm_chunk nc;
    int moved, err;

    err = reserve_patches(tw);
    if (!err)
        err = get_chunk(tw, cont, &nc);
    if (err) {
        abort_fragment(tw);
        return err;
    }
    moved = tb_pbw_relocate_slots(&tw->pbw, tb_shm_chunk_payload(&tw->chunk), tw->chunk_end,
                                  relocate_slot, tw);
    if (moved < 0) {
        /* Cannot happen after reserve_patches(); stay safe regardless. */
        abort_fragment(tw);
        install_chunk(tw, &nc, cont);
        tw->count = 0;
        tw->flags = 0;
        publish(tw);
        return moved;
    }
    tb_shm_write_size_prefix(tw->wp, (uint32_t)(*cur - frag_start(tw)));
    tw->flags |= TB_SHM_FLAG_LAST_CONTINUES;
    if (moved)
        tw->flags |= TB_SHM_FLAG_NEEDS_PATCHING;
    release_chunk(tw);

    install_chunk(tw, &nc, cont);
    tw->fragmented = true;
    tw->st.fragments++;
    *cur = frag_start(tw);
    *end = tw->chunk_end;
    return 0;
}

static bool room_for_packet(const struct tb_tw *tw)
{
    if (!tw->inflated && tw->count >= TB_TW_MAX_PACKETS_PER_CHUNK)
        return false;
    return (size_t)(tw->chunk_end - tw->wp) >= MIN_START_ROOM;
}

int tb_tw_create(const struct tb_tw_opts *opts, struct tb_tw **out)
{
    struct tb_tw *tw;

    *out = NULL;
    if (!opts || !opts->ops || !opts->ops->get_chunk || !opts->ops->return_chunk ||
        !opts->ops->add_patches || opts->writer_id < TB_SHM_MIN_WRITER_ID ||
        opts->writer_id > TB_SHM_MAX_WRITER_ID || !opts->target_buffer)
        return -EINVAL;
    tw = calloc(1, sizeof(*tw));
    if (!tw)
        return -ENOMEM;
    tw->o = *opts;
    if (!tw->o.stall_timeout_ms)
        tw->o.stall_timeout_ms = DEFAULT_STALL_MS;
    tw->next_chunk_id = opts->first_chunk_id;
    *out = tw;
    return 0;
}

void tb_tw_destroy(struct tb_tw *tw)
{
    if (!tw)
        return;
    tb_tw_flush(tw);
    free(tw->patches);
    free(tw);
}

struct tb_pbw *tb_tw_begin_packet(struct tb_tw *tw)
{
    struct tb_shm_chunk c;

    if (tw->in_packet)
        tb_tw_end_packet(tw);
    tw->in_packet = true;
    tw->dropping = false;
    tw->fragmented = false;
    /* npatch is 0 here: every way out of the last packet sent its patches. */

    if (tw->has_chunk && !room_for_packet(tw))
        release_chunk(tw);
    if (!tw->has_chunk) {
        if (get_chunk(tw, 0, &c)) {
            tw->dropping = true;
            tb_pbw_init_stream(&tw->pbw, tw->pbw.scratch, tw->pbw.scratch, NULL, NULL);
            tb_pbw_fail(&tw->pbw, -ENOSPC);
            return &tw->pbw;
        }
        install_chunk(tw, &c, 0);
    }
    /*
     * Count first, so a scraper never sees bytes of an uncounted record. An
     * inflated count was published when it was raised: nothing to store.
     */
    if (tw->inflated) {
        tw->inflated = false;
    } else {
        tw->count++;
        publish(tw);
    }

    tb_pbw_init_stream(&tw->pbw, frag_start(tw), tw->chunk_end, next_window, tw);
    if (tw->drop_mark && !tw->o.no_drop_mark) {
        tb_pbw_append_varint(&tw->pbw, TB_TW_FIELD_PREVIOUS_PACKET_DROPPED, tw->drop_mark);
        tw->drop_mark = 0;
    }
    return &tw->pbw;
}

static int lose_packet(struct tb_tw *tw, int err)
{
    tw->st.packets_dropped++;
    tw->drop_mark |=
        TB_TW_DROP_PRESENT | (err == -ENOSPC ? TB_TW_DROP_SMB_FULL : DROP_WRITER_ABORT);
    send_patches(tw);
    return err;
}

int tb_tw_end_packet(struct tb_tw *tw)
{
    struct tb_pbw *w = &tw->pbw;
    size_t size;
    int err;

    if (!tw->in_packet)
        return -EINVAL;
    tw->in_packet = false;
    if (tw->dropping)
        return lose_packet(tw, w->err ? w->err : -ENOSPC);

    err = w->err ? w->err : (tb_pbw_depth(w) ? -EPROTO : 0);
    if (err) {
        if (tw->fragmented) {
            abort_fragment(tw);
        } else {
            /* Nothing left this chunk: the counted record becomes the
             * slot of the next packet, as if the count were inflated. */
            tw->inflated = true;
        }
        return lose_packet(tw, err);
    }

    size = (size_t)(w->cur - frag_start(tw));
    if (!tw->fragmented && !tw->o.no_shrink && size < 0x80) {
        tw->wp[0] = (uint8_t)size;
        memmove(tw->wp + 1, frag_start(tw), size);
        tw->wp += 1 + size;
    } else {
        tb_shm_write_size_prefix(tw->wp, (uint32_t)size);
        tw->wp += TB_SHM_PACKET_HEADER_SIZE + size;
    }
    /* Speculatively count the next record so the scraper, which skips a
     * chunk's last record, can read this one now. */
    if (tw->count < TB_TW_MAX_PACKETS_PER_CHUNK && tw->wp < tw->chunk_end) {
        tw->count++;
        tw->inflated = true;
    }
    publish(tw);
    tw->st.packets_written++;
    tw->st.bytes_written += tb_pbw_size(w);
    if (tw->npatch)
        send_patches(tw);
    return 0;
}

int tb_tw_flush(struct tb_tw *tw)
{
    if (tw->in_packet)
        tb_tw_end_packet(tw);
    return release_chunk(tw);
}

uint32_t tb_tw_take_drop_mark(struct tb_tw *tw)
{
    uint32_t m = tw->drop_mark;

    tw->drop_mark = 0;
    return m;
}

void tb_tw_stats(const struct tb_tw *tw, struct tb_tw_stats *out)
{
    *out = tw->st;
}

uint16_t tb_tw_writer_id(const struct tb_tw *tw)
{
    return tw->o.writer_id;
}

uint32_t tb_tw_next_chunk_id(const struct tb_tw *tw)
{
    return tw->next_chunk_id;
}

/* The arbiter already has the provider's shape; only the context differs. */
static int arb_get_chunk(void *ctx, uint16_t writer_id, uint32_t chunk_id, uint16_t packets,
                         struct tb_shm_chunk *out)
{
    return tb_arbiter_get_chunk(ctx, writer_id, chunk_id, packets, out);
}

static int arb_return_chunk(void *ctx, const struct tb_shm_chunk *chunk, uint32_t target_buffer)
{
    return tb_arbiter_return_chunk(ctx, chunk, target_buffer);
}

static int arb_add_patches(void *ctx, uint32_t target_buffer, uint16_t writer_id, uint32_t chunk_id,
                           const struct tb_shm_patch *patches, size_t n, bool has_more)
{
    return tb_arbiter_add_patches(ctx, target_buffer, writer_id, chunk_id, patches, n, has_more);
}

const struct tb_tw_chunk_ops tb_tw_arbiter_ops = {
    .get_chunk = arb_get_chunk,
    .return_chunk = arb_return_chunk,
    .add_patches = arb_add_patches,
};
