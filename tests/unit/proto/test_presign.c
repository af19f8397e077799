/* test_presign.c - unit tests of presigned fetch URLs (proto/presign.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proto/batch.h"
#include "proto/presign.h"
#include "testutil.h"

#define SECRET "s3cret-token"
#define SECRET_LEN (sizeof(SECRET) - 1)

/* Made once with the openssl command line:
 *   printf 'GET\nbkt\ndir/my file.txt\n42\n1700000000' | openssl dgst -sha256 -hmac 's3cret-token' */
static const char kat_sig[] = "6bb9f14b3199ef372a9a9236727b4105a24bbef9b8d7db04a69435bef8fb4bee";
/*   printf 'GET\nmybucket\na\n18446744073709551615\n-5' | openssl dgst -sha256 -hmac 'k' */
static const char kat_sig2[] = "292bc04690015cc266e80c666a83b1ab425f3634a2b24b1c376d4b3c2113360b";

static const char kat_key[] = "dir/my file.txt";

static void test_known_answer(void)
{
    char sig[PRESIGN_SIG_HEX + 1];
    presign_sign(SECRET, SECRET_LEN, "GET", "bkt", 3, kat_key, strlen(kat_key), 42, NULL, 0, 1700000000, sig);
    CHECK_EQ_STR(sig, kat_sig);
    presign_sign("k", 1, "GET", "mybucket", 8, "a", 1, UINT64_MAX, NULL, 0, -5, sig);
    CHECK_EQ_STR(sig, kat_sig2);

    /* Only the given lengths are signed. */
    presign_sign(SECRET, SECRET_LEN, "GET", "bktX", 3, "dir/my file.txtX", strlen(kat_key), 42, NULL, 0, 1700000000, sig);
    CHECK_EQ_STR(sig, kat_sig);

    /* No secret, no signature. */
    presign_sign("", 0, "GET", "bkt", 3, "k", 1, 1, NULL, 0, 1, sig);
    CHECK_EQ_STR(sig, "");
    presign_sign(NULL, 5, "GET", "bkt", 3, "k", 1, 1, NULL, 0, 1, sig);
    CHECK_EQ_STR(sig, "");
}

/* Verifies from exact-size heap copies so that valgrind/ASan see any overread. */
static int verify(const char *method, const char *bucket, const char *key, uint64_t version, int64_t expires, const char *sig,
                  size_t sig_len, int64_t now)
{
    size_t blen = strlen(bucket), klen = strlen(key);
    char *b = malloc(blen ? blen : 1), *k = malloc(klen ? klen : 1), *s = malloc(sig_len ? sig_len : 1);
    if (b == NULL || k == NULL || s == NULL)
        abort();
    memcpy(b, bucket, blen);
    memcpy(k, key, klen);
    if (sig_len)
        memcpy(s, sig, sig_len);
    int rc = presign_verify(SECRET, SECRET_LEN, method, b, blen, k, klen, version, NULL, 0, expires, s, sig_len, now);
    free(b);
    free(k);
    free(s);
    return rc;
}

static void test_verify(void)
{
    const int64_t exp = 1700000000;
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 64, exp - 100), 0);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 64, exp), 0); /* valid through `expires` */
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 64, exp + 1), CIO_EAGAIN);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 64, INT64_MAX), CIO_EAGAIN);

    /* A tampered field is a bad signature (also when it extends or shortens the expiry). */
    CHECK_EQ_INT(verify("GET", "bkt2", kat_key, 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bk", kat_key, 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", "dir/my file.tx", 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", "dir/my%20file.txt", 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 43, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp + 3600, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp - 1, kat_sig, 64, exp), CIO_EINVAL);
    CHECK_EQ_INT(verify("HEAD", "bkt", kat_key, 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("PUT", "bkt", kat_key, 42, exp, kat_sig, 64, 0), CIO_EINVAL);
    /* Moving a byte between bucket and key changes the signature too. */
    CHECK_EQ_INT(verify("GET", "bktd", "ir/my file.txt", 42, exp, kat_sig, 64, 0), CIO_EINVAL);

    /* Another secret. */
    CHECK_EQ_INT(presign_verify("other", 5, "GET", "bkt", 3, kat_key, strlen(kat_key), 42, NULL, 0, exp, kat_sig, 64, 0),
                 CIO_EINVAL);
    CHECK_EQ_INT(presign_verify("", 0, "GET", "bkt", 3, kat_key, strlen(kat_key), 42, NULL, 0, exp, kat_sig, 64, 0), CIO_EINVAL);
    CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "bkt", 3, kat_key, strlen(kat_key), 42, NULL, 0, exp, kat_sig, 64, 0),
                 0);
}

