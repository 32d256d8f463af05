/*
 * te_encode.c - track event packets, byte for byte what Perfetto's SDK
 * writes on a thread's sequence:
 *
 *   1. sequence start: sequence_flags = INCREMENTAL_STATE_CLEARED,
 *      first_packet_on_sequence (writer's first only), trace_packet_defaults
 *      {timestamp_clock_id = 64, track_event_defaults.track_uuid = thread},
 *      and a ClockSnapshot declaring clock 64 (incremental, ns) = BOOTTIME;
 *   2. the process TrackDescriptor, 3. the thread TrackDescriptor;
 *   4. events: timestamp as a delta on clock 64, sequence_flags =
 *      NEEDS_INCREMENTAL_STATE, a TrackEvent with interned category, name
 *      and annotation names, and the new InternedData entries at the end of
 *      the same packet. Custom tracks get their descriptor before first use.
 *
 * Any packet lost (no free chunk) or a full interning table starts the
 * sequence over, so a reader never sees an iid it was not told about.
 */
#include <string.h>

#include "producers/userspace/te_seq.h"

/* TracePacket fields. */
#define PKT_CLOCK_SNAPSHOT     6u
#define PKT_TIMESTAMP          8u
#define PKT_TRACK_EVENT        11u
#define PKT_INTERNED_DATA      12u
#define PKT_SEQUENCE_FLAGS     13u
#define PKT_TIMESTAMP_CLOCK_ID 58u
#define PKT_DEFAULTS           59u
#define PKT_TRACK_DESCRIPTOR   60u
#define PKT_FIRST_ON_SEQUENCE  87u
#define SEQ_CLEARED            1u
#define SEQ_NEEDS_STATE        2u
#define CLOCK_BOOTTIME_ID      6u
#define CLOCK_INCREMENTAL_ID   64u
/* TrackEvent fields. */
#define TE_CATEGORY_IIDS 3u
#define TE_DEBUG_ANNOT   4u
#define TE_TYPE          9u
#define TE_NAME_IID      10u
#define TE_TRACK_UUID    11u
#define TE_CATEGORIES    22u
#define TE_NAME          23u
#define TE_COUNTER_INT   30u
#define TE_COUNTER_DBL   44u
#define TE_FLOW_IDS      47u
#define TE_TERM_FLOW_IDS 48u
/* Most new interned entries one event can carry; more are written inline. */
#define MAX_NEW 24

struct new_entry {
    uint32_t field; /* InternedData field: 1 categories, 2 names, 3 annotation names */
    uint64_t iid;
    const char *str;
};

struct ev {
    uint64_t ts;
    bool explicit_ts;
    const struct tracebpf_track *track;
    const char *dyn_name;
    bool has_counter;
    bool counter_is_double;
    int64_t ci;
    double cd;
};

static bool end_packet(struct tbl_tls *t)
{
    if (tb_tw_end_packet(t->tw)) {
        tbl_seq_reset(t);
        return false;
    }
    return true;
}

static void write_sequence_start(struct tbl_tls *t, uint64_t ts)
{
    struct tb_pbw *w = tb_tw_begin_packet(t->tw);

    tb_pbw_append_varint(w, PKT_TIMESTAMP, ts);
    tb_pbw_append_varint(w, PKT_TIMESTAMP_CLOCK_ID, CLOCK_BOOTTIME_ID);
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_CLEARED);
    if (t->first_on_seq)
        tb_pbw_append_varint(w, PKT_FIRST_ON_SEQUENCE, 1);
    tb_pbw_begin_nested(w, PKT_DEFAULTS);
    tb_pbw_append_varint(w, 58, CLOCK_INCREMENTAL_ID);
    tb_pbw_begin_nested(w, 11); /* track_event_defaults */
    tb_pbw_append_varint(w, 11, t->thread_uuid);
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    tb_pbw_begin_nested(w, PKT_CLOCK_SNAPSHOT);
    tb_pbw_begin_nested(w, 1);
    tb_pbw_append_varint(w, 1, CLOCK_BOOTTIME_ID);
    tb_pbw_append_varint(w, 2, ts);
    tb_pbw_end_nested(w);
    tb_pbw_begin_nested(w, 1);
    tb_pbw_append_varint(w, 1, CLOCK_INCREMENTAL_ID);
    tb_pbw_append_varint(w, 2, ts);
    tb_pbw_append_varint(w, 3, 1); /* is_incremental */
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    if (!end_packet(t))
        return;

    w = tb_tw_begin_packet(t->tw);
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_NEEDS_STATE);
    tb_pbw_begin_nested(w, PKT_TRACK_DESCRIPTOR);
    tb_pbw_append_varint(w, 1, tbl_g.process_uuid);
    tb_pbw_begin_nested(w, 3);
    tb_pbw_append_int(w, 1, tbl_g.pid);
    /* cmdline: one string an argument, as the kernel gives them */
    for (size_t off = 0; off < tbl_g.cmdline_len; off += strlen(tbl_g.cmdline + off) + 1)
        tb_pbw_append_string(w, 2, tbl_g.cmdline + off);
    if (!tbl_g.cmdline_len && tbl_g.process_name[0])
        tb_pbw_append_string(w, 2, tbl_g.process_name);
    if (tbl_g.process_name[0])
        tb_pbw_append_string(w, 6, tbl_g.process_name);
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    if (!end_packet(t))
        return;

    w = tb_tw_begin_packet(t->tw);
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_NEEDS_STATE);
    tb_pbw_begin_nested(w, PKT_TRACK_DESCRIPTOR);
    tb_pbw_append_varint(w, 1, t->thread_uuid);
    tb_pbw_append_varint(w, 5, tbl_g.process_uuid);
    tb_pbw_begin_nested(w, 4);
    tb_pbw_append_int(w, 1, tbl_g.pid);
    tb_pbw_append_int(w, 2, t->tid);
    if (t->thread_name[0])
        tb_pbw_append_string(w, 5, t->thread_name);
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    if (!end_packet(t))
        return;
    t->first_on_seq = false;
    t->last_ts = ts;
    t->seq_started = true;
}

