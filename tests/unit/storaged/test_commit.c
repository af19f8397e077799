/* test_commit.c - unit tests of the group committer driven through its API:
 * the statistics are read safely from another thread while commits run (a
 * race ThreadSanitizer reports when the committer writes the counters
 * without atomics), and a replica's batches follow the rules of
 * docs/replication-apply.md (replica.c). Objects are empty, so nothing is
 * written to the store and the tests need no space allocated. */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "storaged/commit.h"
#include "common/conflict.h"
#include "common/clock.h"
#include "common/hlc.h"
#include "common/log.h"
#include "common/replog.h"
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

/* A store, its metadata and a committer in a new directory, with the
 * replication log on or off. Returns 0 or -1. */
static int fixture_open_log(fixture_t *f, int log_enabled)
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
    if (meta_open(&f->meta, f->dir, 16u << 20, "test-site", err, sizeof(err)) != 0) {
        fprintf(stderr, "meta_open: %s\n", err);
        store_close(&f->store);
        return -1;
    }
    if (commit_start(&f->c, &f->meta, &f->store, "test", log_enabled, 1) != 0) {
        meta_close(&f->meta);
        store_close(&f->store);
        return -1;
    }
    return 0;
}

static int fixture_open(fixture_t *f)
{
    return fixture_open_log(f, 0);
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

/* ---- another site's batches (replica.c) ---- */

static uint8_t empty_md5[16];

/* An event from site `origin` on key k of bucket "b" (PURGE: k is ignored),
 * for an empty object, at version `version` (small numbers stand for
 * versions; their order is what matters). */
static commit_item_t event_from(logrec_op_t op, uint64_t version, const char *origin, const char *k)
{
    commit_item_t it;
    memset(&it, 0, sizeof(it));
    it.op = op;
    it.seq = version;
    it.version = version;
    it.origin = origin;
    it.origin_len = strlen(origin);
    it.parent_origin = "";
    it.bucket = "b";
    it.blen = 1;
    it.key = logrec_op_bucket_only(op) ? "" : k;
    it.klen = strlen(it.key);
    it.ctype = "";
    memcpy(it.etag, empty_md5, 16);
    it.mtime_ms = 1;
    return it;
}

static commit_item_t event(logrec_op_t op, uint64_t version, const char *k)
{
    return event_from(op, version, "a", k);
}

/* Applies one batch of n events; returns the job's result. */
static int apply(fixture_t *f, commit_item_t *items, size_t n)
{
    commit_job_t job;
    memset(&job, 0, sizeof(job));
    job.op = COMMIT_APPLY;
    job.items = items;
    job.nitems = n;
    job.body = items; /* the batch's buffer, which inline bytes (items' data) point into: only its presence matters */
    submit_and_wait(f->c, &job, 1);
    return job.result;
}

/* Applies one event alone; returns its batch_result_t, or -1 when the job failed. */
static int apply_from(fixture_t *f, logrec_op_t op, uint64_t version, const char *origin, const char *k)
{
    commit_item_t it = event_from(op, version, origin, k);
    if (apply(f, &it, 1) != 0 || !it.final)
        return -1;
    return (int)it.result;
}

static int apply_one(fixture_t *f, logrec_op_t op, uint64_t version, const char *k)
{
    return apply_from(f, op, version, "a", k);
}

/* The version of object k of bucket "b" as stored, 0 when absent; its origin into origin (64 bytes). */
static uint64_t stored(fixture_t *f, const char *k, char *origin)
{
    MDB_txn *txn;
    meta_obj_t o;
    uint64_t v = 0;

    origin[0] = '\0';
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return UINT64_MAX;
    if (meta_obj_get(&f->meta, txn, "b", 1, k, strlen(k), &o) == 0) {
        v = o.version;
        snprintf(origin, 64, "%.63s", o.origin);
    }
    mdb_txn_abort(txn);
    return v;
}

static uint64_t stored_version(fixture_t *f, const char *k)
{
    char origin[64];
    return stored(f, k, origin);
}

static uint64_t counter(fixture_t *f, meta_counter_t c)
{
    MDB_txn *txn;
    uint64_t v = UINT64_MAX;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return UINT64_MAX;
    if (meta_state_get(&f->meta, txn, c, &v) != 0)
        v = UINT64_MAX;
    mdb_txn_abort(txn);
    return v;
}

static void test_replica_last_writer_wins(void)
{
    fixture_t f;
    char origin[64];

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* the highest version wins; an equal one from the same site is a duplicate */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 5, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored(&f, "k", origin), 5);
    CHECK_EQ_STR(origin, "a");
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 3, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 5, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k"), 5);

    /* an equal version from another site: the site ids break the tie, the same way everywhere */
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 5, "b", "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored(&f, "k", origin), 5);
    CHECK_EQ_STR(origin, "b");
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 5, "a", "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 5, "", "k"), BATCH_SKIPPED); /* "" (a legacy version) sorts first */
    CHECK_EQ_INT(stored(&f, "k", origin), 5);
    CHECK_EQ_STR(origin, "b");

    /* a DELETE leaves a tombstone that stops an older PUT, not a newer one */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 7, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 6, "z", "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 7, "k"), BATCH_SKIPPED); /* its duplicate */
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 8, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k"), 8);

    /* a DELETE that overtook its PUT still stops it */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 12, "early"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 11, "early"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "early"), 0);

    /* a PURGE removes what is older, keeps what is newer from any site, and stops older PUTs */
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 20, "c", "newer"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 15, "a", "tie-lost"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PUT, 15, "c", "tie-won"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PURGE, 15, "b", NULL), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(stored_version(&f, "tie-lost"), 0);
    CHECK_EQ_INT(stored_version(&f, "tie-won"), 15);
    CHECK_EQ_INT(stored_version(&f, "newer"), 20);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 14, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_PURGE, 15, "b", NULL), BATCH_SKIPPED); /* its duplicate */
    CHECK_EQ_INT(apply_from(&f, LOGREC_PURGE, 14, "z", NULL), BATCH_SKIPPED); /* an older purge */
    CHECK_EQ_INT(stored_version(&f, "newer"), 20);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 16, "k"), BATCH_APPLIED);
    fixture_close(&f);
}

