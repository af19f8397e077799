/* conflict.c - the "conflicts" table (common/conflict.h). */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/be.h"
#include "common/log.h"
#include "common/conflict.h"

/* Record format 1: format byte, loser version, winner version, time, offset,
 * allocated length, size (u64 BE each), ETag (16), mtime (i64 BE), flags
 * (u8, 1: deleted), content type (u16 BE length, bytes), loser origin and
 * winner origin (u8 length, bytes each), key (u16 BE length, bytes).
 * Format 2, written when the loser has metadata: the same followed by the
 * metadata (u16 BE length, a blob of common/objmeta.h); format 1 reads as
 * no metadata. Format 3, written when the loser's block checksums are kept:
 * format 2 with the metadata always there (maybe of length 0), followed by
 * the checksums: log2 of the block size (u8, BLOCKSUM_SHIFT_MIN..MAX) and
 * the CRC32C of each block (u32 BE, blocksum_nblocks(size, shift) of them,
 * to the end of the value; an object of at most BLOCKSUM_INLINE_MAX bytes
 * has its one inline CRC here with shift BLOCKSUM_INLINE_SHIFT). Formats 1
 * and 2 read as no checksums. */
#define REC_FORMAT 1
#define REC_FORMAT_META 2
#define REC_FORMAT_SUMS 3
#define REC_FIXED (1 + 8 * 6 + 16 + 8 + 1)
/* the most bytes before the checksums */
#define REC_MAX (REC_FIXED + 2 + LOGREC_CTYPE_MAX + 2 * (1 + LOGREC_ORIGIN_MAX) + 2 + LOGREC_KEY_MAX + 2 + OBJMETA_MAX)
#define KEY_MAX CONFLICT_POS_MAX

/* The table key: bucket NUL, MD5(key), then (with a loser) version and origin. */
static size_t table_key(uint8_t *out, const char *b, size_t blen, const char *k, size_t klen, const meta_ver_t *loser)
{
    size_t n = 0;
    memcpy(out, b, blen);
    out[blen] = 0;
    n = blen + 1;
    if (k == NULL)
        return n;
    EVP_Digest(k, klen, out + n, NULL, EVP_md5(), NULL);
    n += 16;
    if (loser == NULL)
        return n;
    be_put(out + n, loser->hlc, 8);
    n += 8;
    memcpy(out + n, loser->origin, loser->origin_len);
    return n + loser->origin_len;
}

