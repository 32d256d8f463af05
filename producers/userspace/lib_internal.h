/*
 * lib_internal.h - what the files of libtracebpf share and nobody else sees.
 *
 * Model: the library records into at most one *target* at a time: a chunk
 * provider (the service's SMB arbiter, or the standalone pool) plus the
 * target buffer id of the data source instance. App threads own one
 * TraceWriter each, bound to the target that was current when they last
 * looked. Whenever the current target changes (session start or stop,
 * disconnect, fork) or its incremental state is cleared, the global
 * generation is bumped; each thread notices on its next event and rebinds
 * (slow path). Targets and the memory they point into are never freed while
 * the process runs, so a thread still writing into a retired target is
 * harmless: nobody reads it any more.
 */
#ifndef TB_LIB_INTERNAL_H
#define TB_LIB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/trace_writer.h"
#include "tracebpf/tracebpf.h"

#define TBL_HIDDEN __attribute__((visibility("hidden")))

/* Hands out writer ids 1..32767 and remembers each id's next chunk id, so
 * a recycled id continues its chunk numbering (readers order by it). */
struct tbl_idalloc {
    pthread_mutex_t lock;
    uint32_t next_hint;
    uint32_t used[(TB_SHM_MAX_WRITER_ID + 1) / 32 + 1];
    uint32_t next_chunk[TB_SHM_MAX_WRITER_ID + 1];
};

/*
 * struct tbl_target - where writers write now. Owned by its backend; never
 * freed while the process runs (see the file comment).
 * @ops/@ops_ctx: chunk provider.
 * @target_buffer: BufferID for chunks and RegisterTraceWriter.
 * @ids: writer id allocator (one per SMB / pool).
 * @incr_gen: bumped by ClearIncrementalState; threads reset interning.
 * @writer_created/@writer_destroyed: optional hooks (service: register and
 *     unregister the writer), called on the app thread, may allocate.
 * @ctx: for the hooks.
 */
struct tbl_target {
    const struct tb_tw_chunk_ops *ops;
    void *ops_ctx;
    uint32_t target_buffer;
    struct tbl_idalloc *ids;
    _Atomic uint32_t incr_gen;
    void (*writer_created)(void *ctx, struct tbl_target *t, uint16_t writer_id);
    void (*writer_destroyed)(void *ctx, struct tbl_target *t, uint16_t writer_id);
    void *ctx;
};

/* Library-wide state (lib_state.c). */
struct tbl_global {
    _Atomic uint32_t gen;
    struct tbl_target *_Atomic target;
    enum tb_tw_policy policy;
    uint32_t stall_ms;
    uint64_t process_uuid;
    pid_t pid;
    char process_name[64];
    /* /proc/self/cmdline: NUL-separated args, cut at a whole arg. */
    char cmdline[512];
    size_t cmdline_len;
    _Atomic uint64_t events_written;
    _Atomic uint64_t events_dropped;
    _Atomic uint64_t chunks_missed;
    _Atomic uint64_t connections;
    _Atomic uint64_t sessions;
    _Atomic uint32_t writers;
    _Atomic bool connected;
};

extern struct tbl_global tbl_g TBL_HIDDEN;

/* lib_state.c */
void tbl_process_init(void) TBL_HIDDEN;
/* Make @t current (NULL: nothing records) and bump the generation. */
void tbl_set_target(struct tbl_target *t) TBL_HIDDEN;
/* Bump the generation so threads re-check their binding. */
void tbl_bump_gen(void) TBL_HIDDEN;
void tbl_idalloc_init(struct tbl_idalloc *a) TBL_HIDDEN;
/* Return: an id 1..32767 or 0 when all are taken; *first_chunk its next chunk id. */
uint16_t tbl_idalloc_get(struct tbl_idalloc *a, uint32_t *first_chunk) TBL_HIDDEN;
void tbl_idalloc_put(struct tbl_idalloc *a, uint16_t id, uint32_t next_chunk) TBL_HIDDEN;
uint64_t tbl_mix64(uint64_t x) TBL_HIDDEN;
uint64_t tbl_hash_str(const char *s) TBL_HIDDEN;
/* CLOCK_BOOTTIME in ns, the trace clock; inline because every event reads it. */
static inline uint64_t tbl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
uint64_t tbl_thread_uuid(pid_t tid) TBL_HIDDEN;