static void test_replica_batch_in_order(void)
{
    commit_item_t items[4];
    fixture_t f;

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
    CHECK_EQ_INT(stored_version(&f, "k"), 4);
    CHECK_EQ_INT(stored_version(&f, "bad"), 0);
    fixture_close(&f);
}

/* A local write of an empty object (PUT), a DELETE or a PURGE, on key k of bucket "b". */
static void local_job(commit_job_t *j, commit_op_t op, const char *k)
{
    memset(j, 0, sizeof(*j));
    j->op = op;
    j->blen = (size_t)snprintf(j->bucket, sizeof(j->bucket), "b");
    j->klen = (size_t)snprintf(j->key, sizeof(j->key), "%s", k);
}

static void test_replica_and_local_writes(void)
{
    commit_job_t put, del, purge;
    fixture_t f;
    char origin[64];
    uint64_t now_version;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* a local write takes its version from the site's clock, with this site's id */
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    CHECK(put.version > 0);
    CHECK(put.seq > 0);
    CHECK_EQ_INT(stored(&f, "k", origin), put.version);
    CHECK_EQ_STR(origin, "test");
    now_version = put.version;
    /* versions are comparable now: an older remote PUT loses to it, a newer one wins */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 1, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k"), now_version);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, now_version + 10, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(stored(&f, "k", origin), now_version + 10);
    CHECK_EQ_STR(origin, "a");

    /* a write made after applying a version orders after it (the receive rule) */
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    CHECK(put.version > now_version + 10);

    /* a local DELETE leaves a tombstone: another site's older PUT on its way cannot bring the key back */
    local_job(&del, COMMIT_DELETE, "k");
    submit_and_wait(f.c, &del, 1);
    CHECK_EQ_INT(del.result, 0);
    CHECK(del.version > put.version);
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, put.version + 1, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, del.version + 1, "k"), BATCH_APPLIED);

    /* a local PURGE keeps its version: older PUTs from elsewhere stay out, newer ones come in */
    local_job(&purge, COMMIT_PURGE, "");
    submit_and_wait(f.c, &purge, 1);
    CHECK_EQ_INT(purge.result, 0);
    CHECK_EQ_INT(stored_version(&f, "k"), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, purge.version - 1, "old"), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, purge.version + 1, "new"), BATCH_APPLIED);
    CHECK_EQ_INT(stored_version(&f, "new"), purge.version + 1);
    fixture_close(&f);
}

/* A version far ahead of the local clock is applied, counted, and the clock follows it. */
static void test_replica_clock_skew(void)
{
    commit_job_t put;
    fixture_t f;
    uint64_t ahead;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    commit_set_max_clock_skew(f.c, 1000);
    ahead = hlc_make((uint64_t)clock_wall_ms() + 3600 * 1000, 0); /* an hour ahead */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, hlc_make((uint64_t)clock_wall_ms(), 0), "ok"), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CLOCK_SKEW), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, ahead, "k"), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CLOCK_SKEW), 1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, ahead, "k"), BATCH_SKIPPED); /* a duplicate, counted again: it was received */
    CHECK_EQ_INT(counter(&f, META_APPLY_CLOCK_SKEW), 2);
    CHECK(counter(&f, META_HLC_LAST) >= ahead); /* the high-water mark a restart starts from */
    /* a restart (the wall clock an hour behind) starts past it, even for a key that never saw it */
    commit_stop(f.c);
    if (commit_start(&f.c, &f.meta, &f.store, "test", 0, 1) != 0) {
        CHECK(!"commit_start");
        f.c = NULL;
        return;
    }
    local_job(&put, COMMIT_PUT, "fresh");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    CHECK(put.version > ahead);
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    CHECK(put.version > ahead);
    CHECK_EQ_INT(stored_version(&f, "k"), put.version);
    fixture_close(&f);
}

/* The events of two sites' writers, mixed: PUTs, DELETEs and PURGEs on a few hot keys. */
#define MIX_EVENTS 60
static const char *const mix_keys[] = {"h0", "h1", "h2", "h3"};

static void mix_events(commit_item_t *ev)
{
    unsigned r = 12345;
    for (size_t i = 0; i < MIX_EVENTS; i++) {
        r = r * 1103515245u + 12345u;
        unsigned pick = (r >> 16) % 10;
        logrec_op_t op = pick < 6 ? LOGREC_PUT : pick < 9 ? LOGREC_DELETE : LOGREC_PURGE;
        /* versions collide on purpose between the sites: the site id breaks the tie */
        ev[i] = event_from(op, 100 + i / 2, (i % 2) ? "b" : "a", mix_keys[(r >> 20) % 4]);
    }
}

/* The state of the hot keys: version and origin of each, "" when absent. */
static void hot_state(fixture_t *f, char out[4][96])
{
    for (size_t i = 0; i < 4; i++) {
        char origin[64];
        uint64_t v = stored(f, mix_keys[i], origin);
        snprintf(out[i], 96, "%llu/%s", (unsigned long long)v, origin);
    }
}

/* Reordering and duplicates change nothing: the same events applied in
 * order, and shuffled, each twice, over several batches, end in one state. */
static void test_replica_shuffled_and_duplicated(void)
{
    commit_item_t ev[MIX_EVENTS], twice[2 * MIX_EVENTS];
    char want[4][96], got[4][96];
    fixture_t f;

    mix_events(ev);
    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    for (size_t i = 0; i < MIX_EVENTS; i++)
        CHECK(apply(&f, &ev[i], 1) == 0);
    hot_state(&f, want);
    fixture_close(&f);

    for (int round = 0; round < 3; round++) {
        unsigned r = 777u + (unsigned)round;
        for (size_t i = 0; i < MIX_EVENTS; i++)
            twice[i] = twice[MIX_EVENTS + i] = ev[i];
        for (size_t i = 2 * MIX_EVENTS - 1; i > 0; i--) { /* Fisher-Yates */
            r = r * 1103515245u + 12345u;
            size_t j = (r >> 16) % (i + 1);
            commit_item_t t = twice[i];
            twice[i] = twice[j];
            twice[j] = t;
        }
        for (size_t i = 0; i < 2 * MIX_EVENTS; i++)
            twice[i].final = 0;
        if (fixture_open(&f) != 0) {
            CHECK(!"fixture_open");
            return;
        }
        for (size_t at = 0; at < 2 * MIX_EVENTS; at += 7) /* batches of 7 */
            CHECK(apply(&f, &twice[at], at + 7 <= 2 * MIX_EVENTS ? 7 : 2 * MIX_EVENTS - at) == 0);
        hot_state(&f, got);
        for (size_t i = 0; i < 4; i++)
            CHECK_EQ_STR(got[i], want[i]);
        fixture_close(&f);
    }
}

