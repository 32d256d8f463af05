/*
 * validator_fuzz.c - libFuzzer target for the producer packet validator: the
 * input is a packet; checking it flat and split into three slices at
 * input-chosen points must agree, and the trusted trailer appended to a
 * packet that passed must still parse (and be refused as reserved, since a
 * producer may not send those fields itself).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/packet_validator.h"

static uint8_t pkt[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tb_pval_trusted t = {.sequence_id = 2};
    struct tb_tbuf_slice sl[3];
    size_t a, b, len;
    int flat, n;

    if (size < 4 || size - 4 > sizeof(pkt) - TB_PVAL_TRAILER_MAX)
        return 0;
    len = size - 4;
    memcpy(pkt, data + 4, len);
    a = len ? (data[0] | (size_t)data[1] << 8) % (len + 1) : 0;
    b = a + (len - a ? (data[2] | (size_t)data[3] << 8) % (len - a + 1) : 0);
    sl[0] = (struct tb_tbuf_slice){pkt, a};
    sl[1] = (struct tb_tbuf_slice){pkt + a, b - a};
    sl[2] = (struct tb_tbuf_slice){pkt + b, len - b};
    flat = tb_pval_check(pkt, len);
    if (flat != 0 && flat != -EBADMSG && flat != -EPERM)
        abort();
    if (tb_pval_check_slices(sl, 3) != flat)
        abort();
    if (flat)
        return 0;
    t.uid = (int32_t)(data[0] | (uint32_t)data[1] << 24);
    t.pid = (int32_t)(data[2] | (uint32_t)data[3] << 31);
    t.has_pid = data[0] & 1;
    t.previous_packet_dropped = data[1];
    n = tb_pval_write_trusted(&t, pkt + len, TB_PVAL_TRAILER_MAX);
    if (n <= 0 || tb_pval_check(pkt, len + (size_t)n) != -EPERM)
        abort();
    return 0;
}
