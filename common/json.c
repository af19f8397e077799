/* json.c - a small, strict, bounded JSON reader: a flat token array over the caller's text. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/hex.h"
#include "common/json.h"
#include "common/utf8.h"

#define JSON_NUMBER_MAX 127 /* longest number json_double() reads */

typedef struct {
    json_doc_t *d;
    const unsigned char *p, *start, *end;
    char *err;
    size_t errlen;
} parser_t;

static int fail(parser_t *ps, int code, const char *what)
{
    if (ps->err != NULL && ps->errlen > 0)
        snprintf(ps->err, ps->errlen, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
    return code;
}

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int push(parser_t *ps, json_type_t type, size_t *idx)
{
    json_doc_t *d = ps->d;
    if (d->ntoks >= d->max_toks) {
        char what[64];
        snprintf(what, sizeof(what), "more than %zu values", d->max_toks);
        return fail(ps, CIO_ETOOBIG, what);
    }
    if (d->ntoks == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        if (ncap > d->max_toks)
            ncap = d->max_toks;
        json_tok_t *n = realloc(d->toks, ncap * sizeof(*n));
        if (n == NULL)
            return fail(ps, CIO_ENOMEM, "out of memory");
        d->toks = n;
        d->cap = ncap;
    }
    *idx = d->ntoks++;
    json_tok_t *t = &d->toks[*idx];
    t->type = type;
    t->start = (uint32_t)(ps->p - ps->start);
    t->len = 0;
    t->count = 0;
    t->end = (uint32_t)d->ntoks;
    return 0;
}

/* Reads 4 hex digits at p; returns the code unit or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* ps->p is on the opening quote. */
static int parse_string(parser_t *ps)
{
    size_t idx;
    int ret;

    if ((ret = push(ps, JSON_STRING, &idx)) != 0)
        return ret;
    const unsigned char *s = ++ps->p;
    for (;;) {
        if (ps->p >= ps->end)
            return fail(ps, CIO_EPROTO, "unterminated string");
        unsigned char c = *ps->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, CIO_EPROTO, "unescaped control byte in a string");
        if (c >= 0x80) {
            size_t n = utf8_seq_len(ps->p, (size_t)(ps->end - ps->p));
            if (n == 0)
                return fail(ps, CIO_EPROTO, "a string that is not UTF-8");
            ps->p += n;
            continue;
        }
        if (c != '\\') {
            ps->p++;
            continue;
        }
        if (ps->end - ps->p < 2)
            return fail(ps, CIO_EPROTO, "unterminated escape");
        switch (ps->p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            ps->p += 2;
            break;
        case 'u': {
            long u = hex4(ps->p + 2, ps->end);
            if (u < 0)
                return fail(ps, CIO_EPROTO, "bad \\u escape");
            if (u >= 0xDC00 && u <= 0xDFFF && (u < UTF8_BYTE_ESCAPE_MIN || u > UTF8_BYTE_ESCAPE_MAX))
                return fail(ps, CIO_EPROTO, "lone low surrogate that stands for no byte");
            if (u >= 0xD800 && u <= 0xDBFF) {
                const unsigned char *q = ps->p + 6;
                long lo = ps->end - q >= 2 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2, ps->end) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(ps, CIO_EPROTO, "high surrogate without its low half");
                ps->p += 6;
            }
            ps->p += 6;
            break;
        }
        default:
            return fail(ps, CIO_EPROTO, "bad escape");
        }
    }
    json_tok_t *t = &ps->d->toks[idx];
    t->start = (uint32_t)(s - ps->start);
    t->len = (uint32_t)(ps->p - s);
    ps->p++;
    return 0;
}

static int is_digit(const parser_t *ps)
{
    return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static int parse_number(parser_t *ps)
{
    size_t idx;
    int ret;

    if ((ret = push(ps, JSON_NUMBER, &idx)) != 0)
        return ret;
    const unsigned char *s = ps->p;
    if (*ps->p == '-')
        ps->p++;
    if (!is_digit(ps))
        return fail(ps, CIO_EPROTO, "bad number");
    if (*ps->p++ != '0')
        while (is_digit(ps))
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (!is_digit(ps))
            return fail(ps, CIO_EPROTO, "bad number: no digit after the point");
        while (is_digit(ps))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (!is_digit(ps))
            return fail(ps, CIO_EPROTO, "bad number: no digit in the exponent");
        while (is_digit(ps))
            ps->p++;
    }
    ps->d->toks[idx].len = (uint32_t)(ps->p - s);
    return 0;
}

