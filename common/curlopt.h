/* curlopt.h - the libcurl options every ComIO client sets alike: repld's
 * senders, storaged's fetchers of large objects, the CLI.
 *
 * One function sets what they share: no signals (threads), http:// and
 * https:// only, no redirects, TLS peers verified against the system's CAs or
 * replication.ca_file, the User-Agent "comio-<part>/<version>", the connect
 * and transfer timeouts, and, on request, a dead-link timeout (TCP keepalive
 * probes and TCP_USER_TIMEOUT) so a silent link does not hold a transfer for
 * TCP's 15 minutes of retransmissions. Each caller then sets its own: URL,
 * headers, body, callbacks. Built into its own library (comio_curl) so that
 * only the programs that use libcurl link it. */
#ifndef COMIO_CURLOPT_H
#define COMIO_CURLOPT_H

#include <curl/curl.h>
#include "common/err.h"

typedef struct {
    const char *agent;       /* "comio", "comio-repld", "comio-storaged": sent as "<agent>/<version>"; NULL: "comio" */
    const char *ca_file;     /* PEM bundle trusted for https://; NULL: the system's CAs. libcurl copies it */
    long connect_timeout_ms; /* 0: 10 seconds */
    long timeout_ms;         /* the whole transfer; 0: none (a caller may set a stall limit instead) */
    long dead_link_s;        /* > 0: give up a connection that stays silent about this long; 0: the system's TCP timeouts */
} curlopt_t;

/* Sets the shared options on `curl` (after curl_easy_init or
 * curl_easy_reset). Returns 0, CIO_ENOMEM, or CIO_EINVAL when this libcurl
 * refuses one of them (built without a protocol or an option); the handle is
 * then partly set and should not be used. */
int curlopt_apply(CURL *curl, const curlopt_t *o) CIO_MUST_CHECK;

#endif
