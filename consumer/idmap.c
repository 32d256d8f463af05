/*
 * idmap.c - u64 -> pointer hash map with linear probing. Keys are mixed
 * with a 64-bit finaliser so sequential ids spread; a NULL value marks an
 * empty slot, so NULL cannot be stored.
 */
#include "consumer/idmap.h"

#include <errno.h>
#include <stdlib.h>

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

void tb_idmap_init(struct tb_idmap *m, void (*free_val)(void *))
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->len = 0;
    m->free_val = free_val;
}

void *tb_idmap_get(const struct tb_idmap *m, uint64_t key)
{
    size_t i;

    if (!m->cap)
        return NULL;
    for (i = mix(key) & (m->cap - 1); m->vals[i]; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return m->vals[i];
    }
    return NULL;
}

static int rehash(struct tb_idmap *m, size_t ncap)
{
    uint64_t *keys = calloc(ncap, sizeof(*keys));
    void **vals = calloc(ncap, sizeof(*vals));
    size_t i, j;

    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        if (!m->vals[i])
            continue;
        for (j = mix(m->keys[i]) & (ncap - 1); vals[j]; j = (j + 1) & (ncap - 1))
            ;
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    return 0;
}

int tb_idmap_put(struct tb_idmap *m, uint64_t key, void *val)
{
    size_t i;

    if ((m->len + 1) * 4 > m->cap * 3 && rehash(m, m->cap ? m->cap * 2 : 16)) {
        if (m->free_val)
            m->free_val(val);
        return -ENOMEM;
    }
    for (i = mix(key) & (m->cap - 1); m->vals[i]; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            if (m->free_val && m->vals[i] != val)
                m->free_val(m->vals[i]);
            m->vals[i] = val;
            return 0;
        }
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->len++;
    return 0;
}

void tb_idmap_clear(struct tb_idmap *m)
{
    size_t i;

    for (i = 0; i < m->cap && m->free_val; i++) {
        if (m->vals[i])
            m->free_val(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    tb_idmap_init(m, m->free_val);
}

int tb_idmap_next(const struct tb_idmap *m, size_t *pos, uint64_t *key, void **val)
{
    for (; *pos < m->cap; (*pos)++) {
        if (m->vals[*pos]) {
            *key = m->keys[*pos];
            *val = m->vals[*pos];
            (*pos)++;
            return 1;
        }
    }
    return 0;
}
