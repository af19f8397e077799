/* s3.c - storaged's S3 front: tells an S3 request, verifies its signature and body, routes it to its operation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "common/bucket.h"
#include "common/sigv4.h"
#include "proto/awschunk.h"
#include "storaged/s3.h"
#include "storaged/s3_bodyhash.h"
#include "storaged/s3_reply.h"

_Static_assert(S3_ACCESS_KEY_MAX == SIGV4_ACCESS_KEY_MAX, "an access key fits both");
_Static_assert(CONF_S3_ACCESS_KEY_MAX == SIGV4_ACCESS_KEY_MAX, "a configured access key fits the parser's");
_Static_assert(CONF_S3_REGION_MAX <= SIGV4_REGION_MAX, "the configured region fits a credential scope");

/* The query parameters each operation understands; any other (but the
 * presigned URL's X-Amz-* and the SDKs' x-id) names a subresource or an
 * option not implemented, answered 501 rather than ignored. */
static const char *const list_params[] = {"list-type",          "prefix",      "delimiter",   "marker", "max-keys", "encoding-type",
                                          "continuation-token", "start-after", "fetch-owner", NULL};
static const char *const location_params[] = {"location", NULL};
static const char *const delete_params[] = {"delete", NULL};
static const char *const versioning_params[] = {"versioning", NULL};
static const char *const acl_params[] = {"acl", NULL};
static const char *const get_object_params[] = {"response-content-type",
                                                "response-content-language",
                                                "response-expires",
                                                "response-cache-control",
                                                "response-content-disposition",
                                                "response-content-encoding",
                                                NULL};
static const char *const no_params[] = {NULL};
static const char *const uploads_params[] = {"uploads", "prefix", "key-marker", "upload-id-marker", "max-uploads", NULL};
static const char *const create_mpu_params[] = {"uploads", NULL};
static const char *const part_params[] = {"partNumber", "uploadId", NULL};
static const char *const upload_params[] = {"uploadId", NULL};
static const char *const list_parts_params[] = {"uploadId", "part-number-marker", "max-parts", NULL};

/* The signing keys of this loop thread (a key changes once a day per access
 * key): four HMACs fewer per request. One per thread, as requests of a loop
 * run on its thread only; a secret changed by a restart is a miss. */
static _Thread_local sigv4_keycache_t s3_keycache;

void s3_thread_done(void)
{
    sigv4_keycache_wipe(&s3_keycache);
}

int s3_is_s3(h2o_req_t *req)
{
    h2o_iovec_t auth = http_req_header(req, H2O_TOKEN_AUTHORIZATION);
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL;
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;

    return sigv4_is_signed(auth.base, auth.len, q, qlen);
}

/* The query without its '?'; len 0 when none. */
static h2o_iovec_t query_of(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

/* 1 when every parameter of the query is in `allowed` (or is X-Amz-* / x-id);
 * otherwise 0 with the first stranger's name in *name (NUL-terminated, cut). */
static int params_only(h2o_req_t *req, const char *const *allowed, char *name, size_t cap)
{
    h2o_iovec_t q = query_of(req);
    size_t pos = 0;

    while (pos < q.len) {
        size_t start = pos, end;
        while (pos < q.len && q.base[pos] != '&')
            pos++;
        for (end = start; end < pos && q.base[end] != '='; end++)
            ;
        const char *n = q.base + start;
        size_t nl = end - start;
        int ok = nl == 0 || (nl > 6 && memcmp(n, "X-Amz-", 6) == 0) || (nl == 4 && memcmp(n, "x-id", 4) == 0);
        for (size_t i = 0; !ok && allowed[i] != NULL; i++)
            ok = strlen(allowed[i]) == nl && memcmp(allowed[i], n, nl) == 0;
        if (!ok) {
            snprintf(name, cap, "%.*s", (int)(nl > 64 ? 64 : nl), n);
            for (char *c = name; *c != '\0'; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == '<' || *c == '>' || *c == '&')
                    *c = '?';
            return 0;
        }
        pos++;
    }
    return 1;
}

static int has_param(h2o_req_t *req, const char *name)
{
    char v[8];
    size_t n;
    int rc = http_req_query_param(req, name, v, sizeof(v), &n);
    return rc != CIO_ENOTFOUND;
}

static int not_implemented(h2o_req_t *req, const s3_req_t *s, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "A header or query you provided implies functionality that is not implemented: %s", what);
    s3_error(req, 501, "NotImplemented", msg, s->resource);
    return 0;
}

