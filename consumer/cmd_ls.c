/*
 * cmd_ls.c - "tracebpf ls": the producers connected to the daemon (name,
 * pid, uid) and the data sources each offers (QueryServiceState), i.e. what
 * a config can ask for.
 */
#include "common/consumer_client.h"
#include "consumer/cli.h"
#include "consumer/cli_connect.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define RPC_TIMEOUT_MS 5000

static void print_sources(const Perfetto__Protos__TracingServiceState *st, int32_t producer)
{
    size_t i, n = 0;

    for (i = 0; i < st->n_data_sources; i++) {
        const Perfetto__Protos__TracingServiceState__DataSource *d = st->data_sources[i];

        if (d->producer_id != producer || !d->ds_descriptor)
            continue;
        printf("    %s\n", d->ds_descriptor->name ?: "(unnamed)");
        n++;
    }
    if (!n)
        printf("    (no data sources)\n");
}

static int run_ls(int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    Perfetto__Protos__TracingServiceState *st = NULL;
    struct tb_cc *cc = NULL;
    int opt, err;
    size_t i;

    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return tb_cli_getopt_error("ls", opt, argv);
    if (optind != argc)
        return tb_cli_usage_error("ls", "takes no arguments");
    if (tb_cli_connect("ls", &cc))
        return TB_CLI_EXIT_FAIL;
    err = tb_cc_query_state(cc, RPC_TIMEOUT_MS, &st);
    if (err) {
        fprintf(stderr, "tracebpf ls: QueryServiceState failed: %s\n", strerror(-err));
        tb_cc_free(cc);
        return TB_CLI_EXIT_FAIL;
    }
    if (st->tracing_service_version)
        printf("service: %s, %d session(s), %d started\n", st->tracing_service_version,
               st->num_sessions, st->num_sessions_started);
    printf("%zu producer(s)\n", st->n_producers);
    for (i = 0; i < st->n_producers; i++) {
        const Perfetto__Protos__TracingServiceState__Producer *p = st->producers[i];

        printf("  %s (id %d, pid %d, uid %d%s%s)\n", p->name ?: "(unnamed)", p->id, p->pid, p->uid,
               p->sdk_version ? ", " : "", p->sdk_version ?: "");
        print_sources(st, p->id);
    }
    perfetto__protos__tracing_service_state__free_unpacked(st, NULL);
    tb_cc_free(cc);
    return TB_CLI_EXIT_OK;
}

const struct tb_cli_cmd tb_cli_cmd_ls = {
    .name = "ls",
    .summary = "producers connected to the daemon and their data sources",
    .help = "usage: tracebpf ls\n"
            "\n"
            "Lists the producers connected to the traced-bpf daemon (name, id, pid,\n"
            "uid) and the data sources each one offers, i.e. what a config can ask\n"
            "for. The socket is $PERFETTO_CONSUMER_SOCK_NAME or the default.\n"
            "\n"
            "When no daemon answers: one line saying so, exit 1.\n"
            "\n"
            "EXAMPLES\n"
            "  sudo tracebpf ls\n",
    .run = run_ls,
};
