/*
 * packet_validator.c - top-level TracePacket validation and the trusted
 * field trailer. Packets are walked in place over the buffer's slices, so a
 * fragmented packet is never copied just to be checked.
 */
#include "service/packet_validator.h"

#include <errno.h>

enum {
    WT_VARINT = 0,
    WT_FIXED64 = 1,
    WT_LEN = 2,
    WT_FIXED32 = 5,
};

/* TracePacket field numbers the service writes itself (spec 5.2, 7.17). */
#define F_TRUSTED_UID    3u
#define F_TRUSTED_SEQ_ID 10u
#define F_PREV_DROPPED   42u
#define F_TRUSTED_PID    79u
#define MAX_FIELD_ID     ((1u << 29) - 1)

bool tb_pval_is_reserved_field(uint32_t field_id)
{
    switch (field_id) {
    case 3:   /* trusted_uid */
    case 10:  /* trusted_packet_sequence_id */
    case 33:  /* trace_config */
    case 35:  /* trace_stats */
    case 36:  /* synchronization_marker */
    case 50:  /* compressed_packets */
    case 69:  /* service_event */
    case 79:  /* trusted_pid */
    case 98:  /* machine_id */
    case 124: /* trace_provenance */
    case 125: /* protovms */
    case 133: /* zstd_compressed_packets */
        return true;
    default:
        return false;
    }
}

/* A read position over a packet split into slices. */
struct cursor {
    const struct tb_tbuf_slice *sl;
    size_t num, idx, off;
    size_t left; /* bytes left in the whole packet */
};

static int next_byte(struct cursor *c)
{
    while (c->idx < c->num && c->off == c->sl[c->idx].len) {
        c->idx++;
        c->off = 0;
    }
    if (!c->left || c->idx >= c->num)
        return -1;
    c->left--;
    return c->sl[c->idx].data[c->off++];
}

static int skip(struct cursor *c, uint64_t n)
{
    if (n > c->left)
        return -EBADMSG;
    c->left -= n;
    while (n) {
        size_t avail = c->sl[c->idx].len - c->off;

        if (n < avail) {
            c->off += n;
            return 0;
        }
        n -= avail;
        c->idx++;
        c->off = 0;
    }
    return 0;
}

/* Decodes a varint of at most @max_bytes bytes. */
static int read_varint(struct cursor *c, unsigned int max_bytes, uint64_t *val)
{
    uint64_t v = 0;

    for (unsigned int i = 0; i < max_bytes; i++) {
        int b = next_byte(c);

        if (b < 0)
            return -EBADMSG;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *val = v;
            return 0;
        }
    }
    return -EBADMSG;
}

int tb_pval_check_slices(const struct tb_tbuf_slice *slices, size_t num)
{
    struct cursor c = {.sl = slices, .num = num};
    int err = 0;

    for (size_t i = 0; i < num; i++) {
        if (slices[i].len && !slices[i].data)
            return -EINVAL;
        c.left += slices[i].len;
    }
    while (c.left) {
        uint64_t tag, v;
        uint32_t field;

        if (read_varint(&c, 5, &tag) || tag > UINT32_MAX)
            return -EBADMSG;
        field = (uint32_t)(tag >> 3);
        if (field == 0 || field > MAX_FIELD_ID)
            return -EBADMSG;
        if (tb_pval_is_reserved_field(field))
            err = -EPERM; /* keep walking: malformed wins over reserved */
        switch (tag & 7) {
        case WT_VARINT:
            if (read_varint(&c, 10, &v))
                return -EBADMSG;
            break;
        case WT_FIXED64:
            if (skip(&c, 8))
                return -EBADMSG;
            break;
        case WT_LEN:
            if (read_varint(&c, 10, &v) || skip(&c, v))
                return -EBADMSG;
            break;
        case WT_FIXED32:
            if (skip(&c, 4))
                return -EBADMSG;
            break;
        default: /* groups (3, 4) and undefined types (6, 7) */
            return -EBADMSG;
        }
    }
    return err;
}

int tb_pval_check(const uint8_t *data, size_t len)
{
    struct tb_tbuf_slice s = {.data = data, .len = len};

    return tb_pval_check_slices(&s, 1);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* int32 fields encode negative values as 10-byte two's complement varints. */
static size_t put_field(uint8_t *p, uint32_t field, uint64_t v)
{
    size_t n = put_varint(p, (uint64_t)field << 3 | WT_VARINT);

    return n + put_varint(p + n, v);
}

int tb_pval_write_trusted(const struct tb_pval_trusted *t, uint8_t *out, size_t cap)
{
    uint8_t tmp[TB_PVAL_TRAILER_MAX];
    size_t n = 0;

    n += put_field(tmp + n, F_TRUSTED_UID, (uint64_t)(int64_t)t->uid);
    n += put_field(tmp + n, F_TRUSTED_SEQ_ID, t->sequence_id);
    if (t->has_pid)
        n += put_field(tmp + n, F_TRUSTED_PID, (uint64_t)(int64_t)t->pid);
    if (t->previous_packet_dropped)
        n += put_field(tmp + n, F_PREV_DROPPED, t->previous_packet_dropped);
    if (n > cap)
        return -ENOBUFS;
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[i];
    return (int)n;
}
