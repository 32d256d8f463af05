/*
 * trace_reader.c - reads a trace file packet by packet through zlib's gz
 * layer (which passes plain files through untouched and unwraps gzip), and
 * expands compressed_packets batches. Holds at most one packet, plus one
 * inflated batch, in memory.
 */
#include "consumer/trace_reader.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define TAG_PACKET       0x0A /* Trace.packet, length-delimited */
#define FIELD_COMPRESSED 50
#define WIRE_VARINT      0
#define WIRE_I64         1
#define WIRE_LEN         2
#define WIRE_I32         5

struct tb_trace_reader {
    gzFile gz;
    uint8_t *buf; /* the current outer packet */
    size_t cap;
    uint8_t *batch; /* inflated compressed_packets, walked by batch_pos */
    size_t batch_len;
    size_t batch_cap;
    size_t batch_pos;
    uint64_t offset; /* bytes consumed from the (uncompressed) stream */
    uint64_t packets;
    uint64_t compressed;
    char error[256];
};

int tb_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t out = 0;
    int shift;

    for (shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;

        out |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = out;
            return 0;
        }
    }
    return -EBADMSG;
}

int tb_trace_reader_open(const char *path, struct tb_trace_reader **out)
{
    struct tb_trace_reader *r;
    int fd, err;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = -errno;
        tb_err("cannot open %s: %s", path, strerror(-err));
        return err;
    }
    r = calloc(1, sizeof(*r));
    if (r)
        r->gz = gzdopen(fd, "rb");
    if (!r || !r->gz) {
        close(fd);
        free(r);
        return -ENOMEM;
    }
    gzbuffer(r->gz, 256 * 1024);
    *out = r;
    return 0;
}

void tb_trace_reader_free(struct tb_trace_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose(r->gz);
    free(r->buf);
    free(r->batch);
    free(r);
}

const char *tb_trace_reader_error(const struct tb_trace_reader *r)
{
    return r->error;
}

void tb_trace_reader_stats(const struct tb_trace_reader *r, uint64_t *packets, uint64_t *compressed,
                           uint64_t *bytes)
{
    if (packets)
        *packets = r->packets;
    if (compressed)
        *compressed = r->compressed;
    if (bytes)
        *bytes = r->offset;
}

