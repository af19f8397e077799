/* fuzz_sigv4.c - libFuzzer target for SigV4 header signatures (common/sigv4.c): sigv4_parse and sigv4_verify.
 *
 * Input: a mode byte, then fields (see fuzz.h).
 *  - even mode: a request signed here by a plain reference signer (the
 *    canonical request of the spec, built with malloc, OpenSSL's HMAC()):
 *    the path and the value of x-amz-meta-a are the fuzzer's, so are the
 *    case of each header name and of SignedHeaders, and x-amz-content-sha256
 *    (a digest in either case, or a payload name). Invariants: it parses and
 *    verifies, uncached and through a key cache (a miss, then a hit); with
 *    one signature digit changed it is SignatureDoesNotMatch every way.
 *  - odd mode: Authorization, x-amz-date and x-amz-content-sha256 are the
 *    fuzzer's bytes. Invariants: no crash; what parses has a 64-digit
 *    lower-case signature, an access key of at most SIGV4_ACCESS_KEY_MAX bytes,
 *    the scope of the region, a date within the clock skew, a lower-case
 *    digest when the payload is one; verifying gives the same answer
 *    with and without the cache. */
#include <ctype.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include "fuzz.h"
#include "common/sigv4.h"

#define T0 1369353600 /* 20130524T000000Z */
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SCOPE "20130524/us-east-1/s3/aws4_request"

static sigv4_keycache_t cache;

static void hex(char *out, const unsigned char *md, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[md[i] >> 4];
        out[2 * i + 1] = d[md[i] & 15];
    }
    out[2 * n] = '\0';
}

/* appends s[0..n) to the malloc'ed string *b of length *len */
static void put(char **b, size_t *len, const char *s, size_t n)
{
    char *nb = realloc(*b, *len + n + 1);
    if (nb == NULL)
        abort();
    memcpy(nb + *len, s, n);
    *len += n;
    nb[*len] = '\0';
    *b = nb;
}

/* the spec's canonical header value: trimmed, each run of spaces and tabs one space */
static void put_value(char **b, size_t *len, const char *v, size_t n)
{
    size_t i = 0, end = n;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    while (i < end) {
        if (v[i] == ' ' || v[i] == '\t') {
            while (v[i] == ' ' || v[i] == '\t')
                i++;
            put(b, len, " ", 1);
        } else {
            put(b, len, v + i++, 1);
        }
    }
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int olen = 32;
    FUZZ_CHECK(HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen) != NULL);
}

static void signed_request(fuzz_in_t *in)
{
    static const char *const names[] = {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-a"};
    static const char *const payloads[] = {"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"};
    char nm[4][24], sh[80], sha[65], auth[512], sts[256];
    unsigned char md[32], k[32];
    size_t plen, vlen, clen = 0;
    const char *path = (const char *)fuzz_slice(in, 64, &plen);
    unsigned flips = (unsigned)fuzz_uint(in, 2), pk = (unsigned)fuzz_uint(in, 1);
    const char *value = (const char *)fuzz_slice(in, 64, &vlen);
    char *canon = NULL;

    /* x-amz-content-sha256: a digest of the fuzzer's bytes, upper case on odd pk; or a payload name */
    if (pk % 4 < 2) {
        size_t dl;
        const uint8_t *d = fuzz_slice(in, 32, &dl);
        SHA256(d, dl, md);
        hex(sha, md, 32);
        for (int i = 0; pk % 2 && i < 64; i++)
            sha[i] = (char)toupper((unsigned char)sha[i]);
    } else {
        snprintf(sha, sizeof(sha), "%s", payloads[pk % 2]);
    }
    /* the names in the case the flips say; SignedHeaders likewise */
    for (int i = 0; i < 4; i++) {
        snprintf(nm[i], sizeof(nm[i]), "%s", names[i]);
        for (size_t c = 0; flips >> i & 1 && nm[i][c] != '\0'; c++)
            nm[i][c] = (char)toupper((unsigned char)nm[i][c]);
    }
    snprintf(sh, sizeof(sh), "%s;%s;%s;%s", names[0], names[1], names[2], names[3]);
    for (size_t c = 0; flips >> 4 & 1 && sh[c] != '\0'; c++)
        sh[c] = (char)toupper((unsigned char)sh[c]);

    /* the reference signature */
    put(&canon, &clen, "GET\n", 4);
    put(&canon, &clen, path, plen);
    put(&canon, &clen, "\n\nhost:h\nx-amz-content-sha256:", 30);
    put(&canon, &clen, sha, strlen(sha));
    put(&canon, &clen, "\nx-amz-date:20130524T000000Z\nx-amz-meta-a:", 42);
    put_value(&canon, &clen, value, vlen);
    put(&canon, &clen, "\n\nhost;x-amz-content-sha256;x-amz-date;x-amz-meta-a\n", 52);
    put(&canon, &clen, sha, strlen(sha));
    SHA256((const unsigned char *)canon, clen, md);
    free(canon);
    char ch[65];
    hex(ch, md, 32);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n20130524T000000Z\n" SCOPE "\n%s", ch);
    hmac("AWS4" SECRET, sizeof(SECRET) + 3, "20130524", k);
    hmac(k, 32, "us-east-1", k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, md);
    hex(ch, md, 32);
    snprintf(auth, sizeof(auth), "AWS4-HMAC-SHA256 Credential=AK/" SCOPE ",SignedHeaders=%s,Signature=%s", sh, ch);

    sigv4_header_t h[] = {
        {nm[0], 4, "h", 1},
        {nm[1], 20, sha, strlen(sha)},
        {nm[2], 10, "20130524T000000Z", 16},
        {nm[3], 12, value, vlen},
        {"Authorization", 13, auth, strlen(auth)},
    };
    sigv4_request_t r = {"GET", 3, path, plen, NULL, 0, h, 5};
    sigv4_auth_t a;
    sigv4_error_t e;

    FUZZ_CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == 0);
    FUZZ_CHECK(sigv4_verify(&r, &a, SECRET, sizeof(SECRET) - 1, &e) == 0);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET, sizeof(SECRET) - 1, &cache, &e) == 0);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET, sizeof(SECRET) - 1, &cache, &e) == 0);
    /* one digit changed: refused every way */
    size_t at = strlen(auth) - 1 - (size_t)(flips >> 5) % 64;
    auth[at] = auth[at] == '0' ? '1' : '0';
    FUZZ_CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == 0);
    FUZZ_CHECK(sigv4_verify(&r, &a, SECRET, sizeof(SECRET) - 1, &e) == CIO_EINVAL && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET, sizeof(SECRET) - 1, &cache, &e) == CIO_EINVAL);
    /* and another secret */
    auth[at] = auth[at] == '0' ? '1' : '0';
    FUZZ_CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == 0);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET "x", sizeof(SECRET), &cache, &e) == CIO_EINVAL);
}

