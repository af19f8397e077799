/* syncrec.h - each target's full sync record: the one module that reads and
 * writes the "repl_sync" table of the site's environment (common/meta.h).
 *
 *   "repl_sync"  target name -> syncrec_t, encoded: format byte (1), phase,
 *                reason, SYNCREC_COUNTERS u64 BE values (started_ms,
 *                finished_ms, then the counters in syncrec_t's order), then
 *                store_started, store_done, only_bucket, bucket (u8 length,
 *                bytes each), key and error (u16 BE length, bytes each),
 *                then optionally (records of newer builds) flags (u8),
 *                rate_limit, horizon, deleted, deleted_bytes, extra_buckets
 *                (u64 BE each)
 *
 * Invariants:
 *   - One writer: the target's sync thread in repld (repld/sync.h); a
 *     target's record goes with the rest of its state when it is no longer
 *     configured (replog_targets_open calls syncrec_del).
 *   - While a sync runs, (bucket, key) is a position up to which every
 *     event the sync shipped has been acknowledged by the target (or counted
 *     failed): every bucket whose name sorts before `bucket`, and in
 *     `bucket` every key up to and including `key` (key_len 0: none of its
 *     keys yet). It is written in the transaction that counts the batch, so
 *     a restarted sync resumes there and ships at most one batch again.
 *   - store_done is the target's store identity when its last full sync
 *     completed: a target reporting another one has a new store.
 * Every function taking a txn leaves commit/abort to the caller; LMDB errors
 * are logged and returned as CIO_EDB or CIO_EMAPFULL (meta_err). */
#ifndef COMIO_SYNCREC_H
#define COMIO_SYNCREC_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "common/err.h"
#include "common/meta.h"

#define SYNCREC_STORE_MAX 64 /* bytes of a store identity (META_STORE_ID_HEX today) */
#define SYNCREC_ERROR_MAX 512

typedef enum {
    SYNCREC_IDLE = 0,    /* never ran */
    SYNCREC_RUNNING = 1, /* a full sync is under way (resumed after a restart) */
    SYNCREC_DONE = 2,    /* the last one completed */
    SYNCREC_CANCELLED = 3,
} syncrec_phase_t;

typedef enum {
    SYNCREC_NEW_TARGET = 1,     /* the target had no sync record: new, or from a build before full sync */
    SYNCREC_STORE_REPLACED = 2, /* the target reports a store other than the one last synced */
    SYNCREC_REQUESTED = 3,      /* repld --resync */
    SYNCREC_UNLOGGED = 4,       /* this site committed writes while replication was off (META_UNLOGGED_MS) */
} syncrec_reason_t;

#define SYNCREC_COUNTERS 12

typedef struct {
    syncrec_phase_t phase;
    syncrec_reason_t reason;
    uint64_t started_ms, finished_ms;          /* wall clock; finished 0 while running */
    uint64_t scanned, scanned_bytes;           /* the source's keys looked at (objects and tombstones) and their object bytes */
    uint64_t shipped, shipped_bytes;           /* events sent and acknowledged (applied, or skipped by the target) */
    uint64_t skipped, skipped_bytes;           /* keys the target already held at the same or a later version */
    uint64_t failed, failed_bytes;             /* events the target refused for good, or after every attempt */
    uint64_t extra, extra_bytes;               /* keys only the target holds (reported, never deleted) */
    char store_started[SYNCREC_STORE_MAX + 1]; /* the target's store when this sync started ("" unknown) */
    char store_done[SYNCREC_STORE_MAX + 1];    /* the target's store when a sync last completed ("" never) */
    char only_bucket[LOGREC_BUCKET_MAX + 1];   /* the one bucket a requested resync covers; "" all */
    char bucket[LOGREC_BUCKET_MAX + 1];        /* the position (above); "" none yet */
    uint16_t key_len;
    char key[LOGREC_KEY_MAX + 1];
    char error[SYNCREC_ERROR_MAX + 1]; /* the last refusal or failure, "" none */
    /* the sync's options and what they did (the record's optional tail: absent in records of older builds, read as 0) */
    uint8_t flags;                   /* SYNCREC_F_* */
    uint64_t rate_limit;             /* bytes per second this sync may ship or hand out; 0 unlimited */
    uint64_t horizon;                /* with SYNCREC_F_HORIZON: this site's tombstone horizon when the sync began */
    uint64_t deleted, deleted_bytes; /* DELETEs shipped for keys only the target held (--delete-extra, the horizon) */
    uint64_t extra_buckets;          /* buckets only the target holds */
} syncrec_t;

#define SYNCREC_F_DRY_RUN 1      /* ships nothing: shipped and deleted count what would be sent */
#define SYNCREC_F_DELETE_EXTRA 2 /* deletes every key (and bucket) only the target holds */
#define SYNCREC_F_HORIZON                                                                                                          \
    4 /* deletes the keys only the target holds that provably were deleted here (docs/replication-apply.md)                        \
       */

/* Target `name`'s record into *r: 0, CIO_ENOTFOUND, CIO_EPROTO or a meta_err code. */
int syncrec_get(meta_t *m, MDB_txn *txn, const char *name, syncrec_t *r) CIO_MUST_CHECK;

/* Writes target `name`'s record. 0, CIO_EINVAL (a string too long) or a meta_err code. */
int syncrec_put(meta_t *m, MDB_txn *txn, const char *name, const syncrec_t *r) CIO_MUST_CHECK;

/* Removes target `name`'s record (name_len bytes); an absent one is not an error. */
int syncrec_del(meta_t *m, MDB_txn *txn, const char *name, size_t name_len) CIO_MUST_CHECK;

/* "idle", "running", "done", "cancelled"; "new target", "store replaced", "requested". */
const char *syncrec_phase_name(syncrec_phase_t p);
const char *syncrec_reason_name(syncrec_reason_t r);

#endif
