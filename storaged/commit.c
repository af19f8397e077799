/* commit.c - group commit of storaged's mutations (see commit.h for the steps). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "storaged/carve.h"
#include "storaged/commit.h"
#include "common/log.h"
#include "common/replog.h"

#define GROUP_MAX 4096        /* jobs per transaction: bounds commit latency */
#define QUARANTINE_POLL_MS 50 /* how soon released extents are retried when idle */
#define FETCHERS 4            /* threads fetching large objects from a primary */
#define GC_INTERVAL_MS 60000  /* a tombstone collection pass starts at most this often */
#define GC_SLICE 256          /* tombstones looked at per round: keeps each transaction short */
#define CHUNK_MAX (16u << 20) /* reserved for small PUTs at a time (carve.h) */
#define CHUNK_SHARE 16        /* ... and at most this share of the free space, */
#define CHUNK_MIN (1u << 20)  /* ... and no less than this (below it, every PUT allocates in a commit) */
#define COLLECT_STEP 64       /* extents taken from carve at a time */
_Static_assert(CHUNK_MIN >= CARVE_MAX_BYTES, "every chunk has room for any body carve cuts");

typedef struct {
    alloc_extent_t ext;
    uint64_t tag; /* reusable once every reader with token <= tag has left */
    int reserved; /* counted as reserved already: a piece of a chunk (carve.h) */
    int keep;     /* released into carve for reuse, not to the free map */
} quarantined_t;

typedef struct {
    uint64_t epoch;
    uint64_t count;
} reader_slot_t;

typedef struct {
    commit_job_t *head, **tail;
} job_list_t;

struct commit {
    meta_t *meta;
    store_t *store;
    char *site_id;
    int log_enabled;

    pthread_mutex_t mu; /* inbox, written, stopping, in_io */
    pthread_cond_t cv;
    job_list_t inbox;   /* submitted, not yet seen by the committer */
    job_list_t written; /* PUT bodies written and synced */
    int stopping;
    int carve_wake; /* a cut wants a chunk offered */
    uint64_t in_io; /* PUTs between allocate and finish */
    pthread_t thread;

    pthread_mutex_t io_mu; /* io queue, body_busy flags */
    pthread_cond_t io_cv, body_cv;
    job_list_t io;
    int io_stopping;
    unsigned nio;
    pthread_t *io_threads;

    pthread_mutex_t fetch_mu; /* fetch queue, fetch_left of the jobs in it */
    pthread_cond_t fetch_cv;
    commit_item_t *fetch_head, **fetch_tail;
    int fetch_stopping;
    int fetch_cancel; /* atomic: shutting down, abandon the fetches in progress */
    unsigned nfetch;
    pthread_t fetch_threads[FETCHERS];

    carve_t carve; /* small PUTs' extents */

    int64_t quarantine_poll_ms; /* QUARANTINE_POLL_MS, or COMIO_QUARANTINE_POLL_MS (tests) */
    uint64_t tomb_ttl_ms;       /* atomic; 0: keep tombstones */
    EVP_MD *md5;                /* fetched once: EVP_md5() would look the implementation up at every digest */

    pthread_mutex_t rd_mu; /* readers */
    uint64_t epoch;
    reader_slot_t *readers;
    size_t nreaders, capreaders;

    /* committer thread only */
    alloc_extent_t *chunks_out; /* reserved extents freed in the open transaction */
    size_t nchunks_out, capchunks_out;
    quarantined_t *q;
    size_t nq, capq;
    uint64_t commits, jobs;
    int64_t gc_next_ms; /* when the next collection pass may start */
    int gc_running;     /* a pass is under way: one slice per round */
    uint64_t gc_removed;
    uint8_t gc_pos[META_OBJKEY_MAX];
    size_t gc_pos_len;
};

