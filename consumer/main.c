/*
 * main.c - the tracebpf entry point: the subcommand table and the
 * dispatcher ("tracebpf <command> [args]", --help, --version, help <cmd>).
 * Each command lives in its own consumer/cmd_<name>.c; this file only
 * finds it and hands over argv.
 */
#include "consumer/cli.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static const struct tb_cli_cmd *const commands[] = {
    &tb_cli_cmd_record, &tb_cli_cmd_export, &tb_cli_cmd_open,   &tb_cli_cmd_info,
    &tb_cli_cmd_stats,  &tb_cli_cmd_ls,     &tb_cli_cmd_doctor, NULL,
};

static const struct tb_cli_cmd *find_command(const char *name)
{
    size_t i;

    for (i = 0; commands[i]; i++) {
        if (!strcmp(commands[i]->name, name))
            return commands[i];
    }
    return NULL;
}

static void print_main_help(FILE *out)
{
    size_t i;

    fprintf(out, "usage: tracebpf [--version] [--help] <command> [args]\n"
                 "\n"
                 "Record, inspect and convert system traces (Perfetto format).\n"
                 "\n"
                 "commands:\n");
    for (i = 0; commands[i]; i++)
        fprintf(out, "  %-8s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\n"
                 "'tracebpf help <command>' or 'tracebpf <command> --help' describes one command.\n"
                 "\n"
                 "EXAMPLES\n"
                 "  sudo tracebpf doctor                   # can this host record?\n"
                 "  sudo tracebpf record -t 10s sched irq  # 10 s system trace to trace.pftrace\n"
                 "  tracebpf open trace.pftrace            # view it in the Perfetto UI\n"
                 "  tracebpf export --format json trace.pftrace -o trace.json\n");
}

/* True when argv asks for help before any "--" end-of-options marker. */
static bool wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return false;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    const struct tb_cli_cmd *cmd;
    const char *name;

    tb_log_set_prefix("tracebpf");
    if (argc < 2) {
        print_main_help(stderr);
        return TB_CLI_EXIT_USAGE;
    }
    name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        print_main_help(stdout);
        return TB_CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("tracebpf %s\n", TB_VERSION);
        return TB_CLI_EXIT_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            print_main_help(stdout);
            return TB_CLI_EXIT_OK;
        }
        cmd = find_command(argv[2]);
        if (!cmd) {
            fprintf(stderr, "tracebpf: unknown command '%s' (see 'tracebpf --help')\n", argv[2]);
            return TB_CLI_EXIT_USAGE;
        }
        fputs(cmd->help, stdout);
        return TB_CLI_EXIT_OK;
    }
    if (name[0] == '-') {
        fprintf(stderr, "tracebpf: unknown option '%s' (see 'tracebpf --help')\n", name);
        return TB_CLI_EXIT_USAGE;
    }
    cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "tracebpf: unknown command '%s' (see 'tracebpf --help')\n", name);
        return TB_CLI_EXIT_USAGE;
    }
    if (wants_help(argc - 1, argv + 1)) {
        fputs(cmd->help, stdout);
        return TB_CLI_EXIT_OK;
    }
    tb_cli_getopt_reset();
    return cmd->run(argc - 1, argv + 1);
}