/* Routes a request whose query names something beyond the operations
 * (a subresource, a version, a part): 501, never a wrong success. */
static int route(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    int m = http_req_method(req);
    char odd[72];

    if (s->bucket_len == 0) {
        if (m == HTTP_REQ_GET && params_only(req, no_params, odd, sizeof(odd)))
            return s3_list_buckets(srv, req, s);
        if (m != HTTP_REQ_GET) {
            s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.", s->resource);
            return 0;
        }
        return not_implemented(req, s, odd);
    }
    if (s->key_len == 0) {
        switch (m) {
        case HTTP_REQ_GET:
            if (has_param(req, "location") && params_only(req, location_params, odd, sizeof(odd)))
                return s3_get_bucket_location(srv, req, s);
            if (has_param(req, "versioning") && params_only(req, versioning_params, odd, sizeof(odd)))
                return s3_get_bucket_versioning(srv, req, s);
            if (has_param(req, "acl") && params_only(req, acl_params, odd, sizeof(odd)))
                return s3_get_acl(srv, req, s);
            if (has_param(req, "uploads")) {
                if (params_only(req, uploads_params, odd, sizeof(odd)))
                    return s3_mpu_list_uploads(srv, req, s);
                break;
            }
            if (params_only(req, list_params, odd, sizeof(odd))) {
                char v[8];
                size_t n;
                int rc = http_req_query_param(req, "list-type", v, sizeof(v), &n);
                if (rc == 0 && strcmp(v, "2") != 0) {
                    s3_error(req, 400, "InvalidArgument", "list-type must be 2", s->resource);
                    return 0;
                }
                return s3_list_objects(srv, req, s, rc == 0);
            }
            break;
        case HTTP_REQ_HEAD:
            if (params_only(req, no_params, odd, sizeof(odd)))
                return s3_head_bucket(srv, req, s);
            break;
        case HTTP_REQ_PUT:
            if (params_only(req, no_params, odd, sizeof(odd)))
                return s3_create_bucket(srv, req, s);
            break;
        case HTTP_REQ_DELETE:
            if (params_only(req, no_params, odd, sizeof(odd)))
                return s3_delete_bucket(srv, req, s);
            break;
        case HTTP_REQ_POST:
            if (has_param(req, "delete") && params_only(req, delete_params, odd, sizeof(odd)))
                return s3_delete_objects(srv, req, s);
            if (params_only(req, no_params, odd, sizeof(odd)))
                snprintf(odd, sizeof(odd), "POST on a bucket");
            break;
        default:
            s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.", s->resource);
            return 0;
        }
        return not_implemented(req, s, odd);
    }
    /* a GetObject or HeadObject without a query, as most are: no parameter to look for */
    if ((m == HTTP_REQ_GET || m == HTTP_REQ_HEAD) && req->query_at == SIZE_MAX)
        return s3_get_object(srv, req, s);
    switch (m) {
    case HTTP_REQ_GET:
    case HTTP_REQ_HEAD:
        if (m == HTTP_REQ_GET && has_param(req, "acl") && params_only(req, acl_params, odd, sizeof(odd)))
            return s3_get_acl(srv, req, s);
        if (m == HTTP_REQ_GET && has_param(req, "uploadId")) {
            if (params_only(req, list_parts_params, odd, sizeof(odd)))
                return s3_mpu_list_parts(srv, req, s);
            break;
        }
        if (params_only(req, get_object_params, odd, sizeof(odd)))
            return s3_get_object(srv, req, s);
        break;
    case HTTP_REQ_PUT:
        if (has_param(req, "uploadId") && h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-copy-source"), -1) != -1) {
            if (params_only(req, part_params, odd, sizeof(odd)))
                return s3_mpu_upload_part_copy(srv, req, s);
            break;
        }
        if (h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-copy-source"), -1) != -1) {
            if (params_only(req, no_params, odd, sizeof(odd)))
                return s3_copy_object(srv, req, s);
            break;
        }
        if ((has_param(req, "uploadId") || has_param(req, "partNumber")) && params_only(req, part_params, odd, sizeof(odd)))
            return s3_mpu_upload_part(srv, req, s);
        if (params_only(req, no_params, odd, sizeof(odd)))
            return s3_put_object(srv, req, s);
        break;
    case HTTP_REQ_DELETE:
        if (has_param(req, "uploadId") && params_only(req, upload_params, odd, sizeof(odd)))
            return s3_mpu_abort(srv, req, s);
        if (params_only(req, no_params, odd, sizeof(odd)))
            return s3_delete_object(srv, req, s);
        break;
    case HTTP_REQ_POST:
        if (has_param(req, "uploads") && params_only(req, create_mpu_params, odd, sizeof(odd)))
            return s3_mpu_create(srv, req, s);
        if (has_param(req, "uploadId") && params_only(req, upload_params, odd, sizeof(odd)))
            return s3_mpu_complete(srv, req, s);
        if (params_only(req, no_params, odd, sizeof(odd)))
            snprintf(odd, sizeof(odd), "POST on an object");
        break;
    default:
        s3_error(req, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.", s->resource);
        return 0;
    }
    return not_implemented(req, s, odd);
}

/* The request's headers for sigv4, with Host from the authority (HTTP/2
 * has none of its own) and Content-Length as the body came, if h2o dropped it. */
static sigv4_header_t *collect_headers(h2o_req_t *req, size_t *n)
{
    sigv4_header_t *hs = h2o_mem_alloc_pool(&req->pool, (req->headers.size + 2) * sizeof(*hs));
    size_t k = 0;
    int have_len = 0;

    hs[k++] = (sigv4_header_t){"host", 4, req->authority.base, req->authority.len};
    /* h2o names every header it knows by its token (h2o_find_header relies on it): a pointer compared, not a name */
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name == &H2O_TOKEN_HOST->buf)
            continue;
        if (h->name == &H2O_TOKEN_CONTENT_LENGTH->buf)
            have_len = 1;
        hs[k++] = (sigv4_header_t){h->name->base, h->name->len, h->value.base, h->value.len};
    }
    if (!have_len && req->entity.base != NULL) {
        char *v = h2o_mem_alloc_pool(&req->pool, 24);
        size_t vl = fmt_u64(v, req->entity.len);
        hs[k++] = (sigv4_header_t){"content-length", 14, v, vl};
    }
    *n = k;
    return hs;
}

