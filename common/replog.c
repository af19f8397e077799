/* replog.c - the replication log: records, cursor and trimming, failed and re-driven events. */
#include <string.h>
#include <unistd.h>
#include "common/be.h"
#include "common/replog.h"

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

int replog_retry_scan(meta_t *m, MDB_txn *txn, replog_visit_cb cb, void *ctx)
{
    return scan_table(txn, m->repl_retry, "scan repl_retry", 0, cb, ctx);
}

int replog_cursor(meta_t *m, MDB_txn *txn, uint64_t *cursor)
{
    return meta_state_get(m, txn, META_REPL_CURSOR, cursor);
}

/* ---- retiring events ---- */

int replog_advance(meta_t *m, MDB_txn *txn, uint64_t cursor, uint64_t trimmed_bytes)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t pending;
    int rc, ret;

    if ((rc = mdb_cursor_open(txn, m->replog, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(replog)");
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8 && be_get(k.mv_data, 8) <= cursor)
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_err(rc, "trim replog");
    if ((ret = meta_state_put(m, txn, META_REPL_CURSOR, cursor)) != 0 || trimmed_bytes == 0)
        return ret;
    if ((ret = meta_state_get(m, txn, META_LOG_PENDING_BYTES, &pending)) != 0)
        return ret;
    return meta_state_put(m, txn, META_LOG_PENDING_BYTES, pending > trimmed_bytes ? pending - trimmed_bytes : 0);
}

int replog_count_acked(meta_t *m, MDB_txn *txn, uint64_t events, uint64_t bytes, int64_t last_ms)
{
    int ret;
    if ((ret = meta_state_add(m, txn, META_REPL_ACKED, (int64_t)events)) != 0 ||
        (ret = meta_state_add(m, txn, META_REPL_BYTES, (int64_t)bytes)) != 0)
        return ret;
    return last_ms > 0 ? meta_state_put(m, txn, META_REPL_LAST_MS, (uint64_t)last_ms) : 0;
}

int replog_retry_done(meta_t *m, MDB_txn *txn, uint64_t seq)
{
    uint8_t kb[8];
    be_put(kb, seq, 8);
    MDB_val k = {8, kb};
    int rc = mdb_del(txn, m->repl_retry, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(repl_retry)");
}

/* ---- failed events ---- */

int replog_fail(meta_t *m, MDB_txn *txn, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts, const char *error,
                int64_t now_ms)
{
    size_t elen = strlen(error);
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    int rc, ret;

    if (elen > REPLOG_ERROR_MAX)
        elen = REPLOG_ERROR_MAX;
    be_put(kb, seq, 8);
    v.mv_size = 4 + 8 + 2 + elen + rec_len;
    if ((rc = mdb_put(txn, m->repl_failed, &k, &v, MDB_RESERVE)) != 0)
        return meta_err(rc, "mdb_put(repl_failed)");
    uint8_t *p = v.mv_data;
    be_put(p, attempts, 4);
    be_put(p + 4, (uint64_t)now_ms, 8);
    be_put(p + 12, elen, 2);
    memcpy(p + 14, error, elen);
    memcpy(p + 14 + elen, rec, rec_len);
    if ((ret = replog_retry_done(m, txn, seq)) != 0 || (ret = meta_state_add(m, txn, META_REPL_FAILED, 1)) != 0)
        return ret;
    return meta_state_add(m, txn, META_REPL_FAILED_TOTAL, 1);
}

static int decode_failed(const MDB_val *k, const MDB_val *v, replog_failed_t *e)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != 8 || v->mv_size < 14)
        return CIO_EPROTO;
    e->seq = be_get(k->mv_data, 8);
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

int replog_failed_foreach(meta_t *m, MDB_txn *txn, int (*fn)(void *ctx, const replog_failed_t *e), void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        replog_failed_t e;
        if ((ret = decode_failed(&k, &v, &e)) != 0 || (ret = fn(ctx, &e)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_failed)");
    mdb_cursor_close(cur);
    return ret;
}

int replog_requeue_failed(meta_t *m, MDB_txn *txn, uint64_t *moved)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    *moved = 0;
    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        replog_failed_t e;
        if ((ret = decode_failed(&k, &v, &e)) != 0)
            break;
        MDB_val rv = {e.rec_len, (void *)e.rec};
        if ((rc = mdb_put(txn, m->repl_retry, &k, &rv, 0)) != 0 || (rc = mdb_cursor_del(cur, 0)) != 0) {
            ret = meta_err(rc, "requeue failed event");
            break;
        }
        (*moved)++;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_failed)");
    mdb_cursor_close(cur);
    if (ret == 0)
        ret = meta_state_put(m, txn, META_REPL_FAILED, 0);
    return ret;
}
