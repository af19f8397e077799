/* commit_mpu.c - the committer's side of multipart uploads: parts placed and recorded, Complete's join or copy and commit, Abort,
 * expiry.
 *
 * A part is written like a PUT's body (its own extent, written and synced
 * before the commit that records it) but recorded in "mpu_part" only: it is
 * never logged and never replicates. Each part asks for the place after the
 * one before it (commit_mpu_place_part), so that a Complete usually finds
 * its parts back to back and makes their extents the object's (joined),
 * after copying the last part next to the others when only it lies
 * elsewhere (its tail); otherwise it copies the parts into one new extent. Either way an object
 * stays one extent (what readers, the replica's fetch, full sync and GC
 * rely on), committed with mutate_put (one PUT log record) with the
 * upload's removal in the same transaction.
 * The object's MD5 and block checksums mostly come from the chase
 * (commit_chase.c), which hashed the parts in order as they were stored:
 * a Complete whose listed parts begin with the chased run hashes only the
 * parts after it, and all of them when there is no run (a restart, parts
 * skipped). What is left to hash and the copy run side by side on two
 * threads (hash_pass) from HASH_PASS_MIN bytes on: the copy is the
 * kernel's (store_copy), with no copy through a buffer, and its writeback
 * starts as each part is copied (store_writeback), so that the round's data
 * sync finds little left once the hashing is done. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "storaged/commit_int.h"
#include "storaged/integrity.h"

#define COPY_CHUNK (8u * 1024 * 1024)     /* bytes read and written at a time by Complete's copy */
#define HASH_PASS_MIN (2ull * COPY_CHUNK) /* a Complete of fewer bytes hashes them on the copy's own thread */
#define EXPIRE_SLICE 64                   /* uploads looked at per round by the expiry */
#define EXPIRE_INTERVAL_MS 60000          /* a pass at most this often, or each TTL/2 when that is shorter */
#define EXPIRE_INTERVAL_MIN_MS 500
#define PLACE_IDLE_MS (15LL * 60 * 1000) /* a place no part asked for this long is reused first */
#define PLACE_HEADROOM_SHIFT 3           /* part 1 goes 1/8 into the largest free extent */
#define PLACE_MIN_SLOTS 16               /* ... when that holds 16 parts: else the parts go where best fit puts them */
#define PLACE_SCAN_MAX 256               /* stored parts read to rebuild a place: an upload evicted again and again costs no more */
#define PLACE_AHEAD_PARTS 4              /* an upload's run: its parts so far and the next 4 places, kept clear of other writers */

/* The upload of job j, which must be of j's bucket and key: 0, or CIO_ENOTFOUND (NoSuchUpload). */
static int load_upload(commit_t *c, MDB_txn *txn, const commit_job_t *j, mpu_upload_t *u)
{
    int ret = mpu_get(c->meta, txn, j->upload_id, u);
    if (ret == CIO_EPROTO) {
        log_msg(LOG_LVL_ERROR, "broken multipart upload record", "upload", j->upload_id, NULL);
        return CIO_ENOTFOUND;
    }
    if (ret != 0)
        return ret;
    if (u->blen != j->blen || memcmp(u->bucket, j->bucket, j->blen) != 0 || u->klen != j->klen ||
        memcmp(u->key, j->key, j->klen) != 0)
        return CIO_ENOTFOUND;
    return 0;
}

static int quarantine_cb(void *arg, alloc_extent_t ext)
{
    void **a = arg;
    return reuse_quarantine_add(a[0], a[1], ext);
}

static int remove_upload(commit_t *c, MDB_txn *txn, const char *id)
{
    void *arg[2] = {c, txn};
    return mpu_del(c->meta, txn, id, quarantine_cb, arg, NULL, NULL);
}

typedef struct {
    commit_t *c;
    MDB_txn *txn;
    alloc_extent_t kept; /* the joined object's extent: the parts inside it are the object's now */
} joined_release_t;

static int joined_release_cb(void *arg, alloc_extent_t ext)
{
    joined_release_t *r = arg;
    if (ext.off >= r->kept.off && ext.off - r->kept.off < r->kept.len)
        return 0;
    return reuse_quarantine_add(r->c, r->txn, ext); /* a part the Complete did not list */
}

/* ---- where parts go ---- */

static mpu_place_t *place_find(commit_t *c, const char *id)
{
    for (size_t i = 0; i < MPU_PLACE_MAX; i++)
        if (c->mpu_place[i].id[0] != 0 && memcmp(c->mpu_place[i].id, id, MPU_ID_LEN) == 0)
            return &c->mpu_place[i];
    return NULL;
}

void commit_mpu_place_drop(commit_t *c, const char *id)
{
    mpu_place_t *p = place_find(c, id);
    if (p != NULL)
        p->id[0] = 0;
}

/* Place p's run: its parts placed so far and the next PLACE_AHEAD_PARTS places. {0, 0} when p is unused or
 * idle (its run is given up to other writers). */
