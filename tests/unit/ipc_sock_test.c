/*
 * ipc_sock_test.c - AF_UNIX helpers on real sockets: fd passing, extra fds,
 * peer credentials, SIGPIPE-free sends, stale/live socket files, abstract
 * names and the default socket names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc_frame.h"
#include "common/ipc_sock.h"

static char tmpdir[64];

static int setup(void **state)
{
    strcpy(tmpdir, "/tmp/tb_ipc_sock_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_fd_passing(void **state)
{
    int sp[2], p[2], rfd = -1;
    char buf[16] = {0};
    ssize_t n;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tb_ipc_sock_send(sp[0], "frame", 5, p[1]), 5);
    /* The sender's copy stays ours: close it so EOF proves the new one. */
    close(p[1]);
    n = tb_ipc_sock_recv(sp[1], buf, sizeof(buf), &rfd);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "frame", 5);
    assert_true(rfd >= 0);
    assert_true(fcntl(rfd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(rfd, "through", 7), 7);
    close(rfd);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(read(p[0], buf, sizeof(buf)), 7);
    assert_string_equal(buf, "through");
    assert_int_equal(read(p[0], buf, sizeof(buf)), 0);
    /* No fd with plain data. */
    assert_int_equal(tb_ipc_sock_send(sp[0], "x", 1, -1), 1);
    assert_int_equal(tb_ipc_sock_recv(sp[1], buf, sizeof(buf), &rfd), 1);
    assert_int_equal(rfd, -1);
    /* Nothing queued: non-blocking. */
    assert_int_equal(tb_ipc_sock_recv(sp[1], buf, sizeof(buf), &rfd), -EAGAIN);
    close(p[0]);
    close(sp[0]);
    close(sp[1]);
}

