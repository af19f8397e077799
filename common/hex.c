/* hex.c - hexadecimal digit tables, encoding and decoding. */
#include "common/hex.h"

const char hex_lower[17] = "0123456789abcdef";
const char hex_upper[17] = "0123456789ABCDEF";

void hex_encode(char *dst, const void *src, size_t len)
{
    const uint8_t *p = src;
    for (size_t i = 0; i < len; i++) {
        dst[2 * i] = hex_lower[p[i] >> 4];
        dst[2 * i + 1] = hex_lower[p[i] & 0x0f];
    }
    dst[2 * len] = '\0';
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
