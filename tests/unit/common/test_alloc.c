/* test_alloc.c - unit tests of the extent allocator, including a randomised run against a bitmap model. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/alloc.h"
#include "testutil.h"

#define BLK ((uint64_t)ALLOC_BLOCK)
#define MAP_SIZE (64u << 20)

static char test_dir[] = "/tmp/test_alloc.XXXXXX";
static MDB_env *env;
static alloc_t al;

/* ---- environment ---------------------------------------------------------------------------------------------------- */

static int env_open(size_t map_size)
{
    MDB_txn *txn;

    if (mdb_env_create(&env) != 0)
        return -1;
    /* NOSYNC: durability is LMDB's business, not what is tested here. */
    if (mdb_env_set_maxdbs(env, 4) != 0 || mdb_env_set_mapsize(env, map_size) != 0 ||
        mdb_env_open(env, test_dir, MDB_NOSYNC, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0) {
        mdb_env_close(env);
        env = NULL;
        return -1;
    }
    if (alloc_open(&al, txn) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

static void env_close(void)
{
    if (env != NULL)
        mdb_env_close(env);
    env = NULL;
}

static void env_remove_files(void)
{
    char path[sizeof(test_dir) + 16];

    snprintf(path, sizeof(path), "%s/data.mdb", test_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", test_dir);
    unlink(path);
}

/* Every test starts from an empty environment. */
static int env_fresh(size_t map_size)
{
    env_close();
    env_remove_files();
    return env_open(map_size);
}

static MDB_txn *txn_write(void)
{
    MDB_txn *txn = NULL;

    CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
    return txn;
}

static MDB_txn *txn_read(void)
{
    MDB_txn *txn = NULL;

    CHECK_EQ_INT(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    return txn;
}

/* ---- helpers ---------------------------------------------------------------------------------------------------------- */

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static alloc_extent_t ext(uint64_t off_blocks, uint64_t len_blocks)
{
    alloc_extent_t e = {off_blocks * BLK, len_blocks * BLK};
    return e;
}

struct render {
    char buf[512];
    size_t used;
};

static int render_visit(void *arg, alloc_extent_t e)
{
    struct render *r = arg;
    int n = snprintf(r->buf + r->used, sizeof(r->buf) - r->used, "%s%" PRIu64 "+%" PRIu64, r->used ? " " : "", e.off / BLK,
                     e.len / BLK);
    if (n < 0 || (size_t)n >= sizeof(r->buf) - r->used)
        return 1;
    r->used += (size_t)n;
    return 0;
}

/* The free list in blocks, "off+len off+len ...", followed by the stats and
 * the verdict of alloc_check, so one string comparison pins the whole map. */
static const char *map_str(MDB_txn *txn)
{
    static char out[1024];
    struct render r = {.used = 0};
    uint64_t cap = 0, free_bytes = 0, n = 0, largest = 0;
    char msg[160];
    int rc;

    r.buf[0] = '\0';
    if (alloc_foreach_free(&al, txn, render_visit, &r) != 0)
        return "(foreach failed)";
    if (alloc_stats(&al, txn, &cap, &free_bytes, &n, &largest) != 0)
        return "(stats failed)";
    rc = alloc_check(&al, txn, msg, sizeof(msg));
    snprintf(out, sizeof(out), "[%s] cap=%" PRIu64 " free=%" PRIu64 " n=%" PRIu64 " max=%" PRIu64 "%s%s", r.buf, cap / BLK,
             free_bytes / BLK, n, largest / BLK, rc == 0 ? "" : " CHECK: ", rc == 0 ? "" : msg);
    return out;
}

/* map_str of the committed state, through a read transaction. */
static const char *committed_str(void)
{
    static char out[1024];
    MDB_txn *txn = txn_read();

    snprintf(out, sizeof(out), "%s", txn ? map_str(txn) : "(no txn)");
    if (txn)
        mdb_txn_abort(txn);
    return out;
}

static alloc_extent_t must_alloc(MDB_txn *txn, uint64_t bytes)
{
    alloc_extent_t e = {UINT64_MAX, UINT64_MAX};
    CHECK_EQ_INT(alloc_alloc(&al, txn, bytes, &e), 0);
    return e;
}

/* A store of `blocks` blocks, everything allocated, then the listed block
 * ranges freed: the shape most tests start from. */
static MDB_txn *setup_map(uint64_t blocks, const alloc_extent_t *frees, size_t nfrees)
{
    MDB_txn *txn;

    if (env_fresh(MAP_SIZE) != 0) {
        CHECK(!"env_fresh");
        return NULL;
    }
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, blocks * BLK), 0);
    if (blocks > 0)
        must_alloc(txn, blocks * BLK);
    for (size_t i = 0; i < nfrees; i++)
        CHECK_EQ_INT(alloc_free(&al, txn, frees[i]), 0);
    return txn;
}

/* ---- fixed cases ----------------------------------------------------------------------------------------------------- */

static void test_round(void)
{
    CHECK_EQ_INT(alloc_round(0), 0);
    CHECK_EQ_INT(alloc_round(1), BLK);
    CHECK_EQ_INT(alloc_round(BLK - 1), BLK);
    CHECK_EQ_INT(alloc_round(BLK), BLK);
    CHECK_EQ_INT(alloc_round(BLK + 1), 2 * BLK);
    CHECK(alloc_round(UINT64_MAX - BLK + 1) == UINT64_MAX - BLK + 1);
}

static void test_unformatted(void)
{
    MDB_txn *txn;
    alloc_extent_t e;

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    txn = txn_write();
    CHECK_EQ_STR(map_str(txn), "[] cap=0 free=0 n=0 max=0");
    e.off = e.len = 1;
    CHECK_EQ_INT(alloc_largest(&al, txn, &e), 0);
    CHECK(e.off == 0 && e.len == 0);
    CHECK_EQ_INT(alloc_alloc(&al, txn, 1, &e), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_free(&al, txn, ext(0, 1)), CIO_EINVAL);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 0), 0);
    CHECK_EQ_STR(map_str(txn), "[] cap=0 free=0 n=0 max=0");
    mdb_txn_abort(txn);
}

static void test_basic(void)
{
    MDB_txn *txn;
    alloc_extent_t a, b, c, z;

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 256 * BLK + 123), 0); /* rounded down */
    CHECK_EQ_STR(map_str(txn), "[0+256] cap=256 free=256 n=1 max=256");

    a = must_alloc(txn, 1);
    CHECK(a.off == 0 && a.len == BLK);
    b = must_alloc(txn, BLK);
    CHECK(b.off == BLK && b.len == BLK);
    c = must_alloc(txn, 2 * BLK + 1);
    CHECK(c.off == 2 * BLK && c.len == 3 * BLK);
    CHECK_EQ_STR(map_str(txn), "[5+251] cap=256 free=251 n=1 max=251");

    /* bytes == 0: the empty extent, map untouched; freeing it is a no-op. */
    z = must_alloc(txn, 0);
    CHECK(z.off == 0 && z.len == 0);
    CHECK_EQ_INT(alloc_free(&al, txn, z), 0);
    CHECK_EQ_STR(map_str(txn), "[5+251] cap=256 free=251 n=1 max=251");

    CHECK_EQ_INT(alloc_free(&al, txn, b), 0);
    CHECK_EQ_STR(map_str(txn), "[1+1 5+251] cap=256 free=252 n=2 max=251");
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), "[1+1 5+251] cap=256 free=252 n=2 max=251");

    /* Survives closing the environment. */
    env_close();
    CHECK_EQ_INT(env_open(MAP_SIZE), 0);
    CHECK_EQ_STR(committed_str(), "[1+1 5+251] cap=256 free=252 n=2 max=251");

    txn = txn_write();
    CHECK_EQ_INT(alloc_free(&al, txn, a), 0);
    CHECK_EQ_INT(alloc_free(&al, txn, c), 0);
    CHECK_EQ_STR(map_str(txn), "[0+256] cap=256 free=256 n=1 max=256");

    /* Too large, and too large to even round. */
    CHECK_EQ_INT(alloc_alloc(&al, txn, 257 * BLK, &z), CIO_ENOSPC);
    CHECK(z.off == 0 && z.len == 0);
    CHECK_EQ_INT(alloc_alloc(&al, txn, UINT64_MAX, &z), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_alloc(&al, txn, UINT64_MAX - BLK + 2, &z), CIO_ENOSPC);
    a = must_alloc(txn, 256 * BLK);
    CHECK(a.off == 0 && a.len == 256 * BLK);
    CHECK_EQ_STR(map_str(txn), "[] cap=256 free=0 n=0 max=0");
    CHECK_EQ_INT(alloc_alloc(&al, txn, 1, &z), CIO_ENOSPC);
    mdb_txn_abort(txn);
}

