/* meta.h - storaged's own tables in the site's environment (common/meta.h):
 * buckets, pending extents, and a replica's tombstones and purges.
 *
 *   "buckets"  name -> meta_bucket_t
 *   "pending"  u64 BE offset -> u64 BE length: extents allocated for writes
 *              in flight, reserved for small writes (alloc_reserve) or
 *              released while readers may still use them; all are returned
 *              to the free map at start-up
 *   "tombstones" objkey -> version, origin and time of the last DELETE of a
 *              key (made here or applied from another site), or of an
 *              applied object a local write replaced on a format-1 store;
 *              with the empty key, of the last DELETE of a bucket
 *   "purges"   bucket -> version and origin of the last PURGE of a bucket
 * The records of "buckets", "tombstones" and "purges" (meta_bucket_t,
 * meta_tomb_t, purge versions) and their single-key get/put/del are in
 * common/meta.h, since repld's full sync reads them too.
 * Every function taking a txn leaves commit/abort to the caller. LMDB errors
 * are logged and returned as CIO_EDB or CIO_EMAPFULL (meta_err). */
#ifndef COMIO_META_H
#define COMIO_META_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <lmdb.h>
#include "common/alloc.h"
#include "common/err.h"
#include "common/hlc.h"
#include "common/meta.h"

/* Opens (creating what is missing, upgrading an older format) the
 * environment in directory `dir` with `map_size` bytes of map, every table,
 * and the allocator's (m->alloc). `site_id` is this site's (meta_open_site).
 * On failure writes a reason into err. Close with meta_close. */
int meta_open(meta_t *m, const char *dir, uint64_t map_size, const char *site_id, char *err, size_t errlen) CIO_MUST_CHECK;

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

/* ---- versions, tombstones and purges (docs/replication-apply.md) ----
 * Every site applies mutations last-writer-wins by (version, origin)
 * (hlc_version_cmp). What a site knows of a key is the largest of: its
 * object's version, its tombstone's, its bucket's purge version. */

/* Removes the tombstones of bucket b's keys whose version orders before
 * `version` (a purge at `version` covers them); the bucket's own stays. */
int meta_tomb_del_older(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version) CIO_MUST_CHECK;

/* One slice of tombstone garbage collection: looks at no more than `max`
 * tombstones, starting at the position pos[0..*pos_len) (*pos_len 0: the
 * first), removes those applied at or before `cutoff_ms`, and stores in pos
 * where the next slice starts. *done is set to 1 when the slice reached the
 * last tombstone (pos is then reset to the start), else 0. *removed counts
 * what went, and *newest is raised to the largest version (hlc) among
 * them (left alone when none went): the caller keeps it as the site's
 * tombstone horizon (META_TOMB_HORIZON). `pos` is the caller's,
 * META_OBJKEY_MAX bytes. */
int meta_tomb_gc(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, uint64_t *removed,
                 uint64_t *newest, int *done) CIO_MUST_CHECK;

/* Number of tombstones (for metrics). */
int meta_tomb_count(meta_t *m, MDB_txn *txn, uint64_t *n) CIO_MUST_CHECK;

/* Walks the objects of bucket b in no particular order and removes those
 * `pick` chooses: it returns 1 to remove `o` (valid for the call only), 0 to
 * keep it, or a negative CIO code, which stops the walk and is returned (the
 * transaction may then be half-updated). Object extents, bucket and site
 * counters are the caller's. */
typedef int (*meta_obj_pick_cb)(void *ctx, const meta_obj_t *o);
int meta_obj_del_if(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_obj_pick_cb pick, void *ctx) CIO_MUST_CHECK;

#endif
