/* s3_multipart.c - S3's multipart upload operations: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads.
 *
 * The mutations go through the group committer (commit.h, COMMIT_MPU_*);
 * the listings read the multipart tables (storaged/mpu.h) in the loop's
 * read transaction. UploadPartCopy is not implemented (501, s3.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "common/date.h"
#include "proto/s3xml.h"
#include "storaged/http_commit.h"
#include "storaged/mpu.h"
#include "storaged/objmeta_http.h"
#include "storaged/integrity.h"
#include "storaged/repair.h"
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

#define OWNER_XML "<ID>" S3_OWNER_NAME "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName>"
#define LIST_MAX 1000                /* max-parts and max-uploads: S3's default and cap */
#define LIST_UPLOADS_SCAN_MAX 100000 /* uploads of one bucket a ListMultipartUploads sorts at most (docs/s3.md) */

static void no_such_upload(h2o_req_t *req, const s3_req_t *s)
{
    s3_error(req, 404, "NoSuchUpload",
             "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
             s->resource);
}

static void no_such_bucket(h2o_req_t *req, const s3_req_t *s)
{
    s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
}

/* The uploadId parameter into id (MPU_ID_LEN + 1 bytes): 0, or -1 when it is absent or not one of ours. */
static int upload_id_param(h2o_req_t *req, char *id)
{
    char v[MPU_ID_LEN + 2];
    size_t n;
    if (http_req_query_param(req, "uploadId", v, sizeof(v), &n) != 0 || !mpu_id_valid(v, n))
        return -1;
    memcpy(id, v, MPU_ID_LEN + 1);
    return 0;
}

/* A decimal query parameter: 0 with *out set, 1 when absent, -1 when not a number of at most `max`. */
static int uint_param(h2o_req_t *req, const char *name, uint64_t max, uint64_t *out)
{
    char v[24], *end;
    size_t n;
    int rc = http_req_query_param(req, name, v, sizeof(v), &n);
    if (rc == CIO_ENOTFOUND)
        return 1;
    if (rc != 0 || n == 0 || n > 19 || v[0] < '0' || v[0] > '9')
        return -1;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || x > max)
        return -1;
    *out = x;
    return 0;
}

/* Whether s's bucket exists; answers and returns 0 when not (or on error). */
static int need_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s, const char *what)
{
    int rc = s3_bucket_exists(srv, req, s);
    if (rc == 0)
        no_such_bucket(req, s);
    else if (rc < 0)
        s3_error_cio(req, rc, what);
    return rc > 0;
}

/* ---- CreateMultipartUpload ---- */

static void answer_create(h2o_req_t *req, commit_job_t *j)
{
    buf_t b;
    if (j->result == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
        return;
    }
    if (j->result != 0) {
        s3_error_cio(req, j->result, "CreateMultipartUpload failed");
        return;
    }
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "InitiateMultipartUploadResult");
    s3_xml_elem(&b, "Bucket", j->bucket, j->blen);
    s3_xml_elem(&b, "Key", j->key, j->klen);
    s3_xml_elem(&b, "UploadId", j->upload_id, MPU_ID_LEN);
    buf_puts(&b, "</InitiateMultipartUploadResult>");
    s3_reply_xml(req, 200, &b);
}

