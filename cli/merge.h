/* merge.h - the merge-join at the heart of "comio diff": two key-ordered
 * sequences of (key, size, ETag, and with --deep a content digest or the
 * damage found) in, one verdict per distinct key out.
 *
 * Pure logic: no I/O, no allocation. The sequences come from callbacks (the
 * paged HTTP listings in cli/diff.c, arrays in the unit tests), so memory
 * holds one entry per side whatever their length. */
#ifndef COMIO_CLI_MERGE_H
#define COMIO_CLI_MERGE_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/limits.h"

/* merge_entry_t holds the longest key storaged takes. */
#define MERGE_ETAG_MAX 64
#define MERGE_META_MAX 16    /* a metadata digest: 2 * OBJMETA_DIGEST_LEN hex digits */
#define MERGE_ORIGIN_MAX 255 /* a version's origin: a site id (a log record's origin, LOGREC_ORIGIN_MAX) */
#define MERGE_DIGEST_MAX 8   /* a deep listing's digest: the CRC32C of the content, 8 hex digits */
#define MERGE_REASON_MAX 15  /* why a deep listing calls an object damaged: "checksum", "md5", "read" */

typedef struct {
    char key[LIMIT_KEY_MAX + 1]; /* bytes, NUL-terminated for printing; may hold any byte but NUL */
    size_t key_len;
    uint64_t size;
    char etag[MERGE_ETAG_MAX + 1];
    int has_version;                   /* the listing carries the object's version (a release without versions: 0) */
    uint64_t version;                  /* the version (common/hlc.h) ... */
    char origin[MERGE_ORIGIN_MAX + 1]; /* ... and the site it comes from, NUL-terminated */
    int has_meta;                      /* the listing carries a metadata digest (a release without: 0) */
    char meta[MERGE_META_MAX + 1];     /* the digest of the object's metadata (common/objmeta.h), "" for none */
    /* a deep listing's (storaged/deeplist.h): a digest of the bytes read, or the damage found instead */
    int has_digest;                            /* the entry carries a digest (a deep listing, the object not damaged) */
    char digest[MERGE_DIGEST_MAX + 1];         /* its hex digits, NUL-terminated */
    int damaged;                               /* the site found the object's bytes damaged: no digest */
    uint64_t damaged_block;                    /* the first block that fails its checksum; UINT64_MAX: not known */
    char damaged_reason[MERGE_REASON_MAX + 1]; /* "checksum", "md5" or "read", NUL-terminated */
} merge_entry_t;

typedef enum {
    MERGE_SAME,      /* on both sides, same size and ETag (and version, where both have one) */
    MERGE_MISSING,   /* on the source only */
    MERGE_EXTRA,     /* on the target only */
    MERGE_DIFFERENT, /* on both sides, size or ETag differ */
    MERGE_VERSION,   /* on both sides, same size, ETag and metadata, but another version or origin (both sides have one) */
    MERGE_METADATA,  /* on both sides, same size and ETag, but other metadata (both sides list a digest) */
    MERGE_CONTENT,   /* on both sides, same size and ETag, but the content digests differ (both sides list one) */
} merge_kind_t;

/* Gives the next entry of sequence `seq`. Returns 1 with *e set (the entry
 * belongs to the sequence and stays valid until its next call), 0 at the end
 * (and every call after), or a negative code, which merge_join() returns
 * (the sequence keeps its own account of why). Entries must come in strictly
 * increasing merge_key_cmp() order; the sequence checks that, not the merge. */
typedef int (*merge_next_fn)(void *seq, const merge_entry_t **e);

/* Called once per distinct key, in key order: its verdict, and the entry of
 * each side that holds the key (NULL for a side that lacks it). The entries
 * are borrowed for the call only. */
typedef void (*merge_visit_fn)(void *arg, merge_kind_t kind, const merge_entry_t *src, const merge_entry_t *tgt);

/* Bytewise (memcmp) order of two keys, a shorter key before a longer one it
 * starts; <0, 0 or >0. */
int merge_key_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* The verdict on two entries of one key: MERGE_DIFFERENT, MERGE_CONTENT, MERGE_METADATA, MERGE_VERSION or
 * MERGE_SAME, the first that applies. Damage is not a verdict: see merge_damaged. */
merge_kind_t merge_compare(const merge_entry_t *s, const merge_entry_t *t);

/* Which sides of a key found its bytes damaged (either entry may be NULL):
 * MERGE_DAMAGED_SOURCE | MERGE_DAMAGED_TARGET, or 0. Reported apart from the
 * verdict, which compares what the listings say the objects are. */
#define MERGE_DAMAGED_SOURCE 1u
#define MERGE_DAMAGED_TARGET 2u
unsigned merge_damaged(const merge_entry_t *s, const merge_entry_t *t);

/* Walks both sequences to their ends in one pass (the source first, then the
 * target, at each step), calling visit for each distinct key. Returns 0, or
 * the first negative code `next` returned (visits stop there). */
int merge_join(merge_next_fn next, void *src, void *tgt, merge_visit_fn visit, void *arg) CIO_MUST_CHECK;

#endif
