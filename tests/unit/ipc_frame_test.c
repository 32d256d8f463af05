/*
 * ipc_frame_test.c - the IPCFrame stream decoder and encoder: splits at
 * every byte boundary, size limits, garbage, and fd-to-frame association.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc_frame.h"

struct buf {
    uint8_t *p;
    size_t len;
};

static void buf_append(struct buf *b, const void *data, size_t len)
{
    b->p = realloc(b->p, b->len + len);
    assert_non_null(b->p);
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void append_frame(struct buf *b, const Perfetto__Protos__IPCFrame *f)
{
    uint8_t *enc;
    size_t len;

    assert_int_equal(tb_ipc_frame_encode(f, 0, &enc, &len), 0);
    buf_append(b, enc, len);
    free(enc);
}

static void append_bind(struct buf *b, uint64_t id, const char *name)
{
    Perfetto__Protos__IPCFrame f = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__BindService bs = PERFETTO__PROTOS__IPCFRAME__BIND_SERVICE__INIT;

    bs.service_name = (char *)name;
    f.has_request_id = true;
    f.request_id = id;
    f.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_BIND_SERVICE;
    f.msg_bind_service = &bs;
    append_frame(b, &f);
}

static void append_invoke(struct buf *b, uint64_t id, uint32_t method, size_t args_len)
{
    Perfetto__Protos__IPCFrame f = PERFETTO__PROTOS__IPCFRAME__INIT;
    Perfetto__Protos__IPCFrame__InvokeMethod im = PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD__INIT;
    uint8_t *args = malloc(args_len ? args_len : 1);
    size_t i;

    for (i = 0; i < args_len; i++)
        args[i] = (uint8_t)(i * 7 + id);
    im.has_service_id = im.has_method_id = im.has_args_proto = true;
    im.service_id = 1;
    im.method_id = method;
    im.args_proto.data = args;
    im.args_proto.len = args_len;
    f.has_request_id = true;
    f.request_id = id;
    f.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD;
    f.msg_invoke_method = &im;
    append_frame(b, &f);
    free(args);
}

static void check_invoke(const Perfetto__Protos__IPCFrame *f, uint64_t id, uint32_t method,
                         size_t args_len)
{
    size_t i;

    assert_non_null(f);
    assert_int_equal(f->request_id, id);
    assert_int_equal(f->msg_case, PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD);
    assert_int_equal(f->msg_invoke_method->method_id, method);
    assert_int_equal(f->msg_invoke_method->args_proto.len, args_len);
    for (i = 0; i < args_len; i++)
        assert_int_equal(f->msg_invoke_method->args_proto.data[i], (uint8_t)(i * 7 + id));
}

/* The stream used by the split tests: 4 frames and an empty one. */
static void build_stream(struct buf *b)
{
    static const uint8_t empty[4] = {0, 0, 0, 0};

    append_bind(b, 1, "ProducerPort");
    append_invoke(b, 2, 3, 0);
    buf_append(b, empty, sizeof(empty));
    append_invoke(b, 3, 4, 40);
    append_bind(b, 4, "ConsumerPort");
}

static void check_stream(struct tb_ipc_frame_decoder *d)
{
    Perfetto__Protos__IPCFrame *f;
    struct tb_ipc_frame_decoder_stats st;

    f = tb_ipc_frame_decoder_pop(d);
    assert_non_null(f);
    assert_int_equal(f->request_id, 1);
    assert_string_equal(f->msg_bind_service->service_name, "ProducerPort");
    tb_ipc_frame_free(f);
    f = tb_ipc_frame_decoder_pop(d);
    check_invoke(f, 2, 3, 0);
    tb_ipc_frame_free(f);
    f = tb_ipc_frame_decoder_pop(d);
    check_invoke(f, 3, 4, 40);
    tb_ipc_frame_free(f);
    f = tb_ipc_frame_decoder_pop(d);
    assert_non_null(f);
    assert_string_equal(f->msg_bind_service->service_name, "ConsumerPort");
    tb_ipc_frame_free(f);
    assert_null(tb_ipc_frame_decoder_pop(d));
    tb_ipc_frame_decoder_get_stats(d, &st);
    assert_int_equal(st.frames_decoded, 4);
    assert_int_equal(st.frames_empty, 1);
    assert_int_equal(st.frames_dropped, 0);
}

