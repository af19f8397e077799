/* blocksum.h - an object's block checksums: CRC32C of each BLOCKSUM_BLOCK
 * bytes of its data, their record in the "blocksums" table (common/meta.h),
 * their computation over bytes fed in any pieces, and the verification of
 * blocks read back from the data store (docs/storage.md, "Block checksums").
 *
 * Record (format 1), all integers big-endian:
 *   u8  format (BLOCKSUM_FORMAT)
 *   u8  log2 of the block size (BLOCKSUM_SHIFT when written; a reader takes
 *       any in BLOCKSUM_SHIFT_MIN..BLOCKSUM_SHIFT_MAX)
 *   u64 the object's version, u8 origin length, origin bytes: with the
 *       extent offset, what ties the record to one object record, so a
 *       record that does not belong to the object is seen as stale
 *   u64 the extent's offset in the data store
 *   u64 the object's size
 *   u32 crc32c[nblocks], nblocks = ceil(size / block); the last block is
 *       partial when the size is not a multiple of the block
 * An object of at most BLOCKSUM_INLINE_MAX bytes has no such record: its one
 * CRC32C is kept inside its object record (common/meta.h, meta_obj_t's
 * crc_inline), so that reading or writing it touches one record.
 * Nothing here does I/O or logs; everything is thread-safe. */
#ifndef COMIO_COMMON_BLOCKSUM_H
#define COMIO_COMMON_BLOCKSUM_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "proto/logrec.h"

#define BLOCKSUM_FORMAT 1
#define BLOCKSUM_SHIFT 16 /* 64 KiB blocks: a Range GET reads at most 2 blocks more than it sends */
#define BLOCKSUM_BLOCK (1u << BLOCKSUM_SHIFT)
#define BLOCKSUM_SHIFT_MIN 9                   /* 512 bytes */
#define BLOCKSUM_SHIFT_MAX 30                  /* 1 GiB */
#define BLOCKSUM_FIXED (1 + 1 + 8 + 1 + 8 + 8) /* bytes before the origin's and the CRCs' */
/* An object of at most this many bytes keeps the CRC32C of all its bytes in
 * its object record instead of a record here; its view has this shift. A
 * fact of the stored records: it stays 16 even if BLOCKSUM_SHIFT changes. */
#define BLOCKSUM_INLINE_SHIFT 16
#define BLOCKSUM_INLINE_MAX (1u << BLOCKSUM_INLINE_SHIFT)
/* The largest object a record describes (the LMDB value stays under 64 MiB). */
#define BLOCKSUM_SIZE_MAX (1ULL << 42)

/* The blocks a byte count spans with blocks of 1 << shift bytes. */
static inline uint64_t blocksum_nblocks(uint64_t size, unsigned shift)
{
    return (size + (1ULL << shift) - 1) >> shift;
}

/* A decoded record. `crcs` points into the decoded value (nblocks CRCs, 4
 * bytes big-endian each) and lives as long as that value does (an LMDB value:
 * until its transaction ends). */
typedef struct {
    unsigned shift;
    uint64_t version;
    uint16_t origin_len;
    char origin[LOGREC_ORIGIN_MAX + 1]; /* NUL-terminated */
    uint64_t off;
    uint64_t size;
    uint64_t nblocks;
    const uint8_t *crcs;
} blocksum_rec_t;

/* Decodes p[0..len) into *r, strictly (every length checked, no byte left
 * over). Returns 0 or CIO_EPROTO. */
int blocksum_decode(const void *p, size_t len, blocksum_rec_t *r) CIO_MUST_CHECK;

/* The encoded size of a record for an object of `size` bytes and an origin
 * of origin_len bytes, with blocks of 1 << shift. */
size_t blocksum_encoded_len(uint64_t size, unsigned shift, size_t origin_len);

/* Encodes the record of an object (version, origin[0..origin_len), extent
 * offset `off`, `size` bytes, block 1 << shift) whose nblocks CRCs are
 * crcs[] (host order) into out, which holds blocksum_encoded_len bytes.
 * Returns the bytes written, or 0 for arguments out of range (origin longer
 * than LOGREC_ORIGIN_MAX, shift out of range, size over BLOCKSUM_SIZE_MAX). */
size_t blocksum_encode(uint8_t *out, unsigned shift, uint64_t version, const char *origin, size_t origin_len, uint64_t off,
                       uint64_t size, const uint32_t *crcs);

/* Whether record r belongs to the object record (version, origin, off,
 * size): else it is stale and verifies nothing. */
int blocksum_matches(const blocksum_rec_t *r, uint64_t version, const char *origin, size_t origin_len, uint64_t off, uint64_t size);

/* ---- computing: bytes fed in any pieces, a CRC per block ---- */

