/*
 * pb_writer.h - streaming protobuf encoder for TracePackets (the hot path).
 *
 * A struct tb_pbw writes protobuf fields into a current byte window
 * [cur, end). When the window is exhausted it asks its owner for the next
 * one through a callback; the owner is normally a TraceWriter whose windows
 * are shared-memory chunks, so the bytes of one field may be split over two
 * windows and a nested message may span many.
 *
 * Nested messages (and packed repeated fields) get their length reserved as
 * a 4-byte redundant varint ("size slot") that is back-filled when the
 * message ends. Sizes are computed from a logical byte position that counts
 * every byte written across all windows, never from pointer differences.
 * A size slot always sits in one window (never split), so the owner can turn
 * it into a 4-byte patch: before it hands a window off, the owner calls
 * tb_pbw_relocate_slots() to move pending slots that still point into that
 * window to patch storage of its own.
 *
 * Errors are sticky: when the owner cannot supply a window (SMB full) or a
 * fixed buffer overflows, the writer records the error and keeps accepting
 * writes into a private scratch area, so callers check once, at the end
 * (tb_pbw_error()), not after every field.
 *
 * Three modes:
 *   - streaming: tb_pbw_init_stream() with a next-window callback;
 *   - fixed buffer: tb_pbw_init_buf(), overflow is -ENOBUFS;
 *   - growable heap buffer: tb_pbw_init_dyn() (not for the hot path: it
 *     allocates), freed with tb_pbw_dyn_free().
 *
 * Fast path: the inline helpers below encode into a small stack buffer and
 * copy it into the window when it fits; only window switches go out of line.
 * No allocation, no syscall, no lock.
 *
 * Context: a tb_pbw is used by one thread at a time.
 */
#ifndef TB_COMMON_PB_WRITER_H
#define TB_COMMON_PB_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Maximum nesting of open messages / packed fields in one writer. */
#define TB_PBW_MAX_DEPTH 16
/* Bytes of a reserved size slot (redundant varint, max value 2^28-1). */
#define TB_PBW_SIZE_SLOT 4
/* Largest length a size slot can hold. */
#define TB_PBW_MAX_SLOT_VALUE 0x0FFFFFFFu
/* Scratch area used as the window once the writer is in the error state. */
#define TB_PBW_SCRATCH 64

/* Protobuf wire types. */
enum tb_pbw_wire {
    TB_PBW_VARINT = 0,
    TB_PBW_FIXED64 = 1,
    TB_PBW_LEN = 2,
    TB_PBW_FIXED32 = 5,
};

/*
 * tb_pbw_next_fn - supply the next window.
 * @ctx: the owner's context given at init.
 * @cur: in: where writing stopped in the old window (bytes from there to the
 *       old end are unused and not part of the stream); out: start of the
 *       new window.
 * @end: out: end of the new window. It must not be empty; it must hold at
 *       least TB_PBW_SIZE_SLOT bytes whenever a nested field is opened in
 *       it (a size slot is never split), else the writer fails -EINVAL.
 *
 * The callback is the owner's chance to finish the old window (e.g. write a
 * fragment length, relocate pending size slots with tb_pbw_relocate_slots(),
 * hand the chunk back). Return: 0, or a negative errno; on error the writer
 * enters the sticky error state and does not call the callback again until
 * it is re-initialised.
 */
typedef int (*tb_pbw_next_fn)(void *ctx, uint8_t **cur, uint8_t **end);

/*
 * tb_pbw_relocate_fn - give a pending size slot a new home.
 * @ctx: the context given to tb_pbw_relocate_slots().
 * @slot: the 4 bytes currently reserved in the window being handed off.
 *
 * Return: pointer to 4 writable bytes owned by the caller (e.g. a patch
 * entry) that stay valid until the nested message ends, or NULL when no
 * storage is left (the writer then enters the error state, -ENOSPC).
 */
typedef uint8_t *(*tb_pbw_relocate_fn)(void *ctx, uint8_t *slot);

struct tb_pbw_nest {
    uint8_t *slot;  /* where the 4-byte length goes (window or patch) */
    uint64_t start; /* logical position of the first payload byte */
};

/*
 * The writer. Fields are public only so the inline fast path and the owner
 * (trace_writer) can reach them; other code uses the functions.
 */
struct tb_pbw {
    uint8_t *cur;    /* next byte to write */
    uint8_t *end;    /* end of the current window */
    uint8_t *wstart; /* start of the current window */
    uint64_t base;   /* logical bytes written before wstart */
    tb_pbw_next_fn next;
    void *ctx;
    int err; /* sticky: 0 or negative errno */
    uint32_t depth;
    uint8_t *dyn; /* growable mode: heap buffer, else NULL */
    size_t dyn_cap;
    struct tb_pbw_nest nest[TB_PBW_MAX_DEPTH];
    uint8_t scratch[TB_PBW_SCRATCH];
};

