/*
 * cli_open_test.c - "tracebpf open" server: serves a real file on a real
 * loopback socket; the test fetches it like the Perfetto UI would (CORS
 * preflight, GET) and checks status lines, headers and every byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consumer/open_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fixture {
    char path[64];
    unsigned char *data;
    size_t size;
    struct tb_open_server *srv;
    pthread_t thread;
    volatile sig_atomic_t stop;
    int result;
};

static void *serve_thread(void *arg)
{
    struct fixture *f = arg;

    f->result = tb_open_server_run(f->srv, &f->stop);
    return NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    FILE *fp;
    size_t i;

    strcpy(f->path, "/tmp/cli open test XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    /* Bigger than one 64 KiB send buffer so partial writes are exercised. */
    f->size = 300000;
    f->data = malloc(f->size);
    for (i = 0; i < f->size; i++)
        f->data[i] = (unsigned char)(i * 131 + (i >> 8));
    fp = fdopen(fd, "w");
    assert_int_equal(fwrite(f->data, 1, f->size, fp), f->size);
    fclose(fp);
    assert_int_equal(tb_open_server_new(f->path, 0, &f->srv), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, serve_thread, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    f->stop = 1;
    pthread_join(f->thread, NULL);
    tb_open_server_free(f->srv);
    unlink(f->path);
    free(f->data);
    free(f);
    return 0;
}

/* Sends @req and reads the whole answer until the server closes. */
static char *http(struct fixture *f, const char *req, size_t *len)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t r;

    a.sin_port = htons(tb_open_server_port(f->srv));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    while ((r = recv(fd, buf + n, cap - n, 0)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");

    assert_non_null(p);
    return p + 4;
}

static void test_url_names_file(void **state)
{
    struct fixture *f = *state;
    char url[512], want[512];
    const char *base = strrchr(f->path, '/') + 1;

    /* Spaces in the name must be escaped or the UI fetches another path. */
    assert_null(strchr(tb_open_server_path(f->srv), ' '));
    assert_non_null(strstr(tb_open_server_path(f->srv), "cli%20open%20test%20"));
    snprintf(want, sizeof(want), "https://ui.perfetto.dev/#!/?url=http://127.0.0.1:%u/",
             tb_open_server_port(f->srv));
    tb_open_server_ui_url(f->srv, url, sizeof(url));
    assert_memory_equal(url, want, strlen(want));
    assert_int_equal(strlen(url), strlen(want) + strlen(base) + 2 * 3 /* three %20 */);
}

static void test_preflight_then_get(void **state)
{
    struct fixture *f = *state;
    char req[1024];
    size_t len;
    char *resp;

    snprintf(req, sizeof(req),
             "OPTIONS %s HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://ui.perfetto.dev\r\n"
             "Access-Control-Request-Method: GET\r\n"
             "Access-Control-Request-Private-Network: true\r\n\r\n",
             tb_open_server_path(f->srv));
    resp = http(f, req, &len);
    assert_true(strncmp(resp, "HTTP/1.1 204 ", 13) == 0);
    assert_non_null(strstr(resp, "\r\nAccess-Control-Allow-Origin: https://ui.perfetto.dev\r\n"));
    assert_non_null(strstr(resp, "\r\nAccess-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"));
    assert_non_null(strstr(resp, "\r\nAccess-Control-Allow-Private-Network: true\r\n"));
    free(resp);

    /* A preflight and a wrong path must not end the server. */
    resp = http(f, "GET /other.pftrace HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    assert_true(strncmp(resp, "HTTP/1.1 404 ", 13) == 0);
    assert_non_null(strstr(resp, "Access-Control-Allow-Origin: https://ui.perfetto.dev"));
    free(resp);
    usleep(300 * 1000);
    assert_int_equal(f->result, 0);
    assert_int_equal(pthread_tryjoin_np(f->thread, NULL), EBUSY);

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n",
             tb_open_server_path(f->srv));
    resp = http(f, req, &len);
    assert_true(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(resp, "\r\nAccess-Control-Allow-Origin: https://ui.perfetto.dev\r\n"));
    assert_non_null(strstr(resp, "\r\nContent-Length: 300000\r\n"));
    assert_int_equal(len - (size_t)(body_of(resp) - resp), f->size);
    assert_memory_equal(body_of(resp), f->data, f->size);
    free(resp);

    /* The server ends by itself once the trace went out whole. */
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(f->result, 0);
    assert_int_equal(pthread_create(&f->thread, NULL, serve_thread, f), 0);
}

static void test_head_does_not_finish(void **state)
{
    struct fixture *f = *state;
    char req[512];
    size_t len;
    char *resp;

    snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\n\r\n", tb_open_server_path(f->srv));
    resp = http(f, req, &len);
    assert_true(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    assert_string_equal(body_of(resp), "");
    free(resp);
    usleep(300 * 1000);
    assert_int_equal(pthread_tryjoin_np(f->thread, NULL), EBUSY);
}

static void test_stop_flag_ends_run(void **state)
{
    struct fixture *f = *state;

    f->stop = 1;
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(f->result, -EINTR);
    f->stop = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, serve_thread, f), 0);
}

static void test_missing_file(void **state)
{
    struct tb_open_server *srv = (void *)1;

    assert_int_equal(tb_open_server_new("/nonexistent/x.pftrace", 0, &srv), -ENOENT);
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_url_names_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preflight_then_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_does_not_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_flag_ends_run, setup, teardown),
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
