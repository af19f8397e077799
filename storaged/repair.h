/* repair.h - repair from the other site: a damaged object's good copy
 * fetched from a peer that holds the same version, verified, written to a
 * new extent, and the damaged extent quarantined (storaged/quarantine.h).
 *
 * Who asks: a read that finds a block failing its checksum (GET, Range GET,
 * S3 GetObject, CopyObject's source, a deep listing; storaged/integrity.h),
 * the scrub (storaged/scrub.h), and the fetch endpoint when a replica's
 * fetch meets damage (it answers 503 DataDamaged or cuts its reply, and
 * queues a repair_background so that the replica's retry gets good bytes).
 * A fetch that is itself a peer's repair (its URL carries REPAIR_URL_MARK)
 * never repairs in turn: two damaged copies would ask each other forever.
 *
 * Peers: every replication.target and every storage.repair_peers entry, in
 * that order; a URL listed twice is asked once. Each is asked through its
 * presigned fetch endpoint (proto/presign.h), signed with the target's
 * token or the repair peer's (default replication.accept_token); the peer
 * takes a fetch signed with its accept_token too (handler_repl.c), so in a
 * one-way A -> B setup A repairs from B through its target entry, and B
 * from A through storage.repair_peers.
 *
 * Verified twice: the peer serves through its own integrity_read, and here
 * the bytes must match the object's MD5 (its ETag) and each block's CRC32C
 * must match our record (common/blocksum.h) before anything points at them.
 * Then one transaction points the object record at the new extent (only if
 * it is still the same version at the damaged extent: a newer write in
 * between wins and the fetched copy is freed) and quarantines the old one.
 *
 * Two lanes, a worker thread each, one repair at a time in the order asked:
 * REPAIR_LANE_CLIENT for the repairs a client waits on (a GET, CopyObject),
 * REPAIR_LANE_BACKGROUND for the rest (the fetch endpoint's, repld's, the
 * scrub's), so that a background repair held by a peer that does not answer
 * never makes a client wait. A repair of an object no longer at the damaged
 * extent (repaired already, rewritten, deleted) is done at once. Each repair
 * is bounded by storage.repair_timeout from when it was asked; one that
 * waited that long in its lane ends with CIO_EAGAIN unrun (counted,
 * REPAIR_SKIP_EXPIRED). Two lanes may repair the same object at once: the
 * swap is made only while the object is still at the damaged extent, so the
 * second one gives its copy back and succeeds.
 *
 * Failures are remembered (storaged/repair_backoff.h): after a repair found
 * no good copy, background requests for the same object are dropped for a
 * growing interval (storage.repair_backoff caps it), a client's only when
 * the failure is under a second old. A peer that did not answer (connection
 * refused, reset, timed out before any status) is remembered as down for
 * REPAIR_PEER_DOWN_MS: the next repairs ask the other peers first and it
 * last (still asked, with the time left). A repair does not wait for a
 * silent peer either: when the peers asked have sent no status line within
 * the hedge delay (REPAIR_HEDGE_MS, at most a quarter of
 * storage.repair_timeout), the next is asked as well, in parallel (each
 * into an extent of its own), and the silent ones are marked down as if
 * they had timed out; the first verified copy wins, the other asks are
 * abandoned and their extents given back (comio_repair_hedged_total).
 * One repairer per process: repair_start once, before the loops and the
 * scrub start. */
#ifndef COMIO_STORAGED_REPAIR_H
#define COMIO_STORAGED_REPAIR_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"
#include "proto/logrec.h"
#include "storaged/integrity.h"
#include "storaged/store.h"

#define REPAIR_QUEUE_MAX 1024    /* repairs waiting in a lane; beyond, a request is refused (CIO_EAGAIN) */
#define REPAIR_URL_EXPIRES_S 600 /* the presigned URL's lifetime */
/* Appended to a repair's fetch URL (outside the signature, docs/protocol.md):
 * the peer serves it as any fetch but queues no repair of its own copy. */
