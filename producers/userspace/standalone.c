/*
 * standalone.c - recording without a daemon (TRACEBPF_OUTPUT=file).
 *
 * The library is its own service: writers take chunks from a private pool
 * (a lazily committed anonymous mapping, handed out with one atomic add, so
 * a chunk switch stays lock-free), patches queue in a list, and at exit or
 * on tracebpf_flush_to_file() the chunks are ordered per writer,
 * reassembled into whole packets, stamped with the fields a service would
 * add (trusted_uid, trusted_packet_sequence_id, trusted_pid) and written as
 * a Perfetto trace, or converted to Chrome JSON for a ".json" name.
 * When the pool is used up, recording stops and every lost event is
 * counted, like a "discard" buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/chunk_reader.h"
#include "common/log.h"
#include "producers/userspace/lib_internal.h"

#define SA_CHUNK_SIZE 4096u
#define SA_DEFAULT_KB (64u * 1024u)
#define SA_MIN_KB     64u
#define SA_BUFFER_ID  1u

enum { SA_FREE = 0, SA_WRITING = 1, SA_COMPLETE = 2 };

struct sa_patch {
    uint16_t writer_id;
    uint32_t chunk_id;
    struct tb_shm_patch p;
};

struct sa_pool {
    uint8_t *mem;
    size_t nchunks;
    _Atomic size_t next;
    _Atomic uint8_t *state;
    pthread_mutex_t lock; /* patches, and one writer of the output at a time */
    struct sa_patch *patches;
    size_t npatches, cap;
    struct tbl_idalloc ids;
    struct tbl_target target;
    char *output;
    pid_t owner;
};

static struct sa_pool *sa;
static bool atexit_done;

struct buf {
    uint8_t *p;
    size_t len, cap;
    int err;
    uid_t uid;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
    if (b->err)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        uint8_t *np;

        while (cap < b->len + n)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->err = -ENOMEM;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];

    buf_put(b, tmp, tb_pbw_encode_varint(tmp, v));
}

/* ---- chunk provider --------------------------------------------------- */

static int sa_get_chunk(void *ctx, uint16_t writer_id, uint32_t chunk_id, uint16_t packets,
                        struct tb_shm_chunk *out)
{
    struct sa_pool *p = ctx;
    size_t idx = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    struct tb_shm_chunk_header *h;

    if (idx >= p->nchunks)
        return -ENOSPC;
    out->begin = p->mem + idx * SA_CHUNK_SIZE;
    out->size = SA_CHUNK_SIZE;
    out->page = (uint32_t)idx;
    out->chunk = 0;
    h = tb_shm_chunk_hdr(out);
    h->chunk_id = chunk_id;
    h->writer_id = writer_id;
    tb_shm_chunk_packets_store(h, packets);
    atomic_store_explicit(&p->state[idx], SA_WRITING, memory_order_release);
    return 0;
}

static int sa_return_chunk(void *ctx, const struct tb_shm_chunk *chunk, uint32_t target_buffer)
{
    struct sa_pool *p = ctx;

    atomic_store_explicit(&p->state[chunk->page], SA_COMPLETE, memory_order_release);
    return 0;
}

