/* replica.c - the apply of another site's events (COMMIT_APPLY): last writer wins by (version, origin), tombstones, purges,
 * buckets.
 *
 * The rules are in docs/replication-apply.md; the batch is decoded by apply.c
 * and its bodies written or fetched by commit_io.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "common/replog.h"
#include "storaged/commit_int.h"
#include "common/conflict.h"

void replica_item_set(commit_item_t *it, batch_result_t result, unsigned status, const char *fmt, ...)
{
    va_list ap;
    it->final = 1;
    it->result = result;
    it->status = status;
    va_start(ap, fmt);
    vsnprintf(it->error, sizeof(it->error), fmt, ap);
    va_end(ap);
}

void replica_item_fail(commit_item_t *it, int err)
{
    replica_item_set(it, BATCH_RETRY, err == CIO_ENOSPC || err == CIO_EMAPFULL ? 507 : 500, "%s", cio_strerror(err));
}

void replica_item_log(const commit_item_t *it, log_level_t lvl, const char *msg)
{
    char ver[24], key[LOGREC_KEY_MAX + 1];
    snprintf(ver, sizeof(ver), "%" PRIu64, it->version);
    snprintf(key, sizeof(key), "%.*s", (int)it->klen, it->key);
    log_msg(lvl, msg, "op", logrec_op_name(it->op), "bucket", it->bucket, "key", key, "version", ver, "origin",
            it->origin != NULL ? it->origin : "", "error", it->error, NULL);
}

/* What one job's pass over its items (one call, one transaction) remembers:
 * the purge version and the record of the bucket it saw last (consecutive
 * events mostly share a bucket), and the changes to the "objects" and
 * "bytes" counters. The record's changes and the counters are written by
 * apply_cache_flush, before anything else may read them. */
typedef struct {
    const char *bucket; /* NULL: nothing cached */
    size_t blen;
    meta_ver_t purge;
    int have_bk, bk_dirty;
    meta_bucket_t bk;
    int64_t objects, bytes;
    int have_horizon;
    uint64_t horizon; /* META_TOMB_HORIZON, read once per job */
} apply_cache_t;

static int apply_cache_flush(commit_t *c, MDB_txn *txn, apply_cache_t *ac)
{
    int ret;
    if (ac->bk_dirty && (ret = mutate_bucket_store(c, txn, ac->bucket, ac->blen, &ac->bk)) != 0)
        return ret;
    if (ac->objects != 0 && (ret = meta_state_add(c->meta, txn, META_OBJECTS, ac->objects)) != 0)
        return ret;
    if (ac->bytes != 0 && (ret = meta_state_add(c->meta, txn, META_BYTES, ac->bytes)) != 0)
        return ret;
    memset(ac, 0, sizeof(*ac));
    return 0;
}

/* The item's bucket becomes the cached one. */
static int apply_cache_bucket(commit_t *c, MDB_txn *txn, apply_cache_t *ac, const commit_item_t *it)
{
    int ret;
    if (ac->bucket != NULL && ac->blen == it->blen && memcmp(ac->bucket, it->bucket, it->blen) == 0)
        return 0;
    if ((ret = apply_cache_flush(c, txn, ac)) != 0 || (ret = meta_purge_get(c->meta, txn, it->bucket, it->blen, &ac->purge)) != 0)
        return ret;
    ac->bucket = it->bucket;
    ac->blen = it->blen;
    return 0;
}

/* The cached bucket's record, created (in memory) when missing and `create`. */
static int apply_cache_bk(commit_t *c, MDB_txn *txn, apply_cache_t *ac, int create, meta_bucket_t **bk)
{
    int created, ret;
    if (!ac->have_bk) {
        created = 0;
        ret = create ? mutate_bucket_load_or_create(c, txn, ac->bucket, ac->blen, &ac->bk, &created)
                     : meta_bucket_get(c->meta, txn, ac->bucket, ac->blen, &ac->bk);
        if (ret != 0)
            return ret;
        ac->have_bk = 1;
        ac->bk_dirty = created;
    }
    *bk = &ac->bk;
    return 0;
}

/* What this site knows of the item's key (mutate_key_known: the largest of
 * its object's version, whether written here or applied, its tombstone's
 * and its bucket's purge version; a PURGE looks at the purge version only).
 * *had_old tells whether `old` holds the object, *had_tomb whether the key
 * has a tombstone. */
