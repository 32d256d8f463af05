/*
 * svc_internal.h - the service core's private data model, shared by the
 * core's own files (core.c, producer.c, session.c, session_seq.c,
 * session_flush.c, session_read.c, session_file.c). Nothing outside service/core*.c and
 * service/session*.c / producer.c may include it; the endpoints use core.h.
 *
 * Ownership: the core owns producers, consumers and sessions; a session owns
 * its buffers, data-source instances, sequence table and queued service
 * packets; a consumer owns at most one session. Producers and sessions refer
 * to each other only by ids or through instances, so either side may go away
 * first.
 */
#ifndef TB_SERVICE_SVC_INTERNAL_H
#define TB_SERVICE_SVC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "service/core.h"

struct tb_shm;
struct tb_tbuf;

/* Intrusive doubly linked list (a circular list with a sentinel head). */
struct tb_svc_list {
    struct tb_svc_list *prev, *next;
};

static inline void tb_svc_list_init(struct tb_svc_list *l)
{
    l->prev = l->next = l;
}

static inline bool tb_svc_list_empty(const struct tb_svc_list *l)
{
    return l->next == l;
}

static inline void tb_svc_list_add_tail(struct tb_svc_list *head, struct tb_svc_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void tb_svc_list_del(struct tb_svc_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define tb_svc_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Iterates a list whose entries may be removed while iterating. */
#define tb_svc_list_for_each_safe(pos, tmp, head) \
    for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

/* Service-wide counters reported in every TraceStats. */
struct tb_svc_counters {
    uint64_t producers_seen;
    uint64_t data_sources_seen;
    uint64_t sessions_seen;
};

struct tb_svc_core {
    struct tb_loop *loop;
    struct tb_svc_limits limits;
    uid_t own_uid;
    struct tb_svc_list producers;
    struct tb_svc_list consumers;
    struct tb_svc_list sessions;
    struct tb_svc_list flushes;
    unsigned num_producers;
    unsigned num_sessions;
    unsigned num_data_sources;
    size_t buffer_kb_total;
    uint16_t next_producer_id;
    uint16_t next_buffer_id;
    uint64_t next_session_id;
    uint64_t next_instance_id;
    uint64_t next_flush_id;
    struct tb_svc_counters counters;
    uint8_t *scratch; /* TB_SHM_MAX_PAGE_SIZE bytes: a chunk copied out of an SMB */
};

/* A data source a producer registered. */
struct tb_svc_ds {
    char *name;
    uint64_t id; /* descriptor id (0 when the producer did not give one) */
    bool will_notify_on_start;
    bool will_notify_on_stop;
    bool handles_incremental_state_clear;
    bool no_flush;
    /* Descriptor as registered (packed), for QueryServiceState. */
    uint8_t *desc;
    size_t desc_len;
};

struct tb_svc_producer {
    struct tb_svc_list node; /* in core->producers */
    struct tb_svc_core *core;
    const struct tb_svc_producer_ops *ops;
    void *ctx;
    uint16_t id;
    uid_t uid;
    pid_t pid;
    bool initialized;
    bool scraping;
    bool kicked;
    char *name;
    uint32_t shm_size_hint;
    uint32_t page_size_hint;
    struct tb_shm *shm;     /* created on first SetupDataSource, or the producer's own */
    bool smb_from_producer; /* shm came with InitializeConnection: no fd in SetupTracing */
    bool smb_announced;     /* SetupTracing sent */
    struct tb_svc_ds *ds;
    size_t nds;
    /* writer id -> target buffer (0 = not registered); 32768 entries, lazy */
    uint16_t *writer_buf;
    /* Buffers this producer was told to write to (from configs it got). */
    uint16_t *allowed;
    size_t nallowed;
};

enum tb_svc_session_state {
    TB_SVC_CONFIGURED = 0,
    TB_SVC_STARTED,
    TB_SVC_DISABLING,
    TB_SVC_DISABLED,
};

enum tb_svc_inst_state {
    TB_SVC_INST_CONFIGURED = 0,
    TB_SVC_INST_STARTING,
    TB_SVC_INST_STARTED,
    TB_SVC_INST_STOPPING,
    TB_SVC_INST_STOPPED,
};

/* One data source of one producer running in one session. */
struct tb_svc_instance {
    struct tb_svc_list node; /* in session->instances */
    uint64_t id;
    uint16_t producer_id; /* 0 once the producer went away */
    uint16_t target_buffer;
    size_t cfg_index; /* index in the session's TraceConfig.data_sources */
    enum tb_svc_inst_state state;
    bool will_notify_on_stop;
    bool handles_incremental_state_clear;
    bool no_flush;
    char *ds_name;
};

/* A central buffer of a session. */
struct tb_svc_buffer {
    uint16_t id;
    struct tb_tbuf *tbuf;
};

/*
 * One packet sequence: a (producer, writer) generation, its trusted sequence
 * id and the producer's identity (session_seq.c).
 */
struct tb_svc_seq {
    uint32_t key; /* producer_id << 16 | writer_id */
    uint32_t seq_id;
    int32_t uid;
    int32_t pid;
    /* TB_TBUF_DROP_* bits of packets the validator rejected, for the next one */
    uint32_t pending_drop;
    uint32_t max_chunk_id; /* newest chunk id copied (wrap-aware) */
    bool has_chunk;
    bool max_incomplete; /* that chunk's newest copy was scraped, not committed */
    bool unregistered;   /* UnregisterTraceWriter came: ends at the next chunk that starts over */
};

/* A service packet waiting for the next read. */
struct tb_svc_qpkt {
    struct tb_svc_qpkt *next;
    size_t len;
    uint8_t data[];
};

struct tb_svc_session {
    struct tb_svc_list node; /* in core->sessions */
    struct tb_svc_core *core;
    struct tb_svc_consumer *consumer;
    uint64_t id;
    enum tb_svc_session_state state;
    Perfetto__Protos__TraceConfig *cfg; /* unpacked copy, owned */
    uint8_t *cfg_bytes;                 /* serialized, for the trace_config packet */
    size_t cfg_len;
    struct tb_svc_buffer *bufs;
    size_t nbufs;
    struct tb_svc_list instances;
    /* every sequence seen, seqs[i].seq_id == i + 2 (session_seq.c) */
    struct tb_svc_seq *seqs;
    size_t nseq, seqs_cap;
    /* live (producer, writer) -> index in seqs + 1; 0 = empty; power-of-two cap */
    uint32_t *seq_index;
    size_t seq_index_cap, seq_index_used;
    bool seq_full_warned;
    /* queued service packets, FIFO */
    struct tb_svc_qpkt *q_head, **q_tail;
    bool config_emitted;
    bool sysinfo_emitted;
    bool final_stats_emitted;
    uint64_t last_sync_ms; /* when the last sync marker was emitted (0 = never) */
    /* timers (0 = not armed) */
    uint64_t t_duration;
    uint64_t t_snapshot;
    uint64_t t_flush_period;
    uint64_t t_clear_incr;
    uint64_t t_stop_timeout;
    uint64_t t_file;
    /* stop sequence */
    bool stop_after_flush;
    unsigned stop_acks_pending;
    /* counters for TraceStats */
    uint64_t invalid_packets;
    uint64_t chunks_discarded;
    uint64_t patches_discarded;
    uint64_t flushes_requested;
    uint64_t flushes_succeeded;
    uint64_t flushes_failed;
    /* write_into_file */
    int out_fd;
    uint64_t file_bytes;
    uint64_t max_file_bytes;
    bool compress;
    /* error to report with tracing_disabled (owned), or NULL */
    char *error;
};

struct tb_svc_consumer {
    struct tb_svc_list node; /* in core->consumers */
    struct tb_svc_core *core;
    const struct tb_svc_consumer_ops *ops;
    void *ctx;
    uid_t uid;
    struct tb_svc_session *session;
};

/* A flush in flight: which producers still owe an ack. */
struct tb_svc_flush {
    struct tb_svc_list node; /* in core->flushes */
    uint64_t id;
    struct tb_svc_session *session;
    uint16_t *pending; /* producer ids */
    size_t npending;
    uint64_t timer;
    bool from_consumer;
    bool for_stop; /* the flush that precedes a stop: continue it when done */
    uint64_t token;
};

/* ---- core.c */
struct tb_svc_producer *tb_svc_core_find_producer(struct tb_svc_core *core, uint16_t id);
/* The session and buffer a global buffer id belongs to, or NULL. */
struct tb_svc_session *tb_svc_core_find_buffer(struct tb_svc_core *core, uint16_t buffer_id,
                                               struct tb_svc_buffer **buf);
uint16_t tb_svc_core_alloc_buffer_id(struct tb_svc_core *core);

/* ---- producer.c */
/* Scrape @p's SMB into @s (or every session when @s is NULL). */
void tb_svc_producer_scrape(struct tb_svc_producer *p, struct tb_svc_session *s);
/* Allow @p to write @buffer_id (idempotent). */
int tb_svc_producer_allow_buffer(struct tb_svc_producer *p, uint16_t buffer_id);
/* Create the SMB if needed and send SetupTracing. */
int tb_svc_producer_ensure_smb(struct tb_svc_producer *p, const Perfetto__Protos__TraceConfig *cfg);
const struct tb_svc_ds *tb_svc_producer_find_ds(const struct tb_svc_producer *p, const char *name);
/* Send one async command; kicks the producer on failure. */
int tb_svc_producer_send(struct tb_svc_producer *p,
                         const Perfetto__Protos__GetAsyncCommandResponse *cmd, int fd);
void tb_svc_producer_kick(struct tb_svc_producer *p, const char *why);

/* ---- session.c */
int tb_svc_session_new(struct tb_svc_consumer *c, const Perfetto__Protos__TraceConfig *cfg, int fd,
                       char *errbuf, size_t errlen, struct tb_svc_session **out);
void tb_svc_session_free(struct tb_svc_session *s);
int tb_svc_session_start(struct tb_svc_session *s);
/* Begin the stop sequence (flush first when @flush_first). */
void tb_svc_session_disable(struct tb_svc_session *s, bool flush_first);
/* ---- session_ds.c */
/* Set up every matching data source not set up yet (no start). */
void tb_svc_session_setup_instances(struct tb_svc_session *s);
/* Set up what is missing, then start every configured instance. */
void tb_svc_session_start_instances(struct tb_svc_session *s);
size_t tb_svc_session_num_instances(const struct tb_svc_session *s);
/* What a command to a producer's running instances is for. */
enum tb_svc_live_for {
    TB_SVC_LIVE_FLUSH,      /* Flush: all but no_flush instances */
    TB_SVC_LIVE_CLEAR_INCR, /* ClearIncrementalState: those that handle it */
};
/*
 * Ids of @producer_id's starting or started instances in @s that take a
 * command @what is for, at most @max of them, into @ids (caller's array).
 * Returns how many.
 */
size_t tb_svc_session_live_ids(struct tb_svc_session *s, uint16_t producer_id,
                               enum tb_svc_live_for what, uint64_t *ids, size_t max);
/* Send StopDataSource to every live instance; returns how many acks to wait for. */
unsigned tb_svc_session_stop_instances(struct tb_svc_session *s);
/* Free every instance (stopping the live ones without waiting). */
void tb_svc_session_drop_instances(struct tb_svc_session *s);
/* A producer registered a data source: set it up in every matching session. */
void tb_svc_sessions_on_ds_registered(struct tb_svc_core *core, struct tb_svc_producer *p,
                                      const struct tb_svc_ds *ds);
/* A producer is going away (after its final scrape). */
void tb_svc_sessions_on_producer_gone(struct tb_svc_core *core, struct tb_svc_producer *p);
/* A data source was unregistered. */
void tb_svc_sessions_on_ds_unregistered(struct tb_svc_core *core, struct tb_svc_producer *p,
                                        const char *name);
struct tb_svc_instance *tb_svc_core_find_instance(struct tb_svc_core *core, uint64_t id,
                                                  struct tb_svc_session **s);
void tb_svc_session_instance_stopped(struct tb_svc_session *s, struct tb_svc_instance *inst);
/* Queue a service packet (takes @data, a malloc'ed buffer, freeing it). */
int tb_svc_session_queue(struct tb_svc_session *s, uint8_t *data, size_t len);
void tb_svc_session_queue_clear(struct tb_svc_session *s);

/* ---- session_seq.c */
/*
 * The sequence chunk @chunk_id of (producer, writer) belongs to: the live one,
 * or a new one with a fresh id (and @uid, @pid) when there is none or the
 * live one was unregistered and this chunk starts over. @complete: a
 * committed copy (false for a scrape). NULL on ENOMEM or past the session's
 * sequence limit. Owned by @s, valid until the next call that creates one.
 */
struct tb_svc_seq *tb_svc_session_seq(struct tb_svc_session *s, uint16_t producer_id,
                                      uint16_t writer_id, uint32_t chunk_id, bool complete,
                                      int32_t uid, int32_t pid);
/* The live sequence of (producer, writer), or NULL. */
struct tb_svc_seq *tb_svc_session_seq_find(struct tb_svc_session *s, uint16_t producer_id,
                                           uint16_t writer_id);
/*
 * The key a sequence's chunks carry in the session's central buffers (what
 * the buffer calls producer and writer id). Sequence 0 maps to a key no
 * sequence ever has.
 */
void tb_svc_seq_tbuf_key(uint32_t seq_id, uint16_t *producer_id, uint16_t *writer_id);
/* The sequence, live or ended, of a packet read back with that key, or NULL. */
struct tb_svc_seq *tb_svc_session_seq_by_tbuf_key(struct tb_svc_session *s, uint16_t producer_id,
                                                  uint16_t writer_id);
/*
 * UnregisterTraceWriter: the live sequence of (producer, writer) ends at the
 * writer's next chunk that starts over (a new writer with that id); late
 * commits of the old writer still join it.
 */
void tb_svc_session_seq_unregister(struct tb_svc_session *s, uint16_t producer_id,
                                   uint16_t writer_id);
/*
 * The producer is gone (after its final scrape): end every live sequence of
 * @producer_id at once, so a producer given the same id starts fresh ones.
 * Their chunks still drain with their own identity.
 */
void tb_svc_session_seq_retire_producer(struct tb_svc_session *s, uint16_t producer_id);
/* Free the sequence table (at session end). */
void tb_svc_session_seq_free(struct tb_svc_session *s);
bool tb_svc_session_has_buffer(const struct tb_svc_session *s, uint16_t buffer_id);
/* Fill TraceStats for @s (arrays owned by @out, freed by tb_svc_stats_clear). */
int tb_svc_session_stats(struct tb_svc_session *s, Perfetto__Protos__TraceStats *out);

/* ---- session_flush.c */
int tb_svc_session_flush(struct tb_svc_session *s, uint32_t timeout_ms, bool from_consumer,
                         uint64_t token);
void tb_svc_flush_ack(struct tb_svc_core *core, uint16_t producer_id, uint64_t flush_id);
void tb_svc_flush_producer_gone(struct tb_svc_core *core, uint16_t producer_id);
void tb_svc_flush_session_gone(struct tb_svc_session *s);

/* ---- session_read.c */
int tb_svc_session_read(struct tb_svc_session *s, tb_svc_packet_fn fn, void *ctx);

/* ---- session_file.c */
int tb_svc_session_file_start(struct tb_svc_session *s);
/* Write whatever is readable now; ends the session past max_file_size. */
int tb_svc_session_file_write(struct tb_svc_session *s);
void tb_svc_session_file_close(struct tb_svc_session *s);

#endif /* TB_SERVICE_SVC_INTERNAL_H */
