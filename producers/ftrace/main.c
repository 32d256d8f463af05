/*
 * main.c - the traced-bpf-probes executable: flags, signals, the event
 * loop, and the producer (probes_producer.c). SIGTERM/SIGINT stop every
 * running data source the way a StopDataSource would, so BPF links are
 * detached and the ftrace instance removed before exit.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/thread_prio.h"
#include "producers/ftrace/ftrace_instance.h"
#include "producers/ftrace/probes_producer.h"

#ifndef TB_VERSION_STRING
#define TB_VERSION_STRING "0"
#endif

static const char usage[] =
    "Usage: traced-bpf-probes [OPTIONS]\n"
    "The kernel producer of traced-bpf: scheduler, process, irq and syscall events\n"
    "from BPF, other tracefs events from a private ftrace instance, the process\n"
    "tree, system info and /proc counters. Started by traced-bpf; runs as root.\n"
    "\n"
    "  --socket PATH           producer socket (default: $PERFETTO_PRODUCER_SOCK_NAME\n"
    "                          or the system default)\n"
    "  --cleanup-after-crash   remove ftrace instances left by a crashed run, exit\n"
    "  -v, --verbose           debug logging\n"
    "  --version               print the version\n"
    "  -h, --help              this text\n"
    "\n"
    "EXAMPLES\n"
    "  traced-bpf-probes --socket /tmp/tb-producer.sock -v\n"
    "  sudo traced-bpf-probes --cleanup-after-crash\n";

enum { OPT_SOCKET = 256, OPT_CLEANUP, OPT_VERSION };

static void on_signal(void *ctx, int fd, uint32_t events)
{
    struct signalfd_siginfo si;

    (void)events;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        tb_info("probes: signal %u, stopping", si.ssi_signo);
    tb_loop_quit(ctx);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"cleanup-after-crash", no_argument, NULL, OPT_CLEANUP},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct tb_probes_opts po = {0};
    struct tb_probes *p = NULL;
    struct tb_loop *loop = NULL;
    bool cleanup = false;
    int c, err, sfd = -1;
    sigset_t mask;

    tb_log_set_prefix("traced-bpf-probes");
    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SOCKET:
            po.socket = optarg;
            break;
        case OPT_CLEANUP:
            cleanup = true;
            break;
        case 'v':
            tb_log_set_level(TB_LOG_DEBUG);
            break;
        case OPT_VERSION:
            printf("traced-bpf-probes %s\n", TB_VERSION_STRING);
            return 0;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "traced-bpf-probes: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    c = tb_ftrace_cleanup_stale();
    if (c > 0)
        tb_info("probes: removed %d ftrace instance(s) left by a crashed run", c);
    if (cleanup)
        return 0;

    /* Before any thread exists, so the drain threads inherit it. */
    tb_thread_raise_prio(TB_DRAIN_NICE);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    /* Blocked before any thread starts, so only the signalfd sees them. */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        err = -errno;
        tb_err("probes: signalfd: %s", strerror(-err));
        goto out;
    }
    err = tb_loop_new(&loop);
    if (err) {
        tb_err("probes: creating the event loop: %s", strerror(-err));
        goto out;
    }
    err = tb_loop_add_fd(loop, sfd, TB_LOOP_IN, on_signal, loop);
    if (err)
        goto out;
    po.loop = loop;
    err = tb_probes_new(&po, &p);
    if (err)
        goto out;
    err = tb_loop_run(loop);
    if (err)
        tb_err("probes: event loop failed: %s", strerror(-err));
out:
    tb_probes_free(p);
    if (loop && sfd >= 0)
        tb_loop_del_fd(loop, sfd);
    /*
     * The producer client may leave a task posted that frees its own state;
     * run it rather than let tb_loop_free() discard it (and leak).
     */
    if (loop)
        tb_loop_run_once(loop, 0);
    tb_loop_free(loop);
    if (sfd >= 0)
        close(sfd);
    return err ? 1 : 0;
}
