/*
 * te_decode.h - reading track events back out of a Perfetto trace: the
 * Chrome JSON exporter's input, and the oracle of libtracebpf's tests.
 *
 * tbl_decode() parses a serialized Trace with protobuf-c, then resolves
 * what is sequence-scoped (interned names, incremental clock 64, default
 * tracks) the way Trace Processor does, and returns flat events and tracks.
 */
#ifndef TB_LIB_TE_DECODE_H
#define TB_LIB_TE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "producers/userspace/lib_internal.h"

struct tbl_dannot {
    const char *name;
    uint32_t type; /* TRACEBPF_ARG_INT ... TRACEBPF_ARG_POINTER */
    union {
        int64_t i;
        uint64_t u;
        double d;
        bool b;
        const char *s;
    } v;
};

struct tbl_dtrack {
    uint64_t uuid;
    uint64_t parent;
    int32_t pid; /* process of the track (walked up for custom tracks) */
    int64_t tid; /* thread tracks only, else 0 */
    const char *name;
    const char *const *cmdline; /* process tracks: the arguments */
    size_t ncmdline;
    bool is_process;
    bool is_thread;
    bool is_counter;
};

struct tbl_devent {
    uint64_t ts;   /* CLOCK_BOOTTIME ns */
    uint32_t type; /* enum tracebpf_event_type */
    uint32_t seq;  /* trusted_packet_sequence_id */
    const char *cat;
    const char *name;
    uint64_t track_uuid;
    bool has_counter;
    bool counter_is_double;
    int64_t ci;
    double cd;
    struct tbl_dannot *annots;
    size_t nannots;
    const uint64_t *flows;
    size_t nflows;
    const uint64_t *term_flows;
    size_t nterm_flows;
    uint32_t dropped_before; /* previous_packet_dropped of its packet */
};

/*
 * struct tbl_decoded - the result. Strings point into the parsed trace,
 * which the struct owns. Free with tbl_decoded_free().
 * @unresolved: events whose interned name or category was not defined on
 *     their sequence (a broken producer; should be 0).
 * @seq_starts: packets with SEQ_INCREMENTAL_STATE_CLEARED.
 * @dropped_marks: packets carrying previous_packet_dropped.
 */
struct tbl_decoded {
    struct tbl_devent *ev;
    size_t nev;
    struct tbl_dtrack *tracks;
    size_t ntracks;
    size_t npackets;
    size_t unresolved;
    size_t seq_starts;
    size_t dropped_marks;
    void *priv;
};

/*
 * tbl_decode() - decode @len bytes of a Trace.
 * Return: 0, -EBADMSG (not a Trace), -ENOMEM. *@out owned by the caller.
 */
int tbl_decode(const uint8_t *buf, size_t len, struct tbl_decoded **out) TBL_HIDDEN;

/* tbl_decoded_free() - free a decode result. NULL is a no-op. */
void tbl_decoded_free(struct tbl_decoded *d) TBL_HIDDEN;

/* tbl_decoded_track() - the track with @uuid, or NULL. */
const struct tbl_dtrack *tbl_decoded_track(const struct tbl_decoded *d, uint64_t uuid) TBL_HIDDEN;

#endif /* TB_LIB_TE_DECODE_H */
