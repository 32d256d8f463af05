/*
 * cmd_doctor.c - "tracebpf doctor": checks what recording needs on this host
 * (kernel version, BTF, tracefs, BPF permission, perf_event_paranoid,
 * lockdown, the daemon's sockets) and says, per item, what works and how to
 * fix what does not. Exit 0 when a recording would work.
 */
#include "consumer/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

enum verdict { V_OK, V_INFO, V_WARN, V_FAIL };

struct doctor {
    int failures;
    int warnings;
};

static void report(struct doctor *d, enum verdict v, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct doctor *d, enum verdict v, const char *what, const char *fmt, ...)
{
    static const char *const tags[] = {"ok", "info", "warn", "FAIL"};
    va_list ap;

    printf("  %-5s %-10s ", tags[v], what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (v == V_FAIL)
        d->failures++;
    if (v == V_WARN)
        d->warnings++;
}

/* First line of a small text file, newline stripped. Return: 0 or -errno. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    int err = 0;

    if (!f)
        return -errno;
    if (!fgets(buf, (int)len, f))
        err = -EIO;
    else
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
    return err;
}

static void check_kernel(struct doctor *d)
{
    struct utsname u;
    int major = 0, minor = 0;

    if (uname(&u)) {
        report(d, V_WARN, "kernel", "uname failed: %s", strerror(errno));
        return;
    }
    sscanf(u.release, "%d.%d", &major, &minor);
    if (major > 5 || (major == 5 && minor >= 8))
        report(d, V_OK, "kernel", "%s %s (BPF ring buffer needs 5.8+)", u.sysname, u.release);
    else
        report(d, V_FAIL, "kernel",
               "%s is older than 5.8: no BPF ring buffer; fix: run a newer kernel", u.release);
}

static void check_btf(struct doctor *d)
{
    const char *path = "/sys/kernel/btf/vmlinux";

    if (access(path, R_OK) == 0)
        report(d, V_OK, "btf", "%s present (CO-RE programs can load)", path);
    else if (errno == ENOENT)
        report(d, V_FAIL, "btf", "%s missing; fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
               path);
    else
        report(d, V_FAIL, "btf", "%s not readable (%s); fix: run as root", path, strerror(errno));
}

static void check_tracefs(struct doctor *d)
{
    static const char *const dirs[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
    char path[128];
    size_t i;

    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/trace", dirs[i]);
        if (access(path, F_OK))
            continue;
        snprintf(path, sizeof(path), "%s/instances", dirs[i]);
        if (access(path, W_OK) == 0)
            report(d, V_OK, "tracefs", "mounted at %s, writable", dirs[i]);
        else
            report(d, V_FAIL, "tracefs", "mounted at %s but not writable; fix: run as root",
                   dirs[i]);
        return;
    }
    report(d, V_FAIL, "tracefs",
           "not mounted; fix: sudo mount -t tracefs nodev /sys/kernel/tracing");
}

static void check_bpf(struct doctor *d)
{
    union bpf_attr attr;
    char val[16] = "";
    int fd, err;

    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    fd = (int)syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    if (fd >= 0) {
        close(fd);
        report(d, V_OK, "bpf", "bpf() map creation allowed");
        return;
    }
    err = errno;
    read_line("/proc/sys/kernel/unprivileged_bpf_disabled", val, sizeof(val));
    if (err == EPERM || err == EACCES)
        report(d, V_FAIL, "bpf",
               "bpf() refused (%s, unprivileged_bpf_disabled=%s); fix: run as root "
               "(or grant CAP_BPF and CAP_PERFMON)",
               strerror(err), val[0] ? val : "?");
    else
        report(d, V_FAIL, "bpf", "bpf() failed: %s; fix: a kernel with CONFIG_BPF_SYSCALL=y",
               strerror(err));
}

static void check_perf_paranoid(struct doctor *d)
{
    char val[16];
    int level;

    if (read_line("/proc/sys/kernel/perf_event_paranoid", val, sizeof(val))) {
        report(d, V_INFO, "perf", "perf_event_paranoid not readable");
        return;
    }
    level = atoi(val);
    if (geteuid() == 0 || level <= 1)
        report(d, V_OK, "perf", "perf_event_paranoid=%d%s", level,
               geteuid() == 0 ? " (root is not limited by it)" : "");
    else
        report(d, V_WARN, "perf",
               "perf_event_paranoid=%d limits non-root users; fix: run as root, or "
               "sysctl kernel.perf_event_paranoid=1",
               level);
}

static void check_lockdown(struct doctor *d)
{
    char val[128];

    if (read_line("/sys/kernel/security/lockdown", val, sizeof(val))) {
        report(d, V_INFO, "lockdown",
               "unknown (securityfs not mounted or no lockdown LSM); assumed none");
        return;
    }
    if (strstr(val, "[confidentiality]"))
        report(d, V_FAIL, "lockdown",
               "confidentiality mode blocks BPF reads of kernel memory; fix: boot with "
               "lockdown=integrity or none");
    else if (strstr(val, "[integrity]"))
        report(d, V_OK, "lockdown", "integrity (tracing still allowed)");
    else
        report(d, V_OK, "lockdown", "none");
}

/* Where the service listens, the way Perfetto's clients choose (spec 2.5). */
static void socket_path(const char *env, const char *run_name, const char *tmp_name, char *buf,
                        size_t len)
{
    const char *e = getenv(env);

    if (e && *e)
        snprintf(buf, len, "%s", e);
    else if (access("/run/perfetto/", X_OK) == 0)
        snprintf(buf, len, "/run/perfetto/%s", run_name);
    else
        snprintf(buf, len, "%s", tmp_name);
}

/* Return: 0 when something accepts connections at @path, else -errno. */
static int probe_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    socklen_t alen;
    int fd, err = 0;

    if (n >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, n);
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, alen))
        err = -errno;
    close(fd);
    return err;
}

