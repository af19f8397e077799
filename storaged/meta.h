/* meta.h - storaged's LMDB environment: buckets, object metadata, the
 * replication log, pending extents and counters.
 *
 * Databases (all in one environment, so one transaction covers them):
 *   "buckets"  name -> meta_bucket_t
 *   "objects"  objkey(bucket, key) -> meta_obj_t (see meta_objkey); the
 *              record's format byte tells an object written here (1) from
 *              one a replica applied from its primary (2)
 *   "replog"   u64 BE seq -> logrec (proto/logrec.h)
 *   "pending"  u64 BE offset -> u64 BE length: extents allocated for writes
 *              in flight, reserved for small writes (alloc_reserve) or
 *              released while readers may still use them; all are returned
 *              to the free map at start-up
 *   "state"    name -> u64 BE counter ("last_seq", "log_count", ...)
 *   "tombstones" objkey -> version and time of a DELETE applied on a replica
 *   "purges"   bucket -> version of the last PURGE applied on a replica
 *   "repl_failed" u64 BE seq -> an event repld gave up on (repld/failed.c)
 *   "repl_retry"  u64 BE seq -> a failed event put back in line by --retry-failed
 *   plus the allocator's databases (alloc.h).
 * Every function taking a txn leaves commit/abort to the caller. LMDB errors
 * are logged here and returned as CIO_EDB or CIO_EMAPFULL. */
#ifndef COMIO_META_H
#define COMIO_META_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "storaged/alloc.h"
#include "common/err.h"
#include "proto/logrec.h"

#define META_OBJKEY_MAX 480 /* below LMDB's 511-byte key limit */

typedef struct meta {
    MDB_env *env;
    MDB_dbi buckets, objects, replog, pending, state;
    MDB_dbi tombstones, purges, repl_failed, repl_retry;
    alloc_t alloc;
    int wake_fd; /* META_WAKE_FILE in the environment's directory; -1 if it could not be opened */
} meta_t;

/* A file beside the LMDB environment that is written after every commit that
 * gives repld work (log records, events put back in line). repld watches it
 * with inotify. data.mdb itself is no good for this: LMDB writes its meta page
 * (which wakes a watcher) before it publishes the transaction to readers, so
 * a reader woken by that write may still see the old state. */
#define META_WAKE_FILE "replog.wake"

typedef struct {
    uint64_t version; /* seq of the mutation that wrote it */
    uint64_t off;     /* extent in the data store */
    uint64_t alen;    /* allocated length (0 for an empty object) */
    uint64_t size;    /* object size in bytes */
    uint8_t etag[16]; /* MD5 of the body */
    int64_t mtime_ms;
    uint16_t ctype_len;
    char ctype[LOGREC_CTYPE_MAX + 1]; /* NUL-terminated */
    uint16_t key_len;                 /* the full key (filled by get and listing) */
    char key[LOGREC_KEY_MAX + 1];     /* NUL-terminated */
    int replicated;                   /* 1: applied by a replica from its primary (version is the primary's seq); 0: written here */
} meta_obj_t;

typedef struct {
    int64_t ctime_ms;
    uint64_t objects;
    uint64_t bytes;
} meta_bucket_t;

/* Tells repld that committed work is waiting: writes one byte to
 * META_WAKE_FILE. Call after mdb_txn_commit() has returned. Never fails
 * (repld also polls once a second). */
void meta_wake(meta_t *m);

/* Opens (creating) the environment in directory `dir` with `map_size` bytes of
 * map and opens every database. On failure writes a reason into err. */
int meta_open(meta_t *m, const char *dir, uint64_t map_size, char *err, size_t errlen) CIO_MUST_CHECK;

/* Opens an environment that must already exist in `dir` with every database,
 * creating nothing (no directory, file or table): for commands pointed at a
 * site's metadata, where a wrong path must fail, not make an empty site.
 * `rdonly` opens it read-only (map_size is then the file's). The allocator
 * (m->alloc) is not opened, and the wake-up file is used only if it exists.
 * Returns 0, CIO_ENOTFOUND when dir holds no environment or lacks a
 * database, CIO_EDB or CIO_EMAPFULL; on failure writes a reason that names
 * `dir` into err. */
int meta_open_existing(meta_t *m, const char *dir, uint64_t map_size, int rdonly, char *err, size_t errlen) CIO_MUST_CHECK;
void meta_close(meta_t *m);

