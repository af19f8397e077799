/* test_carve.c - unit tests of the in-memory allocator of small PUTs: cuts,
 * moving on to the offered chunk, remainders, kept extents, and concurrent
 * cuts that never overlap. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "storaged/carve.h"
#include "testutil.h"

#define BLK ((uint64_t)ALLOC_BLOCK)

static alloc_extent_t ext(uint64_t off_blocks, uint64_t len_blocks)
{
    return (alloc_extent_t){off_blocks * BLK, len_blocks * BLK};
}

static int same(alloc_extent_t a, alloc_extent_t b)
{
    return a.off == b.off && a.len == b.len;
}

static void test_cut_and_move_on(void)
{
    carve_t cv;
    alloc_extent_t e, out[CARVE_LEFTOVERS + 2];
    int want = 0;

    carve_init(&cv);
    /* nothing offered: no cut, and a chunk is wanted */
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 0);
    CHECK_EQ_INT(want, 1);
    CHECK_EQ_INT(carve_wants(&cv), 1);

    CHECK_EQ_INT(carve_offer(&cv, ext(100, 10)), 0);
    CHECK_EQ_INT(carve_wants(&cv), 0);
    CHECK_EQ_INT(carve_offer(&cv, ext(500, 10)), CIO_EINVAL); /* one waits already */

    /* the first cut moves on to the offered chunk, which leaves none waiting */
    want = 0;
    CHECK_EQ_INT(carve_cut(&cv, 3 * BLK, &e, &want), 1);
    CHECK(same(e, ext(100, 3)));
    CHECK_EQ_INT(want, 1);
    CHECK_EQ_INT(carve_offer(&cv, ext(200, 10)), 0);
    want = 0;
    CHECK_EQ_INT(carve_cut(&cv, 4 * BLK, &e, &want), 1);
    CHECK(same(e, ext(103, 4)));
    CHECK_EQ_INT(want, 0);

    /* 3 blocks left; a 5-block body moves on and leaves them for the committer */
    CHECK_EQ_INT(carve_cut(&cv, 5 * BLK, &e, &want), 1);
    CHECK(same(e, ext(200, 5)));
    CHECK_EQ_INT(carve_collect(&cv, 0, out, CARVE_LEFTOVERS + 2), 1);
    CHECK(same(out[0], ext(107, 3)));
    CHECK_EQ_INT(carve_collect(&cv, 0, out, CARVE_LEFTOVERS + 2), 0);

    /* too large for what is left, nothing waiting: no cut, chunk wanted */
    want = 0;
    CHECK_EQ_INT(carve_cut(&cv, 6 * BLK, &e, &want), 0);
    CHECK_EQ_INT(want, 1);
    CHECK_EQ_INT(carve_cut(&cv, 5 * BLK, &e, &want), 1);
    CHECK(same(e, ext(205, 5)));

    /* all: what is left of both chunks; then nothing is cut until an offer */
    CHECK_EQ_INT(carve_offer(&cv, ext(300, 8)), 0);
    CHECK_EQ_INT(carve_cut(&cv, 2 * BLK, &e, &want), 1); /* moves on: 205+5 was used up */
    CHECK(same(e, ext(300, 2)));
    CHECK_EQ_INT(carve_offer(&cv, ext(400, 20)), 0);
    CHECK_EQ_INT(carve_collect(&cv, 1, out, CARVE_LEFTOVERS + 2), 2);
    CHECK(same(out[0], ext(302, 6)) && same(out[1], ext(400, 20)));
    CHECK_EQ_INT(carve_wants(&cv), 0);
    want = 0;
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 0);
    CHECK_EQ_INT(want, 1);

    /* a failed transaction puts them back */
    CHECK_EQ_INT(carve_restore(&cv, out, 2), 0);
    CHECK_EQ_INT(carve_collect(&cv, 0, out, CARVE_LEFTOVERS + 2), 1); /* the chunk remainder; 302+6 is kept for reuse */
    CHECK(same(out[0], ext(400, 20)));
    CHECK_EQ_INT(carve_cut(&cv, 6 * BLK, &e, &want), 1);
    CHECK(same(e, ext(302, 6)));
    carve_destroy(&cv);
}

