/* synclist.h - the replication listing (a target's storaged -> the sender's
 * full sync, GET /admin/replication/list) in msgpack.
 *
 * A full sync compares the source's buckets and keys with the target's. The
 * target answers one of two listings (docs/protocol.md):
 *
 *   buckets = {"v": 1, "site": str, "store": str, "more": bool, "buckets": [bucket...]}
 *   bucket  = {"n": str <name>, "h": uint <version>, "o": str <origin>, "d": bool <deleted>,
 *              "ph": uint <purge version, 0: none>, "po": str <purge origin>}
 *   keys    = {"v": 1, "site": str, "store": str, "more": bool, "keys": [key...]}
 *   key     = {"k": bin <key>, "h": uint <version>, "o": str <origin>, "e": bin[16] <ETag>,
 *              "s": uint <size>, "d": bool <a tombstone: no object, no ETag, size 0>}
 *
 * "site" is the listing site's id, "store" its store identity (32 lowercase
 * hex characters, common/meta.h meta_store_id); "more" tells that the keys
 * go on after the last one listed. Entries are in byte order of their name
 * or key. No I/O here. Decoding is zero-copy, bounded and never allocates. */
#ifndef COMIO_SYNCLIST_H
#define COMIO_SYNCLIST_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "common/err.h"
#include "proto/logrec.h"

#define SYNCLIST_FORMAT_VERSION 1
#define SYNCLIST_MAX_ENTRIES 100000 /* entries one listing may hold (the endpoint caps keys at 10000) */
#define SYNCLIST_STORE_MAX 64       /* bytes of a store identity */

typedef enum {
    SYNCLIST_BUCKETS = 1,
    SYNCLIST_KEYS = 2,
} synclist_kind_t;

/* A bucket as listed. Strings are (pointer, length); after decoding they
 * point into the listing's buffer. */
typedef struct {
    const char *name;
    size_t name_len; /* 1..LOGREC_BUCKET_MAX */
    uint64_t hlc;    /* the bucket record's version; 0: none (a bucket a PUT created) */
    const char *origin;
    size_t origin_len;  /* 0..LOGREC_ORIGIN_MAX */
    int deleted;        /* the last bucket mutation was a DELETE (the bucket still holds objects) */
    uint64_t purge_hlc; /* the last purge's version; 0: none */
    const char *purge_origin;
    size_t purge_origin_len; /* 0..LOGREC_ORIGIN_MAX */
} synclist_bucket_t;

/* A key as listed: an object, or a tombstone (deleted). */
typedef struct {
    const char *key;
    size_t key_len; /* 1..LOGREC_KEY_MAX */
    uint64_t hlc;   /* the version, non-zero */
    const char *origin;
    size_t origin_len; /* 0..LOGREC_ORIGIN_MAX */
    uint8_t etag[16];  /* zero for a tombstone */
    uint64_t size;     /* 0 for a tombstone */
    int deleted;
} synclist_key_t;

/* ---- encoding (the listing site) ---- */

/* The entry array uses a fixed-width array32 header and "more" a one-byte
 * bool, both patched at finish. Do not copy or move an encoder after init. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    synclist_kind_t kind;
    size_t n;
    size_t count_off, more_off;
} synclist_enc_t;

/* Starts a listing of `kind` from site `site` (1..LOGREC_ORIGIN_MAX bytes)
 * whose store identity is `store` (0..SYNCLIST_STORE_MAX bytes). Returns 0,
 * CIO_EINVAL or CIO_ENOMEM; on error nothing is held. */
int synclist_enc_init(synclist_enc_t *e, synclist_kind_t kind, const char *site, size_t site_len, const char *store,
                      size_t store_len) CIO_MUST_CHECK;

/* Appends a bucket (a SYNCLIST_BUCKETS listing) or a key (SYNCLIST_KEYS).
 * Returns 0, CIO_EINVAL (the other kind of listing, a field out of range, a
 * tombstone with a size or ETag), CIO_ETOOBIG (SYNCLIST_MAX_ENTRIES
 * already) or CIO_ENOMEM. The inputs are copied. */
int synclist_enc_bucket(synclist_enc_t *e, const synclist_bucket_t *b) CIO_MUST_CHECK;
int synclist_enc_key(synclist_enc_t *e, const synclist_key_t *k) CIO_MUST_CHECK;

/* Completes the listing with its "more" flag; *buf and *len hold the
 * encoding (owned by e, valid until synclist_enc_free). 0 or CIO_EINVAL. */
int synclist_enc_finish(synclist_enc_t *e, int more, const char **buf, size_t *len) CIO_MUST_CHECK;

void synclist_enc_free(synclist_enc_t *e);

/* ---- decoding (repld's full sync) ---- */

typedef struct {
    synclist_kind_t kind;
    const char *site; /* into the buffer */
    size_t site_len;
    const char *store; /* into the buffer; length 0 when the lister has none */
    size_t store_len;
    int more;
    size_t n; /* entries */
    const char *buf;
    size_t len;
    size_t next; /* byte offset of the next entry */
    size_t index;
} synclist_dec_t;

/* Checks the envelope of buf[0..len): keys in any order, unknown keys
 * skipped, each known key at most once; "v" 1..SYNCLIST_FORMAT_VERSION,
 * "site" 1..LOGREC_ORIGIN_MAX bytes, "store" 0..SYNCLIST_STORE_MAX, "more"
 * a bool, exactly one of "buckets" and "keys", an array of at most
 * SYNCLIST_MAX_ENTRIES complete values; no trailing bytes. Returns 0 or
 * CIO_EPROTO (*d unchanged). buf must outlive the decoder and the entries. */
int synclist_dec_init(synclist_dec_t *d, const char *buf, size_t len) CIO_MUST_CHECK;

/* Decodes the next entry of a buckets (keys) listing. Returns 0,
 * CIO_ENOTFOUND after the last, or CIO_EPROTO (a malformed entry, the other
 * kind of listing; the listing must be dropped as a whole). Required: "n"
 * (bucket) or "k", "h" and "d" (key; "e" and "s" for an object, neither
 * non-zero for a tombstone); an absent origin is "". On error *d and the
 * entry are unchanged. */
int synclist_dec_bucket(synclist_dec_t *d, synclist_bucket_t *b) CIO_MUST_CHECK;
int synclist_dec_key(synclist_dec_t *d, synclist_key_t *k) CIO_MUST_CHECK;

#endif
