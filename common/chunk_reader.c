/*
 * chunk_reader.c - walking the records of an untrusted chunk copy.
 *
 * Owns the record framing rules of shm_abi.h on the reading side: varint
 * sizes capped at 4 bytes, bounds checks on every record, the drop sentinel,
 * empty records, the fragment roles of the first and last record, and patch
 * application. Nothing here trusts a byte of the chunk.
 */
#include <errno.h>
#include <string.h>

#include "common/chunk_reader.h"

int tb_chunk_read_varint(const uint8_t *buf, size_t len, uint32_t *val)
{
    uint32_t v = 0;
    size_t i;

    for (i = 0; i < len && i < 4; i++) {
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
        if (!(buf[i] & 0x80)) {
            *val = v;
            return (int)i + 1;
        }
    }
    return -EBADMSG;
}

int tb_chunk_reader_init_payload(struct tb_chunk_reader *r, uint16_t packets, const void *payload,
                                 size_t payload_size)
{
    memset(r, 0, sizeof(*r));
    r->payload = payload;
    r->payload_size = payload ? payload_size : 0;
    r->count = tb_shm_packets_count(packets);
    r->flags = tb_shm_packets_flags(packets);
    return 0;
}

int tb_chunk_reader_init(struct tb_chunk_reader *r, const void *chunk, size_t chunk_size)
{
    uint16_t packets;

    if (!chunk || chunk_size < TB_SHM_CHUNK_HEADER_SIZE) {
        memset(r, 0, sizeof(*r));
        return -EINVAL;
    }
    /* The copy may be unaligned: read the u16 bytewise (little-endian ABI). */
    memcpy(&packets, (const uint8_t *)chunk + 6, sizeof(packets));
    return tb_chunk_reader_init_payload(r, packets, (const uint8_t *)chunk + 8,
                                        chunk_size - TB_SHM_CHUNK_HEADER_SIZE);
}

int tb_chunk_reader_next(struct tb_chunk_reader *r, struct tb_chunk_record *rec)
{
    while (!r->corrupt && r->next_index < r->count) {
        uint16_t index = r->next_index++;
        bool first = index == 0 && (r->flags & TB_SHM_FLAG_FIRST_CONTINUES);
        bool last = index == r->count - 1 && (r->flags & TB_SHM_FLAG_LAST_CONTINUES);
        size_t avail = r->payload_size - r->off;
        uint32_t size;
        int n;

        n = tb_chunk_read_varint(r->payload + r->off, avail, &size);
        if (n < 0) {
            r->corrupt = true;
            break;
        }
        if (size == TB_SHM_PACKET_SIZE_DROP) {
            /*
             * The writer gave up on this packet (SMB full while fragmenting)
             * and wrote no bytes behind the sentinel, so no record can follow
             * it: the chunk ends here, cleanly.
             */
            r->aborted++;
            r->aborted_first |= first;
            r->aborted_last |= last;
            r->off += (size_t)n;
            r->next_index = r->count;
            return 0;
        }
        if (size > avail - (size_t)n) {
            r->corrupt = true;
            break;
        }
        rec->data = r->payload + r->off + n;
        rec->len = size;
        rec->offset = (uint32_t)(r->off + (size_t)n);
        rec->index = index;
        rec->continues_from_prev = first;
        rec->continues_on_next = last;
        r->off += (size_t)n + size;
        if (size == 0 && !first && !last) {
            r->empty++;
            continue;
        }
        return 1;
    }
    return r->corrupt ? -EBADMSG : 0;
}

int tb_chunk_apply_patch(uint8_t *payload, size_t payload_size, uint32_t offset,
                         const uint8_t *data, size_t data_len)
{
    if (!payload || !data || data_len != TB_SHM_PATCH_SIZE || payload_size < TB_SHM_PATCH_SIZE ||
        offset > payload_size - TB_SHM_PATCH_SIZE)
        return -EINVAL;
    memcpy(payload + offset, data, TB_SHM_PATCH_SIZE);
    return 0;
}
