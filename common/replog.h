/* replog.h - the replication log: the one module that reads and writes its
 * tables, its counters and its wake-up file, for storaged and repld alike.
 *
 * Tables, in the site's environment (common/meta.h):
 *   "replog"       u64 BE seq -> log record (proto/logrec.h), in seq order
 *   "repl_targets" target name -> that target's state (replog_target_t): its
 *                  cursor and counters, REPLOG_TARGET_FIELDS u64 BE values
 *   "repl_failed"  tkey -> an event the target refused after every attempt:
 *                  u32 BE attempts | i64 BE failed_at_ms | u16 BE error
 *                  length | error | log record
 *   "repl_retry"   tkey -> log record of a failed event put back in line by
 *                  `repld --retry-failed`, to be sent to that target again
 * where tkey = u8 name length | target name | u64 BE seq. A store written
 * before targets existed holds one cursor (META_REPL_CURSOR) and entries
 * keyed by the u64 BE seq alone: replog_targets_open makes them the first
 * target's.
 * Counters ("state", META_COUNTERS): META_LAST_SEQ, META_LOG_COUNT and
 * META_LOG_PENDING_BYTES, and the META_REPL_* ones, which are the sums over
 * the targets (META_REPL_CURSOR: the trim point, the lowest cursor). Only
 * this module writes them.
 *
 * Invariants:
 *   - One writer per table. storaged alone appends records (replog_append);
 *     repld's dispatchers (one per target) alone advance their cursors, trim
 *     and record failures; `repld --retry-failed` alone moves "repl_failed"
 *     to "repl_retry", under LMDB's single writer.
 *   - A record and the object change it describes commit in one
 *     transaction: replog_append is called in the mutation's transaction,
 *     never after it.
 *   - Seqs strictly increase and are never reused (replog_next_seq). A seq
 *     is the log position only; a record's version is its (hlc, origin),
 *     which names one mutation on every site (meta_obj_current).
 *   - A target's cursor only moves over events that target acknowledged,
 *     that were superseded (the object moved on: a later event carries its
 *     state), that it is the origin of, or that are recorded in its
 *     "repl_failed" entries in the same transaction.
 *   - A record leaves the log only when every target's cursor has passed it:
 *     records are trimmed at or below the lowest cursor (META_REPL_CURSOR),
 *     in the transaction that moves it. A target no longer configured is
 *     forgotten at the next replog_targets_open, so it never holds the log.
 *   - For every target, ahead_events/ahead_bytes count the records in
 *     (trim point, cursor]: its pending events are the log's records minus
 *     ahead_events, its pending bytes META_LOG_PENDING_BYTES minus
 *     ahead_bytes.
 *   - An event leaves "repl_retry" only when acknowledged, superseded or
 *     recorded as failed again, in the transaction that says so.
 *   - A writer whose commit gives repld work calls replog_wake after the
 *     commit has returned.
 * Every function taking a txn leaves commit/abort to the caller; LMDB errors
 * are logged and returned as CIO_EDB or CIO_EMAPFULL (meta_err). */
#ifndef COMIO_REPLOG_H
#define COMIO_REPLOG_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "common/err.h"
#include "common/meta.h"
#include "proto/logrec.h"

/* A file beside the LMDB environment that is written after every commit that
 * gives repld work (log records, events put back in line). repld watches it
 * with inotify. data.mdb itself is no good for this: LMDB writes its meta page
 * (which wakes a watcher) before it publishes the transaction to readers, so
 * a reader woken by that write may still see the old state. */
#define REPLOG_WAKE_FILE "replog.wake"

#define REPLOG_ERROR_MAX 1024 /* bytes of a failed event's error kept in "repl_failed" */

/* ---- storaged: appending ---- */

/* Takes the next mutation sequence number (strictly increasing, never reused,
 * starting at 1). */
int replog_next_seq(meta_t *m, MDB_txn *txn, uint64_t *seq) CIO_MUST_CHECK;

