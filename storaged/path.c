/* path.c - request target parsing: /{bucket}/{key} and query lookup, on common/percent and common/bucket. */
#include <string.h>
#include "common/bucket.h"
#include "common/percent.h"
#include "storaged/path.h"

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
    int berr = percent_decode(bucket, blen, out->bucket, PATH_BUCKET_MAX, &bdec, 0, NULL);
    int kerr = percent_decode(key, klen, out->key, PATH_KEY_MAX, &kdec, 0, &key_nul);
    if (berr == CIO_EINVAL || kerr == CIO_EINVAL)
        return parse_fail(out, code, "InvalidURI");
    if (berr != 0 || !bucket_name_valid(out->bucket, bdec))
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
        if (!percent_decoded_equals(param, nlen, name, strlen(name), PERCENT_PLUS_SPACE))
            continue;

        const char *value = eq != NULL ? eq + 1 : param + plen;
        size_t vlen = (size_t)(param + plen - value);
        if (cap == 0)
            return CIO_ETOOBIG;
        size_t n;
        int nul = 0;
        int err = percent_decode(value, vlen, out, cap - 1, &n, PERCENT_PLUS_SPACE, &nul);
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
