/* replstat.h - the replication status and metrics, rendered from LMDB plus
 * what only a running repld knows. repld answers `repld --status` with it;
 * storaged uses the same code when repld does not answer, so both print the
 * same figures and counters survive restarts of either daemon.
 *
 * The seed's top-level fields describe the site: events_replicated,
 * events_failed and bytes_replicated are sums over the targets; the log's
 * figures (events_pending, bytes_pending, lag_seconds, log_*) count what the
 * log still holds, i.e. what the slowest target has not acknowledged;
 * "remote" and "workers" describe the first target. "targets" has one
 * object per configured target. Metrics: each comio_replication_* family
 * that is per target has one sample per target with a target="NAME" label,
 * beside the unlabelled site-wide sample of the seed. */
#ifndef COMIO_REPLSTAT_H
#define COMIO_REPLSTAT_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"

#define REPLSTAT_LAT_BUCKETS 12
#define REPLSTAT_WORKERS_MAX 64

/* Upper bounds (seconds) of the batch round-trip histogram buckets. */
extern const double replstat_lat_bounds[REPLSTAT_LAT_BUCKETS];

/* What a running repld knows of one target beside the figures kept in
 * LMDB. The strings are borrowed for the call they are passed to. */
typedef struct {
    const char *name;
    const char *url;
    const char *site; /* the target's site id, from its replies; "" until one named it */
    int remote_state; /* 0 unknown, 1 up, 2 backing off */
    const char *remote_error;
    double retry_in_seconds;
    unsigned nworkers;
    struct {
        int busy;
        size_t events;
    } workers[REPLSTAT_WORKERS_MAX];
    uint64_t lat_counts[REPLSTAT_LAT_BUCKETS + 1]; /* last bucket: +Inf */
    double lat_sum;
    uint64_t lat_n;
    uint64_t payload_bytes;   /* batch bytes posted before compression, since repld started */
    uint64_t wire_bytes;      /* the same POSTs' bodies as sent (compressed or not) */
    int compression_fallback; /* the target refused zstd: batches go as is for a while */
    uint64_t bandwidth_limit; /* bytes/s in force (common/bwlimit.h), 0: none */
    uint64_t bandwidth_bytes; /* bytes sent to the target, batches and its fetches from us, counted by the limiter */
    double bandwidth_rate;    /* bytes/s of that over the last second or more */
} replstat_target_live_t;

/* What a running repld adds: targets[i] is conf->targets[i]. */
typedef struct {
    size_t ntargets;
    const replstat_target_live_t *targets; /* borrowed */
} replstat_live_t;

/* Appends the status JSON (one line) to out. `conf` gives
 * replication.enabled and the targets; `live` is NULL when repld is not
 * running (the JSON then says "repld":"down"). */
int replstat_json(meta_t *m, const conf_t *conf, const replstat_live_t *live, buf_t *out) CIO_MUST_CHECK;

/* Appends the comio_replication_* metrics to out; without `live`,
 * remote_up is 0 and the latency histogram and the payload and wire byte
 * counters (which a running repld keeps) are omitted. */
int replstat_metrics(meta_t *m, const conf_t *conf, const replstat_live_t *live, buf_t *out) CIO_MUST_CHECK;

/* Appends the comio_replication_clock_skew_events_total family with value
 * `n` (META_APPLY_CLOCK_SKEW) to out: replstat_metrics does on a site that
 * ships; storaged calls it alone on a site that only applies. */
void replstat_skew_metric(uint64_t n, buf_t *out);

/* Appends the comio_replication_conflicts_total family with value `found`
 * (META_APPLY_CONFLICTS) and the comio_replication_conflict_losers gauge
 * with `kept` (conflict_count) to out, in the same places as the skew
 * family. */
void replstat_conflicts_metric(uint64_t found, uint64_t kept, buf_t *out);

#endif
