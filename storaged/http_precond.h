/* http_precond.h - HTTP conditional requests (RFC 9110 section 13): If-Match,
 * If-None-Match, If-Modified-Since, If-Unmodified-Since and If-Range.
 *
 * The evaluation is one function over plain values (the object's strong
 * ETag and Last-Modified, the request's header values), so that every
 * front end (the object API today, an S3 layer later) applies the same
 * rules, and so that it can be tested without a server. */
#ifndef COMIO_HTTP_PRECOND_H
#define COMIO_HTTP_PRECOND_H

#include <stdint.h>
#include <h2o.h>
#include "common/err.h"

/* What a request's preconditions ask of the object. */
enum {
    HTTP_PRECOND_PASS = 0,           /* go on: serve or perform the method */
    HTTP_PRECOND_NOT_MODIFIED = 304, /* GET/HEAD: answer 304 with the validators, no body */
    HTTP_PRECOND_FAILED = 412,       /* answer 412; change nothing */
};

/* The precondition headers of a request; a member with base NULL is absent.
 * Values are borrowed and need not be NUL-terminated. A header that appeared
 * several times is given as one comma-joined list. */
typedef struct {
    h2o_iovec_t if_match;
    h2o_iovec_t if_none_match;
    h2o_iovec_t if_modified_since;
    h2o_iovec_t if_unmodified_since;
    h2o_iovec_t if_range; /* http_precond_if_range's argument (the first one) */
    h2o_iovec_t range;    /* the Range header (the first one), for a GET */
} http_precond_t;

/* Evaluates the preconditions in RFC 9110 section 13.2.2's order.
 * `etag` is the current object's strong entity-tag with its quotes
 * ("\"<hex>\""), or {NULL, 0} when there is no current object (a PUT that
 * creates the key); `mtime` is its Last-Modified in seconds since the epoch.
 * `read` is non-zero for GET and HEAD, zero for a method that changes state.
 * Returns HTTP_PRECOND_PASS, HTTP_PRECOND_NOT_MODIFIED (only when `read`) or
 * HTTP_PRECOND_FAILED. Dates that do not parse make their header ignored, as
 * the RFC asks; an If-Match list that does not parse matches nothing. */
int http_precond_eval(const http_precond_t *h, h2o_iovec_t etag, int64_t mtime, int read);

/* If-Range (RFC 9110 section 13.1.5) against the current object: non-zero
 * when the Range header applies (the header is absent, or names this ETag
 * with a strong comparison, or is exactly this Last-Modified date), zero when
 * the whole object must be sent instead (a 200). */
int http_precond_if_range(h2o_iovec_t if_range, h2o_iovec_t etag, int64_t mtime);

/* Parses an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime
 * forms) into seconds since the epoch. Returns 0, or CIO_EINVAL when v is
 * not one (*out is then unchanged). */
int http_precond_parse_date(h2o_iovec_t v, int64_t *out) CIO_MUST_CHECK;

/* Fills h from req's headers in one walk over them (the seven lookups it
 * replaced were a walk each on every GET); joined lists are allocated from
 * req's pool. A repeated If-Modified-Since or If-Unmodified-Since is
 * invalid and left out; of If-Range and Range the first is taken. */
void http_precond_from_req(h2o_req_t *req, http_precond_t *h);

#endif