/*
 * tb_pbw_init_stream() - start a streaming writer on a first window.
 * @w: writer to initialise (caller-owned storage).
 * @cur, @end: first window; may be empty (cur == end) to fetch one lazily.
 * @next: callback for further windows; NULL makes overflow -ENOBUFS.
 * @ctx: passed to @next.
 * Context: any; no allocation.
 */
static inline void tb_pbw_init_stream(struct tb_pbw *w, uint8_t *cur, uint8_t *end,
                                      tb_pbw_next_fn next, void *ctx)
{
    /* Inline and not a memset: it runs once per packet, and nest[] and
     * scratch[] are dead until written. */
    w->cur = cur;
    w->end = end;
    w->wstart = cur;
    w->base = 0;
    w->next = next;
    w->ctx = ctx;
    w->err = 0;
    w->depth = 0;
    w->dyn = NULL;
    w->dyn_cap = 0;
}

/*
 * tb_pbw_init_buf() - write into a fixed caller buffer.
 * @w: writer; @buf, @len: buffer, borrowed, must outlive the writer's use.
 * Overflow sets -ENOBUFS; tb_pbw_size() still counts every byte asked for.
 */
static inline void tb_pbw_init_buf(struct tb_pbw *w, uint8_t *buf, size_t len)
{
    tb_pbw_init_stream(w, buf, buf ? buf + len : NULL, NULL, NULL);
}

/*
 * tb_pbw_init_dyn() - write into a heap buffer that grows as needed.
 * @w: writer; @initial: first capacity in bytes (0 picks a default).
 * Return: 0 or -ENOMEM. The buffer is owned by @w: read it with
 * tb_pbw_dyn_data() and free it with tb_pbw_dyn_free().
 * Context: not for the hot path (allocates).
 */
int tb_pbw_init_dyn(struct tb_pbw *w, size_t initial);

/*
 * tb_pbw_dyn_data() - bytes written so far in growable mode.
 * @len: out, number of bytes. Return: pointer owned by @w, valid until the
 * next write or tb_pbw_dyn_free(); NULL if @w is not in growable mode.
 */
const uint8_t *tb_pbw_dyn_data(const struct tb_pbw *w, size_t *len);

/*
 * tb_pbw_dyn_take() - take ownership of the growable buffer.
 * Return: the buffer (caller frees with free()), @len set to its length;
 * @w is left empty and needs no tb_pbw_dyn_free(). NULL if not growable.
 */
uint8_t *tb_pbw_dyn_take(struct tb_pbw *w, size_t *len);

/* tb_pbw_dyn_free() - free the growable buffer. Accepts NULL. */
void tb_pbw_dyn_free(struct tb_pbw *w);

/*
 * tb_pbw_write_slow() - append @len raw bytes, switching windows as needed.
 * Out-of-line half of every append; callers normally use the helpers below.
 */
void tb_pbw_write_slow(struct tb_pbw *w, const void *data, size_t len);

/* Out-of-line halves of tb_pbw_begin_nested() / tb_pbw_end_nested(). */
void tb_pbw_begin_nested_slow(struct tb_pbw *w, uint32_t field);
void tb_pbw_end_nested_slow(struct tb_pbw *w);

/*
 * tb_pbw_relocate_slots() - move pending size slots out of a window.
 * @w: writer; @lo, @hi: the window [lo, hi) about to be handed off.
 * @fn: returns new 4-byte storage for each slot in [lo, hi) (see
 *      tb_pbw_relocate_fn); its contents are copied there first.
 * @ctx: passed to @fn.
 * Return: number of slots moved, or a negative errno (-ENOSPC when @fn
 * returned NULL; the writer is then in the error state).
 * Context: called by the owner from its next-window callback.
 */
int tb_pbw_relocate_slots(struct tb_pbw *w, const uint8_t *lo, const uint8_t *hi,
                          tb_pbw_relocate_fn fn, void *ctx);

/*
 * tb_pbw_fail() - put the writer into the sticky error state with @err
 * (negative errno); later bytes go to scratch and are lost.
 */
void tb_pbw_fail(struct tb_pbw *w, int err);

/*
 * tb_pbw_put_redundant_varint() - write @v (< 2^28) as 4 redundant varint
 * bytes at @p (e.g. a size prefix or patch data).
 */
