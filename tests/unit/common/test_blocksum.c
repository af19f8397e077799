/* test_blocksum.c - unit tests for common/blocksum.c: the 64 KiB split against
 * CRC32C of each block computed directly, any chunking giving the same CRCs,
 * the record's round trip and strict decoding, and the verification of
 * block-aligned ranges (partial last block, a flipped bit found in its block),
 * and a computation resumed from a point reached elsewhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "common/be.h"
#include "common/blocksum.h"
#include "common/cksum.h"

#define BLK BLOCKSUM_BLOCK

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint8_t rnd8(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint8_t)((rng_state * 0x2545f4914f6cdd1dull) >> 56);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = rnd8();
    return p;
}

static const uint64_t sizes[] = {0, 1, BLK - 1, BLK, BLK + 1, 2 * BLK, 16 * BLK + 12345, 3 * BLK - 7};

/* CRCs of an object fed in pieces of `piece` bytes. */
static void calc(const uint8_t *p, uint64_t size, size_t piece, blocksum_calc_t *c)
{
    CHECK(blocksum_calc_init(c, size) == 0);
    for (uint64_t at = 0; at < size; at += piece)
        blocksum_calc_feed(c, p + at, size - at < piece ? (size_t)(size - at) : piece);
    CHECK(blocksum_calc_done(c) == 0);
}

static void test_split(void)
{
    static const size_t pieces[] = {1, 7, 4096, BLK - 1, BLK, BLK + 3, 1 << 20};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint64_t size = sizes[s];
        uint8_t *p = random_bytes((size_t)size);
        for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
            if (pieces[k] == 1 && size > 4 * BLK)
                continue; /* slow and says nothing more */
            blocksum_calc_t c;
            calc(p, size, pieces[k], &c);
            CHECK(c.nblocks == (size + BLK - 1) / BLK);
            for (uint64_t b = 0; b < c.nblocks; b++) {
                size_t n = b + 1 < c.nblocks ? BLK : (size_t)(size - b * BLK);
                CHECK(c.crcs[b] == cksum_crc32c_sw(0, p + b * BLK, n));
            }
            blocksum_calc_free(&c);
            blocksum_calc_free(&c);
        }
        free(p);
    }
    /* a known value: 64 KiB of zeros, then 1 byte of zero as the partial last block */
    uint8_t *z = calloc(BLK + 1, 1);
    blocksum_calc_t c;
    calc(z, BLK + 1, BLK + 1, &c);
    CHECK(c.crcs[0] == cksum_crc32c_sw(0, z, BLK));
    CHECK(c.crcs[1] == 0x527D5351u); /* CRC32C of one zero byte */
    blocksum_calc_free(&c);
    free(z);
    /* too few bytes fed, too many ignored */
    CHECK(blocksum_calc_init(&c, 10) == 0);
    blocksum_calc_feed(&c, "abc", 3);
    CHECK(blocksum_calc_done(&c) == CIO_EINVAL);
    blocksum_calc_feed(&c, "0123456789", 10);
    CHECK(blocksum_calc_done(&c) == 0 && c.crcs[0] == cksum_crc32c(0, "abc0123456", 10));
    blocksum_calc_free(&c);
    CHECK(blocksum_calc_init(&c, BLOCKSUM_SIZE_MAX + 1) == CIO_ETOOBIG);
    blocksum_calc_free(&c);
}

/* Resumed at any point of the bytes (the CRCs so far, the partial block's CRC), then fed the rest: the same CRCs
 * as one computation; resumed at the very end, the partial last block is complete. */
