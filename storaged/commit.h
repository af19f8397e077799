/* commit.h - the group committer: every mutation of storaged goes through it.
 *
 * One committer thread owns the LMDB write transaction; a small pool of I/O
 * threads writes object bodies. A PUT takes three steps:
 *   1. allocate: its extent is taken from the free map and recorded as
 *      pending, in a transaction shared with every other job at hand; a
 *      body of at most CARVE_MAX_BYTES instead gets an extent in memory,
 *      from a reserved chunk or a kept freed extent (carve.h), without
 *      waiting for any commit;
 *   2. write: an I/O thread computes the MD5 and writes the body; the
 *      committer syncs the data store once for every body written since
 *      its last round, just before the commit of step 3;
 *   3. finish: metadata, log record and counters are written, the pending
 *      mark removed and the old extent quarantined, in one synced commit
 *      shared with every other job at hand.
 * DELETE, PURGE and bucket operations take step 3 only. The mutation's
 * sequence number is taken in step 3, so the log's order is commit order.
 * Replies are made only after step 3 is durable. Extents released by a commit
 * return to the free map (or, small ones, to carve for reuse) once no reader
 * that started before that commit is still reading
 * (commit_reader_enter/leave).
 *
 * COMMIT_APPLY carries a whole batch of another site's events (apply.h
 * builds it) through the same three steps: one allocation for the PUTs not
 * already stale, then inline bodies are written by an I/O thread and large
 * ones fetched from the sender by a small pool of fetcher threads (so
 * a slow fetch never holds up the writes of ordinary PUTs), one sync, then
 * every event is finished in one synced transaction, where staleness is
 * checked again (docs/replication-apply.md). The committer also collects
 * expired tombstones, a small slice per round. */
#ifndef COMIO_COMMIT_H
#define COMIO_COMMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "common/alloc.h"
#include "proto/batch.h"
#include "common/err.h"
#include "storaged/fetch.h"
#include "proto/logrec.h"
#include "storaged/meta.h"
#include "storaged/mpu.h"
#include "storaged/store.h"

typedef enum {
    COMMIT_PUT = 1,
    COMMIT_DELETE,
    COMMIT_PURGE,
    COMMIT_BUCKET_CREATE,
    COMMIT_BUCKET_DELETE,
    COMMIT_APPLY,           /* a replica's batch of events */
    COMMIT_CONFLICT_DELETE, /* the removal of a kept conflict loser (common/conflict.h) */
    COMMIT_MPU_CREATE,      /* multipart uploads (storaged/mpu.h, commit_mpu.c): a new upload, step 3 only */
    COMMIT_MPU_PART,        /* a part: the three steps of a PUT, recorded in "mpu_part", never logged */
    COMMIT_MPU_COMPLETE,    /* the parts copied into one new extent; the object written and logged like a PUT's */
    COMMIT_MPU_ABORT,       /* the upload and its parts removed, step 3 only */
} commit_op_t;

/* A part listed by CompleteMultipartUpload, in the client's order. */
typedef struct {
    uint32_t number;
    uint8_t md5[16]; /* the ETag the client names for it */
} commit_mpu_want_t;

/* What Complete copies: one part's bytes (internal). For UploadPartCopy, the
 * source object's range, verified against the source's block checksums as it
 * is read when `have_sums` (common/blocksum.h): `first` is where ext starts in
 * the object, `sums` covers the range (its CRCs in sums_owned, malloc'ed),
 * `name` ("bucket/key", malloc'ed), `version` and `origin` name the object
 * for the damage report. The committer frees sums_owned and name with the list. */
typedef struct {
    alloc_extent_t ext;
    uint64_t size;
    int64_t mtime_ms; /* Complete: when the part was stored (its record's), to match the chase (mpu_chase.h) */
    int have_sums;
    uint64_t first;
    blocksum_view_t sums;
    uint8_t *sums_owned;
    char *name;
    uint64_t version;
    char origin[LOGREC_ORIGIN_MAX + 1];
} commit_mpu_src_t;

