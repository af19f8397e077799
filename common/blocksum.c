/* blocksum.c - an object's block checksums: record codec, computation, verification. */
#include <stdlib.h>
#include <string.h>
#include "common/be.h"
#include "common/blocksum.h"
#include "common/cksum.h"

int blocksum_decode(const void *p, size_t len, blocksum_rec_t *r)
{
    const uint8_t *b = p;
    size_t olen, pos;

    if (len < BLOCKSUM_FIXED || b[0] != BLOCKSUM_FORMAT || b[1] < BLOCKSUM_SHIFT_MIN || b[1] > BLOCKSUM_SHIFT_MAX)
        return CIO_EPROTO;
    r->shift = b[1];
    r->version = be_get(b + 2, 8);
    olen = b[10];
    if (olen > LOGREC_ORIGIN_MAX || len < BLOCKSUM_FIXED + olen)
        return CIO_EPROTO;
    r->origin_len = (uint16_t)olen;
    memcpy(r->origin, b + 11, olen);
    r->origin[olen] = '\0';
    pos = 11 + olen;
    r->off = be_get(b + pos, 8);
    r->size = be_get(b + pos + 8, 8);
    pos += 16;
    if (r->size > BLOCKSUM_SIZE_MAX)
        return CIO_EPROTO;
    r->nblocks = blocksum_nblocks(r->size, r->shift);
    if ((len - pos) / 4 != r->nblocks || (len - pos) % 4 != 0)
        return CIO_EPROTO;
    r->crcs = b + pos;
    return 0;
}

size_t blocksum_encoded_len(uint64_t size, unsigned shift, size_t origin_len)
{
    return BLOCKSUM_FIXED + origin_len + 4 * (size_t)blocksum_nblocks(size, shift);
}

size_t blocksum_encode(uint8_t *out, unsigned shift, uint64_t version, const char *origin, size_t origin_len, uint64_t off,
                       uint64_t size, const uint32_t *crcs)
{
    uint8_t *p = out;
    uint64_t n;

    if (origin_len > LOGREC_ORIGIN_MAX || shift < BLOCKSUM_SHIFT_MIN || shift > BLOCKSUM_SHIFT_MAX || size > BLOCKSUM_SIZE_MAX)
        return 0;
    *p++ = BLOCKSUM_FORMAT;
    *p++ = (uint8_t)shift;
    be_put(p, version, 8);
    p += 8;
    *p++ = (uint8_t)origin_len;
    memcpy(p, origin, origin_len);
    p += origin_len;
    be_put(p, off, 8);
    be_put(p + 8, size, 8);
    p += 16;
    n = blocksum_nblocks(size, shift);
    for (uint64_t i = 0; i < n; i++, p += 4)
        be_put(p, crcs[i], 4);
    return (size_t)(p - out);
}

int blocksum_matches(const blocksum_rec_t *r, uint64_t version, const char *origin, size_t origin_len, uint64_t off, uint64_t size)
{
    return r->version == version && r->origin_len == origin_len && memcmp(r->origin, origin, origin_len) == 0 && r->off == off &&
           r->size == size;
}

int blocksum_calc_init(blocksum_calc_t *c, uint64_t size)
{
    memset(c, 0, sizeof(*c));
    if (size > BLOCKSUM_SIZE_MAX)
        return CIO_ETOOBIG;
    c->shift = BLOCKSUM_SHIFT;
    c->size = size;
    c->nblocks = blocksum_nblocks(size, c->shift);
    if (c->nblocks > 0 && (c->crcs = malloc((size_t)c->nblocks * sizeof(uint32_t))) == NULL)
        return CIO_ENOMEM;
    return 0;
}

int blocksum_calc_resume(blocksum_calc_t *c, uint64_t size, const uint32_t *crcs, uint64_t fed, uint32_t cur)
{
    int ret = blocksum_calc_init(c, size);
    uint64_t whole = fed >> BLOCKSUM_SHIFT;

    if (ret != 0)
        return ret;
    if (fed > size)
        return CIO_EINVAL;
    if (whole > 0)
        memcpy(c->crcs, crcs, (size_t)whole * sizeof(uint32_t));
    c->fed = fed;
    c->cur = cur;
    /* the object ends inside the partial block: that block is complete */
    if (fed == size && (fed & (BLOCKSUM_BLOCK - 1)) != 0) {
        c->crcs[whole] = cur;
        c->cur = 0;
    }
    return 0;
}