typedef struct {
    size_t n;
    vctx_t ctx[8];
    uint64_t hlc[8];
    char origin[8][16];
    char parent_origin[8][16];
    uint64_t parent_hlc[8];
    int op[8];
    size_t meta_len[8];
    uint8_t meta[8][64];
} logged_t;

static int see_logged(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    logged_t *l = ctx;
    logrec_t r;
    if (logrec_decode(rec, len, &r) != 0 || l->n >= 8)
        return CIO_EPROTO;
    l->hlc[l->n] = r.hlc;
    snprintf(l->origin[l->n], 16, "%.*s", (int)r.origin_len, r.origin);
    snprintf(l->parent_origin[l->n], 16, "%.*s", (int)r.parent_origin_len, r.parent_origin);
    l->parent_hlc[l->n] = r.parent_hlc;
    l->op[l->n] = (int)r.op;
    l->ctx[l->n] = r.ctx;
    l->meta_len[l->n] = r.meta_len;
    memcpy(l->meta[l->n], r.meta, r.meta_len < 64 ? r.meta_len : 64);
    l->n++;
    return 0;
}

/* With the log on (a site with targets of its own), an applied event is
 * logged again with its origin's version, parent and metadata; a duplicate
 * or a stale one is not (what ends loops); a local write's record carries
 * the version it replaced as its parent, and its own metadata (none here). */
static void test_replica_relog(void)
{
    commit_item_t it;
    commit_job_t put;
    fixture_t f;
    logged_t l;
    MDB_txn *txn;

    if (fixture_open_log(&f, 1) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    static const uint8_t meta[] = "\x0c"
                                  "x-amz-meta-z"
                                  "\x00\x01"
                                  "z";
    it = event_from(LOGREC_PUT, 50, "a", "k");
    it.meta = meta;
    it.meta_len = sizeof(meta) - 1;
    it.parent_version = 40;
    it.parent_origin = "c";
    it.parent_origin_len = 1;
    CHECK(apply(&f, &it, 1) == 0);
    CHECK_EQ_INT(it.result, BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 50, "k"), BATCH_SKIPPED); /* duplicate: not logged */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 45, "k"), BATCH_SKIPPED); /* stale: not logged */
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    memset(&l, 0, sizeof(l));
    CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_scan(&f.meta, txn, 0, see_logged, &l) == 0);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(l.n, 2);
    CHECK_EQ_INT(l.hlc[0], 50);
    CHECK_EQ_STR(l.origin[0], "a");
    CHECK_EQ_INT(l.parent_hlc[0], 40);
    CHECK_EQ_STR(l.parent_origin[0], "c");
    CHECK(l.meta_len[0] == sizeof(meta) - 1 && memcmp(l.meta[0], meta, sizeof(meta) - 1) == 0);
    CHECK_EQ_INT(l.meta_len[1], 0);
    CHECK_EQ_INT(l.hlc[1], put.version);
    CHECK_EQ_STR(l.origin[1], "test");
    CHECK_EQ_INT(l.parent_hlc[1], 50); /* the version it replaced */
    CHECK_EQ_STR(l.parent_origin[1], "a");
    fixture_close(&f);
}

/* The stored causal context of key k of bucket "b": the object's, else the tombstone's; 0, or -1 when the key has neither. */
static int stored_ctx(fixture_t *f, const char *k, vctx_t *out)
{
    MDB_txn *txn;
    meta_obj_t o;
    meta_tomb_t t;
    int ret = -1;

    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (meta_obj_get(&f->meta, txn, "b", 1, k, strlen(k), &o) == 0) {
        *out = o.ctx;
        ret = 0;
    } else if (meta_tomb_get(&f->meta, txn, "b", 1, k, strlen(k), &t) == 0) {
        *out = t.ctx;
        ret = 0;
    }
    mdb_txn_abort(txn);
    return ret;
}

static uint64_t ctx_of(const vctx_t *c, const char *site)
{
    return vctx_get(c, site, strlen(site));
}

/* The causal context: a local write records what its site knew of the key
 * (besides its own version: one site alone stores none), an applied event
 * adds its own context and version to the key's, and is logged again with
 * its origin's context unchanged. */
static void test_context_stored_and_logged(void)
{
    commit_job_t put, put2, del;
    commit_item_t it;
    fixture_t f;
    logged_t l;
    vctx_t k;
    MDB_txn *txn;

    if (fixture_open_log(&f, 1) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    local_job(&put2, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put2, 1);
    CHECK_EQ_INT(put2.result, 0);
    CHECK(stored_ctx(&f, "k", &k) == 0 && k.n == 0 && k.floor == 0); /* one site: nothing besides the version */

    it = event_from(LOGREC_PUT, put2.version + 100, "a", "k");
    vctx_add(&it.ctx, "test", 4, put2.version); /* a wrote after seeing put2 */
    vctx_add(&it.ctx, "z", 1, 7);
    CHECK(apply(&f, &it, 1) == 0);
    CHECK_EQ_INT(it.result, BATCH_APPLIED);
    CHECK(stored_ctx(&f, "k", &k) == 0 && k.n == 2 && ctx_of(&k, "test") == put2.version && ctx_of(&k, "z") == 7);

    local_job(&del, COMMIT_DELETE, "k");
    submit_and_wait(f.c, &del, 1);
    CHECK_EQ_INT(del.result, 0);
    /* the tombstone's: a's PUT and what came with it; this site's own entry is implied by the delete's version */
    CHECK(stored_ctx(&f, "k", &k) == 0 && k.n == 2 && ctx_of(&k, "a") == put2.version + 100 && ctx_of(&k, "z") == 7 &&
          ctx_of(&k, "test") == 0);

    memset(&l, 0, sizeof(l));
    CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_scan(&f.meta, txn, 0, see_logged, &l) == 0);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(l.n, 4);
    CHECK(l.ctx[0].n == 0);                                                 /* the first write knew nothing */
    CHECK(l.ctx[1].n == 0);                                                 /* put2 knew put only: its own site's */
    CHECK(l.ctx[2].n == 2 && vctx_equal(&l.ctx[2], &it.ctx));               /* forwarded as its origin wrote it */
    CHECK(l.ctx[3].n == 2 && ctx_of(&l.ctx[3], "a") == put2.version + 100); /* the delete knew a's PUT */
    fixture_close(&f);
}

