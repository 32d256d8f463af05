/*
 * producer_client.c - the connection of the producer client, on the IPC
 * thread: connect with back-off, the §3.7 handshake, data source
 * registration, and the GetAsyncCommand stream (SetupTracing, Setup/Start/
 * Stop DataSource, Flush, ClearIncrementalState). Create/destroy and the
 * accessors are in producer_client_life.c; SMB references, writer ids and
 * commits in producer_client_smb.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/log.h"
#include "common/producer_client_priv.h"
#include "perfetto/ipc/producer_port.pb-c.h"

typedef Perfetto__Protos__GetAsyncCommandResponse pc_cmd_t;

static void schedule_connect(struct tb_pc *pc, uint32_t delay_ms)
{
    if (pc->destroying || pc->gave_up)
        return;
    if (tb_loop_add_timer(pc->loop, delay_ms, 0, tb_pci_try_connect, pc, &pc->retry_timer))
        tb_err("producer %s: cannot arm the reconnect timer (out of memory)", pc->producer_name);
}

/*
 * The connection is over (peer hang-up, refused handshake, broken command
 * stream, or a failed connect). Retire the SMB, forget instances, tell the
 * owner, and plan the next attempt.
 */
static void connection_gone(struct tb_pc *pc, const char *why)
{
    bool was_connected = pc->state == PC_CONNECTED;
    struct tb_pc_smb *old_smb = pc->ipc_smb;
    uint32_t delay;

    tb_ipc_client_free(pc->ipc); /* deferred when inside its callback */
    pc->ipc = NULL;
    pc->state = PC_IDLE;
    pc->n_instances = 0;
    atomic_store(&pc->connected, false);
    tb_pci_smb_install(pc, NULL); /* new generation: writers move off */
    pthread_mutex_lock(&pc->lock);
    pc->flush_ack = 0;
    if (was_connected)
        pc->stats.disconnects++;
    else
        pc->stats.connect_failures++;
    pthread_mutex_unlock(&pc->lock);

    if (was_connected) {
        tb_info("producer %s: disconnected from %s (%s)", pc->producer_name, pc->socket_name, why);
        pc->failures = 0;
        pc->reconnects++;
        delay = 0; /* like the SDK: reconnect at once after a drop */
        if (pc->opts.cb.on_disconnected && !pc->destroying)
            pc->opts.cb.on_disconnected(pc, pc->opts.ctx);
        if (pc->opts.max_reconnects && pc->reconnects > pc->opts.max_reconnects) {
            tb_err("producer %s: disconnected %u times, giving up", pc->producer_name,
                   pc->reconnects);
            pc->gave_up = true;
        }
    } else {
        pc->failures++;
        delay = pc->opts.backoff_initial_ms * pc->failures;
        if (delay > pc->opts.backoff_max_ms || delay / pc->failures != pc->opts.backoff_initial_ms)
            delay = pc->opts.backoff_max_ms;
        /* Only the first failure of a series is worth a line. */
        if (pc->failures == 1)
            tb_debug("producer %s: cannot connect to %s (%s), retrying", pc->producer_name,
                     pc->socket_name, why);
    }
    pc->ipc_smb = NULL;
    tb_pc_smb_release(old_smb); /* after on_disconnected: see tb_pc_arbiter() */
    schedule_connect(pc, delay);
}

int tb_pci_invoke_drop(struct tb_pc *pc, const char *method, const ProtobufCMessage *args)
{
    int err;

    if (!pc->ipc || pc->state < PC_INITIALIZING)
        return -ENOTCONN;
    err = tb_ipc_client_invoke(pc->ipc, method, args, NULL, NULL, NULL, -1, NULL);
    if (err)
        tb_warn("producer %s: %s not sent: %s", pc->producer_name, method, strerror(-err));
    return err;
}

static void on_register_ds_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    Perfetto__Protos__RegisterDataSourceResponse *resp = (void *)r->msg;
    struct tb_pc *pc = ctx;

    if (!r->success && tb_ipc_client_connected(c))
        tb_warn("producer %s: RegisterDataSource rejected", pc->producer_name);
    else if (resp && resp->error && resp->error[0])
        tb_warn("producer %s: RegisterDataSource failed: %s", pc->producer_name, resp->error);
}

