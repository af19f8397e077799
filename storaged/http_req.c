/* http_req.c - reading the request, request metrics and replies shared by storaged's HTTP handlers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "storaged/http_req.h"
#include "storaged/path.h"

/* ---- metrics ---- */

static const char *const method_names[HTTP_REQ_NMETHODS] = {"GET", "HEAD", "PUT", "DELETE", "POST", "OTHER"};
static const int status_codes[] = {200, 204, 206, 304, 400, 401, 403, 404, 405, 409,
                                   410, 411, 412, 413, 416, 431, 500, 503, 507, 0};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))
static uint64_t metric_requests[HTTP_REQ_NMETHODS][NSTATUS];
static uint64_t metric_bytes_in, metric_bytes_out;

int http_req_method(h2o_req_t *req)
{
    static const struct {
        const char *name;
        size_t len;
    } m[] = {{"GET", 3}, {"HEAD", 4}, {"PUT", 3}, {"DELETE", 6}, {"POST", 4}};
    for (int i = 0; i < HTTP_REQ_OTHER; i++)
        if (h2o_memis(req->method.base, req->method.len, m[i].name, m[i].len))
            return i;
    return HTTP_REQ_OTHER;
}

void http_req_count(h2o_req_t *req, int status, size_t body)
{
    size_t s = 0;
    while (status_codes[s] != 0 && status_codes[s] != status)
        s++;
    __atomic_fetch_add(&metric_requests[http_req_method(req)][s], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&metric_bytes_out, body, __ATOMIC_RELAXED);
}

void http_req_count_in(size_t n)
{
    __atomic_fetch_add(&metric_bytes_in, n, __ATOMIC_RELAXED);
}

void http_req_count_out(size_t n)
{
    __atomic_fetch_add(&metric_bytes_out, n, __ATOMIC_RELAXED);
}

void http_req_metrics(buf_t *b)
{
    buf_puts(b, "# HELP comio_http_requests_total HTTP requests answered, by method and status.\n"
                "# TYPE comio_http_requests_total counter\n");
    for (int m = 0; m < HTTP_REQ_NMETHODS; m++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t n = __atomic_load_n(&metric_requests[m][s], __ATOMIC_RELAXED);
            if (n == 0)
                continue;
            if (status_codes[s] != 0)
                buf_printf(b, "comio_http_requests_total{method=\"%s\",status=\"%d\"} %" PRIu64 "\n", method_names[m],
                           status_codes[s], n);
            else
                buf_printf(b, "comio_http_requests_total{method=\"%s\",status=\"other\"} %" PRIu64 "\n", method_names[m], n);
        }
    buf_printf(b,
               "# HELP comio_http_received_bytes_total Object bytes received in PUT bodies.\n"
               "# TYPE comio_http_received_bytes_total counter\n"
               "comio_http_received_bytes_total %" PRIu64 "\n"
               "# HELP comio_http_sent_bytes_total Body bytes sent in replies.\n"
               "# TYPE comio_http_sent_bytes_total counter\n"
               "comio_http_sent_bytes_total %" PRIu64 "\n",
               __atomic_load_n(&metric_bytes_in, __ATOMIC_RELAXED), __atomic_load_n(&metric_bytes_out, __ATOMIC_RELAXED));
}

/* ---- replies ---- */

const char *http_req_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Internal Server Error";
    }
}

int http_req_is_head(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

void http_req_add_header(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, v.base, v.len);
}

void http_req_add_header_str(h2o_req_t *req, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v.base, v.len);
}

/* Every reply carries a Content-Length: without it h2o 2.2.5 closes the
 * connection after a non-200 reply. */
void http_req_reply(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = http_req_reason(status);
    req->res.content_length = len;
    if (ctype != NULL)
        http_req_add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype, strlen(ctype));
    http_req_count(req, status, http_req_is_head(req) ? 0 : len);
    h2o_send_inline(req, body, len);
}

/* An error reply replaces whatever a handler had prepared: the headers it
 * added for the object (Content-Type, ETag, ...) are dropped, so that the
 * reply carries the error body's headers only. */
static void reply_error_body(h2o_req_t *req, int status, const h2o_token_t *token, const char *value, const char *body, size_t len)
{
    memset(&req->res.headers, 0, sizeof(req->res.headers));
    if (status == 401)
        http_req_add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, H2O_STRLIT("Bearer"));
    if (token != NULL)
        http_req_add_header(req, token, value, strlen(value));
    http_req_reply(req, status, "application/json", body, len);
}

