/* commit_io.c - the committer's threads besides its own: I/O threads write bodies, fetchers fetch large replicated objects.
 *
 * Step 2 of commit.h: a PUT's body is hashed and written, an APPLY job's
 * inline bodies checked and written in runs, its large objects fetched from
 * the primary; each job then goes back to the committer (c->written). */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <openssl/crypto.h>
#include "storaged/commit_int.h"
#include "storaged/integrity.h"

void commit_io_enqueue(commit_t *c, commit_job_t *j)
{
    pthread_mutex_lock(&c->io_mu);
    j->body_busy = 1;
    list_push(&c->io, j);
    pthread_cond_signal(&c->io_cv);
    pthread_mutex_unlock(&c->io_mu);
}

/* ---- the writers ---- */

/* The MD5 of p[0..n) into md and, when `sums` is not NULL, its block
 * checksums: one pass, a block at a time, so each block is read from memory
 * once for both. Returns 0 or CIO_ENOMEM. */
static int hash_body(commit_t *c, EVP_MD_CTX *ctx, const void *p, size_t n, uint8_t md[16], blocksum_calc_t *sums)
{
    const uint8_t *b = p;

    if (ctx == NULL || EVP_DigestInit_ex2(ctx, c->md5 != NULL ? c->md5 : EVP_md5(), NULL) != 1)
        return CIO_ENOMEM;
    for (size_t at = 0; at < n; at += BLOCKSUM_BLOCK) {
        size_t take = n - at < BLOCKSUM_BLOCK ? n - at : BLOCKSUM_BLOCK;
        if (EVP_DigestUpdate(ctx, b + at, take) != 1)
            return CIO_ENOMEM;
        if (sums != NULL)
            blocksum_calc_feed(sums, b + at, take);
    }
    return EVP_DigestFinal_ex(ctx, md, NULL) == 1 ? 0 : CIO_ENOMEM;
}

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

#define WRITE_RUN_MAX 256 /* items per pwritev: two iovecs each, well under IOV_MAX */

/* Writes the inline bodies of items run[0..n), whose extents follow each
 * other in the store, with one pwritev (the tail of each extent that its
 * body does not fill is written with zeros, so the bytes are contiguous):
 * one system call where there would be one per object. An item of a batch
 * has adjacent extents when they were cut from the job's run (replica_allocate). */
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
            replica_item_fail(run[i], ret);
    } else {
        *wrote = 1;
    }
    *n = 0;
}

/* Step 2 of an APPLY job on an I/O thread: checks and writes the inline
 * bodies, lets the submitter free the batch buffer, then hands the URLs to
 * the fetchers. Returns 1 when it did (the job is theirs now: the caller must
 * not touch it), 0 when the job goes back to the committer with the caller's
 * batch; *wrote tells whether a sync is needed. */
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
            replica_item_set(it, BATCH_RETRY, 500, "the sender went away before the data was written");
            continue;
        }
        /* the MD5 is checked here, off the event loops; the block checksums are computed from the same
         * bytes in the same pass, and kept only when the MD5 vouches for them */
        int sums = commit_sums_start(c, &it->sums, it->size);
        if (hash_body(c, ctx, it->data, (size_t)it->size, md, sums ? &it->sums : NULL) != 0) {
            replica_item_fail(it, CIO_ENOMEM);
        } else if (CRYPTO_memcmp(md, it->etag, 16) != 0) {
            replica_item_set(it, BATCH_PERMANENT, 400, "the inline data does not match the record's ETag");
            integrity_damaged(INTEGRITY_APPLY, it->bucket, it->key, it->version, it->origin, UINT64_MAX);
        } else {
            it->sums_ok = sums;
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

/* A PUT's (or a part's) ETag and, for an object, its block checksums. 0 or CIO_ENOMEM. */
static int put_body(commit_t *c, commit_job_t *j)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int sums = j->op == COMMIT_PUT && commit_sums_start(c, &j->sums, j->size);
    int ret = hash_body(c, ctx, j->body, (size_t)j->size, j->etag, sums ? &j->sums : NULL);
    EVP_MD_CTX_free(ctx);
    j->sums_ok = ret == 0 && sums;
    return ret;
}

void *commit_io_main(void *arg)
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
            if (j->op == COMMIT_MPU_COMPLETE || (j->op == COMMIT_MPU_PART && j->mpu_src != NULL))
                /* no body: the parts (or, UploadPartCopy, the source's bytes) are copied into the extent */
                j->result = commit_mpu_copy(c, j);
            else if (j->body == NULL) /* the client went away before we got here */
                j->result = CIO_EAGAIN;
            else if ((j->result = put_body(c, j)) == 0)
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
        replica_item_fail(it, CIO_ENOMEM);
        return;
    }
    if (__atomic_load_n(&c->fetch_cancel, __ATOMIC_RELAXED)) {
        replica_item_set(it, BATCH_RETRY, 503, "the replica is shutting down");
        return;
    }
    int sums = commit_sums_start(c, &it->sums, it->size);
    ret = fetch_to_store(f, it->job->fetch, it->url, c->store, it->ext.off, it->size, it->etag, sums ? &it->sums : NULL, &status,
                         err, sizeof(err));
    switch (ret) {
    case 0:
        it->sums_ok = sums; /* the MD5 vouched for the bytes they were computed from */
        return;             /* written; synced and finished with the rest of the batch */
    case CIO_ENOTFOUND:
        replica_item_set(it, BATCH_SKIPPED, 410, "%s", err);
        return;
    case CIO_EAGAIN:
        /* 504: no answer at all (the primary is down or unreachable); 502: a bad one */
        replica_item_set(it, BATCH_RETRY,
                         __atomic_load_n(&c->fetch_cancel, __ATOMIC_RELAXED) ? 503
                         : status == 0                                       ? 504
                                                                             : 502,
                         "%s", err);
        /* a 200 with the wrong bytes is worth an operator's look; an
         * unreachable primary is already visible to repld */
        replica_item_log(it, status == 200 ? LOG_LVL_WARN : LOG_LVL_DEBUG, "fetch from the primary failed");
        return;
    case CIO_ECORRUPT:
        /* the primary sent bytes that are not the object's: never applied, tried again */
        replica_item_set(it, BATCH_RETRY, 502, "%s", err);
        integrity_damaged(INTEGRITY_APPLY, it->bucket, it->key, it->version, it->origin, UINT64_MAX);
        return;
    default:
        replica_item_set(it, BATCH_RETRY, 500, "%s", err);
        return;
    }
}

void *commit_io_fetch_main(void *arg)
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
