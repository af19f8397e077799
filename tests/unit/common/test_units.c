/* test_units.c - unit tests for common/units.c: size and duration parsing, size formatting. */
#include <stdint.h>
#include "testutil.h"
#include "common/units.h"

static void check_size(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    int rc = units_parse_size(s, &v);
    CHECK_EQ_INT(rc, CIO_OK);
    if (rc != CIO_OK || v != want)
        fprintf(stderr, "  size '%s' -> rc %d value %llu, want %llu\n", s, rc, (unsigned long long)v, (unsigned long long)want);
    CHECK(v == want);
}

static void check_size_bad(const char *s)
{
    uint64_t v = 777;
    int rc = units_parse_size(s, &v);
    if (rc != CIO_EINVAL)
        fprintf(stderr, "  size '%s' should fail, got rc %d value %llu\n", s ? s : "(null)", rc, (unsigned long long)v);
    CHECK_EQ_INT(rc, CIO_EINVAL);
    CHECK(v == 777); /* untouched on error */
}

static void check_dur(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    int rc = units_parse_duration(s, &v);
    CHECK_EQ_INT(rc, CIO_OK);
    if (rc != CIO_OK || v != want)
        fprintf(stderr, "  duration '%s' -> rc %d value %llu, want %llu\n", s, rc, (unsigned long long)v, (unsigned long long)want);
    CHECK(v == want);
}

static void check_dur_bad(const char *s)
{
    uint64_t v = 777;
    int rc = units_parse_duration(s, &v);
    if (rc != CIO_EINVAL)
        fprintf(stderr, "  duration '%s' should fail, got rc %d value %llu\n", s ? s : "(null)", rc, (unsigned long long)v);
    CHECK_EQ_INT(rc, CIO_EINVAL);
    CHECK(v == 777);
}

static void test_size_units(void)
{
    check_size("512MB", 512000000ULL);
    check_size("1TB", 1000000000000ULL);
    check_size("2GiB", 2147483648ULL);
    check_size("4096", 4096);
    check_size("0", 0);
    check_size("0B", 0);
    check_size("1 MiB", 1048576);
    check_size("1k", 1000);
    check_size("1K", 1000);
    check_size("1kb", 1000);
    check_size("1kib", 1024);
    check_size("1B", 1);
    check_size("3M", 3000000);
    check_size("7G", 7000000000ULL);
    check_size("2T", 2000000000000ULL);
    check_size("1P", 1000000000000000ULL);
    check_size("1PB", 1000000000000000ULL);
    check_size("1PiB", 1ULL << 50);
    check_size("1TiB", 1ULL << 40);
    check_size("16GiB", 16ULL << 30);
    check_size("007MB", 7000000);
}

static void test_size_decimals(void)
{
    check_size("1.5KiB", 1536);
    check_size("1.5GiB", 1610612736ULL);
    check_size("1.5MB", 1500000);
    check_size("0.5KB", 500);
    check_size("0.001KB", 1);
    check_size("2.000MB", 2000000);
    check_size("1.0", 1);
    check_size("0.25KiB", 256);
    check_size("0.0009765625MiB", 1024); /* 2^-10 MiB, exact */
    check_size_bad("0.1B");
    check_size_bad("1.5");
    check_size_bad("0.0001KB");
    check_size_bad("0.3KiB");
    check_size_bad("1.");
    check_size_bad(".5MB");
    check_size_bad("1.5.5MB");
    check_size_bad("0.00000000000000000001PB"); /* more fractional digits than fit */
}

static void test_size_bad(void)
{
    check_size_bad(NULL);
    check_size_bad("");
    check_size_bad(" ");
    check_size_bad(" 1MB");
    check_size_bad("1MB ");
    check_size_bad("1  MB");
    check_size_bad("1 ");
    check_size_bad("-1MB");
    check_size_bad("+1MB");
    check_size_bad("1XB");
    check_size_bad("20EB");
    check_size_bad("1EiB");
    check_size_bad("MB");
    check_size_bad("0x10");
    check_size_bad("1e6");
    check_size_bad("1MBB");
    check_size_bad("1 M B");
    check_size_bad("1Mi");
}

