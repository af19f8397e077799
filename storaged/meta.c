/* meta.c - storaged's own tables: buckets, pending extents, tombstones, purges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/be.h"
#include "common/log.h"
#include "storaged/meta.h"

#define BUCKET_FORMAT_V1 1
#define BUCKET_FORMAT 2
#define BUCKET_FIXED_V1 25
#define BUCKET_FIXED (BUCKET_FIXED_V1 + 8 + 1 + 1)

int meta_open(meta_t *m, const char *dir, uint64_t map_size, const char *site_id, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = 0, ret;

    if ((ret = meta_open_site(m, dir, map_size, META_OPEN_CREATE, site_id, err, errlen)) != 0)
        return ret;
    if ((rc = mdb_txn_begin(m->env, NULL, 0, &txn)) != 0) {
        snprintf(err, errlen, "%s: mdb_txn_begin: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if (alloc_open(&m->alloc, txn) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "%s: cannot open the allocator's tables", dir);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, errlen, "%s: mdb_txn_commit: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    meta_close(m);
    return rc == MDB_MAP_FULL ? CIO_EMAPFULL : CIO_EDB;
}

/* ---- buckets ---- */

int meta_bucket_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *out)
{
    MDB_val k = {blen, (void *)b}, v;
    int rc = mdb_get(txn, m->buckets, &k, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(buckets)");
    const uint8_t *p = v.mv_data;
    if (v.mv_size == BUCKET_FIXED_V1 && p[0] == BUCKET_FORMAT_V1) {
        out->version = meta_ver_make(0, "", 0);
        out->deleted = 0;
    } else if (v.mv_size >= BUCKET_FIXED && p[0] == BUCKET_FORMAT && v.mv_size == BUCKET_FIXED + (size_t)p[34] &&
               (p[33] & ~1u) == 0) {
        out->version = meta_ver_make(be_get(p + 25, 8), (const char *)p + BUCKET_FIXED, p[34]);
        out->deleted = p[33] & 1;
    } else {
        return CIO_EPROTO;
    }
    out->ctime_ms = (int64_t)be_get(p + 1, 8);
    out->objects = be_get(p + 9, 8);
    out->bytes = be_get(p + 17, 8);
    return 0;
}

int meta_bucket_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk)
{
    uint8_t buf[BUCKET_FIXED + LOGREC_ORIGIN_MAX];
    size_t olen = bk->version.origin_len;
    if (olen > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    buf[0] = BUCKET_FORMAT;
    be_put(buf + 1, (uint64_t)bk->ctime_ms, 8);
    be_put(buf + 9, bk->objects, 8);
    be_put(buf + 17, bk->bytes, 8);
    be_put(buf + 25, bk->version.hlc, 8);
    buf[33] = bk->deleted ? 1 : 0;
    buf[34] = (uint8_t)olen;
    memcpy(buf + BUCKET_FIXED, bk->version.origin, olen);
    MDB_val k = {blen, (void *)b}, v = {BUCKET_FIXED + olen, buf};
    return meta_err(mdb_put(txn, m->buckets, &k, &v, 0), "mdb_put(buckets)");
}

int meta_bucket_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen)
{
    MDB_val k = {blen, (void *)b};
    return meta_err(mdb_del(txn, m->buckets, &k, NULL), "mdb_del(buckets)");
}

/* ---- pending extents ---- */

int meta_pending_add(meta_t *m, MDB_txn *txn, alloc_extent_t e)
{
    uint8_t kb[8], vb[8];
    if (e.len == 0)
        return 0;
    be_put(kb, e.off, 8);
    be_put(vb, e.len, 8);
    MDB_val k = {8, kb}, v = {8, vb};
    return meta_err(mdb_put(txn, m->pending, &k, &v, MDB_NOOVERWRITE), "mdb_put(pending)");
}

