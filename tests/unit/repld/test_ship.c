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
#include "siteutil.h"

typedef struct {
    conf_t conf;
    conf_target_t tgt; /* the one target, as conf_finalize makes it from conf */
    meta_t meta;
    ship_t s;
} fixture_t;

/* A fresh environment with `n` PUT records in the log, and a dispatcher state
 * over it as ship_run sets it up (no threads, no sockets). */
static int fixture_open(fixture_t *f, int n)
{
    char dir[256];

    memset(f, 0, sizeof(*f));
    if (conf_init(&f->conf) != 0 || site_env_fresh(&f->meta, "meta", dir, sizeof(dir)) != 0 ||
        site_append_puts(&f->meta, n, 10) != 0)
        return -1;
    f->s.conf = &f->conf;
    f->s.tgt = &f->tgt;
    f->s.meta = &f->meta;
    f->s.next_read = 1;
    f->conf.remote_url = strdup("http://127.0.0.1:9");
    f->conf.site_id = strdup("site-a");
    static char name[] = "b";
    f->tgt.name = name;
    f->tgt.url = f->conf.remote_url;
    f->tgt.batch_size = f->conf.batch_size;
    f->tgt.workers = f->conf.workers;
    f->tgt.retry_attempts = f->conf.retry_attempts;
    f->tgt.retry_delay_ms = f->conf.retry_delay_ms;
    f->tgt.inline_threshold = f->conf.inline_threshold;
    f->conf.targets = &f->tgt; /* the fixture's: taken back before conf_free */
    f->conf.ntargets = 1;
    pthread_mutex_init(&f->s.mu, NULL);
    return open_targets(&f->conf, &f->meta) == 0 ? 0 : -1;
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
    f->conf.targets = NULL;
    f->conf.ntargets = 0;
    conf_free(&f->conf);
}

static uint64_t state_of(fixture_t *f, meta_counter_t c)
{
    return site_counter(&f->meta, c);
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
    if (replog_failed_foreach(&f->meta, txn, NULL, count_entries, &n) != 0)
        n = UINT64_MAX;
    mdb_txn_abort(txn);
    return n;
}

static void ack(ship_t *s, ev_t *e)
{
    e->state = EV_DONE;
    e->retired = RETIRED_ACKED;
    s->add_acked++;
}

/* The cursor covers acknowledged events, and the log is trimmed below it.
 * An event is counted when the cursor passes it: one acknowledged behind a
 * gap is sent again after a restart, and would be counted twice. */
static void test_persist_moves_the_cursor_over_acknowledged_events(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 3) == 0);
    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(f.s.win.len, 3);
    ack(&f.s, f.s.win.v[0]);
    ack(&f.s, f.s.win.v[2]); /* done, but behind a gap */
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 1);
    CHECK_EQ_INT(state_of(&f, META_REPL_ACKED), 1);
    CHECK_EQ_INT(f.s.win.len, 2);
    ack(&f.s, f.s.win.v[0]);
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

/* The ack point published for sync waits: the done prefix, held below a
 * superseded event until its guard, also through a chain of superseders,
 * and kept across a persist that drops the events. */
static void test_ack_point_holds_superseded_events(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 8) == 0);
    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(ack_point(&f.s), 0);
    f.s.win.v[0]->state = EV_DONE;
    f.s.win.v[1]->state = EV_DONE;
    f.s.win.v[3]->state = EV_DONE;
    CHECK_EQ_INT(ack_point(&f.s), 2); /* seq 3 is not done */
    /* 3 superseded by 5 (the head was 5), 5 superseded by 7 (head 7) */
    f.s.win.v[2]->state = EV_DONE;
    hold_ack(&f.s, 3, 5);
    f.s.win.v[4]->state = EV_DONE;
    hold_ack(&f.s, 5, 7);
    CHECK_EQ_INT(ack_point(&f.s), 2);
    f.s.win.v[5]->state = EV_DONE;
    CHECK_EQ_INT(ack_point(&f.s), 2); /* the prefix passed 5, but 5 is held until 7 */
    f.s.add_acked = 6;
    CHECK(persist(&f.s, 1) == 0); /* the cursor moves to 6: the holds stay */
    CHECK_EQ_INT(ack_point(&f.s), 2);
    f.s.win.v[0]->state = EV_DONE; /* seq 7 */
    CHECK_EQ_INT(ack_point(&f.s), 7);
    CHECK_EQ_INT(f.s.nholds, 0);
    /* a guard that could not be read is read again (a later head is a safe guard) */
    hold_ack(&f.s, 8, UINT64_MAX);
    CHECK_EQ_INT(ack_point(&f.s), 7);
    CHECK(f.s.holds[0].guard == 8);
    f.s.win.v[1]->state = EV_DONE;
    CHECK_EQ_INT(ack_point(&f.s), 8);
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

