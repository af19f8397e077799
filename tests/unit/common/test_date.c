/* test_date.c - unit tests for common/date.c: ISO-8601 text and calendar
 * fields, checked against gmtime_r/strftime, and HTTP dates through h2o. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <h2o.h>
#include "testutil.h"
#include "common/date.h"

/* What gmtime_r and strftime say for `ms` (ms >= 0, year <= 9999). */
static void reference(int64_t ms, char *iso, char *iso_ms, struct tm *tm)
{
    time_t s = (time_t)(ms / 1000);
    gmtime_r(&s, tm);
    strftime(iso, 32, "%Y-%m-%dT%H:%M:%SZ", tm);
    size_t n = strftime(iso_ms, 32, "%Y-%m-%dT%H:%M:%S", tm);
    snprintf(iso_ms + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static void check_against_libc(int64_t ms)
{
    char want[32], want_ms[32], got[DATE_ISO8601_LEN + 1], got_ms[DATE_ISO8601_MS_LEN + 1];
    struct tm w, g;
    reference(ms, want, want_ms, &w);
    date_iso8601(ms, got);
    date_iso8601_ms(ms, got_ms);
    date_gmtime(ms, &g);
    CHECK_EQ_STR(got, want);
    CHECK_EQ_STR(got_ms, want_ms);
    CHECK_EQ_INT(strlen(got), DATE_ISO8601_LEN);
    CHECK_EQ_INT(strlen(got_ms), DATE_ISO8601_MS_LEN);
    CHECK(g.tm_year == w.tm_year && g.tm_mon == w.tm_mon && g.tm_mday == w.tm_mday && g.tm_hour == w.tm_hour &&
          g.tm_min == w.tm_min && g.tm_sec == w.tm_sec && g.tm_wday == w.tm_wday && g.tm_yday == w.tm_yday && g.tm_isdst == 0);
}

static void test_epoch(void)
{
    char s[DATE_ISO8601_LEN + 1], m[DATE_ISO8601_MS_LEN + 1];
    date_iso8601(0, s);
    date_iso8601_ms(0, m);
    CHECK_EQ_STR(s, "1970-01-01T00:00:00Z");
    CHECK_EQ_STR(m, "1970-01-01T00:00:00.000Z");
    date_iso8601_ms(1, m);
    CHECK_EQ_STR(m, "1970-01-01T00:00:00.001Z");
    date_iso8601(999, s); /* the fraction is dropped, not rounded */
    CHECK_EQ_STR(s, "1970-01-01T00:00:00Z");
    check_against_libc(0);
}

static void test_known_instants(void)
{
    char m[DATE_ISO8601_MS_LEN + 1];
    date_iso8601_ms(INT64_C(1700000000123), m);
    CHECK_EQ_STR(m, "2023-11-14T22:13:20.123Z");
    date_iso8601_ms(INT64_C(951782400000), m); /* 2000 is a leap year */
    CHECK_EQ_STR(m, "2000-02-29T00:00:00.000Z");
    date_iso8601_ms(INT64_C(4107542399999), m); /* 2100 is not */
    CHECK_EQ_STR(m, "2100-02-28T23:59:59.999Z");
    date_iso8601_ms(INT64_C(2147483648000), m); /* past 2038 */
    CHECK_EQ_STR(m, "2038-01-19T03:14:08.000Z");
}

/* Far future: the last instant a four-digit year holds, and everything past it. */
static void test_far_future_and_before_epoch(void)
{
    char s[DATE_ISO8601_LEN + 1], m[DATE_ISO8601_MS_LEN + 1];
    check_against_libc(DATE_MS_MAX);
    date_iso8601_ms(DATE_MS_MAX, m);
    CHECK_EQ_STR(m, "9999-12-31T23:59:59.999Z");
    const int64_t beyond[] = {DATE_MS_MAX + 1, INT64_C(253402300800000) * 4, INT64_MAX};
    for (size_t i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
        date_iso8601_ms(beyond[i], m);
        date_iso8601(beyond[i], s);
        CHECK_EQ_STR(m, "9999-12-31T23:59:59.999Z");
        CHECK_EQ_STR(s, "9999-12-31T23:59:59Z");
    }
    const int64_t before[] = {-1, -999, -1000, -86400000, INT64_MIN};
    for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
        date_iso8601_ms(before[i], m);
        CHECK_EQ_STR(m, "1970-01-01T00:00:00.000Z");
    }
}

/* Every day boundary around each month end of a few years, and random instants. */
static void test_matches_libc(void)
{
    for (int64_t day = 0; day < 366 * 3; day++) {
        check_against_libc(day * 86400000);
        check_against_libc(day * 86400000 + 86399999);
    }
    for (int64_t day = 10957; day < 10957 + 366 * 5; day++) /* 2000..2004 */
        check_against_libc(day * 86400000 + 43200500);
    srand(1234);
    for (int i = 0; i < 200000; i++) {
        int64_t ms = (((int64_t)rand() << 31) ^ rand()) % (DATE_MS_MAX + 1);
        check_against_libc(ms);
    }
}

/* The HTTP date: our calendar fields into h2o's formatter. */
static void test_http_date_through_h2o(void)
{
    char buf[H2O_TIMESTR_RFC1123_LEN + 1];
    struct tm tm;
    date_gmtime(0, &tm);
    h2o_time2str_rfc1123(buf, &tm);
    CHECK_EQ_STR(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    date_gmtime(INT64_C(784111777000), &tm);
    h2o_time2str_rfc1123(buf, &tm);
    CHECK_EQ_STR(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    date_gmtime(INT64_MAX, &tm);
    h2o_time2str_rfc1123(buf, &tm);
    CHECK_EQ_STR(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    date_gmtime(INT64_MIN, &tm);
    h2o_time2str_rfc1123(buf, &tm);
    CHECK_EQ_STR(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
}

/* The seconds an HTTP date shows, clamped alike; timegm of the calendar
 * fields gives them back. */
static void test_seconds(void)
{
    const int64_t ms[] = {0, 999, 1000, INT64_C(784111777999), DATE_MS_MAX, DATE_MS_MAX + 1, INT64_MAX, -1, -1500, INT64_MIN};
    const int64_t want[] = {0, 0, 1, 784111777, DATE_MS_MAX / 1000, DATE_MS_MAX / 1000, DATE_MS_MAX / 1000, 0, 0, 0};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        struct tm tm;
        CHECK(date_seconds(ms[i]) == want[i]);
        date_gmtime(ms[i], &tm);
        CHECK((int64_t)timegm(&tm) == date_seconds(ms[i]));
    }
}

int main(void)
{
    RUN(test_epoch);
    RUN(test_known_instants);
    RUN(test_far_future_and_before_epoch);
    RUN(test_matches_libc);
    RUN(test_http_date_through_h2o);
    RUN(test_seconds);
    return TEST_SUMMARY();
}
