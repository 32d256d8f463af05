/*
 * tracebpf.h - libtracebpf, the application instrumentation API of traced-bpf.
 *
 * An app defines its trace categories statically, then marks slices,
 * instants, counters and flows with the macros below. Events become
 * Perfetto track events (the same packets Perfetto's SDK writes) in a
 * per-thread packet sequence on shared memory, and reach either
 *   - the traced-bpf service (or Perfetto's traced) over the producer socket,
 *     once tracebpf_init() has connected and a session enables the
 *     "track_event" data source, or
 *   - a file written by the library itself (standalone mode), selected with
 *     TRACEBPF_OUTPUT=/path/trace.pftrace (or .json for Chrome JSON).
 *
 * Example:
 *
 *     #include <tracebpf/tracebpf.h>
 *
 *     TRACEBPF_DEFINE_CATEGORY(render, "render", "Frame rendering", NULL);
 *
 *     void draw(int frame)
 *     {
 *         TRACE_EVENT(render, "draw", TRACEBPF_ARG("frame", frame));
 *         ...                                  // slice ends at scope exit
 *         TRACE_COUNTER(render, "fps", 59.9);
 *     }
 *
 *     int main(void) { tracebpf_init(NULL); ... }
 *
 * Cost: a disabled category is one byte load and one branch at the call
 * site. An enabled event takes no lock, makes no syscall other than the
 * vDSO clock_gettime(CLOCK_BOOTTIME), and allocates nothing, except when
 * the thread's chunk is full (a lock-free chunk switch) or on the thread's
 * first event of a session (writer set-up).
 *
 * Strings: event names, category names and annotation names passed to the
 * macros must be string literals or otherwise live for the whole process:
 * they are interned by address. Use TRACEBPF_DYNAMIC_NAME() for a name
 * built at run time, and TRACEBPF_ARG() string values may be temporary
 * (they are copied into the trace).
 *
 * ABI: options structs start with `size_t sz` and are declared with
 * TRACEBPF_OPTS(), so an app built against a newer header runs on an older
 * library (unknown trailing fields must be zero) and vice versa. Only the
 * symbols marked TRACEBPF_API are exported (version node TRACEBPF_1.0).
 *
 * Threads: every function is safe from any thread unless its comment says
 * otherwise. Signal handlers must not emit events.
 */
#ifndef TRACEBPF_TRACEBPF_H
#define TRACEBPF_TRACEBPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRACEBPF_API __attribute__((visibility("default")))

#define TRACEBPF_VERSION_MAJOR 0
#define TRACEBPF_VERSION_MINOR 1

/* ------------------------------------------------------------------------ */
/* Options structs                                                           */

/*
 * TRACEBPF_OPTS() - declare an options struct @NAME of type struct @TYPE,
 * zero-filled (padding included) with sz set, then the given designated
 * initialisers applied: TRACEBPF_OPTS(tracebpf_init_opts, o, .output = "t");
 */
#define TRACEBPF_OPTS(TYPE, NAME, ...)                         \
    struct TYPE NAME = ({                                      \
        memset(&NAME, 0, sizeof(struct TYPE));                 \
        (struct TYPE){.sz = sizeof(struct TYPE), __VA_ARGS__}; \
    })

/* Backends tracebpf_init() may start (tracebpf_init_opts.backends). */
#define TRACEBPF_BACKEND_SYSTEM     0x1u /* the producer socket of traced-bpf / traced */
#define TRACEBPF_BACKEND_STANDALONE 0x2u /* in-process recording to a file */

/* What a writer does when shared memory has no free chunk. */
enum tracebpf_full_policy {
    TRACEBPF_FULL_DROP = 0,  /* drop the event and count it (default) */
    TRACEBPF_FULL_STALL = 1, /* wait up to stall_timeout_ms, then drop */
};

