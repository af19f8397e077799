/* mutate.c - the local mutations: a PUT's, DELETE's, PURGE's and bucket operation's step 3 (commit.h).
 *
 * Each runs on the committer thread inside the round's transaction: the
 * metadata, the counters and the replication log record change together.
 * Every PUT, DELETE, PURGE, bucket creation and bucket deletion takes a new
 * version from the site's clock and records the version it replaced (its
 * parent) in its log record. */
#include <stdint.h>
#include <string.h>
#include "storaged/commit_int.h"
#include "common/replog.h"

int mutate_bucket_load_or_create(commit_t *c, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *bk, int *created)
{
    meta_tomb_t t;
    int ret = meta_bucket_get(c->meta, txn, b, blen, bk);
    *created = 0;
    if (ret == CIO_ENOTFOUND) {
        memset(bk, 0, sizeof(*bk));
        bk->ctime_ms = clock_wall_ms();
        *created = 1;
        /* a bucket deleted before: it comes back for the object, still deleted (it goes again once empty) */
        ret = meta_tomb_get(c->meta, txn, b, blen, "", 0, &t);
        if (ret == 0) {
            bk->version = t.version;
            bk->deleted = 1;
        }
        return ret == CIO_ENOTFOUND ? 0 : ret;
    }
    return ret;
}

int mutate_bucket_known(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk, int had_bk, int *had_tomb,
                        meta_ver_t *known)
{
    meta_tomb_t t;
    int ret;

    *known = had_bk ? bk->version : meta_ver_make(0, "", 0);
    ret = meta_tomb_get(c->meta, txn, b, blen, "", 0, &t);
    *had_tomb = ret == 0;
    if (ret == 0 && meta_ver_cmp(&t.version, known) > 0)
        *known = t.version;
    return ret == CIO_ENOTFOUND ? 0 : ret;
}

int mutate_bucket_store(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk)
{
    meta_tomb_t t;
    int ret;

    if (!bk->deleted || bk->objects > 0)
        return meta_bucket_put(c->meta, txn, b, blen, bk);
    /* deleted and empty: the bucket goes, its delete version stays as the bucket's tombstone */
    ret = meta_bucket_del(c->meta, txn, b, blen);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    t.version = bk->version;
    t.time_ms = clock_wall_ms();
    vctx_init(&t.ctx);
    return meta_tomb_put(c->meta, txn, b, blen, "", 0, &t);
}

int mutate_key_known(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_ver_t *purge,
                     const meta_obj_t *old, int had_old, int *had_tomb, meta_tomb_t *tomb, meta_ver_t *known, vctx_t *kctx)
{
    int ret;

    *known = *purge;
    vctx_init(kctx);
    /* the purge covers what orders before it: every version of a smaller clock value (an equal one is ordered by
     * its site id: the floor stops short of it, and apply compares it with the purge's version itself) */
    if (purge->hlc > 1)
        vctx_add(kctx, "", 0, purge->hlc - 1);
    if (had_old) {
        if (meta_obj_version_cmp(old, known->hlc, known->origin, known->origin_len) > 0)
            *known = meta_ver_make(old->version, old->origin, old->origin_len);
        vctx_merge(kctx, &old->ctx);
        vctx_add(kctx, old->origin, old->origin_len, old->version);
    }
    ret = meta_tomb_get(c->meta, txn, b, blen, k, klen, tomb);
    *had_tomb = ret == 0;
    if (ret == 0) {
        if (meta_ver_cmp(&tomb->version, known) > 0)
            *known = tomb->version;
        vctx_merge(kctx, &tomb->ctx);
        vctx_add(kctx, tomb->version.origin, tomb->version.origin_len, tomb->version.hlc);
    }
    return ret == CIO_ENOTFOUND ? 0 : ret;
}

/* The version and log position of a local mutation into j: the clock's next
 * version, which follows every version this site holds (the clock has
 * passed each one it stored or applied; `known`, what the key or bucket
 * held, is passed once more all the same, for a store whose high-water mark
 * predates it), and the next seq. */
static int take_version(commit_t *c, MDB_txn *txn, commit_job_t *j, const meta_ver_t *known)
{
    int ret;
    if ((ret = hlc_now(&c->hlc, &j->version)) != 0)
        return ret;
    if (j->version <= known->hlc) {
        (void)hlc_update(&c->hlc, known->hlc);
        if ((ret = hlc_now(&c->hlc, &j->version)) != 0)
            return ret;
    }
    return replog_next_seq(c->meta, txn, &j->seq);
}