static int bad(struct tb_trace_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bad(struct tb_trace_reader *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 4096;
    uint8_t *nb;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    nb = realloc(*buf, ncap);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Reads exactly @n bytes. Return: bytes read (short only at EOF) or -EIO. */
static long read_full(struct tb_trace_reader *r, void *dst, size_t n)
{
    size_t got = 0;

    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int k = gzread(r->gz, (char *)dst + got, chunk);

        if (k < 0) {
            int zerr;
            const char *msg = gzerror(r->gz, &zerr);

            snprintf(r->error, sizeof(r->error), "read error at offset %llu: %s",
                     (unsigned long long)(r->offset + got),
                     zerr == Z_ERRNO ? strerror(errno) : msg);
            return -EIO;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (long)got;
}

/* Finds field 50 (compressed_packets) in a packet. Return: 1 found, 0 not, <0 bad. */
static int find_compressed(const uint8_t *p, size_t len, const uint8_t **data, size_t *dlen)
{
    const uint8_t *end = p + len;

    while (p < end) {
        uint64_t tag, v;

        if (tb_pb_read_varint(&p, end, &tag))
            return -EBADMSG;
        switch (tag & 7) {
        case WIRE_VARINT:
            if (tb_pb_read_varint(&p, end, &v))
                return -EBADMSG;
            break;
        case WIRE_I64:
            if (end - p < 8)
                return -EBADMSG;
            p += 8;
            break;
        case WIRE_I32:
            if (end - p < 4)
                return -EBADMSG;
            p += 4;
            break;
        case WIRE_LEN:
            if (tb_pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return -EBADMSG;
            if ((tag >> 3) == FIELD_COMPRESSED) {
                *data = p;
                *dlen = (size_t)v;
                return 1;
            }
            p += v;
            break;
        default:
            return -EBADMSG;
        }
    }
    return 0;
}

static int inflate_batch(struct tb_trace_reader *r, const uint8_t *src, size_t len, uint64_t at)
{
    z_stream zs;
    int zret, err = 0;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)len;
    r->batch_len = 0;
    do {
        if (r->batch_len == r->batch_cap &&
            (r->batch_cap >= TB_TRACE_READER_MAX_PACKET ||
             grow(&r->batch, &r->batch_cap, r->batch_cap ? r->batch_cap * 2 : len * 4 + 4096))) {
            err = r->batch_cap >= TB_TRACE_READER_MAX_PACKET
                      ? bad(r, "compressed packets at offset %llu inflate to more than %u MiB",
                            (unsigned long long)at, TB_TRACE_READER_MAX_PACKET >> 20)
                      : -ENOMEM;
            goto out;
        }
        zs.next_out = r->batch + r->batch_len;
        zs.avail_out = (uInt)(r->batch_cap - r->batch_len);
        zret = inflate(&zs, Z_NO_FLUSH);
        r->batch_len = r->batch_cap - zs.avail_out;
        if (zret != Z_OK && zret != Z_STREAM_END && zret != Z_BUF_ERROR) {
            err = bad(r, "compressed packets at offset %llu are corrupt (zlib: %s)",
                      (unsigned long long)at, zs.msg ? zs.msg : "error");
            goto out;
        }
        if (zret == Z_BUF_ERROR && zs.avail_out) {
            err = bad(r, "compressed packets at offset %llu are truncated", (unsigned long long)at);
            goto out;
        }
        if (zret == Z_STREAM_END)
            break;
    } while (1);
    r->batch_pos = 0;
out:
    inflateEnd(&zs);
    return err;
}

/* Next inner packet of the current batch. Return: 1, 0 when done, <0 bad. */
static int next_in_batch(struct tb_trace_reader *r, const uint8_t **data, size_t *len)
{
    const uint8_t *p, *end;
    uint64_t tag, n;

    if (!r->batch || r->batch_pos >= r->batch_len)
        return 0;
    p = r->batch + r->batch_pos;
    end = r->batch + r->batch_len;
    if (tb_pb_read_varint(&p, end, &tag) || tag != TAG_PACKET || tb_pb_read_varint(&p, end, &n) ||
        n > (uint64_t)(end - p))
        return bad(r, "malformed packet inside a compressed batch (before offset %llu)",
                   (unsigned long long)r->offset);
    *data = p;
    *len = (size_t)n;
    r->batch_pos = (size_t)(p + n - r->batch);
    r->packets++;
    r->compressed++;
    return 1;
}

int tb_trace_reader_next(struct tb_trace_reader *r, const uint8_t **data, size_t *len)
{
    uint8_t hdr[11];
    uint64_t start, n = 0;
    const uint8_t *cdata;
    size_t clen;
    long got;
    int i, ret;

    for (;;) {
        ret = next_in_batch(r, data, len);
        if (ret)
            return ret;
        r->batch_len = r->batch_pos = 0;

        start = r->offset;
        got = read_full(r, hdr, 1);
        if (got <= 0)
            return (int)got; /* 0 = clean end, -EIO */
        if (hdr[0] != TAG_PACKET)
            return bad(r,
                       "not a Perfetto trace: byte 0x%02x at offset %llu where a packet "
                       "(0x0a) should start",
                       hdr[0], (unsigned long long)start);
        for (i = 0; i < 10; i++) {
            if (read_full(r, &hdr[1 + i], 1) != 1)
                return bad(r,
                           "truncated: the file ends inside the length of the packet at "
                           "offset %llu",
                           (unsigned long long)start);
            n |= (uint64_t)(hdr[1 + i] & 0x7f) << (7 * i);
            if (!(hdr[1 + i] & 0x80))
                break;
        }
        if (i == 10 || n > TB_TRACE_READER_MAX_PACKET)
            return bad(r, "malformed: the packet at offset %llu claims %llu bytes",
                       (unsigned long long)start, (unsigned long long)n);
        if (grow(&r->buf, &r->cap, n ? n : 1))
            return -ENOMEM;
        got = read_full(r, r->buf, n);
        if (got < 0)
            return (int)got;
        r->offset = start + 2 + (uint64_t)i + (uint64_t)got;
        if ((uint64_t)got < n)
            return bad(r,
                       "truncated: the packet at offset %llu needs %llu bytes, the file ends "
                       "after %ld",
                       (unsigned long long)start, (unsigned long long)n, got);
        ret = find_compressed(r->buf, n, &cdata, &clen);
        if (ret < 0)
            return bad(r, "malformed: the packet at offset %llu is not valid protobuf",
                       (unsigned long long)start);
        if (ret == 0) {
            *data = r->buf;
            *len = n;
            r->packets++;
            return 1;
        }
        ret = inflate_batch(r, cdata, clen, start);
        if (ret)
            return ret;
    }
}
