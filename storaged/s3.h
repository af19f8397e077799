/* s3.h - storaged's S3 API: how a request is told to be S3, its context, and
 * the handlers of each group of operations (docs/s3.md).
 *
 * A request that carries an AWS Signature Version 4 (an Authorization header
 * "AWS4-HMAC-SHA256 ...", or X-Amz-Algorithm in the query of a presigned URL)
 * is an S3 request; every other request is the native API, unchanged
 * (docs/api.md). s3_dispatch verifies the signature, decodes the body
 * (aws-chunked framing removed, chunk signatures and trailing checksums
 * checked), and calls the handler of the operation. Internal to storaged's
 * HTTP layer; every function runs on the loop thread that owns `req`. */
#ifndef COMIO_S3_H
#define COMIO_S3_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "common/limits.h"
#include "storaged/handler_object.h"
#include "storaged/http_req.h"
#include "storaged/path.h"

#define S3_ACCESS_KEY_MAX 128 /* bytes of an access key id */
#define S3_OWNER_NAME "comio" /* the one owner of every bucket and object (ListBuckets, listings): ComIO has no accounts */
#define S3_TRAILERS_MAX 4     /* trailing headers of an aws-chunked body kept for the handlers */

/* One S3 request, verified: made by s3_dispatch, borrowed by the handlers
 * until they return (pointers into the request live as long as `req`). */
typedef struct {
    const char *bucket; /* the bucket, from the path or (virtual-hosted style) the Host header; "" for the service */
    size_t bucket_len;
    const char *key; /* the key, percent-decoded; "" when the request names a bucket or the service */
    size_t key_len;
    h2o_iovec_t body;                         /* the payload, aws-chunked framing removed and verified; lives as long as req */
    h2o_iovec_t trailers[S3_TRAILERS_MAX][2]; /* an aws-chunked body's trailing headers: [i][0] the name (lower
                                                 case), [i][1] the value; they live as long as req */
    size_t ntrailers;
    const char *access_key; /* who signed it: the configured credential's name, lives as long as the server */
    const char *resource;   /* "/bucket/key" for error bodies' <Resource>; lives as long as req */
    const path_t *path;     /* bucket and key as the native handlers take them; lives as long as req, but for a GET or
                               HEAD only until its handler returns (bucket and key too: handlers copy what they keep) */
} s3_req_t;

/* Non-zero when req is signed for S3 (see above; a Signature Version 2
 * signature also counts, and is refused by s3_dispatch with 400
 * InvalidRequest). Cheap: looks at the Authorization header and the query
 * only. */
int s3_is_s3(h2o_req_t *req); /* SIGV4_SIGNED, SIGV4_SIGNED_V2 (common/sigv4.h) or 0 */

/* Answers an S3 request: signature, body, then the operation's handler, or
 * S3's XML error. `kind` is what s3_is_s3 returned for req (non-zero: a
 * Signature Version 2 is refused here, not looked for again). Returns 0
 * (on_req's "handled"). */
int s3_dispatch(http_server_t *srv, h2o_req_t *req, int kind);

/* Wipes the calling loop thread's S3 state (its cache of signing keys,
 * which holds secrets); called by each loop thread once it has drained. */
void s3_thread_done(void);

/* ---- the handlers, by group; each answers req and returns 0 ---- */

/* GET /{bucket}?list-type=2 (v2 1) or GET /{bucket} (ListObjects, v2 0):
 * prefix, delimiter, common prefixes, marker / continuation-token /
 * start-after, max-keys, encoding-type=url, fetch-owner (storaged/s3_list.c). */
int s3_list_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s, int v2);

/* POST /{bucket}?delete: DeleteObjects, up to 1,000 keys, Quiet mode
 * (storaged/s3_multidel.c). */
int s3_delete_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* ---- buckets (storaged/s3_bucket.c) ---- */

