/* test_replog.c - unit tests of the replication log module (common/replog.c)
 * and of opening the site's environment (common/meta.c), on real LMDB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "common/meta.h"
#include "common/replog.h"
#include "testutil.h"
#include "siteutil.h"

static char env_dir[256];

static int env_fresh(meta_t *m)
{
    return site_env_fresh(m, "env", env_dir, sizeof(env_dir));
}

typedef struct {
    uint64_t seqs[16];
    size_t n, stop_after;
} seen_t;

static int see(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    seen_t *s = ctx;
    logrec_t r;
    if (logrec_decode(rec, len, &r) != 0 || r.seq != seq)
        return CIO_EPROTO;
    s->seqs[s->n++] = seq;
    return s->n == s->stop_after ? 1 : 0;
}

static void test_append_scan_advance_trim(void)
{
    meta_t m;
    MDB_txn *txn;
    seen_t seen = {{0}, 0, 0};
    uint64_t head, records;

    CHECK(env_fresh(&m) == 0);
    CHECK(site_append_puts(&m, 4, 10) == 0);
    CHECK_EQ_INT(site_counter(&m, META_LAST_SEQ), 4);
    CHECK_EQ_INT(site_counter(&m, META_LOG_COUNT), 4);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 40);
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_scan(&m, txn, 2, see, &seen) == 0);
    CHECK_EQ_INT(seen.n, 3);
    CHECK_EQ_INT(seen.seqs[0], 2);
    seen.n = 0;
    seen.stop_after = 1;
    CHECK(replog_scan(&m, txn, 0, see, &seen) == 0); /* 1 stops the scan, and is no error */
    CHECK_EQ_INT(seen.n, 1);
    mdb_txn_abort(txn);

    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_advance(&m, txn, 3, 30) == 0);
    CHECK(replog_stats(&m, txn, &head, &records) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(head, 4);
    CHECK_EQ_INT(records, 1); /* trimmed at and below the cursor only */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 3);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 10);
    CHECK_EQ_INT(site_counter(&m, META_LOG_COUNT), 4); /* appended ever: trimming does not take back */
    meta_close(&m);
}

static int count_failed(void *ctx, const replog_failed_t *e)
{
    (*(int *)ctx)++;
    return e->error_len == REPLOG_ERROR_MAX ? 0 : CIO_EPROTO;
}

static void test_fail_and_requeue(void)
{
    meta_t m;
    MDB_txn *txn;
    char long_error[REPLOG_ERROR_MAX + 100];
    uint64_t moved;
    int n = 0;

    memset(long_error, 'e', sizeof(long_error) - 1);
    long_error[sizeof(long_error) - 1] = '\0';
    CHECK(env_fresh(&m) == 0);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_fail(&m, txn, 7, "rec", 3, 4, long_error, 1000) == 0);
    CHECK(replog_fail(&m, txn, 9, "rec", 3, 4, long_error, 1000) == 0);
    CHECK(replog_failed_foreach(&m, txn, count_failed, &n) == 0);
    CHECK_EQ_INT(n, 2); /* the error is cut to REPLOG_ERROR_MAX */
    CHECK(replog_requeue_failed(&m, txn, &moved) == 0);
    CHECK_EQ_INT(moved, 2);
    CHECK(replog_retry_done(&m, txn, 7) == 0);
    CHECK(replog_retry_done(&m, txn, 8) == 0); /* absent: not an error */
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED_TOTAL), 2);
    seen_t seen = {{0}, 0, 0};
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_retry_scan(&m, txn, see, &seen) == CIO_EPROTO); /* "rec" is no log record: the callback's error comes back */
    mdb_txn_abort(txn);
    meta_close(&m);
}

/* A (version, origin) pair names one mutation: both must match. */
static void test_current_version(void)
{
    meta_obj_t o;
    memset(&o, 0, sizeof(o));
    o.version = 5;
    o.origin_len = 1;
    memcpy(o.origin, "a", 2);
    CHECK(meta_obj_current(&o, 5, "a", 1));
    CHECK(!meta_obj_current(&o, 4, "a", 1));
    CHECK(!meta_obj_current(&o, 5, "b", 1)); /* another site's version 5 */
    CHECK(!meta_obj_current(&o, 5, "ab", 2));
    CHECK(!meta_obj_current(&o, 5, "", 0));
}

/* Without META_OPEN_CREATE nothing is created, and the reason names the path. */
static void test_open_without_create(void)
{
    meta_t m;
    char dir[sizeof(site_tmp) + 32], err[512];
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/missing/site.meta", site_tmp);
    CHECK(meta_open_env(&m, dir, 16u << 20, META_OPEN_RDONLY, err, sizeof(err)) == CIO_ENOTFOUND);
    CHECK(strstr(err, dir) != NULL);
    CHECK(stat(dir, &st) != 0);
    snprintf(dir, sizeof(dir), "%s/missing", site_tmp);
    CHECK(stat(dir, &st) != 0);
    CHECK(meta_open_env(&m, dir, 16u << 20, 0, err, sizeof(err)) == CIO_ENOTFOUND);
    CHECK(stat(dir, &st) != 0);
    /* an existing environment opens read-only */
    CHECK(env_fresh(&m) == 0);
    meta_close(&m);
    CHECK(meta_open_env(&m, env_dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 0);
    meta_close(&m);
}

int main(void)
{
    if (site_tmp_make() != 0) {
        perror("mkdtemp");
        return 1;
    }
    log_init("test", "test_replog", LOG_LVL_ERROR, 0);
    RUN(test_append_scan_advance_trim);
    RUN(test_fail_and_requeue);
    RUN(test_current_version);
    RUN(test_open_without_create);
    site_tmp_remove();
    return TEST_SUMMARY();
}