static void test_known_bytes(void **state)
{
    /* The producer's first frame, byte for byte (spec §2.2). */
    static const uint8_t want[] = {0x12, 0x00, 0x00, 0x00, 0x10, 0x01, 0x1A, 0x0E, 0x0A, 0x0C, 'P',
                                   'r',  'o',  'd',  'u',  'c',  'e',  'r',  'P',  'o',  'r',  't'};
    struct buf b = {0};

    append_bind(&b, 1, "ProducerPort");
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    free(b.p);
}

static void test_split_every_boundary(void **state)
{
    struct buf b = {0};
    size_t k, j;

    build_stream(&b);
    for (k = 0; k <= b.len; k++) {
        struct tb_ipc_frame_decoder *d;

        assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
        assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, k), 0);
        assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p + k, b.len - k), 0);
        check_stream(d);
        tb_ipc_frame_decoder_free(d);
    }
    /* Three pieces, every pair of cut points. */
    for (k = 0; k <= b.len; k += 3) {
        for (j = k; j <= b.len; j += 5) {
            struct tb_ipc_frame_decoder *d;

            assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
            assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, k), 0);
            assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p + k, j - k), 0);
            assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p + j, b.len - j), 0);
            check_stream(d);
            tb_ipc_frame_decoder_free(d);
        }
    }
    free(b.p);
}

static void test_byte_by_byte_zero_copy(void **state)
{
    struct tb_ipc_frame_decoder *d;
    struct buf b = {0};
    size_t i;

    build_stream(&b);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    for (i = 0; i < b.len; i++) {
        size_t room;
        void *dst;

        assert_int_equal(tb_ipc_frame_decoder_begin_receive(d, &dst, &room), 0);
        assert_true(room >= 1);
        memcpy(dst, b.p + i, 1);
        assert_int_equal(tb_ipc_frame_decoder_end_receive(d, 1), 0);
    }
    check_stream(d);
    tb_ipc_frame_decoder_free(d);
    free(b.p);
}

static void test_max_size_frame(void **state)
{
    /* Largest legal payload: 131068 bytes, i.e. a full 128 KiB buffer. */
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    struct buf b = {0};
    size_t args, off = 0, step = 1;

    /* Invoke overhead: id 2, msg tag+len 4, service 2, method 2, args tag+len 4. */
    args = TB_IPC_MAX_FRAME_SIZE - TB_IPC_FRAME_HEADER_SIZE - 14;
    append_invoke(&b, 9, 2, args);
    assert_int_equal(b.len, TB_IPC_MAX_FRAME_SIZE);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    while (off < b.len) {
        size_t n = step < b.len - off ? step : b.len - off;

        assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p + off, n), 0);
        off += n;
        step = step * 3 + 1;
    }
    f = tb_ipc_frame_decoder_pop(d);
    check_invoke(f, 9, 2, args);
    tb_ipc_frame_free(f);
    tb_ipc_frame_decoder_free(d);
    free(b.p);

    /* One byte more is refused by the encoder. */
    b = (struct buf){0};
    {
        Perfetto__Protos__IPCFrame fr = PERFETTO__PROTOS__IPCFRAME__INIT;
        Perfetto__Protos__IPCFrame__InvokeMethod im =
            PERFETTO__PROTOS__IPCFRAME__INVOKE_METHOD__INIT;
        uint8_t *enc = NULL;
        size_t len;

        im.has_args_proto = true;
        im.args_proto.len = args + 1;
        im.args_proto.data = calloc(1, args + 1);
        im.has_service_id = im.has_method_id = true;
        im.service_id = 1;
        im.method_id = 2;
        fr.has_request_id = true;
        fr.request_id = 9;
        fr.msg_case = PERFETTO__PROTOS__IPCFRAME__MSG_MSG_INVOKE_METHOD;
        fr.msg_invoke_method = &im;
        assert_int_equal(tb_ipc_frame_encode(&fr, 0, &enc, &len), -EMSGSIZE);
        assert_null(enc);
        free(im.args_proto.data);
    }
}

