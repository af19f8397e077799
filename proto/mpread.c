/* mpread.c - the bounded msgpack reader shared by the proto/ decoders. */
#include "proto/mpread.h"

void mpread_init(mpread_t *rd, const void *buf, size_t len)
{
    rd->p = buf;
    rd->end = len == 0 ? rd->p : rd->p + len;
}

size_t mpread_left(const mpread_t *rd)
{
    return (size_t)(rd->end - rd->p);
}

/* Reads an n-byte big-endian unsigned number (n <= 8). */
static int rd_be(mpread_t *rd, size_t n, uint64_t *v)
{
    if (mpread_left(rd) < n)
        return CIO_EPROTO;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | rd->p[i];
    rd->p += n;
    *v = x;
    return 0;
}

static int rd_skip(mpread_t *rd, uint64_t n)
{
    if (mpread_left(rd) < n)
        return CIO_EPROTO;
    rd->p += n;
    return 0;
}

/* Reads an integer of any msgpack int format. *neg is set when the value is
 * negative (then *u holds it as a two's-complement int64). */
static int rd_int(mpread_t *rd, uint64_t *u, int *neg)
{
    if (mpread_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    uint64_t v;
    int err;
    *neg = 0;
    if (t <= 0x7f) {
        *u = t;
        return 0;
    }
    if (t >= 0xe0) {
        *u = (uint64_t)(int64_t)(int8_t)t;
        *neg = 1;
        return 0;
    }
    switch (t) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if ((err = rd_be(rd, (size_t)1 << (t - 0xcc), &v)) != 0)
            return err;
        *u = v;
        return 0;
    case 0xd0:
        if ((err = rd_be(rd, 1, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int8_t)(uint8_t)v;
        break;
    case 0xd1:
        if ((err = rd_be(rd, 2, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int16_t)(uint16_t)v;
        break;
    case 0xd2:
        if ((err = rd_be(rd, 4, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int32_t)(uint32_t)v;
        break;
    case 0xd3:
        if ((err = rd_be(rd, 8, &v)) != 0)
            return err;
        *u = v;
        break;
    default:
        return CIO_EPROTO;
    }
    *neg = (int64_t)*u < 0;
    return 0;
}

int mpread_uint(mpread_t *rd, uint64_t *v)
{
    int neg, err = rd_int(rd, v, &neg);
    if (err != 0)
        return err;
    return neg ? CIO_EPROTO : 0;
}

int mpread_int64(mpread_t *rd, int64_t *v)
{
    uint64_t u;
    int neg, err = rd_int(rd, &u, &neg);
    if (err != 0)
        return err;
    if (!neg && u > (uint64_t)INT64_MAX)
        return CIO_EPROTO;
    *v = (int64_t)u;
    return 0;
}

/* Reads a str (bin when `bin`) header and body. */
static int rd_raw(mpread_t *rd, int bin, const char **s, size_t *len, size_t max)
{
    if (mpread_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    uint64_t n;
    int err = 0;
    if (!bin && t >= 0xa0 && t <= 0xbf)
        n = t & 0x1f;
    else if (!bin && t >= 0xd9 && t <= 0xdb)
        err = rd_be(rd, (size_t)1 << (t - 0xd9), &n);
    else if (bin && t >= 0xc4 && t <= 0xc6)
        err = rd_be(rd, (size_t)1 << (t - 0xc4), &n);
    else
        return CIO_EPROTO;
    if (err != 0)
        return err;
    if (n > max || n > mpread_left(rd))
        return CIO_EPROTO;
    *s = (const char *)rd->p;
    *len = (size_t)n;
    rd->p += n;
    return 0;
}

int mpread_str(mpread_t *rd, const char **s, size_t *len, size_t max)
{
    return rd_raw(rd, 0, s, len, max);
}

int mpread_bin(mpread_t *rd, const char **s, size_t *len, size_t max)
{
    return rd_raw(rd, 1, s, len, max);
}

/* Reads a map or array header: the fix form `fix`..`fix`+15 (count in the low
 * 4 bits) or the 16/32-bit forms `b16` and `b16`+1. */
static int rd_container(mpread_t *rd, uint8_t fix, uint8_t b16, size_t max, size_t *n)
{
    if (mpread_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    uint64_t v;
    int err = 0;
    if (t >= fix && t <= fix + 0x0f)
        v = t & 0x0f;
    else if (t == b16)
        err = rd_be(rd, 2, &v);
    else if (t == b16 + 1)
        err = rd_be(rd, 4, &v);
    else
        return CIO_EPROTO;
    if (err != 0)
        return err;
    if (v > max)
        return CIO_EPROTO;
    *n = (size_t)v;
    return 0;
}

int mpread_map(mpread_t *rd, size_t max, size_t *n)
{
    return rd_container(rd, 0x80, 0xde, max, n);
}

int mpread_array(mpread_t *rd, size_t max, size_t *n)
{
    return rd_container(rd, 0x90, 0xdc, max, n);
}

/* Nesting is handled by counting the values still to skip instead of
 * recursing; each value takes at least one byte, so a count above the bytes
 * left is already malformed and the walk is O(len). */
int mpread_skip(mpread_t *rd)
{
    uint64_t pending = 1;
    while (pending > 0) {
        if (pending > mpread_left(rd))
            return CIO_EPROTO;
        pending--;
        uint8_t t = *rd->p++;
        uint64_t n;
        int err = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
            continue; /* fixint, nil, bool */
        if (t >= 0x80 && t <= 0x8f) {
            pending += 2u * (t & 0x0f);
            continue;
        }
        if (t >= 0x90 && t <= 0x9f) {
            pending += t & 0x0f;
            continue;
        }
        if (t >= 0xa0 && t <= 0xbf) {
            err = rd_skip(rd, t & 0x1f);
        } else {
            switch (t) {
            case 0xc4: /* bin 8/16/32 */
            case 0xc5:
            case 0xc6:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xc4), &n)) == 0)
                    err = rd_skip(rd, n);
                break;
            case 0xd9: /* str 8/16/32 */
            case 0xda:
            case 0xdb:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xd9), &n)) == 0)
                    err = rd_skip(rd, n);
                break;
            case 0xc7: /* ext 8/16/32: length, type byte, data */
            case 0xc8:
            case 0xc9:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xc7), &n)) == 0)
                    err = rd_skip(rd, n + 1);
                break;
            case 0xca: /* float 32/64 */
                err = rd_skip(rd, 4);
                break;
            case 0xcb:
                err = rd_skip(rd, 8);
                break;
            case 0xcc: /* uint/int 8..64 */
            case 0xcd:
            case 0xce:
            case 0xcf:
                err = rd_skip(rd, (uint64_t)1 << (t - 0xcc));
                break;
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3:
                err = rd_skip(rd, (uint64_t)1 << (t - 0xd0));
                break;
            case 0xd4: /* fixext 1/2/4/8/16: type byte + data */
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                err = rd_skip(rd, 1 + ((uint64_t)1 << (t - 0xd4)));
                break;
            case 0xdc: /* array 16/32 */
            case 0xdd:
                if ((err = rd_be(rd, t == 0xdc ? 2 : 4, &n)) == 0)
                    pending += n;
                break;
            case 0xde: /* map 16/32 */
            case 0xdf:
                if ((err = rd_be(rd, t == 0xde ? 2 : 4, &n)) == 0)
                    pending += 2 * n;
                break;
            default: /* 0xc1: never used */
                return CIO_EPROTO;
            }
        }
        if (err != 0)
            return err;
    }
    return 0;
}
