/*
 * te_decode.c - resolve the track events of a Perfetto trace (see
 * te_decode.h): per sequence, interning tables reset by
 * SEQ_INCREMENTAL_STATE_CLEARED, the incremental clock 64 declared by a
 * ClockSnapshot, and the default track from trace_packet_defaults.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perfetto/trace/trace.pb-c.h"
#include "producers/userspace/te_decode.h"

struct ikey {
    uint64_t seq_gen; /* seq id << 32 | generation of its incremental state */
    uint64_t iid;
    uint32_t kind;
    const char *str;
};

struct seqst {
    uint32_t id;
    uint32_t gen;
    uint64_t last_ts;
    uint32_t clock_id; /* from trace_packet_defaults, 0 = none */
    uint64_t def_track;
};

struct priv {
    Perfetto__Protos__Trace *trace;
    size_t ev_cap;
    struct ikey *tab;
    size_t tab_cap, tab_n;
    struct seqst *seqs;
    size_t nseqs;
};

static size_t ihash(uint64_t seq_gen, uint32_t kind, uint64_t iid, size_t cap)
{
    return (size_t)(tbl_mix64(seq_gen ^ tbl_mix64(iid * 8 + kind)) & (cap - 1));
}

static int iput(struct priv *p, uint64_t seq_gen, uint32_t kind, uint64_t iid, const char *s)
{
    size_t i;

    if ((p->tab_n + 1) * 2 > p->tab_cap) {
        size_t cap = p->tab_cap ? p->tab_cap * 2 : 1024;
        struct ikey *nt = calloc(cap, sizeof(*nt));

        if (!nt)
            return -ENOMEM;
        for (size_t j = 0; j < p->tab_cap; j++) {
            struct ikey *k = &p->tab[j];

            if (!k->kind)
                continue;
            for (i = ihash(k->seq_gen, k->kind, k->iid, cap); nt[i].kind; i = (i + 1) & (cap - 1))
                ;
            nt[i] = *k;
        }
        free(p->tab);
        p->tab = nt;
        p->tab_cap = cap;
    }
    for (i = ihash(seq_gen, kind, iid, p->tab_cap); p->tab[i].kind;
         i = (i + 1) & (p->tab_cap - 1)) {
        struct ikey *k = &p->tab[i];

        if (k->seq_gen == seq_gen && k->kind == kind && k->iid == iid) {
            k->str = s;
            return 0;
        }
    }
    p->tab[i] = (struct ikey){seq_gen, iid, kind, s};
    p->tab_n++;
    return 0;
}

static const char *iget(const struct priv *p, uint64_t seq_gen, uint32_t kind, uint64_t iid)
{
    if (!p->tab_cap)
        return NULL;
    for (size_t i = ihash(seq_gen, kind, iid, p->tab_cap); p->tab[i].kind;
         i = (i + 1) & (p->tab_cap - 1)) {
        const struct ikey *k = &p->tab[i];

        if (k->seq_gen == seq_gen && k->kind == kind && k->iid == iid)
            return k->str;
    }
    return NULL;
}

static struct seqst *get_seq(struct priv *p, uint32_t id)
{
    struct seqst *ns;

    for (size_t i = 0; i < p->nseqs; i++)
        if (p->seqs[i].id == id)
            return &p->seqs[i];
    ns = realloc(p->seqs, (p->nseqs + 1) * sizeof(*ns));
    if (!ns)
        return NULL;
    p->seqs = ns;
    ns[p->nseqs] = (struct seqst){.id = id};
    return &ns[p->nseqs++];
}

void tbl_decoded_free(struct tbl_decoded *d)
{
    struct priv *p;

    if (!d)
        return;
    p = d->priv;
    for (size_t i = 0; i < d->nev; i++)
        free(d->ev[i].annots);
    free(d->ev);
    free(d->tracks);
    if (p) {
        if (p->trace)
            perfetto__protos__trace__free_unpacked(p->trace, NULL);
        free(p->tab);
        free(p->seqs);
        free(p);
    }
    free(d);
}

const struct tbl_dtrack *tbl_decoded_track(const struct tbl_decoded *d, uint64_t uuid)
{
    for (size_t i = 0; i < d->ntracks; i++)
        if (d->tracks[i].uuid == uuid)
            return &d->tracks[i];
    return NULL;
}

