/*
 * record_config.h - how "tracebpf record" turns what the user typed (category
 * words, -e/-a, sizes, buffer policy) into a Perfetto TraceConfig, and how it
 * loads one from a file (-c, binary or text proto). One place decides the
 * buffer layout, so --print-config shows exactly what a recording sends.
 */
#ifndef TB_CONSUMER_RECORD_CONFIG_H
#define TB_CONSUMER_RECORD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perfetto/config/trace_config.pb-c.h"

/* Category shortcut bits for tb_record_opts.cats. */
enum {
    TB_REC_CAT_SCHED = 1u << 0,
    TB_REC_CAT_FREQ = 1u << 1,
    TB_REC_CAT_IDLE = 1u << 2,
    TB_REC_CAT_IRQ = 1u << 3,
    TB_REC_CAT_SYSCALLS = 1u << 4,
    TB_REC_CAT_PROC = 1u << 5,
};

/* The metadata buffer (buffer 1): process tree, system info. */
#define TB_REC_META_BUFFER_KB 4096u
/* How often --long hands the buffers to the output file. */
#define TB_REC_FILE_WRITE_PERIOD_MS 1000u

/*
 * struct tb_record_opts - what the flags asked for. Every pointer is
 * borrowed from the caller (usually argv) for the duration of a call.
 * @duration_ms: 0 = until Ctrl-C.
 * @buffer_kb:   main buffer (buffer 0).
 * @cats:        TB_REC_CAT_* bits.
 * @events:      -e "group/name" words.
 * @apps:        -a track-event categories ("*" = all).
 * @discard:     stop writing when full instead of overwriting the oldest.
 * @long_mode:   write_into_file streaming.
 * @compress:    DEFLATE compressed packets.
 * @pids:        FtraceConfig.tids_to_trace: only these processes and the
 *               children they fork while tracing (kernel events).
 * @comm:        only tasks with this comm (tracebpf_filter.comm), or NULL.
 * @cgroup:      only tasks in this cgroup v2 path (tracebpf_filter.cgroup_path),
 *               or NULL.
 */
struct tb_record_opts {
    uint64_t duration_ms;
    uint64_t buffer_kb;
    unsigned int cats;
    const char **events;
    size_t n_events;
    const char **apps;
    size_t n_apps;
    bool discard;
    bool long_mode;
    bool compress;
    const uint32_t *pids;
    size_t n_pids;
    const char *comm;
    const char *cgroup;
};

/*
 * tb_record_cat_parse() - map a category word ("sched", "irq", ...) to its
 * TB_REC_CAT_* bit. Return: the bit, or 0 for an unknown word.
 */
unsigned int tb_record_cat_parse(const char *word);

/*
 * tb_record_config_build() - the TraceConfig for @o: buffer 0 (bulk, ring or
 * discard, @o->buffer_kb) gets linux.ftrace and track_event; buffer 1 (small,
 * discard) gets linux.process_stats and linux.system_info, so a wrapped ring
 * still names its threads.
 * @out: receives the config; free with tb_record_config_free().
 * Return: 0, -EINVAL when @o asks for nothing to record, -ENOMEM.
 */
int tb_record_config_build(const struct tb_record_opts *o, Perfetto__Protos__TraceConfig **out);

/*
 * tb_record_config_load() - read a TraceConfig from @path: text proto when
 * @text, else binary.
 * @out: receives the config; free with tb_record_config_free().
 * @err: receives one line on failure ("PATH:LINE:COL: ..." for text).
 * Return: 0, -errno from reading, -EINVAL for a config that does not parse.
 */
int tb_record_config_load(const char *path, bool text, Perfetto__Protos__TraceConfig **out,
                          char *err, size_t errlen);

/*
 * tb_record_config_set_filters() - put @o's pid/comm/cgroup filters into every
 * linux.ftrace data source of @cfg (one built here or loaded from a file),
 * replacing the filters it had. Nothing happens when @o has none.
 * Return: 0, -ENOENT when @cfg has no linux.ftrace data source to filter,
 * -ENOMEM.
 */
int tb_record_config_set_filters(Perfetto__Protos__TraceConfig *cfg,
                                 const struct tb_record_opts *o);

/*
 * tb_record_check_cgroup() - does @path name a cgroup v2 directory, taken
 * as traced-bpf-probes takes it: absolute, or relative to the cgroup2 mount
 * (also "/a/b" as /proc/PID/cgroup prints it).
 * @where/@len: receive the directory checked.
 * Return: 0, -ENOENT, -ENOTDIR, -EMEDIUMTYPE (not on cgroup2), -ENODEV (no
 * cgroup2 mount).
 */
int tb_record_check_cgroup(const char *path, char *where, size_t len);

/* tb_record_config_free() - free a config from this module. Accepts NULL. */
void tb_record_config_free(Perfetto__Protos__TraceConfig *cfg);

/*
 * tb_record_check_event() - does tracefs know "group/name"?
 * @tracefs: tracefs mount (e.g. "/sys/kernel/tracing").
 * Return: 0 when events/<group>/<name> exists, -EINVAL when @ev is not
 * "group/name", -ENOENT when the event is unknown, -ENODEV when @tracefs has
 * no events directory (not mounted).
 */
int tb_record_check_event(const char *tracefs, const char *ev);

#endif /* TB_CONSUMER_RECORD_CONFIG_H */
