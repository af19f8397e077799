/* repair_backoff.h - the repairer's memory of objects whose repair failed:
 * a growing, capped interval during which asking again is dropped.
 *
 * A repair that found no good copy (no peer reachable, none holding the
 * version, every copy damaged) would fail the same way if asked again at
 * once, and each attempt may hold the repair thread for up to
 * storage.repair_timeout (a peer that does not answer). A replica retrying
 * its fetch, repld asking again and the scrub would ask for it over and
 * over. So after a failure a background request for the same object is
 * dropped until the interval ends: REPAIR_BACKOFF_FIRST_MS after the first
 * failure, doubled after each next one, capped (storage.repair_backoff).
 * A request a client waits on (a GET) is dropped only when the last attempt
 * failed less than REPAIR_BACKOFF_RECENT_MS before it was asked, or after
 * (it was queued while that attempt ran): it then gets that attempt's
 * outcome at once. A success, or an outcome that says nothing of the peers
 * (a local error, the object gone), forgets the object.
 *
 * The object is named as the repairer names it (repair_what_same: bucket,
 * key, version, origin and damaged extent). Not thread-safe: the repairer
 * calls it under its lock. Times are monotonic milliseconds, passed in. */
#ifndef COMIO_STORAGED_REPAIR_BACKOFF_H
#define COMIO_STORAGED_REPAIR_BACKOFF_H

#include <stdint.h>
#include "storaged/repair.h"

#define REPAIR_BACKOFF_FIRST_MS 5000  /* the interval after a first failure (at most the cap) */
#define REPAIR_BACKOFF_RECENT_MS 1000 /* a client's request shares a failure this recent instead of trying again */
#define REPAIR_BACKOFF_SLOTS 128      /* objects remembered; a new one beyond replaces the one that failed longest ago */

typedef struct {
    repair_what_t what;
    int used;
    int result;        /* the last attempt's outcome: CIO_EAGAIN, CIO_ENOTFOUND or CIO_ECORRUPT */
    uint32_t failures; /* in a row */
    int64_t failed_ms; /* when the last attempt ended */
    int64_t until_ms;  /* background requests asked before this are dropped */
    int said;          /* a drop was logged since the last failure */
} repair_backoff_slot_t;

typedef struct {
    uint64_t cap_ms;
    repair_backoff_slot_t slots[REPAIR_BACKOFF_SLOTS];
} repair_backoff_t;

/* Empties b; intervals grow up to cap_ms (0: no back-off, every request
 * runs, a client's too). */
void repair_backoff_init(repair_backoff_t *b, uint64_t cap_ms);

/* Whether an outcome of repair_object is one that asking again at once
 * would repeat: no peer reachable, none holding the version, all damaged. */
int repair_backoff_is_failure(int result);

/* Records the outcome `result` of an attempt at w's object (w borrowed for
 * the call) ended at now_ms: a failure (repair_backoff_is_failure) starts
 * the next, longer interval; anything else forgets the object. */
void repair_backoff_done(repair_backoff_t *b, const repair_what_t *w, int result, int64_t now_ms);

/* Whether a request for w's object asked at asked_ms (client: one a client
 * waits on) is to be dropped: 0 to run it, else the last failure's code
 * (what the request answers). *first is set to 1 for the first drop since
 * that failure (to be logged: once per interval), else 0; *retry_ms to
 * when a background request would run again. */
int repair_backoff_check(repair_backoff_t *b, const repair_what_t *w, int client, int64_t asked_ms, int *first, int64_t *retry_ms);

#endif