static void test_best_fit(void)
{
    /* Free extents of 3, 1, 2, 5, 2 and 1 blocks. */
    const alloc_extent_t frees[] = {ext(0, 3), ext(4, 1), ext(6, 2), ext(9, 5), ext(15, 2), ext(18, 1)};
    MDB_txn *txn = setup_map(20, frees, 6);
    alloc_extent_t e;

    if (txn == NULL)
        return;
    CHECK_EQ_STR(map_str(txn), "[0+3 4+1 6+2 9+5 15+2 18+1] cap=20 free=14 n=6 max=5");
    e = must_alloc(txn, 2 * BLK); /* two 2-block extents: the lower one */
    CHECK(e.off == 6 * BLK && e.len == 2 * BLK);
    e = must_alloc(txn, 2 * BLK);
    CHECK(e.off == 15 * BLK && e.len == 2 * BLK);
    e = must_alloc(txn, 1); /* two 1-block extents: the lower one */
    CHECK(e.off == 4 * BLK && e.len == BLK);
    e = must_alloc(txn, 4 * BLK); /* only the 5 fits; its tail stays free */
    CHECK(e.off == 9 * BLK && e.len == 4 * BLK);
    CHECK_EQ_STR(map_str(txn), "[0+3 13+1 18+1] cap=20 free=5 n=3 max=3");
    e = must_alloc(txn, 2 * BLK); /* the 3 beats nothing smaller that fits */
    CHECK(e.off == 0 && e.len == 2 * BLK);
    CHECK_EQ_STR(map_str(txn), "[2+1 13+1 18+1] cap=20 free=3 n=3 max=1");
    mdb_txn_abort(txn);
}

static void test_coalesce(void)
{
    const alloc_extent_t frees[] = {ext(2, 2), ext(8, 2)};
    MDB_txn *txn = setup_map(16, frees, 2);

    if (txn == NULL)
        return;
    CHECK_EQ_STR(map_str(txn), "[2+2 8+2] cap=16 free=4 n=2 max=2");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(4, 1)), 0); /* touches the left one */
    CHECK_EQ_STR(map_str(txn), "[2+3 8+2] cap=16 free=5 n=2 max=3");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(7, 1)), 0); /* touches the right one */
    CHECK_EQ_STR(map_str(txn), "[2+3 7+3] cap=16 free=6 n=2 max=3");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(5, 2)), 0); /* bridges both */
    CHECK_EQ_STR(map_str(txn), "[2+8] cap=16 free=8 n=1 max=8");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(12, 1)), 0); /* touches neither */
    CHECK_EQ_STR(map_str(txn), "[2+8 12+1] cap=16 free=9 n=2 max=8");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(0, 2)), 0); /* at 0, right merge */
    CHECK_EQ_STR(map_str(txn), "[0+10 12+1] cap=16 free=11 n=2 max=10");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(13, 3)), 0); /* at the end, left merge */
    CHECK_EQ_STR(map_str(txn), "[0+10 12+4] cap=16 free=14 n=2 max=10");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(10, 2)), 0);
    CHECK_EQ_STR(map_str(txn), "[0+16] cap=16 free=16 n=1 max=16");
    mdb_txn_abort(txn);
}

