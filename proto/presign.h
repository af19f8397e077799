/* presign.h - presigned fetch URLs: HMAC-SHA256 over method, bucket, key,
 * version, expiry and the version's origin, keyed by the shared replication token.
 *
 * The sending site's repld signs; its storaged verifies (both know the
 * token the receiver accepts); the receiver only follows the URL. The URL is
 *   {public_url}/admin/replication/fetch/{bucket}/{key}?version=V&origin=O&expires=E&sig=HEX
 * where {bucket} and {key} are percent-encoded (RFC 3986 unreserved kept, and
 * '/' in the key; uppercase hex), O is the site id the version comes from
 * (a site id: 1..LIMIT_SITE_ID_MAX unreserved characters, so never escaped)
 * and HEX is the lowercase hex HMAC-SHA256 of
 *   "GET\n" bucket "\n" key "\n" V "\n" E "\n" O
 * with the decoded bucket and key, and V and E in decimal. A URL of the
 * previous release has no origin: it is signed over the same string without
 * "\n" O, and its version alone names the object (kept for one release, so
 * that URLs in flight at an upgrade still work). The secret must not be
 * empty (an empty key would let anyone sign). No I/O here. */
#ifndef COMIO_PRESIGN_H
#define COMIO_PRESIGN_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/limits.h"
#include "common/percent.h"

#define PRESIGN_SIG_HEX 64

/* The path before {bucket}, and the longest query after {key}: version and
 * expiry in decimal (at most 20 characters each, a sign included), and the origin. */
#define PRESIGN_FETCH_PATH "/admin/replication/fetch/"
#define PRESIGN_QUERY_MAX (sizeof("?version=&origin=&expires=&sig=") - 1 + 20 + LIMIT_SITE_ID_MAX + 20 + PRESIGN_SIG_HEX)

/* The longest URL presign_url writes for a base URL of base_len bytes (the
 * NUL not counted): bucket and key of the longest, every byte escaped. */
#define PRESIGN_URL_LEN_MAX(base_len)                                                                                              \
    ((base_len) + sizeof(PRESIGN_FETCH_PATH) - 1 + PERCENT_ENCODED_MAX(LIMIT_BUCKET_MAX) + 1 +                                     \
     PERCENT_ENCODED_MAX(LIMIT_KEY_MAX) + PRESIGN_QUERY_MAX)

/* A URL signed for any configured public URL fits a batch event. */
_Static_assert(PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX) <= LIMIT_FETCH_URL_MAX, "a presigned URL fits LIMIT_FETCH_URL_MAX");

/* Writes the signature (64 lowercase hex chars + NUL) of the given fields
 * into sig; `method` is NUL-terminated ("GET"); `origin` (origin_len bytes)
 * is the version's origin, or NULL for the previous release's form without
 * one. When it cannot sign (empty secret, NULL argument, OpenSSL out of
 * memory) sig is "" (which never verifies). */
void presign_sign(const char *secret, size_t secret_len, const char *method, const char *bucket, size_t blen, const char *key,
                  size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires,
                  char sig[PRESIGN_SIG_HEX + 1]);

/* Builds the whole URL, signed for "GET", into out (NUL-terminated). `base`
 * is the public URL without a trailing slash (one is tolerated); `origin`
 * is the version's origin (a site id), or NULL for the form without one (an
 * object written before versions had origins: its version alone names it;
 * storaged's repair signs those so). Returns 0, CIO_ETOOBIG (out is NULL
 * or cap too small; then out is "" if cap > 0), CIO_EINVAL (empty secret,
 * NULL argument, an origin that is not a site id) or CIO_ENOMEM (OpenSSL
 * failed). */
int presign_url(const char *secret, size_t secret_len, const char *base, const char *bucket, size_t blen, const char *key,
                size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires, char *out,
                size_t cap) CIO_MUST_CHECK;

/* Checks a request's signature (`origin` as for presign_sign: NULL for a
 * URL without one): recomputes it and compares in constant time,
 * and refuses when `now` is past `expires` (now == expires is still valid).
 * `sig_hex` is what the request carried (any length); only exactly 64
 * lowercase hex digits can match. The signature is checked first, so a
 * tampered expiry is a bad signature, not an expired one. Returns 0,
 * CIO_EINVAL (bad signature, including a wrong length, uppercase or non-hex,
 * or an empty secret), CIO_EAGAIN (genuine but expired) or CIO_ENOMEM
 * (OpenSSL failed). */
int presign_verify(const char *secret, size_t secret_len, const char *method, const char *bucket, size_t blen, const char *key,
                   size_t klen, uint64_t version, const char *origin, size_t origin_len, int64_t expires, const char *sig_hex,
                   size_t sig_len, int64_t now) CIO_MUST_CHECK;

/* Whether origin (len bytes) is a site id: 1..LIMIT_SITE_ID_MAX bytes of
 * A-Z a-z 0-9 . _ - (what a presigned URL carries unescaped). */
int presign_origin_valid(const char *origin, size_t len);

#endif
