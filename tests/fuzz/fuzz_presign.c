/* fuzz_presign.c - libFuzzer target for presigned-URL verification (proto/presign.c with storaged/path.c).
 *
 * Input fields (see fuzz.h): secret (up to 64 bytes), bucket (up to 70),
 * key (up to 1100), version (8 bytes), expires (8 bytes, signed), a byte
 * choosing "now" around expires; the rest is a signature or a request target.
 *
 * fetch_check() repeats what storaged's fetch endpoint (do_fetch in
 * storaged/http.c) does with a request target: path_parse, then the version,
 * expires and sig query parameters, then presign_verify.
 * Invariants:
 *  - a URL that presign_url builds for a valid bucket and key fits in
 *    BATCH_URL_MAX, parses back to the same bucket, key, version and expiry,
 *    verifies until it expires, is reported expired after, and stops
 *    verifying when any signature digit, the version or the expiry changes;
 *  - an arbitrary signature verifies only if it is the real one;
 *  - an arbitrary request target never crashes the check, and passes only
 *    with the real signature of what it names. */
#include <errno.h>
#include <inttypes.h>
#include "proto/batch.h"
#include "fuzz.h"
#include "common/bucket.h"
#include "storaged/path.h"
#include "proto/presign.h"

static const char prefix[] = "/admin/replication/fetch";

typedef struct {
    path_t p;
    uint64_t version;
    int64_t expires;
    char sig[PRESIGN_SIG_HEX + 2];
    size_t siglen;
    int has_origin;
    char origin[LIMIT_SITE_ID_MAX + 2];
    size_t origin_len;
} fetch_t;

/* Like query_param in storaged/http.c: the query starts after the first '?'. */
static int query_param(const char *target, size_t len, const char *name, char *out, size_t cap, size_t *outlen)
{
    const char *q = memchr(target, '?', len);
    if (q == NULL) {
        *outlen = 0;
        out[0] = '\0';
        return CIO_ENOTFOUND;
    }
    return path_query_get(q + 1, len - (size_t)(q + 1 - target), name, out, cap, outlen);
}

