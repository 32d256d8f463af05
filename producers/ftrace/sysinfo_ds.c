/*
 * sysinfo_ds.c - linux.system_info (one SystemInfo packet at start: uname,
 * page size, CPUs, USER_HZ) and linux.sys_stats (SysStats packets from
 * /proc/meminfo, /proc/vmstat and /proc/stat at the SysStatsConfig periods).
 * Counter names map to their enum values through the generated protobuf-c
 * enum descriptors, so no table of /proc names is kept here.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/pb_writer.h"
#include "perfetto/common/sys_stats_counters.pb-c.h"
#include "producers/ftrace/probes_producer.h"

/* SystemInfo / Utsname fields. */
#define SI_UTSNAME   1
#define SI_HZ        3
#define SI_PAGE_SIZE 6
#define SI_NUM_CPUS  8
#define SI_RAM_BYTES 16
#define UTS_SYSNAME  1
#define UTS_VERSION  2
#define UTS_RELEASE  3
#define UTS_MACHINE  4

/* SysStats fields. */
#define SS_MEMINFO    1
#define SS_VMSTAT     2
#define SS_CPU_STAT   3
#define SS_NUM_FORKS  4
#define SS_IRQ_TOTAL  5
#define SS_SIRQ_TOTAL 7
#define SS_END_TS     9
#define KV_KEY        1
#define KV_VALUE      2

struct sysstats_ds {
    struct tb_probes *p;
    struct tb_probes_writer w;
    uint32_t target_buffer;
    uint32_t period[3]; /* meminfo, vmstat, stat; 0 = off */
    uint64_t timer[3];
    bool want_mem[64];  /* by MeminfoCounters value; all when none named */
    bool want_vm[256];  /* by VmstatCounters value */
    uint32_t stat_mask; /* bit per SysStatsConfig.StatCounters; 0 = all */
};

/* Lower-case letters and digits only: "Active(anon)" == "ACTIVE_ANON". */
static void squash(const char *in, char *out, size_t len)
{
    size_t n = 0;

    for (; *in && n + 1 < len; in++) {
        if (isalnum((unsigned char)*in))
            out[n++] = (char)tolower((unsigned char)*in);
    }
    out[n] = '\0';
}

/* The few /proc/meminfo keys whose words differ from the enum's. */
static const char *meminfo_alias(const char *key)
{
    if (!strcmp(key, "SReclaimable"))
        return "slabreclaimable";
    if (!strcmp(key, "SUnreclaim"))
        return "slabunreclaimable";
    if (!strcmp(key, "Committed_AS"))
        return "commitedas";
    return NULL;
}

/* Enum value whose name (after @prefix) squashes to @key, or 0. */
static int enum_lookup(const ProtobufCEnumDescriptor *d, const char *prefix, const char *key)
{
    char a[96];
    unsigned int i;

    for (i = 0; i < d->n_values; i++) {
        const char *name = d->values[i].name;

        if (strncmp(name, prefix, strlen(prefix)))
            continue;
        squash(name + strlen(prefix), a, sizeof(a));
        if (!strcmp(a, key))
            return d->values[i].value;
    }
    return 0;
}

static void write_kv_file(struct tb_pbw *pbw, const char *path, bool meminfo, const bool *want,
                          size_t nwant)
{
    const ProtobufCEnumDescriptor *d = meminfo ? &perfetto__protos__meminfo_counters__descriptor
                                               : &perfetto__protos__vmstat_counters__descriptor;
    char line[256], key[128], sq[128];
    unsigned long long v;
    const char *alias;
    FILE *f;
    int e;

    f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, meminfo ? "%127[^:]: %llu" : "%127s %llu", key, &v) != 2)
            continue;
        alias = meminfo ? meminfo_alias(key) : NULL;
        squash(key, sq, sizeof(sq));
        e = enum_lookup(d, meminfo ? "MEMINFO_" : "VMSTAT_", alias ? alias : sq);
        if (e <= 0 || (size_t)e >= nwant || !want[e])
            continue;
        tb_pbw_begin_nested(pbw, meminfo ? SS_MEMINFO : SS_VMSTAT);
        tb_pbw_append_varint(pbw, KV_KEY, (uint64_t)e);
        /* meminfo is in kB; vmstat counts are plain numbers. */
        tb_pbw_append_varint(pbw, KV_VALUE, v);
        tb_pbw_end_nested(pbw);
    }
    fclose(f);
}