/* The bucket of a virtual-hosted-style request: Host is "<bucket>.<domain>"
 * for a domain of s3.domains. Returns its length (0: path style). */
static size_t virtual_bucket(const conf_t *conf, h2o_iovec_t host, const char **bucket)
{
    size_t hl = host.len;
    /* without the port (an IPv6 literal has no bucket anyway) */
    for (size_t i = host.len; i > 0; i--)
        if (host.base[i - 1] == ':') {
            hl = i - 1;
            break;
        } else if (host.base[i - 1] < '0' || host.base[i - 1] > '9') {
            break;
        }
    for (size_t d = 0; d < conf->s3_ndomains; d++) {
        size_t dl = strlen(conf->s3_domains[d]);
        if (hl > dl + 1 && host.base[hl - dl - 1] == '.' && strncasecmp(host.base + hl - dl, conf->s3_domains[d], dl) == 0) {
            *bucket = host.base;
            return hl - dl - 1;
        }
    }
    return 0;
}

/* Decodes the target into *p and s (bucket and key, pointing into *p); answers and returns -1 when it is bad. */
static int parse_target(http_server_t *srv, h2o_req_t *req, s3_req_t *s, path_t *p)
{
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *vb = NULL, *code;
    size_t vbl = virtual_bucket(srv->conf, req->authority, &vb);
    const char *target = req->path.base;
    size_t tlen = plen;

    if (vbl > 0) {
        if (vbl > LIMIT_BUCKET_MAX) {
            s3_error(req, 400, "InvalidBucketName", "The specified bucket is not valid.", NULL);
            return -1;
        }
        char *t = h2o_mem_alloc_pool(&req->pool, vbl + plen + 2);
        t[0] = '/';
        for (size_t i = 0; i < vbl; i++)
            t[1 + i] = (char)(vb[i] >= 'A' && vb[i] <= 'Z' ? vb[i] + 32 : vb[i]);
        memcpy(t + 1 + vbl, req->path.base, plen);
        target = t;
        tlen = 1 + vbl + plen;
    }
    if (path_parse(target, tlen, p, &code) != 0) {
        const char *msg = strcmp(code, "InvalidBucketName") == 0 ? "The specified bucket is not valid."
                          : strcmp(code, "KeyTooLong") == 0 ? "Your key is too long (at most " LIMIT_TEXT(LIMIT_KEY_MAX) " bytes)"
                          : strcmp(code, "InvalidKey") == 0 ? "The key contains a NUL byte"
                                                            : "Couldn't parse the specified URI.";
        s3_error(req, 400, code, msg, NULL);
        return -1;
    }
    if (p->bucket_len > 0 && bucket_name_reserved(p->bucket, p->bucket_len)) {
        s3_error(req, 400, "InvalidBucketName", "The specified bucket is not valid: " BUCKET_RESERVED_TEXT " are reserved", NULL);
        return -1;
    }
    s->path = p;
    s->bucket = p->bucket;
    s->bucket_len = p->bucket_len;
    s->key = p->key;
    s->key_len = p->key_len;
    /* "/bucket" or "/bucket/key" (a key has no NUL), sized to fit: the request is no larger than it needs */
    char *r = h2o_mem_alloc_pool(&req->pool, p->bucket_len + p->key_len + 3);
    s->resource = r;
    *r++ = '/';
    memcpy(r, p->bucket, p->bucket_len);
    r += p->bucket_len;
    if (p->key_len > 0) {
        *r++ = '/';
        memcpy(r, p->key, p->key_len);
        r += p->key_len;
    }
    *r = '\0';
    return 0;
}

