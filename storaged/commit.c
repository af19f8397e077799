/* commit.c - group commit of storaged's mutations: the committer thread's rounds and the API (see commit.h for the steps). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "storaged/commit_int.h"
#include "common/replog.h"

#define GROUP_MAX 4096        /* jobs per transaction: bounds commit latency */
#define QUARANTINE_POLL_MS 50 /* how soon released extents are retried when idle */
#define CRASH_EXIT 86         /* the exit status of a test's crash point (COMIO_STORAGED_CRASH_AT) */

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
    c->round_unlogged = 0; /* (a round that failed committed nothing) */
    if ((rc = mdb_txn_begin(c->meta->env, NULL, 0, &txn)) != 0) {
        ret = meta_err(rc, "mdb_txn_begin");
        goto fail;
    }
    uint64_t expired = 0;
    if ((ret = reuse_quarantine_release(c, txn, &released)) != 0 || (ret = tombgc_slice(c, txn, &collected)) != 0 ||
        (ret = commit_mpu_expire_slice(c, txn, &expired)) != 0 || (ret = reuse_chunks_release(c, txn, 0)) != 0)
        goto fail;
    collected += expired;
    if (inbox == NULL && written == NULL && released == 0 && collected == 0 && c->nchunks_out == 0 && !carve_wants(&c->carve)) {
        mdb_txn_abort(txn); /* an idle poll that found nothing to do: no commit to count */
        return;
    }
    /* the PUT bodies written since the last round reach the disk with one sync, before the commit that refers to them */
    for (j = written; j != NULL && !(j->op != COMMIT_APPLY && j->result == 0); j = j->next)
        ;
    if (j != NULL) {
        int sret = store_sync(c->store);
        for (; j != NULL && sret != 0; j = j->next)
            if (j->op != COMMIT_APPLY && j->result == 0)
                j->result = sret;
    }
    if (c->crash_mpu == 1)
        for (j = written; j != NULL; j = j->next)
            if (j->op == COMMIT_MPU_COMPLETE && j->result == 0) {
                log_msg(LOG_LVL_ERROR, "crash point mpu-copied (COMIO_STORAGED_CRASH_AT): exiting before the commit", NULL);
                _exit(CRASH_EXIT);
            }
    for (j = written; j != NULL; j = j->next) {
        if (j->op == COMMIT_APPLY) {
            if ((ret = replica_finish(c, txn, j)) != 0)
                goto fail; /* only fatal errors come back */
            need_sync = 1;
            continue;
        }
        if (j->result == 0) {
            if ((ret = j->op == COMMIT_MPU_PART       ? commit_mpu_finish(c, txn, j)
                       : j->op == COMMIT_MPU_COMPLETE ? commit_mpu_complete(c, txn, j)
                                                      : mutate_put(c, txn, j)) != 0) {
                if (commit_fatal(ret))
                    goto fail;
                j->result = ret;
            }
        }
        if (j->result != 0 && j->ext.len > 0 && (ret = reuse_quarantine_track(c, j->ext, UINT64_MAX, j->carved)) != 0)
            goto fail; /* pending already: free it like a released extent */
        need_sync = 1;
    }
    for (j = inbox; j != NULL; j = j->next) {
        j->result = 0;
        if ((j->op == COMMIT_PUT || j->op == COMMIT_MPU_PART) && j->size > 0) {
            ret = j->op == COMMIT_MPU_PART ? commit_mpu_place_part(c, txn, j) : reuse_take_extent(c, txn, j->size, &j->ext);
            if (ret == 0)
                ret = meta_pending_add(c->meta, txn, j->ext);
        } else if (j->op == COMMIT_APPLY) {
            /* a batch with nothing to write (deletes, purges, stale PUTs)
             * finishes in this very transaction */
            j->ext = (alloc_extent_t){0, 0};
            ret = replica_allocate(c, txn, j);
            if (ret == 0 && !j->apply_io) {
                ret = replica_finish(c, txn, j);
                need_sync = 1;
            }
        } else {
            j->ext = (alloc_extent_t){0, 0};
            switch (j->op) {
            case COMMIT_PUT:
                EVP_Digest("", 0, j->etag, NULL, EVP_md5(), NULL);
                ret = mutate_put(c, txn, j);
                break;
            case COMMIT_DELETE:
                ret = mutate_delete(c, txn, j);
                break;
            case COMMIT_PURGE:
                ret = mutate_purge(c, txn, j);
                break;
            case COMMIT_CONFLICT_DELETE:
                ret = replica_conflict_remove(c, txn, j);
                break;
            case COMMIT_MPU_PART: /* an empty part */
                EVP_Digest("", 0, j->etag, NULL, EVP_md5(), NULL);
                ret = commit_mpu_finish(c, txn, j);
                break;
            case COMMIT_MPU_CREATE:
            case COMMIT_MPU_ABORT:
                ret = commit_mpu_finish(c, txn, j);
                break;
            case COMMIT_MPU_COMPLETE: /* to the I/O threads with its extent, or finished here (no bytes) */
                ret = commit_mpu_complete_begin(c, txn, j);
                break;
            default:
                ret = mutate_bucket(c, txn, j);
                break;
            }
            need_sync = 1;
        }
        if (ret != 0 && commit_fatal(ret))
            goto fail;
        j->result = ret;
    }
    /* mutations committed without a log record (replication off): repld gives
     * every target a full sync once replication is on again (repld/sync.c) */
    if (c->round_unlogged && (ret = meta_state_put(c->meta, txn, META_UNLOGGED_MS, (uint64_t)clock_wall_ms())) != 0)
        goto fail;
    c->round_unlogged = 0;
    /* the clock's high-water mark: a restart starts past every version this commit stores */
    uint64_t hlc_mark = hlc_last(&c->hlc);
    if (hlc_mark != c->hlc_saved && (ret = meta_state_put(c->meta, txn, META_HLC_LAST, hlc_mark)) != 0)
        goto fail;
    /* after the jobs, which come first */
    if ((ret = reuse_chunk_reserve(c, txn, &chunk)) != 0 && commit_fatal(ret))
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
    c->hlc_saved = hlc_mark;

    /* durable: wake repld (the log may have grown), offer the chunk, age the quarantine, then answer */
    if (c->log_enabled && need_sync)
        replog_wake(c->meta);
    if (chunk.len > 0 && carve_offer(&c->carve, chunk) != 0 && carve_restore(&c->carve, &chunk, 1) != 0)
        log_msg(LOG_LVL_WARN, "reserved space stays pending until restart", NULL);
    __atomic_fetch_add(&c->commits, 1, __ATOMIC_RELAXED); /* read by commit_stats on other threads */
    pthread_mutex_lock(&c->rd_mu);
    uint64_t tag = c->epoch++;
    pthread_mutex_unlock(&c->rd_mu);
    for (size_t i = q_before; i < c->nq; i++)
        c->q[i].tag = tag;
    if (released > 0) {
        reuse_quarantine_keep(c, released);
        memmove(c->q, c->q + released, (c->nq - released) * sizeof(*c->q));
        c->nq -= released;
    }
    for (j = written; j != NULL; j = next) {
        next = j->next;
        list_push(&done, j);
    }
    for (j = inbox; j != NULL; j = next) {
        next = j->next;
        if (j->result == 0 && (commit_job_needs_io(j) || (j->op == COMMIT_APPLY && j->apply_io)))
            list_push(&to_io, j);
        else
            list_push(&done, j);
    }
    if (c->crash_mpu == 2)
        for (j = done.head; j != NULL; j = j->next)
            if (j->op == COMMIT_MPU_COMPLETE && j->result == 0) {
                log_msg(LOG_LVL_ERROR, "crash point mpu-committed (COMIO_STORAGED_CRASH_AT): exiting before the reply", NULL);
                _exit(CRASH_EXIT);
            }
    if (c->crash_after_apply)
        for (j = done.head; j != NULL; j = j->next)
            if (j->op == COMMIT_APPLY && j->result == 0) {
                log_msg(LOG_LVL_ERROR, "crash point apply-committed (COMIO_STORAGED_CRASH_AT): exiting before the reply", NULL);
                _exit(CRASH_EXIT);
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
        if (j->op == COMMIT_APPLY) {
            replica_release_extents(c, j);
        } else {
            /* a joined Complete: the parts' extents, whose records were not committed away, still name them; only
             * the tail its last part was copied into (pending since step 1) is freed */
            if (j->op == COMMIT_MPU_COMPLETE && j->mpu_joined.len > 0)
                j->ext = j->mpu_tail;
            if (j->ext.len > 0 && reuse_quarantine_track(c, j->ext, 0, j->carved) != 0)
                log_msg(LOG_LVL_WARN, "extent stays pending until restart", NULL);
        }
        j->version = j->seq = 0;
        list_push(&done, j);
    }
    for (j = inbox; j != NULL; j = next) {
        next = j->next;
        j->result = ret;
        j->version = j->seq = 0;
        list_push(&done, j);
    }
