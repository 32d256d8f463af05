/*
 * core.c - the service core's registry: creation and teardown, id
 * allocation, producer and consumer connections, buffer lookup and the
 * QueryServiceState answer. Session logic lives in session*.c, producer
 * requests in producer.c.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shm.h"

#ifndef TB_VERSION_STRING
#define TB_VERSION_STRING "traced-bpf"
#endif

/* Session states as QueryServiceState spells them. */
static const char *const state_names[] = {
    [TB_SVC_CONFIGURED] = "CONFIGURED",
    [TB_SVC_STARTED] = "STARTED",
    [TB_SVC_DISABLING] = "DISABLING_WAITING_STOP_ACKS",
    [TB_SVC_DISABLED] = "DISABLED",
};

static const struct tb_svc_limits default_limits = {
    .max_producers = 512,
    .max_smb_bytes = TB_SHM_MAX_SIZE,
    .max_commit_entries = 8192,
    .max_buffer_kb_total = 4u * 1024 * 1024,
    .max_sessions = 32,
};

int tb_svc_core_new(struct tb_loop *loop, const struct tb_svc_limits *limits,
                    struct tb_svc_core **out)
{
    struct tb_svc_core *core = calloc(1, sizeof(*core));

    if (!core)
        return -ENOMEM;
    core->scratch = malloc(TB_SHM_MAX_PAGE_SIZE);
    if (!core->scratch) {
        free(core);
        return -ENOMEM;
    }
    core->loop = loop;
    core->limits = default_limits;
    if (limits) {
        if (limits->max_producers)
            core->limits.max_producers = limits->max_producers;
        if (limits->max_smb_bytes)
            core->limits.max_smb_bytes = limits->max_smb_bytes;
        if (limits->max_commit_entries)
            core->limits.max_commit_entries = limits->max_commit_entries;
        if (limits->max_buffer_kb_total)
            core->limits.max_buffer_kb_total = limits->max_buffer_kb_total;
        if (limits->max_sessions)
            core->limits.max_sessions = limits->max_sessions;
    }
    core->own_uid = getuid();
    tb_svc_list_init(&core->producers);
    tb_svc_list_init(&core->consumers);
    tb_svc_list_init(&core->sessions);
    tb_svc_list_init(&core->flushes);
    core->next_producer_id = 1;
    core->next_buffer_id = 1;
    core->next_session_id = 1;
    core->next_instance_id = 1;
    core->next_flush_id = 1;
    *out = core;
    return 0;
}

void tb_svc_core_free(struct tb_svc_core *core)
{
    struct tb_svc_list *pos, *tmp;

    if (!core)
        return;
    tb_svc_list_for_each_safe(pos, tmp, &core->consumers)
    {
        struct tb_svc_consumer *c = tb_svc_container_of(pos, struct tb_svc_consumer, node);

        if (c->session && c->ops && c->ops->tracing_disabled &&
            c->session->state != TB_SVC_DISABLED)
            c->ops->tracing_disabled(c->ctx, "service shutting down");
        tb_svc_consumer_disconnect(c);
    }
    tb_svc_list_for_each_safe(pos, tmp, &core->producers)
    {
        tb_svc_producer_disconnect(tb_svc_container_of(pos, struct tb_svc_producer, node));
    }
    free(core->scratch);
    free(core);
}

struct tb_svc_producer *tb_svc_core_find_producer(struct tb_svc_core *core, uint16_t id)
{
    struct tb_svc_list *pos;

    for (pos = core->producers.next; pos != &core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);

        if (p->id == id)
            return p;
    }
    return NULL;
}

struct tb_svc_session *tb_svc_core_find_buffer(struct tb_svc_core *core, uint16_t buffer_id,
                                               struct tb_svc_buffer **buf)
{
    struct tb_svc_list *pos;

    if (!buffer_id)
        return NULL;
    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next) {
        struct tb_svc_session *s = tb_svc_container_of(pos, struct tb_svc_session, node);

        for (size_t i = 0; i < s->nbufs; i++) {
            if (s->bufs[i].id == buffer_id) {
                if (buf)
                    *buf = &s->bufs[i];
                return s;
            }
        }
    }
    return NULL;
}

