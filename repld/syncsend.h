/* syncsend.h - a full sync's batches in flight: a few sender threads, each
 * handed one whole batch at a time, which it posts to the target until every
 * event is acknowledged or counted failed.
 *
 * The sync thread (repld/sync.c) builds a batch, submits it and goes on
 * reading the source while the target applies it; it learns of finished
 * batches through syncsend_done_fd and takes them back with syncsend_take in
 * the order it submitted them, whatever order they finish in: once it has
 * a batch back, every batch submitted before it is done too. A sender retries a batch as the sync always did: a
 * transport failure or a "retry" answer backs off (from the target's
 * retry_delay, at most 1 s, doubling up to 60 s) and posts the events not
 * yet done again, each "retry" spending one of retry_attempts (except a
 * failed fetch from this site, 502-504); a "permanent" answer, or a batch
 * refused as a whole (4xx other than 401, 403, 408, 429), is counted failed.
 * Senders never touch LMDB or the sync's record: what a batch did is in the
 * batch (its counters, last error and the store the target named) for the
 * sync thread to add up. */
#ifndef COMIO_REPLD_SYNCSEND_H
#define COMIO_REPLD_SYNCSEND_H

#include <stddef.h>
#include <stdint.h>
#include "common/bwlimit.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/syncrec.h"
#include "proto/batch.h"

#define SYNCSEND_DEPTH_MAX 4 /* batches in flight at most, whatever the target's workers (syncsend_depth) */

/* One event of a batch. Its record and its inline bytes or URL are not kept
 * here: they are encoded once, into the batch's body, by the sync thread
 * (syncsend_batch_add), which is what the target is sent; events answered
 * "retry" are taken from that body again. */
typedef struct {
    uint64_t seq;
    uint64_t bytes;      /* object bytes, for the counters */
    int extra;           /* a DELETE of a key only the target held: counted `deleted` too */
    uint64_t extra_size; /* and the size of the object it deletes there */
    uint32_t attempts;   /* the sender's */
    int done;            /* the sender's */
} syncsend_ev_t;

/* A batch: built by the sync thread, owned by syncsend from syncsend_submit
 * until syncsend_take hands it back with its outcome filled in. */
typedef struct syncsend_batch {
    syncsend_ev_t *ev;
    size_t nev, cap;
    size_t bytes;    /* inline bytes and records: what the body carries */
    uint64_t obj;    /* object bytes of the events (inline or fetched) */
    batch_enc_t enc; /* the body: ev's events, in ev's order (none for a dry run's); owned by the batch, its buffer kept
                      * by syncsend_batch_clear for the next batch unless it grew past SYNCSEND_KEEP_BYTES */
    int enc_init;    /* enc holds a buffer (batch_enc_init was called) */
    int enc_open;    /* enc was started for the events of now (syncsend_batch_add) */

    /* the outcome, set by the sender */
    int ret;                           /* 0: every event acknowledged or counted failed; 1: aborted; or an error */
    uint64_t shipped, shipped_bytes;   /* events acknowledged (applied or skipped) and their object bytes */
    uint64_t deleted, deleted_bytes;   /* of those, DELETEs of keys only the target held, and their sizes there */
    uint64_t failed, failed_bytes;     /* events counted failed */
    char error[SYNCREC_ERROR_MAX + 1]; /* the last refusal or failure, "" none */
    char store[BATCH_STORE_MAX + 1];   /* the store identity the target last named, "" none */

    syncrec_t at;                 /* the caller's (the sync's record when it submitted the batch): syncsend never touches it */
    struct syncsend_batch *next;  /* syncsend's */
    struct syncsend_batch *newer; /* syncsend's: the batch submitted after this one */
    int finished;                 /* syncsend's */
} syncsend_batch_t;

/* A batch body that has held more than this is freed when the batch is
 * cleared, not kept for the next one: a sync of large inline objects does
 * not leave its pages resident in every batch it reuses. */
#define SYNCSEND_KEEP_BYTES (4u << 20)

typedef struct syncsend syncsend_t;

