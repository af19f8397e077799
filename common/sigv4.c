/* sigv4.c - AWS Signature Version 4 verification for S3: canonical request, string to sign, signing key, chunk chain. */

/* SHA-256 through OpenSSL's SHA256_* calls, which OpenSSL 3 marks deprecated
 * in favour of EVP. They hash with the same code as EVP (SHA-NI or AVX2), on
 * a context on the stack; in OpenSSL 3.0 every EVP_DigestInit frees and
 * allocates a provider context and takes locks, which cost a signature check
 * more than its hashing, and an EVP context cannot be copied without another
 * allocation (the HMAC pads of a cached signing key are such a copy). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "common/buf.h"
#include "common/hex.h"
#include "common/percent.h"
#include "common/sigv4.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const struct {
    const char *text;
    sigv4_payload_t kind;
} payload_names[] = {
    {"UNSIGNED-PAYLOAD", SIGV4_PAYLOAD_UNSIGNED},
    {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", SIGV4_PAYLOAD_STREAMING},
    {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", SIGV4_PAYLOAD_STREAMING_TRAILER},
    {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", SIGV4_PAYLOAD_UNSIGNED_TRAILER},
};

static int fail(sigv4_error_t *e, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(sigv4_error_t *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    /* messages echo client input: keep them one line of printable text */
    for (char *p = e->msg; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return CIO_EINVAL;
}

/* Every byte is looked at whatever differs: the differences are OR-ed, with
 * no branch on the data (CRYPTO_memcmp does the same a byte at a time, out of
 * line, which showed in profiles of every signed request), a word at a time. */
int sigv4_equal(const char *a, const char *b, size_t n)
{
    uint64_t d = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) { /* a word at a time: a byte at a time showed in callgrind */
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    for (; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* Whether the eight bytes x and y are equal but for the case of ASCII
 * letters: where they differ, only in the case bit (0x20) of a letter. */
static inline int word_eq_nocase(uint64_t x, uint64_t y)
{
    const uint64_t ones = 0x0101010101010101ULL, top = 0x8080808080808080ULL;
    uint64_t d = x ^ y, lx = (x | 0x20 * ones) & ~top, letter;

    if ((d & ~(0x20 * ones)) != 0)
        return 0;
    /* lx is in 'a'..'z' (and x below 0x80): top bit of each such byte */
    letter = (lx + (0x80 - 'a') * ones) & ~(lx + (0x80 - 'z' - 1) * ones) & ~x & top;
    return (d & ~(letter >> 2)) == 0;
}

/* Whether a[0..n) and b[0..n) are equal but for the case of ASCII letters
 * (strncasecmp for names without a NUL, inline: header names mostly differ
 * at their first byte, and a call per header showed in profiles). Eight
 * bytes at a time: a byte at a time, names cost a request more than any
 * other part of its parse (callgrind). */
static inline int name_eq(const char *a, const char *b, size_t n)
{
    size_t i = 0;

    if (n >= 8) { /* whole words, the last one overlapping the one before */
        for (;; i += 8) {
            uint64_t x, y;
            if (i + 8 > n)
                i = n - 8;
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y && !word_eq_nocase(x, y))
                return 0;
            if (i + 8 == n)
                return 1;
        }
    }
    for (; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 25))
            return 0;
    }
    return 1;
}

static const sigv4_header_t *header_find(const sigv4_request_t *r, const char *name, size_t len, size_t from)
{
    for (size_t i = from; i < r->nheaders; i++)
        if (r->headers[i].name_len == len && name_eq(r->headers[i].name, name, len))
            return &r->headers[i];
    return NULL;
}

/* The next "name=value" of a query after *pos; 0 at the end. */
static int query_next(const char *q, size_t qlen, size_t *pos, const char **name, size_t *nlen, const char **val, size_t *vlen)
{
    while (*pos < qlen && q[*pos] == '&')
        (*pos)++;
    if (*pos >= qlen)
        return 0;
    size_t start = *pos, end = start;
    while (end < qlen && q[end] != '&')
        end++;
    const char *eq = memchr(q + start, '=', end - start);
    *name = q + start;
    if (eq != NULL) {
        *nlen = (size_t)(eq - (q + start));
        *val = eq + 1;
        *vlen = (size_t)(q + end - (eq + 1));
    } else {
        *nlen = end - start;
        *val = q + end;
        *vlen = 0;
    }
    *pos = end;
    return 1;
}

/* The decoded value of query parameter `name` (exact, case-sensitive as S3)
 * into out; 0, CIO_ENOTFOUND, or CIO_EINVAL (bad escape, too long, a NUL). */
static int query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap, size_t *outlen)
{
    const char *n, *v;
    size_t nl, vl, pos = 0;
    int nul = 0;

    while (q != NULL && query_next(q, qlen, &pos, &n, &nl, &v, &vl)) {
        if (!percent_decoded_equals(n, nl, name, strlen(name), 0))
            continue;
        if (percent_decode(v, vl, out, cap - 1, outlen, 0, &nul) != 0 || nul)
            return CIO_EINVAL;
        out[*outlen] = '\0';
        return 0;
    }
    return CIO_ENOTFOUND;
}

