/* meta.h - the site's LMDB environment, which storaged and repld both open:
 * its tables, opening it, object records and the state counters.
 *
 * Databases (all in one environment, so one transaction covers them):
 *   "buckets"  name -> meta_bucket_t (storaged/meta.h)
 *   "objects"  objkey(bucket, key) -> meta_obj_t (see meta_objkey); the
 *              record carries the object's version and the site it was
 *              written on (its origin), whether here or applied from another
 *   "state"    name -> u64 BE counter (META_COUNTERS below)
 *   "replog", "repl_failed", "repl_retry", "repl_targets": the replication
 *              log, owned by common/replog.h: no other module reads or
 *              writes them
 *   "repl_sync": each target's full sync, owned by common/syncrec.h
 *   "pending", "tombstones", "purges": storaged's (storaged/meta.h)
 *   "conflicts": storaged's, the losers of concurrent writes (storaged/conflict.h)
 *   "blocksums" objkey -> the object's block checksums (common/blocksum.h),
 *              written and removed with its "objects" record only (meta_obj_put,
 *              meta_obj_del, meta_obj_del_bucket, storaged's meta_obj_del_if);
 *              an object of at most BLOCKSUM_INLINE_MAX bytes has its one CRC
 *              in its "objects" record instead (meta_obj_t's crc_inline): an
 *              object has an inline CRC, or a record that matches it, or none
 *   "scrub"    the background scrub's state, owned by storaged/scrub.h
 *   "damaged"  objkey -> a damaged object found by the scrub (storaged/scrub.h);
 *              removed with the key's checksums, so an object rewritten or
 *              deleted since leaves it
 *   plus the allocator's databases (common/alloc.h).
 * Every function taking a txn leaves commit/abort to the caller. LMDB errors
 * are logged here and returned as CIO_EDB or CIO_EMAPFULL. */
#ifndef COMIO_COMMON_META_H
#define COMIO_COMMON_META_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <lmdb.h>
#include "common/alloc.h"
#include "common/blocksum.h"
#include "common/err.h"
#include "common/hlc.h"
#include "common/objmeta.h"
#include "common/vctx.h"
#include "proto/logrec.h"

#define META_OBJKEY_MAX 480 /* below LMDB's 511-byte key limit */

typedef struct meta {
    MDB_env *env;
    MDB_dbi buckets, objects, replog, pending, state;
    MDB_dbi tombstones, purges, repl_failed, repl_retry, repl_targets, conflicts, repl_sync;
    MDB_dbi blocksums;      /* the objects' block checksums (common/blocksum.h) */
    MDB_dbi scrub, damaged; /* the scrub's state and the damage it found (storaged/scrub.h) */
    MDB_dbi mpu, mpu_part;  /* storaged's multipart uploads (storaged/mpu.h); opened by storaged only */
    alloc_t alloc;
    int wake_fd;         /* REPLOG_WAKE_FILE in the environment's directory (common/replog.h); -1 if not open */
    const char *site_id; /* borrowed from meta_open_site's caller for the format migration; NULL after opening */
} meta_t;