#define REPAIR_URL_MARK "&repair=1"
#define REPAIR_URL_PARAM "repair" /* the query parameter REPAIR_URL_MARK sets to 1 */
#define REPAIR_PEER_DOWN_MS 30000 /* how long a peer that did not answer is asked last */
/* A peer that sent no status line this long after it was asked (at most a
 * quarter of storage.repair_timeout) is marked down and the next one asked
 * as well (hedged): a repair a client waits on is not held by a peer that
 * hangs while another could answer in milliseconds. */
#define REPAIR_HEDGE_MS 1000

/* Which worker a repair waits for (see above). */
typedef enum { REPAIR_LANE_CLIENT, REPAIR_LANE_BACKGROUND, REPAIR_NLANES } repair_lane_t;

/* Why a repair asked for was not run (comio_repair_skipped_total{reason}). */
typedef enum {
    REPAIR_SKIP_DUPLICATE, /* a background request while one for the object is queued or running */
    REPAIR_SKIP_BACKOFF,   /* a background request within the back-off after a failure */
    REPAIR_SKIP_RECENT,    /* a client's request within REPAIR_BACKOFF_RECENT_MS of a failure: answered with it */
    REPAIR_SKIP_EXPIRED,   /* waited in its lane past storage.repair_timeout */
    REPAIR_NSKIPS
} repair_skip_t;

/* What to repair: the object (bucket, key) at version (version, origin)
 * whose extent at `off` was found damaged at `block` (UINT64_MAX: unknown,
 * the MD5 failed) by `path`. Strings NUL-terminated. */
typedef struct {
    char bucket[LOGREC_BUCKET_MAX + 1];
    char key[LOGREC_KEY_MAX + 1];
    size_t blen, klen;
    uint64_t version;
    char origin[LOGREC_ORIGIN_MAX + 1];
    size_t origin_len;
    uint64_t off;
    uint64_t block;
    integrity_path_t path;
} repair_what_t;

/* Fills w from its parts (copied; b, k and origin need no NUL). */
void repair_what_set(repair_what_t *w, const char *b, size_t blen, const char *k, size_t klen, uint64_t version, const char *origin,
                     size_t origin_len, uint64_t off, uint64_t block, integrity_path_t path);

/* Whether a and b name the same version of the same object at the same extent. */
int repair_what_same(const repair_what_t *a, const repair_what_t *b);

/* Starts the repairer over m and s with the peers of conf (borrowed: conf
 * must outlive it). Returns 0, CIO_ENOMEM or CIO_ESYS (logged). With no
 * peer, repairs fail at once (CIO_ENOTFOUND), counted. */
int repair_start(const conf_t *conf, meta_t *m, store_t *s) CIO_MUST_CHECK;

/* Stops the workers: a fetch in flight is abandoned within about a second,
 * every repair waiting ends with CIO_EAGAIN, and later ones are refused. */
void repair_stop(void);

/* A failed repair is logged once in a while per object and outcome
 * (integrity_recent), not on every read or retry that asks again; the
 * comio_repair_* counters count every one. */

/* Repairs w in `lane` and waits for the outcome (never on an event loop).
 * In REPAIR_LANE_BACKGROUND it is dropped while w's object is in its
 * back-off (returning the failure that started it), in the client lane
 * only when that failure is under REPAIR_BACKOFF_RECENT_MS old. Returns:
 *   0             the object is good now: repaired, or no longer at the
 *                 damaged extent (repaired already, rewritten, deleted);
 *   CIO_ECORRUPT  every peer that holds the version has it damaged too:
 *                 logged as "damaged on every site", both copies left;
 *   CIO_ENOTFOUND no peer holds that version (or none is configured);
 *   CIO_EAGAIN    no good copy now: peers unreachable, timeout, stopping;
 *   CIO_ENOSPC, CIO_EIO, CIO_ENOMEM or a meta_err code. */
int repair_object(const repair_what_t *w, repair_lane_t lane) CIO_MUST_CHECK;

