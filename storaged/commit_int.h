/* commit_int.h - what the parts of the group committer share: commit_t and the calls between them.
 *
 * Not a public API: storaged's other modules use commit.h. The committer is
 * split by what a reader looks for:
 *   commit.c     the committer thread's rounds and the public API (commit.h);
 *   commit_io.c  the I/O threads (bodies written) and the fetchers (large
 *                replicated objects fetched from the primary);
 *   reuse.c      when a freed extent may be handed out again: readers,
 *                quarantine, chunks reserved for small PUTs (carve.h);
 *   mutate.c     the local mutations: PUT, DELETE, PURGE, bucket operations;
 *   replica.c    the apply of another site's events, last writer wins,
 *                and their record in this site's log (docs/replication-apply.md);
 *   tombgc.c     the collection of expired tombstones;
 *   commit_mpu.c multipart uploads: parts, Complete's copy, Abort, expiry;
 *   commit_chase.c the thread that hashes uploads' parts as they are stored.
 * Unless a comment says otherwise, the functions below run on the committer
 * thread and write inside the round's transaction `txn`; they return 0 or a
 * CIO_* code, and a fatal one (commit_fatal) fails the whole round. */
#ifndef COMIO_COMMIT_INT_H
#define COMIO_COMMIT_INT_H

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "common/clock.h"
#include "common/hlc.h"
#include "storaged/carve.h"
#include "storaged/commit.h"
#include "storaged/mpu_chase.h"
#include "common/conflict.h"
#include "common/log.h"

/* threads fetching large objects from a primary: fetches in flight at once.
 * Over a long round trip each fetch costs at least one RTT before its first
 * byte, so the objects of a backlog flow at about FETCHERS x object / RTT
 * until the link is full: 4 held 256 KiB objects to ~20 MB/s at 50 ms. */
#define FETCHERS 16

typedef struct {
    alloc_extent_t ext;
    uint64_t tag; /* reusable once every reader with token <= tag has left */
    int reserved; /* counted as reserved already: a piece of a chunk (carve.h) */
    int keep;     /* released into carve for reuse, not to the free map */
} quarantined_t;

typedef struct {
    uint64_t epoch;
    uint64_t count;
} reader_slot_t;

typedef struct {
    commit_job_t *head, **tail;
} job_list_t;

typedef struct commit_chase commit_chase_t; /* commit_chase.c */

#define MPU_PLACE_MAX 32 /* uploads whose parts are placed back to back at once (commit_mpu.c) */

/* Where the parts of an upload in progress go, so that a Complete can join
 * them (commit_mpu.c): part n at base + (n - 1) * slot. Its run, the parts
 * up to `last` and the next few places, is kept clear of other writers while
 * they find room elsewhere (commit_mpu_alloc). Committer thread only. */
typedef struct {
    char id[MPU_ID_LEN]; /* id[0] == 0: unused */
    uint64_t base;       /* part 1's offset */
    uint64_t slot;       /* the first stored part's extent length */
    int64_t touched_ms;  /* monotonic: when a part last asked */
    uint32_t placed;     /* parts taken at their places */
    uint32_t first;      /* the number of the part that set the place */
    uint32_t last;       /* the highest-numbered part taken at its place (0: none yet) */
} mpu_place_t;

struct commit {
    meta_t *meta;
    store_t *store;
    char *site_id;
    int log_enabled;
    int round_unlogged; /* committer only: this round committed a mutation that was not logged (log_enabled 0) */

    pthread_mutex_t mu; /* inbox, written, stopping, in_io */
    pthread_cond_t cv;
    job_list_t inbox;   /* submitted, not yet seen by the committer */
    job_list_t written; /* PUT bodies written and synced */
    int stopping;
    int carve_wake; /* a cut wants a chunk offered */
    uint64_t in_io; /* PUTs between allocate and finish */
    pthread_t thread;

    pthread_mutex_t io_mu; /* io queue, body_busy flags */
    pthread_cond_t io_cv, body_cv;
    job_list_t io;
    int io_stopping;
    unsigned nio;
    pthread_t *io_threads;

    pthread_mutex_t fetch_mu; /* fetch queue, fetch_left of the jobs in it */
    pthread_cond_t fetch_cv;
    commit_item_t *fetch_head, **fetch_tail;
    int fetch_stopping;
    int fetch_cancel; /* atomic: shutting down, abandon the fetches in progress */
    unsigned nfetch;
    pthread_t fetch_threads[FETCHERS];

    carve_t carve; /* small PUTs' extents */

