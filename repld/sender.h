/* sender.h - repld's workers: each has SENDER_QUEUE lanes, a lane being a
 * thread with one libcurl handle (a kept-alive connection to the replica)
 * that posts one batch at a time.
 *
 * The dispatcher hands a job to a worker and learns of completions through
 * `notify_fd` (an eventfd it polls), then collects them with
 * sender_take_done. A worker holds at most SENDER_QUEUE jobs, each posted at
 * once on a lane of its own: over a long round trip the batches in flight,
 * not the round trip, bound the rate (workers x SENDER_QUEUE batches per
 * round trip), while on a short one a worker's second job goes out without
 * waiting for the first one's reply or for the dispatcher. Workers never
 * touch LMDB. */
#ifndef COMIO_REPLD_SENDER_H
#define COMIO_REPLD_SENDER_H

#include <stddef.h>
#include <stdint.h>
#include "proto/batch.h"
#include "common/buf.h"
#include "common/bwlimit.h"
#include "common/conf.h"
#include "common/err.h"

#define SENDER_QUEUE 4                           /* jobs (and connections) a worker holds at most, all in flight */
#define SENDER_ZSTD_RETRY_MS (10 * 60 * 1000ULL) /* how long a target that refused zstd gets batches as is */

typedef enum {
    SEND_OK = 0,        /* 200 with a reply holding one result per event */
    SEND_TRANSPORT = 1, /* no usable answer: connection, TLS, timeout, 5xx, malformed reply */
    SEND_AUTH = 2,      /* 401 or 403: the replica refused the token */
    SEND_REFUSED = 3,   /* 4xx other than auth: the replica refused the batch as a whole */
} send_outcome_t;

typedef struct send_job {
    /* set by the dispatcher; body stays valid until the job is taken back */
    const char *body;
    size_t len;
    size_t nevents;
    batch_res_t *results; /* nevents slots, filled on SEND_OK */
    void *owner;          /* the dispatcher's */

    /* set by the worker */
    send_outcome_t outcome;
    long http_status;                 /* 0 when no HTTP answer came */
    char error[512];                  /* what went wrong, for logs and status */
    buf_t reply;                      /* raw reply; results' error texts point into it */
    uint64_t rtt_us;                  /* request round trip */
    uint64_t payload_bytes;           /* batch bytes posted, before compression, summed over the POSTs of this job */
    uint64_t wire_bytes;              /* request body bytes as they went out (compressed or not), likewise */
    char site[LOGREC_ORIGIN_MAX + 1]; /* the replica's site id from a SEND_OK reply; "" when it gave none */
    char store[BATCH_STORE_MAX + 1];  /* the replica's store identity from a SEND_OK reply; "" when it gave none */
    unsigned worker;
    struct send_job *done_next; /* the sender's */
} send_job_t;

typedef struct sender sender_t;

/* Starts `nworkers` workers posting to {tgt->url}/admin/replication/batch
 * with tgt->token, verifying TLS peers (conf->ca_file when set). conf and
 * tgt are borrowed until sender_stop.
 *
 * With tgt->compression set to zstd, a worker compresses a batch when it is
 * worth it (common/zcodec.h) and sends it with Content-Encoding: zstd. A
 * target that answers such a body 400 or 415 gets the same batch again as
 * is, within the same job (no attempt of its events is spent); when that
 * one is taken, the target does not accept zstd (an older storaged): the
 * sender logs it (once per such window), sends as is for SENDER_ZSTD_RETRY_MS, then tries
 * compression again. For tests only, the environment variable
 * COMIO_REPLD_ZSTD_RETRY_MS (milliseconds, > 0) replaces SENDER_ZSTD_RETRY_MS.
 * Returns 0, CIO_ENOMEM, CIO_ESYS (a thread could not start) or the error of
 * curlopt_apply; on failure the workers already started have stopped and
 * nothing is left allocated. */
int sender_start(sender_t **out, const conf_t *conf, const conf_target_t *tgt, unsigned nworkers, int notify_fd) CIO_MUST_CHECK;

/* Paces every POST body to the target through slot `slot` of `bw`
 * (common/bwlimit.h), BWLIMIT_CHUNK bytes at a time, so that all workers
 * together keep to the target's bandwidth_limit (shared with the fetches it
 * makes from this site). bw is borrowed until sender_stop; NULL or slot -1:
 * no pacing. Call before the first sender_submit. */
void sender_set_bwlimit(sender_t *s, bwlimit_t *bw, int slot);

/* Index of a worker that can take a job, or -1: an idle worker if there is
 * one (then *queued is 0), else one posting a job with room for the next
 * (*queued is 1). Dispatcher thread only. */
int sender_idle(sender_t *s, int *queued);

/* Number of jobs given and not yet taken back: posted, queued, or finished
 * and waiting for sender_take_done. */
unsigned sender_busy(sender_t *s);

/* Gives `job` to worker `w`, which sender_idle has just returned. */
void sender_submit(sender_t *s, unsigned w, send_job_t *job);

/* Returns a finished job, oldest first, or NULL. */
send_job_t *sender_take_done(sender_t *s);

/* Describes worker w for status: busy (sending) or idle, and its batch's events. */
void sender_worker_state(sender_t *s, unsigned w, int *busy, size_t *events);

/* Whether batches to the target are compressed now: 0 when its compression
 * is none or while it is in the fallback of a refused zstd body (then
 * *fallback is 1). Any thread. */
int sender_compressing(sender_t *s, int *fallback);

/* Stops the workers and frees the sender when none is posting; a worker
 * still posting is abandoned to process exit with everything it uses (its
 * batch is re-sent after a restart). */
void sender_stop(sender_t *s);

#endif
