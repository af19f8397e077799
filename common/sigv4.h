/* sigv4.h - AWS Signature Version 4 verification for the S3 service: the
 * Authorization header, presigned query strings, and the signatures of an
 * aws-chunked body's chunks and trailer (docs/s3.md).
 *
 * Pure functions, no I/O: the caller hands in the request (method, path as
 * sent, query, headers), the time, the region and the secret of the access
 * key the request names. The canonical request is built as S3 builds it:
 * the path as sent (never re-normalised), the query parameters decoded,
 * re-encoded as RFC 3986 and sorted, the signed headers' values trimmed with
 * inner runs of spaces collapsed. Signatures are compared in constant time.
 *
 * Errors are S3's: each failing function fills a sigv4_error_t with the HTTP
 * status, S3's error code (a static string) and a message. */
#ifndef COMIO_SIGV4_H
#define COMIO_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_ACCESS_KEY_MAX 128      /* bytes of an access key id */
#define SIGV4_REGION_MAX 64           /* bytes of a region name */
#define SIGV4_SKEW_MAX_S (15 * 60)    /* a request's X-Amz-Date may be this far off the server's clock */
#define SIGV4_EXPIRES_MAX_S 604800    /* X-Amz-Expires: at most a week */
#define SIGV4_SIG_HEX 64              /* a signature: 64 lower-case hex digits */
#define SIGV4_SIGNED_HEADERS_MAX 64   /* names in SignedHeaders */
#define SIGV4_QUERY_PARAMS_MAX 128    /* parameters of a signed query */
#define SIGV4_CANONICAL_MAX (1 << 20) /* cap on a canonical request (headers are capped at 32 KiB before) */

/* What x-amz-content-sha256 says of the payload. */
typedef enum {
    SIGV4_PAYLOAD_SHA256,            /* the hex SHA-256 of the body: check it with sigv4_payload_check */
    SIGV4_PAYLOAD_UNSIGNED,          /* UNSIGNED-PAYLOAD (and a presigned URL without the header) */
    SIGV4_PAYLOAD_STREAMING,         /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked, each chunk signed */
    SIGV4_PAYLOAD_STREAMING_TRAILER, /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: signed chunks and a signed trailer */
    SIGV4_PAYLOAD_UNSIGNED_TRAILER,  /* STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked, unsigned, with a trailer */
} sigv4_payload_t;

/* One request header; name in any case. Borrowed for the call. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sigv4_header_t;

/* The request as the client sent it; every pointer is borrowed for the calls
 * that take it. The Host (HTTP/2's :authority) must be among the headers. */
typedef struct {
    const char *method;
    size_t method_len;
    const char *path; /* as sent, without the query */
    size_t path_len;
    const char *query; /* without the '?'; NULL or "" for none */
    size_t query_len;
    const sigv4_header_t *headers;
    size_t nheaders;
} sigv4_request_t;

typedef struct {
    int status;       /* 400 or 403 */
    const char *code; /* S3's error code, static */
    char msg[256];
} sigv4_error_t;

/* A request's signature, parsed by sigv4_parse, completed by sigv4_verify.
 * sigv4_parse zeroes the fields up to `signed_headers` and sets the rest as
 * it parses: the large buffers are not cleared for every request. */
typedef struct {
    int presigned; /* from the query (X-Amz-*), not the Authorization header */
    sigv4_payload_t payload;
    int64_t date;    /* X-Amz-Date, seconds since the epoch */
    int64_t expires; /* presigned: X-Amz-Expires in seconds */
    size_t scope_len;
    size_t signed_headers_len;
    size_t content_sha256_len;
    size_t nsigned; /* names in signed_headers */
    char access_key[SIGV4_ACCESS_KEY_MAX + 1];
    char amz_date[17];                         /* 20130524T000000Z */
    char scope[8 + 1 + SIGV4_REGION_MAX + 20]; /* 20130524/us-east-1/s3/aws4_request */
    char signature[SIGV4_SIG_HEX + 1];         /* the request's (the seed of an aws-chunked body's chain) */
    char payload_hash[SIGV4_SIG_HEX + 1];      /* SIGV4_PAYLOAD_SHA256: the hex digest claimed (lower case) */
    char content_sha256[80];                   /* the value that enters the canonical request */
    uint8_t key[32];                           /* the signing key, set by sigv4_verify (a secret: wipe it) */
    char signed_headers[1024];                 /* "host;x-amz-date", as given but in lower case */
    struct {
        uint16_t off, len;
    } signed_name[SIGV4_SIGNED_HEADERS_MAX]; /* each name of signed_headers, in order (no ';' to look for again) */
} sigv4_auth_t;

/* What signature the request carries: SIGV4_SIGNED (an Authorization
 * header starting "AWS4-HMAC-SHA256 ", or X-Amz-Algorithm / X-Amz-Signature
 * / X-Amz-Credential in the query), SIGV4_SIGNED_V2 (the older Signature
 * Version 2: "Authorization: AWS key:sig", or AWSAccessKeyId and Signature
 * in the query), or 0 (none: not an S3 request). authorization may be NULL.
 * Cheap; validates nothing. */
#define SIGV4_SIGNED 1
#define SIGV4_SIGNED_V2 2
int sigv4_is_signed(const char *authorization, size_t auth_len, const char *query, size_t query_len);

