/*
 * pb_writer.c - out-of-line half of the streaming protobuf encoder: window
 * switches, nested size slots, the sticky error state and the growable
 * in-memory mode. The per-field fast path is inline in pb_writer.h.
 */
#include "common/pb_writer.h"

#include <errno.h>
#include <stdlib.h>

#define DYN_DEFAULT_CAP 256

int tb_pbw_init_dyn(struct tb_pbw *w, size_t initial)
{
    uint8_t *buf;

    if (!initial)
        initial = DYN_DEFAULT_CAP;
    if (initial < TB_PBW_SIZE_SLOT)
        initial = TB_PBW_SIZE_SLOT;
    buf = malloc(initial);
    tb_pbw_init_stream(w, buf, buf ? buf + initial : NULL, NULL, NULL);
    if (!buf) {
        tb_pbw_fail(w, -ENOMEM);
        return -ENOMEM;
    }
    w->dyn = buf;
    w->dyn_cap = initial;
    return 0;
}

const uint8_t *tb_pbw_dyn_data(const struct tb_pbw *w, size_t *len)
{
    if (!w->dyn || w->err) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(w->cur - w->dyn);
    return w->dyn;
}

uint8_t *tb_pbw_dyn_take(struct tb_pbw *w, size_t *len)
{
    uint8_t *buf;

    if (!w->dyn || w->err) {
        *len = 0;
        return NULL;
    }
    buf = w->dyn;
    *len = (size_t)(w->cur - w->dyn);
    w->dyn = NULL;
    w->dyn_cap = 0;
    tb_pbw_init_buf(w, NULL, 0);
    return buf;
}

void tb_pbw_dyn_free(struct tb_pbw *w)
{
    if (!w)
        return;
    free(w->dyn);
    w->dyn = NULL;
    w->dyn_cap = 0;
}

/* Error state: further bytes land in scratch, still counted by size(). */
void tb_pbw_fail(struct tb_pbw *w, int err)
{
    if (!w->err)
        w->err = err ? err : -EIO;
    w->base += (uint64_t)(w->cur - w->wstart);
    w->cur = w->wstart = w->scratch;
    w->end = w->scratch + sizeof(w->scratch);
}

static void dyn_grow(struct tb_pbw *w, size_t need)
{
    size_t used = (size_t)(w->cur - w->dyn);
    size_t cap = w->dyn_cap;
    uint8_t *buf;

    while (cap - used < need)
        cap *= 2;
    buf = realloc(w->dyn, cap);
    if (!buf) {
        tb_pbw_fail(w, -ENOMEM);
        return;
    }
    /* Open size slots point into the old block; move them along. */
    for (uint32_t i = 0; i < w->depth; i++)
        w->nest[i].slot = buf + (w->nest[i].slot - w->dyn);
    w->dyn = buf;
    w->dyn_cap = cap;
    w->wstart = buf;
    w->cur = buf + used;
    w->end = buf + cap;
}

/* Make room for at least @need (<= TB_PBW_SIZE_SLOT for streams) bytes. */
static void next_window(struct tb_pbw *w, size_t need)
{
    uint8_t *cur, *end = NULL;
    int err;

    if (w->err) {
        /* Already failed: just recycle scratch, still counting the bytes. */
        tb_pbw_fail(w, w->err);
        return;
    }
    if (w->dyn) {
        dyn_grow(w, need);
        return;
    }
    if (!w->next) {
        tb_pbw_fail(w, -ENOBUFS);
        return;
    }
    w->base += (uint64_t)(w->cur - w->wstart);
    w->wstart = w->cur;
    cur = w->cur;
    err = w->next(w->ctx, &cur, &end);
    if (!err && (!cur || end <= cur))
        err = -EINVAL;
    if (err) {
        tb_pbw_fail(w, err);
        return;
    }
    w->cur = w->wstart = cur;
    w->end = end;
}

void tb_pbw_write_slow(struct tb_pbw *w, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len) {
        size_t room = (size_t)(w->end - w->cur);

        if (!room) {
            next_window(w, len);
            continue;
        }
        if (room > len)
            room = len;
        memcpy(w->cur, p, room);
        w->cur += room;
        p += room;
        len -= room;
    }
}

void tb_pbw_begin_nested_slow(struct tb_pbw *w, uint32_t field)
{
    uint8_t tag[5];

    if (w->depth >= TB_PBW_MAX_DEPTH) {
        tb_pbw_fail(w, -E2BIG);
        /* Still count the level so begin/end pairs stay balanced. */
        w->depth++;
        return;
    }
    tb_pbw_write(w, tag, tb_pbw_encode_tag(tag, field, TB_PBW_LEN));
    /* The slot must be contiguous: it may become a 4-byte patch. A window
     * too small for it is left with its tail unused (not part of the
     * stream); a fresh window that is still too small is a broken owner. */
    if ((size_t)(w->end - w->cur) < TB_PBW_SIZE_SLOT) {
        next_window(w, TB_PBW_SIZE_SLOT);
        if ((size_t)(w->end - w->cur) < TB_PBW_SIZE_SLOT)
            tb_pbw_fail(w, -EINVAL);
    }
    w->nest[w->depth].slot = w->cur;
    w->cur += TB_PBW_SIZE_SLOT;
    w->nest[w->depth].start = tb_pbw_size(w);
    w->depth++;
}

void tb_pbw_end_nested_slow(struct tb_pbw *w)
{
    struct tb_pbw_nest *n;
    uint64_t size;

    if (!w->depth) {
        tb_pbw_fail(w, -EINVAL);
        return;
    }
    w->depth--;
    /* In the error state slots may point into windows already handed back. */
    if (w->err)
        return;
    n = &w->nest[w->depth];
    size = tb_pbw_size(w) - n->start;
    if (size > TB_PBW_MAX_SLOT_VALUE) {
        tb_pbw_fail(w, -EMSGSIZE);
        return;
    }
    tb_pbw_put_redundant_varint(n->slot, (uint32_t)size);
}

int tb_pbw_relocate_slots(struct tb_pbw *w, const uint8_t *lo, const uint8_t *hi,
                          tb_pbw_relocate_fn fn, void *ctx)
{
    uint32_t depth = w->depth < TB_PBW_MAX_DEPTH ? w->depth : TB_PBW_MAX_DEPTH;
    int moved = 0;

    for (uint32_t i = 0; i < depth; i++) {
        uint8_t *slot = w->nest[i].slot;
        uint8_t *np;

        if (slot < lo || slot >= hi)
            continue;
        np = fn(ctx, slot);
        if (!np) {
            tb_pbw_fail(w, -ENOSPC);
            return -ENOSPC;
        }
        memcpy(np, slot, TB_PBW_SIZE_SLOT);
        w->nest[i].slot = np;
        moved++;
    }
    return moved;
}