/* Called on the worker thread with a repair's outcome (repair_object's codes). */
typedef void (*repair_done_t)(void *arg, int result);

/* Queues w (copied) in the client lane and returns at once; done(arg,
 * result) is called once it ends. Returns 0, or CIO_EAGAIN (the queue is
 * full, or stopping), CIO_ENOMEM, or the outcome of a repair of the same
 * object that failed under REPAIR_BACKOFF_RECENT_MS ago (CIO_EAGAIN,
 * CIO_ENOTFOUND, CIO_ECORRUPT), and then done is never called. Any thread. */
int repair_submit(const repair_what_t *w, repair_done_t done, void *arg) CIO_MUST_CHECK;

/* Queues w (copied) with nobody waiting: a reader that could not wait
 * (the fetch endpoint serving a replica: its reply was refused or under
 * way) leaves the object repaired for the next one, in the background
 * lane. Once per object: when a repair or check of the same version at the
 * same extent is queued or running (in either lane), or the object is in its back-off,
 * nothing more is queued (a replica retrying its fetch asks again and
 * again); counted, the back-off logged once per interval. When it cannot be
 * queued that is logged. Any thread. */
void repair_background(const repair_what_t *w);

#define REPAIR_CHECK_CHUNK (1024 * 1024) /* repair_check reads this much at a time (whole blocks) */

/* Queues a check of w's object (the version, origin and extent w names; its
 * block is ignored) with nobody waiting: the worker reads the object through
 * integrity_read and only when a block fails counts the damage (w->path),
 * logs it and repairs it as repair_background does. An object without block
 * checksums, or no longer that version at that extent, is left alone. For
 * a reader in another process that found damage (repld's inline read, via
 * POST /admin/scrub?bucket=B&key=K), in the background lane. Once per
 * object, as repair_background (repld asks on every retry). Returns 0
 * (queued, or one is queued or running already, or the object is in its
 * back-off: counted), CIO_EAGAIN (the queue is full, or stopping) or
 * CIO_ENOMEM. Any thread. */
int repair_check(const repair_what_t *w) CIO_MUST_CHECK;

/* What became of a check asked for by repair_check_ask. */
typedef enum {
    REPAIR_ASKED_QUEUED,  /* queued */
    REPAIR_ASKED_JOINED,  /* one for the object is queued or running already: it serves this request too */
    REPAIR_ASKED_BACKOFF, /* dropped: the object is in its back-off after a repair found no good copy */
} repair_asked_how_t;

typedef struct {
    repair_asked_how_t how;
    int failure;          /* REPAIR_ASKED_BACKOFF: the failure that started it (CIO_EAGAIN, CIO_ENOTFOUND, CIO_ECORRUPT) */
    uint64_t retry_in_ms; /* REPAIR_ASKED_BACKOFF: until a request for the object is run again */
} repair_asked_t;

/* repair_check for an operator (POST /admin/scrub?bucket=B&key=K), who is
 * told what became of it in *out (filled when 0 is returned). With force,
 * the back-off does not drop it (neither now nor when its turn comes); one
 * for the object queued or running already still serves it. Returns as
 * repair_check. Any thread. */
int repair_check_ask(const repair_what_t *w, int force, repair_asked_t *out) CIO_MUST_CHECK;

/* Counters since start. */
typedef struct {
    uint64_t attempted, repaired, failed, everywhere; /* everywhere: failed as damaged on every site */
    uint64_t blocks, bytes;                           /* written back by the repairs */
    uint64_t hedged;                                  /* peers asked while the one asked before had not answered */
    uint64_t skipped[REPAIR_NSKIPS];                  /* asked but not run, by reason */
} repair_stats_t;
void repair_stats(repair_stats_t *out);

/* The comio_repair_* metrics (Prometheus text) into b; the quarantine is
 * read in txn. 0 or a meta_err code. Any thread. */
int repair_metrics(meta_t *m, MDB_txn *txn, buf_t *b) CIO_MUST_CHECK;

#endif