/* Why a Complete was refused (commit_job_t.mpu_refusal, with result CIO_EINVAL). */
typedef enum {
    COMMIT_MPU_OK = 0,
    COMMIT_MPU_INVALID_PART, /* a listed part is not stored, or its ETag differs (S3's InvalidPart) */
    COMMIT_MPU_TOO_SMALL,    /* a part but the last is under MPU_PART_SIZE_MIN (EntityTooSmall) */
} commit_mpu_refusal_t;

#define COMMIT_ITEM_ERROR_MAX 160

typedef struct commit_job commit_job_t;
typedef struct commit_item commit_item_t;

/* One event of a COMMIT_APPLY job. */
struct commit_item {
    /* the event, filled by the submitter; strings are NUL-terminated and must
     * stay valid until done() */
    logrec_op_t op;
    uint64_t seq;     /* the event's position in the sending site's log: what the reply acknowledges */
    uint64_t version; /* the mutation's version (common/hlc.h) ... */
    const char *origin;
    size_t origin_len;         /* ... and the site it happened on: what last-writer-wins orders by */
    uint64_t parent_version;   /* the version it replaced on its origin (0 and "" when none): */
    const char *parent_origin; /* passed on unchanged when the event is logged again here (a chain) */
    size_t parent_origin_len;
    vctx_t ctx; /* the key's causal context on its origin when it wrote it (logrec_t's); passed on unchanged */
    const char *bucket;
    size_t blen;
    const char *key; /* "" for PURGE */
    size_t klen;
    const char *ctype;
    size_t ctype_len;
    const uint8_t *meta; /* PUT: the object's metadata (common/objmeta.h), meta_len bytes; "" when none */
    size_t meta_len;
    uint64_t size;
    uint8_t etag[16];
    uint32_t mpu_parts;  /* PUT of a multipart upload's object: its part count and the MD5 of its */
    uint8_t mpu_md5[16]; /* parts' MD5s (the S3 ETag, logrec_t's); 0 for any other */
    int64_t mtime_ms;
    const void *data; /* PUT inline: `size` bytes inside the job's body buffer (borrowed like a PUT's body) */
    const char *url;  /* PUT fetched from the sending site: NULL when inline */

    /* the outcome, valid in done() once `final` is set (every item of a
     * finished job has it, unless the job's result is an error) */
    int final;
    batch_result_t result;
    unsigned status; /* HTTP-like: 200, 410 (gone on the sender), 400, 500, 502/504 (fetch), 507 */
    char error[COMMIT_ITEM_ERROR_MAX];

    /* internal */
    alloc_extent_t ext;
    int needs_ext;        /* step 1: a PUT with bytes that is to be written (replica_allocate) */
    blocksum_calc_t sums; /* a PUT's block checksums, computed from the bytes whose MD5 was checked */
    int sums_ok;          /* sums is complete (storage.checksums on and the bytes written) */
    commit_job_t *job;
    commit_item_t *fetch_next;
};

/* Called on the committer thread once the job's outcome is durable (or it
 * failed). The job then belongs to the callee; the committer never touches it
 * again. */
typedef void (*commit_done_cb)(commit_job_t *job);

struct commit_job {
    /* filled by the submitter */
    commit_op_t op;
    char bucket[LOGREC_BUCKET_MAX + 1];
    size_t blen;
    char key[LOGREC_KEY_MAX + 1];
    size_t klen;
    const void *body; /* PUT: borrowed; must stay valid until done() or commit_release_body() returns */
    uint64_t size;
    char ctype[LOGREC_CTYPE_MAX + 1];
    size_t ctype_len;
    uint8_t meta[OBJMETA_MAX]; /* PUT: the object's metadata besides its content type, a valid blob of */
    size_t meta_len;           /* common/objmeta.h (objmeta_encode); 0 for none */
    commit_done_cb done;
    void *ctx; /* the submitter's */
    /* PUT: when `expect_set`, the key's current object must still be the one
     * a precondition was checked against: version `expect_version`, or none
     * when it is 0. Checked in the commit's transaction, so a conditional PUT
     * is atomic; otherwise the job fails with CIO_ECHANGED and nothing is
     * written. */
    int expect_set;
    uint64_t expect_version;
    /* CONFLICT_DELETE: the loser of key `key` to remove: (loser_version, loser_origin) */
    uint64_t loser_version;
    char loser_origin[LOGREC_ORIGIN_MAX + 1];
    size_t loser_origin_len;

