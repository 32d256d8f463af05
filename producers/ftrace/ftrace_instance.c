/*
 * ftrace_instance.c - the private ftrace instance of the kernel producer
 * (see ftrace_instance.h). Built on libtracefs for the instance and the raw
 * per-CPU reads, and on libtraceevent for parsing the events' formats, which
 * are loaded only for the event systems we enable.
 */
#include "producers/ftrace/ftrace_instance.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>
#include <tracefs.h>

#include "common/log.h"

#define TRACEFS_DIR "/sys/kernel/tracing"

struct tb_ftrace {
    struct tracefs_instance *inst;
    bool copies_marker; /* on the kernel's list of top-level trace_marker copies */
    struct tep_handle *tep;
    char **enabled; /* "group/name" of every enabled event */
    size_t nr_enabled;
    tb_ftrace_event_fn fn;
    void *ctx;
    int seen;
};

static bool tracefs_mounted(void)
{
    return access(TRACEFS_DIR "/trace", F_OK) == 0;
}

int tb_ftrace_resolve(const char *name, char *out, size_t len)
{
    char pat[512];
    glob_t g;
    int err = -ENOENT;

    if (!tracefs_mounted())
        return -ENODEV;
    if (strchr(name, '/'))
        snprintf(pat, sizeof(pat), TRACEFS_DIR "/events/%s/format", name);
    else
        snprintf(pat, sizeof(pat), TRACEFS_DIR "/events/*/%s/format", name);
    if (glob(pat, 0, NULL, &g))
        return -ENOENT;
    if (g.gl_pathc >= 1) {
        /* .../events/<group>/<name>/format -> "<group>/<name>" */
        const char *p = g.gl_pathv[0] + strlen(TRACEFS_DIR "/events/");
        size_t n = strlen(p) - strlen("/format");

        if (n < len) {
            memcpy(out, p, n);
            out[n] = 0;
            err = 0;
        } else {
            err = -ENAMETOOLONG;
        }
    }
    globfree(&g);
    return err;
}

int tb_ftrace_cleanup_stale(void)
{
    struct tracefs_instance *inst;
    struct dirent *de;
    int removed = 0;
    DIR *d;

    d = opendir(TRACEFS_DIR "/instances");
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        char *end;
        long pid;

        if (strncmp(de->d_name, TB_FTRACE_INSTANCE_PREFIX, strlen(TB_FTRACE_INSTANCE_PREFIX)))
            continue;
        pid = strtol(de->d_name + strlen(TB_FTRACE_INSTANCE_PREFIX), &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        inst = tracefs_instance_alloc(NULL, de->d_name);
        if (inst && !tracefs_instance_destroy(inst)) {
            tb_info("ftrace: removed instance %s left by dead pid %ld", de->d_name, pid);
            removed++;
        } else {
            tb_warn("ftrace: cannot remove stale instance %s: %s", de->d_name, strerror(errno));
        }
        tracefs_instance_free(inst);
    }
    closedir(d);
    return removed;
}

static bool has_enable_file(const char *full)
{
    char path[512];

    snprintf(path, sizeof(path), TRACEFS_DIR "/events/%s/enable", full);
    return access(path, F_OK) == 0;
}

static int write_file(struct tb_ftrace *f, const char *file, const char *val)
{
    if (tracefs_instance_file_write(f->inst, file, val) < 0) {
        int err = errno ? -errno : -EIO;

        tb_err("ftrace: writing '%s' to %s/%s: %s", val, tb_ftrace_name(f), file, strerror(-err));
        return err;
    }
    return 0;
}

static char *read_events_file(const char *rel, int *size)
{
    char *buf = tracefs_instance_file_read(NULL, rel, size);

    if (!buf)
        tb_err("ftrace: reading %s: %s", rel, strerror(errno ? errno : EIO));
    return buf;
}

/*
 * Only the header page and the formats of the enabled events: the library's
 * whole-system loader also parses kallsyms and every format of each group,
 * which takes seconds on a large kernel, and none of it is needed here.
 */