static int fail_sig(h2o_req_t *req, const sigv4_error_t *e)
{
    s3_error(req, e->status, e->code, e->msg, NULL);
    return 0;
}

/* Moves s's path (on s3_dispatch's stack) into the request's pool, for a
 * request answered after s3_dispatch returns. */
static void keep_path(h2o_req_t *req, s3_req_t *s)
{
    path_t *p = h2o_mem_alloc_pool(&req->pool, sizeof(*p));

    *p = *s->path;
    s->path = p;
    s->bucket = p->bucket;
    s->key = p->key;
}

/* A large signed body hashed off the loop (storaged/s3_bodyhash.h): what the request needs once the digest is known. */
typedef struct {
    http_server_t *srv;
    const s3_req_t *s;
    char claimed[SIGV4_SIG_HEX + 1]; /* x-amz-content-sha256 */
} hashed_body_t;

static void on_body_hashed(h2o_req_t *req, const uint8_t *digest, void *arg)
{
    hashed_body_t *w = arg;
    sigv4_error_t e;

    if (digest == NULL) {
        s3_error(req, 500, "InternalError", "out of memory hashing the body", NULL);
        return;
    }
    if (sigv4_payload_digest_check(w->claimed, digest, &e) != 0) {
        fail_sig(req, &e);
        return;
    }
    (void)route(w->srv, req, w->s);
}

/* Removes an aws-chunked body's framing (checking its signatures) and keeps its trailers. */
static int decode_body(h2o_req_t *req, const sigv4_auth_t *a, s3_req_t *s, sigv4_error_t *e)
{
    awschunk_trailer_t tr[S3_TRAILERS_MAX];
    awschunk_opts_t o;
    size_t len, ntr = 0;
    char dlen[24];
    int rc;

    h2o_iovec_t dv = h2o_iovec_init(NULL, 0);
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-decoded-content-length"), -1);
    if (i != -1)
        dv = req->headers.entries[i].value;
    if (dv.base != NULL && dv.len > 0 && dv.len < sizeof(dlen)) {
        memcpy(dlen, dv.base, dv.len);
        dlen[dv.len] = '\0';
    } else {
        dlen[0] = '\0';
    }
    if (dlen[0] == '\0' || strspn(dlen, "0123456789") != strlen(dlen) || strlen(dlen) > 19) {
        e->status = 411;
        e->code = "MissingContentLength";
        snprintf(e->msg, sizeof(e->msg), "an aws-chunked body needs x-amz-decoded-content-length, a decimal number of bytes");
        return -1;
    }
    memset(&o, 0, sizeof(o));
    o.auth = a->payload == SIGV4_PAYLOAD_UNSIGNED_TRAILER ? NULL : a;
    o.trailer = a->payload != SIGV4_PAYLOAD_STREAMING;
    o.decoded_len = strtoull(dlen, NULL, 10);
    rc = awschunk_decode(req->entity.base, req->entity.len, &o, &len, tr, S3_TRAILERS_MAX, &ntr, e);
    if (rc != 0)
        return -1;
    s->body = h2o_iovec_init(req->entity.base, len);
    for (size_t k = 0; k < ntr; k++) {
        s->trailers[k][0] = h2o_iovec_init(tr[k].name, tr[k].name_len);
        s->trailers[k][1] = h2o_iovec_init(tr[k].value, tr[k].value_len);
    }
    s->ntrailers = ntr;
    return 0;
}