/*
 * struct tracebpf_init_opts - how tracebpf_init() sets the library up.
 * @sz: sizeof(struct tracebpf_init_opts), set by TRACEBPF_OPTS().
 * @backends: TRACEBPF_BACKEND_* mask; 0 means SYSTEM, plus STANDALONE when
 *     @output (or $TRACEBPF_OUTPUT) is set.
 * @producer_name: name the service shows; NULL for the process name.
 *     Copied.
 * @socket_name: producer socket; NULL for $PERFETTO_PRODUCER_SOCK_NAME or
 *     Perfetto's default path. Copied.
 * @output: standalone output file; NULL for $TRACEBPF_OUTPUT. A name ending
 *     in ".json" gives Chrome JSON, anything else a Perfetto protobuf trace.
 *     Copied.
 * @categories: standalone mode: comma-separated category patterns, a "-"
 *     prefix disables ("-*,render" = only render); NULL for
 *     $TRACEBPF_CATEGORIES, and if unset every category except those
 *     tagged "slow" or "debug". Copied.
 * @buffer_size_kb: standalone buffer (default $TRACEBPF_BUFFER_KB or
 *     65536); recording stops, counting drops, once it is full.
 * @shm_size_hint_kb, @shm_page_size_hint_kb: hints sent to the service
 *     (0 = 1 MiB of shared memory, and the service's 4 KiB pages).
 * @full_policy: see enum tracebpf_full_policy.
 * @stall_timeout_ms: TRACEBPF_FULL_STALL only; 0 = 1000.
 */
struct tracebpf_init_opts {
    size_t sz;
    uint32_t backends;
    uint32_t buffer_size_kb;
    const char *producer_name;
    const char *socket_name;
    const char *output;
    const char *categories;
    uint32_t shm_size_hint_kb;
    uint32_t shm_page_size_hint_kb;
    enum tracebpf_full_policy full_policy;
    uint32_t stall_timeout_ms;
};

/* ------------------------------------------------------------------------ */
/* Categories                                                                */

/*
 * struct tracebpf_category - one trace category. Define it with
 * TRACEBPF_DEFINE_CATEGORY(); the library fills the private fields.
 * @enabled: non-zero while a session records this category. Read by the
 *     macros with one relaxed load; written only by the library.
 * @name: category name as configs see it (e.g. "render"); static storage.
 * @description: free text or NULL; static storage.
 * @tags: comma-separated tags ("slow,debug") or NULL; static storage. A
 *     name starting with "disabled-by-default-" implies the "slow" tag.
 */
struct tracebpf_category {
    volatile uint8_t enabled;
    uint8_t registered; /* private */
    uint16_t index;     /* private: position in the registry */
    uint32_t reserved0;
    const char *name;
    const char *description;
    const char *tags;
    struct tracebpf_category *next; /* private */
    void *reserved[3];
};

/*
 * TRACEBPF_DEFINE_CATEGORY() - define category @id (a C identifier) named
 * @cat_name and register it before main() (and unregister it when its
 * module is unloaded). @desc and @tag_list may be NULL. Use once per
 * category in one .c file; other files say TRACEBPF_DECLARE_CATEGORY(id).
 */
