/*
 * tbuf_test_util.h - helpers shared by the central trace buffer tests: chunk
 * payloads built record by record, deterministic packet bytes keyed by
 * (producer, writer, index), and read-and-compare assertions. Include after
 * <cmocka.h>.
 */
#ifndef TB_TESTS_TBUF_TEST_UTIL_H
#define TB_TESTS_TBUF_TEST_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "service/trace_buffer.h"
#include "tracebpf/shm_abi.h"

/* A chunk payload under construction. */
struct cb {
    uint8_t p[TB_TBUF_MAX_CHUNK_PAYLOAD];
    size_t len;
    uint16_t count;
    uint8_t flags;
};

static inline void cb_reset(struct cb *b)
{
    b->len = 0;
    b->count = 0;
    b->flags = 0;
}

/* Appends a record; @wide picks the 4-byte redundant size prefix. */
static inline size_t cb_rec(struct cb *b, const uint8_t *data, size_t len, bool wide)
{
    size_t at;

    if (wide || len > 127) {
        assert_true(len < (1u << 28));
        tb_shm_write_size_prefix(b->p + b->len, (uint32_t)len);
        b->len += 4;
    } else {
        b->p[b->len++] = (uint8_t)len;
    }
    at = b->len;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->count++;
    return at;
}

static inline int cb_copy(struct tb_tbuf *t, uint16_t prod, uint16_t wr, uint32_t id,
                          const struct cb *b, bool complete)
{
    return tb_tbuf_copy_chunk(t, prod, wr, id, tb_shm_packets_make(b->count, b->flags), b->p,
                              b->len, complete);
}

/* Deterministic packet bytes from (producer, writer, index). */
static inline size_t make_packet(uint8_t *out, size_t len, uint16_t prod, uint16_t wr, uint32_t idx)
{
    uint32_t x = (uint32_t)prod * 2654435761u ^ (uint32_t)wr * 40503u ^ idx * 97u ^ 0x9e3779b9u;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out[i] = (uint8_t)x;
    }
    if (len >= 8) {
        memcpy(out, &prod, 2);
        memcpy(out + 2, &wr, 2);
        memcpy(out + 4, &idx, 4);
    }
    return len;
}

static uint8_t scratch[1 << 20];

/* Reads one packet and flattens it into scratch; returns its length. */
static inline long read_one(struct tb_tbuf *t, struct tb_tbuf_packet *pkt)
{
    int err = tb_tbuf_read_next(t, pkt);

    if (err)
        return err;
    return tb_tbuf_packet_copy(pkt, scratch, sizeof(scratch));
}

static inline void expect_packet(struct tb_tbuf *t, uint16_t prod, uint16_t wr, uint32_t idx,
                                 size_t len, uint32_t dropped)
{
    static uint8_t want[1 << 20];
    struct tb_tbuf_packet pkt;

    assert_int_equal(read_one(t, &pkt), (long)len);
    assert_int_equal(pkt.producer_id, prod);
    assert_int_equal(pkt.writer_id, wr);
    assert_int_equal(pkt.previous_packet_dropped, dropped);
    make_packet(want, len, prod, wr, idx);
    assert_memory_equal(scratch, want, len);
}

static inline void expect_empty(struct tb_tbuf *t)
{
    struct tb_tbuf_packet pkt;

    assert_int_equal(tb_tbuf_read_next(t, &pkt), -ENODATA);
}

#endif /* TB_TESTS_TBUF_TEST_UTIL_H */