static void check_sockets(struct doctor *d)
{
    char prod[256], cons[256];
    int perr, cerr;

    socket_path("PERFETTO_PRODUCER_SOCK_NAME", "traced-producer.sock", "/tmp/perfetto-producer",
                prod, sizeof(prod));
    socket_path("PERFETTO_CONSUMER_SOCK_NAME", "traced-consumer.sock", "/tmp/perfetto-consumer",
                cons, sizeof(cons));
    cerr = probe_unix(cons);
    perr = probe_unix(prod);
    if (!cerr)
        report(d, V_OK, "daemon", "a service answers on the consumer socket %s", cons);
    else if (cerr == -EACCES || cerr == -EPERM)
        report(d, V_WARN, "daemon",
               "consumer socket %s exists but is not ours to use; fix: run as root or join "
               "its group",
               cons);
    else
        report(d, V_INFO, "daemon",
               "no service on %s (%s); 'sudo tracebpf record' runs an embedded one", cons,
               strerror(-cerr));
    if (!perr)
        report(d, V_OK, "producers", "apps can connect on the producer socket %s", prod);
    else
        report(d, V_INFO, "producers", "no service on the producer socket %s (%s)", prod,
               strerror(-perr));
}

static int run_doctor(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    struct doctor d = {0};
    int opt;

    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return tb_cli_getopt_error("doctor", opt, argv);
    if (optind != argc)
        return tb_cli_usage_error("doctor", "takes no arguments");

    printf("tracebpf doctor: checking this host (running as %s)\n",
           geteuid() == 0 ? "root" : "a normal user");
    check_kernel(&d);
    check_btf(&d);
    check_tracefs(&d);
    check_bpf(&d);
    check_perf_paranoid(&d);
    check_lockdown(&d);
    check_sockets(&d);
    if (d.failures) {
        printf("\nRecording will not work: fix the %d FAIL line%s above.\n", d.failures,
               d.failures == 1 ? "" : "s");
        return TB_CLI_EXIT_FAIL;
    }
    printf("\nRecording will work%s.\n", d.warnings ? " (see the warnings above)" : "");
    return TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_doctor = {
    .name = "doctor",
    .summary = "check this host can record (kernel, BTF, tracefs, BPF, sockets)",
    .help = "usage: tracebpf doctor\n"
            "\n"
            "Checks what recording needs and prints one line per item: ok, info,\n"
            "warn or FAIL, each FAIL with the fix.\n"
            "\n"
            "  kernel     version (5.8+ for BPF ring buffers)\n"
            "  btf        /sys/kernel/btf/vmlinux, needed by the CO-RE BPF programs\n"
            "  tracefs    mounted and writable (private ftrace instances)\n"
            "  bpf        a trivial bpf() map creation succeeds\n"
            "  perf       kernel.perf_event_paranoid\n"
            "  lockdown   kernel lockdown mode (confidentiality blocks BPF)\n"
            "  daemon     whether a service answers on the consumer socket\n"
            "  producers  whether apps can reach the producer socket\n"
            "\n"
            "Socket paths follow Perfetto: $PERFETTO_CONSUMER_SOCK_NAME and\n"
            "$PERFETTO_PRODUCER_SOCK_NAME, else /run/perfetto/traced-{consumer,producer}.sock\n"
            "when /run/perfetto/ exists, else /tmp/perfetto-{consumer,producer}.\n"
            "\n"
            "Exit status: 0 when recording would work, 1 otherwise.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf doctor\n"
            "  PERFETTO_CONSUMER_SOCK_NAME=/tmp/my.sock tracebpf doctor\n",
    .run = run_doctor,
};
