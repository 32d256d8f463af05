/*
 * idmap.h - a small open-addressing hash map from u64 ids to pointers, for
 * the exporters' lookup tables (interned names per sequence, tracks by
 * uuid, sequences by id, pids). Values are owned by the map when a free
 * function is given.
 */
#ifndef TB_CONSUMER_IDMAP_H
#define TB_CONSUMER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct tb_idmap {
    uint64_t *keys;
    void **vals;
    size_t cap; /* power of two, 0 when empty */
    size_t len;
    void (*free_val)(void *); /* may be NULL: values are not owned */
};

/* tb_idmap_init() - an empty map; @free_val frees values on replace/clear. */
void tb_idmap_init(struct tb_idmap *m, void (*free_val)(void *));

/*
 * tb_idmap_get() - the value stored for @key.
 * Return: the value (owned by the map), or NULL when absent.
 */
void *tb_idmap_get(const struct tb_idmap *m, uint64_t key);

/*
 * tb_idmap_put() - store @val for @key, freeing a replaced value. The map
 * takes ownership of @val even on failure (it is freed then).
 * Return: 0 or -ENOMEM.
 */
int tb_idmap_put(struct tb_idmap *m, uint64_t key, void *val);

/* tb_idmap_clear() - drop every entry (freeing values), keep the map usable. */
void tb_idmap_clear(struct tb_idmap *m);

/*
 * tb_idmap_next() - iterate: start with @pos at 0; each call yields one
 * entry. Return: 1 with @key and @val set, 0 when done.
 */
int tb_idmap_next(const struct tb_idmap *m, size_t *pos, uint64_t *key, void **val);

#endif /* TB_CONSUMER_IDMAP_H */
