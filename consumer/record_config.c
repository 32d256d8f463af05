/*
 * record_config.c - flags -> TraceConfig for "tracebpf record", and loading a
 * TraceConfig from a file. The config is assembled from short-lived structs
 * on the stack, then packed and unpacked once so the caller gets a single
 * protobuf-c allocation it frees with one call.
 */
#include "consumer/record_config.h"

#include "consumer/textproto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define MAX_CONFIG_BYTES (16u << 20)

static const char *const sched_events[] = {
    "sched/sched_switch",       "sched/sched_waking",       "sched/sched_wakeup_new",
    "sched/sched_process_fork", "sched/sched_process_exit", "sched/sched_process_free",
    "sched/sched_process_exec", "task/task_newtask",        "task/task_rename",
};
static const char *const freq_events[] = {"power/cpu_frequency"};
static const char *const idle_events[] = {"power/cpu_idle"};
static const char *const irq_events[] = {
    "irq/irq_handler_entry",
    "irq/irq_handler_exit",
    "irq/softirq_entry",
    "irq/softirq_exit",
};
static const char *const syscall_events[] = {"raw_syscalls/sys_enter", "raw_syscalls/sys_exit"};

static const struct {
    const char *word;
    unsigned int bit;
    const char *const *events;
    size_t n;
} cats[] = {
    {"sched", TB_REC_CAT_SCHED, sched_events, sizeof(sched_events) / sizeof(sched_events[0])},
    {"freq", TB_REC_CAT_FREQ, freq_events, 1},
    {"idle", TB_REC_CAT_IDLE, idle_events, 1},
    {"irq", TB_REC_CAT_IRQ, irq_events, sizeof(irq_events) / sizeof(irq_events[0])},
    {"syscalls", TB_REC_CAT_SYSCALLS, syscall_events, 2},
    {"proc", TB_REC_CAT_PROC, NULL, 0},
};
#define N_CATS (sizeof(cats) / sizeof(cats[0]))

unsigned int tb_record_cat_parse(const char *word)
{
    size_t i;

    for (i = 0; i < N_CATS; i++) {
        if (!strcmp(cats[i].word, word))
            return cats[i].bit;
    }
    return 0;
}

static bool has_str(char **v, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!strcmp(v[i], s))
            return true;
    }
    return false;
}

/* Category events first, then -e words, without duplicates. */
static char **collect_events(const struct tb_record_opts *o, size_t *n)
{
    size_t cap = o->n_events, i, j;
    char **v;

    for (i = 0; i < N_CATS; i++)
        cap += (o->cats & cats[i].bit) ? cats[i].n : 0;
    *n = 0;
    v = calloc(cap + 1, sizeof(*v));
    if (!v)
        return NULL;
    for (i = 0; i < N_CATS; i++) {
        for (j = 0; (o->cats & cats[i].bit) && j < cats[i].n; j++) {
            if (!has_str(v, *n, cats[i].events[j]))
                v[(*n)++] = (char *)cats[i].events[j];
        }
    }
    for (i = 0; i < o->n_events; i++) {
        if (!has_str(v, *n, o->events[i]))
            v[(*n)++] = (char *)o->events[i];
    }
    return v;
}

