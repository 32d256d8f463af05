/*
 * embedded.c - the in-process service (embedded.h): a thread with its own
 * event loop running a full service on private sockets.
 */
#include "service/embedded.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/thread_prio.h"
#include "common/producer_client.h"
#include "service/service.h"

struct tb_svc_embedded {
    pthread_t thread;
    struct tb_loop *loop;
    struct tb_svc_opts opts;
    char dir[PATH_MAX];
    char psock[PATH_MAX];
    char csock[PATH_MAX];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool ready;
    int err;
};

static void *run(void *arg)
{
    struct tb_svc_embedded *e = arg;
    struct tb_svc_service *svc = NULL;
    int err;

    err = tb_svc_service_new(e->loop, &e->opts, &svc);
    pthread_mutex_lock(&e->lock);
    e->err = err;
    e->ready = true;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (err)
        return NULL;
    /* As the daemon's loop: producers get chunks back only once it ran. */
    tb_thread_raise_prio(TB_DRAIN_NICE);
    tb_thread_short_slice(TB_DRAIN_SLICE_US);
    tb_loop_run(e->loop);
    tb_svc_service_free(svc);
    return NULL;
}

/* What start and stop both undo once the thread is gone. */
static void embedded_free(struct tb_svc_embedded *e)
{
    tb_loop_free(e->loop);
    if (e->dir[0])
        rmdir(e->dir);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
}

int tb_svc_embedded_start(const struct tb_svc_embedded_opts *opts, struct tb_svc_embedded **out)
{
    struct tb_svc_embedded *e = calloc(1, sizeof(*e));
    const char *tmp = getenv("TMPDIR");
    int err;

    if (!e)
        return -ENOMEM;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if (!opts || !opts->producer_sock || !opts->consumer_sock) {
        snprintf(e->dir, sizeof(e->dir), "%s/tracebpf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(e->dir)) {
            err = -errno;
            e->dir[0] = '\0';
            goto fail;
        }
    }
    snprintf(e->psock, sizeof(e->psock), "%s",
             opts && opts->producer_sock ? opts->producer_sock : "");
    snprintf(e->csock, sizeof(e->csock), "%s",
             opts && opts->consumer_sock ? opts->consumer_sock : "");
    if ((!e->psock[0] && snprintf(e->psock, sizeof(e->psock), "%s/producer.sock", e->dir) >=
                             (int)sizeof(e->psock)) ||
        (!e->csock[0] && snprintf(e->csock, sizeof(e->csock), "%s/consumer.sock", e->dir) >=
                             (int)sizeof(e->csock))) {
        err = -ENAMETOOLONG;
        goto fail;
    }
    e->opts.producer_sock = e->psock;
    e->opts.consumer_sock = e->csock;
    e->opts.start_probes = opts && opts->start_probes;
    e->opts.probes_dir = opts ? opts->probes_dir : NULL;
    err = tb_loop_new(&e->loop);
    if (err)
        goto fail;
    err = -pthread_create(&e->thread, NULL, run, e);
    if (err)
        goto fail;
    pthread_mutex_lock(&e->lock);
    while (!e->ready)
        pthread_cond_wait(&e->cond, &e->lock);
    err = e->err;
    pthread_mutex_unlock(&e->lock);
    if (err) {
        pthread_join(e->thread, NULL);
        goto fail;
    }
    *out = e;
    return 0;
fail:
    embedded_free(e);
    return err;
}

const char *tb_svc_embedded_producer_sock(const struct tb_svc_embedded *e)
{
    return e->psock;
}

const char *tb_svc_embedded_consumer_sock(const struct tb_svc_embedded *e)
{
    return e->csock;
}

void tb_svc_embedded_stop(struct tb_svc_embedded *e)
{
    if (!e)
        return;
    tb_loop_quit(e->loop);
    pthread_join(e->thread, NULL);
    embedded_free(e);
}