int meta_pending_del(meta_t *m, MDB_txn *txn, alloc_extent_t e)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    MDB_cursor *cur;
    uint64_t poff, plen;
    int rc, ret;

    if (e.len == 0)
        return 0;
    be_put(kb, e.off, 8);
    if ((rc = mdb_cursor_open(txn, m->pending, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(pending)");
    /* the pending extent holding e starts at e.off or is the last one before it */
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size == 8 && be_get(k.mv_data, 8) != e.off)
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc != 0) {
        mdb_cursor_close(cur);
        return rc == MDB_NOTFOUND ? CIO_EPROTO : meta_err(rc, "mdb_cursor_get(pending)");
    }
    if (k.mv_size != 8 || v.mv_size != 8) {
        mdb_cursor_close(cur);
        return CIO_EPROTO;
    }
    poff = be_get(k.mv_data, 8);
    plen = be_get(v.mv_data, 8);
    if (poff > e.off || e.off - poff > plen || e.len > plen - (e.off - poff)) {
        mdb_cursor_close(cur);
        return CIO_EPROTO;
    }
    rc = mdb_cursor_del(cur, 0);
    mdb_cursor_close(cur);
    if (rc != 0)
        return meta_err(rc, "mdb_cursor_del(pending)");
    if (e.off > poff && (ret = meta_pending_add(m, txn, (alloc_extent_t){poff, e.off - poff})) != 0)
        return ret;
    if (e.off + e.len < poff + plen)
        return meta_pending_add(m, txn, (alloc_extent_t){e.off + e.len, poff + plen - e.off - e.len});
    return 0;
}

