/* mpu.h - the multipart upload tables: uploads in progress and their parts (docs/storage.md, "Multipart uploads").
 *
 *   "mpu"      upload id (MPU_ID_LEN bytes) -> mpu_upload_t: the bucket, key,
 *              initiation time, content type and metadata given at
 *              CreateMultipartUpload
 *   "mpu_part" upload id + u32 BE part number -> mpu_part_t: the part's
 *              extent in the data store, its size and MD5
 * Written only by the group committer (commit.h: COMMIT_MPU_*), in the
 * same transactions as the extents they name; read by the S3 handlers'
 * listings in read-only transactions. Parts never enter the replication
 * log: an upload is this site's own until it is completed, and only the
 * completed object replicates. Invariant: every extent a part record
 * names is allocated (neither free nor pending) and named by no other
 * record; removing a part record frees its extent (quarantined, like an
 * overwritten object's), except in a joined Complete's commit, which hands
 * the extent to the object record written in the same transaction
 * (storaged/commit_mpu.c).
 * Every function taking a txn leaves commit/abort to the caller; LMDB
 * errors are logged and returned as CIO_EDB or CIO_EMAPFULL (meta_err). */
#ifndef COMIO_MPU_H
#define COMIO_MPU_H

#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include "common/alloc.h"
#include "common/err.h"
#include "common/meta.h"
#include "common/objmeta.h"
#include "proto/logrec.h"

#define MPU_ID_LEN 32  /* an upload id: 32 lower-case hex digits (128 random bits) */
#define MPU_PART_MIN 1 /* part numbers are MPU_PART_MIN..MPU_PART_MAX (S3's) */
#define MPU_PART_MAX 10000
#define MPU_PART_SIZE_MIN (5ULL * 1024 * 1024)        /* every part but the last, at Complete (S3's EntityTooSmall) */
#define MPU_PART_SIZE_MAX (5ULL * 1024 * 1024 * 1024) /* bytes of one part (S3's) */
#define MPU_RECORD_MAX (64 + LOGREC_BUCKET_MAX + LOGREC_KEY_MAX + LOGREC_CTYPE_MAX + OBJMETA_MAX) /* an encoded upload */
#define MPU_PART_RECORD_LEN 49                                                                    /* an encoded part */

/* An upload in progress. */
typedef struct {
    int64_t initiated_ms;
    uint16_t blen;
    char bucket[LOGREC_BUCKET_MAX + 1]; /* NUL-terminated */
    uint16_t klen;
    char key[LOGREC_KEY_MAX + 1]; /* NUL-terminated */
    uint16_t ctype_len;
    char ctype[LOGREC_CTYPE_MAX + 1]; /* NUL-terminated */
    uint16_t meta_len;
    uint8_t meta[OBJMETA_MAX]; /* a valid blob of common/objmeta.h, meta_len bytes */
} mpu_upload_t;

/* One part of an upload. */
typedef struct {
    uint32_t number;    /* MPU_PART_MIN..MPU_PART_MAX */
    alloc_extent_t ext; /* in the data store; len 0 for an empty part */
    uint64_t size;      /* bytes */
    uint8_t md5[16];    /* MD5 of the part's bytes: its ETag */
    int64_t mtime_ms;   /* when it was stored */
} mpu_part_t;

/* Opens (creating them) the two tables into m->mpu and m->mpu_part, in txn
 * (which the caller commits). Returns 0 or CIO_EDB. */
int mpu_open(meta_t *m, MDB_txn *txn) CIO_MUST_CHECK;

/* The codec (no I/O): encode writes at most MPU_RECORD_MAX (upload) or
 * exactly MPU_PART_RECORD_LEN (part) bytes to out and returns the length.
 * decode reads buf[0..len) and returns 0, or CIO_EPROTO when it is not a
 * well-formed record (truncated, a length over its cap, an unknown record
 * format, bytes after the end, invalid metadata); *out is then undefined. */
size_t mpu_upload_encode(const mpu_upload_t *u, uint8_t *out);
int mpu_upload_decode(const uint8_t *buf, size_t len, mpu_upload_t *out) CIO_MUST_CHECK;
size_t mpu_part_encode(const mpu_part_t *p, uint8_t *out);
int mpu_part_decode(const uint8_t *buf, size_t len, mpu_part_t *out) CIO_MUST_CHECK;

/* Whether id[0..len) has the form of an upload id (MPU_ID_LEN lower-case hex digits). */
int mpu_id_valid(const char *id, size_t len);

/* The upload `id` (MPU_ID_LEN bytes) into *out: 0, CIO_ENOTFOUND, CIO_EPROTO (a broken record), CIO_EDB. */
int mpu_get(meta_t *m, MDB_txn *txn, const char *id, mpu_upload_t *out) CIO_MUST_CHECK;

/* Stores the upload `id` (new or not). */
int mpu_put(meta_t *m, MDB_txn *txn, const char *id, const mpu_upload_t *u) CIO_MUST_CHECK;

/* Part `number` of upload `id` into *out: 0, CIO_ENOTFOUND, CIO_EPROTO, CIO_EDB. */
int mpu_part_get(meta_t *m, MDB_txn *txn, const char *id, uint32_t number, mpu_part_t *out) CIO_MUST_CHECK;

/* Stores part p of upload `id`; when a part of that number was there, *old
 * gets it and *had_old is set (its extent is the caller's to free). */
int mpu_part_put(meta_t *m, MDB_txn *txn, const char *id, const mpu_part_t *p, mpu_part_t *old, int *had_old) CIO_MUST_CHECK;

/* Calls cb for each part of upload `id` numbered above `after`, in
 * ascending order, until cb returns non-zero (then returned: a negative
 * CIO code or 1, "stop") or the parts end (0). `p` is valid for the call. */
typedef int (*mpu_part_cb)(void *ctx, const mpu_part_t *p);
int mpu_part_each(meta_t *m, MDB_txn *txn, const char *id, uint32_t after, mpu_part_cb cb, void *ctx) CIO_MUST_CHECK;

/* Removes upload `id` and every part of it, calling `release` (may be NULL)
 * with each part's extent of len > 0 before its record goes; a non-zero
 * return stops and is returned. *nparts and *bytes (may be NULL) count the
 * parts removed and their sizes. CIO_ENOTFOUND when there is no such upload. */
typedef int (*mpu_release_cb)(void *ctx, alloc_extent_t ext);
int mpu_del(meta_t *m, MDB_txn *txn, const char *id, mpu_release_cb release, void *ctx, uint64_t *nparts,
            uint64_t *bytes) CIO_MUST_CHECK;

/* Calls cb for every upload, in upload id order, starting after
 * after[0..MPU_ID_LEN) (NULL: from the first), until cb returns non-zero
 * (returned as mpu_part_each does). `id` (MPU_ID_LEN bytes, not
 * NUL-terminated) and `u` are valid for the call. */
typedef int (*mpu_upload_cb)(void *ctx, const char *id, const mpu_upload_t *u);
int mpu_each(meta_t *m, MDB_txn *txn, const char *after, mpu_upload_cb cb, void *ctx) CIO_MUST_CHECK;

/* The number of uploads in progress (for metrics). */
int mpu_count(meta_t *m, MDB_txn *txn, uint64_t *n) CIO_MUST_CHECK;

#endif