static void test_leftovers_bounded(void)
{
    carve_t cv;
    alloc_extent_t e, out[CARVE_LEFTOVERS + 2];
    size_t moved = 0;
    int want = 0;

    carve_init(&cv);
    CHECK_EQ_INT(carve_offer(&cv, ext(0, 3)), 0);
    CHECK_EQ_INT(carve_cut(&cv, 2 * BLK, &e, &want), 1);
    /* chunks of 3 blocks cut by 2: each move leaves a 1-block remainder */
    for (uint64_t i = 0; i < CARVE_LEFTOVERS + 4; i++) {
        if (carve_offer(&cv, ext(100 + 10 * i, 3)) != 0)
            break; /* the last one was not taken: cutting stopped moving on */
        if (carve_cut(&cv, 2 * BLK, &e, &want) == 1)
            moved++;
    }
    CHECK_EQ_INT(moved, CARVE_LEFTOVERS);
    CHECK_EQ_INT(carve_cut(&cv, 2 * BLK, &e, &want), 0);
    CHECK_EQ_INT(carve_collect(&cv, 0, out, CARVE_LEFTOVERS + 2), CARVE_LEFTOVERS);
    CHECK(same(out[CARVE_LEFTOVERS - 1], ext(2, 1)));
    CHECK_EQ_INT(carve_cut(&cv, 2 * BLK, &e, &want), 1); /* room again: moves on */
    CHECK(same(e, ext(100 + 10 * CARVE_LEFTOVERS, 2)));
    carve_destroy(&cv);
}

static void test_keep(void)
{
    carve_t cv;
    alloc_extent_t e, out[64];
    uint64_t bytes;
    int want = 0;

    carve_init(&cv);
    /* nothing is kept before the first cut: no small PUTs come here */
    CHECK_EQ_INT(carve_room(&cv, BLK, &bytes), 0);
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 0);
    /* only sizes of 1 to CARVE_BINS blocks */
    CHECK_EQ_INT(carve_room(&cv, (CARVE_BINS + 1) * BLK, &bytes), 0);
    CHECK_EQ_INT(carve_keep(&cv, ext(9, CARVE_BINS + 1)), CIO_EINVAL);
    CHECK_EQ_INT(carve_room(&cv, BLK, &bytes), CARVE_BIN_MAX);
    CHECK_EQ_INT(bytes, CARVE_KEEP_BYTES);

    CHECK_EQ_INT(carve_keep(&cv, ext(10, 1)), 0);
    CHECK_EQ_INT(carve_keep(&cv, ext(20, 1)), 0);
    CHECK_EQ_INT(carve_keep(&cv, ext(30, 2)), 0);
    CHECK_EQ_INT(carve_room(&cv, BLK, &bytes), CARVE_BIN_MAX - 2);
    CHECK_EQ_INT(bytes, CARVE_KEEP_BYTES - 4 * BLK);
    /* a kept one of the exact size, newest first, before any chunk */
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 1);
    CHECK(same(e, ext(20, 1)));
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 1);
    CHECK(same(e, ext(10, 1)));
    want = 0;
    CHECK_EQ_INT(carve_cut(&cv, BLK, &e, &want), 0); /* no 1-block one left, no chunk */
    CHECK_EQ_INT(want, 1);
    CHECK_EQ_INT(carve_cut(&cv, 2 * BLK, &e, &want), 1);
    CHECK(same(e, ext(30, 2)));

    /* the byte bound */
    uint64_t big = CARVE_BINS * BLK, n = 0;
    while (carve_keep(&cv, ext(1000 + n * CARVE_BINS, CARVE_BINS)) == 0)
        n++;
    CHECK_EQ_INT(n, CARVE_KEEP_BYTES / big);
    CHECK_EQ_INT(carve_room(&cv, BLK, &bytes), CARVE_BIN_MAX);
    CHECK_EQ_INT(bytes, 0);
    CHECK_EQ_INT(carve_keep(&cv, ext(5, 1)), CIO_EINVAL);

    /* all: every kept one comes out */
    size_t got = 0, k;
    while ((k = carve_collect(&cv, 1, out, 64)) > 0)
        got += k;
    CHECK_EQ_INT(got, n);
    CHECK_EQ_INT(carve_room(&cv, BLK, &bytes), CARVE_BIN_MAX);
    CHECK_EQ_INT(bytes, CARVE_KEEP_BYTES);
    carve_destroy(&cv);
}

