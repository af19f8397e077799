/* replstat.c - replication status and metrics from LMDB and a live repld. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "common/clock.h"
#include "common/conflict.h"
#include "common/date.h"
#include "common/replog.h"
#include "common/replstat.h"
#include "common/syncrec.h"

const double replstat_lat_bounds[REPLSTAT_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

/* One target's figures from LMDB. */
typedef struct {
    replog_target_t st;
    uint64_t pending, pending_bytes;
    int64_t oldest_ms;   /* mtime of the oldest record above its cursor, 0 when none */
    syncrec_t sync;      /* its full sync (phase SYNCREC_IDLE when none ran) */
    uint64_t sync_total; /* while it runs: the keys it will look at, estimated (0: unknown) */
} tfig_t;

typedef struct {
    uint64_t queued, acked, failed, failed_total, last_ms, bytes, pending, pending_bytes, head, skew, conflicts, kept;
    int64_t oldest_ms; /* mtime of the oldest record still in the log, 0 when empty */
    size_t n;
    tfig_t *t; /* conf->ntargets of them */
    char store_id[META_STORE_ID_HEX + 1];
} figures_t;

static int oldest(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    logrec_t r;
    if (logrec_decode(rec, len, &r) == 0)
        *(int64_t *)ctx = r.mtime_ms;
    return 1;
}

/* The keys a running sync will look at, estimated: the site's objects and
 * tombstones (those of every bucket), or one bucket's objects for a sync of
 * one bucket. 0 when unknown. */
static uint64_t sync_total(meta_t *m, MDB_txn *txn, const syncrec_t *s)
{
    uint64_t objects = 0;
    MDB_stat st;
    if (s->only_bucket[0] != '\0') {
        meta_bucket_t bk;
        return meta_bucket_get(m, txn, s->only_bucket, strlen(s->only_bucket), &bk) == 0 ? bk.objects : 0;
    }
    if (meta_state_get(m, txn, META_OBJECTS, &objects) != 0 || mdb_stat(txn, m->tombstones, &st) != 0)
        return 0;
    return objects + st.ms_entries;
}

static int load(meta_t *m, const conf_t *conf, figures_t *f)
{
    MDB_txn *txn;
    uint64_t records = 0, cursor = 0;
    int rc, ret;

    memset(f, 0, sizeof(*f));
    if (conf->ntargets > 0 && (f->t = calloc(conf->ntargets, sizeof(*f->t))) == NULL)
        return CIO_ENOMEM;
    f->n = conf->ntargets;
    if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin");
    if ((ret = meta_state_get(m, txn, META_LOG_COUNT, &f->queued)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_ACKED, &f->acked)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_FAILED, &f->failed)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_FAILED_TOTAL, &f->failed_total)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_LAST_MS, &f->last_ms)) != 0 ||
        (ret = meta_state_get(m, txn, META_REPL_BYTES, &f->bytes)) != 0 || (ret = replog_cursor(m, txn, &cursor)) != 0 ||
        (ret = meta_state_get(m, txn, META_LOG_PENDING_BYTES, &f->pending_bytes)) != 0 ||
        (ret = meta_state_get(m, txn, META_APPLY_CLOCK_SKEW, &f->skew)) != 0 ||
        (ret = meta_state_get(m, txn, META_APPLY_CONFLICTS, &f->conflicts)) != 0 || (ret = conflict_count(m, txn, &f->kept)) != 0 ||
        (ret = replog_stats(m, txn, &f->head, &records)) != 0)
        goto done;
    f->pending = records;
    if (meta_store_id(m, txn, f->store_id) != 0)
        f->store_id[0] = '\0';
    if (f->head < cursor)
        f->head = cursor; /* the log was trimmed up to the cursor */
    if (replog_scan(m, txn, 0, oldest, &f->oldest_ms) != 0)
        f->oldest_ms = 0; /* the age is a hint: the counters above still answer */
    for (size_t i = 0; i < f->n; i++) {
        tfig_t *t = &f->t[i];
        ret = replog_target_get(m, txn, conf->targets[i].name, &t->st);
        if (ret == CIO_ENOTFOUND) {
            /* repld has not started with this target yet: it will begin at the trim point */
            memset(&t->st, 0, sizeof(t->st));
            t->st.cursor = cursor;
        } else if (ret != 0) {
            goto done;
        }
        ret = 0;
        t->pending = records > t->st.ahead_events ? records - t->st.ahead_events : 0;
        t->pending_bytes = f->pending_bytes > t->st.ahead_bytes ? f->pending_bytes - t->st.ahead_bytes : 0;
        if (replog_scan(m, txn, t->st.cursor + 1, oldest, &t->oldest_ms) != 0)
            t->oldest_ms = 0;
        if (syncrec_get(m, txn, conf->targets[i].name, &t->sync) != 0)
            memset(&t->sync, 0, sizeof(t->sync)); /* none yet (or unreadable: status still answers) */
        if (t->sync.phase == SYNCREC_RUNNING)
            t->sync_total = sync_total(m, txn, &t->sync);
    }
