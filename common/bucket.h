/* bucket.h - what a bucket may be called: S3's naming rules, and the names
 * storaged keeps for its own endpoints.
 *
 * Both are checked wherever a bucket name comes in: a request path
 * (storaged), a replicated event (a replica refuses what it could never
 * serve), the CLI. Pure functions, no allocation. */
#ifndef COMIO_BUCKET_H
#define COMIO_BUCKET_H

#include <stddef.h>
#include "common/limits.h"

/* The reserved names, as an error message lists them; kept beside the list
 * in bucket.c (a unit test checks they agree). */
#define BUCKET_RESERVED_TEXT "'admin' and 'metrics'"

/* Returns 1 when name[0..len) is a valid S3 bucket name: LIMIT_BUCKET_MIN to
 * LIMIT_BUCKET_MAX characters of a-z 0-9 . -, starting and ending with a
 * letter or digit, no "..", not formatted as an IPv4 address, no "xn--"
 * prefix, no "-s3alias" suffix; else 0 (also for NULL). */
int bucket_name_valid(const char *name, size_t len);

/* Returns 1 when name[0..len) is one of the names storaged's own URLs use
 * ("admin": /admin/..., "metrics": /metrics), which no bucket may take, else
 * 0. It says nothing about validity: check bucket_name_valid too. */
int bucket_name_reserved(const char *name, size_t len);

#endif