int meta_pending_reclaim(meta_t *m, MDB_txn *txn, uint64_t *count, uint64_t *bytes)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    *count = *bytes = 0;
    if ((rc = mdb_cursor_open(txn, m->pending, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(pending)");
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        alloc_extent_t e;
        if (k.mv_size != 8 || v.mv_size != 8) {
            ret = CIO_EPROTO;
            break;
        }
        e.off = be_get(k.mv_data, 8);
        e.len = be_get(v.mv_data, 8);
        if ((ret = alloc_free(&m->alloc, txn, e)) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            ret = meta_err(rc, "mdb_cursor_del(pending)");
            break;
        }
        (*count)++;
        *bytes += e.len;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(pending)");
    mdb_cursor_close(cur);
    if (ret == 0)
        ret = alloc_unreserve_all(&m->alloc, txn, NULL); /* every reservation was pending, so is free now */
    return ret;
}

/* ---- replica: tombstones and purges ---- */

/* Format 2: format byte, version (u64 BE), time (i64 BE), origin (u8
 * length, bytes), key (u16 BE length, bytes). Format 3: the same followed
 * by the causal context (vctx_encode), written when it is not empty. Format
 * 1 (metadata format 1, still read, never written) has no origin: it reads
 * as origin "". */
#define TOMB_FORMAT_V1 1
#define TOMB_FORMAT 2
#define TOMB_FORMAT_CTX 3
#define TOMB_FIXED_V1 (1 + 8 + 8 + 2)
#define TOMB_FIXED (TOMB_FIXED_V1 + 1)

static int tomb_decode(const MDB_val *v, meta_tomb_t *t, const uint8_t **key, size_t *klen)
{
    const uint8_t *p = v->mv_data;
    size_t olen = 0, fixed, used;
    if (v->mv_size < TOMB_FIXED_V1 || (p[0] != TOMB_FORMAT && p[0] != TOMB_FORMAT_CTX && p[0] != TOMB_FORMAT_V1))
        return CIO_EPROTO;
    vctx_init(&t->ctx);
    if (p[0] != TOMB_FORMAT_V1) {
        if (v->mv_size < TOMB_FIXED || (olen = p[17]) > LOGREC_ORIGIN_MAX || v->mv_size < TOMB_FIXED + olen)
            return CIO_EPROTO;
        fixed = TOMB_FIXED + olen;
        t->version = meta_ver_make(be_get(p + 1, 8), (const char *)p + 18, olen);
    } else {
        fixed = TOMB_FIXED_V1;
        t->version = meta_ver_make(be_get(p + 1, 8), "", 0);
    }
    t->time_ms = (int64_t)be_get(p + 9, 8);
    *klen = (size_t)(p[fixed - 2] << 8 | p[fixed - 1]);
    if (*klen > LOGREC_KEY_MAX || v->mv_size < fixed + *klen || (p[0] != TOMB_FORMAT_CTX && v->mv_size != fixed + *klen))
        return CIO_EPROTO;
    *key = p + fixed;
    if (p[0] == TOMB_FORMAT_CTX &&
        (vctx_decode(p + fixed + *klen, v->mv_size - fixed - *klen, &t->ctx, &used) != 0 || used != v->mv_size - fixed - *klen))
        return CIO_EPROTO;
    return 0;
}

int meta_tomb_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_tomb_t *out)
{
    uint8_t kb[META_OBJKEY_MAX];
    const uint8_t *full;
    size_t flen;
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v;
    int rc = mdb_get(txn, m->tombstones, &key, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(tombstones)");
    if ((rc = tomb_decode(&v, out, &full, &flen)) != 0)
        return rc;
    /* a hashed key must still be the same key */
    if (flen != klen || memcmp(full, k, klen) != 0)
        return CIO_ENOTFOUND;
    return 0;
}

int meta_tomb_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_tomb_t *t)
{
    uint8_t kb[META_OBJKEY_MAX], vb[TOMB_FIXED + LOGREC_ORIGIN_MAX + LOGREC_KEY_MAX + VCTX_ENCODED_MAX];
    size_t olen = t->version.origin_len, clen = 0;
    int with_ctx = t->ctx.n > 0 || t->ctx.floor != 0;
    if (klen > LOGREC_KEY_MAX || olen > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    vb[0] = with_ctx ? TOMB_FORMAT_CTX : TOMB_FORMAT;
    be_put(vb + 1, t->version.hlc, 8);
    be_put(vb + 9, (uint64_t)t->time_ms, 8);
    vb[17] = (uint8_t)olen;
    memcpy(vb + 18, t->version.origin, olen);
    vb[18 + olen] = (uint8_t)(klen >> 8);
    vb[19 + olen] = (uint8_t)klen;
    memcpy(vb + TOMB_FIXED + olen, k, klen);
    if (with_ctx)
        clen = vctx_encode(vb + TOMB_FIXED + olen + klen, &t->ctx);
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb}, v = {TOMB_FIXED + olen + klen + clen, vb};
    return meta_err(mdb_put(txn, m->tombstones, &key, &v, 0), "mdb_put(tombstones)");
}

int meta_tomb_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_val key = {meta_objkey(kb, b, blen, k, klen), kb};
    int rc = mdb_del(txn, m->tombstones, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(tombstones)");
}

/* Which entries of a bucket's key range go: 1 delete, 0 keep, <0 error. */
typedef int (*range_pick_cb)(void *ctx, const MDB_val *v);

/* Walks the keys "b NUL ..." of dbi and deletes those `pick` chooses. After a
 * delete the cursor seeks again to the deleted key, which lands on its
 * successor: no reliance on cursor state across mdb_cursor_del. */
static int range_del(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *b, size_t blen, range_pick_cb pick, void *ctx)
{
    uint8_t at[META_OBJKEY_MAX];
    size_t atlen = blen + 1;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret = 0;

    memcpy(at, b, blen);
    at[blen] = 0;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return meta_err(rc, what);
    k = (MDB_val){atlen, at};
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size <= blen || memcmp(k.mv_data, b, blen) != 0 || ((uint8_t *)k.mv_data)[blen] != 0)
            break; /* left the bucket */
        if ((ret = pick(ctx, &v)) < 0)
            goto done;
        if (ret == 0) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        ret = 0;
        if (k.mv_size > sizeof(at)) {
            ret = CIO_EPROTO;
            goto done;
        }
        atlen = k.mv_size;
        memcpy(at, k.mv_data, atlen);
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        k = (MDB_val){atlen, at};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, what);
done:
    mdb_cursor_close(cur);
    return ret;
}