static inline void tb_pbw_put_redundant_varint(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)((v & 0x7f) | 0x80);
    p[1] = (uint8_t)(((v >> 7) & 0x7f) | 0x80);
    p[2] = (uint8_t)(((v >> 14) & 0x7f) | 0x80);
    p[3] = (uint8_t)((v >> 21) & 0x7f);
}

/* tb_pbw_error() - the sticky error: 0 or a negative errno. */
static inline int tb_pbw_error(const struct tb_pbw *w)
{
    return w->err;
}

/* tb_pbw_size() - logical bytes written so far over all windows. */
static inline uint64_t tb_pbw_size(const struct tb_pbw *w)
{
    return w->base + (uint64_t)(w->cur - w->wstart);
}

/* tb_pbw_depth() - number of nested fields currently open. */
static inline uint32_t tb_pbw_depth(const struct tb_pbw *w)
{
    return w->depth;
}

/* Encode @v as a varint at @p; returns the byte count (1..10). */
static inline size_t tb_pbw_encode_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t tb_pbw_encode_tag(uint8_t *p, uint32_t field, enum tb_pbw_wire wt)
{
    return tb_pbw_encode_varint(p, ((uint64_t)field << 3) | (uint32_t)wt);
}

/* tb_pbw_write() - append raw bytes (fast when they fit the window). */
static inline void tb_pbw_write(struct tb_pbw *w, const void *data, size_t len)
{
    if (__builtin_expect((size_t)(w->end - w->cur) >= len, 1)) {
        memcpy(w->cur, data, len);
        w->cur += len;
        return;
    }
    tb_pbw_write_slow(w, data, len);
}

/* Room for any tag + varint, fixed64 or size slot: encode in place. */
#define TB_PBW_FAST_ROOM 24

static inline bool tb_pbw_fast(const struct tb_pbw *w)
{
    return __builtin_expect(w->end - w->cur >= TB_PBW_FAST_ROOM, 1);
}

/* tb_pbw_append_varint() - field @field as varint (uint32/64, int, bool, enum). */
static inline void tb_pbw_append_varint(struct tb_pbw *w, uint32_t field, uint64_t v)
{
    uint8_t buf[20];
    size_t n;

    if (tb_pbw_fast(w)) {
        w->cur += tb_pbw_encode_tag(w->cur, field, TB_PBW_VARINT);
        w->cur += tb_pbw_encode_varint(w->cur, v);
        return;
    }
    n = tb_pbw_encode_tag(buf, field, TB_PBW_VARINT);
    n += tb_pbw_encode_varint(buf + n, v);
    tb_pbw_write_slow(w, buf, n);
}

/*
 * tb_pbw_append_int() - signed int32/int64 field (negative values take
 * 10 bytes, as protobuf requires for int32 too).
 */
static inline void tb_pbw_append_int(struct tb_pbw *w, uint32_t field, int64_t v)
{
    tb_pbw_append_varint(w, field, (uint64_t)v);
}

static inline uint64_t tb_pbw_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* tb_pbw_append_sint() - sint32/sint64 field (zigzag). */
static inline void tb_pbw_append_sint(struct tb_pbw *w, uint32_t field, int64_t v)
{
    tb_pbw_append_varint(w, field, tb_pbw_zigzag(v));
}

/*
 * tb_pbw_begin_nested() - open a length-delimited field (nested message or
 * packed repeated field) numbered @field.
 * Reserves a 4-byte size slot, back-filled by tb_pbw_end_nested().
 * Sets -E2BIG (sticky) beyond TB_PBW_MAX_DEPTH.
 */
static inline void tb_pbw_begin_nested(struct tb_pbw *w, uint32_t field)
{
    if (tb_pbw_fast(w) && w->depth < TB_PBW_MAX_DEPTH) {
        struct tb_pbw_nest *n = &w->nest[w->depth++];

        w->cur += tb_pbw_encode_tag(w->cur, field, TB_PBW_LEN);
        n->slot = w->cur;
        w->cur += TB_PBW_SIZE_SLOT;
        n->start = tb_pbw_size(w);
        return;
    }
    tb_pbw_begin_nested_slow(w, field);
}

/*
 * tb_pbw_end_nested() - close the innermost open field and write its size
 * into its slot (in the window or wherever the owner relocated it).
 * Sets -EMSGSIZE if the message exceeds 2^28-1 bytes, -EINVAL if nothing
 * is open.
 */
static inline void tb_pbw_end_nested(struct tb_pbw *w)
{
    if (__builtin_expect(w->depth && !w->err, 1)) {
        struct tb_pbw_nest *n = &w->nest[w->depth - 1];
        uint64_t size = tb_pbw_size(w) - n->start;

        if (__builtin_expect(size <= TB_PBW_MAX_SLOT_VALUE, 1)) {
            w->depth--;
            tb_pbw_put_redundant_varint(n->slot, (uint32_t)size);
            return;
        }
    }
    tb_pbw_end_nested_slow(w);
}

