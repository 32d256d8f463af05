/*
 * producer.c - libtracebpf's system backend: the "track_event" data source
 * on the producer socket, over the shared producer client
 * (common/producer_client.h, which owns the IPC thread, the handshake, the
 * SMB, commit batching, flush acks and reconnection with back-off).
 *
 * This file maps the client's callbacks onto the library's model: a
 * started instance becomes the current target (the SMB's arbiter and the
 * instance's target buffer) and its TrackEventConfig selects categories;
 * stop, disconnect and fork retire the target. A target keeps its SMB
 * reference forever, so app threads that have not noticed the change yet
 * keep writing into mapped memory nobody reads (see lib_internal.h).
 * One track_event instance records at a time; a second concurrent session
 * is acknowledged but gets no data (logged).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/producer_client.h"
#include "producers/userspace/lib_internal.h"
#include "producers/userspace/producer.h"

#define DS_NAME "track_event"
/* DataSourceDescriptor.id: non-zero, unique in this producer. */
#define DS_ID 1

/* One SMB of one connection, with the writer ids handed out over it. */
struct conn_smb {
    struct tb_pc_smb *smb;
    uint64_t gen;
    struct tbl_idalloc ids;
    struct conn_smb *next; /* retired list: kept reachable, never freed */
};

/* A started instance's target; kept forever once created. */
struct inst_target {
    struct tbl_target t;
    uint64_t instance_id;
    struct inst_target *next;
};

static struct tb_pc *pc;
static struct tb_pc *forked_pc; /* the parent's, kept reachable in a child */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* below, vs the IPC thread */
/*
 * Serialises descriptor sends, and @pc's start and stop against them and
 * against the writer hooks of app threads (thread exit may race shutdown).
 */
static pthread_mutex_t desc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_smb *smbs;
static struct inst_target *targets;
static struct inst_target *active;
/* Category selection of instances set up but not started yet. */
static struct pending_cfg {
    uint64_t instance_id;
    struct tbl_catcfg cfg;
    uint32_t target_buffer;
} pending;

/* App threads call the writer hooks; desc_lock keeps @pc alive meanwhile. */
static void writer_created(void *ctx, struct tbl_target *t, uint16_t writer_id)
{
    pthread_mutex_lock(&desc_lock);
    if (pc)
        tb_pc_register_trace_writer(pc, writer_id, t->target_buffer);
    pthread_mutex_unlock(&desc_lock);
}

/*
 * UnregisterTraceWriter lets the service forget the writer and end its
 * sequence. The producer client sends the commits queued by the writer's
 * last tb_tw_destroy() before it (producer_client_smb.c), so the final
 * chunk stays on the writer's sequence. Only a writer of the connection's
 * current SMB is unregistered: after a reconnect its id belongs to the new
 * SMB's allocator and may name another thread's writer.
 */
static void writer_destroyed(void *ctx, struct tbl_target *t, uint16_t writer_id)
{
    const struct conn_smb *cs = ctx;

    (void)t;
    pthread_mutex_lock(&desc_lock);
    if (pc && cs && cs->gen == tb_pc_generation(pc))
        tb_pc_unregister_trace_writer(pc, writer_id);
    pthread_mutex_unlock(&desc_lock);
}

/* The current connection's SMB wrapper, created on first use per SMB. */
static struct conn_smb *current_smb(void)
{
    uint64_t gen = tb_pc_generation(pc);
    struct conn_smb *cs;

    for (cs = smbs; cs; cs = cs->next)
        if (cs->gen == gen)
            return cs;
    cs = calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    if (tb_pc_smb_acquire(pc, &cs->smb)) {
        free(cs);
        return NULL;
    }
    cs->gen = tb_pc_smb_generation(cs->smb);
    tbl_idalloc_init(&cs->ids);
    cs->next = smbs;
    smbs = cs;
    return cs;
}