/* Appends `r` (r->seq must exceed every seq already in the log) to "replog",
 * counts it in META_LOG_COUNT and adds a PUT's size to
 * META_LOG_PENDING_BYTES. */
int replog_append(meta_t *m, MDB_txn *txn, const logrec_t *r) CIO_MUST_CHECK;

/* Tells repld that committed work is waiting: writes one byte to
 * REPLOG_WAKE_FILE. Call after mdb_txn_commit() has returned. Never fails
 * (repld also polls once a second). */
void replog_wake(meta_t *m);

/* ---- reading ---- */

/* Reports the highest seq in the log (0 when empty) and the number of records. */
int replog_stats(meta_t *m, MDB_txn *txn, uint64_t *head, uint64_t *records) CIO_MUST_CHECK;

/* Called for each record of a scan. `rec` points into the LMDB map and is
 * valid while txn lives. Returns 0 to go on, 1 to stop, or a negative code,
 * which stops the scan and is returned. */
typedef int (*replog_visit_cb)(void *ctx, uint64_t seq, const char *rec, size_t len);

/* Calls cb for the records of the log with seq >= from, in seq order. */
int replog_scan(meta_t *m, MDB_txn *txn, uint64_t from, replog_visit_cb cb, void *ctx) CIO_MUST_CHECK;

/* The trim point (META_REPL_CURSOR): every seq at or below it is retired
 * for every target and gone from the log. */
int replog_cursor(meta_t *m, MDB_txn *txn, uint64_t *cursor) CIO_MUST_CHECK;

/* ---- targets ---- */

/* A target's state in "repl_targets". The fields are stored in this order
 * as u64 BE values; a record with fewer (written by an older build) reads
 * the missing ones as 0. */
typedef struct {
    uint64_t cursor;       /* every seq at or below it is retired for this target */
    uint64_t acked;        /* events it acknowledged, superseded ones included */
    uint64_t bytes;        /* object bytes of the PUT events it acknowledged */
    uint64_t skipped;      /* events not sent because it is their origin */
    uint64_t failed;       /* its entries in "repl_failed" now */
    uint64_t failed_total; /* events ever recorded as failed for it */
    uint64_t last_ms;      /* wall clock of its last acknowledgement, ms; 0: never */
    uint64_t ahead_events; /* log records in (trim point, cursor] */
    uint64_t ahead_bytes;  /* object bytes of the PUT records among them */
} replog_target_t;

#define REPLOG_TARGET_FIELDS 9
#define REPLOG_TARGET_NAME_MAX 255 /* bytes of a name in a key (conf caps names lower) */

/* Makes the per-target state match the configured targets names[0..n)
 * (n >= 1), at repld's start, in txn:
 *   - a store without any target state (written before targets existed)
 *     gives names[0] its cursor (META_REPL_CURSOR) and its META_REPL_*
 *     counters; entries of "repl_failed" and "repl_retry" keyed by the seq
 *     alone become names[0]'s;
 *   - a target without state starts at the trim point: it is sent what the
 *     log still holds;
 *   - a target that has state but is not in names is forgotten (its state,
 *     failed and re-drive entries and its full sync record (common/syncrec.h)
 *     are removed, each logged), so that it no
 *     longer holds the log back; then the log is trimmed to the new lowest
 *     cursor.
 * Idempotent. *forgotten (may be NULL) tells how many targets were removed.
 * Returns 0, CIO_EINVAL (n is 0 or a name is empty or too long) or a meta_err code. */
int replog_targets_open(meta_t *m, MDB_txn *txn, const char *const *names, size_t n, size_t *forgotten) CIO_MUST_CHECK;

/* Reads target `name`'s state into *t: 0, CIO_ENOTFOUND (no state), CIO_EPROTO or a meta_err code. */
int replog_target_get(meta_t *m, MDB_txn *txn, const char *name, replog_target_t *t) CIO_MUST_CHECK;

/* Calls fn for every target that has state, in name order, until fn returns
 * non-zero (returned). `name` (not NUL-terminated) and `t` are valid for the
 * call only. */
