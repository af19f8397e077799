/* batch.h - the replication batch (repld -> replica) and its reply, in msgpack.
 *
 * A batch carries up to a few thousand events. Each event embeds the log
 * record exactly as stored in the primary's log (so repld never re-encodes
 * it), plus, for a PUT, either the object's bytes inline or a presigned URL
 * on the primary from which the replica fetches them. Formats: docs/protocol.md.
 *
 *   batch  = {"v": 1, "src": <origin site id>, "ev": [event...]}
 *   event  = {"r": bin <logrec>, "d": bin <object bytes>  (PUT, inline)
 *                               | "u": str <presigned URL> (PUT, fetched)}
 *   reply  = {"v": 1, "res": [result...], "site": str <the replica's site id>,
 *             "store": str <the replica's store identity>}
 *            (results in the same order as "ev"; "site" and "store" are
 *            optional: a replica older than targets sends neither, one
 *            older than full sync no "store")
 *   result = {"seq": uint, "r": uint <batch_result_t>, "st": uint <HTTP-like status>, "e": str <message, may be "">}
 *
 * No I/O here. Decoding is zero-copy, bounded and never allocates. */
#ifndef COMIO_BATCH_H
#define COMIO_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "common/err.h"
#include "proto/logrec.h"

#define BATCH_FORMAT_VERSION 1
#define BATCH_MAX_EVENTS 10000
#define BATCH_URL_MAX LIMIT_FETCH_URL_MAX
#define BATCH_ERROR_MAX 1024
#define BATCH_SRC_MAX LOGREC_ORIGIN_MAX /* "src" is a site id, like a record's origin */
#define BATCH_STORE_MAX 64              /* bytes of a store identity in a reply (32 hex characters today) */

typedef enum {
    BATCH_APPLIED = 0,   /* the event changed the replica */
    BATCH_SKIPPED = 1,   /* stale or duplicate: the replica already holds this version or a newer one */
    BATCH_RETRY = 2,     /* failed for now (e.g. 507 out of space, fetch from the primary failed): send again later */
    BATCH_PERMANENT = 3, /* can never apply (malformed record, version refused): do not send again */
} batch_result_t;

/* ---- encoding (repld) ---- */

/* The event array is written with a fixed-width array32 header (0xdd and a
 * 4-byte count), so that the count can be patched at finish; msgpack allows a
 * non-minimal header. pk points at sb: do not copy or move a batch_enc_t
 * after batch_enc_init. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t nevents;   /* events appended so far */
    size_t count_off; /* where the event array header starts in sb (patched at finish) */
    size_t peak;      /* the most bytes sb has held since batch_enc_init: what of its buffer was touched */
} batch_enc_t;

/* Starts a batch from site `src` (1..BATCH_SRC_MAX bytes, copied into the
 * buffer). Returns 0, CIO_EINVAL (bad src) or CIO_ENOMEM. On error `e` holds
 * nothing (batch_enc_free is then harmless but not needed). */
int batch_enc_init(batch_enc_t *e, const char *src, size_t src_len) CIO_MUST_CHECK;

/* Starts a new batch in e, which batch_enc_init set up earlier (whatever it
 * holds now is dropped), keeping its buffer and that buffer's capacity, so
 * that a sender reusing its encoders stops allocating once they have grown.
 * Same results as batch_enc_init. */
int batch_enc_restart(batch_enc_t *e, const char *src, size_t src_len) CIO_MUST_CHECK;

/* Bytes the buffer of e holds room for. */
size_t batch_enc_capacity(const batch_enc_t *e);

/* Grows the buffer of e to room for at least `bytes`, keeping what it holds,
 * without writing to the new room: memory the system hands out lazily costs
 * nothing until a batch that large is built. A sender that reserves the most
 * a batch may reach never grows the buffer again, so it is never moved (a
 * moved buffer leaves its old place behind as a hole in the heap). Returns 0
 * or CIO_ENOMEM (e is then unchanged). */
int batch_enc_reserve(batch_enc_t *e, size_t bytes) CIO_MUST_CHECK;

/* The most bytes e has held since batch_enc_init: how much of its buffer has
 * been written to, and so is resident. */
size_t batch_enc_peak(const batch_enc_t *e);

/* Appends an event: `rec` is the log record's encoding (as stored in the log);
 * for a PUT exactly one of `data` (may be empty when the object is empty, with
 * has_data = 1) and `url` is given; for DELETE and PURGE neither. The record
 * is decoded (not re-encoded) to check the event, so that a batch the encoder
 * accepts is never refused as a whole by the replica. Returns 0;
 * CIO_EINVAL when the record does not decode, data and url are both given or
 * a PUT has neither, DELETE/PURGE has either, data_len differs from the
 * record's size, data is NULL with a non-zero length, or url is empty or
 * longer than BATCH_URL_MAX; CIO_ETOOBIG when the batch already holds
 * BATCH_MAX_EVENTS events or rec/data are 4 GiB or more; CIO_ENOMEM. On error
 * the batch is left as it was. The inputs are copied. */
int batch_enc_add(batch_enc_t *e, const void *rec, size_t rec_len, int has_data, const void *data, size_t data_len, const char *url,
                  size_t url_len) CIO_MUST_CHECK;