static uint64_t counter_uuid(const char *name)
{
    return tbl_mix64(tbl_g.process_uuid ^ tbl_hash_str(name) ^ tbl_mix64(TRACEBPF_TRACK_COUNTER));
}

/* Describe @tr (and its parents) on this sequence if not done yet.
 * Return: false if a packet was lost (the sequence restarts). */
static bool ensure_track(struct tbl_tls *t, const struct tracebpf_track *tr, int depth)
{
    uint64_t uuid = tracebpf_track_uuid(tr);
    uint64_t parent = tbl_g.process_uuid;
    struct tbl_intern_slot *s;
    struct tb_pbw *w;
    bool is_new;

    if (tr->kind == TRACEBPF_TRACK_PROCESS || tr->kind == TRACEBPF_TRACK_THREAD_DEFAULT)
        return true;
    if (tr->parent && depth < 8) {
        if (!ensure_track(t, tr->parent, depth + 1))
            return false;
        parent = tracebpf_track_uuid(tr->parent);
    }
    s = tbl_intern(t, TBL_K_TRACK, uuid, &is_new);
    if (!s) {
        tbl_seq_reset(t);
        return false;
    }
    if (!is_new)
        return true;
    w = tb_tw_begin_packet(t->tw);
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_NEEDS_STATE);
    tb_pbw_begin_nested(w, PKT_TRACK_DESCRIPTOR);
    tb_pbw_append_varint(w, 1, uuid);
    if (tr->kind == TRACEBPF_TRACK_THREAD) {
        tb_pbw_append_varint(w, 5, tbl_g.process_uuid);
        tb_pbw_begin_nested(w, 4);
        tb_pbw_append_int(w, 1, tbl_g.pid);
        tb_pbw_append_int(w, 2, tr->tid);
        if (tr->name[0])
            tb_pbw_append_string(w, 5, tr->name);
        tb_pbw_end_nested(w);
    } else {
        tb_pbw_append_varint(w, 5, parent);
        tb_pbw_append_string(w, 2, tr->name);
        if (tr->kind == TRACEBPF_TRACK_COUNTER) {
            tb_pbw_begin_nested(w, 8);
            if (tr->unit)
                tb_pbw_append_varint(w, 3, (uint64_t)tr->unit);
            if (tr->unit_multiplier > 1)
                tb_pbw_append_int(w, 4, tr->unit_multiplier);
            tb_pbw_end_nested(w);
        }
    }
    tb_pbw_end_nested(w);
    return end_packet(t);
}

/* The process counter track named @name; describe it on first use. */
static bool ensure_counter_name(struct tbl_tls *t, const char *name, uint64_t *uuid)
{
    struct tbl_intern_slot *s;
    struct tb_pbw *w;
    bool is_new;

    s = tbl_intern(t, TBL_K_CNAME, (uint64_t)(uintptr_t)name, &is_new);
    if (!s) {
        tbl_seq_reset(t);
        return false;
    }
    if (!is_new) {
        *uuid = s->val;
        return true;
    }
    *uuid = s->val = counter_uuid(name);
    w = tb_tw_begin_packet(t->tw);
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_NEEDS_STATE);
    tb_pbw_begin_nested(w, PKT_TRACK_DESCRIPTOR);
    tb_pbw_append_varint(w, 1, *uuid);
    tb_pbw_append_varint(w, 5, tbl_g.process_uuid);
    tb_pbw_append_string(w, 2, name);
    tb_pbw_begin_nested(w, 8);
    tb_pbw_end_nested(w);
    tb_pbw_end_nested(w);
    return end_packet(t);
}

