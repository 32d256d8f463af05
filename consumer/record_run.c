/*
 * record_run.c - runs a "tracebpf record" session: connects to the daemon or
 * starts an embedded service (with the kernel producer) when none answers,
 * names requested data sources no producer offers, shows one-line progress
 * on a terminal, stops cleanly on Ctrl-C (flush, then disable), reads the
 * buffers into FILE.tmp (or lets the service stream into it for
 * write_into_file) and renames it to FILE only when complete. A read that
 * fails after some packets keeps them as FILE.partial, never as FILE.
 */
#include "consumer/record_run.h"

#include "common/consumer_client.h"
#include "common/ipc_sock.h"
#include "common/log.h"
#include "consumer/cli.h"
#include "consumer/record_summary.h"
#include "service/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 3000
#define RPC_TIMEOUT_MS     5000
/* ReadBuffers fails only after this long without a reply, however long it runs. */
#define READ_IDLE_TIMEOUT_MS 60000
#define PROBES_WAIT_MS       3000
#define PROGRESS_PERIOD_MS   500
/* How long past duration_ms the service may take before we stop it. */
#define STOP_GRACE_MS 15000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The build tree keeps the probes in ../producers/ftrace next to consumer/. */
static const char *probes_dir(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n <= 0)
        return NULL;
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    if (snprintf(buf, len, "%s/../producers/ftrace", self) >= (int)len || access(buf, X_OK))
        snprintf(buf, len, "%s", self);
    return buf;
}

static int connect_service(struct tb_cc **cc, struct tb_svc_embedded **emb)
{
    const char *name = tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER);
    struct tb_svc_embedded_opts eo = {.start_probes = true};
    char dir[PATH_MAX];
    int err;

    err = tb_cc_connect(NULL, CONNECT_TIMEOUT_MS, cc);
    if (!err)
        return 0;
    if (err == -EACCES) {
        fprintf(stderr,
                "tracebpf record: permission denied on %s: run as root or join group "
                "tracebpf\n",
                name);
        return err;
    }
    if (err != -ENOENT && err != -ECONNREFUSED) {
        fprintf(stderr, "tracebpf record: cannot connect to %s: %s\n", name, strerror(-err));
        return err;
    }
    fprintf(stderr,
            "tracebpf record: no traced-bpf daemon answered on %s; recording with an "
            "embedded service\n",
            name);
    eo.probes_dir = probes_dir(dir, sizeof(dir));
    /* The private service's start-up chatter is not the user's business. */
    tb_log_set_level(TB_LOG_WARN);
    err = tb_svc_embedded_start(&eo, emb);
    if (err) {
        fprintf(stderr, "tracebpf record: cannot start the embedded service: %s\n", strerror(-err));
        return err;
    }
    err = tb_cc_connect(tb_svc_embedded_consumer_sock(*emb), CONNECT_TIMEOUT_MS, cc);
    if (err)
        fprintf(stderr, "tracebpf record: cannot connect to the embedded service: %s\n",
                strerror(-err));
    return err;
}

static bool offered(const Perfetto__Protos__TracingServiceState *st, const char *name)
{
    size_t i;

    for (i = 0; st && i < st->n_data_sources; i++) {
        const Perfetto__Protos__DataSourceDescriptor *d = st->data_sources[i]->ds_descriptor;

        if (d && d->name && !strcmp(d->name, name))
            return true;
    }
    return false;
}

/*
 * Names each requested data source no producer offers. An embedded service's
 * probes child needs a moment to connect, so wait for it a little.
 */
static void check_sources(struct tb_cc *cc, const Perfetto__Protos__TraceConfig *cfg, bool wait)
{
    Perfetto__Protos__TracingServiceState *st = NULL;
    uint64_t deadline = now_ms() + (wait ? PROBES_WAIT_MS : 0);
    size_t i, missing;

    for (;;) {
        if (st)
            perfetto__protos__tracing_service_state__free_unpacked(st, NULL);
        st = NULL;
        if (tb_cc_query_state(cc, RPC_TIMEOUT_MS, &st))
            return;
        for (i = 0, missing = 0; i < cfg->n_data_sources; i++) {
            const Perfetto__Protos__DataSourceConfig *c = cfg->data_sources[i]->config;

            missing += c && c->name && !offered(st, c->name);
        }
        if (!missing || now_ms() >= deadline)
            break;
        usleep(100 * 1000);
    }
    for (i = 0; i < cfg->n_data_sources; i++) {
        const Perfetto__Protos__DataSourceConfig *c = cfg->data_sources[i]->config;

        if (c && c->name && !offered(st, c->name))
            fprintf(stderr, "tracebpf record: %s: no producer offers it (is %s running?)\n",
                    c->name,
                    strcmp(c->name, "track_event") ? "traced-bpf-probes"
                                                   : "an app "
                                                     "built with libtracebpf");
    }
    perfetto__protos__tracing_service_state__free_unpacked(st, NULL);
}

static void show_progress(struct tb_cc *cc, uint64_t elapsed_ms)
{
    Perfetto__Protos__TraceStats *st = NULL;
    uint64_t bytes = 0, chunks = 0, lost = 0;
    char hb[32];
    size_t i;

    if (tb_cc_get_stats(cc, 1000, &st))
        return;
    for (i = 0; i < st->n_buffer_stats; i++) {
        const Perfetto__Protos__TraceStats__BufferStats *b = st->buffer_stats[i];

        bytes += b->bytes_written;
        chunks += b->chunks_written;
        lost += b->chunks_overwritten + b->chunks_discarded + b->abi_violations;
    }
    fprintf(stderr,
            "\r\033[Krecording %.1fs  %s written  %" PRIu64 " chunks  %" PRIu64 " chunks lost",
            (double)elapsed_ms / 1000.0, tb_cli_human_bytes(bytes, hb, sizeof(hb)), chunks, lost);
    fflush(stderr);
    perfetto__protos__trace_stats__free_unpacked(st, NULL);
}

