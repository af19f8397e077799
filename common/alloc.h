/* alloc.h - the extent allocator of the data store, kept in LMDB.
 *
 * The free-space map lives in two LMDB databases of the site's environment (common/meta.h), so
 * that an allocation or a free commits in the same transaction as the
 * metadata that references the extent:
 *   "free_off": key u64 big-endian offset -> value u64 length   (coalescing)
 *   "free_len": key u64 BE length || u64 BE offset -> empty       (best fit)
 * plus "alloc" holding capacity, the free byte total and the reserved byte
 * total. Offsets and lengths
 * are multiples of ALLOC_BLOCK. Free extents never touch each other (they are
 * always coalesced). All functions take a caller's transaction and never
 * commit or abort it. Numbers in "alloc" ("capacity", "free") are stored as
 * 8-byte big-endian values, like the lengths in "free_off".
 *
 * CIO_EINVAL and CIO_ENOSPC are returned before anything is written: the
 * transaction is unchanged and may still be committed. After CIO_EDB,
 * CIO_EMAPFULL or CIO_EPROTO (a malformed record in the map) the transaction
 * may be half-updated and must be aborted. */
#ifndef COMIO_ALLOC_H
#define COMIO_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "common/err.h"

#define ALLOC_BLOCK 4096u

typedef struct {
    uint64_t off; /* byte offset in the data store */
    uint64_t len; /* bytes, a multiple of ALLOC_BLOCK; 0 = no extent */
} alloc_extent_t;

typedef struct alloc {
    MDB_dbi free_off;
    MDB_dbi free_len;
    MDB_dbi state;
} alloc_t;

/* Opens (creating if needed) the allocator's databases in write txn `txn`.
 * The caller must commit `txn` for the handles to stay valid; the environment
 * needs room for three named databases (mdb_env_set_maxdbs). Returns 0,
 * CIO_EDB or CIO_EMAPFULL. */
int alloc_open(alloc_t *a, MDB_txn *txn) CIO_MUST_CHECK;

/* Sets the managed capacity (rounded down to ALLOC_BLOCK). On a new store the
 * whole range becomes free. Growing frees [old, new). Shrinking is allowed only
 * when [new, old) is entirely free; else CIO_EINVAL. Returns 0, CIO_EINVAL,
 * CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_set_capacity(alloc_t *a, MDB_txn *txn, uint64_t capacity) CIO_MUST_CHECK;

/* Rounds `bytes` up to the allocation unit (0 stays 0). `bytes` must be at
 * most UINT64_MAX - ALLOC_BLOCK + 1 (alloc_alloc checks this itself). */
uint64_t alloc_round(uint64_t bytes);

/* Allocates one contiguous extent of alloc_round(bytes) (best fit: the
 * smallest free extent that is large enough, lowest offset among equals).
 * bytes == 0 yields {0, 0} without touching the map. Returns 0, CIO_ENOSPC,
 * CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_alloc(alloc_t *a, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out) CIO_MUST_CHECK;

/* Takes exactly [off, off+len) out of the free map, when it lies wholly inside
 * one free extent (which is split around it): an allocation at a place the
 * caller chose, e.g. the slot right after a multipart upload's previous part.
 * `off` and `len` must be multiples of ALLOC_BLOCK and len > 0, else
 * CIO_EINVAL. A range that is not wholly free (in use, straddling two free
 * extents, beyond the capacity) gives CIO_ENOSPC. Both change nothing.
 * Returns 0, CIO_EINVAL, CIO_ENOSPC, CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_take(alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len) CIO_MUST_CHECK;

/* The largest free extent into *out (the lowest offset among equals is not
 * promised; {0, 0} when nothing is free), e.g. for where alloc_take should
 * start a run of extents. Returns 0, CIO_EDB or CIO_EPROTO. */
int alloc_largest(alloc_t *a, MDB_txn *txn, alloc_extent_t *out) CIO_MUST_CHECK;

/* Allocation that keeps clear of ranges a caller means for later writes
 * (multipart uploads' runs, storaged/commit_mpu.c), held in memory only: the
 * ranges are a preference, not a claim. `avoid` holds n ranges sorted by
 * offset, not overlapping, aligned to ALLOC_BLOCK (borrowed for the call);
 * they may cover free and allocated space alike. At most ALLOC_AVOID_SCAN
 * free extents overlapping them are looked at before giving up. */
#define ALLOC_AVOID_SCAN 64

/* alloc_alloc among the free space outside `avoid`: the smallest free
 * extent with a piece outside them that is large enough, the lowest such
 * piece of it. CIO_ENOSPC when there is none (the caller may then
 * alloc_alloc, which ignores them). Returns 0, CIO_ENOSPC, CIO_EDB,
 * CIO_EMAPFULL or CIO_EPROTO. */
