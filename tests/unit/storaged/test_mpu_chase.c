/* test_mpu_chase.c - the hash chase's state (storaged/mpu_chase.c): parts of any size fed in pieces give the MD5 and
 * block CRCs of the whole body; a part stored again goes back to a snapshot (or to nothing, past the kept ones); a
 * part abandoned midway leaves the run as it was; a Complete's list matches only the run's first parts, record for
 * record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/blocksum.h"
#include "storaged/mpu_chase.h"
#include "testutil.h"

#define BLK BLOCKSUM_BLOCK

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p[i] = (uint8_t)rng;
    }
}

static mpu_part_t part(uint32_t number, uint64_t off, uint64_t size, int64_t mtime)
{
    mpu_part_t p;
    memset(&p, 0, sizeof(p));
    p.number = number;
    p.ext = (alloc_extent_t){off, size};
    p.size = size;
    p.mtime_ms = mtime;
    memset(p.md5, (int)number, 16);
    return p;
}

/* Feeds part p (bytes b) in pieces of `piece` and ends it. */
static void feed_part(mpu_chase_t *s, const mpu_part_t *p, const uint8_t *b, size_t piece)
{
    for (uint64_t at = 0; at < p->size; at += piece)
        CHECK_EQ_INT(mpu_chase_feed(s, b + at, p->size - at < piece ? (size_t)(p->size - at) : piece), 0);
    CHECK_EQ_INT(mpu_chase_part_done(s, p), 0);
}

/* Hands the chase over for a body of `size` bytes whose first bytes it covers, feeds the rest of body, and checks
 * MD5 and CRCs against a direct computation over the body. */
static void check_finish(mpu_chase_t *s, const uint8_t *body, uint64_t size)
{
    EVP_MD_CTX *md;
    blocksum_calc_t sums, want;
    uint8_t got[16], exp[16];
    uint64_t at = mpu_chase_bytes(s);

    CHECK_EQ_INT(mpu_chase_hand_over(s, size, &md, &sums), 0);
    if (md == NULL)
        return;
    CHECK(EVP_DigestUpdate(md, body + at, (size_t)(size - at)) == 1);
    blocksum_calc_feed(&sums, body + at, (size_t)(size - at));
    CHECK(EVP_DigestFinal_ex(md, got, NULL) == 1);
    EVP_MD_CTX_free(md);
    CHECK(EVP_Digest(body, (size_t)size, exp, NULL, EVP_md5(), NULL) == 1);
    CHECK(memcmp(got, exp, 16) == 0);
    CHECK_EQ_INT(blocksum_calc_done(&sums), 0);
    CHECK_EQ_INT(blocksum_calc_init(&want, size), 0);
    blocksum_calc_feed(&want, body, (size_t)size);
    CHECK_EQ_INT(sums.nblocks, want.nblocks);
    CHECK(want.nblocks == 0 || memcmp(sums.crcs, want.crcs, (size_t)want.nblocks * 4) == 0);
    blocksum_calc_free(&sums);
    blocksum_calc_free(&want);
}

/* Parts of sizes that are not multiples of the block, fed in odd pieces, then the rest of the body after them. */
static void test_any_part_sizes(void)
{
    static const uint64_t sizes[] = {BLK + 1, 3, 0, 2 * BLK - 5, 5 * BLK, 77};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    uint64_t total = 0, tail = BLK + 9;
    for (size_t i = 0; i < n; i++)
        total += sizes[i];
    uint8_t *body = malloc(total + tail);
    fill(body, total + tail);
    for (size_t upto = 0; upto <= n; upto++) { /* the chase reached part `upto`; the Complete hashes the rest */
        mpu_chase_t s;
        uint64_t at = 0;
        CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
        for (size_t i = 0; i < upto; i++) {
            mpu_part_t p = part((uint32_t)i + 1, at, sizes[i], 1000 + (int64_t)i);
            feed_part(&s, &p, body + at, 4093);
            at += sizes[i];
        }
        CHECK_EQ_INT(mpu_chase_bytes(&s), at);
        CHECK_EQ_INT(mpu_chase_next(&s), upto + 1);
        check_finish(&s, body, total + tail);
        mpu_chase_free(&s);
        mpu_chase_free(&s);
    }
    /* ending exactly at the run's end, inside a block */
    mpu_chase_t s;
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    mpu_chase_t *sp = &s;
    mpu_part_t p = part(1, 0, BLK + 1, 1);
    feed_part(sp, &p, body, BLK + 1);
    check_finish(sp, body, BLK + 1);
    mpu_chase_free(&s);
    free(body);
}