static void test_resume(void)
{
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint64_t size = sizes[s];
        uint8_t *p = random_bytes((size_t)size);
        blocksum_calc_t whole;
        calc(p, size, BLK, &whole);
        const uint64_t cuts[] = {0, 1, BLK - 1, BLK, BLK + 5, size / 2, size};
        for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
            uint64_t at = cuts[k];
            if (at > size)
                continue;
            uint32_t cur = at % BLK == 0 ? 0 : cksum_crc32c_sw(0, p + at - at % BLK, (size_t)(at % BLK));
            blocksum_calc_t c;
            CHECK(blocksum_calc_resume(&c, size, whole.crcs, at, cur) == 0);
            blocksum_calc_feed(&c, p + at, (size_t)(size - at));
            CHECK(blocksum_calc_done(&c) == 0);
            CHECK(c.nblocks == whole.nblocks);
            CHECK(c.nblocks == 0 || memcmp(c.crcs, whole.crcs, (size_t)c.nblocks * 4) == 0);
            blocksum_calc_free(&c);
        }
        blocksum_calc_free(&whole);
        free(p);
    }
    blocksum_calc_t c;
    CHECK(blocksum_calc_resume(&c, 10, NULL, 11, 0) == CIO_EINVAL);
    blocksum_calc_free(&c);
}

static void test_record(void)
{
    uint32_t crcs[3] = {1, 0xdeadbeefu, 3};
    uint8_t buf[256];
    blocksum_rec_t r;
    size_t n = blocksum_encode(buf, BLOCKSUM_SHIFT, 77, "site-a", 6, 4096, 2 * BLK + 5, crcs);

    CHECK(n == blocksum_encoded_len(2 * BLK + 5, BLOCKSUM_SHIFT, 6) && n == BLOCKSUM_FIXED + 6 + 12);
    CHECK(blocksum_decode(buf, n, &r) == 0);
    CHECK(r.shift == BLOCKSUM_SHIFT && r.version == 77 && r.origin_len == 6 && strcmp(r.origin, "site-a") == 0);
    CHECK(r.off == 4096 && r.size == 2 * BLK + 5 && r.nblocks == 3 && be_get(r.crcs + 4, 4) == 0xdeadbeefu);
    CHECK(blocksum_matches(&r, 77, "site-a", 6, 4096, 2 * BLK + 5));
    CHECK(!blocksum_matches(&r, 78, "site-a", 6, 4096, 2 * BLK + 5));
    CHECK(!blocksum_matches(&r, 77, "site-b", 6, 4096, 2 * BLK + 5));
    CHECK(!blocksum_matches(&r, 77, "site-a", 6, 8192, 2 * BLK + 5));
    CHECK(!blocksum_matches(&r, 77, "site-a", 6, 4096, 2 * BLK + 4));
    /* every prefix and one byte more are refused; a wrong format or block size too */
    for (size_t i = 0; i < n; i++)
        CHECK(blocksum_decode(buf, i, &r) == CIO_EPROTO);
    CHECK(blocksum_decode(buf, n + 1, &r) == CIO_EPROTO);
    buf[0] = 2;
    CHECK(blocksum_decode(buf, n, &r) == CIO_EPROTO);
    buf[0] = BLOCKSUM_FORMAT;
    buf[1] = BLOCKSUM_SHIFT_MAX + 1;
    CHECK(blocksum_decode(buf, n, &r) == CIO_EPROTO);
    /* an empty object: no CRC at all */
    n = blocksum_encode(buf, BLOCKSUM_SHIFT, 1, "", 0, 0, 0, NULL);
    CHECK(n == BLOCKSUM_FIXED && blocksum_decode(buf, n, &r) == 0 && r.nblocks == 0);
    /* out of range arguments encode nothing */
    CHECK(blocksum_encode(buf, 8, 1, "", 0, 0, 0, NULL) == 0);
}

