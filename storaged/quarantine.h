/* quarantine.h - the damaged extents a repair replaced (storaged/repair.h),
 * kept out of the allocator until an operator releases them.
 *
 * A block that fails its checksum may be a failing sector: an extent that
 * held one is not handed out again for new data. When a repair points an
 * object at a new extent, the old one moves here, in the same transaction:
 * it stays allocated (not free, not pending, so a restart does not reclaim
 * it either) and is recorded in the "scrub" table under QUARANTINE_PREFIX
 * and its offset (u64 BE) -> a scrubrec_quarantine_t (storaged/scrubrec.h):
 * its length and the object it held. This module is the only one that
 * writes those keys. quarantine_release gives every quarantined extent back
 * to the free map (POST /admin/scrub?release-quarantine, comio scrub
 * --release-quarantine; docs/operations.md, "Repair from the other site").
 * Invariant: a quarantined extent is referenced by no object record, and
 * lies in neither the free map nor "pending". */
#ifndef COMIO_STORAGED_QUARANTINE_H
#define COMIO_STORAGED_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/meta.h"
#include "storaged/scrubrec.h"

#define QUARANTINE_PREFIX "quarantine/"
#define QUARANTINE_SHOWN 100 /* extents listed by the status */

/* Records extent e (allocated, referenced by nothing any more) as
 * quarantined, with the object it held (`object`'s strings borrowed for the
 * call), in txn. 0, CIO_EINVAL (a string too long) or a meta_err code. */
int quarantine_add(meta_t *m, MDB_txn *txn, alloc_extent_t e, const scrubrec_damaged_t *object) CIO_MUST_CHECK;

/* The extents quarantined and their bytes, read in txn. 0 or a meta_err code. */
int quarantine_totals(meta_t *m, MDB_txn *txn, uint64_t *extents, uint64_t *bytes) CIO_MUST_CHECK;

/* Appends ,"quarantine":{"extents":N,"bytes":N,"list":[...]} to b: the first
 * QUARANTINE_SHOWN extents (offset, length and the object they held), read
 * in txn. 0 or a meta_err code. */
int quarantine_json(meta_t *m, MDB_txn *txn, buf_t *b) CIO_MUST_CHECK;

/* Returns every quarantined extent to the free map and drops its record, in
 * txn (a write transaction). *extents and *bytes get what was released.
 * 0, CIO_EPROTO (a record that does not decode: nothing is freed of it, the
 * transaction must be aborted), CIO_EINVAL (alloc_free refused an extent:
 * abort) or a meta_err code. */
int quarantine_release(meta_t *m, MDB_txn *txn, uint64_t *extents, uint64_t *bytes) CIO_MUST_CHECK;

#endif