static void test_enospc_fragmented(void)
{
    const alloc_extent_t frees[] = {ext(0, 1), ext(2, 1), ext(4, 1), ext(6, 1), ext(8, 1)};
    MDB_txn *txn = setup_map(10, frees, 5);
    alloc_extent_t e;
    char before[1024];

    if (txn == NULL)
        return;
    snprintf(before, sizeof(before), "%s", map_str(txn));
    CHECK_EQ_STR(before, "[0+1 2+1 4+1 6+1 8+1] cap=10 free=5 n=5 max=1");
    /* Half the store is free, but no two free blocks are adjacent. */
    CHECK_EQ_INT(alloc_alloc(&al, txn, BLK + 1, &e), CIO_ENOSPC);
    CHECK(e.off == 0 && e.len == 0);
    CHECK_EQ_STR(map_str(txn), before);
    /* ENOSPC wrote nothing: the transaction is still good to commit. */
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), before);
}

static void test_invalid_free(void)
{
    const alloc_extent_t frees[] = {ext(2, 2), ext(8, 2)};
    MDB_txn *txn = setup_map(16, frees, 2);
    const char *expect = "[2+2 8+2] cap=16 free=4 n=2 max=2";
    const alloc_extent_t bad[] = {
        ext(2, 2),                   /* double free, exact */
        ext(3, 1),                   /* inside a free extent */
        ext(1, 2),                   /* overlaps its start */
        ext(3, 2),                   /* overlaps its end */
        ext(1, 4),                   /* covers it */
        ext(5, 4),                   /* overlaps the next one only */
        ext(0, 16),                  /* covers everything */
        ext(15, 2),                  /* runs past the capacity */
        ext(16, 1),                  /* starts at the capacity */
        {BLK + 1, BLK},              /* offset not aligned */
        {BLK, BLK - 1},              /* length not aligned */
        {5 * BLK, 0},                /* empty, but with an offset */
        {UINT64_MAX - BLK + 1, BLK}, /* off + len wraps around */
        {BLK, UINT64_MAX - BLK + 1}, /* as does this */
    };

    if (txn == NULL)
        return;
    CHECK_EQ_STR(map_str(txn), expect);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(alloc_free(&al, txn, bad[i]), CIO_EINVAL);
        CHECK_EQ_STR(map_str(txn), expect);
    }
    /* EINVAL wrote nothing: the transaction is still good to commit. */
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), expect);
}

