/*
 * session_ds.c - data-source instances: which producers' data sources a
 * session wants (name, producer_name_filter, producer_name_regex_filter),
 * and the commands that drive them: SetupTracing (first time) ->
 * SetupDataSource -> StartDataSource, StopDataSource and
 * ClearIncrementalState.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/event_loop.h"
#include "common/log.h"

#define DEFAULT_STOP_TIMEOUT_MS 5000u

static bool regex_full_match(const char *re, const char *s)
{
    char anchored[512];
    regex_t rx;
    bool ok;

    if (snprintf(anchored, sizeof(anchored), "^(%s)$", re) >= (int)sizeof(anchored))
        return false;
    if (regcomp(&rx, anchored, REG_EXTENDED | REG_NOSUB))
        return false;
    ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

static bool matches(const Perfetto__Protos__TraceConfig__DataSource *cds,
                    const struct tb_svc_producer *p, const struct tb_svc_ds *ds)
{
    bool any_filter = cds->n_producer_name_filter || cds->n_producer_name_regex_filter;
    bool ok = !any_filter;

    if (!cds->config || !cds->config->name || strcmp(cds->config->name, ds->name))
        return false;
    for (size_t i = 0; !ok && i < cds->n_producer_name_filter; i++)
        ok = p->name && !strcmp(cds->producer_name_filter[i], p->name);
    for (size_t i = 0; !ok && i < cds->n_producer_name_regex_filter; i++)
        ok = p->name && regex_full_match(cds->producer_name_regex_filter[i], p->name);
    return ok;
}

static uint16_t target_buffer_id(const struct tb_svc_session *s,
                                 const Perfetto__Protos__DataSourceConfig *dc)
{
    if (dc->target_buffer_name && dc->target_buffer_name[0]) {
        for (size_t i = 0; i < s->nbufs; i++) {
            const char *n = s->cfg->buffers[i]->name;

            if (n && !strcmp(n, dc->target_buffer_name))
                return s->bufs[i].id;
        }
    }
    if (dc->has_target_buffer && dc->target_buffer < s->nbufs)
        return s->bufs[dc->target_buffer].id;
    return s->bufs[0].id;
}

/* The consumer's DataSourceConfig, verbatim, with the service's fields set. */
static Perfetto__Protos__DataSourceConfig *build_config(const struct tb_svc_session *s,
                                                        const struct tb_svc_instance *inst)
{
    const Perfetto__Protos__DataSourceConfig *src = s->cfg->data_sources[inst->cfg_index]->config;
    size_t len = protobuf_c_message_get_packed_size(&src->base);
    Perfetto__Protos__DataSourceConfig *dc;
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return NULL;
    protobuf_c_message_pack(&src->base, buf);
    dc = perfetto__protos__data_source_config__unpack(NULL, len, buf);
    free(buf);
    if (!dc)
        return NULL;
    dc->has_target_buffer = true;
    dc->target_buffer = inst->target_buffer;
    dc->has_tracing_session_id = true;
    dc->tracing_session_id = s->id;
    if (s->cfg->has_duration_ms) {
        dc->has_trace_duration_ms = true;
        dc->trace_duration_ms = s->cfg->duration_ms;
    }
    dc->has_stop_timeout_ms = true;
    dc->stop_timeout_ms =
        s->cfg->has_data_source_stop_timeout_ms && s->cfg->data_source_stop_timeout_ms
            ? s->cfg->data_source_stop_timeout_ms
            : DEFAULT_STOP_TIMEOUT_MS;
    if (s->cfg->has_enable_extra_guardrails) {
        dc->has_enable_extra_guardrails = true;
        dc->enable_extra_guardrails = s->cfg->enable_extra_guardrails;
    }
    return dc;
}

