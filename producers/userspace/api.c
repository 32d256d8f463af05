/*
 * api.c - the exported entry points of libtracebpf: events, tracks, flows,
 * and the life cycle (init from options or the environment, shutdown,
 * flush, stats, fork handling). Backends live in standalone.c and
 * producer.c; encoding in te_encode.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "producers/userspace/te_fast.h"

void tbl_tls_sum_stats(uint64_t *written, uint64_t *dropped, uint64_t *missed) TBL_HIDDEN;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool inited;
static bool atfork_done;
static uint32_t active_backends;
static struct tracebpf_track process_track = {.kind = TRACEBPF_TRACK_PROCESS};

/* ---- events ---------------------------------------------------------- */

static inline void emit(struct tracebpf_category *cat, uint32_t type, const char *name,
                        const struct tracebpf_arg *args, size_t nargs)
{
    struct tbl_tls *t = tbl_tls_get_inline();

    if (__builtin_expect(!t || !t->tw || t->busy, 0))
        return;
    tbl_write_event(t, cat, type, name, args, nargs);
}

/*
 * An event with no arguments, a counter's value only (@counter), or up to
 * TBL_FAST_MAX_ARGS annotations (@args): te_fast.h when the sequence
 * allows, else the general encoder. @type is a constant at every call site.
 */
static inline __attribute__((always_inline)) void
emit_plain(struct tracebpf_category *cat, uint32_t type, const char *name,
           const struct tracebpf_arg *counter, const struct tracebpf_arg *args, size_t nargs)
{
    struct tbl_tls *t = tbl_tls_get_inline();
    bool dbl = counter && counter->type == TRACEBPF_ARG_COUNTER_DOUBLE;

    if (__builtin_expect(!t || !t->tw || t->busy, 0))
        return;
    if (__builtin_expect(tbl_fast_event(t, cat, type, name, dbl, counter && !dbl ? counter->v.i : 0,
                                        dbl ? counter->v.d : 0.0, args, nargs),
                         1))
        return;
    if (counter)
        tbl_write_event(t, cat, type, name, counter, 1);
    else
        tbl_write_event(t, cat, type, name, args, nargs);
}

TRACEBPF_API void tracebpf_emit(struct tracebpf_category *cat, enum tracebpf_event_type type,
                                const char *name, const struct tracebpf_arg *args, size_t nargs)
{
    if (!cat ||
        (type != TRACEBPF_EVENT_SLICE_END && !__atomic_load_n(&cat->enabled, __ATOMIC_RELAXED)))
        return;
    if (type < TRACEBPF_EVENT_SLICE_BEGIN || type > TRACEBPF_EVENT_COUNTER)
        return;
    if (nargs == 0) {
        switch (type) {
        case TRACEBPF_EVENT_SLICE_BEGIN:
            emit_plain(cat, TRACEBPF_EVENT_SLICE_BEGIN, name, NULL, NULL, 0);
            return;
        case TRACEBPF_EVENT_SLICE_END:
            emit_plain(cat, TRACEBPF_EVENT_SLICE_END, NULL, NULL, NULL, 0);
            return;
        case TRACEBPF_EVENT_INSTANT:
            emit_plain(cat, TRACEBPF_EVENT_INSTANT, name, NULL, NULL, 0);
            return;
        default:
            break;
        }
    } else if (nargs == 1 && type == TRACEBPF_EVENT_COUNTER && name &&
               (args[0].type == TRACEBPF_ARG_COUNTER_INT ||
                args[0].type == TRACEBPF_ARG_COUNTER_DOUBLE)) {
        emit_plain(cat, TRACEBPF_EVENT_COUNTER, name, args, NULL, 0);
        return;
    } else if (nargs <= TBL_FAST_MAX_ARGS) {
        /* te_fast.h refuses anything but annotations. */
        if (type == TRACEBPF_EVENT_SLICE_BEGIN) {
            emit_plain(cat, TRACEBPF_EVENT_SLICE_BEGIN, name, NULL, args, nargs);
            return;
        }
        if (type == TRACEBPF_EVENT_INSTANT) {
            emit_plain(cat, TRACEBPF_EVENT_INSTANT, name, NULL, args, nargs);
            return;
        }
    }
    emit(cat, type, name, args, nargs);
}