done:
    mdb_txn_abort(txn);
    return ret;
}

static double age_of(int64_t ms)
{
    double age = ms > 0 ? (clock_wall_ms() - ms) / 1000.0 : 0;
    return age < 0 ? 0 : age;
}

static void put_time(buf_t *out, uint64_t ms)
{
    char ts[DATE_ISO8601_LEN + 1];
    if (ms > 0) {
        date_iso8601((int64_t)ms, ts);
        buf_printf(out, "\"%s\"", ts);
    } else {
        buf_puts(out, "null");
    }
}

static const char *state_name(const replstat_target_live_t *l)
{
    if (l == NULL)
        return "unknown";
    return l->remote_state == 1 ? "up" : l->remote_state == 2 ? "backing_off" : "unknown";
}

/* A target's full sync: its phase, position, counters and rate. */
static void put_sync(buf_t *out, const syncrec_t *s, uint64_t total)
{
    uint64_t end = s->phase == SYNCREC_RUNNING ? (uint64_t)clock_wall_ms() : s->finished_ms;
    double secs = s->started_ms > 0 && end > s->started_ms ? (end - s->started_ms) / 1000.0 : 0;
    buf_printf(out, "{\"phase\":\"%s\",\"reason\":", syncrec_phase_name(s->phase));
    if (s->phase == SYNCREC_IDLE)
        buf_puts(out, "null");
    else
        buf_printf(out, "\"%s\"", syncrec_reason_name(s->reason));
    buf_puts(out, ",\"bucket\":");
    buf_json_str(out, s->bucket, strlen(s->bucket));
    buf_puts(out, ",\"key\":");
    buf_json_str(out, s->key, s->key_len);
    buf_puts(out, ",\"only_bucket\":");
    if (s->only_bucket[0] != '\0')
        buf_json_str(out, s->only_bucket, strlen(s->only_bucket));
    else
        buf_puts(out, "null");
    buf_printf(out,
               ",\"objects_scanned\":%" PRIu64 ",\"bytes_scanned\":%" PRIu64 ",\"objects_shipped\":%" PRIu64
               ",\"bytes_shipped\":%" PRIu64 ",\"objects_skipped\":%" PRIu64 ",\"bytes_skipped\":%" PRIu64
               ",\"objects_failed\":%" PRIu64 ",\"bytes_failed\":%" PRIu64 ",\"objects_extra\":%" PRIu64 ",\"bytes_extra\":%" PRIu64
               ",\"started\":",
               s->scanned, s->scanned_bytes, s->shipped, s->shipped_bytes, s->skipped, s->skipped_bytes, s->failed, s->failed_bytes,
               s->extra, s->extra_bytes);
    put_time(out, s->started_ms);
    buf_puts(out, ",\"finished\":");
    put_time(out, s->finished_ms);
    buf_printf(out, ",\"duration_seconds\":%.3f,\"objects_per_second\":%.1f,\"bytes_per_second\":%.1f,\"store\":", secs,
               secs > 0 ? s->scanned / secs : 0.0, secs > 0 ? s->shipped_bytes / secs : 0.0);
    if (s->store_done[0] != '\0')
        buf_json_str(out, s->store_done, strlen(s->store_done));
    else
        buf_puts(out, "null");
    /* while it runs: how many keys in all (estimated) and the time left at the rate so far */
    buf_puts(out, ",\"objects_estimated\":");
    if (s->phase == SYNCREC_RUNNING && total > 0)
        buf_printf(out, "%" PRIu64, total > s->scanned ? total : s->scanned);
    else
        buf_puts(out, "null");
    buf_puts(out, ",\"eta_seconds\":");
    if (s->phase == SYNCREC_RUNNING && total > 0 && secs > 0 && s->scanned > 0)
        buf_printf(out, "%.1f", total > s->scanned ? (total - s->scanned) / (s->scanned / secs) : 0.0);
    else
        buf_puts(out, "null");
    buf_printf(out,
               ",\"dry_run\":%s,\"delete_extra\":%s,\"rate_limit\":%" PRIu64 ",\"objects_deleted\":%" PRIu64
               ",\"bytes_deleted\":%" PRIu64 ",\"buckets_extra\":%" PRIu64 ",\"tombstone_horizon\":%" PRIu64,
               (s->flags & SYNCREC_F_DRY_RUN) ? "true" : "false", (s->flags & SYNCREC_F_DELETE_EXTRA) ? "true" : "false",
               s->rate_limit, s->deleted, s->deleted_bytes, s->extra_buckets, s->horizon);
    buf_puts(out, ",\"last_error\":");
    buf_json_str(out, s->error, strlen(s->error));
    buf_puts(out, "}");
}

