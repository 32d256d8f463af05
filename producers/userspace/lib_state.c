/*
 * lib_state.c - libtracebpf's process-wide state: the current target and
 * its generation, process identity (pid, process track uuid, name), writer
 * id allocation, and the small hashing and clock helpers every file uses.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "producers/userspace/lib_internal.h"

struct tbl_global tbl_g;

uint64_t tbl_mix64(uint64_t x)
{
    /* splitmix64 finaliser: cheap and spreads every input bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t tbl_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t tbl_thread_uuid(pid_t tid)
{
    return tbl_mix64(tbl_g.process_uuid ^ ((uint64_t)(uint32_t)tid << 1)) | 1;
}

static void read_process_name(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/comm", "re");
    size_t n;

    buf[0] = 0;
    if (!f)
        return;
    if (fgets(buf, (int)len, f)) {
        n = strlen(buf);
        if (n && buf[n - 1] == '\n')
            buf[n - 1] = 0;
    }
    fclose(f);
}

/* Whole arguments only: a cut one would show as a wrong argument. */
static size_t read_cmdline(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/cmdline", "re");
    size_t n, keep = 0;

    if (!f)
        return 0;
    n = fread(buf, 1, len, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (!buf[i])
            keep = i + 1;
    return keep;
}

/*
 * Identity of this process. Re-run in a forked child so its tracks get
 * uuids of their own (the pid alone could repeat across boots in one
 * trace, so the start time is mixed in).
 */
void tbl_process_init(void)
{
    tbl_g.pid = getpid();
    tbl_g.process_uuid = tbl_mix64(((uint64_t)(uint32_t)tbl_g.pid << 32) ^ tbl_now_ns());
    read_process_name(tbl_g.process_name, sizeof(tbl_g.process_name));
    tbl_g.cmdline_len = read_cmdline(tbl_g.cmdline, sizeof(tbl_g.cmdline));
}

void tbl_bump_gen(void)
{
    atomic_fetch_add_explicit(&tbl_g.gen, 1, memory_order_acq_rel);
}

void tbl_set_target(struct tbl_target *t)
{
    atomic_store_explicit(&tbl_g.target, t, memory_order_release);
    tbl_bump_gen();
}

void tbl_idalloc_init(struct tbl_idalloc *a)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    a->next_hint = TB_SHM_MIN_WRITER_ID;
}

uint16_t tbl_idalloc_get(struct tbl_idalloc *a, uint32_t *first_chunk)
{
    uint16_t id = 0;

    pthread_mutex_lock(&a->lock);
    for (uint32_t i = 0; i < TB_SHM_MAX_WRITER_ID; i++) {
        uint32_t c = a->next_hint + i;

        if (c > TB_SHM_MAX_WRITER_ID)
            c -= TB_SHM_MAX_WRITER_ID;
        if (!(a->used[c / 32] & (1u << (c % 32)))) {
            a->used[c / 32] |= 1u << (c % 32);
            a->next_hint = c + 1 > TB_SHM_MAX_WRITER_ID ? TB_SHM_MIN_WRITER_ID : c + 1;
            id = (uint16_t)c;
            *first_chunk = a->next_chunk[c];
            break;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return id;
}

void tbl_idalloc_put(struct tbl_idalloc *a, uint16_t id, uint32_t next_chunk)
{
    if (id < TB_SHM_MIN_WRITER_ID || id > TB_SHM_MAX_WRITER_ID)
        return;
    pthread_mutex_lock(&a->lock);
    a->used[id / 32] &= ~(1u << (id % 32));
    a->next_chunk[id] = next_chunk;
    pthread_mutex_unlock(&a->lock);
}
