/* test_commit.c - unit tests of the group committer driven through its API:
 * the statistics are read safely from another thread while commits run (a
 * race ThreadSanitizer reports when the committer writes the counters
 * without atomics), and a replica's batches follow the rules of
 * docs/replication-apply.md (replica.c). Objects are empty, so nothing is
 * written to the store and the tests need no space allocated. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "storaged/commit.h"
#include "common/log.h"
#include "testutil.h"

#define BATCHES 40
#define PER_BATCH 10
#define JOBS (BATCHES * PER_BATCH)
#define STATS_READS_MAX 10000000 /* bounds the reader's loop should the stop flag never come */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waiter_t;

static waiter_t waiter = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void job_done(commit_job_t *job)
{
    pthread_mutex_lock(&waiter.mu);
    waiter.done++;
    pthread_cond_signal(&waiter.cv);
    pthread_mutex_unlock(&waiter.mu);
}

typedef struct {
    commit_t *c;
    int stop; /* atomic */
    uint64_t reads, last_commits, last_jobs, went_back;
} stats_reader_t;

/* Reads the counters over and over, as /metrics does from an event loop. */
static void *read_stats(void *arg)
{
    stats_reader_t *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED) && r->reads < STATS_READS_MAX) {
        uint64_t commits, jobs;
        commit_stats(r->c, &commits, &jobs);
        if (commits < r->last_commits || jobs < r->last_jobs)
            r->went_back++;
        r->last_commits = commits;
        r->last_jobs = jobs;
        r->reads++;
    }
    return NULL;
}

typedef struct {
    char dir[64];
    store_t store;
    meta_t meta;
    commit_t *c;
} fixture_t;

/* A store, its metadata and a committer in a new directory. Returns 0 or -1. */
static int fixture_open(fixture_t *f)
{
    char path[PATH_MAX], err[256];

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/comio-test-commit-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/store.img", f->dir);
    if (store_open(&f->store, path, 1u << 20, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    if (meta_open(&f->meta, f->dir, 16u << 20, err, sizeof(err)) != 0) {
        fprintf(stderr, "meta_open: %s\n", err);
        store_close(&f->store);
        return -1;
    }
    if (commit_start(&f->c, &f->meta, &f->store, "test", 0, 1) != 0) {
        meta_close(&f->meta);
        store_close(&f->store);
        return -1;
    }
    return 0;
}

static void fixture_close(fixture_t *f)
{
    char cmd[PATH_MAX];

    commit_stop(f->c);
    meta_close(&f->meta);
    store_close(&f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
}

/* Submits n jobs and waits until every one is done. */
static void submit_and_wait(commit_t *c, commit_job_t *jobs, int n)
{
    int target;

    pthread_mutex_lock(&waiter.mu);
    target = waiter.done + n;
    pthread_mutex_unlock(&waiter.mu);
    for (int i = 0; i < n; i++) {
        jobs[i].done = job_done;
        commit_submit(c, &jobs[i]);
    }
    pthread_mutex_lock(&waiter.mu);
    while (waiter.done < target)
        pthread_cond_wait(&waiter.cv, &waiter.mu);
    pthread_mutex_unlock(&waiter.mu);
}

static void test_stats_read_while_committing(void)
{
    static commit_job_t jobs[JOBS];
    stats_reader_t r;
    pthread_t reader;
    fixture_t f;
    uint64_t commits, njobs;
    int created = 0, failed = 0;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    memset(&r, 0, sizeof(r));
    r.c = f.c;
    CHECK_EQ_INT(pthread_create(&reader, NULL, read_stats, &r), 0);

    /* batches of bucket creations: each batch shares one or a few commits */
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < JOBS; i++) {
        jobs[i].op = COMMIT_BUCKET_CREATE;
        jobs[i].blen = (size_t)snprintf(jobs[i].bucket, sizeof(jobs[i].bucket), "bucket-%d", i);
    }
    for (int b = 0; b < BATCHES; b++)
        submit_and_wait(f.c, jobs + b * PER_BATCH, PER_BATCH);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    pthread_join(reader, NULL);

    for (int i = 0; i < JOBS; i++) {
        created += jobs[i].created;
        failed += jobs[i].result != 0;
    }
    CHECK_EQ_INT(created, JOBS);
    CHECK_EQ_INT(failed, 0);
    CHECK(r.reads > 0);
    CHECK_EQ_INT(r.went_back, 0);
    commit_stats(f.c, &commits, &njobs);
    CHECK_EQ_INT(njobs, JOBS);
    CHECK(commits >= BATCHES && commits <= JOBS);
    fixture_close(&f);
}

/* ---- a replica's batches (replica.c) ---- */

static uint8_t empty_md5[16];

/* An event on key k of bucket "b" (PURGE: k is ignored), for an empty object. */
static commit_item_t event(logrec_op_t op, uint64_t version, const char *k)
{
    commit_item_t it;
    memset(&it, 0, sizeof(it));
    it.op = op;
    it.version = version;
    it.bucket = "b";
    it.blen = 1;
    it.key = op == LOGREC_PURGE ? "" : k;
    it.klen = strlen(it.key);
    it.ctype = "";
    memcpy(it.etag, empty_md5, 16);
    it.mtime_ms = 1;
    return it;
}

/* Applies one batch of n events; returns the job's result. */
static int apply(fixture_t *f, commit_item_t *items, size_t n)
{
    commit_job_t job;
    memset(&job, 0, sizeof(job));
    job.op = COMMIT_APPLY;
    job.items = items;
    job.nitems = n;
    submit_and_wait(f->c, &job, 1);
    return job.result;
}

/* Applies one event alone; returns its batch_result_t, or -1 when the job failed. */
static int apply_one(fixture_t *f, logrec_op_t op, uint64_t version, const char *k)
{
    commit_item_t it = event(op, version, k);
    if (apply(f, &it, 1) != 0 || !it.final)
        return -1;
    return (int)it.result;
}

/* The version of object k of bucket "b" as stored, 0 when absent; *replicated its flag. */
static uint64_t stored_version(fixture_t *f, const char *k, int *replicated)
{
    MDB_txn *txn;
    meta_obj_t o;
    uint64_t v = 0;

    *replicated = 0;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return UINT64_MAX;
    if (meta_obj_get(&f->meta, txn, "b", 1, k, strlen(k), &o) == 0) {
        v = o.version;
        *replicated = o.replicated;
    }
    mdb_txn_abort(txn);
    return v;
}

static void test_replica_last_writer_wins(void)
{
    fixture_t f;
    int replicated;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* the highest version wins; an equal one is a duplicate */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 5, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 5);
    CHECK_EQ_INT(replicated, 1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 3, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 5, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 5);

    /* a DELETE leaves a tombstone that stops an older PUT, not a newer one */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 7, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 6, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 8, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 8);

    /* a DELETE that overtook its PUT still stops it */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 12, "early"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 11, "early"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "early", &replicated), 0);

    /* a PURGE removes what is older, keeps what is newer, and stops older PUTs */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 20, "newer"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PURGE, 15, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 0);
    CHECK_EQ_INT(stored_version(&f, "newer", &replicated), 20);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 14, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 16, "k"), BATCH_APPLIED);
    fixture_close(&f);
}