typedef struct {
    uint64_t version; /* the version of the mutation that wrote it: a hybrid logical clock value (common/hlc.h) */
    uint64_t off;     /* extent in the data store */
    uint64_t alen;    /* allocated length (0 for an empty object) */
    uint64_t size;    /* object size in bytes */
    uint8_t etag[16]; /* MD5 of the body */
    int64_t mtime_ms;
    uint16_t ctype_len;
    char ctype[LOGREC_CTYPE_MAX + 1];   /* NUL-terminated */
    uint16_t origin_len;                /* the site the mutation happened on (with `version`, what last-writer-wins */
    char origin[LOGREC_ORIGIN_MAX + 1]; /* orders by); "" for a version from before origins were recorded. NUL-terminated */
    uint16_t key_len;                   /* the full key (filled by get and listing) */
    char key[LOGREC_KEY_MAX + 1];       /* NUL-terminated */
    vctx_t ctx;        /* the key's causal context besides (version, origin) itself (common/vctx.h; docs/replication-apply.md,
                          "Conflicts"): what the site had seen of the key from each site when this version was stored.
                          Empty for most objects (one site writing the key) */
    uint16_t meta_len; /* the object's metadata besides its content type (common/objmeta.h): a valid blob, */
    uint8_t meta[OBJMETA_MAX]; /* meta_len bytes; 0 for none (every record written before metadata was kept) */
    uint32_t mpu_parts;        /* an object made by an S3 multipart upload: its part count (1..LOGREC_MPU_PARTS_MAX) */
    uint8_t mpu_md5[16];       /* and the MD5 of its parts' MD5s, its S3 ETag being hex(mpu_md5)-mpu_parts; 0 otherwise */
    uint8_t crc_inline;        /* 1: the object (at most BLOCKSUM_INLINE_MAX bytes) has its block checksum here, */
    uint32_t crc32c;           /* the CRC32C of its bytes, and no "blocksums" record. Set by meta_obj_put from its sums */
} meta_obj_t;

/* A version with the site it comes from. */
typedef struct {
    uint64_t hlc;                       /* 0: none */
    uint16_t origin_len;                /* "" for none, or for a version from before origins were recorded */
    char origin[LOGREC_ORIGIN_MAX + 1]; /* NUL-terminated */
} meta_ver_t;

/* (hlc, origin) as a meta_ver_t; origin is copied (at most LOGREC_ORIGIN_MAX bytes). */
static inline meta_ver_t meta_ver_make(uint64_t hlc, const char *origin, size_t origin_len)
{
    meta_ver_t v;
    v.hlc = hlc;
    v.origin_len = (uint16_t)(origin_len > LOGREC_ORIGIN_MAX ? LOGREC_ORIGIN_MAX : origin_len);
    memcpy(v.origin, origin, v.origin_len);
    v.origin[v.origin_len] = '\0';
    return v;
}

/* The last-writer-wins order of a and b (hlc_version_cmp): <0, 0, >0. */
static inline int meta_ver_cmp(const meta_ver_t *a, const meta_ver_t *b)
{
    return hlc_version_cmp(a->hlc, a->origin, a->origin_len, b->hlc, b->origin, b->origin_len);
}

#define META_OPEN_CREATE 1u /* create what is missing: the directory, the environment, its tables */
#define META_OPEN_RDONLY 2u /* without CREATE: read-only (map_size is then the file's) */

/* The metadata format: one number for the layout of every table in the
 * environment, stored as META_FORMAT_VERSION in "state". A layout change
 * raises META_FORMAT_CURRENT and adds the step that converts a store to it
 * to meta_migrations.
 *   0  a store written before the format was recorded (no such counter):
 *      the same layout as 1
 *   1  object records hold a version that is a log seq: the writing site's
 *      own (record format 1) or, on a replica, its primary's (format 2)
 *   2  object records (format 3) hold a hybrid logical
 *      clock version and its origin site id; tombstones and purge versions
 *      carry an origin too, and bucket records a version of their own
 *      (storaged/meta.h; their older records still read, as versions with
 *      origin ""). Object records (format 4) and tombstones (format 3) may
 *      carry a causal context; those without one read as an empty context
 *      (format 2 was not released before contexts were added, so they
 *      needed no new format number)
 *   3  object records (format 5) and conflict records
 *      (format 2) may carry the object's metadata (common/objmeta.h). The
 *      step from 2 changes no record (those without metadata read as none);
 *      it is recorded so that a release that cannot read such records
 *      refuses the store instead of failing on some of its objects
 *   4  object records (format 6) may carry the part
 *      count and parts' MD5 of an object made by an S3 multipart upload
 *      (its S3 ETag), and storaged keeps uploads in progress in the "mpu"
 *      and "mpu_part" tables (storaged/mpu.h). The step from 3 changes no
 *      record, for the same reason as the step from 2
 *   5  the current layout: the "blocksums" table holds the block checksums
 *      of the objects written since (common/blocksum.h), or for an object of
 *      one block its object record (its format byte's OBJ_CRC_FLAG; format 5
 *      was not released before inline CRCs were added, so a store whose
 *      small objects have "blocksums" records still reads, as the same
 *      format; nor without conflict records of format 3, which keep a
 *      loser's checksums: common/conflict.c), "scrub" and
 *      "damaged" the background scrub's state and findings
 *      (storaged/scrub.h). The step from 4 only creates the tables, and
 *      records in "scrub" when it ran (META_SCRUB_UPGRADED_MS): the objects
 *      written before have no checksums, are served unverified until a
 *      scrub pass fills them in (docs/storage.md), and the first scheduled
 *      pass of an upgraded store starts one storage.scrub_interval later
 * A new environment is created at META_FORMAT_CURRENT, in the transaction
 * that creates its tables. */