/* Threads cut 1- to 3-block extents while the main thread offers chunks and
 * collects remainders, keeping freed ones too; every block handed out, left
 * over or kept is accounted for exactly once.  A cutter that finds no room
 * yields and tries again (valgrind runs one thread at a time, so a cutter may
 * otherwise spend all its tries before the main thread offers a chunk); it
 * stops after CUTS cuts, after MAX_TRIES tries, or once the space is used up. */
#define CUTTERS 4
#define CUTS 20000
#define MAX_TRIES 2000000
#define CHUNK_BLOCKS 64
#define SPACE_BLOCKS (CUTTERS * CUTS * 3 + 64 * CHUNK_BLOCKS)

static carve_t shared;
static unsigned char *owner; /* per block: handed out already */
static int cutters_done;
static int space_gone; /* the main thread has nothing more to offer */

typedef struct {
    unsigned seed;
    alloc_extent_t *got;
    size_t n;
} cutter_t;

static void *cutter(void *arg)
{
    cutter_t *t = arg;
    for (size_t tries = 0; t->n < CUTS && tries < MAX_TRIES; tries++) {
        uint64_t len = (1 + rand_r(&t->seed) % 3) * BLK;
        alloc_extent_t e;
        int want = 0;
        if (carve_cut(&shared, len, &e, &want)) {
            t->got[t->n++] = e;
            continue;
        }
        if (__atomic_load_n(&space_gone, __ATOMIC_ACQUIRE))
            break;
        sched_yield();
    }
    __atomic_add_fetch(&cutters_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_concurrent(void)
{
    pthread_t th[CUTTERS];
    cutter_t ct[CUTTERS];
    alloc_extent_t out[64];
    uint64_t next_off = 0, offered = 0, collected = 0, handed = 0;
    size_t overlaps = 0, k;
    int rounds = 0;

    carve_init(&shared);
    owner = calloc(SPACE_BLOCKS, 1);
    /* one chunk before any cutter starts, so every run cuts something */
    CHECK(carve_offer(&shared, ext(next_off, CHUNK_BLOCKS)) == 0);
    next_off += CHUNK_BLOCKS;
    offered += CHUNK_BLOCKS;
    for (int i = 0; i < CUTTERS; i++) {
        ct[i] = (cutter_t){.seed = 7u + (unsigned)i, .got = malloc(CUTS * sizeof(alloc_extent_t)), .n = 0};
        CHECK(pthread_create(&th[i], NULL, cutter, &ct[i]) == 0);
    }
    /* the committer's part, bounded by the space */
    while (__atomic_load_n(&cutters_done, __ATOMIC_ACQUIRE) < CUTTERS && next_off + CHUNK_BLOCKS <= SPACE_BLOCKS &&
           rounds++ < 10000000) {
        if (carve_wants(&shared) && carve_offer(&shared, ext(next_off, CHUNK_BLOCKS)) == 0) {
            next_off += CHUNK_BLOCKS;
            offered += CHUNK_BLOCKS;
        }
        while ((k = carve_collect(&shared, 0, out, 64)) > 0)
            for (size_t i = 0; i < k; i++)
                collected += out[i].len / BLK;
        if (rounds % 64 == 0)
            sched_yield();
    }
    __atomic_store_n(&space_gone, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < CUTTERS; i++)
        pthread_join(th[i], NULL);
    while ((k = carve_collect(&shared, 1, out, 64)) > 0)
        for (size_t i = 0; i < k; i++)
            collected += out[i].len / BLK;
    for (int i = 0; i < CUTTERS; i++) {
        for (size_t j = 0; j < ct[i].n; j++) {
            for (uint64_t b = ct[i].got[j].off / BLK; b < (ct[i].got[j].off + ct[i].got[j].len) / BLK; b++) {
                overlaps += owner[b] != 0;
                owner[b] = 1;
            }
            handed += ct[i].got[j].len / BLK;
        }
        free(ct[i].got);
    }
    CHECK_EQ_INT(overlaps, 0);
    CHECK(handed > 0);
    /* every offered block was handed out once or came back */
    CHECK_EQ_INT(handed + collected, offered);
    free(owner);
    carve_destroy(&shared);
}

int main(void)
{
    RUN(test_cut_and_move_on);
    RUN(test_leftovers_bounded);
    RUN(test_keep);
    RUN(test_concurrent);
    return TEST_SUMMARY();
}
