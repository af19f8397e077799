/* test_ship.c - unit tests of repld's dispatcher logic (repld/ship.c): the
 * window, the persist step and failed events, on a real LMDB environment.
 *
 * ship.c is included so that its static functions can be reached, with its
 * realloc routed through a hook that can be told to fail (SQLite's
 * test_malloc idea): a failed allocation must never let an event leave the
 * log without being acknowledged or recorded as failed. */
#include <stdlib.h>

static int test_fail_alloc; /* while set, every realloc of ship.c fails */

static void *test_realloc(void *p, size_t n)
{
    return test_fail_alloc ? NULL : realloc(p, n);
}

#define realloc(p, n) test_realloc(p, n)
#include "repld/ship.c"
#undef realloc

#include "testutil.h"

static char test_dir[] = "/tmp/test_ship.XXXXXX";

typedef struct {
    conf_t conf;
    meta_t meta;
    ship_t s;
} fixture_t;

/* A fresh environment with `n` PUT records in the log, and a dispatcher state
 * over it as ship_run sets it up (no threads, no sockets). */
static int fixture_open(fixture_t *f, int n)
{
    char err[256], cmd[64 + sizeof(test_dir)];
    MDB_txn *txn;

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/meta", test_dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s/meta", test_dir);
    memset(f, 0, sizeof(*f));
    if (conf_init(&f->conf) != 0 || meta_open_env(&f->meta, cmd, 16u << 20, META_OPEN_CREATE, err, sizeof(err)) != 0)
        return -1;
    if (mdb_txn_begin(f->meta.env, NULL, 0, &txn) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        logrec_t r = {0};
        char key[16];
        uint64_t seq;
        snprintf(key, sizeof(key), "k%d", i);
        r.op = LOGREC_PUT;
        r.bucket = "bkt";
        r.bucket_len = 3;
        r.key = key;
        r.key_len = strlen(key);
        r.size = 10;
        r.mtime_ms = 1;
        r.origin = "site-a";
        r.origin_len = 6;
        if (replog_next_seq(&f->meta, txn, &seq) != 0)
            goto fail;
        r.seq = seq;
        if (replog_append(&f->meta, txn, &r) != 0)
            goto fail;
    }
    if (mdb_txn_commit(txn) != 0)
        return -1;
    f->s.conf = &f->conf;
    f->s.meta = &f->meta;
    f->s.next_read = 1;
    pthread_mutex_init(&f->s.mu, NULL);
    return 0;
fail:
    mdb_txn_abort(txn);
    return -1;
}

static void fixture_close(fixture_t *f)
{
    for (size_t i = 0; i < f->s.win.len; i++)
        ev_free(f->s.win.v[i]);
    for (size_t i = 0; i < f->s.rq.len; i++)
        ev_free(f->s.rq.v[i]);
    if (f->s.snap != NULL)
        mdb_txn_abort(f->s.snap);
    free(f->s.win.v);
    free(f->s.rq.v);
    pthread_mutex_destroy(&f->s.mu);
    meta_close(&f->meta);
    conf_free(&f->conf);
}

static uint64_t state_of(fixture_t *f, meta_counter_t c)
{
    MDB_txn *txn;
    uint64_t v = 0;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return UINT64_MAX;
    if (meta_state_get(&f->meta, txn, c, &v) != 0)
        v = UINT64_MAX;
    mdb_txn_abort(txn);
    return v;
}

/* A counter read under its stored name, as an older build wrote it. */
static uint64_t stored_counter(fixture_t *f, const char *name)
{
    MDB_txn *txn;
    MDB_val k = {strlen(name), (void *)name}, v;
    uint64_t n = UINT64_MAX;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return n;
    if (mdb_get(txn, f->meta.state, &k, &v) == 0 && v.mv_size == 8)
        n = be_get(v.mv_data, 8);
    mdb_txn_abort(txn);
    return n;
}

static int count_entries(void *ctx, const replog_failed_t *e)
{
    (*(uint64_t *)ctx)++;
    return 0;
}

static uint64_t failed_entries(fixture_t *f)
{
    MDB_txn *txn;
    uint64_t n = 0;
    if (mdb_txn_begin(f->meta.env, NULL, MDB_RDONLY, &txn) != 0)
        return UINT64_MAX;
    if (replog_failed_foreach(&f->meta, txn, count_entries, &n) != 0)
        n = UINT64_MAX;
    mdb_txn_abort(txn);
    return n;
}

/* The cursor covers acknowledged events, and the log is trimmed below it. */
static void test_persist_moves_the_cursor_over_acknowledged_events(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 3) == 0);
    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(f.s.win.len, 3);
    f.s.win.v[0]->state = EV_DONE;
    f.s.win.v[2]->state = EV_DONE; /* done, but behind a gap */
    f.s.add_acked = 2;
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 1);
    CHECK_EQ_INT(state_of(&f, META_REPL_ACKED), 2);
    CHECK_EQ_INT(f.s.win.len, 2);
    f.s.win.v[0]->state = EV_DONE;
    f.s.add_acked = 1;
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 3);
    /* the counters keep the names they have on disk */
    CHECK_EQ_INT(stored_counter(&f, "repl_cursor"), 3);
    CHECK_EQ_INT(stored_counter(&f, "repl_acked"), 3);
    CHECK_EQ_INT(stored_counter(&f, "last_seq"), 3);
    CHECK_EQ_INT(stored_counter(&f, "log_count"), 3);
    CHECK_EQ_INT(f.s.win.len, 0);
    CHECK_EQ_INT(state_of(&f, META_LOG_PENDING_BYTES), 0);
    fixture_close(&f);
}

/* An event refused for good is recorded in repl_failed in the same commit
 * that moves the cursor past it. */
static void test_failed_event_is_recorded_before_the_cursor_passes(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 2) == 0);
    CHECK(fill(&f.s) == 0);
    refused(&f.s, f.s.win.v[0], "remote returned 400: no", 1);
    f.s.win.v[1]->state = EV_DONE;
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 2);
    CHECK_EQ_INT(failed_entries(&f), 1);
    CHECK_EQ_INT(state_of(&f, META_REPL_FAILED), 1);
    fixture_close(&f);
}

/* Issue 11, defect 3: an allocation that fails while an event is recorded as
 * failed must not let the cursor move past it unrecorded. */
static void test_failed_allocation_never_loses_a_failed_event(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 2) == 0);
    CHECK(fill(&f.s) == 0);
    test_fail_alloc = 1;
    fail_event(&f.s, f.s.win.v[0], "remote returned 400: no");
    test_fail_alloc = 0;
    f.s.win.v[1]->state = EV_DONE;
    for (int i = 0; i < 3; i++)
        CHECK(persist(&f.s, 1) == 0);
    uint64_t cursor = state_of(&f, META_REPL_CURSOR);
    /* either the event is still in the log, ahead of the cursor, or it is in repl_failed */
    CHECK(cursor == 0 || failed_entries(&f) == 1);
    CHECK_EQ_INT(failed_entries(&f) + (cursor == 0 ? 1 : 0), 1);
    fixture_close(&f);
}

int main(void)
{
    if (mkdtemp(test_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    log_init("test", "test_ship", LOG_LVL_ERROR, 0);
    RUN(test_persist_moves_the_cursor_over_acknowledged_events);
    RUN(test_failed_event_is_recorded_before_the_cursor_passes);
    RUN(test_failed_allocation_never_loses_a_failed_event);
    char cmd[32 + sizeof(test_dir)];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", test_dir);
    return TEST_SUMMARY();
}
