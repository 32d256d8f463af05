/*
 * chunk_reader.h - parsing the records of an untrusted chunk.
 *
 * The service copies a chunk out of a producer's SMB and hands the copy to
 * this reader, which walks its `count` records (spec: shm_abi.h, "A record
 * is a varint size ..."). Every size is checked against the copy's bounds, so
 * no producer bytes can make the reader step outside the buffer it was given.
 * The trace buffer and the chunk fuzzer both go through here. Patches (4
 * bytes at a payload offset) are applied with tb_chunk_apply_patch().
 */
#ifndef TB_COMMON_CHUNK_READER_H
#define TB_COMMON_CHUNK_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracebpf/shm_abi.h"

/*
 * struct tb_chunk_record - one record returned by tb_chunk_reader_next().
 * @data: first byte of the record, inside the buffer given to the reader
 *        (borrowed, valid as long as that buffer).
 * @len: record length in bytes (may be 0 only for a fragment, see below).
 * @offset: offset of @data from the payload start (patch offsets use this
 *        base).
 * @index: position of the record among the chunk's `count` records.
 * @continues_from_prev: this is the first record and the chunk has
 *        TB_SHM_FLAG_FIRST_CONTINUES: a continuation of a packet started in
 *        chunk_id - 1 of the same writer.
 * @continues_on_next: this is the last record and the chunk has
 *        TB_SHM_FLAG_LAST_CONTINUES: the packet continues in chunk_id + 1.
 */
struct tb_chunk_record {
    const uint8_t *data;
    uint32_t len;
    uint32_t offset;
    uint16_t index;
    bool continues_from_prev;
    bool continues_on_next;
};

/*
 * struct tb_chunk_reader - iteration state; fields are read-only for callers.
 * @aborted: records skipped because their size was the drop sentinel
 *        (FF FF FF 7F, "writer aborted this packet"; count as
 *        trace_writer_packet_loss). If the aborted record was a fragment
 *        (first or last record of a chunk with the matching flag), the packet
 *        it belonged to is lost: @aborted_first / @aborted_last say so.
 *        The writer puts nothing behind a sentinel, so reading stops there
 *        (cleanly: tb_chunk_reader_next() returns 0).
 * @empty: zero-length records skipped (inflated-count padding).
 * @corrupt: set once a record ran past the buffer or its size varint was
 *        longer than 4 bytes; iteration has stopped for good.
 */
struct tb_chunk_reader {
    const uint8_t *payload;
    size_t payload_size;
    size_t off;
    uint16_t count;
    uint16_t next_index;
    uint8_t flags;
    bool corrupt;
    bool aborted_first;
    bool aborted_last;
    uint32_t aborted;
    uint32_t empty;
};

/*
 * tb_chunk_reader_init() - start reading a copied chunk (header included).
 * @r: reader to initialise.
 * @chunk: copy of the whole chunk, 8-byte header first (borrowed; must stay
 *        valid while @r is used; may be unaligned).
 * @chunk_size: bytes in @chunk.
 * Return: 0, or -EINVAL if @chunk_size is smaller than the chunk header.
 * Context: the chunk must be a private copy: a buffer still shared with the
 * producer can change between the check and the use.
 */
int tb_chunk_reader_init(struct tb_chunk_reader *r, const void *chunk, size_t chunk_size);

/*
 * tb_chunk_reader_init_payload() - start reading a payload whose header was
 * stored apart (the trace buffer keeps the packets u16 next to the payload).
 * @packets: the chunk header's packets u16 (count | flags << 10).
 * @payload: the payload bytes (borrowed, as above); @payload_size: its length.
 * Return: 0 (kept as int for symmetry and future checks).
 */
int tb_chunk_reader_init_payload(struct tb_chunk_reader *r, uint16_t packets, const void *payload,
                                 size_t payload_size);

/*
 * tb_chunk_reader_next() - the next record worth returning.
 * @rec: filled when 1 is returned.
 *
 * Zero-length records are skipped silently unless they carry a fragment role
 * (continues_from_prev / continues_on_next), which reassembly needs. Aborted
 * (drop sentinel) records are skipped and counted.
 * Return: 1 a record was returned; 0 all `count` records were read;
 * -EBADMSG the chunk is corrupt (size varint over 4 bytes, or a record past
 * the end): stop, count an ABI violation, keep the records already returned
 * or drop the chunk (the caller's policy). Further calls keep returning
 * -EBADMSG.
 */
int tb_chunk_reader_next(struct tb_chunk_reader *r, struct tb_chunk_record *rec);

/*
 * tb_chunk_read_varint() - decode a size prefix of at most 4 bytes.
 * @buf/@len: bytes available; @val: decoded value.
 * Return: bytes consumed (1..4), or -EBADMSG if the varint is truncated or
 * would need a fifth byte.
 */
int tb_chunk_read_varint(const uint8_t *buf, size_t len, uint32_t *val);

/*
 * tb_chunk_apply_patch() - write a patch into a copied chunk payload.
 * @payload/@payload_size: the payload (chunk bytes after the 8-byte header).
 * @offset: patch offset from the payload start (as sent by the producer).
 * @data/@data_len: patch bytes; must be exactly TB_SHM_PATCH_SIZE (4).
 * Return: 0, or -EINVAL if @data_len != 4 or @offset + 4 > @payload_size
 * (nothing written).
 */
int tb_chunk_apply_patch(uint8_t *payload, size_t payload_size, uint32_t offset,
                         const uint8_t *data, size_t data_len);

#endif /* TB_COMMON_CHUNK_READER_H */