static int load_formats(struct tb_ftrace *f)
{
    char rel[320], *buf;
    int size, err = 0;
    size_t i;

    f->tep = tep_alloc();
    if (!f->tep)
        return -ENOMEM;
    tep_set_long_size(f->tep, sizeof(long));
    tep_set_page_size(f->tep, getpagesize());
    tep_set_file_bigendian(f->tep, __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? TEP_BIG_ENDIAN
                                                                          : TEP_LITTLE_ENDIAN);
    tep_set_local_bigendian(f->tep, tep_is_file_bigendian(f->tep));
    buf = read_events_file("events/header_page", &size);
    if (!buf)
        return -EIO;
    if (tep_parse_header_page(f->tep, buf, size, sizeof(long))) {
        tb_err("ftrace: cannot parse events/header_page");
        err = -EPROTO;
    }
    free(buf);
    for (i = 0; i < f->nr_enabled && !err; i++) {
        char *slash = strchr(f->enabled[i], '/');

        snprintf(rel, sizeof(rel), "events/%s/format", f->enabled[i]);
        buf = read_events_file(rel, &size);
        if (!buf)
            return -EIO;
        *slash = 0;
        if (tep_parse_event(f->tep, buf, size, f->enabled[i])) {
            tb_err("ftrace: cannot parse the format of %s", rel);
            err = -EPROTO;
        }
        *slash = '/';
        free(buf);
    }
    return err;
}

static bool wants_print(const struct tb_ftrace *f)
{
    for (size_t i = 0; i < f->nr_enabled; i++) {
        if (!strcmp(f->enabled[i], "ftrace/print"))
            return true;
    }
    return false;
}

/*
 * Apps (atrace "B|pid|name" and the like) write the top-level trace_marker,
 * and a marker write lands only in the buffer of the instance whose
 * trace_marker file was written: ftrace/print is no tracepoint that fires
 * in every instance. Since 6.17 an instance can ask for a copy of every
 * top-level write (options/copy_trace_marker). The kernel walks the copy
 * list newest first and stops at the first instance that cannot take the
 * write (tracing off there), so we join only while tracing is on and leave
 * before turning it off, never blocking the copies of instances behind us.
 * The writer still sees EBADF when the top-level buffer itself is off, but
 * our copy has been made by then.
 */
static void copy_marker(struct tb_ftrace *f, bool on)
{
    if (!on && !f->copies_marker)
        return;
    if (on && !tracefs_file_exists(f->inst, "options/copy_trace_marker")) {
        tb_warn("ftrace: this kernel has no options/copy_trace_marker: ftrace/print "
                "carries only writes to %s/trace_marker, not to the top-level trace_marker",
                tb_ftrace_name(f));
        return;
    }
    if (tracefs_instance_file_write(f->inst, "options/copy_trace_marker", on ? "1" : "0") < 0) {
        tb_warn("ftrace: %s copy_trace_marker in %s: %s", on ? "setting" : "clearing",
                tb_ftrace_name(f), strerror(errno ? errno : EIO));
        return;
    }
    f->copies_marker = on;
}

