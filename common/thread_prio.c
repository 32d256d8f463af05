/*
 * thread_prio.c - the scheduling requests of a data-moving thread (see
 * thread_prio.h): a raised nice value (Linux keeps nice per thread:
 * PRIO_PROCESS with the thread id changes only the caller) and a short
 * EEVDF slice.
 */
#include "common/thread_prio.h"

#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

/*
 * A writer at 1M events/s fills 256 KiB of shared memory in ~9 ms; the
 * chunks come back only after the IPC thread (commit) and then the service
 * (copy, free) have run. EEVDF lets the running task finish its slice
 * unless the woken one asked for a shorter slice; a short slice changes no
 * share of CPU, only how soon a waking thread gets to run, which is all a
 * thread that runs ~20 us per chunk needs.
 */

/* The kernel's struct sched_attr, up to the fields we use (VER0, 48 B). */
struct sched_attr_v0 {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int tb_thread_short_slice(uint32_t slice_us)
{
    struct sched_attr_v0 a;
    int err = 0;

#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
    memset(&a, 0, sizeof(a));
    if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0)) {
        err = -errno;
        goto out;
    }
    /* Only the normal class takes a slice request; leave RT/idle alone. */
    if (a.sched_policy != 0 /* SCHED_OTHER */ && a.sched_policy != 3 /* SCHED_BATCH */)
        goto out;
    a.size = sizeof(a);
    a.sched_flags = 0;
    a.sched_runtime = (uint64_t)slice_us * 1000u;
    if (syscall(SYS_sched_setattr, 0, &a, 0))
        err = -errno;
out:
#else
    (void)a;
    (void)slice_us;
    err = -ENOSYS;
#endif
    /* Kernels before 6.12 ignore the request; older ones refuse it. */
    if (err)
        tb_debug("sched: no short slice for this thread: %s", strerror(-err));
    return err;
}
