/* scrub.h - the background scrub: one thread of storaged that reads every
 * object at a bounded rate, verifies its block checksums, fills in the
 * checksums of objects written before them (after checking their bytes
 * against their MD5 ETag), and records what it found (docs/operations.md,
 * "Scrub"; docs/storage.md, the "scrub" and "damaged" tables).
 *
 * A pass walks "objects" in key order, a page of keys per read transaction,
 * and reads each object in chunks of SCRUB_CHUNK bytes (whole blocks),
 * sleeping between chunks to keep to the rate. Its state (pass number,
 * start, the last objkey done, the counters) is in "scrub" under "state",
 * written at most once a second and at the end of a pass, so a pass cut by
 * a crash or a restart resumes after the last objkey recorded.
 *
 * Schedule: a pass starts when the last one ended more than
 * storage.scrub_interval ago (a new store: at once; a store upgraded to
 * format 5: one interval after the upgrade), or when asked (scrub_request).
 * storage.scrub_rate 0 turns the scheduled passes off; a pass asked for
 * then runs unpaced, and otherwise at storage.scrub_rate.
 *
 * After the objects, a pass reads the kept conflict losers that have
 * checksums (common/conflict.h), one per read transaction, in table order;
 * the state then records that the objects are done and the last loser's
 * table key done, so a pass resumes after it as it does after an objkey:
 * damage found is counted in the pass and by integrity_damaged, but not put
 * in "damaged" nor repaired (a loser is not).
 *
 * Damage: integrity_damaged (path "scrub": counted and logged) and an entry
 * in "damaged": objkey -> a record of storaged/scrubrec.h, dropped when the key's
 * bytes are rewritten or removed (common/meta.h, meta_sums_del); then the
 * scrub thread waits for its repair from a peer (storaged/repair.h), which
 * drops the entry when it succeeds (counted in the pass's `repaired`). */
#ifndef COMIO_STORAGED_SCRUB_H
#define COMIO_STORAGED_SCRUB_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/meta.h"
#include "storaged/scrubrec.h"
#include "storaged/store.h"

#define SCRUB_CHUNK (1u << 20)  /* bytes read at a time: 16 blocks */
#define SCRUB_PAGE 64           /* object records read per read transaction */
#define SCRUB_SAVE_MS 1000      /* the state is written at most this often during a pass */
#define SCRUB_DAMAGED_SHOWN 100 /* damaged objects listed by the status */

typedef struct scrub scrub_t;

/* Starts the thread over m and s, paced by rate (bytes/s; 0: scheduled
 * passes off, asked-for ones unpaced), a new pass interval_ms after the last
 * ended. With `checksums` 0 (storage.checksums off) nothing is verified or
 * filled in: the thread is not started and scrub_request refuses.
 * m and s must outlive the scrub. Returns 0, CIO_ENOMEM, CIO_ESYS or a
 * meta_err code (the state could not be read: logged); *out is NULL on
 * failure. */
int scrub_start(scrub_t **out, meta_t *m, store_t *s, uint64_t rate, uint64_t interval_ms, int checksums) CIO_MUST_CHECK;

/* Stops the thread (a chunk in flight finishes; the state is written) and
 * frees sc. sc may be NULL. */
void scrub_stop(scrub_t *sc);

/* Asks for a pass now. Returns 0 (one starts), CIO_EAGAIN (one is running:
 * nothing changes) or CIO_EINVAL (checksums are off). Any thread. */
int scrub_request(scrub_t *sc) CIO_MUST_CHECK;

/* The status as one JSON object into b (docs/api.md, "GET /admin/scrub"):
 * the current pass, its estimate and eta, the last finished pass and the
 * first SCRUB_DAMAGED_SHOWN damaged objects, read in txn (a read
 * transaction of the caller's). Returns 0 or a meta_err code. Any thread. */
int scrub_status_json(scrub_t *sc, meta_t *m, MDB_txn *txn, buf_t *b) CIO_MUST_CHECK;

/* The comio_scrub_* metrics (Prometheus text) into b; damaged objects are
 * counted in txn. Returns 0 or a meta_err code. Any thread. */
int scrub_metrics(scrub_t *sc, meta_t *m, MDB_txn *txn, buf_t *b) CIO_MUST_CHECK;

/* Gives every quarantined extent (storaged/quarantine.h) back to the free
 * map, in one synced transaction; *extents and *bytes get what was released.
 * For the operator, once the disk is known good (docs/operations.md). 0 or
 * a quarantine_release / meta_err code. Any thread. */
int scrub_release_quarantine(meta_t *m, uint64_t *extents, uint64_t *bytes) CIO_MUST_CHECK;

#endif