/* A part stored again: back to the snapshot before it, fed anew; further back than the snapshots kept: to nothing. */
static void test_rewind(void)
{
    const uint64_t size = 2 * BLK + 333;
    const size_t n = MPU_CHASE_SNAPSHOTS + 3;
    uint8_t *body = malloc(size * n), *again = malloc(size);
    fill(body, size * n);
    fill(again, size);
    mpu_chase_t s;
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        mpu_part_t p = part((uint32_t)i + 1, i * size, size, 1);
        feed_part(&s, &p, body + i * size, BLK);
    }
    /* the last kept snapshots: parts n-SNAPSHOTS+1 .. n */
    CHECK_EQ_INT(mpu_chase_rewind(&s, n), n);
    CHECK_EQ_INT(mpu_chase_rewind(&s, n - 1), n - 1);
    /* part n-1 again with new bytes: the run is parts 1..n-2, then the new one */
    CHECK_EQ_INT(mpu_chase_rewind(&s, n - 2), n - 2);
    memcpy(body + (n - 2) * size, again, size);
    mpu_part_t p = part((uint32_t)(n - 1), 99 * size, size, 2);
    feed_part(&s, &p, again, 1000);
    check_finish(&s, body, size * (n - 1));
    mpu_chase_free(&s);

    /* back past every snapshot: nothing is kept, and the chase starts again from part 1 */
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        mpu_part_t q = part((uint32_t)i + 1, i * size, size, 1);
        feed_part(&s, &q, body + i * size, size);
    }
    CHECK_EQ_INT(mpu_chase_rewind(&s, 1), 0);
    CHECK_EQ_INT(mpu_chase_next(&s), 1);
    CHECK_EQ_INT(mpu_chase_bytes(&s), 0);
    mpu_part_t q = part(1, 0, size, 1);
    feed_part(&s, &q, body, 7777);
    check_finish(&s, body, size * 2);
    mpu_chase_free(&s);
    free(body);
    free(again);
}

/* A part abandoned midway (a Complete took the state): rewinding to the run's end drops its bytes. */
static void test_abandoned_part(void)
{
    uint8_t *body = malloc(3 * BLK);
    fill(body, 3 * BLK);
    mpu_chase_t s;
    EVP_MD_CTX *md;
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    mpu_part_t p1 = part(1, 0, BLK + 10, 1), p2 = part(2, BLK + 10, 2 * BLK - 10, 1);
    feed_part(&s, &p1, body, BLK + 10);
    CHECK_EQ_INT(mpu_chase_feed(&s, body + BLK + 10, BLK), 0);
    CHECK_EQ_INT(mpu_chase_hand_over(&s, 3 * BLK, &md, NULL), CIO_EINVAL); /* a part half fed */
    CHECK(md == NULL);
    CHECK_EQ_INT(mpu_chase_rewind(&s, s.nrun), 1);
    feed_part(&s, &p2, body + BLK + 10, 3000);
    check_finish(&s, body, 3 * BLK);
    mpu_chase_free(&s);
    free(body);
}

/* Refusals: a part out of order or of the wrong byte count changes nothing; a body smaller than the run. */
static void test_refusals(void)
{
    uint8_t b[100];
    fill(b, sizeof(b));
    mpu_chase_t s;
    EVP_MD_CTX *md;
    blocksum_calc_t sums;
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    mpu_part_t p2 = part(2, 0, 100, 1), p1 = part(1, 0, 100, 1), p1short = part(1, 0, 99, 1);
    CHECK_EQ_INT(mpu_chase_feed(&s, b, 100), 0);
    CHECK_EQ_INT(mpu_chase_part_done(&s, &p2), CIO_EINVAL);
    CHECK_EQ_INT(mpu_chase_part_done(&s, &p1short), CIO_EINVAL);
    CHECK_EQ_INT(s.nrun, 0);
    CHECK_EQ_INT(mpu_chase_part_done(&s, &p1), 0);
    CHECK_EQ_INT(mpu_chase_hand_over(&s, 99, &md, &sums), CIO_EINVAL);
    CHECK(md == NULL);
    check_finish(&s, b, 100);
    mpu_chase_free(&s);
}

/* A Complete's list against the run: only its first parts, and every field counts. */
static void test_match(void)
{
    uint8_t b[10];
    fill(b, sizeof(b));
    mpu_chase_t s;
    mpu_part_t run[3], listed[3];
    CHECK_EQ_INT(mpu_chase_init(&s, NULL), 0);
    for (uint32_t i = 0; i < 3; i++) {
        run[i] = part(i + 1, 100 * i, 10, 5);
        feed_part(&s, &run[i], b, 10);
    }
    memcpy(listed, run, sizeof(listed));
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 3);
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 2), 2);
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 0), 0);
    listed[2] = part(4, 300, 10, 5); /* parts 1, 2, 4 */
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 2);
    memcpy(listed, run, sizeof(listed));
    listed[1].ext.off++;
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 1);
    memcpy(listed, run, sizeof(listed));
    listed[1].mtime_ms++;
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 1);
    memcpy(listed, run, sizeof(listed));
    listed[0].md5[15] ^= 1;
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 0);
    memcpy(listed, run, sizeof(listed));
    listed[2].size--;
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 3), 2);
    listed[0] = run[1]; /* part 2 first: never the run's */
    CHECK_EQ_INT(mpu_chase_match(&s, listed, 1), 0);
    mpu_chase_free(&s);
}

int main(void)
{
    RUN(test_any_part_sizes);
    RUN(test_rewind);
    RUN(test_abandoned_part);
    RUN(test_refusals);
    RUN(test_match);
    return TEST_SUMMARY();
}
