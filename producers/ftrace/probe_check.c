/*
 * probe_check.c - start-up check of the kernel producer (see probe_check.h).
 * Each probe looks at the one file or syscall that decides the question, so
 * the message can say exactly what is missing and how to get it.
 */
#include "producers/ftrace/probe_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bpf/btf.h>

#include "producers/ftrace/bpf_probes.h"
#include "producers/ftrace/ftrace_instance.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

struct report {
    char *msg;
    size_t len, used;
    int first_err;
};

static void problem(struct report *r, int err, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!r->first_err)
        r->first_err = err;
    if (r->used + 1 >= r->len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(r->msg + r->used, r->len - r->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->used += (size_t)n < r->len - r->used ? (size_t)n : r->len - r->used - 1;
    if (r->used + 1 < r->len) {
        r->msg[r->used++] = '\n';
        r->msg[r->used] = 0;
    }
}

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
    return d[cap / 32].effective & (1u << (cap % 32));
}

static void check_caps(struct report *r)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2] = {0};
    bool admin;

    if (syscall(SYS_capget, &h, d)) {
        problem(r, -errno, "cannot read own capabilities: %s", strerror(errno));
        return;
    }
    admin = has_cap(d, CAP_SYS_ADMIN);
    if (!admin && !has_cap(d, CAP_BPF))
        problem(r, -EPERM,
                "missing CAP_BPF (or CAP_SYS_ADMIN): run as root or grant it "
                "(setcap cap_bpf,cap_perfmon+ep traced-bpf-probes)");
    if (!admin && !has_cap(d, CAP_PERFMON))
        problem(r, -EPERM,
                "missing CAP_PERFMON (or CAP_SYS_ADMIN): needed to attach to "
                "tracepoints; run as root or grant it");
}

static void check_lockdown(struct report *r)
{
    char buf[128] = {0};
    FILE *f = fopen("/sys/kernel/security/lockdown", "r");

    if (!f)
        return; /* no securityfs or no lockdown LSM: nothing locked */
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = 0;
    fclose(f);
    if (strstr(buf, "[confidentiality]"))
        problem(r, -EPERM,
                "kernel lockdown is 'confidentiality': BPF tracing cannot read "
                "kernel memory; boot with lockdown=integrity or none");
}

static bool btf_has_tracepoint(struct btf *btf, const char *name)
{
    char tname[160];
    const char *slash = strchr(name, '/');

    snprintf(tname, sizeof(tname), "btf_trace_%s", slash ? slash + 1 : name);
    return btf__find_by_name_kind(btf, tname, BTF_KIND_TYPEDEF) > 0;
}

int tb_probe_check(const char *const *events, size_t nr_events, char *msg, size_t len)
{
    struct report r = {.msg = msg, .len = len};
    bool need_bpf = false, need_ftrace = false;
    struct btf *btf = NULL;
    char full[256];
    size_t i;
    int err;

    if (len)
        msg[0] = 0;
    for (i = 0; i < nr_events; i++) {
        if (tb_bpf_event_type(events[i]) > 0)
            need_bpf = true;
        else
            need_ftrace = true;
    }
    if (access("/sys/kernel/tracing/trace", F_OK)) {
        if (errno == EACCES)
            problem(&r, -EPERM,
                    "tracefs (/sys/kernel/tracing) is not accessible to this "
                    "user: run as root");
        else
            problem(&r, -ENODEV,
                    "tracefs is not mounted: run 'mount -t tracefs nodev "
                    "/sys/kernel/tracing' (scripts/setup.sh does it)");
    }
    if (need_bpf) {
        if (access("/sys/kernel/btf/vmlinux", R_OK)) {
            problem(&r, -ENOTSUP,
                    "no kernel BTF (/sys/kernel/btf/vmlinux): BPF events need a "
                    "kernel built with CONFIG_DEBUG_INFO_BTF=y");
        } else {
            btf = btf__load_vmlinux_btf();
            if (!btf)
                problem(&r, -errno, "cannot parse kernel BTF: %s", strerror(errno));
        }
        check_lockdown(&r);
        check_caps(&r);
    } else if (need_ftrace && geteuid() != 0) {
        problem(&r, -EPERM, "raw ftrace needs root to create a tracefs instance");
    }
    for (i = 0; i < nr_events; i++) {
        if (tb_bpf_event_type(events[i]) > 0) {
            if (btf && !btf_has_tracepoint(btf, tb_bpf_event_name(tb_bpf_event_type(events[i]))))
                problem(&r, -ENOENT, "event %s does not exist on this kernel", events[i]);
            continue;
        }
        err = tb_ftrace_resolve(events[i], full, sizeof(full));
        if (err == -ENOENT)
            problem(&r, -ENOENT,
                    "event %s does not exist on this kernel (see "
                    "/sys/kernel/tracing/available_events)",
                    events[i]);
    }
    btf__free(btf);
    return r.first_err;
}
