/*
 * cli.h - what the tracebpf subcommands share: the command descriptor the
 * dispatcher in main.c walks, the exit-code convention, and small parsing
 * helpers (durations, sizes, option errors) so every command reports a bad
 * flag the same way.
 *
 * Exit codes: 0 success, 1 the command ran and failed, 2 usage error.
 */
#ifndef TB_CONSUMER_CLI_H
#define TB_CONSUMER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define TB_CLI_EXIT_OK    0
#define TB_CLI_EXIT_FAIL  1
#define TB_CLI_EXIT_USAGE 2

#ifndef TB_VERSION
#define TB_VERSION "0.0.0"
#endif

/*
 * struct tb_cli_cmd - one subcommand.
 * @name:    what the user types after "tracebpf".
 * @summary: one line for "tracebpf --help".
 * @help:    full text for "tracebpf <name> --help": usage, options, EXAMPLES.
 * @run:     entry point; argv[0] is the command name, argv is argc long.
 *           Returns a TB_CLI_EXIT_* code.
 * All strings are static.
 */
struct tb_cli_cmd {
    const char *name;
    const char *summary;
    const char *help;
    int (*run)(int argc, char **argv);
};

extern const struct tb_cli_cmd tb_cli_cmd_record;
extern const struct tb_cli_cmd tb_cli_cmd_export;
extern const struct tb_cli_cmd tb_cli_cmd_open;
extern const struct tb_cli_cmd tb_cli_cmd_info;
extern const struct tb_cli_cmd tb_cli_cmd_doctor;
extern const struct tb_cli_cmd tb_cli_cmd_stats;
extern const struct tb_cli_cmd tb_cli_cmd_ls;

/*
 * tb_cli_usage_error() - print one line "tracebpf <cmd>: <msg> (see ...)" on
 * stderr for a usage mistake.
 * Return: TB_CLI_EXIT_USAGE, so callers can "return tb_cli_usage_error(...)".
 */
int tb_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * tb_cli_getopt_error() - report what getopt_long() rejected (unknown option
 * or missing argument) as one line. Call when getopt_long returned '?' or ':'
 * with opterr = 0 and an optstring starting with ':'.
 * @argv: the argv given to getopt_long (to name long options).
 * Return: TB_CLI_EXIT_USAGE.
 */
int tb_cli_getopt_error(const char *cmd, int opt, char **argv);

/*
 * tb_cli_getopt_reset() - reset getopt_long's global state before a command
 * parses its own argv. Context: not thread-safe (getopt is global).
 */
void tb_cli_getopt_reset(void);

/*
 * tb_cli_parse_duration_ms() - "10s", "500ms", "2m", "1h"; the unit is
 * required so "-t 10" is never silently read as milliseconds.
 * @out: receives milliseconds.
 * Return: 0, or -EINVAL for junk, a missing number or unit, or an overflow.
 */
int tb_cli_parse_duration_ms(const char *s, uint64_t *out);

/*
 * tb_cli_parse_size_kb() - "64mb", "512kb", "1gb", "100b", case-blind;
 * "k"/"m"/"g" alone accepted too; the unit is required. Rounded up to whole
 * KiB.
 * @out: receives kilobytes.
 * Return: 0, or -EINVAL for junk, a missing unit or an overflow.
 */
int tb_cli_parse_size_kb(const char *s, uint64_t *out);

/*
 * tb_cli_parse_uint() - a decimal unsigned integer no larger than @max.
 * Return: 0, or -EINVAL.
 */
int tb_cli_parse_uint(const char *s, uint64_t max, uint64_t *out);

/*
 * tb_cli_human_bytes() - "1.5 MiB" style rendering of @n into @buf.
 * Return: @buf.
 */
const char *tb_cli_human_bytes(uint64_t n, char *buf, unsigned long len);

/*
 * tb_cli_not_available() - the body of a command that needs a part of the
 * system not built yet: one line on stderr.
 * Return: TB_CLI_EXIT_FAIL.
 */
int tb_cli_not_available(const char *cmd, const char *what);

#endif /* TB_CONSUMER_CLI_H */
