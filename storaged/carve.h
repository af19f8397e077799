/* carve.h - extents for small PUTs, cut in memory from reserved chunks.
 *
 * Without it every PUT waits for a commit that allocates its extent before
 * its body may be written (commit.h, step 1). Instead the committer reserves
 * a chunk of the data store now and then (alloc_reserve, marked pending as a
 * whole, so that a crash returns what was not used) and offers it here;
 * submitters then cut extents for small bodies from the current chunk without
 * any transaction, and the body goes straight to an I/O thread. The extent
 * leaves the reservation in the commit that records the object.
 *
 * One chunk is cut from and one more may wait behind it, so that cutting
 * goes on while the committer reserves the next one. When the current chunk
 * is too short for a body, cutting moves on to the waiting one and keeps the
 * old remainder for the committer to free (carve_collect).
 *
 * Small extents freed by overwrites and deletes are kept here too, by size,
 * instead of going back to the free map: the committer moves them into the
 * reservation (they are pending already) and a cut of that size takes the
 * most recently kept one first. A workload that rewrites small objects then
 * costs the free map nothing.
 *
 * All functions are thread-safe. The module only keeps extents; reserving
 * and freeing them is the committer's. */
#ifndef COMIO_CARVE_H
#define COMIO_CARVE_H

#include <pthread.h>
#include <stddef.h>
#include "common/alloc.h"

#define CARVE_MAX_BYTES (1u << 20)   /* larger bodies take the allocating path: one commit is small beside their I/O */
#define CARVE_LEFTOVERS 16           /* remainders awaiting carve_collect; cutting waits for the committer beyond it */
#define CARVE_BINS 16                /* freed extents of 1 to 16 blocks are kept for reuse, */
#define CARVE_BIN_MAX 1024           /* ... at most this many of each size, */
#define CARVE_KEEP_BYTES (16u << 20) /* ... and this many bytes in all */

typedef struct {
    alloc_extent_t e[CARVE_BIN_MAX];
    size_t n;
} carve_bin_t;

typedef struct carve {
    pthread_mutex_t mu;
    alloc_extent_t cur;  /* what is left of the chunk being cut; len 0: none */
    alloc_extent_t next; /* the chunk offered to cut next; len 0: none */
    alloc_extent_t left[CARVE_LEFTOVERS];
    size_t nleft;
    int want;                     /* a cut found no chunk to move on to: the committer should offer one */
    carve_bin_t bins[CARVE_BINS]; /* bins[i]: freed extents of i + 1 blocks */
    uint64_t kept;                /* bytes in the bins */
    int cutting;                  /* carve_cut was called: small PUTs come here, so freed extents are worth keeping */
} carve_t;

void carve_init(carve_t *cv);
void carve_destroy(carve_t *cv);

/* Gives an extent of `len` bytes (a nonzero multiple of ALLOC_BLOCK): a kept
 * one of that size, else cut from the low end of the current chunk, moving
 * on to the offered one when the current one is too short. Returns 1 with the extent in *out, or 0 when no chunk has room (the
 * caller allocates in a transaction instead). *want is set to 1 when a chunk
 * should now be offered, else left alone. */
int carve_cut(carve_t *cv, uint64_t len, alloc_extent_t *out, int *want);

/* Whether a chunk should be offered: a cut moved on to the offered chunk or
 * found none, and nothing has been offered since. */
int carve_wants(carve_t *cv);

/* Offers chunk `e` (reserved and pending) to cut from once the current one
 * runs short, and clears the want. Returns 0, or CIO_EINVAL when a chunk is
 * already waiting (the caller still owns `e`). */
int carve_offer(carve_t *cv, alloc_extent_t e) CIO_MUST_CHECK;

/* How many more freed extents of `len` bytes carve_keep would take (0 for a
 * size it does not keep, and for any size before the first carve_cut: a
 * replica that only applies batches never cuts, and would only hold space
 * back), and how many more bytes in all (*bytes). Only
 * carve_keep lowers these, so a caller that is the only one keeping can count
 * on them. */
size_t carve_room(carve_t *cv, uint64_t len, uint64_t *bytes);

/* Keeps freed extent e (reserved and pending) for a cut of its size. Returns
 * 0, or CIO_EINVAL when there is no room for it (the caller still owns it). */
int carve_keep(carve_t *cv, alloc_extent_t e) CIO_MUST_CHECK;

/* Moves up to `max` of the remainders no longer cut from into out[] and
 * returns how many. With `all`, the current and the offered chunk (what is
 * left of them) and the kept extents are taken too, and the want is cleared:
 * nothing is handed out until the next offer or keep; call it again until it
 * returns 0. Extents already handed out stay with their jobs. */
size_t carve_collect(carve_t *cv, int all, alloc_extent_t *out, size_t max);

/* Puts back extents from carve_collect that were not freed after all (their
 * transaction failed), for a later collect (or, when small, for reuse).
 * Returns how many did not fit;
 * those stay pending until the next start-up returns them. */
size_t carve_restore(carve_t *cv, const alloc_extent_t *e, size_t n);

#endif
