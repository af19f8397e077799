/* test_replog.c - unit tests of the replication log module (common/replog.c)
 * and of opening the site's environment (common/meta.c), on real LMDB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/be.h"
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

static int count_any(void *ctx, const replog_failed_t *e)
{
    (*(int *)ctx)++;
    return 0;
}

static int count_failed(void *ctx, const replog_failed_t *e)
{
    (*(int *)ctx)++;
    return e->error_len == REPLOG_ERROR_MAX ? 0 : CIO_EPROTO;
}

/* Brings the per-target state in line with names[0..n), as repld does at start. */
static int open_targets(meta_t *m, const char *const *names, size_t n)
{
    MDB_txn *txn;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if (replog_targets_open(m, txn, names, n, NULL) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

static int advance(meta_t *m, const char *name, uint64_t cursor)
{
    MDB_txn *txn;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    int ret = replog_target_advance(m, txn, name, cursor);
    if (ret != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

static replog_target_t target_of(meta_t *m, const char *name)
{
    MDB_txn *txn;
    replog_target_t t;
    memset(&t, 0xff, sizeof(t));
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (replog_target_get(m, txn, name, &t) != 0)
            memset(&t, 0xff, sizeof(t));
        mdb_txn_abort(txn);
    }
    return t;
}

static uint64_t log_records(meta_t *m)
{
    MDB_txn *txn;
    uint64_t head = 0, records = UINT64_MAX;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (replog_stats(m, txn, &head, &records) != 0)
            records = UINT64_MAX;
        mdb_txn_abort(txn);
    }
    return records;
}

static void test_append_scan_advance_trim(void)
{
    static const char *const one[] = {"b"};
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

    CHECK(advance(&m, "b", 3) == CIO_ENOTFOUND); /* no state before replog_targets_open */
    CHECK(open_targets(&m, one, 1) == 0);
    CHECK(advance(&m, "b", 3) == 0);
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_stats(&m, txn, &head, &records) == 0);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(head, 4);
    CHECK_EQ_INT(records, 1); /* trimmed at and below the cursor only */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 3);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 10);
    CHECK_EQ_INT(site_counter(&m, META_LOG_COUNT), 4); /* appended ever: trimming does not take back */
    replog_target_t t = target_of(&m, "b");
    CHECK_EQ_INT(t.cursor, 3);
    CHECK_EQ_INT(t.ahead_events, 0); /* nothing retired here is kept for a slower target */
    CHECK_EQ_INT(t.ahead_bytes, 0);
    meta_close(&m);
}

/* Fan-out: each target has its own cursor; a record leaves the log only
 * when the slowest has passed it, and each target's pending figures are
 * what lies above its own cursor. */
static void test_trim_follows_the_slowest_target(void)
{
    static const char *const two[] = {"b", "c"};
    meta_t m;

    CHECK(env_fresh(&m) == 0);
    CHECK(site_append_puts(&m, 5, 10) == 0);
    CHECK(open_targets(&m, two, 2) == 0);
    CHECK(advance(&m, "b", 5) == 0);
    CHECK_EQ_INT(log_records(&m), 5); /* c has acknowledged nothing: all kept */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 0);
    replog_target_t b = target_of(&m, "b"), c = target_of(&m, "c");
    CHECK_EQ_INT(b.cursor, 5);
    CHECK_EQ_INT(b.ahead_events, 5);
    CHECK_EQ_INT(b.ahead_bytes, 50);
    CHECK_EQ_INT(c.cursor, 0);
    CHECK_EQ_INT(c.ahead_events, 0);

    CHECK(advance(&m, "c", 2) == 0);
    CHECK_EQ_INT(log_records(&m), 3); /* trimmed up to c, the slowest */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 2);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 30);
    b = target_of(&m, "b");
    c = target_of(&m, "c");
    CHECK_EQ_INT(b.ahead_events, 3); /* b's pending: 3 records - 3 = 0 */
    CHECK_EQ_INT(b.ahead_bytes, 30);
    CHECK_EQ_INT(c.ahead_events, 0); /* c's pending: 3 records, 30 bytes */
    CHECK(advance(&m, "c", 1) == 0); /* backwards: nothing changes */
    CHECK_EQ_INT(target_of(&m, "c").cursor, 2);

    /* a new record is pending for both */
    CHECK(site_append_puts(&m, 1, 7) == 0);
    CHECK(advance(&m, "c", 6) == 0);
    CHECK_EQ_INT(log_records(&m), 1); /* b is now the slowest, at 5 */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 5);
    CHECK_EQ_INT(target_of(&m, "c").ahead_events, 1);
    CHECK_EQ_INT(target_of(&m, "c").ahead_bytes, 7);
    CHECK_EQ_INT(target_of(&m, "b").ahead_events, 0);
    CHECK(advance(&m, "b", 6) == 0);
    CHECK_EQ_INT(log_records(&m), 0);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 0);
    CHECK_EQ_INT(target_of(&m, "b").ahead_events, 0);
    CHECK_EQ_INT(target_of(&m, "c").ahead_events, 0);
    meta_close(&m);
}

