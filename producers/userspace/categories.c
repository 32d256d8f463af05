/*
 * categories.c - the category registry and which categories a config
 * enables.
 *
 * Categories are static structs the app defines; constructors register
 * them here before main(). A data source config (TrackEventConfig) or the
 * standalone category list decides each category's enabled byte, following
 * Perfetto's order of precedence: for exact matches first, then for glob
 * matches, check enabled categories, enabled tags, disabled categories,
 * disabled tags; the first hit decides; no hit means enabled. Without any
 * disabled_tags, the tags "slow" and "debug" count as disabled, and a name
 * starting with "disabled-by-default-" carries the tag "slow" implicitly.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "producers/userspace/lib_internal.h"

#define MAX_CATEGORIES 4096
#define SLOW_PREFIX    "disabled-by-default-"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tracebpf_category *reg_head;
static size_t reg_count;
/* The selection in force, applied to late registrations; NULL: none. */
static struct tbl_catcfg cur_cfg;
static bool cur_active;

int tbl_catcfg_add(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));

    if (!nv)
        return -ENOMEM;
    *v = nv;
    nv[*n] = strdup(s);
    if (!nv[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void tbl_catcfg_free(struct tbl_catcfg *c)
{
    if (!c)
        return;
    free_list(c->enabled_categories, c->n_enabled_categories);
    free_list(c->disabled_categories, c->n_disabled_categories);
    free_list(c->enabled_tags, c->n_enabled_tags);
    free_list(c->disabled_tags, c->n_disabled_tags);
    memset(c, 0, sizeof(*c));
}

static int copy_cfg(struct tbl_catcfg *dst, const struct tbl_catcfg *src)
{
    int err = 0;

    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; !err && i < src->n_enabled_categories; i++)
        err = tbl_catcfg_add(&dst->enabled_categories, &dst->n_enabled_categories,
                             src->enabled_categories[i]);
    for (size_t i = 0; !err && i < src->n_disabled_categories; i++)
        err = tbl_catcfg_add(&dst->disabled_categories, &dst->n_disabled_categories,
                             src->disabled_categories[i]);
    for (size_t i = 0; !err && i < src->n_enabled_tags; i++)
        err = tbl_catcfg_add(&dst->enabled_tags, &dst->n_enabled_tags, src->enabled_tags[i]);
    for (size_t i = 0; !err && i < src->n_disabled_tags; i++)
        err = tbl_catcfg_add(&dst->disabled_tags, &dst->n_disabled_tags, src->disabled_tags[i]);
    if (err)
        tbl_catcfg_free(dst);
    return err;
}

int tbl_catcfg_parse_list(struct tbl_catcfg *c, const char *list)
{
    char *copy = strdup(list), *save = NULL, *tok;
    int err = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (*tok == '-')
            err = tbl_catcfg_add(&c->disabled_categories, &c->n_disabled_categories, tok + 1);
        else
            err = tbl_catcfg_add(&c->enabled_categories, &c->n_enabled_categories, tok);
    }
    free(copy);
    return err;
}

static bool match_one(const char *pattern, const char *name, bool exact)
{
    if (exact)
        return strcmp(pattern, name) == 0;
    return fnmatch(pattern, name, 0) == 0;
}

static bool match_list(char *const *v, size_t n, const char *name, bool exact)
{
    for (size_t i = 0; i < n; i++)
        if (match_one(v[i], name, exact))
            return true;
    return false;
}

/* Call @fn on each tag of @tags (comma-separated) plus the implicit ones. */
static bool any_tag(const char *name, const char *tags, bool (*fn)(const char *tag, void *ctx),
                    void *ctx)
{
    char buf[64];
    const char *p = tags;

    if (!strncmp(name, SLOW_PREFIX, strlen(SLOW_PREFIX)) && fn("slow", ctx))
        return true;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);

        if (len && len < sizeof(buf)) {
            memcpy(buf, p, len);
            buf[len] = 0;
            if (fn(buf, ctx))
                return true;
        }
        p = e ? e + 1 : NULL;
    }
    return false;
}

struct tag_match {
    char *const *v;
    size_t n;
    bool exact;
};