int sigv4_is_signed(const char *authorization, size_t auth_len, const char *query, size_t query_len)
{
    static const char *const names[] = {"X-Amz-Algorithm", "X-Amz-Signature", "X-Amz-Credential"};
    const char *n, *v;
    size_t nl, vl, pos = 0;
    int v2_key = 0, v2_sig = 0;

    if (authorization != NULL && auth_len > sizeof(SIGV4_ALGORITHM) && memcmp(authorization, SIGV4_ALGORITHM " ", 17) == 0)
        return SIGV4_SIGNED;
    if (authorization != NULL && auth_len > 4 && memcmp(authorization, "AWS ", 4) == 0)
        return SIGV4_SIGNED_V2;
    while (query != NULL && query_next(query, query_len, &pos, &n, &nl, &v, &vl)) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (nl == strlen(names[i]) && memcmp(n, names[i], nl) == 0)
                return SIGV4_SIGNED;
        v2_key |= nl == 14 && memcmp(n, "AWSAccessKeyId", 14) == 0;
        v2_sig |= nl == 9 && memcmp(n, "Signature", 9) == 0;
    }
    return v2_key && v2_sig ? SIGV4_SIGNED_V2 : 0;
}

/* Days from 1970-01-01 to year y, month m (1..12), day d of the proleptic
 * Gregorian calendar (H. Hinnant's days_from_civil). Linear in d, so a day
 * past the month's end counts on into the next month, as timegm() has it;
 * timegm() itself normalises a struct tm on every call, which showed in
 * profiles of every signed request. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The value of the `n` decimal digits at s; -1 when one is no digit. */
static inline int digits(const char *s, int n)
{
    int v = 0;
    unsigned bad = 0;

    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        bad |= (unsigned)(d > 9);
        v = v * 10 + (int)d;
    }
    return bad ? -1 : v;
}

/* "20130524T000000Z" -> seconds; -1 when malformed. */
static int64_t parse_amz_date(const char *s, size_t len)
{
    if (len != 16 || s[8] != 'T' || s[15] != 'Z')
        return -1;
    int y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2), h = digits(s + 9, 2), mi = digits(s + 11, 2),
        sec = digits(s + 13, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return -1;
    return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
}

/* Splits "AK/20130524/us-east-1/s3/aws4_request" and checks its scope against
 * the date and region. `what` prefixes messages; `code` is the error code of
 * a malformed credential. */
static int parse_credential(const char *cred, size_t len, const char *region, sigv4_auth_t *a, const char *code, const char *what,
                            sigv4_error_t *e)
{
    const char *part[5];
    size_t plen[5], n = 0, start = 0, rl = strlen(region);

    /* The common case first: "<key>/" and the scope expected, compared whole (splitting at each '/' with
     * memchr showed in callgrind). It accepts exactly what the split below accepts: a key of 1 to
     * SIGV4_ACCESS_KEY_MAX bytes without '/', then this date, region, service and terminator. Anything
     * else goes through the split, for its error. */
    if (rl < sizeof(a->scope) - 26 && memchr(region, '/', rl) == NULL) {
        size_t sl = 9 + rl + 16, kl = len - sl - 1;
        memcpy(a->scope, a->amz_date, 8);
        a->scope[8] = '/';
        memcpy(a->scope + 9, region, rl);
        memcpy(a->scope + 9 + rl, "/s3/aws4_request", 17);
        a->scope_len = sl;
        if (len > sl + 1 && kl <= SIGV4_ACCESS_KEY_MAX && cred[kl] == '/' && memcmp(cred + kl + 1, a->scope, sl) == 0 &&
            memchr(cred, '/', kl) == NULL) {
            memcpy(a->access_key, cred, kl);
            a->access_key[kl] = '\0';
            return 0;
        }
    }
    for (;;) {
        const char *slash = memchr(cred + start, '/', len - start);
        size_t stop = slash != NULL ? (size_t)(slash - cred) : len;
        if (n == 5)
            return fail(e, 400, code, "%s: the Credential must be access-key/date/region/s3/aws4_request", what);
        part[n] = cred + start;
        plen[n++] = stop - start;
        if (slash == NULL)
            break;
        start = stop + 1;
    }
    if (n != 5 || plen[0] == 0 || plen[1] != 8)
        return fail(e, 400, code, "%s: the Credential must be access-key/date/region/s3/aws4_request", what);
    if (plen[0] > SIGV4_ACCESS_KEY_MAX)
        return fail(e, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
    if (plen[4] != 12 || memcmp(part[4], "aws4_request", 12) != 0)
        return fail(e, 400, code, "%s: the Credential's terminator must be aws4_request", what);
    if (plen[3] != 2 || memcmp(part[3], "s3", 2) != 0)
        return fail(e, 400, code, "%s: the Credential's service must be s3", what);
    if (plen[2] != rl || memcmp(part[2], region, plen[2]) != 0)
        return fail(e, 400, code, "%s: the region '%.*s' is wrong; expecting '%s'", what, (int)(plen[2] > 64 ? 64 : plen[2]),
                    part[2], region);
    if (memcmp(part[1], a->amz_date, 8) != 0)
        return fail(e, 400, code, "%s: the Credential's date is not the date of X-Amz-Date", what);
    memcpy(a->access_key, part[0], plen[0]);
    a->access_key[plen[0]] = '\0';
    /* "20130524/<region>/s3/aws4_request"; a region too long for the scope (a caller's mistake) is cut */
    rl = plen[2] < sizeof(a->scope) - 26 ? plen[2] : sizeof(a->scope) - 26;
    memcpy(a->scope, a->amz_date, 8);
    a->scope[8] = '/';
    memcpy(a->scope + 9, region, rl);
    memcpy(a->scope + 9 + rl, "/s3/aws4_request", 17);
    a->scope_len = 9 + rl + 16;
    return 0;
}

/* Whether `name` (any case) is one of a's signed headers. */
static int signed_has(const sigv4_auth_t *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->nsigned; i++)
        if (a->signed_name[i].len == len && name_eq(a->signed_headers + a->signed_name[i].off, name, len))
            return 1;
    return 0;
}