static int known_version(commit_t *c, MDB_txn *txn, apply_cache_t *ac, const commit_item_t *it, meta_ver_t *known, meta_obj_t *old,
                         int *had_old, int *had_tomb, meta_tomb_t *tomb, vctx_t *kctx)
{
    int ret;

    *had_old = *had_tomb = 0;
    vctx_init(kctx);
    if ((ret = apply_cache_bucket(c, txn, ac, it)) != 0)
        return ret;
    *known = ac->purge;
    if (it->op == LOGREC_PURGE)
        return 0;
    ret = meta_obj_get(c->meta, txn, it->bucket, it->blen, it->key, it->klen, old);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    *had_old = ret == 0;
    return mutate_key_known(c, txn, it->bucket, it->blen, it->key, it->klen, &ac->purge, old, *had_old, had_tomb, tomb, known,
                            kctx);
}

/* The key's context once the item is known here: what the site knew (kctx)
 * merged with the item's own context and version. */
static void item_merge_ctx(const commit_item_t *it, vctx_t *kctx)
{
    vctx_merge(kctx, &it->ctx);
    vctx_add(kctx, it->origin, it->origin_len, it->version);
}

/* Marks the item skipped when it is no newer than what is known (equal:
 * the same mutation, a duplicate); 1 if so. */
static int item_stale(commit_item_t *it, const meta_ver_t *known)
{
    int cmp = hlc_version_cmp(it->version, it->origin, it->origin_len, known->hlc, known->origin, known->origin_len);
    if (cmp > 0)
        return 0;
    if (cmp == 0)
        replica_item_set(it, BATCH_SKIPPED, 200, "duplicate: this version is already applied");
    else
        replica_item_set(it, BATCH_SKIPPED, 200, "stale: this site holds version %" PRIu64 " from \"%s\"", known->hlc,
                         known->origin);
    return 1;
}

/* A PUT of a version this site wrote, of a key it holds neither as an
 * object nor as a tombstone, below its tombstone horizon: this site
 * deleted that key and the tombstone has expired (docs/replication-apply.md,
 * "Tombstone horizon"), so the PUT is stale, however it got here (a peer's
 * full sync or log that missed the delete). Marks it skipped: 1; 0 when
 * not; or an error. */
static int collected_here(commit_t *c, MDB_txn *txn, apply_cache_t *ac, commit_item_t *it, const meta_ver_t *held)
{
    size_t slen = strlen(c->site_id);
    int ret;
    if (it->op != LOGREC_PUT || held->hlc != 0 || it->origin_len != slen || memcmp(it->origin, c->site_id, slen) != 0)
        return 0;
    if (!ac->have_horizon) {
        if ((ret = meta_state_get(c->meta, txn, META_TOMB_HORIZON, &ac->horizon)) != 0)
            return ret;
        ac->have_horizon = 1;
    }
    if (it->version >= ac->horizon)
        return 0;
    replica_item_set(it, BATCH_SKIPPED, 200,
                     "stale: written here and deleted here since; the tombstone has expired (tombstone horizon %" PRIu64 ")",
                     ac->horizon);
    return 1;
}

/* What becomes of a PUT or DELETE (docs/replication-apply.md, "Conflicts"). */
typedef enum {
    FATE_SEEN,  /* the key's context has it (a duplicate, or older than something that followed it), or a purge covers
                   it: skipped (final), never a conflict, not logged again */
    FATE_NEW,   /* it follows what the key holds (or the key holds nothing): applied */
    FATE_WINS,  /* concurrent with what the key holds, and the last writer: applied, a conflict */
    FATE_LOSES, /* concurrent with what the key holds, and not the last writer: not applied, a conflict */
} item_fate_t;

/* The version the key holds: its object's or its tombstone's, the larger
 * (hlc 0: none). */
static meta_ver_t held_version(const meta_obj_t *old, int had_old, const meta_tomb_t *tomb, int had_tomb)
{
    meta_ver_t held = meta_ver_make(0, "", 0);
    if (had_old)
        held = meta_ver_make(old->version, old->origin, old->origin_len);
    if (had_tomb && meta_ver_cmp(&tomb->version, &held) > 0)
        held = tomb->version;
    return held;
}

/* The fate of item `it` at a key whose context is kctx and which holds
 * version `held`, in a bucket last purged at `purge`. Marks a seen item
 * skipped (final). The event descends from `held` when its own context, or
 * its own version (a site's writes follow each other), covers it. A held
 * version of no site (a format-1 store's) predates contexts: it is taken
 * for an ancestor, and last-writer-wins alone decides. */