static void test_verify_bad_sig(void)
{
    const int64_t exp = 1700000000;
    char s[PRESIGN_SIG_HEX + 2];
    memcpy(s, kat_sig, sizeof(kat_sig));

    /* Wrong lengths: a prefix, one more digit, nothing. */
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 63, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 0, 0), CIO_EINVAL);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, kat_sig, 32, 0), CIO_EINVAL);
    s[64] = '0';
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, s, 65, 0), CIO_EINVAL);
    CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "bkt", 3, kat_key, strlen(kat_key), 42, NULL, 0, exp, NULL, 64, 0),
                 CIO_EINVAL);

    /* Uppercase hex is refused (the signer writes lowercase only). */
    for (size_t i = 0; i < 64; i++)
        s[i] = (char)(s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 'A' : s[i]);
    CHECK_EQ_INT(verify("GET", "bkt", kat_key, 42, exp, s, 64, 0), CIO_EINVAL);

    /* Non-hex characters, and every single changed digit. */
    static const char not_hex[] = {'g', 'G', ' ', '\0', 'x', '-', '/', ':', '`', (char)0xff};
    int bad = 0;
    for (size_t i = 0; i < 64; i++) {
        memcpy(s, kat_sig, sizeof(kat_sig));
        s[i] = s[i] == '0' ? '1' : '0';
        if (verify("GET", "bkt", kat_key, 42, exp, s, 64, 0) != CIO_EINVAL)
            bad++;
        memcpy(s, kat_sig, sizeof(kat_sig));
        s[i] = not_hex[i % sizeof(not_hex)];
        if (verify("GET", "bkt", kat_key, 42, exp, s, 64, 0) != CIO_EINVAL)
            bad++;
        /* ... even when expired: a bad signature is never reported as expired. */
        if (verify("GET", "bkt", kat_key, 42, exp, s, 64, exp + 1) != CIO_EINVAL)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_url_format(void)
{
    char out[1024];
    static const char want[] =
        "http://h:8080/admin/replication/fetch/bkt/dir/my%20file.txt"
        "?version=42&origin=site-a&expires=1700000000&sig=2c42e5c0f6d3335294521f8eb5174ce485c322976716cd54bc3af1cea88a82f6";
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h:8080", "bkt", 3, kat_key, strlen(kat_key), 42, "site-a", 6, 1700000000,
                             out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, want);
    /* One trailing slash on the base is tolerated. */
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h:8080/", "bkt", 3, kat_key, strlen(kat_key), 42, "site-a", 6, 1700000000,
                             out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, want);

    /* Unreserved characters and '/' stay; unicode bytes, '?', '%', '#', '+',
     * '&', '=', space and control bytes are percent-encoded (uppercase hex). */
    static const char key[] = "a/b c?d%e#f+g&h=i\xc3\xa9j~k-l.m_n//\x01Z9";
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "https://x", "b-1.z", 5, key, strlen(key), 0, "site-a", 6, -1, out, sizeof(out)),
                 0);
    char sig[PRESIGN_SIG_HEX + 1], want2[512];
    presign_sign(SECRET, SECRET_LEN, "GET", "b-1.z", 5, key, strlen(key), 0, "site-a", 6, -1, sig);
    snprintf(want2, sizeof(want2),
             "https://x/admin/replication/fetch/b-1.z/a/b%%20c%%3Fd%%25e%%23f%%2Bg%%26h%%3Di%%C3%%A9j~k-l.m_n//%%01Z9"
             "?version=0&origin=site-a&expires=-1&sig=%s",
             sig);
    CHECK_EQ_STR(out, want2);

    /* The bucket is encoded too, '/' included (a bucket never holds one). */
    CHECK_EQ_INT(
        presign_url(SECRET, SECRET_LEN, "http://h", "a/b c", 5, "k", 1, UINT64_MAX, "site-a", 6, INT64_MAX, out, sizeof(out)), 0);
    CHECK(strncmp(out,
                  "http://h/admin/replication/fetch/a%2Fb%20c/"
                  "k?version=18446744073709551615&origin=site-a&expires=9223372036854775807&sig=",
                  strlen("http://h/admin/replication/fetch/a%2Fb%20c/"
                         "k?version=18446744073709551615&origin=site-a&expires=9223372036854775807&sig=")) == 0);

    /* The URL's signature verifies with the decoded fields. */
    const char *q = strstr(out, "&sig=");
    CHECK(q != NULL && strlen(q + 5) == 64);
    if (q != NULL) {
        CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "a/b c", 5, "k", 1, UINT64_MAX, "site-a", 6, INT64_MAX, q + 5,
                                    strlen(q + 5), 0),
                     0);
        /* signed for one origin: neither another origin nor the form without one verifies */
        CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "a/b c", 5, "k", 1, UINT64_MAX, "site-b", 6, INT64_MAX, q + 5,
                                    strlen(q + 5), 0),
                     CIO_EINVAL);
        CHECK_EQ_INT(
            presign_verify(SECRET, SECRET_LEN, "GET", "a/b c", 5, "k", 1, UINT64_MAX, NULL, 0, INT64_MAX, q + 5, strlen(q + 5), 0),
            CIO_EINVAL);
    }

    /* No secret. */
    CHECK_EQ_INT(presign_url("", 0, "http://h", "b", 1, "k", 1, 1, "site-a", 6, 1, out, sizeof(out)), CIO_EINVAL);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, NULL, "b", 1, "k", 1, 1, "site-a", 6, 1, out, sizeof(out)), CIO_EINVAL);
    /* An origin that is not a site id (it would need escaping, or is empty) is refused. */
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h", "b", 1, "k", 1, 1, "a b", 3, 1, out, sizeof(out)), CIO_EINVAL);
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h", "b", 1, "k", 1, 1, "", 0, 1, out, sizeof(out)), CIO_EINVAL);
    /* NULL: the form without an origin (an object written before origins), which verifies with none and only so */
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h", "b", 1, "k", 1, 7, NULL, 0, 99, out, sizeof(out)), 0);
    {
        const char *noq = strstr(out, "?version=7&expires=99&sig=");
        CHECK(noq != NULL && strstr(out, "origin=") == NULL);
        if (noq != NULL) {
            const char *nsig = noq + strlen("?version=7&expires=99&sig=");
            CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "b", 1, "k", 1, 7, NULL, 0, 99, nsig, strlen(nsig), 0), 0);
            CHECK_EQ_INT(presign_verify(SECRET, SECRET_LEN, "GET", "b", 1, "k", 1, 7, "site-a", 6, 99, nsig, strlen(nsig), 0),
                         CIO_EINVAL);
        }
    }
}