int tb_record_config_build(const struct tb_record_opts *o, Perfetto__Protos__TraceConfig **out)
{
    Perfetto__Protos__TraceConfig cfg = PERFETTO__PROTOS__TRACE_CONFIG__INIT;
    Perfetto__Protos__TraceConfig__BufferConfig bufs[2] = {
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT,
        PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__INIT,
    };
    Perfetto__Protos__TraceConfig__BufferConfig *bufp[2] = {&bufs[0], &bufs[1]};
    Perfetto__Protos__TraceConfig__DataSource ds[4];
    Perfetto__Protos__TraceConfig__DataSource *dsp[4];
    Perfetto__Protos__DataSourceConfig dsc[4];
    Perfetto__Protos__FtraceConfig fc = PERFETTO__PROTOS__FTRACE_CONFIG__INIT;
    Perfetto__Protos__FtraceConfig__CompactSchedConfig cs =
        PERFETTO__PROTOS__FTRACE_CONFIG__COMPACT_SCHED_CONFIG__INIT;
    Perfetto__Protos__ProcessStatsConfig ps = PERFETTO__PROTOS__PROCESS_STATS_CONFIG__INIT;
    Perfetto__Protos__TrackEventConfig te = PERFETTO__PROTOS__TRACK_EVENT_CONFIG__INIT;
    char *all_disabled[] = {"*"};
    char **events = NULL;
    size_t n_events = 0, n = 0, i, len;
    uint8_t *buf = NULL;
    int ret = 0;

    *out = NULL;
    events = collect_events(o, &n_events);
    if (!events)
        return -ENOMEM;
    if (!n_events && !o->n_apps && !(o->cats & TB_REC_CAT_PROC)) {
        ret = -EINVAL;
        goto out;
    }
    for (i = 0; i < 4; i++) {
        perfetto__protos__trace_config__data_source__init(&ds[i]);
        perfetto__protos__data_source_config__init(&dsc[i]);
        ds[i].config = &dsc[i];
        dsp[i] = &ds[i];
    }

    bufs[0].has_size_kb = true;
    bufs[0].size_kb = (uint32_t)o->buffer_kb;
    bufs[0].has_fill_policy = true;
    bufs[0].fill_policy =
        o->discard ? PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD
                   : PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__RING_BUFFER;
    /* Discard keeps the start-up process scan even when the bulk wraps. */
    bufs[1].has_size_kb = true;
    bufs[1].size_kb = TB_REC_META_BUFFER_KB;
    bufs[1].has_fill_policy = true;
    bufs[1].fill_policy = PERFETTO__PROTOS__TRACE_CONFIG__BUFFER_CONFIG__FILL_POLICY__DISCARD;
    cfg.n_buffers = 2;
    cfg.buffers = bufp;

    if (n_events) {
        fc.n_ftrace_events = n_events;
        fc.ftrace_events = events;
        if (o->cats & TB_REC_CAT_SCHED) {
            cs.has_enabled = true;
            cs.enabled = true;
            fc.compact_sched = &cs;
        }
        dsc[n].name = "linux.ftrace";
        dsc[n].has_target_buffer = true;
        dsc[n].target_buffer = 0;
        dsc[n].ftrace_config = &fc;
        n++;
    }
    if (o->n_apps) {
        te.n_enabled_categories = o->n_apps;
        te.enabled_categories = (char **)o->apps;
        if (!has_str((char **)o->apps, o->n_apps, "*")) {
            te.n_disabled_categories = 1;
            te.disabled_categories = all_disabled;
        }
        dsc[n].name = "track_event";
        dsc[n].has_target_buffer = true;
        dsc[n].target_buffer = 0;
        dsc[n].track_event_config = &te;
        n++;
    }
    /* Thread names make scheduler data readable, so sched implies proc. */
    if (o->cats & (TB_REC_CAT_PROC | TB_REC_CAT_SCHED)) {
        ps.has_scan_all_processes_on_start = true;
        ps.scan_all_processes_on_start = true;
        ps.has_record_thread_names = true;
        ps.record_thread_names = true;
        dsc[n].name = "linux.process_stats";
        dsc[n].has_target_buffer = true;
        dsc[n].target_buffer = 1;
        dsc[n].process_stats_config = &ps;
        n++;
    }
    if (n_events || (o->cats & TB_REC_CAT_PROC)) {
        dsc[n].name = "linux.system_info";
        dsc[n].has_target_buffer = true;
        dsc[n].target_buffer = 1;
        n++;
    }
    cfg.n_data_sources = n;
    cfg.data_sources = dsp;
    if (o->duration_ms) {
        cfg.has_duration_ms = true;
        cfg.duration_ms = (uint32_t)o->duration_ms;
    }
    if (o->long_mode) {
        cfg.has_write_into_file = true;
        cfg.write_into_file = true;
        cfg.has_file_write_period_ms = true;
        cfg.file_write_period_ms = TB_REC_FILE_WRITE_PERIOD_MS;
    }
    if (o->compress) {
        cfg.has_compression_type = true;
        cfg.compression_type =
            PERFETTO__PROTOS__TRACE_CONFIG__COMPRESSION_TYPE__COMPRESSION_TYPE_DEFLATE;
    }

    len = perfetto__protos__trace_config__get_packed_size(&cfg);
    buf = malloc(len ? len : 1);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    perfetto__protos__trace_config__pack(&cfg, buf);
    *out = perfetto__protos__trace_config__unpack(NULL, len, buf);
    if (!*out)
        ret = -ENOMEM;
    /* Filters go in afterwards, the way they go on top of a -c config. */
    if (!ret && n_events)
        ret = tb_record_config_set_filters(*out, o);
    if (ret && *out) {
        tb_record_config_free(*out);
        *out = NULL;
    }
out:
    free(buf);
    free(events);
    return ret;
}