/* ---- conflicts (docs/replication-apply.md, "Conflicts") ---- */

/* An event from `origin` whose context is the pairs (site, version) given, ending with NULL. */
static commit_item_t event_ctx(logrec_op_t op, uint64_t version, const char *origin, const char *k, ...)
{
    commit_item_t it = event_from(op, version, origin, k);
    va_list ap;
    const char *site;
    va_start(ap, k);
    while ((site = va_arg(ap, const char *)) != NULL)
        vctx_add(&it.ctx, site, strlen(site), va_arg(ap, uint64_t));
    va_end(ap);
    return it;
}

static int apply_item1(fixture_t *f, commit_item_t it)
{
    if (apply(f, &it, 1) != 0 || !it.final)
        return -1;
    return (int)it.result;
}

/* Two sites write a key without seeing each other's write: a conflict,
 * whichever arrives first; the last writer stands, the same either way;
 * copies of either event arriving later are no further conflict. */
static void test_conflict_put_put_both_orders(void)
{
    fixture_t f;
    char origin[64];

    for (int order = 0; order < 2; order++) {
        if (fixture_open(&f) != 0) {
            CHECK(!"fixture_open");
            return;
        }
        commit_item_t a = event_ctx(LOGREC_PUT, 10, "a", "k", NULL), b = event_ctx(LOGREC_PUT, 11, "b", "k", NULL);
        CHECK_EQ_INT(apply_item1(&f, order ? b : a), BATCH_APPLIED);
        CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
        CHECK_EQ_INT(apply_item1(&f, order ? a : b), order ? BATCH_SKIPPED : BATCH_APPLIED);
        CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 1);
        CHECK_EQ_INT(stored(&f, "k", origin), 11);
        CHECK_EQ_STR(origin, "b");
        CHECK_EQ_INT(apply_item1(&f, a), BATCH_SKIPPED);
        CHECK_EQ_INT(apply_item1(&f, b), BATCH_SKIPPED);
        CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 1);
        fixture_close(&f);
    }
}

/* A local write and a remote one that did not see it conflict too, and a
 * write made after seeing the other never does. */
static void test_conflict_local_and_causal(void)
{
    commit_job_t put;
    fixture_t f;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    /* written on a after seeing this site's version: it follows it */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, put.version + 5, "a", "k", "test", put.version, NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
    /* a's next write follows its own */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, put.version + 6, "a", "k", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
    /* b never saw a's: a conflict, b older, so it loses */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, put.version + 1, "b", "k", "test", put.version, NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 1);
    CHECK_EQ_INT(stored_version(&f, "k"), put.version + 6);
    /* a local write now follows all three: logged with each in its context */
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    vctx_t k;
    CHECK(stored_ctx(&f, "k", &k) == 0 && ctx_of(&k, "a") > 0 && ctx_of(&k, "b") > 0);
    fixture_close(&f);
}

/* Three sites: this one holds t0; a wrote a1 after seeing t0, b wrote b1
 * after seeing a1. b1 arrives first (b is closer), a1 later through
 * another path: no conflict, a1 is already seen. */
static void test_conflict_descendant_first(void)
{
    commit_job_t put;
    fixture_t f;
    char origin[64];

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    local_job(&put, COMMIT_PUT, "k");
    submit_and_wait(f.c, &put, 1);
    CHECK_EQ_INT(put.result, 0);
    uint64_t t0 = put.version, a1 = t0 + 10, b1 = t0 + 20;
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, b1, "b", "k", "a", a1, "test", t0, NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, a1, "a", "k", "test", t0, NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
    CHECK_EQ_INT(stored(&f, "k", origin), b1);
    CHECK_EQ_STR(origin, "b");
    /* the same with a DELETE in the middle: b's PUT follows a's DELETE */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, b1 + 20, "b", "j", "a", b1 + 10, NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, b1 + 10, "a", "j", NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, b1 + 5, "a", "j", NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
    CHECK_EQ_INT(stored_version(&f, "j"), b1 + 20);
    fixture_close(&f);
}

/* A DELETE racing a PUT is a conflict, both orders and either winner; two
 * concurrent DELETEs too (with no bytes to keep). A purge is not a per-key
 * mutation: what it covers is not a conflict. */
static void test_conflict_delete(void)
{
    fixture_t f;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* PUT then a newer concurrent DELETE: the delete wins */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 10, "a", "k1", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 11, "b", "k1", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 1);
    CHECK_EQ_INT(stored_version(&f, "k1"), 0);
    /* DELETE then an older concurrent PUT: the PUT loses, the key stays deleted */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 21, "b", "k2", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 20, "a", "k2", NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 2);
    CHECK_EQ_INT(stored_version(&f, "k2"), 0);
    /* DELETE then a newer concurrent PUT: the PUT wins, the key comes back */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 30, "b", "k3", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 31, "a", "k3", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 3);
    CHECK_EQ_INT(stored_version(&f, "k3"), 31);
    /* two concurrent DELETEs of one version */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 40, "c", "k4", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 41, "a", "k4", "c", (uint64_t)40, NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 42, "b", "k4", "c", (uint64_t)40, NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 4);
    /* a purge covers an older write of any site: skipped, no conflict; a newer one comes in */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PURGE, 100, "a", "", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 90, "b", "k5", NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 100, "0", "k5", NULL)), BATCH_SKIPPED); /* same clock, orders before */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 100, "b", "k5", NULL)), BATCH_APPLIED); /* same clock, orders after */
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 4);
    fixture_close(&f);
}