void blocksum_calc_feed(blocksum_calc_t *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t block = 1ULL << c->shift;

    if (n > c->size - c->fed)
        n = (size_t)(c->size - c->fed);
    while (n > 0) {
        uint64_t in = c->fed & (block - 1), take = block - in;
        if (take > n)
            take = n;
        c->cur = cksum_crc32c(c->cur, b, (size_t)take);
        c->fed += take;
        b += take;
        n -= (size_t)take;
        if ((c->fed & (block - 1)) == 0 || c->fed == c->size) {
            c->crcs[(c->fed - 1) >> c->shift] = c->cur;
            c->cur = 0;
        }
    }
}

int blocksum_calc_done(const blocksum_calc_t *c)
{
    return c->fed == c->size ? 0 : CIO_EINVAL;
}

void blocksum_calc_free(blocksum_calc_t *c)
{
    free(c->crcs);
    c->crcs = NULL;
}

blocksum_view_t blocksum_view(const blocksum_rec_t *r, uint64_t off, uint64_t len)
{
    blocksum_view_t whole = {r->shift, r->size, 0, r->nblocks, r->crcs, 0};
    return blocksum_view_range(&whole, off, len);
}

blocksum_view_t blocksum_view_range(const blocksum_view_t *whole, uint64_t off, uint64_t len)
{
    blocksum_view_t v = *whole;
    if (whole->crcs == NULL) /* an inline CRC: one block, the view itself */
        return v;
    v.n = 0;
    if (len == 0 || off >= whole->size)
        return v;
    if (len > whole->size - off)
        len = whole->size - off;
    v.first = off >> whole->shift;
    v.n = ((off + len - 1) >> whole->shift) - v.first + 1;
    v.crcs = whole->crcs + 4 * v.first;
    return v;
}

blocksum_view_t blocksum_view_one(uint64_t size, uint32_t crc)
{
    blocksum_view_t v = {BLOCKSUM_INLINE_SHIFT, size, 0, size > 0 ? 1 : 0, NULL, crc};
    return v;
}

uint32_t blocksum_view_crc(const blocksum_view_t *v, uint64_t i)
{
    return v->crcs == NULL ? v->one : (uint32_t)be_get(v->crcs + 4 * (i - v->first), 4);
}

int blocksum_view_copy(blocksum_view_t *v, uint8_t **owned)
{
    *owned = NULL;
    if (v->n == 0 || v->crcs == NULL)
        return 0;
    if ((*owned = malloc((size_t)v->n * 4)) == NULL)
        return CIO_ENOMEM;
    memcpy(*owned, v->crcs, (size_t)v->n * 4);
    v->crcs = *owned;
    return 0;
}

void blocksum_widen(unsigned shift, uint64_t size, uint64_t off, uint64_t len, uint64_t *roff, uint64_t *rlen)
{
    uint64_t block = 1ULL << shift, end = off + len;
    *roff = off & ~(block - 1);
    end = end > UINT64_MAX - block ? UINT64_MAX : (end + block - 1) & ~(block - 1);
    if (end > size)
        end = size;
    *rlen = end > *roff ? end - *roff : 0;
}

int blocksum_verify(const blocksum_view_t *v, uint64_t off, const void *buf, size_t len, uint64_t *bad_block)
{
    const uint8_t *b = buf;
    uint64_t block = 1ULL << v->shift, first = off >> v->shift;

    if ((off & (block - 1)) != 0 || off > v->size || len > v->size - off || ((len & (block - 1)) != 0 && off + len != v->size))
        return CIO_EINVAL;
    if (len == 0)
        return 0;
    if (first < v->first || first + blocksum_nblocks(len, v->shift) > v->first + v->n)
        return CIO_EINVAL;
    for (uint64_t i = first; len > 0; i++) {
        size_t n = len < block ? len : (size_t)block;
        if (cksum_crc32c(0, b, n) != blocksum_view_crc(v, i)) {
            *bad_block = i;
            return CIO_EIO;
        }
        b += n;
        len -= n;
    }
    return 0;
}
