/* buf.c - a growable byte buffer with a hard cap. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/utf8.h"
#include "common/hex.h"
#include "common/percent.h"

void buf_init(buf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void buf_free(buf_t *b)
{
    free(b->data);
    buf_init(b, b->max);
}

void *buf_grow_array(void *v, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return v;
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap <= *cap || elem == 0 || ncap > SIZE_MAX / elem)
        return NULL;
    void *nv = realloc(v, ncap * elem);
    if (nv != NULL)
        *cap = ncap;
    return nv;
}

static int reserve(buf_t *b, size_t extra)
{
    if (b->err != 0)
        return b->err;
    if (extra > b->max - b->len)
        return b->err = CIO_ETOOBIG;
    if (b->len + extra + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + extra + 1)
            ncap *= 2;
        char *n = realloc(b->data, ncap);
        if (n == NULL)
            return b->err = CIO_ENOMEM;
        b->data = n;
        b->cap = ncap;
    }
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    int ret;
    if ((ret = reserve(b, n)) != 0)
        return ret;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n, ret;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->err = CIO_EINVAL;
    if ((ret = reserve(b, (size_t)n)) != 0)
        return ret;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_json_str(buf_t *b, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;

    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char ch = s[i];
        size_t len = utf8_seq_len(s + i, n - i);
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            buf_append(b, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex_lower[ch >> 4], hex_lower[ch & 15]};
            buf_append(b, esc, 6);
        } else if (len == 0) { /* not UTF-8: the byte as its surrogate escape */
            unsigned u = UTF8_BYTE_ESCAPE_BASE + ch;
            char esc[6] = {'\\', 'u', hex_lower[u >> 12], hex_lower[(u >> 8) & 15], hex_lower[(u >> 4) & 15], hex_lower[u & 15]};
            buf_append(b, esc, 6);
            len = 1;
        } else {
            buf_append(b, p + i, len);
        }
        i += len;
    }
    return buf_append(b, "\"", 1);
}

int buf_json_url(buf_t *b, const char *p, size_t n)
{
    buf_append(b, "\"", 1);
    percent_append(b, p, n, 0);
    return buf_append(b, "\"", 1);
}
