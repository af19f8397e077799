/* fuzz_path.c - libFuzzer target for the request target parser (storaged/path.c).
 *
 * The input is a request path as h2o hands it over ("/bucket/key?query").
 * path_parse: an accepted path has a valid bucket (or none), a key of
 * 1..PATH_KEY_MAX bytes without NUL (or none), both NUL-terminated; a refused
 * one has one of the four documented codes and an empty result; and
 * re-encoding the parsed bucket and key (as presign_url does) parses back to
 * them. path_query_get and percent_decode: the output fits, is NUL-terminated,
 * and escaping it again round-trips. bucket_name_valid agrees with a
 * from-the-rules reimplementation. */
#include "fuzz.h"
#include "common/bucket.h"
#include "common/percent.h"
#include "storaged/path.h"

/* Escapes everything but RFC 3986 unreserved bytes (and '/' when keep_slash),
 * as presign_url does; out holds 3 * len bytes. */
static size_t escape(const char *s, size_t len, char *out, int keep_slash)
{
    return percent_encode(out, PERCENT_ENCODED_MAX(len), s, len, keep_slash ? PERCENT_KEEP_SLASH : 0);
}

static int bucket_rules(const char *s, size_t len)
{
    int all_digits_dots = 1, dots = 0, group = 0;

    if (len < 3 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.')
            return 0;
        if ((i == 0 || i == len - 1) && !alnum)
            return 0;
        if (c == '.' && s[i + 1] == '.')
            return 0;
        if (c == '.') {
            dots++;
            group = 0;
        } else if (c >= '0' && c <= '9') {
            if (++group > 3)
                all_digits_dots = 0;
        } else {
            all_digits_dots = 0;
        }
    }
    if (len >= 4 && memcmp(s, "xn--", 4) == 0)
        return 0;
    if (len >= 8 && memcmp(s + len - 8, "-s3alias", 8) == 0)
        return 0;
    return !(all_digits_dots && dots == 3); /* an IPv4-like name; ".." and edge dots are already out */
}

static void fuzz_parse(const char *in, size_t len)
{
    const char *code = "unset";
    path_t p, p2;
    char *again;
    size_t n;

    if (path_parse(in, len, &p, &code) != 0) {
        FUZZ_CHECK(code != NULL);
        FUZZ_CHECK(strcmp(code, "InvalidURI") == 0 || strcmp(code, "InvalidBucketName") == 0 || strcmp(code, "InvalidKey") == 0 ||
                   strcmp(code, "KeyTooLong") == 0);
        FUZZ_CHECK(p.bucket_len == 0 && p.key_len == 0 && p.bucket[0] == '\0' && p.key[0] == '\0');
        return;
    }
    FUZZ_CHECK(code == NULL);
    FUZZ_CHECK(p.bucket_len <= PATH_BUCKET_MAX && strlen(p.bucket) == p.bucket_len);
    FUZZ_CHECK(p.key_len <= PATH_KEY_MAX && strlen(p.key) == p.key_len);
    FUZZ_CHECK(p.bucket_len == 0 || bucket_name_valid(p.bucket, p.bucket_len));
    FUZZ_CHECK(p.bucket_len > 0 || p.key_len == 0);
    /* Decoding never lengthens. */
    FUZZ_CHECK(p.bucket_len + p.key_len <= len);

    /* "/" + bucket + "/" + key, escaped, reads back the same. */
    if ((again = malloc(2 + 3 * (PATH_BUCKET_MAX + PATH_KEY_MAX))) == NULL)
        abort();
    n = 0;
    again[n++] = '/';
    n += escape(p.bucket, p.bucket_len, again + n, 0);
    if (p.key_len > 0) {
        again[n++] = '/';
        n += escape(p.key, p.key_len, again + n, 1);
    }
    FUZZ_CHECK(path_parse(again, n, &p2, &code) == 0);
    FUZZ_CHECK(p2.bucket_len == p.bucket_len && memcmp(p2.bucket, p.bucket, p.bucket_len) == 0);
    FUZZ_CHECK(p2.key_len == p.key_len && memcmp(p2.key, p.key, p.key_len) == 0);
    free(again);
}

static void fuzz_query(const char *q, size_t qlen)
{
    static const char *const names[] = {"version", "expires", "sig", "a", ""};
    static const size_t caps[] = {0, 1, 8, 32, 66, 4096};
    char out[4096], *esc;
    size_t outlen, n, back;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (size_t j = 0; j < sizeof(caps) / sizeof(caps[0]); j++) {
            int rc = path_query_get(q, qlen, names[i], out, caps[j], &outlen);
            FUZZ_CHECK(rc == 0 || rc == CIO_ENOTFOUND || rc == CIO_EINVAL || rc == CIO_ETOOBIG);
            if (rc != 0) {
                FUZZ_CHECK(outlen == 0 && (caps[j] == 0 || out[0] == '\0'));
                continue;
            }
            FUZZ_CHECK(outlen < caps[j] && out[outlen] == '\0' && strlen(out) == outlen && outlen <= qlen);
            /* The same value, escaped again, is found again. */
            if ((esc = malloc(strlen(names[i]) + 2 + 3 * outlen)) == NULL)
                abort();
            n = (size_t)sprintf(esc, "%s=", names[i]);
            n += escape(out, outlen, esc + n, 0);
            char *back_out = malloc(outlen + 1);
            if (back_out == NULL)
                abort();
            FUZZ_CHECK(path_query_get(esc, n, names[i], back_out, outlen + 1, &back) == 0);
            FUZZ_CHECK(back == outlen && memcmp(back_out, out, outlen) == 0);
            free(back_out);
            free(esc);
        }
    }
}

static void fuzz_unescape(const char *s, size_t len, int plus_space)
{
    char *dst = malloc(len + 1), *esc, *dst2;
    size_t dlen = 12345, dlen2;

    if (dst == NULL)
        abort();
    unsigned flags = plus_space ? PERCENT_PLUS_SPACE : 0;

    if (percent_decode(s, len, dst, len, &dlen, flags, NULL) != 0) {
        FUZZ_CHECK(dlen == 0);
        free(dst);
        return;
    }
    FUZZ_CHECK(dlen <= len);
    if ((esc = malloc(3 * dlen + 1)) == NULL || (dst2 = malloc(dlen + 1)) == NULL)
        abort();
    size_t n = escape(dst, dlen, esc, 0);
    FUZZ_CHECK(percent_decode(esc, n, dst2, dlen, &dlen2, flags, NULL) == 0);
    FUZZ_CHECK(dlen2 == dlen && (dlen == 0 || memcmp(dst, dst2, dlen) == 0));
    free(esc);
    free(dst2);
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *q = memchr(s, '?', size);

    fuzz_parse(s, size);
    if (q != NULL)
        fuzz_query(q + 1, size - (size_t)(q + 1 - s));
    else
        fuzz_query(s, size);
    fuzz_unescape(s, size, 0);
    fuzz_unescape(s, size, 1);
    FUZZ_CHECK(bucket_name_valid(s, size) == bucket_rules(s, size));
    return 0;
}