/* Reads a decimal number the way do_fetch does (strtoull, digits first). */
static int query_number(const char *target, size_t len, const char *name, unsigned long long *v)
{
    char num[32], *end;
    size_t n;

    if (query_param(target, len, name, num, sizeof(num), &n) != 0 || n == 0 || num[0] < '0' || num[0] > '9')
        return -1;
    *v = strtoull(num, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* target: the request path ("/admin/replication/fetch/b/k?..."). Returns what
 * do_fetch would decide: 0 (serve), CIO_EAGAIN (expired), CIO_EINVAL (bad
 * path or signature), CIO_ENOMEM. */
static int fetch_check(const char *secret, const char *target, size_t len, int64_t now, fetch_t *f)
{
    const char *code;
    unsigned long long version, expires;

    memset(f, 0, sizeof(*f));
    if (len <= sizeof(prefix) || memcmp(target, prefix, sizeof(prefix) - 1) != 0 || target[sizeof(prefix) - 1] != '/')
        return CIO_EINVAL;
    if (path_parse(target + sizeof(prefix) - 1, len - (sizeof(prefix) - 1), &f->p, &code) != 0) {
        FUZZ_CHECK(code != NULL);
        return CIO_EINVAL;
    }
    if (f->p.bucket_len == 0 || f->p.key_len == 0)
        return CIO_EINVAL;
    if (query_number(target, len, "version", &version) != 0 || version == 0 ||
        query_number(target, len, "expires", &expires) != 0 || expires > INT64_MAX)
        return CIO_EINVAL;
    if (query_param(target, len, "sig", f->sig, sizeof(f->sig), &f->siglen) != 0)
        return CIO_EINVAL;
    /* the origin is optional (a URL of the previous release has none); when there, it is a site id */
    f->has_origin = query_param(target, len, "origin", f->origin, sizeof(f->origin), &f->origin_len) == 0;
    if (f->has_origin && !presign_origin_valid(f->origin, f->origin_len))
        return CIO_EINVAL;
    f->version = version;
    f->expires = (int64_t)expires;
    return presign_verify(secret, strlen(secret), "GET", f->p.bucket, f->p.bucket_len, f->p.key, f->p.key_len, f->version,
                          f->has_origin ? f->origin : NULL, f->origin_len, f->expires, f->sig, f->siglen, now);
}

static void check_signed_url(const char *secret, const char *bucket, size_t blen, const char *key, size_t klen, uint64_t version,
                             int64_t expires)
{
    static const char *const bases[] = {"http://127.0.0.1:8080", "https://site-a.example:8443/"};
    char url[BATCH_URL_MAX], sig[PRESIGN_SIG_HEX + 1];
    fetch_t f;

    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        size_t base_len = strlen(bases[b]) - (bases[b][strlen(bases[b]) - 1] == '/');
        FUZZ_CHECK(presign_url(secret, strlen(secret), bases[b], bucket, blen, key, klen, version, "site-a", 6, expires, url,
                               sizeof(url)) == 0);
        size_t len = strlen(url);
        FUZZ_CHECK(memcmp(url, bases[b], base_len) == 0);
        char *target = url + base_len;
        size_t tlen = len - base_len;

        FUZZ_CHECK(fetch_check(secret, target, tlen, expires, &f) == 0);
        FUZZ_CHECK(f.p.bucket_len == blen && memcmp(f.p.bucket, bucket, blen) == 0);
        FUZZ_CHECK(f.p.key_len == klen && memcmp(f.p.key, key, klen) == 0);
        FUZZ_CHECK(f.version == version && f.expires == expires);
        FUZZ_CHECK(f.has_origin && f.origin_len == 6 && memcmp(f.origin, "site-a", 6) == 0);
        presign_sign(secret, strlen(secret), "GET", bucket, blen, key, klen, version, "site-a", 6, expires, sig);
        FUZZ_CHECK(f.siglen == PRESIGN_SIG_HEX && memcmp(f.sig, sig, PRESIGN_SIG_HEX) == 0);
        if (expires < INT64_MAX)
            FUZZ_CHECK(fetch_check(secret, target, tlen, expires + 1, &f) == CIO_EAGAIN);
        FUZZ_CHECK(fetch_check(secret, target, tlen, INT64_MIN, &f) == 0);

        /* A signature digit changed never verifies, nor does the signature in
         * uppercase (the sig is the last parameter; the runs try every digit). */
        char *sig_at = url + len - PRESIGN_SIG_HEX;
        size_t at = (size_t)(version % PRESIGN_SIG_HEX);
        sig_at[at] = sig[at] == '0' ? '1' : '0';
        FUZZ_CHECK(fetch_check(secret, target, tlen, expires, &f) == CIO_EINVAL);
        for (size_t i = 0; i < PRESIGN_SIG_HEX; i++)
            sig_at[i] = (char)(sig[i] >= 'a' ? sig[i] - 'a' + 'A' : sig[i]);
        if (strcspn(sig, "abcdef") < PRESIGN_SIG_HEX)
            FUZZ_CHECK(fetch_check(secret, target, tlen, expires, &f) == CIO_EINVAL);
        memcpy(sig_at, sig, PRESIGN_SIG_HEX);
        FUZZ_CHECK(fetch_check(secret, target, tlen, expires, &f) == 0);
        /* A URL one byte too long for the buffer is refused, and left empty. */
        FUZZ_CHECK(presign_url(secret, strlen(secret), bases[b], bucket, blen, key, klen, version, "site-a", 6, expires, url,
                               len) == CIO_ETOOBIG);
        FUZZ_CHECK(url[0] == '\0');
    }
    /* The signature covers the version, the expiry and the origin. */
    presign_sign(secret, strlen(secret), "GET", bucket, blen, key, klen, version, "site-a", 6, expires, sig);
    FUZZ_CHECK(presign_verify(secret, strlen(secret), "GET", bucket, blen, key, klen, version, "site-b", 6, expires, sig,
                              PRESIGN_SIG_HEX, expires) == CIO_EINVAL);
    FUZZ_CHECK(presign_verify(secret, strlen(secret), "GET", bucket, blen, key, klen, version, NULL, 0, expires, sig,
                              PRESIGN_SIG_HEX, expires) == CIO_EINVAL);
    presign_sign(secret, strlen(secret), "GET", bucket, blen, key, klen, version, NULL, 0, expires, sig);
    FUZZ_CHECK(presign_verify(secret, strlen(secret), "GET", bucket, blen, key, klen, version + 1, NULL, 0, expires, sig,
                              PRESIGN_SIG_HEX, expires) == CIO_EINVAL);
    if (expires < INT64_MAX)
        FUZZ_CHECK(presign_verify(secret, strlen(secret), "GET", bucket, blen, key, klen, version, NULL, 0, expires + 1, sig,
                                  PRESIGN_SIG_HEX, expires) == CIO_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    size_t slen, blen, klen;
    const uint8_t *s = fuzz_slice(&in, 64, &slen);
    const uint8_t *b = fuzz_slice(&in, 70, &blen);
    const uint8_t *k = fuzz_slice(&in, 1100, &klen);
    uint64_t version = fuzz_uint(&in, 8);
    int64_t expires = (int64_t)fuzz_uint(&in, 8);
    int delta = (int)(fuzz_uint(&in, 1) % 3) - 1; /* now: just before, at or just after expires */
    char *secret = fuzz_strndup(s, slen), *bucket = fuzz_strndup(b, blen), *key = fuzz_strndup(k, klen), *rest;
    char sig[PRESIGN_SIG_HEX + 1];
    fetch_t f;
    int rc;

    int64_t now = expires;
    if ((delta < 0 && expires > INT64_MIN) || (delta > 0 && expires < INT64_MAX))
        now += delta;
    slen = strlen(secret); /* the daemons hold the token as a C string */
    if (slen > 0 && bucket_name_valid(bucket, blen) && klen >= 1 && klen <= LIMIT_KEY_MAX && memchr(key, '\0', klen) == NULL &&
        version > 0 && expires >= 0)
        check_signed_url(secret, bucket, blen, key, klen, version, expires);

    /* The rest as a signature for these fields. */
    rest = fuzz_strndup(in.p, in.left);
    presign_sign(secret, slen, "GET", bucket, blen, key, klen, version, NULL, 0, expires, sig);
    FUZZ_CHECK(slen > 0 ? strlen(sig) == PRESIGN_SIG_HEX : sig[0] == '\0');
    rc = presign_verify(secret, slen, "GET", bucket, blen, key, klen, version, NULL, 0, expires, rest, in.left, now);
    FUZZ_CHECK(rc == 0 || rc == CIO_EINVAL || rc == CIO_EAGAIN);
    if (rc != CIO_EINVAL)
        FUZZ_CHECK(slen > 0 && in.left == PRESIGN_SIG_HEX && memcmp(rest, sig, PRESIGN_SIG_HEX) == 0);
    if (rc == 0)
        FUZZ_CHECK(now <= expires);

    /* The rest as a request target. */
    if (slen > 0) {
        rc = fetch_check(secret, rest, in.left, now, &f);
        FUZZ_CHECK(rc == 0 || rc == CIO_EINVAL || rc == CIO_EAGAIN);
        if (rc != CIO_EINVAL) {
            presign_sign(secret, slen, "GET", f.p.bucket, f.p.bucket_len, f.p.key, f.p.key_len, f.version, NULL, 0, f.expires, sig);
            FUZZ_CHECK(f.siglen == PRESIGN_SIG_HEX && memcmp(f.sig, sig, PRESIGN_SIG_HEX) == 0);
        }
    }
    free(rest);
    free(secret);
    free(bucket);
    free(key);
    return 0;
}