static int lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void arbitrary_request(fuzz_in_t *in)
{
    size_t al, dl, sl;
    int64_t now = T0 + (int64_t)(fuzz_uint(in, 2) % 4000) - 2000;
    const char *auth = (const char *)fuzz_slice(in, 400, &al);
    const char *date = (const char *)fuzz_slice(in, 20, &dl);
    const char *sha = (const char *)fuzz_slice(in, 80, &sl);
    sigv4_header_t h[] = {
        {"host", 4, "h", 1},
        {"x-amz-date", 10, date, dl},
        {"x-amz-content-sha256", 20, sha, sl},
        {"authorization", 13, auth, al},
    };
    sigv4_request_t r = {"GET", 3, "/b/k", 4, NULL, 0, h, 4};
    sigv4_auth_t a;
    sigv4_error_t e;

    if (sigv4_parse(&r, now, "us-east-1", &a, &e) != 0) {
        FUZZ_CHECK(e.code != NULL && (e.status == 400 || e.status == 403));
        return;
    }
    /* (a key that starts with a NUL reads as "", which no credential is: InvalidAccessKeyId) */
    FUZZ_CHECK(strlen(a.access_key) <= SIGV4_ACCESS_KEY_MAX);
    FUZZ_CHECK(strlen(a.signature) == SIGV4_SIG_HEX && lower_hex(a.signature, SIGV4_SIG_HEX));
    FUZZ_CHECK(strlen(a.scope) == 8 + 26 && memcmp(a.scope, date, 8) == 0 &&
               strcmp(a.scope + 8, "/us-east-1/s3/aws4_request") == 0);
    FUZZ_CHECK(a.date >= 0 && a.date - now <= SIGV4_SKEW_MAX_S && now - a.date <= SIGV4_SKEW_MAX_S);
    FUZZ_CHECK(a.payload != SIGV4_PAYLOAD_SHA256 || (strlen(a.payload_hash) == SIGV4_SIG_HEX && lower_hex(a.payload_hash, 64)));
    int plain = sigv4_verify(&r, &a, SECRET, sizeof(SECRET) - 1, &e);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET, sizeof(SECRET) - 1, &cache, &e) == plain);
    FUZZ_CHECK(sigv4_verify_cached(&r, &a, SECRET, sizeof(SECRET) - 1, &cache, &e) == plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};

    if (fuzz_uint(&in, 1) % 2 == 0)
        signed_request(&in);
    else
        arbitrary_request(&in);
    return 0;
}