TRACEBPF_API void tracebpf_slice_begin(struct tracebpf_category *cat, const char *name)
{
    if (cat && __atomic_load_n(&cat->enabled, __ATOMIC_RELAXED))
        emit_plain(cat, TRACEBPF_EVENT_SLICE_BEGIN, name, NULL, NULL, 0);
}

TRACEBPF_API void tracebpf_slice_end(struct tracebpf_category *cat)
{
    emit_plain(cat, TRACEBPF_EVENT_SLICE_END, NULL, NULL, NULL, 0);
}

TRACEBPF_API void tracebpf_instant(struct tracebpf_category *cat, const char *name)
{
    if (cat && __atomic_load_n(&cat->enabled, __ATOMIC_RELAXED))
        emit_plain(cat, TRACEBPF_EVENT_INSTANT, name, NULL, NULL, 0);
}

TRACEBPF_API void tracebpf_counter_int(struct tracebpf_category *cat, const char *name,
                                       int64_t value)
{
    struct tracebpf_arg a = TRACEBPF__MKARG(NULL, TRACEBPF_ARG_COUNTER_INT, i, value);

    if (cat && name && __atomic_load_n(&cat->enabled, __ATOMIC_RELAXED))
        emit_plain(cat, TRACEBPF_EVENT_COUNTER, name, &a, NULL, 0);
}

TRACEBPF_API void tracebpf_counter_double(struct tracebpf_category *cat, const char *name,
                                          double value)
{
    struct tracebpf_arg a = TRACEBPF__MKARG(NULL, TRACEBPF_ARG_COUNTER_DOUBLE, d, value);

    if (cat && name && __atomic_load_n(&cat->enabled, __ATOMIC_RELAXED))
        emit_plain(cat, TRACEBPF_EVENT_COUNTER, name, &a, NULL, 0);
}

TRACEBPF_API struct tracebpf_scope tracebpf_scope_begin(struct tracebpf_category *cat,
                                                        const char *name,
                                                        const struct tracebpf_arg *args,
                                                        size_t nargs)
{
    struct tracebpf_scope s = {cat, NULL};

    if (nargs == 0) {
        if (cat && __atomic_load_n(&cat->enabled, __ATOMIC_RELAXED))
            emit_plain(cat, TRACEBPF_EVENT_SLICE_BEGIN, name, NULL, NULL, 0);
        return s;
    }
    for (size_t i = 0; i < nargs; i++)
        if (args[i].type == TRACEBPF_ARG_TRACK)
            s.track = args[i].v.track;
    tracebpf_emit(cat, TRACEBPF_EVENT_SLICE_BEGIN, name, args, nargs);
    return s;
}

TRACEBPF_API void tracebpf_scope_end(struct tracebpf_scope *scope)
{
    if (!scope->cat)
        return;
    if (!scope->track) {
        emit_plain(scope->cat, TRACEBPF_EVENT_SLICE_END, NULL, NULL, NULL, 0);
    } else {
        struct tracebpf_arg a = TRACEBPF_ON_TRACK(scope->track);

        emit(scope->cat, TRACEBPF_EVENT_SLICE_END, NULL, &a, 1);
    }
}

TRACEBPF_API uint64_t tracebpf_now(void)
{
    return tbl_now_ns();
}

TRACEBPF_API void tracebpf_set_thread_name(const char *name)
{
    if (name)
        tbl_tls_set_name(name);
}

/* ---- tracks and flows ------------------------------------------------ */

static int track_fill(struct tracebpf_track *t, uint32_t kind, const char *name, uint64_t id,
                      const struct tracebpf_track *parent, uint32_t flags)
{
    if (!t || (kind != TRACEBPF_TRACK_THREAD && (!name || !*name)))
        return -EINVAL;
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->flags = flags;
    t->id = id;
    t->parent = parent;
    if (name)
        strncpy(t->name, name, sizeof(t->name) - 1);
    t->name_hash = tbl_hash_str(t->name);
    return 0;
}

TRACEBPF_API int tracebpf_track_init_named(struct tracebpf_track *track, const char *name,
                                           uint64_t id, const struct tracebpf_track *parent,
                                           uint32_t flags)
{
    return track_fill(track, TRACEBPF_TRACK_NAMED, name, id, parent, flags);
}

