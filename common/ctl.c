/* ctl.c - repld's control socket, both ends. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/ctl.h"
#include "common/log.h"

#define CLIENT_IO_TIMEOUT_MS 1000

struct ctl_server {
    int fd;
    int wake[2];
    char *path;
    ctl_handler_t fn;
    void *ctx;
    pthread_t tid;
};

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int left = (int)(deadline - clock_mono_ms());
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static void serve_one(struct ctl_server *s, int fd)
{
    char cmd[CTL_CMD_MAX + 1];
    size_t n = 0;
    int64_t deadline = clock_mono_ms() + CLIENT_IO_TIMEOUT_MS;
    buf_t out;

    while (n < CTL_CMD_MAX && memchr(cmd, '\n', n) == NULL) {
        if (wait_fd(fd, POLLIN, deadline) != 0)
            return;
        ssize_t r = read(fd, cmd + n, CTL_CMD_MAX - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    cmd[n] = '\0';
    char *nl = strchr(cmd, '\n');
    if (nl == NULL)
        return;
    *nl = '\0';
    buf_init(&out, CTL_REPLY_MAX);
    if (s->fn(s->ctx, cmd, &out) != 0) {
        buf_free(&out);
        buf_init(&out, 256);
        buf_puts(&out, "{\"error\":\"unknown command\"}\n");
    }
    for (size_t off = 0; out.err == 0 && off < out.len;) {
        if (wait_fd(fd, POLLOUT, deadline) != 0)
            break;
        ssize_t w = write(fd, out.data + off, out.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&out);
}

static void *serve(void *arg)
{
    struct ctl_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0)
            break;
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            continue;
        serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

int ctl_start(ctl_server_t **out, const char *path, ctl_handler_t fn, void *ctx, char *err, size_t errlen)
{
    struct ctl_server *s = calloc(1, sizeof(*s));
    struct sockaddr_un sa;
    char dir[sizeof(sa.sun_path)];

    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return CIO_ENOMEM;
    }
    s->fd = -1;
    s->fn = fn;
    s->ctx = ctx;
    if (fill_addr(&sa, path) != 0) {
        snprintf(err, errlen, "replication.socket: path too long: %s", path);
        goto fail;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "replication.socket: cannot create %s: %s", dir, strerror(errno));
            goto fail;
        }
    }
    /* a socket file left by a killed repld: remove it only if nobody answers */
    buf_t probe;
    buf_init(&probe, 16);
    if (ctl_query(path, "ping", &probe, 200) != CIO_ENOTFOUND) {
        buf_free(&probe);
        snprintf(err, errlen, "replication.socket: %s is in use by a running repld", path);
        goto fail;
    }
    buf_free(&probe);
    unlink(path);
    if ((s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(s->fd, 16) != 0) {
        snprintf(err, errlen, "replication.socket: cannot listen on %s: %s", path, strerror(errno));
        goto fail;
    }
    if (pipe2(s->wake, O_CLOEXEC) != 0 || pthread_create(&s->tid, NULL, serve, s) != 0) {
        snprintf(err, errlen, "replication.socket: cannot start: %s", strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
    return CIO_ESYS;
}

void ctl_stop(ctl_server_t *s)
{
    if (s == NULL)
        return;
    if (write(s->wake[1], "x", 1) == 1)
        pthread_join(s->tid, NULL);
    close(s->fd);
    close(s->wake[0]);
    close(s->wake[1]);
    unlink(s->path);
    free(s->path);
    free(s);
}

int ctl_query(const char *path, const char *cmd, buf_t *out, int timeout_ms)
{
    struct sockaddr_un sa;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    char line[CTL_CMD_MAX + 2];
    int fd, ret = CIO_EIO;

    if (fill_addr(&sa, path) != 0)
        return CIO_ENOTFOUND;
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return CIO_EIO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        ret = errno == ENOENT || errno == ECONNREFUSED ? CIO_ENOTFOUND : CIO_EIO;
        goto done;
    }
    snprintf(line, sizeof(line), "%s\n", cmd);
    size_t len = strlen(line);
    if (wait_fd(fd, POLLOUT, deadline) != 0 || write(fd, line, len) != (ssize_t)len)
        goto done;
    for (;;) {
        char chunk[4096];
        if (wait_fd(fd, POLLIN, deadline) != 0)
            goto done;
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            goto done;
        }
        if (buf_append(out, chunk, (size_t)r) != 0)
            goto done;
    }
    ret = out->len > 0 ? 0 : CIO_EIO;
done:
    close(fd);
    return ret;
}
