/* replog.c - the replication log: records, cursor and trimming, failed and re-driven events. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include "common/be.h"
#include "common/log.h"
#include "common/replog.h"
#include "common/syncrec.h"

/* ---- appending ---- */

int replog_next_seq(meta_t *m, MDB_txn *txn, uint64_t *seq)
{
    uint64_t last;
    int ret;
    if ((ret = meta_state_get(m, txn, META_LAST_SEQ, &last)) != 0)
        return ret;
    if ((ret = meta_state_put(m, txn, META_LAST_SEQ, last + 1)) != 0)
        return ret;
    *seq = last + 1;
    return 0;
}

int replog_append(meta_t *m, MDB_txn *txn, const logrec_t *r)
{
    msgpack_sbuffer sb;
    uint8_t kb[8];
    int ret;

    msgpack_sbuffer_init(&sb);
    if ((ret = logrec_encode(r, &sb)) != 0)
        goto done;
    be_put(kb, r->seq, 8);
    MDB_val k = {8, kb}, v = {sb.size, sb.data};
    if ((ret = meta_err(mdb_put(txn, m->replog, &k, &v, MDB_APPEND), "mdb_put(replog)")) != 0)
        goto done;
    if ((ret = meta_state_add(m, txn, META_LOG_COUNT, 1)) == 0 && r->op == LOGREC_PUT)
        ret = meta_state_add(m, txn, META_LOG_PENDING_BYTES, (int64_t)r->size); /* replog_advance subtracts */
done:
    msgpack_sbuffer_destroy(&sb);
    return ret;
}

void replog_wake(meta_t *m)
{
    static const char one = 1;
    if (m->wake_fd >= 0 && pwrite(m->wake_fd, &one, 1, 0) < 0) {
        /* nothing to do: repld's safety poll picks the events up */
    }
}

/* ---- reading ---- */