/* The bandwidth limit in force (repld's view: a SIGHUP may have changed the
 * configured one) and the rate measured by the limiter. */
static void put_bandwidth(buf_t *out, const conf_target_t *c, const replstat_target_live_t *l)
{
    buf_printf(out, ",\"bandwidth_limit_bytes_per_s\":%" PRIu64 ",\"bandwidth_bytes\":%" PRIu64 ",\"bandwidth_bytes_per_s\":%.0f",
               l != NULL ? l->bandwidth_limit : c->bandwidth_limit, l != NULL ? l->bandwidth_bytes : 0,
               l != NULL ? l->bandwidth_rate : 0.0);
}

static void put_target(buf_t *out, const conf_target_t *c, const tfig_t *t, const replstat_target_live_t *l)
{
    buf_puts(out, "{\"name\":");
    buf_json_str(out, c->name, strlen(c->name));
    buf_puts(out, ",\"url\":");
    buf_json_str(out, c->url, strlen(c->url));
    buf_puts(out, ",\"site\":");
    if (l != NULL && l->site[0] != '\0')
        buf_json_str(out, l->site, strlen(l->site));
    else
        buf_puts(out, "null");
    buf_printf(out,
               ",\"state\":\"%s\",\"cursor\":%" PRIu64 ",\"events_pending\":%" PRIu64 ",\"bytes_pending\":%" PRIu64
               ",\"lag_seconds\":%.3f,\"events_replicated\":%" PRIu64 ",\"bytes_replicated\":%" PRIu64
               ",\"events_skipped\":%" PRIu64 ",\"events_failed\":%" PRIu64 ",\"events_failed_total\":%" PRIu64
               ",\"last_replication\":",
               state_name(l), t->st.cursor, t->pending, t->pending_bytes, age_of(t->oldest_ms), t->st.acked, t->st.bytes,
               t->st.skipped, t->st.failed, t->st.failed_total);
    put_time(out, t->st.last_ms);
    buf_puts(out, ",\"last_error\":");
    if (l != NULL)
        buf_json_str(out, l->remote_error, strlen(l->remote_error));
    else
        buf_puts(out, "\"\"");
    buf_printf(out, ",\"retry_in_seconds\":%.1f,\"workers\":%u", l != NULL ? l->retry_in_seconds : 0.0,
               l != NULL ? l->nworkers : c->workers);
    buf_printf(out,
               ",\"compression\":\"%s\",\"compression_level\":%" PRIu32 ",\"compression_fallback\":%s,\"payload_bytes\":%" PRIu64
               ",\"wire_bytes\":%" PRIu64,
               c->compression == CONF_COMPRESSION_ZSTD ? "zstd" : "none", c->compression_level,
               l != NULL && l->compression_fallback ? "true" : "false", l != NULL ? l->payload_bytes : 0,
               l != NULL ? l->wire_bytes : 0);
    put_bandwidth(out, c, l);
    buf_puts(out, ",\"sync\":");
    put_sync(out, &t->sync, t->sync_total);
    buf_puts(out, "}");
}