/* Refusals spend attempts; the one beyond retry_attempts records the event
 * as failed (and only then); a permanent refusal at once. */
static void test_refusals_spend_attempts_then_fail(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 2) == 0);
    CHECK(fill(&f.s) == 0);
    f.tgt.retry_attempts = 2;
    ev_t *e = f.s.win.v[0];
    refused(&f.s, e, "remote returned 507: full", 0);
    refused(&f.s, e, "remote returned 507: full", 0);
    CHECK_EQ_INT(e->state, EV_READY);
    CHECK_EQ_INT(e->attempts, 2);
    CHECK(e->due_ms > 0);
    CHECK_EQ_INT(f.s.nfailing, 0);
    refused(&f.s, e, "remote returned 507: full", 0);
    CHECK_EQ_INT(e->state, EV_FAILED);
    CHECK_EQ_INT(f.s.nfailing, 1);
    refused(&f.s, f.s.win.v[1], "remote returned 400: malformed", 1);
    CHECK_EQ_INT(f.s.win.v[1]->state, EV_FAILED);
    CHECK_EQ_INT(f.s.win.v[1]->attempts, 1);
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(failed_entries(&f), 2);
    CHECK_EQ_INT(state_of(&f, META_REPL_FAILED_TOTAL), 2);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 2);
    fixture_close(&f);
}

/* Transport failures back off: doubling up to the cap, and one failed round
 * of batches (several workers failing together) is one step. */
static void test_backoff_doubles_to_the_cap(void)
{
    fixture_t f;
    send_job_t job;
    CHECK(fixture_open(&f, 0) == 0);
    memset(&job, 0, sizeof(job));
    job.outcome = SEND_TRANSPORT;
    snprintf(job.error, sizeof(job.error), "connection refused");
    f.s.backoff_ms = 1000;
    back_off(&f.s, &job);
    CHECK_EQ_INT(f.s.remote_state, 2);
    CHECK_EQ_INT(f.s.backoff_ms, 2000);
    CHECK(f.s.backoff_until > (uint64_t)clock_mono_ms());
    CHECK_EQ_STR(f.s.remote_error, "connection refused");
    back_off(&f.s, &job); /* another worker's batch of the same round */
    CHECK_EQ_INT(f.s.backoff_ms, 2000);
    for (int i = 0; i < 20; i++) {
        f.s.backoff_until = 0; /* the step has passed */
        back_off(&f.s, &job);
        CHECK(f.s.backoff_ms <= BACKOFF_CAP_MS);
    }
    CHECK_EQ_INT(f.s.backoff_ms, BACKOFF_CAP_MS);
    fixture_close(&f);
}

/* A replica that cannot fetch from this site (502-504) spends no attempt:
 * the event waits, its delay doubling up to the cap. */
static void test_fetch_outage_spends_no_attempt(void)
{
    fixture_t f;
    CHECK(fixture_open(&f, 1) == 0);
    CHECK(fill(&f.s) == 0);
    f.s.backoff_ms = 1000;
    f.tgt.retry_attempts = 0; /* any refusal would fail it at once */
    ev_t *e = f.s.win.v[0];
    uint64_t hold = 0;
    for (int round = 0; round < 12; round++) {
        batch_t *b = batch_get(&f.s);
        CHECK(b != NULL);
        if (b == NULL)
            break;
        e->state = EV_INFLIGHT;
        b->evs[0] = e;
        b->n = 1;
        b->job.outcome = SEND_OK;
        b->job.results = b->results;
        b->job.nevents = 1;
        b->job.owner = b;
        b->results[0] =
            (batch_res_t){.seq = e->seq, .result = BATCH_RETRY, .status = 502, .error = "ETag mismatch", .error_len = 13};
        complete(&f.s, &b->job);
        CHECK_EQ_INT(e->state, EV_READY);
        CHECK(e->hold_ms >= hold && e->hold_ms <= BACKOFF_CAP_MS);
        hold = e->hold_ms;
    }
    CHECK_EQ_INT(e->attempts, 0);
    CHECK_EQ_INT(hold, BACKOFF_CAP_MS);
    CHECK_EQ_INT(f.s.nfailing, 0);
    for (size_t i = 0; i < f.s.nspare; i++)
        batch_free(&f.s, f.s.spare[i]);
    fixture_close(&f);
}