#define TRACEBPF_DEFINE_CATEGORY(id, cat_name, desc, tag_list)          \
    struct tracebpf_category tracebpf_cat_##id = {                      \
        .name = (cat_name), .description = (desc), .tags = (tag_list)}; \
    __attribute__((constructor)) static void tracebpf__reg_##id(void)   \
    {                                                                   \
        tracebpf_category_register(&tracebpf_cat_##id);                 \
    }                                                                   \
    __attribute__((destructor)) static void tracebpf__unreg_##id(void)  \
    {                                                                   \
        tracebpf_category_unregister(&tracebpf_cat_##id);               \
    }                                                                   \
    struct tracebpf__define_category_##id##_needs_a_semicolon

/* TRACEBPF_DECLARE_CATEGORY() - make category @id usable in this file. */
#define TRACEBPF_DECLARE_CATEGORY(id) extern struct tracebpf_category tracebpf_cat_##id

/*
 * TRACEBPF_DEFINE_CATEGORIES() - define many categories from an X-macro:
 *     #define MY_CATEGORIES(X) X(render, "render", "Frames", NULL) \
 *                              X(io, "io", "Disk and net", "slow")
 *     TRACEBPF_DEFINE_CATEGORIES(MY_CATEGORIES);
 */
#define TRACEBPF__DEF_ONE(id, n, d, t) TRACEBPF_DEFINE_CATEGORY(id, n, d, t);
#define TRACEBPF_DEFINE_CATEGORIES(LIST) \
    LIST(TRACEBPF__DEF_ONE) struct tracebpf__define_categories_needs_a_semicolon

/* TRACEBPF_CATEGORY() - the struct tracebpf_category of identifier @id. */
#define TRACEBPF_CATEGORY(id) (&tracebpf_cat_##id)

/* TRACEBPF_ENABLED() - whether category @id records now (one load). */
#define TRACEBPF_ENABLED(id) \
    __builtin_expect(__atomic_load_n(&tracebpf_cat_##id.enabled, __ATOMIC_RELAXED), 0)

/**
 * tracebpf_category_register() - add @cat to the registry.
 * @cat: the category, static storage, owned by the caller; must stay valid
 *       until tracebpf_category_unregister().
 *
 * Normally called by TRACEBPF_DEFINE_CATEGORY() before main(). A category
 * registered while a session runs is enabled at once if the session's
 * config selects it, and a connected service is sent the new category
 * list at once (UpdateDataSource), so consumers listing data sources see it.
 * Registering the same struct twice is a no-op.
 * Return: 0, -EINVAL (NULL or no name), -ENOSPC (over 4096 categories).
 * Context: any thread; takes the registry lock.
 */
TRACEBPF_API int tracebpf_category_register(struct tracebpf_category *cat);

/**
 * tracebpf_category_unregister() - remove @cat from the registry and
 * disable it. Unknown categories are ignored. While connected, the
 * service's list of categories is updated at once, except once exit() has
 * begun (categories defined with TRACEBPF_DEFINE_CATEGORY() all unregister
 * then, and the connection goes with the process).
 * @cat: a registered category.
 * Context: any thread; no event on @cat may be in flight (module unload).
 */
TRACEBPF_API void tracebpf_category_unregister(struct tracebpf_category *cat);

/* ------------------------------------------------------------------------ */
/* Tracks                                                                    */

enum tracebpf_track_kind {
    TRACEBPF_TRACK_THREAD_DEFAULT = 0, /* the calling thread's own track */
    TRACEBPF_TRACK_PROCESS = 1,        /* the process track */
    TRACEBPF_TRACK_NAMED = 2,          /* a custom slice track */
    TRACEBPF_TRACK_COUNTER = 3,        /* a custom counter track */
    TRACEBPF_TRACK_THREAD = 4,         /* the track of thread @tid */
};

/* Units of a counter track (CounterDescriptor.unit). */
enum tracebpf_counter_unit {
    TRACEBPF_UNIT_UNSPECIFIED = 0,
    TRACEBPF_UNIT_TIME_NS = 1,
    TRACEBPF_UNIT_COUNT = 2,
    TRACEBPF_UNIT_SIZE_BYTES = 3,
};

#define TRACEBPF_TRACK_NAME_MAX 64

/* Flags of struct tracebpf_track. */
#define TRACEBPF_TRACK_GLOBAL 0x1u /* uuid not tied to this process: shared across processes */

/*
 * struct tracebpf_track - an explicit track. Fill it with one of the
 * tracebpf_track_init_*() functions; fields are private. The caller owns
 * the storage and keeps it valid while events may use it. A track's
 * descriptor is written on a thread's sequence the first time the thread
 * uses it (and again after incremental state is cleared).
 */
struct tracebpf_track {
    uint32_t kind;
    uint32_t flags;
    uint64_t id;
    uint64_t name_hash;
    const struct tracebpf_track *parent;
    int32_t tid;
    int32_t unit;
    int64_t unit_multiplier;
    char name[TRACEBPF_TRACK_NAME_MAX];
    uint64_t reserved[4];
};

/**
 * tracebpf_track_init_named() - a custom track for slices and instants.
 * @track: caller-owned storage to fill.
 * @name: shown in the UI; copied (truncated to TRACEBPF_TRACK_NAME_MAX-1).
 * @id: distinguishes tracks of the same name (e.g. an async request id).
 * @parent: NULL for a child of the process track, or another track.
 * @flags: 0 or TRACEBPF_TRACK_GLOBAL (then the uuid depends on @name and
 *         @id only, so two processes naming the same track share it).
 * Return: 0 or -EINVAL. Context: any thread.
 */
TRACEBPF_API int tracebpf_track_init_named(struct tracebpf_track *track, const char *name,
                                           uint64_t id, const struct tracebpf_track *parent,
                                           uint32_t flags);

/**
 * tracebpf_track_init_counter() - a custom counter track.
 * @track: caller-owned storage to fill.
 * @name: shown in the UI; copied.
 * @unit: enum tracebpf_counter_unit.
 * @unit_multiplier: values are multiplied by this in the UI (0 = 1).
 * @parent: NULL for a child of the process track, or another track.
 * Return: 0 or -EINVAL. Context: any thread.
 */
TRACEBPF_API int tracebpf_track_init_counter(struct tracebpf_track *track, const char *name,
                                             enum tracebpf_counter_unit unit,
                                             int64_t unit_multiplier,
                                             const struct tracebpf_track *parent);

/**
 * tracebpf_track_init_thread() - the track of another thread of this
 * process, so one thread can mark slices on another's timeline.
 * @track: caller-owned storage to fill.
 * @tid: the thread id (gettid()).
 * @name: thread name to show, or NULL; copied.
 * Return: 0 or -EINVAL. Context: any thread.
 */
TRACEBPF_API int tracebpf_track_init_thread(struct tracebpf_track *track, int32_t tid,
                                            const char *name);

/**
 * tracebpf_track_process() - the process track.
 * Return: a library-owned track, valid for the life of the process.
 */
TRACEBPF_API const struct tracebpf_track *tracebpf_track_process(void);

/**
 * tracebpf_track_uuid() - the uuid that @track has in traces written by
 * this process (NULL: the calling thread's track).
 * Return: the uuid. Context: any thread.
 */
TRACEBPF_API uint64_t tracebpf_track_uuid(const struct tracebpf_track *track);

/* ------------------------------------------------------------------------ */
/* Event arguments: debug annotations, flows, tracks, timestamps             */

enum tracebpf_arg_type {
    TRACEBPF_ARG_NONE = 0,
    TRACEBPF_ARG_INT = 1,               /* DebugAnnotation.int_value */
    TRACEBPF_ARG_UINT = 2,              /* DebugAnnotation.uint_value */
    TRACEBPF_ARG_DOUBLE = 3,            /* DebugAnnotation.double_value */
    TRACEBPF_ARG_BOOL = 4,              /* DebugAnnotation.bool_value */
    TRACEBPF_ARG_STRING = 5,            /* DebugAnnotation.string_value (copied) */
    TRACEBPF_ARG_POINTER = 6,           /* DebugAnnotation.pointer_value */
    TRACEBPF_ARG_FLOW = 16,             /* TrackEvent.flow_ids */
    TRACEBPF_ARG_TERMINATING_FLOW = 17, /* TrackEvent.terminating_flow_ids */
    TRACEBPF_ARG_TRACK = 18,            /* put the event on .v.track */
    TRACEBPF_ARG_TIMESTAMP = 19,        /* CLOCK_BOOTTIME ns in .v.u instead of now */
    TRACEBPF_ARG_DYNAMIC_NAME = 20,     /* event name .v.s copied, not interned */
    TRACEBPF_ARG_COUNTER_INT = 21,      /* counter value (TRACEBPF_EVENT_COUNTER) */
    TRACEBPF_ARG_COUNTER_DOUBLE = 22,
};

/*
 * struct tracebpf_arg - one item of an event's argument list. Build it
 * with the TRACEBPF_ARG*() macros. @name: annotation name, static storage
 * (interned by address); NULL for non-annotation items.
 */
struct tracebpf_arg {
    const char *name;
    uint32_t type;
    uint32_t reserved;
    union {
        int64_t i;
        uint64_t u;
        double d;
        bool b;
        const char *s;
        const void *p;
        const struct tracebpf_track *track;
    } v;
};

#define TRACEBPF__MKARG(n, t, field, val) \
    ((struct tracebpf_arg){.name = (n), .type = (t), .v = {.field = (val)}})
#define TRACEBPF_ARG_I(n, val)   TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(val))
#define TRACEBPF_ARG_U(n, val)   TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(val))
#define TRACEBPF_ARG_D(n, val)   TRACEBPF__MKARG(n, TRACEBPF_ARG_DOUBLE, d, (double)(val))
#define TRACEBPF_ARG_B(n, val)   TRACEBPF__MKARG(n, TRACEBPF_ARG_BOOL, b, (bool)(val))
#define TRACEBPF_ARG_S(n, val)   TRACEBPF__MKARG(n, TRACEBPF_ARG_STRING, s, (val))
#define TRACEBPF_ARG_PTR(n, val) TRACEBPF__MKARG(n, TRACEBPF_ARG_POINTER, p, (const void *)(val))

#ifndef __cplusplus
/*
 * TRACEBPF_ARG() - a debug annotation whose type follows @val: signed
 * integers -> int, unsigned -> uint, float/double -> double, bool -> bool,
 * char pointers -> string, other pointers -> pointer.
 */
#define TRACEBPF_ARG(n, val) \
    _Generic((val),                                                                                \
        _Bool: TRACEBPF__MKARG(n, TRACEBPF_ARG_BOOL, b, (bool)(uintptr_t)(val)),                   \
        char: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(uintptr_t)(val)),                  \
        signed char: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(intptr_t)(val)),            \
        short: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(intptr_t)(val)),                  \
        int: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(intptr_t)(val)),                    \
        long: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(intptr_t)(val)),                   \
        long long: TRACEBPF__MKARG(n, TRACEBPF_ARG_INT, i, (int64_t)(intptr_t)(val)),              \
        unsigned char: TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(uintptr_t)(val)),       \
        unsigned short: TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(uintptr_t)(val)),      \
        unsigned int: TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(uintptr_t)(val)),        \
        unsigned long: TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(uintptr_t)(val)),       \
        unsigned long long: TRACEBPF__MKARG(n, TRACEBPF_ARG_UINT, u, (uint64_t)(uintptr_t)(val)),  \
        float: TRACEBPF__MKARG(n, TRACEBPF_ARG_DOUBLE, d, tracebpf__to_double(val)),               \
        double: TRACEBPF__MKARG(n, TRACEBPF_ARG_DOUBLE, d, tracebpf__to_double(val)),              \
        char *: TRACEBPF__MKARG(n, TRACEBPF_ARG_STRING, s, (const char *)(uintptr_t)(val)),        \
        const char *: TRACEBPF__MKARG(n, TRACEBPF_ARG_STRING, s, (const char *)(uintptr_t)(val)),  \
        default: TRACEBPF__MKARG(n, TRACEBPF_ARG_POINTER, p, (const void *)(uintptr_t)(val)))