static void test_oversize_header(void **state)
{
    /* 131069 = one byte over the payload limit. */
    static const uint8_t hdr[4] = {0xFD, 0xFF, 0x01, 0x00};
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    struct buf b = {0};
    size_t room;
    void *dst;

    append_bind(&b, 1, "ProducerPort");
    buf_append(&b, hdr, sizeof(hdr));
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, b.len), -EMSGSIZE);
    /* Sticky: the connection must be closed, no more input is taken. */
    assert_int_equal(tb_ipc_frame_decoder_begin_receive(d, &dst, &room), -EMSGSIZE);
    assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, 4), -EMSGSIZE);
    /* The good frame before the bad header is still delivered. */
    f = tb_ipc_frame_decoder_pop(d);
    assert_non_null(f);
    assert_int_equal(f->request_id, 1);
    tb_ipc_frame_free(f);
    assert_null(tb_ipc_frame_decoder_pop(d));
    tb_ipc_frame_decoder_free(d);
    free(b.p);
}

static void test_configurable_limit(void **state)
{
    struct tb_ipc_frame_decoder *d;
    struct buf b = {0};
    uint8_t *enc = NULL;
    size_t len;

    assert_int_equal(tb_ipc_frame_decoder_new(4, &d), -EINVAL);
    assert_int_equal(tb_ipc_frame_decoder_new(64, &d), 0);
    append_invoke(&b, 1, 1, 30); /* fits in 64 */
    assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, b.len), 0);
    tb_ipc_frame_free(tb_ipc_frame_decoder_pop(d));
    free(b.p);
    b = (struct buf){0};
    append_invoke(&b, 1, 1, 100); /* does not */
    assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, b.len), -EMSGSIZE);
    tb_ipc_frame_decoder_free(d);
    {
        Perfetto__Protos__IPCFrame fr = PERFETTO__PROTOS__IPCFRAME__INIT;

        fr.has_request_id = true;
        fr.request_id = 1;
        assert_int_equal(tb_ipc_frame_encode(&fr, 5, &enc, &len), -EMSGSIZE);
        /* a limit with no room for the header is refused like the decoder's */
        for (size_t lim = 1; lim <= TB_IPC_FRAME_HEADER_SIZE; lim++)
            assert_int_equal(tb_ipc_frame_encode(&fr, lim, &enc, &len), -EINVAL);
        assert_int_equal(tb_ipc_frame_encode(&fr, 6, &enc, &len), 0);
        assert_int_equal(len, 6);
        free(enc);
    }
    free(b.p);
}