    int64_t quarantine_poll_ms; /* QUARANTINE_POLL_MS, or COMIO_QUARANTINE_POLL_MS (tests) */
    int crash_after_apply;      /* tests only: COMIO_STORAGED_CRASH_AT=apply-committed (commit.c) */
    int crash_mpu;              /* tests only: 1 mpu-copied (a Complete's copy synced, not committed), 2 mpu-committed */
    uint64_t tomb_ttl_ms;       /* atomic; 0: keep tombstones */
    uint64_t conflict_ttl_ms;   /* atomic; 0: keep conflict losers until removed */
    EVP_MD *md5;                /* fetched once: EVP_md5() would look the implementation up at every digest */
    int checksums;              /* storage.checksums: objects' block checksums computed (commit_set_checksums) */
    hlc_t hlc;                  /* the site's clock: every local version is taken from it, every applied one advances it */

    pthread_mutex_t rd_mu; /* readers */
    uint64_t epoch;
    reader_slot_t *readers;
    size_t nreaders, capreaders;

    uint64_t commits, jobs; /* atomic: written by the committer thread, read by commit_stats on any */
    commit_chase_t *chase;  /* owned; NULL: no chase (commit_chase.c) */
    uint64_t mpu_chased;    /* atomic: bytes of Completes whose hashes came from the chase (commit_mpu_stats) */
    uint64_t mpu_hashed;    /* atomic: bytes of Completes hashed by the Complete itself */
    uint64_t mpu_joined;    /* atomic: bytes of Completes whose parts' extents became the object's (no copy) */

    /* committer thread only */
    alloc_extent_t *chunks_out; /* reserved extents freed in the open transaction */
    size_t nchunks_out, capchunks_out;
    quarantined_t *q;
    size_t nq, capq;
    int64_t gc_next_ms; /* when the next collection pass may start */
    int gc_kick;        /* under mu: a TTL changed, so a pass starts at once (the committer clears it) */
    int gc_running;     /* a pass is under way: one slice per round */
    uint64_t gc_removed;
    uint8_t gc_pos[META_OBJKEY_MAX];
    size_t gc_pos_len;
    int gc_conflicts;                  /* the pass is at its second part: expired conflict losers */
    uint8_t gc_cpos[CONFLICT_POS_MAX]; /* where that part goes on */
    size_t gc_cpos_len;
    uint64_t mpu_ttl_ms; /* atomic; 0: keep multipart uploads (s3.multipart_ttl) */
    int64_t mpu_next_ms; /* atomic (commit_set_multipart_ttl resets it from another thread): when the next expiry pass may start */
    int mpu_running;     /* an expiry pass is under way: one slice per round */
    int mpu_pos_set;     /* it goes on after upload mpu_pos */
    char mpu_pos[MPU_ID_LEN];
    mpu_place_t mpu_place[MPU_PLACE_MAX];
    uint64_t hlc_saved;     /* META_HLC_LAST as last committed */
    int64_t skew_warn_ms;   /* when the last clock skew warning was logged */
    uint64_t skew_unwarned; /* skewed versions since that warning */
};

