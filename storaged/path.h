/* path.h - request target parsing: /{bucket}/{key}, percent-decoding, names.
 *
 * Bucket names follow S3's rules; keys are 1..1024 bytes after decoding, may
 * contain '/', may not contain NUL. Pure functions, no allocation. */
#ifndef COMIO_PATH_H
#define COMIO_PATH_H

#include <stddef.h>
#include "common/err.h"

#define PATH_BUCKET_MAX 63
#define PATH_KEY_MAX 1024

typedef struct {
    char bucket[PATH_BUCKET_MAX + 1]; /* NUL-terminated; "" for "/" */
    size_t bucket_len;
    char key[PATH_KEY_MAX + 1]; /* decoded, NUL-terminated; "" when the target names a bucket */
    size_t key_len;
} path_t;

/* Parses a request path (`path`, `len` bytes, may include "?query", which is
 * ignored here) of the forms "/", "/bucket", "/bucket/", "/bucket/key...".
 * Bucket and key are percent-decoded ('+' is NOT a space in paths).
 * Returns 0, or CIO_EINVAL with *code set to a static machine-readable code:
 *   "InvalidURI"        path does not start with '/', or bad %-encoding
 *   "InvalidBucketName" bucket breaks the S3 rules
 *   "InvalidKey"        decoded key contains NUL
 *   "KeyTooLong"        decoded key longer than PATH_KEY_MAX */
int path_parse(const char *path, size_t len, path_t *out, const char **code) CIO_MUST_CHECK;

/* Returns 1 when name[0..len) is a valid S3 bucket name: 3..63 characters of
 * a-z 0-9 . -, starting and ending with a letter or digit, no "..", not an
 * IPv4 address, no "xn--" prefix, no "-s3alias" suffix; else 0. */
int path_bucket_valid(const char *name, size_t len);

/* Finds parameter `name` in a query string (without the leading '?', `qlen`
 * bytes, "a=1&b=2" form) and percent-decodes its value ('+' is a space here)
 * into out (NUL-terminated, `*outlen` bytes). A parameter present without
 * '=' has the empty value. Returns 0, CIO_ENOTFOUND, CIO_EINVAL (bad
 * encoding, or a decoded NUL), or CIO_ETOOBIG (value does not fit in cap-1). */
int path_query_get(const char *query, size_t qlen, const char *name, char *out, size_t cap, size_t *outlen) CIO_MUST_CHECK;

/* Percent-decodes src[0..len) into dst (which must hold len bytes), setting
 * *dlen. `plus_space` makes '+' a space. Returns 0 or CIO_EINVAL. */
int path_unescape(const char *src, size_t len, char *dst, size_t *dlen, int plus_space) CIO_MUST_CHECK;

#endif
