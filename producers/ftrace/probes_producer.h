/*
 * probes_producer.h - the traced-bpf-probes producer: one connection to the
 * service (common/producer_client.h) on the caller's event loop, the four
 * data sources it offers (linux.ftrace, linux.process_stats,
 * linux.system_info, linux.sys_stats) and their running instances.
 *
 * Everything runs on the one loop thread: commands, drain timers, /proc
 * scans and packet writing. Each data-source instance owns one TraceWriter
 * (struct tb_probes_writer) on the connection's shared memory.
 */
#ifndef TB_PRODUCERS_FTRACE_PROBES_PRODUCER_H
#define TB_PRODUCERS_FTRACE_PROBES_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "perfetto/config/data_source_config.pb-c.h"

struct tb_loop;
struct tb_pc;
struct tb_pc_smb;
struct tb_pbw;
struct tb_tw;
struct tb_probes;

#define TB_PROBES_PRODUCER_NAME "traced-bpf-probes"

/* TracePacket fields the data sources write. */
#define TB_PKT_TIMESTAMP    8
#define TB_PKT_PROCESS_TREE 2
#define TB_PKT_SYS_STATS    7
#define TB_PKT_FTRACE_STATS 34
#define TB_PKT_SYSTEM_INFO  45

/*
 * struct tb_probes_opts - @socket: producer socket name (borrowed; NULL =
 * the default). @loop: the caller's loop (borrowed, outlives the producer).
 */
struct tb_probes_opts {
    const char *socket;
    struct tb_loop *loop;
};

/**
 * tb_probes_new() - register the data sources and start connecting.
 * @opts: options.
 * @out: receives the producer; free with tb_probes_free().
 *
 * Return: 0 or negative errno (logged). Context: the loop's thread.
 */
int tb_probes_new(const struct tb_probes_opts *opts, struct tb_probes **out);

/**
 * tb_probes_free() - stop every running instance the way a StopDataSource
 * would (BPF links detached, the ftrace instance removed, writers flushed),
 * then disconnect. Accepts NULL. Context: the loop's thread.
 */
void tb_probes_free(struct tb_probes *p);

/* The parts below are shared by the data-source files only. */

/*
 * struct tb_probes_writer - one TraceWriter on the current SMB (a
 * reference held for the writer's lifetime) with its writer id.
 */
struct tb_probes_writer {
    struct tb_pc *pc;
    struct tb_pc_smb *smb;
    struct tb_tw *tw;
    uint16_t id;
};

/*
 * tb_probes_writer_open() - writer for @target_buffer on @pc's SMB.
 * Return: 0, -ENOTCONN (no SMB yet), -EBUSY (no writer id), -ENOMEM.
 */
int tb_probes_writer_open(struct tb_probes_writer *w, struct tb_pc *pc, uint32_t target_buffer);

/* tb_probes_writer_flush() - give the current chunk back for commit. */
void tb_probes_writer_flush(struct tb_probes_writer *w);

/* tb_probes_writer_close() - flush, unregister, free. Zeroed @w is a no-op. */
void tb_probes_writer_close(struct tb_probes_writer *w);

/*
 * tb_probes_begin_packet() - open a TracePacket stamped with CLOCK_BOOTTIME
 * now. Return: its encoder, owned by @w's writer until tb_probes_end_packet().
 */
struct tb_pbw *tb_probes_begin_packet(struct tb_probes_writer *w);

/* tb_probes_end_packet() - finish it; return 0 or the writer's error. */
int tb_probes_end_packet(struct tb_probes_writer *w);

/* tb_probes_boot_ns() - CLOCK_BOOTTIME in ns, the trace's time base. */
uint64_t tb_probes_boot_ns(void);

/*
 * struct tb_ds_ops - one data source. Every hook runs on the loop thread.
 * @create: SetupDataSource: parse @cfg (borrowed), check, allocate *@state.
 *          Return 0 or negative errno (the instance is then refused: no
 *          data, stop acked at once).
 * @start:  StartDataSource: begin recording (writer, timers, first packets).
 * @flush:  write what is pending and flush the writer.
 * @stop:   stop recording, write the last packets, flush (synchronous).
 * @stop_pending: optional. After @stop, on the loop thread, every few ms
 *          until it returns 0 (or 2 s passed): write what @stop could not
 *          because the SMB was full (its commits leave while the loop runs).
 *          Return 0 when nothing is left, -EAGAIN to be called again. The
 *          stop is acked to the service after it.
 * @destroy: free *@state (after @stop, or without it on disconnect). NULL ok.
 */
struct tb_ds_ops {
    const char *name;
    int (*create)(struct tb_probes *p, uint64_t id, const Perfetto__Protos__DataSourceConfig *cfg,
                  void **state);
    int (*start)(void *state);
    void (*flush)(void *state);
    void (*stop)(void *state);
    int (*stop_pending)(void *state);
    void (*destroy)(void *state);
};

extern const struct tb_ds_ops tb_ftrace_ds_ops;
extern const struct tb_ds_ops tb_proc_ds_ops;
extern const struct tb_ds_ops tb_sysinfo_ds_ops;
extern const struct tb_ds_ops tb_sysstats_ds_ops;

/* tb_probes_pc() / tb_probes_loop() - borrowed from @p. */
struct tb_pc *tb_probes_pc(struct tb_probes *p);
struct tb_loop *tb_probes_loop(struct tb_probes *p);

/*
 * tb_probes_thread_seen() - a thread appeared in the kernel data (fork,
 * rename, exec): let every running linux.process_stats instance describe
 * it. @tgid may be 0 when unknown; @comm may be NULL. Copied.
 */
void tb_probes_thread_seen(struct tb_probes *p, pid_t tid, pid_t tgid, const char *comm);

/*
 * tb_proc_ds_thread_seen() - the process_stats side of the above, for one
 * instance (@state from tb_proc_ds_ops.create).
 */
void tb_proc_ds_thread_seen(void *state, pid_t tid, pid_t tgid, const char *comm);

/**
 * tb_proc_ds_armed() - linux.ftrace of the same session has just armed its
 * BPF programs: describe what appeared since this instance's first scan
 * (once; later calls do nothing). @state: a started instance's state.
 * Context: the loop's thread.
 */
void tb_proc_ds_armed(void *state);

/* tb_probes_threads_flush() - describe the threads seen since the last call. */
void tb_probes_threads_flush(struct tb_probes *p);

/* tb_proc_ds_flush_seen() - the per-instance side of the above. */
void tb_proc_ds_flush_seen(void *state);

#endif /* TB_PRODUCERS_FTRACE_PROBES_PRODUCER_H */