int tb_ftrace_new(const struct tb_ftrace_opts *opts, struct tb_ftrace **out)
{
    char name[64], full[256];
    struct tb_ftrace *f;
    size_t i;
    int err = 0;

    *out = NULL;
    if (!tracefs_mounted()) {
        tb_err("ftrace: tracefs is not mounted; run: mount -t tracefs nodev " TRACEFS_DIR);
        return -ENODEV;
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->enabled = calloc(opts->nr_events ? opts->nr_events : 1, sizeof(char *));
    if (!f->enabled) {
        err = -ENOMEM;
        goto out;
    }
    for (i = 0; i < opts->nr_events; i++) {
        err = tb_ftrace_resolve(opts->events[i], full, sizeof(full));
        if (err) {
            tb_err("ftrace: event %s does not exist on this kernel", opts->events[i]);
            goto out;
        }
        f->enabled[f->nr_enabled] = strdup(full);
        if (!f->enabled[f->nr_enabled]) {
            err = -ENOMEM;
            goto out;
        }
        f->nr_enabled++;
    }
    tb_ftrace_cleanup_stale();
    snprintf(name, sizeof(name), TB_FTRACE_INSTANCE_PREFIX "%d", (int)getpid());
    f->inst = tracefs_instance_create(name);
    if (!f->inst) {
        err = errno ? -errno : -EIO;
        tb_err("ftrace: creating instance %s: %s", name, strerror(-err));
        goto out;
    }
    err = write_file(f, "tracing_on", "0");
    if (!err)
        err = write_file(f, "trace_clock", "boot");
    if (err)
        goto out;
    if (opts->buffer_size_kb &&
        tracefs_instance_set_buffer_size(f->inst, opts->buffer_size_kb, -1) < 0) {
        err = errno ? -errno : -EIO;
        tb_err("ftrace: setting %s buffer to %zu KiB: %s", name, opts->buffer_size_kb,
               strerror(-err));
        goto out;
    }
    if (f->nr_enabled) {
        err = load_formats(f);
        if (err)
            goto out;
    }
    for (i = 0; i < f->nr_enabled; i++) {
        char *slash = strchr(f->enabled[i], '/');

        /* ftrace/print and its kin have no enable file: they are always on. */
        if (!has_enable_file(f->enabled[i]))
            continue;
        *slash = 0;
        err = tracefs_event_enable(f->inst, f->enabled[i], slash + 1) ? -EINVAL : 0;
        *slash = '/';
        if (err) {
            tb_err("ftrace: enabling %s in %s failed", f->enabled[i], name);
            goto out;
        }
    }
    err = write_file(f, "tracing_on", "1");
    if (err)
        goto out;
    /* Only once tracing is on: see copy_marker(). */
    if (wants_print(f))
        copy_marker(f, true);
    *out = f;
    return 0;
out:
    tb_ftrace_free(f);
    return err;
}

static int on_raw(struct tep_event *ev, struct tep_record *rec, int cpu, void *ctx)
{
    struct tb_ftrace *f = ctx;

    f->seen++;
    return f->fn ? f->fn(f->ctx, cpu, ev, rec) : 0;
}

int tb_ftrace_read(struct tb_ftrace *f, tb_ftrace_event_fn fn, void *ctx)
{
    f->fn = fn;
    f->ctx = ctx;
    f->seen = 0;
    if (!f->tep)
        return 0;
    if (tracefs_iterate_raw_events(f->tep, f->inst, NULL, 0, on_raw, f) < 0)
        return errno ? -errno : -EIO;
    return f->seen;
}

int tb_ftrace_overrun(struct tb_ftrace *f, int cpu, uint64_t *out)
{
    char file[64], *buf, *p;

    *out = 0;
    snprintf(file, sizeof(file), "per_cpu/cpu%d/stats", cpu);
    buf = tracefs_instance_file_read(f->inst, file, NULL);
    if (!buf)
        return errno ? -errno : -EIO;
    p = strstr(buf, "overrun:");
    if (p)
        *out = strtoull(p + strlen("overrun:"), NULL, 10);
    free(buf);
    return p ? 0 : -EPROTO;
}

const char *tb_ftrace_name(const struct tb_ftrace *f)
{
    return f->inst ? tracefs_instance_get_name(f->inst) : "(none)";
}

int tb_ftrace_write_marker(struct tb_ftrace *f, const char *msg)
{
    char *path = tracefs_instance_get_file(f->inst, "trace_marker");
    size_t len = strlen(msg);
    int fd, err = 0;

    if (!path)
        return -ENOMEM;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, msg, len) != (ssize_t)len)
        err = -errno;
    if (fd >= 0)
        close(fd);
    tracefs_put_tracing_file(path);
    return err;
}

void tb_ftrace_free(struct tb_ftrace *f)
{
    size_t i;

    if (!f)
        return;
    if (f->inst) {
        /* Removing the instance drops its events and buffers with it. */
        copy_marker(f, false);
        tracefs_instance_file_write(f->inst, "tracing_on", "0");
        for (i = 0; i < f->nr_enabled; i++) {
            char *slash = strchr(f->enabled[i], '/');

            if (!has_enable_file(f->enabled[i]))
                continue;
            *slash = 0;
            tracefs_event_disable(f->inst, f->enabled[i], slash + 1);
            *slash = '/';
        }
        if (tracefs_instance_destroy(f->inst))
            tb_warn("ftrace: removing instance %s: %s", tb_ftrace_name(f), strerror(errno));
        tracefs_instance_free(f->inst);
    }
    for (i = 0; i < f->nr_enabled; i++)
        free(f->enabled[i]);
    free(f->enabled);
    tep_free(f->tep);
    free(f);
}
