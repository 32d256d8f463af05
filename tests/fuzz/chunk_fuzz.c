/*
 * chunk_fuzz.c - libFuzzer target over the untrusted-chunk reader and patch
 * application: random patches, then a random chunk (header + payload).
 *
 * Input: byte 0 = number of patches (mod 8); then per patch 4 bytes offset
 * (LE), 1 byte length (mod 6, only 4 is legal) and 4 data bytes; the rest is
 * the chunk. The chunk is copied into an exact-size heap buffer so ASan
 * flags any read past it. Invariants checked on every record: inside the
 * payload, records in order and non-overlapping, at most `count` of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/chunk_reader.h"

#define CHECK(x)     \
    do {             \
        if (!(x))    \
            abort(); \
    } while (0)

static void read_all(const uint8_t *chunk, size_t size)
{
    struct tb_chunk_reader r;
    struct tb_chunk_record rec;
    size_t end = 0, n = 0;
    int ret;

    if (tb_chunk_reader_init(&r, chunk, size)) {
        CHECK(size < TB_SHM_CHUNK_HEADER_SIZE);
        return;
    }
    while ((ret = tb_chunk_reader_next(&r, &rec)) == 1) {
        CHECK(rec.data >= r.payload && rec.data + rec.len <= r.payload + r.payload_size);
        CHECK(rec.data == r.payload + rec.offset);
        CHECK(rec.offset >= end); /* after the previous record */
        CHECK(rec.index < r.count);
        CHECK(rec.len > 0 || rec.continues_from_prev || rec.continues_on_next);
        end = rec.offset + rec.len;
        n++;
        /* Touch every byte so ASan sees any out-of-range record. */
        if (rec.len) {
            volatile uint8_t sink = rec.data[0] ^ rec.data[rec.len - 1];
            (void)sink;
        }
    }
    CHECK(ret == 0 || ret == -EBADMSG);
    CHECK(ret == 0 ? !r.corrupt : r.corrupt);
    CHECK(n + r.empty + r.aborted <= r.count);
    CHECK(tb_chunk_reader_next(&r, &rec) == ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct {
        uint32_t offset;
        uint8_t len;
        uint8_t bytes[4];
    } patches[8];
    size_t npatches, i;
    uint8_t *chunk;

    if (!size)
        return 0;
    npatches = data[0] % 8;
    data++;
    size--;
    for (i = 0; i < npatches; i++) {
        if (size < 9)
            return 0;
        memcpy(&patches[i].offset, data, 4);
        patches[i].len = data[4] % 6;
        memcpy(patches[i].bytes, data + 5, 4);
        data += 9;
        size -= 9;
    }
    chunk = malloc(size ? size : 1);
    if (!chunk)
        return 0;
    memcpy(chunk, data, size);
    read_all(chunk, size);
    if (size >= TB_SHM_CHUNK_HEADER_SIZE) {
        uint8_t *payload = chunk + TB_SHM_CHUNK_HEADER_SIZE;
        size_t psize = size - TB_SHM_CHUNK_HEADER_SIZE;

        for (i = 0; i < npatches; i++) {
            int ret = tb_chunk_apply_patch(payload, psize, patches[i].offset, patches[i].bytes,
                                           patches[i].len);
            int legal = patches[i].len == 4 && psize >= 4 && patches[i].offset <= psize - 4;

            CHECK(ret == (legal ? 0 : -EINVAL));
            if (legal)
                CHECK(!memcmp(payload + patches[i].offset, patches[i].bytes, 4));
        }
        read_all(chunk, size);
    }
    free(chunk);
    return 0;
}
