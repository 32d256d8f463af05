/*
 * trace_seq.h - per-sequence state a trace reader must keep to make sense
 * of SDK-style packets: interned names and categories, trace packet
 * defaults (clock, track), and sequence-scoped clocks 64-127 (incremental
 * or absolute) mapped to BOOTTIME through the sequence's clock snapshots.
 * Keyed by trusted_packet_sequence_id; reset when a packet says the
 * incremental state was cleared.
 */
#ifndef TB_CONSUMER_TRACE_SEQ_H
#define TB_CONSUMER_TRACE_SEQ_H

#include "consumer/idmap.h"
#include "perfetto/trace/trace_packet.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

/* All sequences of one trace. */
struct tb_seqs {
    struct tb_idmap by_id; /* sequence id -> struct tb_seq (private) */
};

/* tb_seqs_init() - empty state. Free with tb_seqs_free(). */
void tb_seqs_init(struct tb_seqs *s);

/* tb_seqs_free() - drop every sequence and its interned strings. */
void tb_seqs_free(struct tb_seqs *s);

/*
 * tb_seqs_packet() - apply @p's sequence-scoped content (clears, defaults,
 * interned data, clock snapshots) and resolve its timestamp.
 * @ts:     receives the timestamp in BOOTTIME ns when the packet has one
 *          that can be resolved (builtin clocks are taken as BOOTTIME).
 * Return: 1 when *@ts is set, 0 when the packet has no usable timestamp,
 * -ENOMEM.
 * Context: call for every packet, in file order (incremental clocks
 * depend on it).
 */
int tb_seqs_packet(struct tb_seqs *s, const Perfetto__Protos__TracePacket *p, uint64_t *ts);

/*
 * tb_seqs_name() / tb_seqs_category() - an interned event name or category
 * of the packet's sequence. Return: owned by @s, valid until the sequence's
 * incremental state is cleared or tb_seqs_free(); NULL when unknown.
 */
const char *tb_seqs_name(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                         uint64_t iid);
const char *tb_seqs_category(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                             uint64_t iid);

/*
 * tb_seqs_default_track() - the track_uuid from the sequence's
 * track_event_defaults. Return: true and *@uuid set when there is one.
 */
bool tb_seqs_default_track(const struct tb_seqs *s, const Perfetto__Protos__TracePacket *p,
                           uint64_t *uuid);

#endif /* TB_CONSUMER_TRACE_SEQ_H */
