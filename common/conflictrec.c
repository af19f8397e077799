/* conflictrec.c - the "conflicts" record: encoding and strict decoding (common/conflictrec.h). */
#include <string.h>
#include "common/be.h"
#include "common/conflictrec.h"

int conflictrec_valid(const conflict_t *c)
{
    const blocksum_view_t *v = &c->sums;
    if (c->key_len > LOGREC_KEY_MAX || c->ctype_len > LOGREC_CTYPE_MAX || c->meta_len > OBJMETA_MAX ||
        c->loser.origin_len > LOGREC_ORIGIN_MAX || c->winner.origin_len > LOGREC_ORIGIN_MAX)
        return 0;
    if (!c->has_sums)
        return 1;
    return !c->deleted && v->shift >= BLOCKSUM_SHIFT_MIN && v->shift <= BLOCKSUM_SHIFT_MAX && c->size <= BLOCKSUM_SIZE_MAX &&
           v->size == c->size && v->first == 0 && v->n == blocksum_nblocks(c->size, v->shift) && (v->crcs != NULL || v->n <= 1);
}

size_t conflictrec_encode_head(uint8_t *out, const conflict_t *c)
{
    uint8_t *p = out;
    *p++ = c->has_sums ? CONFLICTREC_FORMAT_SUMS : c->meta_len > 0 ? CONFLICTREC_FORMAT_META : CONFLICTREC_FORMAT;
    be_put(p, c->loser.hlc, 8);
    be_put(p + 8, c->winner.hlc, 8);
    be_put(p + 16, (uint64_t)c->time_ms, 8);
    be_put(p + 24, c->off, 8);
    be_put(p + 32, c->alen, 8);
    be_put(p + 40, c->size, 8);
    p += 48;
    memcpy(p, c->etag, 16);
    p += 16;
    be_put(p, (uint64_t)c->mtime_ms, 8);
    p += 8;
    *p++ = c->deleted ? 1 : 0;
    be_put(p, c->ctype_len, 2);
    memcpy(p + 2, c->ctype, c->ctype_len);
    p += 2 + c->ctype_len;
    *p++ = (uint8_t)c->loser.origin_len;
    memcpy(p, c->loser.origin, c->loser.origin_len);
    p += c->loser.origin_len;
    *p++ = (uint8_t)c->winner.origin_len;
    memcpy(p, c->winner.origin, c->winner.origin_len);
    p += c->winner.origin_len;
    be_put(p, c->key_len, 2);
    memcpy(p + 2, c->key, c->key_len);
    p += 2 + c->key_len;
    if (c->meta_len > 0 || c->has_sums) {
        be_put(p, c->meta_len, 2);
        memcpy(p + 2, c->meta, c->meta_len);
        p += 2 + c->meta_len;
    }
    return (size_t)(p - out);
}

size_t conflictrec_sums_len(const conflict_t *c)
{
    return c->has_sums ? 1 + 4 * (size_t)c->sums.n : 0;
}

void conflictrec_encode_sums(uint8_t *out, const conflict_t *c)
{
    *out++ = (uint8_t)c->sums.shift;
    for (uint64_t i = 0; i < c->sums.n; i++, out += 4)
        be_put(out, blocksum_view_crc(&c->sums, i), 4);
}

/* Decodes the checksums p[0..len) of loser c (format 3) into c->sums, borrowing the CRCs. */
static int decode_sums(const uint8_t *p, size_t len, conflict_t *c)
{
    if (len < 1 || p[0] < BLOCKSUM_SHIFT_MIN || p[0] > BLOCKSUM_SHIFT_MAX || c->deleted || c->size > BLOCKSUM_SIZE_MAX)
        return CIO_EPROTO;
    uint64_t n = blocksum_nblocks(c->size, p[0]);
    if ((len - 1) % 4 != 0 || (len - 1) / 4 != n)
        return CIO_EPROTO;
    c->sums = (blocksum_view_t){p[0], c->size, 0, n, p + 1, 0};
    c->has_sums = 1;
    return 0;
}

int conflictrec_decode(const uint8_t *p, size_t len, conflict_t *c)
{
    const uint8_t *end = p + len;
    size_t n;
    if (len < CONFLICTREC_FIXED + 2 || p[0] < CONFLICTREC_FORMAT || p[0] > CONFLICTREC_FORMAT_SUMS)
        return CIO_EPROTO;
    int with_meta = p[0] != CONFLICTREC_FORMAT, with_sums = p[0] == CONFLICTREC_FORMAT_SUMS;
    p++;
    c->loser.hlc = be_get(p, 8);
    c->winner.hlc = be_get(p + 8, 8);
    c->time_ms = (int64_t)be_get(p + 16, 8);
    c->off = be_get(p + 24, 8);
    c->alen = be_get(p + 32, 8);
    c->size = be_get(p + 40, 8);
    p += 48;
    memcpy(c->etag, p, 16);
    p += 16;
    c->mtime_ms = (int64_t)be_get(p, 8);
    p += 8;
    if (*p > 1) /* flags: no bit but the DELETE's */
        return CIO_EPROTO;
    c->deleted = *p++;
    c->ctype_len = (uint16_t)be_get(p, 2);
    p += 2;
    if (c->ctype_len > LOGREC_CTYPE_MAX || (size_t)(end - p) < (size_t)c->ctype_len + 1)
        return CIO_EPROTO;
    memcpy(c->ctype, p, c->ctype_len);
    c->ctype[c->ctype_len] = '\0';
    p += c->ctype_len;
    n = *p++;
    if (n > LOGREC_ORIGIN_MAX || (size_t)(end - p) < n + 1)
        return CIO_EPROTO;
    c->loser = meta_ver_make(c->loser.hlc, (const char *)p, n);
    p += n;
    n = *p++;
    if (n > LOGREC_ORIGIN_MAX || (size_t)(end - p) < n + 2)
        return CIO_EPROTO;
    c->winner = meta_ver_make(c->winner.hlc, (const char *)p, n);
    p += n;
    c->key_len = (uint16_t)be_get(p, 2);
    p += 2;
    if (c->key_len > LOGREC_KEY_MAX || (size_t)(end - p) < c->key_len || (!with_meta && (size_t)(end - p) != c->key_len))
        return CIO_EPROTO;
    memcpy(c->key, p, c->key_len);
    c->key[c->key_len] = '\0';
    p += c->key_len;
    c->meta_len = 0;
    c->has_sums = 0;
    memset(&c->sums, 0, sizeof(c->sums));
    if (with_meta) {
        if (end - p < 2)
            return CIO_EPROTO;
        n = (size_t)be_get(p, 2);
        p += 2;
        /* format 2 has metadata and nothing after it; format 3 may have none, and has its checksums after */
        if ((size_t)(end - p) < n || (!with_sums && (n == 0 || (size_t)(end - p) != n)) || (n > 0 && objmeta_validate(p, n) != 0))
            return CIO_EPROTO;
        memcpy(c->meta, p, n);
        c->meta_len = (uint16_t)n;
        p += n;
    }
    return with_sums ? decode_sums(p, (size_t)(end - p), c) : 0;
}