static item_fate_t item_fate(commit_item_t *it, const vctx_t *kctx, const meta_ver_t *purge, const meta_ver_t *held)
{
    int descends;

    if (vctx_seen(kctx, it->origin, it->origin_len, it->version)) {
        if (held->hlc == it->version && held->origin_len == it->origin_len && memcmp(held->origin, it->origin, it->origin_len) == 0)
            replica_item_set(it, BATCH_SKIPPED, 200, "duplicate: this version is already applied");
        else
            replica_item_set(it, BATCH_SKIPPED, 200, "stale: already seen here; this site holds version %" PRIu64 " from \"%s\"",
                             held->hlc, held->origin);
        return FATE_SEEN;
    }
    if (hlc_version_cmp(it->version, it->origin, it->origin_len, purge->hlc, purge->origin, purge->origin_len) <= 0) {
        replica_item_set(it, BATCH_SKIPPED, 200, "stale: the bucket was purged at version %" PRIu64 " from \"%s\"", purge->hlc,
                         purge->origin);
        return FATE_SEEN;
    }
    if (held->hlc == 0)
        return FATE_NEW;
    descends = held->origin_len == 0 || vctx_seen(&it->ctx, held->origin, held->origin_len, held->hlc) ||
               (held->origin_len == it->origin_len && memcmp(held->origin, it->origin, it->origin_len) == 0);
    int cmp = hlc_version_cmp(it->version, it->origin, it->origin_len, held->hlc, held->origin, held->origin_len);
    if (descends) {
        if (cmp > 0)
            return FATE_NEW;
        /* a descendant orders after its ancestor (the clock's receive rule): only a version of no site gets here */
        replica_item_set(it, BATCH_SKIPPED, 200, "stale: this site holds version %" PRIu64 " from \"%s\"", held->hlc, held->origin);
        return FATE_SEEN;
    }
    return cmp > 0 ? FATE_WINS : FATE_LOSES;
}

/* Step 1: extents for the PUTs not already stale. They are cut from one
 * extent for the whole job when the free map has one that large (j->ext,
 * marked pending as a whole: one allocation, one pending record, where a
 * batch of small objects would otherwise take one of each per object), else
 * taken one by one. Only fatal errors are returned; an item that cannot have
 * its extent (507) fails alone. */
int replica_allocate(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    uint8_t empty_md5[16];
    apply_cache_t ac;
    uint64_t want = 0;
    size_t nwant = 0;
    int ret;

    memset(&ac, 0, sizeof(ac));
    j->apply_io = 0;
    j->ext = (alloc_extent_t){0, 0};
    EVP_Digest("", 0, empty_md5, NULL, EVP_md5(), NULL);
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        meta_ver_t known, held;
        meta_obj_t old;
        meta_tomb_t tomb;
        vctx_t kctx;
        int had_old, had_tomb;
        item_fate_t fate;

        it->job = j;
        it->ext = (alloc_extent_t){0, 0};
        it->needs_ext = 0;
        if (it->final || it->op != LOGREC_PUT)
            continue;
        if ((ret = known_version(c, txn, &ac, it, &known, &old, &had_old, &had_tomb, &tomb, &kctx)) != 0)
            return ret;
        held = held_version(&old, had_old, &tomb, had_tomb);
        if ((ret = collected_here(c, txn, &ac, it, &held)) != 0) {
            if (ret < 0)
                return ret;
            continue;
        }
        fate = item_fate(it, &kctx, &ac.purge, &held);
        if (fate == FATE_SEEN)
            continue; /* nothing to write (a loser's bytes are: they are kept) */
        if (it->size == 0) {
            if (CRYPTO_memcmp(it->etag, empty_md5, 16) != 0)
                replica_item_set(it, BATCH_PERMANENT, 400, "an empty object whose ETag is not the MD5 of nothing");
            continue; /* nothing to write: finished in step 3 */
        }
        it->needs_ext = 1;
        if (want < UINT64_MAX / 4 && it->size < UINT64_MAX / 4)
            want += alloc_round(it->size);
        else
            want = UINT64_MAX; /* no run: one by one */
        nwant++;
    }
    /* nothing written in this pass: ac needs no flush */
    if (nwant == 0)
        return 0;
    if (nwant > 1 && want < UINT64_MAX / 4) {
        ret = commit_mpu_alloc(c, txn, want, 1, &j->ext);
        if (ret == 0) {
            uint64_t off = j->ext.off;
            if ((ret = meta_pending_add(c->meta, txn, j->ext)) != 0)
                return ret;
            for (size_t i = 0; i < j->nitems; i++) {
                commit_item_t *it = &j->items[i];
                if (!it->needs_ext)
                    continue;
                it->ext = (alloc_extent_t){off, alloc_round(it->size)};
                off += it->ext.len;
            }
            j->apply_io = 1;
            return 0;
        }
        j->ext = (alloc_extent_t){0, 0};
        if (commit_fatal(ret))
            return ret;
        /* no free extent that large: one by one below */
    }
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        if (!it->needs_ext)
            continue;
        ret = reuse_take_extent(c, txn, it->size, &it->ext);
        if (ret == 0 && (ret = meta_pending_add(c->meta, txn, it->ext)) != 0)
            return ret; /* the allocation is in txn: only a failed round undoes it */
        if (ret != 0) {
            if (commit_fatal(ret))
                return ret;
            it->ext = (alloc_extent_t){0, 0};
            replica_item_fail(it, ret);
            continue;
        }
        j->apply_io = 1;
    }
    return 0;
}

