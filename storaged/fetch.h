/* fetch.h - a replica's fetch of a large object from the primary, and a
 * repair's fetch of a damaged object's good copy from a peer (libcurl).
 *
 * The primary's repld ships objects at or above its inline threshold as a
 * presigned URL on the primary (proto/presign.h). The replica GETs it and
 * streams the body straight into the extent allocated for it, computing the
 * MD5 as the bytes arrive: an object is never held in memory. The caller
 * (the committer's fetcher threads, commit_io.c) owns threads and extents. */
#ifndef COMIO_FETCH_H
#define COMIO_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include "common/blocksum.h"
#include "common/err.h"
#include "storaged/store.h"

#define FETCH_ERROR_MAX 256

/* How to reach the primary; borrowed by every fetch, so it must outlive them. */
typedef struct {
    const char *ca_file; /* PEM bundle trusted for https:// (replication.ca_file); NULL: the system's CAs */
} fetch_opts_t;

/* One fetcher's libcurl handle, kept from fetch to fetch. Not thread-safe:
 * one per thread. */
typedef struct fetch fetch_t;

/* Initialises libcurl. Call once, before any other thread may fetch. 0 or
 * CIO_ENOMEM. */
int fetch_global_init(void) CIO_MUST_CHECK;

/* Creates a fetcher (freed with fetch_free). A fetch in progress is
 * abandoned (CIO_EAGAIN) within about a second once *cancel (read
 * atomically; may be NULL) is non-zero: shutdown need not wait for a large
 * transfer. `cancel` must outlive the fetcher. NULL when out of memory. */
fetch_t *fetch_new(const int *cancel);
void fetch_free(fetch_t *f);

/* Bounds every later fetch of f to `ms` milliseconds in all (0: no bound
 * but the stall detection; the default). A fetch cut by it is CIO_EAGAIN.
 * The repair (storaged/repair.h) bounds its fetches: a GET waits for them. */
void fetch_set_timeout(fetch_t *f, uint64_t ms);

/* GETs `url` (NUL-terminated, http:// or https://; TLS peers are verified)
 * and writes its body at `off` in `s`, which must have room for `size`
 * bytes. Succeeds only when the primary answered 200 with exactly `size`
 * bytes whose MD5 is `etag`; the bytes are then written, not yet synced.
 * Returns:
 *   0             the body is in place;
 *   CIO_ENOTFOUND the primary answered 410: that version is gone there
 *                 (overwritten or deleted; a newer event follows);
 *   CIO_EAGAIN    worth another try later: connection error, timeout or
 *                 stall, any other status, a size mismatch;
 *   CIO_ECORRUPT  the bytes do not match the ETag (worth another try too);
 *   CIO_EIO       writing to the data store failed;
 *   CIO_ENOMEM.
 * Except for 0, a one-line reason is written into err (at most errlen
 * bytes; for a status other than 200 with the error code of the peer's
 * JSON body, as "the primary answered 503 DataDamaged"); nothing is
 * logged here. *status gets the HTTP status (0 when none
 * arrived). Bytes written before a failure stay in the extent: the caller
 * frees it. `sums` (NULL: none), started for `size` bytes by the caller, is
 * fed the bytes as they are written: the block checksums of what the MD5
 * check then vouches for; meaningful only when 0 is returned. */
int fetch_to_store(fetch_t *f, const fetch_opts_t *o, const char *url, store_t *s, uint64_t off, uint64_t size,
                   const uint8_t etag[16], blocksum_calc_t *sums, unsigned *status, char *err, size_t errlen) CIO_MUST_CHECK;

/* fetch_to_store in three steps, for a caller that runs several fetches at
 * once in one curl multi handle (the repair's hedged asks, repair.h):
 * fetch_begin sets f up for the fetch fetch_to_store would make (its
 * arguments as there, borrowed until fetch_finish) without starting it, and
 * returns 0 or, with err set, CIO_ENOMEM or CIO_EAGAIN (then nothing is to
 * finish). The caller then adds fetch_curl(f) to its multi handle, drives
 * it, removes it (when done, or to abandon it) and calls fetch_finish with
 * the transfer's CURLcode (CURLE_ABORTED_BY_CALLBACK for one abandoned):
 * it returns what fetch_to_store would, and must be called once after every
 * fetch_begin that returned 0. fetch_curl's handle belongs to f. */
int fetch_begin(fetch_t *f, const fetch_opts_t *o, const char *url, store_t *s, uint64_t off, uint64_t size, const uint8_t etag[16],
                blocksum_calc_t *sums, char *err, size_t errlen) CIO_MUST_CHECK;
CURL *fetch_curl(fetch_t *f);
int fetch_finish(fetch_t *f, CURLcode rc, unsigned *status, char *err, size_t errlen) CIO_MUST_CHECK;

/* Whether the peer of the fetch under way on f (fetch_begin) sent its
 * status line yet, whatever the status: it is alive, if perhaps slow. */
int fetch_answered(const fetch_t *f);

#endif