static int add_track(struct tbl_decoded *d, const Perfetto__Protos__TrackDescriptor *td)
{
    struct tbl_dtrack t = {.uuid = td->uuid, .parent = td->parent_uuid}, *nt;

    if (td->static_or_dynamic_name_case ==
        PERFETTO__PROTOS__TRACK_DESCRIPTOR__STATIC_OR_DYNAMIC_NAME_NAME)
        t.name = td->name;
    if (td->process) {
        t.is_process = true;
        t.pid = td->process->pid;
        t.cmdline = (const char *const *)td->process->cmdline;
        t.ncmdline = td->process->n_cmdline;
        if (!t.name)
            t.name = td->process->process_name;
    }
    if (td->thread) {
        t.is_thread = true;
        t.pid = td->thread->pid;
        t.tid = td->thread->tid;
        if (!t.name)
            t.name = td->thread->thread_name;
    }
    t.is_counter = td->counter != NULL;
    for (size_t i = 0; i < d->ntracks; i++) {
        if (d->tracks[i].uuid == t.uuid) {
            d->tracks[i] = t;
            return 0;
        }
    }
    nt = realloc(d->tracks, (d->ntracks + 1) * sizeof(*nt));
    if (!nt)
        return -ENOMEM;
    d->tracks = nt;
    nt[d->ntracks++] = t;
    return 0;
}

static int add_interned(struct priv *p, uint64_t sg, const Perfetto__Protos__InternedData *in)
{
    int err = 0;

    for (size_t i = 0; !err && i < in->n_event_categories; i++)
        err = iput(p, sg, 1, in->event_categories[i]->iid, in->event_categories[i]->name);
    for (size_t i = 0; !err && i < in->n_event_names; i++)
        err = iput(p, sg, 2, in->event_names[i]->iid, in->event_names[i]->name);
    for (size_t i = 0; !err && i < in->n_debug_annotation_names; i++)
        err =
            iput(p, sg, 3, in->debug_annotation_names[i]->iid, in->debug_annotation_names[i]->name);
    return err;
}

static int add_event(struct tbl_decoded *d, struct priv *p, struct seqst *s, uint64_t sg,
                     uint64_t ts, const Perfetto__Protos__TracePacket *pk)
{
    const Perfetto__Protos__TrackEvent *te = pk->track_event;
    struct tbl_devent e = {.ts = ts, .type = te->type, .seq = s->id};
    struct tbl_devent *nev;

    e.track_uuid = te->has_track_uuid ? te->track_uuid : s->def_track;
    if (te->n_category_iids) {
        e.cat = iget(p, sg, 1, te->category_iids[0]);
        if (!e.cat)
            d->unresolved++;
    } else if (te->n_categories) {
        e.cat = te->categories[0];
    }
    if (te->name_field_case == PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME_IID) {
        e.name = iget(p, sg, 2, te->name_iid);
        if (!e.name)
            d->unresolved++;
    } else if (te->name_field_case == PERFETTO__PROTOS__TRACK_EVENT__NAME_FIELD_NAME) {
        e.name = te->name;
    }
    if (te->counter_value_field_case ==
        PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_COUNTER_VALUE) {
        e.has_counter = true;
        e.ci = te->counter_value;
    } else if (te->counter_value_field_case ==
               PERFETTO__PROTOS__TRACK_EVENT__COUNTER_VALUE_FIELD_DOUBLE_COUNTER_VALUE) {
        e.has_counter = true;
        e.counter_is_double = true;
        e.cd = te->double_counter_value;
    }
    e.flows = te->flow_ids;
    e.nflows = te->n_flow_ids;
    e.term_flows = te->terminating_flow_ids;
    e.nterm_flows = te->n_terminating_flow_ids;
    e.dropped_before = pk->has_previous_packet_dropped ? pk->previous_packet_dropped : 0;
    if (te->n_debug_annotations) {
        e.annots = calloc(te->n_debug_annotations, sizeof(*e.annots));
        if (!e.annots)
            return -ENOMEM;
    }
    for (size_t i = 0; i < te->n_debug_annotations; i++) {
        const Perfetto__Protos__DebugAnnotation *a = te->debug_annotations[i];
        struct tbl_dannot *o = &e.annots[e.nannots++];

        if (a->name_field_case == PERFETTO__PROTOS__DEBUG_ANNOTATION__NAME_FIELD_NAME_IID)
            o->name = iget(p, sg, 3, a->name_iid);
        else if (a->name_field_case == PERFETTO__PROTOS__DEBUG_ANNOTATION__NAME_FIELD_NAME)
            o->name = a->name;
        if (!o->name)
            d->unresolved++;
        switch (a->value_case) {
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_BOOL_VALUE:
            o->type = TRACEBPF_ARG_BOOL;
            o->v.b = a->bool_value;
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_UINT_VALUE:
            o->type = TRACEBPF_ARG_UINT;
            o->v.u = a->uint_value;
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_INT_VALUE:
            o->type = TRACEBPF_ARG_INT;
            o->v.i = a->int_value;
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_DOUBLE_VALUE:
            o->type = TRACEBPF_ARG_DOUBLE;
            o->v.d = a->double_value;
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_STRING_VALUE:
            o->type = TRACEBPF_ARG_STRING;
            o->v.s = a->string_value;
            break;
        case PERFETTO__PROTOS__DEBUG_ANNOTATION__VALUE_POINTER_VALUE:
            o->type = TRACEBPF_ARG_POINTER;
            o->v.u = a->pointer_value;
            break;
        default:
            break;
        }
    }
    if (d->nev == p->ev_cap) {
        size_t cap = p->ev_cap ? p->ev_cap * 2 : 256;

        nev = realloc(d->ev, cap * sizeof(*nev));
        if (!nev) {
            free(e.annots);
            return -ENOMEM;
        }
        d->ev = nev;
        p->ev_cap = cap;
    }
    d->ev[d->nev++] = e;
    return 0;
}