reply:
    pthread_mutex_lock(&c->mu);
    for (j = to_io.head; j != NULL; j = j->next)
        c->in_io++;
    pthread_mutex_unlock(&c->mu);
    for (j = to_io.head; j != NULL; j = next) {
        next = j->next;
        commit_io_enqueue(c, j);
    }
    for (j = done.head; j != NULL; j = next) {
        next = j->next;
        __atomic_fetch_add(&c->jobs, 1, __ATOMIC_RELAXED);
        if (j->op == COMMIT_MPU_COMPLETE || j->op == COMMIT_MPU_PART) { /* a copy list, and a reader token not left yet */
            for (size_t i = 0; j->mpu_src != NULL && i < j->mpu_nwant; i++) {
                free(j->mpu_src[i].sums_owned);
                free(j->mpu_src[i].name);
            }
            free(j->mpu_src);
            j->mpu_src = NULL;
            if (j->mpu_reader != 0) {
                commit_reader_leave(c, j->mpu_reader);
                j->mpu_reader = 0;
            }
        }
        chase_note(c, j); /* before done(): the job is the submitter's after it */
        if ((j->op == COMMIT_MPU_COMPLETE || j->op == COMMIT_MPU_ABORT) && j->result == 0)
            commit_mpu_place_drop(c, j->upload_id);
        blocksum_calc_free(&j->sums);
        if (j->op == COMMIT_APPLY)
            for (size_t i = 0; i < j->nitems; i++)
                blocksum_calc_free(&j->items[i].sums);
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

    c->gc_next_ms = clock_wall_ms(); /* a first collection pass right away */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->inbox.head == NULL && c->written.head == NULL && !c->carve_wake && !(c->stopping && c->in_io == 0)) {
            /* idle: wake for released extents, and for tombstone collection */
            int64_t now = clock_wall_ms(), wait_ms = c->nq > 0 ? c->quarantine_poll_ms : -1;
            if (c->gc_kick) { /* a pass that ran without the new TTL (at start-up: before it was set) runs again */
                c->gc_kick = 0;
                c->gc_next_ms = now;
            }
            if (tombgc_due(c, now) || commit_mpu_expire_due(c, now))
                break;
            int64_t mpu_next = __atomic_load_n(&c->mpu_next_ms, __ATOMIC_RELAXED);
            if (__atomic_load_n(&c->mpu_ttl_ms, __ATOMIC_RELAXED) != 0 && (wait_ms < 0 || mpu_next - now < wait_ms))
                wait_ms = mpu_next - now;
            if ((__atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED) != 0 ||
                 __atomic_load_n(&c->conflict_ttl_ms, __ATOMIC_RELAXED) != 0) &&
                (wait_ms < 0 || c->gc_next_ms - now < wait_ms))
                wait_ms = c->gc_next_ms - now;
            if (wait_ms >= 0) {
                struct timespec ts = clock_wall_after(wait_ms);
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
        if (inbox != NULL || written != NULL || wake || c->nq > 0 || tombgc_due(c, clock_wall_ms()) ||
            commit_mpu_expire_due(c, clock_wall_ms()))
            commit_round(c, inbox, written);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    reuse_release_at_stop(c);
    return NULL;
}

