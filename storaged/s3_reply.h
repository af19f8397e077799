/* s3_reply.h - S3's XML replies: an escaping XML writer on buf_t and S3's
 * error body.
 *
 * Internal to storaged's S3 layer (storaged/s3*.c). Every reply goes out with
 * a Content-Length (http_req_reply) and Content-Type: application/xml. */
#ifndef COMIO_S3_REPLY_H
#define COMIO_S3_REPLY_H

#include <stddef.h>
#include <h2o.h>
#include "common/buf.h"

#define S3_REPLY_MAX (64 * 1024 * 1024) /* cap on a generated XML reply (a listing of 1,000 long keys fits easily) */

/* Appends p[0..n) as XML character data: &, <, >, " and ' as entities, the
 * control bytes XML 1.0 cannot carry (all below 0x20 but TAB, LF and CR) as
 * nothing (S3 offers encoding-type=url for such keys). Returns 0 or the
 * buffer's sticky error. */
int s3_xml_text(buf_t *b, const char *p, size_t n);

/* Appends <name>text</name> with text escaped as s3_xml_text does. */
int s3_xml_elem(buf_t *b, const char *name, const char *p, size_t n);

/* Appends <name>decimal v</name>. */
int s3_xml_elem_u64(buf_t *b, const char *name, unsigned long long v);

/* Appends the XML declaration and the opening tag of a reply's root element
 * in S3's namespace: <?xml ...?>\n<root xmlns="http://s3.amazonaws.com/doc/2006-03-01/">. */
int s3_xml_open(buf_t *b, const char *root);

/* Sends b (an XML document) as the reply with `status` and frees b; a buffer
 * that overflowed or ran out of memory answers 500 InternalError instead. */
void s3_reply_xml(h2o_req_t *req, int status, buf_t *b);

/* Sends S3's error body
 *   <Error><Code>code</Code><Message>msg</Message><Resource>resource</Resource><RequestId>..</RequestId></Error>
 * with `status`, dropping every response header added before (as
 * http_req_error does). resource (the request's path) may be NULL: then the
 * request's own path is used. code and msg are NUL-terminated, static or
 * living until the call returns.  A HEAD request gets the status and
 * headers without the body (h2o sends none), as S3 does. */
void s3_error(h2o_req_t *req, int status, const char *code, const char *msg, const char *resource);

/* Adds x-amz-request-id (S3 sends one on every reply). */
void s3_add_request_id(h2o_req_t *req);

/* S3's error for a CIO_* error: 507 is not an S3 status, so a full store or
 * map answers 507 with code InsufficientStorage (what MinIO also sends as
 * XMinioStorageFull's 507); a changed object 412 PreconditionFailed; anything
 * else 500 InternalError with "what: <error>". */
void s3_error_cio(h2o_req_t *req, int err, const char *what);

#endif