static int cfg_from_proto(struct tbl_catcfg *c, const Perfetto__Protos__TrackEventConfig *te)
{
    int err = 0;

    memset(c, 0, sizeof(*c));
    if (!te)
        return 0;
    for (size_t i = 0; !err && i < te->n_enabled_categories; i++)
        err = tbl_catcfg_add(&c->enabled_categories, &c->n_enabled_categories,
                             te->enabled_categories[i]);
    for (size_t i = 0; !err && i < te->n_disabled_categories; i++)
        err = tbl_catcfg_add(&c->disabled_categories, &c->n_disabled_categories,
                             te->disabled_categories[i]);
    for (size_t i = 0; !err && i < te->n_enabled_tags; i++)
        err = tbl_catcfg_add(&c->enabled_tags, &c->n_enabled_tags, te->enabled_tags[i]);
    for (size_t i = 0; !err && i < te->n_disabled_tags; i++)
        err = tbl_catcfg_add(&c->disabled_tags, &c->n_disabled_tags, te->disabled_tags[i]);
    if (err)
        tbl_catcfg_free(c);
    return err;
}

static void on_setup(struct tb_pc *p, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    pthread_mutex_lock(&lock);
    tbl_catcfg_free(&pending.cfg);
    pending.instance_id = id;
    pending.target_buffer = cfg->has_target_buffer ? cfg->target_buffer : 0;
    if (cfg_from_proto(&pending.cfg, cfg->track_event_config))
        tb_err("tracebpf: instance %llu: out of memory for its config", (unsigned long long)id);
    pthread_mutex_unlock(&lock);
}

static void retire_locked(void)
{
    if (!active)
        return;
    tbl_categories_apply(NULL);
    tbl_set_target(NULL);
    active = NULL;
}

static void on_start(struct tb_pc *p, void *ctx, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg)
{
    struct inst_target *it = NULL;
    struct conn_smb *cs;
    int err;

    pthread_mutex_lock(&lock);
    if (active) {
        tb_warn("tracebpf: instance %llu starts while %llu records; it gets no events",
                (unsigned long long)id, (unsigned long long)active->instance_id);
        goto out;
    }
    if (pending.instance_id != id) {
        /* No SetupDataSource seen for it: take the config from Start. */
        tbl_catcfg_free(&pending.cfg);
        pending.instance_id = id;
        pending.target_buffer = cfg->has_target_buffer ? cfg->target_buffer : 0;
        cfg_from_proto(&pending.cfg, cfg->track_event_config);
    }
    if (!pending.target_buffer) {
        tb_warn("tracebpf: instance %llu has no target buffer", (unsigned long long)id);
        goto out;
    }
    cs = current_smb();
    it = cs ? calloc(1, sizeof(*it)) : NULL;
    if (!it) {
        tb_err("tracebpf: instance %llu: no shared memory to write into", (unsigned long long)id);
        goto out;
    }
    it->instance_id = id;
    it->t = (struct tbl_target){
        .ops = &tb_tw_arbiter_ops,
        .ops_ctx = tb_pc_smb_arbiter(cs->smb),
        .target_buffer = pending.target_buffer,
        .ids = &cs->ids,
        .writer_created = writer_created,
        .writer_destroyed = writer_destroyed,
        .ctx = cs,
    };
    it->next = targets;
    targets = it;
    err = tbl_categories_apply(&pending.cfg);
    if (err)
        tb_err("tracebpf: instance %llu: cannot apply categories: %s", (unsigned long long)id,
               strerror(-err));
    active = it;
    atomic_fetch_add(&tbl_g.sessions, 1);
    tbl_set_target(&it->t);
out:
    pthread_mutex_unlock(&lock);
}

static bool on_stop(struct tb_pc *p, void *ctx, uint64_t id)
{
    pthread_mutex_lock(&lock);
    if (active && active->instance_id == id)
        retire_locked();
    pthread_mutex_unlock(&lock);
    /* Chunks threads still hold are scraped by the service; the ack goes
     * out after the pending commits. */
    return true;
}