static int log_append(commit_t *c, MDB_txn *txn, commit_job_t *j, logrec_op_t op, const meta_ver_t *parent, const vctx_t *ctx)
{
    logrec_t r;
    if (!c->log_enabled) {
        c->round_unlogged = 1; /* marked once per round (commit.c): a full sync follows when replication is on again */
        return 0;
    }
    memset(&r, 0, sizeof(r));
    r.seq = j->seq;
    r.hlc = j->version;
    r.op = op;
    r.bucket = j->bucket;
    r.bucket_len = j->blen;
    r.key = j->key;
    r.key_len = logrec_op_bucket_only(op) ? 0 : j->klen;
    r.mtime_ms = j->mtime_ms;
    r.origin = c->site_id;
    r.origin_len = strlen(c->site_id);
    /* a legacy version (from before origins were recorded: origin "") names no mutation a record can carry */
    r.parent_hlc = parent->origin_len > 0 ? parent->hlc : 0;
    r.parent_origin = parent->origin;
    r.parent_origin_len = r.parent_hlc != 0 ? parent->origin_len : 0;
    if (ctx != NULL)
        r.ctx = *ctx;
    if (op == LOGREC_PUT) {
        r.size = j->size;
        memcpy(r.etag, j->etag, 16);
        r.content_type = j->ctype;
        r.content_type_len = j->ctype_len;
        r.meta = j->meta;
        r.meta_len = j->meta_len;
        if (j->op == COMMIT_MPU_COMPLETE) { /* the S3 ETag of a multipart upload's object replicates with it */
            r.mpu_parts = j->mpu_nparts;
            memcpy(r.mpu_md5, j->mpu_etag, 16);
        }
    }
    return replog_append(c->meta, txn, &r);
}

int mutate_put(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_obj_t o, old;
    meta_ver_t purge, parent;
    meta_tomb_t tomb;
    vctx_t kctx;
    int created, ret, had_old, had_tomb;

    if ((ret = mutate_bucket_load_or_create(c, txn, j->bucket, j->blen, &bk, &created)) != 0)
        return ret;
    ret = meta_obj_get(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &old);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    had_old = ret == 0;
    if (j->expect_set && (had_old ? old.version : 0) != j->expect_version)
        return CIO_ECHANGED; /* a conditional PUT lost a race: the object it checked is gone */
    if ((ret = meta_purge_get(c->meta, txn, j->bucket, j->blen, &purge)) != 0 ||
        (ret = mutate_key_known(c, txn, j->bucket, j->blen, j->key, j->klen, &purge, &old, had_old, &had_tomb, &tomb, &parent,
                                &kctx)) != 0 ||
        (ret = take_version(c, txn, j, &parent)) != 0)
        return ret;
    j->mtime_ms = clock_wall_ms();
    /* the new version follows everything the site knows of the key, kept conflict losers included: that is its
     * context, and those losers are now overwritten */
    if ((ret = replica_conflicts_supersede(c, txn, j->bucket, j->blen, j->key, j->klen, &kctx)) != 0)
        return ret;
    vctx_trim(&kctx, c->site_id, strlen(c->site_id), j->version);
    commit_obj_init(&o, j->version, c->site_id, j->ext, j->size, j->etag, j->mtime_ms, j->ctype, j->ctype_len, j->meta,
                    j->meta_len);
    o.ctx = kctx;
    if (j->op == COMMIT_MPU_COMPLETE) {
        o.mpu_parts = j->mpu_nparts;
        memcpy(o.mpu_md5, j->mpu_etag, 16);
    }
    if (j->size == 0 && !j->sums_ok) /* no bytes, no I/O: the record of no blocks */
        j->sums_ok = commit_sums_start(c, &j->sums, 0);
    if ((ret = meta_obj_put(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &o, j->sums_ok ? &j->sums : NULL)) != 0 ||
        (ret = meta_pending_del(c->meta, txn, j->ext)) != 0 ||
        (j->carved && (ret = alloc_unreserve(&c->meta->alloc, txn, j->ext.len)) != 0) ||
        (had_tomb && (ret = meta_tomb_del(c->meta, txn, j->bucket, j->blen, j->key, j->klen)) != 0))
        return ret;
    if (had_old) {
        if ((ret = reuse_quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0)
            return ret;
        bk.objects--;
        bk.bytes -= old.size;
    }
    bk.objects++;
    bk.bytes += j->size;
    if ((ret = mutate_bucket_store(c, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, had_old ? 0 : 1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, (int64_t)j->size - (had_old ? (int64_t)old.size : 0))) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_PUT, &parent, &kctx);
}

int mutate_delete(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_obj_t old;
    meta_ver_t purge, parent;
    meta_tomb_t tomb;
    vctx_t kctx;
    int ret, had_tomb;

    if ((ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk)) != 0)
        return ret; /* CIO_ENOTFOUND: no such bucket */
    ret = meta_obj_get(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &old);
    if (ret == CIO_ENOTFOUND)
        return 0; /* nothing to delete, nothing to log */
    if (ret != 0)
        return ret;
    if ((ret = meta_purge_get(c->meta, txn, j->bucket, j->blen, &purge)) != 0 ||
        (ret = mutate_key_known(c, txn, j->bucket, j->blen, j->key, j->klen, &purge, &old, 1, &had_tomb, &tomb, &parent, &kctx)) !=
            0 ||
        (ret = take_version(c, txn, j, &parent)) != 0)
        return ret;
    j->mtime_ms = clock_wall_ms();
    if ((ret = replica_conflicts_supersede(c, txn, j->bucket, j->blen, j->key, j->klen, &kctx)) != 0)
        return ret;
    vctx_trim(&kctx, c->site_id, strlen(c->site_id), j->version);
    bk.objects--;
    bk.bytes -= old.size;
    /* the tombstone stops an older PUT from another site arriving later */
    tomb.version = meta_ver_make(j->version, c->site_id, strlen(c->site_id));
    tomb.time_ms = j->mtime_ms;
    tomb.ctx = kctx;
    if ((ret = meta_obj_del(c->meta, txn, j->bucket, j->blen, j->key, j->klen)) != 0 ||
        (ret = reuse_quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0 ||
        (ret = meta_tomb_put(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &tomb)) != 0 ||
        (ret = mutate_bucket_store(c, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, -1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)old.size)) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_DELETE, &parent, &kctx);
}

