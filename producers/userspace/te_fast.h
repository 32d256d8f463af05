/*
 * te_fast.h - the fast path of libtracebpf's common events: slice begin and
 * end, instant and counter with no arguments, on a sequence that has
 * already interned the category and the name, when the thread's chunk has
 * room for a whole small packet.
 *
 * The packet is written straight into the chunk with precomputed tags, one
 * intern lookup per string and a 1-byte TrackEvent length (these packets
 * are always < 128 bytes), then committed with a 1-byte size prefix. It
 * carries the same fields, in the same order, as te_encode.c writes for
 * the event, so a reader decodes both to the same event; only the nested
 * length is shorter than the general path's 4-byte redundant varint.
 *
 * Anything else (sequence not started, a string not interned yet, an
 * explicit timestamp ahead of the clock, a drop mark owed, a full chunk)
 * makes tbl_fast_event() return false and the caller takes the general
 * path, tbl_write_event(). No lock, syscall (the vDSO clock read aside) or
 * allocation here.
 */
#ifndef TB_LIB_TE_FAST_H
#define TB_LIB_TE_FAST_H

#include <string.h>

#include "common/pb_writer.h"
#include "producers/userspace/te_seq.h"

/* Tags (field << 3 | wire type) as single bytes, or two for fields >= 16. */
#define TBL_FAST_TAG(field, wire) ((uint8_t)(((field) << 3) | (wire))) /* fields < 16 */
#define TBL_FAST_TAG_TIMESTAMP    TBL_FAST_TAG(8, TB_PBW_VARINT)       /* TracePacket.timestamp */
#define TBL_FAST_TAG_SEQ_FLAGS    TBL_FAST_TAG(13, TB_PBW_VARINT) /* TracePacket.sequence_flags */
#define TBL_FAST_TAG_TRACK_EVENT  TBL_FAST_TAG(11, TB_PBW_LEN)    /* TracePacket.track_event */
#define TBL_FAST_TAG_CATEGORY     TBL_FAST_TAG(3, TB_PBW_VARINT)  /* TrackEvent.category_iids */
#define TBL_FAST_TAG_TYPE         TBL_FAST_TAG(9, TB_PBW_VARINT)  /* TrackEvent.type */
#define TBL_FAST_TAG_NAME_IID     TBL_FAST_TAG(10, TB_PBW_VARINT) /* TrackEvent.name_iid */
#define TBL_FAST_TAG_TRACK_UUID   TBL_FAST_TAG(11, TB_PBW_VARINT) /* TrackEvent.track_uuid */
#define TBL_FAST_TAG_COUNTER_INT  0x01f0 /* TrackEvent.counter_value = 30, varint */
#define TBL_FAST_TAG_COUNTER_DBL  0x02e1 /* TrackEvent.double_counter_value = 44, fixed64 */
#define TBL_FAST_SEQ_NEEDS_STATE  2u
#define TBL_FAST_TAG_ANNOT        TBL_FAST_TAG(4, TB_PBW_LEN) /* TrackEvent.debug_annotations */
/* DebugAnnotation fields: name_iid = 1; bool 2, uint 3, int 4, double 5,
 * string 6, pointer 7, indexed by enum tracebpf_arg_type. */
#define TBL_FAST_TAG_ANNOT_NAME TBL_FAST_TAG(1, TB_PBW_VARINT)
#define TBL_FAST_MAX_ARGS       2
#define TBL_FAST_MAX_STR        24

/*
 * Worst-case packet sizes: timestamp (1 + 10), sequence flags (2), the
 * TrackEvent's tag and 1-byte length (2), then in it category (1 + 10),
 * type (2), name (1 + 10) or a counter's track (1 + 10) and value (2 + 10).
 * Asking for no more than the event can take lets it use a chunk's tail.
 */
#define TBL_FAST_MAX_END     (11 + 2 + 2 + 2)
#define TBL_FAST_MAX_NAMED   (TBL_FAST_MAX_END + 11 + 11)
#define TBL_FAST_MAX_COUNTER (TBL_FAST_MAX_END + 11 + 11 + 12)
/* One annotation: tag and 1-byte length, name (1 + 10), value (2 + string). */
#define TBL_FAST_MAX_ANNOT (2 + 11 + 2 + TBL_FAST_MAX_STR)

