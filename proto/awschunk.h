/* awschunk.h - a bounded decoder of S3's aws-chunked request bodies
 * (Content-Encoding: aws-chunked; docs/s3.md).
 *
 * The body is a series of chunks, each "hex-size;chunk-signature=SIG\r\n"
 * (signed) or "hex-size\r\n" (STREAMING-UNSIGNED-PAYLOAD-TRAILER), its data
 * and "\r\n"; a chunk of size 0 ends the data. Trailing headers may follow
 * ("name:value\r\n", and for signed trailers "x-amz-trailer-signature:SIG\r\n"),
 * then "\r\n". Each chunk's signature chains on the previous one, starting
 * from the request's (common/sigv4.h). The decoder checks every signature and
 * the decoded length, and moves the data to the front of the buffer in place
 * (the framing never stays in what is stored). Copies nothing else,
 * allocates nothing. */
#ifndef COMIO_AWSCHUNK_H
#define COMIO_AWSCHUNK_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/sigv4.h"

#define AWSCHUNK_LINE_MAX 1024 /* a chunk header or a trailer line, CRLF excluded */

/* One trailing header: name (lower-cased in place) and value, pointers into
 * the decoded buffer, living as long as it. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} awschunk_trailer_t;

typedef struct {
    const sigv4_auth_t *auth; /* the verified request (sigv4_verify done): chunks are signed; NULL: unsigned chunks */
    int trailer;              /* trailers may follow the last chunk; signed (auth) ones end with x-amz-trailer-signature */
    uint64_t decoded_len;     /* x-amz-decoded-content-length: the data must be exactly this long */
} awschunk_opts_t;

/* Decodes buf[0..len) in place: on success the data is buf[0..*out_len)
 * and tr[0..*ntr) the trailers (at most max_tr; x-amz-trailer-signature is
 * checked and not returned). Returns 0, or CIO_EINVAL / CIO_EPROTO with *e
 * filled: 403 SignatureDoesNotMatch (a chunk's or the trailer's signature),
 * 400 IncompleteBody (truncated, or not x-amz-decoded-content-length bytes),
 * 400 InvalidRequest (malformed framing, too many trailers). On failure buf
 * may be partly rewritten. */
int awschunk_decode(char *buf, size_t len, const awschunk_opts_t *o, size_t *out_len, awschunk_trailer_t *tr, size_t max_tr,
                    size_t *ntr, sigv4_error_t *e) CIO_MUST_CHECK;

#endif