/* Maps an LMDB return code to a CIO code, logging `what` when it is an error. */
int meta_err(int rc, const char *what);

int meta_bucket_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *out) CIO_MUST_CHECK;
int meta_bucket_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk) CIO_MUST_CHECK;
int meta_bucket_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen) CIO_MUST_CHECK;

/* Object metadata. get returns CIO_ENOTFOUND when absent. */
int meta_obj_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_obj_t *out) CIO_MUST_CHECK;
int meta_obj_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                 const meta_obj_t *o) CIO_MUST_CHECK;
int meta_obj_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen) CIO_MUST_CHECK;

/* Whether `o` is still the object that this site's own write `version` (a
 * log event's seq) made: written here, not applied from a primary, with
 * that version. A site that ships its writes and also applies a primary's
 * holds applied objects whose versions are the primary's seqs, which can
 * equal one of its own; only a local object's version names a log event.
 * Every path that asks "is the event's version still the object" (repld's
 * inline read and presign, the fetch endpoint) asks this. */
int meta_obj_current(const meta_obj_t *o, uint64_t version);

/* Calls cb for the objects of bucket b whose key starts with `prefix` and
 * sorts strictly after `after` (either may be empty), in byte order of the
 * full key, until cb returns non-zero or the bucket ends. `o` is valid for
 * the call only. `limit` is the most objects cb will take (SIZE_MAX: all):
 * keys too long to be stored whole are re-sorted in memory, and no more than
 * `limit` of them are held at once. Returns 0 or an error. */
typedef int (*meta_list_cb)(void *ctx, const meta_obj_t *o);
int meta_obj_list(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *prefix, size_t plen, const char *after,
                  size_t alen, size_t limit, meta_list_cb cb, void *ctx) CIO_MUST_CHECK;

/* The counters of the "state" table, each with the name it is stored
 * under: those names are on disk, so one is never renamed. A counter is
 * named by its enum value, so a misspelt one does not compile.
 *   X(enum value, stored name, who writes it) */
#define META_COUNTERS(X)                                                                                                           \
    X(META_LAST_SEQ, "last_seq", "the last mutation seq taken (storaged)")                                                         \
    X(META_LOG_COUNT, "log_count", "records ever appended to the log (storaged)")                                                  \
    X(META_LOG_PENDING_BYTES, "log_pending_bytes", "object bytes of the PUT records in the log (storaged adds, repld trims)")      \
    X(META_REPL_CURSOR, "repl_cursor", "every seq up to it is acknowledged or recorded as failed (repld)")                         \
    X(META_REPL_ACKED, "repl_acked", "events acknowledged by the replica or superseded (repld)")                                   \
    X(META_REPL_BYTES, "repl_bytes", "object bytes of the acknowledged PUT events (repld)")                                        \
    X(META_REPL_SUPERSEDED, "repl_superseded", "events acknowledged without sending: the object had moved on (repld)")             \
    X(META_REPL_FAILED, "repl_failed", "events in the repl_failed table now (repld)")                                              \
    X(META_REPL_FAILED_TOTAL, "repl_failed_total", "events ever recorded as failed (repld)")                                       \
    X(META_REPL_LAST_MS, "repl_last_ms", "wall clock of the last acknowledgement, ms (repld)")                                     \
    X(META_OBJECTS, "objects", "objects stored on the site (storaged)")                                                            \
    X(META_BYTES, "bytes", "bytes of the objects stored (storaged)")                                                               \
    X(META_APPLY_APPLIED, "apply_applied", "a replica's events applied (storaged)")                                                \
    X(META_APPLY_SKIPPED, "apply_skipped", "a replica's events skipped: stale or duplicate (storaged)")                            \
    X(META_APPLY_FAILED, "apply_failed", "a replica's events refused, for now or for good (storaged)")                             \
    X(META_APPLY_PERMANENT, "apply_permanent", "a replica's events refused for good (storaged)")                                   \
    X(META_STORE_ID_HI, "store_id_hi", "the data store's identity, high half (storaged)")                                          \
    X(META_STORE_ID_LO, "store_id_lo", "the data store's identity, low half (storaged)")

#define META_COUNTER_ENUM(e, name, doc) e,
typedef enum { META_COUNTERS(META_COUNTER_ENUM) META_NCOUNTERS } meta_counter_t;
#undef META_COUNTER_ENUM