TRACEBPF_API int tracebpf_track_init_counter(struct tracebpf_track *track, const char *name,
                                             enum tracebpf_counter_unit unit,
                                             int64_t unit_multiplier,
                                             const struct tracebpf_track *parent)
{
    int err = track_fill(track, TRACEBPF_TRACK_COUNTER, name, 0, parent, 0);

    if (err)
        return err;
    track->unit = (int32_t)unit;
    track->unit_multiplier = unit_multiplier;
    return 0;
}

TRACEBPF_API int tracebpf_track_init_thread(struct tracebpf_track *track, int32_t tid,
                                            const char *name)
{
    if (tid <= 0)
        return -EINVAL;
    track_fill(track, TRACEBPF_TRACK_THREAD, name, 0, NULL, 0);
    track->tid = tid;
    return 0;
}

TRACEBPF_API const struct tracebpf_track *tracebpf_track_process(void)
{
    return &process_track;
}

TRACEBPF_API uint64_t tracebpf_track_uuid(const struct tracebpf_track *t)
{
    uint64_t base;

    if (!t || t->kind == TRACEBPF_TRACK_THREAD_DEFAULT) {
        struct tbl_tls *tls = tbl_tls_get();

        return tls ? tls->thread_uuid : tbl_thread_uuid(gettid());
    }
    switch (t->kind) {
    case TRACEBPF_TRACK_PROCESS:
        return tbl_g.process_uuid;
    case TRACEBPF_TRACK_THREAD:
        return tbl_thread_uuid(t->tid);
    default:
        base = (t->flags & TRACEBPF_TRACK_GLOBAL) ? 0 : tbl_g.process_uuid;
        return tbl_mix64(base ^ t->name_hash ^ tbl_mix64((t->id << 3) | t->kind));
    }
}

TRACEBPF_API uint64_t tracebpf_flow_process_scoped(uint64_t id)
{
    return tbl_mix64(tbl_g.process_uuid ^ tbl_mix64(id ^ 0xf10f10f1ull));
}

/* ---- life cycle ------------------------------------------------------ */

static void log_adapter(enum tb_log_level level, const char *msg, void *ctx);
static tracebpf_log_fn user_log_fn;
static void *user_log_ctx;

static void log_adapter(enum tb_log_level level, const char *msg, void *ctx)
{
    (void)ctx;
    if (user_log_fn)
        user_log_fn((enum tracebpf_log_level)level, msg, user_log_ctx);
}

TRACEBPF_API void tracebpf_set_log_fn(tracebpf_log_fn fn, void *ctx)
{
    user_log_fn = fn;
    user_log_ctx = ctx;
    tb_log_set_sink(fn ? log_adapter : NULL, NULL);
    tb_log_set_level(fn ? TB_LOG_DEBUG : TB_LOG_WARN);
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&init_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&init_lock);
}

/*
 * The child inherits the parent's shared memory mappings and socket. It
 * must never write into them: forget every writer and backend, stop
 * recording, and stay quiet until it calls tracebpf_init() itself.
 */
static void atfork_child(void)
{
    pthread_mutex_init(&init_lock, NULL);
    atomic_store(&tbl_g.target, NULL);
    tbl_process_init();
    tbl_tls_forget_after_fork();
    tbl_standalone_forget_after_fork();
    tbl_producer_forget_after_fork();
    tbl_categories_apply(NULL);
    atomic_store(&tbl_g.writers, 0);
    atomic_store(&tbl_g.connected, false);
    tbl_bump_gen();
    inited = false;
    active_backends = 0;
}

static bool opts_valid(const struct tracebpf_init_opts *o)
{
    const uint8_t *p = (const uint8_t *)o;

    if (o->sz < offsetof(struct tracebpf_init_opts, backends))
        return false;
    /* A newer app's extra fields are fine only when unset. */
    for (size_t i = sizeof(*o); i < o->sz; i++)
        if (p[i])
            return false;
    return true;
}

#define OPT(o, f) \
    ((o) && (o)->sz >= offsetof(struct tracebpf_init_opts, f) + sizeof((o)->f) ? (o)->f : 0)