int replog_stats(meta_t *m, MDB_txn *txn, uint64_t *head, uint64_t *records)
{
    MDB_stat st;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_stat(txn, m->replog, &st)) != 0)
        return meta_err(rc, "mdb_stat(replog)");
    *records = st.ms_entries;
    *head = 0;
    if ((rc = mdb_cursor_open(txn, m->replog, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(replog)");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        *head = be_get(k.mv_data, 8);
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_cursor_get(replog)");
}

/* Visits the entries of a seq-keyed table from seq `from` on. */
static int scan_table(MDB_txn *txn, MDB_dbi dbi, const char *what, uint64_t from, replog_visit_cb cb, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t kb[8];
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return meta_err(rc, what);
    be_put(kb, from, 8);
    k.mv_size = 8;
    k.mv_data = kb;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        if ((ret = cb(ctx, be_get(k.mv_data, 8), v.mv_data, v.mv_size)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, what);
    mdb_cursor_close(cur);
    return ret < 0 ? ret : 0;
}

int replog_scan(meta_t *m, MDB_txn *txn, uint64_t from, replog_visit_cb cb, void *ctx)
{
    return scan_table(txn, m->replog, "scan replog", from, cb, ctx);
}

int replog_cursor(meta_t *m, MDB_txn *txn, uint64_t *cursor)
{
    return meta_state_get(m, txn, META_REPL_CURSOR, cursor);
}

/* ---- keys of the per-target tables ---- */

#define TKEY_MAX (1 + REPLOG_TARGET_NAME_MAX + 8)

/* u8 name length | name | u64 BE seq into kb (TKEY_MAX bytes); returns its length. */
static size_t tkey(uint8_t *kb, const char *name, size_t nlen, uint64_t seq)
{
    kb[0] = (uint8_t)nlen;
    memcpy(kb + 1, name, nlen);
    be_put(kb + 1 + nlen, seq, 8);
    return 1 + nlen + 8;
}

/* Splits a key of "repl_failed" or "repl_retry": 0, or CIO_EPROTO. A legacy
 * key (the seq alone) has the name "". */
static int tkey_split(const MDB_val *k, const char **name, size_t *nlen, uint64_t *seq)
{
    const uint8_t *p = k->mv_data;
    if (k->mv_size == 8) {
        *name = "";
        *nlen = 0;
        *seq = be_get(p, 8);
        return 0;
    }
    if (k->mv_size < 10 || (size_t)p[0] + 9 != k->mv_size)
        return CIO_EPROTO;
    *name = (const char *)p + 1;
    *nlen = p[0];
    *seq = be_get(p + 1 + p[0], 8);
    return 0;
}

static int name_ok(const char *name, size_t *nlen)
{
    if (name == NULL || (*nlen = strlen(name)) == 0 || *nlen > REPLOG_TARGET_NAME_MAX)
        return CIO_EINVAL;
    return 0;
}

/* ---- target state ---- */

_Static_assert(sizeof(replog_target_t) == REPLOG_TARGET_FIELDS * sizeof(uint64_t), "replog_target_t is its stored fields");

static int target_decode(const MDB_val *v, replog_target_t *t)
{
    uint64_t *f = (uint64_t *)t;
    memset(t, 0, sizeof(*t));
    if (v->mv_size % 8 != 0)
        return CIO_EPROTO;
    for (size_t i = 0; i < REPLOG_TARGET_FIELDS && i < v->mv_size / 8; i++)
        f[i] = be_get((const uint8_t *)v->mv_data + 8 * i, 8);
    return 0;
}

static int target_get(meta_t *m, MDB_txn *txn, const char *name, size_t nlen, replog_target_t *t)
{
    MDB_val k = {nlen, (void *)name}, v;
    int rc = mdb_get(txn, m->repl_targets, &k, &v);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    if (rc != 0)
        return meta_err(rc, "mdb_get(repl_targets)");
    return target_decode(&v, t);
}

static int target_put(meta_t *m, MDB_txn *txn, const char *name, size_t nlen, const replog_target_t *t)
{
    uint8_t vb[REPLOG_TARGET_FIELDS * 8];
    const uint64_t *f = (const uint64_t *)t;
    for (size_t i = 0; i < REPLOG_TARGET_FIELDS; i++)
        be_put(vb + 8 * i, f[i], 8);
    MDB_val k = {nlen, (void *)name}, v = {sizeof(vb), vb};
    return meta_err(mdb_put(txn, m->repl_targets, &k, &v, 0), "mdb_put(repl_targets)");
}

int replog_target_get(meta_t *m, MDB_txn *txn, const char *name, replog_target_t *t)
{
    size_t nlen;
    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    return target_get(m, txn, name, nlen, t);
}

int replog_targets_foreach(meta_t *m, MDB_txn *txn,
                           int (*fn)(void *ctx, const char *name, size_t name_len, const replog_target_t *t), void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, m->repl_targets, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_targets)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        replog_target_t t;
        if ((ret = target_decode(&v, &t)) != 0 || (ret = fn(ctx, k.mv_data, k.mv_size, &t)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_targets)");
    mdb_cursor_close(cur);
    return ret;
}

static int lowest_cursor(void *ctx, const char *name, size_t name_len, const replog_target_t *t)
{
    uint64_t *low = ctx;
    if (*low == UINT64_MAX || t->cursor < *low)
        *low = t->cursor;
    return 0;
}

typedef struct {
    meta_t *m;
    MDB_txn *txn;
    uint64_t events, bytes;
} trimmed_t;

static int take_ahead(void *ctx, const char *name, size_t name_len, const replog_target_t *t)
{
    trimmed_t *tr = ctx;
    replog_target_t n = *t;
    n.ahead_events = n.ahead_events > tr->events ? n.ahead_events - tr->events : 0;
    n.ahead_bytes = n.ahead_bytes > tr->bytes ? n.ahead_bytes - tr->bytes : 0;
    return target_put(tr->m, tr->txn, name, name_len, &n);
}

/* Trims the log up to the lowest cursor of the targets (none: nothing) and
 * moves META_REPL_CURSOR there. The records removed were counted in every
 * target's ahead figures (each target's cursor is at or above the new trim
 * point), so they are taken off every target's. */
static int trim(meta_t *m, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t low = UINT64_MAX, point, pending;
    trimmed_t tr = {m, txn, 0, 0};
    int rc, ret;

    if ((ret = replog_targets_foreach(m, txn, lowest_cursor, &low)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_CURSOR, &point)) != 0)
        return ret;
    if (low == UINT64_MAX || low <= point)
        return 0;
    if ((rc = mdb_cursor_open(txn, m->replog, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(replog)");
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8 && be_get(k.mv_data, 8) <= low) {
        logrec_t r;
        tr.events++;
        if (logrec_decode(v.mv_data, v.mv_size, &r) == 0 && r.op == LOGREC_PUT)
            tr.bytes += r.size;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_err(rc, "trim replog");
    if ((ret = meta_state_put(m, txn, META_REPL_CURSOR, low)) != 0)
        return ret;
    if (tr.events > 0 && (ret = replog_targets_foreach(m, txn, take_ahead, &tr)) != 0)
        return ret;
    if (tr.bytes == 0)
        return 0;
    if ((ret = meta_state_get(m, txn, META_LOG_PENDING_BYTES, &pending)) != 0)
        return ret;
    return meta_state_put(m, txn, META_LOG_PENDING_BYTES, pending > tr.bytes ? pending - tr.bytes : 0);
}

/* Re-keys the entries of `dbi` keyed by the seq alone as `name`'s. */
static int adopt_legacy(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *name, size_t nlen, uint64_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t kb[TKEY_MAX];
    int rc;

    *n = 0;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return meta_err(rc, what);
    /* legacy keys are 8 bytes and begin with a seq's high byte, 0 for any seq below 2^56; a target key begins
     * with its name's length, at least 1: the legacy ones sort first */
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8) {
        MDB_val nk = {tkey(kb, name, nlen, be_get(k.mv_data, 8)), kb};
        if ((rc = mdb_put(txn, dbi, &nk, &v, 0)) != 0)
            break;
        /* the put may have moved the cursor: find the legacy entry again and delete it */
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, what);
}

/* Deletes `name`'s entries from dbi; *n tells how many. */
static int drop_entries(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *name, size_t nlen, uint64_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t kb[TKEY_MAX];
    int rc;

    *n = 0;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return meta_err(rc, what);
    k.mv_size = tkey(kb, name, nlen, 0);
    k.mv_data = kb;
    /* after a delete, MDB_NEXT yields the entry that followed the deleted one */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *kn;
        size_t kl;
        uint64_t seq;
        if (tkey_split(&k, &kn, &kl, &seq) != 0 || kl != nlen || memcmp(kn, name, nlen) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, what);
}

typedef struct {
    const char *const *names;
    size_t n;
    char stale[REPLOG_TARGET_NAME_MAX + 1];
    replog_target_t st;
} stale_ctx_t;

static int find_stale(void *ctx, const char *name, size_t name_len, const replog_target_t *t)
{
    stale_ctx_t *sc = ctx;
    for (size_t i = 0; i < sc->n; i++)
        if (strlen(sc->names[i]) == name_len && memcmp(sc->names[i], name, name_len) == 0)
            return 0;
    memcpy(sc->stale, name, name_len);
    sc->stale[name_len] = '\0';
    sc->st = *t;
    return 1;
}

int replog_targets_open(meta_t *m, MDB_txn *txn, const char *const *names, size_t n, size_t *forgotten)
{
    MDB_stat st;
    uint64_t point, moved;
    size_t nlen, gone = 0;
    int rc, ret;

    if (forgotten != NULL)
        *forgotten = 0;
    if (n == 0)
        return CIO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (name_ok(names[i], &nlen) != 0)
            return CIO_EINVAL;
    if ((rc = mdb_stat(txn, m->repl_targets, &st)) != 0)
        return meta_err(rc, "mdb_stat(repl_targets)");
    if ((ret = meta_state_get(m, txn, META_REPL_CURSOR, &point)) != 0)
        return ret;
    nlen = strlen(names[0]);
    if (st.ms_entries == 0) {
        /* a store from before targets: its one cursor and its counters are the first target's */
        replog_target_t t;
        memset(&t, 0, sizeof(t));
        t.cursor = point;
        if ((ret = meta_state_get(m, txn, META_REPL_ACKED, &t.acked)) != 0 ||
            (ret = meta_state_get(m, txn, META_REPL_BYTES, &t.bytes)) != 0 ||
            (ret = meta_state_get(m, txn, META_REPL_FAILED, &t.failed)) != 0 ||
            (ret = meta_state_get(m, txn, META_REPL_FAILED_TOTAL, &t.failed_total)) != 0 ||
            (ret = meta_state_get(m, txn, META_REPL_LAST_MS, &t.last_ms)) != 0 ||
            (ret = target_put(m, txn, names[0], nlen, &t)) != 0)
            return ret;
    }
    if ((ret = adopt_legacy(txn, m->repl_failed, "adopt repl_failed", names[0], nlen, &moved)) != 0)
        return ret;
    if (moved > 0 && st.ms_entries > 0) {
        /* legacy entries beside target state: written by an older `repld --retry-failed`; count them */
        replog_target_t t;
        if ((ret = target_get(m, txn, names[0], nlen, &t)) == 0) {
            t.failed += moved;
            ret = target_put(m, txn, names[0], nlen, &t);
        }
        if (ret != 0 && ret != CIO_ENOTFOUND)
            return ret;
    }
    if ((ret = adopt_legacy(txn, m->repl_retry, "adopt repl_retry", names[0], nlen, &moved)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        replog_target_t t;
        nlen = strlen(names[i]);
        if ((ret = target_get(m, txn, names[i], nlen, &t)) == CIO_ENOTFOUND) {
            memset(&t, 0, sizeof(t));
            t.cursor = point; /* a new target: sent what the log still holds */
            ret = target_put(m, txn, names[i], nlen, &t);
        }
        if (ret != 0)
            return ret;
    }
    for (;;) {
        stale_ctx_t sc;
        uint64_t failed, retry, f;
        char cur[24];
        memset(&sc, 0, sizeof(sc));
        sc.names = names;
        sc.n = n;
        if ((ret = replog_targets_foreach(m, txn, find_stale, &sc)) < 0)
            return ret;
        if (ret == 0)
            break;
        nlen = strlen(sc.stale);
        MDB_val k = {nlen, sc.stale};
        if ((rc = mdb_del(txn, m->repl_targets, &k, NULL)) != 0)
            return meta_err(rc, "mdb_del(repl_targets)");
        if ((ret = drop_entries(txn, m->repl_failed, "drop repl_failed", sc.stale, nlen, &failed)) != 0 ||
            (ret = drop_entries(txn, m->repl_retry, "drop repl_retry", sc.stale, nlen, &retry)) != 0 ||
            (ret = syncrec_del(m, txn, sc.stale, nlen)) != 0 || (ret = meta_state_get(m, txn, META_REPL_FAILED, &f)) != 0 ||
            (ret = meta_state_put(m, txn, META_REPL_FAILED, f > failed ? f - failed : 0)) != 0)
            return ret;
        snprintf(cur, sizeof(cur), "%" PRIu64, sc.st.cursor);
        log_msg(LOG_LVL_WARN, "forgetting the replication state of a target no longer configured", "target", sc.stale, "cursor",
                cur, NULL);
        gone++;
    }
    if (forgotten != NULL)
        *forgotten = gone;
    return trim(m, txn);
}

/* ---- retiring events ---- */

typedef struct {
    uint64_t events, bytes;
} passed_t;

static int count_passed(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    passed_t *p = ctx;
    logrec_t r;
    p->events++;
    if (logrec_decode(rec, len, &r) == 0 && r.op == LOGREC_PUT)
        p->bytes += r.size;
    return 0;
}

typedef struct {
    uint64_t to;
    passed_t *p;
} upto_t;

static int count_upto(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    upto_t *u = ctx;
    return seq > u->to ? 1 : count_passed(u->p, seq, rec, len);
}

int replog_target_advance(meta_t *m, MDB_txn *txn, const char *name, uint64_t cursor)
{
    replog_target_t t;
    passed_t p = {0, 0};
    size_t nlen;
    int ret;

    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    if ((ret = target_get(m, txn, name, nlen, &t)) != 0)
        return ret;
    if (cursor <= t.cursor)
        return 0;
    upto_t u = {cursor, &p};
    if ((ret = replog_scan(m, txn, t.cursor + 1, count_upto, &u)) != 0)
        return ret;
    t.cursor = cursor;
    t.ahead_events += p.events;
    t.ahead_bytes += p.bytes;
    if ((ret = target_put(m, txn, name, nlen, &t)) != 0)
        return ret;
    return trim(m, txn);
}

int replog_target_count(meta_t *m, MDB_txn *txn, const char *name, uint64_t events, uint64_t bytes, uint64_t skipped,
                        int64_t last_ms)
{
    replog_target_t t;
    size_t nlen;
    int ret;

    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    if ((ret = target_get(m, txn, name, nlen, &t)) != 0)
        return ret;
    t.acked += events;
    t.bytes += bytes;
    t.skipped += skipped;
    if (last_ms > 0)
        t.last_ms = (uint64_t)last_ms;
    if ((ret = target_put(m, txn, name, nlen, &t)) != 0 || (ret = meta_state_add(m, txn, META_REPL_ACKED, (int64_t)events)) != 0 ||
        (ret = meta_state_add(m, txn, META_REPL_BYTES, (int64_t)bytes)) != 0)
        return ret;
    return last_ms > 0 ? meta_state_put(m, txn, META_REPL_LAST_MS, (uint64_t)last_ms) : 0;
}

int replog_retry_scan(meta_t *m, MDB_txn *txn, const char *name, replog_visit_cb cb, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t kb[TKEY_MAX];
    size_t nlen;
    int rc, ret = 0;

    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    if ((rc = mdb_cursor_open(txn, m->repl_retry, &cur)) != 0)
        return meta_err(rc, "scan repl_retry");
    k.mv_size = tkey(kb, name, nlen, 0);
    k.mv_data = kb;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *kn;
        size_t kl;
        uint64_t seq;
        if (tkey_split(&k, &kn, &kl, &seq) != 0 || kl != nlen || memcmp(kn, name, nlen) != 0) {
            rc = MDB_NOTFOUND;
            break;
        }
        if ((ret = cb(ctx, seq, v.mv_data, v.mv_size)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "scan repl_retry");
    mdb_cursor_close(cur);
    return ret < 0 ? ret : 0;
}

int replog_retry_done(meta_t *m, MDB_txn *txn, const char *name, uint64_t seq)
{
    uint8_t kb[TKEY_MAX];
    size_t nlen;
    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    MDB_val k = {tkey(kb, name, nlen, seq), kb};
    int rc = mdb_del(txn, m->repl_retry, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(repl_retry)");
}

/* ---- failed events ---- */

int replog_fail(meta_t *m, MDB_txn *txn, const char *name, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts,
                const char *error, int64_t now_ms)
{
    size_t elen = strlen(error), nlen;
    uint8_t kb[TKEY_MAX];
    replog_target_t t;
    MDB_val k, v;
    int rc, ret;

    if (name_ok(name, &nlen) != 0)
        return CIO_EINVAL;
    if ((ret = target_get(m, txn, name, nlen, &t)) != 0)
        return ret;
    if (elen > REPLOG_ERROR_MAX)
        elen = REPLOG_ERROR_MAX;
    k.mv_size = tkey(kb, name, nlen, seq);
    k.mv_data = kb;
    v.mv_size = 4 + 8 + 2 + elen + rec_len;
    if ((rc = mdb_put(txn, m->repl_failed, &k, &v, MDB_RESERVE)) != 0)
        return meta_err(rc, "mdb_put(repl_failed)");
    uint8_t *p = v.mv_data;
    be_put(p, attempts, 4);
    be_put(p + 4, (uint64_t)now_ms, 8);
    be_put(p + 12, elen, 2);
    memcpy(p + 14, error, elen);
    memcpy(p + 14 + elen, rec, rec_len);
    t.failed++;
    t.failed_total++;
    if ((ret = target_put(m, txn, name, nlen, &t)) != 0 || (ret = replog_retry_done(m, txn, name, seq)) != 0 ||
        (ret = meta_state_add(m, txn, META_REPL_FAILED, 1)) != 0)
        return ret;
    return meta_state_add(m, txn, META_REPL_FAILED_TOTAL, 1);
}

static int decode_failed(const MDB_val *k, const MDB_val *v, replog_failed_t *e)
{
    const uint8_t *p = v->mv_data;
    if (tkey_split(k, &e->target, &e->target_len, &e->seq) != 0 || v->mv_size < 14)
        return CIO_EPROTO;
    e->attempts = (uint32_t)be_get(p, 4);
    e->failed_at_ms = (int64_t)be_get(p + 4, 8);
    e->error_len = (size_t)be_get(p + 12, 2);
    if (v->mv_size < 14 + e->error_len)
        return CIO_EPROTO;
    e->error = (const char *)p + 14;
    e->rec = (const char *)p + 14 + e->error_len;
    e->rec_len = v->mv_size - 14 - e->error_len;
    return 0;
}

static int is_target(const replog_failed_t *e, const char *name)
{
    return name == NULL || (e->target_len == strlen(name) && memcmp(e->target, name, e->target_len) == 0);
}

int replog_failed_foreach(meta_t *m, MDB_txn *txn, const char *name, int (*fn)(void *ctx, const replog_failed_t *e), void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        replog_failed_t e;
        if ((ret = decode_failed(&k, &v, &e)) != 0)
            break;
        if (is_target(&e, name) && (ret = fn(ctx, &e)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_failed)");
    mdb_cursor_close(cur);
    return ret;
}

/* Takes `n` requeued entries off target name's failed count (a legacy entry's target, "", has no state). */
static int uncount_failed(meta_t *m, MDB_txn *txn, const char *name, size_t nlen, uint64_t n)
{
    replog_target_t t;
    uint64_t f;
    int ret;
    if (nlen > 0) {
        if ((ret = target_get(m, txn, name, nlen, &t)) != 0 && ret != CIO_ENOTFOUND)
            return ret;
        if (ret == 0) {
            t.failed = t.failed > n ? t.failed - n : 0;
            if ((ret = target_put(m, txn, name, nlen, &t)) != 0)
                return ret;
        }
    }
    if ((ret = meta_state_get(m, txn, META_REPL_FAILED, &f)) != 0)
        return ret;
    return meta_state_put(m, txn, META_REPL_FAILED, f > n ? f - n : 0);
}

int replog_requeue_failed(meta_t *m, MDB_txn *txn, const char *name, uint64_t *moved)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;
    char owner[REPLOG_TARGET_NAME_MAX + 1];
    size_t olen = 0;
    uint64_t run = 0; /* entries moved of target `owner`, not yet uncounted */

    *moved = 0;
    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;) {
        replog_failed_t e;
        if ((ret = decode_failed(&k, &v, &e)) != 0)
            break;
        if (!is_target(&e, name)) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (run > 0 && (e.target_len != olen || memcmp(e.target, owner, olen) != 0)) {
            if ((ret = uncount_failed(m, txn, owner, olen, run)) != 0)
                break;
            run = 0;
        }
        olen = e.target_len;
        memcpy(owner, e.target, olen);
        owner[olen] = '\0';
        MDB_val rv = {e.rec_len, (void *)e.rec};
        if ((rc = mdb_put(txn, m->repl_retry, &k, &rv, 0)) != 0 || (rc = mdb_cursor_del(cur, 0)) != 0) {
            ret = meta_err(rc, "requeue failed event");
            break;
        }
        (*moved)++;
        run++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* after a delete: the entry that followed it */
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_failed)");
    mdb_cursor_close(cur);
    if (ret == 0 && run > 0)
        ret = uncount_failed(m, txn, owner, olen, run);
    return ret;
}