void tb_pci_register_pending_ds(struct tb_pc *pc)
{
    Perfetto__Protos__DataSourceDescriptor **todo;
    size_t i, n = 0;

    if (pc->state != PC_CONNECTED)
        return;
    pthread_mutex_lock(&pc->lock);
    todo = calloc(pc->n_ds + 1, sizeof(*todo));
    for (i = 0; todo && i < pc->n_ds; i++) {
        if (pc->ds[i].sent_conn == pc->conn_serial)
            continue;
        pc->ds[i].sent_conn = pc->conn_serial;
        todo[n++] = pc->ds[i].desc; /* descriptors live until destroy */
    }
    pthread_mutex_unlock(&pc->lock);
    if (!todo) {
        tb_err("producer %s: out of memory registering data sources", pc->producer_name);
        return;
    }
    for (i = 0; i < n && pc->ipc; i++) {
        Perfetto__Protos__RegisterDataSourceRequest r =
            PERFETTO__PROTOS__REGISTER_DATA_SOURCE_REQUEST__INIT;
        int err;

        r.data_source_descriptor = todo[i];
        err = tb_ipc_client_invoke(pc->ipc, "RegisterDataSource", &r.base,
                                   &perfetto__protos__register_data_source_response__descriptor,
                                   on_register_ds_reply, pc, -1, NULL);
        if (err)
            tb_warn("producer %s: RegisterDataSource %s not sent: %s", pc->producer_name,
                    todo[i]->name, strerror(-err));
    }
    free(todo);
}

static void on_update_ds_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct tb_pc *pc = ctx;

    if (!r->success && tb_ipc_client_connected(c))
        tb_warn("producer %s: UpdateDataSource rejected", pc->producer_name);
}

/* For a service without UpdateDataSource: withdraw the old descriptor. */
static void unregister_ds(struct tb_pc *pc, const char *name)
{
    Perfetto__Protos__UnregisterDataSourceRequest r =
        PERFETTO__PROTOS__UNREGISTER_DATA_SOURCE_REQUEST__INIT;

    r.data_source_name = (char *)name;
    tb_pci_invoke_drop(pc, "UnregisterDataSource", &r.base);
}

void tb_pci_update_ds(struct tb_pc *pc, Perfetto__Protos__DataSourceDescriptor *desc)
{
    Perfetto__Protos__UpdateDataSourceRequest r =
        PERFETTO__PROTOS__UPDATE_DATA_SOURCE_REQUEST__INIT;
    Perfetto__Protos__DataSourceDescriptor *old = NULL;
    bool announce = false;
    size_t i;
    int err;

    pthread_mutex_lock(&pc->lock);
    for (i = 0; i < pc->n_ds; i++) {
        if (!pc->ds[i].desc->has_id || pc->ds[i].desc->id != desc->id)
            continue;
        old = pc->ds[i].desc;
        pc->ds[i].desc = desc;
        announce = pc->state == PC_CONNECTED && pc->ds[i].sent_conn == pc->conn_serial;
        if (announce && !tb_ipc_client_has_method(pc->ipc, "UpdateDataSource"))
            pc->ds[i].sent_conn = 0; /* re-registered below */
        break;
    }
    pthread_mutex_unlock(&pc->lock);
    if (!old) {
        /* Checked by tb_pc_update_data_source(); data sources never go away. */
        protobuf_c_message_free_unpacked(&desc->base, NULL);
        return;
    }
    protobuf_c_message_free_unpacked(&old->base, NULL);
    if (!announce) {
        /* Not on the wire yet: the pending registration sends @desc. */
        tb_pci_register_pending_ds(pc);
        return;
    }
    if (!tb_ipc_client_has_method(pc->ipc, "UpdateDataSource")) {
        unregister_ds(pc, desc->name);
        tb_pci_register_pending_ds(pc);
        return;
    }
    r.data_source_descriptor = desc;
    err = tb_ipc_client_invoke(pc->ipc, "UpdateDataSource", &r.base,
                               &perfetto__protos__update_data_source_response__descriptor,
                               on_update_ds_reply, pc, -1, NULL);
    if (err)
        tb_warn("producer %s: UpdateDataSource %s not sent: %s", pc->producer_name, desc->name,
                strerror(-err));
}