TRACEBPF_API int tracebpf_init(const struct tracebpf_init_opts *opts)
{
    const char *output, *categories, *env;
    uint32_t backends, buffer_kb;
    int err = 0;

    if (opts && !opts_valid(opts))
        return -EINVAL;
    pthread_mutex_lock(&init_lock);
    if (inited)
        goto out;
    if (!atfork_done) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        atfork_done = true;
    }
    if (!user_log_fn)
        tb_log_set_level(getenv("TRACEBPF_DEBUG") ? TB_LOG_DEBUG : TB_LOG_WARN);
    if (!tbl_g.pid)
        tbl_process_init();
    tbl_g.policy = OPT(opts, full_policy) == TRACEBPF_FULL_STALL ? TB_TW_STALL : TB_TW_DROP;
    tbl_g.stall_ms = OPT(opts, stall_timeout_ms);
    output = OPT(opts, output) ? OPT(opts, output) : getenv("TRACEBPF_OUTPUT");
    if (output && !*output)
        output = NULL;
    backends = OPT(opts, backends);
    if (!backends)
        backends = output ? TRACEBPF_BACKEND_STANDALONE : TRACEBPF_BACKEND_SYSTEM;
    if ((backends & ~(TRACEBPF_BACKEND_SYSTEM | TRACEBPF_BACKEND_STANDALONE)) ||
        backends == (TRACEBPF_BACKEND_SYSTEM | TRACEBPF_BACKEND_STANDALONE) ||
        ((backends & TRACEBPF_BACKEND_STANDALONE) && !output)) {
        err = -EINVAL;
        goto out;
    }
    if (backends & TRACEBPF_BACKEND_STANDALONE) {
        categories = OPT(opts, categories) ? OPT(opts, categories) : getenv("TRACEBPF_CATEGORIES");
        buffer_kb = OPT(opts, buffer_size_kb);
        env = getenv("TRACEBPF_BUFFER_KB");
        if (!buffer_kb && env)
            buffer_kb = (uint32_t)strtoul(env, NULL, 10);
        err = tbl_standalone_start(output, categories, buffer_kb);
    } else {
        struct tbl_producer_opts po = {
            .producer_name = OPT(opts, producer_name),
            .socket_name = OPT(opts, socket_name),
            .shm_size_hint_kb = OPT(opts, shm_size_hint_kb),
            .shm_page_size_hint_kb = OPT(opts, shm_page_size_hint_kb),
        };
        err = tbl_producer_start(&po);
    }
    if (err)
        goto out;
    active_backends = backends;
    inited = true;
out:
    pthread_mutex_unlock(&init_lock);
    return err;
}

TRACEBPF_API void tracebpf_shutdown(void)
{
    pthread_mutex_lock(&init_lock);
    if (!inited)
        goto out;
    tbl_tls_flush();
    if (active_backends & TRACEBPF_BACKEND_STANDALONE)
        tbl_standalone_stop();
    else
        tbl_producer_stop();
    inited = false;
    active_backends = 0;
out:
    pthread_mutex_unlock(&init_lock);
}

TRACEBPF_API int tracebpf_flush(uint32_t timeout_ms)
{
    int err = tbl_tls_flush();

    if (tbl_producer_active())
        return tbl_producer_flush(timeout_ms);
    return err;
}

TRACEBPF_API int tracebpf_flush_to_file(const char *path)
{
    if (!tbl_standalone_active())
        return -ENOTCONN;
    tbl_tls_flush();
    return tbl_standalone_write(path);
}

TRACEBPF_API int tracebpf_get_stats(struct tracebpf_stats *out)
{
    struct tracebpf_stats s = {.sz = sizeof(s)};
    size_t n;

    if (!out || out->sz < sizeof(size_t))
        return -EINVAL;
    tbl_tls_sum_stats(&s.events_written, &s.events_dropped, &s.chunks_missed);
    s.connections = atomic_load(&tbl_g.connections);
    s.sessions = atomic_load(&tbl_g.sessions);
    s.writers = atomic_load(&tbl_g.writers);
    s.connected = atomic_load(&tbl_g.connected);
    s.recording = atomic_load(&tbl_g.target) != NULL;
    n = out->sz < sizeof(s) ? out->sz : sizeof(s);
    memcpy((uint8_t *)out + sizeof(size_t), (uint8_t *)&s + sizeof(size_t), n - sizeof(size_t));
    return 0;
}

/* Standalone recording needs no code change: TRACEBPF_OUTPUT is enough. */
__attribute__((constructor)) static void tracebpf_auto_init(void)
{
    const char *out = getenv("TRACEBPF_OUTPUT");

    tbl_process_init();
    tbl_categories_watch_exit();
    if (out && *out)
        tracebpf_init(NULL);
}
