/* http_req.h - what storaged's HTTP files share: the server's state, request
 * accessors and the one way to answer a request.
 *
 * Internal to the HTTP layer (http.c and the handler_*.c files). Every
 * function here runs on the loop thread that owns the request; `req` is
 * borrowed from h2o and lives until the reply is sent or the client goes. */
#ifndef COMIO_HTTP_REQ_H
#define COMIO_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "common/buf.h"
#include "common/bwlimit.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/hex.h"
#include "storaged/commit.h"
#include "storaged/fetch.h"
#include "storaged/http.h"
#include "storaged/meta.h"
#include "storaged/store.h"
#include "storaged/syncwait.h"

#define HTTP_REQ_REPLY_MAX (64 * 1024 * 1024) /* cap on any generated JSON reply */

typedef struct http_thread http_thread_t;

/* The server; made by http_start (http.c), lives until the process exits. */
struct http_server {
    const conf_t *conf;
    meta_t *meta;
    store_t *store;
    commit_t *commit;
    fetch_opts_t fetch;                   /* how this site, as a replica, reaches its primary */
    char store_id[META_STORE_ID_HEX + 1]; /* the store's identity (meta_store_id), read at start; "" if unreadable */
    int64_t refusal_logged_ms;            /* atomic: last "no accept_token" log line */
    /* atomic: per conf->targets[i], the object bytes its fetches were served
     * ([i][0]) and the body bytes sent for them, compressed or not ([i][1]) */
    uint64_t fetch_bytes[CONF_TARGETS_MAX][2];
    syncwait_t *sync;    /* NULL unless a target has mode: sync: then writes wait for it (syncwait.h) */
    bwlimit_t *bw;       /* the targets' bandwidth limits, shared with repld (common/bwlimit.h); NULL: none */
    struct scrub *scrub; /* the background scrub (storaged/scrub.h); NULL when it could not start */
    h2o_globalconf_t globalconf;
    SSL_CTX *ssl_ctx;
    size_t nthreads;
    http_thread_t *threads;
    int stopping; /* atomic */
    unsigned grace_ms;
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cv;
    pthread_cond_t park_cv; /* never signalled */
    size_t nready, ndrained;
};

/* One event loop and its thread; fields marked "loop thread only" are
 * touched by no other thread. */
struct http_thread {
    http_server_t *srv;
    pthread_t tid;
    int listen_fd;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t replies;
    h2o_multithread_receiver_t wakeup;
    h2o_multithread_receiver_t aside_replies;
    size_t asides;                            /* control-socket questions in flight (loop thread only) */
    h2o_multithread_receiver_t bodyhash_done; /* large S3 bodies hashed off the loop (storaged/s3_bodyhash.h) */
    MDB_txn *rtxn;
    size_t inflight;       /* loop thread only */
    syncwait_loop_t *sync; /* this loop's waiting writes; NULL without sync targets */
};

/* The methods counted apart in comio_http_requests_total. */
enum { HTTP_REQ_GET, HTTP_REQ_HEAD, HTTP_REQ_PUT, HTTP_REQ_DELETE, HTTP_REQ_POST, HTTP_REQ_OTHER, HTTP_REQ_NMETHODS };

/* ---- the request ---- */

/* The request's method as one of HTTP_REQ_*. */
int http_req_method(h2o_req_t *req);

/* Non-zero for a HEAD request. */
int http_req_is_head(h2o_req_t *req);

/* The loop thread serving req. */
http_thread_t *http_req_thread(h2o_req_t *req);

/* The first value of a request header, or {NULL, 0} when absent. The value
 * lives in the request's pool. */
h2o_iovec_t http_req_header(h2o_req_t *req, const h2o_token_t *token);

/* Non-zero when the Authorization header is "Bearer <token>" (compared in
 * constant time). */
int http_req_bearer_matches(h2o_req_t *req, const char *token);

/* Non-zero when server.access_token is unset or the request carries it. */
int http_req_authorized(http_server_t *srv, h2o_req_t *req);

/* The query parameter `name`, percent-decoded into out (cap bytes, NUL
 * terminated), its length in *outlen. Returns 0, CIO_ENOTFOUND when absent,
 * or path_query_get's errors (CIO_ETOOBIG, CIO_EINVAL). */