/* A target removed from the configuration is forgotten, and stops holding
 * the log back; one added starts at the trim point. */
static void test_removed_target_never_holds_the_log(void)
{
    static const char *const two[] = {"b", "c"}, *const only_b[] = {"b"}, *const bd[] = {"b", "d"};
    meta_t m;
    MDB_txn *txn;
    size_t forgotten = 0;

    CHECK(env_fresh(&m) == 0);
    CHECK(site_append_puts(&m, 4, 10) == 0);
    CHECK(open_targets(&m, two, 2) == 0);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_fail(&m, txn, "c", 1, "rec", 3, 4, "refused", 1000) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK(advance(&m, "b", 4) == 0);
    CHECK_EQ_INT(log_records(&m), 4);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 1);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_targets_open(&m, txn, only_b, 1, &forgotten) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(forgotten, 1);
    CHECK_EQ_INT(log_records(&m), 0); /* c held them: gone with it */
    CHECK_EQ_INT(site_counter(&m, META_REPL_CURSOR), 4);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 0); /* its failed entries too */
    CHECK_EQ_INT(target_of(&m, "c").cursor, UINT64_MAX);
    CHECK_EQ_INT(site_counter(&m, META_LOG_PENDING_BYTES), 0);
    CHECK(site_append_puts(&m, 2, 10) == 0);
    CHECK(open_targets(&m, bd, 2) == 0);
    CHECK_EQ_INT(target_of(&m, "d").cursor, 4); /* the trim point: it is sent what the log holds */
    CHECK(open_targets(&m, bd, 2) == 0);        /* idempotent */
    CHECK_EQ_INT(target_of(&m, "b").cursor, 4);
    meta_close(&m);
}

/* A store written before targets: one cursor, its counters, and failed and
 * re-drive entries keyed by the seq alone, all become the first target's. */
static void test_legacy_state_becomes_the_first_targets(void)
{
    static const char *const two[] = {"b", "c"};
    meta_t m;
    MDB_txn *txn;
    uint8_t kb[8];
    char value[14 + 5 + 3];

    CHECK(env_fresh(&m) == 0);
    CHECK(site_append_puts(&m, 6, 10) == 0);
    /* what the previous release left: cursor 3 (records 1..3 trimmed), counters, seq-keyed entries */
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        be_put(kb, seq, 8);
        MDB_val k = {8, kb};
        CHECK(mdb_del(txn, m.replog, &k, NULL) == 0);
    }
    CHECK(meta_state_put(&m, txn, META_LOG_PENDING_BYTES, 30) == 0);
    CHECK(meta_state_put(&m, txn, META_REPL_CURSOR, 3) == 0);
    CHECK(meta_state_put(&m, txn, META_REPL_ACKED, 3) == 0);
    CHECK(meta_state_put(&m, txn, META_REPL_BYTES, 30) == 0);
    CHECK(meta_state_put(&m, txn, META_REPL_FAILED, 1) == 0);
    CHECK(meta_state_put(&m, txn, META_REPL_FAILED_TOTAL, 2) == 0);
    memset(value, 0, sizeof(value));
    be_put((uint8_t *)value, 4, 4);
    be_put((uint8_t *)value + 12, 5, 2);
    memcpy(value + 14, "error", 5);
    memcpy(value + 19, "rec", 3);
    be_put(kb, 2, 8);
    MDB_val k = {8, kb}, v = {sizeof(value), value}, rv = {3, (void *)"rec"};
    CHECK(mdb_put(txn, m.repl_failed, &k, &v, 0) == 0);
    be_put(kb, 1, 8);
    CHECK(mdb_put(txn, m.repl_retry, &k, &rv, 0) == 0);
    CHECK(mdb_txn_commit(txn) == 0);

    CHECK(open_targets(&m, two, 2) == 0);
    replog_target_t b = target_of(&m, "b"), c = target_of(&m, "c");
    CHECK_EQ_INT(b.cursor, 3);
    CHECK_EQ_INT(b.acked, 3);
    CHECK_EQ_INT(b.bytes, 30);
    CHECK_EQ_INT(b.failed, 1);
    CHECK_EQ_INT(b.failed_total, 2);
    CHECK_EQ_INT(c.cursor, 3); /* a new target: the trim point */
    CHECK_EQ_INT(c.acked, 0);
    CHECK_EQ_INT(log_records(&m), 3); /* nothing trimmed by the upgrade */
    seen_t seen = {{0}, 0, 0};
    int n = 0;
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_retry_scan(&m, txn, "b", see, &seen) == CIO_EPROTO); /* found: "rec" does not decode */
    CHECK(replog_retry_scan(&m, txn, "c", see, &seen) == 0);
    CHECK_EQ_INT(seen.n, 0);
    CHECK(replog_failed_foreach(&m, txn, "b", count_any, &n) == 0);
    CHECK_EQ_INT(n, 1);
    CHECK(replog_failed_foreach(&m, txn, "c", count_any, &n) == 0);
    CHECK_EQ_INT(n, 1);
    mdb_txn_abort(txn);
    meta_close(&m);
}

