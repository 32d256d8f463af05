/*
 * producer_client_life.c - creating and destroying a producer client (its
 * own IPC thread or a caller's loop), the final commit + Sync on destroy,
 * data source registration from any thread, accessors, and the inert state
 * of a forked child.
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
#include "common/thread_prio.h"
#include "common/producer_client_priv.h"
#include "perfetto/ipc/producer_port.pb-c.h"

#define PC_SDK_VERSION     "traced-bpf producer_client 1"
#define PC_DESTROY_SYNC_MS 1000u

static void *ipc_thread_main(void *arg)
{
    struct tb_pc *pc = arg;
    int err;

    tb_thread_short_slice(TB_DRAIN_SLICE_US);
    err = tb_loop_run(pc->loop);

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
    err = tb_loop_add_timer(pc->loop, 0, 0, tb_pci_try_connect, pc, &pc->retry_timer);
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

    pthread_mutex_lock(&pc->lock);
    pc->destroying = true; /* no more callbacks, reconnects or wake-ups */
    pthread_mutex_unlock(&pc->lock);
    tb_pci_drain(pc);
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
        tb_pci_op_free(op);
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
        tb_pci_drain(pc);
    }
    pthread_mutex_lock(&pc->lock);
    pc->destroying = true;
    pthread_mutex_unlock(&pc->lock);
    if (pc->loop)
        tb_loop_cancel_timer(pc->loop, pc->retry_timer);
    tb_ipc_client_free(pc->ipc);
    pc->ipc = NULL;
    atomic_store(&pc->connected, false);
    tb_pci_smb_install(pc, NULL);
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

/* A deep copy the client owns, unknown fields included; NULL on ENOMEM. */
static Perfetto__Protos__DataSourceDescriptor *
copy_desc(const Perfetto__Protos__DataSourceDescriptor *desc)
{
    Perfetto__Protos__DataSourceDescriptor *copy;
    size_t len = protobuf_c_message_get_packed_size(&desc->base);
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return NULL;
    protobuf_c_message_pack(&desc->base, buf);
    copy = perfetto__protos__data_source_descriptor__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

int tb_pc_register_data_source(struct tb_pc *pc, const Perfetto__Protos__DataSourceDescriptor *desc)
{
    Perfetto__Protos__DataSourceDescriptor *copy = NULL;
    struct pc_op *op = NULL;
    size_t i;
    int err = 0;

    if (!desc || !desc->name || !desc->name[0])
        return -EINVAL;
    op = calloc(1, sizeof(*op));
    copy = op ? copy_desc(desc) : NULL;
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
    err = tb_pci_post_op(pc, op);
    op = NULL;
out:
    if (copy)
        protobuf_c_message_free_unpacked(&copy->base, NULL);
    free(op);
    return err;
}

int tb_pc_update_data_source(struct tb_pc *pc, const Perfetto__Protos__DataSourceDescriptor *desc)
{
    struct pc_op *op = NULL;
    int err = -ENOENT;
    size_t i;

    if (!desc || !desc->name || !desc->name[0] || !desc->has_id || !desc->id)
        return -EINVAL;
    pthread_mutex_lock(&pc->lock);
    for (i = 0; i < pc->n_ds; i++) {
        const Perfetto__Protos__DataSourceDescriptor *d = pc->ds[i].desc;

        if (d->has_id && d->id == desc->id) {
            err = strcmp(d->name, desc->name) ? -EINVAL : 0;
            break;
        }
    }
    pthread_mutex_unlock(&pc->lock);
    if (err || atomic_load(&pc->inert))
        return err;
    /*
     * The swap happens on the IPC thread: it is the only one that reads a
     * descriptor outside the lock (while sending it), so it may free the old.
     */
    op = calloc(1, sizeof(*op));
    if (op)
        op->desc = copy_desc(desc);
    if (!op || !op->desc) {
        tb_pci_op_free(op);
        return -ENOMEM;
    }
    op->kind = PC_OP_UPDATE_DS;
    return tb_pci_post_op(pc, op);
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
