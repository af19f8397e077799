/* cksum.c - CRC32, CRC32C and CRC64NVME by tables (slicing by 8), CRC32C
 * through ISA-L, digests through OpenSSL, and strict base64. */
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <isa-l/crc.h>
#include "common/be.h"
#include "common/cksum.h"

#define POLY_CRC32 0xEDB88320u
#define POLY_CRC32C 0x82F63B78u
#define POLY_CRC64NVME 0x9A6C9329AC4BC9B5ull

/* Slicing by 8: table k advances a byte that is k bytes further from the end
 * of an 8-byte word, so one word costs eight lookups and no dependent shifts. */
static uint32_t tab_crc32[8][256];
static uint32_t tab_crc32c[8][256];
static uint64_t tab_crc64[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_make32(uint32_t t[8][256], uint32_t poly)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ poly : c >> 1;
        t[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            t[k][i] = t[k - 1][i] >> 8 ^ t[0][t[k - 1][i] & 0xff];
}

static void tab_make(void)
{
    tab_make32(tab_crc32, POLY_CRC32);
    tab_make32(tab_crc32c, POLY_CRC32C);
    for (uint64_t i = 0; i < 256; i++) {
        uint64_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ POLY_CRC64NVME : c >> 1;
        tab_crc64[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            tab_crc64[k][i] = tab_crc64[k - 1][i] >> 8 ^ tab_crc64[0][tab_crc64[k - 1][i] & 0xff];
}

/* The 8 bytes at p as a little-endian integer: the reflected CRCs consume the
 * first byte in the low bits. */
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static uint32_t crc32_tables(const uint32_t t[8][256], uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;

    pthread_once(&tab_once, tab_make);
    crc = ~crc;
    for (; n > 0 && ((uintptr_t)b & 7) != 0; n--)
        crc = t[0][(crc ^ *b++) & 0xff] ^ crc >> 8;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w = load_le64(b) ^ crc;
        crc = t[7][w & 0xff] ^ t[6][w >> 8 & 0xff] ^ t[5][w >> 16 & 0xff] ^ t[4][w >> 24 & 0xff] ^ t[3][w >> 32 & 0xff] ^
              t[2][w >> 40 & 0xff] ^ t[1][w >> 48 & 0xff] ^ t[0][w >> 56];
    }
    for (; n > 0; n--)
        crc = t[0][(crc ^ *b++) & 0xff] ^ crc >> 8;
    return ~crc;
}

uint32_t cksum_crc32(uint32_t crc, const void *p, size_t n)
{
    return crc32_tables(tab_crc32, crc, p, n);
}

uint32_t cksum_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    return crc32_tables(tab_crc32c, crc, p, n);
}

uint64_t cksum_crc64nvme(uint64_t crc, const void *p, size_t n)
{
    const uint64_t(*t)[256] = tab_crc64;
    const uint8_t *b = p;

    pthread_once(&tab_once, tab_make);
    crc = ~crc;
    for (; n > 0 && ((uintptr_t)b & 7) != 0; n--)
        crc = t[0][(crc ^ *b++) & 0xff] ^ crc >> 8;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w = load_le64(b) ^ crc;
        crc = t[7][w & 0xff] ^ t[6][w >> 8 & 0xff] ^ t[5][w >> 16 & 0xff] ^ t[4][w >> 24 & 0xff] ^ t[3][w >> 32 & 0xff] ^
              t[2][w >> 40 & 0xff] ^ t[1][w >> 48 & 0xff] ^ t[0][w >> 56];
    }
    for (; n > 0; n--)
        crc = t[0][(crc ^ *b++) & 0xff] ^ crc >> 8;
    return ~crc;
}