static void reply_oom(h2o_req_t *req)
{
    static const char oom[] = "{\"error\":\"reply too large or out of memory\",\"code\":\"InternalError\"}";
    reply_error_body(req, 500, NULL, NULL, oom, sizeof(oom) - 1);
}

void http_req_reply_buf(h2o_req_t *req, int status, buf_t *b)
{
    if (b->err != 0)
        reply_oom(req);
    else
        http_req_reply(req, status, "application/json", b->data, b->len);
    buf_free(b);
}

void http_req_error_hdr(h2o_req_t *req, int status, const char *code, const char *msg, const h2o_token_t *token, const char *value)
{
    buf_t b;
    buf_init(&b, 8192);
    buf_puts(&b, "{\"error\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_puts(&b, ",\"code\":");
    buf_json_str(&b, code, strlen(code));
    buf_puts(&b, "}");
    if (b.err != 0)
        reply_oom(req);
    else
        reply_error_body(req, status, token, value, b.data, b.len);
    buf_free(&b);
}

void http_req_error(h2o_req_t *req, int status, const char *code, const char *msg)
{
    http_req_error_hdr(req, status, code, msg, NULL, NULL);
}

void http_req_cio_error(h2o_req_t *req, int err, const char *what)
{
    char msg[256];
    switch (err) {
    case CIO_ENOSPC:
        http_req_error(req, 507, "InsufficientStorage", "not enough contiguous free space in the data store");
        return;
    case CIO_EMAPFULL:
        http_req_error(req, 507, "InsufficientStorage", "the metadata database is full (raise server.meta_map_size)");
        return;
    case CIO_ECHANGED: /* a conditional write whose object changed before its commit (commit.h, expect_version) */
        http_req_error(req, 412, "PreconditionFailed", "the key was written by another request after its precondition was checked");
        return;
    default:
        snprintf(msg, sizeof(msg), "%s: %s", what, cio_strerror(err));
        http_req_error(req, 500, "InternalError", msg);
    }
}

/* ---- the request ---- */

http_thread_t *http_req_thread(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
}

h2o_iovec_t http_req_header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* Compares the Authorization header with "Bearer <token>" in constant time
 * (hashing both first hides the token's length too). */
int http_req_bearer_matches(h2o_req_t *req, const char *token)
{
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    h2o_iovec_t v;

    v = http_req_header(req, H2O_TOKEN_AUTHORIZATION);
    if (v.base == NULL || v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
        return 0;
    SHA256((const unsigned char *)token, strlen(token), want);
    SHA256((const unsigned char *)v.base + 7, v.len - 7, got);
    return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

int http_req_authorized(http_server_t *srv, h2o_req_t *req)
{
    const char *token = srv->conf->access_token;
    return token == NULL || *token == '\0' || http_req_bearer_matches(req, token);
}

MDB_txn *http_req_rtxn_begin(http_thread_t *t)
{
    int rc = t->rtxn == NULL ? mdb_txn_begin(t->srv->meta->env, NULL, MDB_RDONLY, &t->rtxn) : mdb_txn_renew(t->rtxn);
    if (rc != 0) {
        meta_err(rc, "read transaction");
        if (t->rtxn != NULL) {
            mdb_txn_abort(t->rtxn);
            t->rtxn = NULL;
        }
        return NULL;
    }
    return t->rtxn;
}

void http_req_rtxn_end(http_thread_t *t)
{
    mdb_txn_reset(t->rtxn);
}

int http_req_query_param(h2o_req_t *req, const char *name, char *out, size_t cap, size_t *outlen)
{
    if (req->query_at == SIZE_MAX) {
        *outlen = 0;
        out[0] = '\0';
        return CIO_ENOTFOUND;
    }
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    return path_query_get(q, qlen, name, out, cap, outlen);
}

/* h2o 2.2.5 accepts request heads of about 400 KB; we take far less. */
size_t http_req_header_bytes(h2o_req_t *req)
{
    size_t n = req->path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

int http_req_path_is(h2o_req_t *req, const char *s)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return h2o_memis(req->path.base, len, s, strlen(s));
}