typedef struct {
    const meta_obj_t *o;
    size_t n;
    int overlaps;
} free_check_t;

static int free_overlap(void *arg, alloc_extent_t e)
{
    free_check_t *fc = arg;
    uint64_t off = e.off, len = e.len;
    for (size_t i = 0; i < fc->n; i++)
        if (fc->o[i].alen > 0 && off < fc->o[i].off + fc->o[i].alen && fc->o[i].off < off + len)
            fc->overlaps++;
    return 0;
}

/* A batch whose PUTs share one run of the free map, one of them losing a
 * conflict: no item is given a piece past the run (another object's
 * space); every object keeps its own extent. */
static void test_conflict_loser_takes_no_extent(void)
{
    static uint8_t body[3][5000];
    uint8_t md5s[3][16];
    commit_item_t ev[3];
    fixture_t f;
    MDB_txn *txn;
    meta_obj_t o[3];
    static const char *const keys[] = {"x0", "x1", "x2"};

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    /* the fixture's store has no space the allocator knows of: give it its megabyte */
    CHECK(mdb_txn_begin(f.meta.env, NULL, 0, &txn) == 0);
    CHECK(alloc_set_capacity(&f.meta.alloc, txn, 1u << 20) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 500, "b", "x1", NULL)), BATCH_APPLIED); /* x1 held at 500 */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            memset(body[i], 'a' + i + round, sizeof(body[i]));
            EVP_Digest(body[i], sizeof(body[i]), md5s[i], NULL, EVP_md5(), NULL);
            ev[i] = event_ctx(LOGREC_PUT, (uint64_t)(round ? 600 + i : 100 + i), "a", keys[i], NULL);
            ev[i].size = sizeof(body[i]);
            ev[i].data = body[i];
            memcpy(ev[i].etag, md5s[i], 16);
        }
        CHECK(apply(&f, ev, 3) == 0);
        CHECK_EQ_INT(ev[0].result, BATCH_APPLIED);
        CHECK_EQ_INT(ev[1].result, round ? BATCH_APPLIED : BATCH_SKIPPED); /* first round: concurrent with 500, loses */
        CHECK_EQ_INT(ev[2].result, BATCH_APPLIED);
        /* every object's extent is its own: none is in the free map, none overlaps another */
        free_check_t fc = {o, 3, 0};
        CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
        for (int i = 0; i < 3; i++)
            CHECK(meta_obj_get(&f.meta, txn, "b", 1, keys[i], 2, &o[i]) == 0);
        CHECK(alloc_foreach_free(&f.meta.alloc, txn, free_overlap, &fc) == 0);
        mdb_txn_abort(txn);
        CHECK_EQ_INT(fc.overlaps, 0);
        for (int i = 0; i < 3; i++)
            for (int k = i + 1; k < 3; k++)
                CHECK(o[i].alen == 0 || o[k].alen == 0 || o[i].off + o[i].alen <= o[k].off || o[k].off + o[k].alen <= o[i].off);
    }
    fixture_close(&f);
}

/* Kept loser (hlc, origin) of key k in bucket "b": 1 with *out filled, 0 when none, -1 on error. */
static int kept(fixture_t *f, const char *k, uint64_t hlc, const char *origin, conflict_t *out)
{
    MDB_txn *txn;
    int ret;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    ret = conflict_get(&f->meta, txn, "b", 1, k, strlen(k), hlc, origin, strlen(origin), out);
    mdb_txn_abort(txn);
    return ret == 0 ? 1 : ret == CIO_ENOTFOUND ? 0 : -1;
}

static uint64_t kept_count(fixture_t *f)
{
    MDB_txn *txn;
    uint64_t n = UINT64_MAX;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return n;
    if (conflict_count(&f->meta, txn, &n) != 0)
        n = UINT64_MAX;
    mdb_txn_abort(txn);
    return n;
}

/* A PUT of `n` bytes of `fill` from `origin` at `version`, with the context pairs that follow (NULL-terminated). */
static commit_item_t put_bytes(uint8_t *buf, size_t n, int fill, uint64_t version, const char *origin, const char *k)
{
    commit_item_t it = event_from(LOGREC_PUT, version, origin, k);
    memset(buf, fill, n);
    it.size = n;
    it.data = buf;
    EVP_Digest(buf, n, it.etag, NULL, EVP_md5(), NULL);
    return it;
}

/* The loser is kept, the same on every site whichever order the two writes
 * arrive in: its metadata, and its bytes in an extent of its own; a write
 * made after seeing it (here or elsewhere) overwrites it, and a purge
 * removes it. Its extent is freed then, not before. */