/* Flags of the registered descriptor called @name; false if unknown. */
static bool find_ds(struct tb_pc *pc, const char *name, bool *notify_start, bool *notify_stop)
{
    bool found = false;
    size_t i;

    if (!name)
        return false;
    pthread_mutex_lock(&pc->lock);
    for (i = 0; i < pc->n_ds; i++) {
        const Perfetto__Protos__DataSourceDescriptor *d = pc->ds[i].desc;

        if (strcmp(d->name, name))
            continue;
        *notify_start = d->will_notify_on_start;
        *notify_stop = d->will_notify_on_stop;
        found = true;
        break;
    }
    pthread_mutex_unlock(&pc->lock);
    return found;
}

static struct pc_instance *find_instance(struct tb_pc *pc, uint64_t id)
{
    size_t i;

    for (i = 0; i < pc->n_instances; i++)
        if (pc->instances[i].id == id)
            return &pc->instances[i];
    return NULL;
}

static void bad_command(struct tb_pc *pc, const char *what)
{
    tb_warn("producer %s: ignoring malformed %s command", pc->producer_name, what);
    pthread_mutex_lock(&pc->lock);
    pc->stats.bad_commands++;
    pthread_mutex_unlock(&pc->lock);
}

static void on_setup_tracing(struct tb_pc *pc, const pc_cmd_t *cmd, struct tb_ipc_reply *r)
{
    size_t page_kb = cmd->setup_tracing->shared_buffer_page_size_kb;
    struct tb_pc_smb *smb;
    struct tb_shm *shm;
    int fd = r->fd, err;

    if (fd < 0)
        return bad_command(pc, "SetupTracing without shared memory fd");
    if (pc->ipc_smb) {
        /* One SMB per connection (spec §1.1); writers keep the first. */
        tb_warn("producer %s: second SetupTracing on one connection ignored", pc->producer_name);
        return;
    }
    r->fd = -1;
    if (page_kb > 64)
        page_kb = 1; /* refused below, without overflowing */
    err = tb_shm_attach(fd, page_kb * 1024, &shm);
    if (!err)
        err = tb_pci_smb_new(pc, shm, &smb);
    if (err) {
        tb_err("producer %s: cannot map the shared memory buffer (page %zu KiB): %s",
               pc->producer_name, page_kb, strerror(-err));
        pthread_mutex_lock(&pc->lock);
        pc->stats.bad_commands++;
        pthread_mutex_unlock(&pc->lock);
        return;
    }
    pc->ipc_smb = smb;
    tb_pci_smb_install(pc, smb);
    tb_debug("producer %s: SMB %zu bytes, %zu-byte pages", pc->producer_name, shm->size,
             shm->page_size);
}

static struct pc_instance *setup_instance(struct tb_pc *pc, uint64_t id,
                                          const Perfetto__Protos__DataSourceConfig *cfg)
{
    bool notify_start = false, notify_stop = false;
    struct pc_instance *in;

    if (!id || !cfg || !find_ds(pc, cfg->name, &notify_start, &notify_stop)) {
        bad_command(pc, "SetupDataSource (unknown data source or no id)");
        return NULL;
    }
    in = find_instance(pc, id);
    if (!in) {
        if (pc->n_instances == pc->cap_instances) {
            size_t cap = pc->cap_instances ? pc->cap_instances * 2 : 8;
            struct pc_instance *a = realloc(pc->instances, cap * sizeof(*a));

            if (!a) {
                tb_err("producer %s: out of memory for instance %llu", pc->producer_name,
                       (unsigned long long)id);
                return NULL;
            }
            pc->instances = a;
            pc->cap_instances = cap;
        }
        in = &pc->instances[pc->n_instances++];
    }
    *in = (struct pc_instance){
        .id = id, .notify_on_start = notify_start, .notify_on_stop = notify_stop};
    if (pc->opts.cb.on_setup)
        pc->opts.cb.on_setup(pc, pc->opts.ctx, id, cfg);
    return find_instance(pc, id); /* the array is ours; re-find to be safe */
}

