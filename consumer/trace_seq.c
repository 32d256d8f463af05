/*
 * trace_seq.c - sequence-scoped state for the readers of a trace (info,
 * JSON export): interned strings, packet defaults and the sequence clocks
 * the Perfetto SDK writes timestamps in (64 incremental, 65 absolute, both
 * declared by a per-sequence ClockSnapshot next to BOOTTIME).
 */
#include "consumer/trace_seq.h"
#include "perfetto/trace/clock_snapshot.pb-c.h"
#include "perfetto/trace/interned_data/interned_data.pb-c.h"
#include "perfetto/trace/trace_packet_defaults.pb-c.h"
#include "perfetto/trace/track_event/track_event.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_INCREMENTAL_STATE_CLEARED 1
#define CLOCK_BOOTTIME                6
#define FIRST_SEQ_CLOCK               64
#define N_SEQ_CLOCKS                  64

struct seq_clock {
    bool known;
    bool incremental;
    uint64_t mult;     /* ns per unit */
    uint64_t snap_val; /* clock value at the snapshot */
    uint64_t snap_boot;
    uint64_t last; /* last value, for incremental deltas */
};

struct tb_seq {
    struct tb_idmap names;
    struct tb_idmap cats;
    bool has_clock;
    uint32_t clock_id;
    bool has_track;
    uint64_t track_uuid;
    struct seq_clock clocks[N_SEQ_CLOCKS];
};

static void seq_free(void *v)
{
    struct tb_seq *q = v;

    tb_idmap_clear(&q->names);
    tb_idmap_clear(&q->cats);
    free(q);
}

void tb_seqs_init(struct tb_seqs *s)
{
    tb_idmap_init(&s->by_id, seq_free);
}

void tb_seqs_free(struct tb_seqs *s)
{
    tb_idmap_clear(&s->by_id);
}

static uint32_t seq_id(const Perfetto__Protos__TracePacket *p)
{
    return p->optional_trusted_packet_sequence_id_case ? p->trusted_packet_sequence_id : 0;
}

static struct tb_seq *find(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p)
{
    return tb_idmap_get(&s->by_id, seq_id(p));
}

static void reset(struct tb_seq *q)
{
    tb_idmap_clear(&q->names);
    tb_idmap_clear(&q->cats);
    q->has_clock = q->has_track = false;
    memset(q->clocks, 0, sizeof(q->clocks));
}

static int intern(struct tb_idmap *m, uint64_t iid, const char *name)
{
    char *copy = strdup(name ? name : "");

    if (!copy)
        return -ENOMEM;
    return tb_idmap_put(m, iid, copy);
}

static int add_interned(struct tb_seq *q, const Perfetto__Protos__InternedData *d)
{
    size_t i;
    int err = 0;

    for (i = 0; !err && i < d->n_event_names; i++)
        err = intern(&q->names, d->event_names[i]->iid, d->event_names[i]->name);
    for (i = 0; !err && i < d->n_event_categories; i++)
        err = intern(&q->cats, d->event_categories[i]->iid, d->event_categories[i]->name);
    return err;
}

static void add_snapshot(struct tb_seq *q, const Perfetto__Protos__ClockSnapshot *cs)
{
    bool have_boot = false;
    uint64_t boot = 0;
    size_t i;

    for (i = 0; i < cs->n_clocks; i++) {
        if (cs->clocks[i]->clock_id == CLOCK_BOOTTIME) {
            boot = cs->clocks[i]->timestamp;
            have_boot = true;
        }
    }
    if (!have_boot)
        return; /* no anchor: leave the sequence clocks unresolved */
    for (i = 0; i < cs->n_clocks; i++) {
        const Perfetto__Protos__ClockSnapshot__Clock *c = cs->clocks[i];
        struct seq_clock *sc;

        if (c->clock_id < FIRST_SEQ_CLOCK || c->clock_id >= FIRST_SEQ_CLOCK + N_SEQ_CLOCKS)
            continue;
        sc = &q->clocks[c->clock_id - FIRST_SEQ_CLOCK];
        sc->known = true;
        sc->incremental = c->is_incremental;
        sc->mult = c->has_unit_multiplier_ns && c->unit_multiplier_ns ? c->unit_multiplier_ns : 1;
        sc->snap_val = c->timestamp;
        sc->snap_boot = boot;
        sc->last = c->timestamp;
    }
}

int tb_seqs_packet(struct tb_seqs *s, const Perfetto__Protos__TracePacket *p, uint64_t *ts)
{
    uint32_t id = seq_id(p), clock = CLOCK_BOOTTIME;
    struct tb_seq *q = NULL;
    struct seq_clock *sc;
    uint64_t v;
    int err;

    if (id) {
        q = tb_idmap_get(&s->by_id, id);
        if (!q) {
            q = calloc(1, sizeof(*q));
            if (!q)
                return -ENOMEM;
            tb_idmap_init(&q->names, free);
            tb_idmap_init(&q->cats, free);
            err = tb_idmap_put(&s->by_id, id, q);
            if (err)
                return err;
        }
        if ((p->sequence_flags & SEQ_INCREMENTAL_STATE_CLEARED) || p->incremental_state_cleared)
            reset(q);
        if (p->trace_packet_defaults) {
            const Perfetto__Protos__TracePacketDefaults *d = p->trace_packet_defaults;

            q->has_clock = d->has_timestamp_clock_id;
            q->clock_id = d->timestamp_clock_id;
            q->has_track = d->track_event_defaults && d->track_event_defaults->has_track_uuid;
            q->track_uuid = q->has_track ? d->track_event_defaults->track_uuid : 0;
        }
        if (p->interned_data) {
            err = add_interned(q, p->interned_data);
            if (err)
                return err;
        }
        if (p->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT)
            add_snapshot(q, p->clock_snapshot);
        if (q->has_clock)
            clock = q->clock_id;
    }
    if (p->has_timestamp_clock_id)
        clock = p->timestamp_clock_id;
    if (!p->has_timestamp)
        return 0;
    if (clock < FIRST_SEQ_CLOCK) {
        *ts = p->timestamp;
        return 1;
    }
    if (!q || clock >= FIRST_SEQ_CLOCK + N_SEQ_CLOCKS)
        return 0;
    sc = &q->clocks[clock - FIRST_SEQ_CLOCK];
    if (!sc->known)
        return 0;
    v = sc->incremental ? sc->last + p->timestamp : p->timestamp;
    sc->last = v;
    *ts = sc->snap_boot + (uint64_t)((int64_t)(v - sc->snap_val) * (int64_t)sc->mult);
    return 1;
}

const char *tb_seqs_name(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                         uint64_t iid)
{
    struct tb_seq *q = find(s, p);

    return q ? tb_idmap_get(&q->names, iid) : NULL;
}

const char *tb_seqs_category(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                             uint64_t iid)
{
    struct tb_seq *q = find(s, p);

    return q ? tb_idmap_get(&q->cats, iid) : NULL;
}

bool tb_seqs_default_track(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                           uint64_t *uuid)
{
    struct tb_seq *q = find(s, p);

    if (!q || !q->has_track)
        return false;
    *uuid = q->track_uuid;
    return true;
}
