/* replstat.c - replication status and metrics from LMDB and a live repld. */
#include <inttypes.h>
#include <string.h>
#include "common/clock.h"
#include "common/date.h"
#include "common/replog.h"
#include "common/replstat.h"

const double replstat_lat_bounds[REPLSTAT_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

typedef struct {
    uint64_t queued, acked, failed, failed_total, last_ms, bytes, pending, pending_bytes, head;
    int64_t oldest_ms; /* mtime of the oldest record still in the log, 0 when empty */
} figures_t;

static int oldest(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    logrec_t r;
    if (logrec_decode(rec, len, &r) == 0)
        *(int64_t *)ctx = r.mtime_ms;
    return 1;
}

static int load(meta_t *m, figures_t *f)
{
    MDB_txn *txn;
    uint64_t records = 0, cursor = 0;
    int rc, ret;

    memset(f, 0, sizeof(*f));
    if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin");
    if ((ret = meta_state_get(m, txn, META_LOG_COUNT, &f->queued)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_ACKED, &f->acked)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_FAILED, &f->failed)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_FAILED_TOTAL, &f->failed_total)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_LAST_MS, &f->last_ms)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_BYTES, &f->bytes)) != 0 || (ret = replog_cursor(m, txn, &cursor)) != 0 ||
        (ret = meta_state_get(m, txn, META_LOG_PENDING_BYTES, &f->pending_bytes)) != 0 ||
        (ret = replog_stats(m, txn, &f->head, &records)) != 0)
        goto done;
    f->pending = records;
    if (f->head < cursor)
        f->head = cursor; /* the log was trimmed up to the cursor */
    if (replog_scan(m, txn, 0, oldest, &f->oldest_ms) != 0)
        f->oldest_ms = 0; /* the age is a hint: the counters above still answer */
done:
    mdb_txn_abort(txn);
    return ret;
}

int replstat_json(meta_t *m, int enabled, const replstat_live_t *live, buf_t *out)
{
    figures_t f;
    char ts[DATE_ISO8601_LEN + 1];
    int ret;

    if ((ret = load(m, &f)) != 0)
        return ret;
    double age = f.oldest_ms > 0 ? (clock_wall_ms() - f.oldest_ms) / 1000.0 : 0;
    if (age < 0)
        age = 0;
    buf_printf(out,
               "{\"enabled\":%s,\"mode\":\"async\",\"repld\":\"%s\",\"events_queued\":%" PRIu64 ",\"events_replicated\":%" PRIu64
               ",\"events_failed\":%" PRIu64 ",\"last_replication\":",
               enabled ? "true" : "false",
               live != NULL ? "running"
               : enabled    ? "down"
                            : "off",
               f.queued, f.acked, f.failed);
    if (f.last_ms > 0) {
        date_iso8601((int64_t)f.last_ms, ts);
        buf_printf(out, "\"%s\"", ts);
    } else {
        buf_puts(out, "null");
    }
    buf_printf(out,
               ",\"events_pending\":%" PRIu64 ",\"bytes_pending\":%" PRIu64
               ",\"oldest_pending_age_seconds\":%.3f,\"lag_seconds\":%.3f"
               ",\"bytes_replicated\":%" PRIu64 ",\"log_head_seq\":%" PRIu64 ",\"log_pending\":%" PRIu64,
               f.pending, f.pending_bytes, age, age, f.bytes, f.head, f.pending);
    if (live != NULL) {
        const char *state = live->remote_state == 1 ? "up" : live->remote_state == 2 ? "backing_off" : "unknown";
        buf_puts(out, ",\"remote\":{\"url\":");
        buf_json_str(out, live->remote_url, strlen(live->remote_url));
        buf_printf(out, ",\"state\":\"%s\",\"last_error\":", state);
        buf_json_str(out, live->remote_error, strlen(live->remote_error));
        buf_printf(out, ",\"retry_in_seconds\":%.1f},\"workers\":[", live->retry_in_seconds);
        for (unsigned w = 0; w < live->nworkers && w < REPLSTAT_WORKERS_MAX; w++)
            buf_printf(out, "%s{\"id\":%u,\"state\":\"%s\",\"events\":%zu}", w ? "," : "", w,
                       live->workers[w].busy ? "sending" : "idle", live->workers[w].events);
        buf_puts(out, "]");
    } else {
        buf_puts(out, ",\"remote\":null,\"workers\":[]");
    }
    buf_puts(out, "}\n");
    return out->err;
}

int replstat_metrics(meta_t *m, const replstat_live_t *live, buf_t *out)
{
    figures_t f;
    int ret;

    if ((ret = load(m, &f)) != 0)
        return ret;
    double age = f.oldest_ms > 0 ? (clock_wall_ms() - f.oldest_ms) / 1000.0 : 0;
    buf_printf(out,
               "# HELP comio_replication_pending_events Log records not yet acknowledged by the replica.\n"
               "# TYPE comio_replication_pending_events gauge\ncomio_replication_pending_events %" PRIu64 "\n"
               "# HELP comio_replication_pending_bytes Object bytes of the PUT events not yet acknowledged.\n"
               "# TYPE comio_replication_pending_bytes gauge\ncomio_replication_pending_bytes %" PRIu64 "\n"
               "# HELP comio_replication_lag_seconds Age of the oldest event not yet acknowledged (0 when caught up).\n"
               "# TYPE comio_replication_lag_seconds gauge\ncomio_replication_lag_seconds %.3f\n"
               "# HELP comio_replication_events_replicated_total Events the replica acknowledged (applied or already held).\n"
               "# TYPE comio_replication_events_replicated_total counter\ncomio_replication_events_replicated_total %" PRIu64 "\n"
               "# HELP comio_replication_events_failed_total Events recorded as failed after every attempt.\n"
               "# TYPE comio_replication_events_failed_total counter\ncomio_replication_events_failed_total %" PRIu64 "\n"
               "# HELP comio_replication_failed_events Events in the failed table now (repld --list-failed).\n"
               "# TYPE comio_replication_failed_events gauge\ncomio_replication_failed_events %" PRIu64 "\n"
               "# HELP comio_replication_bytes_total Object bytes of the PUT events the replica acknowledged.\n"
               "# TYPE comio_replication_bytes_total counter\ncomio_replication_bytes_total %" PRIu64 "\n"
               "# HELP comio_replication_remote_up 1 when the last batch reached the replica.\n"
               "# TYPE comio_replication_remote_up gauge\ncomio_replication_remote_up %d\n",
               f.pending, f.pending_bytes, age < 0 ? 0 : age, f.acked, f.failed_total, f.failed, f.bytes,
               live != NULL && live->remote_state == 1);
    if (live != NULL) {
        uint64_t cum = 0;
        buf_puts(out, "# HELP comio_replication_batch_duration_seconds Round trip of a batch to the replica.\n"
                      "# TYPE comio_replication_batch_duration_seconds histogram\n");
        for (size_t i = 0; i < REPLSTAT_LAT_BUCKETS; i++) {
            cum += live->lat_counts[i];
            buf_printf(out, "comio_replication_batch_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", replstat_lat_bounds[i],
                       cum);
        }
        cum += live->lat_counts[REPLSTAT_LAT_BUCKETS];
        buf_printf(out,
                   "comio_replication_batch_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                   "comio_replication_batch_duration_seconds_sum %.6f\ncomio_replication_batch_duration_seconds_count %" PRIu64
                   "\n",
                   cum, live->lat_sum, live->lat_n);
    }
    return out->err;
}
