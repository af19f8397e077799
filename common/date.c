/* date.c - ISO-8601 timestamps and UTC calendar fields, computed without
 * gmtime_r or strftime: those fail (and leave struct tm unset) for years an
 * int cannot hold, and strftime's cost showed on listings of 1000 keys. */
#include <string.h>
#include "common/date.h"

static int64_t clamp(int64_t ms)
{
    return ms < 0 ? 0 : ms > DATE_MS_MAX ? DATE_MS_MAX : ms;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
 * civil_from_days, for days >= 0). */
static void civil(int64_t days, int *year, int *month, int *mday)
{
    int64_t z = days + 719468, era = z / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365], from March 1 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11], March = 0 */
    *mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int64_t date_seconds(int64_t ms)
{
    return clamp(ms) / 1000;
}

void date_gmtime(int64_t ms, struct tm *tm)
{
    static const int before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t secs = clamp(ms) / 1000, days = secs / 86400, rem = secs % 86400;
    int year, month, mday;

    civil(days, &year, &month, &mday);
    memset(tm, 0, sizeof(*tm));
    tm->tm_year = year - 1900;
    tm->tm_mon = month - 1;
    tm->tm_mday = mday;
    tm->tm_hour = (int)(rem / 3600);
    tm->tm_min = (int)(rem / 60 % 60);
    tm->tm_sec = (int)(rem % 60);
    tm->tm_wday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
    tm->tm_yday = before_month[month - 1] + mday - 1 + (month > 2 && is_leap(year));
}

static char *digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

/* "YYYY-MM-DDTHH:MM:SS" (19 bytes) at p; returns the end. */
static char *seconds_part(char *p, const struct tm *tm)
{
    p = digits(p, tm->tm_year + 1900, 4);
    *p++ = '-';
    p = digits(p, tm->tm_mon + 1, 2);
    *p++ = '-';
    p = digits(p, tm->tm_mday, 2);
    *p++ = 'T';
    p = digits(p, tm->tm_hour, 2);
    *p++ = ':';
    p = digits(p, tm->tm_min, 2);
    *p++ = ':';
    return digits(p, tm->tm_sec, 2);
}

void date_iso8601(int64_t ms, char out[DATE_ISO8601_LEN + 1])
{
    struct tm tm;
    date_gmtime(ms, &tm);
    char *p = seconds_part(out, &tm);
    *p++ = 'Z';
    *p = '\0';
}

void date_iso8601_ms(int64_t ms, char out[DATE_ISO8601_MS_LEN + 1])
{
    struct tm tm;
    date_gmtime(ms, &tm);
    char *p = seconds_part(out, &tm);
    *p++ = '.';
    p = digits(p, (int)(clamp(ms) % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
}
