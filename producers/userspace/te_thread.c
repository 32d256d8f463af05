/*
 * te_thread.c - each app thread's writer: created on the thread's first
 * event of a target, rebuilt when the generation says the target changed,
 * flushed and released at thread exit; plus the sequence's interning table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.h"
#include "producers/userspace/te_seq.h"

__thread struct tbl_tls *tbl_tls_cur;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tbl_tls *live_head;
/* Counters of threads that have exited. */
static _Atomic uint64_t dead_written, dead_dropped, dead_missed;

void tbl_seq_reset(struct tbl_tls *t)
{
    memset(t->slots, 0, sizeof(t->slots));
    t->fill = 0;
    t->next_iid = 1;
    t->seq_started = false;
    t->last_ts = 0;
}

struct tbl_intern_slot *tbl_intern(struct tbl_tls *t, uint32_t kind, uint64_t key, bool *is_new)
{
    uint32_t i = tbl_intern_index(kind, key);

    *is_new = false;
    for (;;) {
        struct tbl_intern_slot *s = &t->slots[i];

        if (!s->kind) {
            if (t->fill >= TBL_INTERN_MAX_FILL)
                return NULL;
            s->kind = kind;
            s->key = key;
            s->val = t->next_iid++;
            t->fill++;
            *is_new = true;
            return s;
        }
        if (s->kind == kind && s->key == key)
            return s;
        i = (i + 1) & (TBL_INTERN_SLOTS - 1);
    }
}

static void drop_writer(struct tbl_tls *t)
{
    struct tbl_target *target = t->target;
    struct tb_tw_stats st;
    uint32_t next_chunk;

    if (!t->tw)
        goto out;
    tb_tw_stats(t->tw, &st);
    t->missed_base += st.chunks_missed;
    atomic_store_explicit(&t->missed, t->missed_base, memory_order_relaxed);
    next_chunk = tb_tw_next_chunk_id(t->tw);
    /* Flushing hands the chunk back to a target that may be retired; its
     * memory stays mapped, so that is harmless. */
    tb_tw_destroy(t->tw);
    t->tw = NULL;
    if (target->writer_destroyed)
        target->writer_destroyed(target->ctx, target, t->writer_id);
    tbl_idalloc_put(target->ids, t->writer_id, next_chunk);
    atomic_fetch_sub_explicit(&tbl_g.writers, 1, memory_order_relaxed);
out:
    t->writer_id = 0;
    t->target = NULL;
}

static void create_writer(struct tbl_tls *t, struct tbl_target *target)
{
    struct tb_tw_opts o = {
        .ops = target->ops,
        .ops_ctx = target->ops_ctx,
        .target_buffer = target->target_buffer,
        .policy = tbl_g.policy,
        .stall_timeout_ms = tbl_g.stall_ms,
    };
    uint32_t first_chunk = 0;
    int err;

    o.writer_id = tbl_idalloc_get(target->ids, &first_chunk);
    if (!o.writer_id) {
        tb_warn("tracebpf: thread %d gets no writer: all 32767 ids in use", t->tid);
        return;
    }
    o.first_chunk_id = first_chunk;
    err = tb_tw_create(&o, &t->tw);
    if (err) {
        tb_warn("tracebpf: thread %d: cannot create a writer: %s", t->tid, strerror(-err));
        tbl_idalloc_put(target->ids, o.writer_id, first_chunk);
        return;
    }
    t->writer_id = o.writer_id;
    t->target = target;
    t->incr_gen = atomic_load_explicit(&target->incr_gen, memory_order_acquire);
    tbl_seq_reset(t);
    t->first_on_seq = true;
    atomic_fetch_add_explicit(&tbl_g.writers, 1, memory_order_relaxed);
    if (target->writer_created)
        target->writer_created(target->ctx, target, t->writer_id);
}

static void tls_destroy(void *p)
{
    struct tbl_tls *t = p;

    if (!t)
        return;
    drop_writer(t);
    pthread_mutex_lock(&live_lock);
    if (t->prev_live)
        t->prev_live->next_live = t->next_live;
    else
        live_head = t->next_live;
    if (t->next_live)
        t->next_live->prev_live = t->prev_live;
    atomic_fetch_add(&dead_written, atomic_load(&t->written));
    atomic_fetch_add(&dead_dropped, atomic_load(&t->dropped));
    atomic_fetch_add(&dead_missed, atomic_load(&t->missed));
    pthread_mutex_unlock(&live_lock);
    if (tbl_tls_cur == t)
        tbl_tls_cur = NULL;
    free(t);
}

