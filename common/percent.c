/* percent.c - percent-encoding and decoding (RFC 3986). */
#include <string.h>
#include "common/hex.h"
#include "common/percent.h"

/* Which bytes pass unencoded: RFC 3986's unreserved set, '/' on request. */
static int kept(unsigned char c, unsigned flags)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~' || (c == '/' && (flags & PERCENT_KEEP_SLASH));
}

/* Writes the encoding of c into out (1 or 3 bytes) and returns its length. */
static size_t encode_byte(unsigned char c, unsigned flags, char out[3])
{
    if (kept(c, flags)) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '%';
    out[1] = hex_upper[c >> 4];
    out[2] = hex_upper[c & 0x0f];
    return 3;
}

size_t percent_encode(char *dst, size_t cap, const char *src, size_t len, unsigned flags)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char esc[3];
        size_t k = encode_byte((unsigned char)src[i], flags, esc);
        if (n + k <= cap)
            memcpy(dst + n, esc, k);
        n += k;
    }
    return n;
}

int percent_append(buf_t *b, const char *src, size_t len, unsigned flags)
{
    for (size_t i = 0; i < len && b->err == 0; i++) {
        char esc[3];
        buf_append(b, esc, encode_byte((unsigned char)src[i], flags, esc));
    }
    return b->err;
}

/* Decodes the byte at src[*i] (advancing *i past it and its escape) into *c.
 * Returns 0, or -1 for '%' without two hex digits after it. */
static int next_byte(const char *src, size_t len, size_t *i, unsigned flags, char *c)
{
    char ch = src[*i];
    if (ch == '%') {
        int hi, lo;
        if (len - *i < 3 || (hi = hex_value((unsigned char)src[*i + 1])) < 0 || (lo = hex_value((unsigned char)src[*i + 2])) < 0)
            return -1;
        *c = (char)(hi << 4 | lo);
        *i += 3;
        return 0;
    }
    *c = ch == '+' && (flags & PERCENT_PLUS_SPACE) ? ' ' : ch;
    *i += 1;
    return 0;
}

int percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *dlen, unsigned flags, int *has_nul)
{
    size_t n = 0;
    int nul = 0;
    for (size_t i = 0; i < len; n++) {
        char c;
        if (next_byte(src, len, &i, flags, &c) != 0) {
            *dlen = 0;
            return CIO_EINVAL;
        }
        nul |= c == '\0';
        if (n < cap)
            dst[n] = c;
    }
    *dlen = n;
    if (has_nul != NULL)
        *has_nul = nul;
    return n > cap ? CIO_ETOOBIG : 0;
}

int percent_decoded_equals(const char *src, size_t len, const char *s, size_t slen, unsigned flags)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        char c;
        if (next_byte(src, len, &i, flags, &c) != 0 || n >= slen || s[n] != c)
            return 0;
    }
    return n == slen;
}