/* The live state of target i, or NULL. */
static const replstat_target_live_t *live_of(const replstat_live_t *live, size_t i)
{
    return live != NULL && i < live->ntargets ? &live->targets[i] : NULL;
}

int replstat_json(meta_t *m, const conf_t *conf, const replstat_live_t *live, buf_t *out)
{
    figures_t f;
    int ret;

    if ((ret = load(m, conf, &f)) != 0) {
        free(f.t);
        return ret;
    }
    double age = age_of(f.oldest_ms);
    buf_printf(out,
               "{\"enabled\":%s,\"mode\":\"async\",\"repld\":\"%s\",\"events_queued\":%" PRIu64 ",\"events_replicated\":%" PRIu64
               ",\"events_failed\":%" PRIu64 ",\"last_replication\":",
               conf->repl_enabled ? "true" : "false",
               live != NULL         ? "running"
               : conf->repl_enabled ? "down"
                                    : "off",
               f.queued, f.acked, f.failed);
    put_time(out, f.last_ms);
    buf_printf(out,
               ",\"events_pending\":%" PRIu64 ",\"bytes_pending\":%" PRIu64
               ",\"oldest_pending_age_seconds\":%.3f,\"lag_seconds\":%.3f"
               ",\"bytes_replicated\":%" PRIu64 ",\"log_head_seq\":%" PRIu64 ",\"log_pending\":%" PRIu64
               ",\"clock_skew_events\":%" PRIu64 ",\"conflicts\":%" PRIu64 ",\"conflicts_kept\":%" PRIu64,
               f.pending, f.pending_bytes, age, age, f.bytes, f.head, f.pending, f.skew, f.conflicts, f.kept);
    const replstat_target_live_t *first = live_of(live, 0);
    if (first != NULL) {
        buf_puts(out, ",\"remote\":{\"url\":");
        buf_json_str(out, first->url, strlen(first->url));
        buf_printf(out, ",\"state\":\"%s\",\"last_error\":", state_name(first));
        buf_json_str(out, first->remote_error, strlen(first->remote_error));
        buf_printf(out, ",\"retry_in_seconds\":%.1f},\"workers\":[", first->retry_in_seconds);
        for (unsigned w = 0; w < first->nworkers && w < REPLSTAT_WORKERS_MAX; w++)
            buf_printf(out, "%s{\"id\":%u,\"state\":\"%s\",\"events\":%zu}", w ? "," : "", w,
                       first->workers[w].busy ? "sending" : "idle", first->workers[w].events);
        buf_puts(out, "]");
    } else {
        buf_puts(out, ",\"remote\":null,\"workers\":[]");
    }
    buf_puts(out, ",\"targets\":[");
    for (size_t i = 0; i < f.n; i++) {
        if (i > 0)
            buf_puts(out, ",");
        put_target(out, &conf->targets[i], &f.t[i], live_of(live, i));
    }
    buf_puts(out, "],\"store_id\":");
    if (f.store_id[0] != '\0')
        buf_json_str(out, f.store_id, strlen(f.store_id));
    else
        buf_puts(out, "null");
    buf_puts(out, "}\n");
    free(f.t);
    return out->err;
}

/* A sample's value: counts as integers, the rest with three decimals. */
static void put_value(buf_t *out, double v)
{
    if (v == (double)(uint64_t)v && v < 9007199254740992.0)
        buf_printf(out, " %" PRIu64 "\n", (uint64_t)v);
    else
        buf_printf(out, " %.3f\n", v);
}

/* One family: HELP, TYPE, the unlabelled site-wide sample, then one sample
 * per target (values[i] for conf->targets[i]; values NULL: none). Target
 * names need no escaping in a label: conf allows [A-Za-z0-9._-] only. */
static void family(buf_t *out, const conf_t *conf, const char *name, const char *type, const char *help, double total,
                   const double *values)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s", name, help, name, type, name);
    put_value(out, total);
    for (size_t i = 0; values != NULL && i < conf->ntargets; i++) {
        buf_printf(out, "%s{target=\"%s\"}", name, conf->targets[i].name);
        put_value(out, values[i]);
    }
}