#define META_FORMAT_CURRENT 5

/* One step of a format upgrade: meta_migrations[n] converts format n to
 * n + 1. `run` makes the step's changes in `txn`, the step's one
 * transaction, and returns 0 or an error (the transaction is then aborted);
 * NULL when the step changes nothing but the recorded version. `what` is one
 * line for the log: what the step changes. */
typedef struct {
    const char *what;
    int (*run)(meta_t *m, MDB_txn *txn);
} meta_migration_t;

/* The steps from format 0 up to META_FORMAT_CURRENT. */
extern const meta_migration_t meta_migrations[META_FORMAT_CURRENT];

/* Upgrades the format of m's environment from `from` to `to` by running
 * steps[from] .. steps[to - 1] (`steps` has at least `to` entries). Each
 * step runs in one transaction that also records its new version, and is
 * logged once committed, so a step cut short leaves the store at the last
 * completed format and the next start resumes there. Returns 0, or the
 * failing step's error, or CIO_EDB / CIO_EMAPFULL; on failure writes which
 * step failed into err. meta_open_env calls it with meta_migrations;
 * tests pass their own steps. */
int meta_format_migrate(meta_t *m, const meta_migration_t *steps, uint64_t from, uint64_t to, char *err,
                        size_t errlen) CIO_MUST_CHECK;

/* Opens the environment in directory `dir` with `map_size` bytes of map and
 * every table's handle. Without META_OPEN_CREATE it creates nothing (no
 * directory, file or table): the environment must be there with every
 * table, and the wake-up file is used only if it exists; that is for repld,
 * whose wrong path must fail, not make an empty site. The allocator
 * (m->alloc) is not opened here: storaged's meta_open does that.
 * The metadata format is checked first: one newer than META_FORMAT_CURRENT
 * is refused, with nothing written. With META_OPEN_CREATE (storaged) an
 * older one is upgraded (meta_format_migrate, logged); without it (repld)
 * an older one is refused too, since only storaged upgrades: it starts first.
 * Returns 0, CIO_ENOTFOUND when there is no environment or a table is
 * missing, CIO_EPROTO for a format this binary cannot open, CIO_ESYS,
 * CIO_EDB or CIO_EMAPFULL (or a migration step's error); on failure writes
 * a reason that names `dir` (and, for a format, what to do) into err.
 * Close with meta_close. */
int meta_open_env(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, char *err, size_t errlen) CIO_MUST_CHECK;

/* meta_open_env, for storaged: `site_id` (borrowed for the call) is this
 * site's id, which the upgrade from format 1 gives the objects that were
 * written here (their legacy versions are this site's seqs); NULL gives them
 * origin "". */
int meta_open_site(meta_t *m, const char *dir, uint64_t map_size, unsigned flags, const char *site_id, char *err,
                   size_t errlen) CIO_MUST_CHECK;

