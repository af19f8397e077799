/* s3_checksum.h - the pure core of S3's checksum check (storaged/s3_checksum.c):
 * the verdict on a body and the checksum fields a client sent with it.
 *
 * s3_checksum_check (storaged/s3.h) collects the fields from the request's
 * headers and trailers and answers with the verdict; the core below needs no
 * request, so tests/unit/storaged/test_s3_checksum.c tests every case. */
#ifndef COMIO_S3_CHECKSUM_H
#define COMIO_S3_CHECKSUM_H

#include <stddef.h>
#include "common/err.h"

#define S3_CHECKSUM_FIELDS_MAX 16 /* checksum fields looked at; more is an InvalidRequest */

/* A header or trailer: name (any case) and value, neither NUL-terminated;
 * borrowed for the call. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} s3_checksum_field_t;

/* Why a body was refused: S3's status, error code and message. code is
 * static; msg is the verdict's own. */
typedef struct {
    int status;       /* 400 */
    const char *code; /* "BadDigest", "InvalidDigest" or "InvalidRequest" */
    char msg[160];
} s3_checksum_verdict_t;

/* Checks body[0..len) against the checksum fields among fields[0..n) (other
 * names are ignored):
 *   content-md5                  base64 of the MD5: malformed -> 400 InvalidDigest,
 *                                mismatch -> 400 BadDigest
 *   x-amz-checksum-<alg>         alg crc32, crc32c, crc64nvme, sha1 or sha256, base64
 *                                of the big-endian value: malformed -> 400 InvalidRequest,
 *                                mismatch -> 400 BadDigest; at most one algorithm
 *   x-amz-sdk-checksum-algorithm names an alg whose x-amz-checksum-<alg> is
 *                                among the fields; else (or not an alg) InvalidRequest
 *   x-amz-trailer                a checksum it names is among the fields; else InvalidRequest
 * Returns 0 when every checksum matches (or none was sent), 1 with *v filled
 * when the body is refused, or CIO_ENOMEM (a digest could not be made). */
int s3_checksum_verify(const s3_checksum_field_t *fields, size_t n, const void *body, size_t len,
                       s3_checksum_verdict_t *v) CIO_MUST_CHECK;

#endif
