/*
 * service.c - assembles a service (service.h): core, endpoints, sockets
 * and their permissions, the probes child.
 *
 * Permissions: the producer socket is 0666 so any app can trace itself;
 * the consumer socket is 0660 and group "tracebpf" when that group exists
 * (the endpoint also checks each peer's credentials).
 */
#include "service/service.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ipc_sock.h"
#include "common/log.h"

#define MAX_PRODUCER_SOCKS 8

struct tb_svc_service {
    struct tb_loop *loop;
    struct tb_svc_core *core;
    struct tb_svc_port *pport;
    struct tb_svc_port *cport;
    struct tb_svc_probes *probes;
    char *paths[MAX_PRODUCER_SOCKS + 1]; /* socket files we created */
    size_t npaths;
};

static void set_perms(const char *path, mode_t mode, const char *group)
{
    char buf[1024];
    struct group gr, *grp = NULL;

    if (group && !getgrnam_r(group, &gr, buf, sizeof(buf), &grp) && grp &&
        chown(path, (uid_t)-1, grp->gr_gid))
        tb_warn("svc: chgrp %s %s: %s", group, path, strerror(errno));
    if (chmod(path, mode))
        tb_warn("svc: chmod %o %s: %s", (unsigned)mode, path, strerror(errno));
}

static int listen_on(struct tb_svc_service *svc, struct tb_svc_port *port, const char *name,
                     mode_t mode, const char *group)
{
    int err = tb_svc_port_listen(port, name);

    if (err) {
        if (err == -EADDRINUSE)
            tb_err("svc: another service is already listening on %s", name);
        return err;
    }
    if (name[0] != '@') {
        set_perms(name, mode, group);
        if (svc->npaths <= MAX_PRODUCER_SOCKS)
            svc->paths[svc->npaths++] = strdup(name);
    }
    tb_info("svc: listening on %s", name);
    return 0;
}

int tb_svc_service_new(struct tb_loop *loop, const struct tb_svc_opts *opts,
                       struct tb_svc_service **out)
{
    const char *pname =
        opts->producer_sock ? opts->producer_sock : tb_ipc_sock_default_name(TB_IPC_SOCK_PRODUCER);
    const char *cname =
        opts->consumer_sock ? opts->consumer_sock : tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER);
    struct tb_svc_service *svc = calloc(1, sizeof(*svc));
    char *list = NULL, *save = NULL, *tok, *first = NULL;
    int err;

    if (!svc)
        return -ENOMEM;
    svc->loop = loop;
    err = tb_svc_core_new(loop, &opts->limits, &svc->core);
    if (!err)
        err = tb_svc_producer_port_new(loop, svc->core, &opts->producer_port, &svc->pport);
    if (!err)
        err = tb_svc_consumer_port_new(loop, svc->core, &opts->consumer_port, &svc->cport);
    if (err)
        goto fail;
    /* The consumer socket first: it is what tells a second daemon to back off. */
    err = listen_on(svc, svc->cport, cname, 0660, "tracebpf");
    if (err)
        goto fail;
    list = strdup(pname);
    if (!list) {
        err = -ENOMEM;
        goto fail;
    }
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok || svc->npaths > MAX_PRODUCER_SOCKS)
            continue;
        err = listen_on(svc, svc->pport, tok, 0666, NULL);
        if (err)
            goto fail;
        if (!first)
            first = tok;
    }
    if (opts->start_probes && first) {
        err = tb_svc_probes_start(loop, opts->probes_dir, first, &svc->probes);
        if (err)
            goto fail;
    }
    free(list);
    *out = svc;
    return 0;
fail:
    free(list);
    tb_svc_service_free(svc);
    return err;
}

void tb_svc_service_free(struct tb_svc_service *svc)
{
    if (!svc)
        return;
    tb_svc_probes_stop(svc->probes);
    /* Endpoints first: their disconnects go through the core. */
    tb_svc_port_free(svc->cport);
    tb_svc_port_free(svc->pport);
    tb_svc_core_free(svc->core);
    for (size_t i = 0; i < svc->npaths; i++) {
        if (svc->paths[i])
            unlink(svc->paths[i]);
        free(svc->paths[i]);
    }
    free(svc);
}

struct tb_svc_core *tb_svc_service_core(struct tb_svc_service *svc)
{
    return svc->core;
}

struct tb_svc_port *tb_svc_service_producer_port(struct tb_svc_service *svc)
{
    return svc->pport;
}

struct tb_svc_port *tb_svc_service_consumer_port(struct tb_svc_service *svc)
{
    return svc->cport;
}
