/* failed.h - the failed-events table and the re-drive queue of repld.
 *
 * An event the replica refused after every attempt is kept in "repl_failed"
 * (u64 BE seq -> entry below) with its log record, so nothing is lost and an
 * operator can see why. `repld --retry-failed` moves every entry to
 * "repl_retry", which the running shipper drains ahead of the log; it works
 * whether or not the daemon is running. Entry value layout:
 *   u32 BE attempts | i64 BE failed_at_ms | u16 BE error length | error | record */
#ifndef COMIO_REPLD_FAILED_H
#define COMIO_REPLD_FAILED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <lmdb.h>
#include "common/err.h"
#include "storaged/meta.h"

#define FAILED_ERROR_MAX 1024

typedef struct {
    uint64_t seq;
    uint32_t attempts;
    int64_t failed_at_ms;
    const char *error; /* into the LMDB value: valid while the txn lives */
    size_t error_len;
    const char *rec;
    size_t rec_len;
} failed_entry_t;

/* Records an event as failed in txn: writes the entry, removes the seq from
 * "repl_retry" if it came from there, and counts it in state "repl_failed"
 * (the number of entries) and "repl_failed_total". */
int failed_put(meta_t *m, MDB_txn *txn, uint64_t seq, const char *rec, size_t rec_len, uint32_t attempts, const char *error,
               int64_t now_ms) CIO_MUST_CHECK;

/* Calls fn for every failed entry in seq order. */
int failed_foreach(meta_t *m, MDB_txn *txn, int (*fn)(void *ctx, const failed_entry_t *e), void *ctx) CIO_MUST_CHECK;

/* Moves every failed entry to "repl_retry" and sets "repl_failed" to 0.
 * *moved tells how many. */
int failed_requeue_all(meta_t *m, MDB_txn *txn, uint64_t *moved) CIO_MUST_CHECK;

/* Prints the failed events as JSON lines on out (the --list-failed command). */
int failed_print(meta_t *m, FILE *out, uint64_t *count) CIO_MUST_CHECK;

#endif
