/*
 * main.c - the traced-bpf daemon: parse flags, optionally detach, build the
 * service on one event loop, run until SIGTERM/SIGINT, shut down cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/producer_client.h"
#include "common/ipc_sock.h"
#include "common/log.h"
#include "common/thread_prio.h"
#include "service/service.h"

#ifndef TB_VERSION_STRING
#define TB_VERSION_STRING "0"
#endif

static const char usage[] =
    "Usage: traced-bpf [OPTIONS]\n"
    "\n"
    "The traced-bpf tracing service. Producers (apps, traced-bpf-probes) connect to the\n"
    "producer socket; tracebpf (and Perfetto's own tools) to the consumer socket.\n"
    "Runs in the foreground unless --background is given.\n"
    "\n"
    "Options:\n"
    "  --producer-socket NAME   producer socket (default $PERFETTO_PRODUCER_SOCK_NAME, else\n"
    "                           /run/perfetto/traced-producer.sock or /tmp/perfetto-producer);\n"
    "                           several may be given separated by commas\n"
    "  --consumer-socket NAME   consumer socket (default $PERFETTO_CONSUMER_SOCK_NAME, else\n"
    "                           /run/perfetto/traced-consumer.sock or /tmp/perfetto-consumer)\n"
    "  --no-probes              do not start the kernel producer traced-bpf-probes\n"
    "  --probes-dir DIR         look for traced-bpf-probes in DIR first\n"
    "  --background             detach from the terminal and run as a daemon\n"
    "  --max-producers N        producers connected at once (default 512)\n"
    "  --max-smb-kb N           largest shared memory buffer per producer (default 32768)\n"
    "  --max-commit-entries N   chunks + patches in one CommitData (default 8192)\n"
    "  --max-frame-size N       largest IPC frame in bytes (default 131072)\n"
    "  --max-buffer-mb N        sum of all central buffers (default 4096)\n"
    "  -v, --verbose            debug logging\n"
    "  -h, --help               this text\n"
    "  --version                print the version\n"
    "\n"
    "EXAMPLES\n"
    "  traced-bpf                         # foreground, default sockets, with probes\n"
    "  sudo traced-bpf --background       # as a system daemon\n"
    "  PERFETTO_PRODUCER_SOCK_NAME=/tmp/p.sock PERFETTO_CONSUMER_SOCK_NAME=/tmp/c.sock \\\n"
    "      traced-bpf --no-probes         # private sockets, e.g. for tests\n";

enum {
    OPT_PSOCK = 256,
    OPT_CSOCK,
    OPT_NO_PROBES,
    OPT_PROBES_DIR,
    OPT_BACKGROUND,
    OPT_MAX_PRODUCERS,
    OPT_MAX_SMB,
    OPT_MAX_COMMIT,
    OPT_MAX_FRAME,
    OPT_MAX_BUFFER,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"producer-socket", required_argument, NULL, OPT_PSOCK},
    {"consumer-socket", required_argument, NULL, OPT_CSOCK},
    {"no-probes", no_argument, NULL, OPT_NO_PROBES},
    {"probes-dir", required_argument, NULL, OPT_PROBES_DIR},
    {"background", no_argument, NULL, OPT_BACKGROUND},
    {"max-producers", required_argument, NULL, OPT_MAX_PRODUCERS},
    {"max-smb-kb", required_argument, NULL, OPT_MAX_SMB},
    {"max-commit-entries", required_argument, NULL, OPT_MAX_COMMIT},
    {"max-frame-size", required_argument, NULL, OPT_MAX_FRAME},
    {"max-buffer-mb", required_argument, NULL, OPT_MAX_BUFFER},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int parse_num(const char *flag, const char *s, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    if (errno || !*s || *end || *out == 0) {
        fprintf(stderr, "traced-bpf: %s needs a positive number, got \"%s\"\n", flag, s);
        return -EINVAL;
    }
    return 0;
}

static void on_signal(void *ctx, int fd, uint32_t events)
{
    struct signalfd_siginfo si;

    if (read(fd, &si, sizeof(si)) == sizeof(si))
        tb_info("svc: got signal %u, shutting down", si.ssi_signo);
    tb_loop_quit(ctx);
}

/* Detach before listening, so the probes child and the sockets belong to the daemon. */
static int daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static void notify_ready(void)
{
    const char *s = getenv("TRACED_NOTIFY_FD");
    int fd = s ? atoi(s) : -1;

    if (fd > 2) {
        if (write(fd, "1", 1) < 0)
            tb_warn("svc: TRACED_NOTIFY_FD %d: %s", fd, strerror(errno));
        close(fd);
    }
}

