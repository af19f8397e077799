/* s3_bucket.c - S3's bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation. */
#include <stdio.h>
#include <string.h>
#include "common/date.h"
#include "storaged/http_commit.h"
#include "proto/s3xml.h"
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

int s3_bucket_exists(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    meta_bucket_t bk;
    MDB_txn *txn;
    int rc;

    if ((txn = http_req_rtxn_begin(t)) == NULL)
        return CIO_EDB;
    rc = meta_bucket_get(srv->meta, txn, s->bucket, s->bucket_len, &bk);
    http_req_rtxn_end(t);
    if (rc == CIO_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return bk.deleted ? 0 : 1;
}

static void no_such_bucket(h2o_req_t *req, const s3_req_t *s)
{
    s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
}

int s3_list_buckets(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_txn *txn;
    buf_t b;
    int rc;

    if ((txn = http_req_rtxn_begin(t)) == NULL || mdb_cursor_open(txn, srv->meta->buckets, &cur) != 0) {
        if (txn != NULL)
            http_req_rtxn_end(t);
        s3_error_cio(req, CIO_EDB, "listing failed");
        return 0;
    }
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "ListAllMyBucketsResult");
    buf_puts(&b, "<Owner><ID>" S3_OWNER_NAME "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName></Owner><Buckets>");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        meta_bucket_t bk;
        char ts[DATE_ISO8601_MS_LEN + 1];
        if (meta_bucket_get(srv->meta, txn, k.mv_data, k.mv_size, &bk) != 0 || bk.deleted)
            continue;
        date_iso8601_ms(bk.ctime_ms, ts);
        buf_puts(&b, "<Bucket>");
        s3_xml_elem(&b, "Name", k.mv_data, k.mv_size);
        s3_xml_elem(&b, "CreationDate", ts, strlen(ts));
        buf_puts(&b, "</Bucket>");
    }
    mdb_cursor_close(cur);
    http_req_rtxn_end(t);
    buf_puts(&b, "</Buckets></ListAllMyBucketsResult>");
    s3_reply_xml(req, 200, &b);
    return 0;
}

static void answer_create(h2o_req_t *req, commit_job_t *j)
{
    char loc[LIMIT_BUCKET_MAX + 2];

    if (j->result != 0) {
        s3_error_cio(req, j->result, "bucket creation failed");
        return;
    }
    if (!j->created) {
        s3_error(req, 409, "BucketAlreadyOwnedByYou",
                 "Your previous request to create the named bucket succeeded and you already own it.", NULL);
        return;
    }
    snprintf(loc, sizeof(loc), "/%s", j->bucket);
    http_req_add_header(req, H2O_TOKEN_LOCATION, loc, strlen(loc));
    http_req_reply(req, 200, NULL, "", 0);
}

/* Parses an optional CreateBucketConfiguration body (proto/s3xml.h) and
 * checks its LocationConstraint against the region. Returns 0, or answers
 * 400 (500 when out of memory) and returns -1. */
static int check_create_body(h2o_req_t *req, const s3_req_t *s, const char *region)
{
    s3xml_bucket_conf_t c;
    char err[160];
    size_t i;
    int ret;

    for (i = 0; i < s->body.len &&
                (s->body.base[i] == ' ' || s->body.base[i] == '\t' || s->body.base[i] == '\r' || s->body.base[i] == '\n');
         i++)
        ;
    if (i == s->body.len)
        return 0; /* no configuration: the region of the endpoint */
    if ((ret = s3xml_bucket_conf_parse(s->body.base, s->body.len, &c, err, sizeof(err))) != 0) {
        if (ret == CIO_ENOMEM)
            s3_error_cio(req, ret, "bucket creation failed");
        else
            s3_error(req, 400, "MalformedXML",
                     "The XML you provided was not well-formed or did not validate against our published schema", s->resource);
        return -1;
    }
    /* the constraint without the white space around it */
    const char *loc = c.location != NULL ? c.location : "";
    size_t loc_len = c.location != NULL ? c.location_len : 0;
    while (loc_len > 0 && strchr(" \t\r\n", loc[0]) != NULL)
        loc++, loc_len--;
    while (loc_len > 0 && strchr(" \t\r\n", loc[loc_len - 1]) != NULL)
        loc_len--;
    if (loc_len > 0 && (loc_len != strlen(region) || memcmp(loc, region, loc_len) != 0)) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "The %.*s location constraint is incompatible for the region specific endpoint this request was sent to (%s).",
                 (int)(loc_len > 64 ? 64 : loc_len), loc, region);
        for (char *m = msg; *m != '\0'; m++)
            if ((unsigned char)*m < 0x20 || (unsigned char)*m >= 0x7f || *m == '<' || *m == '&')
                *m = '?';
        s3xml_bucket_conf_free(&c);
        s3_error(req, 400, "IllegalLocationConstraintException", msg, s->resource);
        return -1;
    }
    s3xml_bucket_conf_free(&c);
    return 0;
}

int s3_create_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_commit_t *pend;

    if (check_create_body(req, s, srv->conf->s3_region) != 0)
        return 0;
    if ((pend = http_commit_new(req, COMMIT_BUCKET_CREATE, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "bucket creation failed");
        return 0;
    }
    pend->answer = answer_create;
    return http_commit_submit(req, pend);
}

static void answer_delete(h2o_req_t *req, commit_job_t *j)
{
    if (j->result == CIO_ENOTFOUND)
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
    else if (j->result == CIO_ENOTEMPTY)
        s3_error(req, 409, "BucketNotEmpty", "The bucket you tried to delete is not empty", NULL);
    else if (j->result != 0)
        s3_error_cio(req, j->result, "bucket deletion failed");
    else
        http_req_reply(req, 204, NULL, "", 0);
}

int s3_delete_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_commit_t *pend;
    int rc = s3_bucket_exists(srv, req, s);

    if (rc == 0) {
        no_such_bucket(req, s);
        return 0;
    }
    if ((pend = http_commit_new(req, COMMIT_BUCKET_DELETE, s->path)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "bucket deletion failed");
        return 0;
    }
    pend->answer = answer_delete;
    return http_commit_submit(req, pend);
}

int s3_head_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    int rc = s3_bucket_exists(srv, req, s);

    if (rc < 0)
        s3_error_cio(req, rc, "HEAD failed");
    else if (rc == 0)
        no_such_bucket(req, s);
    else {
        http_req_add_header_str(req, "x-amz-bucket-region", srv->conf->s3_region);
        http_req_reply(req, 200, NULL, "", 0);
    }
    return 0;
}

int s3_get_bucket_location(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    const char *region = srv->conf->s3_region;
    int rc = s3_bucket_exists(srv, req, s);
    buf_t b;

    if (rc < 0) {
        s3_error_cio(req, rc, "GetBucketLocation failed");
        return 0;
    }
    if (rc == 0) {
        no_such_bucket(req, s);
        return 0;
    }
    buf_init(&b, 4096);
    buf_puts(&b,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (strcmp(region, "us-east-1") != 0) /* S3 names us-east-1 by an empty constraint */
        s3_xml_text(&b, region, strlen(region));
    buf_puts(&b, "</LocationConstraint>");
    s3_reply_xml(req, 200, &b);
    return 0;
}