static void test_take(void)
{
    const alloc_extent_t frees[] = {ext(2, 6), ext(10, 2), ext(14, 2)};
    MDB_txn *txn = setup_map(16, frees, 3);
    const char *start = "[2+6 10+2 14+2] cap=16 free=10 n=3 max=6";
    alloc_extent_t e;

    if (txn == NULL)
        return;
    CHECK_EQ_STR(map_str(txn), start);
    /* Refused, the map unchanged: in use, straddling, overhanging, beyond the capacity, unaligned, empty. */
    CHECK_EQ_INT(alloc_take(&al, txn, 0, BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 1 * BLK, 2 * BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 7 * BLK, 4 * BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 6 * BLK, 3 * BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 8 * BLK, BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 15 * BLK, 2 * BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 16 * BLK, BLK), CIO_ENOSPC);
    CHECK_EQ_INT(alloc_take(&al, txn, 2 * BLK + 1, BLK), CIO_EINVAL);
    CHECK_EQ_INT(alloc_take(&al, txn, 2 * BLK, BLK + 1), CIO_EINVAL);
    CHECK_EQ_INT(alloc_take(&al, txn, 2 * BLK, 0), CIO_EINVAL);
    CHECK_EQ_INT(alloc_take(&al, txn, UINT64_MAX - BLK + 1, 2 * BLK), CIO_EINVAL);
    CHECK_EQ_STR(map_str(txn), start);

    /* The middle of an extent: split in two. */
    CHECK_EQ_INT(alloc_take(&al, txn, 4 * BLK, BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[2+2 5+3 10+2 14+2] cap=16 free=9 n=4 max=3");
    /* Its head, its tail, then a whole extent. */
    CHECK_EQ_INT(alloc_take(&al, txn, 5 * BLK, BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[2+2 6+2 10+2 14+2] cap=16 free=8 n=4 max=2");
    CHECK_EQ_INT(alloc_take(&al, txn, 3 * BLK, BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[2+1 6+2 10+2 14+2] cap=16 free=7 n=4 max=2");
    CHECK_EQ_INT(alloc_take(&al, txn, 14 * BLK, 2 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[2+1 6+2 10+2] cap=16 free=5 n=3 max=2");
    CHECK_EQ_INT(alloc_take(&al, txn, 14 * BLK, BLK), CIO_ENOSPC); /* taken twice */
    /* What was taken frees back into one extent again. */
    CHECK_EQ_INT(alloc_free(&al, txn, ext(3, 3)), 0);
    CHECK_EQ_INT(alloc_free(&al, txn, ext(14, 2)), 0);
    CHECK_EQ_STR(map_str(txn), start);
    CHECK_EQ_INT(alloc_take(&al, txn, 10 * BLK, 2 * BLK), 0);
    CHECK_EQ_INT(alloc_largest(&al, txn, &e), 0);
    CHECK(e.off == 2 * BLK && e.len == 6 * BLK);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), "[2+6 14+2] cap=16 free=8 n=2 max=6");
}

/* Allocation outside ranges kept for later (a multipart upload's run): best fit among the pieces outside them, the
 * lowest piece of the extent; ENOSPC (nothing changed) when only space inside them fits; the largest piece outside. */
static void test_outside(void)
{
    const alloc_extent_t frees[] = {ext(2, 6), ext(10, 2), ext(14, 10)};
    const alloc_extent_t avoid[] = {ext(0, 3), ext(11, 5), ext(18, 2)}; /* sorted, apart; over free and used space */
    MDB_txn *txn = setup_map(24, frees, 3);
    alloc_extent_t e;

    if (txn == NULL)
        return;
    /* 1 block: 10+2 is the smallest extent, its piece 10+1 lies outside */
    CHECK_EQ_INT(alloc_alloc_outside(&al, txn, BLK, avoid, 3, &e), 0);
    CHECK(e.off == 10 * BLK && e.len == BLK);
    /* 3 blocks: 2+6 less 2+1 is 3+5, its low end */
    CHECK_EQ_INT(alloc_alloc_outside(&al, txn, 3 * BLK, avoid, 3, &e), 0);
    CHECK(e.off == 3 * BLK && e.len == 3 * BLK);
    /* 4 blocks: 6+2 is too short, 14+10 has 16+2 and 20+4 outside */
    CHECK_EQ_INT(alloc_alloc_outside(&al, txn, 4 * BLK, avoid, 3, &e), 0);
    CHECK(e.off == 20 * BLK && e.len == 4 * BLK);
    CHECK_EQ_STR(map_str(txn), "[2+1 6+2 11+1 14+6] cap=24 free=10 n=4 max=6");
    /* 3 blocks fit only across 18+2: refused, nothing changed; alloc_alloc would take them */
    CHECK_EQ_INT(alloc_alloc_outside(&al, txn, 3 * BLK, avoid, 3, &e), CIO_ENOSPC);
    CHECK(e.off == 0 && e.len == 0);
    CHECK_EQ_STR(map_str(txn), "[2+1 6+2 11+1 14+6] cap=24 free=10 n=4 max=6");
    CHECK_EQ_INT(alloc_largest_outside(&al, txn, avoid, 3, &e), 0);
    CHECK(e.off == 16 * BLK && e.len == 2 * BLK); /* 14+6 less 11+5 and 18+2; 6+2, as long, is not looked at */
    CHECK_EQ_INT(alloc_largest_outside(&al, txn, avoid, 0, &e), 0);
    CHECK(e.off == 14 * BLK && e.len == 6 * BLK);
    CHECK_EQ_INT(alloc_alloc_outside(&al, txn, 6 * BLK, NULL, 0, &e), 0); /* no ranges: alloc_alloc */
    CHECK(e.off == 14 * BLK && e.len == 6 * BLK);
    CHECK_EQ_INT(alloc_largest_outside(&al, txn, avoid, 3, &e), 0);
    CHECK(e.off == 6 * BLK && e.len == 2 * BLK);
    CHECK_EQ_INT(alloc_check(&al, txn, NULL, 0), 0);
    mdb_txn_abort(txn);
}

static void test_capacity(void)
{
    MDB_txn *txn;
    alloc_extent_t a, b;

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 10 * BLK + BLK - 1), 0);
    CHECK_EQ_STR(map_str(txn), "[0+10] cap=10 free=10 n=1 max=10");
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 10 * BLK), 0); /* unchanged */
    CHECK_EQ_STR(map_str(txn), "[0+10] cap=10 free=10 n=1 max=10");

    /* Grow with a free tail: the new space merges into it. */
    a = must_alloc(txn, 4 * BLK);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 12 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[4+8] cap=12 free=8 n=1 max=8");

    /* Grow with an allocated tail: a new extent. */
    b = must_alloc(txn, 8 * BLK);
    CHECK(b.off == 4 * BLK);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 15 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[12+3] cap=15 free=3 n=1 max=3");

    /* Shrink: only while the cut-off range is entirely free. */
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 11 * BLK), CIO_EINVAL);
    CHECK_EQ_STR(map_str(txn), "[12+3] cap=15 free=3 n=1 max=3");
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 13 * BLK), 0); /* splits the tail */
    CHECK_EQ_STR(map_str(txn), "[12+1] cap=13 free=1 n=1 max=1");
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 12 * BLK), 0); /* removes it */
    CHECK_EQ_STR(map_str(txn), "[] cap=12 free=0 n=0 max=0");
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 11 * BLK), CIO_EINVAL); /* nothing free */
    CHECK_EQ_STR(map_str(txn), "[] cap=12 free=0 n=0 max=0");

    /* Free space that is not at the tail does not allow a shrink. */
    CHECK_EQ_INT(alloc_free(&al, txn, a), 0);
    CHECK_EQ_STR(map_str(txn), "[0+4] cap=12 free=4 n=1 max=4");
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 8 * BLK), CIO_EINVAL);
    CHECK_EQ_STR(map_str(txn), "[0+4] cap=12 free=4 n=1 max=4");

    /* Freeing beyond a shrunk capacity is refused. */
    CHECK_EQ_INT(alloc_free(&al, txn, b), 0);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 6 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[0+6] cap=6 free=6 n=1 max=6");
    CHECK_EQ_INT(alloc_free(&al, txn, ext(6, 1)), CIO_EINVAL);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 0), 0);
    CHECK_EQ_STR(map_str(txn), "[] cap=0 free=0 n=0 max=0");
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), "[] cap=0 free=0 n=0 max=0");
}

