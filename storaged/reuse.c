/* reuse.c - when a freed extent may be handed out again: readers, quarantine, chunks for small PUTs.
 *
 * An extent released by a commit (the old version of an object, a deleted
 * one) stays pending and in quarantine until no reader that started before
 * that commit is still reading (commit_reader_enter/leave); then it goes back
 * to the free map, or, when small, to carve to be cut again. Chunks reserved
 * for small PUTs (carve.h) are taken and given back here too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/commit_int.h"
#include "common/buf.h"

#define CHUNK_MAX (16u << 20) /* reserved for small PUTs at a time (carve.h) */
#define CHUNK_SHARE 16        /* ... and at most this share of the free space, */
#define CHUNK_MIN (1u << 20)  /* ... and no less than this (below it, every PUT allocates in a commit) */
#define COLLECT_STEP 64       /* extents taken from carve at a time */
_Static_assert(CHUNK_MIN >= CARVE_MAX_BYTES, "every chunk has room for any body carve cuts");

/* ---- readers ---- */

uint64_t commit_reader_enter(commit_t *c)
{
    uint64_t token;
    pthread_mutex_lock(&c->rd_mu);
    token = c->epoch;
    if (c->nreaders > 0 && c->readers[c->nreaders - 1].epoch == token) {
        c->readers[c->nreaders - 1].count++;
    } else {
        if (c->nreaders == c->capreaders) {
            size_t ncap = c->capreaders ? c->capreaders * 2 : 64;
            reader_slot_t *n = realloc(c->readers, ncap * sizeof(*n));
            if (n == NULL) {
                /* cannot track: make the reader look like the oldest one, which only delays reuse */
                if (c->nreaders > 0) {
                    token = c->readers[0].epoch;
                    c->readers[0].count++;
                    pthread_mutex_unlock(&c->rd_mu);
                    return token;
                }
                abort();
            }
            c->readers = n;
            c->capreaders = ncap;
        }
        c->readers[c->nreaders].epoch = token;
        c->readers[c->nreaders].count = 1;
        c->nreaders++;
    }
    pthread_mutex_unlock(&c->rd_mu);
    return token;
}

