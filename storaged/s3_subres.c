/* s3_subres.c - the read-only subresources that clients ask about and that a server without versions or ACLs answers
 * with fixed facts: GetBucketVersioning, GetBucketAcl, GetObjectAcl. */
#include <string.h>
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

int s3_get_bucket_versioning(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    int rc = s3_bucket_exists(srv, req, s);
    buf_t b;

    if (rc <= 0) {
        if (rc == 0)
            s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        else
            s3_error_cio(req, rc, "GetBucketVersioning failed");
        return 0;
    }
    /* no <Status>: versioning was never enabled, which is S3's answer for such a bucket */
    buf_init(&b, 4096);
    s3_xml_open(&b, "VersioningConfiguration");
    buf_puts(&b, "</VersioningConfiguration>");
    s3_reply_xml(req, 200, &b);
    return 0;
}

int s3_get_acl(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    int rc = s3_bucket_exists(srv, req, s);
    buf_t b;

    if (rc == 1 && s->key_len > 0) {
        meta_obj_t *o = h2o_mem_alloc_pool(&req->pool, sizeof(*o));
        MDB_txn *txn = http_req_rtxn_begin(t);
        if (txn == NULL) {
            rc = CIO_EDB;
        } else {
            rc = meta_obj_get(srv->meta, txn, s->bucket, s->bucket_len, s->key, s->key_len, o);
            http_req_rtxn_end(t);
            if (rc == CIO_ENOTFOUND) {
                s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", s->resource);
                return 0;
            }
            rc = rc == 0 ? 1 : rc;
        }
    }
    if (rc <= 0) {
        if (rc == 0)
            s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        else
            s3_error_cio(req, rc, "GetAcl failed");
        return 0;
    }
    /* the one owner has full control: every client that can sign can do everything (docs/s3.md) */
    buf_init(&b, 4096);
    s3_xml_open(&b, "AccessControlPolicy");
    buf_puts(&b, "<Owner><ID>" S3_OWNER_NAME "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName></Owner><AccessControlList><Grant>"
                 "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>" S3_OWNER_NAME
                 "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
                 "</AccessControlList></AccessControlPolicy>");
    s3_reply_xml(req, 200, &b);
    return 0;
}
