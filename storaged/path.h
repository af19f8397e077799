/* path.h - request target parsing: /{bucket}/{key} and query parameters.
 *
 * Bucket names follow S3's rules (common/bucket.h); keys are 1..LIMIT_KEY_MAX
 * bytes after percent-decoding (common/percent.h), may contain '/', may not
 * contain NUL. Pure functions, no allocation. */
#ifndef COMIO_PATH_H
#define COMIO_PATH_H

#include <stddef.h>
#include "common/err.h"
#include "common/limits.h"

#define PATH_BUCKET_MAX LIMIT_BUCKET_MAX
#define PATH_KEY_MAX LIMIT_KEY_MAX

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

/* Finds parameter `name` in a query string (without the leading '?', `qlen`
 * bytes, "a=1&b=2" form) and percent-decodes its value ('+' is a space here)
 * into out (NUL-terminated, `*outlen` bytes). A parameter present without
 * '=' has the empty value. Returns 0, CIO_ENOTFOUND, CIO_EINVAL (bad
 * encoding, or a decoded NUL), or CIO_ETOOBIG (value does not fit in cap-1). */
int path_query_get(const char *query, size_t qlen, const char *name, char *out, size_t cap, size_t *outlen) CIO_MUST_CHECK;

#endif
