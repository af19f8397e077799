/* curlopt.c - the libcurl options shared by every ComIO client. */
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <string.h>
#include "common/buf.h"
#include "common/curlopt.h"

#define CONNECT_TIMEOUT_MS 10000L /* when the caller gives none: libcurl's own is 300 s */

/* TCP_USER_TIMEOUT bounds how long sent data (or a keepalive probe) may stay
 * unacknowledged; libcurl has no option for it. `clientp` carries the
 * milliseconds themselves, so nothing has to outlive the handle. */
static int set_user_timeout(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    unsigned int ms = (unsigned int)(uintptr_t)clientp;
    if (purpose == CURLSOCKTYPE_IPCXN)
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)); /* best effort: Linux only */
    return CURL_SOCKOPT_OK;
}

/* Keeps the first failure: an option refused, or out of memory. */
static void check(CURLcode rc, int *err)
{
    if (rc != CURLE_OK && *err == 0)
        *err = rc == CURLE_OUT_OF_MEMORY ? CIO_ENOMEM : CIO_EINVAL;
}

int curlopt_apply(CURL *curl, const curlopt_t *o)
{
    char agent[64];
    int err = 0;

    if (curl == NULL || o == NULL)
        return CIO_EINVAL;
    snprintf(agent, sizeof(agent), "%s/%s", o->agent != NULL ? o->agent : "comio", COMIO_VERSION);
    check(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L), &err); /* threads: no SIGALRM for DNS timeouts */
    check(curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https"), &err);
    check(curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L), &err);
    check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L), &err);
    check(curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L), &err);
    if (o->ca_file != NULL)
        check(curl_easy_setopt(curl, CURLOPT_CAINFO, o->ca_file), &err);
    check(curl_easy_setopt(curl, CURLOPT_USERAGENT, agent), &err); /* libcurl copies strings */
    check(curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : CONNECT_TIMEOUT_MS),
          &err);
    check(curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 0L), &err);
    check(curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L), &err);
    if (o->dead_link_s > 0) {
        /* probes every quarter of the span once idle that long; TCP_USER_TIMEOUT
         * gives up when data or probes go unanswered for the whole span */
        long probe_s = o->dead_link_s / 4 > 0 ? o->dead_link_s / 4 : 1;
        check(curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L), &err);
        check(curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, probe_s), &err);
        check(curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, probe_s), &err);
        check(curl_easy_setopt(curl, CURLOPT_SOCKOPTFUNCTION, set_user_timeout), &err);
        check(curl_easy_setopt(curl, CURLOPT_SOCKOPTDATA, (void *)(uintptr_t)(o->dead_link_s * 1000)), &err);
    }
    return err;
}

size_t curlopt_to_buf(char *p, size_t size, size_t nmemb, void *buf)
{
    return buf_append(buf, p, size * nmemb) == 0 ? size * nmemb : 0; /* 0 aborts the transfer */
}

int curlopt_header_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return CIO_ENOMEM;
    *list = l;
    return 0;
}

static size_t paced_read(char *p, size_t size, size_t nmemb, void *arg)
{
    curlopt_body_t *pb = arg;
    size_t n = size * nmemb, left = pb->len - pb->off;
    if (n > left)
        n = left;
    if (n > BWLIMIT_CHUNK)
        n = BWLIMIT_CHUNK;
    if (n == 0)
        return 0;
    bwlimit_pace(pb->bw, pb->slot, n);
    memcpy(p, pb->body + pb->off, n);
    pb->off += n;
    return n;
}

static int paced_seek(void *arg, curl_off_t offset, int origin)
{
    curlopt_body_t *pb = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > pb->len)
        return CURL_SEEKFUNC_CANTSEEK;
    pb->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

void curlopt_post_body(CURL *curl, curlopt_body_t *pb, bwlimit_t *bw, int slot, const char *body, size_t len)
{
    *pb = (curlopt_body_t){bw, slot, body, len, 0};
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    if (bwlimit_limit(bw, slot) > 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, paced_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, pb);
        curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, paced_seek);
        curl_easy_setopt(curl, CURLOPT_SEEKDATA, pb);
    } else {
        (void)bwlimit_take(bw, slot, len); /* counted for the measured rate; no limit to wait for */
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
}
