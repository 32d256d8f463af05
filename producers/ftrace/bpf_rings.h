/*
 * bpf_rings.h - the maps every BPF unit shares (per-CPU ring buffers behind
 * an ARRAY_OF_MAPS, per-CPU loss counters, the traced-tgid hash) and the one
 * drain thread that empties the rings on a timer or when a ring fills up.
 */
#ifndef TB_PRODUCERS_FTRACE_BPF_RINGS_H
#define TB_PRODUCERS_FTRACE_BPF_RINGS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bpf_map;
struct tb_bpf_rings;

/*
 * tb_bpf_record_fn - called on the drain thread for every record, in ring
 * order (per ring; rings are visited one after the other). @rec is borrowed,
 * valid only during the call; @size is the record's size in bytes.
 * Return 0 to go on, negative errno to stop this drain pass.
 */
typedef int (*tb_bpf_record_fn)(void *ctx, const void *rec, size_t size);

/*
 * struct tb_bpf_rings_opts - @ring_bytes: size of each ring (rounded up to a
 * power of two, 0 = TB_RING_DEFAULT_BYTES); @cpus_per_ring: CPUs sharing one
 * ring (0 = 1); @wakeup_percent: fill level in percent at which a BPF program
 * wakes the drain thread early (0 = 50); @drain_period_ms: timer period of
 * the drain thread (0 = 100).
 */
struct tb_bpf_rings_opts {
    size_t ring_bytes;
    unsigned int cpus_per_ring;
    unsigned int wakeup_percent;
    unsigned int drain_period_ms;
};

/* struct tb_bpf_loss - loss counters summed over CPUs. */
struct tb_bpf_loss {
    uint64_t total;
    uint64_t dropped;
};

/*
 * tb_bpf_rings_new() - create the shared maps (one ring per CPU group).
 * @opts: may be NULL for defaults.
 * @out: receives the rings; free with tb_bpf_rings_free().
 * Return: 0 or negative errno (logged). Context: needs CAP_BPF.
 */
int tb_bpf_rings_new(const struct tb_bpf_rings_opts *opts, struct tb_bpf_rings **out);

/* tb_bpf_rings_free() - stop the drain thread and close every map. NULL ok. */
void tb_bpf_rings_free(struct tb_bpf_rings *r);

/*
 * tb_bpf_rings_share() - make an opened, not yet loaded object use the shared
 * maps instead of its own copies. @rings, @stats, @tgids are the object's
 * tb_rings, tb_stats and tb_tgids maps (borrowed).
 * Return: 0 or negative errno (logged).
 */
int tb_bpf_rings_share(struct tb_bpf_rings *r, struct bpf_map *rings, struct bpf_map *stats,
                       struct bpf_map *tgids);

/* tb_bpf_rings_cpus_per_ring() - value for the units' tb_cpus_per_ring rodata. */
unsigned int tb_bpf_rings_cpus_per_ring(const struct tb_bpf_rings *r);

/* tb_bpf_rings_wakeup_bytes() - value for the units' tb_wakeup_bytes rodata. */
uint64_t tb_bpf_rings_wakeup_bytes(const struct tb_bpf_rings *r);

/*
 * tb_bpf_rings_add_tgid() - let @tgid (and, through the fork programs, its
 * future children) pass the pid filter. Return: 0 or negative errno.
 */
int tb_bpf_rings_add_tgid(struct tb_bpf_rings *r, pid_t tgid);

/* tb_bpf_rings_has_tgid() - is @tgid in the traced-tgid map? */
int tb_bpf_rings_has_tgid(const struct tb_bpf_rings *r, pid_t tgid);

/*
 * tb_bpf_rings_start() - start the drain thread, calling @fn(@ctx, ...) for
 * every record. Return: 0 or negative errno (logged).
 */
int tb_bpf_rings_start(struct tb_bpf_rings *r, tb_bpf_record_fn fn, void *ctx);

/*
 * tb_bpf_rings_stop() - drain what is left and join the drain thread.
 * Safe to call when not started. Context: not from the drain thread.
 */
void tb_bpf_rings_stop(struct tb_bpf_rings *r);

/*
 * tb_bpf_rings_consume() - drain every ring now on the calling thread.
 * With the drain thread running, only that thread's callback sees records;
 * this then just asks it to drain at once (fn and ctx are ignored).
 * Return: records consumed (0 when delegated) or negative errno.
 */
int tb_bpf_rings_consume(struct tb_bpf_rings *r, tb_bpf_record_fn fn, void *ctx);

/* tb_bpf_rings_loss() - @out gets total/dropped summed over CPUs. */
int tb_bpf_rings_loss(const struct tb_bpf_rings *r, struct tb_bpf_loss *out);

/* tb_bpf_rings_loss_cpu() - @out gets the counters of @cpu only. */
int tb_bpf_rings_loss_cpu(const struct tb_bpf_rings *r, unsigned int cpu, struct tb_bpf_loss *out);

#endif /* TB_PRODUCERS_FTRACE_BPF_RINGS_H */