int s3_mpu_create(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    h2o_iovec_t ct = http_req_header(req, H2O_TOKEN_CONTENT_TYPE);
    uint8_t meta[OBJMETA_MAX], rnd[MPU_ID_LEN / 2];
    size_t meta_len;
    const char *code;
    char err[256];
    http_commit_t *pend;

    if (!need_bucket(srv, req, s, "CreateMultipartUpload failed"))
        return 0;
    if (ct.len > LOGREC_CTYPE_MAX) {
        s3_error(req, 400, "InvalidArgument", "Content-Type is longer than 255 bytes", s->resource);
        return 0;
    }
    if (ct.base == NULL || ct.len == 0)
        ct = h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    if (objmeta_http_read(req, meta, &meta_len, &code, err, sizeof(err)) != 0) {
        s3_error(req, 400, code, err, s->resource);
        return 0;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1 || (pend = http_commit_new(req, COMMIT_MPU_CREATE, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "CreateMultipartUpload failed");
        return 0;
    }
    hex_encode(pend->job.upload_id, rnd, sizeof(rnd));
    pend->job.upload_id[MPU_ID_LEN] = '\0';
    memcpy(pend->job.ctype, ct.base, ct.len);
    pend->job.ctype_len = ct.len;
    memcpy(pend->job.meta, meta, meta_len);
    pend->job.meta_len = meta_len;
    pend->answer = answer_create;
    return http_commit_submit(req, pend);
}

/* ---- UploadPart ---- */

static void answer_part(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35];
    if (j->result == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchUpload", "The specified upload does not exist.", NULL);
        return;
    }
    if (j->result != 0) {
        s3_error_cio(req, j->result, "UploadPart failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    http_req_add_header(req, H2O_TOKEN_ETAG, quoted, 34);
    http_req_reply(req, 200, NULL, "", 0);
}

int s3_mpu_upload_part(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    char id[MPU_ID_LEN + 1];
    uint64_t number;
    http_commit_t *pend;

    if (uint_param(req, "partNumber", MPU_PART_MAX, &number) != 0 || number < MPU_PART_MIN) {
        s3_error(req, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", s->resource);
        return 0;
    }
    if (upload_id_param(req, id) != 0) {
        no_such_upload(req, s);
        return 0;
    }
    if (s->body.len > MPU_PART_SIZE_MAX) {
        s3_error(req, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", s->resource);
        return 0;
    }
    if (s3_checksum_check(req, s) != 0)
        return 0;
    if ((pend = http_commit_new(req, COMMIT_MPU_PART, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "UploadPart failed");
        return 0;
    }
    memcpy(pend->job.upload_id, id, sizeof(id));
    pend->job.part_number = (uint32_t)number;
    pend->job.body = s->body.len > 0 ? s->body.base : "";
    pend->job.size = s->body.len;
    pend->answer = answer_part;
    http_req_count_in(s->body.len);
    return http_commit_submit(req, pend);
}

/* ---- UploadPartCopy ---- */

/* x-amz-copy-source ("bucket/key" or "/bucket/key", percent-encoded: the
 * form of a request path; never a "?versionId=": ComIO keeps one version)
 * parsed into *sp (pointing into req's pool). 0, or -1 when malformed. */
static int copy_source(h2o_req_t *req, path_t *sp)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-copy-source"), -1);
    h2o_iovec_t src = at != -1 ? req->headers.entries[at].value : h2o_iovec_init(NULL, 0);
    const char *code;

    if (src.len == 0 || src.len > 3 * (LIMIT_BUCKET_MAX + LIMIT_KEY_MAX + 2) || memchr(src.base, '?', src.len) != NULL)
        return -1;
    char *target = h2o_mem_alloc_pool(&req->pool, src.len + 2);
    target[0] = '/';
    memcpy(target + 1, src.base[0] == '/' ? src.base + 1 : src.base, src.len - (src.base[0] == '/'));
    return path_parse(target, src.len + (src.base[0] != '/'), sp, &code) != 0 || sp->key_len == 0 ? -1 : 0;
}

/* The copy found the source damaged (reported there): its current version
 * is checked and repaired from a peer in the background (repair_check), and
 * the client's retry of the 503 copies the repaired bytes. (CopyObject waits
 * for its repair instead: its reading thread is its own.) */
static void repair_copy_source(h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    repair_what_t w;
    meta_obj_t o;
    MDB_txn *txn;
    path_t sp;

    if (copy_source(req, &sp) != 0 || (txn = http_req_rtxn_begin(t)) == NULL)
        return;
    int rc = meta_obj_get(t->srv->meta, txn, sp.bucket, sp.bucket_len, sp.key, sp.key_len, &o);
    if (rc == 0)
        repair_what_set(&w, sp.bucket, sp.bucket_len, sp.key, sp.key_len, o.version, o.origin, o.origin_len, o.off, UINT64_MAX,
                        INTEGRITY_GET);
    http_req_rtxn_end(t);
    if (rc == 0 && repair_check(&w) != 0)
        log_msg(LOG_LVL_WARN, "cannot queue the repair of a damaged object (the repair queue is full or stopped)", "bucket",
                w.bucket, "key", w.key, NULL);
}

static void answer_part_copy(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35], ts[DATE_ISO8601_MS_LEN + 1];
    buf_t b;
    if (j->result == CIO_ECORRUPT)
        repair_copy_source(req);
    if (j->result == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchUpload", "The specified upload does not exist.", NULL);
        return;
    }
    if (j->result != 0) {
        s3_error_cio(req, j->result, "UploadPartCopy failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    date_iso8601_ms(j->mtime_ms, ts);
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "CopyPartResult");
    s3_xml_elem(&b, "LastModified", ts, strlen(ts));
    s3_xml_elem(&b, "ETag", quoted, 34);
    buf_puts(&b, "</CopyPartResult>");
    s3_reply_xml(req, 200, &b);
}

/* x-amz-copy-source-range "bytes=first-last" (both given, first <= last) into *first, *last: 0, or -1. */
static int copy_range(h2o_iovec_t v, uint64_t *first, uint64_t *last)
{
    char buf[48], *dash, *end;
    if (v.len < 9 || v.len >= sizeof(buf) || memcmp(v.base, "bytes=", 6) != 0)
        return -1;
    memcpy(buf, v.base + 6, v.len - 6);
    buf[v.len - 6] = '\0';
    if ((dash = strchr(buf, '-')) == NULL || buf[0] < '0' || buf[0] > '9' || dash[1] < '0' || dash[1] > '9')
        return -1;
    *dash = '\0';
    *first = strtoull(buf, &end, 10);
    if (*end != '\0')
        return -1;
    *last = strtoull(dash + 1, &end, 10);
    return *end != '\0' || *last < *first ? -1 : 0;
}

int s3_mpu_upload_part_copy(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    static const char *const unsupported[] = {"x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match",
                                              "x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"};
    http_thread_t *t = http_req_thread(req);
    char id[MPU_ID_LEN + 1];
    h2o_iovec_t range = h2o_iovec_init(NULL, 0);
    uint64_t number, first = 0, last = 0, token;
    path_t sp;
    meta_obj_t *o = NULL;
    commit_mpu_src_t *copy = NULL;
    http_commit_t *pend;
    MDB_txn *txn;
    ssize_t at;
    int rc;

    if (uint_param(req, "partNumber", MPU_PART_MAX, &number) != 0 || number < MPU_PART_MIN) {
        s3_error(req, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", s->resource);
        return 0;
    }
    if (upload_id_param(req, id) != 0) {
        no_such_upload(req, s);
        return 0;
    }
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        if (h2o_find_header_by_str(&req->headers, unsupported[i], strlen(unsupported[i]), -1) != -1) {
            s3_error(req, 501, "NotImplemented", "x-amz-copy-source-if-* conditions are not implemented", s->resource);
            return 0;
        }
    if ((at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-copy-source-range"), -1)) != -1)
        range = req->headers.entries[at].value;
    if (copy_source(req, &sp) != 0) {
        s3_error(req, 400, "InvalidArgument", "x-amz-copy-source must be bucket/key (percent-encoded), without a versionId",
                 s->resource);
        return 0;
    }
    if (range.base != NULL && copy_range(range, &first, &last) != 0) {
        s3_error(req, 400, "InvalidArgument",
                 "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the "
                 "zero-based offsets of the first and last bytes to copy",
                 s->resource);
        return 0;
    }
    if ((o = malloc(sizeof(*o))) == NULL || (copy = calloc(1, sizeof(*copy))) == NULL) {
        free(o);
        s3_error_cio(req, CIO_ENOMEM, "UploadPartCopy failed");
        return 0;
    }
    /* the source's extent is kept from reuse until the copy has read it (commit_mpu_copy leaves the token) */
    token = commit_reader_enter(srv->commit);
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        rc = CIO_EDB;
    } else {
        rc = meta_obj_get(srv->meta, txn, sp.bucket, sp.bucket_len, sp.key, sp.key_len, o);
        /* the source's bytes are verified as they are copied (commit_mpu_copy): the CRCs of the range's blocks */
        if (rc == 0 && srv->conf->checksums && o->size > 0)
            rc = integrity_sums(srv->meta, txn, sp.bucket, sp.bucket_len, sp.key, sp.key_len, o, range.base != NULL ? first : 0,
                                range.base != NULL ? last - first + 1 : o->size, &copy->sums, &copy->sums_owned, &copy->have_sums);
        http_req_rtxn_end(t);
    }
    if (rc == 0 && range.base == NULL)
        last = o->size > 0 ? o->size - 1 : 0;
    if (rc != 0 || (range.base != NULL && last >= o->size) || last - first + 1 > MPU_PART_SIZE_MAX) {
        commit_reader_leave(srv->commit, token);
        if (rc == CIO_ENOTFOUND)
            s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", s->resource);
        else if (rc != 0)
            s3_error_cio(req, rc, "UploadPartCopy failed");
        else if (range.base != NULL && last >= o->size)
            s3_error(req, 416, "InvalidRange", "The requested range is not satisfiable", s->resource);
        else
            s3_error(req, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", s->resource);
        free(o);
        free(copy->sums_owned);
        free(copy);
        return 0;
    }
    copy->ext = (alloc_extent_t){o->off + first, o->alen > first ? o->alen - first : 0};
    copy->size = o->size == 0 ? 0 : last - first + 1;
    copy->first = first;
    copy->version = o->version;
    memcpy(copy->origin, o->origin, o->origin_len + 1);
    if (copy->have_sums && (copy->name = malloc(sp.bucket_len + 1 + sp.key_len + 1)) != NULL)
        snprintf(copy->name, sp.bucket_len + 1 + sp.key_len + 1, "%s/%s", sp.bucket, sp.key);
    copy->have_sums = copy->have_sums && copy->name != NULL; /* out of memory: copied unverified */
    free(o);
    if ((pend = http_commit_new(req, COMMIT_MPU_PART, s->path)) == NULL) {
        commit_reader_leave(srv->commit, token);
        free(copy->sums_owned);
        free(copy->name);
        free(copy);
        s3_error_cio(req, CIO_ENOMEM, "UploadPartCopy failed");
        return 0;
    }
    memcpy(pend->job.upload_id, id, sizeof(id));
    pend->job.part_number = (uint32_t)number;
    pend->job.body = NULL; /* the bytes are the source's, copied by an I/O thread */
    pend->job.size = copy->size;
    pend->job.mpu_src = copy; /* freed by the committer, which also leaves the token */
    pend->job.mpu_nwant = 1;
    pend->job.mpu_reader = token;
    pend->answer = answer_part_copy;
    return http_commit_submit(req, pend);
}

/* ---- CompleteMultipartUpload ---- */

static void answer_complete(h2o_req_t *req, commit_job_t *j)
{
    char etag[48];
    buf_t b;

    switch (j->result) {
    case 0:
        break;
    case CIO_ENOTFOUND:
        s3_error(req, 404, "NoSuchUpload", "The specified upload does not exist.", NULL);
        return;
    case CIO_EINVAL:
        if (j->mpu_refusal == COMMIT_MPU_TOO_SMALL)
            s3_error(req, 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.", NULL);
        else
            s3_error(req, 400, "InvalidPart",
                     "One or more of the specified parts could not be found. The part might not have been uploaded, or the "
                     "specified entity tag might not have matched the part's entity tag.",
                     NULL);
        return;
    case CIO_ECHANGED:
        s3_error(req, 400, "InvalidPart", "A part was replaced, or the upload aborted, while it was being completed.", NULL);
        return;
    default:
        s3_error_cio(req, j->result, "CompleteMultipartUpload failed");
        return;
    }
    etag[0] = '"';
    hex_encode(etag + 1, j->mpu_etag, 16);
    snprintf(etag + 33, sizeof(etag) - 33, "-%" PRIu32 "\"", j->mpu_nparts);
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "CompleteMultipartUploadResult");
    buf_puts(&b, "<Location>");
    s3_xml_text(&b, "/", 1);
    s3_xml_text(&b, j->bucket, j->blen);
    s3_xml_text(&b, "/", 1);
    s3_xml_text(&b, j->key, j->klen);
    buf_puts(&b, "</Location>");
    s3_xml_elem(&b, "Bucket", j->bucket, j->blen);
    s3_xml_elem(&b, "Key", j->key, j->klen);
    s3_xml_elem(&b, "ETag", etag, strlen(etag));
    buf_puts(&b, "</CompleteMultipartUploadResult>");
    s3_reply_xml(req, 200, &b);
}

/* A part's ETag as the client names it ("<32 hex>", quotes optional, any case) into md5; -1 when it cannot be one of ours. */
static int part_etag(const char *e, size_t n, uint8_t md5[16])
{
    char low[32];
    if (n == 34 && e[0] == '"' && e[33] == '"') {
        e++;
        n -= 2;
    }
    if (n != 32)
        return -1;
    for (size_t i = 0; i < 32; i++)
        low[i] = (char)(e[i] >= 'A' && e[i] <= 'F' ? e[i] + 32 : e[i]);
    return hex_decode_lower(md5, low, 16) == 0 ? 0 : -1;
}

int s3_mpu_complete(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    char id[MPU_ID_LEN + 1], err[256];
    s3xml_complete_t doc;
    commit_mpu_want_t *want = NULL;
    http_commit_t *pend;
    int rc;

    if (upload_id_param(req, id) != 0) {
        no_such_upload(req, s);
        return 0;
    }
    if (s->body.len > S3XML_BODY_MAX) {
        s3_error(req, 400, "MalformedXML",
                 "The XML you provided was not well-formed or did not validate against our published schema.", s->resource);
        return 0;
    }
    if ((rc = s3xml_complete_parse(s->body.base, s->body.len, &doc, err, sizeof(err))) != 0) {
        if (rc == CIO_ENOMEM)
            s3_error_cio(req, rc, "CompleteMultipartUpload failed");
        else
            s3_error(req, 400, "MalformedXML", err, s->resource);
        return 0;
    }
    if ((want = calloc(doc.nparts, sizeof(*want))) == NULL) {
        s3xml_complete_free(&doc);
        s3_error_cio(req, CIO_ENOMEM, "CompleteMultipartUpload failed");
        return 0;
    }
    for (size_t i = 0; i < doc.nparts; i++) {
        if (i > 0 && doc.parts[i].number <= doc.parts[i - 1].number) {
            s3_error(req, 400, "InvalidPartOrder",
                     "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
                     s->resource);
            goto refused;
        }
        want[i].number = doc.parts[i].number;
        if (part_etag(doc.parts[i].etag, doc.parts[i].etag_len, want[i].md5) != 0) {
            s3_error(req, 400, "InvalidPart",
                     "One or more of the specified parts could not be found. The part might not have been uploaded, or the "
                     "specified entity tag might not have matched the part's entity tag.",
                     s->resource);
            goto refused;
        }
    }
    if ((pend = http_commit_new(req, COMMIT_MPU_COMPLETE, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "CompleteMultipartUpload failed");
        goto refused;
    }
    memcpy(pend->job.upload_id, id, sizeof(id));
    pend->job.mpu_want = want;
    pend->job.mpu_nwant = doc.nparts;
    pend->body_owned = (char *)want; /* freed with the job */
    pend->answer = answer_complete;
    s3xml_complete_free(&doc);
    return http_commit_submit(req, pend);
refused:
    free(want);
    s3xml_complete_free(&doc);
    return 0;
}

/* ---- AbortMultipartUpload ---- */

static void answer_abort(h2o_req_t *req, commit_job_t *j)
{
    if (j->result == CIO_ENOTFOUND)
        s3_error(req, 404, "NoSuchUpload", "The specified upload does not exist.", NULL);
    else if (j->result != 0)
        s3_error_cio(req, j->result, "AbortMultipartUpload failed");
    else
        http_req_reply(req, 204, NULL, "", 0);
}

int s3_mpu_abort(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    char id[MPU_ID_LEN + 1];
    http_commit_t *pend;

    if (upload_id_param(req, id) != 0) {
        no_such_upload(req, s);
        return 0;
    }
    if ((pend = http_commit_new(req, COMMIT_MPU_ABORT, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "AbortMultipartUpload failed");
        return 0;
    }
    memcpy(pend->job.upload_id, id, sizeof(id));
    pend->answer = answer_abort;
    return http_commit_submit(req, pend);
}

/* ---- ListParts ---- */

typedef struct {
    buf_t *b;
    uint64_t max, n;
    uint32_t last;
    int truncated;
} parts_list_t;

static int list_part(void *arg, const mpu_part_t *p)
{
    parts_list_t *l = arg;
    char ts[DATE_ISO8601_MS_LEN + 1], quoted[35];
    if (l->n == l->max) {
        l->truncated = 1;
        return 1;
    }
    date_iso8601_ms(p->mtime_ms, ts);
    quoted_etag(p->md5, quoted);
    buf_puts(l->b, "<Part>");
    s3_xml_elem_u64(l->b, "PartNumber", p->number);
    s3_xml_elem(l->b, "LastModified", ts, strlen(ts));
    s3_xml_elem(l->b, "ETag", quoted, 34);
    s3_xml_elem_u64(l->b, "Size", p->size);
    buf_puts(l->b, "</Part>");
    l->n++;
    l->last = p->number;
    return 0;
}

int s3_mpu_list_parts(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    char id[MPU_ID_LEN + 1];
    uint64_t marker = 0, max = LIST_MAX;
    mpu_upload_t *u;
    MDB_txn *txn;
    buf_t b, parts;
    parts_list_t l;
    int rc;

    if (upload_id_param(req, id) != 0) {
        no_such_upload(req, s);
        return 0;
    }
    if (uint_param(req, "part-number-marker", UINT32_MAX, &marker) < 0 || uint_param(req, "max-parts", INT32_MAX, &max) < 0) {
        s3_error(req, 400, "InvalidArgument", "part-number-marker and max-parts are non-negative integers", s->resource);
        return 0;
    }
    if (max > LIST_MAX)
        max = LIST_MAX;
    if ((u = malloc(sizeof(*u))) == NULL || (txn = http_req_rtxn_begin(t)) == NULL) {
        free(u);
        s3_error_cio(req, CIO_EDB, "ListParts failed");
        return 0;
    }
    rc = mpu_get(srv->meta, txn, id, u);
    if (rc == 0 && (u->blen != s->bucket_len || memcmp(u->bucket, s->bucket, s->bucket_len) != 0 || u->klen != s->key_len ||
                    memcmp(u->key, s->key, s->key_len) != 0))
        rc = CIO_ENOTFOUND;
    if (rc != 0) {
        http_req_rtxn_end(t);
        free(u);
        if (rc == CIO_ENOTFOUND || rc == CIO_EPROTO)
            no_such_upload(req, s);
        else
            s3_error_cio(req, rc, "ListParts failed");
        return 0;
    }
    free(u);
    buf_init(&parts, S3_REPLY_MAX);
    l = (parts_list_t){&parts, max, 0, (uint32_t)marker, 0};
    rc = mpu_part_each(srv->meta, txn, id, (uint32_t)marker, list_part, &l);
    http_req_rtxn_end(t);
    if (rc < 0) {
        buf_free(&parts);
        s3_error_cio(req, rc, "ListParts failed");
        return 0;
    }
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "ListPartsResult");
    s3_xml_elem(&b, "Bucket", s->bucket, s->bucket_len);
    s3_xml_elem(&b, "Key", s->key, s->key_len);
    s3_xml_elem(&b, "UploadId", id, MPU_ID_LEN);
    buf_puts(&b, "<Initiator>" OWNER_XML "</Initiator><Owner>" OWNER_XML "</Owner><StorageClass>STANDARD</StorageClass>");
    s3_xml_elem_u64(&b, "PartNumberMarker", marker);
    s3_xml_elem_u64(&b, "NextPartNumberMarker", l.last);
    s3_xml_elem_u64(&b, "MaxParts", max);
    buf_puts(&b, l.truncated ? "<IsTruncated>true</IsTruncated>" : "<IsTruncated>false</IsTruncated>");
    buf_append(&b, parts.data, parts.len);
    buf_free(&parts);
    buf_puts(&b, "</ListPartsResult>");
    s3_reply_xml(req, 200, &b);
    return 0;
}

/* ---- ListMultipartUploads ---- */

typedef struct {
    char id[MPU_ID_LEN];
    int64_t initiated_ms;
    uint16_t klen;
    char key[LOGREC_KEY_MAX + 1];
} upload_entry_t;

typedef struct {
    const s3_req_t *s;
    const char *prefix, *key_marker, *id_marker;
    size_t plen, kmlen;
    upload_entry_t *e;
    size_t n, cap;
    int err;
} uploads_scan_t;

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int scan_upload(void *arg, const char *id, const mpu_upload_t *u)
{
    uploads_scan_t *sc = arg;
    if (u->blen != sc->s->bucket_len || memcmp(u->bucket, sc->s->bucket, u->blen) != 0)
        return 0;
    if (u->klen < sc->plen || memcmp(u->key, sc->prefix, sc->plen) != 0)
        return 0;
    if (sc->kmlen > 0) {
        int c = key_cmp(u->key, u->klen, sc->key_marker, sc->kmlen);
        /* after the key marker; with an upload id marker, the marker key's uploads after that id too */
        if (c < 0 || (c == 0 && (sc->id_marker == NULL || memcmp(id, sc->id_marker, MPU_ID_LEN) <= 0)))
            return 0;
    }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap == 0 ? 64 : sc->cap * 2;
        upload_entry_t *e;
        if (sc->n >= LIST_UPLOADS_SCAN_MAX) {
            sc->err = CIO_ETOOBIG;
            return 1;
        }
        if ((e = realloc(sc->e, cap * sizeof(*e))) == NULL) {
            sc->err = CIO_ENOMEM;
            return 1;
        }
        sc->e = e;
        sc->cap = cap;
    }
    upload_entry_t *e = &sc->e[sc->n++];
    memcpy(e->id, id, MPU_ID_LEN);
    e->initiated_ms = u->initiated_ms;
    e->klen = u->klen;
    memcpy(e->key, u->key, u->klen);
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const upload_entry_t *x = a, *y = b;
    int c = key_cmp(x->key, x->klen, y->key, y->klen);
    return c != 0 ? c : memcmp(x->id, y->id, MPU_ID_LEN);
}

int s3_mpu_list_uploads(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    char prefix[LIMIT_KEY_MAX + 1], km[LIMIT_KEY_MAX + 1], im[MPU_ID_LEN + 2];
    size_t plen = 0, kmlen = 0, imlen = 0;
    uint64_t max = LIST_MAX;
    uploads_scan_t sc;
    MDB_txn *txn;
    buf_t b;
    int rc;

    if (!need_bucket(srv, req, s, "ListMultipartUploads failed"))
        return 0;
    if (((rc = http_req_query_param(req, "prefix", prefix, sizeof(prefix), &plen)) != 0 && rc != CIO_ENOTFOUND) ||
        ((rc = http_req_query_param(req, "key-marker", km, sizeof(km), &kmlen)) != 0 && rc != CIO_ENOTFOUND) ||
        ((rc = http_req_query_param(req, "upload-id-marker", im, sizeof(im), &imlen)) != 0 && rc != CIO_ENOTFOUND) ||
        uint_param(req, "max-uploads", INT32_MAX, &max) < 0) {
        s3_error(req, 400, "InvalidArgument", "a prefix or marker too long, or max-uploads not a non-negative integer",
                 s->resource);
        return 0;
    }
    if (max > LIST_MAX)
        max = LIST_MAX;
    if (imlen > 0 && !mpu_id_valid(im, imlen)) {
        s3_error(req, 400, "InvalidArgument", "Invalid uploadId marker", s->resource);
        return 0;
    }
    memset(&sc, 0, sizeof(sc));
    sc.s = s;
    sc.prefix = prefix;
    sc.plen = plen;
    sc.key_marker = km;
    sc.kmlen = kmlen;
    sc.id_marker = imlen > 0 ? im : NULL;
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        s3_error_cio(req, CIO_EDB, "ListMultipartUploads failed");
        return 0;
    }
    rc = mpu_each(srv->meta, txn, NULL, scan_upload, &sc);
    http_req_rtxn_end(t);
    if (rc < 0 || sc.err != 0) {
        free(sc.e);
        s3_error_cio(req, rc < 0 ? rc : sc.err, "ListMultipartUploads failed");
        return 0;
    }
    if (sc.n > 0)
        qsort(sc.e, sc.n, sizeof(*sc.e), entry_cmp);
    size_t shown = sc.n < max ? sc.n : (size_t)max;
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "ListMultipartUploadsResult");
    s3_xml_elem(&b, "Bucket", s->bucket, s->bucket_len);
    s3_xml_elem(&b, "KeyMarker", km, kmlen);
    s3_xml_elem(&b, "UploadIdMarker", im, imlen);
    if (shown > 0) {
        s3_xml_elem(&b, "NextKeyMarker", sc.e[shown - 1].key, sc.e[shown - 1].klen);
        s3_xml_elem(&b, "NextUploadIdMarker", sc.e[shown - 1].id, MPU_ID_LEN);
    }
    s3_xml_elem(&b, "Prefix", prefix, plen);
    s3_xml_elem_u64(&b, "MaxUploads", max);
    buf_puts(&b, sc.n > shown ? "<IsTruncated>true</IsTruncated>" : "<IsTruncated>false</IsTruncated>");
    for (size_t i = 0; i < shown; i++) {
        char ts[DATE_ISO8601_MS_LEN + 1];
        date_iso8601_ms(sc.e[i].initiated_ms, ts);
        buf_puts(&b, "<Upload>");
        s3_xml_elem(&b, "Key", sc.e[i].key, sc.e[i].klen);
        s3_xml_elem(&b, "UploadId", sc.e[i].id, MPU_ID_LEN);
        buf_puts(&b, "<Initiator>" OWNER_XML "</Initiator><Owner>" OWNER_XML "</Owner><StorageClass>STANDARD</StorageClass>");
        s3_xml_elem(&b, "Initiated", ts, strlen(ts));
        buf_puts(&b, "</Upload>");
    }
    buf_puts(&b, "</ListMultipartUploadsResult>");
    free(sc.e);
    s3_reply_xml(req, 200, &b);
    return 0;
}
