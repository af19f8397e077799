/* hex.c - hexadecimal digit tables, encoding and decoding. */
#include <string.h>
#include "common/hex.h"

const char hex_lower[17] = "0123456789abcdef";
const char hex_upper[17] = "0123456789ABCDEF";

/* Four bytes at a time, with no table and no branch: each byte's two nibbles
 * spread into a byte each, then turned into digits together (a byte at a
 * time, hex_encode of the canonical request's digest and of the signature
 * showed in callgrind profiles of every signed request). `letters` is what
 * takes a nibble of 10 up past '9' + 1 to its letter: 'a' - '0' - 10 for
 * lower case, 'A' - '0' - 10 for upper. */
static inline uint64_t hex_digits4(const uint8_t *p, uint64_t letters)
{
    const uint64_t nib = 0x000f000f000f000fULL, ones = 0x0101010101010101ULL;
    uint64_t t = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; /* one load */
    t = (t | t << 16) & 0x0000ffff0000ffffULL;
    t = (t | t << 8) & 0x00ff00ff00ff00ffULL;       /* a byte per 16 bits, p[0] lowest */
    uint64_t n = ((t >> 4) & nib) | (t & nib) << 8; /* the high nibble first in memory (little-endian) */
    uint64_t letter = ((n + 6 * ones) >> 4) & ones; /* 1 where the nibble is 10 or more */
    return n + '0' * ones + letter * letters;
}

static void encode(char *dst, const uint8_t *p, size_t len, const char *digits, uint64_t letters)
{
    size_t i = 0;

    for (; i + 4 <= len; i += 4) {
        uint64_t d = hex_digits4(p + i, letters);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        d = __builtin_bswap64(d);
#endif
        memcpy(dst + 2 * i, &d, 8);
    }
    for (; i < len; i++) {
        dst[2 * i] = digits[p[i] >> 4];
        dst[2 * i + 1] = digits[p[i] & 0x0f];
    }
    dst[2 * len] = '\0';
}

void hex_encode(char *dst, const void *src, size_t len)
{
    encode(dst, src, len, hex_lower, 'a' - '0' - 10);
}

void hex_encode_upper(char *dst, const void *src, size_t len)
{
    encode(dst, src, len, hex_upper, 'A' - '0' - 10);
}

int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int lower_value(char c)
{
    return (c >= 'A' && c <= 'F') ? -1 : hex_value((unsigned char)c);
}

int hex_decode_lower(uint8_t *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = lower_value(src[2 * i]), lo = lower_value(src[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return CIO_EINVAL;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
