/* mpu_chase.c - the hash chase of a multipart upload (mpu_chase.h).
 *
 * The block CRCs carry the partial block across parts (its CRC so far,
 * `cur`), so parts of any size chase on; the MD5 context carries the
 * rest. A snapshot is an MD5 context copy plus `cur`: the CRCs of whole
 * blocks before a snapshot's end never change, so going back is truncating
 * the count. */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "common/cksum.h"
#include "storaged/mpu_chase.h"

#define BLOCK_MASK ((uint64_t)BLOCKSUM_BLOCK - 1)

static const EVP_MD *alg_of(const mpu_chase_t *s)
{
    return s->alg != NULL ? s->alg : EVP_md5();
}

/* Back to nothing fed. 0 or CIO_ENOMEM. */
static int empty(mpu_chase_t *s)
{
    s->fed = s->part_fed = 0;
    s->cur = 0;
    s->nrun = 0;
    for (size_t i = 0; i < MPU_CHASE_SNAPSHOTS; i++)
        s->snap[i].nrun = 0;
    if (s->md == NULL && (s->md = EVP_MD_CTX_new()) == NULL)
        return CIO_ENOMEM;
    return EVP_DigestInit_ex2(s->md, alg_of(s), NULL) == 1 ? 0 : CIO_ENOMEM;
}

int mpu_chase_init(mpu_chase_t *s, const EVP_MD *alg)
{
    memset(s, 0, sizeof(*s));
    s->alg = alg;
    return empty(s);
}

void mpu_chase_free(mpu_chase_t *s)
{
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
    for (size_t i = 0; i < MPU_CHASE_SNAPSHOTS; i++) {
        EVP_MD_CTX_free(s->snap[i].md);
        s->snap[i].md = NULL;
        s->snap[i].nrun = 0;
    }
    free(s->crcs);
    free(s->run);
    free(s->ends);
    s->crcs = NULL;
    s->run = NULL;
    s->ends = NULL;
    s->capcrcs = s->caprun = s->nrun = 0;
    s->fed = s->part_fed = 0;
}

uint32_t mpu_chase_next(const mpu_chase_t *s)
{
    return (uint32_t)s->nrun + 1;
}

uint64_t mpu_chase_bytes(const mpu_chase_t *s)
{
    return s->nrun > 0 ? s->ends[s->nrun - 1] : 0;
}

int mpu_chase_feed(mpu_chase_t *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t need = (s->fed + n) >> BLOCKSUM_SHIFT;

    if (s->md == NULL)
        return CIO_ENOMEM;
    if (need > s->capcrcs) {
        size_t cap = s->capcrcs ? s->capcrcs : 1024;
        while (cap < need)
            cap *= 2;
        uint32_t *nc = realloc(s->crcs, cap * sizeof(*nc));
        if (nc == NULL)
            return CIO_ENOMEM;
        s->crcs = nc;
        s->capcrcs = cap;
    }
    if (n > 0 && EVP_DigestUpdate(s->md, p, n) != 1)
        return CIO_ENOMEM;
    while (n > 0) {
        uint64_t take = BLOCKSUM_BLOCK - (s->fed & BLOCK_MASK);
        if (take > n)
            take = n;
        s->cur = cksum_crc32c(s->cur, b, (size_t)take);
        s->fed += take;
        s->part_fed += take;
        b += take;
        n -= (size_t)take;
        if ((s->fed & BLOCK_MASK) == 0) {
            s->crcs[(s->fed >> BLOCKSUM_SHIFT) - 1] = s->cur;
            s->cur = 0;
        }
    }
    return 0;
}

int mpu_chase_part_done(mpu_chase_t *s, const mpu_part_t *p)
{
    mpu_chase_snap_t *sn;

    if (s->md == NULL)
        return CIO_ENOMEM;
    if (p->number != mpu_chase_next(s) || p->size != s->part_fed)
        return CIO_EINVAL;
    if (s->nrun == s->caprun) {
        size_t cap = s->caprun ? s->caprun * 2 : 16;
        mpu_part_t *nr = realloc(s->run, cap * sizeof(*nr));
        if (nr == NULL)
            return CIO_ENOMEM;
        s->run = nr;
        uint64_t *ne = realloc(s->ends, cap * sizeof(*ne));
        if (ne == NULL)
            return CIO_ENOMEM;
        s->ends = ne;
        s->caprun = cap;
    }
    sn = &s->snap[s->nrun % MPU_CHASE_SNAPSHOTS];
    sn->nrun = 0;
    if ((sn->md == NULL && (sn->md = EVP_MD_CTX_new()) == NULL) || EVP_MD_CTX_copy_ex(sn->md, s->md) != 1)
        return CIO_ENOMEM;
    sn->cur = s->cur;
    s->run[s->nrun] = *p;
    s->ends[s->nrun] = s->fed;
    s->nrun++;
    sn->nrun = s->nrun;
    s->part_fed = 0;
    return 0;
}

size_t mpu_chase_rewind(mpu_chase_t *s, size_t k)
{
    if (k > s->nrun || s->md == NULL)
        k = s->md == NULL ? 0 : s->nrun;
    for (; k > 0; k--) {
        mpu_chase_snap_t *sn = &s->snap[(k - 1) % MPU_CHASE_SNAPSHOTS];
        if (sn->nrun != k)
            continue;
        if (EVP_MD_CTX_copy_ex(s->md, sn->md) != 1)
            break;
        s->nrun = k;
        s->fed = s->ends[k - 1];
        s->part_fed = 0;
        s->cur = sn->cur;
        /* the snapshots past the new end describe bytes no longer in the run */
        for (size_t i = 0; i < MPU_CHASE_SNAPSHOTS; i++)
            if (s->snap[i].nrun > k)
                s->snap[i].nrun = 0;
        return k;
    }
    if (empty(s) != 0) {
        /* no context to start again from: a state that never matches (nrun 0) and is fed no more */
        EVP_MD_CTX_free(s->md);
        s->md = NULL;
    }
    return 0;
}

int mpu_chase_same_part(const mpu_part_t *a, const mpu_part_t *b)
{
    return a->number == b->number && a->ext.off == b->ext.off && a->ext.len == b->ext.len && a->size == b->size &&
           a->mtime_ms == b->mtime_ms && CRYPTO_memcmp(a->md5, b->md5, 16) == 0;
}

size_t mpu_chase_match(const mpu_chase_t *s, const mpu_part_t *parts, size_t n)
{
    size_t k = 0;
    while (k < n && k < s->nrun && mpu_chase_same_part(&parts[k], &s->run[k]))
        k++;
    return k;
}

int mpu_chase_hand_over(mpu_chase_t *s, uint64_t size, EVP_MD_CTX **md, blocksum_calc_t *sums)
{
    int ret;

    *md = NULL;
    if (sums != NULL)
        memset(sums, 0, sizeof(*sums));
    if (s->md == NULL)
        return CIO_ENOMEM;
    if (s->part_fed != 0 || size < s->fed)
        return CIO_EINVAL;
    if (sums != NULL && (ret = blocksum_calc_resume(sums, size, s->crcs, s->fed, s->cur)) != 0) {
        blocksum_calc_free(sums);
        return ret;
    }
    *md = s->md;
    s->md = NULL;
    return 0;
}