/* Parses the signature of r into *a: the Authorization header (header
 * auth), else the X-Amz-* query parameters (presigned). Checks the scope
 * (service s3, terminator aws4_request, the date of X-Amz-Date, `region`),
 * that host is signed, that every x-amz-* header of a header-signed request
 * is signed, X-Amz-Expires (1..604800), the clock (`now`, seconds: more than
 * SIGV4_SKEW_MAX_S off is RequestTimeTooSkewed; a presigned URL past its
 * expiry is AccessDenied "Request has expired") and x-amz-content-sha256.
 * Returns 0, or CIO_EINVAL with *e filled (AuthorizationHeaderMalformed,
 * AuthorizationQueryParametersError, AccessDenied, RequestTimeTooSkewed,
 * MissingSecurityHeader, InvalidArgument). The caller then looks up
 * a->access_key (unknown: S3's InvalidAccessKeyId, sigv4_error_unknown_key). */
int sigv4_parse(const sigv4_request_t *r, int64_t now, const char *region, sigv4_auth_t *a, sigv4_error_t *e) CIO_MUST_CHECK;

/* Fills *e with InvalidAccessKeyId (403). */
void sigv4_error_unknown_key(sigv4_error_t *e);

/* Computes the signature of r with `secret` and compares it (constant time)
 * with the one a holds; sets a->key for the chunk signatures. Returns 0, or
 * CIO_EINVAL with *e = SignatureDoesNotMatch (403), or CIO_ETOOBIG /
 * CIO_ENOMEM (e filled: 400 InvalidRequest / 500 InternalError). Derives
 * the signing key (four HMACs) every time: sigv4_verify_cached with a
 * NULL cache. */
int sigv4_verify(const sigv4_request_t *r, sigv4_auth_t *a, const char *secret, size_t secret_len, sigv4_error_t *e) CIO_MUST_CHECK;

/* A cache of signing keys, one per (access key, date, region, secret): the
 * key changes once a day per access key, and deriving it costs four HMACs
 * of every request. Zero-initialised is empty. Not locked: one cache per
 * thread. It holds secrets (the access keys' and the derived keys): wipe it
 * with sigv4_keycache_wipe before its memory is released. A secret longer
 * than SIGV4_KEYCACHE_SECRET_MAX bytes is never cached. */
#define SIGV4_KEYCACHE_SLOTS 8
#define SIGV4_KEYCACHE_SECRET_MAX 128
typedef struct {
    int used;
    char access_key[SIGV4_ACCESS_KEY_MAX + 1];
    char date[8]; /* 20130524 */
    char region[SIGV4_REGION_MAX];
    size_t region_len;
    char secret[SIGV4_KEYCACHE_SECRET_MAX]; /* compared in constant time: a changed secret is a miss */
    size_t secret_len;
    uint8_t key[32];
    uint64_t hmac[32]; /* the key's two HMAC pads, hashed: SHA-256 states, opaque */
} sigv4_keycache_entry_t;
typedef struct {
    sigv4_keycache_entry_t slot[SIGV4_KEYCACHE_SLOTS];
    size_t next;     /* the slot the next miss replaces (round robin) */
    uint64_t hits;   /* lookups answered from the cache */
    uint64_t misses; /* keys derived */
} sigv4_keycache_t;

/* sigv4_verify, taking the signing key from `cache` when it holds a's
 * access key, date and region with this secret, else deriving it and
 * keeping it there (replacing the oldest entry). cache may be NULL (no
 * cache). The checks and the errors are sigv4_verify's. */
int sigv4_verify_cached(const sigv4_request_t *r, sigv4_auth_t *a, const char *secret, size_t secret_len, sigv4_keycache_t *cache,
                        sigv4_error_t *e) CIO_MUST_CHECK;

/* Wipes every key and secret of the cache, and empties it. */
void sigv4_keycache_wipe(sigv4_keycache_t *cache);

/* For SIGV4_PAYLOAD_SHA256: checks the body against the digest claimed.
 * Returns 0 (also for every other payload kind) or CIO_EINVAL with *e =
 * XAmzContentSHA256Mismatch (400). */
int sigv4_payload_check(const sigv4_auth_t *a, const void *body, size_t len, sigv4_error_t *e) CIO_MUST_CHECK;

/* sigv4_payload_check for a body hashed elsewhere: compares `digest` (its
 * SHA-256, 32 bytes) with `claimed` (SIGV4_SIG_HEX lower-case hex digits, a
 * sigv4_auth_t's payload_hash). Returns 0, or CIO_EINVAL with *e =
 * XAmzContentSHA256Mismatch (400). */
int sigv4_payload_digest_check(const char *claimed, const uint8_t digest[32], sigv4_error_t *e) CIO_MUST_CHECK;

/* The signature of one chunk of an aws-chunked body, chained on `prev` (the
 * previous chunk's, or the request's for the first): out gets 64 hex digits
 * and a NUL. a must have been through sigv4_verify. */
void sigv4_chunk_signature(const sigv4_auth_t *a, const char *prev, const void *data, size_t len, char out[SIGV4_SIG_HEX + 1]);

/* The signature of the trailer (its lines "name:value\n", `len` bytes),
 * chained on the last chunk's signature. */
void sigv4_trailer_signature(const sigv4_auth_t *a, const char *prev, const void *trailer, size_t len, char out[SIGV4_SIG_HEX + 1]);

/* 1 when s[0..len) is a signature as SigV4 writes one: exactly SIGV4_SIG_HEX
 * lower-case hex digits; else 0. */
int sigv4_is_signature(const char *s, size_t len);

/* 1 when a[0..n) equals b[0..n), in time that does not depend on where they differ. */
int sigv4_equal(const char *a, const char *b, size_t n);

#endif
