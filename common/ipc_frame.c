/*
 * ipc_frame.c - IPCFrame stream decoder and encoder (spec §2.1).
 *
 * The decoder owns one buffer of the frame limit. recv() writes straight
 * into its free tail; every complete frame is parsed at once into a FIFO so
 * the buffer only ever holds one partial frame, which is why a frame of the
 * maximum size always fits. Stream offsets are tracked so a passed fd can be
 * tied to the frame it was sent with.
 */
#include "common/ipc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct entry {
    Perfetto__Protos__IPCFrame *frame;
    uint64_t start; /* stream offset of the frame's header */
    int fd;
};

struct tb_ipc_frame_decoder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint64_t base; /* stream offset of buf[0] */
    struct entry *q;
    size_t q_head, q_len, q_cap;
    int err;
    int partial_fd; /* fd for the partial frame starting at base */
    struct tb_ipc_frame_decoder_stats stats;
};

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int tb_ipc_frame_decoder_new(size_t max_frame_size, struct tb_ipc_frame_decoder **out)
{
    struct tb_ipc_frame_decoder *d;

    if (!max_frame_size)
        max_frame_size = TB_IPC_MAX_FRAME_SIZE;
    if (max_frame_size <= TB_IPC_FRAME_HEADER_SIZE || max_frame_size > UINT32_MAX)
        return -EINVAL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->buf = malloc(max_frame_size);
    if (!d->buf) {
        free(d);
        return -ENOMEM;
    }
    d->cap = max_frame_size;
    d->partial_fd = -1;
    *out = d;
    return 0;
}

void tb_ipc_frame_free(Perfetto__Protos__IPCFrame *frame)
{
    if (frame)
        perfetto__protos__ipcframe__free_unpacked(frame, NULL);
}

void tb_ipc_frame_decoder_free(struct tb_ipc_frame_decoder *d)
{
    int fd;

    if (!d)
        return;
    while (d->q_len) {
        tb_ipc_frame_free(tb_ipc_frame_decoder_pop_fd(d, &fd));
        if (fd >= 0)
            close(fd);
    }
    if (d->partial_fd >= 0)
        close(d->partial_fd);
    free(d->q);
    free(d->buf);
    free(d);
}

int tb_ipc_frame_decoder_begin_receive(struct tb_ipc_frame_decoder *d, void **buf, size_t *len)
{
    if (d->err)
        return d->err;
    *buf = d->buf + d->len;
    *len = d->cap - d->len;
    return 0;
}

static int push(struct tb_ipc_frame_decoder *d, Perfetto__Protos__IPCFrame *frame, uint64_t start)
{
    struct entry *e;

    if (d->q_len == d->q_cap) {
        size_t ncap = d->q_cap ? d->q_cap * 2 : 16, i;
        struct entry *nq = malloc(ncap * sizeof(*nq));

        if (!nq)
            return -ENOMEM;
        /* Unroll the ring so the queue starts at 0 again. */
        for (i = 0; i < d->q_len; i++)
            nq[i] = d->q[(d->q_head + i) % d->q_cap];
        free(d->q);
        d->q = nq;
        d->q_cap = ncap;
        d->q_head = 0;
    }
    e = &d->q[(d->q_head + d->q_len) % d->q_cap];
    e->frame = frame;
    e->start = start;
    e->fd = -1;
    d->q_len++;
    return 0;
}

static void attach_fd(int *slot, int fd)
{
    /* Two fds for one frame: the protocol allows one, keep the newest. */
    if (*slot >= 0)
        close(*slot);
    *slot = fd;
}

/* Parses every complete frame in the buffer; leaves one partial frame. */
static int parse(struct tb_ipc_frame_decoder *d)
{
    size_t off = 0;
    int err = 0;

    while (d->len - off >= TB_IPC_FRAME_HEADER_SIZE) {
        uint32_t sz = get_le32(d->buf + off);
        Perfetto__Protos__IPCFrame *frame;
        int fd = -1;

        if (sz > d->cap - TB_IPC_FRAME_HEADER_SIZE) {
            tb_warn("ipc: frame header announces %u bytes, limit is %zu", sz,
                    d->cap - TB_IPC_FRAME_HEADER_SIZE);
            err = -EMSGSIZE;
            break;
        }
        if (d->len - off - TB_IPC_FRAME_HEADER_SIZE < sz)
            break;
        if (off == 0) {
            /* The frame that was partial is now complete. */
            fd = d->partial_fd;
            d->partial_fd = -1;
        }
        if (sz == 0) {
            d->stats.frames_empty++;
            if (fd >= 0)
                close(fd);
            off += TB_IPC_FRAME_HEADER_SIZE;
            continue;
        }
        frame =
            perfetto__protos__ipcframe__unpack(NULL, sz, d->buf + off + TB_IPC_FRAME_HEADER_SIZE);
        if (!frame) {
            d->stats.frames_dropped++;
            if (fd >= 0)
                close(fd);
        } else if (push(d, frame, d->base + off) < 0) {
            tb_ipc_frame_free(frame);
            if (fd >= 0)
                close(fd);
            err = -ENOMEM;
            break;
        } else {
            d->stats.frames_decoded++;
            d->q[(d->q_head + d->q_len - 1) % d->q_cap].fd = fd;
        }
        off += TB_IPC_FRAME_HEADER_SIZE + sz;
    }
    if (err) {
        d->err = err;
        d->base += d->len;
        d->len = 0;
        if (d->partial_fd >= 0)
            close(d->partial_fd);
        d->partial_fd = -1;
        return err;
    }
    if (off) {
        memmove(d->buf, d->buf + off, d->len - off);
        d->len -= off;
        d->base += off;
    }
    return 0;
}