typedef struct {
    commit_t *c;
    MDB_txn *txn;
    commit_job_t *j;
    int err;
} purge_ctx_t;

static int purge_one(void *ctx, const meta_obj_t *o)
{
    purge_ctx_t *p = ctx;
    /* deleting under the listing cursor is not safe: collect via quarantine, delete after */
    if ((p->err = reuse_quarantine_add(p->c, p->txn, (alloc_extent_t){o->off, o->alen})) != 0)
        return 1;
    p->j->count++;
    p->j->bytes += o->size;
    return 0;
}

int mutate_purge(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_ver_t parent, version;
    purge_ctx_t p = {c, txn, j, 0};
    int ret;

    if ((ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk)) != 0)
        return ret;
    /* every object here is older than the purge's version (the clock follows them all): all go */
    if ((ret = meta_obj_list(c->meta, txn, j->bucket, j->blen, "", 0, "", 0, SIZE_MAX, purge_one, &p)) != 0)
        return ret;
    if (p.err != 0)
        return p.err;
    /* now remove the bucket's whole key range, with the objects' checksums */
    if ((ret = meta_obj_del_bucket(c->meta, txn, j->bucket, j->blen)) != 0)
        return ret;
    if ((ret = meta_purge_get(c->meta, txn, j->bucket, j->blen, &parent)) != 0 || (ret = take_version(c, txn, j, &parent)) != 0)
        return ret;
    j->mtime_ms = clock_wall_ms();
    version = meta_ver_make(j->version, c->site_id, strlen(c->site_id));
    bk.objects = 0;
    bk.bytes = 0;
    /* the purge version stops older PUTs from other sites arriving later; it covers the tombstones */
    if ((ret = meta_purge_put(c->meta, txn, j->bucket, j->blen, &version)) != 0 ||
        (ret = meta_tomb_del_older(c->meta, txn, j->bucket, j->blen, &version)) != 0 ||
        (ret = replica_conflicts_purge(c, txn, j->bucket, j->blen, &version)) != 0 ||
        (ret = mutate_bucket_store(c, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, -(int64_t)j->count)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)j->bytes)) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_PURGE, &parent, NULL);
}

/* A bucket's creation and deletion are versioned like the other mutations
 * and logged, so that they replicate (docs/replication-apply.md, "Buckets").
 * Creating a bucket that exists changes nothing and is not logged, unless
 * it is one deleted elsewhere and kept here for its objects: creating it
 * again undoes that delete. */
int mutate_bucket(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_ver_t known;
    int had_bk, had_tomb, ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk);

    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    had_bk = ret == 0;
    if (j->op == COMMIT_BUCKET_CREATE) {
        if (had_bk && !bk.deleted)
            return 0; /* it exists: nothing to do, nothing to log */
        if ((ret = mutate_bucket_known(c, txn, j->bucket, j->blen, &bk, had_bk, &had_tomb, &known)) != 0 ||
            (ret = take_version(c, txn, j, &known)) != 0)
            return ret;
        j->mtime_ms = clock_wall_ms();
        if (!had_bk) {
            memset(&bk, 0, sizeof(bk));
            bk.ctime_ms = j->mtime_ms;
            j->created = 1;
        }
        bk.version = meta_ver_make(j->version, c->site_id, strlen(c->site_id));
        bk.deleted = 0;
        if ((ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
            (had_tomb && (ret = meta_tomb_del(c->meta, txn, j->bucket, j->blen, "", 0)) != 0))
            return ret;
        return log_append(c, txn, j, LOGREC_BUCKET_CREATE, &known, NULL);
    }
    if (!had_bk)
        return CIO_ENOTFOUND;
    if (bk.objects > 0)
        return CIO_ENOTEMPTY;
    if ((ret = mutate_bucket_known(c, txn, j->bucket, j->blen, &bk, had_bk, &had_tomb, &known)) != 0 ||
        (ret = take_version(c, txn, j, &known)) != 0)
        return ret;
    j->mtime_ms = clock_wall_ms();
    bk.version = meta_ver_make(j->version, c->site_id, strlen(c->site_id));
    bk.deleted = 1;
    /* empty: the record goes and the delete's version stays, as the bucket's tombstone */
    if ((ret = mutate_bucket_store(c, txn, j->bucket, j->blen, &bk)) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_BUCKET_DELETE, &known, NULL);
}
