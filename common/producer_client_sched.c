/*
 * producer_client_sched.c - asking the scheduler to run a drain thread soon
 * after it wakes (see tb_pc_sched_short_slice() in producer_client.h).
 *
 * A writer at 1M events/s fills the default 256 KiB SMB in ~7.5 ms; the
 * chunks come back only after the IPC thread (commit) and then the
 * service (copy, free) have run. Measured on a busy 2-core VM, a woken IPC
 * thread waited up to 12 ms behind a compiler on its CPU: EEVDF lets the
 * running task finish its slice unless the woken one asked for a shorter
 * slice. A short slice changes no share of CPU, only how soon a waking
 * thread gets to run, which is all a thread that runs ~20 us per chunk
 * needs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/producer_client.h"

/* The kernel's struct sched_attr, up to the fields we use (VER0, 48 B). */
struct pc_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int tb_pc_sched_short_slice(uint32_t slice_us)
{
    struct pc_sched_attr a;
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