static void test_capacity_huge(void)
{
    const uint64_t cap = UINT64_MAX - BLK + 1;
    MDB_txn *txn;
    alloc_extent_t e;
    uint64_t c = 0, f = 0;

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, UINT64_MAX), 0);
    CHECK_EQ_INT(alloc_stats(&al, txn, &c, &f, NULL, NULL), 0);
    CHECK(c == cap && f == cap);
    e = must_alloc(txn, cap);
    CHECK(e.off == 0 && e.len == cap);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){cap - BLK, BLK}), 0);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){cap - BLK, 2 * BLK}), CIO_EINVAL);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){cap, BLK}), CIO_EINVAL);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){0, cap - BLK}), 0);
    CHECK_EQ_INT(alloc_check(&al, txn, NULL, 0), 0);
    CHECK_EQ_INT(alloc_stats(&al, txn, NULL, &f, &c, NULL), 0);
    CHECK(f == cap && c == 1);
    mdb_txn_abort(txn);
}

static void test_abort(void)
{
    const alloc_extent_t frees[] = {ext(2, 2), ext(8, 2)};
    MDB_txn *txn = setup_map(16, frees, 2);
    const char *expect = "[2+2 8+2] cap=16 free=4 n=2 max=2";

    if (txn == NULL)
        return;
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    txn = txn_write();
    must_alloc(txn, 2 * BLK);
    CHECK_EQ_INT(alloc_free(&al, txn, ext(4, 4)), 0);
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 32 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[4+6 16+16] cap=32 free=22 n=2 max=16");
    mdb_txn_abort(txn);
    CHECK_EQ_STR(committed_str(), expect);
}

/* Writes a free extent into both indexes and adds it to the total, behind
 * the allocator's back, so that exactly one invariant breaks. */
static void raw_extent_put(MDB_txn *txn, uint64_t off, uint64_t len)
{
    unsigned char okey[8], oval[8], lkey[16], total[8];
    MDB_val k = {sizeof(okey), okey}, v = {sizeof(oval), oval}, lk = {sizeof(lkey), lkey}, lv = {0, lkey};
    MDB_val sk = {4, (void *)"free"}, sv;
    uint64_t free_bytes = 0;

    be64(okey, off);
    be64(oval, len);
    be64(lkey, len);
    be64(lkey + 8, off);
    CHECK_EQ_INT(mdb_put(txn, al.free_off, &k, &v, 0), 0);
    CHECK_EQ_INT(mdb_put(txn, al.free_len, &lk, &lv, 0), 0);
    CHECK_EQ_INT(alloc_stats(&al, txn, NULL, &free_bytes, NULL, NULL), 0);
    be64(total, free_bytes + len);
    sv.mv_size = sizeof(total);
    sv.mv_data = total;
    CHECK_EQ_INT(mdb_put(txn, al.state, &sk, &sv, 0), 0);
}

/* alloc_check must notice each kind of damage, and name it. */
static void test_check_detects(void)
{
    static const char *const expect[] = {
        "missing from free_len",    "free_len has 3 entries", "free total",  "touches its predecessor",
        "overlaps its predecessor", "beyond the capacity",    "not aligned", "malformed record"};

    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const alloc_extent_t frees[] = {ext(2, 2), ext(8, 2)};
        MDB_txn *txn = setup_map(16, frees, 2);
        unsigned char lkey[16] = {0}, buf[8] = {0};
        MDB_val lk = {sizeof(lkey), lkey}, lv = {0, lkey}, k = {sizeof(buf), buf}, v = {sizeof(buf), buf};
        MDB_val sk = {4, (void *)"free"};
        char msg[160] = "";

        if (txn == NULL)
            return;
        CHECK_EQ_INT(alloc_check(&al, txn, msg, sizeof(msg)), 0);
        switch (i) {
        case 0: /* the free_len key of [2+2) is gone */
            be64(lkey, 2 * BLK);
            be64(lkey + 8, 2 * BLK);
            CHECK_EQ_INT(mdb_del(txn, al.free_len, &lk, NULL), 0);
            break;
        case 1: /* a free_len key with no free_off entry */
            be64(lkey, BLK);
            CHECK_EQ_INT(mdb_put(txn, al.free_len, &lk, &lv, 0), 0);
            break;
        case 2:
            be64(buf, 5 * BLK);
            CHECK_EQ_INT(mdb_put(txn, al.state, &sk, &v, 0), 0);
            break;
        case 3:
            raw_extent_put(txn, 4 * BLK, BLK);
            break;
        case 4:
            raw_extent_put(txn, 3 * BLK, BLK);
            break;
        case 5:
            raw_extent_put(txn, 15 * BLK, 2 * BLK);
            break;
        case 6:
            raw_extent_put(txn, 12 * BLK + 512, BLK);
            break;
        default: /* a 4-byte length */
            be64(buf, 2 * BLK);
            v.mv_size = 4;
            CHECK_EQ_INT(mdb_put(txn, al.free_off, &k, &v, 0), 0);
            break;
        }
        CHECK_EQ_INT(alloc_check(&al, txn, msg, sizeof(msg)), CIO_EPROTO);
        if (strstr(msg, expect[i]) == NULL) {
            fprintf(stderr, "damage %zu: \"%s\" does not mention \"%s\"\n", i, msg, expect[i]);
            CHECK(!"alloc_check message");
        }
        mdb_txn_abort(txn);
    }
}

/* A full LMDB map is reported as CIO_EMAPFULL, and aborting restores it. */
/* Reserved bytes count as free in the stats, are bounded by what is
 * allocated, and leave the total as objects take them or they are freed. */
