/*
 * open_server.h - a one-file HTTP server on 127.0.0.1 that hands a trace to
 * the Perfetto UI. The UI runs on https://ui.perfetto.dev and fetches the
 * trace cross-origin, so every answer carries the CORS headers it needs and
 * preflight (OPTIONS) requests are answered. The server stops after the file
 * was sent once in full.
 */
#ifndef TB_CONSUMER_OPEN_SERVER_H
#define TB_CONSUMER_OPEN_SERVER_H

#include <signal.h>
#include <stdint.h>

/* The origin allowed to read the trace. */
#define TB_OPEN_UI_ORIGIN "https://ui.perfetto.dev"

struct tb_open_server;

/*
 * tb_open_server_new() - open @path and listen on 127.0.0.1:@port.
 * @path: the trace file; its base name becomes the URL path.
 * @port: TCP port, 0 for any free port (see tb_open_server_port()).
 * @out:  receives the server; free with tb_open_server_free().
 * Return: 0, or negative errno (-ENOENT/-EACCES for the file, -EADDRINUSE
 * for the port), logged once here.
 */
int tb_open_server_new(const char *path, uint16_t port, struct tb_open_server **out);

/*
 * tb_open_server_port() - the port actually bound.
 */
uint16_t tb_open_server_port(const struct tb_open_server *srv);

/*
 * tb_open_server_path() - the URL path the file is served at ("/<name>",
 * percent-encoded). Return: owned by @srv, valid until it is freed.
 */
const char *tb_open_server_path(const struct tb_open_server *srv);

/*
 * tb_open_server_ui_url() - write the URL that opens the trace in the
 * Perfetto UI into @buf. Return: @buf.
 */
const char *tb_open_server_ui_url(const struct tb_open_server *srv, char *buf, unsigned long len);

/*
 * tb_open_server_run() - serve requests one at a time until the file was
 * sent in full once, or until *@stop becomes non-zero (checked at least
 * every 200 ms; a signal handler may set it).
 * Return: 0 when the file was fetched, -EINTR when stopped, other negative
 * errno on a listening-socket failure. Per-connection errors are logged at
 * debug level and do not end the run.
 * Context: blocks the calling thread.
 */
int tb_open_server_run(struct tb_open_server *srv, volatile sig_atomic_t *stop);

/*
 * tb_open_server_free() - close the socket and the file. Accepts NULL.
 */
void tb_open_server_free(struct tb_open_server *srv);

#endif /* TB_CONSUMER_OPEN_SERVER_H */
