/*
 * svc_batch.c - batches of Trace records and the deflating packet adapter
 * (see svc_batch.h).
 */
#include "service/svc_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace_frame.h"
#include "service/svc_packets.h"

#define FIRST_CAP (64u * 1024u)

size_t tb_svc_batch_record_size(const struct tb_svc_slice *sl, size_t n)
{
    uint8_t hdr[TB_TFRAME_HDR_MAX];
    size_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += sl[i].len;
    return tb_tframe_hdr(hdr, total) + total;
}

int tb_svc_batch_add(struct tb_svc_batch *b, const struct tb_svc_slice *sl, size_t n)
{
    uint8_t hdr[TB_TFRAME_HDR_MAX];
    size_t total = 0, h, need;

    for (size_t i = 0; i < n; i++)
        total += sl[i].len;
    h = tb_tframe_hdr(hdr, total);
    need = h + total;
    if (b->len + need > b->cap) {
        size_t ncap = b->cap ? b->cap : FIRST_CAP;
        uint8_t *nb;

        while (ncap < b->len + need)
            ncap *= 2;
        nb = realloc(b->buf, ncap);
        if (!nb)
            return -ENOMEM;
        b->buf = nb;
        b->cap = ncap;
    }
    memcpy(b->buf + b->len, hdr, h);
    b->len += h;
    for (size_t i = 0; i < n; i++) {
        memcpy(b->buf + b->len, sl[i].data, sl[i].len);
        b->len += sl[i].len;
    }
    return 0;
}

void tb_svc_batch_free(struct tb_svc_batch *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = 0;
    b->cap = 0;
}

int tb_svc_deflate_flush(struct tb_svc_deflate *d)
{
    struct tb_svc_slice sl;
    uint8_t *pkt;
    size_t len;
    int err;

    if (!d->batch.len)
        return 0;
    err = tb_svc_pkt_compressed(d->uid, d->batch.buf, d->batch.len, &pkt, &len);
    /* Handed over or lost, the batch is done with: never sent twice. */
    d->batch.len = 0;
    if (err)
        return err;
    sl.data = pkt;
    sl.len = len;
    err = d->fn(d->ctx, &sl, 1);
    free(pkt);
    return err;
}

int tb_svc_deflate_packet(void *ctx, const struct tb_svc_slice *sl, size_t n)
{
    struct tb_svc_deflate *d = ctx;
    int err = tb_svc_batch_add(&d->batch, sl, n);

    if (err)
        return err;
    return d->batch.len >= d->limit ? tb_svc_deflate_flush(d) : 0;
}