static void test_reserve(void)
{
    MDB_txn *txn;
    alloc_extent_t r, z, o;
    uint64_t was = 0;
    char msg[160];

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 64 * BLK), 0);
    o = must_alloc(txn, 4 * BLK); /* an object */
    CHECK_EQ_INT(alloc_reserve(&al, txn, 16 * BLK, &r), 0);
    CHECK(r.off == 4 * BLK && r.len == 16 * BLK);
    /* out of the free map, yet free in the stats */
    CHECK_EQ_STR(map_str(txn), "[20+44] cap=64 free=60 n=1 max=44");
    CHECK_EQ_INT(alloc_reserve(&al, txn, 45 * BLK, &z), CIO_ENOSPC);
    CHECK_EQ_STR(map_str(txn), "[20+44] cap=64 free=60 n=1 max=44");

    /* 2 blocks of the chunk become an object: no longer free */
    CHECK_EQ_INT(alloc_unreserve(&al, txn, 2 * BLK), 0);
    CHECK_EQ_STR(map_str(txn), "[20+44] cap=64 free=58 n=1 max=44");
    /* the object's old extent joins the reservation instead of the map */
    CHECK_EQ_INT(alloc_reserve_held(&al, txn, o.len), 0);
    CHECK_EQ_STR(map_str(txn), "[20+44] cap=64 free=62 n=1 max=44");
    /* no more than is allocated can be reserved, or unreserved */
    CHECK_EQ_INT(alloc_reserve_held(&al, txn, 3 * BLK), CIO_EINVAL);
    CHECK_EQ_INT(alloc_unreserve(&al, txn, 19 * BLK), CIO_EINVAL);
    CHECK_EQ_STR(map_str(txn), "[20+44] cap=64 free=62 n=1 max=44");
    /* the rest of the chunk goes back to the map */
    CHECK_EQ_INT(alloc_unreserve(&al, txn, 14 * BLK), 0);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){r.off + 2 * BLK, 14 * BLK}), 0);
    CHECK_EQ_STR(map_str(txn), "[6+58] cap=64 free=62 n=1 max=58");
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    CHECK_EQ_STR(committed_str(), "[6+58] cap=64 free=62 n=1 max=58");

    /* start-up: everything reserved was returned; the total is cleared */
    txn = txn_write();
    CHECK_EQ_INT(alloc_free(&al, txn, o), 0);
    CHECK_EQ_INT(alloc_unreserve_all(&al, txn, &was), 0);
    CHECK_EQ_INT(was, 4 * BLK);
    CHECK_EQ_STR(map_str(txn), "[0+4 6+58] cap=64 free=62 n=2 max=58");

    /* alloc_check catches a reserved total larger than what is allocated */
    CHECK_EQ_INT(alloc_reserve_held(&al, txn, 2 * BLK), 0);
    CHECK_EQ_INT(alloc_check(&al, txn, msg, sizeof(msg)), 0);
    CHECK_EQ_INT(alloc_free(&al, txn, (alloc_extent_t){4 * BLK, 2 * BLK}), 0); /* freed without unreserving */
    CHECK_EQ_INT(alloc_check(&al, txn, msg, sizeof(msg)), CIO_EPROTO);
    CHECK(strstr(msg, "reserved") != NULL);
    mdb_txn_abort(txn);
}

static void test_map_full(void)
{
    MDB_txn *txn;
    int rc = 0;
    uint64_t i;

    CHECK_EQ_INT(env_fresh(256u << 10), 0);
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, 1000000 * BLK), 0);
    must_alloc(txn, 1000000 * BLK);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);

    /* Every other block: each free adds an extent, until the map is full. */
    txn = txn_write();
    for (i = 0; i < 500000 && rc == 0; i++)
        rc = alloc_free(&al, txn, ext(2 * i, 1));
    CHECK_EQ_INT(rc, CIO_EMAPFULL);
    CHECK(i > 100 && i < 500000);
    mdb_txn_abort(txn);
    CHECK_EQ_STR(committed_str(), "[] cap=1000000 free=0 n=0 max=0");
    env_close();
}

/* ---- randomised run against a model ---------------------------------------------------------------------------------- */

#define R_MAX_BLOCKS 4096u
#define R_MIN_BLOCKS 2048u
#define R_STEPS 20000
#define R_CHECK_EVERY 100
#define R_REOPEN_EVERY 2500

/* The model: one byte per block (1 = allocated) and the live extents. */
typedef struct {
    uint8_t used[R_MAX_BLOCKS];
    alloc_extent_t live[R_MAX_BLOCKS];
    size_t nlive;
    uint64_t cap; /* blocks */
} model_t;

static model_t model, model_saved;

/* What the run exercised, printed at the end. */
static struct {
    int allocs, takes, enospc, frees, double_frees, bad_frees, grows, shrinks, refused_shrinks;
} tally;
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
    return rng() % n;
}

/* The model's free runs, the map's free extents must equal them exactly. */
static size_t model_runs(alloc_extent_t *runs)
{
    size_t n = 0;

    for (uint64_t b = 0; b < model.cap;) {
        if (model.used[b]) {
            b++;
            continue;
        }
        uint64_t s = b;
        while (b < model.cap && !model.used[b])
            b++;
        runs[n++] = ext(s, b - s);
    }
    return n;
}

/* Best fit per the contract: smallest sufficient run, lowest offset first. */
static int model_best_fit(uint64_t blocks, alloc_extent_t *out)
{
    static alloc_extent_t runs[R_MAX_BLOCKS];
    size_t n = model_runs(runs);
    int found = 0;

    for (size_t i = 0; i < n; i++) {
        if (runs[i].len >= blocks * BLK && (!found || runs[i].len < out->len)) {
            *out = runs[i];
            found = 1;
        }
    }
    return found;
}