/* categories.c */
/*
 * Category selection of one data source instance (Perfetto TrackEventConfig
 * semantics). Strings are owned by the struct; free with tbl_catcfg_free().
 */
struct tbl_catcfg {
    char **enabled_categories;
    size_t n_enabled_categories;
    char **disabled_categories;
    size_t n_disabled_categories;
    char **enabled_tags;
    size_t n_enabled_tags;
    char **disabled_tags;
    size_t n_disabled_tags;
};
void tbl_catcfg_free(struct tbl_catcfg *c) TBL_HIDDEN;
/* Parse "a,-b,c*" (standalone $TRACEBPF_CATEGORIES). Return: 0 or -ENOMEM. */
int tbl_catcfg_parse_list(struct tbl_catcfg *c, const char *list) TBL_HIDDEN;
/* Add @s to the list @v/@n (copied). Return: 0 or -ENOMEM. */
int tbl_catcfg_add(char ***v, size_t *n, const char *s) TBL_HIDDEN;
bool tbl_catcfg_match(const struct tbl_catcfg *c, const char *name, const char *tags) TBL_HIDDEN;
/* Enable the categories @c selects (NULL: disable all); remembered for
 * categories registered later. Return: 0 or -ENOMEM. */
int tbl_categories_apply(const struct tbl_catcfg *c) TBL_HIDDEN;
/* From the library's constructor: from exit() on, unregistering a category
 * no longer announces the new list to the service. */
void tbl_categories_watch_exit(void) TBL_HIDDEN;
/* Call @fn for every registered category under the registry lock. */
void tbl_categories_foreach(void (*fn)(const struct tracebpf_category *cat, void *ctx),
                            void *ctx) TBL_HIDDEN;

/* te_thread.c: the calling thread's writer, rebinding when stale. */
struct tbl_tls;
struct tbl_tls *tbl_tls_get(void) TBL_HIDDEN;
/* Flush the calling thread's chunk (tracebpf_flush). Return: 0 or -ENOTCONN. */
int tbl_tls_flush(void) TBL_HIDDEN;
/* After fork, in the child: forget the writer without touching its chunk. */
void tbl_tls_forget_after_fork(void) TBL_HIDDEN;
void tbl_tls_set_name(const char *name) TBL_HIDDEN;

/* te_encode.c */
void tbl_write_event(struct tbl_tls *t, struct tracebpf_category *cat, uint32_t type,
                     const char *name, const struct tracebpf_arg *args, size_t nargs) TBL_HIDDEN;

/* standalone.c */
int tbl_standalone_start(const char *output, const char *categories, uint32_t buffer_kb) TBL_HIDDEN;
int tbl_standalone_write(const char *path) TBL_HIDDEN;
void tbl_standalone_stop(void) TBL_HIDDEN;
bool tbl_standalone_active(void) TBL_HIDDEN;
void tbl_standalone_forget_after_fork(void) TBL_HIDDEN;

/* producer.c */
struct tbl_producer_opts {
    const char *producer_name;
    const char *socket_name;
    uint32_t shm_size_hint_kb;
    uint32_t shm_page_size_hint_kb;
};
int tbl_producer_start(const struct tbl_producer_opts *o) TBL_HIDDEN;
void tbl_producer_stop(void) TBL_HIDDEN;
int tbl_producer_flush(uint32_t timeout_ms) TBL_HIDDEN;
bool tbl_producer_active(void) TBL_HIDDEN;
void tbl_producer_forget_after_fork(void) TBL_HIDDEN;
/* A category was registered: announce the new list to a
 * connected service (UpdateDataSource); a no-op before the producer starts.
 * Context: any thread, not holding the category registry lock. */
void tbl_producer_categories_changed(void) TBL_HIDDEN;

/* json_export.c: convert a protobuf trace (Trace bytes) to Chrome JSON. */
int tbl_json_export(const uint8_t *trace, size_t len, const char *path) TBL_HIDDEN;

#endif /* TB_LIB_INTERNAL_H */
