/* conflictrec.h - the value of a "conflicts" record (common/conflict.h): a
 * kept loser of a concurrent write, in record formats 1 to 3; its encoding
 * and strict, bounded decoding (tests/fuzz/fuzz_conflictrec.c). No I/O, no
 * logging; thread-safe. docs/storage.md describes the table.
 *
 * Format 1: format byte, loser version, winner version, time, offset,
 * allocated length, size (u64 BE each), ETag (16), mtime (i64 BE), flags
 * (u8: 0, or 1 for a DELETE), content type (u16 BE length, bytes), loser
 * origin and winner origin (u8 length, bytes each), key (u16 BE length,
 * bytes). Format 2, written when the loser has metadata: the same followed
 * by the metadata (u16 BE length > 0, a blob of common/objmeta.h); format 1
 * reads as no metadata. Format 3, written when the loser's block checksums
 * are kept: format 2 with the metadata always there (maybe of length 0),
 * followed by the checksums: log2 of the block size (u8,
 * BLOCKSUM_SHIFT_MIN..MAX) and the CRC32C of each block (u32 BE,
 * blocksum_nblocks(size, shift) of them, to the end of the value; an object
 * of at most BLOCKSUM_INLINE_MAX bytes has its one inline CRC here with
 * shift BLOCKSUM_INLINE_SHIFT). Formats 1 and 2 read as no checksums. The
 * format written is the lowest that holds the record, so a record has one
 * spelling. */
#ifndef COMIO_CONFLICTREC_H
#define COMIO_CONFLICTREC_H

#include <stddef.h>
#include <stdint.h>
#include "common/conflict.h"

#define CONFLICTREC_FORMAT 1
#define CONFLICTREC_FORMAT_META 2
#define CONFLICTREC_FORMAT_SUMS 3
#define CONFLICTREC_FIXED (1 + 8 * 6 + 16 + 8 + 1)
/* the most bytes before the checksums (conflictrec_encode_head) */
#define CONFLICTREC_HEAD_MAX                                                                                                       \
    (CONFLICTREC_FIXED + 2 + LOGREC_CTYPE_MAX + 2 * (1 + LOGREC_ORIGIN_MAX) + 2 + LOGREC_KEY_MAX + 2 + OBJMETA_MAX)

/* Whether c can be encoded: its lengths in range, and its checksums, when
 * c->has_sums, a PUT's covering exactly c->size bytes from the first block. */
int conflictrec_valid(const conflict_t *c);

/* Encodes valid record c up to its checksums into out (at most
 * CONFLICTREC_HEAD_MAX bytes); returns the bytes written. A format-3
 * record's checksums follow: conflictrec_encode_sums. */
size_t conflictrec_encode_head(uint8_t *out, const conflict_t *c);

/* The bytes of c's checksums in the record (0 when !c->has_sums). */
size_t conflictrec_sums_len(const conflict_t *c);

/* Encodes c's checksums into out (conflictrec_sums_len bytes). */
void conflictrec_encode_sums(uint8_t *out, const conflict_t *c);

/* Decodes the record p[0..len) into *c (all of it: a record with bytes past
 * its end is refused). c->sums, when c->has_sums, borrows its CRCs from p
 * (valid while p is); the strings are copied and NUL-terminated. Returns 0
 * or CIO_EPROTO (c is then partly written). */
int conflictrec_decode(const uint8_t *p, size_t len, conflict_t *c) CIO_MUST_CHECK;

#endif