static int send_ds_command(struct tb_svc_session *s, struct tb_svc_instance *inst, bool start)
{
    Perfetto__Protos__GetAsyncCommandResponse cmd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__SetupDataSource setup =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__SETUP_DATA_SOURCE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__StartDataSource st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__START_DATA_SOURCE__INIT;
    struct tb_svc_producer *p = tb_svc_core_find_producer(s->core, inst->producer_id);
    Perfetto__Protos__DataSourceConfig *dc;
    int err;

    if (!p)
        return -ENOENT;
    dc = build_config(s, inst);
    if (!dc)
        return -ENOMEM;
    if (start) {
        st.has_new_instance_id = true;
        st.new_instance_id = inst->id;
        st.config = dc;
        cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE;
        cmd.start_data_source = &st;
    } else {
        setup.has_new_instance_id = true;
        setup.new_instance_id = inst->id;
        setup.config = dc;
        cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_DATA_SOURCE;
        cmd.setup_data_source = &setup;
    }
    err = tb_svc_producer_send(p, &cmd, -1);
    perfetto__protos__data_source_config__free_unpacked(dc, NULL);
    return err;
}

static bool has_instance(const struct tb_svc_session *s, uint16_t producer_id, size_t cfg_index)
{
    const struct tb_svc_list *pos;

    for (pos = s->instances.next; pos != &s->instances; pos = pos->next) {
        const struct tb_svc_instance *i = tb_svc_container_of(pos, struct tb_svc_instance, node);

        if (i->producer_id == producer_id && i->cfg_index == cfg_index)
            return true;
    }
    return false;
}

static void free_instance(struct tb_svc_instance *inst)
{
    tb_svc_list_del(&inst->node);
    free(inst->ds_name);
    free(inst);
}

/* Creates the instance and sends SetupTracing (once) and SetupDataSource. */
static int setup_one(struct tb_svc_session *s, size_t idx, struct tb_svc_producer *p,
                     const struct tb_svc_ds *ds)
{
    struct tb_svc_instance *inst = calloc(1, sizeof(*inst));
    int err = -ENOMEM;

    if (!inst)
        return -ENOMEM;
    inst->ds_name = strdup(ds->name);
    if (!inst->ds_name) {
        free(inst);
        return -ENOMEM;
    }
    inst->id = s->core->next_instance_id++;
    inst->producer_id = p->id;
    inst->cfg_index = idx;
    inst->target_buffer = target_buffer_id(s, s->cfg->data_sources[idx]->config);
    inst->will_notify_on_stop = ds->will_notify_on_stop;
    inst->handles_incremental_state_clear = ds->handles_incremental_state_clear;
    inst->no_flush = ds->no_flush;
    tb_svc_list_add_tail(&s->instances, &inst->node);
    err = tb_svc_producer_allow_buffer(p, inst->target_buffer);
    if (!err)
        err = tb_svc_producer_ensure_smb(p, s->cfg);
    if (!err)
        err = send_ds_command(s, inst, false);
    if (err) {
        tb_warn("svc: session %llu: cannot set up \"%s\" on producer %u: %s",
                (unsigned long long)s->id, ds->name, p->id, strerror(-err));
        free_instance(inst);
        return err;
    }
    return 0;
}

static void start_one(struct tb_svc_session *s, struct tb_svc_instance *inst)
{
    if (inst->state != TB_SVC_INST_CONFIGURED)
        return;
    inst->state = TB_SVC_INST_STARTING;
    send_ds_command(s, inst, true);
}

static void setup_matching(struct tb_svc_session *s, struct tb_svc_producer *p,
                           const struct tb_svc_ds *ds)
{
    for (size_t i = 0; i < s->cfg->n_data_sources; i++) {
        if (!p->initialized || p->kicked || has_instance(s, p->id, i) ||
            !matches(s->cfg->data_sources[i], p, ds))
            continue;
        setup_one(s, i, p, ds);
    }
}

void tb_svc_session_setup_instances(struct tb_svc_session *s)
{
    struct tb_svc_list *pos;

    for (pos = s->core->producers.next; pos != &s->core->producers; pos = pos->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pos, struct tb_svc_producer, node);

        for (size_t d = 0; d < p->nds; d++)
            setup_matching(s, p, &p->ds[d]);
    }
}

size_t tb_svc_session_live_ids(struct tb_svc_session *s, uint16_t producer_id,
                               enum tb_svc_live_for what, uint64_t *ids, size_t max)
{
    struct tb_svc_list *pos;
    size_t n = 0;