static bool tag_in_list(const char *tag, void *ctx)
{
    struct tag_match *m = ctx;

    return match_list(m->v, m->n, tag, m->exact);
}

bool tbl_catcfg_match(const struct tbl_catcfg *c, const char *name, const char *tags)
{
    static char *const default_disabled_tags[] = {"slow", "debug"};

    for (int pass = 0; pass < 2; pass++) {
        bool exact = pass == 0;
        struct tag_match m = {c->enabled_tags, c->n_enabled_tags, exact};

        if (match_list(c->enabled_categories, c->n_enabled_categories, name, exact))
            return true;
        if (any_tag(name, tags, tag_in_list, &m))
            return true;
        if (match_list(c->disabled_categories, c->n_disabled_categories, name, exact))
            return false;
        if (c->n_disabled_tags) {
            m = (struct tag_match){c->disabled_tags, c->n_disabled_tags, exact};
        } else {
            m = (struct tag_match){default_disabled_tags, 2, exact};
        }
        if (any_tag(name, tags, tag_in_list, &m))
            return false;
    }
    return true;
}

static void set_enabled(struct tracebpf_category *cat)
{
    bool on = cur_active && tbl_catcfg_match(&cur_cfg, cat->name, cat->tags);

    __atomic_store_n(&cat->enabled, on ? 1 : 0, __ATOMIC_RELAXED);
}

int tbl_categories_apply(const struct tbl_catcfg *c)
{
    struct tbl_catcfg copy = {0};
    int err = 0;

    if (c) {
        err = copy_cfg(&copy, c);
        if (err)
            return err;
    }
    pthread_mutex_lock(&reg_lock);
    tbl_catcfg_free(&cur_cfg);
    cur_cfg = copy;
    cur_active = c != NULL;
    for (struct tracebpf_category *cat = reg_head; cat; cat = cat->next)
        set_enabled(cat);
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

void tbl_categories_foreach(void (*fn)(const struct tracebpf_category *cat, void *ctx), void *ctx)
{
    pthread_mutex_lock(&reg_lock);
    for (struct tracebpf_category *cat = reg_head; cat; cat = cat->next)
        fn(cat, ctx);
    pthread_mutex_unlock(&reg_lock);
}

TRACEBPF_API int tracebpf_category_register(struct tracebpf_category *cat)
{
    bool added = false;
    int err = 0;

    if (!cat || !cat->name || !*cat->name)
        return -EINVAL;
    pthread_mutex_lock(&reg_lock);
    if (cat->registered)
        goto out;
    if (reg_count >= MAX_CATEGORIES) {
        err = -ENOSPC;
        goto out;
    }
    cat->index = (uint16_t)reg_count++;
    cat->registered = 1;
    cat->next = reg_head;
    reg_head = cat;
    set_enabled(cat);
    added = true;
out:
    pthread_mutex_unlock(&reg_lock);
    /* Outside reg_lock: building the descriptor walks the registry. */
    if (added)
        tbl_producer_categories_changed();
    return err;
}

/* Set by an atexit handler, which runs before any ELF destructor. */
static bool exiting;

static void mark_exiting(void)
{
    __atomic_store_n(&exiting, true, __ATOMIC_RELAXED);
}

void tbl_categories_watch_exit(void)
{
    atexit(mark_exiting);
}

TRACEBPF_API void tracebpf_category_unregister(struct tracebpf_category *cat)
{
    struct tracebpf_category **pp;
    bool removed = false;

    if (!cat)
        return;
    pthread_mutex_lock(&reg_lock);
    for (pp = &reg_head; *pp; pp = &(*pp)->next) {
        if (*pp == cat) {
            *pp = cat->next;
            cat->next = NULL;
            cat->registered = 0;
            __atomic_store_n(&cat->enabled, 0, __ATOMIC_RELAXED);
            reg_count--;
            removed = true;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    /*
     * Announced like a registration (a plugin unloaded with dlclose() takes
     * its categories off the service's list), except while the process
     * exits: every TRACEBPF_DEFINE_CATEGORY() unregisters from a destructor
     * then, and one descriptor per category would make exit quadratic.
     */
    if (removed && !__atomic_load_n(&exiting, __ATOMIC_RELAXED))
        tbl_producer_categories_changed();
}
