/*
 * session_flush.c - flushes: ask every producer with a flushable data
 * source in the session to commit what it holds, wait for its ack (an ack
 * of id N acks every pending flush <= N of that producer) or a timeout,
 * then scrape and report. A flush that is part of a stop continues the stop.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/event_loop.h"
#include "common/log.h"

#define DEFAULT_FLUSH_TIMEOUT_MS 5000u

/* Flush flags (reason in bits 0-3, initiator in bits 4-7). */
#define FLUSH_REASON_PERIODIC  1u
#define FLUSH_REASON_STOP      2u
#define FLUSH_REASON_EXPLICIT  4u
#define FLUSH_INITIATOR_TRACED (1u << 4)
#define FLUSH_INITIATOR_CONS   (3u << 4)

static void flush_free(struct tb_svc_core *core, struct tb_svc_flush *f)
{
    if (f->timer)
        tb_loop_cancel_timer(core->loop, f->timer);
    tb_svc_list_del(&f->node);
    free(f->pending);
    free(f);
}

static void complete(struct tb_svc_core *core, struct tb_svc_flush *f, bool ok)
{
    struct tb_svc_session *s = f->session;
    struct tb_svc_consumer *c = s->consumer;
    bool from_consumer = f->from_consumer;
    bool for_stop = f->for_stop;
    uint64_t token = f->token;
    struct tb_svc_list *pos;

    flush_free(core, f);
    if (ok)
        s->flushes_succeeded++;
    else
        s->flushes_failed++;
    /* Writers that never flush (no_flush) still get their tail in. */
    for (pos = core->producers.next; pos != &core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);

        if (p->scraping)
            tb_svc_producer_scrape(p, s);
    }
    if (from_consumer && c && c->ops && c->ops->flush_done)
        c->ops->flush_done(c->ctx, token, ok);
    if (for_stop && s->stop_after_flush && s->state == TB_SVC_DISABLING)
        tb_svc_session_disable(s, false);
}

static void on_timeout(void *ctx)
{
    struct tb_svc_flush *f = ctx;
    struct tb_svc_core *core = f->session->core;

    f->timer = 0;
    if (f->npending)
        tb_warn("svc: flush %llu of session %llu timed out (%zu producers did not ack)",
                (unsigned long long)f->id, (unsigned long long)f->session->id, f->npending);
    complete(core, f, f->npending == 0);
}

/* Sends Flush to @p for its flushable instances in @s; true if sent. */
static bool flush_producer(struct tb_svc_session *s, struct tb_svc_producer *p, uint64_t id,
                           uint64_t flags)
{
    Perfetto__Protos__GetAsyncCommandResponse cmd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__Flush fl =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__FLUSH__INIT;
    uint64_t ids[256];

    fl.n_data_source_ids = tb_svc_session_live_ids(s, p->id, TB_SVC_LIVE_FLUSH, ids, 256);
    if (!fl.n_data_source_ids)
        return false;
    fl.data_source_ids = ids;
    fl.has_request_id = true;
    fl.request_id = id;
    fl.has_flags = true;
    fl.flags = flags;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH;
    cmd.flush = &fl;
    return tb_svc_producer_send(p, &cmd, -1) == 0;
}

int tb_svc_session_flush(struct tb_svc_session *s, uint32_t timeout_ms, bool from_consumer,
                         uint64_t token)
{
    struct tb_svc_core *core = s->core;
    struct tb_svc_flush *f = calloc(1, sizeof(*f));
    uint64_t flags;
    struct tb_svc_list *pos;
    int err;

    if (!f)
        return -ENOMEM;
    f->pending = calloc(core->num_producers ? core->num_producers : 1, sizeof(*f->pending));
    if (!f->pending) {
        free(f);
        return -ENOMEM;
    }
    f->id = core->next_flush_id++;
    f->session = s;
    f->from_consumer = from_consumer;
    f->token = token;
    tb_svc_list_add_tail(&core->flushes, &f->node);
    if (from_consumer)
        flags = FLUSH_REASON_EXPLICIT | FLUSH_INITIATOR_CONS;
    else if (s->stop_after_flush)
        flags = FLUSH_REASON_STOP | FLUSH_INITIATOR_TRACED;
    else
        flags = FLUSH_REASON_PERIODIC | FLUSH_INITIATOR_TRACED;
    f->for_stop = !from_consumer && s->stop_after_flush;
    s->flushes_requested++;
    for (pos = core->producers.next; pos != &core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);

        if (f->npending < core->num_producers && !p->kicked && flush_producer(s, p, f->id, flags))
            f->pending[f->npending++] = p->id;
    }
    if (!timeout_ms)
        timeout_ms = DEFAULT_FLUSH_TIMEOUT_MS;
    /* Nobody to wait for: complete from the loop, never re-entrantly. */
    err = tb_loop_add_timer(core->loop, f->npending ? timeout_ms : 0, 0, on_timeout, f, &f->timer);
    if (err) {
        flush_free(core, f);
        return err;
    }
    tb_debug("svc: flush %llu of session %llu sent to %zu producers", (unsigned long long)f->id,
             (unsigned long long)s->id, f->npending);
    return 0;
}

/* Removes @producer_id from @f's pending set; true when it was there. */
static bool drop_pending(struct tb_svc_flush *f, uint16_t producer_id)
{
    for (size_t i = 0; i < f->npending; i++) {
        if (f->pending[i] == producer_id) {
            f->pending[i] = f->pending[--f->npending];
            return true;
        }
    }
    return false;
}

static void ack_matching(struct tb_svc_core *core, uint16_t producer_id, uint64_t max_id)
{
    bool again = true;

    /* Completing a flush may run a stop that frees other flushes: rescan. */
    while (again) {
        struct tb_svc_list *pos;

        again = false;
        for (pos = core->flushes.next; pos != &core->flushes; pos = pos->next) {
            struct tb_svc_flush *f = tb_svc_container_of(pos, struct tb_svc_flush, node);

            if (f->id > max_id || !drop_pending(f, producer_id) || f->npending)
                continue;
            complete(core, f, true);
            again = true;
            break;
        }
    }
}

void tb_svc_flush_ack(struct tb_svc_core *core, uint16_t producer_id, uint64_t flush_id)
{
    ack_matching(core, producer_id, flush_id);
}

void tb_svc_flush_producer_gone(struct tb_svc_core *core, uint16_t producer_id)
{
    /* A producer that went away has nothing more to give: count it acked. */
    ack_matching(core, producer_id, UINT64_MAX);
}

void tb_svc_flush_session_gone(struct tb_svc_session *s)
{
    struct tb_svc_list *pos, *tmp;

    tb_svc_list_for_each_safe(pos, tmp, &s->core->flushes)
    {
        struct tb_svc_flush *f = tb_svc_container_of(pos, struct tb_svc_flush, node);

        if (f->session == s)
            flush_free(s->core, f);
    }
}