static int parse_literal(parser_t *ps, const char *word, json_type_t type)
{
    size_t n = strlen(word), idx;
    int ret;

    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, CIO_EPROTO, "unexpected byte");
    if ((ret = push(ps, type, &idx)) != 0)
        return ret;
    ps->p += n;
    ps->d->toks[idx].len = (uint32_t)n;
    return 0;
}

static int parse_value(parser_t *ps, unsigned depth);

/* ps->p is on '[' or '{'. */
static int parse_container(parser_t *ps, unsigned depth)
{
    int object = *ps->p == '{';
    unsigned char close = object ? '}' : ']';
    uint32_t count = 0;
    size_t idx;
    int ret;

    if (depth >= ps->d->max_depth) {
        char what[64];
        snprintf(what, sizeof(what), "nested deeper than %u levels", ps->d->max_depth);
        return fail(ps, CIO_ETOOBIG, what);
    }
    if ((ret = push(ps, object ? JSON_OBJECT : JSON_ARRAY, &idx)) != 0)
        return ret;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            if (object) {
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"')
                    return fail(ps, CIO_EPROTO, "expected a member name");
                if ((ret = parse_string(ps)) != 0)
                    return ret;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':')
                    return fail(ps, CIO_EPROTO, "expected ':'");
                ps->p++;
            }
            if ((ret = parse_value(ps, depth + 1)) != 0)
                return ret;
            count++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            return fail(ps, CIO_EPROTO, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    json_tok_t *t = &ps->d->toks[idx];
    t->count = count;
    t->end = (uint32_t)ps->d->ntoks;
    t->len = (uint32_t)(ps->p - ps->start) - t->start;
    return 0;
}

static int parse_value(parser_t *ps, unsigned depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, CIO_EPROTO, "unexpected end of text");
    switch (*ps->p) {
    case '{':
    case '[':
        return parse_container(ps, depth);
    case '"':
        return parse_string(ps);
    case 't':
        return parse_literal(ps, "true", JSON_TRUE);
    case 'f':
        return parse_literal(ps, "false", JSON_FALSE);
    case 'n':
        return parse_literal(ps, "null", JSON_NULL);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps);
        return fail(ps, CIO_EPROTO, "unexpected byte");
    }
}

void json_init(json_doc_t *d, size_t max_toks, unsigned max_depth)
{
    memset(d, 0, sizeof(*d));
    d->max_toks = max_toks > UINT32_MAX ? UINT32_MAX : max_toks;
    d->max_depth = max_depth;
}

void json_free(json_doc_t *d)
{
    free(d->toks);
    json_init(d, d->max_toks, d->max_depth);
}

int json_parse(json_doc_t *d, const char *text, size_t len, char *err, size_t errlen)
{
    parser_t ps = {d, (const unsigned char *)text, (const unsigned char *)text, (const unsigned char *)text + len, err, errlen};
    int ret;

    d->text = text;
    d->len = len;
    d->ntoks = 0;
    if (len > UINT32_MAX)
        ret = fail(&ps, CIO_ETOOBIG, "text of 4 GiB or more");
    else if ((ret = parse_value(&ps, 0)) == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            ret = fail(&ps, CIO_EPROTO, "bytes after the value");
    }
    if (ret != 0)
        d->ntoks = 0;
    return ret;
}

const json_tok_t *json_root(const json_doc_t *d)
{
    return d->ntoks > 0 ? &d->toks[0] : NULL;
}

/* Decodes the character at p (inside a validated string); stores its bytes
 * in out and returns how many; *p moves past it. */