typedef struct {
    commit_t *c;
    MDB_txn *txn;
    const meta_ver_t *version;
    uint64_t count, bytes;
} apply_purge_ctx_t;

/* A PURGE removes what is older than it, from whichever site; what was
 * written after it (on any site, as the order of versions tells) stays. */
static int apply_purge_pick(void *ctx, const meta_obj_t *o)
{
    apply_purge_ctx_t *p = ctx;
    int ret;
    if (meta_obj_version_cmp(o, p->version->hlc, p->version->origin, p->version->origin_len) > 0)
        return 0;
    if ((ret = reuse_quarantine_add(p->c, p->txn, (alloc_extent_t){o->off, o->alen})) != 0)
        return ret;
    p->count++;
    p->bytes += o->size;
    return 1;
}

/* An applied event, logged again on a site that replicates on: a new seq
 * of this site's log, with the event's version, origin and parent
 * unchanged, so that the next site applies the origin's mutation. An event
 * that is not applied (a duplicate, a stale one) is never logged again:
 * that is what ends every loop (docs/replication-apply.md). */
static int relog(commit_t *c, MDB_txn *txn, const commit_item_t *it)
{
    logrec_t r;
    int ret;

    if (!c->log_enabled) {
        c->round_unlogged = 1; /* as mutate.c's log_append */
        return 0;
    }
    memset(&r, 0, sizeof(r));
    if ((ret = replog_next_seq(c->meta, txn, &r.seq)) != 0)
        return ret;
    r.hlc = it->version;
    r.op = it->op;
    r.bucket = it->bucket;
    r.bucket_len = it->blen;
    r.key = it->key;
    r.key_len = logrec_op_bucket_only(it->op) ? 0 : it->klen;
    r.mtime_ms = it->mtime_ms;
    r.origin = it->origin;
    r.origin_len = it->origin_len;
    r.parent_hlc = it->parent_version;
    r.parent_origin = it->parent_origin;
    r.parent_origin_len = it->parent_origin_len;
    r.ctx = it->ctx;
    if (it->op == LOGREC_PUT) {
        r.size = it->size;
        memcpy(r.etag, it->etag, 16);
        r.content_type = it->ctype;
        r.content_type_len = it->ctype_len;
        r.meta = it->meta;
        r.meta_len = it->meta_len;
        r.mpu_parts = it->mpu_parts;
        memcpy(r.mpu_md5, it->mpu_md5, 16);
    }
    return replog_append(c->meta, txn, &r);
}

/* Step 3 for a bucket CREATE or DELETE: last writer wins with the bucket's
 * own version (its record's, or its tombstone's once it is gone). A CREATE
 * makes the bucket exist; a DELETE removes it only when it holds no object
 * here: else it stays, marked deleted, until its last object goes (an
 * applied event never deletes data), and a warning says so. Logged again
 * when applied, like every event. Only fatal errors are returned. */
static int apply_bucket(commit_t *c, MDB_txn *txn, apply_cache_t *ac, commit_item_t *it)
{
    meta_bucket_t bk;
    meta_tomb_t tomb;
    meta_ver_t known, version = meta_ver_make(it->version, it->origin, it->origin_len);
    int ret, had_bk, had_tomb;

    /* the event reads and writes the bucket's record: what is cached goes first, and is forgotten */
    if ((ret = apply_cache_flush(c, txn, ac)) != 0)
        return ret;
    ret = meta_bucket_get(c->meta, txn, it->bucket, it->blen, &bk);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    had_bk = ret == 0;
    if ((ret = mutate_bucket_known(c, txn, it->bucket, it->blen, &bk, had_bk, &had_tomb, &known)) != 0)
        return ret;
    if (item_stale(it, &known))
        return 0;
    if ((ret = relog(c, txn, it)) != 0) {
        if (commit_fatal(ret))
            return ret;
        replica_item_set(it, BATCH_PERMANENT, 400, "cannot log the event for this site's targets: %s", cio_strerror(ret));
        return 0;
    }
    if (it->op == LOGREC_BUCKET_CREATE) {
        if (!had_bk) {
            memset(&bk, 0, sizeof(bk));
            bk.ctime_ms = it->mtime_ms; /* created then, on its origin */
        }
        bk.version = version;
        bk.deleted = 0;
        if ((ret = meta_bucket_put(c->meta, txn, it->bucket, it->blen, &bk)) != 0 ||
            (had_tomb && (ret = meta_tomb_del(c->meta, txn, it->bucket, it->blen, "", 0)) != 0))
            return ret;
    } else if (had_bk) {
        bk.version = version;
        bk.deleted = 1;
        if ((ret = mutate_bucket_store(c, txn, it->bucket, it->blen, &bk)) != 0)
            return ret;
        if (bk.objects > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, bk.objects);
            replica_item_set(it, BATCH_APPLIED, 200, "the bucket holds %" PRIu64 " objects here: it stays until they are deleted",
                             bk.objects);
            log_msg(LOG_LVL_WARN, "replicated bucket delete: the bucket is not empty here, it stays until its objects are deleted",
                    "bucket", it->bucket, "objects", n, "origin", it->origin, NULL);
            return 0;
        }
    } else {
        tomb.version = version;
        tomb.time_ms = clock_wall_ms();
        vctx_init(&tomb.ctx);
        if ((ret = meta_tomb_put(c->meta, txn, it->bucket, it->blen, "", 0, &tomb)) != 0)
            return ret;
    }
    replica_item_set(it, BATCH_APPLIED, 200, "%s", "");
    return 0;
}

