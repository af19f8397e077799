/* s3_reply.c - S3's XML replies and error bodies. */
#include <stdio.h>
#include <string.h>
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

/* a request id per reply, as S3 sends: the request's address is unique while it lives; 16 upper-case hex digits
 * and a NUL (snprintf's format parsing showed in profiles of every request) */
static void request_id(h2o_req_t *req, char rid[17])
{
    uint64_t v = (uint64_t)(uintptr_t)req;
    uint8_t be[8];

    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (56 - 8 * i)); /* the most significant digit first */
    hex_encode_upper(rid, be, sizeof(be));
}

void s3_add_request_id(h2o_req_t *req)
{
    char *rid = h2o_mem_alloc_pool(&req->pool, 17);

    request_id(req, rid);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-amz-request-id"), 0, NULL, rid, 16);
}

void s3_error(h2o_req_t *req, int status, const char *code, const char *msg, const char *resource)
{
    static const char oom[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
                              "<Message>out of memory</Message></Error>";
    char rid[17];
    buf_t b;

    memset(&req->res.headers, 0, sizeof(req->res.headers));
    request_id(req, rid);
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
