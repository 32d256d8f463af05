/*
 * open_server.c - the loopback HTTP server behind "tracebpf open": accepts
 * one connection at a time, answers GET/HEAD for the trace and OPTIONS
 * preflights with the CORS headers the Perfetto UI needs, and reports when
 * the trace was sent in full. HTTP/1.0-style: one request per connection.
 */
#include "consumer/open_server.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define REQ_MAX        8192
#define IO_TIMEOUT_SEC 10

struct tb_open_server {
    int listen_fd;
    int file_fd;
    uint64_t size;
    uint16_t port;
    char path[1024]; /* percent-encoded "/<name>" */
};

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static void percent_encode(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *in && o + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;

        if (unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

int tb_open_server_new(const char *path, uint16_t port, struct tb_open_server **out)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct tb_open_server *srv;
    socklen_t alen = sizeof(addr);
    const char *base;
    struct stat st;
    int one = 1;
    int err = 0;

    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->listen_fd = -1;
    srv->file_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (srv->file_fd < 0 || fstat(srv->file_fd, &st)) {
        err = -errno;
        tb_err("open: cannot read %s: %s", path, strerror(-err));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = -EINVAL;
        tb_err("open: %s is not a regular file", path);
        goto out;
    }
    srv->size = (uint64_t)st.st_size;
    base = strrchr(path, '/');
    base = base ? base + 1 : path;
    srv->path[0] = '/';
    percent_encode(base, srv->path + 1, sizeof(srv->path) - 1);

    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0) {
        err = -errno;
        tb_err("open: socket: %s", strerror(-err));
        goto out;
    }
    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        listen(srv->listen_fd, 16) ||
        getsockname(srv->listen_fd, (struct sockaddr *)&addr, &alen)) {
        err = -errno;
        tb_err("open: cannot listen on 127.0.0.1:%u: %s%s", port, strerror(-err),
               err == -EADDRINUSE ? " (pick another port with --port N)" : "");
        goto out;
    }
    srv->port = ntohs(addr.sin_port);
out:
    if (err) {
        tb_open_server_free(srv);
        srv = NULL;
    }
    *out = srv;
    return err;
}

uint16_t tb_open_server_port(const struct tb_open_server *srv)
{
    return srv->port;
}

const char *tb_open_server_path(const struct tb_open_server *srv)
{
    return srv->path;
}

const char *tb_open_server_ui_url(const struct tb_open_server *srv, char *buf, unsigned long len)
{
    snprintf(buf, len, "%s/#!/?url=http://127.0.0.1:%u%s", TB_OPEN_UI_ORIGIN, srv->port, srv->path);
    return buf;
}

void tb_open_server_free(struct tb_open_server *srv)
{
    if (!srv)
        return;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->file_fd >= 0)
        close(srv->file_fd);
    free(srv);
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until the blank line that ends the request head. */
static int read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;

    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -ECONNRESET;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            return 0;
    }
    return -E2BIG;
}

static int send_head(int fd, const char *status, const char *extra, uint64_t length)
{
    char head[1024];
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %s\r\n"
                 "Access-Control-Allow-Origin: %s\r\n"
                 "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: *\r\n"
                 "Access-Control-Allow-Private-Network: true\r\n"
                 "Vary: Origin\r\n"
                 "Cache-Control: no-cache\r\n"
                 "%s"
                 "Content-Length: %llu\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 status, TB_OPEN_UI_ORIGIN, extra, (unsigned long long)length);
    return send_all(fd, head, (size_t)n);
}

static int send_file(struct tb_open_server *srv, int fd)
{
    char buf[65536];
    uint64_t off = 0;

    while (off < srv->size) {
        ssize_t n = pread(srv->file_fd, buf, sizeof(buf), (off_t)off);
        int err;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO; /* the file shrank under us */
        err = send_all(fd, buf, (size_t)n);
        if (err)
            return err;
        off += (uint64_t)n;
    }
    return 0;
}

/* Decodes %XX in place so "/a%20b" and "/a b" name the same file. */
static void percent_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        unsigned int v;

        if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1 && s[1] && s[2]) {
            *o++ = (char)v;
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* Handles one connection. Return: 1 when the whole file went out, else 0. */
static int serve_one(struct tb_open_server *srv, int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_SEC};
    char req[REQ_MAX], method[16], target[1024], want[1024];
    char *q;
    int err;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    err = read_head(fd, req, sizeof(req));
    if (err) {
        tb_debug("open: dropped a request: %s", strerror(-err));
        return 0;
    }
    if (sscanf(req, "%15s %1023s", method, target) != 2) {
        send_head(fd, "400 Bad Request", "", 0);
        return 0;
    }
    q = strchr(target, '?');
    if (q)
        *q = '\0';
    percent_decode(target);
    snprintf(want, sizeof(want), "%s", srv->path);
    percent_decode(want);

    if (!strcmp(method, "OPTIONS")) {
        send_head(fd, "204 No Content", "Access-Control-Max-Age: 600\r\n", 0);
        return 0;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        send_head(fd, "405 Method Not Allowed", "Allow: GET, HEAD, OPTIONS\r\n", 0);
        return 0;
    }
    if (strcmp(target, want)) {
        send_head(fd, "404 Not Found", "", 0);
        return 0;
    }
    err = send_head(fd, "200 OK", "Content-Type: application/octet-stream\r\n", srv->size);
    if (err || !strcmp(method, "HEAD"))
        return 0;
    err = send_file(srv, fd);
    if (err) {
        tb_warn("open: sending the trace failed: %s; waiting for another fetch", strerror(-err));
        return 0;
    }
    return 1;
}

int tb_open_server_run(struct tb_open_server *srv, volatile sig_atomic_t *stop)
{
    struct pollfd pfd = {.fd = srv->listen_fd, .events = POLLIN};

    while (!stop || !*stop) {
        int n = poll(&pfd, 1, 200);
        int fd, done;

        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            return -errno;
        }
        done = serve_one(srv, fd);
        /* Let the client read everything before the socket goes away. */
        shutdown(fd, SHUT_WR);
        close(fd);
        if (done)
            return 0;
    }
    return -EINTR;
}