static void on_clear(struct tb_pc *p, void *ctx, const uint64_t *ids, size_t n)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; active && i < n; i++) {
        if (ids[i] == active->instance_id) {
            atomic_fetch_add(&active->t.incr_gen, 1);
            tbl_bump_gen();
        }
    }
    pthread_mutex_unlock(&lock);
}

static void on_connected(struct tb_pc *p, void *ctx)
{
    atomic_store(&tbl_g.connected, true);
    atomic_fetch_add(&tbl_g.connections, 1);
}

static void on_disconnected(struct tb_pc *p, void *ctx)
{
    atomic_store(&tbl_g.connected, false);
    pthread_mutex_lock(&lock);
    retire_locked();
    pthread_mutex_unlock(&lock);
}

struct desc_build {
    Perfetto__Protos__TrackEventCategory **cats;
    size_t n, cap;
    int err;
};

static void add_cat(const struct tracebpf_category *cat, void *ctx)
{
    struct desc_build *b = ctx;
    Perfetto__Protos__TrackEventCategory *c;
    char *tags, *save = NULL;

    if (b->err)
        return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        void *nc = realloc(b->cats, cap * sizeof(*b->cats));

        if (!nc) {
            b->err = -ENOMEM;
            return;
        }
        b->cats = nc;
        b->cap = cap;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        b->err = -ENOMEM;
        return;
    }
    perfetto__protos__track_event_category__init(c);
    c->name = (char *)cat->name;
    c->description = (char *)cat->description;
    b->cats[b->n++] = c;
    tags = cat->tags ? strdup(cat->tags) : NULL;
    for (char *t = tags ? strtok_r(tags, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        char **nt = realloc(c->tags, (c->n_tags + 1) * sizeof(*nt));

        if (!nt)
            break;
        c->tags = nt;
        c->tags[c->n_tags] = strdup(t);
        if (c->tags[c->n_tags])
            c->n_tags++;
    }
    free(tags);
}

/*
 * Register (@update false) or update the descriptor listing every category
 * registered now. Callers hold desc_lock, so descriptors reach the client
 * in the order they were built and the last one sent is the newest.
 */
static int send_ds(bool update)
{
    Perfetto__Protos__DataSourceDescriptor d = PERFETTO__PROTOS__DATA_SOURCE_DESCRIPTOR__INIT;
    Perfetto__Protos__TrackEventDescriptor ted = PERFETTO__PROTOS__TRACK_EVENT_DESCRIPTOR__INIT;
    struct desc_build b = {0};
    int err;

    tbl_categories_foreach(add_cat, &b);
    ted.available_categories = b.cats;
    ted.n_available_categories = b.n;
    d.name = DS_NAME;
    d.has_will_notify_on_start = d.will_notify_on_start = 1;
    d.has_will_notify_on_stop = d.will_notify_on_stop = 1;
    d.has_handles_incremental_state_clear = d.handles_incremental_state_clear = 1;
    d.has_id = 1;
    d.id = DS_ID;
    d.track_event_descriptor = &ted;
    if (b.err)
        err = b.err;
    else if (update)
        err = tb_pc_update_data_source(pc, &d);
    else
        err = tb_pc_register_data_source(pc, &d);
    for (size_t i = 0; i < b.n; i++) {
        for (size_t j = 0; j < b.cats[i]->n_tags; j++)
            free(b.cats[i]->tags[j]);
        free(b.cats[i]->tags);
        free(b.cats[i]);
    }
    free(b.cats);
    return err;
}

void tbl_producer_categories_changed(void)
{
    int err;

    pthread_mutex_lock(&desc_lock);
    /* Before tbl_producer_start() the first registration lists them all. */
    err = pc ? send_ds(true) : 0;
    pthread_mutex_unlock(&desc_lock);
    if (err)
        tb_warn("tracebpf: cannot announce the new category list: %s", strerror(-err));
}