static const uint8_t tbl_fast_annot_tag[] = {
    [TRACEBPF_ARG_INT] = TBL_FAST_TAG(4, TB_PBW_VARINT),
    [TRACEBPF_ARG_UINT] = TBL_FAST_TAG(3, TB_PBW_VARINT),
    [TRACEBPF_ARG_DOUBLE] = TBL_FAST_TAG(5, TB_PBW_FIXED64),
    [TRACEBPF_ARG_BOOL] = TBL_FAST_TAG(2, TB_PBW_VARINT),
    [TRACEBPF_ARG_STRING] = TBL_FAST_TAG(6, TB_PBW_LEN),
    [TRACEBPF_ARG_POINTER] = TBL_FAST_TAG(7, TB_PBW_VARINT),
};

/*
 * Check that the fast path can write @args: all annotations with an
 * interned name, strings short. Fills @slots with the name slots and
 * @lens with the strings' lengths.
 */
static inline __attribute__((always_inline)) bool
tbl_fast_args_ok(struct tbl_tls *t, const struct tracebpf_arg *args, size_t nargs,
                 struct tbl_intern_slot **slots, uint8_t *lens)
{
    for (size_t i = 0; i < nargs; i++) {
        const struct tracebpf_arg *a = &args[i];

        if (a->type < TRACEBPF_ARG_INT || a->type > TRACEBPF_ARG_POINTER || !a->name)
            return false;
        if (a->type == TRACEBPF_ARG_STRING) {
            size_t n = 0;

            if (!a->v.s)
                return false;
            /* Short strings: a byte loop beats a libc call. */
            while (n <= TBL_FAST_MAX_STR && a->v.s[n])
                n++;
            if (n > TBL_FAST_MAX_STR)
                return false;
            lens[i] = (uint8_t)n;
        }
        slots[i] = tbl_intern_find(t, TBL_K_ANNOT, (uint64_t)(uintptr_t)a->name);
        if (!slots[i])
            return false;
    }
    return true;
}

static inline __attribute__((always_inline)) uint8_t *
tbl_fast_annot(uint8_t *p, const struct tracebpf_arg *a, const struct tbl_intern_slot *name,
               uint8_t slen)
{
    uint8_t *len;

    *p++ = TBL_FAST_TAG_ANNOT;
    len = p++;
    *p++ = TBL_FAST_TAG_ANNOT_NAME;
    p += tb_pbw_encode_varint(p, name->val);
    *p++ = tbl_fast_annot_tag[a->type];
    switch (a->type) {
    case TRACEBPF_ARG_DOUBLE: {
        uint64_t bits;

        memcpy(&bits, &a->v.d, sizeof(bits));
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)(bits >> (8 * i));
        break;
    }
    case TRACEBPF_ARG_BOOL:
        *p++ = a->v.b ? 1 : 0;
        break;
    case TRACEBPF_ARG_STRING: {
        *p++ = slen;
        for (uint8_t k = 0; k < slen; k++)
            *p++ = (uint8_t)a->v.s[k];
        break;
    }
    case TRACEBPF_ARG_POINTER:
        p += tb_pbw_encode_varint(p, (uint64_t)(uintptr_t)a->v.p);
        break;
    default: /* INT and UINT: the same varint bits */
        p += tb_pbw_encode_varint(p, a->v.u);
        break;
    }
    *len = (uint8_t)(p - len - 1);
    return p;
}

/*
 * tbl_fast_event() - write one event on @t's sequence the fast way.
 * @t: the calling thread's state, bound to a writer (t->tw), not busy.
 * @cat: category (ignored for a slice end, which carries none).
 * @type: TRACEBPF_EVENT_* (a constant at every call site, so the unused
 *     branches fold away).
 * @name: event name (slice begin, instant) or counter name (counter).
 * @is_double/@ci/@cd: the counter's value (counters only).
 * @args/@nargs: debug annotations of a slice begin or instant (at most
 *     TBL_FAST_MAX_ARGS; others are refused); NULL/0 otherwise.
 * Return: true if the event is in the chunk; false if nothing was written
 * and the caller must take the general path.
 * Context: the owning thread.
 */