static void on_start(struct tb_pc *pc,
                     const Perfetto__Protos__GetAsyncCommandResponse__StartDataSource *s)
{
    Perfetto__Protos__NotifyDataSourceStartedRequest n =
        PERFETTO__PROTOS__NOTIFY_DATA_SOURCE_STARTED_REQUEST__INIT;
    struct pc_instance *in = find_instance(pc, s->new_instance_id);
    bool notify_start;

    /* StartDataSource without SetupDataSource (older services): set up first. */
    if (!in && !(in = setup_instance(pc, s->new_instance_id, s->config)))
        return;
    notify_start = in->notify_on_start;
    if (pc->opts.cb.on_start) {
        static const Perfetto__Protos__DataSourceConfig empty =
            PERFETTO__PROTOS__DATA_SOURCE_CONFIG__INIT;

        pc->opts.cb.on_start(pc, pc->opts.ctx, s->new_instance_id, s->config ? s->config : &empty);
    }
    if (notify_start) {
        n.has_data_source_id = true;
        n.data_source_id = s->new_instance_id;
        tb_pci_invoke_drop(pc, "NotifyDataSourceStarted", &n.base);
    }
}

static void on_stop(struct tb_pc *pc, uint64_t id)
{
    struct pc_instance *in = find_instance(pc, id);
    bool notify, ack = true;

    if (!in) {
        tb_debug("producer %s: stop for unknown instance %llu", pc->producer_name,
                 (unsigned long long)id);
        return;
    }
    notify = in->notify_on_stop;
    *in = pc->instances[--pc->n_instances];
    if (pc->opts.cb.on_stop)
        ack = pc->opts.cb.on_stop(pc, pc->opts.ctx, id);
    if (ack && notify) {
        Perfetto__Protos__NotifyDataSourceStoppedRequest n =
            PERFETTO__PROTOS__NOTIFY_DATA_SOURCE_STOPPED_REQUEST__INIT;

        tb_pci_send_commits(pc, 0);
        n.has_data_source_id = true;
        n.data_source_id = id;
        tb_pci_invoke_drop(pc, "NotifyDataSourceStopped", &n.base);
    }
}

static void dispatch(struct tb_pc *pc, const pc_cmd_t *cmd, struct tb_ipc_reply *r)
{
    switch (cmd->cmd_case) {
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_TRACING:
        on_setup_tracing(pc, cmd, r);
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_SETUP_DATA_SOURCE:
        setup_instance(pc, cmd->setup_data_source->new_instance_id, cmd->setup_data_source->config);
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_START_DATA_SOURCE:
        on_start(pc, cmd->start_data_source);
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_STOP_DATA_SOURCE:
        on_stop(pc, cmd->stop_data_source->instance_id);
        break;
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_FLUSH: {
        const Perfetto__Protos__GetAsyncCommandResponse__Flush *f = cmd->flush;

        if (pc->opts.cb.on_flush)
            pc->opts.cb.on_flush(pc, pc->opts.ctx, f->data_source_ids, f->n_data_source_ids,
                                 f->request_id);
        else
            tb_pci_send_commits(pc, f->request_id);
        break;
    }
    case PERFETTO__PROTOS__GET_ASYNC_COMMAND_RESPONSE__CMD_CLEAR_INCREMENTAL_STATE:
        if (pc->opts.cb.on_clear_incremental_state)
            pc->opts.cb.on_clear_incremental_state(pc, pc->opts.ctx,
                                                   cmd->clear_incremental_state->data_source_ids,
                                                   cmd->clear_incremental_state->n_data_source_ids);
        break;
    default:
        /* A newer service's command: skip it, like the SDK does. */
        tb_debug("producer %s: unknown async command %d", pc->producer_name, (int)cmd->cmd_case);
        break;
    }
}

static void on_async_command(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct tb_pc *pc = ctx;

    /* While tb_pc_destroy() waits for the final Sync, no callback may run. */
    if (r->success && r->msg && !pc->destroying)
        dispatch(pc, (const pc_cmd_t *)r->msg, r);
    if (r->success && r->has_more)
        return;
    /* Without the command stream the producer is deaf: start over. */
    if (pc->ipc == c && tb_ipc_client_connected(c))
        connection_gone(pc, r->success ? "command stream ended" : "command stream broken");
}

