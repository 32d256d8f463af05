/*
 * proc_read.c - readers of a task's /proc status and cgroup files for
 * linux.process_stats (see proc_read.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producers/ftrace/proc_read.h"

void tb_proc_read_cgroup(pid_t pid, pid_t tid, char *out, size_t len)
{
    char path[96], line[4096];
    FILE *f;

    out[0] = '\0';
    if (tid)
        snprintf(path, sizeof(path), "/proc/%d/task/%d/cgroup", pid, tid);
    else
        snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, len, "%s", line + 3);
            break;
        }
    }
    fclose(f);
}

int tb_proc_read_status(const char *path, struct tb_proc_status *st)
{
    char line[512];
    FILE *f;

    memset(st, 0, sizeof(*st));
    st->uid = -1;
    f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "Name:\t", 6)) {
            size_t n = strcspn(line + 6, "\n");

            if (n >= sizeof(st->name))
                n = sizeof(st->name) - 1;
            memcpy(st->name, line + 6, n);
            st->name[n] = '\0';
        } else if (!strncmp(line, "Tgid:", 5)) {
            st->tgid = atoi(line + 5);
        } else if (!strncmp(line, "PPid:", 5)) {
            st->ppid = atoi(line + 5);
        } else if (!strncmp(line, "Uid:", 4)) {
            st->uid = atoi(line + 4);
        } else if (!strncmp(line, "NSpid:", 6)) {
            char *s = line + 6, *e;

            while (st->nr_ns < TB_PROC_MAX_NS) {
                long v = strtol(s, &e, 10);

                if (e == s)
                    break;
                st->ns[st->nr_ns++] = (int)v;
                s = e;
            }
        }
    }
    fclose(f);
    return 0;
}