static void model_mark(alloc_extent_t e, uint8_t v)
{
    memset(model.used + e.off / BLK, v, e.len / BLK);
}

struct walk {
    const alloc_extent_t *runs;
    size_t nruns, i;
    MDB_txn *txn;
    const char *err;
};

/* Checks one free extent read from free_off against the model and free_len,
 * independently of alloc_check. */
static int walk_visit(void *arg, alloc_extent_t e)
{
    struct walk *w = arg;
    unsigned char lkey[16];
    MDB_val k = {sizeof(lkey), lkey}, v;

    if (w->i >= w->nruns || e.off != w->runs[w->i].off || e.len != w->runs[w->i].len) {
        w->err = "free extents differ from the model";
        return 1;
    }
    be64(lkey, e.len);
    be64(lkey + 8, e.off);
    if (mdb_get(w->txn, al.free_len, &k, &v) != 0 || v.mv_size != 0) {
        w->err = "free_len lacks an extent of free_off";
        return 1;
    }
    w->i++;
    return 0;
}

/* The whole map against the model: the free extents are exactly the model's
 * free runs (so sorted, disjoint, coalesced, clear of every live extent),
 * both indexes agree, the totals match, alloc_check agrees. */
static int model_verify(MDB_txn *txn, const char *when, int step)
{
    static alloc_extent_t runs[R_MAX_BLOCKS];
    struct walk w = {.runs = runs, .txn = txn};
    uint64_t cap = 0, free_bytes = 0, nfree = 0, largest = 0, model_free = 0, model_largest = 0, live_sum = 0;
    MDB_stat st;
    char msg[160] = "";
    int rc;

    w.nruns = model_runs(runs);
    for (size_t i = 0; i < w.nruns; i++) {
        model_free += runs[i].len;
        if (runs[i].len > model_largest)
            model_largest = runs[i].len;
    }
    for (size_t i = 0; i < model.nlive; i++)
        live_sum += model.live[i].len;
    rc = alloc_foreach_free(&al, txn, walk_visit, &w);
    if (rc == 0 && w.i != w.nruns)
        w.err = "the map has fewer free extents than the model";
    if (w.err == NULL && rc != 0)
        w.err = "alloc_foreach_free failed";
    if (w.err == NULL && (mdb_stat(txn, al.free_len, &st) != 0 || st.ms_entries != w.nruns))
        w.err = "free_len and free_off differ in size";
    if (w.err == NULL && alloc_stats(&al, txn, &cap, &free_bytes, &nfree, &largest) != 0)
        w.err = "alloc_stats failed";
    if (w.err == NULL && (cap != model.cap * BLK || free_bytes != model_free || nfree != w.nruns || largest != model_largest))
        w.err = "alloc_stats differs from the model";
    if (w.err == NULL && live_sum + model_free != model.cap * BLK)
        w.err = "the model itself is inconsistent";
    if (w.err == NULL && alloc_check(&al, txn, msg, sizeof(msg)) != 0)
        w.err = msg;
    if (w.err != NULL) {
        fprintf(stderr, "random step %d (%s): %s\n", step, when, w.err);
        CHECK(!"model_verify");
        return -1;
    }
    CHECK(1);
    return 0;
}

static int model_verify_committed(const char *when, int step)
{
    MDB_txn *txn = txn_read();
    int rc;

    if (txn == NULL)
        return -1;
    rc = model_verify(txn, when, step);
    mdb_txn_abort(txn);
    return rc;
}

