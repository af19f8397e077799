/* test_hlc.c - unit tests for common/hlc.c: the hybrid logical clock and the (version, site) order. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "testutil.h"
#include "common/hlc.h"

/* The physical clock the tests step back and forth. */
static int64_t fake_ms;

static int64_t fake_wall(void)
{
    return fake_ms;
}

static void test_layout(void)
{
    uint64_t v = hlc_make(1700000000123u, 42);
    CHECK(hlc_ms(v) == 1700000000123u);
    CHECK_EQ_INT(hlc_counter(v), 42);
    CHECK(v == (UINT64_C(1700000000123) << 16 | 42));
    CHECK(hlc_ms(hlc_make(HLC_MS_MAX, 0xffff)) == HLC_MS_MAX);
    CHECK_EQ_INT(hlc_counter(hlc_make(HLC_MS_MAX, 0xffff)), 0xffff);
    CHECK(hlc_make(HLC_MS_MAX, 0xffff) == UINT64_MAX);
    /* 48 bits of milliseconds reach past the year 10889 */
    CHECK(1970 + HLC_MS_MAX / 1000 / 86400 * 10000 / 3652425 == 10889);
    /* integer order is (ms, counter) order */
    CHECK(hlc_make(5, 0xffff) < hlc_make(6, 0));
}

static void test_monotonic_under_steps(void)
{
    hlc_t c;
    uint64_t prev = 0, v;
    static const int64_t steps[] = {1000, 1000, 1001, 500, 500, 2000, 1999, 0, -5, 5000, 4000, 4000, 6000};

    hlc_init(&c, 0, fake_wall, 0);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        fake_ms = steps[i];
        for (int j = 0; j < 3; j++) {
            CHECK(hlc_now(&c, &v) == 0);
            CHECK(v > prev);
            CHECK(hlc_ms(v) >= (uint64_t)(fake_ms < 0 ? 0 : fake_ms));
            prev = v;
        }
    }
    /* forward: the physical clock wins at once, with a fresh counter */
    fake_ms = 9000;
    CHECK(hlc_now(&c, &v) == 0);
    CHECK(v == hlc_make(9000, 0));
    /* back: the milliseconds stay, the counter counts */
    fake_ms = 100;
    CHECK(hlc_now(&c, &v) == 0);
    CHECK(v == hlc_make(9000, 1));
    CHECK(hlc_last(&c) == v);
    hlc_destroy(&c);
}

static void test_counter_overflow_borrows(void)
{
    hlc_t c;
    uint64_t v, prev;

    fake_ms = 7000;
    hlc_init(&c, hlc_make(7000, HLC_COUNTER_MAX - 1), fake_wall, 0);
    CHECK(hlc_now(&c, &v) == 0);
    CHECK(v == hlc_make(7000, HLC_COUNTER_MAX));
    prev = v;
    CHECK(hlc_now(&c, &v) == 0); /* still millisecond 7000 by the wall: borrows 7001 */
    CHECK(v == hlc_make(7001, 0));
    CHECK(v > prev);
    /* a whole millisecond's worth of versions, and more, stays strictly increasing */
    fake_ms = 8000;
    hlc_init(&c, 0, fake_wall, 0);
    prev = 0;
    for (uint64_t i = 0; i < 3 * (HLC_COUNTER_MAX + 1); i++) {
        CHECK(hlc_now(&c, &v) == 0);
        if (v <= prev) {
            CHECK(v > prev);
            break;
        }
        prev = v;
    }
    CHECK(hlc_ms(prev) == 8002);
    /* the last version there is: the clock says so rather than repeat one */
    hlc_init(&c, UINT64_MAX - 1, fake_wall, 0);
    CHECK(hlc_now(&c, &v) == 0);
    CHECK(v == UINT64_MAX);
    v = 1;
    CHECK(hlc_now(&c, &v) == CIO_ETOOBIG);
    CHECK(v == 1);
}

static void test_receive_rule(void)
{
    hlc_t a, b;
    uint64_t va, vb;

    fake_ms = 10000;
    hlc_init(&a, 0, fake_wall, 0);
    hlc_init(&b, 0, fake_wall, 0);
    /* site a's clock is 30 s ahead; b sees a's version, then writes */
    fake_ms = 40000;
    CHECK(hlc_now(&a, &va) == 0);
    fake_ms = 10000;
    CHECK_EQ_INT(hlc_update(&b, va), 0);
    CHECK(hlc_now(&b, &vb) == 0);
    CHECK(vb > va);
    CHECK(hlc_ms(vb) == 40000);
    /* an older remote version does not move the clock back */
    CHECK_EQ_INT(hlc_update(&b, hlc_make(5, 5)), 0);
    CHECK(hlc_last(&b) == vb);
    CHECK(hlc_now(&b, &vb) == 0);
    CHECK(vb == va + 2);
    /* equal versions from two sites: the next local one still orders after */
    CHECK_EQ_INT(hlc_update(&a, vb), 0);
    CHECK(hlc_now(&a, &va) == 0);
    CHECK(va > vb);
}