/* Closes what meta_open_env opened; harmless on a failed or closed one. */
void meta_close(meta_t *m);

/* Maps an LMDB return code to a CIO code, logging `what` when it is an error. */
int meta_err(int rc, const char *what);

/* A table value that is one big-endian u64 (a counter, a purge version):
 * meta_u64_get sets *out to it, or to 0 when key k is absent; it returns 0,
 * CIO_EPROTO (a value of another size) or a meta_err code; `what` names the
 * table in the log. meta_u64_put stores v under k; 0 or a meta_err code. */
int meta_u64_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const char *what, uint64_t *out) CIO_MUST_CHECK;
int meta_u64_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const char *what, uint64_t v) CIO_MUST_CHECK;

/* Object metadata. get returns CIO_ENOTFOUND when absent.
 * put writes the record of an object whose bytes are new (a PUT, an applied
 * PUT, a copy, a multipart Complete) and, in the same transaction, its block
 * checksums: `sums` (finished: blocksum_calc_done) are the CRCs of exactly
 * o->size bytes: for an object of at most BLOCKSUM_INLINE_MAX bytes its one
 * CRC goes into the object record (o->crc_inline and o->crc32c are ignored),
 * else a "blocksums" record with o's version, origin and extent offset; NULL
 * (not computed: storage.checksums off) removes any the key had, so no
 * record outlives the bytes it describes. Returns 0, CIO_EINVAL (sums not
 * for o->size bytes) or a meta_err code.
 * update rewrites the record of the same bytes (same version, origin and
 * extent: only its context changed; o as meta_obj_get read it, with its
 * crc_inline and crc32c) and keeps their checksums.
 * del removes the record and its checksums. */
int meta_obj_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_obj_t *out) CIO_MUST_CHECK;
int meta_obj_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                 const blocksum_calc_t *sums) CIO_MUST_CHECK;
int meta_obj_update(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                    const meta_obj_t *o) CIO_MUST_CHECK;
int meta_obj_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen) CIO_MUST_CHECK;

/* Removes every object record of bucket b, and their checksums (a purge). 0 or a meta_err code. */
int meta_obj_del_bucket(meta_t *m, MDB_txn *txn, const char *b, size_t blen) CIO_MUST_CHECK;

/* The block checksums stored for key k of bucket b into *out (its CRCs
 * point into the map: valid until txn ends). They belong to the object only
 * when blocksum_matches its record; else, or on CIO_ENOTFOUND, the object's
 * bytes are unverified. Returns 0, CIO_ENOTFOUND, CIO_EPROTO (a record that
 * does not decode: logged) or a meta_err code. */
int meta_sums_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                  blocksum_rec_t *out) CIO_MUST_CHECK;

/* The block checksums of object record o (key k of bucket b, as
 * meta_obj_get read it in txn) that cover its bytes [off, off + len): its
 * inline CRC, or its "blocksums" record when that blocksum_matches o (a
 * record of an object of one block written before inline CRCs still counts).
 * *v borrows a record's CRCs from the map (valid until txn ends:
 * blocksum_view_copy to keep them) or holds the inline CRC itself. Returns 0,
 * CIO_ENOTFOUND (none that belong to o: its bytes are unverified),
 * CIO_EPROTO (a record that does not decode: logged) or a meta_err code. */
int meta_sums_view(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                   uint64_t off, uint64_t len, blocksum_view_t *v) CIO_MUST_CHECK;

/* The key in "scrub" of the time (u64 BE ms) the step to format 5 ran. */
#define META_SCRUB_UPGRADED_MS "upgraded_ms"

/* Writes the checksums `sums` (finished, for o->size bytes) of the object
 * record o of key k, which must be in "objects" already (the scrub's fill-in
 * of an object written before checksums): into its record (rewritten, its
 * other fields those of o) when it is of at most BLOCKSUM_INLINE_MAX bytes,
 * else a "blocksums" record. 0, CIO_EINVAL or a meta_err code. */