static void list_init(job_list_t *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_push(job_list_t *l, commit_job_t *j)
{
    j->next = NULL;
    *l->tail = j;
    l->tail = &j->next;
}

static commit_job_t *list_take(job_list_t *l)
{
    commit_job_t *h = l->head;
    list_init(l);
    return h;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static uint64_t oldest_reader(commit_t *c)
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
static int quarantine_track(commit_t *c, alloc_extent_t e, uint64_t tag, int reserved)
{
    if (c->nq == c->capq) {
        size_t ncap = c->capq ? c->capq * 2 : 256;
        quarantined_t *n = realloc(c->q, ncap * sizeof(*n));
        if (n == NULL)
            return CIO_ENOMEM;
        c->q = n;
        c->capq = ncap;
    }
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
static int quarantine_add(commit_t *c, MDB_txn *txn, alloc_extent_t e)
{
    int ret;
    if (e.len == 0)
        return 0;
    if ((ret = meta_pending_add(c->meta, txn, e)) != 0)
        return ret;
    return quarantine_track(c, e, UINT64_MAX, 0);
}

/* Releases, in txn, the quarantined extents no reader can still see: small
 * ones join the reservation, to be kept by carve for reuse once txn commits
 * (quarantine_keep), while carve has room; the others go back to the free
 * map. Returns how many (they are dropped from the list only once txn
 * commits). */
static int quarantine_release(commit_t *c, MDB_txn *txn, size_t *released)
{
    uint64_t oldest = oldest_reader(c), held = 0, planned_bytes = 0;
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

/* After the commit of quarantine_release: hands the kept extents to carve. */
static void quarantine_keep(commit_t *c, size_t released)
{
    for (size_t i = 0; i < released; i++)
        if (c->q[i].keep && carve_keep(&c->carve, c->q[i].ext) != 0)
            log_msg(LOG_LVL_WARN, "reserved space stays pending until restart", NULL); /* room was counted: not expected */
}

/* ---- chunks for small PUTs (carve.h; committer thread) ---- */

/* Frees, in txn, the chunk remainders no longer cut from (with `all`, what is
 * left of every chunk). They are remembered in chunks_out, to be handed back
 * to carve if txn fails. */
static int chunks_release(commit_t *c, MDB_txn *txn, int all)
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
 * CHUNK_MIN. *chunk (len 0: none) is offered once txn is durable. */
static int chunk_reserve(commit_t *c, MDB_txn *txn, alloc_extent_t *chunk)
{
    uint64_t free_bytes, want;
    int ret;

    *chunk = (alloc_extent_t){0, 0};
    if (!carve_wants(&c->carve))
        return 0;
    if ((ret = alloc_stats(&c->meta->alloc, txn, NULL, &free_bytes, NULL, NULL)) != 0)
        return ret;
    want = free_bytes / CHUNK_SHARE < CHUNK_MAX ? free_bytes / CHUNK_SHARE : CHUNK_MAX;
    for (; want >= CHUNK_MIN; want /= 2) {
        ret = alloc_reserve(&c->meta->alloc, txn, want, chunk);
        if (ret == CIO_ENOSPC)
            continue;
        if (ret != 0)
            return ret;
        return meta_pending_add(c->meta, txn, *chunk);
    }
    *chunk = (alloc_extent_t){0, 0};
    return 0;
}

/* alloc_alloc, but when nothing fits, the chunks' unused space goes back to
 * the free map first and the allocation is tried again. */
static int take_extent(commit_t *c, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out)
{
    size_t before = c->nchunks_out;
    int ret = alloc_alloc(&c->meta->alloc, txn, bytes, out);

    if (ret != CIO_ENOSPC)
        return ret;
    if ((ret = chunks_release(c, txn, 1)) != 0)
        return ret;
    return c->nchunks_out > before ? alloc_alloc(&c->meta->alloc, txn, bytes, out) : CIO_ENOSPC;
}

/* At shutdown: what is left of the chunks, and the quarantine when nobody
 * reads any more (the HTTP server stops first), go back to the free map, so
 * that a clean stop leaves nothing pending. */
static void release_at_stop(commit_t *c)
{
    MDB_txn *txn;
    size_t nq = oldest_reader(c) == UINT64_MAX ? c->nq : 0;
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
    if ((ret = chunks_release(c, txn, 1)) != 0 || (c->nchunks_out == 0 && nq == 0)) {
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

/* ---- the mutations (committer thread, inside txn) ---- */

static int fatal(int err)
{
    return err == CIO_EDB || err == CIO_EMAPFULL || err == CIO_ENOMEM || err == CIO_EPROTO;
}

static int bucket_load_or_create(commit_t *c, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *bk, int *created)
{
    int ret = meta_bucket_get(c->meta, txn, b, blen, bk);
    *created = 0;
    if (ret == CIO_ENOTFOUND) {
        memset(bk, 0, sizeof(*bk));
        bk->ctime_ms = now_ms();
        *created = 1;
        return 0;
    }
    return ret;
}

/* On a replica, a local write that replaces or removes an object applied
 * from the primary keeps that object's version as a tombstone, so that an
 * older event of the primary still on its way cannot win over what had
 * already been applied (docs/replication-apply.md). No-op on a primary. */
static int keep_applied_version(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_obj_t *old)
{
    meta_tomb_t t;
    int ret;

    if (!old->replicated)
        return 0;
    ret = meta_tomb_get(c->meta, txn, b, blen, old->key, old->key_len, &t);
    if (ret == 0 && t.version >= old->version)
        return 0;
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    t.version = old->version;
    t.time_ms = now_ms();
    return meta_tomb_put(c->meta, txn, b, blen, old->key, old->key_len, &t);
}

static int log_append(commit_t *c, MDB_txn *txn, commit_job_t *j, logrec_op_t op)
{
    logrec_t r;
    if (!c->log_enabled)
        return 0;
    memset(&r, 0, sizeof(r));
    r.seq = j->version;
    r.op = op;
    r.bucket = j->bucket;
    r.bucket_len = j->blen;
    r.key = j->key;
    r.key_len = op == LOGREC_PURGE ? 0 : j->klen;
    r.mtime_ms = j->mtime_ms;
    r.origin = c->site_id;
    r.origin_len = strlen(c->site_id);
    if (op == LOGREC_PUT) {
        r.size = j->size;
        memcpy(r.etag, j->etag, 16);
        r.content_type = j->ctype;
        r.content_type_len = j->ctype_len;
    }
    return replog_append(c->meta, txn, &r);
}

static int finish_put(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_obj_t o, old;
    int created, ret, had_old;

    if ((ret = bucket_load_or_create(c, txn, j->bucket, j->blen, &bk, &created)) != 0)
        return ret;
    ret = meta_obj_get(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &old);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    had_old = ret == 0;
    if ((ret = replog_next_seq(c->meta, txn, &j->version)) != 0)
        return ret;
    j->mtime_ms = now_ms();
    memset(&o, 0, sizeof(o));
    o.version = j->version;
    o.off = j->ext.off;
    o.alen = j->ext.len;
    o.size = j->size;
    memcpy(o.etag, j->etag, 16);
    o.mtime_ms = j->mtime_ms;
    o.ctype_len = (uint16_t)j->ctype_len;
    memcpy(o.ctype, j->ctype, j->ctype_len);
    if ((ret = meta_obj_put(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &o)) != 0 ||
        (ret = meta_pending_del(c->meta, txn, j->ext)) != 0 ||
        (j->carved && (ret = alloc_unreserve(&c->meta->alloc, txn, j->ext.len)) != 0))
        return ret;
    if (had_old) {
        if ((ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0 ||
            (ret = keep_applied_version(c, txn, j->bucket, j->blen, &old)) != 0)
            return ret;
        bk.objects--;
        bk.bytes -= old.size;
    }
    bk.objects++;
    bk.bytes += j->size;
    if ((ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, had_old ? 0 : 1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, (int64_t)j->size - (had_old ? (int64_t)old.size : 0))) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_PUT);
}

static int finish_delete(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_obj_t old;
    int ret;

    if ((ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk)) != 0)
        return ret; /* CIO_ENOTFOUND: no such bucket */
    ret = meta_obj_get(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &old);
    if (ret == CIO_ENOTFOUND)
        return 0; /* nothing to delete, nothing to log */
    if (ret != 0)
        return ret;
    if ((ret = replog_next_seq(c->meta, txn, &j->version)) != 0)
        return ret;
    j->mtime_ms = now_ms();
    bk.objects--;
    bk.bytes -= old.size;
    if ((ret = meta_obj_del(c->meta, txn, j->bucket, j->blen, j->key, j->klen)) != 0 ||
        (ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0 ||
        (ret = keep_applied_version(c, txn, j->bucket, j->blen, &old)) != 0 ||
        (ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, -1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)old.size)) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_DELETE);
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
    if ((p->err = quarantine_add(p->c, p->txn, (alloc_extent_t){o->off, o->alen})) != 0 ||
        (p->err = keep_applied_version(p->c, p->txn, p->j->bucket, p->j->blen, o)) != 0)
        return 1;
    p->j->count++;
    p->j->bytes += o->size;
    return 0;
}

static int finish_purge(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    MDB_cursor *cur = NULL;
    purge_ctx_t p = {c, txn, j, 0};
    uint8_t seek[LOGREC_BUCKET_MAX + 1];
    int ret, rc;

    if ((ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk)) != 0)
        return ret;
    if ((ret = meta_obj_list(c->meta, txn, j->bucket, j->blen, "", 0, "", 0, SIZE_MAX, purge_one, &p)) != 0)
        return ret;
    if (p.err != 0)
        return p.err;
    /* now remove the bucket's whole key range */
    memcpy(seek, j->bucket, j->blen);
    seek[j->blen] = 0;
    if ((rc = mdb_cursor_open(txn, c->meta->objects, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(objects)");
    for (;;) {
        MDB_val k = {j->blen + 1, seek}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || k.mv_size < j->blen + 1 || memcmp(k.mv_data, seek, j->blen + 1) != 0)
            break;
        if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0) {
            mdb_cursor_close(cur);
            return meta_err(rc, "purge objects");
        }
    }
    mdb_cursor_close(cur);
    if ((ret = replog_next_seq(c->meta, txn, &j->version)) != 0)
        return ret;
    j->mtime_ms = now_ms();
    bk.objects = 0;
    bk.bytes = 0;
    if ((ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_OBJECTS, -(int64_t)j->count)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)j->bytes)) != 0)
        return ret;
    return log_append(c, txn, j, LOGREC_PURGE);
}

static int finish_bucket(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    int ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, &bk);

    if (j->op == COMMIT_BUCKET_CREATE) {
        if (ret != CIO_ENOTFOUND)
            return ret;
        memset(&bk, 0, sizeof(bk));
        bk.ctime_ms = now_ms();
        j->created = 1;
        return meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk);
    }
    if (ret != 0)
        return ret;
    if (bk.objects > 0)
        return CIO_ENOTEMPTY;
    return meta_bucket_del(c->meta, txn, j->bucket, j->blen);
}