/* Keeps SignedHeaders in lower case, and where each of its names is. The
 * characters are checked and folded by a loop without a branch, the names
 * then found with memchr. */
static int set_signed_headers(sigv4_auth_t *a, const char *v, size_t len, const char *code, const char *what, sigv4_error_t *e)
{
    size_t names = 0, start = 0;
    unsigned bad = 0;
    char *d = a->signed_headers;

    _Static_assert(sizeof(a->signed_headers) <= UINT16_MAX, "a name's offset fits signed_name's");
    if (len == 0 || len >= sizeof(a->signed_headers))
        return fail(e, 400, code, "%s: SignedHeaders is empty or too long", what);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) { /* eight bytes at a time: each byte's top bit says */
        uint64_t x, low, ctl, colon, up;
        memcpy(&x, v + i, 8);
        low = x & 0x7f7f7f7f7f7f7f7fULL;
        ctl = ~(low + 0x5f5f5f5f5f5f5f5fULL);                                                                /* below 0x21 */
        colon = ~((low ^ 0x3a3a3a3a3a3a3a3aULL) + 0x7f7f7f7f7f7f7f7fULL);                                    /* ':' */
        bad |= (unsigned)(((x | ctl | colon | (low + 0x0101010101010101ULL)) & 0x8080808080808080ULL) != 0); /* 0x7f up */
        up = (low + 0x3f3f3f3f3f3f3f3fULL) & ~(low + 0x2525252525252525ULL) & 0x8080808080808080ULL;         /* 'A'..'Z' */
        x |= up >> 2;
        memcpy(d + i, &x, 8);
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        bad |= (unsigned)(c <= 0x20) | (unsigned)(c >= 0x7f) | (unsigned)(c == ':');
        d[i] = (char)(c | ((unsigned char)(c - 'A') < 26 ? 0x20 : 0)); /* as the canonical request has them */
    }
    if (bad)
        return fail(e, 400, code, "%s: SignedHeaders holds a character no header name has", what);
    d[len] = '\0';
    for (;;) {
        const char *semi = memchr(d + start, ';', len - start);
        size_t stop = semi != NULL ? (size_t)(semi - d) : len;
        if (names == SIGV4_SIGNED_HEADERS_MAX)
            return fail(e, 400, code, "%s: more than %d SignedHeaders", what, SIGV4_SIGNED_HEADERS_MAX);
        a->signed_name[names].off = (uint16_t)start;
        a->signed_name[names++].len = (uint16_t)(stop - start);
        if (semi == NULL)
            break;
        start = stop + 1;
    }
    a->signed_headers_len = len;
    a->nsigned = names;
    if (!signed_has(a, "host", 4))
        return fail(e, 400, code, "%s: the host header must be signed", what);
    return 0;
}

/* Each byte's hex digit in lower case; 0 for a byte that is none. Looked up
 * without a branch: the digits of a signature are random, and a branch per
 * digit is mispredicted half the time. */
static const char hex_lc[256] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6', ['7'] = '7',
    ['8'] = '8', ['9'] = '9', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f',
    ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f',
};

/* Per byte of x (each below 0x80), its top bit set where the byte is k or more (1 <= k <= 0x80). */
#define BYTES_GE(x, k) ((x) + (0x80 - (k)) * 0x0101010101010101ULL)

/* Eight bytes at a time, with no branch on the digits: a byte at a time, the
 * two 64-digit checks of every signed request (the Signature,
 * x-amz-content-sha256) showed in callgrind. */
int sigv4_is_signature(const char *s, size_t len)
{
    const uint64_t top = 0x8080808080808080ULL;
    uint64_t bad = 0;

    if (len != SIGV4_SIG_HEX)
        return 0;
    for (size_t i = 0; i < SIGV4_SIG_HEX; i += 8) {
        uint64_t x, low, digit, letter;
        memcpy(&x, s + i, 8);
        low = x & ~top;
        digit = BYTES_GE(low, '0') & ~BYTES_GE(low, '9' + 1);
        letter = BYTES_GE(low, 'a') & ~BYTES_GE(low, 'f' + 1);
        bad |= (x & top) | (~(digit | letter) & top); /* a byte of 0x80 up, or neither a digit nor a-f */
    }
    return bad == 0;
}

