/* logrec.h - the replication log record and its msgpack codec.
 *
 * One record per mutation (PUT, DELETE, PURGE, bucket creation and deletion), appended by storaged in the
 * same LMDB transaction as the metadata change and tailed by repld. The wire
 * format (a msgpack map with a format version) is documented in
 * docs/protocol.md. No I/O here. */
#ifndef COMIO_LOGREC_H
#define COMIO_LOGREC_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "common/err.h"
#include "common/limits.h"
#include "common/objmeta.h"
#include "common/vctx.h"

#define LOGREC_FORMAT_VERSION 2            /* 2: versions are hybrid logical clock values (common/hlc.h) */
#define LOGREC_BUCKET_MAX LIMIT_BUCKET_MAX /* a record carries what storaged accepts */
#define LOGREC_KEY_MAX LIMIT_KEY_MAX
#define LOGREC_CTYPE_MAX 255
#define LOGREC_ORIGIN_MAX 255

typedef enum {
    LOGREC_PUT = 1,
    LOGREC_DELETE = 2,
    LOGREC_PURGE = 3,
    LOGREC_BUCKET_CREATE = 4, /* bucket ops carry no key, size, ETag or content type */
    LOGREC_BUCKET_DELETE = 5,
} logrec_op_t;

/* 1 for the ops that name a bucket only (PURGE, BUCKET_CREATE, BUCKET_DELETE): no key. */
static inline int logrec_op_bucket_only(logrec_op_t op)
{
    return op == LOGREC_PURGE || op == LOGREC_BUCKET_CREATE || op == LOGREC_BUCKET_DELETE;
}

/* A record. Strings are (pointer, length), not NUL-terminated. After
 * logrec_decode they point into the decoded buffer and live as long as it. */
typedef struct {
    uint64_t seq; /* the position in the log of the site that logged it (the cursor's unit) */
    uint64_t hlc; /* the mutation's version (common/hlc.h); with `origin`, what last-writer-wins orders by.
                     A format-1 record has none: the decoder sets it to seq (versions were seqs then) */
    logrec_op_t op;
    const char *bucket;
    size_t bucket_len; /* 1..LOGREC_BUCKET_MAX */
    const char *key;
    size_t key_len;   /* 1..LOGREC_KEY_MAX for PUT/DELETE; 0 for the bucket-only ops (logrec_op_bucket_only) */
    uint64_t size;    /* PUT: object size in bytes; else 0 */
    uint8_t etag[16]; /* PUT: MD5 of the body; else zero */
    const char *content_type;
    size_t content_type_len; /* PUT: 0..LOGREC_CTYPE_MAX; else 0 */
    int64_t mtime_ms;        /* modification time, ms since the Unix epoch */
    const char *origin;
    size_t origin_len;         /* site id where the mutation happened, 1..LOGREC_ORIGIN_MAX */
    uint64_t parent_hlc;       /* the version the mutation replaced on its origin site (its parent): 0 when the key */
    const char *parent_origin; /* held none there; parent_origin is then "" (0..LOGREC_ORIGIN_MAX) */
    size_t parent_origin_len;
    vctx_t ctx;          /* the key's causal context on the origin when it wrote the mutation (common/vctx.h): for
                            each site, the largest version of the key from that site the origin had seen; empty
                            for the bucket-only ops and for records from before contexts (key "c", optional) */
    const uint8_t *meta; /* PUT: the object's metadata besides its content type, a blob of common/objmeta.h */
    size_t meta_len;     /* (key "m", optional: absent for none and in records from before it); 0..OBJMETA_MAX */
    uint32_t mpu_parts;  /* PUT of an object made by an S3 multipart upload: its part count, 1..LOGREC_MPU_PARTS_MAX, */
    uint8_t mpu_md5[16]; /* and the MD5 of its parts' MD5s: its S3 ETag is hex(mpu_md5)-mpu_parts (keys "mp" and "me",
                            optional, both or neither); 0 and zero for any other record */
} logrec_t;

#define LOGREC_MPU_PARTS_MAX 10000 /* S3's most parts of an upload */

/* Appends the encoding of `r` to `out`. Returns 0, CIO_EINVAL if a field is
 * out of range (op unknown, lengths beyond the caps, a NULL string with a
 * non-zero length, or for any op but PUT a non-zero size, etag or content type
 * length, or for a bucket-only op a non-zero key length, hlc 0, a parent origin without
 * a parent version or the reverse, a context on a bucket-only op), or CIO_ENOMEM. Always writes format
 * LOGREC_FORMAT_VERSION; seq is written as given (the logging site's). On error `out`
 * is left as it was. `r`'s strings are only read during the call. */
int logrec_encode(const logrec_t *r, msgpack_sbuffer *out) CIO_MUST_CHECK;

/* Decodes exactly one record occupying all of buf[0..len). Strings in `r`
 * point into `buf` (an absent or empty key/content type/parent origin is ""
 * with length 0). Format 1 records (no "h", "ph", "po") decode with hlc =
 * seq (seq 0 is then malformed: seqs start at 1) and no parent; in format 2
 * "h" (non-zero) is required. The context ("c", format 2, optional: a
 * decoder from before it skips it) is an array of at most VCTX_MAX + 1
 * [site, version] pairs, sites ascending and distinct, versions non-zero;
 * the empty site carries the context's floor. Absent, it decodes empty.
 * The metadata ("m", PUT only, optional: a decoder from before it skips it)
 * is a bin of 1..OBJMETA_MAX bytes that objmeta_validate accepts; absent,
 * it decodes as meta_len 0 (meta then points to "").
 * Unknown map keys are ignored (forward compatibility); a missing "v" or a
 * format version outside 1..LOGREC_FORMAT_VERSION, a missing required field,
 * a known key given twice, a PUT-only field on another op, a key on a
 * bucket op (an empty one is allowed on PURGE only), a bucket op in format 1,
 * an unknown op, a wrong type, a
 * length beyond a cap, more than 32 map entries, or trailing bytes give
 * CIO_EPROTO, and leave `r` unchanged. Never reads outside buf, never
 * allocates. */
int logrec_decode(const char *buf, size_t len, logrec_t *r) CIO_MUST_CHECK;

/* Returns "PUT", "DELETE", "PURGE", "BUCKET_CREATE", "BUCKET_DELETE" or "?". */
const char *logrec_op_name(logrec_op_t op);

/* Bytes that hold any event id with its NUL: the longest int64 mtime (with
 * its sign), two dashes, the longest bucket and key. */
#define LOGREC_EVENT_ID_MAX (20 + 1 + LOGREC_BUCKET_MAX + 1 + LOGREC_KEY_MAX + 1)

/* Writes the seed's event id "<mtime_ms>-<bucket>-<key>" into buf
 * (NUL-terminated, truncated to cap; LOGREC_EVENT_ID_MAX bytes never cut).
 * The key is "*" for PURGE, "+" for BUCKET_CREATE, "-" for BUCKET_DELETE. */
void logrec_event_id(const logrec_t *r, char *buf, size_t cap);

#endif
