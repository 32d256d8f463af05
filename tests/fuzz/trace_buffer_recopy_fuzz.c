/*
 * trace_buffer_recopy_fuzz.c - libFuzzer target for the central trace
 * buffer's duplicate suppression and writer forgetting. The input is a
 * script of operations on 2 producers x 4 writers: copy a chunk (committed,
 * or scraped with a prefix of its records, possibly waiting for a patch),
 * patch it, read, forget a writer, forget a producer. Chunk contents are a
 * pure function of (producer, writer, generation, chunk id), so every copy
 * of a chunk agrees with every other; each packet carries its identity.
 *
 * Checked: every packet read is byte-exact, and no packet ever comes out
 * twice, whatever the order of scrapes, commits, reads, evictions and
 * forgets. Losses are allowed (ring eviction, patches that never come).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/trace_buffer.h"
#include "tracebpf/shm_abi.h"

#define PRODUCERS 2
#define WRITERS   4
#define GENS      16
#define CHUNK_IDS 64
#define MAX_RECS  6

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct input *in)
{
    uint8_t b;

    if (!in->n)
        return 0;
    b = *in->p++;
    in->n--;
    return b;
}

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Records of chunk @id: count, then each record's identity and length. */
static uint32_t num_recs(uint32_t p, uint32_t w, uint32_t gen, uint32_t id)
{
    return 1 + mix(p << 24 | w << 16 | gen << 8 | id) % MAX_RECS;
}

static size_t rec_len(uint32_t tag)
{
    return 8 + mix(tag ^ 0x5bd1e995u) % 48;
}

static uint32_t make_tag(uint32_t p, uint32_t w, uint32_t gen, uint32_t id, uint32_t rec)
{
    return ((((p * WRITERS + w) * GENS + gen) * CHUNK_IDS + id) * MAX_RECS) + rec;
}

static void fill_rec(uint8_t *dst, uint32_t tag, size_t len)
{
    memcpy(dst, &tag, 4);
    for (size_t i = 4; i < len; i++)
        dst[i] = (uint8_t)mix(tag * 131u + (uint32_t)i);
}

/* Builds the first @nrec records of a chunk; returns the payload length. */
static size_t build(uint8_t *buf, uint32_t p, uint32_t w, uint32_t gen, uint32_t id, uint32_t nrec)
{
    size_t off = 0;

    for (uint32_t r = 0; r < nrec; r++) {
        uint32_t tag = make_tag(p, w, gen, id, r);
        size_t len = rec_len(tag);

        buf[off++] = (uint8_t)len; /* < 128: one-byte size */
        fill_rec(buf + off, tag, len);
        off += len;
    }
    return off;
}

#define NUM_TAGS (PRODUCERS * WRITERS * GENS * CHUNK_IDS * MAX_RECS)

static uint8_t seen[NUM_TAGS];
static uint8_t flat[TB_TBUF_MAX_CHUNK_PAYLOAD];

static void check_packet(const struct tb_tbuf_packet *pkt)
{
    uint8_t want[64];
    uint32_t tag;

    if (tb_tbuf_packet_copy(pkt, flat, sizeof(flat)) < 4)
        abort();
    memcpy(&tag, flat, 4);
    if (tag >= NUM_TAGS || pkt->len != rec_len(tag))
        abort();
    fill_rec(want, tag, pkt->len);
    if (memcmp(want, flat, pkt->len))
        abort();
    if (seen[tag]++)
        abort(); /* the same packet twice */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t gen[PRODUCERS][WRITERS] = {{0}}, next[PRODUCERS][WRITERS] = {{0}};
    static uint8_t payload[MAX_RECS * 64];
    struct input in = {data, size};
    struct tb_tbuf_packet pkt;
    struct tb_tbuf *t;
    uint8_t cfg = take(&in);

    memset(seen, 0, sizeof(seen));
    if (tb_tbuf_new(512u + (cfg & 15u) * 256u,
                    cfg & 16 ? TB_TBUF_POLICY_DISCARD : TB_TBUF_POLICY_RING_BUFFER, &t))
        abort();
    while (in.n) {
        uint8_t op = take(&in), arg = take(&in);
        uint32_t p = (op >> 3) & 1, w = (op >> 4) & 3;
        uint32_t g = gen[p][w], id, nrec;
        size_t len;

        switch (op & 7) {
        case 0:
        case 1:
        case 2: {
            bool complete = arg & 0x80;
            uint8_t flags = 0;
            uint16_t count;

            /* Mostly the next chunk or one of the few before it. */
            id = next[p][w] >= (arg & 7) ? next[p][w] - (arg & 7) : 0;
            if (id >= CHUNK_IDS)
                break;
            if (id == next[p][w])
                next[p][w]++;
            nrec = num_recs(p, w, g, id);
            if (complete) {
                count = (uint16_t)nrec;
                if (arg & 0x40)
                    flags = TB_SHM_FLAG_NEEDS_PATCHING;
            } else {
                /* A scrape: a prefix plus the record being written (hidden). */
                count = (uint16_t)(1 + (arg >> 3) % nrec);
            }
            len = build(payload, p, w, g, id, count);
            tb_tbuf_copy_chunk(t, (uint16_t)(p + 1), (uint16_t)(w + 1), id,
                               tb_shm_packets_make(count, flags), payload, len, complete);
            break;
        }
        case 3: {
            struct tb_tbuf_patch patch = {.offset = 0, .data = payload, .size = 4};

            /* Rewrites bytes with what every copy already holds. */
            id = next[p][w] >= (arg & 7) ? next[p][w] - (arg & 7) : 0;
            build(payload, p, w, g, id, 1);
            tb_tbuf_apply_patches(t, (uint16_t)(p + 1), (uint16_t)(w + 1), id, &patch, 1, arg & 8);
            break;
        }
        case 4:
        case 5:
            for (int i = 0; i <= arg % 16 && !tb_tbuf_read_next(t, &pkt); i++)
                check_packet(&pkt);
            break;
        case 6:
            if (gen[p][w] + 1 < GENS) {
                tb_tbuf_forget_writer(t, (uint16_t)(p + 1), (uint16_t)(w + 1));
                gen[p][w]++;
                next[p][w] = 0;
            }
            break;
        case 7:
            for (w = 0; w < WRITERS; w++) {
                if (gen[p][w] + 1 >= GENS)
                    break;
            }
            if (w < WRITERS)
                break;
            tb_tbuf_forget_producer(t, (uint16_t)(p + 1));
            for (w = 0; w < WRITERS; w++) {
                gen[p][w]++;
                next[p][w] = 0;
            }
            break;
        }
    }
    while (!tb_tbuf_read_next(t, &pkt))
        check_packet(&pkt);
    tb_tbuf_free(t);
    return 0;
}