int meta_sums_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                  const blocksum_calc_t *sums) CIO_MUST_CHECK;

/* Removes key k's checksums, if any (for storaged's meta_obj_del_if), and
 * with them its "damaged" entry: both belong to the bytes that go. Every
 * write of new bytes (meta_obj_put) and every removal does the same.
 * 0 or a meta_err code. */
int meta_sums_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen) CIO_MUST_CHECK;

/* The number of objects with block checksums: the records in "blocksums"
 * (every one belongs to an object record) and the objects with an inline CRC
 * (META_SUMS_INLINE). 0 or a meta_err code. */
int meta_sums_count(meta_t *m, MDB_txn *txn, uint64_t *n) CIO_MUST_CHECK;

/* Whether `o` is still the object that the mutation (version, origin) made:
 * the same version from the same site (origin is borrowed, origin_len
 * bytes, no NUL needed). A (version, origin) pair names one mutation on
 * every site, so this holds for an object written here and for one applied
 * from another site (a chained site serves what it applied, with its
 * origin's version). Every path that asks "is the event's version still the
 * object" (repld's inline read and presign, the fetch endpoint) asks this. */
int meta_obj_current(const meta_obj_t *o, uint64_t version, const char *origin, size_t origin_len);

/* The last-writer-wins order of object o's version against (version,
 * origin): hlc_version_cmp. */
int meta_obj_version_cmp(const meta_obj_t *o, uint64_t version, const char *origin, size_t origin_len);

/* Calls cb for the objects of bucket b whose key starts with `prefix` and
 * sorts strictly after `after` (either may be empty), in byte order of the
 * full key, until cb returns non-zero or the bucket ends. `o` is valid for
 * the call only. `limit` is the most objects cb will take (SIZE_MAX: all):
 * keys too long to be stored whole are re-sorted in memory, and no more than
 * `limit` of them are held at once. Returns 0 or an error. */
typedef int (*meta_list_cb)(void *ctx, const meta_obj_t *o);
int meta_obj_list(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *prefix, size_t plen, const char *after,
                  size_t alen, size_t limit, meta_list_cb cb, void *ctx) CIO_MUST_CHECK;

/* ---- storaged's bucket, tombstone and purge records (storaged/meta.h
 * describes the tables; their records live here because repld's full sync
 * reads them too). What a site knows of a key is the largest of: its
 * object's version, its tombstone's, its bucket's purge version. ---- */

/* A bucket. `version` is the (version, origin) of the last bucket CREATE or
 * DELETE made here or applied (hlc 0: none, e.g. a bucket a PUT created),
 * `deleted` whether that was a DELETE: a bucket deleted while it still held
 * objects (an applied DELETE never deletes data) stays until it is empty
 * (docs/replication-apply.md, "Buckets"). Record format 2: format byte,
 * ctime, objects, bytes (u64 BE each), version (u64 BE), flags (1: deleted),
 * origin (u8 length, bytes). Format 1 (25 bytes) reads as version 0, not
 * deleted. A deleted bucket's version is kept as a tombstone with the empty
 * key (meta_tomb_*), which no object key can be. */
typedef struct {
    int64_t ctime_ms;
    uint64_t objects;
    uint64_t bytes;
    meta_ver_t version;
    int deleted;
} meta_bucket_t;

int meta_bucket_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *out) CIO_MUST_CHECK;
int meta_bucket_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk) CIO_MUST_CHECK;
int meta_bucket_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen) CIO_MUST_CHECK;

typedef struct {
    meta_ver_t version; /* the DELETE's version (or, from a format-1 store, the replaced applied object's) */
    int64_t time_ms;    /* when this site recorded it (local clock): garbage collection */
    vctx_t ctx;         /* the key's causal context besides `version` itself (meta_obj_t's ctx); empty for a bucket's */
} meta_tomb_t;