/* The computation over an object's bytes. The fields are blocksum.c's. */
typedef struct {
    unsigned shift;
    uint64_t size, fed;
    uint64_t nblocks;
    uint32_t cur;   /* the CRC of the current block so far */
    uint32_t *crcs; /* nblocks, owned (NULL for an empty object) */
} blocksum_calc_t;

/* Starts the computation over an object of `size` bytes. Returns 0,
 * CIO_ETOOBIG (size over BLOCKSUM_SIZE_MAX) or CIO_ENOMEM; end it with
 * blocksum_calc_free either way (harmless on a failed start). */
int blocksum_calc_init(blocksum_calc_t *c, uint64_t size) CIO_MUST_CHECK;

/* Starts the computation over an object of `size` bytes whose first `fed`
 * bytes were fed elsewhere (a multipart upload's parts hashed as they came,
 * storaged/mpu_chase.h): crcs[0 .. fed >> BLOCKSUM_SHIFT) are the CRCs of
 * their whole blocks (host order, copied), and `cur` is the CRC32C of the
 * bytes of the partial block after them (0 when fed is a block boundary).
 * Returns as blocksum_calc_init, or CIO_EINVAL when fed > size; end it with
 * blocksum_calc_free either way. */
int blocksum_calc_resume(blocksum_calc_t *c, uint64_t size, const uint32_t *crcs, uint64_t fed, uint32_t cur) CIO_MUST_CHECK;

/* Adds the next n bytes of the object (p may be NULL when n is 0). Bytes past
 * `size` are ignored (blocksum_calc_done then fails). */
void blocksum_calc_feed(blocksum_calc_t *c, const void *p, size_t n);

/* Whether exactly `size` bytes were fed: 0, or CIO_EINVAL. The CRCs are then
 * c->crcs[0..c->nblocks). */
int blocksum_calc_done(const blocksum_calc_t *c) CIO_MUST_CHECK;

/* Frees the CRCs; c may be freed twice. */
void blocksum_calc_free(blocksum_calc_t *c);

/* ---- verifying: blocks read back ---- */

/* The CRCs of blocks first .. first + n - 1 of an object of `size` bytes with
 * blocks of 1 << shift: `crcs` (4 bytes big-endian each) is borrowed, a
 * record's or a copy of part of it (blocksum_view_copy); or NULL for an
 * object's inline CRC, which is then `one` (blocksum_view_one): such a view
 * owns its CRC and may be copied and kept as it is. */
typedef struct {
    unsigned shift;
    uint64_t size;
    uint64_t first, n;
    const uint8_t *crcs;
    uint32_t one;
} blocksum_view_t;

/* The view of an object of `size` bytes (at most BLOCKSUM_INLINE_MAX) whose
 * bytes' CRC32C is crc (its object record's inline CRC): one block (none for
 * an empty object). */
blocksum_view_t blocksum_view_one(uint64_t size, uint32_t crc);

/* The view of record r's blocks that cover the object's bytes [off, off + len)
 * (len > 0, off + len <= r->size): borrowed from r. */
blocksum_view_t blocksum_view(const blocksum_rec_t *r, uint64_t off, uint64_t len);

/* The part of view `whole` (a whole object's: first 0) that covers the
 * object's bytes [off, off + len) (len > 0, off + len <= whole->size), as
 * blocksum_view: its CRCs borrowed from whole's. A view of an inline CRC is
 * returned as it is. */
blocksum_view_t blocksum_view_range(const blocksum_view_t *whole, uint64_t off, uint64_t len);

/* The stored CRC of block i of the view (first <= i < first + n): from its
 * CRCs, or its inline CRC. */
uint32_t blocksum_view_crc(const blocksum_view_t *v, uint64_t i);

/* A copy of v's CRCs into a malloc'd buffer *owned (freed by the caller),
 * with v's crcs pointing at it; *owned NULL when there is nothing to copy (no
 * blocks, or an inline CRC). 0 or CIO_ENOMEM. */
int blocksum_view_copy(blocksum_view_t *v, uint8_t **owned) CIO_MUST_CHECK;

/* The block-aligned read that covers the object's bytes [off, off + len) with
 * blocks of 1 << shift, in an object of `size` bytes: *roff (a block
 * boundary) and *rlen (up to the next boundary or the object's end). */
void blocksum_widen(unsigned shift, uint64_t size, uint64_t off, uint64_t len, uint64_t *roff, uint64_t *rlen);

/* Verifies buf[0..len), the object's bytes from offset off, against view v:
 * off must be a block boundary, and len a whole number of blocks or reach
 * the object's end; every block must be in v. Returns 0 when each block's
 * CRC32C is the stored one; CIO_EIO when one is not, with *bad_block its
 * index in the object (the first that fails); CIO_EINVAL for a range that
 * is not so aligned or not covered by v. */
int blocksum_verify(const blocksum_view_t *v, uint64_t off, const void *buf, size_t len, uint64_t *bad_block) CIO_MUST_CHECK;

#endif
