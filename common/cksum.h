/* cksum.h - checksums of bodies: CRC32, CRC32C, CRC64NVME, and MD5, SHA-1 and
 * SHA-256 (OpenSSL), one-shot or over pieces, and the strict base64 in which
 * S3 carries them.
 *
 * The CRCs are the reflected ones S3 names (x-amz-checksum-*):
 *   CRC32      poly 0xEDB88320 (IEEE, zlib's crc32), init and xorout ~0
 *   CRC32C     poly 0x82F63B78 (Castagnoli, iSCSI), init and xorout ~0;
 *              ISA-L's crc32_iscsi (libisal: folding with PCLMULQDQ or
 *              VPCLMULQDQ, chosen at run time for the CPU); it returns
 *              with the vector registers' upper halves clean, which
 *              ISA-L's AVX-512 code alone does not (common/cksum.c)
 *   CRC64NVME  poly 0x9A6C9329AC4BC9B5 (NVMe), init and xorout ~0
 * Each cksum_crc* function takes the value so far (0 to start) and returns the
 * value after the piece, as zlib's crc32 does: crc(crc(0, a), b) == crc(0, ab).
 * A checksum's bytes (cksum_final) are its value big-endian, as S3 encodes it.
 *
 * Everything here is thread-safe; nothing allocates but cksum_init of a
 * digest (an OpenSSL context). */
#ifndef COMIO_CKSUM_H
#define COMIO_CKSUM_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

typedef enum { CKSUM_CRC32, CKSUM_CRC32C, CKSUM_CRC64NVME, CKSUM_SHA1, CKSUM_SHA256, CKSUM_MD5, CKSUM_NALGS } cksum_alg_t;

#define CKSUM_SIZE_MAX 32 /* bytes of the longest checksum (SHA-256) */

/* The base64 text of n bytes: 4 characters for every 3 bytes or part of
 * them, padded with '=' (without the NUL). */
#define CKSUM_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* ---- the CRCs: pure functions, no state but the value passed in ---- */

uint32_t cksum_crc32(uint32_t crc, const void *p, size_t n);
uint32_t cksum_crc32c(uint32_t crc, const void *p, size_t n);
uint64_t cksum_crc64nvme(uint64_t crc, const void *p, size_t n);

/* CRC32C by this module's own tables, sharing no code with ISA-L: the
 * reference that tests and the fuzz target hold cksum_crc32c to. */
uint32_t cksum_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* ---- any algorithm, over pieces ---- */

/* One checksum being computed. The fields are cksum.c's. */
typedef struct {
    cksum_alg_t alg;
    uint64_t crc;
    void *md; /* the OpenSSL EVP_MD_CTX of a digest, owned; NULL for a CRC */
} cksum_t;

/* The checksum's size in bytes (4, 8, 16, 20 or 32), or 0 for an alg out of range. */
size_t cksum_size(cksum_alg_t alg);

/* The algorithm's name as S3 spells it in x-amz-checksum-<name> and
 * x-amz-sdk-checksum-algorithm ("crc32", "crc32c", "crc64nvme", "sha1",
 * "sha256"; "md5"), lower case; static. */
const char *cksum_name(cksum_alg_t alg);

/* The algorithm named name[0..len), compared case-insensitively (S3 accepts
 * "CRC32" and "crc32"). Returns 0 with *alg set, or CIO_ENOTFOUND. */
int cksum_lookup(const char *name, size_t len, cksum_alg_t *alg) CIO_MUST_CHECK;

/* Starts a checksum. Returns 0, CIO_EINVAL (alg out of range) or CIO_ENOMEM
 * (OpenSSL could not make a digest context; nothing to free then). A started
 * checksum is ended by cksum_final or cksum_free. */
int cksum_init(cksum_t *c, cksum_alg_t alg) CIO_MUST_CHECK;

/* Adds p[0..n) (p may be NULL when n is 0). Returns 0 or CIO_ENOMEM (OpenSSL
 * failed; c is still to be freed). */
int cksum_update(cksum_t *c, const void *p, size_t n) CIO_MUST_CHECK;

/* Writes the checksum's cksum_size(alg) bytes into out (CKSUM_SIZE_MAX bytes;
 * a CRC big-endian) and frees c's context, success or not. Returns 0 or
 * CIO_ENOMEM (OpenSSL failed). */
int cksum_final(cksum_t *c, uint8_t out[CKSUM_SIZE_MAX]) CIO_MUST_CHECK;

/* Frees a started checksum without finishing it; c may be freed twice. */
void cksum_free(cksum_t *c);

/* The checksum of p[0..n) in one call: cksum_init, cksum_update, cksum_final. */
int cksum_compute(cksum_alg_t alg, const void *p, size_t n, uint8_t out[CKSUM_SIZE_MAX]) CIO_MUST_CHECK;

/* ---- base64 (RFC 4648, the standard alphabet, padded) ---- */

/* Writes the base64 text of src[0..n) and a NUL into dst, which holds
 * CKSUM_BASE64_LEN(n) + 1 bytes. Returns the text's length. */
size_t cksum_base64_encode(char *dst, const void *src, size_t n);

/* Decodes src[0..len), strictly: whole groups of 4 characters of the
 * standard alphabet, '=' only as the padding of the last group, no spaces or
 * line breaks, and the bits the padding drops zero (so each value has one
 * spelling). Writes at most cap bytes into dst and their count into *outlen.
 * Returns 0, CIO_EINVAL (not such text) or CIO_ETOOBIG (more than cap bytes;
 * dst is then partly written). */
int cksum_base64_decode(uint8_t *dst, size_t cap, const char *src, size_t len, size_t *outlen) CIO_MUST_CHECK;

#endif