static void scan_args(struct ev *e, const struct tracebpf_arg *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        const struct tracebpf_arg *a = &args[i];

        switch (a->type) {
        case TRACEBPF_ARG_TRACK:
            e->track = a->v.track;
            break;
        case TRACEBPF_ARG_TIMESTAMP:
            e->ts = a->v.u;
            e->explicit_ts = true;
            break;
        case TRACEBPF_ARG_DYNAMIC_NAME:
            e->dyn_name = a->v.s;
            break;
        case TRACEBPF_ARG_COUNTER_INT:
            e->has_counter = true;
            e->counter_is_double = false;
            e->ci = a->v.i;
            break;
        case TRACEBPF_ARG_COUNTER_DOUBLE:
            e->has_counter = true;
            e->counter_is_double = true;
            e->cd = a->v.d;
            break;
        default:
            break;
        }
    }
}

/* Intern @key; note a new entry for the InternedData of this packet.
 * Return: the iid, or 0 to write the string inline. */
static uint64_t intern_str(struct tbl_tls *t, uint32_t kind, uint32_t field, const void *key,
                           const char *str, struct new_entry *nw, size_t *n_new)
{
    struct tbl_intern_slot *s;
    bool is_new;

    if (*n_new >= MAX_NEW)
        return 0;
    s = tbl_intern(t, kind, (uint64_t)(uintptr_t)key, &is_new);
    if (!s)
        return 0;
    if (is_new)
        nw[(*n_new)++] = (struct new_entry){field, s->val, str};
    return s->val;
}

static void write_annotation(struct tb_pbw *w, const struct tracebpf_arg *a, uint64_t name_iid)
{
    tb_pbw_begin_nested(w, TE_DEBUG_ANNOT);
    if (name_iid)
        tb_pbw_append_varint(w, 1, name_iid);
    else
        tb_pbw_append_string(w, 10, a->name ? a->name : "");
    switch (a->type) {
    case TRACEBPF_ARG_BOOL:
        tb_pbw_append_varint(w, 2, a->v.b ? 1 : 0);
        break;
    case TRACEBPF_ARG_UINT:
        tb_pbw_append_varint(w, 3, a->v.u);
        break;
    case TRACEBPF_ARG_INT:
        tb_pbw_append_int(w, 4, a->v.i);
        break;
    case TRACEBPF_ARG_DOUBLE:
        tb_pbw_append_double(w, 5, a->v.d);
        break;
    case TRACEBPF_ARG_STRING:
        tb_pbw_append_string(w, 6, a->v.s ? a->v.s : "");
        break;
    case TRACEBPF_ARG_POINTER:
        tb_pbw_append_varint(w, 7, (uint64_t)(uintptr_t)a->v.p);
        break;
    }
    tb_pbw_end_nested(w);
}

static bool is_annotation(uint32_t type)
{
    return type >= TRACEBPF_ARG_INT && type <= TRACEBPF_ARG_POINTER;
}

