/* s3_object.c - S3's single-object operations: PutObject, GetObject, HeadObject, DeleteObject. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "storaged/http_commit.h"
#include "storaged/objmeta_http.h"
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

/* S3's messages for the codes the shared object code sends */
static void s3_api_error(h2o_req_t *req, int status, const char *code, const char *msg)
{
    if (strcmp(code, "NoSuchKey") == 0)
        msg = "The specified key does not exist.";
    else if (strcmp(code, "NoSuchBucket") == 0)
        msg = "The specified bucket does not exist";
    else if (strcmp(code, "PreconditionFailed") == 0)
        msg = "At least one of the pre-conditions you specified did not hold";
    else if (strcmp(code, "EntityTooLarge") == 0) {
        msg = "Your proposed upload exceeds the maximum allowed size";
        status = 400; /* S3's status; the native API's is 413 */
    }
    s3_error(req, status, code, msg, NULL);
}

static void s3_api_error_range(h2o_req_t *req, uint64_t size)
{
    char buf[48];
    s3_error(req, 416, "InvalidRange", "The requested range is not satisfiable", NULL);
    snprintf(buf, sizeof(buf), "bytes */%" PRIu64, size);
    http_req_add_header(req, H2O_TOKEN_CONTENT_RANGE, buf, strlen(buf));
}

/* GetObject's response-* query parameters override the stored headers: an
 * override replaces the header the object's metadata gave */
static void s3_api_content_headers(h2o_req_t *req, const char *ctype, size_t ctype_len, const uint8_t *meta, size_t meta_len)
{
    static const struct {
        const char *param;
        const h2o_token_t *token;
    } overrides[] = {
        {"response-content-language", H2O_TOKEN_CONTENT_LANGUAGE}, {"response-expires", H2O_TOKEN_EXPIRES},
        {"response-cache-control", H2O_TOKEN_CACHE_CONTROL},       {"response-content-disposition", H2O_TOKEN_CONTENT_DISPOSITION},
        {"response-content-encoding", H2O_TOKEN_CONTENT_ENCODING},
    };
    char v[1024];
    size_t n;

    if (http_req_query_param(req, "response-content-type", v, sizeof(v), &n) == 0 && n > 0)
        http_req_add_header(req, H2O_TOKEN_CONTENT_TYPE, v, n);
    else
        http_req_add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype, ctype_len);
    objmeta_http_add(req, meta, meta_len);
    if (req->query_at == SIZE_MAX)
        return; /* no query, no override: not looked for five times more */
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
        if (http_req_query_param(req, overrides[i].param, v, sizeof(v), &n) == 0 && n > 0 && memchr(v, '\r', n) == NULL &&
            memchr(v, '\n', n) == NULL) {
            ssize_t at;
            while ((at = h2o_find_header(&req->res.headers, overrides[i].token, -1)) != -1)
                h2o_delete_header(&req->res.headers, at);
            http_req_add_header(req, overrides[i].token, v, n);
        }
}

static void s3_answer_put(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35];

    if (j->result == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
        return;
    }
    if (j->result != 0) {
        s3_error_cio(req, j->result, "PUT failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    http_req_add_header(req, H2O_TOKEN_ETAG, quoted, 34);
    http_req_reply(req, 200, NULL, "", 0);
}

const handler_api_t s3_object_api = {
    .error = s3_api_error,
    .error_range = s3_api_error_range,
    .cio_error = s3_error_cio,
    .content_headers = s3_api_content_headers,
    .answer_put = s3_answer_put,
};

int s3_put_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    int rc = s3_bucket_exists(srv, req, s);

    /* a native PUT makes its bucket; S3's needs one */
    if (rc <= 0) {
        if (rc == 0)
            s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        else
            s3_error_cio(req, rc, "PUT failed");
        return 0;
    }
    if (s3_checksum_check(req, s) != 0)
        return 0;
    return handler_object_write(srv, req, s->path, s->body.base, s->body.len, &s3_object_api);
}

int s3_get_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    return handler_object_read(srv, req, s->path, &s3_object_api);
}

static void answer_delete(h2o_req_t *req, commit_job_t *j)
{
    if (j->result == CIO_ENOTFOUND)
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
    else if (j->result != 0)
        s3_error_cio(req, j->result, "DELETE failed");
    else
        http_req_reply(req, 204, NULL, "", 0);
}

int s3_delete_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_commit_t *pend;
    int rc = s3_bucket_exists(srv, req, s);

    if (rc <= 0) {
        if (rc == 0)
            s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        else
            s3_error_cio(req, rc, "DELETE failed");
        return 0;
    }
    if ((pend = http_commit_new(req, COMMIT_DELETE, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "DELETE failed");
        return 0;
    }
    pend->answer = answer_delete;
    return http_commit_submit(req, pend);
}
