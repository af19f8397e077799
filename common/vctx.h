/* vctx.h - a key's causal context: a small version vector.
 *
 * For one key, for each site id, the largest version (common/hlc.h) from
 * that site that the holder has seen for the key. A local mutation carries
 * the context its site held for the key when it wrote it; a site applying
 * an event compares the event's version and context with its own to tell a
 * duplicate or reordered event (already seen) from a causal successor and
 * from a concurrent write, a conflict (docs/replication-apply.md,
 * "Conflicts").
 *
 * A context holds at most VCTX_MAX sites. Past that, the entry with the
 * smallest version goes and raises the context's `floor`: every version at
 * or below the floor, from any site, counts as seen. Knowledge is only ever
 * rounded up, so a context past its cap may take a concurrent write for a
 * seen one (resolved by last-writer-wins without being recorded as a
 * conflict) but never takes a seen event for an unseen one: nothing is
 * applied or logged twice, and nothing loops. Entries are kept sorted by
 * site id, so that equal contexts have equal encodings. No I/O here. */
#ifndef COMIO_VCTX_H
#define COMIO_VCTX_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/limits.h"

#define VCTX_MAX 16 /* sites per key's context */

typedef struct {
    uint64_t hlc;                     /* > 0 */
    uint8_t site_len;                 /* 1..LIMIT_SITE_ID_MAX */
    char site[LIMIT_SITE_ID_MAX + 1]; /* NUL-terminated */
} vctx_entry_t;

typedef struct {
    uint64_t floor; /* every version <= floor counts as seen (0: none); raised by eviction and by versions of no site */
    uint8_t n;
    vctx_entry_t e[VCTX_MAX]; /* sorted by site id (bytes, then length) */
} vctx_t;

/* Bytes of the largest binary encoding (vctx_encode). */
#define VCTX_ENCODED_MAX (1 + 8 + VCTX_MAX * (8 + 1 + LIMIT_SITE_ID_MAX))

/* Makes c empty. */
void vctx_init(vctx_t *c);

/* What c has seen of `site`: its entry's version, or the floor when that is
 * larger or there is no entry. */
uint64_t vctx_get(const vctx_t *c, const char *site, size_t site_len);

/* 1 when c has seen version `hlc` of `site` (vctx_get >= hlc). */
int vctx_seen(const vctx_t *c, const char *site, size_t site_len, uint64_t hlc);

/* Records that c has seen version `hlc` of `site`: the entry becomes the
 * larger of the two. A site of length 0 (a version from before origins were
 * recorded) or longer than LIMIT_SITE_ID_MAX raises the floor instead; a
 * full context evicts its smallest entry into the floor (vctx.h's top). */
void vctx_add(vctx_t *c, const char *site, size_t site_len, uint64_t hlc);

/* Removes from c what (site, hlc) implies, so that a record storing
 * (site, hlc) with c stores no entry twice: site's entry when it is at most
 * hlc; for a site of length 0, the floor when it is at most hlc. Adding
 * (site, hlc) back (vctx_add) gives the same knowledge as before. */
void vctx_trim(vctx_t *c, const char *site, size_t site_len, uint64_t hlc);

/* dst becomes the merge of dst and src (entry-wise maximum, larger floor). */
void vctx_merge(vctx_t *dst, const vctx_t *src);

/* 1 when a and b hold the same knowledge (same floor, same entries). */
int vctx_equal(const vctx_t *a, const vctx_t *b);

/* The binary form, for metadata records: floor (u64 BE), entry count (u8),
 * then per entry version (u64 BE), site length (u8), site bytes. encode
 * writes at most VCTX_ENCODED_MAX bytes and returns how many. decode reads
 * one context from p[0..len), sets *used, and returns 0 or CIO_EPROTO (a
 * count beyond VCTX_MAX, a bad site length, a zero version, entries out of
 * order, or too few bytes), leaving *c unchanged on error. */
size_t vctx_encode(uint8_t *out, const vctx_t *c);
int vctx_decode(const uint8_t *p, size_t len, vctx_t *c, size_t *used) CIO_MUST_CHECK;

#endif