#endif

/* Lets _Generic branches that are not taken still compile for any type. */
#define tracebpf__to_double(val) _Generic((val), float : (val), double : (val), default : 0.0)

/* TRACEBPF_FLOW() - this event starts or continues flow @id (u64, non-zero). */
#define TRACEBPF_FLOW(id) TRACEBPF__MKARG(NULL, TRACEBPF_ARG_FLOW, u, (uint64_t)(id))
/* TRACEBPF_TERMINATING_FLOW() - this event ends flow @id. */
#define TRACEBPF_TERMINATING_FLOW(id) \
    TRACEBPF__MKARG(NULL, TRACEBPF_ARG_TERMINATING_FLOW, u, (uint64_t)(id))
/* TRACEBPF_ON_TRACK() - put the event on track @t (const struct tracebpf_track *). */
#define TRACEBPF_ON_TRACK(t) TRACEBPF__MKARG(NULL, TRACEBPF_ARG_TRACK, track, (t))
/* TRACEBPF_AT() - the event happened at CLOCK_BOOTTIME @ns, not now. */
#define TRACEBPF_AT(ns) TRACEBPF__MKARG(NULL, TRACEBPF_ARG_TIMESTAMP, u, (uint64_t)(ns))
/* TRACEBPF_DYNAMIC_NAME() - use run-time string @str as the event name (copied). */
#define TRACEBPF_DYNAMIC_NAME(str) TRACEBPF__MKARG(NULL, TRACEBPF_ARG_DYNAMIC_NAME, s, (str))

