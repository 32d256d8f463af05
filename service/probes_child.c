/*
 * probes_child.c - keeps the kernel producer (traced-bpf-probes) running
 * as a child of the service: spawn it pointed at our producer socket,
 * watch it through a pidfd on the loop, restart it with back-off when it
 * dies, and stop it on shutdown.
 */
#include "service/service.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"

#define PROBES_NAME    "traced-bpf-probes"
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 30000u
#define HEALTHY_RUN_MS 60000u

extern char **environ;

struct tb_svc_probes {
    struct tb_loop *loop;
    char path[PATH_MAX];
    char *sock_env;
    pid_t pid;
    int pidfd;
    uint32_t backoff_ms;
    uint64_t started_ms;
    uint64_t restart_timer;
};

static bool find_binary(const char *dir, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n;

    if (dir && snprintf(out, len, "%s/" PROBES_NAME, dir) < (int)len && !access(out, X_OK))
        return true;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(out, len, "%s/" PROBES_NAME, self) < (int)len && !access(out, X_OK))
                return true;
            /* Build trees keep the probes in a sibling folder. */
            if (snprintf(out, len, "%s/../producers/ftrace/" PROBES_NAME, self) < (int)len &&
                !access(out, X_OK))
                return true;
        }
    }
    {
        const char *path = getenv("PATH");
        char *copy, *save = NULL, *tok;
        bool found = false;

        if (!path)
            return false;
        copy = strdup(path);
        for (tok = copy ? strtok_r(copy, ":", &save) : NULL; tok && !found;
             tok = strtok_r(NULL, ":", &save))
            found = snprintf(out, len, "%s/" PROBES_NAME, tok) < (int)len && !access(out, X_OK);
        free(copy);
        return found;
    }
}

static int spawn(struct tb_svc_probes *pr);

static void on_restart(void *ctx)
{
    struct tb_svc_probes *pr = ctx;

    pr->restart_timer = 0;
    spawn(pr);
}

static void on_exit_fd(void *ctx, int fd, uint32_t events)
{
    struct tb_svc_probes *pr = ctx;
    uint64_t ran = tb_loop_now_ms() - pr->started_ms;
    int status = 0;

    tb_loop_del_fd(pr->loop, fd);
    close(fd);
    pr->pidfd = -1;
    waitpid(pr->pid, &status, 0);
    pr->pid = 0;
    if (ran >= HEALTHY_RUN_MS)
        pr->backoff_ms = BACKOFF_MIN_MS;
    tb_warn("svc: %s exited (%s %d) after %llu ms, restarting in %u ms", PROBES_NAME,
            WIFSIGNALED(status) ? "signal" : "status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), (unsigned long long)ran,
            pr->backoff_ms);
    tb_loop_add_timer(pr->loop, pr->backoff_ms, 0, on_restart, pr, &pr->restart_timer);
    pr->backoff_ms = pr->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pr->backoff_ms * 2;
}

static int spawn(struct tb_svc_probes *pr)
{
    char *argv[] = {pr->path, NULL};
    char **env;
    size_t n = 0, j = 0;
    int err;

    while (environ[n])
        n++;
    env = calloc(n + 2, sizeof(*env));
    if (!env)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PERFETTO_PRODUCER_SOCK_NAME=", 28))
            env[j++] = environ[i];
    env[j++] = pr->sock_env;
    {
        /* The daemon blocks SIGTERM/SIGINT (signalfd) and ignores SIGPIPE:
         * the child must start with neither, or it could not be stopped. */
        posix_spawnattr_t attr;
        sigset_t none, defs;

        sigemptyset(&none);
        sigemptyset(&defs);
        sigaddset(&defs, SIGPIPE);
        sigaddset(&defs, SIGTERM);
        sigaddset(&defs, SIGINT);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defs);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        err = posix_spawn(&pr->pid, pr->path, NULL, &attr, argv, env);
        posix_spawnattr_destroy(&attr);
    }
    free(env);
    if (err) {
        tb_err("svc: cannot start %s: %s", pr->path, strerror(err));
        tb_loop_add_timer(pr->loop, pr->backoff_ms, 0, on_restart, pr, &pr->restart_timer);
        return -err;
    }
    pr->started_ms = tb_loop_now_ms();
    pr->pidfd = (int)syscall(SYS_pidfd_open, pr->pid, 0);
    if (pr->pidfd < 0 || tb_loop_add_fd(pr->loop, pr->pidfd, TB_LOOP_IN, on_exit_fd, pr)) {
        tb_warn("svc: cannot watch %s (pid %d); it will not be restarted", PROBES_NAME,
                (int)pr->pid);
        if (pr->pidfd >= 0)
            close(pr->pidfd);
        pr->pidfd = -1;
    }
    tb_info("svc: started %s (pid %d)", pr->path, (int)pr->pid);
    return 0;
}

int tb_svc_probes_start(struct tb_loop *loop, const char *dir, const char *producer_sock,
                        struct tb_svc_probes **out)
{
    struct tb_svc_probes *pr = calloc(1, sizeof(*pr));

    *out = NULL;
    if (!pr)
        return -ENOMEM;
    if (!find_binary(dir, pr->path, sizeof(pr->path))) {
        tb_warn("svc: %s not found next to the service or in PATH; kernel data sources will "
                "be missing (use --no-probes to silence this)",
                PROBES_NAME);
        free(pr);
        return 0;
    }
    if (asprintf(&pr->sock_env, "PERFETTO_PRODUCER_SOCK_NAME=%s", producer_sock) < 0) {
        free(pr);
        return -ENOMEM;
    }
    pr->loop = loop;
    pr->pidfd = -1;
    pr->backoff_ms = BACKOFF_MIN_MS;
    spawn(pr);
    *out = pr;
    return 0;
}

void tb_svc_probes_stop(struct tb_svc_probes *pr)
{
    if (!pr)
        return;
    if (pr->restart_timer)
        tb_loop_cancel_timer(pr->loop, pr->restart_timer);
    if (pr->pidfd >= 0) {
        tb_loop_del_fd(pr->loop, pr->pidfd);
        close(pr->pidfd);
    }
    if (pr->pid > 0) {
        kill(pr->pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
            if (waitpid(pr->pid, NULL, WNOHANG) == pr->pid) {
                pr->pid = 0;
                break;
            }
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
        if (pr->pid > 0) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, NULL, 0);
        }
    }
    free(pr->sock_env);
    free(pr);
}