    for (pos = s->instances.next; pos != &s->instances && n < max; pos = pos->next) {
        struct tb_svc_instance *i = tb_svc_container_of(pos, struct tb_svc_instance, node);

        if (i->producer_id != producer_id)
            continue;
        if (i->state != TB_SVC_INST_STARTING && i->state != TB_SVC_INST_STARTED)
            continue;
        if (what == TB_SVC_LIVE_FLUSH ? i->no_flush : !i->handles_incremental_state_clear)
            continue;
        ids[n++] = i->id;
    }
    return n;
}

static void on_clear_incremental(void *ctx)
{
    struct tb_svc_session *s = ctx;
    struct tb_svc_list *pp;

    for (pp = s->core->producers.next; pp != &s->core->producers; pp = pp->next) {
        struct tb_svc_producer *p = tb_svc_container_of(pp, struct tb_svc_producer, node);
        Perfetto__Protos__GetAsyncCommandResponse cmd =
            PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
        Perfetto__Protos__GetAsyncCommandResponse__ClearIncrementalState clr =
            PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CLEAR_INCREMENTAL_STATE__INIT;
        uint64_t ids[64];

        clr.n_data_source_ids = tb_svc_session_live_ids(s, p->id, TB_SVC_LIVE_CLEAR_INCR, ids, 64);
        if (!clr.n_data_source_ids)
            continue;
        clr.data_source_ids = ids;
        cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_CLEAR_INCREMENTAL_STATE;
        cmd.clear_incremental_state = &clr;
        tb_svc_producer_send(p, &cmd, -1);
    }
}

void tb_svc_session_start_instances(struct tb_svc_session *s)
{
    const Perfetto__Protos__TraceConfig__IncrementalStateConfig *ic =
        s->cfg->incremental_state_config;
    struct tb_svc_list *pos, *tmp;

    tb_svc_session_setup_instances(s);
    tb_svc_list_for_each_safe(pos, tmp, &s->instances)
    {
        start_one(s, tb_svc_container_of(pos, struct tb_svc_instance, node));
    }
    if (ic && ic->has_clear_period_ms && ic->clear_period_ms && !s->t_clear_incr)
        tb_loop_add_timer(s->core->loop, ic->clear_period_ms, ic->clear_period_ms,
                          on_clear_incremental, s, &s->t_clear_incr);
}

size_t tb_svc_session_num_instances(const struct tb_svc_session *s)
{
    size_t n = 0;

    for (const struct tb_svc_list *pos = s->instances.next; pos != &s->instances; pos = pos->next)
        n++;
    return n;
}

void tb_svc_sessions_on_ds_registered(struct tb_svc_core *core, struct tb_svc_producer *p,
                                      const struct tb_svc_ds *ds)
{
    struct tb_svc_list *pos, *ip, *tmp;

    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next) {
        struct tb_svc_session *s = tb_svc_container_of(pos, struct tb_svc_session, node);

        if (s->state != TB_SVC_CONFIGURED && s->state != TB_SVC_STARTED)
            continue;
        setup_matching(s, p, ds);
        if (s->state != TB_SVC_STARTED)
            continue;
        tb_svc_list_for_each_safe(ip, tmp, &s->instances)
        {
            struct tb_svc_instance *i = tb_svc_container_of(ip, struct tb_svc_instance, node);

            if (i->producer_id == p->id)
                start_one(s, i);
        }
    }
}

static void send_stop(struct tb_svc_session *s, struct tb_svc_instance *inst)
{
    Perfetto__Protos__GetAsyncCommandResponse cmd =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__INIT;
    Perfetto__Protos__GetAsyncCommandResponse__StopDataSource st =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__STOP_DATA_SOURCE__INIT;
    struct tb_svc_producer *p = tb_svc_core_find_producer(s->core, inst->producer_id);

    if (!p)
        return;
    st.has_instance_id = true;
    st.instance_id = inst->id;
    cmd.cmd_case = PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE;
    cmd.stop_data_source = &st;
    tb_svc_producer_send(p, &cmd, -1);
}