uint16_t tb_svc_core_alloc_buffer_id(struct tb_svc_core *core)
{
    /* Ids wrap; skip 0 (invalid) and ids still in use by a live session. */
    for (unsigned tries = 0; tries < 65536; tries++) {
        uint16_t id = core->next_buffer_id++;

        if (!core->next_buffer_id)
            core->next_buffer_id = 1;
        if (id && !tb_svc_core_find_buffer(core, id, NULL))
            return id;
    }
    return 0;
}

static uint16_t alloc_producer_id(struct tb_svc_core *core)
{
    for (unsigned tries = 0; tries < 65536; tries++) {
        uint16_t id = core->next_producer_id++;

        if (!core->next_producer_id)
            core->next_producer_id = 1;
        if (id && !tb_svc_core_find_producer(core, id))
            return id;
    }
    return 0;
}

int tb_svc_producer_connect(struct tb_svc_core *core, uid_t uid, pid_t pid,
                            const struct tb_svc_producer_ops *ops, void *ctx,
                            struct tb_svc_producer **out)
{
    struct tb_svc_producer *p;

    if (core->num_producers >= core->limits.max_producers) {
        tb_warn("svc: refusing producer pid %d uid %u: %u producers connected", (int)pid,
                (unsigned)uid, core->num_producers);
        return -EMFILE;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->id = alloc_producer_id(core);
    if (!p->id) {
        free(p);
        return -EMFILE;
    }
    p->core = core;
    p->ops = ops;
    p->ctx = ctx;
    p->uid = uid;
    p->pid = pid;
    p->scraping = true;
    tb_svc_list_add_tail(&core->producers, &p->node);
    core->num_producers++;
    core->counters.producers_seen++;
    *out = p;
    return 0;
}

void tb_svc_producer_disconnect(struct tb_svc_producer *p)
{
    struct tb_svc_list *pos;
    struct tb_svc_core *core;

    if (!p)
        return;
    core = p->core;
    /* The endpoint is going away: nothing may be sent to it any more. */
    p->kicked = true;
    /* Commit what it left behind before its memory goes away. */
    if (p->shm && p->scraping)
        tb_svc_producer_scrape(p, NULL);
    /*
     * Its id may go to the next producer, whose writers start fresh
     * sequences; what it wrote keeps its own sequence ids, uid and pid.
     */
    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next)
        tb_svc_session_seq_retire_producer(tb_svc_container_of(pos, struct tb_svc_session, node),
                                           p->id);
    tb_svc_flush_producer_gone(core, p->id);
    tb_svc_sessions_on_producer_gone(core, p);
    tb_svc_list_del(&p->node);
    core->num_producers--;
    for (size_t i = 0; i < p->nds; i++) {
        free(p->ds[i].name);
        free(p->ds[i].desc);
    }
    core->num_data_sources -= (unsigned)p->nds;
    free(p->ds);
    free(p->writer_buf);
    free(p->allowed);
    free(p->name);
    tb_shm_destroy(p->shm);
    free(p);
}

int tb_svc_consumer_connect(struct tb_svc_core *core, uid_t uid,
                            const struct tb_svc_consumer_ops *ops, void *ctx,
                            struct tb_svc_consumer **out)
{
    struct tb_svc_consumer *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->core = core;
    c->ops = ops;
    c->ctx = ctx;
    c->uid = uid;
    tb_svc_list_add_tail(&core->consumers, &c->node);
    *out = c;
    return 0;
}

void tb_svc_consumer_disconnect(struct tb_svc_consumer *c)
{
    if (!c)
        return;
    if (c->session)
        tb_svc_session_free(c->session);
    c->session = NULL;
    tb_svc_list_del(&c->node);
    free(c);
}

