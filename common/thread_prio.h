/*
 * thread_prio.h - the scheduling weight of the threads that move trace data
 * (the kernel producer's threads, the service's loop): raised when the
 * process may, so an overloaded machine does not starve the tracer into
 * losing the very data its users need on such a machine.
 */
#ifndef TB_COMMON_THREAD_PRIO_H
#define TB_COMMON_THREAD_PRIO_H

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

#endif /* TB_COMMON_THREAD_PRIO_H */
