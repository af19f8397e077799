/* commit.c - group commit of storaged's mutations (see commit.h for the steps). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "commit.h"
#include "log.h"

#define GROUP_MAX 4096          /* jobs per transaction: bounds commit latency */
#define QUARANTINE_POLL_MS 50   /* how soon released extents are retried when idle */

typedef struct {
    alloc_extent_t ext;
    uint64_t tag; /* reusable once every reader with token <= tag has left */
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
    uint64_t in_io; /* PUTs between allocate and finish */
    pthread_t thread;

    pthread_mutex_t io_mu; /* io queue, body_busy flags */
    pthread_cond_t io_cv, body_cv;
    job_list_t io;
    int io_stopping;
    unsigned nio;
    pthread_t *io_threads;

    pthread_mutex_t rd_mu; /* readers */
    uint64_t epoch;
    reader_slot_t *readers;
    size_t nreaders, capreaders;

    /* committer thread only */
    quarantined_t *q;
    size_t nq, capq;
    uint64_t commits, jobs;
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

/* Remembers extent e (already marked pending) until readers are done with it. */
static int quarantine_track(commit_t *c, alloc_extent_t e, uint64_t tag)
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
    c->nq++;
    return 0;
}

/* Marks e pending in txn and quarantines it; its tag is set at commit. */
static int quarantine_add(commit_t *c, MDB_txn *txn, alloc_extent_t e)
{
    int ret;
    if (e.len == 0)
        return 0;
    if ((ret = meta_pending_add(c->meta, txn, e)) != 0)
        return ret;
    return quarantine_track(c, e, UINT64_MAX);
}

/* Frees, in txn, the quarantined extents no reader can still see. Returns how
 * many (they are dropped from the list only once txn commits). */
static int quarantine_release(commit_t *c, MDB_txn *txn, size_t *released)
{
    uint64_t oldest = oldest_reader(c);
    size_t n = 0;
    int ret;

    *released = 0;
    while (n < c->nq && c->q[n].tag != UINT64_MAX && c->q[n].tag < oldest) {
        if ((ret = meta_pending_del(c->meta, txn, c->q[n].ext)) != 0 ||
            (ret = alloc_free(&c->meta->alloc, txn, c->q[n].ext)) != 0)
            return ret;
        n++;
    }
    *released = n;
    return 0;
}

/* ---- the mutations (committer thread, inside txn) ---- */

static int fatal(int err)
{
    return err == CIO_EDB || err == CIO_EMAPFULL || err == CIO_ENOMEM || err == CIO_EPROTO;
}

static int bucket_load_or_create(commit_t *c, MDB_txn *txn, commit_job_t *j, meta_bucket_t *bk, int *created)
{
    int ret = meta_bucket_get(c->meta, txn, j->bucket, j->blen, bk);
    *created = 0;
    if (ret == CIO_ENOTFOUND) {
        memset(bk, 0, sizeof(*bk));
        bk->ctime_ms = now_ms();
        *created = 1;
        return 0;
    }
    return ret;
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
    return meta_log_append(c->meta, txn, &r);
}