void commit_reader_leave(commit_t *c, uint64_t token)
{
    pthread_mutex_lock(&c->rd_mu);
    for (size_t i = 0; i < c->nreaders; i++) {
        if (c->readers[i].epoch == token) {
            if (--c->readers[i].count == 0) {
                memmove(c->readers + i, c->readers + i + 1, (c->nreaders - i - 1) * sizeof(*c->readers));
                c->nreaders--;
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->rd_mu);
}

/* Oldest token still reading, or UINT64_MAX. */
uint64_t reuse_oldest_reader(commit_t *c)
{
    uint64_t e;
    pthread_mutex_lock(&c->rd_mu);
    e = c->nreaders > 0 ? c->readers[0].epoch : UINT64_MAX;
    pthread_mutex_unlock(&c->rd_mu);
    return e;
}

/* ---- quarantine (committer thread) ---- */

/* Remembers extent e (already marked pending) until readers are done with
 * it; `reserved`: e is a piece of a chunk, still in the reserved total. */
int reuse_quarantine_track(commit_t *c, alloc_extent_t e, uint64_t tag, int reserved)
{
    quarantined_t *n = buf_grow_array(c->q, &c->capq, c->nq, sizeof(*n), 256);
    if (n == NULL)
        return CIO_ENOMEM;
    c->q = n;
    c->q[c->nq].ext = e;
    c->q[c->nq].tag = tag;
    c->q[c->nq].reserved = reserved;
    c->q[c->nq].keep = 0;
    c->nq++;
    return 0;
}

/* Returns pending extent e to the free map in txn; `reserved`: e is still in
 * the reserved total (a chunk, a piece of one, or a kept extent). */
static int give_back(commit_t *c, MDB_txn *txn, alloc_extent_t e, int reserved)
{
    int ret;
    if ((ret = meta_pending_del(c->meta, txn, e)) != 0 || (reserved && (ret = alloc_unreserve(&c->meta->alloc, txn, e.len)) != 0))
        return ret;
    return alloc_free(&c->meta->alloc, txn, e);
}

/* Marks e pending in txn and quarantines it; its tag is set at commit. */
int reuse_quarantine_add(commit_t *c, MDB_txn *txn, alloc_extent_t e)
{
    int ret;
    if (e.len == 0)
        return 0;
    if ((ret = meta_pending_add(c->meta, txn, e)) != 0)
        return ret;
    return reuse_quarantine_track(c, e, UINT64_MAX, 0);
}

/* Releases, in txn, the quarantined extents no reader can still see: small
 * ones join the reservation, to be kept by carve for reuse once txn commits
 * (reuse_quarantine_keep), while carve has room; the others go back to the free
 * map. Returns how many (they are dropped from the list only once txn
 * commits). */
int reuse_quarantine_release(commit_t *c, MDB_txn *txn, size_t *released)
{
    uint64_t oldest = reuse_oldest_reader(c), held = 0, planned_bytes = 0;
    size_t n = 0, planned[CARVE_BINS] = {0};
    int ret;

    *released = 0;
    while (n < c->nq && c->q[n].tag != UINT64_MAX && c->q[n].tag < oldest) {
        quarantined_t *q = &c->q[n];
        uint64_t blocks = q->ext.len / ALLOC_BLOCK, room_bytes;
        size_t room = carve_room(&c->carve, q->ext.len, &room_bytes);
        q->keep = blocks >= 1 && blocks <= CARVE_BINS && planned[blocks - 1] < room && planned_bytes + q->ext.len <= room_bytes;
        if (q->keep) {
            planned[blocks - 1]++;
            planned_bytes += q->ext.len;
            if (!q->reserved)
                held += q->ext.len;
        } else if ((ret = give_back(c, txn, q->ext, q->reserved)) != 0) {
            return ret;
        }
        n++;
    }
    if ((ret = alloc_reserve_held(&c->meta->alloc, txn, held)) != 0)
        return ret;
    *released = n;
    return 0;
}

/* After the commit of reuse_quarantine_release: hands the kept extents to carve. */
void reuse_quarantine_keep(commit_t *c, size_t released)
{
    for (size_t i = 0; i < released; i++)
        if (c->q[i].keep && carve_keep(&c->carve, c->q[i].ext) != 0)
            log_msg(LOG_LVL_WARN, "reserved space stays pending until restart", NULL); /* room was counted: not expected */
}

/* ---- chunks for small PUTs (carve.h; committer thread) ---- */

/* Frees, in txn, the chunk remainders no longer cut from (with `all`, what is
 * left of every chunk). They are remembered in chunks_out, to be handed back
 * to carve if txn fails. */
int reuse_chunks_release(commit_t *c, MDB_txn *txn, int all)
{
    int ret;

    for (;;) {
        size_t first = c->nchunks_out, n;
        if (c->capchunks_out - first < COLLECT_STEP) {
            size_t ncap = c->capchunks_out * 2 + COLLECT_STEP;
            alloc_extent_t *p = realloc(c->chunks_out, ncap * sizeof(*p));
            if (p == NULL)
                return CIO_ENOMEM;
            c->chunks_out = p;
            c->capchunks_out = ncap;
        }
        if ((n = carve_collect(&c->carve, all, c->chunks_out + first, COLLECT_STEP)) == 0)
            return 0;
        c->nchunks_out += n;
        for (size_t i = first; i < c->nchunks_out; i++)
            if ((ret = give_back(c, txn, c->chunks_out[i], 1)) != 0)
                return ret;
    }
}

/* When a cut wants one, reserves a chunk in txn: a share of the free space,
 * at most CHUNK_MAX, halved while no free extent is that large, none below
 * CHUNK_MIN; outside the multipart uploads' runs while any size fits there.
 * *chunk (len 0: none) is offered once txn is durable. */
int reuse_chunk_reserve(commit_t *c, MDB_txn *txn, alloc_extent_t *chunk)
{
    uint64_t free_bytes, want;
    int ret;

    *chunk = (alloc_extent_t){0, 0};
    if (!carve_wants(&c->carve))
        return 0;
    if ((ret = alloc_stats(&c->meta->alloc, txn, NULL, &free_bytes, NULL, NULL)) != 0)
        return ret;
    want = free_bytes / CHUNK_SHARE < CHUNK_MAX ? free_bytes / CHUNK_SHARE : CHUNK_MAX;
    /* a smaller chunk outside the multipart uploads' runs before one inside them */
    for (int anywhere = 0; anywhere <= 1; anywhere++) {
        for (uint64_t w = want; w >= CHUNK_MIN; w /= 2) {
            ret = commit_mpu_alloc(c, txn, w, anywhere, chunk);
            if (ret == CIO_ENOSPC)
                continue;
            if (ret != 0 || (ret = alloc_reserve_held(&c->meta->alloc, txn, chunk->len)) != 0)
                return ret; /* CIO_EINVAL of alloc_reserve_held cannot be: the chunk was just allocated */
            return meta_pending_add(c->meta, txn, *chunk);
        }
    }
    *chunk = (alloc_extent_t){0, 0};
    return 0;
}

/* commit_mpu_alloc, but when nothing fits, the chunks' unused space goes back to
 * the free map first and the allocation is tried again. */
int reuse_take_extent(commit_t *c, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out)
{
    size_t before = c->nchunks_out;
    int ret = commit_mpu_alloc(c, txn, bytes, 1, out);

    if (ret != CIO_ENOSPC)
        return ret;
    if ((ret = reuse_chunks_release(c, txn, 1)) != 0)
        return ret;
    return c->nchunks_out > before ? commit_mpu_alloc(c, txn, bytes, 1, out) : CIO_ENOSPC;
}

/* At shutdown: what is left of the chunks, and the quarantine when nobody
 * reads any more (the HTTP server stops first), go back to the free map, so
 * that a clean stop leaves nothing pending. */
void reuse_release_at_stop(commit_t *c)
{
    MDB_txn *txn;
    size_t nq = reuse_oldest_reader(c) == UINT64_MAX ? c->nq : 0;
    int ret, rc;

    c->nchunks_out = 0;
    if ((rc = mdb_txn_begin(c->meta->env, NULL, 0, &txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_begin");
        goto fail;
    }
    for (size_t i = 0; i < nq; i++) {
        if ((ret = give_back(c, txn, c->q[i].ext, c->q[i].reserved)) != 0) {
            mdb_txn_abort(txn);
            goto fail;
        }
    }
    if ((ret = reuse_chunks_release(c, txn, 1)) != 0 || (c->nchunks_out == 0 && nq == 0)) {
        mdb_txn_abort(txn);
        if (ret != 0)
            goto fail;
        return;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_commit");
        goto fail;
    }
    return;
fail:
    log_msg(LOG_LVL_WARN, "reserved and released space stays pending until restart", "error", cio_strerror(ret), NULL);
}