/**
 * tracebpf_flow_process_scoped() - a flow id unique to this process for a
 * local @id (a pointer or counter), so processes using the same local ids
 * do not link each other's events. Ids used across processes should be
 * agreed global values passed to TRACEBPF_FLOW() directly.
 * Return: the flow id. Context: any thread.
 */
TRACEBPF_API uint64_t tracebpf_flow_process_scoped(uint64_t id);

/* ------------------------------------------------------------------------ */
/* Emitting events: functions                                                */

enum tracebpf_event_type {
    TRACEBPF_EVENT_SLICE_BEGIN = 1,
    TRACEBPF_EVENT_SLICE_END = 2,
    TRACEBPF_EVENT_INSTANT = 3,
    TRACEBPF_EVENT_COUNTER = 4,
};

/**
 * tracebpf_emit() - write one track event.
 * @cat: the category; the event is dropped when it is not enabled.
 * @type: enum tracebpf_event_type.
 * @name: event name, static storage (interned by address); NULL for
 *        SLICE_END, or for a counter on an explicit track. For a counter
 *        without TRACEBPF_ON_TRACK(), @name names a counter track of the
 *        process (Chromium's TRACE_COUNTER behaviour).
 * @args: @nargs items (borrowed for the call): annotations, flows, a
 *        track, a timestamp, a dynamic name, a counter value.
 * @nargs: number of items.
 *
 * A SLICE_END closes the innermost open slice of its track. When no chunk
 * is free the event is dropped and counted (tracebpf_get_stats()); the
 * next event that lands carries previous_packet_dropped.
 * Context: any thread, not from signal handlers; lock-free, no syscall
 * besides clock_gettime, no allocation except on the thread's first event
 * of a session.
 */
