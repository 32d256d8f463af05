/*
 * shm.c - creating, attaching and unmapping a shared memory buffer.
 *
 * Owns the memfd lifecycle of an SMB: the service side creates and seals it,
 * the producer side maps an fd received over the socket after checking the
 * size the kernel reports. What lives inside the mapping is shm_abi.c's job.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shm.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static bool sizes_ok(size_t size, size_t page_size)
{
    return tb_shm_page_size_valid(page_size) && size >= page_size && size % page_size == 0 &&
           size <= TB_SHM_MAX_SIZE;
}

bool tb_shm_validate_sizes(size_t *size, size_t *page_size)
{
    if (!*size)
        *size = TB_SHM_DEFAULT_SIZE;
    if (!*page_size)
        *page_size = TB_SHM_DEFAULT_PAGE_SIZE;
    if (sizes_ok(*size, *page_size))
        return true;
    *size = TB_SHM_DEFAULT_SIZE;
    *page_size = TB_SHM_DEFAULT_PAGE_SIZE;
    return false;
}

/* Map @fd (of @size bytes) and wrap it; on failure the caller keeps @fd. */
static int map_fd(int fd, size_t size, size_t page_size, struct tb_shm **out)
{
    struct tb_shm *shm;
    void *base;
    int err;

    shm = calloc(1, sizeof(*shm));
    if (!shm)
        return -ENOMEM;
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        err = -errno;
        free(shm);
        return err;
    }
    err = tb_shm_abi_init(&shm->abi, base, size, page_size);
    if (err) {
        munmap(base, size);
        free(shm);
        return err;
    }
    shm->fd = fd;
    *out = shm;
    return 0;
}

int tb_shm_create(size_t size, size_t page_size, struct tb_shm **out)
{
    int fd = -1, err;

    *out = NULL;
    if (!sizes_ok(size, page_size)) {
        tb_err("shm: refusing to create SMB of %zu bytes with %zu-byte pages", size, page_size);
        return -EINVAL;
    }
    fd = memfd_create("tracebpf_shmem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        err = -errno;
        tb_err("shm: memfd_create: %s", strerror(-err));
        goto out;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        err = -errno;
        tb_err("shm: ftruncate to %zu bytes: %s", size, strerror(-err));
        goto out;
    }
    if (fcntl(fd, F_ADD_SEALS, SEALS) < 0) {
        err = -errno;
        tb_err("shm: sealing memfd: %s", strerror(-err));
        goto out;
    }
    err = map_fd(fd, size, page_size, out);
    if (err) {
        tb_err("shm: mapping %zu-byte SMB: %s", size, strerror(-err));
        goto out;
    }
    return 0;
out:
    if (fd >= 0)
        close(fd);
    return err;
}

int tb_shm_attach(int fd, size_t page_size, struct tb_shm **out)
{
    struct stat st;
    size_t size;
    int err, flags;

    *out = NULL;
    if (fd < 0)
        return -EINVAL;
    if (!page_size)
        page_size = TB_SHM_DEFAULT_PAGE_SIZE;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
        err = -errno;
        tb_err("shm: fd %d: %s", fd, strerror(-err));
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        err = -errno;
        tb_err("shm: fstat fd %d: %s", fd, strerror(-err));
        goto out;
    }
    if (st.st_size < 0) {
        err = -EINVAL;
        goto out;
    }
    size = (size_t)st.st_size;
    if (!sizes_ok(size, page_size)) {
        err = -EINVAL;
        tb_err("shm: received SMB of %zu bytes with %zu-byte pages is invalid", size, page_size);
        goto out;
    }
    err = map_fd(fd, size, page_size, out);
    if (err) {
        tb_err("shm: mapping received SMB of %zu bytes: %s", size, strerror(-err));
        goto out;
    }
    return 0;
out:
    close(fd);
    return err;
}

int tb_shm_fd_is_sealed(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);

    if (seals < 0)
        return -errno;
    return (seals & SEALS) == SEALS;
}

void tb_shm_destroy(struct tb_shm *shm)
{
    if (!shm)
        return;
    if (shm->base)
        munmap(shm->base, shm->size);
    if (shm->fd >= 0)
        close(shm->fd);
    free(shm);
}