static void test_conflict_loser_kept(void)
{
    static uint8_t ba[6000], bb[7000];
    conflict_t k;
    fixture_t f;
    MDB_txn *txn;

    for (int order = 0; order < 2; order++) {
        if (fixture_open(&f) != 0) {
            CHECK(!"fixture_open");
            return;
        }
        CHECK(mdb_txn_begin(f.meta.env, NULL, 0, &txn) == 0);
        CHECK(alloc_set_capacity(&f.meta.alloc, txn, 1u << 20) == 0);
        CHECK(mdb_txn_commit(txn) == 0);
        commit_item_t a = put_bytes(ba, sizeof(ba), 'a', 10, "a", "k"), b = put_bytes(bb, sizeof(bb), 'b', 11, "b", "k");
        /* each with metadata of its own (common/objmeta.h): the loser keeps its own, the winner is stored with its */
        static const uint8_t meta_a[] = "\x0c"
                                        "x-amz-meta-w"
                                        "\x00\x01"
                                        "a",
                             meta_b[] = "\x0d"
                                        "cache-control"
                                        "\x00\x02"
                                        "no";
        a.meta = meta_a;
        a.meta_len = sizeof(meta_a) - 1;
        b.meta = meta_b;
        b.meta_len = sizeof(meta_b) - 1;
        CHECK(apply(&f, order ? &b : &a, 1) == 0);
        CHECK(apply(&f, order ? &a : &b, 1) == 0);
        CHECK_EQ_INT(stored_version(&f, "k"), 11);
        CHECK_EQ_INT(kept(&f, "k", 10, "a", &k), 1);
        CHECK(k.size == sizeof(ba) && k.alen > 0 && !k.deleted && k.winner.hlc == 11 && strcmp(k.winner.origin, "b") == 0 &&
              memcmp(k.etag, a.etag, 16) == 0);
        CHECK(k.meta_len == a.meta_len && memcmp(k.meta, meta_a, a.meta_len) == 0);
        {
            static meta_obj_t winner;
            CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
            CHECK(meta_obj_get(&f.meta, txn, "b", 1, "k", 1, &winner) == 0);
            mdb_txn_abort(txn);
            CHECK(winner.meta_len == b.meta_len && memcmp(winner.meta, meta_b, b.meta_len) == 0);
        }
        CHECK_EQ_INT(kept(&f, "k", 11, "b", &k), 0);
        CHECK_EQ_INT(kept_count(&f), 1);
        /* its bytes are its own: neither free nor the object's */
        meta_obj_t objs[2];
        free_check_t fc = {objs, 2, 0};
        CHECK_EQ_INT(kept(&f, "k", 10, "a", &k), 1);
        objs[1].off = k.off;
        objs[1].alen = k.alen;
        CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
        CHECK(meta_obj_get(&f.meta, txn, "b", 1, "k", 1, &objs[0]) == 0);
        CHECK(alloc_foreach_free(&f.meta.alloc, txn, free_overlap, &fc) == 0);
        mdb_txn_abort(txn);
        CHECK_EQ_INT(fc.overlaps, 0);
        CHECK(objs[0].off + objs[0].alen <= k.off || k.off + k.alen <= objs[0].off);
        /* a copy of either write changes nothing */
        a.final = b.final = 0;
        CHECK(apply(&f, &a, 1) == 0 && apply(&f, &b, 1) == 0);
        CHECK_EQ_INT(kept_count(&f), 1);
        /* c wrote the key after seeing both: the loser is overwritten, no longer lost */
        if (order == 0) {
            CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 20, "c", "k", "a", (uint64_t)10, "b", (uint64_t)11, NULL)),
                         BATCH_APPLIED);
        } else {
            commit_job_t put;
            local_job(&put, COMMIT_PUT, "k"); /* a write here, which has both */
            submit_and_wait(f.c, &put, 1);
            CHECK_EQ_INT(put.result, 0);
        }
        CHECK_EQ_INT(kept(&f, "k", 10, "a", &k), 0);
        CHECK_EQ_INT(kept_count(&f), 0);
        CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 1);
        fixture_close(&f);
    }

    /* a DELETE that loses is kept without bytes, and one that wins keeps the object it beat */
    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 31, "a", "d1", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 30, "b", "d1", NULL)), BATCH_SKIPPED);
    CHECK_EQ_INT(kept(&f, "d1", 30, "b", &k), 1);
    CHECK(k.deleted && k.alen == 0);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 40, "a", "d2", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 41, "b", "d2", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(kept(&f, "d2", 40, "a", &k), 1);
    CHECK(!k.deleted && k.winner.hlc == 41);
    CHECK_EQ_INT(kept_count(&f), 2);
    /* the operator removes one; a second time there is nothing to remove */
    for (int round = 0; round < 2; round++) {
        commit_job_t rm;
        local_job(&rm, COMMIT_CONFLICT_DELETE, "d2");
        rm.loser_version = 40;
        rm.loser_origin_len = (size_t)snprintf(rm.loser_origin, sizeof(rm.loser_origin), "a");
        submit_and_wait(f.c, &rm, 1);
        CHECK_EQ_INT(rm.result, round == 0 ? 0 : CIO_ENOTFOUND);
    }
    CHECK_EQ_INT(kept(&f, "d2", 40, "a", &k), 0);
    CHECK_EQ_INT(kept_count(&f), 1);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PUT, 50, "a", "d3", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_DELETE, 51, "b", "d3", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(kept(&f, "d3", 50, "a", &k), 1);
    /* a purge removes the losers ordered before it */
    CHECK_EQ_INT(apply_item1(&f, event_ctx(LOGREC_PURGE, 35, "c", "", NULL)), BATCH_APPLIED);
    CHECK_EQ_INT(kept(&f, "d1", 30, "b", &k), 0);
    CHECK_EQ_INT(kept(&f, "d3", 50, "a", &k), 1);
    commit_job_t purge;
    local_job(&purge, COMMIT_PURGE, "");
    submit_and_wait(f.c, &purge, 1);
    CHECK_EQ_INT(kept_count(&f), 0);
    fixture_close(&f);
}

/* The checksums kept loser (hlc, origin) of key k has: 1 when they verify
 * buf[0..n) and fail it once one byte is changed, 0 when it has none, -1
 * otherwise (or no such loser). Read and checked in one transaction: the
 * CRCs are borrowed from the record. */
static int kept_sums_verify(fixture_t *f, const char *k, uint64_t hlc, const char *origin, uint8_t *buf, size_t n)
{
    MDB_txn *txn;
    conflict_t c;
    uint64_t bad;
    int ret = -1;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (conflict_get(&f->meta, txn, "b", 1, k, strlen(k), hlc, origin, strlen(origin), &c) == 0 && c.size == n) {
        if (!c.has_sums) {
            ret = 0;
        } else if (blocksum_verify(&c.sums, 0, buf, n, &bad) == 0) {
            buf[n - 1] ^= 1;
            ret = blocksum_verify(&c.sums, 0, buf, n, &bad) == CIO_EIO && bad == (n - 1) / BLOCKSUM_BLOCK ? 1 : -1;
            buf[n - 1] ^= 1;
        }
    }
    mdb_txn_abort(txn);
    return ret;
}