TRACEBPF_API void tracebpf_emit(struct tracebpf_category *cat, enum tracebpf_event_type type,
                                const char *name, const struct tracebpf_arg *args, size_t nargs);

/* tracebpf_slice_begin() - tracebpf_emit() of a SLICE_BEGIN without args. */
TRACEBPF_API void tracebpf_slice_begin(struct tracebpf_category *cat, const char *name);

/*
 * tracebpf_slice_end() - end the innermost slice on the calling thread's
 * track. Written even if @cat was disabled after the begin, so slices do
 * not stay open.
 */
TRACEBPF_API void tracebpf_slice_end(struct tracebpf_category *cat);

/* tracebpf_instant() - an instant event on the calling thread's track. */
TRACEBPF_API void tracebpf_instant(struct tracebpf_category *cat, const char *name);

/* tracebpf_counter_int() - set the process counter track @name to @value. */
TRACEBPF_API void tracebpf_counter_int(struct tracebpf_category *cat, const char *name,
                                       int64_t value);

/* tracebpf_counter_double() - same with a double value. */
TRACEBPF_API void tracebpf_counter_double(struct tracebpf_category *cat, const char *name,
                                          double value);

/**
 * tracebpf_set_thread_name() - name the calling thread's track (default:
 * its comm). Takes effect on the thread's next sequence (next session or
 * incremental-state clear).
 * @name: copied (up to 63 bytes).
 */
TRACEBPF_API void tracebpf_set_thread_name(const char *name);

/**
 * tracebpf_now() - CLOCK_BOOTTIME in nanoseconds, the trace's time base.
 */
TRACEBPF_API uint64_t tracebpf_now(void);

/* ------------------------------------------------------------------------ */
/* Emitting events: macros                                                   */