static void make_key(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static struct tbl_tls *tls_new(void)
{
    struct tbl_tls *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    pthread_once(&tls_once, make_key);
    t->tid = gettid();
    t->thread_uuid = tbl_thread_uuid(t->tid);
    if (prctl(PR_GET_NAME, t->thread_name, 0, 0, 0))
        t->thread_name[0] = 0;
    tbl_seq_reset(t);
    pthread_mutex_lock(&live_lock);
    t->next_live = live_head;
    if (live_head)
        live_head->prev_live = t;
    live_head = t;
    pthread_mutex_unlock(&live_lock);
    pthread_setspecific(tls_key, t);
    tbl_tls_cur = t;
    return t;
}

struct tbl_tls *tbl_tls_rebind(struct tbl_tls *t, uint32_t gen)
{
    struct tbl_target *target;

    if (!t) {
        t = tls_new();
        if (!t)
            return NULL;
    }
    target = atomic_load_explicit(&tbl_g.target, memory_order_acquire);
    if (t->target != target || (target && !t->tw)) {
        drop_writer(t);
        if (target)
            create_writer(t, target);
    } else if (target &&
               t->incr_gen != atomic_load_explicit(&target->incr_gen, memory_order_acquire)) {
        t->incr_gen = atomic_load_explicit(&target->incr_gen, memory_order_acquire);
        tbl_seq_reset(t);
    }
    t->gen = gen;
    return t;
}

struct tbl_tls *tbl_tls_get(void)
{
    return tbl_tls_get_inline();
}

int tbl_tls_flush(void)
{
    struct tbl_tls *t = tbl_tls_get();

    if (!t || !t->tw)
        return -ENOTCONN;
    return tb_tw_flush(t->tw);
}

void tbl_tls_set_name(const char *name)
{
    struct tbl_tls *t = tbl_tls_cur ? tbl_tls_cur : tls_new();

    if (!t)
        return;
    strncpy(t->thread_name, name, sizeof(t->thread_name) - 1);
}

uint64_t tbl_tls_set_fast(bool on)
{
    struct tbl_tls *t = tbl_tls_get();

    if (!t)
        return 0;
    t->no_fast = !on;
    return t->fast_events;
}

void tbl_tls_forget_after_fork(void)
{
    struct tbl_tls *t = tbl_tls_cur;

    /* Other threads do not exist in the child; their structs are leaked
     * rather than freed, since their owners may have held any lock. */
    live_head = NULL;
    pthread_mutex_init(&live_lock, NULL);
    if (!t)
        return;
    /* The writer's chunk lives in the parent's shared memory: never touch
     * it again (no flush, no free of state the parent may share). */
    t->tw = NULL;
    t->target = NULL;
    t->writer_id = 0;
    t->gen = 0;
    t->tid = gettid();
    t->thread_uuid = tbl_thread_uuid(t->tid);
    atomic_store(&t->written, 0);
    atomic_store(&t->dropped, 0);
    atomic_store(&t->missed, 0);
    t->next_live = t->prev_live = NULL;
    live_head = t;
    tbl_seq_reset(t);
}

void tbl_tls_sum_stats(uint64_t *written, uint64_t *dropped, uint64_t *missed) TBL_HIDDEN;
void tbl_tls_sum_stats(uint64_t *written, uint64_t *dropped, uint64_t *missed)
{
    pthread_mutex_lock(&live_lock);
    *written = atomic_load(&dead_written);
    *dropped = atomic_load(&dead_dropped);
    *missed = atomic_load(&dead_missed);
    for (struct tbl_tls *t = live_head; t; t = t->next_live) {
        *written += atomic_load_explicit(&t->written, memory_order_relaxed);
        *dropped += atomic_load_explicit(&t->dropped, memory_order_relaxed);
        *missed += atomic_load_explicit(&t->missed, memory_order_relaxed);
    }
    pthread_mutex_unlock(&live_lock);
}