static void test_extra_fds_closed(void **state)
{
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = {.iov_base = "y", .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    int sp[2], fds[3], rfd, before;
    struct cmsghdr *cmsg;
    char c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    fds[0] = fds[1] = fds[2] = STDERR_FILENO;
    memset(&ctrl, 0, sizeof(ctrl));
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof(ctrl.buf);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
    assert_int_equal(sendmsg(sp[0], &msg, 0), 1);
    before = count_fds();
    assert_int_equal(tb_ipc_sock_recv(sp[1], &c, 1, &rfd), 1);
    assert_true(rfd >= 0);
    /* Exactly one new fd survives the receive. */
    assert_int_equal(count_fds(), before + 1);
    close(rfd);
    close(sp[0]);
    close(sp[1]);
}

static void test_peer_cred(void **state)
{
    int sp[2];
    uid_t uid;
    pid_t pid;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(tb_ipc_sock_peer_cred(sp[0], &uid, &pid), 0);
    assert_int_equal(uid, getuid());
    assert_int_equal(pid, getpid());
    close(sp[0]);
    close(sp[1]);
}

static void test_send_to_closed_peer_no_sigpipe(void **state)
{
    int sp[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    close(sp[1]);
    /* SIGPIPE would kill the test process here. */
    assert_int_equal(tb_ipc_sock_send(sp[0], "x", 1, -1), -EPIPE);
    close(sp[0]);
}

static void test_listen_connect_path(void **state)
{
    int lfd, cfd, afd, lfd2;
    char path[128];

    snprintf(path, sizeof(path), "%s/live.sock", tmpdir);
    assert_int_equal(tb_ipc_sock_connect(path, true, &cfd), -ENOENT);
    assert_int_equal(tb_ipc_sock_listen(path, &lfd), 0);
    assert_int_equal(tb_ipc_sock_connect(path, true, &cfd), 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(tb_ipc_sock_send(cfd, "hi", 2, -1), 2);
    /* A live listener owns the path: refused, and the file is kept. */
    assert_int_equal(tb_ipc_sock_listen(path, &lfd2), -EADDRINUSE);
    assert_int_equal(access(path, F_OK), 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_stale_socket_removed(void **state)
{
    int lfd, cfd, afd;
    struct stat st;
    char path[128];

    snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
    /* A crashed daemon leaves its socket file behind. */
    assert_int_equal(tb_ipc_sock_listen(path, &lfd), 0);
    close(lfd);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(tb_ipc_sock_connect(path, true, &cfd), -ECONNREFUSED);
    assert_int_equal(tb_ipc_sock_listen(path, &lfd), 0);
    assert_int_equal(tb_ipc_sock_connect(path, true, &cfd), 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_regular_file_never_removed(void **state)
{
    char path[128];
    int fd, lfd;

    snprintf(path, sizeof(path), "%s/not-a-socket", tmpdir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(tb_ipc_sock_listen(path, &lfd), -EADDRINUSE);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_abstract_socket(void **state)
{
    struct sockaddr_un addr;
    int lfd, cfd, afd, lfd2;
    char name[64];
    socklen_t len;

    snprintf(name, sizeof(name), "@tb-ipc-test-%d", (int)getpid());
    assert_int_equal(tb_ipc_sock_addr(name, &addr, &len), 0);
    assert_int_equal(addr.sun_path[0], '\0');
    /* No trailing NUL in the length of an abstract name. */
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen(name));
    assert_int_equal(tb_ipc_sock_listen(name, &lfd), 0);
    assert_int_equal(tb_ipc_sock_listen(name, &lfd2), -EADDRINUSE);
    assert_int_equal(tb_ipc_sock_connect(name, false, &cfd), 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_bad_names(void **state)
{
    char longname[200];
    struct sockaddr_un addr;
    socklen_t len;
    int fd;

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(tb_ipc_sock_addr("", &addr, &len), -EINVAL);
    assert_int_equal(tb_ipc_sock_addr(longname, &addr, &len), -ENAMETOOLONG);
    assert_int_equal(tb_ipc_sock_listen(longname, &fd), -ENAMETOOLONG);
}

static void test_default_names(void **state)
{
    bool run_ok = access("/run/perfetto/", X_OK) == 0;

    setenv("PERFETTO_PRODUCER_SOCK_NAME", "/x/a.sock,/x/b.sock", 1);
    setenv("PERFETTO_CONSUMER_SOCK_NAME", "@cons", 1);
    /* Used verbatim: the list is not split. */
    assert_string_equal(tb_ipc_sock_default_name(TB_IPC_SOCK_PRODUCER), "/x/a.sock,/x/b.sock");
    assert_string_equal(tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER), "@cons");
    unsetenv("PERFETTO_PRODUCER_SOCK_NAME");
    unsetenv("PERFETTO_CONSUMER_SOCK_NAME");
    assert_string_equal(tb_ipc_sock_default_name(TB_IPC_SOCK_PRODUCER),
                        run_ok ? "/run/perfetto/traced-producer.sock" : "/tmp/perfetto-producer");
    assert_string_equal(tb_ipc_sock_default_name(TB_IPC_SOCK_CONSUMER),
                        run_ok ? "/run/perfetto/traced-consumer.sock" : "/tmp/perfetto-consumer");
}

static void test_txq_partial_sends(void **state)
{
    size_t big = 1 << 20, got = 0;
    struct tb_ipc_txq q;
    int sp[2], p[2], rfd, err;
    uint8_t *buf, *rx;
    size_t i;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
    assert_int_equal(pipe(p), 0);
    tb_ipc_txq_init(&q);
    buf = malloc(big);
    rx = malloc(big);
    for (i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 31);
    assert_int_equal(tb_ipc_txq_push(&q, buf, big, p[1]), 0);
    close(p[1]); /* the queue holds its own dup */
    rfd = -1;
    /* A megabyte does not fit in the socket buffer: drain as we go. */
    while ((err = tb_ipc_txq_flush(&q, sp[0])) == -EAGAIN || got < big) {
        int fd = -1;
        ssize_t n;

        assert_true(err == 0 || err == -EAGAIN);
        n = tb_ipc_sock_recv(sp[1], rx + got, big - got, &fd);

        if (n > 0)
            got += (size_t)n;
        if (fd >= 0) {
            assert_int_equal(rfd, -1);
            assert_int_equal(got, (size_t)n); /* came with the first bytes */
            rfd = fd;
        }
        if (err == 0 && got == big)
            break;
    }
    assert_int_equal(err, 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(got, big);
    for (i = 0; i < big; i++)
        assert_int_equal(rx[i], (uint8_t)(i * 31));
    assert_true(rfd >= 0);
    close(rfd);
    {
        char c;

        /* Every copy of the write end is closed now. */
        assert_int_equal(read(p[0], &c, 1), 0);
    }
    tb_ipc_txq_clear(&q);
    free(rx);
    close(p[0]);
    close(sp[0]);
    close(sp[1]);
}

/* An encoded IPCFrame with @id as request id (caller frees). */
static uint8_t *frame_bytes(uint64_t id, size_t *len)
{
    Perfetto__Protos__IPCFrame f = PERFETTO__PROTOS__IPCFRAME__INIT;
    uint8_t *buf;

    f.has_request_id = true;
    f.request_id = id;
    assert_int_equal(tb_ipc_frame_encode(&f, 0, &buf, len), 0);
    return buf;
}

/* What both IPC ends do on a readable socket: bytes into the decoder, the
 * passed fd with the frame it was sent with, then EAGAIN, a bad header,
 * the end of the stream. */
static void test_recv_frames(void **state)
{
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    uint8_t *a, *b, bad[4] = {0xff, 0xff, 0xff, 0x7f};
    size_t alen, blen;
    int sp[2], p[2], fd, err = 1, fds = count_fds();

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    a = frame_bytes(1, &alen);
    b = frame_bytes(2, &blen);
    assert_true(blen > 3);

    /* nothing sent yet */
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), -EAGAIN);
    /* frame 1 whole and 3 bytes of frame 2 (which carries the fd) */
    assert_int_equal(tb_ipc_sock_send(sp[0], a, alen, -1), (ssize_t)alen);
    assert_int_equal(tb_ipc_sock_send(sp[0], b, 3, p[0]), 3);
    /* the kernel ends the read after the bytes that carry an fd */
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), (ssize_t)alen + 3);
    assert_int_equal(err, 0);
    f = tb_ipc_frame_decoder_pop_fd(d, &fd);
    assert_non_null(f);
    assert_int_equal(f->request_id, 1);
    assert_int_equal(fd, -1);
    tb_ipc_frame_free(f);
    assert_null(tb_ipc_frame_decoder_pop_fd(d, &fd));
    assert_int_equal(tb_ipc_sock_send(sp[0], b + 3, blen - 3, -1), (ssize_t)(blen - 3));
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), (ssize_t)(blen - 3));
    assert_int_equal(err, 0);
    f = tb_ipc_frame_decoder_pop_fd(d, &fd);
    assert_non_null(f);
    assert_int_equal(f->request_id, 2);
    assert_true(fd >= 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    {
        char c = 0;

        assert_int_equal(read(fd, &c, 1), 1);
        assert_int_equal(c, 'x');
    }
    close(fd);
    tb_ipc_frame_free(f);
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), -EAGAIN);

    /* a header over the limit: the bytes count, the verdict says close */
    assert_int_equal(tb_ipc_sock_send(sp[0], bad, sizeof(bad), -1), 4);
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), 4);
    assert_int_equal(err, -EMSGSIZE);
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), -EMSGSIZE);
    tb_ipc_frame_decoder_free(d);

    /* the peer going away reads as 0 */
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    close(sp[0]);
    assert_int_equal(tb_ipc_sock_recv_frames(sp[1], d, &err), 0);
    tb_ipc_frame_decoder_free(d);
    close(sp[1]);
    close(p[0]);
    close(p[1]);
    free(a);
    free(b);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_passing),
        cmocka_unit_test(test_extra_fds_closed),
        cmocka_unit_test(test_peer_cred),
        cmocka_unit_test(test_send_to_closed_peer_no_sigpipe),
        cmocka_unit_test(test_listen_connect_path),
        cmocka_unit_test(test_stale_socket_removed),
        cmocka_unit_test(test_regular_file_never_removed),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_default_names),
        cmocka_unit_test(test_txq_partial_sends),
        cmocka_unit_test(test_recv_frames),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