/* ---- a replica's batch (COMMIT_APPLY) ---- */

static void item_set(commit_item_t *it, batch_result_t result, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void item_set(commit_item_t *it, batch_result_t result, unsigned status, const char *fmt, ...)
{
    va_list ap;
    it->final = 1;
    it->result = result;
    it->status = status;
    va_start(ap, fmt);
    vsnprintf(it->error, sizeof(it->error), fmt, ap);
    va_end(ap);
}

static void item_fail(commit_item_t *it, int err)
{
    item_set(it, BATCH_RETRY, err == CIO_ENOSPC || err == CIO_EMAPFULL ? 507 : 500, "%s", cio_strerror(err));
}

static void item_log(const commit_item_t *it, log_level_t lvl, const char *msg)
{
    char ver[24], key[LOGREC_KEY_MAX + 1];
    snprintf(ver, sizeof(ver), "%" PRIu64, it->version);
    snprintf(key, sizeof(key), "%.*s", (int)it->klen, it->key);
    log_msg(lvl, msg, "op", logrec_op_name(it->op), "bucket", it->bucket, "key", key, "version", ver, "error", it->error, NULL);
}

/* What one job's pass over its items (one call, one transaction) remembers:
 * the purge version and the record of the bucket it saw last (consecutive
 * events mostly share a bucket), and the changes to the "objects" and
 * "bytes" counters. The record's changes and the counters are written by
 * apply_cache_flush, before anything else may read them. */
typedef struct {
    const char *bucket; /* NULL: nothing cached */
    size_t blen;
    uint64_t purge;
    int have_bk, bk_dirty;
    meta_bucket_t bk;
    int64_t objects, bytes;
} apply_cache_t;

static int apply_cache_flush(commit_t *c, MDB_txn *txn, apply_cache_t *ac)
{
    int ret;
    if (ac->bk_dirty && (ret = meta_bucket_put(c->meta, txn, ac->bucket, ac->blen, &ac->bk)) != 0)
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
        ret = create ? bucket_load_or_create(c, txn, ac->bucket, ac->blen, &ac->bk, &created)
                     : meta_bucket_get(c->meta, txn, ac->bucket, ac->blen, &ac->bk);
        if (ret != 0)
            return ret;
        ac->have_bk = 1;
        ac->bk_dirty = created;
    }
    *bk = &ac->bk;
    return 0;
}

/* What the replica knows of the item's key: the highest of the version of
 * the object applied here, its tombstone's and its bucket's purge version (a
 * PURGE looks at the purge version only). An object written locally does not
 * count: its version is this site's, not comparable to the primary's, and
 * the primary's writes win over it. *had_old tells whether `old` holds the
 * object, applied or local; *had_tomb whether the key has a tombstone. */
static int known_version(commit_t *c, MDB_txn *txn, apply_cache_t *ac, const commit_item_t *it, uint64_t *known, meta_obj_t *old,
                         int *had_old, int *had_tomb)
{
    meta_tomb_t t;
    int ret;

    *had_old = *had_tomb = 0;
    if ((ret = apply_cache_bucket(c, txn, ac, it)) != 0)
        return ret;
    *known = ac->purge;
    if (it->op == LOGREC_PURGE)
        return 0;
    ret = meta_obj_get(c->meta, txn, it->bucket, it->blen, it->key, it->klen, old);
    if (ret == 0) {
        *had_old = 1;
        if (old->replicated && old->version > *known)
            *known = old->version;
    } else if (ret != CIO_ENOTFOUND) {
        return ret;
    }
    ret = meta_tomb_get(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &t);
    if (ret == 0) {
        *had_tomb = 1;
        if (t.version > *known)
            *known = t.version;
    }
    return ret == CIO_ENOTFOUND ? 0 : ret;
}

/* Marks the item skipped when it is no newer than what is known; 1 if so. */
static int item_stale(commit_item_t *it, uint64_t known)
{
    if (it->version > known)
        return 0;
    if (it->version == known)
        item_set(it, BATCH_SKIPPED, 200, "duplicate: this version is already applied");
    else
        item_set(it, BATCH_SKIPPED, 200, "stale: the replica holds version %" PRIu64, known);
    return 1;
}

/* Step 1: extents for the PUTs not already stale. They are cut from one
 * extent for the whole job when the free map has one that large (j->ext,
 * marked pending as a whole: one allocation, one pending record, where a
 * batch of small objects would otherwise take one of each per object), else
 * taken one by one. Only fatal errors are returned; an item that cannot have
 * its extent (507) fails alone. */