/* One random operation inside `txn`; returns -1 on a mismatch. */
static int random_op(MDB_txn *txn, int step)
{
    uint64_t dice = rng_below(100);
    alloc_extent_t e, want = {0, 0};
    int rc;

    if (dice < 40) {
        /* Alloc: mostly 0..64 blocks (any byte count), sometimes large. */
        uint64_t bytes = rng_below(8) == 0 ? BLK * (65 + rng_below(1000)) : rng_below(64 * BLK + 1);
        uint64_t blocks = alloc_round(bytes) / BLK;
        int fits = blocks == 0 || model_best_fit(blocks, &want);

        rc = alloc_alloc(&al, txn, bytes, &e);
        if (blocks == 0) {
            if (rc != 0 || e.off != 0 || e.len != 0)
                goto mismatch;
        } else if (!fits) {
            if (rc != CIO_ENOSPC)
                goto mismatch;
            tally.enospc++;
        } else {
            if (rc != 0 || e.off != want.off || e.len != blocks * BLK)
                goto mismatch;
            model_mark(e, 1);
            model.live[model.nlive++] = e;
            tally.allocs++;
        }
    } else if (dice < 48) {
        /* Take a chosen range: granted exactly when every block of it is free. */
        uint64_t off = rng_below(model.cap + 4) * BLK, len = (1 + rng_below(16)) * BLK;
        int free_run = off + len <= model.cap * BLK;

        for (uint64_t b = off / BLK; free_run && b < (off + len) / BLK; b++)
            free_run = !model.used[b];
        rc = alloc_take(&al, txn, off, len);
        if (rc != (free_run ? 0 : CIO_ENOSPC))
            goto mismatch;
        if (free_run) {
            e = (alloc_extent_t){off, len};
            model_mark(e, 1);
            model.live[model.nlive++] = e;
            tally.takes++;
        }
    } else if (dice < 90) {
        /* Free a random live extent; sometimes free it twice. */
        if (model.nlive == 0)
            return 0;
        size_t i = (size_t)rng_below(model.nlive);
        e = model.live[i];
        if (alloc_free(&al, txn, e) != 0)
            goto mismatch;
        model.live[i] = model.live[--model.nlive];
        model_mark(e, 0);
        tally.frees++;
        if (rng_below(10) == 0) {
            if (alloc_free(&al, txn, e) != CIO_EINVAL)
                goto mismatch;
            tally.double_frees++;
        }
    } else if (dice < 95) {
        /* A free that must be refused: misaligned, or overlapping free space
         * (frees of live blocks are skipped: they would corrupt the model). */
        uint64_t off = rng_below(model.cap + 4) * BLK, len = (1 + rng_below(8)) * BLK;
        int overlaps_free = 0;

        if (rng_below(8) == 0)
            off += 1 + rng_below(BLK - 1);
        if (off % BLK == 0 && off + len <= model.cap * BLK) {
            for (uint64_t b = off / BLK; b < (off + len) / BLK; b++)
                overlaps_free |= !model.used[b];
            if (!overlaps_free)
                return 0;
        }
        if (alloc_free(&al, txn, (alloc_extent_t){off, len}) != CIO_EINVAL)
            goto mismatch;
        tally.bad_frees++;
    } else if (dice < 97) {
        /* Resize, mostly by a few blocks: shrinking works only over a free
         * tail, and a tail that is free is usually short. */
        uint64_t cap = R_MIN_BLOCKS + rng_below(R_MAX_BLOCKS - R_MIN_BLOCKS + 1);
        int ok = 1;

        if (rng_below(4) != 0) {
            cap = model.cap + rng_below(17) - 8;
            cap = cap < R_MIN_BLOCKS ? R_MIN_BLOCKS : cap > R_MAX_BLOCKS ? R_MAX_BLOCKS : cap;
        }

        for (uint64_t b = cap; b < model.cap; b++)
            ok &= !model.used[b];
        rc = alloc_set_capacity(&al, txn, cap * BLK);
        if (rc != (ok ? 0 : CIO_EINVAL))
            goto mismatch;
        if (!ok)
            tally.refused_shrinks++;
        else if (cap > model.cap)
            tally.grows++;
        else if (cap < model.cap)
            tally.shrinks++;
        if (ok)
            model.cap = cap;
    } else {
        /* Stats inside the transaction, against the model's used bytes. */
        uint64_t used = 0, c = 0, f = 0;

        for (size_t i = 0; i < model.nlive; i++)
            used += model.live[i].len;
        if (alloc_stats(&al, txn, &c, &f, NULL, NULL) != 0 || c != model.cap * BLK || f != c - used)
            goto mismatch;
    }
    return 0;

mismatch:
    fprintf(stderr, "random step %d: operation (dice %" PRIu64 ") disagrees with the model\n", step, dice);
    CHECK(!"random_op");
    return -1;
}

static void test_random(void)
{
    int step = 0, last_check = 0, last_reopen = 0, batches = 0, aborted = 0, reopens = 0;
    MDB_txn *txn;

    CHECK_EQ_INT(env_fresh(MAP_SIZE), 0);
    memset(&model, 0, sizeof(model));
    model.cap = (R_MIN_BLOCKS + R_MAX_BLOCKS) / 2;
    txn = txn_write();
    CHECK_EQ_INT(alloc_set_capacity(&al, txn, model.cap * BLK), 0);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);

    while (step < R_STEPS) {
        /* One transaction of 1..20 operations; one in eight is aborted. */
        int n = 1 + (int)rng_below(20), abort_it = rng_below(8) == 0;

        model_saved = model;
        if ((txn = txn_write()) == NULL)
            return;
        for (int i = 0; i < n; i++, step++) {
            if (random_op(txn, step) != 0) {
                mdb_txn_abort(txn);
                return;
            }
        }
        batches++;
        if (abort_it) {
            mdb_txn_abort(txn);
            model = model_saved;
            aborted++;
            if (model_verify_committed("after abort", step) != 0)
                return;
        } else {
            CHECK_EQ_INT(mdb_txn_commit(txn), 0);
        }
        if (step - last_check >= R_CHECK_EVERY) {
            last_check = step;
            if (model_verify_committed("periodic", step) != 0)
                return;
        }
        if (step - last_reopen >= R_REOPEN_EVERY) {
            last_reopen = step;
            reopens++;
            env_close();
            CHECK_EQ_INT(env_open(MAP_SIZE), 0);
            if (model_verify_committed("after reopen", step) != 0)
                return;
        }
    }
    if (model_verify_committed("end", step) != 0)
        return;
    fprintf(
        stderr,
        "     random: %d steps in %d transactions (%d aborted, %d reopens): %d allocs, %d takes, %d ENOSPC, %d frees, %d double "
        "frees, %d bad frees, %d grows, %d shrinks, %d refused shrinks, %zu live at the end\n",
        step, batches, aborted, reopens, tally.allocs, tally.takes, tally.enospc, tally.frees, tally.double_frees, tally.bad_frees,
        tally.grows, tally.shrinks, tally.refused_shrinks, model.nlive);
}

int main(void)
{
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (mkdtemp(test_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_round);
    RUN(test_unformatted);
    RUN(test_basic);
    RUN(test_best_fit);
    RUN(test_coalesce);
    RUN(test_enospc_fragmented);
    RUN(test_invalid_free);
    RUN(test_take);
    RUN(test_capacity);
    RUN(test_capacity_huge);
    RUN(test_abort);
    RUN(test_check_detects);
    RUN(test_reserve);
    RUN(test_outside);
    RUN(test_map_full);
    RUN(test_random);
    env_close();
    env_remove_files();
    rmdir(test_dir);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "     %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return TEST_SUMMARY();
}