static int read_all(const char *path, char **data, size_t *len)
{
    struct stat st;
    ssize_t r;
    size_t got = 0;
    int fd, ret = 0;

    *data = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st)) {
        ret = -errno;
        goto out;
    }
    if (st.st_size > MAX_CONFIG_BYTES) {
        ret = -EFBIG;
        goto out;
    }
    *data = malloc((size_t)st.st_size + 1);
    if (!*data) {
        ret = -ENOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size && (r = read(fd, *data + got, (size_t)st.st_size - got)) > 0)
        got += (size_t)r;
    (*data)[got] = '\0';
    *len = got;
out:
    close(fd);
    if (ret) {
        free(*data);
        *data = NULL;
    }
    return ret;
}

int tb_record_config_load(const char *path, bool text, Perfetto__Protos__TraceConfig **out,
                          char *err, size_t errlen)
{
    ProtobufCMessage *msg = NULL;
    char perr[256];
    char *data;
    size_t len = 0;
    int ret;

    *out = NULL;
    ret = read_all(path, &data, &len);
    if (ret) {
        snprintf(err, errlen, "cannot read config %s: %s", path, strerror(-ret));
        return ret;
    }
    if (text) {
        ret = tb_textproto_parse(&perfetto__protos__trace_config__descriptor, data, len, &msg, perr,
                                 sizeof(perr));
        if (ret == -EINVAL)
            snprintf(err, errlen, "%s:%s", path, perr);
        else if (ret)
            snprintf(err, errlen, "%s: %s", path, strerror(-ret));
        else
            *out = (Perfetto__Protos__TraceConfig *)msg;
    } else {
        *out = perfetto__protos__trace_config__unpack(NULL, len, (const uint8_t *)data);
        ret = *out ? 0 : -EINVAL;
        if (ret)
            snprintf(err, errlen, "%s: not a binary TraceConfig (a text config needs --txt)", path);
    }
    free(data);
    return ret;
}

/*
 * Replace a repeated string field of an unpacked message by one value; the
 * message is freed by free_unpacked, which frees the array and each string.
 */