int s3_dispatch(http_server_t *srv, h2o_req_t *req, int kind)
{
    const conf_t *conf = srv->conf;
    h2o_iovec_t q = query_of(req);
    s3_req_t *s = h2o_mem_alloc_pool(&req->pool, sizeof(*s));
    sigv4_request_t r;
    sigv4_auth_t a;
    sigv4_error_t e;
    const conf_s3_cred_t *cred = NULL;
    path_t local, *p = &local;
    int rc;

    memset(s, 0, sizeof(*s));
    s->bucket = s->key = s->resource = "";
    s3_add_request_id(req);
    if (kind == SIGV4_SIGNED_V2) {
        s3_error(req, 400, "InvalidRequest",
                 "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.", NULL);
        return 0;
    }
    if (conf->s3_ncredentials == 0) {
        s3_error(req, 403, "InvalidAccessKeyId", "S3 is off on this server: s3.credentials lists no access key", NULL);
        return 0;
    }
    memset(&r, 0, sizeof(r));
    r.method = req->method.base;
    r.method_len = req->method.len;
    r.path = req->path.base;
    r.path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    r.query = q.base;
    r.query_len = q.len;
    r.headers = collect_headers(req, &r.nheaders);
    /* the time h2o took when it began processing the request (its loop's clock, read once per loop turn, to the
     * millisecond): the skew allowed is 15 minutes, and a clock read per request showed in profiles */
    if (sigv4_parse(&r, (int64_t)req->processed_at.at.tv_sec, conf->s3_region, &a, &e) != 0)
        return fail_sig(req, &e);
    for (size_t i = 0; i < conf->s3_ncredentials; i++)
        if (strcmp(conf->s3_credentials[i].access_key, a.access_key) == 0)
            cred = &conf->s3_credentials[i];
    if (cred == NULL) {
        sigv4_error_unknown_key(&e);
        return fail_sig(req, &e);
    }
    rc = sigv4_verify_cached(&r, &a, cred->secret_key, strlen(cred->secret_key), &s3_keycache, &e);
    if (rc != 0) {
        OPENSSL_cleanse(a.key, sizeof(a.key));
        return fail_sig(req, &e);
    }
    s->access_key = cred->access_key; /* the same name: pointed at, not copied (a copy showed in perf) */
    /* A GET or HEAD is answered before s3_dispatch returns: its path stays on the stack (in the pool, a
     * path_t, over 1 KB, is a malloc and a free of its own per request, which showed in callgrind). Every
     * other method's handlers may answer later: their path is in the pool, as a hashed body's (keep_path). */
    if (http_req_method(req) != HTTP_REQ_GET && http_req_method(req) != HTTP_REQ_HEAD)
        p = h2o_mem_alloc_pool(&req->pool, sizeof(*p));
    if (parse_target(srv, req, s, p) != 0)
        goto done;
    s->body = h2o_iovec_init(req->entity.base != NULL ? req->entity.base : "", req->entity.len);
    switch (a.payload) {
    case SIGV4_PAYLOAD_SHA256:
        if (s->body.len >= S3_BODYHASH_MIN) {
            hashed_body_t *w = h2o_mem_alloc_pool(&req->pool, sizeof(*w));
            if (s->path == &local)
                keep_path(req, s);
            w->srv = srv;
            w->s = s;
            memcpy(w->claimed, a.payload_hash, sizeof(w->claimed));
            if (s3_bodyhash_start(req, on_body_hashed, w))
                goto done; /* answered by on_body_hashed */
        }
        if (sigv4_payload_check(&a, s->body.base, s->body.len, &e) != 0) {
            fail_sig(req, &e);
            goto done;
        }
        break;
    case SIGV4_PAYLOAD_UNSIGNED:
        break;
    default:
        if (decode_body(req, &a, s, &e) != 0) {
            fail_sig(req, &e);
            goto done;
        }
    }
    OPENSSL_cleanse(a.key, sizeof(a.key));
    return route(srv, req, s);
done:
    OPENSSL_cleanse(a.key, sizeof(a.key));
    return 0;
}
