/*
 * embedded.h - run a whole traced-bpf service inside the calling process,
 * on a thread of its own. This is the CLI's "embedded default": when no
 * daemon answers on the consumer socket, `tracebpf record` starts a private
 * service on private socket paths, points the kernel producer at it, and
 * talks to it as a normal consumer.
 */
#ifndef TB_SERVICE_EMBEDDED_H
#define TB_SERVICE_EMBEDDED_H

#include <stdbool.h>

struct tb_svc_embedded;

struct tb_svc_embedded_opts {
    /*
     * Socket names for the private service (borrowed until the call
     * returns). NULL picks fresh paths in a private directory under
     * $TMPDIR (or /tmp) that tb_svc_embedded_stop() removes.
     */
    const char *producer_sock;
    const char *consumer_sock;
    /* Start traced-bpf-probes as a child pointed at the private service. */
    bool start_probes;
    /* Directory to look for traced-bpf-probes in first; NULL: default lookup. */
    const char *probes_dir;
};

/*
 * tb_svc_embedded_start() - start the service thread and wait until it
 * listens.
 * @opts: may be NULL (private paths, no probes).
 * @out: the handle; stop and free it with tb_svc_embedded_stop().
 * Return: 0, or the service's startup error (e.g. -EADDRINUSE).
 * Context: any thread; the service runs on its own thread and loop.
 */
int tb_svc_embedded_start(const struct tb_svc_embedded_opts *opts, struct tb_svc_embedded **out);

/*
 * tb_svc_embedded_producer_sock() / _consumer_sock() - the names the
 * private service listens on, for PERFETTO_*_SOCK_NAME or a client.
 * Owned by @e, valid until tb_svc_embedded_stop().
 */
const char *tb_svc_embedded_producer_sock(const struct tb_svc_embedded *e);
const char *tb_svc_embedded_consumer_sock(const struct tb_svc_embedded *e);

/*
 * tb_svc_embedded_stop() - shut the service down (sessions end, probes
 * child stopped), join the thread, remove private paths, free @e.
 * Accepts NULL.
 */
void tb_svc_embedded_stop(struct tb_svc_embedded *e);

#endif /* TB_SERVICE_EMBEDDED_H */