/* Encodes c up to its checksums (a format-3 record's follow: encode_sums). */
static size_t encode(uint8_t *out, const conflict_t *c)
{
    uint8_t *p = out;
    *p++ = c->has_sums ? REC_FORMAT_SUMS : c->meta_len > 0 ? REC_FORMAT_META : REC_FORMAT;
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

/* The bytes of c's checksums in a format-3 record (0: none). */
static size_t sums_len(const conflict_t *c)
{
    return c->has_sums ? 1 + 4 * (size_t)c->sums.n : 0;
}

/* Encodes c's checksums into out (sums_len bytes). */
static void encode_sums(uint8_t *out, const conflict_t *c)
{
    *out++ = (uint8_t)c->sums.shift;
    for (uint64_t i = 0; i < c->sums.n; i++, out += 4)
        be_put(out, blocksum_view_crc(&c->sums, i), 4);
}

/* Whether c's checksums, if any, are the whole loser's: from the first block,
 * every block of c->size bytes, and a PUT's. */
static int sums_valid(const conflict_t *c)
{
    const blocksum_view_t *v = &c->sums;
    if (!c->has_sums)
        return 1;
    return !c->deleted && v->shift >= BLOCKSUM_SHIFT_MIN && v->shift <= BLOCKSUM_SHIFT_MAX && c->size <= BLOCKSUM_SIZE_MAX &&
           v->size == c->size && v->first == 0 && v->n == blocksum_nblocks(c->size, v->shift) && (v->crcs != NULL || v->n <= 1);
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

int conflict_sums_from_calc(conflict_t *c, const blocksum_calc_t *sums, uint8_t **owned)
{
    *owned = NULL;
    c->has_sums = 0;
    if (sums->size != c->size || blocksum_calc_done(sums) != 0)
        return CIO_EINVAL;
    if (c->size <= BLOCKSUM_INLINE_MAX && sums->nblocks <= 1) {
        c->sums = blocksum_view_one(c->size, sums->nblocks > 0 ? sums->crcs[0] : 0);
    } else {
        if ((*owned = malloc((size_t)sums->nblocks * 4)) == NULL)
            return CIO_ENOMEM;
        for (uint64_t i = 0; i < sums->nblocks; i++)
            be_put(*owned + 4 * i, sums->crcs[i], 4);
        c->sums = (blocksum_view_t){sums->shift, c->size, 0, sums->nblocks, *owned, 0};
    }
    c->has_sums = 1;
    return 0;
}

static int decode(const MDB_val *v, conflict_t *c)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    size_t n;
    if (v->mv_size < REC_FIXED + 2 || p[0] < REC_FORMAT || p[0] > REC_FORMAT_SUMS)
        return CIO_EPROTO;
    int with_meta = p[0] != REC_FORMAT, with_sums = p[0] == REC_FORMAT_SUMS;
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
    c->deleted = *p++ & 1;
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

int conflict_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const conflict_t *c)
{
    uint8_t kb[KEY_MAX], vb[REC_MAX];
    size_t head;
    int rc;
    if (blen == 0 || blen > LOGREC_BUCKET_MAX || c->key_len > LOGREC_KEY_MAX || c->ctype_len > LOGREC_CTYPE_MAX ||
        c->meta_len > OBJMETA_MAX || c->loser.origin_len > LOGREC_ORIGIN_MAX || c->winner.origin_len > LOGREC_ORIGIN_MAX ||
        !sums_valid(c))
        return CIO_EINVAL;
    MDB_val key = {table_key(kb, b, blen, c->key, c->key_len, &c->loser), kb}, v = {encode(vb, c), vb};
    if (!c->has_sums)
        return meta_err(mdb_put(txn, m->conflicts, &key, &v, 0), "mdb_put(conflicts)");
    /* the checksums (up to 4 bytes a block) are encoded straight into the map, after the rest */
    head = v.mv_size;
    v.mv_size = head + sums_len(c);
    if ((rc = mdb_put(txn, m->conflicts, &key, &v, MDB_RESERVE)) != 0)
        return meta_err(rc, "mdb_put(conflicts)");
    memcpy(v.mv_data, vb, head);
    encode_sums((uint8_t *)v.mv_data + head, c);
    return 0;
}

void conflict_as_obj(const conflict_t *c, meta_obj_t *o)
{
    memset(o, 0, sizeof(*o));
    o->version = c->loser.hlc;
    o->origin_len = c->loser.origin_len;
    memcpy(o->origin, c->loser.origin, c->loser.origin_len + 1);
    o->off = c->off;
    o->alen = c->alen;
    o->size = c->size;
    memcpy(o->etag, c->etag, sizeof(o->etag));
    o->mtime_ms = c->mtime_ms;
    o->ctype_len = c->ctype_len;
    memcpy(o->ctype, c->ctype, c->ctype_len + 1);
    o->meta_len = c->meta_len;
    memcpy(o->meta, c->meta, c->meta_len);
}

int conflict_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, uint64_t hlc, const char *origin,
                 size_t olen, conflict_t *out)
{
    uint8_t kb[KEY_MAX];
    meta_ver_t loser;
    int rc;
    if (blen == 0 || blen > LOGREC_BUCKET_MAX || olen > LOGREC_ORIGIN_MAX)
        return CIO_ENOTFOUND;
    loser = meta_ver_make(hlc, origin, olen);
    MDB_val key = {table_key(kb, b, blen, k, klen, &loser), kb}, v;
    if ((rc = mdb_get(txn, m->conflicts, &key, &v)) != 0)
        return meta_err(rc, "mdb_get(conflicts)");
    if ((rc = decode(&v, out)) != 0)
        return rc;
    /* an MD5 collision is no match */
    return out->key_len == klen && memcmp(out->key, k, klen) == 0 ? 0 : CIO_ENOTFOUND;
}

int conflict_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, uint64_t hlc, const char *origin,
                 size_t olen, alloc_extent_t *ext)
{
    uint8_t kb[KEY_MAX];
    conflict_t c;
    int ret;
    *ext = (alloc_extent_t){0, 0};
    if ((ret = conflict_get(m, txn, b, blen, k, klen, hlc, origin, olen, &c)) != 0)
        return ret;
    MDB_val key = {table_key(kb, b, blen, k, klen, &c.loser), kb};
    if ((ret = meta_err(mdb_del(txn, m->conflicts, &key, NULL), "mdb_del(conflicts)")) != 0)
        return ret;
    *ext = (alloc_extent_t){c.off, c.alen};
    return 0;
}

/* Removes the records under prefix pre[0..plen) that `pick` chooses. */
typedef int (*pick_cb)(const void *arg, const conflict_t *c);

