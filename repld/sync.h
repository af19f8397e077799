/* sync.h - full sync: brings one target up to the source's whole state by a
 * scan, beside the live shipping of the log (repld/ship.h).
 *
 * One sync thread per target, next to that target's dispatcher, with its own
 * libcurl handles: live events keep flowing while it runs. The thread reads
 * and decides; its batches go through repld/syncsend.h, up to
 * syncsend_depth (min(workers, 4)) in flight at once. A full sync walks
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
 * (common/syncrec.h) as batches are acknowledged: every syncsend_depth-th
 * batch persists the position it was handed on at once it and every batch
 * handed on before it are acknowledged, so the position never covers a key
 * whose event is not. After a crash the sync resumes there and ships again
 * at most 2 x syncsend_depth - 1 batches (those in flight, and those
 * acknowledged since the last persist) of min(batch_size, 500) events.
 * docs/replication.md, "Full sync". */
#ifndef COMIO_REPLD_SYNC_H
#define COMIO_REPLD_SYNC_H

#include <stddef.h>
#include "common/buf.h"
#include "common/bwlimit.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"
#include "proto/synclist.h"

typedef struct sync sync_t;

/* What a sync found in one bucket (sync_report): the events it decided to
 * ship (with --dry-run: would ship) and the keys only the target holds. */
typedef struct {
    char name[LOGREC_BUCKET_MAX + 1];
    int target_only;                     /* a bucket only the target holds */
    uint64_t put, put_bytes;             /* PUTs of objects the target lacks or holds older */
    uint64_t del;                        /* DELETEs of the source's tombstones */
    uint64_t del_extra, del_extra_bytes; /* DELETEs of keys only the target holds (--delete-extra, the horizon) */
    uint64_t extra, extra_bytes;         /* keys only the target holds, left there */
} sync_report_bucket_t;

#define SYNC_REPORT_KEYS 1000          /* keys a report lists one by one; the rest are counted, */
#define SYNC_REPORT_BYTES (512u << 10) /* and fewer when long keys fill this much (the control socket answers 1 MiB) */

/* The report of the running or last sync (since repld started: it is not
 * persisted). Owned by the sync; sync_report renders it. */
typedef struct {
    sync_report_bucket_t *b;
    size_t nb, cap;
    buf_t keys;       /* up to SYNC_REPORT_KEYS JSON objects, comma-separated */
    uint64_t nkeys;   /* keys decided, listed or not */
    uint64_t nlisted; /* keys in `keys` */
} sync_report_t;

/* A sync's options (sync_request). */
typedef struct {
    const char *bucket; /* NULL or "": every bucket */
    int dry_run;        /* decide and report, ship nothing */
    int delete_extra;   /* delete what only the target holds: it becomes an exact copy */
    uint64_t rate;      /* bytes/s the sync may ship or hand out for fetching; 0: replication.sync_rate_limit */
} sync_opts_t;

/* Starts target tgt's sync thread. It stops once `stop_fd` turns readable
 * (never drained; repld's run-wide stop). Its batches share the target's
 * bandwidth_limit through slot `bw_slot` of `bw` (common/bwlimit.h, as
 * sender_set_bwlimit; NULL or -1: no pacing). conf, tgt, meta and bw are
 * borrowed until sync_stop. Returns 0, CIO_ENOMEM, CIO_ESYS or curlopt_apply's error
 * (nothing is left running or allocated). */
int sync_start(sync_t **out, const conf_t *conf, const conf_target_t *tgt, meta_t *meta, int stop_fd, bwlimit_t *bw,
               int bw_slot) CIO_MUST_CHECK;

/* Waits for the thread (stop_fd must be readable by now) and frees s. NULL is harmless. */
void sync_stop(sync_t *s);

/* Tells the sync thread the store identity the target named in a batch
 * reply (NUL-terminated; "" says nothing). Any thread. */
void sync_note_store(sync_t *s, const char *store);

/* Asks for a full sync of the target with options o, for `repld --resync`
 * and `comio resync`. When none runs it is started and 0 is returned;
 * when one runs nothing changes and CIO_EAGAIN is returned. Either way
 * msg (cap bytes) says what happens or what runs, since when and where it
 * is. Any thread. */
int sync_request(sync_t *s, const sync_opts_t *o, char *msg, size_t cap) CIO_MUST_CHECK;

/* Renders the running or last sync's report as JSON into out: its
 * options, per bucket what it decided, and its first SYNC_REPORT_KEYS keys
 * (docs/cli.md, comio resync --json). Any thread. */
int sync_report(sync_t *s, buf_t *out) CIO_MUST_CHECK;

/* Stops the running full sync at its next batch (`repld --cancel`): 0, or
 * CIO_ENOTFOUND when none runs; msg says which. Any thread. */
int sync_cancel(sync_t *s, char *msg, size_t cap) CIO_MUST_CHECK;

/* ---- the decision for one key (pure; unit-tested) ---- */

typedef enum {
    SYNC_SKIP = 0,   /* the target holds this version, or a later one, or needs nothing (a tombstone of a key it lacks) */
    SYNC_PUT = 1,    /* ship the source's object */
    SYNC_DELETE = 2, /* ship the source's tombstone */
    SYNC_EXTRA = 3,  /* only the target holds the key: reported, or deleted (sync_extra_deleted) */
} sync_action_t;

/* What the full sync does for a key the source holds as `src` (NULL: neither
 * object nor tombstone) and the target lists as `tgt` (NULL: absent): a
 * source object ships when the target lacks the key or holds an earlier
 * version (last-writer-wins order, hlc_version_cmp); a source tombstone
 * ships when the target holds an object of an earlier version; a key only
 * the target holds is SYNC_EXTRA. Both NULL: SYNC_SKIP. */
sync_action_t sync_decide(const meta_entry_t *src, const synclist_key_t *tgt);

/* Whether a key only the target holds (`tgt`, SYNC_EXTRA) is deleted there:
 * with --delete-extra (delete_extra) every object; else one this site wrote
 * (origin `site`) at a version older than this site's tombstone horizon
 * (`horizon`, META_TOMB_HORIZON; 0: nothing collected), which this site
 * provably deleted (docs/replication-apply.md, "Tombstone horizon"). A
 * tombstone is never deleted. The DELETE shipped has version tgt->hlc + 1,
 * this site's origin, and the target's version as parent and context. */
int sync_extra_deleted(const synclist_key_t *tgt, const char *site, size_t site_len, uint64_t horizon, int delete_extra);

#endif