/* Failed events are kept per target, listed and put back in line per target. */
static void test_failed_per_target(void)
{
    static const char *const two[] = {"b", "c"};
    meta_t m;
    MDB_txn *txn;
    char long_error[REPLOG_ERROR_MAX + 100];
    uint64_t moved;
    int n = 0;

    memset(long_error, 'e', sizeof(long_error) - 1);
    long_error[sizeof(long_error) - 1] = '\0';
    CHECK(env_fresh(&m) == 0);
    CHECK(open_targets(&m, two, 2) == 0);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_fail(&m, txn, "b", 7, "rec", 3, 4, long_error, 1000) == 0);
    CHECK(replog_fail(&m, txn, "b", 9, "rec", 3, 4, long_error, 1000) == 0);
    CHECK(replog_fail(&m, txn, "c", 7, "rec", 3, 4, long_error, 1000) == 0); /* the same event, refused by both */
    CHECK(replog_fail(&m, txn, "x", 7, "rec", 3, 4, long_error, 1000) == CIO_ENOTFOUND);
    CHECK(replog_failed_foreach(&m, txn, NULL, count_failed, &n) == 0);
    CHECK_EQ_INT(n, 3); /* the error is cut to REPLOG_ERROR_MAX */
    n = 0;
    CHECK(replog_failed_foreach(&m, txn, "c", count_failed, &n) == 0);
    CHECK_EQ_INT(n, 1);
    CHECK(replog_requeue_failed(&m, txn, "b", &moved) == 0);
    CHECK_EQ_INT(moved, 2);
    CHECK(replog_retry_done(&m, txn, "b", 7) == 0);
    CHECK(replog_retry_done(&m, txn, "b", 8) == 0); /* absent: not an error */
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 1); /* c's is still there */
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED_TOTAL), 3);
    CHECK_EQ_INT(target_of(&m, "b").failed, 0);
    CHECK_EQ_INT(target_of(&m, "b").failed_total, 2);
    CHECK_EQ_INT(target_of(&m, "c").failed, 1);
    seen_t seen = {{0}, 0, 0};
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_retry_scan(&m, txn, "b", see, &seen) == CIO_EPROTO); /* "rec" is no log record: the callback's error comes back */
    CHECK(replog_retry_scan(&m, txn, "c", see, &seen) == 0);          /* nothing re-driven for c */
    mdb_txn_abort(txn);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_requeue_failed(&m, txn, NULL, &moved) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(moved, 1);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 0);
    CHECK_EQ_INT(target_of(&m, "c").failed, 0);
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
    RUN(test_trim_follows_the_slowest_target);
    RUN(test_removed_target_never_holds_the_log);
    RUN(test_legacy_state_becomes_the_first_targets);
    RUN(test_failed_per_target);
    RUN(test_current_version);
    RUN(test_open_without_create);
    site_tmp_remove();
    return TEST_SUMMARY();
}
