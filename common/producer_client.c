/*
 * producer_client.c - the IPC-thread half of the producer client: create
 * and destroy, connect with back-off, the §3.7 handshake, data source
 * registration, and the GetAsyncCommand stream (SetupTracing, Setup/Start/
 * Stop DataSource, Flush, ClearIncrementalState). The thread-facing half
 * (SMB references, writer ids, commits) is producer_client_smb.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/ipc_client.h"
#include "common/ipc_sock.h"
#include "common/log.h"
#include "common/producer_client_priv.h"
#include "perfetto/ipc/producer_port.pb-c.h"

#define PC_SDK_VERSION     "traced-bpf producer_client 1"
#define PC_DESTROY_SYNC_MS 1000u

typedef Perfetto__Protos__GetAsyncCommandResponse pc_cmd_t;

static void try_connect(void *ctx);

static void schedule_connect(struct tb_pc *pc, uint32_t delay_ms)
{
    if (pc->destroying || pc->gave_up)
        return;
    if (tb_loop_add_timer(pc->loop, delay_ms, 0, try_connect, pc, &pc->retry_timer))
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
    pc_smb_install(pc, NULL); /* new generation: writers move off */
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

int pc_invoke_drop(struct tb_pc *pc, const char *method, const ProtobufCMessage *args)
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

void pc_register_pending_ds(struct tb_pc *pc)
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
        err = pc_smb_new(pc, shm, &smb);
    if (err) {
        tb_err("producer %s: cannot map the shared memory buffer (page %zu KiB): %s",
               pc->producer_name, page_kb, strerror(-err));
        pthread_mutex_lock(&pc->lock);
        pc->stats.bad_commands++;
        pthread_mutex_unlock(&pc->lock);
        return;
    }
    pc->ipc_smb = smb;
    pc_smb_install(pc, smb);
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
        pc_invoke_drop(pc, "NotifyDataSourceStarted", &n.base);
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

        pc_send_commits(pc, 0);
        n.has_data_source_id = true;
        n.data_source_id = id;
        pc_invoke_drop(pc, "NotifyDataSourceStopped", &n.base);
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
            pc_send_commits(pc, f->request_id);
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

    if (r->success && r->msg)
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
    pc_register_pending_ds(pc);
    if (pc->opts.cb.on_connected)
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

static void try_connect(void *ctx)
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

static void *ipc_thread_main(void *arg)
{
    struct tb_pc *pc = arg;
    int err = tb_loop_run(pc->loop);

    if (err)
        tb_err("producer %s: IPC loop failed: %s", pc->producer_name, strerror(-err));
    return NULL;
}

static char *dup_or(const char *s, const char *fallback)
{
    return strdup(s && s[0] ? s : fallback);
}