static void write_stat(struct sysstats_ds *ds, struct tb_pbw *pbw)
{
    unsigned long long t[8], n;
    const uint64_t ns_per_tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
    bool all = !ds->stat_mask;
    char line[1024];
    unsigned int cpu;
    FILE *f;
    int k;

    f = fopen("/proc/stat", "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "cpu", 3) && isdigit((unsigned char)line[3])) {
            if (!all && !(ds->stat_mask & (1u << 1)))
                continue;
            memset(t, 0, sizeof(t));
            if (sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &t[0], &t[1],
                       &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]) < 5)
                continue;
            tb_pbw_begin_nested(pbw, SS_CPU_STAT);
            tb_pbw_append_varint(pbw, 1, cpu);
            for (k = 0; k < 8; k++)
                tb_pbw_append_varint(pbw, (uint32_t)k + 2, t[k] * ns_per_tick);
            tb_pbw_end_nested(pbw);
        } else if (sscanf(line, "processes %llu", &n) == 1) {
            if (all || (ds->stat_mask & (1u << 4)))
                tb_pbw_append_varint(pbw, SS_NUM_FORKS, n);
        } else if (sscanf(line, "intr %llu", &n) == 1) {
            if (all || (ds->stat_mask & (1u << 2)))
                tb_pbw_append_varint(pbw, SS_IRQ_TOTAL, n);
        } else if (sscanf(line, "softirq %llu", &n) == 1) {
            if (all || (ds->stat_mask & (1u << 3)))
                tb_pbw_append_varint(pbw, SS_SIRQ_TOTAL, n);
        }
    }
    fclose(f);
}

static void sample(struct sysstats_ds *ds, int which)
{
    struct tb_pbw *pbw = tb_probes_begin_packet(&ds->w);

    tb_pbw_begin_nested(pbw, TB_PKT_SYS_STATS);
    if (which == 0)
        write_kv_file(pbw, "/proc/meminfo", true, ds->want_mem, 64);
    else if (which == 1)
        write_kv_file(pbw, "/proc/vmstat", false, ds->want_vm, 256);
    else
        write_stat(ds, pbw);
    tb_pbw_append_varint(pbw, SS_END_TS, tb_probes_boot_ns());
    tb_pbw_end_nested(pbw);
    tb_probes_end_packet(&ds->w);
}

static void on_mem(void *ctx)
{
    sample(ctx, 0);
}

static void on_vm(void *ctx)
{
    sample(ctx, 1);
}

static void on_stat(void *ctx)
{
    sample(ctx, 2);
}

static void ss_destroy(void *state)
{
    struct sysstats_ds *ds = state;
    int i;

    if (!ds)
        return;
    for (i = 0; i < 3; i++) {
        if (ds->timer[i])
            tb_loop_cancel_timer(tb_probes_loop(ds->p), ds->timer[i]);
    }
    tb_probes_writer_close(&ds->w);
    free(ds);
}

static int ss_create(struct tb_probes *p, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg, void **state)
{
    const Perfetto__Protos__SysStatsConfig *sc = cfg->sys_stats_config;
    struct sysstats_ds *ds;
    size_t i;

    (void)id;
    *state = NULL;
    ds = calloc(1, sizeof(*ds));
    if (!ds)
        return -ENOMEM;
    ds->p = p;
    ds->target_buffer = cfg->target_buffer;
    memset(ds->want_mem, 1, sizeof(ds->want_mem));
    memset(ds->want_vm, 1, sizeof(ds->want_vm));
    if (sc) {
        if (sc->n_meminfo_counters)
            memset(ds->want_mem, 0, sizeof(ds->want_mem));
        if (sc->n_vmstat_counters)
            memset(ds->want_vm, 0, sizeof(ds->want_vm));
        ds->period[0] = sc->meminfo_period_ms;
        ds->period[1] = sc->vmstat_period_ms;
        ds->period[2] = sc->stat_period_ms;
        for (i = 0; i < sc->n_meminfo_counters; i++) {
            if (sc->meminfo_counters[i] > 0 && sc->meminfo_counters[i] < 64)
                ds->want_mem[sc->meminfo_counters[i]] = true;
        }
        for (i = 0; i < sc->n_vmstat_counters; i++) {
            if (sc->vmstat_counters[i] > 0 && sc->vmstat_counters[i] < 256)
                ds->want_vm[sc->vmstat_counters[i]] = true;
        }
        for (i = 0; i < sc->n_stat_counters; i++) {
            if (sc->stat_counters[i] > 0 && sc->stat_counters[i] < 32)
                ds->stat_mask |= 1u << sc->stat_counters[i];
        }
    }
    *state = ds;
    return 0;
}

