/* conflict.h - the "conflicts" table: the losers of concurrent writes,
 * kept where an operator can find them (docs/replication-apply.md,
 * "Conflicts").
 *
 *   "conflicts"  bucket NUL, MD5(key), loser version (u64 BE), loser origin
 *                -> conflict_t (record formats 1 to 3: common/conflictrec.h)
 *
 * A (version, origin) names one mutation of one key, so the key is unique;
 * the MD5 keeps the key short (LMDB keys are at most 511 bytes) and puts a
 * key's losers next to each other, so that a write can find those it
 * supersedes with one seek. A loser's extent (a PUT's bytes) belongs to its
 * record until the record goes: the caller frees it then. storaged writes
 * the table; repld reads it, to ship a write that lost a race here (its
 * bytes are then the record's). A PUT loser's block checksums
 * (common/blocksum.h) live in its record too, written with it and gone with
 * it: every reader of a loser's bytes verifies them against `sums` when
 * `has_sums` (a record written before records kept them has none, and its
 * bytes are read unverified; docs/storage.md). Every function
 * taking a txn leaves commit/abort to the caller; LMDB errors are returned
 * as CIO_EDB or CIO_EMAPFULL (meta_err). */
#ifndef COMIO_CONFLICT_H
#define COMIO_CONFLICT_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "common/blocksum.h"
#include "common/err.h"
#include "common/vctx.h"
#include "common/meta.h"

typedef struct {
    meta_ver_t loser;   /* the version that lost */
    meta_ver_t winner;  /* the version it lost to, when this site found the conflict */
    int deleted;        /* the loser is a DELETE: no bytes */
    uint64_t off, alen; /* the loser's extent (alen 0: none) */
    uint64_t size;
    uint8_t etag[16];
    int64_t mtime_ms; /* the loser's modification time on its origin */
    uint16_t ctype_len;
    char ctype[LOGREC_CTYPE_MAX + 1];
    int64_t time_ms; /* when this site recorded it (its clock): expiry */
    uint16_t key_len;
    char key[LOGREC_KEY_MAX + 1];
    uint16_t meta_len;         /* the loser's metadata besides its content type (common/objmeta.h, a */
    uint8_t meta[OBJMETA_MAX]; /* valid blob), meta_len bytes; 0 for none and in records of format 1 */
    int has_sums;              /* the loser's block checksums are kept (record format 3): sums; 0 for none */
    blocksum_view_t sums;      /* the whole loser's: first 0, n = blocksum_nblocks(size, shift). From conflict_get and the
                                  walks, its CRCs are borrowed from the record's value (valid until the txn ends, or
                                  its next write: blocksum_view_copy to keep them); given to conflict_put, the
                                  caller's (big-endian CRCs, or crcs NULL with `one` the inline CRC of an object of
                                  at most BLOCKSUM_INLINE_MAX bytes: blocksum_view_one) */
} conflict_t;

/* Sets c->sums to the whole-object view of the checksums `sums` (finished:
 * blocksum_calc_done, of c->size bytes), with c->has_sums: an object of one
 * block at most keeps its one CRC in the view itself, a larger one gets a
 * big-endian copy of its CRCs in a malloc'd buffer *owned (the caller frees
 * it after conflict_put; NULL when there is nothing to free). Returns 0,
 * CIO_EINVAL (sums of another size, or unfinished) or CIO_ENOMEM. */
int conflict_sums_from_calc(conflict_t *c, const blocksum_calc_t *sums, uint8_t **owned) CIO_MUST_CHECK;

/* Records loser c of key c->key in bucket b (replacing a record of the same
 * loser), with its checksums c->sums when c->has_sums (read here, during the
 * call only: they must not point into the map, which this write may move;
 * blocksum_view_copy). CIO_EINVAL when a length is out of range, or sums
 * that do not cover exactly c->size bytes from the first block. */
int conflict_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const conflict_t *c) CIO_MUST_CHECK;

/* The record of key k's loser (hlc, origin): 0, or CIO_ENOTFOUND. */
int conflict_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, uint64_t hlc, const char *origin,
                 size_t olen, conflict_t *out) CIO_MUST_CHECK;

/* The loser of record c as an object record (version, origin, extent, size,
 * ETag, mtime, content type, metadata), for the code that reads and serves
 * its bytes as it does an object's; no inline CRC (a loser's checksums are
 * c->sums) and no multipart part count. */
void conflict_as_obj(const conflict_t *c, meta_obj_t *o);

/* Removes that record; its extent into *ext ({0, 0}: none), for the caller
 * to free. CIO_ENOTFOUND when there is none. */
int conflict_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, uint64_t hlc, const char *origin,
                 size_t olen, alloc_extent_t *ext) CIO_MUST_CHECK;

/* Called with the extent of each record removed by conflict_supersede or
 * conflict_expire (len 0: none); a non-zero return stops and is returned. */
typedef int (*conflict_free_cb)(void *arg, alloc_extent_t ext);

/* Removes key k's losers that context `ctx` has seen (vctx_seen): a write
 * made with that context followed them, so they are no longer lost writes
 * but overwritten ones. *removed counts them. */
int conflict_supersede(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const vctx_t *ctx,
                       conflict_free_cb release, void *arg, uint64_t *removed) CIO_MUST_CHECK;

/* Removes bucket b's losers ordered before `version` (a purge there). */
int conflict_purge(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version, conflict_free_cb release,
                   void *arg, uint64_t *removed) CIO_MUST_CHECK;

/* One slice of expiry: looks at no more than `max` records, starting at
 * position pos[0..*pos_len) (*pos_len 0: the first), removes those recorded
 * at or before `cutoff_ms`, and stores in pos where the next slice starts;
 * *done is 1 when the slice reached the last record (pos is then reset).
 * `pos` is the caller's, CONFLICT_POS_MAX bytes. */
int conflict_expire(meta_t *m, MDB_txn *txn, uint8_t *pos, size_t *pos_len, int64_t cutoff_ms, size_t max, conflict_free_cb release,
                    void *arg, uint64_t *removed, int *done) CIO_MUST_CHECK;

/* Calls `visit` for the records of bucket b (blen 0: every bucket), in
 * table order (bucket, then the key's MD5, then version), starting after
 * position pos[0..*pos_len) (*pos_len 0: the first), for at most `max`
 * records; stores in pos where the next call goes on and sets *more to 1
 * when records remain. `pos` is the caller's, CONFLICT_POS_MAX bytes.
 * visit gets the bucket and the record; a non-zero return stops the walk
 * and is returned. */
#define CONFLICT_POS_MAX (LOGREC_BUCKET_MAX + 1 + 16 + 8 + LOGREC_ORIGIN_MAX)
typedef int (*conflict_visit_cb)(void *arg, const char *b, size_t blen, const conflict_t *c);
int conflict_list(meta_t *m, MDB_txn *txn, const char *b, size_t blen, uint8_t *pos, size_t *pos_len, size_t max,
                  conflict_visit_cb visit, void *arg, int *more) CIO_MUST_CHECK;

/* Number of records (for metrics and status). */
int conflict_count(meta_t *m, MDB_txn *txn, uint64_t *n) CIO_MUST_CHECK;

#endif
