/* path.c - request target parsing: /{bucket}/{key}, percent-decoding, bucket names, query lookup. */
#include <string.h>
#include "storaged/path.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into dst, writing at most `cap` bytes. Keeps
 * scanning past `cap` so that a bad escape anywhere wins over "too long":
 * returns CIO_EINVAL for a bad escape, else CIO_ETOOBIG if the decoded form
 * exceeds cap, else 0. *dlen is the full decoded length; *has_nul (if not
 * NULL) tells whether a decoded byte was NUL. */
static int unescape_capped(const char *src, size_t len, char *dst, size_t cap, size_t *dlen, int plus_space, int *has_nul)
{
    size_t n = 0;
    int nul = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hex_value(src[i + 1])) < 0 || (lo = hex_value(src[i + 2])) < 0) {
                *dlen = 0;
                return CIO_EINVAL;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0')
            nul = 1;
        if (n < cap)
            dst[n] = c;
        n++;
    }
    *dlen = n;
    if (has_nul != NULL)
        *has_nul = nul;
    return n > cap ? CIO_ETOOBIG : 0;
}

int path_unescape(const char *src, size_t len, char *dst, size_t *dlen, int plus_space)
{
    size_t n = 0;
    int err = unescape_capped(src, len, dst, len, &n, plus_space, NULL);
    *dlen = err == 0 ? n : 0;
    return err == 0 ? 0 : CIO_EINVAL;
}

/* A name formatted like an IPv4 address: four dot-separated groups of 1..3
 * digits (S3 refuses all of them, not only valid addresses). */
static int looks_like_ipv4(const char *name, size_t len)
{
    int groups = 1, digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '.') {
            if (digits == 0)
                return 0;
            groups++;
            digits = 0;
        } else if (name[i] >= '0' && name[i] <= '9') {
            if (++digits > 3)
                return 0;
        } else {
            return 0;
        }
    }
    return groups == 4 && digits > 0;
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int path_bucket_valid(const char *name, size_t len)
{
    static const char alias_suffix[] = "-s3alias";
    const size_t alias_len = sizeof(alias_suffix) - 1;

    if (name == NULL || len < 3 || len > PATH_BUCKET_MAX)
        return 0;
    if (!is_lower_alnum(name[0]) || !is_lower_alnum(name[len - 1]))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!is_lower_alnum(c) && c != '-' && c != '.')
            return 0;
        if (c == '.' && i + 1 < len && name[i + 1] == '.')
            return 0;
    }
    if (len >= 4 && memcmp(name, "xn--", 4) == 0)
        return 0;
    if (len >= alias_len && memcmp(name + len - alias_len, alias_suffix, alias_len) == 0)
        return 0;
    return !looks_like_ipv4(name, len);
}

static int parse_fail(path_t *out, const char **code, const char *what)
{
    out->bucket[0] = '\0';
    out->bucket_len = 0;
    out->key[0] = '\0';
    out->key_len = 0;
    if (code != NULL)
        *code = what;
    return CIO_EINVAL;
}

int path_parse(const char *path, size_t len, path_t *out, const char **code)
{
    if (out == NULL)
        return CIO_EINVAL;
    if (path == NULL || len == 0 || path[0] != '/')
        return parse_fail(out, code, "InvalidURI");

    const char *q = memchr(path, '?', len);
    if (q != NULL)
        len = (size_t)(q - path);

    /* path[1..slash) is the bucket, path(slash..len) the key. */
    const char *bucket = path + 1;
    const char *slash = memchr(bucket, '/', len - 1);
    size_t blen = slash != NULL ? (size_t)(slash - bucket) : len - 1;
    const char *key = slash != NULL ? slash + 1 : path + len;
    size_t klen = (size_t)(path + len - key);

    if (len == 1) { /* "/": the service itself */
        out->bucket[0] = '\0';
        out->bucket_len = 0;
        out->key[0] = '\0';
        out->key_len = 0;
        if (code != NULL)
            *code = NULL;
        return 0;
    }

    /* Check all escapes first, so a bad one is InvalidURI whatever else is wrong. */
    size_t bdec, kdec;
    int key_nul = 0;
    int berr = unescape_capped(bucket, blen, out->bucket, PATH_BUCKET_MAX, &bdec, 0, NULL);
    int kerr = unescape_capped(key, klen, out->key, PATH_KEY_MAX, &kdec, 0, &key_nul);
    if (berr == CIO_EINVAL || kerr == CIO_EINVAL)
        return parse_fail(out, code, "InvalidURI");
    if (berr != 0 || !path_bucket_valid(out->bucket, bdec))
        return parse_fail(out, code, "InvalidBucketName");
    if (key_nul)
        return parse_fail(out, code, "InvalidKey");
    if (kerr != 0)
        return parse_fail(out, code, "KeyTooLong");

    out->bucket[bdec] = '\0';
    out->bucket_len = bdec;
    out->key[kdec] = '\0';
    out->key_len = kdec;
    if (code != NULL)
        *code = NULL;
    return 0;
}

/* Whether the percent-decoded form ('+' as space) of src[0..len) equals the
 * NUL-terminated `name`; a bad escape never matches. */
static int decoded_equals(const char *src, size_t len, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++, j++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hex_value(src[i + 1])) < 0 || (lo = hex_value(src[i + 2])) < 0)
                return 0;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (name[j] == '\0' || name[j] != c)
            return 0;
    }
    return name[j] == '\0';
}

int path_query_get(const char *query, size_t qlen, const char *name, char *out, size_t cap, size_t *outlen)
{
    if (name == NULL || out == NULL || (query == NULL && qlen > 0))
        return CIO_EINVAL;
    if (outlen != NULL)
        *outlen = 0;
    if (cap > 0)
        out[0] = '\0';

    size_t pos = 0;
    while (pos < qlen) {
        const char *param = query + pos;
        const char *amp = memchr(param, '&', qlen - pos);
        size_t plen = amp != NULL ? (size_t)(amp - param) : qlen - pos;
        pos += plen + 1;

        const char *eq = memchr(param, '=', plen);
        size_t nlen = eq != NULL ? (size_t)(eq - param) : plen;
        if (!decoded_equals(param, nlen, name))
            continue;

        const char *value = eq != NULL ? eq + 1 : param + plen;
        size_t vlen = (size_t)(param + plen - value);
        if (cap == 0)
            return CIO_ETOOBIG;
        size_t n;
        int nul = 0;
        int err = unescape_capped(value, vlen, out, cap - 1, &n, 1, &nul);
        if (nul) /* only reported when every escape was valid */
            err = CIO_EINVAL;
        if (err != 0) {
            out[0] = '\0';
            return err;
        }
        out[n] = '\0';
        if (outlen != NULL)
            *outlen = n;
        return 0;
    }
    return CIO_ENOTFOUND;
}