/* A kept loser keeps its block checksums in its record, whichever way it
 * lost: held here and beaten by an event (its inline CRC or its
 * "blocksums" record, which the winner's write replaces), or arriving as an
 * event that loses (the checksums computed from the bytes received). Small
 * (inline CRC) and large (many blocks) alike; with checksums off, none. */
static void test_conflict_loser_keeps_checksums(void)
{
    static uint8_t ba[150000], bb[150000];
    static const size_t sizes[] = {6000, sizeof(ba)};
    fixture_t f;
    MDB_txn *txn;

    for (int off = 0; off < 2; off++)
        for (size_t s = 0; s < 2; s++)
            for (int order = 0; order < 2; order++) {
                if (fixture_open(&f) != 0) {
                    CHECK(!"fixture_open");
                    return;
                }
                commit_set_checksums(f.c, !off);
                CHECK(mdb_txn_begin(f.meta.env, NULL, 0, &txn) == 0);
                CHECK(alloc_set_capacity(&f.meta.alloc, txn, 1u << 20) == 0);
                CHECK(mdb_txn_commit(txn) == 0);
                commit_item_t a = put_bytes(ba, sizes[s], 'a', 10, "a", "k"), b = put_bytes(bb, sizes[s], 'b', 11, "b", "k");
                for (size_t i = 0; i < sizes[s]; i += 97)
                    ba[i] = (uint8_t)i; /* not one byte repeated: a changed byte changes its block's CRC */
                EVP_Digest(ba, sizes[s], a.etag, NULL, EVP_md5(), NULL);
                CHECK(apply(&f, order ? &b : &a, 1) == 0 && (order ? b.result : a.result) == BATCH_APPLIED);
                CHECK(apply(&f, order ? &a : &b, 1) == 0 &&
                      (order ? a.result : b.result) == (order ? BATCH_SKIPPED : BATCH_APPLIED));
                CHECK_EQ_INT(stored_version(&f, "k"), 11);
                CHECK_EQ_INT(kept_sums_verify(&f, "k", 10, "a", ba, sizes[s]), off ? 0 : 1);
                /* the winner's checksums are its own */
                {
                    meta_obj_t w;
                    blocksum_view_t v;
                    uint64_t bad;
                    CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
                    CHECK(meta_obj_get(&f.meta, txn, "b", 1, "k", 1, &w) == 0);
                    CHECK_EQ_INT(meta_sums_view(&f.meta, txn, "b", 1, "k", 1, &w, 0, w.size, &v), off ? CIO_ENOTFOUND : 0);
                    CHECK(off || blocksum_verify(&v, 0, bb, sizes[s], &bad) == 0);
                    mdb_txn_abort(txn);
                }
                fixture_close(&f);
            }
}

#define HIST_EVENTS 60

/* A history with no concurrent writes: sites a, b and c take turns writing
 * four keys, each after seeing every earlier write of the key (the context
 * of what the writer knew then). Applied in order, shuffled, and each event
 * twice in batches of five: never a conflict, and the same final state. */
static void test_conflict_none_when_reordered(void)
{
    static const char *const sites[] = {"a", "b", "c"};
    commit_item_t ev[HIST_EVENTS], twice[2 * HIST_EVENTS];
    vctx_t seen[4];
    char want[4][96], got[4][96];
    fixture_t f;
    unsigned r = 99;

    for (size_t k = 0; k < 4; k++)
        vctx_init(&seen[k]);
    for (size_t i = 0; i < HIST_EVENTS; i++) {
        r = r * 1103515245u + 12345u;
        size_t k = (r >> 16) % 4;
        const char *site = sites[(r >> 20) % 3];
        logrec_op_t op = (r >> 24) % 4 == 0 ? LOGREC_DELETE : LOGREC_PUT;
        ev[i] = event_from(op, 100 + i, site, mix_keys[k]);
        ev[i].ctx = seen[k];
        vctx_add(&seen[k], site, 1, 100 + i);
    }
    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    for (size_t i = 0; i < HIST_EVENTS; i++)
        CHECK(apply(&f, &ev[i], 1) == 0);
    hot_state(&f, want);
    CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
    fixture_close(&f);
    for (int round = 0; round < 3; round++) {
        r = 4242u + (unsigned)round;
        for (size_t i = 0; i < HIST_EVENTS; i++)
            twice[i] = twice[HIST_EVENTS + i] = ev[i];
        for (size_t i = 2 * HIST_EVENTS - 1; i > 0; i--) {
            r = r * 1103515245u + 12345u;
            size_t j = (r >> 16) % (i + 1);
            commit_item_t t = twice[i];
            twice[i] = twice[j];
            twice[j] = t;
        }
        for (size_t i = 0; i < 2 * HIST_EVENTS; i++)
            twice[i].final = 0;
        if (fixture_open(&f) != 0) {
            CHECK(!"fixture_open");
            return;
        }
        for (size_t at = 0; at < 2 * HIST_EVENTS; at += 5)
            CHECK(apply(&f, &twice[at], 5) == 0);
        hot_state(&f, got);
        for (size_t i = 0; i < 4; i++)
            CHECK_EQ_STR(got[i], want[i]);
        CHECK_EQ_INT(counter(&f, META_APPLY_CONFLICTS), 0);
        fixture_close(&f);
    }
}

/* Bucket "b" as stored: -1 when it has no record, else 1 when marked
 * deleted (kept for its objects), 0 when not; its object count into *objects. */
static int bucket_state(fixture_t *f, uint64_t *objects)
{
    MDB_txn *txn;
    meta_bucket_t bk;
    int ret = -2;

    *objects = 0;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return -2;
    int rc = meta_bucket_get(&f->meta, txn, "b", 1, &bk);
    if (rc == CIO_ENOTFOUND)
        ret = -1;
    else if (rc == 0) {
        ret = bk.deleted;
        *objects = bk.objects;
    }
    mdb_txn_abort(txn);
    return ret;
}

/* Bucket creation and deletion applied last-writer-wins with the bucket's
 * own version; a DELETE never removes objects: the bucket stays, marked,
 * until its last object goes; a PUT's key-level rule is unchanged. */
