/* mpu_chase.h - the hash chase of a multipart upload: MD5 and block CRCs of parts 1..k, kept as the parts are stored.
 *
 * A completed object's record keeps the MD5 of its whole body and the CRC32C
 * of each BLOCKSUM_BLOCK bytes of it; neither can be computed per part and
 * combined. The chase keeps them running over the parts in number order,
 * from part 1, so that a Complete whose listed parts begin with the chased
 * run only hashes what comes after it. This module is the state and its
 * rules only (no threads, no I/O, no locks: the caller serialises the calls
 * on one state); storaged/commit_chase.c feeds it from the data store.
 *
 * Memory: the run's part records (a mpu_part_t each, at most MPU_PART_MAX),
 * one CRC per whole block fed (4 bytes per 64 KiB: 64 KiB per GiB) and
 * MPU_CHASE_SNAPSHOTS + 1 MD5 contexts. */
#ifndef COMIO_MPU_CHASE_H
#define COMIO_MPU_CHASE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "common/blocksum.h"
#include "common/err.h"
#include "storaged/mpu.h"

/* States kept after the last parts of the run: a part stored again within
 * that many of the run's end restarts the chase from the state before it;
 * one further back restarts it from part 1. */
#define MPU_CHASE_SNAPSHOTS 4

/* The state after part `nrun` of the run (nrun 0: unused slot). */
typedef struct {
    size_t nrun;
    EVP_MD_CTX *md; /* owned */
    uint32_t cur;   /* CRC32C of the partial block after the part */
} mpu_chase_snap_t;

/* The chase of one upload. The fields are mpu_chase.c's. */
typedef struct {
    const EVP_MD *alg; /* borrowed: outlives the state */
    EVP_MD_CTX *md;    /* owned: over the first `fed` bytes */
    uint64_t fed;      /* bytes fed: the run's, plus those of the part being fed */
    uint64_t part_fed; /* of which the part being fed */
    uint32_t cur;      /* CRC32C of the partial block at `fed` */
    uint32_t *crcs;    /* owned: the CRCs of the fed >> BLOCKSUM_SHIFT whole blocks */
    size_t capcrcs;
    mpu_part_t *run; /* owned: the parts hashed, numbered 1..nrun (run[i].number == i + 1) */
    uint64_t *ends;  /* owned: ends[i], the bytes of parts 1..i+1 */
    size_t nrun, caprun;
    mpu_chase_snap_t snap[MPU_CHASE_SNAPSHOTS]; /* the state after part n is in snap[(n - 1) % MPU_CHASE_SNAPSHOTS] */
} mpu_chase_t;

/* Starts an empty chase (nothing fed, part 1 next) digesting with alg (MD5;
 * NULL: EVP_md5()). Returns 0 or CIO_ENOMEM; mpu_chase_free either way. */
int mpu_chase_init(mpu_chase_t *s, const EVP_MD *alg) CIO_MUST_CHECK;

/* Frees what s owns; harmless twice, and on a zeroed state. */
void mpu_chase_free(mpu_chase_t *s);

/* The number of the part to feed next: nrun + 1. */
uint32_t mpu_chase_next(const mpu_chase_t *s);

/* Feeds the next n bytes of that part. Returns 0 or CIO_ENOMEM (the state
 * is then only good for mpu_chase_rewind or mpu_chase_free). */
int mpu_chase_feed(mpu_chase_t *s, const void *p, size_t n) CIO_MUST_CHECK;

/* Part p, whose p->size bytes were fed since the last part ended, joins the
 * run (p->number must be mpu_chase_next), and the state after it is kept as
 * a snapshot. Returns 0, CIO_EINVAL (a wrong number or byte count: nothing
 * changed) or CIO_ENOMEM. */
int mpu_chase_part_done(mpu_chase_t *s, const mpu_part_t *p) CIO_MUST_CHECK;

/* Goes back to the state after part k of the run (k <= nrun; 0: empty),
 * dropping the bytes of a part being fed: after the latest snapshot at or
 * before part k, or to the empty state when there is none. Returns the
 * parts of the run kept (at most k). Never fails: out of memory, the state
 * is emptied. */
size_t mpu_chase_rewind(mpu_chase_t *s, size_t k);

/* How many of parts[0..n) (a Complete's list, in order) are the run's
 * first parts: the same number, extent, size, MD5 and time stored. */
size_t mpu_chase_match(const mpu_chase_t *s, const mpu_part_t *parts, size_t n);

/* Whether two records name the same stored part (number, extent, size, MD5, time). */
int mpu_chase_same_part(const mpu_part_t *a, const mpu_part_t *b);

/* Hands over the run's digest and block CRCs for an object of `size`
 * bytes (>= the run's bytes) that begins with the run: *md gets the MD5
 * context over the run (owned by the caller, to feed the rest and
 * finish), and *sums, when not NULL, a computation resumed after the run
 * (blocksum_calc_resume). The state is left empty-handed: only
 * mpu_chase_free is valid on it afterwards. Returns 0, CIO_EINVAL (a part
 * being fed: rewind first; size below the run) or CIO_ENOMEM; *md is NULL
 * and *sums freed on failure. */
int mpu_chase_hand_over(mpu_chase_t *s, uint64_t size, EVP_MD_CTX **md, blocksum_calc_t *sums) CIO_MUST_CHECK;

/* The bytes of the run's parts. */
uint64_t mpu_chase_bytes(const mpu_chase_t *s);

#endif
