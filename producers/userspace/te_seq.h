/*
 * te_seq.h - per-thread packet sequence state of libtracebpf, shared by
 * te_thread.c (life cycle, binding to targets) and te_encode.c (packets).
 *
 * One struct tbl_tls per app thread, allocated on its first event and freed
 * at thread exit. It holds the thread's TraceWriter, the incremental state
 * of its sequence (last timestamp, interning table, tracks already
 * described) and its loss counters. Only the owning thread touches it,
 * except the counters, which tracebpf_get_stats() reads with relaxed loads.
 */
#ifndef TB_LIB_TE_SEQ_H
#define TB_LIB_TE_SEQ_H

#include "producers/userspace/lib_internal.h"

/* Interning table: fixed size so the hot path never allocates. When it is
 * 3/4 full the sequence starts over (incremental state cleared). */
#define TBL_INTERN_SLOTS    1024u
#define TBL_INTERN_MAX_FILL 768u

enum tbl_intern_kind {
    TBL_K_NAME = 1,  /* EventName, keyed by the string's address */
    TBL_K_CAT = 2,   /* EventCategory, keyed by the category's address */
    TBL_K_ANNOT = 3, /* DebugAnnotationName, keyed by the string's address */
    TBL_K_TRACK = 4, /* a TrackDescriptor already written, keyed by uuid */
    TBL_K_CNAME = 5, /* counter track named by a string: val = its uuid */
};

struct tbl_intern_slot {
    uint64_t key;
    uint64_t val;
    uint32_t kind;
    uint32_t pad;
};

struct tbl_tls {
    uint32_t gen;      /* tbl_g.gen when last bound */
    uint32_t incr_gen; /* target->incr_gen when the sequence started */
    struct tbl_target *target;
    struct tb_tw *tw; /* NULL: not recording */
    uint16_t writer_id;
    bool seq_started; /* sequence-start packets written */
    bool busy;        /* inside an event: a nested call is dropped */
    bool no_fast;     /* tests: always take the general path */
    pid_t tid;
    uint64_t thread_uuid;
    uint64_t last_ts;  /* clock 64 value of the sequence */
    uint64_t next_iid; /* iids are unique across kinds, starting at 1 */
    uint32_t fill;
    _Atomic uint64_t written;  /* user events in shared memory */
    _Atomic uint64_t dropped;  /* user events lost */
    _Atomic uint64_t missed;   /* chunk requests that failed */
    uint64_t missed_base;      /* missed by this thread's earlier writers */
    uint64_t fast_events;      /* events written by te_fast.h (tests) */
    bool first_on_seq;         /* next start packet is the writer's first */
    struct tbl_tls *next_live; /* list of live threads (stats) */
    struct tbl_tls *prev_live;
    char thread_name[64];
    struct tbl_intern_slot slots[TBL_INTERN_SLOTS];
};

/*
 * tbl_tls_cur - the calling thread's state (NULL before its first event).
 * Initial-exec TLS: in the shared library a general-dynamic access would be
 * a __tls_get_addr() call on every event.
 */
extern __thread struct tbl_tls *tbl_tls_cur TBL_HIDDEN __attribute__((tls_model("initial-exec")));

/* tbl_tls_rebind() - slow half of tbl_tls_get_inline() (te_thread.c). */
struct tbl_tls *tbl_tls_rebind(struct tbl_tls *t, uint32_t gen) TBL_HIDDEN;

/*
 * tbl_tls_get_inline() - the calling thread's state, bound to the current
 * target (rebinding when the generation moved). Return: NULL when out of
 * memory. Context: any app thread; fast path is two loads and a compare.
 */
static inline struct tbl_tls *tbl_tls_get_inline(void)
{
    struct tbl_tls *t = tbl_tls_cur;
    uint32_t gen = atomic_load_explicit(&tbl_g.gen, memory_order_acquire);

    if (__builtin_expect(t && t->gen == gen, 1))
        return t;
    return tbl_tls_rebind(t, gen);
}

/* First slot to probe for (@kind, @key): a multiplicative hash, whose top
 * bits spread pointer keys that differ only in their low bits. */
static inline uint32_t tbl_intern_index(uint32_t kind, uint64_t key)
{
    return (uint32_t)(((key ^ ((uint64_t)kind << 59)) * 0x9e3779b97f4a7c15ull) >> 54) &
           (TBL_INTERN_SLOTS - 1);
}

/*
 * tbl_intern_find() - look @key of @kind up without inserting.
 * Return: its slot, or NULL when absent. Context: owning thread.
 */
static inline struct tbl_intern_slot *tbl_intern_find(struct tbl_tls *t, uint32_t kind,
                                                      uint64_t key)
{
    uint32_t i = tbl_intern_index(kind, key);

    for (;;) {
        struct tbl_intern_slot *s = &t->slots[i];

        if (__builtin_expect(s->key == key && s->kind == kind, 1))
            return s;
        if (!s->kind)
            return NULL;
        i = (i + 1) & (TBL_INTERN_SLOTS - 1);
    }
}

/*
 * tbl_intern() - look @key of @kind up; insert it with a fresh iid in ->val
 * when absent (the caller may overwrite ->val of a new slot). @is_new: set
 * when inserted. Return: the slot, or NULL when the table is full (the
 * caller writes the value inline or starts the sequence over).
 */
struct tbl_intern_slot *tbl_intern(struct tbl_tls *t, uint32_t kind, uint64_t key,
                                   bool *is_new) TBL_HIDDEN;

/*
 * tbl_tls_set_fast() - let the calling thread use te_fast.h (default) or
 * force every event through the general path (@on false). For tests.
 * Return: events the thread wrote the fast way so far.
 */
uint64_t tbl_tls_set_fast(bool on) TBL_HIDDEN;

/* tbl_seq_reset() - forget the sequence's incremental state. */
void tbl_seq_reset(struct tbl_tls *t) TBL_HIDDEN;

#endif /* TB_LIB_TE_SEQ_H */
