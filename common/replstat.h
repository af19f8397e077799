/* replstat.h - the replication status and metrics, rendered from LMDB plus
 * what only a running repld knows. repld answers `repld --status` with it;
 * storaged uses the same code when repld does not answer, so both print the
 * same figures and counters survive restarts of either daemon. */
#ifndef COMIO_REPLSTAT_H
#define COMIO_REPLSTAT_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/meta.h"

#define REPLSTAT_LAT_BUCKETS 12
#define REPLSTAT_WORKERS_MAX 64

/* Upper bounds (seconds) of the batch round-trip histogram buckets. */
extern const double replstat_lat_bounds[REPLSTAT_LAT_BUCKETS];

/* What a running repld adds to the figures kept in LMDB. */
typedef struct {
    const char *remote_url;
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
} replstat_live_t;

/* Appends the status JSON (one line) to out. `enabled` is replication.enabled;
 * `live` is NULL when repld is not running (the JSON then says "repld":"down"). */
int replstat_json(meta_t *m, int enabled, const replstat_live_t *live, buf_t *out) CIO_MUST_CHECK;

/* Appends the comio_replication_* metrics to out; without `live`, remote_up
 * is 0 and the latency histogram is omitted. */
int replstat_metrics(meta_t *m, const replstat_live_t *live, buf_t *out) CIO_MUST_CHECK;

#endif