    /* MPU_*: the upload (MPU_ID_LEN hex digits, NUL-terminated); MPU_PART:
     * the part's number (body and size as a PUT's); MPU_CREATE: ctype and
     * meta as a PUT's, recorded for the object; MPU_COMPLETE: the parts to
     * join (borrowed, must stay valid until done()), and the object takes the
     * upload's bucket, key, content type and metadata. The upload must be of
     * bucket/key, otherwise CIO_ENOTFOUND (NoSuchUpload). */
    char upload_id[MPU_ID_LEN + 1];
    uint32_t part_number;
    const commit_mpu_want_t *mpu_want;
    size_t mpu_nwant;

    /* results, valid in done() */
    commit_mpu_refusal_t mpu_refusal; /* MPU_COMPLETE refused with CIO_EINVAL: why */
    uint8_t mpu_etag[16];             /* MPU_COMPLETE: MD5 of the parts' MD5s (the S3 ETag is its hex, "-", mpu_nparts) */
    uint32_t mpu_nparts;
    int result;       /* 0 or a CIO_* code */
    uint8_t etag[16]; /* PUT: MD5 of the body, computed by the committer */
    uint64_t
        version;  /* PUT, DELETE, PURGE: the mutation's version (common/hlc.h; its origin is this site); 0 when nothing changed */
    uint64_t seq; /* its log position (replog_next_seq); 0 when nothing changed */
    int64_t mtime_ms;
    int created;    /* BUCKET_CREATE: 1 when the bucket is new */
    uint64_t count; /* PURGE: objects removed */
    uint64_t bytes; /* PURGE: bytes of object data removed */

    /* APPLY: the events, in batch order (owned by the submitter; `body` is
     * the batch buffer the inline data lives in). When `result` is an error
     * the whole job failed and nothing of it was committed. */
    commit_item_t *items;
    size_t nitems;
    const fetch_opts_t *fetch; /* borrowed; must outlive the job */

    /* internal */
    commit_mpu_src_t *mpu_src; /* MPU_COMPLETE: the parts to copy, in order, set in step 1. MPU_PART of an
                                  UploadPartCopy: set by the submitter, one entry (mpu_nwant 1), the source's bytes,
                                  body NULL. Owned by the job: freed by the committer before done() */
    uint64_t mpu_reader;       /* the reader token (commit_reader_enter) that keeps those extents from reuse until
                                  they are copied; left by the committer; 0: none held */
    alloc_extent_t ext;
    alloc_extent_t mpu_joined; /* MPU_COMPLETE whose listed parts lie back to back, in order (step 1): their extents'
                                  union, the object's extent in step 3 without a copy; owned by the part records
                                  until then, so never ext (which the failure paths free). len 0: copied */
    alloc_extent_t mpu_tail;   /* MPU_COMPLETE joined but for its last part, stored elsewhere: the extent right after
                                  the other parts that step 2 copies it into, pending from step 1 and ext until step 3
                                  succeeds; the end of mpu_joined. len 0: none */
    int body_busy;             /* an I/O thread may be reading body */
    int carved;                /* PUT: ext was cut from a reserved chunk (carve.h) */
    int apply_io;              /* APPLY: some item needs writing or fetching */
    blocksum_calc_t sums;      /* PUT, MPU_COMPLETE: the object's block checksums, computed as its bytes are written */
    int sums_ok;               /* sums is complete (storage.checksums on and the bytes written) */
    size_t fetch_left;
    commit_job_t *next;
};

typedef struct commit commit_t;

