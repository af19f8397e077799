/* curlopt.h - the libcurl options every ComIO client sets alike: repld's
 * senders, storaged's fetchers of large objects, the CLI.
 *
 * One function sets what they share: no signals (threads), http:// and
 * https:// only, no redirects, TLS peers verified against the system's CAs or
 * replication.ca_file, the User-Agent "comio-<part>/<version>", the connect
 * and transfer timeouts, and, on request, a dead-link timeout (TCP keepalive
 * probes and TCP_USER_TIMEOUT) so a silent link does not hold a transfer for
 * TCP's 15 minutes of retransmissions. Each caller then sets its own: URL,
 * headers, body, callbacks; those several callers share (a reply into a
 * buffer, a header list, a POST body paced by a bandwidth limit) are here too. Built into its own library (comio_curl) so that
 * only the programs that use libcurl link it. */
#ifndef COMIO_CURLOPT_H
#define COMIO_CURLOPT_H

#include <stddef.h>
#include <curl/curl.h>
#include "common/bwlimit.h"
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

/* A CURLOPT_WRITEFUNCTION that appends the reply to the buf_t given as
 * CURLOPT_WRITEDATA; a reply past the buffer's cap aborts the transfer. */
size_t curlopt_to_buf(char *p, size_t size, size_t nmemb, void *buf);

/* Appends one header line to *list; on failure (CIO_ENOMEM) the list is left
 * as it was. */
int curlopt_header_add(struct curl_slist **list, const char *line) CIO_MUST_CHECK;

/* The body of one POST, paced by a target's bandwidth limit (common/bwlimit.h)
 * when it has one. Lives as long as the transfer: curlopt_post_body points
 * libcurl at it. */
typedef struct {
    bwlimit_t *bw; /* NULL: no limit */
    int slot;
    const char *body;
    size_t len, off;
} curlopt_body_t;

/* Sets `curl` to POST body[0..len) through pb. Under a limit (read per call,
 * so that a reload takes effect at the next POST) libcurl reads the body a
 * BWLIMIT_CHUNK at a time, each taken from the limit first, and may rewind it
 * for a retry; without one the body goes as it is and is only counted for
 * the measured rate. */
void curlopt_post_body(CURL *curl, curlopt_body_t *pb, bwlimit_t *bw, int slot, const char *body, size_t len);

#endif