static void test_skew_boundary(void)
{
    hlc_t c;
    uint64_t v;

    fake_ms = 100000;
    hlc_init(&c, 0, fake_wall, 0); /* the default: 60 s */
    CHECK(c.max_skew_ms == HLC_MAX_CLOCK_SKEW_MS_DEFAULT);
    CHECK_EQ_INT(hlc_update(&c, hlc_make(100000 + 60000, HLC_COUNTER_MAX)), 0); /* exactly 60 s ahead */
    CHECK(hlc_skew_events(&c) == 0);
    CHECK_EQ_INT(hlc_update(&c, hlc_make(100000 + 60001, 0)), 1); /* one millisecond more */
    CHECK(hlc_skew_events(&c) == 1);
    /* taken all the same: the clock moved past it */
    CHECK(hlc_now(&c, &v) == 0);
    CHECK(v == hlc_make(160001, 1));
    /* behind, or just ahead: not counted */
    CHECK_EQ_INT(hlc_update(&c, hlc_make(1, 0)), 0);
    CHECK_EQ_INT(hlc_update(&c, hlc_make(100001, 0)), 0);
    /* far in the future: counted each time */
    CHECK_EQ_INT(hlc_update(&c, UINT64_MAX), 1);
    CHECK(hlc_skew_events(&c) == 2);
    /* a configured skew */
    hlc_init(&c, 0, fake_wall, 1000);
    CHECK_EQ_INT(hlc_update(&c, hlc_make(101000, 7)), 0);
    CHECK_EQ_INT(hlc_update(&c, hlc_make(101001, 0)), 1);
    CHECK(hlc_skew_events(&c) == 1);
}

static void test_total_order(void)
{
    static const char *const sites[] = {"a", "b", "ab", "", "site-b", "site-a", "site-a2"};
    enum { N = 400 };
    struct {
        uint64_t v;
        const char *s;
    } x[N];

    srand(13);
    for (int i = 0; i < N; i++) {
        x[i].v = hlc_make(1000 + (uint64_t)(rand() % 3), (uint16_t)(rand() % 3));
        x[i].s = sites[rand() % (int)(sizeof(sites) / sizeof(sites[0]))];
    }
#define CMP(i, j) hlc_version_cmp(x[i].v, x[i].s, strlen(x[i].s), x[j].v, x[j].s, strlen(x[j].s))
    int bad = 0;
    for (int i = 0; i < N && !bad; i++)
        for (int j = 0; j < N && !bad; j++) {
            int ij = CMP(i, j), ji = CMP(j, i);
            /* antisymmetric, and 0 exactly for the same (version, site) */
            if ((ij > 0) != (ji < 0) || (ij == 0) != (ji == 0) || (ij == 0) != (x[i].v == x[j].v && strcmp(x[i].s, x[j].s) == 0))
                bad = 1;
            for (int k = 0; k < N && !bad; k += 7) /* transitive */
                if (ij < 0 && CMP(j, k) < 0 && CMP(i, k) >= 0)
                    bad = 1;
        }
#undef CMP
    CHECK(!bad);
    /* the version first, the site id only to break a tie, a prefix first */
    CHECK(hlc_version_cmp(2, "a", 1, 1, "z", 1) > 0);
    CHECK(hlc_version_cmp(1, "a", 1, 1, "b", 1) < 0);
    CHECK(hlc_version_cmp(1, "a", 1, 1, "ab", 2) < 0);
    CHECK(hlc_version_cmp(1, "\xff", 1, 1, "a", 1) > 0); /* bytes are unsigned */
    CHECK(hlc_version_cmp(1, NULL, 0, 1, NULL, 0) == 0);
}

enum { THREADS = 4, PER_THREAD = 20000 };
static hlc_t shared_clock;
static uint64_t taken[THREADS][PER_THREAD];

static void *take_versions(void *arg)
{
    uint64_t *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (hlc_now(&shared_clock, &out[i]) != 0)
            out[i] = 0;
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_concurrent(void)
{
    pthread_t t[THREADS];
    static uint64_t all[THREADS * PER_THREAD];
    int increasing = 1, distinct = 1;

    hlc_init(&shared_clock, 0, NULL, 0); /* the real wall clock */
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, take_versions, taken[i]) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) {
            if (taken[i][j] == 0 || (j > 0 && taken[i][j] <= taken[i][j - 1]))
                increasing = 0;
            all[i * PER_THREAD + j] = taken[i][j];
        }
    qsort(all, THREADS * PER_THREAD, sizeof(all[0]), cmp_u64);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        if (all[i] == all[i - 1])
            distinct = 0;
    CHECK(increasing);
    CHECK(distinct);
    CHECK(hlc_last(&shared_clock) == all[THREADS * PER_THREAD - 1]);
}

int main(void)
{
    RUN(test_layout);
    RUN(test_monotonic_under_steps);
    RUN(test_counter_overflow_borrows);
    RUN(test_receive_rule);
    RUN(test_skew_boundary);
    RUN(test_total_order);
    RUN(test_concurrent);
    return TEST_SUMMARY();
}
