/*
 * compact_sched.c - encodes the compact sched form of a bundle (see
 * compact_sched.h). Field numbers are FtraceEventBundle.CompactSched's.
 */
#include "producers/ftrace/compact_sched.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/sched.h"
#include "common/pb_writer.h"

enum {
    CS_SWITCH_TS = 1,
    CS_SWITCH_PREV_STATE = 2,
    CS_SWITCH_NEXT_PID = 3,
    CS_SWITCH_NEXT_PRIO = 4,
    CS_INTERN_TABLE = 5,
    CS_SWITCH_NEXT_COMM = 6,
    CS_WAKING_TS = 7,
    CS_WAKING_PID = 8,
    CS_WAKING_TARGET_CPU = 9,
    CS_WAKING_PRIO = 10,
    CS_WAKING_COMM = 11,
    CS_WAKING_FLAGS = 12,
};

/* Open-addressing table of the bundle's distinct comms. */
struct intern {
    const char **str; /* in first-seen order: the intern table */
    uint32_t *slot;   /* hash slot -> index + 1, 0 = empty */
    size_t nr, mask;
};

static uint32_t hash_comm(const char *s)
{
    uint32_t h = 2166136261u;

    for (int i = 0; i < TB_COMM_LEN && s[i]; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t intern(struct intern *t, const char *comm)
{
    size_t i = hash_comm(comm) & t->mask;

    while (t->slot[i]) {
        const char *s = t->str[t->slot[i] - 1];

        if (!strncmp(s, comm, TB_COMM_LEN))
            return t->slot[i] - 1;
        i = (i + 1) & t->mask;
    }
    t->str[t->nr] = comm;
    t->slot[i] = (uint32_t)++t->nr;
    return t->nr - 1;
}

static void put_raw(struct tb_pbw *w, uint64_t v)
{
    uint8_t tmp[10];

    tb_pbw_write(w, tmp, tb_pbw_encode_varint(tmp, v));
}

/* Packed arrays: one nested length-delimited field of bare varints. */
#define PACKED(w, field, n, expr)         \
    do {                                  \
        if (!(n))                         \
            break;                        \
        tb_pbw_begin_nested(w, field);    \
        for (size_t i = 0; i < (n); i++)  \
            put_raw(w, (uint64_t)(expr)); \
        tb_pbw_end_nested(w);             \
    } while (0)

int tb_compact_sched_encode(struct tb_pbw *w, unsigned int field, const struct tb_sched_switch *sw,
                            size_t nr_sw, const struct tb_sched_wake *wk, size_t nr_wk)
{
    uint32_t *sw_comm = NULL, *wk_comm = NULL;
    struct intern t = {0};
    size_t cap = 16, i;
    int err = 0;

    while (cap < 2 * (nr_sw + nr_wk))
        cap <<= 1;
    t.mask = cap - 1;
    t.slot = calloc(cap, sizeof(*t.slot));
    t.str = calloc(nr_sw + nr_wk + 1, sizeof(*t.str));
    sw_comm = calloc(nr_sw + 1, sizeof(*sw_comm));
    wk_comm = calloc(nr_wk + 1, sizeof(*wk_comm));
    if (!t.slot || !t.str || !sw_comm || !wk_comm) {
        err = -ENOMEM;
        goto out;
    }
    for (i = 0; i < nr_sw; i++)
        sw_comm[i] = intern(&t, sw[i].next_comm);
    for (i = 0; i < nr_wk; i++)
        wk_comm[i] = intern(&t, wk[i].comm);

    tb_pbw_begin_nested(w, field);
    for (i = 0; i < t.nr; i++)
        tb_pbw_append_bytes(w, CS_INTERN_TABLE, t.str[i], strnlen(t.str[i], TB_COMM_LEN));
    /* Each kind keeps its own delta chain, first value absolute. */
    PACKED(w, CS_SWITCH_TS, nr_sw, i ? sw[i].hdr.ts - sw[i - 1].hdr.ts : sw[0].hdr.ts);
    PACKED(w, CS_SWITCH_PREV_STATE, nr_sw, (int64_t)sw[i].prev_state);
    PACKED(w, CS_SWITCH_NEXT_PID, nr_sw, (int64_t)sw[i].next_pid);
    PACKED(w, CS_SWITCH_NEXT_PRIO, nr_sw, (int64_t)sw[i].next_prio);
    PACKED(w, CS_SWITCH_NEXT_COMM, nr_sw, sw_comm[i]);
    PACKED(w, CS_WAKING_TS, nr_wk, i ? wk[i].hdr.ts - wk[i - 1].hdr.ts : wk[0].hdr.ts);
    PACKED(w, CS_WAKING_PID, nr_wk, (int64_t)wk[i].pid);
    PACKED(w, CS_WAKING_TARGET_CPU, nr_wk, (int64_t)wk[i].target_cpu);
    PACKED(w, CS_WAKING_PRIO, nr_wk, (int64_t)wk[i].prio);
    PACKED(w, CS_WAKING_COMM, nr_wk, wk_comm[i]);
    PACKED(w, CS_WAKING_FLAGS, nr_wk, 0);
    tb_pbw_end_nested(w);
    err = tb_pbw_error(w);
out:
    free(t.slot);
    free(t.str);
    free(sw_comm);
    free(wk_comm);
    return err;
}