/* Completes the batch; *buf and *len then hold the encoding (owned by e, valid
 * until the next batch_enc_add or batch_enc_free; finishing again after more
 * events is allowed). Returns 0 or CIO_EINVAL (e not initialised). */
int batch_enc_finish(batch_enc_t *e, const char **buf, size_t *len) CIO_MUST_CHECK;

/* Releases the buffer; e may then be batch_enc_init'ed again. */
void batch_enc_free(batch_enc_t *e);

/* ---- decoding (replica) ---- */

typedef struct {
    logrec_t rec;        /* decoded from "r"; strings point into the batch buffer */
    const char *rec_raw; /* the record's bytes */
    size_t rec_raw_len;
    int has_data;     /* "d" present */
    const void *data; /* into the batch buffer */
    size_t data_len;
    const char *url; /* "u", NULL when absent */
    size_t url_len;
} batch_event_t;

typedef struct {
    const char *buf;
    size_t len;
    const char *src;
    size_t src_len;
    size_t nevents;
    size_t next; /* byte offset of the next event */
    size_t index;
} batch_dec_t;

/* Checks the envelope of buf[0..len): keys in any order, unknown keys skipped,
 * each known key at most once, "v" in 1..BATCH_FORMAT_VERSION, "src"
 * 1..BATCH_SRC_MAX bytes, "ev" an array of at most BATCH_MAX_EVENTS complete
 * msgpack values, no trailing bytes. The events are read with
 * batch_dec_next. Returns 0 or CIO_EPROTO (then *d is unchanged). buf must
 * outlive the decoder and the events; nothing is allocated. */
int batch_dec_init(batch_dec_t *d, const char *buf, size_t len) CIO_MUST_CHECK;

/* Decodes the next event into *ev. Returns 0, CIO_ENOTFOUND after the last
 * event, or CIO_EPROTO (the whole batch is malformed; the caller must refuse
 * it as a whole, which is why a replica decodes every event before applying
 * any). An event is a map with a bin "r" that logrec_decode accepts; unknown
 * keys are skipped, a known key twice is malformed. A PUT event must carry
 * exactly one of "d" and "u"; its "d" length must equal the record's size;
 * "u" is 1..BATCH_URL_MAX bytes; DELETE and PURGE carry neither. On error *d
 * and *ev are unchanged. */
int batch_dec_next(batch_dec_t *d, batch_event_t *ev) CIO_MUST_CHECK;

/* ---- the reply ---- */

typedef struct {
    uint64_t seq;
    batch_result_t result;
    unsigned status;   /* 200 applied/skipped, 507 no space, 502 fetch failed, 400 malformed, ... */
    const char *error; /* "" when none; after decoding points into the reply buffer */
    size_t error_len;
} batch_res_t;

/* Encodes n results into sb (appending), with the replying site's id
 * `site` (site_len bytes, 1..BATCH_SRC_MAX; NULL: the "site" key is left
 * out). Returns 0, CIO_EINVAL (n above BATCH_MAX_EVENTS, an unknown result,
 * a NULL error with a non-zero length, a site id of the wrong length) or
 * CIO_ENOMEM; on error sb is left as it was. Error texts longer than
 * BATCH_ERROR_MAX are cut (before a UTF-8 continuation byte). A NULL error
 * with length 0 is sent as "". */
int batch_reply_encode(const batch_res_t *res, size_t n, const char *site, size_t site_len, msgpack_sbuffer *sb) CIO_MUST_CHECK;

/* Decodes a reply holding exactly `n` results into res[0..n). Keys in any
 * order, unknown keys skipped; "v" (1..BATCH_FORMAT_VERSION) and "res" are
 * required, and in each result "seq", "r" (a batch_result_t) and "st"; an
 * absent "e" is "". An optional "site" (1..BATCH_SRC_MAX bytes) is the
 * replica's site id: *site points to it in buf and *site_len is its length,
 * or *site is NULL and *site_len 0 when absent (site and site_len may be
 * NULL when the caller does not want it). Returns 0 or CIO_EPROTO
 * (malformed, a count other than n, an "e" longer than BATCH_ERROR_MAX, a
 * "site" of the wrong length, trailing bytes); on error res and *site are
 * unchanged. Errors point into buf. Never allocates. */
int batch_reply_decode(const char *buf, size_t len, batch_res_t *res, size_t n, const char **site, size_t *site_len) CIO_MUST_CHECK;

/* batch_reply_encode, with the replying store's identity `store`
 * (store_len bytes, 1..BATCH_STORE_MAX; NULL: the "store" key is left out).
 * Same results; a store of the wrong length is CIO_EINVAL. */
int batch_reply_encode_store(const batch_res_t *res, size_t n, const char *site, size_t site_len, const char *store,
                             size_t store_len, msgpack_sbuffer *sb) CIO_MUST_CHECK;

/* batch_reply_decode, also reading the optional "store" (1..BATCH_STORE_MAX
 * bytes): *store points to it in buf, or is NULL (with *store_len 0) when
 * absent; store and store_len may be NULL. Same results; a "store" of the
 * wrong length is CIO_EPROTO. */
int batch_reply_decode_store(const char *buf, size_t len, batch_res_t *res, size_t n, const char **site, size_t *site_len,
                             const char **store, size_t *store_len) CIO_MUST_CHECK;

const char *batch_result_name(batch_result_t r); /* "applied", "skipped", "retry", "permanent" */

#endif
