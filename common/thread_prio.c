/*
 * thread_prio.c - raising the nice value of a data-moving thread (see
 * thread_prio.h). Linux keeps nice per thread: PRIO_PROCESS with the thread
 * id changes only the caller.
 */
#include "common/thread_prio.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

int tb_thread_raise_prio(int nice)
{
    id_t self = (id_t)gettid();
    int cur;

    errno = 0;
    cur = getpriority(PRIO_PROCESS, self);
    if (cur == -1 && errno)
        return -errno;
    if (cur <= nice)
        return 0;
    if (setpriority(PRIO_PROCESS, self, nice) < 0) {
        int err = -errno;

        tb_debug("nice %d for thread %d: %s", nice, (int)self, strerror(-err));
        return err;
    }
    return 0;
}