static int apply_allocate(commit_t *c, MDB_txn *txn, commit_job_t *j)
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
        uint64_t known;
        meta_obj_t old;
        int had_old, had_tomb;

        it->job = j;
        it->ext = (alloc_extent_t){0, 0};
        if (it->final || it->op != LOGREC_PUT)
            continue;
        if ((ret = known_version(c, txn, &ac, it, &known, &old, &had_old, &had_tomb)) != 0)
            return ret;
        if (item_stale(it, known))
            continue;
        if (it->size == 0) {
            if (CRYPTO_memcmp(it->etag, empty_md5, 16) != 0)
                item_set(it, BATCH_PERMANENT, 400, "an empty object whose ETag is not the MD5 of nothing");
            continue; /* nothing to write: finished in step 3 */
        }
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
        ret = alloc_alloc(&c->meta->alloc, txn, want, &j->ext);
        if (ret == 0) {
            uint64_t off = j->ext.off;
            if ((ret = meta_pending_add(c->meta, txn, j->ext)) != 0)
                return ret;
            for (size_t i = 0; i < j->nitems; i++) {
                commit_item_t *it = &j->items[i];
                if (it->final || it->op != LOGREC_PUT || it->size == 0)
                    continue;
                it->ext = (alloc_extent_t){off, alloc_round(it->size)};
                off += it->ext.len;
            }
            j->apply_io = 1;
            return 0;
        }
        j->ext = (alloc_extent_t){0, 0};
        if (fatal(ret))
            return ret;
        /* no free extent that large: one by one below */
    }
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        if (it->final || it->op != LOGREC_PUT || it->size == 0)
            continue;
        ret = take_extent(c, txn, it->size, &it->ext);
        if (ret == 0 && (ret = meta_pending_add(c->meta, txn, it->ext)) != 0)
            return ret; /* the allocation is in txn: only a failed round undoes it */
        if (ret != 0) {
            if (fatal(ret))
                return ret;
            it->ext = (alloc_extent_t){0, 0};
            item_fail(it, ret);
            continue;
        }
        j->apply_io = 1;
    }
    return 0;
}

typedef struct {
    commit_t *c;
    MDB_txn *txn;
    uint64_t version;
    uint64_t count, bytes;
} apply_purge_ctx_t;

/* A PURGE removes what is older than it, and local writes, which lose to
 * anything from the primary. */
static int apply_purge_pick(void *ctx, const meta_obj_t *o)
{
    apply_purge_ctx_t *p = ctx;
    int ret;
    if (o->replicated && o->version >= p->version)
        return 0;
    if ((ret = quarantine_add(p->c, p->txn, (alloc_extent_t){o->off, o->alen})) != 0)
        return ret;
    p->count++;
    p->bytes += o->size;
    return 1;
}

/* Step 3 for one item that is still undecided: staleness again (another
 * batch may have applied a newer version since step 1), then the change.
 * Only fatal errors are returned. */
static int apply_item(commit_t *c, MDB_txn *txn, apply_cache_t *ac, commit_item_t *it)
{
    meta_bucket_t *bk;
    meta_obj_t o, old;
    meta_tomb_t tomb;
    uint64_t known;
    int ret, had_old, had_tomb;

    if ((ret = known_version(c, txn, ac, it, &known, &old, &had_old, &had_tomb)) != 0)
        return ret;
    if (item_stale(it, known))
        return 0;
    switch (it->op) {
    case LOGREC_PUT:
        if ((ret = apply_cache_bk(c, txn, ac, 1, &bk)) != 0)
            return ret;
        memset(&o, 0, sizeof(o));
        o.version = it->version;
        o.off = it->ext.off;
        o.alen = it->ext.len;
        o.size = it->size;
        memcpy(o.etag, it->etag, 16);
        o.mtime_ms = it->mtime_ms;
        o.ctype_len = (uint16_t)it->ctype_len;
        memcpy(o.ctype, it->ctype, it->ctype_len);
        o.replicated = 1;
        /* an extent cut from the job's run is not pending on its own (finish_apply) */
        if ((ret = meta_obj_put(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &o)) != 0 ||
            (it->job->ext.len == 0 && (ret = meta_pending_del(c->meta, txn, it->ext)) != 0) ||
            (had_tomb && (ret = meta_tomb_del(c->meta, txn, it->bucket, it->blen, it->key, it->klen)) != 0))
            return ret;
        if (had_old) {
            if ((ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0)
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
                (ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0)
                return ret;
        }
        tomb.version = it->version;
        tomb.time_ms = now_ms();
        if ((ret = meta_tomb_put(c->meta, txn, it->bucket, it->blen, it->key, it->klen, &tomb)) != 0)
            return ret;
        break;
    case LOGREC_PURGE: {
        /* objects written after the purge on the primary (a higher version) stay */
        apply_purge_ctx_t p = {c, txn, it->version, 0, 0};
        meta_bucket_t pbk;
        /* the purge reads and writes the bucket itself: what is cached goes first, and is forgotten */
        if ((ret = apply_cache_flush(c, txn, ac)) != 0)
            return ret;
        if ((ret = meta_purge_put(c->meta, txn, it->bucket, it->blen, it->version)) != 0 ||
            (ret = meta_obj_del_if(c->meta, txn, it->bucket, it->blen, apply_purge_pick, &p)) != 0 ||
            (ret = meta_tomb_del_older(c->meta, txn, it->bucket, it->blen, it->version)) != 0)
            return ret;
        if (p.count > 0) {
            if ((ret = meta_bucket_get(c->meta, txn, it->bucket, it->blen, &pbk)) != 0)
                return ret == CIO_ENOTFOUND ? CIO_EPROTO : ret;
            pbk.objects -= p.count;
            pbk.bytes -= p.bytes;
            if ((ret = meta_bucket_put(c->meta, txn, it->bucket, it->blen, &pbk)) != 0 ||
                (ret = meta_state_add(c->meta, txn, META_OBJECTS, -(int64_t)p.count)) != 0 ||
                (ret = meta_state_add(c->meta, txn, META_BYTES, -(int64_t)p.bytes)) != 0)
                return ret;
        }
        break;
    }
    }
    item_set(it, BATCH_APPLIED, 200, "%s", "");
    return 0;
}

/* Step 3 for the whole batch, in batch order, in the caller's transaction.
 * The extents of items that end up skipped or failed are freed (they are
 * pending since step 1; those cut from the job's run are marked pending on
 * their own here, as the run's mark goes). Only fatal errors are returned;
 * the caller's round then fails and every extent of the job is freed by a
 * later round. */
static int finish_apply(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    uint64_t n[4] = {0, 0, 0, 0};
    apply_cache_t ac;
    int ret;

    memset(&ac, 0, sizeof(ac));
    if ((ret = meta_pending_del(c->meta, txn, j->ext)) != 0)
        return ret;
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        if (!it->final && j->result != 0)
            item_fail(it, j->result); /* the data sync failed: nothing of it is durable */
        if (!it->final && (ret = apply_item(c, txn, &ac, it)) != 0)
            return ret;
        if (it->result != BATCH_APPLIED && it->ext.len > 0 &&
            (ret = j->ext.len > 0 ? quarantine_add(c, txn, it->ext) : quarantine_track(c, it->ext, UINT64_MAX, 0)) != 0)
            return ret;
        if (it->result == BATCH_PERMANENT)
            item_log(it, LOG_LVL_WARN, "replicated event refused for good");
        n[it->result]++;
    }
    if ((ret = apply_cache_flush(c, txn, &ac)) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_APPLIED, (int64_t)n[BATCH_APPLIED])) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_SKIPPED, (int64_t)n[BATCH_SKIPPED])) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_FAILED, (int64_t)(n[BATCH_RETRY] + n[BATCH_PERMANENT]))) != 0 ||
        (ret = meta_state_add(c->meta, txn, META_APPLY_PERMANENT, (int64_t)n[BATCH_PERMANENT])) != 0)
        return ret;
    return 0;
}