static alloc_extent_t place_run(const mpu_place_t *p, int64_t now)
{
    uint64_t upto = (p->last > p->first ? p->last : p->first) + (uint64_t)PLACE_AHEAD_PARTS;
    if (p->id[0] == 0 || now - p->touched_ms > PLACE_IDLE_MS)
        return (alloc_extent_t){0, 0};
    return (alloc_extent_t){p->base, upto * p->slot}; /* at most 10,000 + 4 parts of 5 GiB: no overflow */
}

static int run_cmp(const void *a, const void *b)
{
    const alloc_extent_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The runs of the uploads in progress but `except` (may be NULL) into out, sorted by offset, those that overlap
 * merged (as alloc_alloc_outside wants them); returns how many. */
static size_t place_runs(commit_t *c, const mpu_place_t *except, int64_t now, alloc_extent_t out[MPU_PLACE_MAX])
{
    size_t n = 0, m = 0;
    for (size_t i = 0; i < MPU_PLACE_MAX; i++) {
        alloc_extent_t r = place_run(&c->mpu_place[i], now);
        if (&c->mpu_place[i] != except && r.len > 0)
            out[n++] = r;
    }
    if (n == 0)
        return 0;
    qsort(out, n, sizeof(*out), run_cmp);
    for (size_t i = 1; i < n; i++) {
        if (out[i].off <= out[m].off + out[m].len) {
            uint64_t end = out[i].off + out[i].len;
            if (end > out[m].off + out[m].len)
                out[m].len = end - out[m].off;
        } else {
            out[++m] = out[i];
        }
    }
    return m + 1;
}

int commit_mpu_alloc(commit_t *c, MDB_txn *txn, uint64_t bytes, int anywhere, alloc_extent_t *out)
{
    alloc_extent_t runs[MPU_PLACE_MAX];
    size_t n = place_runs(c, NULL, clock_mono_ms(), runs);
    int ret;

    if (n > 0 && ((ret = alloc_alloc_outside(&c->meta->alloc, txn, bytes, runs, n, out)) != CIO_ENOSPC || !anywhere))
        return ret;
    return alloc_alloc(&c->meta->alloc, txn, bytes, out); /* no room outside the runs: they give way */
}

/* The entry for a new place: an unused or idle one, else the least recently asked for. */
static mpu_place_t *place_entry(commit_t *c, int64_t now)
{
    mpu_place_t *p = &c->mpu_place[0];
    for (size_t i = 0; i < MPU_PLACE_MAX; i++) {
        mpu_place_t *q = &c->mpu_place[i];
        if (q->id[0] == 0 || now - q->touched_ms > PLACE_IDLE_MS)
            return q;
        if (q->touched_ms < p->touched_ms)
            p = q;
    }
    return p;
}

/* A place for j's upload, whose first part stored since the start is j (of
 * extent length `len`): its base chosen in the largest free space outside
 * the other uploads' runs, with room for parts 1..j's number there. NULL:
 * no room (the part goes elsewhere, the upload is copied at Complete). */
static mpu_place_t *place_new(commit_t *c, MDB_txn *txn, const commit_job_t *j, uint64_t len, int64_t now, int *ret)
{
    alloc_extent_t e, runs[MPU_PLACE_MAX];
    size_t n = place_runs(c, NULL, now, runs);
    mpu_place_t *p;
    uint64_t headroom = 0;
    int follows = 0;

    if ((*ret = alloc_largest_outside(&c->meta->alloc, txn, runs, n, &e)) != 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint64_t used = e.off - runs[i].off; /* from that upload's base to its run's end */
        if (runs[i].off + runs[i].len != e.off)
            continue;
        /* right after another upload's run: the base goes where both have as much room, that upload from its
         * base (its parts go on into the space first) and this one to the end of the space */
        follows = 1;
        headroom = used < e.len ? (e.len - used) / 2 : 0;
    }
    /* else the front of the extent is left to the best fit of other writers, which take the low end of the smallest
     * extent that fits: after part 1 that is the space before it, not the space after the upload's last part */
    if (!follows)
        headroom = e.len >> PLACE_HEADROOM_SHIFT;
    headroom = headroom / ALLOC_BLOCK * ALLOC_BLOCK;
    /* a store with little room: placing parts apart from the rest would split the free space a later part or
     * Complete needs whole */
    if (j->size < MPU_PART_SIZE_MIN || e.len / PLACE_MIN_SLOTS < len || (uint64_t)j->part_number * len > e.len - headroom)
        return NULL;
    p = place_entry(c, now);
    memcpy(p->id, j->upload_id, MPU_ID_LEN);
    p->base = e.off + headroom;
    p->slot = len;
    p->placed = 0;
    p->first = j->part_number;
    p->last = 0;
    p->touched_ms = now;
    return p;
}

typedef struct {
    mpu_place_t at;  /* the place the stored parts show: base, slot, placed, first, last */
    uint64_t minlen; /* the part to place's extent length: the slot must hold it */
    int found;       /* the lowest-numbered part could set the place */
    unsigned seen;   /* parts looked at after it */
} place_scan_t;

static int place_scan_cb(void *ctx, const mpu_part_t *pt)
{
    place_scan_t *s = ctx;
    mpu_place_t *at = &s->at;
    if (!s->found) {
        /* the lowest-numbered part sets the place when it is one of the upload's full-size parts */
        if (pt->size < MPU_PART_SIZE_MIN || pt->ext.len < s->minlen || pt->ext.off / pt->ext.len < pt->number - 1)
            return 1;
        at->slot = pt->ext.len;
        at->base = pt->ext.off - (uint64_t)(pt->number - 1) * at->slot;
        at->first = at->last = pt->number;
        at->placed = 1;
        s->found = 1;
        return 0;
    }
    if (pt->ext.len > 0 && pt->ext.off == at->base + (uint64_t)(pt->number - 1) * at->slot && pt->ext.len <= at->slot) {
        at->placed++;
        at->last = pt->number;
    }
    return ++s->seen < PLACE_SCAN_MAX ? 0 : 1; /* past that, the run is only shorter than it could be */
}

/* The place of j's upload as its stored parts show it, for an upload that has no place in memory (storaged
 * restarted since its last part, or the place was reused): the lowest-numbered stored part at its place, the
 * others after it wherever they lie at theirs. NULL: no part to set it (none stored, or the lowest one short). */
static mpu_place_t *place_rebuild(commit_t *c, MDB_txn *txn, const commit_job_t *j, uint64_t len, int64_t now, int *ret)
{
    place_scan_t s = {.minlen = len};
    mpu_place_t *p;

    int rc = mpu_part_each(c->meta, txn, j->upload_id, 0, place_scan_cb, &s);

    *ret = rc < 0 ? rc : 0; /* 1: the scan stopped at a part that sets no place */
    if (rc < 0 || !s.found)
        return NULL;
    p = place_entry(c, now);
    *p = s.at;
    memcpy(p->id, j->upload_id, MPU_ID_LEN);
    p->touched_ms = now;
    return p;
}

/* Whether [off, off + len) reaches into the run of an upload other than p's: the place is another upload's. */
static int place_in_other_run(commit_t *c, const mpu_place_t *p, uint64_t off, uint64_t len, int64_t now)
{
    alloc_extent_t runs[MPU_PLACE_MAX];
    size_t n = place_runs(c, p, now, runs);
    for (size_t i = 0; i < n; i++)
        if (runs[i].off < off + len && off < runs[i].off + runs[i].len)
            return 1;
    return 0;
}

int commit_mpu_place_part(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    uint64_t len = alloc_round(j->size);
    int64_t now = clock_mono_ms();
    mpu_place_t *p = place_find(c, j->upload_id);
    int ret = 0;

    /* a place set by a shorter, later part alone: the upload's last part, stored first (a client sends its first
     * parts at once, and the short last one arrives whole first). The place is set again for this length; the
     * Complete copies the last part next to the others (j->mpu_tail) */
    if (p != NULL && len > p->slot && p->placed == 1 && j->part_number < p->first) {
        p->id[0] = 0;
    } else if (p == NULL && (p = place_rebuild(c, txn, j, len, now, &ret)) == NULL && ret != 0) {
        return ret;
    }
    if ((p == NULL || p->id[0] == 0) && (p = place_new(c, txn, j, len, now, &ret)) == NULL && ret != 0)
        return ret;
    if (p != NULL && len <= p->slot) {
        uint64_t off = p->base + (uint64_t)(j->part_number - 1) * p->slot; /* under 2^46 past base: no overflow */
        p->touched_ms = now;
        ret = place_in_other_run(c, p, off, len, now) ? CIO_ENOSPC : alloc_take(&c->meta->alloc, txn, off, len);
        if (ret == 0) {
            j->ext = (alloc_extent_t){off, len};
            p->placed++;
            if (j->part_number > p->last)
                p->last = j->part_number;
            return 0;
        }
        /* its place taken (by another writer, or this part stored before), or another upload's: anywhere else */
        if (ret != CIO_ENOSPC && ret != CIO_EINVAL)
            return ret;
    }
    return reuse_take_extent(c, txn, j->size, &j->ext);
}

/* Whether the first n listed parts' extents lie back to back, in order,
 * with their bytes contiguous: every part but the n-th fills its extent
 * exactly. Then *out is their union, which is alloc_round(their bytes) long. */
static int parts_joinable(const commit_job_t *j, size_t n, alloc_extent_t *out)
{
    uint64_t end = j->mpu_src[0].ext.off;
    for (size_t i = 0; i < n; i++) {
        const commit_mpu_src_t *s = &j->mpu_src[i];
        if (s->size == 0 || s->ext.off != end || s->ext.len != alloc_round(s->size) || (i + 1 < n && s->size != s->ext.len))
            return 0;
        end += s->ext.len;
    }
    *out = (alloc_extent_t){j->mpu_src[0].ext.off, end - j->mpu_src[0].ext.off};
    return 1;
}

/* Whether all the listed parts but the last join, each filling its extent,
 * and the space right after them is free: then that space is taken for the
 * last part's copy (j->mpu_tail, also j->ext, pending) and j->mpu_joined is
 * the union. The last part was stored elsewhere: first, before the upload
 * had a place (a short last part), or after a restart. Returns 1, 0 (copy
 * the parts) or a fatal CIO_* code. */
static int tail_take(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    size_t n = j->mpu_nwant;
    alloc_extent_t run, tail;
    int ret;

    if (n < 2 || j->mpu_src[n - 1].size == 0 || !parts_joinable(j, n - 1, &run) ||
        j->mpu_src[n - 2].size != j->mpu_src[n - 2].ext.len)
        return 0;
    tail = (alloc_extent_t){run.off + run.len, alloc_round(j->mpu_src[n - 1].size)};
    if ((ret = alloc_take(&c->meta->alloc, txn, tail.off, tail.len)) != 0)
        return ret == CIO_ENOSPC || ret == CIO_EINVAL ? 0 : ret; /* taken, or past the end: nothing changed */
    if ((ret = meta_pending_add(c->meta, txn, tail)) != 0)
        return ret;
    j->mpu_tail = j->ext = tail;
    j->mpu_joined = (alloc_extent_t){run.off, run.len + tail.len};
    return 1;
}

int commit_mpu_finish(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    mpu_upload_t u;
    meta_bucket_t bk;
    mpu_part_t p, old;
    int ret, had_old;

    switch (j->op) {
    case COMMIT_MPU_CREATE:
        if ((ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk)) != 0)
            return ret;
        if (bk.deleted)
            return CIO_ENOTFOUND;
        memset(&u, 0, sizeof(u));
        u.initiated_ms = clock_wall_ms();
        j->mtime_ms = u.initiated_ms;
        u.blen = (uint16_t)j->blen;
        memcpy(u.bucket, j->bucket, j->blen);
        u.klen = (uint16_t)j->klen;
        memcpy(u.key, j->key, j->klen);
        u.ctype_len = (uint16_t)j->ctype_len;
        memcpy(u.ctype, j->ctype, j->ctype_len);
        u.meta_len = (uint16_t)j->meta_len;
        memcpy(u.meta, j->meta, j->meta_len);
        return mpu_put(c->meta, txn, j->upload_id, &u);
    case COMMIT_MPU_PART:
        if ((ret = load_upload(c, txn, j, &u)) != 0)
            return ret; /* the round frees the part's extent */
        memset(&p, 0, sizeof(p));
        p.number = j->part_number;
        p.ext = j->ext;
        p.size = j->size;
        memcpy(p.md5, j->etag, 16);
        p.mtime_ms = j->mtime_ms = clock_wall_ms();
        if ((ret = meta_pending_del(c->meta, txn, j->ext)) != 0 ||
            (ret = mpu_part_put(c->meta, txn, j->upload_id, &p, &old, &had_old)) != 0)
            return ret;
        /* a part replaced: its old bytes go once no reader (ListParts reads no data; a Complete copying them checks
         * again before its commit) needs them */
        if (had_old && old.ext.len > 0 && (ret = reuse_quarantine_add(c, txn, old.ext)) != 0)
            return ret;
        return 0;
    case COMMIT_MPU_ABORT:
        if ((ret = load_upload(c, txn, j, &u)) != 0)
            return ret;
        return remove_upload(c, txn, j->upload_id);
    default:
        return CIO_EINVAL;
    }
}

