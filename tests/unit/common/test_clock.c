/* test_clock.c - unit tests for common/clock.c: the wall and monotonic clocks. */
#include <stdint.h>
#include <time.h>
#include "testutil.h"
#include "common/clock.h"

/* The wall clock is milliseconds since the epoch: between two readings of
 * CLOCK_REALTIME. (Not time(2): glibc reads it from the coarse clock, which
 * lags by up to a tick, so a second boundary between the readings made this
 * test fail now and then.) The monotonic one is a different clock. */
static void test_wall_is_epoch_ms(void)
{
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    int64_t ms = clock_wall_ms();
    clock_gettime(CLOCK_REALTIME, &after);
    CHECK(ms >= (int64_t)before.tv_sec * 1000 + before.tv_nsec / 1000000);
    CHECK(ms <= (int64_t)after.tv_sec * 1000 + after.tv_nsec / 1000000);
}

static void test_mono_never_goes_back(void)
{
    int64_t ms = clock_mono_ms(), us = clock_mono_us();
    for (int i = 0; i < 10000; i++) {
        int64_t ms2 = clock_mono_ms(), us2 = clock_mono_us();
        CHECK(ms2 >= ms);
        CHECK(us2 >= us);
        ms = ms2;
        us = us2;
    }
    /* the two resolutions read the same clock */
    int64_t a = clock_mono_ms(), b = clock_mono_us() / 1000, c = clock_mono_ms();
    CHECK(a <= b && b <= c);
}

static void test_wall_after(void)
{
    struct timespec now, t;
    clock_gettime(CLOCK_REALTIME, &now);
    t = clock_wall_after(0);
    CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
    CHECK(t.tv_sec >= now.tv_sec);
    t = clock_wall_after(2500);
    CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
    CHECK(t.tv_sec >= now.tv_sec + 2 && t.tv_sec <= now.tv_sec + 4);
    /* 999 ms more than any tv_nsec carries into the seconds */
    for (int i = 0; i < 1000; i++) {
        t = clock_wall_after(999);
        CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
    }
    t = clock_wall_after(-5); /* a deadline in the past is now */
    CHECK(t.tv_sec >= now.tv_sec && t.tv_sec <= now.tv_sec + 2);
}

int main(void)
{
    RUN(test_wall_is_epoch_ms);
    RUN(test_mono_never_goes_back);
    RUN(test_wall_after);
    return TEST_SUMMARY();
}