/* Decodes a "tombstones" value into *t; *key and *klen are the full key
 * (into v: valid while the transaction lives; empty for a bucket's own
 * tombstone). 0 or CIO_EPROTO. */
int meta_tomb_decode(const MDB_val *v, meta_tomb_t *t, const uint8_t **key, size_t *klen) CIO_MUST_CHECK;

/* Tombstone of key k in bucket b, keyed like "objects". get returns
 * CIO_ENOTFOUND when absent; del of an absent tombstone is not an error. */
int meta_tomb_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, meta_tomb_t *out) CIO_MUST_CHECK;
int meta_tomb_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                  const meta_tomb_t *t) CIO_MUST_CHECK;
int meta_tomb_del(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen) CIO_MUST_CHECK;

/* Version of the last purge of bucket b (made here or applied): hlc 0 when
 * none. Stored as the u64 BE version followed by the origin's bytes; a
 * record of 8 bytes (metadata format 1) reads with origin "". */
int meta_purge_get(meta_t *m, MDB_txn *txn, const char *b, size_t blen, meta_ver_t *version) CIO_MUST_CHECK;
int meta_purge_put(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version) CIO_MUST_CHECK;

/* The counters of the "state" table, each with the name it is stored
 * under: those names are on disk, so one is never renamed. A counter is
 * named by its enum value, so a misspelt one does not compile. (Stores
 * written by older versions may also hold "repl_superseded", which was
 * written and never read: it is no longer kept up to date.)
 *   X(enum value, stored name, who writes it) */
#define META_COUNTERS(X)                                                                                                           \
    X(META_LAST_SEQ, "last_seq", "the last mutation seq taken (storaged)")                                                         \
    X(META_LOG_COUNT, "log_count", "records ever appended to the log (storaged)")                                                  \
    X(META_LOG_PENDING_BYTES, "log_pending_bytes", "object bytes of the PUT records in the log (storaged adds, repld trims)")      \
    X(META_REPL_CURSOR, "repl_cursor", "every seq up to it is acknowledged or recorded as failed (repld)")                         \
    X(META_REPL_ACKED, "repl_acked", "events acknowledged by the replica or superseded (repld)")                                   \
    X(META_REPL_BYTES, "repl_bytes", "object bytes of the acknowledged PUT events (repld)")                                        \
    X(META_REPL_FAILED, "repl_failed", "events in the repl_failed table now (repld)")                                              \
    X(META_REPL_FAILED_TOTAL, "repl_failed_total", "events ever recorded as failed (repld)")                                       \
    X(META_REPL_LAST_MS, "repl_last_ms", "wall clock of the last acknowledgement, ms (repld)")                                     \
    X(META_OBJECTS, "objects", "objects stored on the site (storaged)")                                                            \
    X(META_BYTES, "bytes", "bytes of the objects stored (storaged)")                                                               \
    X(META_APPLY_APPLIED, "apply_applied", "a replica's events applied (storaged)")                                                \
    X(META_APPLY_SKIPPED, "apply_skipped", "a replica's events skipped: stale or duplicate (storaged)")                            \
    X(META_APPLY_FAILED, "apply_failed", "a replica's events refused, for now or for good (storaged)")                             \
    X(META_APPLY_PERMANENT, "apply_permanent", "a replica's events refused for good (storaged)")                                   \
    X(META_APPLY_CLOCK_SKEW, "apply_clock_skew", "remote versions applied that were more than max_clock_skew ahead (storaged)")    \
    X(META_APPLY_CONFLICTS, "apply_conflicts",                                                                                     \
      "events applied or refused that were written concurrently with the key's version (storaged)")                                \
    X(META_HLC_LAST, "hlc_last", "the site's clock: no version stored here is larger (storaged, at every commit)")                 \
    X(META_STORE_ID_HI, "store_id_hi", "the data store's identity, high half (storaged)")                                          \
    X(META_STORE_ID_LO, "store_id_lo", "the data store's identity, low half (storaged)")                                           \
    X(META_FORMAT_VERSION, "format_version", "the metadata format, META_FORMAT_CURRENT once opened by storaged (storaged)")        \
    X(META_TOMB_HORIZON, "tomb_horizon",                                                                                           \
      "the tombstone horizon: the largest version (hlc) of any tombstone collected here; 0 none (storaged, tombgc)")               \
    X(META_UNLOGGED_MS, "unlogged_ms",                                                                                             \
      "wall clock of the last mutation committed while replication was off, not logged; 0 none (storaged)")                        \
    X(META_MPU_EXPIRED, "mpu_expired", "multipart uploads removed by s3.multipart_ttl (storaged)")                                 \
    X(META_SUMS_INLINE, "sums_inline", "object records holding their block checksum inline (meta_obj_put, meta_sums_del)")