int commit_mpu_complete_begin(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    mpu_upload_t u;
    mpu_part_t p;
    EVP_MD_CTX *md = NULL;
    uint64_t total = 0;
    int ret;

    j->ext = (alloc_extent_t){0, 0};
    j->mpu_joined = (alloc_extent_t){0, 0};
    j->mpu_tail = (alloc_extent_t){0, 0};
    j->mpu_refusal = COMMIT_MPU_OK;
    if ((ret = load_upload(c, txn, j, &u)) != 0)
        return ret;
    if (j->mpu_nwant == 0 || j->mpu_nwant > MPU_PART_MAX)
        return CIO_EINVAL;
    if ((j->mpu_src = calloc(j->mpu_nwant, sizeof(*j->mpu_src))) == NULL || (md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex2(md, c->md5 != NULL ? c->md5 : EVP_md5(), NULL) != 1) {
        ret = CIO_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < j->mpu_nwant; i++) {
        const commit_mpu_want_t *w = &j->mpu_want[i];
        ret = mpu_part_get(c->meta, txn, j->upload_id, w->number, &p);
        if (ret == CIO_ENOTFOUND || ret == CIO_EPROTO || (ret == 0 && CRYPTO_memcmp(p.md5, w->md5, 16) != 0) ||
            (i > 0 && w->number <= j->mpu_want[i - 1].number)) {
            j->mpu_refusal = COMMIT_MPU_INVALID_PART;
            ret = CIO_EINVAL;
            goto fail;
        }
        if (ret != 0)
            goto fail;
        if (i + 1 < j->mpu_nwant && p.size < MPU_PART_SIZE_MIN) {
            j->mpu_refusal = COMMIT_MPU_TOO_SMALL;
            ret = CIO_EINVAL;
            goto fail;
        }
        j->mpu_src[i].ext = p.ext;
        j->mpu_src[i].size = p.size;
        j->mpu_src[i].mtime_ms = p.mtime_ms;
        total += p.size; /* no overflow: 10,000 parts of 5 GiB */
        if (EVP_DigestUpdate(md, p.md5, 16) != 1) {
            ret = CIO_ENOMEM;
            goto fail;
        }
    }
    if (EVP_DigestFinal_ex(md, j->mpu_etag, NULL) != 1) {
        ret = CIO_ENOMEM;
        goto fail;
    }
    EVP_MD_CTX_free(md);
    md = NULL;
    j->mpu_nparts = (uint32_t)j->mpu_nwant;
    j->size = total;
    memcpy(j->ctype, u.ctype, u.ctype_len);
    j->ctype[u.ctype_len] = '\0';
    j->ctype_len = u.ctype_len;
    memcpy(j->meta, u.meta, u.meta_len);
    j->meta_len = u.meta_len;
    j->carved = 0;
    j->expect_set = 0;
    if (total == 0) {
        EVP_Digest("", 0, j->etag, NULL, EVP_md5(), NULL);
        return commit_mpu_complete(c, txn, j);
    }
    /* the parts' extents, named by their records until step 3, kept from reuse while they are hashed by the reader
     * token like a copy's sources */
    if (parts_joinable(j, j->mpu_nwant, &j->mpu_joined) || (ret = tail_take(c, txn, j)) == 1) {
        j->mpu_reader = commit_reader_enter(c);
        return 0;
    }
    if (ret != 0)
        goto fail;
    /* CIO_ENOSPC (no contiguous extent that large) is the job's: 507, and the upload stays */
    if ((ret = reuse_take_extent(c, txn, total, &j->ext)) != 0)
        goto fail;
    if ((ret = meta_pending_add(c->meta, txn, j->ext)) != 0)
        goto fail;
    /* the copy reads the parts outside any transaction: a part replaced or aborted meanwhile must not have its
     * extent handed out again before the copy is done (step 3 then refuses the copy) */
    j->mpu_reader = commit_reader_enter(c);
    return 0;
fail:
    EVP_MD_CTX_free(md);
    j->ext = (alloc_extent_t){0, 0};
    return ret;
}

/* A Complete's hash pass: the parts' bytes from part `first` on read in
 * order, for the object's MD5 and block checksums, on a thread of its own
 * while the I/O thread copies them (the same extents, kept from reuse by
 * the job's reader token until both are done), or on the I/O thread before
 * its copy when there is little to hash. */
typedef struct {
    commit_t *c;
    const commit_job_t *j; /* borrowed: the job outlives the thread (joined by complete_copy) */
    blocksum_calc_t *sums; /* the job's, fed here only (NULL: none) */
    EVP_MD_CTX *md;        /* owned by complete_copy: over the parts before `first` (the chase's), or NULL */
    size_t first;          /* parts 0..first-1 were hashed by the chase (commit_chase.c) */
    uint8_t md5[16];
    int ret; /* 0, CIO_EIO or CIO_ENOMEM */
} hash_pass_t;

static void *hash_pass_main(void *arg)
{
    hash_pass_t *h = arg;
    char *buf = malloc(COPY_CHUNK);

    h->ret = CIO_ENOMEM;
    if (buf == NULL)
        goto done;
    if (h->md == NULL &&
        ((h->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex2(h->md, h->c->md5 != NULL ? h->c->md5 : EVP_md5(), NULL) != 1))
        goto done;
    h->ret = 0;
    for (size_t i = h->first; i < h->j->mpu_nwant && h->ret == 0; i++) {
        uint64_t src = h->j->mpu_src[i].ext.off, left = h->j->mpu_src[i].size;
        while (left > 0) {
            size_t n = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;
            if ((h->ret = store_read(h->c->store, src, buf, n)) != 0)
                break;
            if (EVP_DigestUpdate(h->md, buf, n) != 1) {
                h->ret = CIO_ENOMEM;
                break;
            }
            if (h->sums != NULL)
                blocksum_calc_feed(h->sums, buf, n);
            src += n;
            left -= n;
        }
    }
    if (h->ret == 0 && EVP_DigestFinal_ex(h->md, h->md5, NULL) != 1)
        h->ret = CIO_ENOMEM;
done:
    free(buf);
    return NULL;
}

/* Where a Complete's hash pass starts: after the chased run when the listed
 * parts begin with it (then the chase's MD5 context and block CRCs go on
 * from there), else from nothing. Fills pass->md and pass->first, and
 * starts j->sums when checksums are on; returns whether it did. */
static int complete_hash_start(commit_t *c, commit_job_t *j, uint64_t total, hash_pass_t *pass)
{
    mpu_chase_t st;
    mpu_part_t *listed = NULL;
    int sums = 0;

    pass->md = NULL;
    pass->first = 0;
    if (chase_take(c, j->upload_id, &st) == 0 && (listed = calloc(j->mpu_nwant, sizeof(*listed))) != NULL) {
        for (size_t i = 0; i < j->mpu_nwant; i++) {
            listed[i].number = j->mpu_want[i].number;
            listed[i].ext = j->mpu_src[i].ext;
            listed[i].size = j->mpu_src[i].size;
            listed[i].mtime_ms = j->mpu_src[i].mtime_ms;
            memcpy(listed[i].md5, j->mpu_want[i].md5, 16);
        }
        size_t k = mpu_chase_rewind(&st, mpu_chase_match(&st, listed, j->mpu_nwant));
        if (k > 0 && mpu_chase_hand_over(&st, total, &pass->md, c->checksums ? &j->sums : NULL) == 0) {
            pass->first = k;
            sums = c->checksums;
        }
    }
    free(listed);
    mpu_chase_free(&st);
    if (pass->first == 0)
        sums = commit_sums_start(c, &j->sums, total);
    return sums;
}

/* Copies `len` bytes at src to *dst (advanced) through buf (COPY_CHUNK
 * bytes), feeding md when not NULL, and starting each chunk's writeback
 * when `writeback`. 0, CIO_EIO or CIO_ENOMEM. */
static int copy_through(commit_t *c, uint64_t src, uint64_t *dst, uint64_t len, char *buf, EVP_MD_CTX *md, int writeback)
{
    int ret;
    while (len > 0) {
        size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
        if ((ret = store_read(c->store, src, buf, n)) != 0 || (ret = store_write(c->store, *dst, buf, n)) != 0)
            return ret;
        if (md != NULL && EVP_DigestUpdate(md, buf, n) != 1)
            return CIO_ENOMEM;
        if (writeback)
            store_writeback(c->store, *dst, n);
        src += n;
        *dst += n;
        len -= n;
    }
    return 0;
}

/* Copies one part's `len` bytes at src to *dst (advanced), by the kernel
 * (store_copy) while *kcopy, else through *buf (COPY_CHUNK bytes, allocated
 * here on first use, the caller's to free), its writeback started at once
 * (on the disk's way while the hash pass goes on). 0, CIO_EIO or CIO_ENOMEM. */
static int copy_part(commit_t *c, uint64_t src, uint64_t *dst, uint64_t len, int *kcopy, char **buf)
{
    int ret;

    if (*kcopy) {
        if ((ret = store_copy(c->store, *dst, src, len)) == 0) {
            store_writeback(c->store, *dst, len);
            *dst += len;
            return 0;
        }
        if (ret != CIO_EAGAIN)
            return ret;
        *kcopy = 0; /* the kernel cannot here: through the buffer, from this part on */
    }
    if (*buf == NULL && (*buf = malloc(COPY_CHUNK)) == NULL)
        return CIO_ENOMEM;
    return copy_through(c, src, dst, len, *buf, NULL, 1);
}

/* Step 2 of a Complete: the hash pass (on its own thread from HASH_PASS_MIN
 * bytes to hash) and the copy of every part (of a joined Complete, only the
 * last part into its tail, when it has one). */
static int complete_copy(commit_t *c, commit_job_t *j)
{
    hash_pass_t pass = {.c = c, .j = j};
    uint64_t total = 0, chased = 0, dst = j->ext.off;
    char *buf = NULL;
    pthread_t hasher;
    int ret = 0, sums, threaded = 0, kcopy = 1;

    for (size_t i = 0; i < j->mpu_nwant; i++)
        total += j->mpu_src[i].size;
    sums = complete_hash_start(c, j, total, &pass);
    pass.sums = sums ? &j->sums : NULL;
    for (size_t i = 0; i < pass.first; i++)
        chased += j->mpu_src[i].size;
    if (total - chased >= HASH_PASS_MIN)
        threaded = pthread_create(&hasher, NULL, hash_pass_main, &pass) == 0;
    if (!threaded)
        hash_pass_main(&pass); /* little to hash (or no thread): before the copy, on this one */
    for (size_t i = 0; j->mpu_joined.len == 0 && i < j->mpu_nwant && ret == 0 && (threaded || pass.ret == 0); i++)
        if (j->mpu_src[i].size > 0)
            ret = copy_part(c, j->mpu_src[i].ext.off, &dst, j->mpu_src[i].size, &kcopy, &buf);
    if (j->mpu_tail.len > 0 && (threaded || pass.ret == 0)) {
        const commit_mpu_src_t *last = &j->mpu_src[j->mpu_nwant - 1];
        dst = j->mpu_tail.off;
        ret = copy_part(c, last->ext.off, &dst, last->size, &kcopy, &buf);
    }
    if (threaded)
        pthread_join(hasher, NULL);
    if (ret == 0)
        ret = pass.ret;
    if (ret == 0) {
        memcpy(j->etag, pass.md5, 16);
        __atomic_fetch_add(&c->mpu_chased, chased, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->mpu_hashed, total - chased, __ATOMIC_RELAXED);
    }
    j->sums_ok = ret == 0 && sums;
    EVP_MD_CTX_free(pass.md);
    free(buf);
    return ret;
}

/* Copies an UploadPartCopy's source range to *dst, reading whole checksum
 * blocks of the source and verifying them first (integrity.h): damaged bytes
 * never become a part, and so never an object with fresh checksums. Returns 0,
 * CIO_ECORRUPT (reported), CIO_EIO or CIO_ENOMEM. */
static int copy_verified(commit_t *c, const commit_mpu_src_t *src, uint64_t *dst, char *buf, EVP_MD_CTX *md)
{
    uint64_t roff, rlen, bad = 0, obj_ext = src->ext.off - src->first, end = src->first + src->size;
    int ret;

    blocksum_widen(src->sums.shift, src->sums.size, src->first, src->size, &roff, &rlen);
    for (uint64_t pos = roff; pos < roff + rlen; pos += COPY_CHUNK) {
        size_t n = roff + rlen - pos < COPY_CHUNK ? (size_t)(roff + rlen - pos) : COPY_CHUNK;
        if ((ret = integrity_read(c->store, obj_ext, pos, buf, n, &src->sums, &bad)) != 0) {
            if (ret == CIO_ECORRUPT) {
                /* name is "bucket/key": the report's bucket and key */
                const char *slash = strchr(src->name, '/');
                char bucket[LOGREC_BUCKET_MAX + 1];
                snprintf(bucket, sizeof(bucket), "%.*s", (int)(slash - src->name), src->name);
                integrity_damaged(INTEGRITY_GET, bucket, slash + 1, src->version, src->origin, bad);
            }
            return ret;
        }
        /* the part of the chunk inside the range */
        uint64_t from = pos < src->first ? src->first - pos : 0, to = pos + n > end ? end - pos : n;
        if ((ret = store_write(c->store, *dst, buf + from, (size_t)(to - from))) != 0)
            return ret;
        if (EVP_DigestUpdate(md, buf + from, (size_t)(to - from)) != 1)
            return CIO_ENOMEM;
        *dst += to - from;
    }
    return 0;
}

/* Step 2 of an UploadPartCopy: its source range copied and hashed (the part's ETag) through a buffer. */
static int part_copy(commit_t *c, commit_job_t *j)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint64_t dst = j->ext.off;
    char *buf = malloc(COPY_CHUNK);
    int ret = 0;

    if (md == NULL || buf == NULL || EVP_DigestInit_ex2(md, c->md5 != NULL ? c->md5 : EVP_md5(), NULL) != 1) {
        ret = CIO_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < j->mpu_nwant && ret == 0; i++) {
        if (j->mpu_src[i].have_sums && j->mpu_src[i].size > 0)
            ret = copy_verified(c, &j->mpu_src[i], &dst, buf, md);
        else
            ret = copy_through(c, j->mpu_src[i].ext.off, &dst, j->mpu_src[i].size, buf, md, 0);
    }
    if (ret == 0 && EVP_DigestFinal_ex(md, j->etag, NULL) != 1)
        ret = CIO_ENOMEM;
done:
    EVP_MD_CTX_free(md);
    free(buf);
    return ret;
}

int commit_mpu_copy(commit_t *c, commit_job_t *j)
{
    int ret = j->op == COMMIT_MPU_COMPLETE ? complete_copy(c, j) : part_copy(c, j);
    commit_reader_leave(c, j->mpu_reader);
    j->mpu_reader = 0;
    return ret;
}

/* Step 3 of a joined Complete: the parts' extents pass to the object in one
 * transaction. mutate_put takes the object's extent out of "pending", so it
 * goes in first; j->ext is the union only once all of it succeeded, so that
 * no failure path frees extents the part records still name. */
static int complete_joined(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    joined_release_t r = {.c = c, .txn = txn, .kept = j->mpu_joined};
    uint64_t copied = j->mpu_tail.len > 0 ? j->mpu_src[j->mpu_nwant - 1].size : 0;
    int ret;

    /* the tail's own pending mark gives way to the whole object's */
    if (j->mpu_tail.len > 0 && (ret = meta_pending_del(c->meta, txn, j->mpu_tail)) != 0)
        return ret;
    j->ext = j->mpu_joined;
    if ((ret = meta_pending_add(c->meta, txn, j->ext)) == 0 && (ret = mutate_put(c, txn, j)) != 0 && !commit_fatal(ret)) {
        /* a refusal commits nothing of it: the tail pending again, j->ext for the failure path to free */
        if (meta_pending_del(c->meta, txn, j->ext) != 0 ||
            (j->mpu_tail.len > 0 && meta_pending_add(c->meta, txn, j->mpu_tail) != 0))
            ret = CIO_EDB;
        j->ext = j->mpu_tail;
        return ret;
    }
    if (ret == 0)
        ret = mpu_del(c->meta, txn, j->upload_id, joined_release_cb, &r, NULL, NULL);
    if (ret != 0) {
        j->ext = (alloc_extent_t){0, 0};
        return ret;
    }
    __atomic_fetch_add(&c->mpu_joined, j->size - copied, __ATOMIC_RELAXED);
    return 0;
}

int commit_mpu_complete(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    mpu_upload_t u;
    mpu_part_t p;
    int ret;

    /* a part replaced, or the upload aborted or expired, since step 1: the copy is not the upload's any more */
    if ((ret = load_upload(c, txn, j, &u)) != 0)
        return ret == CIO_ENOTFOUND ? CIO_ECHANGED : ret;
    for (size_t i = 0; i < j->mpu_nwant; i++) {
        if ((ret = mpu_part_get(c->meta, txn, j->upload_id, j->mpu_want[i].number, &p)) != 0)
            return ret == CIO_ENOTFOUND || ret == CIO_EPROTO ? CIO_ECHANGED : ret;
        if (p.ext.off != j->mpu_src[i].ext.off || p.ext.len != j->mpu_src[i].ext.len || p.size != j->mpu_src[i].size ||
            CRYPTO_memcmp(p.md5, j->mpu_want[i].md5, 16) != 0)
            return CIO_ECHANGED;
    }
    if (j->mpu_joined.len > 0)
        return complete_joined(c, txn, j);
    if ((ret = mutate_put(c, txn, j)) != 0)
        return ret;
    return remove_upload(c, txn, j->upload_id);
}

/* ---- expiry ---- */

void commit_set_multipart_ttl(commit_t *c, uint64_t ttl_ms)
{
    __atomic_store_n(&c->mpu_ttl_ms, ttl_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    __atomic_store_n(&c->mpu_next_ms, 0, __ATOMIC_RELAXED); /* a pass at once */
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int commit_mpu_expire_due(commit_t *c, int64_t now)
{
    return __atomic_load_n(&c->mpu_ttl_ms, __ATOMIC_RELAXED) != 0 &&
           (c->mpu_running || now >= __atomic_load_n(&c->mpu_next_ms, __ATOMIC_RELAXED));
}

typedef struct {
    int64_t cutoff_ms;
    size_t seen, nexpired;
    char ids[EXPIRE_SLICE][MPU_ID_LEN];
    char last[MPU_ID_LEN];
} expire_scan_t;

static int expire_pick(void *arg, const char *id, const mpu_upload_t *u)
{
    expire_scan_t *s = arg;
    memcpy(s->last, id, MPU_ID_LEN);
    if (u->initiated_ms < s->cutoff_ms)
        memcpy(s->ids[s->nexpired++], id, MPU_ID_LEN);
    return ++s->seen == EXPIRE_SLICE ? 1 : 0;
}

int commit_mpu_expire_slice(commit_t *c, MDB_txn *txn, uint64_t *collected)
{
    uint64_t ttl = __atomic_load_n(&c->mpu_ttl_ms, __ATOMIC_RELAXED);
    int64_t now = clock_wall_ms();
    expire_scan_t *s;
    int ret;

    *collected = 0;
    if (!commit_mpu_expire_due(c, now))
        return 0;
    if (!c->mpu_running) {
        uint64_t every = ttl / 2 < EXPIRE_INTERVAL_MS ? ttl / 2 : EXPIRE_INTERVAL_MS;
        c->mpu_running = 1;
        c->mpu_pos_set = 0;
        __atomic_store_n(&c->mpu_next_ms, now + (int64_t)(every < EXPIRE_INTERVAL_MIN_MS ? EXPIRE_INTERVAL_MIN_MS : every),
                         __ATOMIC_RELAXED);
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return CIO_ENOMEM;
    s->cutoff_ms = ttl > (uint64_t)now ? INT64_MIN : now - (int64_t)ttl;
    ret = mpu_each(c->meta, txn, c->mpu_pos_set ? c->mpu_pos : NULL, expire_pick, s);
    if (ret < 0) {
        c->mpu_running = 0; /* give this pass up rather than fail every round */
        free(s);
        return ret;
    }
    for (size_t i = 0; i < s->nexpired; i++) {
        char id[MPU_ID_LEN + 1];
        uint64_t nparts, bytes;
        void *arg[2] = {c, txn};
        if ((ret = mpu_del(c->meta, txn, s->ids[i], quarantine_cb, arg, &nparts, &bytes)) != 0) {
            c->mpu_running = 0;
            free(s);
            return ret;
        }
        commit_mpu_place_drop(c, s->ids[i]);
        memcpy(id, s->ids[i], MPU_ID_LEN);
        id[MPU_ID_LEN] = '\0';
        char np[24], nb[24];
        snprintf(np, sizeof(np), "%" PRIu64, nparts);
        snprintf(nb, sizeof(nb), "%" PRIu64, bytes);
        log_msg(LOG_LVL_INFO, "expired multipart upload removed", "upload", id, "parts", np, "bytes", nb, NULL);
    }
    if ((ret = meta_state_add(c->meta, txn, META_MPU_EXPIRED, (int64_t)s->nexpired)) != 0) {
        free(s);
        return ret;
    }
    *collected = s->nexpired;
    if (s->seen < EXPIRE_SLICE) {
        c->mpu_running = 0; /* the last slice of the pass */
    } else {
        memcpy(c->mpu_pos, s->last, MPU_ID_LEN);
        c->mpu_pos_set = 1;
    }
    free(s);
    return 0;
}
