/* integrity.h - reads of object bytes verified against their block checksums
 * (common/blocksum.h), and the one place where damage found is reported.
 *
 * Every path that reads an object's bytes from the data store to hand them
 * on (GET and Range GET, S3 GetObject, the fetch endpoint a replica pulls
 * from, S3 CopyObject's source) reads through integrity_read: whole blocks,
 * verified before a byte of them leaves. When a block fails, integrity_damaged
 * counts and logs it; the caller then asks for a repair from a peer
 * (storaged/repair.h). docs/storage.md, "Block checksums". */
#ifndef COMIO_STORAGED_INTEGRITY_H
#define COMIO_STORAGED_INTEGRITY_H

#include <stddef.h>
#include <stdint.h>
#include "common/blocksum.h"
#include "common/err.h"
#include "common/meta.h"
#include "storaged/store.h"

/* Where damage was found: the metric's `path` label. */
typedef enum {
    INTEGRITY_GET,   /* a read served to a client: GET, Range GET, S3 GetObject and CopyObject, the fetch endpoint */
    INTEGRITY_APPLY, /* a replica received bytes that do not match the event's ETag (inline or fetched) */
    INTEGRITY_SCRUB, /* the background scrub (storaged/scrub.h): a block fails, or an object without checksums its MD5 */
    INTEGRITY_NPATHS
} integrity_path_t;

/* The checksums of object o (key k of bucket b) that cover its bytes
 * [off, off + len) (meta_sums_view), copied out of txn into *v (its CRCs in
 * *owned: the caller frees it, after the last use of *v; NULL for an inline
 * CRC, which *v holds itself). *have is 0 when the object has
 * none that belong to it (written before checksums, or with them off, or a
 * conflict's kept loser): its bytes are then served unverified. Returns 0 or
 * CIO_ENOMEM; a checksum record that cannot be read is logged and counts as
 * none. */
int integrity_sums(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                   uint64_t off, uint64_t len, blocksum_view_t *v, uint8_t **owned, int *have) CIO_MUST_CHECK;

/* Reads the object's bytes [roff, roff + len) (roff a block boundary of v,
 * len whole blocks or up to the object's end: blocksum_widen) from the
 * object's extent at ext_off into buf, and verifies them against v (NULL:
 * unverified). Returns 0, CIO_EIO (the read failed), CIO_EINVAL (a range
 * not so aligned), or CIO_ECORRUPT with *bad_block the index of the first
 * block that fails. Any thread. */
int integrity_read(store_t *s, uint64_t ext_off, uint64_t roff, void *buf, size_t len, const blocksum_view_t *v,
                   uint64_t *bad_block) CIO_MUST_CHECK;

/* Reads the whole object of `size` bytes at ext_off through v (as
 * integrity_read), chunk_len bytes at a time into chunk (chunk_len a
 * multiple of v's block size): a check of every block, the bytes dropped.
 * Returns integrity_read's codes. Any thread. */
int integrity_read_all(store_t *s, uint64_t ext_off, uint64_t size, const blocksum_view_t *v, void *chunk, size_t chunk_len,
                       uint64_t *bad_block) CIO_MUST_CHECK;

/* Damage found in block `block` (UINT64_MAX: not known, the bytes failed
 * the object's MD5) of object (b, k, version, origin): counted
 * by path, and logged once in a while (integrity_recent). The caller
 * then asks storaged/repair.h for a repair. Strings are borrowed for the call: b, k and origin
 * NUL-terminated. Any thread. */
void integrity_damaged(integrity_path_t path, const char *b, const char *k, uint64_t version, const char *origin, uint64_t block);

#define INTEGRITY_RECENT_MS (10 * 60 * 1000) /* how long integrity_recent remembers */

/* Whether (tag, b, k, version, origin, block) was seen in the last
 * INTEGRITY_RECENT_MS: 0 the first time in that while (it is remembered
 * now, the caller logs it), 1 after, so that an object read again and again
 * is not logged each time. A small table (the last 64 seen): under many
 * damaged objects at once a line may repeat. Strings borrowed for the call,
 * NUL-terminated. Any thread. */
int integrity_recent(const char *tag, const char *b, const char *k, uint64_t version, const char *origin, uint64_t block);

/* Counts blocks verified (by integrity_read). Any thread. */
void integrity_count_verified(uint64_t blocks);

/* The counters since start: blocks verified, and damage found per path. */
typedef struct {
    uint64_t verified;
    uint64_t mismatches[INTEGRITY_NPATHS];
} integrity_stats_t;
void integrity_stats(integrity_stats_t *out);

/* The metric label of a path ("get", "apply", "scrub"); static. */
const char *integrity_path_name(integrity_path_t path);

#endif
