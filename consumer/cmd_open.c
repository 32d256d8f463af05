/*
 * cmd_open.c - "tracebpf open FILE [--port N]": serve a trace on loopback
 * and print the Perfetto UI URL that loads it; exit once it was fetched or
 * on Ctrl-C.
 */
#include "consumer/cli.h"
#include "consumer/open_server.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = 1;
}

static int run_open(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    struct sigaction sa = {.sa_handler = on_signal};
    struct tb_open_server *srv = NULL;
    uint64_t port = 9001;
    char url[1400];
    int opt, err;

    while ((opt = getopt_long(argc, argv, ":p:", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (tb_cli_parse_uint(optarg, 65535, &port) || port == 0)
                return tb_cli_usage_error("open", "bad port '%s' (1-65535)", optarg);
            break;
        default:
            return tb_cli_getopt_error("open", opt, argv);
        }
    }
    if (optind != argc - 1)
        return tb_cli_usage_error("open", "expects exactly one trace file");

    if (tb_open_server_new(argv[optind], (uint16_t)port, &srv))
        return TB_CLI_EXIT_FAIL;

    /* No SA_RESTART: Ctrl-C must interrupt poll() at once. */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("Serving %s at http://127.0.0.1:%u%s\n", argv[optind], tb_open_server_port(srv),
           tb_open_server_path(srv));
    printf("Open this URL in a browser (Ctrl-C to stop):\n\n  %s\n\n",
           tb_open_server_ui_url(srv, url, sizeof(url)));
    fflush(stdout);

    err = tb_open_server_run(srv, &stop_requested);
    tb_open_server_free(srv);
    if (err == -EINTR) {
        fprintf(stderr, "tracebpf open: stopped before the trace was fetched\n");
        return TB_CLI_EXIT_FAIL;
    }
    if (err) {
        fprintf(stderr, "tracebpf open: server failed: %s\n", strerror(-err));
        return TB_CLI_EXIT_FAIL;
    }
    printf("The trace was fetched; exiting.\n");
    return TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_open = {
    .name = "open",
    .summary = "serve a trace to the Perfetto UI and print the URL that opens it",
    .help = "usage: tracebpf open FILE [--port N]\n"
            "\n"
            "Serves FILE at http://127.0.0.1:PORT/<file name> with the CORS headers\n"
            "the Perfetto UI (" TB_OPEN_UI_ORIGIN ") needs to fetch it, and prints\n"
            "the URL that opens it in the UI. Exits after the trace was fetched once,\n"
            "or on Ctrl-C. Only the loopback interface is used: the trace never\n"
            "leaves this machine except to the browser on it.\n"
            "\n"
            "options:\n"
            "  -p, --port N   TCP port on 127.0.0.1 (default 9001)\n"
            "  -h, --help     this text\n"
            "\n"
            "Remote host: forward the port first, e.g. 'ssh -L 9001:127.0.0.1:9001 host'.\n"
            "\n"
            "EXAMPLES\n"
            "  tracebpf open trace.pftrace\n"
            "  tracebpf open --port 9100 /tmp/boot.pftrace\n",
    .run = run_open,
};