/* A superseded or purged loser's extent is freed like a replaced object's. */
static int release_extent(void *arg, alloc_extent_t ext)
{
    void **a = arg;
    return ext.len > 0 ? reuse_quarantine_add(a[0], a[1], ext) : 0;
}

int replica_conflicts_supersede(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                                const vctx_t *ctx)
{
    void *arg[2] = {c, txn};
    uint64_t removed;
    return conflict_supersede(c->meta, txn, b, blen, k, klen, ctx, release_extent, arg, &removed);
}

int replica_conflicts_purge(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version)
{
    void *arg[2] = {c, txn};
    uint64_t removed;
    return conflict_purge(c->meta, txn, b, blen, version, release_extent, arg, &removed);
}

int replica_conflict_remove(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    alloc_extent_t ext;
    int ret = conflict_del(c->meta, txn, j->bucket, j->blen, j->key, j->klen, j->loser_version, j->loser_origin,
                           j->loser_origin_len, &ext);
    if (ret != 0)
        return ret;
    return ext.len > 0 ? reuse_quarantine_add(c, txn, ext) : 0;
}

/* Keeps the key's held version, which event `it` beat: the object (with
 * its extent, which the caller then keeps rather than frees, and its block
 * checksums, which the winner's write is about to replace) or the tombstone
 * (no bytes). */
static int keep_held(commit_t *c, MDB_txn *txn, const commit_item_t *it, const meta_obj_t *old, int held_is_obj,
                     const meta_ver_t *held)
{
    conflict_t k;
    uint8_t *owned = NULL;
    int ret;
    memset(&k, 0, sizeof(k));
    k.loser = *held;
    k.winner = meta_ver_make(it->version, it->origin, it->origin_len);
    k.time_ms = clock_wall_ms();
    k.key_len = (uint16_t)it->klen;
    memcpy(k.key, it->key, it->klen);
    if (held_is_obj) {
        k.off = old->off;
        k.alen = old->alen;
        k.size = old->size;
        memcpy(k.etag, old->etag, 16);
        k.mtime_ms = old->mtime_ms;
        k.ctype_len = old->ctype_len;
        memcpy(k.ctype, old->ctype, old->ctype_len);
        k.meta_len = old->meta_len;
        memcpy(k.meta, old->meta, old->meta_len);
        /* its inline CRC, or a copy of its record's CRCs (they point into the map, which the put may move);
         * none when it has none (written before checksums): then the loser is read unverified, as it was */
        ret = meta_sums_view(c->meta, txn, it->bucket, it->blen, it->key, it->klen, old, 0, old->size, &k.sums);
        if (ret == 0 && (ret = blocksum_view_copy(&k.sums, &owned)) != 0)
            return ret;
        if (ret != 0 && ret != CIO_ENOTFOUND && ret != CIO_EPROTO)
            return ret;
        k.has_sums = ret == 0;
    } else {
        k.deleted = 1;
    }
    ret = conflict_put(c->meta, txn, it->bucket, it->blen, &k);
    free(owned);
    return ret;
}

/* Keeps event `it`, which lost to `held`: a PUT with its bytes (its extent
 * becomes the record's), a DELETE without. */