static void histogram(buf_t *out, const char *label, const uint64_t *counts, double sum, uint64_t n)
{
    const char *name = "comio_replication_batch_duration_seconds";
    uint64_t cum = 0;
    for (size_t i = 0; i < REPLSTAT_LAT_BUCKETS; i++) {
        cum += counts[i];
        buf_printf(out, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, label, replstat_lat_bounds[i], cum);
    }
    cum += counts[REPLSTAT_LAT_BUCKETS];
    buf_printf(out, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, label, cum);
    if (label[0] == '\0')
        buf_printf(out, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, sum, name, n);
    else
        buf_printf(out, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %" PRIu64 "\n", name, (int)strlen(label) - 1, label, sum, name,
                   (int)strlen(label) - 1, label, n);
}

void replstat_skew_metric(uint64_t n, buf_t *out)
{
    buf_printf(out,
               "# HELP comio_replication_clock_skew_events_total Remote versions applied here that were more than "
               "replication.max_clock_skew ahead of the local clock.\n"
               "# TYPE comio_replication_clock_skew_events_total counter\ncomio_replication_clock_skew_events_total %" PRIu64 "\n",
               n);
}

void replstat_conflicts_metric(uint64_t found, uint64_t kept, buf_t *out)
{
    buf_printf(out,
               "# HELP comio_replication_conflicts_total Replicated events taken here that were written concurrently with "
               "the version this site held for the key (docs/replication-apply.md, Conflicts).\n"
               "# TYPE comio_replication_conflicts_total counter\ncomio_replication_conflicts_total %" PRIu64 "\n"
               "# HELP comio_replication_conflict_losers Losers of concurrent writes this site keeps (GET /admin/conflicts).\n"
               "# TYPE comio_replication_conflict_losers gauge\ncomio_replication_conflict_losers %" PRIu64 "\n",
               found, kept);
}