/* Events put back in line by --retry-failed: an acknowledged one leaves
 * "repl_retry", one refused again goes back to "repl_failed", in the
 * commit that says so. */
static void test_redriven_events_leave_the_retry_table_when_settled(void)
{
    fixture_t f;
    MDB_txn *txn;
    uint64_t moved = 0;
    CHECK(fixture_open(&f, 2) == 0);
    CHECK(fill(&f.s) == 0);
    refused(&f.s, f.s.win.v[0], "remote returned 400: no", 1);
    refused(&f.s, f.s.win.v[1], "remote returned 400: no", 1);
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(failed_entries(&f), 2);
    CHECK(mdb_txn_begin(f.meta.env, NULL, 0, &txn) == 0);
    CHECK(replog_requeue_failed(&f.meta, txn, NULL, &moved) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK_EQ_INT(moved, 2);
    CHECK_EQ_INT(state_of(&f, META_REPL_FAILED), 0);

    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(f.s.rq.len, 2);
    CHECK_EQ_INT(f.s.win.len, 0);
    ev_t *acked = f.s.rq.v[0], *again = f.s.rq.v[1];
    CHECK(acked->from_retry && again->from_retry);
    ack(&f.s, acked);
    f.s.rq_done++;
    refused(&f.s, again, "remote returned 400: still no", 1);
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(f.s.rq.len, 0);
    CHECK_EQ_INT(failed_entries(&f), 1);
    CHECK_EQ_INT(state_of(&f, META_REPL_FAILED), 1);
    CHECK_EQ_INT(state_of(&f, META_REPL_FAILED_TOTAL), 3);
    CHECK_EQ_INT(state_of(&f, META_REPL_ACKED), 1); /* the re-driven event, counted as it leaves the queue */
    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(f.s.rq.len, 0); /* "repl_retry" is empty */
    fixture_close(&f);
}

/* Once the target's replies have named its site, events that happened
 * there are retired without being sent, and counted as skipped, not as
 * acknowledged. */
static void test_events_from_the_target_are_not_sent_back(void)
{
    fixture_t f;
    MDB_txn *txn;
    replog_target_t t;
    CHECK(fixture_open(&f, 3) == 0); /* the records' origin is "site-a" */
    snprintf(f.s.peer_site, sizeof(f.s.peer_site), "site-a");
    CHECK(fill(&f.s) == 0);
    CHECK_EQ_INT(f.s.win.len, 3);
    batch_t *b = batch_get(&f.s);
    CHECK(b != NULL);
    b->cap = BATCH_BYTES_MAX;
    CHECK_EQ_INT(build_once(&f.s, b, clock_mono_ms()), 0); /* nothing to send */
    for (size_t i = 0; i < f.s.win.len; i++)
        CHECK_EQ_INT(f.s.win.v[i]->state, EV_DONE);
    CHECK(persist(&f.s, 1) == 0);
    CHECK_EQ_INT(state_of(&f, META_REPL_CURSOR), 3);
    CHECK_EQ_INT(state_of(&f, META_REPL_ACKED), 0);
    CHECK(mdb_txn_begin(f.meta.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(replog_target_get(&f.meta, txn, "b", &t) == 0);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(t.skipped, 3);
    CHECK_EQ_INT(t.acked, 0);
    batch_free(&f.s, b);
    fixture_close(&f);
}

int main(void)
{
    if (site_tmp_make() != 0) {
        perror("mkdtemp");
        return 1;
    }
    log_init("test", "test_ship", LOG_LVL_ERROR, 0);
    RUN(test_persist_moves_the_cursor_over_acknowledged_events);
    RUN(test_ack_point_holds_superseded_events);
    RUN(test_failed_event_is_recorded_before_the_cursor_passes);
    RUN(test_failed_allocation_never_loses_a_failed_event);
    RUN(test_refusals_spend_attempts_then_fail);
    RUN(test_backoff_doubles_to_the_cap);
    RUN(test_fetch_outage_spends_no_attempt);
    RUN(test_redriven_events_leave_the_retry_table_when_settled);
    RUN(test_events_from_the_target_are_not_sent_back);
    site_tmp_remove();
    return TEST_SUMMARY();
}