/* ---- API ---- */

void commit_submit(commit_t *c, commit_job_t *job)
{
    int want = 0;

    /* the committer frees what the I/O threads compute (done_jobs) */
    memset(&job->sums, 0, sizeof(job->sums));
    job->sums_ok = 0;
    if (job->op == COMMIT_APPLY)
        for (size_t i = 0; i < job->nitems; i++) {
            memset(&job->items[i].sums, 0, sizeof(job->items[i].sums));
            job->items[i].sums_ok = 0;
        }
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
        commit_io_enqueue(c, job);
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

void commit_set_conflict_ttl(commit_t *c, uint64_t ttl_ms)
{
    __atomic_store_n(&c->conflict_ttl_ms, ttl_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    c->gc_kick = 1;
    pthread_cond_signal(&c->cv); /* recompute the idle wait */
    pthread_mutex_unlock(&c->mu);
}

void commit_set_tombstone_ttl(commit_t *c, uint64_t ttl_ms)
{
    __atomic_store_n(&c->tomb_ttl_ms, ttl_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    c->gc_kick = 1;
    pthread_cond_signal(&c->cv); /* recompute the idle wait */
    pthread_mutex_unlock(&c->mu);
}

void commit_set_checksums(commit_t *c, int on)
{
    c->checksums = on;
}

void commit_set_max_clock_skew(commit_t *c, int64_t ms)
{
    c->hlc.max_skew_ms = ms > 0 ? ms : HLC_MAX_CLOCK_SKEW_MS_DEFAULT;
}

uint64_t commit_clock(commit_t *c)
{
    return hlc_last(&c->hlc);
}

void commit_stats(commit_t *c, uint64_t *commits, uint64_t *jobs)
{
    *commits = __atomic_load_n(&c->commits, __ATOMIC_RELAXED);
    *jobs = __atomic_load_n(&c->jobs, __ATOMIC_RELAXED);
}

void commit_mpu_stats(commit_t *c, uint64_t *chased, uint64_t *hashed, uint64_t *joined)
{
    *joined = __atomic_load_n(&c->mpu_joined, __ATOMIC_RELAXED);
    *chased = __atomic_load_n(&c->mpu_chased, __ATOMIC_RELAXED);
    *hashed = __atomic_load_n(&c->mpu_hashed, __ATOMIC_RELAXED);
}

int commit_start(commit_t **out, meta_t *m, store_t *s, const char *site_id, int log_enabled, unsigned io_threads)
{
    commit_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->site_id = strdup(site_id)) == NULL) {
        free(c);
        return CIO_ENOMEM;
    }
    c->checksums = 1;
    c->meta = m;
    c->store = s;
    c->log_enabled = log_enabled;
    c->epoch = 1;
    {
        MDB_txn *txn;
        int ret;
        if ((ret = meta_err(mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0) {
            free(c->site_id);
            free(c);
            return ret;
        }
        ret = meta_state_get(m, txn, META_HLC_LAST, &c->hlc_saved);
        mdb_txn_abort(txn);
        if (ret != 0) {
            free(c->site_id);
            free(c);
            return ret;
        }
        hlc_init(&c->hlc, c->hlc_saved, NULL, 0);
    }
    /* for tests only: a long poll keeps released extents in quarantine until the stop */
    {
        const char *v = getenv("COMIO_QUARANTINE_POLL_MS");
        c->quarantine_poll_ms = v != NULL && atoi(v) > 0 ? atoi(v) : QUARANTINE_POLL_MS;
    }
    /* for tests only: a crash point, the process exits (no cleanup) after committing
     * a replication batch and before its reply is queued: the sender retries a
     * batch already applied (tests/fault/test_apply_crash.py) */
    {
        const char *v = getenv("COMIO_STORAGED_CRASH_AT");
        c->crash_after_apply = v != NULL && strcmp(v, "apply-committed") == 0;
        /* and around a multipart Complete's commit (tests/e2e/test_s3_multipart.py) */
        c->crash_mpu = v == NULL ? 0 : strcmp(v, "mpu-copied") == 0 ? 1 : strcmp(v, "mpu-committed") == 0 ? 2 : 0;
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
    if (chase_start(c) != 0)
        return CIO_ENOMEM; /* the process exits on this error */
    if (fetch_global_init() != 0) {
        log_msg(LOG_LVL_ERROR, "cannot initialise libcurl", NULL);
        return CIO_ENOMEM; /* the process exits on this error */
    }
    for (c->nfetch = 0; c->nfetch < FETCHERS; c->nfetch++)
        if (pthread_create(&c->fetch_threads[c->nfetch], NULL, commit_io_fetch_main, c) != 0)
            goto fail;
    c->nio = io_threads ? io_threads : 1;
    if ((c->io_threads = calloc(c->nio, sizeof(pthread_t))) == NULL)
        goto fail;
    for (unsigned i = 0; i < c->nio; i++)
        if (pthread_create(&c->io_threads[i], NULL, commit_io_main, c) != 0)
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
    chase_stop(c);             /* no read of it holds the quarantine at the last round */
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
    chase_free(c);
    EVP_MD_free(c->md5);
    hlc_destroy(&c->hlc);
    carve_destroy(&c->carve);
    free(c->chunks_out);
    free(c->io_threads);
    free(c->readers);
    free(c->q);
    free(c->site_id);
    free(c);
}
