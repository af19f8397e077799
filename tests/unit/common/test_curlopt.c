/* test_curlopt.c - unit tests for common/curlopt.c against a one-shot HTTP
 * server on a loopback port: the User-Agent sent, the protocols refused, the
 * transfer timeout, and the dead-link socket options on the connection. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include "testutil.h"
#include "common/curlopt.h"

typedef struct {
    int listen_fd;
    int answer; /* 0: read the request and never answer */
    char request[4096];
} server_t;

static void *serve_one(void *arg)
{
    server_t *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    size_t n = 0;
    if (fd < 0)
        return NULL;
    /* read up to the end of the headers (a GET has no body), bounded */
    while (n < sizeof(s->request) - 1) {
        ssize_t r = read(fd, s->request + n, sizeof(s->request) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        s->request[n] = '\0';
        if (strstr(s->request, "\r\n\r\n") != NULL)
            break;
    }
    if (s->answer) {
        static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (write(fd, reply, sizeof(reply) - 1) < 0)
            perror("write");
        /* keep the connection open until the client is done with it */
        char drain[64];
        while (read(fd, drain, sizeof(drain)) > 0)
            ;
    } else {
        char drain[64];
        while (read(fd, drain, sizeof(drain)) > 0) /* until the client gives up */
            ;
    }
    close(fd);
    return NULL;
}

/* Listens on 127.0.0.1, a free port; writes the URL of `path` into url. */
static int server_start(server_t *s, pthread_t *tid, const char *path, char *url, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->listen_fd, 1) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    snprintf(url, cap, "http://127.0.0.1:%u%s", ntohs(a.sin_port), path);
    return pthread_create(tid, NULL, serve_one, s);
}

static size_t sink(char *p, size_t size, size_t n, void *ctx)
{
    return size * n;
}

/* Starts a server that answers or not, GETs from it with options `o`, and
 * returns the handle (its connection still open) with the result in *rc. */
static CURL *get_once(server_t *s, pthread_t *tid, const curlopt_t *o, CURLcode *rc)
{
    char url[128];
    CURL *c = curl_easy_init();
    *rc = CURLE_FAILED_INIT;
    if (c == NULL || server_start(s, tid, "/x", url, sizeof(url)) != 0)
        abort();
    CHECK_EQ_INT(curlopt_apply(c, o), 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    *rc = curl_easy_perform(c);
    return c;
}

/* Closes the connection, which ends the server thread. */
static void finish(CURL *c, server_t *s, pthread_t tid)
{
    curl_easy_cleanup(c);
    pthread_join(tid, NULL);
    close(s->listen_fd);
}

static int sockopt_int(curl_socket_t fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

static void test_agent_and_options(void)
{
    server_t s = {.answer = 1};
    pthread_t tid;
    curlopt_t o = {.agent = "comio-test", .dead_link_s = 20};
    CURLcode rc;
    CURL *c = get_once(&s, &tid, &o, &rc);
    CHECK_EQ_INT(rc, CURLE_OK);
    CHECK(strstr(s.request, "\r\nUser-Agent: comio-test/" COMIO_VERSION "\r\n") != NULL);

    /* the dead-link options are on the connection curl keeps */
    curl_socket_t fd = CURL_SOCKET_BAD;
    CHECK(curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD);
    CHECK_EQ_INT(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    CHECK_EQ_INT(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 5);
    CHECK_EQ_INT(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    CHECK_EQ_INT(sockopt_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 20000);
    CHECK(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY) > 0);
    finish(c, &s, tid);
}

static void test_defaults(void)
{
    server_t s = {.answer = 1};
    pthread_t tid;
    curlopt_t o = {0};
    CURLcode rc;
    CURL *c = get_once(&s, &tid, &o, &rc);
    CHECK_EQ_INT(rc, CURLE_OK);
    CHECK(strstr(s.request, "\r\nUser-Agent: comio/" COMIO_VERSION "\r\n") != NULL);
    /* no dead-link options unless asked */
    curl_socket_t fd = CURL_SOCKET_BAD;
    curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd);
    CHECK_EQ_INT(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    finish(c, &s, tid);
}

static void test_timeout(void)
{
    server_t s = {.answer = 0};
    pthread_t tid;
    curlopt_t o = {.timeout_ms = 300};
    CURLcode rc;
    CURL *c = get_once(&s, &tid, &o, &rc);
    CHECK_EQ_INT(rc, CURLE_OPERATION_TIMEDOUT);
    finish(c, &s, tid);
}

static void test_refusals(void)
{
    CURL *c = curl_easy_init();
    curlopt_t o = {0};
    CHECK_EQ_INT(curlopt_apply(c, &o), 0);
    curl_easy_setopt(c, CURLOPT_URL, "ftp://127.0.0.1:1/x");
    CHECK_EQ_INT(curl_easy_perform(c), CURLE_UNSUPPORTED_PROTOCOL);
    curl_easy_setopt(c, CURLOPT_URL, "file:///etc/hostname");
    CHECK_EQ_INT(curl_easy_perform(c), CURLE_UNSUPPORTED_PROTOCOL);
    CHECK_EQ_INT(curlopt_apply(NULL, &o), CIO_EINVAL);
    CHECK_EQ_INT(curlopt_apply(c, NULL), CIO_EINVAL);
    curl_easy_cleanup(c);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    RUN(test_agent_and_options);
    RUN(test_defaults);
    RUN(test_timeout);
    RUN(test_refusals);
    curl_global_cleanup();
    return TEST_SUMMARY();
}
