/* replog.h - the replication log: the one module that reads and writes its
 * tables, its counters and its wake-up file, for storaged and repld alike.
 *
 * Tables, in the site's environment (common/meta.h):
 *   "replog"      u64 BE seq -> log record (proto/logrec.h), in seq order
 *   "repl_failed" u64 BE seq -> an event the replica refused after every
 *                 attempt: u32 BE attempts | i64 BE failed_at_ms |
 *                 u16 BE error length | error | log record
 *   "repl_retry"  u64 BE seq -> log record of a failed event put back in
 *                 line by `repld --retry-failed`
 * Counters ("state", META_COUNTERS): META_LAST_SEQ, META_LOG_COUNT and
 * META_LOG_PENDING_BYTES, and the META_REPL_* ones. Only this module writes
 * them.
 *
 * Invariants:
 *   - One writer per table. storaged alone appends records (replog_append);
 *     repld's dispatcher alone advances the cursor, trims and records
 *     failures; `repld --retry-failed` alone moves "repl_failed" to
 *     "repl_retry", under LMDB's single writer.
 *   - A record and the object change it describes commit in one
 *     transaction: replog_append is called in the mutation's transaction,
 *     never after it.
 *   - Seqs strictly increase and are never reused (replog_next_seq). A seq
 *     is the log position only; a record's version is its (hlc, origin),
 *     which names one mutation on every site (meta_obj_current).
 *   - The cursor (META_REPL_CURSOR) only moves over events acknowledged by
 *     the replica, superseded (the object moved on: a later event carries its
 *     state), or recorded in "repl_failed" in the same transaction. No event
 *     leaves the log otherwise.
 *   - Records are trimmed only at or below the cursor, in the transaction
 *     that moves it (replog_advance).
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

/* Calls cb for the events of "repl_retry", in seq order. */
int replog_retry_scan(meta_t *m, MDB_txn *txn, replog_visit_cb cb, void *ctx) CIO_MUST_CHECK;

/* The persisted cursor: every seq at or below it is acknowledged,
 * superseded or recorded as failed. */
int replog_cursor(meta_t *m, MDB_txn *txn, uint64_t *cursor) CIO_MUST_CHECK;

/* ---- repld: retiring events ---- */

/* Moves the cursor to `cursor` (above the current one; the caller vouches
 * that every event up to it is acknowledged, superseded, or recorded with
 * replog_fail in this txn), trims the records at or below it, and takes
 * `trimmed_bytes` (the sizes of the PUT records trimmed) off
 * META_LOG_PENDING_BYTES. */
int replog_advance(meta_t *m, MDB_txn *txn, uint64_t cursor, uint64_t trimmed_bytes) CIO_MUST_CHECK;

/* Counts acknowledged events: `events` more in META_REPL_ACKED (superseded
 * ones included), `bytes` more in META_REPL_BYTES, and the acknowledgement
 * time `last_ms` (wall clock, ms; 0: unchanged) in META_REPL_LAST_MS. */
int replog_count_acked(meta_t *m, MDB_txn *txn, uint64_t events, uint64_t bytes, int64_t last_ms) CIO_MUST_CHECK;

/* Removes a re-driven event from "repl_retry" (acknowledged or superseded);
 * an absent one is not an error. */
int replog_retry_done(meta_t *m, MDB_txn *txn, uint64_t seq) CIO_MUST_CHECK;

/* ---- failed events ---- */

typedef struct {
    uint64_t seq;
    uint32_t attempts;
    int64_t failed_at_ms;
    const char *error; /* into the LMDB value: valid while the txn lives */
    size_t error_len;
    const char *rec; /* the log record, likewise */
    size_t rec_len;
} replog_failed_t;

/* Records an event as failed in txn: writes its entry in "repl_failed"
 * (`error` cut to REPLOG_ERROR_MAX bytes), removes the seq from
 * "repl_retry" if it came from there, and counts it in META_REPL_FAILED
 * (entries now) and META_REPL_FAILED_TOTAL. `rec` and `error` are only read
 * during the call. */
int replog_fail(meta_t *m, MDB_txn *txn, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts, const char *error,
                int64_t now_ms) CIO_MUST_CHECK;

/* Calls fn for every failed entry in seq order until fn returns non-zero
 * (returned). `e` is valid for the call only. CIO_EPROTO for an entry that
 * does not decode. */
int replog_failed_foreach(meta_t *m, MDB_txn *txn, int (*fn)(void *ctx, const replog_failed_t *e), void *ctx) CIO_MUST_CHECK;

/* Moves every failed entry to "repl_retry" and sets META_REPL_FAILED to 0.
 * *moved tells how many. The caller calls replog_wake after the commit. */
int replog_requeue_failed(meta_t *m, MDB_txn *txn, uint64_t *moved) CIO_MUST_CHECK;

#endif