/* A failed round undid the job's step 3, not its step 1: free its extents later. */
static void apply_release_extents(commit_t *c, commit_job_t *j)
{
    if (j->ext.len > 0) {
        /* the run is pending as a whole: its items' extents are parts of it */
        if (quarantine_track(c, j->ext, 0, 0) != 0)
            log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
        return;
    }
    for (size_t i = 0; i < j->nitems; i++)
        if (j->items[i].ext.len > 0 && quarantine_track(c, j->items[i].ext, 0, 0) != 0)
            log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
}

/* ---- tombstone collection (committer thread) ---- */

static int gc_due(commit_t *c, int64_t now)
{
    return __atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED) != 0 && (c->gc_running || now >= c->gc_next_ms);
}

/* One slice of a pass, in the round's transaction. Removing a tombstone is
 * no promise to anybody, so it needs no sync of its own. */
static int gc_slice(commit_t *c, MDB_txn *txn, uint64_t *collected)
{
    uint64_t ttl = __atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED), removed = 0;
    int64_t now = now_ms();
    int ret, done = 0;

    *collected = 0;
    if (!gc_due(c, now))
        return 0;
    if (!c->gc_running) {
        c->gc_running = 1;
        c->gc_next_ms = now + GC_INTERVAL_MS;
        c->gc_pos_len = 0;
        c->gc_removed = 0;
    }
    if (now < 0 || ttl > (uint64_t)now)
        done = 1; /* nothing can be that old */
    else if ((ret = meta_tomb_gc(c->meta, txn, c->gc_pos, &c->gc_pos_len, now - (int64_t)ttl, GC_SLICE, &removed, &done)) != 0) {
        c->gc_running = 0; /* give this pass up rather than fail every round */
        return ret;
    }
    c->gc_removed += removed;
    *collected = removed;
    if (done) {
        c->gc_running = 0;
        if (c->gc_removed > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, c->gc_removed);
            log_msg(LOG_LVL_INFO, "expired tombstones collected", "count", n, NULL);
        }
    }
    return 0;
}

/* ---- the committer ---- */

static void io_enqueue(commit_t *c, commit_job_t *j)
{
    pthread_mutex_lock(&c->io_mu);
    j->body_busy = 1;
    list_push(&c->io, j);
    pthread_cond_signal(&c->io_cv);
    pthread_mutex_unlock(&c->io_mu);
}

/* One transaction over what is at hand: finishes `written`, allocates or
 * finishes `inbox`. Calls done() for every job that completes. */