int tb_ipc_frame_decoder_end_receive_fd(struct tb_ipc_frame_decoder *d, size_t n, int fd)
{
    uint64_t chunk_start = d->base + d->len;
    int err;

    if (d->err || n > d->cap - d->len) {
        if (fd >= 0)
            close(fd);
        return d->err ? d->err : -EINVAL;
    }
    d->len += n;
    d->stats.bytes_received += n;
    err = parse(d);
    if (fd < 0)
        return err;
    if (!err && d->len && d->base >= chunk_start) {
        attach_fd(&d->partial_fd, fd);
    } else if (d->q_len) {
        struct entry *last = &d->q[(d->q_head + d->q_len - 1) % d->q_cap];

        if (last->start >= chunk_start)
            attach_fd(&last->fd, fd);
        else
            close(fd);
    } else {
        /* Only empty or dropped frames began here: nobody to hand it to. */
        close(fd);
    }
    return err;
}

int tb_ipc_frame_decoder_end_receive(struct tb_ipc_frame_decoder *d, size_t n)
{
    return tb_ipc_frame_decoder_end_receive_fd(d, n, -1);
}

int tb_ipc_frame_decoder_feed(struct tb_ipc_frame_decoder *d, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len) {
        size_t room, chunk;
        void *dst;
        int err;

        err = tb_ipc_frame_decoder_begin_receive(d, &dst, &room);
        if (err)
            return err;
        chunk = len < room ? len : room;
        memcpy(dst, p, chunk);
        err = tb_ipc_frame_decoder_end_receive(d, chunk);
        if (err)
            return err;
        p += chunk;
        len -= chunk;
    }
    return 0;
}

Perfetto__Protos__IPCFrame *tb_ipc_frame_decoder_pop_fd(struct tb_ipc_frame_decoder *d, int *fd)
{
    struct entry *e;

    *fd = -1;
    if (!d->q_len)
        return NULL;
    e = &d->q[d->q_head];
    d->q_head = (d->q_head + 1) % d->q_cap;
    d->q_len--;
    *fd = e->fd;
    return e->frame;
}

Perfetto__Protos__IPCFrame *tb_ipc_frame_decoder_pop(struct tb_ipc_frame_decoder *d)
{
    Perfetto__Protos__IPCFrame *frame;
    int fd;

    frame = tb_ipc_frame_decoder_pop_fd(d, &fd);
    if (fd >= 0)
        close(fd);
    return frame;
}

void tb_ipc_frame_decoder_get_stats(const struct tb_ipc_frame_decoder *d,
                                    struct tb_ipc_frame_decoder_stats *out)
{
    *out = d->stats;
}

int tb_ipc_frame_encode(const Perfetto__Protos__IPCFrame *frame, size_t max_frame_size,
                        uint8_t **out, size_t *out_len)
{
    size_t sz;
    uint8_t *buf;

    if (!max_frame_size)
        max_frame_size = TB_IPC_MAX_FRAME_SIZE;
    /* Else the limit check below would wrap and let any size through. */
    if (max_frame_size <= TB_IPC_FRAME_HEADER_SIZE)
        return -EINVAL;
    sz = perfetto__protos__ipcframe__get_packed_size(frame);
    if (sz > max_frame_size - TB_IPC_FRAME_HEADER_SIZE)
        return -EMSGSIZE;
    buf = malloc(TB_IPC_FRAME_HEADER_SIZE + sz);
    if (!buf)
        return -ENOMEM;
    buf[0] = (uint8_t)sz;
    buf[1] = (uint8_t)(sz >> 8);
    buf[2] = (uint8_t)(sz >> 16);
    buf[3] = (uint8_t)(sz >> 24);
    perfetto__protos__ipcframe__pack(frame, buf + TB_IPC_FRAME_HEADER_SIZE);
    *out = buf;
    *out_len = TB_IPC_FRAME_HEADER_SIZE + sz;
    return 0;
}
