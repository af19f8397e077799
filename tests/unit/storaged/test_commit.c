/* test_commit.c - unit tests of the group committer driven through its API:
 * jobs finish with their results, and the statistics are read safely from
 * another thread while commits run (a race ThreadSanitizer reports when the
 * committer writes the counters without atomics). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

static void test_stats_read_while_committing(void)
{
    char dir[] = "/tmp/comio-test-commit-XXXXXX", path[PATH_MAX], err[256];
    static commit_job_t jobs[JOBS];
    stats_reader_t r;
    pthread_t reader;
    store_t store;
    meta_t meta;
    commit_t *c;
    uint64_t commits, njobs;
    int created = 0, failed = 0;

    if (mkdtemp(dir) == NULL) {
        CHECK(!"mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/store.img", dir);
    if (store_open(&store, path, 1u << 20, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        CHECK(!"store_open");
        return;
    }
    if (meta_open(&meta, dir, 16u << 20, err, sizeof(err)) != 0) {
        fprintf(stderr, "meta_open: %s\n", err);
        CHECK(!"meta_open");
        store_close(&store);
        return;
    }
    if (commit_start(&c, &meta, &store, "test", 0, 1) != 0) {
        CHECK(!"commit_start");
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.c = c;
    CHECK_EQ_INT(pthread_create(&reader, NULL, read_stats, &r), 0);

    /* batches of bucket creations: each batch shares one or a few commits */
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER_BATCH; i++) {
            commit_job_t *j = &jobs[b * PER_BATCH + i];
            memset(j, 0, sizeof(*j));
            j->op = COMMIT_BUCKET_CREATE;
            j->blen = (size_t)snprintf(j->bucket, sizeof(j->bucket), "bucket-%d", b * PER_BATCH + i);
            j->done = job_done;
            commit_submit(c, j);
        }
        pthread_mutex_lock(&waiter.mu);
        while (waiter.done < (b + 1) * PER_BATCH)
            pthread_cond_wait(&waiter.cv, &waiter.mu);
        pthread_mutex_unlock(&waiter.mu);
    }
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
    commit_stats(c, &commits, &njobs);
    CHECK_EQ_INT(njobs, JOBS);
    CHECK(commits >= BATCHES && commits <= JOBS);
    commit_stop(c);
out:
    meta_close(&meta);
    store_close(&store);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    if (system(path) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
    log_init("test", "test_commit", LOG_LVL_WARN, 0);
    RUN(test_stats_read_while_committing);
    return TEST_SUMMARY();
}