/* Every buffer shorter than the URL plus its NUL is refused, leaving "". */
static void test_url_too_small(void)
{
    char full[1024];
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, "http://h:8080", "bkt", 3, kat_key, strlen(kat_key), 42, "site-a", 6, 1700000000,
                             full, sizeof(full)),
                 0);
    size_t need = strlen(full) + 1;
    int bad = 0;
    for (size_t cap = 0; cap <= need; cap++) {
        char *out = malloc(cap ? cap : 1);
        if (out == NULL)
            abort();
        int rc = presign_url(SECRET, SECRET_LEN, "http://h:8080", "bkt", 3, kat_key, strlen(kat_key), 42, "site-a", 6, 1700000000,
                             cap ? out : NULL, cap);
        if (cap < need && (rc != CIO_ETOOBIG || (cap > 0 && out[0] != '\0')))
            bad++;
        if (cap == need && (rc != 0 || strcmp(out, full) != 0))
            bad++;
        free(out);
    }
    CHECK_EQ_INT(bad, 0);
}

/* The longest URL: the longest configured base, bucket and key with every
 * byte escaped, the largest version and the most negative expiry. It is
 * exactly PRESIGN_URL_LEN_MAX long, which fits a batch event's URL. */
static void test_url_longest(void)
{
    char base[LIMIT_URL_MAX + 1], bucket[LIMIT_BUCKET_MAX], key[LIMIT_KEY_MAX], origin[LIMIT_SITE_ID_MAX];
    static char url[LIMIT_FETCH_URL_MAX + 1];
    memset(origin, 'o', sizeof(origin));
    memset(base, 'h', sizeof(base));
    memcpy(base, "http://", 7);
    base[LIMIT_URL_MAX] = '\0';
    memset(bucket, ' ', sizeof(bucket));
    memset(key, 0xff, sizeof(key));
    CHECK_EQ_INT(presign_url(SECRET, SECRET_LEN, base, bucket, sizeof(bucket), key, sizeof(key), UINT64_MAX, origin, sizeof(origin),
                             INT64_MIN, url, sizeof(url)),
                 0);
    CHECK_EQ_INT(strlen(url), PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX));
    CHECK(strlen(url) <= BATCH_URL_MAX);
}

int main(void)
{
    RUN(test_known_answer);
    RUN(test_verify);
    RUN(test_verify_bad_sig);
    RUN(test_url_format);
    RUN(test_url_too_small);
    RUN(test_url_longest);
    return TEST_SUMMARY();
}