int alloc_alloc_outside(alloc_t *a, MDB_txn *txn, uint64_t bytes, const alloc_extent_t *avoid, size_t n,
                        alloc_extent_t *out) CIO_MUST_CHECK;

/* The largest piece of free space outside `avoid` into *out ({0, 0}: none),
 * taking nothing. Returns 0, CIO_EDB or CIO_EPROTO. */
int alloc_largest_outside(alloc_t *a, MDB_txn *txn, const alloc_extent_t *avoid, size_t n, alloc_extent_t *out) CIO_MUST_CHECK;

/* Reservations: extents taken out of the free map by a caller that hands out
 * pieces of them itself, in memory, without a transaction per piece (the
 * committer's path for small PUTs, commit.h). The map only counts the bytes
 * reserved; the caller records the extents (as pending, so that a crash
 * returns them) and says when bytes leave the reservation, because an object
 * now holds them (alloc_unreserve) or they go back to the free map
 * (alloc_unreserve, then alloc_free). alloc_stats counts reserved bytes as
 * free: they hold no object.
 *
 * alloc_reserve is alloc_alloc plus adding the extent's length to the
 * reserved total; same results. */
int alloc_reserve(alloc_t *a, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out) CIO_MUST_CHECK;

/* Adds `bytes` already out of the free map (allocated, pending) to the
 * reserved total: a freed extent kept for reuse instead of freed. Returns 0,
 * CIO_EINVAL (more than is allocated), CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_reserve_held(alloc_t *a, MDB_txn *txn, uint64_t bytes) CIO_MUST_CHECK;

/* Takes `bytes` (a multiple of ALLOC_BLOCK) off the reserved total. More than
 * is reserved gives CIO_EINVAL and changes nothing. Returns 0, CIO_EINVAL,
 * CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_unreserve(alloc_t *a, MDB_txn *txn, uint64_t bytes) CIO_MUST_CHECK;

/* Sets the reserved total to 0 (start-up, once every reservation has been
 * freed); *bytes (may be NULL) gets what it was. */
int alloc_unreserve_all(alloc_t *a, MDB_txn *txn, uint64_t *bytes) CIO_MUST_CHECK;

/* Returns extent `e` to the free map, merging it with free neighbours. The
 * empty extent {0, 0} is a no-op. An extent that overlaps free space, lies
 * beyond the capacity, is not aligned to ALLOC_BLOCK, or has length 0 with a
 * nonzero offset gives CIO_EINVAL and changes nothing (double free is
 * caught). Returns 0, CIO_EINVAL, CIO_EDB, CIO_EMAPFULL or CIO_EPROTO. */
int alloc_free(alloc_t *a, MDB_txn *txn, alloc_extent_t e) CIO_MUST_CHECK;

/* Reports capacity, free bytes (reserved bytes included), number of free extents and the largest free
 * extent (any pointer may be NULL). Free bytes and capacity are O(1). `txn`
 * may be a read transaction. Returns 0, CIO_EDB or CIO_EPROTO. */
int alloc_stats(alloc_t *a, MDB_txn *txn, uint64_t *capacity, uint64_t *free_bytes, uint64_t *free_extents,
                uint64_t *largest) CIO_MUST_CHECK;

/* Called once per free extent by alloc_foreach_free; a nonzero return stops
 * the walk. `arg` is the caller's pointer, passed through. */
typedef int (*alloc_visit_t)(void *arg, alloc_extent_t e);

/* Calls `visit` for every free extent in ascending offset order, in `txn`
 * (read or write). The map must not be changed from inside `visit`. Returns
 * 0, the first nonzero value `visit` returned, CIO_EDB or CIO_EPROTO. */
int alloc_foreach_free(alloc_t *a, MDB_txn *txn, alloc_visit_t visit, void *arg) CIO_MUST_CHECK;

/* Verifies every invariant of the map in `txn` (read or write): free extents
 * aligned, inside the capacity, sorted, neither overlapping nor touching; the
 * two indexes hold exactly the same extents; the free total equals their sum;
 * no more bytes are reserved than are allocated.
 * O(n log n) in free extents: for start-up and tests, not the request path.
 * On a violation returns CIO_EPROTO and, when `msg` is not NULL, writes a
 * one-line description into msg[msglen] (always NUL-terminated). Returns 0,
 * CIO_EPROTO or CIO_EDB. */
int alloc_check(alloc_t *a, MDB_txn *txn, char *msg, size_t msglen) CIO_MUST_CHECK;

#endif