static void test_size_overflow(void)
{
    check_size("18446744073709551615", UINT64_MAX);
    check_size("18446744073709551615B", UINT64_MAX);
    check_size("16383PiB", 16383ULL << 50);
    check_size_bad("18446744073709551616");
    check_size_bad("99999999999999999999999999");
    check_size_bad("18446744073709552KB");
    check_size_bad("16384PiB");
    check_size_bad("18446.744073709551616PB");
    check_size_bad("18446744073709551615.5KB");
}

static void test_duration(void)
{
    check_dur("500ms", 500);
    check_dur("1s", 1000);
    check_dur("2m", 120000);
    check_dur("1h", 3600000);
    check_dur("7d", 604800000);
    check_dur("0.5d", 43200000);
    check_dur("1.5s", 1500);
    check_dur("0.5m", 30000);
    check_dur("0.001s", 1);
    check_dur("0", 0);
    check_dur("0ms", 0);
    check_dur("0s", 0);
    check_dur("5s", 5000);
    check_dur("18446744073709551615ms", UINT64_MAX);
}

static void test_duration_bad(void)
{
    check_dur_bad(NULL);
    check_dur_bad("");
    check_dur_bad("1");
    check_dur_bad("00");
    check_dur_bad("0.5ms");
    check_dur_bad("0.0001s");
    check_dur_bad("1S");
    check_dur_bad("1MS");
    check_dur_bad("1H");
    check_dur_bad("1 s");
    check_dur_bad("1D");
    check_dur_bad("-1s");
    check_dur_bad("s");
    check_dur_bad("1sec");
    check_dur_bad("1.s");
    check_dur_bad("18446744073709551616ms");
    check_dur_bad("18446744073709551615s");
    check_dur_bad("99999999999999999999999h");
}

static void check_fmt(uint64_t v, const char *want)
{
    char buf[32];
    units_format_size(v, buf, sizeof(buf));
    CHECK_EQ_STR(buf, want);
}

static void test_format(void)
{
    char small[4];
    uint64_t back;

    check_fmt(0, "0B");
    check_fmt(1, "1B");
    check_fmt(1500, "1500B");
    check_fmt(1000, "1KB");
    check_fmt(1024, "1KiB");
    check_fmt(1000000, "1MB");
    check_fmt(2147483648ULL, "2GiB");
    check_fmt(1000000000000ULL, "1TB");
    check_fmt(1536, "1536B");
    check_fmt(1ULL << 50, "1PiB");
    check_fmt(1023, "1023B");
    check_fmt(UINT64_MAX, "18446744073709551615B");
    units_format_size(2147483648ULL, small, sizeof(small));
    CHECK_EQ_STR(small, "2Gi");     /* truncated, still terminated */
    units_format_size(5, small, 0); /* no room: nothing written, no crash */

    /* Whatever it writes parses back to the same number. */
    for (uint64_t v = 1; v < (1ULL << 62); v = v * 3 + 1) {
        char buf[32];
        units_format_size(v, buf, sizeof(buf));
        CHECK(units_parse_size(buf, &back) == CIO_OK && back == v);
    }
}

static uint64_t rate(const char *s)
{
    uint64_t v = 0;
    return units_parse_rate(s, &v) == CIO_OK ? v : UINT64_MAX;
}

static void test_rate(void)
{
    CHECK(rate("50MB/s") == 50000000);
    CHECK(rate("50MB") == 50000000);
    CHECK(rate("512KiB/s") == 512 * 1024);
    CHECK(rate("100Mbit") == 12500000);
    CHECK(rate("1Gbit/s") == 125000000);
    CHECK(rate("8kbit") == 1000);
    CHECK(rate("100Mbps") == UINT64_MAX); /* "bps" is ambiguous: not taken */
    CHECK(rate("4096") == 4096);
    CHECK(rate("0") == UINT64_MAX);
    CHECK(rate("") == UINT64_MAX);
    CHECK(rate("MB/s") == UINT64_MAX);
    CHECK(rate("5MBbit") == UINT64_MAX);
    CHECK(rate("fast") == UINT64_MAX);
    CHECK(rate("-1MB/s") == UINT64_MAX);
}

int main(void)
{
    RUN(test_size_units);
    RUN(test_size_decimals);
    RUN(test_size_bad);
    RUN(test_size_overflow);
    RUN(test_duration);
    RUN(test_duration_bad);
    RUN(test_format);
    RUN(test_rate);
    return TEST_SUMMARY();
}