static void on_init_reply(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    struct tb_pc *pc = ctx;

    if (pc->ipc != c || !tb_ipc_client_connected(c))
        return; /* the disconnect report follows */
    if (!r->success) {
        tb_warn("producer %s: InitializeConnection rejected by %s", pc->producer_name,
                pc->socket_name);
        connection_gone(pc, "InitializeConnection rejected");
        return;
    }
    pc->state = PC_CONNECTED;
    pc->failures = 0;
    atomic_store(&pc->connected, true);
    pthread_mutex_lock(&pc->lock);
    pc->stats.connects++;
    pthread_mutex_unlock(&pc->lock);
    tb_debug("producer %s: connected to %s", pc->producer_name, pc->socket_name);
    tb_pci_register_pending_ds(pc);
    if (pc->opts.cb.on_connected && !pc->destroying)
        pc->opts.cb.on_connected(pc, pc->opts.ctx);
}

static void on_bind(struct tb_ipc_client *c, bool ok, void *ctx)
{
    Perfetto__Protos__InitializeConnectionRequest init =
        PERFETTO__PROTOS__INITIALIZE_CONNECTION_REQUEST__INIT;
    Perfetto__Protos__GetAsyncCommandRequest get =
        PERFETTO__PROTOS__GET_ASYNC_COMMAND_REQUEST__INIT;
    struct tb_pc *pc = ctx;
    int err;

    if (pc->ipc != c || !tb_ipc_client_connected(c))
        return;
    if (!ok)
        return connection_gone(pc, "no ProducerPort service");
    /* Field 1 is the page size hint, field 2 the SMB size (spec §7 item 4). */
    init.has_shared_memory_page_size_hint_bytes = true;
    init.shared_memory_page_size_hint_bytes = pc->opts.smb_page_size_hint;
    init.has_shared_memory_size_hint_bytes = true;
    init.shared_memory_size_hint_bytes = pc->opts.smb_size_hint;
    init.producer_name = pc->producer_name;
    init.has_smb_scraping_mode = true;
    init.smb_scraping_mode =
        (Perfetto__Protos__InitializeConnectionRequest__ProducerSMBScrapingMode)
            pc->opts.scraping_mode;
    init.sdk_version = pc->sdk_version;
    err = tb_ipc_client_invoke(c, "InitializeConnection", &init.base,
                               &perfetto__protos__initialize_connection_response__descriptor,
                               on_init_reply, pc, -1, NULL);
    /* Back to back, without waiting for the reply (spec §3.7 step 4). */
    if (!err)
        err = tb_ipc_client_invoke(c, "GetAsyncCommand", &get.base,
                                   &perfetto__protos__get_async_command_response__descriptor,
                                   on_async_command, pc, -1, NULL);
    if (err)
        return connection_gone(pc, strerror(-err));
    pc->state = PC_INITIALIZING;
}

static void on_ipc_disconnect(struct tb_ipc_client *c, void *ctx)
{
    struct tb_pc *pc = ctx;

    if (pc->ipc == c)
        connection_gone(pc, "connection closed");
}

void tb_pci_try_connect(void *ctx)
{
    struct tb_ipc_client_opts o = {.on_disconnect = on_ipc_disconnect};
    struct tb_pc *pc = ctx;
    int err;

    pc->retry_timer = 0;
    if (pc->ipc || pc->destroying)
        return;
    o.ctx = pc;
    err = tb_ipc_client_new(pc->loop, &o, &pc->ipc);
    if (err) {
        pc->ipc = NULL;
        return connection_gone(pc, strerror(-err));
    }
    pc->conn_serial++;
    err = tb_ipc_client_connect(pc->ipc, pc->socket_name);
    if (!err)
        err = tb_ipc_client_bind(pc->ipc, "ProducerPort", on_bind, pc);
    if (err)
        return connection_gone(pc, strerror(-err));
    pc->state = PC_BINDING;
}
