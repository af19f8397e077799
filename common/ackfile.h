/* ackfile.h - the acknowledgement file: how far each target has acknowledged the log, shared by repld and storaged.
 *
 * repld knows, per target, the highest seq below which every event of the log
 * is acknowledged by the target (its in-memory ack point, which runs ahead of
 * the persisted cursor). storaged needs it to answer writes to sync targets
 * (storaged/syncwait.h) without a round trip to repld. The file
 * ACKFILE_NAME, beside the LMDB environment, holds a header and
 * ACKFILE_SLOTS fixed slots; both daemons map it MAP_SHARED.
 *
 * Layout (host byte order; the file never leaves the machine):
 *   header (256 bytes): u64 magic, u64 layout version, u64 tick, padding
 *   slot (256 bytes each): u64 gen, u64 store_hi, u64 store_lo,
 *       u64 url_hash, u64 run_id, u64 acked, u64 nfailed,
 *       u64 failed[ACKFILE_FAILED_RING], char name[64], padding
 *
 * Failed events: an event the target refused for good moves the ack point
 * like an acknowledged one (once recorded in the failed table), but the
 * target does not hold it. repld notes its seq in the slot's ring of recent
 * failures (ackfile_note_failed) before the ack point can pass it, so a
 * waiting write can tell (ackfile_was_failed; when more than half the ring
 * was noted while it waited, it cannot, and counts as failed).
 *
 * Torn reads: every u64 is 8-byte aligned and read and written with atomic
 * (sequentially consistent) loads and stores on the mapping, which are
 * single-copy atomic on every platform ComIO builds for. A slot's stamp
 * (store identity, url hash, name, run id) is rewritten only under a
 * seqlock: `gen` is odd while the stamp changes, and a reader that sees gen
 * odd or changed across its read does not trust the slot. `acked` alone
 * moves without the seqlock: it only grows within one stamp. After each
 * move the writer pwrite()s the header's tick, so that an inotify watch
 * (IN_MODIFY) on the file sees it; stores into a mapping raise no inotify
 * event.
 *
 * Trust: a slot is used only when its name, the site's store identity and
 * the hash of the target's URL all match what the reader expects. A stale
 * slot (from an earlier run) still tells the truth: seqs are never reused in
 * one store, and an acknowledged event stays acknowledged. */
#ifndef COMIO_ACKFILE_H
#define COMIO_ACKFILE_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

#define ACKFILE_NAME "repl.acked"
#define ACKFILE_SLOTS 32 /* = CONF_TARGETS_MAX */
#define ACKFILE_NAME_MAX 63
#define ACKFILE_FAILED_RING 16
#define ACKFILE_SIZE (256 * (1 + ACKFILE_SLOTS))

typedef struct ackfile ackfile_t;

/* Who a slot belongs to: the reader's expectation, the writer's stamp. */
typedef struct {
    const char *name;  /* the target's name, at most ACKFILE_NAME_MAX bytes */
    uint64_t store_hi; /* the site's data store identity (META_STORE_ID_HI, _LO) */
    uint64_t store_lo;
    uint64_t url_hash; /* ackfile_url_hash of the target's URL */
} ackfile_owner_t;

/* Opens (creating it if needed, mode 0600, and sizing it to ACKFILE_SIZE)
 * the file ACKFILE_NAME in directory `dir` and maps it. Either daemon may
 * create it. *out is owned by the caller (ackfile_close). Returns 0,
 * CIO_ESYS (logged, with the call and strerror), CIO_EINVAL when the file
 * holds another layout, or CIO_ENOMEM. */
int ackfile_open(ackfile_t **out, const char *dir) CIO_MUST_CHECK;

/* Unmaps and closes f (NULL is fine). */
void ackfile_close(ackfile_t *f);

/* The file's path (owned by f, lives as long as f). */
const char *ackfile_path(const ackfile_t *f);

/* FNV-1a hash of a URL: a slot's stamp. */
uint64_t ackfile_url_hash(const char *url);

/* Writer: stamps slot `slot` (< ACKFILE_SLOTS) for `owner` of repld run
 * `run_id` with ack point `acked`, under the seqlock, and ticks the file. */
void ackfile_stamp(ackfile_t *f, size_t slot, const ackfile_owner_t *owner, uint64_t run_id, uint64_t acked);

/* Writer: moves slot `slot`'s ack point to `acked` (never backwards: a
 * smaller value is ignored) and ticks the file. Returns 0, or CIO_ESYS when
 * the tick could not be written (the value is published all the same;
 * readers then see it at their next poll). */
int ackfile_publish(ackfile_t *f, size_t slot, uint64_t acked) CIO_MUST_CHECK;

/* Writer: notes that event `seq` of slot `slot` was refused for good. Must
 * come before the ack point passes seq. A restamp for the same owner keeps
 * the ring; for another owner, clears it. */
void ackfile_note_failed(ackfile_t *f, size_t slot, uint64_t seq);

/* Reader: the ack point of the slot stamped for `owner`, into *acked, and
 * the number of failures noted in it so far into *nfailed (may be NULL).
 * Returns 0, or CIO_ENOTFOUND when no slot can be trusted for it (none
 * carries its stamp, or one is being stamped right now). */
int ackfile_read(const ackfile_t *f, const ackfile_owner_t *owner, uint64_t *acked, uint64_t *nfailed) CIO_MUST_CHECK;

/* Reader: 1 when event `seq` may have been refused for good by `owner`'s
 * target: it is in the ring, or more than ACKFILE_FAILED_RING / 2 failures were
 * noted since the reader saw `since` of them (it cannot tell), or the slot
 * cannot be trusted now. 0 when it was not. */
int ackfile_was_failed(const ackfile_t *f, const ackfile_owner_t *owner, uint64_t seq, uint64_t since);

#endif