/* Counters in "state". get yields 0 for an absent counter. */
int meta_state_get(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t *v) CIO_MUST_CHECK;
int meta_state_put(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t v) CIO_MUST_CHECK;
int meta_state_add(meta_t *m, MDB_txn *txn, meta_counter_t c, int64_t delta) CIO_MUST_CHECK;

/* Takes the next mutation sequence number (strictly increasing, never reused,
 * starting at 1). */
int meta_next_seq(meta_t *m, MDB_txn *txn, uint64_t *seq) CIO_MUST_CHECK;

/* Appends `r` (r->seq must exceed every seq already in the log) to "replog",
 * counts it in "log_count" and adds a PUT's size to "log_pending_bytes". */
int meta_log_append(meta_t *m, MDB_txn *txn, const logrec_t *r) CIO_MUST_CHECK;

/* Reports the highest seq in the log (0 when empty) and the number of records. */
int meta_log_stats(meta_t *m, MDB_txn *txn, uint64_t *head, uint64_t *records) CIO_MUST_CHECK;

/* Marks extent e pending (e must not overlap a pending extent). */
int meta_pending_add(meta_t *m, MDB_txn *txn, alloc_extent_t e) CIO_MUST_CHECK;

/* Unmarks e, which may be a piece of a larger pending extent (a piece of a
 * reservation): what lies either side of it stays pending. An e that is not
 * inside one pending extent gives CIO_EPROTO and changes nothing. */
int meta_pending_del(meta_t *m, MDB_txn *txn, alloc_extent_t e) CIO_MUST_CHECK;

/* Returns every pending extent to the free map and clears the reserved total
 * (start-up: nothing is in flight and nobody reads). *count and *bytes report
 * what was reclaimed. */
int meta_pending_reclaim(meta_t *m, MDB_txn *txn, uint64_t *count, uint64_t *bytes) CIO_MUST_CHECK;

/* ---- replica: tombstones and purges (docs/replication-apply.md) ----
 * A replica applies the primary's events last-writer-wins by version. What it
 * knows of a key is the highest of: the version of the object it applied, its
 * tombstone's version, its bucket's purge version. */

typedef struct {
    uint64_t version; /* the primary's version the key had: a DELETE applied here, or an applied object a local write replaced */
    int64_t time_ms;  /* when this replica applied it (local clock): garbage collection */
} meta_tomb_t;

/* Tombstone of key k in bucket b, keyed like "objects". get returns
 * CIO_ENOTFOUND when absent; del of an absent tombstone is not an error. */
int meta_tomb_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_tomb_t *out) CIO_MUST_CHECK;
int meta_tomb_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                  const meta_tomb_t *t) CIO_MUST_CHECK;
int meta_tomb_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen) CIO_MUST_CHECK;

/* Removes the tombstones of bucket b whose version is below `version` (a
 * purge at `version` covers them). */
int meta_tomb_del_older(meta_t *m, MDB_txn *txn, const char *b, size_t blen, uint64_t version) CIO_MUST_CHECK;

/* One slice of tombstone garbage collection: looks at no more than `max`
 * tombstones, starting at the position pos[0..*pos_len) (*pos_len 0: the
 * first), removes those applied at or before `cutoff_ms`, and stores in pos
 * where the next slice starts. *done is set to 1 when the slice reached the
 * last tombstone (pos is then reset to the start), else 0. *removed counts
 * what went. `pos` is the caller's, META_OBJKEY_MAX bytes. */
int meta_tomb_gc(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, uint64_t *removed,
                 int *done) CIO_MUST_CHECK;

/* Number of tombstones (for metrics). */
int meta_tomb_count(meta_t *m, MDB_txn *txn, uint64_t *n) CIO_MUST_CHECK;

/* Version of the last purge of bucket b applied here: 0 when none. */
int meta_purge_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, uint64_t *version) CIO_MUST_CHECK;
int meta_purge_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, uint64_t version) CIO_MUST_CHECK;

/* Walks the objects of bucket b in no particular order and removes those
 * `pick` chooses: it returns 1 to remove `o` (valid for the call only), 0 to
 * keep it, or a negative CIO code, which stops the walk and is returned (the
 * transaction may then be half-updated). Object extents, bucket and site
 * counters are the caller's. */
typedef int (*meta_obj_pick_cb)(void *ctx, const meta_obj_t *o);
int meta_obj_del_if(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_obj_pick_cb pick, void *ctx) CIO_MUST_CHECK;

#endif
