/*
 * shm_create_test.c - SMB lifecycle on real memfds: the service size rule,
 * seals, and attaching an fd passed through a real socketpair (SCM_RIGHTS)
 * that then sees the very same memory as the creator.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/shm.h"

static void check_sizes(size_t size, size_t page, bool want_ok, size_t want_size, size_t want_page)
{
    bool ok = tb_shm_validate_sizes(&size, &page);

    assert_int_equal(ok, want_ok);
    assert_int_equal(size, want_size);
    assert_int_equal(page, want_page);
}

static void test_validate_sizes(void **state)
{
    const size_t K = 1024, DS = 256 * K, DP = 4 * K;

    (void)state;
    check_sizes(0, 0, true, DS, DP);
    check_sizes(1024 * K, 0, true, 1024 * K, DP);
    check_sizes(0, 16 * K, true, DS, 16 * K);
    check_sizes(32 * K * K, 32 * K, true, 32 * K * K, 32 * K);
    check_sizes(64 * K, 64 * K, false, DS, DP);     /* 64 KiB page: ABI yes, service no */
    check_sizes(1024 * K, 12 * K, false, DS, DP);   /* multiple of 4K, not a power of 2 */
    check_sizes(1024 * K, 2 * K, false, DS, DP);    /* below 4 KiB */
    check_sizes(100 * K + 1, 4 * K, false, DS, DP); /* not a multiple of the page */
    check_sizes(8 * K, 16 * K, false, DS, DP);      /* smaller than one page */
    check_sizes(64 * K * K, 4 * K, false, DS, DP);  /* above 32 MiB */
    check_sizes(32 * K * K + 4 * K, 4 * K, false, DS, DP);
}

static void test_create_sealed(void **state)
{
    struct tb_shm *shm;
    size_t i;

    (void)state;
    assert_int_equal(tb_shm_create(128 * 1024, 8192, &shm), 0);
    assert_non_null(shm->base);
    assert_int_equal(shm->size, 128 * 1024);
    assert_int_equal(shm->page_size, 8192);
    assert_int_equal(shm->num_pages, 16);
    assert_ptr_equal(shm->abi.base, shm->base);
    assert_int_equal((uintptr_t)shm->base % 4096, 0);
    assert_int_equal(tb_shm_fd_is_sealed(shm->fd), 1);
    assert_true(fcntl(shm->fd, F_GETFD) & FD_CLOEXEC);
    /* The seals hold: neither shrinking nor growing is allowed. */
    assert_int_equal(ftruncate(shm->fd, 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(shm->fd, 1 << 20), -1);
    assert_int_equal(errno, EPERM);
    for (i = 0; i < shm->num_pages; i++)
        assert_int_equal(tb_shm_page_layout(&shm->abi, i), TB_SHM_LAYOUT_NONE);
    tb_shm_destroy(shm);
    tb_shm_destroy(NULL);

    assert_int_equal(tb_shm_create(100000, 4096, &shm), -EINVAL);
    assert_null(shm);
    assert_int_equal(tb_shm_create(64 * 1024, 65536, &shm), -EINVAL);
}

static int send_fd(int sock, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cbuf,
        .msg_controllen = sizeof(cbuf),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cbuf,
        .msg_controllen = sizeof(cbuf),
    };
    struct cmsghdr *c;
    int fd = -1;

    if (recvmsg(sock, &msg, 0) != 1)
        return -1;
    c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/*
 * The service creates, the "producer" receives the fd over a socketpair and
 * attaches; a chunk the producer acquires and fills is seen by the service at
 * the same page/chunk, and the service freeing it is seen by the producer.
 */
static void test_attach_through_socket(void **state)
{
    struct tb_shm_chunk_header hdr = {.chunk_id = 42, .writer_id = 3, .packets = 1};
    struct tb_shm *svc, *prod;
    struct tb_shm_chunk pc, sc;
    int sv[2], fd;

    (void)state;
    assert_int_equal(tb_shm_create(256 * 1024, 16384, &svc), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(send_fd(sv[0], svc->fd), 0);
    fd = recv_fd(sv[1]);
    assert_true(fd >= 0);
    assert_int_not_equal(fd, svc->fd);
    assert_int_equal(tb_shm_attach(fd, 16384, &prod), 0);
    assert_int_equal(prod->size, 256 * 1024);
    assert_int_equal(prod->num_pages, 16);
    assert_ptr_not_equal(prod->base, svc->base);

    assert_int_equal(tb_shm_try_partition_page(&prod->abi, 5, TB_SHM_LAYOUT_DIV4), 0);
    assert_int_equal(tb_shm_try_acquire_chunk_for_writing(&prod->abi, 5, 2, &hdr, &pc), 0);
    memcpy(tb_shm_chunk_payload(&pc),
           "\x03"
           "abc",
           4);
    assert_int_equal(tb_shm_release_chunk_as_complete(&prod->abi, 5, 2), 0);

    assert_int_equal(tb_shm_chunk_state(&svc->abi, 5, 2), TB_SHM_CHUNK_COMPLETE);
    assert_int_equal(tb_shm_try_acquire_chunk_for_reading(&svc->abi, 5, 2, &sc), 0);
    assert_int_equal(sc.size, pc.size);
    assert_int_equal(tb_shm_chunk_hdr(&sc)->chunk_id, 42);
    assert_int_equal(tb_shm_chunk_hdr(&sc)->writer_id, 3);
    assert_memory_equal(tb_shm_chunk_payload(&sc),
                        "\x03"
                        "abc",
                        4);
    assert_int_equal(tb_shm_release_chunk_as_free(&svc->abi, 5, 2), 0);
    assert_int_equal(tb_shm_page_layout(&prod->abi, 5), TB_SHM_LAYOUT_NONE);
    assert_int_equal(tb_shm_chunk_hdr(&pc)->writer_id, 0);

    tb_shm_destroy(prod);
    tb_shm_destroy(svc);
    close(sv[0]);
    close(sv[1]);
}

/* Attach refuses fds whose size does not fit the rules, and closes them. */
static void test_attach_invalid(void **state)
{
    struct tb_shm *shm;
    int fd;

    (void)state;
    fd = memfd_create("t", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096 * 3 + 100), 0);
    assert_int_equal(tb_shm_attach(fd, 4096, &shm), -EINVAL);
    assert_null(shm);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed by attach */
    assert_int_equal(errno, EBADF);

    fd = memfd_create("t", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 64 * 1024 * 1024), 0);
    assert_int_equal(tb_shm_attach(fd, 4096, &shm), -EINVAL);

    fd = memfd_create("t", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(tb_shm_attach(fd, 0, &shm), -EINVAL);

    fd = memfd_create("t", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 64 * 1024), 0);
    assert_int_equal(tb_shm_attach(fd, 65536, &shm), -EINVAL);

    /* Page hint 0 means 4 KiB; an unsealed fd is accepted but reported. */
    fd = memfd_create("t", 0);
    assert_int_equal(ftruncate(fd, 64 * 1024), 0);
    assert_int_equal(tb_shm_fd_is_sealed(fd), 0);
    assert_int_equal(tb_shm_attach(fd, 0, &shm), 0);
    assert_int_equal(shm->page_size, 4096);
    assert_int_equal(shm->num_pages, 16);
    assert_true(fcntl(shm->fd, F_GETFD) & FD_CLOEXEC);
    tb_shm_destroy(shm);

    assert_int_equal(tb_shm_attach(-1, 0, &shm), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_sizes),
        cmocka_unit_test(test_create_sealed),
        cmocka_unit_test(test_attach_through_socket),
        cmocka_unit_test(test_attach_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
