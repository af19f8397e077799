/* failed.c - the failed-events table and the re-drive queue of repld. */
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include "common/be.h"
#include "common/buf.h"
#include "repld/failed.h"
#include "proto/logrec.h"

int failed_put(meta_t *m, MDB_txn *txn, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts, const char *error,
               int64_t now_ms)
{
    size_t elen = strlen(error);
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    int rc, ret;

    if (elen > FAILED_ERROR_MAX)
        elen = FAILED_ERROR_MAX;
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
    rc = mdb_del(txn, m->repl_retry, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return meta_err(rc, "mdb_del(repl_retry)");
    if ((ret = meta_state_add(m, txn, META_REPL_FAILED, 1)) != 0)
        return ret;
    return meta_state_add(m, txn, META_REPL_FAILED_TOTAL, 1);
}

static int decode_entry(const MDB_val *k, const MDB_val *v, failed_entry_t *e)
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

int failed_foreach(meta_t *m, MDB_txn *txn, int (*fn)(void *ctx, const failed_entry_t *e), void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        failed_entry_t e;
        if ((ret = decode_entry(&k, &v, &e)) != 0 || (ret = fn(ctx, &e)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(repl_failed)");
    mdb_cursor_close(cur);
    return ret;
}

int failed_requeue_all(meta_t *m, MDB_txn *txn, uint64_t *moved)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    *moved = 0;
    if ((rc = mdb_cursor_open(txn, m->repl_failed, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(repl_failed)");
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        failed_entry_t e;
        if ((ret = decode_entry(&k, &v, &e)) != 0)
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

typedef struct {
    FILE *out;
    uint64_t count;
} print_ctx_t;

static int print_one(void *ctx, const failed_entry_t *e)
{
    print_ctx_t *pc = ctx;
    logrec_t r;
    char id[1400], ts[40];
    buf_t b;
    time_t secs = (time_t)(e->failed_at_ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_init(&b, 64 * 1024);
    buf_printf(&b, "{\"seq\":%" PRIu64, e->seq);
    if (logrec_decode(e->rec, e->rec_len, &r) == 0) {
        logrec_event_id(&r, id, sizeof(id));
        buf_puts(&b, ",\"event_id\":");
        buf_json_str(&b, id, strlen(id));
        buf_printf(&b, ",\"op\":\"%s\",\"bucket\":", logrec_op_name(r.op));
        buf_json_str(&b, r.bucket, r.bucket_len);
        buf_puts(&b, ",\"key\":");
        buf_json_str(&b, r.key, r.key_len);
    }
    buf_puts(&b, ",\"error\":");
    buf_json_str(&b, e->error, e->error_len);
    buf_printf(&b, ",\"attempts\":%u,\"failed_at\":\"%s\"}\n", e->attempts, ts);
    if (b.err == 0)
        fwrite(b.data, 1, b.len, pc->out);
    buf_free(&b);
    pc->count++;
    return 0;
}

int failed_print(meta_t *m, FILE *out, uint64_t *count)
{
    print_ctx_t pc = {out, 0};
    MDB_txn *txn;
    int rc, ret;

    if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin");
    ret = failed_foreach(m, txn, print_one, &pc);
    mdb_txn_abort(txn);
    *count = pc.count;
    return ret;
}
