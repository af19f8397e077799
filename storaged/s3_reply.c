/* s3_reply.c - S3's XML replies and error bodies. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "common/hex.h"
#include "storaged/http_req.h"
#include "storaged/s3_reply.h"

int s3_xml_text(buf_t *b, const char *p, size_t n)
{
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        const char *ent = NULL;
        switch (c) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&apos;";
            break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                ent = ""; /* not representable in XML 1.0 */
        }
        if (ent == NULL)
            continue;
        buf_append(b, p + run, i - run);
        buf_puts(b, ent);
        run = i + 1;
    }
    return buf_append(b, p + run, n - run);
}

int s3_xml_elem(buf_t *b, const char *name, const char *p, size_t n)
{
    buf_printf(b, "<%s>", name);
    s3_xml_text(b, p, n);
    return buf_printf(b, "</%s>", name);
}

int s3_xml_elem_u64(buf_t *b, const char *name, unsigned long long v)
{
    return buf_printf(b, "<%s>%llu</%s>", name, v, name);
}

int s3_xml_open(buf_t *b, const char *root)
{
    return buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
                      root);
}

/* h2o sends no body for HEAD; the Content-Length is the body's, as S3's */
static void reply_body(h2o_req_t *req, int status, const char *body, size_t len)
{
    http_req_reply(req, status, "application/xml", body, len);
}

void s3_reply_xml(h2o_req_t *req, int status, buf_t *b)
{
    if (b->err != 0) {
        buf_free(b);
        s3_error(req, 500, "InternalError", "reply too large or out of memory", NULL);
        return;
    }
    reply_body(req, status, b->data, b->len);
    buf_free(b);
}

/* A request id per reply, as S3 sends, that names one request: the low 16
 * bits of the second this process started, the loop thread's number and that
 * thread's count of requests (the request's address it used to be repeated
 * on every request that reused the memory, so a client's RequestId named no
 * request in the log). 16 upper-case hex digits and a NUL, without snprintf
 * (its format parsing showed in profiles of every request). */
static void request_id(char rid[17])
{
    static uint64_t started, threads;
    static _Thread_local uint64_t next; /* 0: this thread has no number yet */
    uint8_t be[8];

    if (next == 0) {
        uint64_t s = __atomic_load_n(&started, __ATOMIC_RELAXED);
        if (s == 0) {
            s = (uint64_t)time(NULL) & 0xffff;
            __atomic_store_n(&started, s | 0x10000, __ATOMIC_RELAXED); /* non-zero even at a second of 0 */
        }
        next = (s & 0xffff) << 48 | (__atomic_fetch_add(&threads, 1, __ATOMIC_RELAXED) & 0xff) << 40;
    }
    uint64_t v = next & ~0xffffffffffULL;
    v |= (next + 1) & 0xffffffffffULL; /* the count wraps within its 40 bits */
    next = v;
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (56 - 8 * i)); /* the most significant digit first */
    hex_encode_upper(rid, be, sizeof(be));
}

void s3_add_request_id(h2o_req_t *req)
{
    char *rid = h2o_mem_alloc_pool(&req->pool, 17);

    request_id(rid);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-amz-request-id"), 0, NULL, rid, 16);
}

/* The id s3_add_request_id gave req, into rid; a new one if it has none. */
static void request_id_of(h2o_req_t *req, char rid[17])
{
    ssize_t at = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-amz-request-id"), -1);

    if (at != -1 && req->res.headers.entries[at].value.len == 16) {
        memcpy(rid, req->res.headers.entries[at].value.base, 16);
        rid[16] = '\0';
    } else {
        request_id(rid);
    }
}

/* failed requests logged at most this many lines a second (a full store answers every PUT 507) */
#define S3_ERRLOG_PER_S 10
static log_ratelimit_t errlog = LOG_RATELIMIT_INIT;

void s3_error(h2o_req_t *req, int status, const char *code, const char *msg, const char *resource)
{
    static const char oom[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
                              "<Message>out of memory</Message></Error>";
    char rid[17];
    buf_t b;

    request_id_of(req, rid);
    memset(&req->res.headers, 0, sizeof(req->res.headers));
    http_req_add_header_str(req, "x-amz-request-id", rid);
    buf_init(&b, 16384);
    buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
    s3_xml_elem(&b, "Code", code, strlen(code));
    s3_xml_elem(&b, "Message", msg, strlen(msg));
    if (resource != NULL)
        s3_xml_elem(&b, "Resource", resource, strlen(resource));
    else
        s3_xml_elem(&b, "Resource", req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    s3_xml_elem(&b, "RequestId", rid, strlen(rid));
    buf_puts(&b, "</Error>");
    /* the server's fault (not a 501, an operation it does not offer): found in the log by the RequestId the client shows */
    if ((status >= 500 && status != 501) || b.err != 0) {
        char st[12], what[320], skipped[24];
        size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
        snprintf(st, sizeof(st), "%d", b.err != 0 ? 500 : status);
        snprintf(what, sizeof(what), "%.*s %.*s", (int)(req->method.len < 16 ? req->method.len : 16), req->method.base,
                 (int)(plen < 256 ? plen : 256), req->path.base);
        uint64_t left_out;
        if (log_ratelimit_take(&errlog, (int64_t)time(NULL), S3_ERRLOG_PER_S, &left_out)) {
            snprintf(skipped, sizeof(skipped), "%" PRIu64, left_out);
            log_msg(LOG_LVL_ERROR, "S3 request failed", "request_id", rid, "status", st, "code",
                    b.err != 0 ? "InternalError" : code, "message", msg, "request", what, "not_logged_before", skipped, NULL);
        }
    }
    if (b.err != 0)
        reply_body(req, 500, oom, sizeof(oom) - 1);
    else
        reply_body(req, status, b.data, b.len);
    buf_free(&b);
}

void s3_error_cio(h2o_req_t *req, int err, const char *what)
{
    char msg[256];

    switch (err) {
    case CIO_ENOSPC:
        s3_error(req, 507, "InsufficientStorage", "not enough contiguous free space in the data store", NULL);
        return;
    case CIO_EMAPFULL:
        s3_error(req, 507, "InsufficientStorage", "the metadata database is full (raise server.meta_map_size)", NULL);
        return;
    case CIO_ECHANGED:
        s3_error(req, 412, "PreconditionFailed", "the key was written by another request after its precondition was checked", NULL);
        return;
    case CIO_ECORRUPT: /* a source whose stored bytes fail their block checksums (storaged/integrity.h) */
        s3_error(req, 503, "ServiceUnavailable",
                 "The source object's stored data fails its checksum and no good copy is available; the damage is logged", NULL);
        return;
    default:
        snprintf(msg, sizeof(msg), "%s: %s", what, cio_strerror(err));
        s3_error(req, 500, "InternalError", msg, NULL);
    }
}