static int do_packet(struct tbl_decoded *d, struct priv *p, const Perfetto__Protos__TracePacket *pk)
{
    uint32_t seq_id =
        pk->optional_trusted_packet_sequence_id_case ? pk->trusted_packet_sequence_id : 0;
    struct seqst *s = get_seq(p, seq_id);
    uint64_t ts = 0, sg;
    uint32_t clock;

    if (!s)
        return -ENOMEM;
    if (pk->has_previous_packet_dropped && pk->previous_packet_dropped)
        d->dropped_marks++;
    if (pk->has_sequence_flags && (pk->sequence_flags & 1)) {
        s->gen++;
        s->clock_id = 0;
        s->def_track = 0;
        d->seq_starts++;
    }
    sg = ((uint64_t)seq_id << 32) | s->gen;
    if (pk->trace_packet_defaults) {
        const Perfetto__Protos__TracePacketDefaults *df = pk->trace_packet_defaults;

        if (df->has_timestamp_clock_id)
            s->clock_id = df->timestamp_clock_id;
        if (df->track_event_defaults && df->track_event_defaults->has_track_uuid)
            s->def_track = df->track_event_defaults->track_uuid;
    }
    if (pk->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_CLOCK_SNAPSHOT) {
        for (size_t i = 0; i < pk->clock_snapshot->n_clocks; i++)
            if (pk->clock_snapshot->clocks[i]->clock_id == 64)
                s->last_ts = pk->clock_snapshot->clocks[i]->timestamp;
    }
    if (pk->interned_data) {
        int err = add_interned(p, sg, pk->interned_data);

        if (err)
            return err;
    }
    clock = pk->has_timestamp_clock_id ? pk->timestamp_clock_id : s->clock_id;
    if (pk->has_timestamp) {
        if (clock == 64) {
            s->last_ts += pk->timestamp;
            ts = s->last_ts;
        } else {
            ts = pk->timestamp;
        }
    }
    if (pk->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_DESCRIPTOR)
        return add_track(d, pk->track_descriptor);
    if (pk->data_case == PERFETTO__PROTOS__TRACE_PACKET__DATA_TRACK_EVENT)
        return add_event(d, p, s, sg, ts, pk);
    return 0;
}

/* Custom tracks inherit the pid of their process ancestor. */
static void resolve_pids(struct tbl_decoded *d)
{
    for (size_t i = 0; i < d->ntracks; i++) {
        struct tbl_dtrack *t = &d->tracks[i];
        const struct tbl_dtrack *a = t;

        for (int depth = 0; a && !a->pid && a->parent && depth < 16; depth++)
            a = tbl_decoded_track(d, a->parent);
        if (a)
            t->pid = a->pid;
    }
}

int tbl_decode(const uint8_t *buf, size_t len, struct tbl_decoded **out)
{
    struct tbl_decoded *d = calloc(1, sizeof(*d));
    struct priv *p = calloc(1, sizeof(*p));
    int err = 0;

    *out = NULL;
    if (!d || !p) {
        free(d);
        free(p);
        return -ENOMEM;
    }
    d->priv = p;
    p->trace = perfetto__protos__trace__unpack(NULL, len, buf);
    if (!p->trace) {
        err = -EBADMSG;
        goto out;
    }
    d->npackets = p->trace->n_packet;
    for (size_t i = 0; !err && i < p->trace->n_packet; i++)
        err = do_packet(d, p, p->trace->packet[i]);
    resolve_pids(d);
out:
    if (err) {
        tbl_decoded_free(d);
        return err;
    }
    *out = d;
    return 0;
}