int tb_pc_create(const struct tb_pc_opts *opts, struct tb_pc **out)
{
    char default_name[32];
    sigset_t all, old;
    struct tb_pc *pc;
    int err;

    *out = NULL;
    if (!opts || (!opts->own_thread && !opts->loop))
        return -EINVAL;
    pc = calloc(1, sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    pthread_mutex_init(&pc->lock, NULL);
    pc->opts = *opts;
    pc->own_thread = opts->own_thread;
    snprintf(default_name, sizeof(default_name), "tracebpf-%d", (int)getpid());
    pc->producer_name = dup_or(opts->producer_name, default_name);
    pc->socket_name = dup_or(opts->socket_name, tb_ipc_sock_default_name(TB_IPC_SOCK_PRODUCER));
    pc->sdk_version = dup_or(opts->sdk_version, PC_SDK_VERSION);
    pc->waker = calloc(1, sizeof(*pc->waker));
    if (!pc->producer_name || !pc->socket_name || !pc->sdk_version || !pc->waker) {
        err = -ENOMEM;
        goto out;
    }
    pc->waker->pc = pc;
    pc->opts.producer_name = pc->producer_name;
    pc->opts.socket_name = pc->socket_name;
    pc->opts.sdk_version = pc->sdk_version;
    if (!pc->opts.scraping_mode)
        pc->opts.scraping_mode = TB_PC_SCRAPING_ENABLED;
    if (!pc->opts.backoff_initial_ms)
        pc->opts.backoff_initial_ms = 1000;
    if (!pc->opts.backoff_max_ms)
        pc->opts.backoff_max_ms = 30000;
    if (pc->opts.backoff_max_ms < pc->opts.backoff_initial_ms)
        pc->opts.backoff_max_ms = pc->opts.backoff_initial_ms;
    pc->conn_serial = 1;
    atomic_init(&pc->generation, 0);
    atomic_init(&pc->connected, false);
    atomic_init(&pc->inert, false);

    if (pc->own_thread) {
        err = tb_loop_new(&pc->loop);
        if (err)
            goto out;
    } else {
        pc->loop = opts->loop;
    }
    /* Armed before the thread starts, so no cross-thread post is needed. */
    err = tb_loop_add_timer(pc->loop, 0, 0, try_connect, pc, &pc->retry_timer);
    if (err)
        goto out;
    if (pc->own_thread) {
        /* App signals must land on app threads, never on our IPC thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        err = -pthread_create(&pc->thread, NULL, ipc_thread_main, pc);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err)
            goto out;
        pc->thread_started = true;
    }
    *out = pc;
    return 0;
out:
    tb_pc_destroy(pc);
    return err;
}

static void quit_loop(void *ctx)
{
    struct tb_pc *pc = ctx;

    tb_loop_quit(pc->loop);
}

static void on_final_sync(struct tb_ipc_client *c, struct tb_ipc_reply *r, void *ctx)
{
    (void)c;
    (void)r;
    quit_loop(ctx);
}

/*
 * Last round on the IPC thread: send what app threads posted and the
 * pending commits, then wait for a Sync reply so the service has read them.
 */
static void shutdown_task(void *ctx)
{
    struct tb_pc *pc = ctx;

    pc_drain(pc);
    if (pc->ipc && pc->state == PC_CONNECTED && tb_ipc_client_has_method(pc->ipc, "Sync") &&
        !tb_ipc_client_invoke(pc->ipc, "Sync", NULL, NULL, on_final_sync, pc, -1, NULL) &&
        !tb_loop_add_timer(pc->loop, PC_DESTROY_SYNC_MS, 0, quit_loop, pc, NULL))
        return;
    tb_loop_quit(pc->loop);
}

static void free_plain(struct tb_pc *pc)
{
    struct pc_op *op;
    size_t i;

    while ((op = pc->ops_head)) {
        pc->ops_head = op->next;
        free(op);
    }
    for (i = 0; i < pc->n_ds; i++)
        protobuf_c_message_free_unpacked(&pc->ds[i].desc->base, NULL);
    free(pc->ds);
    free(pc->instances);
    free(pc->producer_name);
    free(pc->socket_name);
    free(pc->sdk_version);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

void tb_pc_destroy(struct tb_pc *pc)
{
    bool task_queued;

    if (!pc)
        return;
    if (atomic_load(&pc->inert)) {
        /* Forked child: the loop, socket and SMB are the parent's. */
        free(pc->waker);
        free_plain(pc);
        return;
    }
    pthread_mutex_lock(&pc->lock);
    task_queued = pc->drain_posted;
    pthread_mutex_unlock(&pc->lock);
    if (pc->thread_started) {
        if (tb_loop_post_from_any_thread(pc->loop, shutdown_task, pc))
            tb_loop_quit(pc->loop);
        pthread_join(pc->thread, NULL);
        task_queued = false; /* tb_loop_free() discards what is left */
    } else if (pc->loop && !pc->own_thread) {
        pc_drain(pc);
    }
    pthread_mutex_lock(&pc->lock);
    pc->destroying = true;
    pthread_mutex_unlock(&pc->lock);
    if (pc->loop)
        tb_loop_cancel_timer(pc->loop, pc->retry_timer);
    tb_ipc_client_free(pc->ipc);
    pc->ipc = NULL;
    atomic_store(&pc->connected, false);
    pc_smb_install(pc, NULL);
    tb_pc_smb_release(pc->ipc_smb);
    pc->ipc_smb = NULL;
    if (pc->own_thread)
        tb_loop_free(pc->loop);
    if (pc->waker) {
        if (task_queued)
            pc->waker->pc = NULL; /* the queued task frees it */
        else
            free(pc->waker);
    }
    free_plain(pc);
}

int tb_pc_register_data_source(struct tb_pc *pc, const Perfetto__Protos__DataSourceDescriptor *desc)
{
    Perfetto__Protos__DataSourceDescriptor *copy = NULL;
    struct pc_op *op = NULL;
    uint8_t *buf = NULL;
    size_t i, len;
    int err = 0;

    if (!desc || !desc->name || !desc->name[0])
        return -EINVAL;
    len = protobuf_c_message_get_packed_size(&desc->base);
    buf = malloc(len ? len : 1);
    op = calloc(1, sizeof(*op));
    if (!buf || !op) {
        err = -ENOMEM;
        goto out;
    }
    protobuf_c_message_pack(&desc->base, buf);
    /* A deep copy the client owns, unknown fields included. */
    copy = perfetto__protos__data_source_descriptor__unpack(NULL, len, buf);
    if (!copy) {
        err = -ENOMEM;
        goto out;
    }
    pthread_mutex_lock(&pc->lock);
    for (i = 0; i < pc->n_ds; i++)
        if (!strcmp(pc->ds[i].desc->name, copy->name))
            err = -EEXIST;
    if (!err && pc->n_ds == pc->cap_ds) {
        size_t cap = pc->cap_ds ? pc->cap_ds * 2 : 4;
        struct pc_ds *a = realloc(pc->ds, cap * sizeof(*a));

        if (a) {
            pc->ds = a;
            pc->cap_ds = cap;
        } else {
            err = -ENOMEM;
        }
    }
    if (!err) {
        pc->ds[pc->n_ds++] = (struct pc_ds){.desc = copy};
        copy = NULL;
    }
    pthread_mutex_unlock(&pc->lock);
    if (err)
        goto out;
    if (atomic_load(&pc->inert))
        goto out;
    op->kind = PC_OP_REGISTER_DS;
    err = pc_post_op(pc, op);
    op = NULL;
out:
    if (copy)
        protobuf_c_message_free_unpacked(&copy->base, NULL);
    free(buf);
    free(op);
    return err;
}

struct tb_arbiter *tb_pc_arbiter(struct tb_pc *pc)
{
    return pc->ipc_smb ? pc->ipc_smb->arb : NULL;
}

struct tb_shm *tb_pc_shm(struct tb_pc *pc)
{
    return pc->ipc_smb ? pc->ipc_smb->shm : NULL;
}

bool tb_pc_connected(const struct tb_pc *pc)
{
    return atomic_load(&((struct tb_pc *)pc)->connected);
}

void tb_pc_get_stats(const struct tb_pc *pc, struct tb_pc_stats *out)
{
    struct tb_pc *p = (struct tb_pc *)pc;

    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

void tb_pc_after_fork_child(struct tb_pc *pc)
{
    if (!pc)
        return;
    atomic_store(&pc->inert, true);
    atomic_fetch_add(&pc->generation, 1);
    atomic_store(&pc->connected, false);
    /* A parent thread may have held it at fork; nobody else runs here. */
    pthread_mutex_init(&pc->lock, NULL);
    pc->thread_started = false;
    pc->smb = NULL;
    pc->ipc_smb = NULL;
}
