/* curlopt.c - the libcurl options shared by every ComIO client. */
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
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