/*
 * The library's own SMB request when the app names none: 1 MiB, not the
 * service's 256 KiB. At 1M events/s from one thread (~29 bytes an event)
 * 256 KiB holds ~9 ms, and on a 2-vCPU VM the IPC thread or the service
 * was measured to wait up to 27 ms (hypervisor steal): with 256 KiB 4 of 8
 * quiet 3 s runs lost 49-895 events, with 1 MiB 0 of 8
 * (lib_service_bench -k indexed -t 1 -d 3 -c 0 -s 256 / -s 1024).
 */
#define TBL_DEFAULT_SHM_KB 1024u

int tbl_producer_start(const struct tbl_producer_opts *o)
{
    struct tb_pc_opts po = {
        .producer_name = o->producer_name ? o->producer_name : tbl_g.process_name,
        .socket_name = o->socket_name,
        .smb_size_hint = (o->shm_size_hint_kb ? o->shm_size_hint_kb : TBL_DEFAULT_SHM_KB) * 1024u,
        .smb_page_size_hint = o->shm_page_size_hint_kb * 1024u,
        .sdk_version = "libtracebpf " TB_LIB_VERSION,
        .own_thread = true,
        .cb =
            {
                .on_connected = on_connected,
                .on_disconnected = on_disconnected,
                .on_setup = on_setup,
                .on_start = on_start,
                .on_stop = on_stop,
                .on_clear_incremental_state = on_clear,
            },
    };
    int err;

    pthread_mutex_lock(&desc_lock);
    err = tb_pc_create(&po, &pc);
    if (err) {
        pc = NULL;
        tb_err("tracebpf: cannot start the producer client: %s", strerror(-err));
        goto out;
    }
    err = send_ds(false);
    if (err) {
        tb_err("tracebpf: cannot register %s: %s", DS_NAME, strerror(-err));
        tb_pc_destroy(pc);
        pc = NULL;
    }
out:
    pthread_mutex_unlock(&desc_lock);
    return err;
}

void tbl_producer_stop(void)
{
    struct tb_pc *p = pc;

    if (!p)
        return;
    pthread_mutex_lock(&lock);
    retire_locked();
    pthread_mutex_unlock(&lock);
    /* Sends what is pending and waits for the service to have read it. */
    pthread_mutex_lock(&desc_lock);
    tb_pc_destroy(p);
    pc = NULL;
    pthread_mutex_unlock(&desc_lock);
    atomic_store(&tbl_g.connected, false);
}

int tbl_producer_flush(uint32_t timeout_ms)
{
    struct inst_target *it;
    struct timespec ts = {0, 1000 * 1000};
    uint32_t waited = 0;

    if (!pc)
        return -ENOTCONN;
    tb_pc_commit(pc);
    pthread_mutex_lock(&lock);
    it = active;
    pthread_mutex_unlock(&lock);
    if (!it)
        return -ENOTCONN;
    while (tb_arbiter_pending_commits(it->t.ops_ctx) && waited < timeout_ms) {
        nanosleep(&ts, NULL);
        waited++;
    }
    return tb_arbiter_pending_commits(it->t.ops_ctx) ? -ETIMEDOUT : 0;
}

uint64_t tbl_producer_max_commit_delay_ns(bool reset)
{
    struct inst_target *it;

    pthread_mutex_lock(&lock);
    it = active;
    pthread_mutex_unlock(&lock);
    /* A target and its arbiter live as long as the process. */
    return it ? tb_arbiter_max_commit_delay_ns(it->t.ops_ctx, reset) : 0;
}

bool tbl_producer_active(void)
{
    return pc != NULL;
}

void tbl_producer_forget_after_fork(void)
{
    if (pc)
        tb_pc_after_fork_child(pc);
    forked_pc = pc;
    /* The parent's client, SMBs and targets stay allocated: never used again. */
    pc = NULL;
    active = NULL;
    pthread_mutex_init(&lock, NULL);
    pthread_mutex_init(&desc_lock, NULL);
}
