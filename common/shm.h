/*
 * shm.h - creating, attaching and unmapping a shared memory buffer (SMB).
 *
 * The service creates one sealed memfd per producer (tb_shm_create) and
 * passes the fd over the producer socket; the producer maps the fd it
 * received (tb_shm_attach). The byte layout inside the mapping is described
 * in include/tracebpf/shm_abi.h; struct tb_shm embeds that geometry so the
 * tb_shm_* ABI functions take &shm->abi.
 */
#ifndef TB_COMMON_SHM_H
#define TB_COMMON_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracebpf/shm_abi.h"

/*
 * struct tb_shm - one mapped SMB. The fields are readable directly
 * (shm->base, shm->size, ...) or as the ABI geometry (&shm->abi).
 * @base: start of the MAP_SHARED mapping, owned by this struct.
 * @size: bytes mapped (num_pages * page_size).
 * @page_size: 4, 8, 16 or 32 KiB.
 * @num_pages: size / page_size.
 * @fd: the memfd, owned by this struct (closed by tb_shm_destroy). The
 *      service sends it to the producer with SCM_RIGHTS; the kernel
 *      duplicates it in flight, so it stays owned here.
 */
struct tb_shm {
    union {
        struct tb_shm_abi abi;
        struct {
            uint8_t *base;
            size_t size;
            size_t page_size;
            size_t num_pages;
        };
    };
    int fd;
};

/*
 * tb_shm_validate_sizes() - apply the service's size rule in place.
 * @size: requested SMB size in bytes (0 = default).
 * @page_size: requested page size in bytes (0 = default).
 *
 * A zero means the default (256 KiB SMB, 4 KiB page). The page size must be
 * 4, 8, 16 or 32 KiB, and the SMB size a multiple of the page size, at least
 * one page and at most 32 MiB. If any check fails, BOTH values fall back to
 * the defaults (Perfetto's rule; correcting only one is not compatible).
 * Return: true if the request was used as given (after zero -> default),
 * false if it fell back to the defaults.
 */
bool tb_shm_validate_sizes(size_t *size, size_t *page_size);

/*
 * tb_shm_create() - create, seal and map a new SMB (service side).
 * @size: SMB size in bytes; @page_size: page size in bytes. Both must already
 *        pass tb_shm_validate_sizes() unchanged.
 * @out: the new SMB on success.
 *
 * The memfd is named "tracebpf_shmem", created MFD_CLOEXEC|MFD_ALLOW_SEALING,
 * sized with ftruncate and sealed against shrink, grow and further sealing,
 * so a producer cannot make the service's mapping fault. Every page starts
 * unpartitioned (zeroed).
 * Return: 0, -EINVAL for bad sizes, or the negative errno of the failing
 * syscall. Ownership: free with tb_shm_destroy().
 */
int tb_shm_create(size_t size, size_t page_size, struct tb_shm **out);

/*
 * tb_shm_attach() - map an SMB received from the peer (producer side, or a
 * service accepting a producer-provided SMB).
 * @fd: the SMB fd. Ownership passes to this function in every case: kept in
 *      the returned struct on success, closed on failure. FD_CLOEXEC is set.
 * @page_size: page size announced by the peer (SetupTracing's
 *      shared_buffer_page_size_kb * 1024); 0 means the default 4 KiB.
 * @out: the mapped SMB on success.
 *
 * The size is taken from fstat() and must be a non-zero multiple of a valid
 * page size (4/8/16/32 KiB) and at most 32 MiB.
 * Return: 0, -EINVAL for an invalid size or page size, or a negative errno
 * from fstat/mmap. Ownership: free with tb_shm_destroy().
 */
int tb_shm_attach(int fd, size_t page_size, struct tb_shm **out);

/*
 * tb_shm_fd_is_sealed() - whether @fd carries F_SEAL_SHRINK, F_SEAL_GROW and
 * F_SEAL_SEAL (the service requires this of a producer-provided SMB).
 * Return: 1 sealed, 0 not sealed, negative errno if fcntl fails.
 */
int tb_shm_fd_is_sealed(int fd);

/*
 * tb_shm_destroy() - unmap @shm, close its fd and free it. NULL is a no-op.
 */
void tb_shm_destroy(struct tb_shm *shm);

#endif /* TB_COMMON_SHM_H */