#define TRACEBPF__CAT2(a, b) a##b
#define TRACEBPF__CAT(a, b)  TRACEBPF__CAT2(a, b)
#define TRACEBPF__UNIQ(p)    TRACEBPF__CAT(p, __LINE__)
#define TRACEBPF__ARGS(...)  ((const struct tracebpf_arg[]){{0}, ##__VA_ARGS__} + 1)
#define TRACEBPF__NARGS(...) \
    (sizeof((const struct tracebpf_arg[]){{0}, ##__VA_ARGS__}) / sizeof(struct tracebpf_arg) - 1)
#define TRACEBPF__EMIT(id, type, name, ...)                                       \
    tracebpf_emit(TRACEBPF_CATEGORY(id), type, name, TRACEBPF__ARGS(__VA_ARGS__), \
                  TRACEBPF__NARGS(__VA_ARGS__))

/* State of a scoped slice; ends it at scope exit (GNU cleanup). */
struct tracebpf_scope {
    struct tracebpf_category *cat;
    const struct tracebpf_track *track;
};

/**
 * tracebpf_scope_end() - end the slice of a TRACE_EVENT() scope (called
 * at scope exit for an enabled scope). Does nothing when @scope->cat is NULL.
 */
TRACEBPF_API void tracebpf_scope_end(struct tracebpf_scope *scope);

/**
 * tracebpf_scope_begin() - begin the slice of a TRACE_EVENT() scope.
 * Return: the scope to end (remembers the track for the end event).
 */
TRACEBPF_API struct tracebpf_scope tracebpf_scope_begin(struct tracebpf_category *cat,
                                                        const char *name,
                                                        const struct tracebpf_arg *args,
                                                        size_t nargs);

/* Cleanup handler of TRACE_EVENT(): a disabled scope costs one branch. */
static inline void tracebpf__scope_cleanup(struct tracebpf_scope *scope)
{
    if (scope->cat)
        tracebpf_scope_end(scope);
}

/*
 * TRACE_EVENT() - a slice named @name in category @id from here to the end
 * of the enclosing scope. Optional items: TRACEBPF_ARG(), TRACEBPF_FLOW(),
 * TRACEBPF_TERMINATING_FLOW(), TRACEBPF_ON_TRACK(), TRACEBPF_DYNAMIC_NAME().
 */
#define TRACE_EVENT(id, name, ...)                                                               \
    struct tracebpf_scope TRACEBPF__UNIQ(tracebpf__scope_)                                       \
        __attribute__((cleanup(tracebpf__scope_cleanup), unused)) =                              \
            TRACEBPF_ENABLED(id)                                                                 \
                ? tracebpf_scope_begin(TRACEBPF_CATEGORY(id), name, TRACEBPF__ARGS(__VA_ARGS__), \
                                       TRACEBPF__NARGS(__VA_ARGS__))                             \
                : (struct tracebpf_scope)                                                        \
    {                                                                                            \
        0                                                                                        \
    }

/* TRACE_EVENT_BEGIN() / TRACE_EVENT_END() - explicit slice begin and end. */
#define TRACE_EVENT_BEGIN(id, name, ...)                                         \
    do {                                                                         \
        if (TRACEBPF_ENABLED(id))                                                \
            TRACEBPF__EMIT(id, TRACEBPF_EVENT_SLICE_BEGIN, name, ##__VA_ARGS__); \
    } while (0)
#define TRACE_EVENT_END(id, ...)                                               \
    do {                                                                       \
        if (TRACEBPF_ENABLED(id))                                              \
            TRACEBPF__EMIT(id, TRACEBPF_EVENT_SLICE_END, NULL, ##__VA_ARGS__); \
    } while (0)

/* TRACE_EVENT_INSTANT() - a zero-duration event. */
#define TRACE_EVENT_INSTANT(id, name, ...)                                   \
    do {                                                                     \
        if (TRACEBPF_ENABLED(id))                                            \
            TRACEBPF__EMIT(id, TRACEBPF_EVENT_INSTANT, name, ##__VA_ARGS__); \
    } while (0)

#ifndef __cplusplus
/* Value item of a counter: int64 for integers, double for floating types. */
#define TRACEBPF__COUNTER_VALUE(v)                                                               \
    _Generic(                                                                                    \
        (v), float                                                                               \
        : TRACEBPF__MKARG(NULL, TRACEBPF_ARG_COUNTER_DOUBLE, d, tracebpf__to_double(v)), double  \
        : TRACEBPF__MKARG(NULL, TRACEBPF_ARG_COUNTER_DOUBLE, d, tracebpf__to_double(v)), default \
        : TRACEBPF__MKARG(NULL, TRACEBPF_ARG_COUNTER_INT, i, (int64_t)(v)))

/*
 * TRACE_COUNTER() - set counter @name (a process counter track of that
 * name) to @value (integer or floating). TRACE_COUNTER_TRACK() does the
 * same on an explicit counter track @t.
 */
#define TRACE_COUNTER(id, name, value)                                                        \
    do {                                                                                      \
        if (TRACEBPF_ENABLED(id))                                                             \
            TRACEBPF__EMIT(id, TRACEBPF_EVENT_COUNTER, name, TRACEBPF__COUNTER_VALUE(value)); \
    } while (0)
#define TRACE_COUNTER_TRACK(id, t, value)                                          \
    do {                                                                           \
        if (TRACEBPF_ENABLED(id))                                                  \
            TRACEBPF__EMIT(id, TRACEBPF_EVENT_COUNTER, NULL, TRACEBPF_ON_TRACK(t), \
                           TRACEBPF__COUNTER_VALUE(value));                        \
    } while (0)

/* Chromium-style names. Arguments are (name, value) pairs. */
#define TRACE_EVENT0(id, name)       TRACE_EVENT(id, name)
#define TRACE_EVENT1(id, name, a, v) TRACE_EVENT(id, name, TRACEBPF_ARG(a, v))
#define TRACE_EVENT2(id, name, a, v, b, w) \
    TRACE_EVENT(id, name, TRACEBPF_ARG(a, v), TRACEBPF_ARG(b, w))
#define TRACE_EVENT_BEGIN0(id, name)       TRACE_EVENT_BEGIN(id, name)
#define TRACE_EVENT_BEGIN1(id, name, a, v) TRACE_EVENT_BEGIN(id, name, TRACEBPF_ARG(a, v))
#define TRACE_EVENT_BEGIN2(id, name, a, v, b, w) \
    TRACE_EVENT_BEGIN(id, name, TRACEBPF_ARG(a, v), TRACEBPF_ARG(b, w))
#define TRACE_EVENT_END0(id, name)       TRACE_EVENT_END(id)
#define TRACE_EVENT_END1(id, name, a, v) TRACE_EVENT_END(id, TRACEBPF_ARG(a, v))
/* Instant scopes: thread (default), process, global (a process-shared track). */
#define TRACE_EVENT_SCOPE_THREAD  NULL
#define TRACE_EVENT_SCOPE_PROCESS tracebpf_track_process()
#define TRACE_EVENT_SCOPE_GLOBAL  tracebpf_track_process()
#define TRACE_EVENT_INSTANT0(id, name, scope) \
    TRACE_EVENT_INSTANT(id, name, TRACEBPF_ON_TRACK(scope))
#define TRACE_EVENT_INSTANT1(id, name, scope, a, v) \
    TRACE_EVENT_INSTANT(id, name, TRACEBPF_ON_TRACK(scope), TRACEBPF_ARG(a, v))
#define TRACE_EVENT_INSTANT2(id, name, scope, a, v, b, w) \
    TRACE_EVENT_INSTANT(id, name, TRACEBPF_ON_TRACK(scope), TRACEBPF_ARG(a, v), TRACEBPF_ARG(b, w))
#define TRACE_COUNTER1(id, name, value) TRACE_COUNTER(id, name, value)
#endif /* !__cplusplus */

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

/**
 * tracebpf_init() - start the library's backends.
 * @opts: options (TRACEBPF_OPTS(tracebpf_init_opts, ...)), or NULL for
 *        defaults from the environment.
 *
 * The system backend starts a background thread that connects to the
 * producer socket, registers the "track_event" data source with every
 * registered category, and follows the service's commands; when the
 * service is absent or goes away it retries with back-off (1 s growing to
 * 30 s). Nothing is recorded until a session enables track_event.
 * The standalone backend records at once into a private buffer and writes
 * @output at exit (atexit) or on tracebpf_flush_to_file().
 * Calling it again while initialised is a no-op returning 0. If
 * $TRACEBPF_OUTPUT is set, the library initialises standalone mode by
 * itself before main().
 * Return: 0, -EINVAL (bad opts: unknown non-zero trailing fields, bad
 * backends), -ENOMEM, or the error starting the IPC thread.
 * Context: any thread; not from a constructor that runs before libc is up.
 */
TRACEBPF_API int tracebpf_init(const struct tracebpf_init_opts *opts);

/**
 * tracebpf_shutdown() - stop recording and release the backends: the
 * calling thread's data is committed, the service told the data source
 * stopped, the standalone file written. Events after it are dropped
 * silently until tracebpf_init() again.
 * Context: any thread; other threads should have stopped emitting.
 */
TRACEBPF_API void tracebpf_shutdown(void);

/**
 * tracebpf_flush() - hand the calling thread's partly filled chunk to the
 * backend and commit every pending chunk now (other threads' open chunks
 * are scraped by the service at flush and stop).
 * @timeout_ms: wait for the commit to be sent, at most this long; 0 = no wait.
 * Return: 0, -ETIMEDOUT, -ENOTCONN when no backend records.
 */
TRACEBPF_API int tracebpf_flush(uint32_t timeout_ms);

/**
 * tracebpf_flush_to_file() - standalone mode: write everything recorded so
 * far to @path (NULL: the configured output) and keep recording. The
 * format follows the extension, as for TRACEBPF_OUTPUT. Other threads'
 * unfinished chunks are included up to their last complete event.
 * Return: 0, -ENOTCONN (standalone not active), or the file error.
 */
TRACEBPF_API int tracebpf_flush_to_file(const char *path);

/* Counters of what the library wrote and lost (tracebpf_get_stats()). */
struct tracebpf_stats {
    size_t sz;
    uint64_t events_written; /* packets that reached shared memory */
    uint64_t events_dropped; /* lost for lack of a free chunk */
    uint64_t chunks_missed;  /* chunk requests that failed */
    uint64_t connections;    /* successful connections to the service */
    uint64_t sessions;       /* data source instances started */
    uint32_t writers;        /* live per-thread writers */
    bool connected;          /* producer socket up and initialised */
    bool recording;          /* some backend records now */
};

/**
 * tracebpf_get_stats() - read the counters.
 * @out: filled up to @out->sz bytes (set sz = sizeof(*out), or use
 *       TRACEBPF_OPTS(tracebpf_stats, s)).
 * Return: 0 or -EINVAL.
 */
TRACEBPF_API int tracebpf_get_stats(struct tracebpf_stats *out);

/* Log levels of messages the library emits (tracebpf_set_log_fn()). */
enum tracebpf_log_level {
    TRACEBPF_LOG_ERROR = 0,
    TRACEBPF_LOG_WARN = 1,
    TRACEBPF_LOG_INFO = 2,
    TRACEBPF_LOG_DEBUG = 3,
};
typedef void (*tracebpf_log_fn)(enum tracebpf_log_level level, const char *msg, void *ctx);

/**
 * tracebpf_set_log_fn() - route the library's messages to @fn (NULL:
 * stderr, warnings and errors only) with @ctx.
 * Context: call before tracebpf_init().
 */
TRACEBPF_API void tracebpf_set_log_fn(tracebpf_log_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* TRACEBPF_TRACEBPF_H */