static void test_garbage(void **state)
{
    /* A frame whose payload is not a protobuf (truncated varint field). */
    static const uint8_t bad[] = {0x03, 0x00, 0x00, 0x00, 0x10, 0xFF, 0xFF};
    struct tb_ipc_frame_decoder_stats st;
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    struct buf b = {0};
    unsigned seed = 12345;
    int i, err;

    buf_append(&b, bad, sizeof(bad));
    append_bind(&b, 7, "ConsumerPort");
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    assert_int_equal(tb_ipc_frame_decoder_feed(d, b.p, b.len), 0);
    f = tb_ipc_frame_decoder_pop(d);
    assert_non_null(f);
    assert_int_equal(f->request_id, 7);
    tb_ipc_frame_free(f);
    tb_ipc_frame_decoder_get_stats(d, &st);
    assert_int_equal(st.frames_dropped, 1);
    assert_int_equal(st.frames_decoded, 1);
    tb_ipc_frame_decoder_free(d);
    free(b.p);

    /* Random bytes with small headers: whatever happens, no crash or leak. */
    for (i = 0; i < 200; i++) {
        uint8_t junk[512];
        size_t j;

        for (j = 0; j < sizeof(junk); j++)
            junk[j] = (uint8_t)rand_r(&seed);
        for (j = 0; j + 4 < sizeof(junk); j += 40) {
            junk[j] = (uint8_t)(rand_r(&seed) % 36);
            junk[j + 1] = junk[j + 2] = junk[j + 3] = 0;
        }
        assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
        err = tb_ipc_frame_decoder_feed(d, junk, sizeof(junk));
        assert_true(err == 0 || err == -EMSGSIZE);
        while ((f = tb_ipc_frame_decoder_pop(d)))
            tb_ipc_frame_free(f);
        tb_ipc_frame_decoder_free(d);
    }
}

static void test_fd_goes_with_its_frame(void **state)
{
    struct tb_ipc_frame_decoder *d;
    Perfetto__Protos__IPCFrame *f;
    struct buf a = {0}, b = {0};
    int p[2], fd;
    char rd[8] = {0};
    size_t cut;

    append_bind(&a, 1, "ProducerPort");
    append_invoke(&b, 2, 5, 20);
    buf_append(&a, b.p, b.len);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);

    /* Chunk 1: the whole first frame and half of the second, with the fd. */
    cut = a.len - b.len / 2;
    assert_int_equal(tb_ipc_frame_decoder_feed(d, a.p, a.len - b.len), 0);
    {
        size_t room;
        void *dst;

        assert_int_equal(tb_ipc_frame_decoder_begin_receive(d, &dst, &room), 0);
        memcpy(dst, a.p + a.len - b.len, cut - (a.len - b.len));
        assert_int_equal(tb_ipc_frame_decoder_end_receive_fd(d, cut - (a.len - b.len), p[1]), 0);
    }
    f = tb_ipc_frame_decoder_pop_fd(d, &fd);
    assert_non_null(f);
    assert_int_equal(f->request_id, 1);
    assert_int_equal(fd, -1);
    tb_ipc_frame_free(f);
    assert_null(tb_ipc_frame_decoder_pop_fd(d, &fd));
    assert_int_equal(tb_ipc_frame_decoder_feed(d, a.p + cut, a.len - cut), 0);
    f = tb_ipc_frame_decoder_pop_fd(d, &fd);
    check_invoke(f, 2, 5, 20);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "ok", 2), 2);
    assert_int_equal(read(p[0], rd, sizeof(rd)), 2);
    assert_string_equal(rd, "ok");
    close(fd);
    tb_ipc_frame_free(f);
    tb_ipc_frame_decoder_free(d);
    close(p[0]);
    free(a.p);
    free(b.p);
}

static void test_fd_freed_with_decoder(void **state)
{
    struct tb_ipc_frame_decoder *d;
    struct buf b = {0};
    int p[2];
    char c;

    append_invoke(&b, 2, 5, 20);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tb_ipc_frame_decoder_new(0, &d), 0);
    {
        size_t room;
        void *dst;

        assert_int_equal(tb_ipc_frame_decoder_begin_receive(d, &dst, &room), 0);
        memcpy(dst, b.p, 5);
        assert_int_equal(tb_ipc_frame_decoder_end_receive_fd(d, 5, p[1]), 0);
    }
    tb_ipc_frame_decoder_free(d);
    /* The write end was closed by the decoder: the read end sees EOF. */
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_byte_by_byte_zero_copy),
        cmocka_unit_test(test_max_size_frame),
        cmocka_unit_test(test_oversize_header),
        cmocka_unit_test(test_configurable_limit),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_fd_goes_with_its_frame),
        cmocka_unit_test(test_fd_freed_with_decoder),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