int replstat_metrics(meta_t *m, const conf_t *conf, const replstat_live_t *live, buf_t *out)
{
    figures_t f;
    double *v = NULL;
    int ret, all_up = live != NULL && live->ntargets > 0;

    if ((ret = load(m, conf, &f)) != 0)
        goto done;
    if (f.n > 0 && (v = calloc(f.n, sizeof(*v))) == NULL) {
        ret = CIO_ENOMEM;
        goto done;
    }
#define PER_TARGET(expr)                                                                                                           \
    for (size_t i = 0; i < f.n; i++)                                                                                               \
        v[i] = (double)(expr);
/* A family whose unlabelled total is the sum over the targets. */
#define SUMMED_FAMILY(name, type, help, expr)                                                                                      \
    do {                                                                                                                           \
        double sum_ = 0;                                                                                                           \
        PER_TARGET(expr)                                                                                                           \
        for (size_t i = 0; i < f.n; i++)                                                                                           \
            sum_ += v[i];                                                                                                          \
        family(out, conf, name, type, help, sum_, v);                                                                              \
    } while (0)
    PER_TARGET(f.t[i].pending)
    family(out, conf, "comio_replication_pending_events", "gauge",
           "Log records not yet acknowledged by the replica (unlabelled: by every target).", (double)f.pending, v);
    PER_TARGET(f.t[i].pending_bytes)
    family(out, conf, "comio_replication_pending_bytes", "gauge", "Object bytes of the PUT events not yet acknowledged.",
           (double)f.pending_bytes, v);
    PER_TARGET(age_of(f.t[i].oldest_ms))
    family(out, conf, "comio_replication_lag_seconds", "gauge", "Age of the oldest event not yet acknowledged (0 when caught up).",
           age_of(f.oldest_ms), v);
    PER_TARGET(f.t[i].st.acked)
    family(out, conf, "comio_replication_events_replicated_total", "counter",
           "Events the replica acknowledged (applied or already held).", (double)f.acked, v);
    SUMMED_FAMILY("comio_replication_events_skipped_total", "counter", "Events not sent because the target is their origin.",
                  f.t[i].st.skipped);
    PER_TARGET(f.t[i].st.failed_total)
    family(out, conf, "comio_replication_events_failed_total", "counter", "Events recorded as failed after every attempt.",
           (double)f.failed_total, v);
    PER_TARGET(f.t[i].st.failed)
    family(out, conf, "comio_replication_failed_events", "gauge", "Events in the failed table now (repld --list-failed).",
           (double)f.failed, v);
    PER_TARGET(f.t[i].st.bytes)
    family(out, conf, "comio_replication_bytes_total", "counter", "Object bytes of the PUT events the replica acknowledged.",
           (double)f.bytes, v);
    for (size_t i = 0; i < f.n; i++) {
        const replstat_target_live_t *l = live_of(live, i);
        v[i] = l != NULL && l->remote_state == 1;
        all_up = all_up && v[i] != 0;
    }
    family(out, conf, "comio_replication_remote_up", "gauge",
           "1 when the last batch reached the replica (unlabelled: every target).", all_up, v);
    /* the full sync of each target: the running one's figures, else the last one's */
#define SYNC_FAMILY(name, help, expr) SUMMED_FAMILY(name, "gauge", help, expr);
    SYNC_FAMILY("comio_replication_sync_running", "1 while a full sync of the target runs (unlabelled: how many run).",
                f.t[i].sync.phase == SYNCREC_RUNNING)
    SYNC_FAMILY("comio_replication_sync_scanned_objects", "Keys of this site the target's current or last full sync looked at.",
                f.t[i].sync.scanned)
    SYNC_FAMILY("comio_replication_sync_shipped_objects",
                "Events the target's current or last full sync shipped and had acknowledged.", f.t[i].sync.shipped)
    SYNC_FAMILY("comio_replication_sync_shipped_bytes", "Object bytes of the PUTs among them.", f.t[i].sync.shipped_bytes)
    SYNC_FAMILY("comio_replication_sync_failed_objects", "Events the target's current or last full sync could not ship.",
                f.t[i].sync.failed)
    SYNC_FAMILY("comio_replication_sync_extra_objects", "Keys only the target holds, found by its current or last full sync.",
                f.t[i].sync.extra)
    SYNC_FAMILY("comio_replication_sync_deleted_objects",
                "Keys only the target held that its current or last full sync deleted there (--delete-extra, the tombstone "
                "horizon).",
                f.t[i].sync.deleted)
#undef SYNC_FAMILY
    replstat_skew_metric(f.skew, out);
    replstat_conflicts_metric(f.conflicts, f.kept, out);
    if (live != NULL) {
        SUMMED_FAMILY("comio_replication_payload_bytes_total", "counter",
                      "Batch bytes posted to the replica before compression (every attempt), since repld started.",
                      i < live->ntargets ? live->targets[i].payload_bytes : 0);
        SUMMED_FAMILY("comio_replication_wire_bytes_total", "counter",
                      "The same batches' request bodies as sent, compressed or not (every attempt), since repld started.",
                      i < live->ntargets ? live->targets[i].wire_bytes : 0);
        SUMMED_FAMILY("comio_replication_bandwidth_limit_bytes", "gauge",
                      "The target's bandwidth_limit in force, bytes per second (0: none).",
                      i < live->ntargets ? live->targets[i].bandwidth_limit : 0);
        SUMMED_FAMILY("comio_replication_bandwidth_sent_bytes_total", "counter",
                      "Bytes sent to the target as the bandwidth limiter counts them (batches and its fetches from this site).",
                      i < live->ntargets ? live->targets[i].bandwidth_bytes : 0);
    }
#undef SUMMED_FAMILY
#undef PER_TARGET
    if (live != NULL) {
        uint64_t counts[REPLSTAT_LAT_BUCKETS + 1] = {0}, n = 0;
        double sum = 0;
        for (size_t t = 0; t < live->ntargets; t++) {
            for (size_t i = 0; i <= REPLSTAT_LAT_BUCKETS; i++)
                counts[i] += live->targets[t].lat_counts[i];
            sum += live->targets[t].lat_sum;
            n += live->targets[t].lat_n;
        }
        buf_puts(out, "# HELP comio_replication_batch_duration_seconds Round trip of a batch to the replica.\n"
                      "# TYPE comio_replication_batch_duration_seconds histogram\n");
        histogram(out, "", counts, sum, n);
        for (size_t t = 0; t < live->ntargets; t++) {
            char label[CONF_TARGET_NAME_MAX + 16];
            snprintf(label, sizeof(label), "target=\"%s\",", live->targets[t].name);
            histogram(out, label, live->targets[t].lat_counts, live->targets[t].lat_sum, live->targets[t].lat_n);
        }
    }
    ret = out->err;
done:
    free(v);
    free(f.t);
    return ret;
}
