/* s3_checksum.c - S3's checksums of an uploaded body: Content-MD5 and
 * x-amz-checksum-*, as headers or as trailers of an aws-chunked body. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/cksum.h"
#include "storaged/s3.h"
#include "storaged/s3_checksum.h"
#include "storaged/s3_reply.h"

#define PREFIX "x-amz-checksum-"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

/* The algorithms S3 accepts in x-amz-checksum-<alg> (MD5 has Content-MD5). */
static int is_s3_alg(cksum_alg_t a)
{
    return a == CKSUM_CRC32 || a == CKSUM_CRC32C || a == CKSUM_CRC64NVME || a == CKSUM_SHA1 || a == CKSUM_SHA256;
}

static int name_is(const s3_checksum_field_t *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* The S3 algorithm of header name[0..len) when it is x-amz-checksum-<alg>. */
static int checksum_header_alg(const char *name, size_t len, cksum_alg_t *a)
{
    if (len <= PREFIX_LEN || strncasecmp(name, PREFIX, PREFIX_LEN) != 0)
        return 0;
    return cksum_lookup(name + PREFIX_LEN, len - PREFIX_LEN, a) == 0 && is_s3_alg(*a);
}

__attribute__((format(printf, 3, 4))) static int refuse(s3_checksum_verdict_t *v, const char *code, const char *fmt, ...)
{
    va_list ap;

    v->status = 400;
    v->code = code;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
    return 1;
}

/* "CRC32", "CRC64NVME", "SHA256": how S3 names an algorithm in its messages */
static void upper_name(char *out, size_t cap, cksum_alg_t a)
{
    const char *s = cksum_name(a);
    size_t i;
    for (i = 0; s[i] != '\0' && i + 1 < cap; i++)
        out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
    out[i] = '\0';
}

/* Compares one sent checksum with the body's: 0 match, 1 refused (v filled), or CIO_ENOMEM. */
static int check_one(cksum_alg_t a, const s3_checksum_field_t *f, const void *body, size_t len, s3_checksum_verdict_t *v)
{
    uint8_t sent[CKSUM_SIZE_MAX], got[CKSUM_SIZE_MAX];
    size_t n;
    char up[16], hdr[32];
    int ret;

    if (cksum_base64_decode(sent, sizeof(sent), f->value, f->value_len, &n) != 0 || n != cksum_size(a)) {
        if (a == CKSUM_MD5)
            return refuse(v, "InvalidDigest", "The Content-MD5 you specified was invalid.");
        snprintf(hdr, sizeof(hdr), PREFIX "%s", cksum_name(a));
        return refuse(v, "InvalidRequest", "Value for %s header is invalid.", hdr);
    }
    if ((ret = cksum_compute(a, body, len, got)) != 0)
        return ret;
    if (memcmp(sent, got, n) == 0)
        return 0;
    if (a == CKSUM_MD5)
        return refuse(v, "BadDigest", "The Content-MD5 you specified did not match what we received.");
    upper_name(up, sizeof(up), a);
    return refuse(v, "BadDigest", "The %s you specified did not match the calculated checksum.", up);
}

/* Each comma-separated name in x-amz-trailer that is a checksum must have come. */
static int check_trailer_names(const s3_checksum_field_t *t, int have[CKSUM_NALGS], s3_checksum_verdict_t *v)
{
    const char *p = t->value, *end = t->value + t->value_len;
    char name[64];

    while (p < end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        const char *e = q != NULL ? q : end;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *z = e;
        while (z > p && (z[-1] == ' ' || z[-1] == '\t'))
            z--;
        cksum_alg_t a;
        if (checksum_header_alg(p, (size_t)(z - p), &a) && !have[a]) {
            snprintf(name, sizeof(name), "%.*s", (int)(z - p), p);
            return refuse(v, "InvalidRequest", "x-amz-trailer names %s, but the trailer was not sent.", name);
        }
        p = q != NULL ? q + 1 : end;
    }
    return 0;
}

int s3_checksum_verify(const s3_checksum_field_t *fields, size_t n, const void *body, size_t len, s3_checksum_verdict_t *v)
{
    const s3_checksum_field_t *sum = NULL, *sdk = NULL;
    int have[CKSUM_NALGS] = {0};
    cksum_alg_t sum_alg = CKSUM_CRC32, a;
    size_t i;
    int ret;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < n; i++) {
        const s3_checksum_field_t *f = &fields[i];
        if (checksum_header_alg(f->name, f->name_len, &a)) {
            if (sum != NULL)
                return refuse(v, "InvalidRequest",
                              "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
            sum = f;
            sum_alg = a;
            have[a] = 1;
        } else if (name_is(f, "x-amz-sdk-checksum-algorithm")) {
            sdk = f;
        }
    }
    if (sdk != NULL) {
        if (cksum_lookup(sdk->value, sdk->value_len, &a) != 0 || !is_s3_alg(a))
            return refuse(v, "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.");
        if (!have[a])
            return refuse(v, "InvalidRequest",
                          "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer "
                          "headers were found.");
    }
    for (i = 0; i < n; i++)
        if (name_is(&fields[i], "x-amz-trailer") && (ret = check_trailer_names(&fields[i], have, v)) != 0)
            return ret;
    for (i = 0; i < n; i++)
        if (name_is(&fields[i], "content-md5") && (ret = check_one(CKSUM_MD5, &fields[i], body, len, v)) != 0)
            return ret;
    return sum != NULL ? check_one(sum_alg, sum, body, len, v) : 0;
}

/* Non-zero when a header of this name is one the verdict looks at. */
static int relevant(const char *name, size_t len)
{
    static const char *names[] = {"content-md5", "x-amz-sdk-checksum-algorithm", "x-amz-trailer"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (len == strlen(names[i]) && strncasecmp(name, names[i], len) == 0)
            return 1;
    return len > PREFIX_LEN && strncasecmp(name, PREFIX, PREFIX_LEN) == 0;
}

int s3_checksum_check(h2o_req_t *req, const s3_req_t *s)
{
    s3_checksum_field_t fields[S3_CHECKSUM_FIELDS_MAX];
    s3_checksum_verdict_t v;
    size_t n = 0, i;
    int ret;

    for (i = 0; i < req->headers.size + s->ntrailers; i++) {
        const char *name, *value;
        size_t name_len, value_len;
        if (i < req->headers.size) {
            const h2o_header_t *h = &req->headers.entries[i];
            name = h->name->base, name_len = h->name->len, value = h->value.base, value_len = h->value.len;
        } else {
            const h2o_iovec_t *t = s->trailers[i - req->headers.size];
            name = t[0].base, name_len = t[0].len, value = t[1].base, value_len = t[1].len;
        }
        if (!relevant(name, name_len))
            continue;
        if (n == S3_CHECKSUM_FIELDS_MAX) {
            s3_error(req, 400, "InvalidRequest", "Too many checksum headers.", s->resource);
            return -1;
        }
        fields[n++] = (s3_checksum_field_t){name, name_len, value, value_len};
    }
    if ((ret = s3_checksum_verify(fields, n, s->body.base, s->body.len, &v)) == 0)
        return 0;
    if (ret < 0)
        s3_error_cio(req, ret, "checksum");
    else
        s3_error(req, v.status, v.code, v.msg, s->resource);
    return -1;
}