#define META_COUNTER_ENUM(e, name, doc) e,
typedef enum { META_COUNTERS(META_COUNTER_ENUM) META_NCOUNTERS } meta_counter_t;
#undef META_COUNTER_ENUM

/* Counters in "state". get yields 0 for an absent counter. */
int meta_state_get(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t *v) CIO_MUST_CHECK;
int meta_state_put(meta_t *m, MDB_txn *txn, meta_counter_t c, uint64_t v) CIO_MUST_CHECK;
int meta_state_add(meta_t *m, MDB_txn *txn, meta_counter_t c, int64_t delta) CIO_MUST_CHECK;

/* ---- the store's identity ----
 * storaged draws 128 random bits (OpenSSL RAND_bytes) when it formats a new
 * store, in the transaction that pairs the metadata with the data store
 * (META_STORE_ID_HI/LO), and writes the same into the store's superblock. It
 * never changes for the life of the store: a wiped or replaced disk gets a
 * new one, and a store restored from a backup has the backup's. A replica
 * reports it to its senders, which give a store they have not synced yet a
 * full sync (repld/sync.h). */
#define META_STORE_ID_HEX 32

/* The identity as 32 lowercase hex characters and a NUL into out. 0,
 * CIO_ENOTFOUND (a store not formatted yet) or a meta_err code. */
int meta_store_id(meta_t *m, MDB_txn *txn, char out[META_STORE_ID_HEX + 1]) CIO_MUST_CHECK;

/* ---- a bucket's keys for a full sync ---- */

/* A key's state: its object, or its tombstone (deleted: obj then holds only
 * the key, version, origin, context and the tombstone's time as mtime_ms). */
typedef struct {
    int deleted;
    meta_obj_t obj;
} meta_entry_t;

/* The objects and tombstones of bucket b whose key sorts strictly after
 * `after` (alen 0: from the first), in byte order of the key, one entry a
 * key (a key with both holds the later version's), about `max` (> 0) of them:
 * at most 2 * max, more only when long keys share their first ~400 bytes.
 * *out is a malloc'd array of *n entries (the caller frees it; NULL when
 * none); *more is 1 when keys may follow the last one. Returns 0,
 * CIO_EINVAL (max 0), CIO_ENOMEM or a meta_err code. */
int meta_key_page(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *after, size_t alen, size_t max,
                  meta_entry_t **out, size_t *n, int *more) CIO_MUST_CHECK;

/* The key of bucket b's key k in "objects" (and in the tables keyed alike)
 * into out, which has META_OBJKEY_MAX bytes; returns its length. */
size_t meta_objkey(uint8_t *out, const char *b, size_t blen, const char *k, size_t klen);

/* Decodes an "objects" value into o. 0 or CIO_EPROTO. */
int meta_obj_decode(const MDB_val *v, meta_obj_t *o) CIO_MUST_CHECK;

#endif