int tb_svc_core_query_state(struct tb_svc_core *core, Perfetto__Protos__TracingServiceState *out)
{
    Perfetto__Protos__TracingServiceState__Producer **prods = NULL;
    Perfetto__Protos__TracingServiceState__DataSource **dss = NULL;
    size_t np = 0, nd = 0, i = 0;
    struct tb_svc_list *pos;

    perfetto__protos__tracing_service_state__init(out);
    if (core->num_producers) {
        prods = calloc(core->num_producers, sizeof(*prods));
        if (!prods)
            goto nomem;
    }
    if (core->num_data_sources) {
        dss = calloc(core->num_data_sources, sizeof(*dss));
        if (!dss)
            goto nomem;
    }
    out->producers = prods;
    out->data_sources = dss;
    for (pos = core->producers.next; pos != &core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);
        Perfetto__Protos__TracingServiceState__Producer *pp = calloc(1, sizeof(*pp));

        if (!pp || np >= core->num_producers) {
            free(pp);
            goto nomem;
        }
        perfetto__protos__tracing_service_state__producer__init(pp);
        pp->has_id = true;
        pp->id = p->id;
        pp->name = p->name ? strdup(p->name) : NULL;
        pp->has_pid = true;
        pp->pid = p->pid;
        pp->has_uid = true;
        pp->uid = (int32_t)p->uid;
        prods[np++] = pp;
        out->n_producers = np;
        for (i = 0; i < p->nds && nd < core->num_data_sources; i++) {
            Perfetto__Protos__TracingServiceState__DataSource *d = calloc(1, sizeof(*d));

            if (!d)
                goto nomem;
            perfetto__protos__tracing_service_state__data_source__init(d);
            d->has_producer_id = true;
            d->producer_id = p->id;
            d->ds_descriptor = perfetto__protos__data_source_descriptor__unpack(
                NULL, p->ds[i].desc_len, p->ds[i].desc);
            dss[nd++] = d;
            out->n_data_sources = nd;
        }
    }
    out->has_num_sessions = true;
    out->num_sessions = (int32_t)core->num_sessions;
    out->has_num_sessions_started = true;
    out->num_sessions_started = 0;
    out->tracing_service_version = strdup(TB_VERSION_STRING);
    out->has_supports_tracing_sessions = true;
    out->supports_tracing_sessions = true;
    if (core->num_sessions) {
        out->tracing_sessions = calloc(core->num_sessions, sizeof(*out->tracing_sessions));
        if (!out->tracing_sessions)
            goto nomem;
    }
    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next) {
        struct tb_svc_session *s = tb_svc_container_of(pos, struct tb_svc_session, node);
        Perfetto__Protos__TracingServiceState__TracingSession *ts;

        if (s->state == TB_SVC_STARTED)
            out->num_sessions_started++;
        if (out->n_tracing_sessions >= core->num_sessions)
            continue;
        ts = calloc(1, sizeof(*ts));
        if (!ts)
            goto nomem;
        perfetto__protos__tracing_service_state__tracing_session__init(ts);
        out->tracing_sessions[out->n_tracing_sessions++] = ts;
        ts->has_id = true;
        ts->id = s->id;
        ts->has_consumer_uid = true;
        ts->consumer_uid = s->consumer ? (int32_t)s->consumer->uid : -1;
        ts->state = (char *)state_names[s->state];
        ts->has_is_started = true;
        ts->is_started = s->state == TB_SVC_STARTED;
        ts->has_num_data_sources = true;
        ts->num_data_sources = (uint32_t)tb_svc_session_num_instances(s);
        ts->has_duration_ms = s->cfg->has_duration_ms;
        ts->duration_ms = s->cfg->duration_ms;
        ts->buffer_size_kb = calloc(s->nbufs ? s->nbufs : 1, sizeof(uint32_t));
        if (!ts->buffer_size_kb)
            goto nomem;
        for (size_t b = 0; b < s->nbufs; b++)
            ts->buffer_size_kb[ts->n_buffer_size_kb++] = s->cfg->buffers[b]->size_kb;
    }
    return 0;
nomem:
    out->producers = prods;
    out->data_sources = dss;
    tb_svc_state_clear(out);
    return -ENOMEM;
}

void tb_svc_state_clear(Perfetto__Protos__TracingServiceState *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_producers; i++) {
        free(st->producers[i]->name);
        free(st->producers[i]);
    }
    for (size_t i = 0; i < st->n_data_sources; i++) {
        if (st->data_sources[i]->ds_descriptor)
            perfetto__protos__data_source_descriptor__free_unpacked(
                st->data_sources[i]->ds_descriptor, NULL);
        free(st->data_sources[i]);
    }
    for (size_t i = 0; i < st->n_tracing_sessions; i++) {
        free(st->tracing_sessions[i]->buffer_size_kb);
        free(st->tracing_sessions[i]);
    }
    free(st->tracing_sessions);
    free(st->tracing_service_version);
    free(st->producers);
    free(st->data_sources);
    perfetto__protos__tracing_service_state__init(st);
}