static inline __attribute__((always_inline)) bool
tbl_fast_event(struct tbl_tls *t, struct tracebpf_category *cat, uint32_t type, const char *name,
               bool is_double, int64_t ci, double cd, const struct tracebpf_arg *args, size_t nargs)
{
    struct tbl_intern_slot *cs = NULL, *ns = NULL, *as[TBL_FAST_MAX_ARGS];
    uint8_t slen[TBL_FAST_MAX_ARGS];
    uint8_t *p, *len;
    uint64_t ts;

    if (__builtin_expect(!t->seq_started || t->no_fast, 0))
        return false;
    /*
     * Busy from the first look at the intern table to the commit: an event
     * from a signal handler on this thread is then dropped, as in the
     * general path, instead of resetting the table under our slot pointers
     * or writing its packet where this one goes.
     */
    t->busy = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (type != TRACEBPF_EVENT_SLICE_END) {
        cs = tbl_intern_find(t, TBL_K_CAT, (uint64_t)(uintptr_t)cat);
        if (__builtin_expect(!cs, 0))
            goto refuse;
        ns = tbl_intern_find(t, type == TRACEBPF_EVENT_COUNTER ? TBL_K_CNAME : TBL_K_NAME,
                             (uint64_t)(uintptr_t)name);
        if (__builtin_expect(!ns, 0))
            goto refuse;
    }
    if (nargs && (nargs > TBL_FAST_MAX_ARGS || type == TRACEBPF_EVENT_COUNTER ||
                  type == TRACEBPF_EVENT_SLICE_END || !tbl_fast_args_ok(t, args, nargs, as, slen)))
        goto refuse;
    p = tb_tw_fast_begin(t->tw, type == TRACEBPF_EVENT_SLICE_END ? TBL_FAST_MAX_END
                                : type == TRACEBPF_EVENT_COUNTER
                                    ? TBL_FAST_MAX_COUNTER
                                    : TBL_FAST_MAX_NAMED + nargs * TBL_FAST_MAX_ANNOT);
    if (__builtin_expect(!p, 0))
        goto refuse;
    ts = tbl_now_ns();
    /* An explicit timestamp ahead of the clock moved last_ts: the general
     * path writes this one as an absolute time. */
    if (__builtin_expect(ts < t->last_ts, 0))
        goto refuse;

    *p++ = TBL_FAST_TAG_TIMESTAMP;
    p += tb_pbw_encode_varint(p, ts - t->last_ts);
    *p++ = TBL_FAST_TAG_SEQ_FLAGS;
    *p++ = TBL_FAST_SEQ_NEEDS_STATE;
    *p++ = TBL_FAST_TAG_TRACK_EVENT;
    len = p++;
    if (cs) {
        *p++ = TBL_FAST_TAG_CATEGORY;
        p += tb_pbw_encode_varint(p, cs->val);
    }
    *p++ = TBL_FAST_TAG_TYPE;
    *p++ = (uint8_t)type;
    if (type == TRACEBPF_EVENT_COUNTER) {
        /* The CNAME slot's value is the counter track's uuid. */
        *p++ = TBL_FAST_TAG_TRACK_UUID;
        p += tb_pbw_encode_varint(p, ns->val);
        if (is_double) {
            *p++ = TBL_FAST_TAG_COUNTER_DBL & 0xff;
            *p++ = TBL_FAST_TAG_COUNTER_DBL >> 8;
            uint64_t bits;

            memcpy(&bits, &cd, sizeof(bits));
            for (int i = 0; i < 8; i++)
                *p++ = (uint8_t)(bits >> (8 * i)); /* fixed64 is little-endian */
        } else {
            *p++ = TBL_FAST_TAG_COUNTER_INT & 0xff;
            *p++ = TBL_FAST_TAG_COUNTER_INT >> 8;
            p += tb_pbw_encode_varint(p, (uint64_t)ci);
        }
    } else if (ns) {
        *p++ = TBL_FAST_TAG_NAME_IID;
        p += tb_pbw_encode_varint(p, ns->val);
    }
    for (size_t i = 0; i < nargs; i++)
        p = tbl_fast_annot(p, &args[i], as[i], slen[i]);
    *len = (uint8_t)(p - len - 1);
    t->last_ts = ts;
    tb_tw_fast_commit(t->tw, p);
    t->fast_events++;
    atomic_store_explicit(&t->written, atomic_load_explicit(&t->written, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->busy = false;
    return true;
refuse:
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->busy = false;
    return false;
}

#endif /* TB_LIB_TE_FAST_H */