unsigned tb_svc_session_stop_instances(struct tb_svc_session *s)
{
    unsigned pending = 0;
    struct tb_svc_list *pos;

    for (pos = s->instances.next; pos != &s->instances; pos = pos->next) {
        struct tb_svc_instance *i = tb_svc_container_of(pos, struct tb_svc_instance, node);

        if (i->state == TB_SVC_INST_STOPPED || i->state == TB_SVC_INST_STOPPING)
            continue;
        if (!i->producer_id) {
            i->state = TB_SVC_INST_STOPPED;
            continue;
        }
        send_stop(s, i);
        if (i->will_notify_on_stop && i->producer_id) {
            i->state = TB_SVC_INST_STOPPING;
            pending++;
        } else {
            i->state = TB_SVC_INST_STOPPED;
        }
    }
    return pending;
}

void tb_svc_session_drop_instances(struct tb_svc_session *s)
{
    struct tb_svc_list *pos, *tmp;

    tb_svc_list_for_each_safe(pos, tmp, &s->instances)
    {
        struct tb_svc_instance *i = tb_svc_container_of(pos, struct tb_svc_instance, node);

        /* A session torn down early still tells its producers to stop. */
        if (i->producer_id && i->state != TB_SVC_INST_STOPPED && i->state != TB_SVC_INST_STOPPING)
            send_stop(s, i);
        free_instance(i);
    }
}

struct tb_svc_instance *tb_svc_core_find_instance(struct tb_svc_core *core, uint64_t id,
                                                  struct tb_svc_session **out)
{
    struct tb_svc_list *pos, *ip;

    for (pos = core->sessions.next; pos != &core->sessions; pos = pos->next) {
        struct tb_svc_session *s = tb_svc_container_of(pos, struct tb_svc_session, node);

        for (ip = s->instances.next; ip != &s->instances; ip = ip->next) {
            struct tb_svc_instance *i = tb_svc_container_of(ip, struct tb_svc_instance, node);

            if (i->id == id) {
                *out = s;
                return i;
            }
        }
    }
    return NULL;
}

/* Detaches instances of @p (all, or those named @name) and counts them stopped. */
static void detach(struct tb_svc_core *core, struct tb_svc_producer *p, const char *name)
{
    struct tb_svc_list *pos, *tmp, *ip, *itmp;

    tb_svc_list_for_each_safe(pos, tmp, &core->sessions)
    {
        struct tb_svc_session *s = tb_svc_container_of(pos, struct tb_svc_session, node);

        tb_svc_list_for_each_safe(ip, itmp, &s->instances)
        {
            struct tb_svc_instance *i = tb_svc_container_of(ip, struct tb_svc_instance, node);

            if (i->producer_id != p->id || (name && strcmp(name, i->ds_name)))
                continue;
            i->producer_id = 0;
            tb_svc_session_instance_stopped(s, i);
        }
    }
}

void tb_svc_sessions_on_producer_gone(struct tb_svc_core *core, struct tb_svc_producer *p)
{
    detach(core, p, NULL);
}

void tb_svc_sessions_on_ds_unregistered(struct tb_svc_core *core, struct tb_svc_producer *p,
                                        const char *name)
{
    detach(core, p, name);
}

void tb_svc_producer_ds_started(struct tb_svc_producer *p, uint64_t instance_id)
{
    struct tb_svc_session *s = NULL;
    struct tb_svc_instance *i = tb_svc_core_find_instance(p->core, instance_id, &s);

    if (i && i->producer_id == p->id && i->state == TB_SVC_INST_STARTING)
        i->state = TB_SVC_INST_STARTED;
}

void tb_svc_producer_ds_stopped(struct tb_svc_producer *p, uint64_t instance_id)
{
    struct tb_svc_session *s = NULL;
    struct tb_svc_instance *i = tb_svc_core_find_instance(p->core, instance_id, &s);

    if (i && i->producer_id == p->id)
        tb_svc_session_instance_stopped(s, i);
}