static int keep_event(commit_t *c, MDB_txn *txn, commit_item_t *it, const meta_ver_t *held)
{
    conflict_t k;
    uint8_t *owned = NULL;
    int ret;
    memset(&k, 0, sizeof(k));
    k.loser = meta_ver_make(it->version, it->origin, it->origin_len);
    k.winner = *held;
    k.time_ms = clock_wall_ms();
    k.key_len = (uint16_t)it->klen;
    memcpy(k.key, it->key, it->klen);
    k.mtime_ms = it->mtime_ms;
    if (it->op == LOGREC_PUT) {
        k.off = it->ext.off;
        k.alen = it->ext.len;
        k.size = it->size;
        memcpy(k.etag, it->etag, 16);
        k.ctype_len = (uint16_t)it->ctype_len;
        memcpy(k.ctype, it->ctype, it->ctype_len);
        k.meta_len = (uint16_t)it->meta_len;
        if (it->meta_len > 0)
            memcpy(k.meta, it->meta, it->meta_len);
        /* the checksums computed from the bytes received (their MD5 checked): the record keeps them */
        if (it->size == 0 && !it->sums_ok) /* no bytes, no I/O: the record of no blocks */
            it->sums_ok = commit_sums_start(c, &it->sums, 0);
        if (it->sums_ok && (ret = conflict_sums_from_calc(&k, &it->sums, &owned)) != 0 && ret != CIO_EINVAL)
            return ret; /* (sums not of its size, which cannot be: kept without them) */
    } else {
        k.deleted = 1;
    }
    ret = conflict_put(c->meta, txn, it->bucket, it->blen, &k);
    free(owned);
    if (ret != 0)
        return ret;
    if (it->ext.len > 0) {
        /* the record owns the extent now: not pending, not freed by replica_finish */
        if (it->job->ext.len == 0 && (ret = meta_pending_del(c->meta, txn, it->ext)) != 0)
            return ret;
        it->ext = (alloc_extent_t){0, 0};
    }
    return 0;
}

/* Step 3 for one item that is still undecided: staleness again (another
 * batch may have applied a newer version since step 1), then the record
 * for the site's own log (first: an event that cannot be logged is refused
 * before anything changes), then the change. Only fatal errors are
 * returned. */
