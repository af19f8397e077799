/* conflict.c - the "conflicts" table (common/conflict.h). */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/be.h"
#include "common/log.h"
#include "common/conflict.h"
#include "common/conflictrec.h"

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
    return conflictrec_decode(v->mv_data, v->mv_size, c);
}

int conflict_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const conflict_t *c)
{
    uint8_t kb[KEY_MAX], vb[CONFLICTREC_HEAD_MAX];
    size_t head;
    int rc;
    if (blen == 0 || blen > LOGREC_BUCKET_MAX || !conflictrec_valid(c))
        return CIO_EINVAL;
    MDB_val key = {table_key(kb, b, blen, c->key, c->key_len, &c->loser), kb}, v = {conflictrec_encode_head(vb, c), vb};
    if (!c->has_sums)
        return meta_err(mdb_put(txn, m->conflicts, &key, &v, 0), "mdb_put(conflicts)");
    /* the checksums (up to 4 bytes a block) are encoded straight into the map, after the rest */
    head = v.mv_size;
    v.mv_size = head + conflictrec_sums_len(c);
    if ((rc = mdb_put(txn, m->conflicts, &key, &v, MDB_RESERVE)) != 0)
        return meta_err(rc, "mdb_put(conflicts)");
    memcpy(v.mv_data, vb, head);
    conflictrec_encode_sums((uint8_t *)v.mv_data + head, c);
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