static int set_payload(sigv4_auth_t *a, const sigv4_header_t *h, sigv4_error_t *e)
{
    if (h->value_len >= sizeof(a->content_sha256))
        goto bad;
    memcpy(a->content_sha256, h->value, h->value_len);
    a->content_sha256[h->value_len] = '\0';
    a->content_sha256_len = h->value_len;
    /* a digest first, the common case (no payload name is 64 bytes long: one
     * is only found here by a NUL inside the value, as strcmp sees it) */
    if (sigv4_is_signature(h->value, h->value_len)) { /* as SDKs send it: copied, no digit looked up */
        memcpy(a->payload_hash, h->value, SIGV4_SIG_HEX);
        a->payload_hash[SIGV4_SIG_HEX] = '\0';
        a->payload = SIGV4_PAYLOAD_SHA256;
        return 0;
    }
    if (h->value_len == SIGV4_SIG_HEX) { /* upper-case digits too */
        unsigned ok = 1;
        for (size_t i = 0; i < SIGV4_SIG_HEX; i++) {
            char d = hex_lc[(unsigned char)h->value[i]];
            ok &= (unsigned)(d != 0);
            a->payload_hash[i] = d;
        }
        if (ok) {
            a->payload_hash[SIGV4_SIG_HEX] = '\0';
            a->payload = SIGV4_PAYLOAD_SHA256;
            return 0;
        }
        memset(a->payload_hash, 0, sizeof(a->payload_hash));
    }
    for (size_t i = 0; i < sizeof(payload_names) / sizeof(payload_names[0]); i++)
        if (strcmp(a->content_sha256, payload_names[i].text) == 0) {
            a->payload = payload_names[i].kind;
            return 0;
        }
bad:
    return fail(e, 400, "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), "
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a SHA-256 in hex");
}

/* The headers sigv4_parse looks at, found in one pass (the first of each name). */
typedef struct {
    const sigv4_header_t *authorization, *amz_date, *content_sha256;
} auth_headers_t;

static int parse_header_auth(const sigv4_request_t *r, const auth_headers_t *hs, int64_t now, const char *region, sigv4_auth_t *a,
                             sigv4_error_t *e)
{
    const sigv4_header_t *auth = hs->authorization;
    static const char code[] = "AuthorizationHeaderMalformed";
    static const char what[] = "The authorization header is malformed";
    const char *p = auth->value + 17, *end = auth->value + auth->value_len;
    const char *cred = NULL, *sh = NULL, *sig = NULL;
    size_t cred_len = 0, sh_len = 0, sig_len = 0;
    const sigv4_header_t *h;
    int rc;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        size_t rest = (size_t)(end - p), n;
        const char *c = p, *comma = memchr(p, ',', rest);
        n = comma != NULL ? (size_t)(comma - p) : rest;
        p += n;
        while (n > 0 && c[n - 1] == ' ')
            n--;
        const char *ce = c + n, *eq = memchr(c, '=', n);
        if (n == 0)
            continue;
        if (eq == NULL)
            return fail(e, 400, code, "%s; '%.*s' is not name=value", what, (int)((ce - c) > 40 ? 40 : ce - c), c);
        size_t nl = (size_t)(eq - c), vl = (size_t)(ce - eq - 1);
        if (nl == 10 && memcmp(c, "Credential", 10) == 0)
            cred = eq + 1, cred_len = vl;
        else if (nl == 13 && memcmp(c, "SignedHeaders", 13) == 0)
            sh = eq + 1, sh_len = vl;
        else if (nl == 9 && memcmp(c, "Signature", 9) == 0)
            sig = eq + 1, sig_len = vl;
        else
            return fail(e, 400, code, "%s; unknown component '%.*s'", what, (int)(nl > 40 ? 40 : nl), c);
    }
    if (cred == NULL || sh == NULL || sig == NULL)
        return fail(e, 400, code, "%s; it needs Credential, SignedHeaders and Signature", what);
    if (!sigv4_is_signature(sig, sig_len))
        return fail(e, 400, code, "%s; the Signature must be 64 lower-case hex digits", what);
    memcpy(a->signature, sig, SIGV4_SIG_HEX);
    a->signature[SIGV4_SIG_HEX] = '\0';
    if ((h = hs->amz_date) == NULL || (a->date = parse_amz_date(h->value, h->value_len)) < 0)
        return fail(e, 403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
    memcpy(a->amz_date, h->value, 16);
    a->amz_date[16] = '\0';
    if ((rc = parse_credential(cred, cred_len, region, a, code, what, e)) != 0)
        return rc;
    if ((rc = set_signed_headers(a, sh, sh_len, code, what, e)) != 0)
        return rc;
    for (size_t i = 0; i < r->nheaders; i++) {
        const sigv4_header_t *x = &r->headers[i];
        if (x->name_len > 6 && name_eq(x->name, "x-amz-", 6) && !signed_has(a, x->name, x->name_len))
            return fail(e, 403, "AccessDenied", "There were headers present in the request which were not signed: %.*s",
                        (int)(x->name_len > 64 ? 64 : x->name_len), x->name);
    }
    if (now - a->date > SIGV4_SKEW_MAX_S || a->date - now > SIGV4_SKEW_MAX_S)
        return fail(e, 403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.");
    if ((h = hs->content_sha256) == NULL)
        return fail(e, 400, "MissingSecurityHeader", "Your request is missing a required header: x-amz-content-sha256");
    return set_payload(a, h, e);
}

static int parse_query_auth(const sigv4_request_t *r, const auth_headers_t *hs, int64_t now, const char *region, sigv4_auth_t *a,
                            sigv4_error_t *e)
{
    static const char code[] = "AuthorizationQueryParametersError";
    char v[1024];
    size_t vl;
    const sigv4_header_t *h;
    int rc;

    a->presigned = 1;
    if (query_get(r->query, r->query_len, "X-Amz-Algorithm", v, sizeof(v), &vl) != 0 || strcmp(v, SIGV4_ALGORITHM) != 0)
        return fail(e, 400, code, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    if (query_get(r->query, r->query_len, "X-Amz-Date", v, sizeof(v), &vl) != 0 || (a->date = parse_amz_date(v, vl)) < 0)
        return fail(e, 400, code, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    memcpy(a->amz_date, v, 16);
    a->amz_date[16] = '\0';
    if (query_get(r->query, r->query_len, "X-Amz-Expires", v, sizeof(v), &vl) != 0 || vl == 0 || vl > 7 ||
        strspn(v, "0123456789") != vl)
        return fail(e, 400, code, "X-Amz-Expires should be a number");
    a->expires = strtoll(v, NULL, 10);
    if (a->expires < 1 || a->expires > SIGV4_EXPIRES_MAX_S)
        return fail(e, 400, code, "X-Amz-Expires must be from 1 to 604800 seconds (a week)");
    if (query_get(r->query, r->query_len, "X-Amz-Credential", v, sizeof(v), &vl) != 0)
        return fail(e, 400, code, "X-Amz-Credential is missing or malformed");
    if ((rc = parse_credential(v, vl, region, a, code, "Error parsing the X-Amz-Credential parameter", e)) != 0)
        return rc;
    if (query_get(r->query, r->query_len, "X-Amz-SignedHeaders", v, sizeof(v), &vl) != 0)
        return fail(e, 400, code, "X-Amz-SignedHeaders is missing or malformed");
    if ((rc = set_signed_headers(a, v, vl, code, "X-Amz-SignedHeaders", e)) != 0)
        return rc;
    if (query_get(r->query, r->query_len, "X-Amz-Signature", v, sizeof(v), &vl) != 0 || !sigv4_is_signature(v, vl))
        return fail(e, 400, code, "X-Amz-Signature must be 64 lower-case hex digits");
    memcpy(a->signature, v, SIGV4_SIG_HEX + 1);
    if (a->date - now > SIGV4_SKEW_MAX_S)
        return fail(e, 403, "AccessDenied", "Request is not valid yet");
    if (now > a->date + a->expires)
        return fail(e, 403, "AccessDenied", "Request has expired");
    if ((h = hs->content_sha256) != NULL)
        return set_payload(a, h, e);
    strcpy(a->content_sha256, "UNSIGNED-PAYLOAD");
    a->content_sha256_len = strlen(a->content_sha256);
    a->payload = SIGV4_PAYLOAD_UNSIGNED;
    return 0;
}

int sigv4_parse(const sigv4_request_t *r, int64_t now, const char *region, sigv4_auth_t *a, sigv4_error_t *e)
{
#define H_AUTHORIZATION "authorization"
#define H_AMZ_DATE "x-amz-date"
#define H_CONTENT_SHA256 "x-amz-content-sha256"
    static const char *const wanted[3] = {H_AUTHORIZATION, H_AMZ_DATE, H_CONTENT_SHA256};
    const sigv4_header_t *found[3] = {NULL, NULL, NULL};
    auth_headers_t hs;

    /* the numbers and the key cleared, the strings emptied: they are set as they are parsed (clearing all of
     * them, about 2 KB, showed in profiles of every request) */
    memset(a, 0, offsetof(sigv4_auth_t, access_key));
    a->access_key[0] = a->amz_date[0] = a->scope[0] = a->signature[0] = '\0';
    a->payload_hash[0] = a->content_sha256[0] = a->signed_headers[0] = '\0';
    memset(a->key, 0, sizeof(a->key));
    for (size_t i = 0; i < r->nheaders; i++) {
        const sigv4_header_t *h = &r->headers[i];
        size_t k;
        switch (h->name_len) { /* the three names differ in length: a header's names the one it can be */
        case sizeof(H_AUTHORIZATION) - 1:
            k = 0;
            break;
        case sizeof(H_AMZ_DATE) - 1:
            k = 1;
            break;
        case sizeof(H_CONTENT_SHA256) - 1:
            k = 2;
            break;
        default:
            continue;
        }
        if (found[k] == NULL && name_eq(h->name, wanted[k], h->name_len))
            found[k] = h;
    }
#undef H_AUTHORIZATION
#undef H_AMZ_DATE
#undef H_CONTENT_SHA256
    hs.authorization = found[0];
    hs.amz_date = found[1];
    hs.content_sha256 = found[2];
    if (hs.authorization != NULL && hs.authorization->value_len >= 17 &&
        memcmp(hs.authorization->value, SIGV4_ALGORITHM " ", 17) == 0)
        return parse_header_auth(r, &hs, now, region, a, e);
    if (hs.authorization != NULL)
        return fail(e, 400, "InvalidArgument",
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
                    "AWS4-HMAC-SHA256 Authorization header");
    return parse_query_auth(r, &hs, now, region, a, e);
}

void sigv4_error_unknown_key(sigv4_error_t *e)
{
    (void)fail(e, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
}

/* ---- the canonical request ---- */

typedef struct {
    const char *name, *value; /* encoded, in the scratch buffer */
    size_t nlen, vlen;
} param_t;

static int param_cmp(const void *x, const void *y)
{
    const param_t *a = x, *b = y;
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, n);
    if (c != 0 || a->nlen != b->nlen)
        return c != 0 ? c : (a->nlen < b->nlen ? -1 : 1);
    n = a->vlen < b->vlen ? a->vlen : b->vlen;
    c = memcmp(a->value, b->value, n);
    return c != 0 ? c : (a->vlen < b->vlen ? -1 : a->vlen > b->vlen);
}

/* Appends p[0..n) decoded then encoded as RFC 3986 (what S3 signs). */
static int reencode(buf_t *b, const char *p, size_t n)
{
    char tmp[1024];
    char *d = n <= sizeof(tmp) ? tmp : malloc(n);
    size_t dl;
    int rc;

    if (d == NULL)
        return CIO_ENOMEM;
    if (percent_decode(p, n, d, n, &dl, 0, NULL) != 0)
        rc = buf_append(b, p, n); /* not valid encoding: signed as sent, like S3 */
    else
        rc = percent_append(b, d, dl, 0);
    if (d != tmp)
        free(d);
    return rc;
}

/* The canonical request goes straight into its SHA-256 through a small
 * buffer (it is only ever hashed): no allocation, no copy of the whole. */
typedef struct {
    SHA256_CTX md; /* initialised */
    size_t total;  /* bytes hashed so far */
    int err;       /* CIO_ETOOBIG past SIGV4_CANONICAL_MAX; sticky */
    size_t len;
    char buf[1024];
} canon_t;

static void canon_flush(canon_t *c)
{
    if (c->err == 0 && c->len > 0) {
        c->total += c->len;
        if (c->total > SIGV4_CANONICAL_MAX)
            c->err = CIO_ETOOBIG;
        else
            SHA256_Update(&c->md, c->buf, c->len);
    }
    c->len = 0;
}

static void canon_put(canon_t *c, const void *p, size_t n)
{
    if (c->len + n > sizeof(c->buf))
        canon_flush(c);
    if (n > sizeof(c->buf)) {
        c->total += n;
        if (c->err == 0 && c->total > SIGV4_CANONICAL_MAX)
            c->err = CIO_ETOOBIG;
        else if (c->err == 0)
            SHA256_Update(&c->md, p, n);
        return;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

static inline void canon_byte(canon_t *c, char ch)
{
    if (c->len == sizeof(c->buf))
        canon_flush(c);
    c->buf[c->len++] = ch;
}

/* Room for n more bytes (at most sizeof(c->buf)), flushing first when needed: where they go. */
static inline char *canon_room(canon_t *c, size_t n)
{
    if (c->len + n > sizeof(c->buf))
        canon_flush(c);
    return c->buf + c->len;
}

static int canonical_query(canon_t *out, const sigv4_request_t *r, int presigned)
{
    param_t *ps = NULL;
    size_t n = 0, pos = 0, nl, vl;
    const char *nm, *v;
    size_t *offs = NULL;
    buf_t scratch;
    int rc = 0;

    if (r->query == NULL || r->query_len == 0)
        return 0;
    buf_init(&scratch, SIGV4_CANONICAL_MAX);
    if ((ps = calloc(SIGV4_QUERY_PARAMS_MAX, sizeof(*ps))) == NULL ||
        (offs = calloc(SIGV4_QUERY_PARAMS_MAX, 4 * sizeof(*offs))) == NULL) {
        rc = CIO_ENOMEM;
        goto done;
    }
    while (query_next(r->query, r->query_len, &pos, &nm, &nl, &v, &vl)) {
        if (presigned && nl == 15 && memcmp(nm, "X-Amz-Signature", 15) == 0)
            continue;
        if (n == SIGV4_QUERY_PARAMS_MAX) {
            rc = CIO_ETOOBIG;
            goto done;
        }
        offs[4 * n] = scratch.len;
        reencode(&scratch, nm, nl);
        offs[4 * n + 1] = scratch.len;
        reencode(&scratch, v, vl);
        offs[4 * n + 2] = scratch.len;
        n++;
    }
    if ((rc = scratch.err) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        ps[i].name = scratch.data + offs[4 * i];
        ps[i].nlen = offs[4 * i + 1] - offs[4 * i];
        ps[i].value = scratch.data + offs[4 * i + 1];
        ps[i].vlen = offs[4 * i + 2] - offs[4 * i + 1];
    }
    qsort(ps, n, sizeof(*ps), param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            canon_byte(out, '&');
        canon_put(out, ps[i].name, ps[i].nlen);
        canon_byte(out, '=');
        canon_put(out, ps[i].value, ps[i].vlen);
    }
done:
    free(ps);
    free(offs);
    buf_free(&scratch);
    return rc;
}

/* A header value as SigV4 signs it: trimmed, inner runs of spaces as one. */
static void append_trimmed(canon_t *b, const char *v, size_t n)
{
    size_t i = 0, end = n;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    if (memchr(v + i, ' ', end - i) == NULL && memchr(v + i, '\t', end - i) == NULL) {
        canon_put(b, v + i, end - i); /* nothing inside to collapse, as most values (a digest, a date, a host) */
        return;
    }
    while (i < end) { /* a buffer's room at a time: no bounds check per byte */
        size_t stop = end - i < sizeof(b->buf) ? end : i + sizeof(b->buf), o = 0;
        char *d = canon_room(b, stop - i);
        for (; i < stop; i++) {
            /* v[end - 1] is no space: v[i + 1] is only read inside v */
            if ((v[i] == ' ' || v[i] == '\t') && (v[i + 1] == ' ' || v[i + 1] == '\t'))
                continue;
            d[o++] = v[i] == '\t' ? ' ' : v[i];
        }
        b->len += o;
    }
}

static int canonical_request(canon_t *b, const sigv4_request_t *r, const sigv4_auth_t *a)
{
    int rc;

    canon_put(b, r->method, r->method_len);
    canon_byte(b, '\n');
    canon_put(b, r->path, r->path_len);
    canon_byte(b, '\n');
    if ((rc = canonical_query(b, r, a->presigned)) != 0)
        return rc;
    canon_byte(b, '\n');
    for (size_t i = 0; i < a->nsigned; i++) {
        const char *p = a->signed_headers + a->signed_name[i].off;
        size_t n = a->signed_name[i].len;
        canon_put(b, p, n); /* in lower case since set_signed_headers */
        canon_byte(b, ':');
        int first = 1;
        for (const sigv4_header_t *h = header_find(r, p, n, 0); h != NULL; h = header_find(r, p, n, (size_t)(h - r->headers) + 1)) {
            if (!first)
                canon_byte(b, ',');
            append_trimmed(b, h->value, h->value_len);
            first = 0;
        }
        canon_byte(b, '\n');
    }
    canon_byte(b, '\n');
    canon_put(b, a->signed_headers, a->signed_headers_len);
    canon_byte(b, '\n');
    canon_put(b, a->content_sha256, a->content_sha256_len);
    return 0;
}

/* ---- SHA-256 and HMAC ---- */

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

static void sha256_hex(const void *p, size_t n, char out[SIGV4_SIG_HEX + 1])
{
    uint8_t md[32];

    if (n == 0) {
        memcpy(out, EMPTY_SHA256, SIGV4_SIG_HEX + 1);
        return;
    }
    sha256(p, n, md);
    hex_encode(out, md, 32);
    out[SIGV4_SIG_HEX] = '\0';
}

/* An HMAC-SHA256 key (RFC 2104) with its two padded blocks already hashed:
 * a MAC with it hashes the message and one block, not four blocks more. */
typedef struct {
    SHA256_CTX inner, outer;
} hmac_key_t;

_Static_assert(sizeof(hmac_key_t) <= sizeof(((sigv4_keycache_entry_t *)0)->hmac), "a cache slot holds a key's HMAC pads");

static void hmac_key(hmac_key_t *h, const uint8_t *key, size_t klen)
{
    uint8_t pad[64], k[32];

    if (klen > sizeof(pad)) {
        sha256(key, klen, k);
        key = k;
        klen = 32;
    }
    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, sizeof(pad));
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, sizeof(pad));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(k, sizeof(k));
}

/* HMAC of msg with the pads of an hmac_key_t at `pads` (a key, or the copy
 * a cache slot keeps; left as they were); out may alias msg. */
static void hmac_final(const void *pads, const void *msg, size_t n, uint8_t out[32])
{
    SHA256_CTX c;
    uint8_t inner[32];

    memcpy(&c, (const char *)pads + offsetof(hmac_key_t, inner), sizeof(c));
    SHA256_Update(&c, msg, n);
    SHA256_Final(inner, &c);
    memcpy(&c, (const char *)pads + offsetof(hmac_key_t, outer), sizeof(c));
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c); /* c is left with the MAC and a wiped block: no key material */
    OPENSSL_cleanse(inner, sizeof(inner));
}

/* HMAC-SHA256 (RFC 2104); out may be key. */
static void hmac(const uint8_t *key, size_t klen, const void *msg, size_t n, uint8_t out[32])
{
    hmac_key_t h;

    hmac_key(&h, key, klen);
    hmac_final(&h, msg, n, out);
    OPENSSL_cleanse(&h, sizeof(h));
}

/* The signing key of scope (date, region) for `secret`: four HMACs. Returns 0 or -1 (out of memory). */
static int derive_key(const char *date, const char *region, size_t region_len, const char *secret, size_t secret_len,
                      uint8_t key[32])
{
    uint8_t k[32];
    char *ks = malloc(secret_len + 4);

    if (ks == NULL)
        return -1;
    memcpy(ks, "AWS4", 4);
    memcpy(ks + 4, secret, secret_len);
    hmac((const uint8_t *)ks, secret_len + 4, date, 8, k);
    OPENSSL_cleanse(ks, secret_len + 4);
    free(ks);
    hmac(k, 32, region, region_len, k);
    hmac(k, 32, "s3", 2, k);
    hmac(k, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k, sizeof(k));
    return 0;
}

/* a->key for a's scope, and in *pads where its HMAC pads are: the cache's
 * slot when it holds (access key, date, region, secret) or now keeps them
 * (replacing the oldest entry; nothing is copied out of a slot, and nothing
 * is left in *h), else *h (no cache: the caller wipes it). Returns 0 or -1
 * (out of memory: nothing cached). */
static int signing_key(sigv4_auth_t *a, const char *secret, size_t secret_len, sigv4_keycache_t *cache, hmac_key_t *h,
                       const void **pads)
{
    const char *region = a->scope + 9; /* "20130524/<region>/s3/aws4_request" */
    size_t rlen = a->scope_len - 9 - 16, aklen = strlen(a->access_key);
    sigv4_keycache_entry_t *slot;

    if (cache == NULL || secret_len > SIGV4_KEYCACHE_SECRET_MAX) {
        if (derive_key(a->amz_date, region, rlen, secret, secret_len, a->key) != 0)
            return -1;
        hmac_key(h, a->key, sizeof(a->key));
        *pads = h;
        return 0;
    }
    for (size_t i = 0; i < SIGV4_KEYCACHE_SLOTS; i++) {
        sigv4_keycache_entry_t *x = &cache->slot[i];
        /* the secret is compared in constant time (its length is not a secret worth hiding from itself) */
        if (x->used && memcmp(x->date, a->amz_date, 8) == 0 && x->region_len == rlen && memcmp(x->region, region, rlen) == 0 &&
            strcmp(x->access_key, a->access_key) == 0 && x->secret_len == secret_len &&
            sigv4_equal(x->secret, secret, secret_len)) {
            memcpy(a->key, x->key, sizeof(a->key));
            *pads = x->hmac;
            cache->hits++;
            return 0;
        }
    }
    if (derive_key(a->amz_date, region, rlen, secret, secret_len, a->key) != 0)
        return -1;
    hmac_key(h, a->key, sizeof(a->key));
    cache->misses++;
    slot = &cache->slot[cache->next];
    cache->next = (cache->next + 1) % SIGV4_KEYCACHE_SLOTS;
    OPENSSL_cleanse(slot, sizeof(*slot));
    memcpy(slot->access_key, a->access_key, aklen + 1);
    memcpy(slot->date, a->amz_date, 8);
    memcpy(slot->region, region, rlen);
    slot->region_len = rlen;
    memcpy(slot->secret, secret, secret_len);
    slot->secret_len = secret_len;
    memcpy(slot->key, a->key, sizeof(slot->key));
    memcpy(slot->hmac, h, sizeof(*h));
    OPENSSL_cleanse(h, sizeof(*h));
    slot->used = 1;
    *pads = slot->hmac;
    return 0;
}

void sigv4_keycache_wipe(sigv4_keycache_t *cache)
{
    OPENSSL_cleanse(cache, sizeof(*cache));
}

static void sign(const uint8_t key[32], const char *sts, size_t n, char out[SIGV4_SIG_HEX + 1])
{
    uint8_t md[32];

    hmac(key, 32, sts, n, md);
    hex_encode(out, md, 32);
    out[SIGV4_SIG_HEX] = '\0';
}

int sigv4_verify(const sigv4_request_t *r, sigv4_auth_t *a, const char *secret, size_t secret_len, sigv4_error_t *e)
{
    return sigv4_verify_cached(r, a, secret, secret_len, NULL, e);
}

int sigv4_verify_cached(const sigv4_request_t *r, sigv4_auth_t *a, const char *secret, size_t secret_len, sigv4_keycache_t *cache,
                        sigv4_error_t *e)
{
    /* the string to sign: the algorithm, X-Amz-Date, the scope and the canonical request's hex digest, a line each */
    char sig[SIGV4_SIG_HEX + 1], sts[sizeof(SIGV4_ALGORITHM) + sizeof(a->amz_date) + sizeof(a->scope) + SIGV4_SIG_HEX + 1], *p;
    uint8_t md[32];
    hmac_key_t h;
    const void *pads;
    canon_t b;
    int rc;

    SHA256_Init(&b.md);
    b.total = b.len = 0;
    b.err = 0;
    rc = canonical_request(&b, r, a);
    canon_flush(&b);
    if (rc == 0)
        rc = b.err;
    if (rc != 0) {
        if (rc == CIO_ENOMEM) {
            e->status = 500;
            e->code = "InternalError";
            snprintf(e->msg, sizeof(e->msg), "out of memory");
            return rc;
        }
        (void)fail(e, 400, "InvalidRequest", "the query has too many parameters to be signed (at most %d)", SIGV4_QUERY_PARAMS_MAX);
        return CIO_ETOOBIG;
    }
    SHA256_Final(md, &b.md);
    memcpy(sts, SIGV4_ALGORITHM "\n", sizeof(SIGV4_ALGORITHM));
    p = sts + sizeof(SIGV4_ALGORITHM);
    memcpy(p, a->amz_date, 16);
    p[16] = '\n';
    p += 17;
    memcpy(p, a->scope, a->scope_len);
    p += a->scope_len;
    *p++ = '\n';
    hex_encode(p, md, 32);
    p += SIGV4_SIG_HEX;
    if (signing_key(a, secret, secret_len, cache, &h, &pads) != 0) {
        OPENSSL_cleanse(a->key, sizeof(a->key));
        e->status = 500;
        e->code = "InternalError";
        snprintf(e->msg, sizeof(e->msg), "out of memory");
        return CIO_ENOMEM;
    }
    hmac_final(pads, sts, (size_t)(p - sts), md);
    if (pads == &h)
        OPENSSL_cleanse(&h, sizeof(h));
    hex_encode(sig, md, 32);
    sig[SIGV4_SIG_HEX] = '\0';
    if (!sigv4_equal(sig, a->signature, SIGV4_SIG_HEX))
        return fail(
            e, 403, "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
    return 0;
}

static int payload_compare(const char *hash, const char *claimed, sigv4_error_t *e)
{
    if (!sigv4_equal(hash, claimed, SIGV4_SIG_HEX))
        return fail(e, 400, "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.");
    return 0;
}

int sigv4_payload_check(const sigv4_auth_t *a, const void *body, size_t len, sigv4_error_t *e)
{
    char hash[SIGV4_SIG_HEX + 1];

    if (a->payload != SIGV4_PAYLOAD_SHA256)
        return 0;
    sha256_hex(body, len, hash);
    return payload_compare(hash, a->payload_hash, e);
}

int sigv4_payload_digest_check(const char *claimed, const uint8_t digest[32], sigv4_error_t *e)
{
    char hash[SIGV4_SIG_HEX + 1];

    hex_encode(hash, digest, 32);
    hash[SIGV4_SIG_HEX] = '\0';
    return payload_compare(hash, claimed, e);
}

void sigv4_chunk_signature(const sigv4_auth_t *a, const char *prev, const void *data, size_t len, char out[SIGV4_SIG_HEX + 1])
{
    char hash[SIGV4_SIG_HEX + 1], sts[512];
    int n;

    sha256_hex(data, len, hash);
    n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%.64s\n" EMPTY_SHA256 "\n%s", a->amz_date, a->scope, prev,
                 hash);
    sign(a->key, sts, (size_t)n, out);
}

void sigv4_trailer_signature(const sigv4_auth_t *a, const char *prev, const void *trailer, size_t len, char out[SIGV4_SIG_HEX + 1])
{
    char hash[SIGV4_SIG_HEX + 1], sts[512];
    int n;

    sha256_hex(trailer, len, hash);
    n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-TRAILER\n%s\n%s\n%.64s\n%s", a->amz_date, a->scope, prev, hash);
    sign(a->key, sts, (size_t)n, out);
}