static int set_one_str(char ***v, size_t *n, const char *s)
{
    char **nv = malloc(sizeof(*nv));
    size_t i;

    if (!nv)
        return -ENOMEM;
    nv[0] = strdup(s);
    if (!nv[0]) {
        free(nv);
        return -ENOMEM;
    }
    for (i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = nv;
    *n = 1;
    return 0;
}

static int set_ftrace_filters(Perfetto__Protos__FtraceConfig *fc, const struct tb_record_opts *o)
{
    Perfetto__Protos__FtraceConfig__TracebpfFilter *x;
    uint32_t *t;
    int err;

    if (o->n_pids) {
        t = malloc(o->n_pids * sizeof(*t));
        if (!t)
            return -ENOMEM;
        memcpy(t, o->pids, o->n_pids * sizeof(*t));
        free(fc->tids_to_trace);
        fc->tids_to_trace = t;
        fc->n_tids_to_trace = o->n_pids;
    }
    if (!o->comm && !o->cgroup)
        return 0;
    x = fc->tracebpf_filter;
    if (!x) {
        x = malloc(sizeof(*x));
        if (!x)
            return -ENOMEM;
        perfetto__protos__ftrace_config__tracebpf_filter__init(x);
        fc->tracebpf_filter = x;
    }
    err = o->comm ? set_one_str(&x->comm, &x->n_comm, o->comm) : 0;
    if (!err && o->cgroup)
        err = set_one_str(&x->cgroup_path, &x->n_cgroup_path, o->cgroup);
    return err;
}

int tb_record_config_set_filters(Perfetto__Protos__TraceConfig *cfg, const struct tb_record_opts *o)
{
    Perfetto__Protos__DataSourceConfig *dsc;
    bool found = false;
    size_t i;
    int err;

    if (!o->n_pids && !o->comm && !o->cgroup)
        return 0;
    for (i = 0; i < cfg->n_data_sources; i++) {
        dsc = cfg->data_sources[i]->config;
        if (!dsc || !dsc->name || strcmp(dsc->name, "linux.ftrace"))
            continue;
        if (!dsc->ftrace_config) {
            dsc->ftrace_config = malloc(sizeof(*dsc->ftrace_config));
            if (!dsc->ftrace_config)
                return -ENOMEM;
            perfetto__protos__ftrace_config__init(dsc->ftrace_config);
        }
        err = set_ftrace_filters(dsc->ftrace_config, o);
        if (err)
            return err;
        found = true;
    }
    return found ? 0 : -ENOENT;
}

static int cgroup2_mount(char *out, size_t len)
{
    char line[1024], dev[256], mnt[512], type[64];
    int ret = -ENODEV;
    FILE *f;

    f = fopen("/proc/self/mounts", "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%255s %511s %63s", dev, mnt, type) == 3 && !strcmp(type, "cgroup2")) {
            snprintf(out, len, "%s", mnt);
            ret = 0;
            break;
        }
    }
    fclose(f);
    return ret;
}

static int check_cgroup_dir(const char *path)
{
    struct statfs sfs;
    struct stat st;

    if (stat(path, &st))
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (statfs(path, &sfs))
        return -errno;
    return (unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC ? 0 : -EMEDIUMTYPE;
}

/* Same resolution as traced-bpf-probes (ftrace_filter.c), so both agree. */
int tb_record_check_cgroup(const char *path, char *where, size_t len)
{
    char mnt[512];
    int err, abs_err;

    snprintf(where, len, "%s", path);
    if (!*path)
        return -ENOENT;
    abs_err = path[0] == '/' ? check_cgroup_dir(path) : -ENOENT;
    if (!abs_err)
        return 0;
    /* Relative, or "/a/b" within the hierarchy ("/" is its root). */
    err = cgroup2_mount(mnt, sizeof(mnt));
    if (!err) {
        snprintf(where, len, "%s/%s", mnt, path + (path[0] == '/'));
        err = check_cgroup_dir(where);
    }
    if (err && path[0] == '/') {
        snprintf(where, len, "%s", path);
        return abs_err;
    }
    return err;
}

void tb_record_config_free(Perfetto__Protos__TraceConfig *cfg)
{
    if (cfg)
        perfetto__protos__trace_config__free_unpacked(cfg, NULL);
}

int tb_record_check_event(const char *tracefs, const char *ev)
{
    char path[512];
    const char *slash = strchr(ev, '/');

    if (!slash || slash == ev || !slash[1] || strchr(slash + 1, '/') || strstr(ev, ".."))
        return -EINVAL;
    snprintf(path, sizeof(path), "%s/events", tracefs);
    if (access(path, F_OK))
        return -ENODEV;
    if (snprintf(path, sizeof(path), "%s/events/%s", tracefs, ev) >= (int)sizeof(path))
        return -EINVAL;
    return access(path, F_OK) ? -ENOENT : 0;
}