/* Encode the @n low bytes of @v little-endian at @p; returns @n. */
static inline size_t tb_pbw_encode_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return n;
}

/* tb_pbw_append_fixed32() - fixed32/sfixed32 field, little-endian. */
static inline void tb_pbw_append_fixed32(struct tb_pbw *w, uint32_t field, uint32_t v)
{
    uint8_t buf[16];
    size_t n = tb_pbw_encode_tag(buf, field, TB_PBW_FIXED32);

    tb_pbw_write(w, buf, n + tb_pbw_encode_le(buf + n, v, 4));
}

/* tb_pbw_append_fixed64() - fixed64/sfixed64 field, little-endian. */
static inline void tb_pbw_append_fixed64(struct tb_pbw *w, uint32_t field, uint64_t v)
{
    uint8_t buf[16];
    size_t n = tb_pbw_encode_tag(buf, field, TB_PBW_FIXED64);

    tb_pbw_write(w, buf, n + tb_pbw_encode_le(buf + n, v, 8));
}

/* tb_pbw_append_double() - double field. */
static inline void tb_pbw_append_double(struct tb_pbw *w, uint32_t field, double d)
{
    uint64_t v;

    memcpy(&v, &d, sizeof(v));
    tb_pbw_append_fixed64(w, field, v);
}

/* tb_pbw_append_float() - float field. */
static inline void tb_pbw_append_float(struct tb_pbw *w, uint32_t field, float f)
{
    uint32_t v;

    memcpy(&v, &f, sizeof(v));
    tb_pbw_append_fixed32(w, field, v);
}

/* tb_pbw_append_bytes() - bytes field; @data borrowed for the call only. */
static inline void tb_pbw_append_bytes(struct tb_pbw *w, uint32_t field, const void *data,
                                       size_t len)
{
    uint8_t buf[20];
    size_t n;

    if ((size_t)(w->end - w->cur) >= TB_PBW_FAST_ROOM + len) {
        w->cur += tb_pbw_encode_tag(w->cur, field, TB_PBW_LEN);
        w->cur += tb_pbw_encode_varint(w->cur, len);
        memcpy(w->cur, data, len);
        w->cur += len;
        return;
    }
    n = tb_pbw_encode_tag(buf, field, TB_PBW_LEN);
    n += tb_pbw_encode_varint(buf + n, len);
    tb_pbw_write_slow(w, buf, n);
    tb_pbw_write(w, data, len);
}

/* tb_pbw_append_string() - string field from a NUL-terminated @s. */
static inline void tb_pbw_append_string(struct tb_pbw *w, uint32_t field, const char *s)
{
    tb_pbw_append_bytes(w, field, s, strlen(s));
}

/*
 * Packed repeated fields: tb_pbw_begin_packed(), then any number of
 * tb_pbw_packed_*() with values of one type, then tb_pbw_end_packed().
 */
static inline void tb_pbw_begin_packed(struct tb_pbw *w, uint32_t field)
{
    tb_pbw_begin_nested(w, field);
}

static inline void tb_pbw_packed_varint(struct tb_pbw *w, uint64_t v)
{
    uint8_t buf[10];

    if (tb_pbw_fast(w)) {
        w->cur += tb_pbw_encode_varint(w->cur, v);
        return;
    }
    tb_pbw_write_slow(w, buf, tb_pbw_encode_varint(buf, v));
}

static inline void tb_pbw_packed_sint(struct tb_pbw *w, int64_t v)
{
    tb_pbw_packed_varint(w, tb_pbw_zigzag(v));
}

static inline void tb_pbw_packed_fixed32(struct tb_pbw *w, uint32_t v)
{
    uint8_t buf[4];

    tb_pbw_write(w, buf, tb_pbw_encode_le(buf, v, 4));
}

static inline void tb_pbw_packed_fixed64(struct tb_pbw *w, uint64_t v)
{
    uint8_t buf[8];

    tb_pbw_write(w, buf, tb_pbw_encode_le(buf, v, 8));
}

static inline void tb_pbw_end_packed(struct tb_pbw *w)
{
    tb_pbw_end_nested(w);
}

/*
 * tb_pbw_append_raw() - append an already-encoded field (tag and
 * value) verbatim, e.g. a pre-serialised submessage from protobuf-c.
 */
static inline void tb_pbw_append_raw(struct tb_pbw *w, const void *data, size_t len)
{
    tb_pbw_write(w, data, len);
}

#endif /* TB_COMMON_PB_WRITER_H */