void tbl_write_event(struct tbl_tls *t, struct tracebpf_category *cat, uint32_t type,
                     const char *name, const struct tracebpf_arg *args, size_t nargs)
{
    struct new_entry nw[MAX_NEW];
    uint64_t name_iid = 0, cat_iid = 0, track_uuid = 0;
    uint64_t annot_iid[MAX_NEW];
    struct ev e = {0};
    struct tb_pbw *w;
    size_t n_new = 0, n_annot = 0;
    int err;

    t->busy = true;
    scan_args(&e, args, nargs);
    if (!e.explicit_ts)
        e.ts = tbl_now_ns();
    /* Room for this event's entries and its tracks, so interning never
     * fails half-way through an event. */
    if (t->fill > TBL_INTERN_MAX_FILL - MAX_NEW - 16)
        tbl_seq_reset(t);
    if (!t->seq_started) {
        write_sequence_start(t, e.ts);
        if (!t->seq_started)
            goto lost;
    }
    if (e.track && e.track->kind != TRACEBPF_TRACK_THREAD_DEFAULT) {
        if (!ensure_track(t, e.track, 0))
            goto lost;
        track_uuid = tracebpf_track_uuid(e.track);
    } else if (type == TRACEBPF_EVENT_COUNTER) {
        if (!name || !ensure_counter_name(t, name, &track_uuid))
            goto lost;
    }

    if (type != TRACEBPF_EVENT_SLICE_END && cat)
        cat_iid = intern_str(t, TBL_K_CAT, 1, cat, cat->name, nw, &n_new);
    if (!e.dyn_name && name && type != TRACEBPF_EVENT_COUNTER && type != TRACEBPF_EVENT_SLICE_END)
        name_iid = intern_str(t, TBL_K_NAME, 2, name, name, nw, &n_new);
    for (size_t i = 0; i < nargs && n_annot < MAX_NEW; i++) {
        if (!is_annotation(args[i].type))
            continue;
        annot_iid[n_annot++] =
            args[i].name ? intern_str(t, TBL_K_ANNOT, 3, args[i].name, args[i].name, nw, &n_new)
                         : 0;
    }

    w = tb_tw_begin_packet(t->tw);
    if (e.ts >= t->last_ts) {
        tb_pbw_append_varint(w, PKT_TIMESTAMP, e.ts - t->last_ts);
        t->last_ts = e.ts;
    } else {
        /* An explicit time in the past: absolute, on the trace clock. */
        tb_pbw_append_varint(w, PKT_TIMESTAMP, e.ts);
        tb_pbw_append_varint(w, PKT_TIMESTAMP_CLOCK_ID, CLOCK_BOOTTIME_ID);
    }
    tb_pbw_append_varint(w, PKT_SEQUENCE_FLAGS, SEQ_NEEDS_STATE);
    tb_pbw_begin_nested(w, PKT_TRACK_EVENT);
    if (cat_iid)
        tb_pbw_append_varint(w, TE_CATEGORY_IIDS, cat_iid);
    else if (cat && type != TRACEBPF_EVENT_SLICE_END)
        tb_pbw_append_string(w, TE_CATEGORIES, cat->name);
    tb_pbw_append_varint(w, TE_TYPE, type);
    if (name_iid)
        tb_pbw_append_varint(w, TE_NAME_IID, name_iid);
    else if (e.dyn_name)
        tb_pbw_append_string(w, TE_NAME, e.dyn_name);
    else if (name && type != TRACEBPF_EVENT_COUNTER && type != TRACEBPF_EVENT_SLICE_END)
        tb_pbw_append_string(w, TE_NAME, name);
    if (track_uuid)
        tb_pbw_append_varint(w, TE_TRACK_UUID, track_uuid);
    if (type == TRACEBPF_EVENT_COUNTER) {
        if (e.counter_is_double)
            tb_pbw_append_double(w, TE_COUNTER_DBL, e.cd);
        else
            tb_pbw_append_int(w, TE_COUNTER_INT, e.ci);
    }
    n_annot = 0;
    for (size_t i = 0; i < nargs; i++) {
        const struct tracebpf_arg *a = &args[i];

        if (is_annotation(a->type)) {
            write_annotation(w, a, n_annot < MAX_NEW ? annot_iid[n_annot] : 0);
            n_annot++;
        } else if (a->type == TRACEBPF_ARG_FLOW) {
            tb_pbw_append_fixed64(w, TE_FLOW_IDS, a->v.u);
        } else if (a->type == TRACEBPF_ARG_TERMINATING_FLOW) {
            tb_pbw_append_fixed64(w, TE_TERM_FLOW_IDS, a->v.u);
        }
    }
    tb_pbw_end_nested(w);
    if (n_new) {
        tb_pbw_begin_nested(w, PKT_INTERNED_DATA);
        for (size_t i = 0; i < n_new; i++) {
            tb_pbw_begin_nested(w, nw[i].field);
            tb_pbw_append_varint(w, 1, nw[i].iid);
            tb_pbw_append_string(w, 2, nw[i].str);
            tb_pbw_end_nested(w);
        }
        tb_pbw_end_nested(w);
    }
    err = tb_tw_end_packet(t->tw);
    if (err) {
        tbl_seq_reset(t);
        goto lost;
    }
    atomic_store_explicit(&t->written, atomic_load_explicit(&t->written, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    t->busy = false;
    return;
lost : {
    struct tb_tw_stats st;

    tb_tw_stats(t->tw, &st);
    atomic_store_explicit(&t->missed, t->missed_base + st.chunks_missed, memory_order_relaxed);
}
    atomic_store_explicit(&t->dropped, atomic_load_explicit(&t->dropped, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    t->busy = false;
}