int replog_targets_foreach(meta_t *m, MDB_txn *txn,
                           int (*fn)(void *ctx, const char *name, size_t name_len, const replog_target_t *t),
                           void *ctx) CIO_MUST_CHECK;

/* ---- repld: retiring events ---- */

/* Moves target `name`'s cursor up to `cursor` (the caller vouches that every
 * event up to it is acknowledged, superseded, skipped, or recorded with
 * replog_fail in this txn), counts the records passed in its ahead_*
 * figures, then trims the records at or below the lowest cursor of all
 * targets and takes their PUT sizes off META_LOG_PENDING_BYTES.
 * CIO_ENOTFOUND when the target has no state (replog_targets_open first);
 * a cursor at or below the current one changes nothing. */
int replog_target_advance(meta_t *m, MDB_txn *txn, const char *name, uint64_t cursor) CIO_MUST_CHECK;

/* Counts for target `name`: `events` acknowledged (superseded ones
 * included) and `bytes` of PUT data, in its state and in META_REPL_ACKED /
 * META_REPL_BYTES; `skipped` events not sent (it is their origin), in its
 * state only; and the acknowledgement time `last_ms` (wall clock, ms; 0:
 * unchanged) in its state and META_REPL_LAST_MS. CIO_ENOTFOUND as above. */
int replog_target_count(meta_t *m, MDB_txn *txn, const char *name, uint64_t events, uint64_t bytes, uint64_t skipped,
                        int64_t last_ms) CIO_MUST_CHECK;

/* Calls cb for target `name`'s events of "repl_retry", in seq order. */
int replog_retry_scan(meta_t *m, MDB_txn *txn, const char *name, replog_visit_cb cb, void *ctx) CIO_MUST_CHECK;

/* Removes a re-driven event of target `name` from "repl_retry"
 * (acknowledged or superseded); an absent one is not an error. */
int replog_retry_done(meta_t *m, MDB_txn *txn, const char *name, uint64_t seq) CIO_MUST_CHECK;

/* ---- failed events ---- */

typedef struct {
    const char *target; /* the target that refused it, into the LMDB key; "" (length 0) for an entry */
    size_t target_len;  /* written before targets existed (the first target's, see replog_targets_open) */
    uint64_t seq;
    uint32_t attempts;
    int64_t failed_at_ms;
    const char *error; /* into the LMDB value: valid while the txn lives */
    size_t error_len;
    const char *rec; /* the log record, likewise */
    size_t rec_len;
} replog_failed_t;

/* Records an event as failed for target `name` in txn: writes its entry in
 * "repl_failed" (`error` cut to REPLOG_ERROR_MAX bytes), removes it from
 * "repl_retry" if it came from there, and counts it in the target's failed
 * and failed_total and in META_REPL_FAILED (entries now) and
 * META_REPL_FAILED_TOTAL. `rec` and `error` are only read during the call.
 * CIO_ENOTFOUND when the target has no state. */
int replog_fail(meta_t *m, MDB_txn *txn, const char *name, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts,
                const char *error, int64_t now_ms) CIO_MUST_CHECK;

/* Calls fn for every failed entry of target `name` (NULL: of every target,
 * target by target) in seq order until fn returns non-zero (returned). `e`
 * is valid for the call only. CIO_EPROTO for an entry that does not decode. */
int replog_failed_foreach(meta_t *m, MDB_txn *txn, const char *name, int (*fn)(void *ctx, const replog_failed_t *e),
                          void *ctx) CIO_MUST_CHECK;

/* Moves the failed entries of target `name` (NULL: of every target) to
 * "repl_retry", each to be sent again to the target that refused it, and
 * takes them off the failed counts. *moved tells how many. The caller calls
 * replog_wake after the commit. */
int replog_requeue_failed(meta_t *m, MDB_txn *txn, const char *name, uint64_t *moved) CIO_MUST_CHECK;

#endif
