/*
 * trace_frame.c - "0A varint(len) packet" records of a trace file and the
 * full writes that put them in a file (see trace_frame.h).
 */
#include "common/trace_frame.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/pb_writer.h"

#define TAG_TRACE_PACKET 0x0A /* Trace.packet: field 1, length-delimited */

size_t tb_tframe_hdr(uint8_t hdr[TB_TFRAME_HDR_MAX], uint64_t len)
{
    hdr[0] = TAG_TRACE_PACKET;
    return 1 + tb_pbw_encode_varint(hdr + 1, len);
}

int tb_tframe_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n) {
        ssize_t w = write(fd, b, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int tb_tframe_write(int fd, const void *pkt, size_t len, uint64_t *bytes)
{
    uint8_t hdr[TB_TFRAME_HDR_MAX];
    size_t h = tb_tframe_hdr(hdr, len), done;
    struct iovec iov[2] = {{hdr, h}, {(void *)pkt, len}};
    ssize_t w;

    /* One syscall per record in the common case; finish short writes plainly. */
    do
        w = writev(fd, iov, len ? 2 : 1);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    done = (size_t)w;
    if (done < h) {
        int err = tb_tframe_write_all(fd, hdr + done, h - done);

        if (err)
            return err;
        done = h;
    }
    if (done < h + len) {
        int err = tb_tframe_write_all(fd, (const uint8_t *)pkt + (done - h), h + len - done);

        if (err)
            return err;
    }
    if (bytes)
        *bytes += h + len;
    return 0;
}
