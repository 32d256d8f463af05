/*
 * pidset.c - the pid bitmap of linux.process_stats (see pidset.h): which
 * processes were described, which tids the first scan saw.
 */
#include <stdlib.h>
#include <string.h>

#include "producers/ftrace/pidset.h"

/* First size of a bitmap: pids below 4096; doubled as larger ones come. */
#define FIRST_WORDS 64u

bool tb_pidset_has(const struct tb_pidset *s, pid_t pid)
{
    size_t w = (size_t)pid / 64;

    return pid >= 0 && w < s->words && (s->bits[w] >> (pid % 64) & 1);
}

void tb_pidset_add(struct tb_pidset *s, pid_t pid)
{
    size_t w = (size_t)pid / 64;

    if (pid < 0)
        return;
    if (w >= s->words) {
        size_t words = s->words ? s->words : FIRST_WORDS;
        uint64_t *bits;

        while (words <= w)
            words *= 2;
        bits = realloc(s->bits, words * sizeof(*bits));
        if (!bits)
            return;
        memset(bits + s->words, 0, (words - s->words) * sizeof(*bits));
        s->bits = bits;
        s->words = words;
    }
    s->bits[w] |= 1ull << (pid % 64);
}

void tb_pidset_free(struct tb_pidset *s)
{
    free(s->bits);
    memset(s, 0, sizeof(*s));
}
