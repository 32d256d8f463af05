/*
 * thread_prio.h - how the scheduler treats the threads that move trace data
 * (libtracebpf's IPC thread, the service's loop, the kernel producer's
 * threads): a short slice so a woken drain runs soon, and a higher weight
 * where the process may raise it, so an overloaded machine does not starve
 * the tracer into losing the very data its users need on such a machine.
 */
#ifndef TB_COMMON_THREAD_PRIO_H
#define TB_COMMON_THREAD_PRIO_H

#include <stdint.h>

/*
 * Nice value of the data-moving threads. Measured on a 2-CPU VM with
 * `perf bench sched messaging` (hundreds of runnable tasks) while recording
 * sched + syscalls: 93% of the events lost at nice 0, 22% at -15, 4% at -20.
 * These threads sleep unless there is data, so it costs nothing when idle.
 */
#define TB_DRAIN_NICE (-20)

/**
 * tb_thread_raise_prio() - give the calling thread nice @nice.
 * @nice: -20..19; threads it creates afterwards inherit it.
 *
 * Only raises: a thread already at or below @nice is left alone. Without
 * CAP_SYS_NICE it fails quietly (logged at debug level): an unprivileged
 * daemon still works, just with less headroom under overload.
 * Context: any thread, for itself.
 * Return: 0, or negative errno.
 */
int tb_thread_raise_prio(int nice);

/*
 * Slice a drain thread asks for (us): libtracebpf's IPC thread, the
 * service's loop, the BPF drain thread. The kernel's minimum is 100 us.
 */
#define TB_DRAIN_SLICE_US 100u

/**
 * tb_thread_short_slice() - ask the scheduler to run the calling thread
 * soon after each wakeup, by requesting a short EEVDF slice (sched_setattr
 * sched_runtime on SCHED_OTHER/BATCH; nice and policy unchanged, threads in
 * other classes left alone).
 * @slice_us: requested slice; the kernel clamps it to [100 us, 100 ms].
 *
 * Why: chunks return to writers only after the draining threads ran, and
 * a woken thread without a short slice waits for the running task's whole
 * slice (measured up to 12 ms on a busy 2-core VM, longer than the ~9 ms
 * 256 KiB of shared memory holds at 1M events/s). The CPU share is
 * unchanged.
 * Context: any thread, for itself. Needs no privilege.
 * Return: 0, or negative errno (-EINVAL/-ENOSYS on kernels without the
 * feature); failure is logged at debug level only and harmless.
 */
int tb_thread_short_slice(uint32_t slice_us);

#endif /* TB_COMMON_THREAD_PRIO_H */