int http_req_query_param(h2o_req_t *req, const char *name, char *out, size_t cap, size_t *outlen) CIO_MUST_CHECK;

/* Bytes of the request's path and headers, as the client sent them. */
size_t http_req_header_bytes(h2o_req_t *req);

/* Non-zero when the path without its query is exactly s. */
int http_req_path_is(h2o_req_t *req, const char *s);

/* The loop thread's read transaction, renewed; NULL (logged) on failure.
 * End it with http_req_rtxn_end before the handler returns. */
MDB_txn *http_req_rtxn_begin(http_thread_t *t);
void http_req_rtxn_end(http_thread_t *t);

/* ---- the reply ---- */

/* The reason phrase of a status we send. The string is static. */
const char *http_req_reason(int status);

/* Adds a response header; value is copied into the request's pool. */
void http_req_add_header(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len);
void http_req_add_header_str(h2o_req_t *req, const char *name, const char *value);

/* Counts a reply of `body` bytes in the request metrics. http_req_reply and
 * its variants count for themselves; a handler that starts a response with
 * h2o_start_response calls this once. */
void http_req_count(h2o_req_t *req, int status, size_t body);

/* Counts `n` bytes received in a PUT body. */
void http_req_count_in(size_t n);

/* Counts `n` more body bytes sent, for a reply counted with body 0 because
 * its size was not known when it started (a compressed stream). */
void http_req_count_out(size_t n);

/* Writes the comio_http_* metrics (Prometheus text) into b. */
void http_req_metrics(buf_t *b);

/* Sends the whole reply with a Content-Length (without one h2o 2.2.5 closes
 * the connection after a non-200 reply). body is copied before return;
 * ctype may be NULL. */
void http_req_reply(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len);

/* Sends b as an application/json reply and frees b; if b overflowed, an
 * error reply (500) instead. */
void http_req_reply_buf(h2o_req_t *req, int status, buf_t *b);

/* Error replies. Each sends {"error":msg,"code":code} with the given status
 * and drops every response header added before: an error reply carries the
 * error body's headers only (Content-Type: application/json, a 401's
 * WWW-Authenticate), whatever the handler had prepared for the object. */
void http_req_error(h2o_req_t *req, int status, const char *code, const char *msg);

/* http_req_error plus one header of the error's own (a 416's Content-Range);
 * value is NUL-terminated and copied. */
void http_req_error_hdr(h2o_req_t *req, int status, const char *code, const char *msg, const h2o_token_t *token, const char *value);

/* Sends the reply for a CIO_* error: 507 for a full store or map, else 500
 * with "what: <error>". */
void http_req_cio_error(h2o_req_t *req, int err, const char *what);

/* ---- formatting used by several handlers ---- */

/* The quoted ETag header value: '"' 32 hex digits '"'; out holds 35 bytes. */
static inline void quoted_etag(const uint8_t *md, char *out)
{
    out[0] = '"';
    hex_encode(out + 1, md, 16);
    out[33] = '"';
    out[34] = '\0';
}

#define HTTP_OBJ_ETAG_MAX 41 /* '"' 32 hex digits, '-' and up to 5 digits of part count, '"', NUL */

/* An object's S3 ETag, quoted, into out (HTTP_OBJ_ETAG_MAX bytes), NUL-terminated; returns its length: for an
 * object made by a multipart upload "hex(MD5 of the parts' MD5s)-parts", else the MD5 of its bytes (quoted_etag). */
static inline size_t http_obj_etag(const meta_obj_t *o, char *out)
{
    quoted_etag(o->mpu_parts > 0 ? o->mpu_md5 : o->etag, out);
    if (o->mpu_parts == 0)
        return 34;
    return 33 + (size_t)snprintf(out + 33, HTTP_OBJ_ETAG_MAX - 33, "-%u\"", (unsigned)(o->mpu_parts % 100000));
}

/* Decimal v into out (at least 21 bytes), NUL-terminated; returns the length.
 * On every reply, where snprintf's format parsing showed in profiles. */
static inline size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

#endif