static size_t decode_one(const unsigned char **p, unsigned char out[4])
{
    const unsigned char *s = *p;
    if (s[0] != '\\') {
        out[0] = s[0];
        *p = s + 1;
        return 1;
    }
    *p = s + 2;
    switch (s[1]) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        break;
    default: /* " \ / */
        out[0] = s[1];
        return 1;
    }
    unsigned long u = (unsigned long)hex4(s + 2, s + 6);
    *p = s + 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        u = 0x10000 + ((u - 0xD800) << 10) + ((unsigned long)hex4(s + 8, s + 12) - 0xDC00);
        *p = s + 12;
    }
    if (u < 0x80) {
        out[0] = (unsigned char)u;
        return 1;
    }
    if (u >= UTF8_BYTE_ESCAPE_MIN && u <= UTF8_BYTE_ESCAPE_MAX) { /* a lone one (a pair was joined above): a raw byte */
        out[0] = (unsigned char)(u - UTF8_BYTE_ESCAPE_BASE);
        return 1;
    }
    if (u < 0x800) {
        out[0] = (unsigned char)(0xC0 | u >> 6);
        out[1] = (unsigned char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (unsigned char)(0xE0 | u >> 12);
        out[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | u >> 18);
    out[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (u & 0x3F));
    return 4;
}

int json_str(const json_doc_t *d, const json_tok_t *t, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;

    if (outlen != NULL)
        *outlen = 0;
    if (cap > 0)
        out[0] = '\0';
    if (t == NULL || t->type != JSON_STRING)
        return CIO_EINVAL;
    const unsigned char *p = (const unsigned char *)d->text + t->start, *end = p + t->len;
    while (p < end) {
        unsigned char ch[4];
        size_t k = decode_one(&p, ch);
        if (cap == 0 || k > cap - 1 - n) {
            if (cap > 0)
                out[0] = '\0';
            return CIO_ETOOBIG;
        }
        memcpy(out + n, ch, k);
        n += k;
    }
    out[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return 0;
}

int json_str_eq(const json_doc_t *d, const json_tok_t *t, const char *s)
{
    if (t == NULL || t->type != JSON_STRING)
        return 0;
    const unsigned char *p = (const unsigned char *)d->text + t->start, *end = p + t->len;
    size_t n = strlen(s), i = 0;
    while (p < end) {
        unsigned char ch[4];
        size_t k = decode_one(&p, ch);
        if (k > n - i || memcmp(s + i, ch, k) != 0)
            return 0;
        i += k;
    }
    return i == n;
}

const json_tok_t *json_member(const json_doc_t *d, const json_tok_t *obj, const char *name)
{
    if (obj == NULL || obj->type != JSON_OBJECT)
        return NULL;
    size_t i = (size_t)(obj - d->toks) + 1;
    for (uint32_t m = 0; m < obj->count; m++) {
        const json_tok_t *value = &d->toks[i + 1];
        if (json_str_eq(d, &d->toks[i], name))
            return value;
        i = value->end;
    }
    return NULL;
}

const json_tok_t *json_first(const json_doc_t *d, const json_tok_t *arr)
{
    if (arr == NULL || arr->type != JSON_ARRAY || arr->count == 0)
        return NULL;
    return arr + 1;
}

const json_tok_t *json_next(const json_doc_t *d, const json_tok_t *arr, const json_tok_t *elem)
{
    if (arr == NULL || elem == NULL || elem->end >= arr->end)
        return NULL;
    return &d->toks[elem->end];
}

int json_u64(const json_doc_t *d, const json_tok_t *t, uint64_t *out)
{
    uint64_t v = 0;

    if (t == NULL || t->type != JSON_NUMBER)
        return CIO_EINVAL;
    const char *p = d->text + t->start;
    for (uint32_t i = 0; i < t->len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return CIO_EINVAL; /* sign, fraction or exponent */
        unsigned digit = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return CIO_ETOOBIG;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

int json_double(const json_doc_t *d, const json_tok_t *t, double *out)
{
    char num[JSON_NUMBER_MAX + 1], *end;

    if (t == NULL || t->type != JSON_NUMBER || t->len > JSON_NUMBER_MAX)
        return CIO_EINVAL;
    memcpy(num, d->text + t->start, t->len);
    num[t->len] = '\0';
    errno = 0;
    double v = strtod(num, &end);
    if (*end != '\0' || (errno == ERANGE && isinf(v)))
        return CIO_EINVAL;
    *out = v;
    return 0;
}

int json_bool(const json_tok_t *t, int *out)
{
    if (t == NULL || (t->type != JSON_TRUE && t->type != JSON_FALSE))
        return CIO_EINVAL;
    *out = t->type == JSON_TRUE;
    return 0;
}
