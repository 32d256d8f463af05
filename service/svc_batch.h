/*
 * svc_batch.h - packets gathered into a batch of Trace records
 * ("0A varint(len) packet", common/trace_frame.h), the unit in which the
 * service writes files and compresses: write_into_file appends to a batch
 * and writes it out past a size; with deflate, a batch becomes one
 * compressed_packets packet, on the file path and on the ReadBuffers path
 * alike (tb_svc_deflate_*), so memory stays bounded by one batch.
 */
#ifndef TB_SERVICE_SVC_BATCH_H
#define TB_SERVICE_SVC_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "service/core.h"

/* A growable run of records; zero-initialise, free with tb_svc_batch_free(). */
struct tb_svc_batch {
    uint8_t *buf; /* owned */
    size_t len, cap;
};

/* tb_svc_batch_record_size() - bytes the packet @sl[0..@n) takes as a record. */
size_t tb_svc_batch_record_size(const struct tb_svc_slice *sl, size_t n);

/*
 * tb_svc_batch_add() - append the packet made of @n slices (borrowed, copied)
 * as one record.
 * Return: 0 or -ENOMEM (the batch is unchanged then).
 */
int tb_svc_batch_add(struct tb_svc_batch *b, const struct tb_svc_slice *sl, size_t n);

/* tb_svc_batch_free() - free the buffer; the batch may be reused after. */
void tb_svc_batch_free(struct tb_svc_batch *b);

/*
 * A tb_svc_packet_fn adapter that deflates: packets handed to
 * tb_svc_deflate_packet() gather in @batch; past @limit bytes the batch goes
 * to @fn as one compressed_packets packet (stamped with @uid as a service
 * packet), and tb_svc_deflate_flush() sends the rest. @fn sees only whole
 * batches, so when it returns an error (e.g. -EAGAIN to pause a read) no
 * packet is left half way: the batch was handed over and emptied.
 */
struct tb_svc_deflate {
    struct tb_svc_batch batch;
    size_t limit;
    uid_t uid;
    tb_svc_packet_fn fn;
    void *ctx;
};

/* tb_svc_deflate_packet() - a tb_svc_packet_fn; @ctx is a tb_svc_deflate. */
int tb_svc_deflate_packet(void *ctx, const struct tb_svc_slice *sl, size_t n);

/*
 * tb_svc_deflate_flush() - send what the batch holds (nothing when empty).
 * Return: 0, -ENOMEM, -EIO (zlib), or @fn's error.
 */
int tb_svc_deflate_flush(struct tb_svc_deflate *d);

#endif /* TB_SERVICE_SVC_BATCH_H */