/* ISA-L picks at run time the fastest code the CPU has (VPCLMULQDQ folding
 * on AVX-512, else PCLMULQDQ, else tables): measured on an AVX-512 machine,
 * 4 to 5 times the throughput of the SSE4.2 crc32 instruction in three
 * streams that this module had before (docs/benchmarks.md, "cksum"). Its
 * AVX-512 code was once kept to blocks of 32 KiB and more, on the belief
 * that 512-bit instructions slow a core down as a whole; what was measured
 * then was the dirty upper state (crc32c_wide_done, below), and with that
 * cleared a loop of 4 KiB CRCs between scalar work shows no slowdown of the
 * work around them. So every input of CRC32C_WIDE_MIN bytes or more takes
 * the widest code: a 4 KiB CRC, a small GET's or PUT's, costs about 50 ns
 * there against about 150 ns on the crc32-instruction one (crc32_iscsi_01,
 * one of libisal's exported per-CPU variants, not declared in its header),
 * which stays faster only for the shortest inputs. ISA-L's register is
 * neither inverted on the way in nor on the way out, and its length an int:
 * hence the ~ and the pieces of at most 1 GiB. */
#define CRC32C_PIECE_MAX (1u << 30)
#define CRC32C_WIDE_MIN 256u

#if defined(__x86_64__)
unsigned int crc32_iscsi_01(unsigned char *buffer, int len, unsigned int init_crc);

static int crc32c_narrow_ok(void)
{
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}

/* ISA-L's AVX-512 CRC32C (crc32_iscsi_by16_10, libisal 2.30) returns without
 * VZEROUPPER: the upper halves of zmm0-15 stay dirty in the calling thread,
 * and every SSE instruction it runs after, in any code, pays for that (a
 * merge with the upper state) until something clears them. A storaged loop
 * thread that once verified a 64 KiB block ran its 4 KiB GETs at about 1.2x
 * the CPU after it (docs/benchmarks.md, "cksum"). So they are cleared after
 * every wide call, on any CPU that has them (AVX). */
static void crc32c_wide_done(void)
{
    if (__builtin_cpu_supports("avx"))
        __asm__ volatile("vzeroupper");
}
#else
#define crc32_iscsi_01 crc32_iscsi
static int crc32c_narrow_ok(void)
{
    return 0;
}

static void crc32c_wide_done(void)
{
}
#endif

uint32_t cksum_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t reg = ~crc;

    if (n < CRC32C_WIDE_MIN && crc32c_narrow_ok())
        return ~crc32_iscsi_01((unsigned char *)(uintptr_t)b, (int)n, reg);
    while (n > 0) {
        size_t take = n < CRC32C_PIECE_MAX ? n : CRC32C_PIECE_MAX;
        reg = crc32_iscsi((unsigned char *)(uintptr_t)b, (int)take, reg);
        b += take;
        n -= take;
    }
    crc32c_wide_done();
    return ~reg;
}

/* ---- any algorithm ---- */

static const struct {
    const char *name;
    size_t size;
} algs[CKSUM_NALGS] = {
    [CKSUM_CRC32] = {"crc32", 4}, [CKSUM_CRC32C] = {"crc32c", 4},  [CKSUM_CRC64NVME] = {"crc64nvme", 8},
    [CKSUM_SHA1] = {"sha1", 20},  [CKSUM_SHA256] = {"sha256", 32}, [CKSUM_MD5] = {"md5", 16},
};

size_t cksum_size(cksum_alg_t alg)
{
    return (unsigned)alg < CKSUM_NALGS ? algs[alg].size : 0;
}

const char *cksum_name(cksum_alg_t alg)
{
    return (unsigned)alg < CKSUM_NALGS ? algs[alg].name : "?";
}

int cksum_lookup(const char *name, size_t len, cksum_alg_t *alg)
{
    for (int i = 0; i < CKSUM_NALGS; i++)
        if (strlen(algs[i].name) == len && strncasecmp(algs[i].name, name, len) == 0) {
            *alg = (cksum_alg_t)i;
            return 0;
        }
    return CIO_ENOTFOUND;
}

static const EVP_MD *digest_of(cksum_alg_t alg)
{
    switch (alg) {
    case CKSUM_SHA1:
        return EVP_sha1();
    case CKSUM_SHA256:
        return EVP_sha256();
    case CKSUM_MD5:
        return EVP_md5();
    default:
        return NULL;
    }
}

