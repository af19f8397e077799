/* meta.c - storaged's own tables: buckets, pending extents, tombstones, purges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/be.h"
#include "common/log.h"
#include "storaged/meta.h"
#include "storaged/mpu.h"

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
    if (alloc_open(&m->alloc, txn) != 0 || mpu_open(m, txn) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "%s: cannot open the allocator's or the multipart tables", dir);
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
    int ret = meta_tomb_decode(v, &t, &key, &klen);
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
    meta_t *m;
    MDB_txn *txn;
    const char *b;
    size_t blen;
} obj_pick_t;

static int pick_obj(void *ctx, const MDB_val *v)
{
    obj_pick_t *p = ctx;
    meta_obj_t obj;
    int ret = meta_obj_decode(v, &obj);
    if (ret != 0)
        return ret;
    if ((ret = p->pick(p->ctx, &obj)) <= 0)
        return ret;
    /* the object goes: its checksums with it (another table: the cursor over "objects" is not disturbed) */
    return (ret = meta_sums_del(p->m, p->txn, p->b, p->blen, obj.key, obj.key_len)) != 0 ? ret : 1;
}

int meta_obj_del_if(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_obj_pick_cb pick, void *ctx)
{
    obj_pick_t p = {pick, ctx, m, txn, b, blen};
    return range_del(txn, m->objects, "remove objects", b, blen, pick_obj, &p);
}

int meta_tomb_gc(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, uint64_t *removed,
                 uint64_t *newest, int *done)
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
        if ((ret = meta_tomb_decode(&v, &t, &key, &klen)) != 0)
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
            if (t.version.hlc > *newest)
                *newest = t.version.hlc;
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
