/* deepcursor.c - the deep listing's resume cursor: its one text form. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "common/hex.h"
#include "proto/deepcursor.h"

/* A decimal count without leading zeros ("0" alone) from s[*i..len), up to
 * the '.' or the end. 0 with *v, or -1. */
static int dec(const char *s, size_t len, size_t *i, uint64_t *v)
{
    size_t start = *i;
    *v = 0;
    for (; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
        unsigned d = (unsigned)(s[*i] - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return -1;
        *v = *v * 10 + d;
    }
    if (*i == start || (s[start] == '0' && *i - start > 1))
        return -1;
    return 0;
}

int deepcursor_parse(const char *s, size_t len, deepcursor_t *c)
{
    uint8_t b[4];
    size_t i = 0, n;

    memset(c, 0, sizeof(*c));
    if (dec(s, len, &i, &c->offset) != 0 || c->offset == 0 || i + 10 > len || s[i] != '.' || s[i + 9] != '.' ||
        hex_decode_lower(b, s + i + 1, 4) != 0)
        goto bad;
    c->crc = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    i += 10;
    if (dec(s, len, &i, &c->version) != 0 || i >= len || s[i] != '.')
        goto bad;
    i++;
    n = len - i;
    if (n % 2 != 0 || n / 2 > LOGREC_ORIGIN_MAX || hex_decode_lower((uint8_t *)c->origin, s + i, n / 2) != 0 ||
        memchr(c->origin, '\0', n / 2) != NULL)
        goto bad;
    c->origin[n / 2] = '\0';
    return 0;
bad:
    memset(c, 0, sizeof(*c));
    return CIO_EINVAL;
}

size_t deepcursor_format(const deepcursor_t *c, char out[DEEPCURSOR_MAX + 1])
{
    size_t olen = strnlen(c->origin, sizeof(c->origin));
    if (c->offset == 0 || olen > LOGREC_ORIGIN_MAX)
        return 0;
    int n = snprintf(out, DEEPCURSOR_MAX + 1, "%" PRIu64 ".%08" PRIx32 ".%" PRIu64 ".", c->offset, c->crc, c->version);
    hex_encode(out + n, c->origin, olen);
    return (size_t)n + 2 * olen;
}