int cksum_init(cksum_t *c, cksum_alg_t alg)
{
    const EVP_MD *md;

    memset(c, 0, sizeof(*c));
    if ((unsigned)alg >= CKSUM_NALGS)
        return CIO_EINVAL;
    c->alg = alg;
    if ((md = digest_of(alg)) == NULL)
        return 0;
    if ((c->md = EVP_MD_CTX_new()) == NULL)
        return CIO_ENOMEM;
    if (EVP_DigestInit_ex(c->md, md, NULL) != 1) {
        cksum_free(c);
        return CIO_ENOMEM;
    }
    return 0;
}

int cksum_update(cksum_t *c, const void *p, size_t n)
{
    switch (c->alg) {
    case CKSUM_CRC32:
        c->crc = cksum_crc32((uint32_t)c->crc, p, n);
        return 0;
    case CKSUM_CRC32C:
        c->crc = cksum_crc32c((uint32_t)c->crc, p, n);
        return 0;
    case CKSUM_CRC64NVME:
        c->crc = cksum_crc64nvme(c->crc, p, n);
        return 0;
    default:
        if (n == 0)
            return 0;
        return c->md != NULL && EVP_DigestUpdate(c->md, p, n) == 1 ? 0 : CIO_ENOMEM;
    }
}

int cksum_final(cksum_t *c, uint8_t out[CKSUM_SIZE_MAX])
{
    int ret = 0;

    if (c->md == NULL)
        be_put(out, c->crc, (int)cksum_size(c->alg));
    else if (EVP_DigestFinal_ex(c->md, out, NULL) != 1)
        ret = CIO_ENOMEM;
    cksum_free(c);
    return ret;
}

void cksum_free(cksum_t *c)
{
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

int cksum_compute(cksum_alg_t alg, const void *p, size_t n, uint8_t out[CKSUM_SIZE_MAX])
{
    cksum_t c;
    int ret;

    if ((ret = cksum_init(&c, alg)) != 0)
        return ret;
    if ((ret = cksum_update(&c, p, n)) != 0) {
        cksum_free(&c);
        return ret;
    }
    return cksum_final(&c, out);
}

/* ---- base64 ---- */

size_t cksum_base64_encode(char *dst, const void *src, size_t n)
{
    /* EVP_EncodeBlock writes 4 characters per 3 bytes and a NUL, no line breaks;
     * it takes an int length, so a larger input goes in slices of 3-byte groups */
    const unsigned char *s = src;
    size_t out = 0;

    while (n > 0) {
        size_t piece = n > 3u * 256 * 1024 * 1024 ? 3u * 256 * 1024 * 1024 : n;
        out += (size_t)EVP_EncodeBlock((unsigned char *)dst + out, s, (int)piece);
        s += piece;
        n -= piece;
    }
    dst[out] = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int cksum_base64_decode(uint8_t *dst, size_t cap, const char *src, size_t len, size_t *outlen)
{
    size_t i, o = 0;

    *outlen = 0;
    if (len % 4 != 0)
        return CIO_EINVAL;
    for (i = 0; i < len; i += 4) {
        const unsigned char *g = (const unsigned char *)src + i;
        int pad = 0, v[4];
        uint32_t bits = 0;
        for (int k = 0; k < 4; k++) {
            if (g[k] == '=' && i + 4 == len && k >= 2 && (k == 3 || g[3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            if ((v[k] = b64_value(g[k])) < 0)
                return CIO_EINVAL;
        }
        bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* the bits under the padding are zero in the one spelling of a value */
        if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
            return CIO_EINVAL;
        if (o + 3 - (size_t)pad > cap)
            return CIO_ETOOBIG;
        dst[o++] = (uint8_t)(bits >> 16);
        if (pad < 2)
            dst[o++] = (uint8_t)(bits >> 8);
        if (pad < 1)
            dst[o++] = (uint8_t)bits;
    }
    *outlen = o;
    return 0;
}