static void test_replica_buckets(void)
{
    commit_item_t it;
    commit_job_t job;
    fixture_t f;
    uint64_t n;

    if (fixture_open(&f) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, 5, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, 5, NULL), BATCH_SKIPPED); /* duplicate */
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 4, NULL), BATCH_SKIPPED); /* older than the create */
    CHECK_EQ_INT(bucket_state(&f, &n), 0);

    /* an empty bucket goes; its delete version stays and stops older creates, not newer ones */
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 7, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 7, NULL), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_from(&f, LOGREC_BUCKET_CREATE, 6, "z", NULL), BATCH_SKIPPED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    CHECK_EQ_INT(apply_from(&f, LOGREC_BUCKET_CREATE, 7, "b", NULL), BATCH_APPLIED); /* the site ids break the tie */
    CHECK_EQ_INT(bucket_state(&f, &n), 0);

    /* a DELETE of a bucket that holds objects here: applied, but the bucket and its objects stay */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 9, "k"), BATCH_APPLIED);
    it = event(LOGREC_BUCKET_DELETE, 10, NULL);
    CHECK(apply(&f, &it, 1) == 0);
    CHECK_EQ_INT(it.result, BATCH_APPLIED);
    CHECK(strstr(it.error, "holds 1 objects") != NULL);
    CHECK_EQ_INT(bucket_state(&f, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(stored_version(&f, "k"), 9);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 10, NULL), BATCH_SKIPPED);
    /* ... until its last object goes (the DELETEs that emptied it on its origin, overtaken) */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 8, "k"), BATCH_SKIPPED);
    CHECK_EQ_INT(bucket_state(&f, &n), 1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 9, "k"), BATCH_SKIPPED); /* not newer than the object */
    CHECK_EQ_INT(apply_from(&f, LOGREC_DELETE, 9, "b", "k"), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);

    /* a PUT into a deleted bucket follows the key's rule: the bucket comes back for it, still deleted */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 4, "x"), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 10, NULL), BATCH_SKIPPED); /* it knows that delete */
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 12, "x"), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    /* a newer create in between would have kept it */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 13, "y"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, 14, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_DELETE, 15, "y"), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), 0);
    CHECK_EQ_INT(n, 0);
    /* a PURGE empties a bucket kept for its objects: it goes */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PUT, 16, "z"), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 17, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), 1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_PURGE, 18, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);

    /* local: a create and a delete take versions from the clock, after all the site knows */
    local_job(&job, COMMIT_BUCKET_CREATE, "");
    submit_and_wait(f.c, &job, 1);
    CHECK_EQ_INT(job.result, 0);
    CHECK_EQ_INT(job.created, 1);
    CHECK(job.version > 18);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_DELETE, 18, NULL), BATCH_SKIPPED);
    CHECK_EQ_INT(bucket_state(&f, &n), 0);
    local_job(&job, COMMIT_BUCKET_DELETE, "");
    submit_and_wait(f.c, &job, 1);
    CHECK_EQ_INT(job.result, 0);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    /* a newer purge covers the keys' tombstones, not the bucket's own */
    CHECK_EQ_INT(apply_one(&f, LOGREC_PURGE, job.version + 1, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, job.version - 1, NULL), BATCH_SKIPPED);
    CHECK_EQ_INT(bucket_state(&f, &n), -1);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, job.version + 1, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(bucket_state(&f, &n), 0);
    fixture_close(&f);
}

/* With the log on, local bucket operations are logged, and applied ones are
 * logged again with their origin's version; skipped ones are not. */
static void test_replica_buckets_relog(void)
{
    commit_job_t job;
    fixture_t f;
    logged_t l;
    MDB_txn *txn;
    uint64_t created;

    if (fixture_open_log(&f, 1) != 0) {
        CHECK(!"fixture_open");
        return;
    }
    local_job(&job, COMMIT_BUCKET_CREATE, "");
    submit_and_wait(f.c, &job, 1);
    CHECK_EQ_INT(job.result, 0);
    created = job.version;
    local_job(&job, COMMIT_BUCKET_CREATE, ""); /* it exists: nothing logged */
    submit_and_wait(f.c, &job, 1);
    CHECK_EQ_INT(job.result, 0);
    CHECK_EQ_INT(job.created, 0);
    local_job(&job, COMMIT_BUCKET_DELETE, "");
    submit_and_wait(f.c, &job, 1);
    CHECK_EQ_INT(job.result, 0);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, job.version - 1, NULL), BATCH_SKIPPED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, job.version + 5, NULL), BATCH_APPLIED);
    CHECK_EQ_INT(apply_one(&f, LOGREC_BUCKET_CREATE, job.version + 5, NULL), BATCH_SKIPPED);
    memset(&l, 0, sizeof(l));
    CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_scan(&f.meta, txn, 0, see_logged, &l) == 0);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(l.n, 3);
    CHECK_EQ_INT(l.op[0], LOGREC_BUCKET_CREATE);
    CHECK_EQ_INT(l.hlc[0], created);
    CHECK_EQ_STR(l.origin[0], "test");
    CHECK_EQ_INT(l.op[1], LOGREC_BUCKET_DELETE);
    CHECK_EQ_INT(l.hlc[1], job.version);
    CHECK_EQ_INT(l.parent_hlc[1], created);
    CHECK_EQ_INT(l.op[2], LOGREC_BUCKET_CREATE);
    CHECK_EQ_INT(l.hlc[2], job.version + 5);
    CHECK_EQ_STR(l.origin[2], "a");
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
    RUN(test_replica_clock_skew);
    RUN(test_replica_shuffled_and_duplicated);
    RUN(test_replica_relog);
    RUN(test_context_stored_and_logged);
    RUN(test_conflict_put_put_both_orders);
    RUN(test_conflict_local_and_causal);
    RUN(test_conflict_descendant_first);
    RUN(test_conflict_delete);
    RUN(test_conflict_none_when_reordered);
    RUN(test_conflict_loser_takes_no_extent);
    RUN(test_conflict_loser_kept);
    RUN(test_conflict_loser_keeps_checksums);
    RUN(test_replica_buckets);
    RUN(test_replica_buckets_relog);
    return TEST_SUMMARY();
}
