/* syncwait.h - writes to sync targets: their replies held until every sync target acknowledged them, or the fallback applied.
 *
 * storaged commits a write exactly as in async mode (the log record in the
 * same transaction); then, when at least one target has mode: sync, the
 * reply waits. repld publishes each target's ack point in the
 * acknowledgement file (common/ackfile.h); every event loop watches that
 * file with inotify and completes its waiting writes when the ack points
 * pass their seqs. Per sync target, a write is settled when:
 *   - the target's ack point is at or past the write's seq (acknowledged;
 *     or, when the target refused it for good, settled as PENDING), or
 *   - with sync_fallback: async, sync_timeout has passed since the commit,
 *     or the target is degraded (the fallback applied; the write is PENDING).
 * With sync_fallback: wait only the first settles it; a write that waited
 * sync_timeout makes the target degraded all the same (for the operator),
 * and keeps waiting. A write settled for every sync target is answered with
 * X-Comio-Replication: COMPLETED when every one acknowledged it, else
 * PENDING.
 *
 * Degraded: a target enters it when a write's sync_timeout passes unacknowledged
 * (one log line); it leaves it (one log line) at the first check (each
 * change of the file, each new write) that finds its ack point at or past
 * the highest seq this storaged had committed (syncwait_note_head) as
 * sampled at an earlier check, sampled anew every 100 ms: the target keeps
 * up with the writes to within about that. A slot of the file that cannot
 * be trusted (repld never ran, another store, another URL or name, an ack
 * point beyond the log's head) counts as "nothing acknowledged". */
#ifndef COMIO_SYNCWAIT_H
#define COMIO_SYNCWAIT_H

#include <stdint.h>
#include <h2o.h>
#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"

typedef struct syncwait syncwait_t;
typedef struct syncwait_loop syncwait_loop_t;
typedef struct syncwait_req syncwait_req_t;

/* Called on the loop once req is settled for every sync target; `completed`
 * is 1 when every one acknowledged it. */
typedef void (*syncwait_done_cb)(syncwait_req_t *req, int completed);

/* A write waiting; embedded in the caller's request state, which must stay
 * until done() or syncwait_cancel. Fields are private. */
struct syncwait_req {
    h2o_linklist_t link;
    h2o_timeout_entry_t timer;
    syncwait_loop_t *loop;
    syncwait_done_cb done;
    uint64_t seq;
    int64_t start_ms;
    uint32_t waiting;                     /* bit i: conf->targets[i] has not settled it */
    uint32_t gave_up;                     /* bit i: the fallback applied for conf->targets[i] */
    uint64_t fail_mark[CONF_TARGETS_MAX]; /* failures noted in each target's slot when the wait began (ackfile_was_failed) */
};

/* Made once for the server when replication is enabled and at least one
 * target has mode: sync; *out is NULL (and 0 returned) otherwise. `meta` is
 * the site's environment (the loops read the log's head from it), `dir` its
 * directory, store_hi/lo the site's store identity, `head` the log's
 * highest seq now. `conf` and `meta` must outlive it. Returns 0,
 * CIO_ENOMEM, or the error of ackfile_open (logged). */
int syncwait_new(syncwait_t **out, const conf_t *conf, meta_t *meta, const char *dir, uint64_t store_hi, uint64_t store_lo,
                 uint64_t head) CIO_MUST_CHECK;

/* Sets up waiting on the calling loop thread's `loop`: an inotify watch on
 * the file and the timers. NULL when out of memory or inotify fails
 * (logged): writes on this loop are then answered PENDING at once. */
syncwait_loop_t *syncwait_loop_new(syncwait_t *sw, h2o_loop_t *loop);

/* Records that seq was committed (also read from the log at each check). Any thread. */
void syncwait_note_head(syncwait_t *sw, uint64_t seq);

/* The highest seq noted. Any thread. */
uint64_t syncwait_head(syncwait_t *sw);

/* Starts waiting for seq on loop l (the caller's loop). Returns 1 when
 * req waits (done() comes later, on this loop), or 0 when it settled at
 * once, with *completed set; done() is then not called. l may be NULL (no
 * watch on this loop): settled at once as PENDING. */
int syncwait_add(syncwait_loop_t *l, syncwait_req_t *req, uint64_t seq, syncwait_done_cb done, int *completed);

/* Stops waiting (the client went away); done() is not called. */
void syncwait_cancel(syncwait_req_t *req);

/* Appends to `out` a JSON array of the sync targets' state:
 * [{"name":..,"mode":"sync","state":"sync"|"degraded","fallback":"async"|"wait",
 *   "timeout_ms":N,"acked_seq":N|null,"head_seq":N,"degraded_total":N}]. */
void syncwait_status_json(syncwait_t *sw, buf_t *out);

/* Appends the comio_replication_sync_* metrics: per sync target, degraded
 * (gauge) and the writes answered COMPLETED and PENDING (counters). */
void syncwait_metrics(syncwait_t *sw, buf_t *out);

#endif
