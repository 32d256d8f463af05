/*
 * service.h - one whole traced-bpf service on a loop: the core, the
 * producer and consumer endpoints listening on their sockets (with the
 * socket permissions set), and optionally the kernel producer as a child.
 * Used by the daemon's main.c and by the embedded mode (embedded.h).
 */
#ifndef TB_SERVICE_SERVICE_H
#define TB_SERVICE_SERVICE_H

#include <stdbool.h>

#include "service/core.h"
#include "service/ports.h"

struct tb_loop;
struct tb_svc_service;

struct tb_svc_opts {
    /* Socket names; NULL = tb_ipc_sock_default_name(). The producer name
     * may list several sockets separated by commas. Borrowed. */
    const char *producer_sock;
    const char *consumer_sock;
    struct tb_svc_limits limits;
    struct tb_svc_port_opts producer_port;
    struct tb_svc_port_opts consumer_port;
    /* Start traced-bpf-probes as a child and keep it running. */
    bool start_probes;
    /* Where to look for traced-bpf-probes first (NULL: next to this binary). */
    const char *probes_dir;
};

/*
 * tb_svc_service_new() - build the service and start listening.
 * @loop: borrowed, must outlive the service.
 * @opts: copied (strings borrowed until the call returns).
 * @out: the service; free with tb_svc_service_free().
 * Return: 0; -EADDRINUSE when another live service holds a socket; other
 * negative errno. Context: @loop's thread.
 */
int tb_svc_service_new(struct tb_loop *loop, const struct tb_svc_opts *opts,
                       struct tb_svc_service **out);

/*
 * tb_svc_service_free() - stop the probes child, close every connection,
 * free the core and remove the socket files it created. Accepts NULL.
 */
void tb_svc_service_free(struct tb_svc_service *svc);

/* tb_svc_service_core() - the core, owned by @svc. */
struct tb_svc_core *tb_svc_service_core(struct tb_svc_service *svc);

/* tb_svc_service_producer_port() - the producer endpoint, owned by @svc. */
struct tb_svc_port *tb_svc_service_producer_port(struct tb_svc_service *svc);

/* tb_svc_service_consumer_port() - the consumer endpoint, owned by @svc. */
struct tb_svc_port *tb_svc_service_consumer_port(struct tb_svc_service *svc);

/* ---- probes_child.c */
struct tb_svc_probes;

/*
 * tb_svc_probes_start() - run traced-bpf-probes (from @dir, else the
 * directory of this executable, else PATH) with PERFETTO_PRODUCER_SOCK_NAME
 * = @producer_sock, restarting it with back-off (1 s doubling to 30 s)
 * when it dies. If no binary exists, warns once and returns 0 with *@out
 * NULL. Free with tb_svc_probes_stop() (SIGTERM, then SIGKILL after 2 s).
 */
int tb_svc_probes_start(struct tb_loop *loop, const char *dir, const char *producer_sock,
                        struct tb_svc_probes **out);
void tb_svc_probes_stop(struct tb_svc_probes *pr);

#endif /* TB_SERVICE_SERVICE_H */
