/* objmeta.h - an object's metadata: the (name, value) pairs stored with it
 * besides its Content-Type (Content-Encoding, Cache-Control, x-amz-meta-*, ...),
 * as one small canonical blob: encoding, bounded copy-free decoding,
 * comparison and a digest.
 *
 * The blob (docs/storage.md) is a sequence of pairs, each
 *   u8 name length (1..255), name, u16 BE value length, value
 * with names lower-case HTTP tokens (RFC 9110 tchar), strictly ascending in
 * byte order (so no name twice), values without control characters other
 * than HTAB (no CR, LF or NUL), at most OBJMETA_MAX bytes in all, and the
 * user metadata (names starting "x-amz-meta-", which must have a non-empty
 * rest) at most OBJMETA_USER_MAX bytes counted as S3 does: each name after
 * the prefix plus its value. An empty blob (length 0) is "no metadata".
 * Every blob is canonical: equal metadata is equal bytes.
 * Pure functions, no allocation, no I/O. */
#ifndef COMIO_COMMON_OBJMETA_H
#define COMIO_COMMON_OBJMETA_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/limits.h"

#define OBJMETA_MAX LIMIT_OBJMETA_MAX
#define OBJMETA_USER_MAX LIMIT_OBJMETA_USER_MAX
#define OBJMETA_NAME_MAX 255
#define OBJMETA_USER_PREFIX "x-amz-meta-"
#define OBJMETA_USER_PREFIX_LEN 11
#define OBJMETA_PAIRS_MAX (OBJMETA_MAX / 4) /* the most pairs a blob can hold: 4 bytes each at least */
#define OBJMETA_DIGEST_LEN 8                /* bytes of objmeta_digest */

/* One pair. Strings are (pointer, length), not NUL-terminated. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} objmeta_pair_t;

/* 1 when name[0..len) is a valid metadata name: 1..OBJMETA_NAME_MAX token
 * characters (any case), and not the bare user prefix; else 0. */
int objmeta_name_ok(const char *name, size_t len);

/* 1 when v[0..len) is a valid value: no control character but HTAB; else 0. */
int objmeta_value_ok(const char *v, size_t len);

/* Encodes pairs[0..n) into out (OBJMETA_MAX bytes), names lower-cased and
 * sorted; *len is the blob's length (0 for n 0). pairs' strings are only read
 * during the call. Returns 0; CIO_EINVAL for an invalid name or value or a
 * name given twice (any case); CIO_ETOOBIG when the user metadata exceeds
 * OBJMETA_USER_MAX or the blob OBJMETA_MAX (or n OBJMETA_PAIRS_MAX). On
 * error *bad is the index of the offending pair (for a name twice, the
 * second; for a cap, one whose pair crosses it) and out's content is
 * unspecified; bad may be NULL. */
int objmeta_encode(const objmeta_pair_t *pairs, size_t n, uint8_t *out, size_t *len, size_t *bad) CIO_MUST_CHECK;

/* Checks that blob[0..len) is a blob as described above. Returns 0 or
 * CIO_EPROTO. Never reads outside the blob. */
int objmeta_validate(const uint8_t *blob, size_t len) CIO_MUST_CHECK;

/* Walks a blob that objmeta_validate accepted (or objmeta_encode wrote). */
typedef struct {
    const uint8_t *p, *end;
} objmeta_iter_t;

void objmeta_iter_init(objmeta_iter_t *it, const uint8_t *blob, size_t len);

/* Sets *pair to the next pair (its strings point into the blob and live as
 * long as it) and returns 1, or returns 0 at the end. */
int objmeta_next(objmeta_iter_t *it, objmeta_pair_t *pair);

/* Looks name (lower-case) up in a valid blob: 1 with *value, *value_len into
 * the blob, or 0 when absent. */
int objmeta_get(const uint8_t *blob, size_t len, const char *name, const char **value, size_t *value_len);

/* 1 when the two blobs hold the same metadata (they are canonical: same bytes). */
int objmeta_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* The first OBJMETA_DIGEST_LEN bytes of the SHA-256 of blob[0..len) into
 * out: what a listing carries so that two sites' metadata can be compared. */
void objmeta_digest(const uint8_t *blob, size_t len, uint8_t out[OBJMETA_DIGEST_LEN]);

/* objmeta_digest as
 * 2 * OBJMETA_DIGEST_LEN lowercase hex digits and a NUL into out; "" (all
 * of out a NUL) for the empty blob, so that "no metadata" reads as such. */
void objmeta_digest_hex(const uint8_t *blob, size_t len, char out[2 * OBJMETA_DIGEST_LEN + 1]);

#endif