/* Starts the committer and `io_threads` writers over `m` and `s`. `site_id`
 * (copied) is the origin of the site's own mutations; `log_enabled` turns
 * the replication log on: the site's own mutations are logged, and so are
 * the remote events it applies (passed on with their origin's version, so
 * that a chain A -> B -> C works). The site's clock starts past the
 * high-water mark META_HLC_LAST. Returns 0, CIO_ENOMEM, CIO_EDB or CIO_ESYS. */
int commit_start(commit_t **out, meta_t *m, store_t *s, const char *site_id, int log_enabled, unsigned io_threads) CIO_MUST_CHECK;

/* Finishes every submitted job, stops the threads and frees the committer.
 * Fetches are abandoned first (commit_abandon_fetches). */
void commit_stop(commit_t *c);

/* Shutdown has begun: fetches from a primary in progress are abandoned
 * within about a second, and later ones fail at once, all as "retry"
 * results, so that no batch waits for a large transfer. Thread-safe,
 * irreversible. */
void commit_abandon_fetches(commit_t *c);

/* Queues a job. Thread-safe. */
void commit_submit(commit_t *c, commit_job_t *job);

/* Waits until no I/O thread reads job->body any more, so the submitter may
 * free the body before done() (a client that went away). The job itself must
 * stay allocated until done() runs. */
void commit_release_body(commit_t *c, commit_job_t *job);

/* Brackets a read of object data: extents released after commit_reader_enter
 * are not reused until the matching leave. Thread-safe, O(1) amortised. */
uint64_t commit_reader_enter(commit_t *c);
void commit_reader_leave(commit_t *c, uint64_t token);

/* Sets how long a replica keeps tombstones (replication.tombstone_ttl); 0
 * keeps them forever, which is also the state before the first call. Expired
 * ones are collected by the committer in small slices, a pass at most once a
 * minute; a call starts one at once, with the new TTL (so that a pass at
 * start-up never runs without it). Thread-safe. */
void commit_set_tombstone_ttl(commit_t *c, uint64_t ttl_ms);

/* Sets how long a conflict's loser is kept after this site recorded it
 * (replication.conflict_ttl); 0 keeps them until removed, which is also the
 * state before the first call. Expired ones are collected in the same
 * passes as tombstones; a call starts one at once. Thread-safe. */
void commit_set_conflict_ttl(commit_t *c, uint64_t ttl_ms);

/* Sets how long a multipart upload may stay neither completed nor aborted
 * (s3.multipart_ttl); 0 keeps them forever, which is also the state before
 * the first call. Older ones are removed, their parts' space returned, a
 * small slice per round, a pass at most every min(TTL/2, 60 s); a call
 * starts one at once. Thread-safe. */
void commit_set_multipart_ttl(commit_t *c, uint64_t ttl_ms);

/* Sets how far ahead of the local clock a remote version may be before
 * apply counts it in META_APPLY_CLOCK_SKEW and logs a warning (at most once
 * a minute); <= 0 for the default, 60 s. Call before the first job. */
void commit_set_max_clock_skew(commit_t *c, int64_t ms);

/* Whether objects written from now on get block checksums (storage.checksums;
 * common/blocksum.h): 1, the state before the first call, or 0 (none computed,
 * and a rewritten object's are removed). Call before the first job. */
void commit_set_checksums(commit_t *c, int on);

/* The site's clock (for status): the largest version taken or applied. Thread-safe. */
uint64_t commit_clock(commit_t *c);

/* Number of commits and jobs so far (for metrics). */
void commit_stats(commit_t *c, uint64_t *commits, uint64_t *jobs);

/* Bytes of completed multipart objects so far whose MD5 and block checksums
 * came from the parts hashed as they were stored (*chased), and bytes that
 * the Completes hashed themselves (*hashed); *joined: bytes of completed
 * objects whose parts' extents became the object's, not copied.
 * Thread-safe (for metrics). */
void commit_mpu_stats(commit_t *c, uint64_t *chased, uint64_t *hashed, uint64_t *joined);

#endif