static int pick_older_tomb(void *ctx, const MDB_val *v)
{
    const meta_ver_t *version = ctx;
    meta_tomb_t t;
    const uint8_t *key;
    size_t klen;
    int ret = tomb_decode(v, &t, &key, &klen);
    if (ret != 0)
        return ret;
    /* the bucket's own tombstone (empty key) is about the bucket, not its objects: a purge keeps it */
    return klen > 0 && meta_ver_cmp(&t.version, version) < 0;
}

int meta_tomb_del_older(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version)
{
    return range_del(txn, m->tombstones, "purge tombstones", b, blen, pick_older_tomb, (void *)version);
}

typedef struct {
    meta_obj_pick_cb pick;
    void *ctx;
} obj_pick_t;

static int pick_obj(void *ctx, const MDB_val *v)
{
    obj_pick_t *p = ctx;
    meta_obj_t obj;
    int ret = meta_obj_decode(v, &obj);
    if (ret != 0)
        return ret;
    return p->pick(p->ctx, &obj);
}

int meta_obj_del_if(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_obj_pick_cb pick, void *ctx)
{
    obj_pick_t p = {pick, ctx};
    return range_del(txn, m->objects, "remove objects", b, blen, pick_obj, &p);
}

int meta_tomb_gc(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, uint64_t *removed,
                 int *done)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t seen = 0;
    int rc, ret = 0;

    *removed = 0;
    *done = 0;
    if ((rc = mdb_cursor_open(txn, m->tombstones, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(tombstones)");
    if (*pos_len == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k = (MDB_val){*pos_len, pos};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    while (rc == 0 && seen < max) {
        meta_tomb_t t;
        const uint8_t *key;
        size_t klen;
        seen++;
        if ((ret = tomb_decode(&v, &t, &key, &klen)) != 0)
            goto done;
        if (k.mv_size > META_OBJKEY_MAX) {
            ret = CIO_EPROTO;
            goto done;
        }
        /* remember where we are: the next slice resumes at the successor */
        *pos_len = k.mv_size;
        memcpy(pos, k.mv_data, k.mv_size);
        if (t.time_ms <= cutoff_ms) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            (*removed)++;
            k = (MDB_val){*pos_len, pos};
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        } else {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    if (rc == MDB_NOTFOUND) {
        *done = 1;
        *pos_len = 0;
    } else if (rc != 0) {
        ret = meta_err(rc, "tombstone collection");
    } else {
        /* stopped at a tombstone not yet looked at: resume exactly there */
        if (k.mv_size > META_OBJKEY_MAX) {
            ret = CIO_EPROTO;
            goto done;
        }
        *pos_len = k.mv_size;
        memcpy(pos, k.mv_data, k.mv_size);
    }
done:
    mdb_cursor_close(cur);
    return ret;
}

int meta_tomb_count(meta_t *m, MDB_txn *txn, uint64_t *n)
{
    MDB_stat st;
    int rc = mdb_stat(txn, m->tombstones, &st);
    if (rc != 0)
        return meta_err(rc, "mdb_stat(tombstones)");
    *n = st.ms_entries;
    return 0;
}

int meta_purge_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_ver_t *version)
{
    MDB_val k = {blen, (void *)b}, v;
    int rc = mdb_get(txn, m->purges, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *version = meta_ver_make(0, "", 0);
        return 0;
    }
    if (rc != 0)
        return meta_err(rc, "mdb_get(purges)");
    if (v.mv_size < 8 || v.mv_size > 8 + LOGREC_ORIGIN_MAX)
        return CIO_EPROTO;
    *version = meta_ver_make(be_get(v.mv_data, 8), (const char *)v.mv_data + 8, v.mv_size - 8);
    return 0;
}

int meta_purge_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version)
{
    uint8_t buf[8 + LOGREC_ORIGIN_MAX];
    if (version->origin_len > LOGREC_ORIGIN_MAX)
        return CIO_EINVAL;
    be_put(buf, version->hlc, 8);
    memcpy(buf + 8, version->origin, version->origin_len);
    MDB_val k = {blen, (void *)b}, v = {8 + (size_t)version->origin_len, buf};
    return meta_err(mdb_put(txn, m->purges, &k, &v, 0), "mdb_put(purges)");
}