static int apply_item(commit_t *c, MDB_txn *txn, apply_cache_t *ac, commit_item_t *it, uint64_t *conflicts)
{
    meta_bucket_t *bk;
    meta_obj_t o, old;
    meta_tomb_t tomb;
    vctx_t kctx;
    meta_ver_t known, held, version = meta_ver_make(it->version, it->origin, it->origin_len);
    item_fate_t fate = FATE_NEW;
    int ret, had_old, had_tomb, keep_old;

    if (it->op == LOGREC_BUCKET_CREATE || it->op == LOGREC_BUCKET_DELETE)
        return apply_bucket(c, txn, ac, it);
    if ((ret = known_version(c, txn, ac, it, &known, &old, &had_old, &had_tomb, &tomb, &kctx)) != 0)
        return ret;
    if (it->op == LOGREC_PURGE) {
        if (item_stale(it, &known))
            return 0;
    } else {
        held = held_version(&old, had_old, &tomb, had_tomb);
        if ((ret = collected_here(c, txn, ac, it, &held)) != 0)
            return ret < 0 ? ret : 0;
        fate = item_fate(it, &kctx, &ac->purge, &held);
        if (fate == FATE_SEEN)
            return 0;
        if (it->op == LOGREC_PUT && it->size > 0 && it->ext.len == 0) {
            /* step 1 found it losing, or seen: what the key holds changed since; the sender tries again */
            replica_item_set(it, BATCH_RETRY, 500, "the key changed while the event was applied");
            return 0;
        }
    }
    if ((ret = relog(c, txn, it)) != 0) {
        if (commit_fatal(ret))
            return ret;
        replica_item_set(it, BATCH_PERMANENT, 400, "cannot log the event for this site's targets: %s", cio_strerror(ret));
        return 0;
    }
    if (fate == FATE_WINS || fate == FATE_LOSES)
        (*conflicts)++;
    /* the kept losers the event's writer had seen are overwritten, not lost */
    if (it->op != LOGREC_PURGE) {
        vctx_t ectx = it->ctx;
        vctx_add(&ectx, it->origin, it->origin_len, it->version);
        if ((ret = replica_conflicts_supersede(c, txn, it->bucket, it->blen, it->key, it->klen, &ectx)) != 0)
            return ret;
    }
    /* the held object, when it is the loser, keeps its extent in the conflict's record */
    keep_old = fate == FATE_WINS && had_old && meta_obj_version_cmp(&old, held.hlc, held.origin, held.origin_len) == 0;
    if (fate == FATE_WINS && (ret = keep_held(c, txn, it, &old, keep_old, &held)) != 0)
        return ret;
    if (fate == FATE_LOSES) {
        if ((ret = keep_event(c, txn, it, &held)) != 0)
            return ret;
        /* the key keeps what it holds, and now knows the event too: a copy of it arriving later is seen */
        item_merge_ctx(it, &kctx);
        if (had_tomb && meta_ver_cmp(&held, &tomb.version) == 0) {
            vctx_trim(&kctx, tomb.version.origin, tomb.version.origin_len, tomb.version.hlc);
            tomb.ctx = kctx;
            ret = meta_tomb_put(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &tomb);
        } else {
            vctx_trim(&kctx, old.origin, old.origin_len, old.version);
            old.ctx = kctx;
            ret = meta_obj_update(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &old);
        }
        if (ret != 0)
            return ret;
        replica_item_set(it, BATCH_SKIPPED, 200, "conflict: written concurrently with version %" PRIu64 " from \"%s\", which wins",
                         held.hlc, held.origin);
        return 0;
    }
    switch (it->op) {
    case LOGREC_PUT:
        if ((ret = apply_cache_bk(c, txn, ac, 1, &bk)) != 0)
            return ret;
        commit_obj_init(&o, it->version, version.origin, it->ext, it->size, it->etag, it->mtime_ms, it->ctype, it->ctype_len,
                        it->meta, it->meta_len);
        o.mpu_parts = it->mpu_parts;
        memcpy(o.mpu_md5, it->mpu_md5, 16);
        item_merge_ctx(it, &kctx);
        vctx_trim(&kctx, it->origin, it->origin_len, it->version);
        o.ctx = kctx;
        if (it->size == 0 && !it->sums_ok) /* no bytes, no I/O: the record of no blocks */
            it->sums_ok = commit_sums_start(c, &it->sums, 0);
        /* an extent cut from the job's run is not pending on its own (replica_finish) */
        if ((ret = meta_obj_put(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &o, it->sums_ok ? &it->sums : NULL)) != 0 ||
            (it->job->ext.len == 0 && (ret = meta_pending_del(c->meta, txn, it->ext)) != 0) ||
            (had_tomb && (ret = meta_tomb_del(c->meta, txn, it->bucket, it->blen, it->key, it->klen)) != 0))
            return ret;
        if (had_old) {
            if (!keep_old && (ret = reuse_quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0)
                return ret;
            bk->objects--;
            bk->bytes -= old.size;
        }
        bk->objects++;
        bk->bytes += it->size;
        ac->bk_dirty = 1;
        ac->objects += had_old ? 0 : 1;
        ac->bytes += (int64_t)it->size - (had_old ? (int64_t)old.size : 0);
        break;
    case LOGREC_DELETE:
        /* the tombstone is written even when there is nothing to delete: it
         * is what stops an older PUT arriving later */
        if (had_old) {
            if ((ret = apply_cache_bk(c, txn, ac, 0, &bk)) != 0)
                return ret == CIO_ENOTFOUND ? CIO_EPROTO : ret;
            bk->objects--;
            bk->bytes -= old.size;
            ac->bk_dirty = 1;
            ac->objects -= 1;
            ac->bytes -= (int64_t)old.size;
            if ((ret = meta_obj_del(c->meta, txn, it->bucket, it->blen, it->key, it->klen)) != 0 ||
                (!keep_old && (ret = reuse_quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0))
                return ret;
        }
        tomb.version = version;
        tomb.time_ms = clock_wall_ms();
        item_merge_ctx(it, &kctx);
        vctx_trim(&kctx, it->origin, it->origin_len, it->version);
        tomb.ctx = kctx;
        if ((ret = meta_tomb_put(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &tomb)) != 0)
            return ret;
        break;
    case LOGREC_PURGE: {
        /* objects written after the purge on the primary (a higher version) stay */
        apply_purge_ctx_t p = {c, txn, &version, 0, 0};
        meta_bucket_t pbk;
        /* the purge reads and writes the bucket itself: what is cached goes first, and is forgotten */
        if ((ret = apply_cache_flush(c, txn, ac)) != 0)
            return ret;
        if ((ret = meta_purge_put(c->meta, txn, it->bucket, it->blen, &version)) != 0 ||
            (ret = meta_obj_del_if(c->meta, txn, it->bucket, it->blen, apply_purge_pick, &p)) != 0 ||
            (ret = replica_conflicts_purge(c, txn, it->bucket, it->blen, &version)) != 0 ||
            (ret = meta_tomb_del_older(c->meta, txn, it->bucket, it->blen, &version)) != 0)
            return ret;
        if (p.count > 0) {
            if ((ret = meta_bucket_get(c->meta, txn, it->bucket, it->blen, &pbk)) != 0)
                return ret == CIO_ENOTFOUND ? CIO_EPROTO : ret;
            pbk.objects -= p.count;
            pbk.bytes -= p.bytes;
            if ((ret = mutate_bucket_store(c, txn, it->bucket, it->blen, &pbk)) != 0 ||
                (ret = meta_state_add(c->meta, txn, META_OBJECTS, -(int64_t)p.count)) != 0 ||
                (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)p.bytes)) != 0)
                return ret;
        }
        break;
    }
    case LOGREC_BUCKET_CREATE:
    case LOGREC_BUCKET_DELETE:
        break; /* apply_bucket */
    }
    replica_item_set(it, BATCH_APPLIED, 200, "%s", "");
    return 0;
}