static int remove_if(meta_t *m, MDB_txn *txn, const uint8_t *pre, size_t plen, const char *k, size_t klen, pick_cb pick,
                     const void *parg, conflict_free_cb release, void *arg, uint64_t *removed)
{
    MDB_cursor *cur;
    MDB_val key = {plen, (void *)pre}, v;
    conflict_t c;
    int rc, ret = 0;

    *removed = 0;
    if ((rc = mdb_cursor_open(txn, m->conflicts, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(conflicts)");
    rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size >= plen && memcmp(key.mv_data, pre, plen) == 0) {
        if ((ret = decode(&v, &c)) != 0)
            break;
        if ((k == NULL || (c.key_len == klen && memcmp(c.key, k, klen) == 0)) && pick(parg, &c)) {
            uint8_t at[KEY_MAX];
            size_t atlen = key.mv_size;
            if (atlen > KEY_MAX) {
                ret = CIO_EPROTO;
                break;
            }
            memcpy(at, key.mv_data, atlen);
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            (*removed)++;
            if ((ret = release(arg, (alloc_extent_t){c.off, c.alen})) != 0)
                break;
            /* on from where the record was: the first one after it */
            key = (MDB_val){atlen, at};
            rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
            continue;
        }
        rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, "conflicts walk");
}

static int pick_seen(const void *arg, const conflict_t *c)
{
    return vctx_seen(arg, c->loser.origin, c->loser.origin_len, c->loser.hlc);
}

int conflict_supersede(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const vctx_t *ctx,
                       conflict_free_cb release, void *arg, uint64_t *removed)
{
    uint8_t pre[KEY_MAX];
    size_t plen = table_key(pre, b, blen, k, klen, NULL);
    return remove_if(m, txn, pre, plen, k, klen, pick_seen, ctx, release, arg, removed);
}

static int pick_older(const void *arg, const conflict_t *c)
{
    return meta_ver_cmp(&c->loser, arg) < 0;
}

int conflict_purge(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version, conflict_free_cb release,
                   void *arg, uint64_t *removed)
{
    uint8_t pre[KEY_MAX];
    size_t plen = table_key(pre, b, blen, NULL, 0, NULL);
    return remove_if(m, txn, pre, plen, NULL, 0, pick_older, version, release, arg, removed);
}

int conflict_list(meta_t *m, MDB_txn *txn, const char *b, size_t blen, uint8_t *pos, size_t *pos_len, size_t max,
                  conflict_visit_cb visit, void *arg, int *more)
{
    uint8_t pre[KEY_MAX];
    size_t plen = blen > 0 ? table_key(pre, b, blen, NULL, 0, NULL) : 0;
    MDB_cursor *cur;
    MDB_val key, v;
    conflict_t c;
    size_t n = 0;
    int rc, ret = 0;

    *more = 0;
    if ((rc = mdb_cursor_open(txn, m->conflicts, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(conflicts)");
    if (*pos_len > 0) {
        key = (MDB_val){*pos_len, pos};
        rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
        if (rc == 0 && key.mv_size == *pos_len && memcmp(key.mv_data, pos, *pos_len) == 0)
            rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT); /* after it */
    } else if (plen > 0) {
        key = (MDB_val){plen, pre};
        rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &key, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
        const uint8_t *kp = key.mv_data;
        size_t bl = 0;
        if (plen > 0 && (key.mv_size < plen || memcmp(kp, pre, plen) != 0))
            break;
        if (n == max) {
            *more = 1;
            break;
        }
        while (bl < key.mv_size && kp[bl] != 0)
            bl++;
        if ((ret = decode(&v, &c)) != 0 || (ret = visit(arg, (const char *)kp, bl, &c)) != 0)
            break;
        if (key.mv_size > KEY_MAX) {
            ret = CIO_EPROTO;
            break;
        }
        memcpy(pos, kp, key.mv_size);
        *pos_len = key.mv_size;
        n++;
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, "conflicts list");
}

int conflict_expire(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, conflict_free_cb release,
                    void *arg, uint64_t *removed, int *done)
{
    MDB_cursor *cur;
    MDB_val key = {*pos_len, pos}, v;
    conflict_t c;
    size_t seen = 0;
    int rc, ret = 0;

    *removed = 0;
    *done = 0;
    if ((rc = mdb_cursor_open(txn, m->conflicts, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(conflicts)");
    rc = *pos_len > 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &key, &v, MDB_FIRST);
    while (rc == 0 && seen < max) {
        seen++;
        if (key.mv_size > KEY_MAX) {
            ret = CIO_EPROTO;
            break;
        }
        if ((ret = decode(&v, &c)) != 0)
            break;
        if (c.time_ms <= cutoff_ms) {
            uint8_t at[KEY_MAX];
            size_t atlen = key.mv_size;
            memcpy(at, key.mv_data, atlen);
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            (*removed)++;
            if ((ret = release(arg, (alloc_extent_t){c.off, c.alen})) != 0)
                break;
            key = (MDB_val){atlen, at};
            rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
            continue;
        }
        rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
    }
    if (ret == 0 && rc == 0) {
        /* stopped at a record not yet looked at: the next slice starts there */
        memcpy(pos, key.mv_data, key.mv_size);
        *pos_len = key.mv_size;
    } else if (ret == 0 && rc == MDB_NOTFOUND) {
        *pos_len = 0;
        *done = 1;
        rc = 0;
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    return rc == 0 ? 0 : meta_err(rc, "conflicts expiry");
}

int conflict_count(meta_t *m, MDB_txn *txn, uint64_t *n)
{
    MDB_stat st;
    int rc = mdb_stat(txn, m->conflicts, &st);
    if (rc != 0)
        return meta_err(rc, "mdb_stat(conflicts)");
    *n = st.ms_entries;
    return 0;
}
