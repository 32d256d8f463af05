/*
 * session_file.c - write_into_file: the session streams its packets to the
 * consumer's fd (or to output_path, opened by the service) every
 * file_write_period_ms, so a long trace never sits whole in memory. Stops
 * the session at max_file_size_bytes. With deflate compression, batches of
 * packets are written as one compressed_packets packet each.
 */
#include "service/svc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/trace_frame.h"
#include "service/svc_batch.h"
#include "service/svc_packets.h"

#define DEFAULT_PERIOD_MS 5000u
#define MIN_PERIOD_MS     100u
#define BATCH_BYTES       (1u << 20)

struct file_pass {
    struct tb_svc_session *s;
    struct tb_svc_batch batch;
    bool full;
};

/* Writes @n bytes of Trace records, compressed or not. */
static int emit(struct tb_svc_session *s, const uint8_t *data, size_t n)
{
    uint8_t *pkt;
    size_t len;
    int err;

    if (!n)
        return 0;
    if (!s->compress) {
        err = tb_tframe_write_all(s->out_fd, data, n);
        if (!err)
            s->file_bytes += n;
        return err;
    }
    err = tb_svc_pkt_compressed(s->core->own_uid, data, n, &pkt, &len);
    if (err)
        return err;
    err = tb_tframe_write(s->out_fd, pkt, len, &s->file_bytes);
    free(pkt);
    return err;
}

static int flush_batch(struct file_pass *fp)
{
    int err = emit(fp->s, fp->batch.buf, fp->batch.len);

    fp->batch.len = 0;
    return err;
}

static int on_packet(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    struct file_pass *fp = ctx;
    struct tb_svc_session *s = fp->s;
    size_t need = tb_svc_batch_record_size(sl, n);
    int err;

    if (s->max_file_bytes && s->file_bytes + fp->batch.len + need > s->max_file_bytes) {
        fp->full = true;
        return -EFBIG;
    }
    err = tb_svc_batch_add(&fp->batch, sl, n);
    if (err)
        return err;
    return fp->batch.len >= BATCH_BYTES ? flush_batch(fp) : 0;
}

int tb_svc_session_file_write(struct tb_svc_session *s)
{
    struct file_pass fp = {.s = s};
    int err, err2;

    if (s->out_fd < 0)
        return -EBADF;
    err = tb_svc_session_read(s, on_packet, &fp);
    err2 = flush_batch(&fp);
    tb_svc_batch_free(&fp.batch);
    if (fp.full) {
        tb_info("svc: session %llu reached max_file_size_bytes (%llu), stopping",
                (unsigned long long)s->id, (unsigned long long)s->max_file_bytes);
        tb_svc_session_disable(s, false);
        return 0;
    }
    if (!err)
        err = err2;
    if (err)
        tb_err("svc: session %llu: writing the trace file failed: %s", (unsigned long long)s->id,
               strerror(-err));
    return err;
}

static void on_period(void *ctx)
{
    tb_svc_session_file_write(ctx);
}

int tb_svc_session_file_start(struct tb_svc_session *s)
{
    const Perfetto__Protos__TraceConfig *cfg = s->cfg;
    uint32_t period = DEFAULT_PERIOD_MS;

    if (cfg->output_path && cfg->output_path[0]) {
        /* The service may run as root: only trusted consumers name paths. */
        if (s->consumer->uid != 0 && s->consumer->uid != s->core->own_uid)
            return -EPERM;
        if (s->out_fd >= 0)
            close(s->out_fd);
        s->out_fd =
            open(cfg->output_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->out_fd < 0)
            return -errno;
    }
    if (s->out_fd < 0)
        return -EBADF;
    if (cfg->has_file_write_period_ms && cfg->file_write_period_ms)
        period = cfg->file_write_period_ms;
    if (period < MIN_PERIOD_MS)
        period = MIN_PERIOD_MS;
    s->max_file_bytes = cfg->has_max_file_size_bytes ? cfg->max_file_size_bytes : 0;
    return tb_loop_add_timer(s->core->loop, period, period, on_period, s, &s->t_file);
}

void tb_svc_session_file_close(struct tb_svc_session *s)
{
    if (s->t_file)
        tb_loop_cancel_timer(s->core->loop, s->t_file);
    s->t_file = 0;
    if (s->out_fd < 0)
        return;
    tb_svc_session_file_write(s);
    fsync(s->out_fd);
    close(s->out_fd);
    s->out_fd = -1;
}