/* Waits for the session's end; stops it on Ctrl-C or when overdue. */
static int wait_session(struct tb_cc *cc, const Perfetto__Protos__TraceConfig *cfg)
{
    bool tty = isatty(STDERR_FILENO), done = false, stopping = false;
    uint64_t start = now_ms(), last = 0, elapsed;
    int ret = 0;

    while (!done) {
        ret = tb_cc_wait(cc, 100, &done);
        if (done)
            break;
        elapsed = now_ms() - start;
        if (!stopping && (stop_requested || (cfg->has_duration_ms && cfg->duration_ms &&
                                             elapsed > cfg->duration_ms + STOP_GRACE_MS))) {
            /* A second Ctrl-C kills us the usual way. */
            signal(SIGINT, SIG_DFL);
            if (tty)
                fprintf(stderr, "\n");
            fprintf(stderr, "tracebpf record: stopping: flushing and reading what was "
                            "recorded\n");
            stopping = true;
            if (tb_cc_flush(cc, 0))
                fprintf(stderr, "tracebpf record: flush incomplete; some recent data may be "
                                "missing\n");
            tb_cc_disable(cc, RPC_TIMEOUT_MS);
            continue;
        }
        if (tty && !stopping && elapsed - last >= PROGRESS_PERIOD_MS) {
            last = elapsed;
            show_progress(cc, elapsed);
        }
    }
    if (tty && !stopping)
        fprintf(stderr, "\r\033[K");
    if (ret == -EIO)
        fprintf(stderr, "tracebpf record: the service ended the session: %s\n",
                tb_cc_error(cc) ?: "no reason given");
    else if (ret)
        fprintf(stderr, "tracebpf record: lost the connection to the service: %s\n",
                strerror(-ret));
    return ret;
}

static void print_summary(const char *path)
{
    struct tb_record_summary *s = NULL;
    struct stat st;
    char hb[32];
    int err;

    printf("trace:       %s (%s)\n", path,
           tb_cli_human_bytes(stat(path, &st) ? 0 : (uint64_t)st.st_size, hb, sizeof(hb)));
    err = tb_record_summary_scan(path, &s);
    if (s)
        tb_record_summary_print(s, stdout);
    if (err)
        fprintf(stderr, "tracebpf record: %s: reading it back failed: %s\n", path, strerror(-err));
    tb_record_summary_free(s);
    printf("open it with: tracebpf open %s\n", path);
}

/*
 * A failed read must not destroy what did arrive, nor leave a FILE that
 * looks whole: the records written so far move to FILE.partial.
 */
static void keep_partial(const char *tmp, const char *out_path, int err, uint64_t packets,
                         uint64_t bytes)
{
    char partial[PATH_MAX + 16];

    snprintf(partial, sizeof(partial), "%s.partial", out_path);
    if (!packets || rename(tmp, partial)) {
        fprintf(stderr,
                "tracebpf record: reading the buffers failed after %" PRIu64 " packets (%" PRIu64
                " bytes): %s\n",
                packets, bytes, strerror(-err));
        return;
    }
    fprintf(stderr,
            "tracebpf record: reading the buffers failed after %" PRIu64 " packets (%" PRIu64
            " bytes): %s; they are kept in %s, %s was not written\n",
            packets, bytes, strerror(-err), partial, out_path);
}

int tb_record_run(const Perfetto__Protos__TraceConfig *cfg, const char *out_path)
{
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    bool streaming = cfg->has_write_into_file && cfg->write_into_file;
    struct tb_svc_embedded *emb = NULL;
    struct tb_cc *cc = NULL;
    char tmp[PATH_MAX];
    int fd = -1, err, rc = TB_CLI_EXIT_FAIL;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", out_path) >= (int)sizeof(tmp)) {
        fprintf(stderr, "tracebpf record: output path too long\n");
        return TB_CLI_EXIT_USAGE;
    }
    stop_requested = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (connect_service(&cc, &emb))
        goto out;
    check_sources(cc, cfg, emb != NULL);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "tracebpf record: cannot create %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    err = tb_cc_enable(cc, cfg, streaming ? fd : -1);
    if (err) {
        fprintf(stderr, "tracebpf record: EnableTracing failed: %s\n", strerror(-err));
        goto out;
    }
    if (wait_session(cc, cfg))
        goto out;
    if (!streaming) {
        uint64_t packets = 0, bytes = 0;

        err = tb_cc_read_buffers(cc, fd, READ_IDLE_TIMEOUT_MS, &packets, &bytes);
        if (err) {
            keep_partial(tmp, out_path, err, packets, bytes);
            goto out;
        }
    }
    tb_cc_free_buffers(cc, RPC_TIMEOUT_MS);
    if (fsync(fd) && errno != EINVAL) {
        fprintf(stderr, "tracebpf record: writing %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, out_path)) {
        fprintf(stderr, "tracebpf record: cannot rename %s to %s: %s\n", tmp, out_path,
                strerror(errno));
        goto out;
    }
    rc = TB_CLI_EXIT_OK;
out:
    if (fd >= 0)
        close(fd);
    if (rc != TB_CLI_EXIT_OK)
        unlink(tmp);
    tb_cc_free(cc);
    tb_svc_embedded_stop(emb);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc == TB_CLI_EXIT_OK)
        print_summary(out_path);
    return rc;
}