/* GET /: ListBuckets, every bucket with its creation date, and the Owner. */
int s3_list_buckets(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* PUT /{bucket}: CreateBucket (200; 409 BucketAlreadyOwnedByYou when it
 * exists). A CreateBucketConfiguration body must name the configured region
 * or none (400 IllegalLocationConstraintException). */
int s3_create_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* DELETE /{bucket}: DeleteBucket (204; 404 NoSuchBucket; 409 BucketNotEmpty). */
int s3_delete_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* HEAD /{bucket}: 200 or 404, no body. */
int s3_head_bucket(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* GET /{bucket}?location: the configured region (empty for us-east-1, as S3). */
int s3_get_bucket_location(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* Whether s's bucket exists (and is not deleted): 1, 0, or a CIO_* error. */
int s3_bucket_exists(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* ---- objects (storaged/s3_object.c) ---- */

/* How S3 answers the object code it shares with the native API
 * (handler_object.h): XML errors, the response-* overrides, PUT's reply. */
extern const handler_api_t s3_object_api;

/* PUT /{bucket}/{key}: PutObject (s->body; If-None-Match: * creates only). */
int s3_put_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* GET or HEAD /{bucket}/{key}: GetObject, HeadObject. */
int s3_get_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* PUT /{bucket}/{key} with x-amz-copy-source: CopyObject (storaged/s3_copy.c).
 * The source's bytes are read off the loop, then committed as a PUT. */
int s3_copy_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* DELETE /{bucket}/{key}: DeleteObject (204, also for a missing key). */
int s3_delete_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* ---- fixed answers (storaged/s3_subres.c) ---- */

/* GET /{bucket}?versioning: an empty VersioningConfiguration (never enabled). */
int s3_get_bucket_versioning(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* GET /{bucket}?acl and GET /{bucket}/{key}?acl: the owner S3_OWNER_NAME with
 * FULL_CONTROL (404 NoSuchBucket, NoSuchKey). */
int s3_get_acl(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);
/* ---- multipart uploads (storaged/s3_multipart.c; docs/s3.md, "Multipart uploads") ---- */

/* POST /{bucket}/{key}?uploads: CreateMultipartUpload, with Content-Type and
 * the metadata headers (objmeta_http.h), kept for the object. */
int s3_mpu_create(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* PUT /{bucket}/{key}?partNumber=N&uploadId=U: UploadPart (N 1..10000, up to
 * 5 GiB, checksums as PutObject's); durable when answered. */
int s3_mpu_upload_part(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* PUT /{bucket}/{key}?partNumber=N&uploadId=U with x-amz-copy-source (and
 * x-amz-copy-source-range: bytes=first-last): UploadPartCopy, a part made
 * of (a range of) an object's bytes, copied off the loop. */
int s3_mpu_upload_part_copy(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* POST /{bucket}/{key}?uploadId=U: CompleteMultipartUpload (proto/s3xml.h). */
int s3_mpu_complete(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* DELETE /{bucket}/{key}?uploadId=U: AbortMultipartUpload (204). */
int s3_mpu_abort(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* GET /{bucket}/{key}?uploadId=U: ListParts (part-number-marker, max-parts). */
int s3_mpu_list_parts(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* GET /{bucket}?uploads: ListMultipartUploads (prefix, key-marker,
 * upload-id-marker, max-uploads; no delimiter). */
int s3_mpu_list_uploads(http_server_t *srv, h2o_req_t *req, const s3_req_t *s);

/* ---- checksums (storaged/s3_checksum.c) ---- */

/* Checks s->body against every checksum the client sent: Content-MD5, and
 * x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} as request headers or
 * as trailers (s->trailers). Returns 0 when all match (or none was sent);
 * otherwise answers req with S3's error (400 BadDigest or InvalidDigest, or
 * InvalidRequest for an unknown algorithm) and returns -1: the caller stores
 * nothing and returns 0. */
int s3_checksum_check(h2o_req_t *req, const s3_req_t *s);

#endif
