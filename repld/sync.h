/* sync.h - full sync: brings one target up to the source's whole state by a
 * scan, beside the live shipping of the log (repld/ship.h).
 *
 * One sync thread per target, next to that target's dispatcher, with its own
 * libcurl handle: live events keep flowing while it runs. A full sync walks
 * the source's buckets in name order and, in each, merge-joins the source's
 * keys (objects and tombstones, read from LMDB a page at a time in short read
 * transactions) with the target's listing (GET /admin/replication/list,
 * proto/synclist.h), and ships what the target lacks as ordinary events
 * (POST /admin/replication/batch, proto/batch.h): a PUT synthesized from the
 * object's record, a DELETE from a tombstone, a BUCKET_CREATE or
 * BUCKET_DELETE from the bucket's record, a PURGE from its purge version.
 * The replica's apply rules (versions, causal contexts) decide each event as
 * they decide live ones, so writes made during the scan need no care: an
 * older version arriving later is skipped.
 *
 * When: a target without a sync record (new, or from a build before full
 * sync), a target that reports a store identity (in batch replies and
 * listings, common/meta.h meta_store_id) other than the one it had when its
 * last full sync completed, and on request (sync_request).
 *
 * The position (bucket, key) and the counters are persisted
 * (common/syncrec.h) after every acknowledged batch: after a crash the sync
 * resumes there and ships at most one batch (the target's batch_size
 * events) again. docs/replication.md, "Full sync". */
#ifndef COMIO_REPLD_SYNC_H
#define COMIO_REPLD_SYNC_H

#include <stddef.h>
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"
#include "proto/synclist.h"

typedef struct sync sync_t;

/* Starts target tgt's sync thread. It stops once `stop_fd` turns readable
 * (never drained; repld's run-wide stop). conf, tgt and meta are borrowed
 * until sync_stop. Returns 0, CIO_ENOMEM, CIO_ESYS or curlopt_apply's error
 * (nothing is left running or allocated). */
int sync_start(sync_t **out, const conf_t *conf, const conf_target_t *tgt, meta_t *meta, int stop_fd) CIO_MUST_CHECK;

/* Waits for the thread (stop_fd must be readable by now) and frees s. NULL is harmless. */
void sync_stop(sync_t *s);

/* Tells the sync thread the store identity the target named in a batch
 * reply (NUL-terminated; "" says nothing). Any thread. */
void sync_note_store(sync_t *s, const char *store);

/* Asks for a full sync of the target (bucket NULL or "": every bucket),
 * for `repld --resync`. When none runs it is started and 0 is returned;
 * when one runs nothing changes and CIO_EAGAIN is returned. Either way
 * msg (cap bytes) says what happens or what runs, since when and where it
 * is. Any thread. */
int sync_request(sync_t *s, const char *bucket, char *msg, size_t cap) CIO_MUST_CHECK;

/* Stops the running full sync at its next batch (`repld --cancel`): 0, or
 * CIO_ENOTFOUND when none runs; msg says which. Any thread. */
int sync_cancel(sync_t *s, char *msg, size_t cap) CIO_MUST_CHECK;

/* ---- the decision for one key (pure; unit-tested) ---- */

typedef enum {
    SYNC_SKIP = 0,   /* the target holds this version, or a later one, or needs nothing (a tombstone of a key it lacks) */
    SYNC_PUT = 1,    /* ship the source's object */
    SYNC_DELETE = 2, /* ship the source's tombstone */
    SYNC_EXTRA = 3,  /* only the target holds the key: reported, never deleted */
} sync_action_t;

/* What the full sync does for a key the source holds as `src` (NULL: neither
 * object nor tombstone) and the target lists as `tgt` (NULL: absent): a
 * source object ships when the target lacks the key or holds an earlier
 * version (last-writer-wins order, hlc_version_cmp); a source tombstone
 * ships when the target holds an object of an earlier version; a key only
 * the target holds is SYNC_EXTRA. Both NULL: SYNC_SKIP. */
sync_action_t sync_decide(const meta_entry_t *src, const synclist_key_t *tgt);

#endif