int main(int argc, char **argv)
{
    struct tb_svc_opts opts = {.start_probes = true};
    struct tb_svc_service *svc = NULL;
    struct tb_loop *loop = NULL;
    bool background = false;
    unsigned long long v;
    sigset_t mask;
    int c, err, sfd = -1;

    tb_log_set_prefix("traced-bpf");
    while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_PSOCK:
            opts.producer_sock = optarg;
            break;
        case OPT_CSOCK:
            opts.consumer_sock = optarg;
            break;
        case OPT_NO_PROBES:
            opts.start_probes = false;
            break;
        case OPT_PROBES_DIR:
            opts.probes_dir = optarg;
            break;
        case OPT_BACKGROUND:
            background = true;
            break;
        case OPT_MAX_PRODUCERS:
            if (parse_num("--max-producers", optarg, &v))
                return 2;
            opts.limits.max_producers = (unsigned)v;
            opts.producer_port.max_connections = (size_t)v;
            break;
        case OPT_MAX_SMB:
            if (parse_num("--max-smb-kb", optarg, &v))
                return 2;
            opts.limits.max_smb_bytes = (size_t)v * 1024;
            break;
        case OPT_MAX_COMMIT:
            if (parse_num("--max-commit-entries", optarg, &v))
                return 2;
            opts.limits.max_commit_entries = (unsigned)v;
            break;
        case OPT_MAX_FRAME:
            if (parse_num("--max-frame-size", optarg, &v))
                return 2;
            opts.producer_port.max_frame_size = (size_t)v;
            opts.consumer_port.max_frame_size = (size_t)v;
            break;
        case OPT_MAX_BUFFER:
            if (parse_num("--max-buffer-mb", optarg, &v))
                return 2;
            opts.limits.max_buffer_kb_total = (size_t)v * 1024;
            break;
        case 'v':
            tb_log_set_level(TB_LOG_DEBUG);
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case OPT_VERSION:
            printf("traced-bpf %s\n", TB_VERSION_STRING);
            return 0;
        default:
            fprintf(stderr, "traced-bpf: try --help\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "traced-bpf: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    /* A producer that vanishes mid-write must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if (background) {
        /* Before the loop and signalfd exist: their wakeups belong to one process. */
        err = daemonize();
        if (err)
            goto out;
    }
    err = tb_loop_new(&loop);
    if (err)
        goto out;
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        err = -errno;
        goto out;
    }
    err = tb_loop_add_fd(loop, sfd, TB_LOOP_IN, on_signal, loop);
    if (err)
        goto out;
    err = tb_svc_service_new(loop, &opts, &svc);
    if (err) {
        /* Already logged where it happened. */
        goto out_quiet;
    }
    notify_ready();
    /* Producers get their chunks back only once this loop ran. */
    tb_thread_raise_prio(TB_DRAIN_NICE);
    tb_thread_short_slice(TB_DRAIN_SLICE_US);
    err = tb_loop_run(loop);
out:
    if (err)
        tb_err("svc: %s", strerror(-err));
out_quiet:
    tb_svc_service_free(svc);
    if (sfd >= 0) {
        tb_loop_del_fd(loop, sfd);
        close(sfd);
    }
    tb_loop_free(loop);
    return err ? 1 : 0;
}