static void test_replica_batch_in_order(void)
{
    commit_item_t items[4];
    fixture_t f;
    int replicated;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* one batch, applied in order: the second PUT replaces the first, the
     * stale one is skipped, and an empty object whose ETag is not the MD5 of
     * nothing is refused for good without holding up the rest */
    items[0] = event(LOGREC_PUT, 2, "k");
    items[1] = event(LOGREC_PUT, 4, "k");
    items[2] = event(LOGREC_PUT, 3, "k");
    items[3] = event(LOGREC_PUT, 5, "bad");
    items[3].etag[0] ^= 1;
    CHECK_EQ_INT(apply(&f, items, 4), 0);
    CHECK_EQ_INT(items[0].result, BATCH_APPLIED);
    CHECK_EQ_INT(items[1].result, BATCH_APPLIED);
    CHECK_EQ_INT(items[2].result, BATCH_SKIPPED);
    CHECK_EQ_INT(items[3].result, BATCH_PERMANENT);
    CHECK_EQ_INT(items[3].status, 400);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 4);
    CHECK_EQ_INT(stored_version(&f, "bad", &replicated), 0);
    fixture_close(&f);
}

/* A local write of an empty object (PUT) or a DELETE, on key k of bucket "b". */
static void local_job(commit_job_t *j, commit_op_t op, const char *k)
{
    memset(j, 0, sizeof(*j));
    j->op = op;
    j->blen = (size_t)snprintf(j->bucket, sizeof(j->bucket), "b");
    j->klen = (size_t)snprintf(j->key, sizeof(j->key), "%s", k);
}

static void test_replica_and_local_writes(void)
{
    commit_job_t put, del;
    fixture_t f;
    int replicated;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* a local write's version is this site's, not comparable to the
     * primary's: the primary's PUT replaces it even with a lower version */
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    CHECK(put.version > 0);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), put.version);
    CHECK_EQ_INT(replicated, 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 1, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 1);
    CHECK_EQ_INT(replicated, 1);

    /* a local DELETE of an applied object keeps its version as a tombstone:
     * the primary's older event still on its way cannot bring it back */
    local_job(&del, COMMIT_DELETE, "k");
    submit_and_wait(f.c, &del, 1);
    CHECK_EQ_INT(del.result, 0);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 1, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k", &replicated), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 2, "k"), BATCH_APPLIED);
    fixture_close(&f);
}

int main(void)
{
    log_init("test", "test_commit", LOG_LVL_WARN, 0);
    EVP_Digest("", 0, empty_md5, NULL, EVP_md5(), NULL);
    RUN(test_stats_read_while_committing);
    RUN(test_replica_last_writer_wins);
    RUN(test_replica_batch_in_order);
    RUN(test_replica_and_local_writes);
    return TEST_SUMMARY();
}