static int sa_add_patches(void *ctx, uint32_t target_buffer, uint16_t writer_id, uint32_t chunk_id,
                          const struct tb_shm_patch *patches, size_t n, bool has_more)
{
    struct sa_pool *p = ctx;
    int err = 0;

    pthread_mutex_lock(&p->lock);
    if (p->npatches + n > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        struct sa_patch *np;

        while (cap < p->npatches + n)
            cap *= 2;
        np = realloc(p->patches, cap * sizeof(*np));
        if (!np) {
            err = -ENOMEM;
            goto out;
        }
        p->patches = np;
        p->cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        p->patches[p->npatches++] = (struct sa_patch){writer_id, chunk_id, patches[i]};
out:
    pthread_mutex_unlock(&p->lock);
    return err;
}

static const struct tb_tw_chunk_ops sa_ops = {
    .get_chunk = sa_get_chunk,
    .return_chunk = sa_return_chunk,
    .add_patches = sa_add_patches,
};

/* ---- output ------------------------------------------------------------ */

struct sa_ref {
    uint32_t idx;
    uint32_t chunk_id;
    uint16_t writer_id;
    uint8_t state;
};

static int cmp_ref(const void *a, const void *b)
{
    const struct sa_ref *x = a, *y = b;

    if (x->writer_id != y->writer_id)
        return x->writer_id < y->writer_id ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static int cmp_patch(const void *a, const void *b)
{
    const struct sa_patch *x = a, *y = b;

    if (x->writer_id != y->writer_id)
        return x->writer_id < y->writer_id ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* One whole packet plus the fields a service appends. */
static void emit_packet(struct buf *out, const uint8_t *d, size_t len, uint16_t writer_id)
{
    uint8_t extra[32];
    size_t n = 0;

    n += tb_pbw_encode_tag(extra + n, 3, TB_PBW_VARINT); /* trusted_uid */
    n += tb_pbw_encode_varint(extra + n, (uint64_t)out->uid);
    n += tb_pbw_encode_tag(extra + n, 10, TB_PBW_VARINT); /* trusted_packet_sequence_id */
    n += tb_pbw_encode_varint(extra + n, (uint64_t)writer_id + 1);
    n += tb_pbw_encode_tag(extra + n, 79, TB_PBW_VARINT); /* trusted_pid */
    n += tb_pbw_encode_varint(extra + n, (uint64_t)tbl_g.pid);
    buf_varint(out, (1u << 3) | TB_PBW_LEN);
    buf_varint(out, len + n);
    buf_put(out, d, len);
    buf_put(out, extra, n);
}

struct reasm {
    struct buf pkt;
    bool open;
    uint16_t writer_id;
    uint32_t next_chunk_id;
};

static void read_chunk(struct sa_pool *p, const struct sa_ref *r, struct sa_patch *pt, size_t npt,
                       struct reasm *ra, struct buf *out)
{
    uint8_t copy[SA_CHUNK_SIZE];
    struct tb_shm_chunk_header *h = (struct tb_shm_chunk_header *)(void *)copy;
    struct tb_chunk_reader rd;
    struct tb_chunk_record rec;
    uint16_t packets;

    memcpy(copy, p->mem + (size_t)r->idx * SA_CHUNK_SIZE, SA_CHUNK_SIZE);
    packets = tb_shm_chunk_packets_load((
        const struct tb_shm_chunk_header *)(const void *)(p->mem + (size_t)r->idx * SA_CHUNK_SIZE));
    if (r->state == SA_WRITING) {
        /* Still being written: like a service scrape, the last record may
         * be unfinished, so leave it out. */
        uint16_t count = tb_shm_packets_count(packets);

        packets = tb_shm_packets_make(count ? count - 1 : 0,
                                      tb_shm_packets_flags(packets) & TB_SHM_FLAG_FIRST_CONTINUES);
    }
    h->packets = packets;
    for (size_t i = 0; i < npt; i++)
        tb_chunk_apply_patch(copy + TB_SHM_CHUNK_HEADER_SIZE,
                             SA_CHUNK_SIZE - TB_SHM_CHUNK_HEADER_SIZE, pt[i].p.offset, pt[i].p.data,
                             TB_SHM_PATCH_SIZE);
    if (ra->writer_id != r->writer_id) {
        ra->open = false;
        ra->writer_id = r->writer_id;
    }
    tb_chunk_reader_init(&rd, copy, SA_CHUNK_SIZE);
    while (tb_chunk_reader_next(&rd, &rec) == 1) {
        if (rec.continues_from_prev) {
            if (!ra->open || ra->next_chunk_id != r->chunk_id) {
                ra->open = false;
                continue; /* its start was lost */
            }
            buf_put(&ra->pkt, rec.data, rec.len);
        } else {
            ra->open = false;
            ra->pkt.len = 0;
            buf_put(&ra->pkt, rec.data, rec.len);
        }
        if (rec.continues_on_next) {
            ra->open = true;
            ra->next_chunk_id = r->chunk_id + 1;
            continue;
        }
        ra->open = false;
        if (ra->pkt.len)
            emit_packet(out, ra->pkt.p, ra->pkt.len, r->writer_id);
    }
}

static int collect(struct sa_pool *p, struct buf *out)
{
    size_t used = atomic_load(&p->next), nref = 0, pi = 0;
    struct reasm ra = {0};
    struct sa_ref *refs;

    if (used > p->nchunks)
        used = p->nchunks;
    refs = calloc(used ? used : 1, sizeof(*refs));
    if (!refs)
        return -ENOMEM;
    for (size_t i = 0; i < used; i++) {
        uint8_t st = atomic_load_explicit(&p->state[i], memory_order_acquire);
        const struct tb_shm_chunk_header *h = (const void *)(p->mem + i * SA_CHUNK_SIZE);

        if (st == SA_FREE)
            continue;
        refs[nref++] = (struct sa_ref){(uint32_t)i, h->chunk_id, h->writer_id, st};
    }
    if (nref)
        qsort(refs, nref, sizeof(*refs), cmp_ref);
    pthread_mutex_lock(&p->lock);
    if (p->npatches)
        qsort(p->patches, p->npatches, sizeof(*p->patches), cmp_patch);
    for (size_t i = 0; i < nref; i++) {
        size_t first;

        while (pi < p->npatches &&
               cmp_patch(&p->patches[pi], &(struct sa_patch){refs[i].writer_id, refs[i].chunk_id}) <
                   0)
            pi++;
        first = pi;
        while (pi < p->npatches && p->patches[pi].writer_id == refs[i].writer_id &&
               p->patches[pi].chunk_id == refs[i].chunk_id)
            pi++;
        read_chunk(p, &refs[i], pi > first ? p->patches + first : NULL, pi - first, &ra, out);
    }
    pthread_mutex_unlock(&p->lock);
    free(ra.pkt.p);
    free(refs);
    return out->err;
}

static int write_file(const char *path, const uint8_t *d, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = 0;

    if (fd < 0)
        return -errno;
    while (len) {
        ssize_t n = write(fd, d, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        d += n;
        len -= (size_t)n;
    }
    if (close(fd) && !err)
        err = -errno;
    return err;
}

static bool is_json(const char *path)
{
    size_t n = strlen(path);

    return n >= 5 && !strcmp(path + n - 5, ".json");
}

int tbl_standalone_write(const char *path)
{
    struct sa_pool *p = sa;
    struct buf out = {.uid = getuid()};
    int err;

    if (!p)
        return -ENOTCONN;
    if (!path)
        path = p->output;
    err = collect(p, &out);
    if (!err)
        err = is_json(path) ? tbl_json_export(out.p, out.len, path)
                            : write_file(path, out.p, out.len);
    if (err)
        tb_err("tracebpf: cannot write trace %s: %s", path, strerror(-err));
    free(out.p);
    return err;
}

/* ---- life cycle ---------------------------------------------------------- */

static void sa_atexit(void)
{
    struct sa_pool *p = sa;

    /* A forked child inherits the handler but not the right to the file. */
    if (!p || p->owner != getpid())
        return;
    tbl_tls_flush();
    tbl_standalone_stop();
}

int tbl_standalone_start(const char *output, const char *categories, uint32_t buffer_kb)
{
    struct tbl_catcfg cfg = {0};
    struct sa_pool *p;
    int err;

    if (!buffer_kb)
        buffer_kb = SA_DEFAULT_KB;
    if (buffer_kb < SA_MIN_KB)
        buffer_kb = SA_MIN_KB;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->nchunks = (size_t)buffer_kb * 1024u / SA_CHUNK_SIZE;
    p->mem = mmap(NULL, p->nchunks * SA_CHUNK_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    p->state = calloc(p->nchunks, 1);
    p->output = strdup(output);
    if (p->mem == MAP_FAILED || !p->state || !p->output) {
        err = -ENOMEM;
        goto fail;
    }
    pthread_mutex_init(&p->lock, NULL);
    tbl_idalloc_init(&p->ids);
    p->owner = getpid();
    p->target = (struct tbl_target){
        .ops = &sa_ops, .ops_ctx = p, .target_buffer = SA_BUFFER_ID, .ids = &p->ids};
    if (categories && *categories) {
        err = tbl_catcfg_parse_list(&cfg, categories);
        if (err)
            goto fail;
    }
    err = tbl_categories_apply(&cfg);
    tbl_catcfg_free(&cfg);
    if (err)
        goto fail;
    sa = p;
    atomic_fetch_add(&tbl_g.sessions, 1);
    tbl_set_target(&p->target);
    if (!atexit_done) {
        atexit(sa_atexit);
        atexit_done = true;
    }
    tb_debug("tracebpf: standalone recording to %s (%u KiB)", output, buffer_kb);
    return 0;
fail:
    tb_err("tracebpf: cannot start standalone recording: %s", strerror(-err));
    if (p->mem && p->mem != MAP_FAILED)
        munmap(p->mem, p->nchunks * SA_CHUNK_SIZE);
    free((void *)p->state);
    free(p->output);
    free(p);
    return err;
}

void tbl_standalone_stop(void)
{
    struct sa_pool *p = sa;

    if (!p)
        return;
    tbl_categories_apply(NULL);
    tbl_set_target(NULL);
    tbl_standalone_write(NULL);
    /* Threads may still hold chunks of the pool: keep its memory. */
    sa = NULL;
}

bool tbl_standalone_active(void)
{
    return sa != NULL;
}

void tbl_standalone_forget_after_fork(void)
{
    sa = NULL;
}