/* How many batches a sync keeps in flight to target tgt: min(workers,
 * SYNCSEND_DEPTH_MAX), at least 1. */
unsigned syncsend_depth(const conf_target_t *tgt);

/* Starts syncsend_depth(tgt) sender threads posting to
 * {tgt->url}/admin/replication/batch with tgt->token, as site conf->site_id.
 * A transfer or back-off ends early once `stop_fd` turns readable (never
 * drained) or syncsend_abort is called. conf and tgt are borrowed until
 * syncsend_stop. Returns 0, CIO_ENOMEM, CIO_ESYS, or curlopt_apply's error
 * (nothing is left running or allocated). */
int syncsend_start(syncsend_t **out, const conf_t *conf, const conf_target_t *tgt, int stop_fd) CIO_MUST_CHECK;

/* Paces every batch body through slot `slot` of `bw` (common/bwlimit.h),
 * BWLIMIT_CHUNK bytes at a time, as the log's own senders do, so that the
 * sync shares the target's bandwidth_limit with them and with the fetches
 * the target makes from this site. bw is borrowed until syncsend_stop; NULL
 * or slot -1: no pacing. Call before the first syncsend_submit. */
void syncsend_set_bwlimit(syncsend_t *ss, bwlimit_t *bw, int slot);

/* Aborts what is in flight, waits for every sender and frees ss; batches not
 * taken back are freed with it. NULL is harmless. */
void syncsend_stop(syncsend_t *ss);

/* Gives batch b (nev > 0, allocated alone with malloc) to the senders; it
 * is posted at once when fewer than the depth are in flight, else when a
 * sender frees up. b is syncsend's until syncsend_take returns it
 * (syncsend_stop frees it, with free(), if it never does). Sync thread only. */
void syncsend_submit(syncsend_t *ss, syncsend_batch_t *b);

/* Batches submitted and not yet taken back. */
unsigned syncsend_inflight(syncsend_t *ss);

/* A descriptor that turns readable when a batch finishes; syncsend_take
 * drains it when it returns NULL. Valid until syncsend_stop. */
int syncsend_done_fd(const syncsend_t *ss);

/* The oldest batch submitted and not taken back, once it is finished; else
 * NULL. The caller owns it again (clear it with syncsend_batch_clear before
 * reusing it). */
syncsend_batch_t *syncsend_take(syncsend_t *ss);

/* Makes every batch in flight finish at once with ret 1 (a transfer under
 * way is cut, a back-off ends), and every batch submitted later too, until
 * syncsend_resume. Any thread. */
void syncsend_abort(syncsend_t *ss);

/* Ends an abort: batches are posted again. Call when nothing is in flight. */
void syncsend_resume(syncsend_t *ss);

/* Appends an event with sequence number `seq` and `bytes` object bytes to
 * b: its encoded log record `rec` and, for a PUT, its inline bytes
 * (has_data; data may be NULL when data_len is 0) or its URL, encoded into
 * b's body at once (everything is copied; nothing else is kept); rec NULL:
 * the event is only counted, nothing is encoded (a dry run's). The first
 * event after a clear starts the body as site `site`; a body made anew
 * reserves `reserve` bytes first (batch_enc_reserve: pages are touched only
 * as the body fills them, and the buffer never moves). Sync thread only,
 * before syncsend_submit. Returns 0, batch_enc_add's CIO_EINVAL or
 * CIO_ETOOBIG, or CIO_ENOMEM; on error b is as it was. */
int syncsend_batch_add(syncsend_batch_t *b, const char *site, size_t reserve, const void *rec, size_t rec_len, int has_data,
                       const void *data, size_t data_len, const char *url, uint64_t seq, uint64_t bytes) CIO_MUST_CHECK;

/* Zeroes b's events, counts and outcome; b's event array, and its body's
 * buffer unless that ever held more than SYNCSEND_KEEP_BYTES, are kept for
 * the next batch. */
void syncsend_batch_clear(syncsend_batch_t *b);

/* syncsend_batch_clear, and frees the array and the body. */
void syncsend_batch_free(syncsend_batch_t *b);

#endif
