/* percent.h - percent-encoding (RFC 3986 section 2.1) of bucket names, keys
 * and query values: in request paths (storaged), presigned URLs (proto) and
 * the CLI's requests.
 *
 * Encoding keeps the unreserved bytes A-Z a-z 0-9 - . _ ~ (and '/' with
 * PERCENT_KEEP_SLASH) and writes every other byte as %XX, uppercase hex.
 * Decoding accepts either case. Pure functions, no allocation (except
 * percent_append, which grows a capped buf_t). */
#ifndef COMIO_PERCENT_H
#define COMIO_PERCENT_H

#include <stddef.h>
#include "common/buf.h"
#include "common/err.h"

#define PERCENT_KEEP_SLASH 1u /* encode: '/' stays as it is (a key inside a path) */
#define PERCENT_PLUS_SPACE 2u /* decode: '+' is a space (query strings; never in paths) */

/* The longest encoding of `n` bytes: every byte as %XX. */
#define PERCENT_ENCODED_MAX(n) (3 * (n))

/* Encodes src[0..len) into dst when the result fits in `cap` bytes (no NUL
 * is written) and returns the length of the encoded form, as snprintf does:
 * a result greater than cap means dst is incomplete. dst may be NULL when cap
 * is 0, to measure. */
size_t percent_encode(char *dst, size_t cap, const char *src, size_t len, unsigned flags);

/* Appends the encoding of src[0..len) to b. Returns 0 or b's sticky error
 * (CIO_ENOMEM, CIO_ETOOBIG). */
int percent_append(buf_t *b, const char *src, size_t len, unsigned flags);

/* Decodes src[0..len) into dst, writing at most `cap` bytes (no NUL). Scans
 * the whole input, so a bad escape anywhere wins over a result too long.
 * Sets *dlen to the full decoded length (0 on CIO_EINVAL) and, when has_nul
 * is not NULL, *has_nul to whether a decoded byte is NUL (the caller judges).
 * Returns 0, CIO_EINVAL ('%' not followed by two hex digits) or CIO_ETOOBIG
 * (the decoded form is longer than cap; dst holds its first cap bytes). A
 * decoded form is never longer than its source, so cap = len always fits. */
int percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *dlen, unsigned flags, int *has_nul) CIO_MUST_CHECK;

/* Returns 1 when the decoding of src[0..len) is exactly s[0..slen), else 0
 * (a bad escape never matches). Copies nothing: for matching query parameter
 * names of any length. */
int percent_decoded_equals(const char *src, size_t len, const char *s, size_t slen, unsigned flags);

#endif