static inline void list_init(job_list_t *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static inline void list_push(job_list_t *l, commit_job_t *j)
{
    j->next = NULL;
    *l->tail = j;
    l->tail = &j->next;
}

static inline commit_job_t *list_take(job_list_t *l)
{
    commit_job_t *h = l->head;
    list_init(l);
    return h;
}

/* Fills *o with the record of an object of `size` bytes in extent ext, as a
 * PUT writes it, at version (version, origin: NUL-terminated, at most
 * LOGREC_ORIGIN_MAX bytes), with its metadata (meta_len bytes, at most
 * OBJMETA_MAX, copied); every other field is 0. */
static inline void commit_obj_init(meta_obj_t *o, uint64_t version, const char *origin, alloc_extent_t ext, uint64_t size,
                                   const uint8_t etag[16], int64_t mtime_ms, const char *ctype, size_t ctype_len,
                                   const uint8_t *meta, size_t meta_len)
{
    memset(o, 0, sizeof(*o));
    o->version = version;
    o->origin_len = (uint16_t)strlen(origin);
    memcpy(o->origin, origin, o->origin_len);
    o->off = ext.off;
    o->alen = ext.len;
    o->size = size;
    memcpy(o->etag, etag, 16);
    o->mtime_ms = mtime_ms;
    o->ctype_len = (uint16_t)ctype_len;
    memcpy(o->ctype, ctype, ctype_len);
    o->meta_len = (uint16_t)meta_len;
    if (meta_len > 0)
        memcpy(o->meta, meta, meta_len);
}

/* An error after which the round's transaction cannot go on: the round fails
 * and every job in it with that error. Any other error is one job's own. */
static inline int commit_fatal(int err)
{
    return err == CIO_EDB || err == CIO_EMAPFULL || err == CIO_ENOMEM || err == CIO_EPROTO;
}

/* ---- commit_io.c ---- */

/* Starts the block checksums of `size` bytes into *sums when c->checksums is
 * on (then returns 1; 0 when off or out of memory: the object goes without). */
static inline int commit_sums_start(commit_t *c, blocksum_calc_t *sums, uint64_t size)
{
    memset(sums, 0, sizeof(*sums));
    if (!c->checksums)
        return 0;
    if (blocksum_calc_init(sums, size) != 0) {
        blocksum_calc_free(sums);
        return 0;
    }
    return 1;
}

/* Hands job j (a PUT with its extent, or an APPLY job with some item to write
 * or fetch) to the I/O threads; it comes back to the committer through
 * c->written. Any thread. */
void commit_io_enqueue(commit_t *c, commit_job_t *j);

/* Thread bodies: an I/O thread, and a fetcher. `arg` is the commit_t. */
void *commit_io_main(void *arg);
void *commit_io_fetch_main(void *arg);

/* ---- reuse.c: freed extents, readers, chunks ---- */

/* Oldest reader token still reading, or UINT64_MAX. Any thread. */
uint64_t reuse_oldest_reader(commit_t *c);

/* Remembers extent e (already marked pending) until readers are done with
 * it; tag UINT64_MAX: set at the round's commit; `reserved`: e is a piece of
 * a chunk, still in the reserved total. Returns 0 or CIO_ENOMEM. */
int reuse_quarantine_track(commit_t *c, alloc_extent_t e, uint64_t tag, int reserved) CIO_MUST_CHECK;

/* Marks e pending in txn and quarantines it; its tag is set at commit. */
int reuse_quarantine_add(commit_t *c, MDB_txn *txn, alloc_extent_t e) CIO_MUST_CHECK;

/* Releases, in txn, the quarantined extents no reader can still see; sets
 * *released to how many (dropped from the list by the caller once txn
 * commits, after reuse_quarantine_keep). */
int reuse_quarantine_release(commit_t *c, MDB_txn *txn, size_t *released) CIO_MUST_CHECK;

/* After the commit of reuse_quarantine_release: hands the kept extents to carve. */
void reuse_quarantine_keep(commit_t *c, size_t released);

/* Frees, in txn, the chunk remainders no longer cut from (with `all`, what is
 * left of every chunk), remembered in c->chunks_out. */
int reuse_chunks_release(commit_t *c, MDB_txn *txn, int all) CIO_MUST_CHECK;

/* When a cut wants one, reserves a chunk in txn; *chunk (len 0: none) is to be
 * offered to carve once txn is durable. */
int reuse_chunk_reserve(commit_t *c, MDB_txn *txn, alloc_extent_t *chunk) CIO_MUST_CHECK;

/* commit_mpu_alloc, with the chunks' unused space given back first when
 * nothing fits. Returns 0, CIO_ENOSPC or a fatal code. */
int reuse_take_extent(commit_t *c, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out) CIO_MUST_CHECK;

/* At shutdown, on the committer thread after its last round: gives the
 * chunks' remainders and the quarantine back to the free map in a
 * transaction of its own. Logs a failure. */
void reuse_release_at_stop(commit_t *c);

/* ---- mutate.c: the local mutations ---- */

/* Bucket b's record into *bk, or a new one (in memory only, *created set)
 * when it does not exist: marked deleted, with the delete's version, when
 * the bucket has a tombstone (it goes again once empty). */
int mutate_bucket_load_or_create(commit_t *c, MDB_txn *txn, const char *b, size_t blen, meta_bucket_t *bk,
                                 int *created) CIO_MUST_CHECK;

/* What the site knows of bucket b itself: the larger of its record's
 * version (bk, when had_bk) and its tombstone's, into *known; *had_tomb
 * tells whether it has a tombstone. */
int mutate_bucket_known(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk, int had_bk, int *had_tomb,
                        meta_ver_t *known) CIO_MUST_CHECK;

/* Writes bucket b's record, or, when it is deleted and holds no object any
 * more, removes it and keeps its version as the bucket's tombstone. Every
 * change of a bucket's counters goes through here. */
int mutate_bucket_store(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_bucket_t *bk) CIO_MUST_CHECK;

/* Step 3 of a PUT (its body written and synced), a DELETE, a PURGE, a bucket
 * creation or deletion (by j->op). Fill the job's results; a non-fatal
 * error is the job's own result (CIO_ENOTFOUND, CIO_ENOTEMPTY ...). */
int mutate_put(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;
int mutate_delete(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;
int mutate_purge(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;
int mutate_bucket(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* What the site knows of key k: the largest version (hlc_version_cmp) of
 * its bucket's purge (`purge`), its object (`old`, when had_old) and its
 * tombstone, into *known; *had_tomb tells whether it has a tombstone, and
 * then *tomb holds it. *kctx gets the key's causal context: the object's
 * and the tombstone's versions with their contexts, and the purge's
 * version less one as the floor (a purge covers every older version of
 * any site; one of the purge's own clock value is ordered by site id).
 * Used as a local mutation's parent and context, and by apply to tell
 * stale, descendant and concurrent events apart. */
int mutate_key_known(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_ver_t *purge,
                     const meta_obj_t *old, int had_old, int *had_tomb, meta_tomb_t *tomb, meta_ver_t *known,
                     vctx_t *kctx) CIO_MUST_CHECK;

/* ---- replica.c: a replica's batch (COMMIT_APPLY) ---- */

/* Removes key k's kept conflict losers that context ctx has seen (a write
 * with that context overwrote them), freeing their extents. */
int replica_conflicts_supersede(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen,
                                const vctx_t *ctx) CIO_MUST_CHECK;

/* Removes job j's kept conflict loser (COMMIT_CONFLICT_DELETE), freeing
 * its extent: 0, or CIO_ENOTFOUND when the site keeps no such loser. Not
 * logged: each site's list is its own to clean. */
int replica_conflict_remove(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* Removes bucket b's kept conflict losers ordered before a purge at `version`. */
int replica_conflicts_purge(commit_t *c, MDB_txn *txn, const char *b, size_t blen, const meta_ver_t *version) CIO_MUST_CHECK;

/* Sets the item's outcome (final); the message is formatted into it->error. Any thread. */
void replica_item_set(commit_item_t *it, batch_result_t result, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The item failed with err, to be retried (507 when out of space). Any thread. */
void replica_item_fail(commit_item_t *it, int err);

/* Logs the item's event and its error at lvl. Any thread. */
void replica_item_log(const commit_item_t *it, log_level_t lvl, const char *msg);

/* Step 1: extents for the job's PUTs that are not already stale; sets
 * j->apply_io when some item needs writing or fetching. Only fatal errors
 * are returned. */
int replica_allocate(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* Step 3: every event of the job, in batch order. Only fatal errors are
 * returned; the round then fails. */
int replica_finish(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* After a failed round: the job's extents (pending since step 1) are freed
 * by a later round. */
void replica_release_extents(commit_t *c, commit_job_t *j);

/* ---- tombgc.c: expired tombstones and conflict losers ---- */

/* Whether a collection pass is under way or may start at `now`. */
int tombgc_due(commit_t *c, int64_t now);

/* One slice of a pass in txn (tombstones, then conflict losers); *collected: records removed. */
int tombgc_slice(commit_t *c, MDB_txn *txn, uint64_t *collected) CIO_MUST_CHECK;

/* ---- commit_mpu.c: multipart uploads (storaged/mpu.h) ---- */

/* Whether job j, coming out of its first round, goes to the I/O threads:
 * a PUT or part with bytes, a Complete with an extent to fill or parts to hash. */
static inline int commit_job_needs_io(const commit_job_t *j)
{
    return ((j->op == COMMIT_PUT || j->op == COMMIT_MPU_PART) && j->size > 0) ||
           (j->op == COMMIT_MPU_COMPLETE && (j->ext.len > 0 || j->mpu_joined.len > 0));
}

/* Step 1 of an MPU_PART with bytes: its extent (j->ext), at the upload's next
 * place when that is free and not in another upload's run (alloc_take: part
 * n at base + (n - 1) * slot), else wherever commit_mpu_alloc finds room.
 * The place is found in memory, else rebuilt from the upload's stored parts
 * (the lowest-numbered one, of 5 MiB or more, sets base and slot: after a
 * restart, later parts go on next to earlier ones), else chosen at this part:
 * in the largest free space outside the other uploads' runs, an eighth into
 * it (leaving the space before it to other writers), or, when it follows
 * another upload's run, where both have as much room (that one from its base);
 * only when that space holds 16 such parts and the part is 5 MiB or more.
 * A place set by a later part alone (the upload's shorter last part, stored
 * first) is set again by a longer, lower-numbered part. The caller marks
 * the extent pending. Returns 0, CIO_ENOSPC or a fatal CIO_* code. */
int commit_mpu_place_part(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* alloc_alloc outside the runs of the uploads in progress (each upload's
 * parts so far and its next places, unless no part asked for PLACE_IDLE_MS),
 * so that their later parts still find their places free; when nothing fits
 * there and `anywhere` is set, anywhere (a run is a preference held in
 * memory, never a reason to refuse a write: only a caller with a smaller
 * size to try next passes 0). Every allocation of the committer but a
 * part's at its place goes through here. Returns 0, CIO_ENOSPC or a fatal
 * CIO_* code. */
int commit_mpu_alloc(commit_t *c, MDB_txn *txn, uint64_t bytes, int anywhere, alloc_extent_t *out) CIO_MUST_CHECK;

/* Forgets where the parts of upload `id` go (it was completed, aborted or expired). */
void commit_mpu_place_drop(commit_t *c, const char *id);

/* Step 3 of MPU_CREATE, MPU_PART and MPU_ABORT (by j->op). */
int commit_mpu_finish(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* Step 1 of MPU_COMPLETE: checks the listed parts against the stored ones
 * (a refusal is the job's result: CIO_ENOTFOUND, or CIO_EINVAL with
 * j->mpu_refusal), computes the multipart ETag and lists in j->mpu_src the
 * parts. When their extents lie back to back, in order, with no gap between
 * their bytes, j->mpu_joined is their union (nothing to copy). When all but
 * the last do and the space right after them is free, that space becomes
 * j->mpu_tail (and j->ext, pending) for the last part's copy, and
 * j->mpu_joined the union with it. Else it takes the object's extent (j->ext,
 * marked pending) to copy them into. An object of no bytes is finished at
 * once (commit_mpu_complete). */
int commit_mpu_complete_begin(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* Step 2 of MPU_COMPLETE, on an I/O thread: copies the parts into j->ext (of a
 * joined Complete, only its last part, into j->mpu_tail),
 * computing j->etag (the MD5 of the whole body) and the block checksums,
 * from the chase's state after the listed parts it hashed already
 * (chase_take) or from nothing; from HASH_PASS_MIN bytes left to hash on,
 * a second thread started and joined here reads the parts for both while
 * the kernel copies them (store_copy). Step 2 of an UploadPartCopy (an
 * MPU_PART with mpu_src): its source copied, its ETag computed. Leaves the
 * job's reader token. Returns 0 or CIO_EIO / CIO_ENOMEM (CIO_ECORRUPT: an
 * UploadPartCopy's damaged source). */
int commit_mpu_copy(commit_t *c, commit_job_t *j) CIO_MUST_CHECK;

/* Step 3 of MPU_COMPLETE: unless the upload changed since step 1 (then
 * CIO_ECHANGED), writes the object as a PUT does (mutate_put: one log
 * record) and removes the upload, freeing its parts' extents, except those
 * of a joined Complete, which the object now owns (j->ext is then set to
 * j->mpu_joined only on success, so no failure path frees them; until then
 * it is j->mpu_tail, the one extent of such a Complete a failure frees). */
int commit_mpu_complete(commit_t *c, MDB_txn *txn, commit_job_t *j) CIO_MUST_CHECK;

/* ---- commit_chase.c: the parts hashed as they are stored (storaged/mpu_chase.h) ---- */

/* Starts the chase thread into c->chase: 0, or CIO_ENOMEM. A thread that
 * cannot start is logged and leaves a chase that does nothing. */
int chase_start(commit_t *c) CIO_MUST_CHECK;

/* Stops the thread and drops every state (chase_note and chase_take then do
 * nothing); chase_free frees c->chase after the other threads are joined. */
void chase_stop(commit_t *c);
void chase_free(commit_t *c);

/* On the committer, once job j's round is durable (any job: only a part,
 * Complete or Abort that succeeded counts): a part stored wakes its
 * upload's chase (started if there is none; one replacing a part of the
 * run sends it back before that part); a Complete or Abort drops it. */
void chase_note(commit_t *c, const commit_job_t *j);

/* Takes upload id's chase out (waiting for a part being fed to stop) into
 * *out, which the caller frees (mpu_chase_free): 0, or CIO_ENOTFOUND when
 * the upload has none (*out zeroed). Any thread. */
int chase_take(commit_t *c, const char *id, mpu_chase_t *out) CIO_MUST_CHECK;

/* One slice of the expiry of uploads older than the TTL (s3.multipart_ttl),
 * in the round's transaction; *collected: uploads removed. */
int commit_mpu_expire_due(commit_t *c, int64_t now);
int commit_mpu_expire_slice(commit_t *c, MDB_txn *txn, uint64_t *collected) CIO_MUST_CHECK;

#endif
