/*
 * trace_buffer_fuzz.c - libFuzzer target driving the central trace buffer
 * with a random sequence of chunk copies (raw and well-formed), patches and
 * reads taken from the input. Every packet read is walked byte by byte (so
 * ASan sees any stale slice) and fed to the packet validator. The budget
 * must hold at every step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/packet_validator.h"
#include "service/trace_buffer.h"
#include "tracebpf/shm_abi.h"

struct input {
    const uint8_t *p;
    size_t left;
};

static uint32_t take(struct input *in, unsigned int bytes)
{
    uint32_t v = 0;

    for (unsigned int i = 0; i < bytes && in->left; i++, in->left--)
        v |= (uint32_t)*in->p++ << (8 * i);
    return v;
}

static size_t take_bytes(struct input *in, uint8_t *dst, size_t n)
{
    n = n < in->left ? n : in->left;
    memcpy(dst, in->p, n);
    in->p += n;
    in->left -= n;
    return n;
}

/* A chunk of framed records, so the fuzzer reaches the reader quickly. */
static size_t build_records(struct input *in, uint8_t *p, size_t cap, uint16_t *count)
{
    size_t len = 0;

    *count = (uint16_t)(take(in, 1) % 6);
    for (uint16_t i = 0; i < *count; i++) {
        size_t n = take(in, 1) % 96;

        if (len + 4 + n > cap)
            break;
        if (take(in, 1) & 1) {
            tb_shm_write_size_prefix(p + len, (uint32_t)n);
            len += 4;
        } else {
            p[len++] = (uint8_t)n;
        }
        for (size_t k = 0; k < n; k++)
            p[len + k] = (uint8_t)(i * 31 + k);
        len += n;
    }
    return len;
}

static uint8_t payload[8192];

static void do_copy(struct tb_tbuf *t, struct input *in, uint32_t next_id[4], bool framed)
{
    uint16_t writer = (uint16_t)(take(in, 1) % 5); /* 0 is invalid on purpose */
    uint16_t producer = (uint16_t)(1 + take(in, 1) % 2);
    uint8_t sel = (uint8_t)take(in, 1);
    uint32_t id;
    uint16_t packets, count;
    size_t len;

    /* Mostly consecutive ids per writer, sometimes repeats, wraps or jumps. */
    if (sel < 160)
        id = next_id[writer % 4]++;
    else if (sel < 200)
        id = next_id[writer % 4] - 1 - take(in, 1) % 3;
    else
        id = take(in, 4);
    if (framed) {
        len = build_records(in, payload, sizeof(payload), &count);
        packets = tb_shm_packets_make(count, (uint8_t)take(in, 1));
    } else {
        packets = (uint16_t)take(in, 2);
        len = take_bytes(in, payload, take(in, 2) % sizeof(payload));
    }
    tb_tbuf_copy_chunk(t, producer, writer, id, packets, payload, len, take(in, 1) & 1);
}

static void do_patch(struct tb_tbuf *t, struct input *in, const uint32_t next_id[4])
{
    struct tb_tbuf_patch patches[4];
    uint8_t data[4][5];
    uint16_t writer = (uint16_t)(take(in, 1) % 5);
    uint32_t id = next_id[writer % 4] - take(in, 1) % 4;
    size_t num = take(in, 1) % 5;

    for (size_t i = 0; i < num; i++) {
        patches[i].offset = take(in, 1) & 0x80 ? take(in, 4) : take(in, 1);
        patches[i].size = (take(in, 1) % 8 == 0) ? 3 : 4; /* mostly valid */
        take_bytes(in, data[i], 5);
        patches[i].data = data[i];
    }
    tb_tbuf_apply_patches(t, 1, writer, id, patches, num, take(in, 1) & 1);
}

static uint8_t flat[1 << 17];

static void do_read(struct tb_tbuf *t, unsigned int max)
{
    struct tb_tbuf_packet pkt;

    for (unsigned int n = 0; n < max && !tb_tbuf_read_next(t, &pkt); n++) {
        size_t total = 0;

        if (!pkt.len || !pkt.writer_id || tb_tbuf_packet_copy(&pkt, flat, sizeof(flat)) < 0)
            abort();
        for (size_t i = 0; i < pkt.num_slices; i++) {
            if (memcmp(flat + total, pkt.slices[i].data, pkt.slices[i].len))
                abort();
            total += pkt.slices[i].len;
        }
        if (total != pkt.len ||
            tb_pval_check(flat, total) != tb_pval_check_slices(pkt.slices, pkt.num_slices))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    uint32_t next_id[4] = {0xFFFFFFFDu, 0, 7, 1u << 31};
    struct tb_tbuf_stats st;
    struct tb_tbuf *t;
    size_t budget = 1024 + (take(&in, 1) % 64) * 1024;

    if (tb_tbuf_new(budget, (enum tb_tbuf_policy)(take(&in, 1) % 3), &t))
        return 0;
    while (in.left) {
        switch (take(&in, 1) % 5) {
        case 0:
            do_copy(t, &in, next_id, false);
            break;
        case 1:
        case 2:
            do_copy(t, &in, next_id, true);
            break;
        case 3:
            do_patch(t, &in, next_id);
            break;
        default:
            do_read(t, 1 + take(&in, 1) % 8);
            break;
        }
        tb_tbuf_get_stats(t, &st);
        if (st.bytes_used > budget)
            abort();
    }
    do_read(t, ~0u);
    tb_tbuf_free(t);
    return 0;
}
