/*
 * ftrace_ds.h - inside the linux.ftrace data source, shared by its two
 * halves: ftrace_ds.c (the instance's life: config, start, stop, free) and
 * ftrace_drain.c (the data path: records into per-CPU bundles, the loss
 * accounting, the FtraceStats packets). Not for other files.
 */
#ifndef TB_PRODUCERS_FTRACE_FTRACE_DS_H
#define TB_PRODUCERS_FTRACE_FTRACE_DS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "producers/ftrace/ftrace_filter.h"
#include "producers/ftrace/probes_producer.h"

struct tb_bpf_probes;
struct tb_bpf_rings;
struct tb_ftrace;
struct tb_bundler;

/* FtraceStats.phase values. */
#define TB_FTRACE_STATS_START 1
#define TB_FTRACE_STATS_END   2

/* struct tb_ftrace_cpu_acct - one CPU's loss and delivery counters. */
struct tb_ftrace_cpu_acct {
    uint64_t bpf_dropped; /* last seen, to notice new drops */
    uint64_t overrun;     /* last seen ftrace overrun */
    uint64_t read_events; /* events in bundles the SMB accepted */
    uint64_t tw_dropped;  /* events in bundles the writer dropped */
    bool lost;            /* next bundle carries lost_events */
};

/*
 * A task the BPF drain thread saw born or renamed; handed to the loop
 * thread, which owns the data-source list the process tree hangs off.
 */
struct tb_ftrace_seen_task {
    pid_t tid;
    pid_t tgid;
    bool has_comm;
    char comm[16];
};

/*
 * struct tb_ftrace_ds - one linux.ftrace instance. Owns every pointer in it
 * except @p (the producer, borrowed) and @rings (owned by @bpf).
 */
struct tb_ftrace_ds {
    struct tb_probes *p;
    struct tb_probes_writer w;
    uint32_t target_buffer;
    bool compact;
    bool refused;
    uint32_t drain_ms;
    size_t buffer_kb;
    char **events; /* every known event, as configured */
    size_t nr_events;
    char **raw; /* the non-BPF ones, resolved "group/name" */
    size_t nr_raw;
    char **unknown; /* what this kernel does not have */
    size_t nr_unknown;
    struct tb_ftrace_filter filter;
    struct tb_bpf_probes *bpf;
    struct tb_bpf_rings *rings; /* owned by bpf */
    struct tb_ftrace *ft;
    struct tb_bundler *b;
    unsigned int ncpu;
    struct tb_ftrace_cpu_acct *cpu;
    uint64_t timer;
    /*
     * Serialises the bundler, the TraceWriter, the loss accounting and the
     * seen-task queue between the BPF drain thread and the loop thread:
     * the writer is not thread-safe, and both feed the same per-CPU bundles.
     */
    pthread_mutex_t lock;
    bool drain_running; /* the BPF drain thread was started */
    bool end_owed;      /* stopped; the END FtraceStats not written yet */
    struct tb_ftrace_seen_task *seen;
    size_t nr_seen, cap_seen;
};

/**
 * tb_ftrace_ds_on_record() - one BPF record from the rings: queued into its
 * CPU's bundle (written out once large enough); forks, renames and execs
 * also queued for the process tree.
 * @ctx: the instance (struct tb_ftrace_ds *).
 * @rec: the record (borrowed, valid for the call).
 * @size: its size in bytes.
 *
 * Return: 0 always: a malformed record is skipped, never fatal.
 * Context: the BPF drain thread; takes @ctx->lock.
 */
int tb_ftrace_ds_on_record(void *ctx, const void *rec, size_t size);

/**
 * tb_ftrace_ds_drain() - the loop thread's pass: the raw ftrace instance
 * read, new losses noticed, every CPU's pending bundle written out, the
 * seen tasks handed to the process tree.
 * @ds: a started instance.
 *
 * Context: the loop thread, @ds->lock not held (taken inside).
 */
void tb_ftrace_ds_drain(struct tb_ftrace_ds *ds);

/**
 * tb_ftrace_ds_emit_cpu() - write @cpu's pending bundle (or just its owed
 * lost_events mark). A bundle the writer drops is counted event by event
 * in @ds->cpu[@cpu].tw_dropped and the CPU's next bundle marked lost.
 * @ds: the instance.
 * @cpu: a CPU below @ds->ncpu.
 *
 * Context: @ds->lock held.
 */
void tb_ftrace_ds_emit_cpu(struct tb_ftrace_ds *ds, unsigned int cpu);

/**
 * tb_ftrace_ds_write_stats() - one FtraceStats packet: per-CPU counters
 * (none when refused), the unknown events, and for a refused instance
 * every configured event as failed.
 * @ds: the instance, its writer open.
 * @phase: TB_FTRACE_STATS_START or TB_FTRACE_STATS_END.
 *
 * Return: 0, or the writer's error (-ENOSPC: SMB full, packet dropped).
 * Context: @ds->lock held once the drain thread may run.
 */
int tb_ftrace_ds_write_stats(struct tb_ftrace_ds *ds, int phase);

#endif /* TB_PRODUCERS_FTRACE_FTRACE_DS_H */
