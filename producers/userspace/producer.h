/*
 * producer.h - what producer.c (libtracebpf's system backend) exports
 * beyond lib_internal.h: drain measurements for benchmarks and tests.
 * Internal to the library; not installed.
 */
#ifndef TB_PRODUCERS_USERSPACE_PRODUCER_H
#define TB_PRODUCERS_USERSPACE_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>

/**
 * tbl_producer_max_commit_delay_ns() - the longest a completed chunk (or a
 * patch) of the recording instance's SMB waited before the IPC thread took
 * it for a CommitData (tb_arbiter_max_commit_delay_ns()).
 * @reset: start a new window after reading.
 *
 * Context: any thread.
 * Return: nanoseconds; 0 when nothing records or nothing was committed.
 */
uint64_t tbl_producer_max_commit_delay_ns(bool reset);

#endif /* TB_PRODUCERS_USERSPACE_PRODUCER_H */
