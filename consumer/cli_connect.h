/*
 * cli_connect.h - how the tracebpf commands that talk to the daemon (stats,
 * ls) connect to its consumer socket and say, in one line, why they could
 * not.
 */
#ifndef TB_CONSUMER_CLI_CONNECT_H
#define TB_CONSUMER_CLI_CONNECT_H

struct tb_cc;

/*
 * tb_cli_connect() - connect to the daemon's consumer socket
 * ($PERFETTO_CONSUMER_SOCK_NAME or the default).
 * @cmd: command name for messages ("stats").
 * @out: receives the client; free with tb_cc_free().
 * Return: 0, or negative errno after printing one line on stderr naming the
 * socket and what to do (no daemon, permission denied, ...).
 */
int tb_cli_connect(const char *cmd, struct tb_cc **out);

#endif /* TB_CONSUMER_CLI_CONNECT_H */