static void test_verify(void)
{
    uint64_t size = 5 * BLK + 100, roff, rlen, bad = 0;
    uint8_t *p = random_bytes((size_t)size), *rec, *owned;
    blocksum_calc_t c;
    blocksum_rec_t r;
    blocksum_view_t v;

    calc(p, size, 1000, &c);
    rec = malloc(blocksum_encoded_len(size, BLOCKSUM_SHIFT, 1));
    size_t n = blocksum_encode(rec, BLOCKSUM_SHIFT, 9, "x", 1, 0, size, c.crcs);
    CHECK(blocksum_decode(rec, n, &r) == 0);

    /* widening: to block boundaries, the last block ends at the object's end */
    blocksum_widen(BLOCKSUM_SHIFT, size, 10, 5, &roff, &rlen);
    CHECK(roff == 0 && rlen == BLK);
    blocksum_widen(BLOCKSUM_SHIFT, size, BLK, BLK, &roff, &rlen);
    CHECK(roff == BLK && rlen == BLK);
    blocksum_widen(BLOCKSUM_SHIFT, size, BLK - 1, 2, &roff, &rlen);
    CHECK(roff == 0 && rlen == 2 * BLK);
    blocksum_widen(BLOCKSUM_SHIFT, size, size - 1, 1, &roff, &rlen);
    CHECK(roff == 5 * BLK && rlen == 100);

    /* whole object, every single block, the partial last block */
    v = blocksum_view(&r, 0, size);
    CHECK(v.first == 0 && v.n == 6);
    CHECK(blocksum_verify(&v, 0, p, (size_t)size, &bad) == 0);
    for (uint64_t b = 0; b < 6; b++) {
        size_t len = b < 5 ? BLK : 100;
        v = blocksum_view(&r, b * BLK + 3, 1);
        CHECK(v.first == b && v.n == 1);
        CHECK(blocksum_verify(&v, b * BLK, p + b * BLK, len, &bad) == 0);
    }
    /* a range's view copied out of the record */
    v = blocksum_view(&r, BLK + 5, 2 * BLK);
    CHECK(v.first == 1 && v.n == 3);
    CHECK(blocksum_view_copy(&v, &owned) == 0 && v.crcs == owned);
    CHECK(blocksum_verify(&v, BLK, p + BLK, 3 * BLK, &bad) == 0);
    /* the same range of a whole object's view (a kept loser's): the same blocks, no copy; an inline CRC's view as it is */
    blocksum_view_t whole = blocksum_view(&r, 0, size), part = blocksum_view_range(&whole, BLK + 5, 2 * BLK);
    CHECK(part.first == 1 && part.n == 3 && part.crcs == r.crcs + 4 && part.size == size && part.shift == BLOCKSUM_SHIFT);
    CHECK(blocksum_verify(&part, BLK, p + BLK, 3 * BLK, &bad) == 0);
    CHECK(blocksum_verify(&part, 0, p, BLK, &bad) == CIO_EINVAL);
    part = blocksum_view_range(&whole, size - 1, 10); /* clamped to the object's end */
    CHECK(part.first == 5 && part.n == 1);
    blocksum_view_t one = blocksum_view_one(100, 42);
    part = blocksum_view_range(&one, 10, 5);
    CHECK(part.first == 0 && part.n == 1 && part.crcs == NULL && part.one == 42);
    /* ranges that are not block-aligned, or outside the view, are refused */
    CHECK(blocksum_verify(&v, BLK + 1, p + BLK + 1, BLK, &bad) == CIO_EINVAL);
    CHECK(blocksum_verify(&v, BLK, p + BLK, BLK + 1, &bad) == CIO_EINVAL);
    CHECK(blocksum_verify(&v, 0, p, BLK, &bad) == CIO_EINVAL);
    CHECK(blocksum_verify(&v, BLK, p + BLK, 4 * BLK, &bad) == CIO_EINVAL);
    /* a flipped bit in block 2 is found there, and only there */
    p[2 * BLK + 777] ^= 0x10;
    CHECK(blocksum_verify(&v, BLK, p + BLK, 3 * BLK, &bad) == CIO_EIO && bad == 2);
    CHECK(blocksum_verify(&v, BLK, p + BLK, BLK, &bad) == 0);
    CHECK(blocksum_verify(&v, 3 * BLK, p + 3 * BLK, BLK, &bad) == 0);
    free(owned);
    /* in the partial last block */
    p[2 * BLK + 777] ^= 0x10;
    p[size - 1] ^= 1;
    v = blocksum_view(&r, 0, size);
    CHECK(blocksum_verify(&v, 0, p, (size_t)size, &bad) == CIO_EIO && bad == 5);
    CHECK(blocksum_verify(&v, 0, p, 5 * BLK, &bad) == 0);
    free(rec);
    free(p);
    blocksum_calc_free(&c);
}

int main(void)
{
    RUN(test_split);
    RUN(test_resume);
    RUN(test_record);
    RUN(test_verify);
    return TEST_SUMMARY();
}