static void commit_round(commit_t *c, commit_job_t *inbox, commit_job_t *written)
{
    MDB_txn *txn = NULL;
    job_list_t done, to_io;
    size_t q_before = c->nq, released = 0;
    uint64_t collected = 0;
    int ret, rc, need_sync = 0;
    commit_job_t *j, *next;

    alloc_extent_t chunk = {0, 0};

    list_init(&done);
    list_init(&to_io);
    c->nchunks_out = 0;
    if ((rc = mdb_txn_begin(c->meta->env, NULL, 0, &txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_begin");
        goto fail;
    }
    if ((ret = quarantine_release(c, txn, &released)) != 0 || (ret = gc_slice(c, txn, &collected)) != 0 ||
        (ret = chunks_release(c, txn, 0)) != 0)
        goto fail;
    if (inbox == NULL && written == NULL && released == 0 && collected == 0 && c->nchunks_out == 0 && !carve_wants(&c->carve)) {
        mdb_txn_abort(txn); /* an idle poll that found nothing to do: no commit to count */
        return;
    }
    /* the PUT bodies written since the last round reach the disk with one sync, before the commit that refers to them */
    for (j = written; j != NULL && !(j->op == COMMIT_PUT && j->result == 0); j = j->next)
        ;
    if (j != NULL) {
        int sret = store_sync(c->store);
        for (; j != NULL && sret != 0; j = j->next)
            if (j->op == COMMIT_PUT && j->result == 0)
                j->result = sret;
    }
    for (j = written; j != NULL; j = j->next) {
        if (j->op == COMMIT_APPLY) {
            if ((ret = finish_apply(c, txn, j)) != 0)
                goto fail; /* only fatal errors come back */
            need_sync = 1;
            continue;
        }
        if (j->result == 0) {
            if ((ret = finish_put(c, txn, j)) != 0) {
                if (fatal(ret))
                    goto fail;
                j->result = ret;
            }
        }
        if (j->result != 0 && j->ext.len > 0 && (ret = quarantine_track(c, j->ext, UINT64_MAX, j->carved)) != 0)
            goto fail; /* pending already: free it like a released extent */
        need_sync = 1;
    }
    for (j = inbox; j != NULL; j = j->next) {
        j->result = 0;
        if (j->op == COMMIT_PUT && j->size > 0) {
            ret = take_extent(c, txn, j->size, &j->ext);
            if (ret == 0)
                ret = meta_pending_add(c->meta, txn, j->ext);
        } else if (j->op == COMMIT_APPLY) {
            /* a batch with nothing to write (deletes, purges, stale PUTs)
             * finishes in this very transaction */
            j->ext = (alloc_extent_t){0, 0};
            ret = apply_allocate(c, txn, j);
            if (ret == 0 && !j->apply_io) {
                ret = finish_apply(c, txn, j);
                need_sync = 1;
            }
        } else {
            j->ext = (alloc_extent_t){0, 0};
            switch (j->op) {
            case COMMIT_PUT:
                EVP_Digest("", 0, j->etag, NULL, EVP_md5(), NULL);
                ret = finish_put(c, txn, j);
                break;
            case COMMIT_DELETE:
                ret = finish_delete(c, txn, j);
                break;
            case COMMIT_PURGE:
                ret = finish_purge(c, txn, j);
                break;
            default:
                ret = finish_bucket(c, txn, j);
                break;
            }
            need_sync = 1;
        }
        if (ret != 0 && fatal(ret))
            goto fail;
        j->result = ret;
    }
    /* after the jobs, which come first */
    if ((ret = chunk_reserve(c, txn, &chunk)) != 0 && fatal(ret))
        goto fail;
    /* Allocations only: nothing is promised yet, so the meta page need not be
     * synced (the next synced commit covers it). NOMETASYNC, unlike NOSYNC,
     * keeps the environment intact across a power loss. */
    if (!need_sync)
        mdb_env_set_flags(c->meta->env, MDB_NOMETASYNC, 1);
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (!need_sync)
        mdb_env_set_flags(c->meta->env, MDB_NOMETASYNC, 0);
    if (rc != 0) {
        ret = meta_err(rc, "mdb_txn_commit");
        goto fail;
    }

    /* durable: wake repld (the log may have grown), offer the chunk, age the quarantine, then answer */
    if (c->log_enabled && need_sync)
        replog_wake(c->meta);
    if (chunk.len > 0 && carve_offer(&c->carve, chunk) != 0 && carve_restore(&c->carve, &chunk, 1) != 0)
        log_msg(LOG_LVL_WARN, "reserved space stays pending until restart", NULL);
    c->commits++;
    pthread_mutex_lock(&c->rd_mu);
    uint64_t tag = c->epoch++;
    pthread_mutex_unlock(&c->rd_mu);
    for (size_t i = q_before; i < c->nq; i++)
        c->q[i].tag = tag;
    if (released > 0) {
        quarantine_keep(c, released);
        memmove(c->q, c->q + released, (c->nq - released) * sizeof(*c->q));
        c->nq -= released;
    }
    for (j = written; j != NULL; j = next) {
        next = j->next;
        list_push(&done, j);
    }
    for (j = inbox; j != NULL; j = next) {
        next = j->next;
        if (j->result == 0 && ((j->op == COMMIT_PUT && j->size > 0) || (j->op == COMMIT_APPLY && j->apply_io)))
            list_push(&to_io, j);
        else
            list_push(&done, j);
    }
    goto reply;

fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    c->nq = q_before; /* nothing of this round was committed */
    log_msg(LOG_LVL_ERROR, "commit failed", "error", cio_strerror(ret), NULL);
    if (carve_restore(&c->carve, c->chunks_out, c->nchunks_out) != 0)
        log_msg(LOG_LVL_WARN, "reserved space stays pending until restart", NULL);
    /* written PUTs hold pending extents committed earlier: free them in a later round */
    for (j = written; j != NULL; j = next) {
        next = j->next;
        j->result = ret;
        if (j->op == COMMIT_APPLY)
            apply_release_extents(c, j);
        else if (j->ext.len > 0 && quarantine_track(c, j->ext, 0, j->carved) != 0)
            log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
        j->version = 0;
        list_push(&done, j);
    }
    for (j = inbox; j != NULL; j = next) {
        next = j->next;
        j->result = ret;
        j->version = 0;
        list_push(&done, j);
    }
reply:
    pthread_mutex_lock(&c->mu);
    for (j = to_io.head; j != NULL; j = j->next)
        c->in_io++;
    pthread_mutex_unlock(&c->mu);
    for (j = to_io.head; j != NULL; j = next) {
        next = j->next;
        io_enqueue(c, j);
    }
    for (j = done.head; j != NULL; j = next) {
        next = j->next;
        c->jobs++;
        j->done(j);
    }
}

static size_t list_cut(commit_job_t **head, size_t max, commit_job_t **rest)
{
    size_t n = 0;
    commit_job_t **p = head;
    while (*p != NULL && n < max) {
        p = &(*p)->next;
        n++;
    }
    *rest = *p;
    *p = NULL;
    return n;
}

static void *committer_main(void *arg)
{
    commit_t *c = arg;

    c->gc_next_ms = now_ms(); /* a first collection pass right away */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->inbox.head == NULL && c->written.head == NULL && !c->carve_wake && !(c->stopping && c->in_io == 0)) {
            /* idle: wake for released extents, and for tombstone collection */
            int64_t now = now_ms(), wait_ms = c->nq > 0 ? c->quarantine_poll_ms : -1;
            if (gc_due(c, now))
                break;
            if (__atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED) != 0 && (wait_ms < 0 || c->gc_next_ms - now < wait_ms))
                wait_ms = c->gc_next_ms - now;
            if (wait_ms >= 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L)
                    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
                    break;
            } else {
                pthread_cond_wait(&c->cv, &c->mu);
            }
        }
        if (c->stopping && c->in_io == 0 && c->inbox.head == NULL && c->written.head == NULL)
            break;
        commit_job_t *inbox = list_take(&c->inbox), *written = list_take(&c->written), *rest;
        int wake = c->carve_wake;
        size_t nw = 0;
        c->carve_wake = 0;
        for (commit_job_t *j = written; j != NULL; j = j->next)
            nw++;
        c->in_io -= nw;
        /* bound the round; put the remainder back at the front of the inbox */
        list_cut(&inbox, GROUP_MAX, &rest);
        if (rest != NULL) {
            commit_job_t **t = &rest;
            while (*t != NULL)
                t = &(*t)->next;
            *t = c->inbox.head;
            if (c->inbox.head == NULL)
                c->inbox.tail = t;
            c->inbox.head = rest;
        }
        pthread_mutex_unlock(&c->mu);
        if (inbox != NULL || written != NULL || wake || c->nq > 0 || gc_due(c, now_ms()))
            commit_round(c, inbox, written);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    release_at_stop(c);
    return NULL;
}

/* ---- the writers ---- */

/* A fetcher finished the job's last fetch: sync what the job wrote and hand
 * it back to the committer. */