/* The receive rule for an event's version: the clock moves past it, so a
 * later local write orders after it. One far ahead of the local clock is
 * applied all the same (refusing it would hold replication back for ever)
 * but counted, and logged at most once a minute. Returns 1 when it was. */
static int clock_receive(commit_t *c, const commit_item_t *it)
{
    if (!hlc_update(&c->hlc, it->version))
        return 0;
    int64_t now = clock_wall_ms();
    c->skew_unwarned++;
    if (c->skew_warn_ms == 0 || now - c->skew_warn_ms >= 60000) {
        char ahead[24], n[24], origin[LOGREC_ORIGIN_MAX + 1];
        snprintf(ahead, sizeof(ahead), "%" PRId64, (int64_t)hlc_ms(it->version) - now);
        snprintf(n, sizeof(n), "%" PRIu64, c->skew_unwarned);
        snprintf(origin, sizeof(origin), "%.*s", (int)it->origin_len, it->origin);
        log_msg(LOG_LVL_WARN, "applied a version far ahead of this site's clock: check the clocks (NTP) of both sites", "origin",
                origin, "ahead_ms", ahead, "events", n, NULL);
        c->skew_warn_ms = now;
        c->skew_unwarned = 0;
    }
    return 1;
}

/* Step 3 for the whole batch, in batch order, in the caller's transaction.
 * The extents of items that end up skipped or failed are freed (they are
 * pending since step 1; those cut from the job's run are marked pending on
 * their own here, as the run's mark goes). Only fatal errors are returned;
 * the caller's round then fails and every extent of the job is freed by a
 * later round. */
int replica_finish(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    uint64_t n[4] = {0, 0, 0, 0}, skewed = 0, conflicts = 0;
    apply_cache_t ac;
    int ret;

    memset(&ac, 0, sizeof(ac));
    if ((ret = meta_pending_del(c->meta, txn, j->ext)) != 0)
        return ret;
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        if (!it->final && j->result != 0)
            replica_item_fail(it, j->result); /* the data sync failed: nothing of it is durable */
        if (it->version != 0)
            skewed += (uint64_t)clock_receive(c, it);
        if (!it->final && (ret = apply_item(c, txn, &ac, it, &conflicts)) != 0)
            return ret;
        if (it->result != BATCH_APPLIED && it->ext.len > 0 &&
            (ret = j->ext.len > 0 ? reuse_quarantine_add(c, txn, it->ext) : reuse_quarantine_track(c, it->ext, UINT64_MAX, 0)) != 0)
            return ret;
        if (it->result == BATCH_PERMANENT)
            replica_item_log(it, LOG_LVL_WARN, "replicated event refused for good");
        n[it->result]++;
    }
    if ((ret = apply_cache_flush(c, txn, &ac)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_APPLIED, (int64_t)n[BATCH_APPLIED])) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_SKIPPED, (int64_t)n[BATCH_SKIPPED])) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_FAILED, (int64_t)(n[BATCH_RETRY] + n[BATCH_PERMANENT]))) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_PERMANENT, (int64_t)n[BATCH_PERMANENT])) != 0 ||
        (skewed > 0 && (ret = meta_state_add(c->meta, txn, META_APPLY_CLOCK_SKEW, (int64_t)skewed)) != 0) ||
        (conflicts > 0 && (ret = meta_state_add(c->meta, txn, META_APPLY_CONFLICTS, (int64_t)conflicts)) != 0))
        return ret;
    return 0;
}

/* A failed round undid the job's step 3, not its step 1: free its extents later. */
void replica_release_extents(commit_t *c, commit_job_t *j)
{
    if (j->ext.len > 0) {
        /* the run is pending as a whole: its items' extents are parts of it */
        if (reuse_quarantine_track(c, j->ext, 0, 0) != 0)
            log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
        return;
    }
    for (size_t i = 0; i < j->nitems; i++)
        if (j->items[i].ext.len > 0 && reuse_quarantine_track(c, j->items[i].ext, 0, 0) != 0)
            log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
}