static int ss_start(void *state)
{
    static const tb_loop_task_fn fns[3] = {on_mem, on_vm, on_stat};
    struct sysstats_ds *ds = state;
    int err, i;

    err = tb_probes_writer_open(&ds->w, tb_probes_pc(ds->p), ds->target_buffer);
    if (err)
        return err;
    for (i = 0; i < 3; i++) {
        if (!ds->period[i])
            continue;
        /* Perfetto rounds periods below 10 ms up; so do we. */
        if (ds->period[i] < 10)
            ds->period[i] = 10;
        err = tb_loop_add_timer(tb_probes_loop(ds->p), ds->period[i], ds->period[i], fns[i], ds,
                                &ds->timer[i]);
        if (err)
            return err;
    }
    return 0;
}

static void ss_flush(void *state)
{
    struct sysstats_ds *ds = state;

    tb_probes_writer_flush(&ds->w);
}

static void ss_stop(void *state)
{
    struct sysstats_ds *ds = state;
    int i;

    for (i = 0; i < 3; i++) {
        if (ds->timer[i])
            tb_loop_cancel_timer(tb_probes_loop(ds->p), ds->timer[i]);
        ds->timer[i] = 0;
    }
    tb_probes_writer_flush(&ds->w);
}

const struct tb_ds_ops tb_sysstats_ds_ops = {
    .name = "linux.sys_stats",
    .create = ss_create,
    .start = ss_start,
    .flush = ss_flush,
    .stop = ss_stop,
    .destroy = ss_destroy,
};

/* linux.system_info: everything is written at start; the state is a writer. */

struct sysinfo_ds {
    struct tb_probes *p;
    struct tb_probes_writer w;
    uint32_t target_buffer;
};

static int si_create(struct tb_probes *p, uint64_t id,
                     const Perfetto__Protos__DataSourceConfig *cfg, void **state)
{
    struct sysinfo_ds *ds = calloc(1, sizeof(*ds));

    (void)id;
    *state = ds;
    if (!ds)
        return -ENOMEM;
    ds->p = p;
    ds->target_buffer = cfg->target_buffer;
    return 0;
}

static int si_start(void *state)
{
    struct sysinfo_ds *ds = state;
    struct utsname u;
    struct tb_pbw *pbw;
    long pages, psize;
    int err;

    err = tb_probes_writer_open(&ds->w, tb_probes_pc(ds->p), ds->target_buffer);
    if (err)
        return err;
    pbw = tb_probes_begin_packet(&ds->w);
    tb_pbw_begin_nested(pbw, TB_PKT_SYSTEM_INFO);
    if (!uname(&u)) {
        tb_pbw_begin_nested(pbw, SI_UTSNAME);
        tb_pbw_append_string(pbw, UTS_SYSNAME, u.sysname);
        tb_pbw_append_string(pbw, UTS_VERSION, u.version);
        tb_pbw_append_string(pbw, UTS_RELEASE, u.release);
        tb_pbw_append_string(pbw, UTS_MACHINE, u.machine);
        tb_pbw_end_nested(pbw);
    }
    tb_pbw_append_int(pbw, SI_HZ, sysconf(_SC_CLK_TCK));
    psize = sysconf(_SC_PAGESIZE);
    pages = sysconf(_SC_PHYS_PAGES);
    tb_pbw_append_varint(pbw, SI_PAGE_SIZE, (uint64_t)psize);
    tb_pbw_append_varint(pbw, SI_NUM_CPUS, (uint64_t)sysconf(_SC_NPROCESSORS_CONF));
    if (pages > 0 && psize > 0)
        tb_pbw_append_varint(pbw, SI_RAM_BYTES, (uint64_t)pages * (uint64_t)psize);
    tb_pbw_end_nested(pbw);
    err = tb_probes_end_packet(&ds->w);
    tb_probes_writer_flush(&ds->w);
    return err;
}

static void si_flush(void *state)
{
    struct sysinfo_ds *ds = state;

    tb_probes_writer_flush(&ds->w);
}

static void si_stop(void *state)
{
    si_flush(state);
}

static void si_destroy(void *state)
{
    struct sysinfo_ds *ds = state;

    if (!ds)
        return;
    tb_probes_writer_close(&ds->w);
    free(ds);
}

const struct tb_ds_ops tb_sysinfo_ds_ops = {
    .name = "linux.system_info",
    .create = si_create,
    .start = si_start,
    .flush = si_flush,
    .stop = si_stop,
    .destroy = si_destroy,
};