static int finish_put(commit_t *c, MDB_txn *txn, commit_job_t *j)
{
    meta_bucket_t bk;
    meta_obj_t o, old;
    int created, ret, had_old;

    if ((ret = bucket_load_or_create(c, txn, j, &bk, &created)) != 0)
        return ret;
    ret = meta_obj_get(c->meta, txn, j->bucket, j->blen, j->key, j->klen, &old);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    had_old = ret == 0;
    if ((ret = meta_next_seq(c->meta, txn, &j->version)) != 0)
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
        (ret = meta_pending_del(c->meta, txn, j->ext)) != 0)
        return ret;
    if (had_old) {
        if ((ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0)
            return ret;
        bk.objects--;
        bk.bytes -= old.size;
    }
    bk.objects++;
    bk.bytes += j->size;
    if ((ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "objects", had_old ? 0 : 1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "bytes", (int64_t)j->size - (had_old ? (int64_t)old.size : 0))) != 0)
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
    if ((ret = meta_next_seq(c->meta, txn, &j->version)) != 0)
        return ret;
    j->mtime_ms = now_ms();
    bk.objects--;
    bk.bytes -= old.size;
    if ((ret = meta_obj_del(c->meta, txn, j->bucket, j->blen, j->key, j->klen)) != 0 ||
        (ret = quarantine_add(c, txn, (alloc_extent_t){old.off, old.alen})) != 0 ||
        (ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "objects", -1)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "bytes", -(int64_t)old.size)) != 0)
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
    if ((p->err = quarantine_add(p->c, p->txn, (alloc_extent_t){o->off, o->alen})) != 0)
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
    if ((ret = meta_obj_list(c->meta, txn, j->bucket, j->blen, "", 0, "", 0, purge_one, &p)) != 0)
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
    if ((ret = meta_next_seq(c->meta, txn, &j->version)) != 0)
        return ret;
    j->mtime_ms = now_ms();
    bk.objects = 0;
    bk.bytes = 0;
    if ((ret = meta_bucket_put(c->meta, txn, j->bucket, j->blen, &bk)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "objects", -(int64_t)j->count)) != 0 ||
        (ret = meta_state_add(c->meta, txn, "bytes", -(int64_t)j->bytes)) != 0)
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
    int ret, rc, need_sync = 0;
    commit_job_t *j, *next;

    list_init(&done);
    list_init(&to_io);
    if ((rc = mdb_txn_begin(c->meta->env, NULL, 0, &txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_begin");
        goto fail;
    }
    if ((ret = quarantine_release(c, txn, &released)) != 0)
        goto fail;
    for (j = written; j != NULL; j = j->next) {
        if (j->result == 0) {
            if ((ret = finish_put(c, txn, j)) != 0) {
                if (fatal(ret))
                    goto fail;
                j->result = ret;
            }
        }
        if (j->result != 0 && j->ext.len > 0 && (ret = quarantine_track(c, j->ext, UINT64_MAX)) != 0)
            goto fail; /* pending already: free it like a released extent */
        need_sync = 1;
    }
    for (j = inbox; j != NULL; j = j->next) {
        j->result = 0;
        if (j->op == COMMIT_PUT && j->size > 0) {
            ret = alloc_alloc(&c->meta->alloc, txn, j->size, &j->ext);
            if (ret == 0)
                ret = meta_pending_add(c->meta, txn, j->ext);
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

    /* durable: age the quarantine, then answer */
    c->commits++;
    pthread_mutex_lock(&c->rd_mu);
    uint64_t tag = c->epoch++;
    pthread_mutex_unlock(&c->rd_mu);
    for (size_t i = q_before; i < c->nq; i++)
        c->q[i].tag = tag;
    if (released > 0) {
        memmove(c->q, c->q + released, (c->nq - released) * sizeof(*c->q));
        c->nq -= released;
    }
    for (j = written; j != NULL; j = next) {
        next = j->next;
        list_push(&done, j);
    }
    for (j = inbox; j != NULL; j = next) {
        next = j->next;
        if (j->op == COMMIT_PUT && j->size > 0 && j->result == 0)
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
    /* written PUTs hold pending extents committed earlier: free them in a later round */
    for (j = written; j != NULL; j = next) {
        next = j->next;
        j->result = ret;
        if (j->ext.len > 0 && quarantine_track(c, j->ext, 0) != 0)
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

    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->inbox.head == NULL && c->written.head == NULL && !(c->stopping && c->in_io == 0)) {
            if (c->nq > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += QUARANTINE_POLL_MS * 1000000L;
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
        size_t nw = 0;
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
        if (inbox != NULL || written != NULL || c->nq > 0)
            commit_round(c, inbox, written);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- the writers ---- */

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
        pthread_mutex_unlock(&c->io_mu);

        int any_ok = 0;
        for (j = batch; j != NULL; j = j->next) {
            /* the ETag is computed here, off the event loops */
            if (EVP_Digest(j->body, (size_t)j->size, j->etag, NULL, EVP_md5(), NULL) != 1)
                j->result = CIO_ENOMEM;
            else
                j->result = store_write(c->store, j->ext.off, j->body, (size_t)j->size);
            pthread_mutex_lock(&c->io_mu);
            j->body_busy = 0;
            pthread_cond_broadcast(&c->body_cv);
            pthread_mutex_unlock(&c->io_mu);
            any_ok |= j->result == 0;
        }
        if (any_ok) {
            int ret = store_sync(c->store);
            for (j = batch; j != NULL; j = j->next)
                if (j->result == 0)
                    j->result = ret;
        }
        pthread_mutex_lock(&c->mu);
        for (j = batch; j != NULL; j = next) {
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

/* ---- API ---- */

void commit_submit(commit_t *c, commit_job_t *job)
{
    pthread_mutex_lock(&c->mu);
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
    list_init(&c->inbox);
    list_init(&c->written);
    list_init(&c->io);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_init(&c->io_mu, NULL);
    pthread_cond_init(&c->io_cv, NULL);
    pthread_cond_init(&c->body_cv, NULL);
    pthread_mutex_init(&c->rd_mu, NULL);
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

void commit_stop(commit_t *c)
{
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
    free(c->io_threads);
    free(c->readers);
    free(c->q);
    free(c->site_id);
    free(c);
}
