/* date.h - instants as text: ISO-8601 UTC timestamps, and the calendar fields
 * that HTTP dates are made from.
 *
 * An instant is milliseconds since the Unix epoch (clock_wall_ms, a record's
 * mtime). Any int64_t is accepted, including a replicated mtime that came
 * off the wire: it is clamped to [1970-01-01T00:00:00.000Z,
 * 9999-12-31T23:59:59.999Z], the range a four-digit year can write, so the
 * text always has the fixed length below. Pure functions: no allocation, no
 * locale, no time zone, safe from any thread.
 *
 * HTTP dates (RFC 1123, "Thu, 01 Jan 1970 00:00:00 GMT") are h2o's:
 * date_gmtime() then h2o_time2str_rfc1123() (h2o/time_.h), in storaged;
 * common/ does not link h2o. */
#ifndef COMIO_DATE_H
#define COMIO_DATE_H

#include <stdint.h>
#include <time.h>

#define DATE_ISO8601_LEN 20                  /* "1970-01-01T00:00:00Z" */
#define DATE_ISO8601_MS_LEN 24               /* "1970-01-01T00:00:00.000Z" */
#define DATE_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* Fills *tm with the UTC calendar fields of the (clamped) instant `ms`:
 * every field gmtime_r() sets, tm_wday and tm_yday included, tm_isdst 0. */
void date_gmtime(int64_t ms, struct tm *tm);

/* The whole seconds since the epoch of the (clamped) instant `ms`: the time
 * an HTTP date made by date_gmtime shows, so that a date a client sends back
 * (If-Modified-Since, If-Range) compares equal to it. */
int64_t date_seconds(int64_t ms);

/* Writes "YYYY-MM-DDTHH:MM:SSZ" (seconds, the fraction dropped) and a NUL. */
void date_iso8601(int64_t ms, char out[DATE_ISO8601_LEN + 1]);

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" and a NUL. */
void date_iso8601_ms(int64_t ms, char out[DATE_ISO8601_MS_LEN + 1]);

#endif