static void fetch_job_done(commit_t *c, commit_job_t *j)
{
    int ret = store_sync(c->store);
    if (ret != 0 && j->result == 0)
        j->result = ret;
    pthread_mutex_lock(&c->mu);
    list_push(&c->written, j);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Step 2 of an APPLY job on an I/O thread: checks and writes the inline
 * bodies, lets the submitter free the batch buffer, then hands the URLs to
 * the fetchers. Returns 1 when it did (the job is theirs now: the caller must
 * not touch it), 0 when the job goes back to the committer with the caller's
 * batch; *wrote tells whether a sync is needed. */
#define WRITE_RUN_MAX 256 /* items per pwritev: two iovecs each, well under IOV_MAX */

/* Writes the inline bodies of items run[0..n), whose extents follow each
 * other in the store, with one pwritev (the tail of each extent that its
 * body does not fill is written with zeros, so the bytes are contiguous):
 * one system call where there would be one per object. An item of a batch
 * has adjacent extents when they were cut from the job's run (apply_allocate). */
static int write_run(commit_t *c, commit_item_t **run, size_t n)
{
    static const char zeros[ALLOC_BLOCK];
    struct iovec iov[2 * WRITE_RUN_MAX], *v = iov;
    int cnt = 0;

    for (size_t i = 0; i < n; i++) {
        iov[cnt++] = (struct iovec){(void *)run[i]->data, (size_t)run[i]->size};
        if (i + 1 < n && run[i]->ext.len > run[i]->size)
            iov[cnt++] = (struct iovec){(void *)zeros, (size_t)(run[i]->ext.len - run[i]->size)};
    }
    uint64_t off = run[0]->ext.off;
    while (cnt > 0) {
        ssize_t w = pwritev(c->store->fd, v, cnt, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_LVL_ERROR, "pwritev failed", "path", c->store->path, "error", strerror(errno), NULL);
            return CIO_EIO;
        }
        off += (uint64_t)w;
        while (cnt > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Writes the run and records the outcome in its items; empties it. */
static void flush_run(commit_t *c, commit_item_t **run, size_t *n, int *wrote)
{
    int ret;
    if (*n == 0)
        return;
    if ((ret = write_run(c, run, *n)) != 0) {
        for (size_t i = 0; i < *n; i++)
            item_fail(run[i], ret);
    } else {
        *wrote = 1;
    }
    *n = 0;
}

static int io_apply(commit_t *c, commit_job_t *j, int *wrote)
{
    commit_item_t *head = NULL, **tail = &head;
    commit_item_t *run[WRITE_RUN_MAX];
    size_t nfetch = 0, nrun = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(); /* NULL: every inline item fails with a retry */

    *wrote = 0;
    for (size_t i = 0; i < j->nitems; i++) {
        commit_item_t *it = &j->items[i];
        uint8_t md[16];
        if (it->final || it->ext.len == 0)
            continue;
        if (it->url != NULL) {
            *tail = it;
            tail = &it->fetch_next;
            nfetch++;
            continue;
        }
        if (j->body == NULL) {
            item_set(it, BATCH_RETRY, 500, "the sender went away before the data was written");
            continue;
        }
        /* the MD5 is checked here, off the event loops */
        if (ctx == NULL || EVP_DigestInit_ex2(ctx, c->md5 != NULL ? c->md5 : EVP_md5(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, it->data, (size_t)it->size) != 1 || EVP_DigestFinal_ex(ctx, md, NULL) != 1) {
            item_fail(it, CIO_ENOMEM);
        } else if (CRYPTO_memcmp(md, it->etag, 16) != 0) {
            item_set(it, BATCH_PERMANENT, 400, "the inline data does not match the record's ETag");
        } else {
            const commit_item_t *last = nrun > 0 ? run[nrun - 1] : NULL;
            if (last != NULL && (nrun == WRITE_RUN_MAX || last->ext.off + last->ext.len != it->ext.off))
                flush_run(c, run, &nrun, wrote);
            run[nrun++] = it;
        }
    }
    flush_run(c, run, &nrun, wrote);
    *tail = NULL;
    EVP_MD_CTX_free(ctx);
    pthread_mutex_lock(&c->io_mu);
    j->body_busy = 0;
    pthread_cond_broadcast(&c->body_cv);
    pthread_mutex_unlock(&c->io_mu);
    if (nfetch == 0)
        return 0;
    pthread_mutex_lock(&c->fetch_mu);
    j->fetch_left = nfetch;
    *c->fetch_tail = head;
    c->fetch_tail = tail;
    pthread_cond_broadcast(&c->fetch_cv);
    pthread_mutex_unlock(&c->fetch_mu);
    return 1;
}

static void *io_main(void *arg)
{
    commit_t *c = arg;

    pthread_mutex_lock(&c->io_mu);
    for (;;) {
        while (c->io.head == NULL && !c->io_stopping)
            pthread_cond_wait(&c->io_cv, &c->io_mu);
        if (c->io.head == NULL && c->io_stopping)
            break;
        commit_job_t *batch = list_take(&c->io), *j, *next;
        job_list_t back;
        pthread_mutex_unlock(&c->io_mu);

        list_init(&back);
        int any_ok = 0;
        for (j = batch; j != NULL; j = next) {
            next = j->next;
            if (j->op == COMMIT_APPLY) {
                int wrote;
                if (io_apply(c, j, &wrote))
                    continue; /* the fetchers hand it back */
                any_ok |= wrote;
                list_push(&back, j);
                continue;
            }
            /* the ETag is computed here, off the event loops */
            if (j->body == NULL) /* the client went away before we got here */
                j->result = CIO_EAGAIN;
            else if (EVP_Digest(j->body, (size_t)j->size, j->etag, NULL, c->md5 != NULL ? c->md5 : EVP_md5(), NULL) != 1)
                j->result = CIO_ENOMEM;
            else
                j->result = store_write(c->store, j->ext.off, j->body, (size_t)j->size);
            pthread_mutex_lock(&c->io_mu);
            j->body_busy = 0;
            pthread_cond_broadcast(&c->body_cv);
            pthread_mutex_unlock(&c->io_mu);
            list_push(&back, j); /* synced by the committer, once for the round */
        }
        if (any_ok) {
            int ret = store_sync(c->store);
            for (j = back.head; j != NULL; j = j->next)
                if (j->result == 0)
                    j->result = ret;
        }
        pthread_mutex_lock(&c->mu);
        for (j = back.head; j != NULL; j = next) {
            next = j->next;
            list_push(&c->written, j);
        }
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);

        pthread_mutex_lock(&c->io_mu);
    }
    pthread_mutex_unlock(&c->io_mu);
    return NULL;
}

/* ---- the fetchers: large objects of APPLY jobs, from the primary ---- */

static void fetch_item(commit_t *c, fetch_t *f, commit_item_t *it)
{
    char err[FETCH_ERROR_MAX];
    unsigned status = 0;
    int ret;

    if (f == NULL) {
        item_fail(it, CIO_ENOMEM);
        return;
    }
    if (__atomic_load_n(&c->fetch_cancel, __ATOMIC_RELAXED)) {
        item_set(it, BATCH_RETRY, 503, "the replica is shutting down");
        return;
    }
    ret = fetch_to_store(f, it->job->fetch, it->url, c->store, it->ext.off, it->size, it->etag, &status, err, sizeof(err));
    switch (ret) {
    case 0:
        return; /* written; synced and finished with the rest of the batch */
    case CIO_ENOTFOUND:
        item_set(it, BATCH_SKIPPED, 410, "%s", err);
        return;
    case CIO_EAGAIN:
        /* 504: no answer at all (the primary is down or unreachable); 502: a bad one */
        item_set(it, BATCH_RETRY, __atomic_load_n(&c->fetch_cancel, __ATOMIC_RELAXED) ? 503 : status == 0 ? 504 : 502, "%s", err);
        /* a 200 with the wrong bytes is worth an operator's look; an
         * unreachable primary is already visible to repld */
        item_log(it, status == 200 ? LOG_LVL_WARN : LOG_LVL_DEBUG, "fetch from the primary failed");
        return;
    default:
        item_set(it, BATCH_RETRY, 500, "%s", err);
        return;
    }
}

static void *fetch_main(void *arg)
{
    commit_t *c = arg;
    fetch_t *f = fetch_new(&c->fetch_cancel); /* NULL: every fetch fails with a retry */

    pthread_mutex_lock(&c->fetch_mu);
    for (;;) {
        while (c->fetch_head == NULL && !c->fetch_stopping)
            pthread_cond_wait(&c->fetch_cv, &c->fetch_mu);
        if (c->fetch_head == NULL)
            break;
        commit_item_t *it = c->fetch_head;
        if ((c->fetch_head = it->fetch_next) == NULL)
            c->fetch_tail = &c->fetch_head;
        pthread_mutex_unlock(&c->fetch_mu);

        fetch_item(c, f, it);

        pthread_mutex_lock(&c->fetch_mu);
        commit_job_t *j = it->job;
        if (--j->fetch_left == 0) {
            pthread_mutex_unlock(&c->fetch_mu);
            fetch_job_done(c, j);
            pthread_mutex_lock(&c->fetch_mu);
        }
    }
    pthread_mutex_unlock(&c->fetch_mu);
    fetch_free(f);
    return NULL;
}

/* ---- API ---- */

void commit_submit(commit_t *c, commit_job_t *job)
{
    int want = 0;

    /* a small body gets its extent cut from a chunk and goes straight to an
     * I/O thread: no commit before its write (carve.h) */
    job->carved = 0;
    if (job->op == COMMIT_PUT && job->size > 0 && job->size <= CARVE_MAX_BYTES &&
        carve_cut(&c->carve, alloc_round(job->size), &job->ext, &want)) {
        job->carved = 1;
        job->result = 0;
        pthread_mutex_lock(&c->mu);
        c->in_io++;
        if (want) {
            c->carve_wake = 1;
            pthread_cond_signal(&c->cv);
        }
        pthread_mutex_unlock(&c->mu);
        io_enqueue(c, job);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->carve_wake |= want;
    list_push(&c->inbox, job);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void commit_release_body(commit_t *c, commit_job_t *job)
{
    pthread_mutex_lock(&c->io_mu);
    while (job->body_busy)
        pthread_cond_wait(&c->body_cv, &c->io_mu);
    job->body = NULL;
    pthread_mutex_unlock(&c->io_mu);
}

void commit_set_tombstone_ttl(commit_t *c, uint64_t ttl_ms)
{
    __atomic_store_n(&c->tomb_ttl_ms, ttl_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(&c->cv); /* recompute the idle wait */
    pthread_mutex_unlock(&c->mu);
}

void commit_stats(commit_t *c, uint64_t *commits, uint64_t *jobs)
{
    *commits = __atomic_load_n(&c->commits, __ATOMIC_RELAXED);
    *jobs = __atomic_load_n(&c->jobs, __ATOMIC_RELAXED);
}

int commit_start(commit_t **out, meta_t *m, store_t *s, const char *site_id, int log_enabled, unsigned io_threads)
{
    commit_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->site_id = strdup(site_id)) == NULL) {
        free(c);
        return CIO_ENOMEM;
    }
    c->meta = m;
    c->store = s;
    c->log_enabled = log_enabled;
    c->epoch = 1;
    /* for tests only: a long poll keeps released extents in quarantine until the stop */
    {
        const char *v = getenv("COMIO_QUARANTINE_POLL_MS");
        c->quarantine_poll_ms = v != NULL && atoi(v) > 0 ? atoi(v) : QUARANTINE_POLL_MS;
    }
    carve_init(&c->carve);
    list_init(&c->inbox);
    list_init(&c->written);
    list_init(&c->io);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_init(&c->io_mu, NULL);
    pthread_cond_init(&c->io_cv, NULL);
    pthread_cond_init(&c->body_cv, NULL);
    pthread_mutex_init(&c->rd_mu, NULL);
    pthread_mutex_init(&c->fetch_mu, NULL);
    pthread_cond_init(&c->fetch_cv, NULL);
    c->fetch_tail = &c->fetch_head;
    c->md5 = EVP_MD_fetch(NULL, "MD5", NULL); /* NULL: EVP_md5() is used */
    if (fetch_global_init() != 0) {
        log_msg(LOG_LVL_ERROR, "cannot initialise libcurl", NULL);
        return CIO_ENOMEM; /* the process exits on this error */
    }
    for (c->nfetch = 0; c->nfetch < FETCHERS; c->nfetch++)
        if (pthread_create(&c->fetch_threads[c->nfetch], NULL, fetch_main, c) != 0)
            goto fail;
    c->nio = io_threads ? io_threads : 1;
    if ((c->io_threads = calloc(c->nio, sizeof(pthread_t))) == NULL)
        goto fail;
    for (unsigned i = 0; i < c->nio; i++)
        if (pthread_create(&c->io_threads[i], NULL, io_main, c) != 0)
            goto fail; /* the process exits on this error; threads are not joined */
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    log_msg(LOG_LVL_ERROR, "cannot start the committer", "error", strerror(errno), NULL);
    return CIO_ESYS;
}

void commit_abandon_fetches(commit_t *c)
{
    __atomic_store_n(&c->fetch_cancel, 1, __ATOMIC_RELAXED);
}

void commit_stop(commit_t *c)
{
    commit_abandon_fetches(c); /* a large fetch could take minutes */
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&c->io_mu);
    c->io_stopping = 1;
    pthread_cond_broadcast(&c->io_cv);
    pthread_mutex_unlock(&c->io_mu);
    for (unsigned i = 0; i < c->nio; i++)
        pthread_join(c->io_threads[i], NULL);
    /* every APPLY job is finished, so no fetch is queued or running */
    pthread_mutex_lock(&c->fetch_mu);
    c->fetch_stopping = 1;
    pthread_cond_broadcast(&c->fetch_cv);
    pthread_mutex_unlock(&c->fetch_mu);
    for (unsigned i = 0; i < c->nfetch; i++)
        pthread_join(c->fetch_threads[i], NULL);
    EVP_MD_free(c->md5);
    carve_destroy(&c->carve);
    free(c->chunks_out);
    free(c->io_threads);
    free(c->readers);
    free(c->q);
    free(c->site_id);
    free(c);
}
