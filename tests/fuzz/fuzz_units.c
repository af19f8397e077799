/* fuzz_units.c - libFuzzer target for size and duration parsing (common/units.c).
 *
 * The input, NUL-terminated, goes to units_parse_size and
 * units_parse_duration. Each result is compared with a reference parser
 * written from the header's rules with 128-bit arithmetic (a different route
 * to the same answer): the same inputs are accepted, with the same values.
 * An accepted size formats (units_format_size) to a string that parses back
 * to it. */
#include <strings.h>
#include "fuzz.h"
#include "common/units.h"

typedef unsigned __int128 u128;

/* Largest number of significant fractional digits (trailing zeros dropped)
 * the parser carries (UNITS_MAX_FRAC_DIGITS in units.c): more are refused
 * even when the product would be whole, e.g. 2^-50 PiB written out exactly. */
#define REF_FRAC_MAX 19

/* Reference: "<digits>[.<digits>]" then the unit at *end. 0 or -1. */
static int ref_number(const char *s, u128 *ipart, u128 *frac, unsigned *fdigits, const char **end)
{
    const char *p = s, *last = NULL, *fstart;

    *ipart = 0;
    *frac = 0;
    *fdigits = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        *ipart = *ipart * 10 + (u128)(*p - '0');
        if (*ipart > UINT64_MAX)
            return -1;
    }
    if (*p == '.') {
        fstart = ++p;
        for (; *p >= '0' && *p <= '9'; p++)
            if (*p != '0')
                last = p;
        if (p == fstart)
            return -1;
        if (last != NULL) {
            if (last - fstart + 1 > REF_FRAC_MAX)
                return -1;
            for (const char *q = fstart; q <= last; q++) {
                *frac = *frac * 10 + (u128)(*q - '0');
                ++*fdigits;
            }
        }
    }
    *end = p;
    return 0;
}

/* value = (ipart + frac / 10^fdigits) * mult, which must be whole and fit. */
static int ref_scale(u128 ipart, u128 frac, unsigned fdigits, uint64_t mult, uint64_t *out)
{
    u128 p10 = 1, whole = ipart * mult, part = frac * mult;

    for (unsigned i = 0; i < fdigits; i++)
        p10 *= 10;
    if (part % p10 != 0)
        return -1;
    whole += part / p10;
    if (whole > UINT64_MAX)
        return -1;
    *out = (uint64_t)whole;
    return 0;
}

static int ref_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"B", 1},
        {"K", 1000},
        {"KB", 1000},
        {"KiB", 1024},
        {"M", 1000000},
        {"MB", 1000000},
        {"MiB", 1ULL << 20},
        {"G", 1000000000},
        {"GB", 1000000000},
        {"GiB", 1ULL << 30},
        {"T", 1000000000000ULL},
        {"TB", 1000000000000ULL},
        {"TiB", 1ULL << 40},
        {"P", 1000000000000000ULL},
        {"PB", 1000000000000000ULL},
        {"PiB", 1ULL << 50},
    };
    u128 ip, fr;
    unsigned fd;
    const char *p;
    uint64_t mult = 0;

    if (ref_number(s, &ip, &fr, &fd, &p) != 0)
        return -1;
    if (*p == ' ') {
        p++;
        if (*p == '\0')
            return -1;
    }
    if (*p == '\0')
        mult = 1;
    for (size_t i = 0; mult == 0 && i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(p, units[i].name) == 0)
            mult = units[i].mult;
    if (mult == 0)
        return -1;
    return ref_scale(ip, fr, fd, mult, out);
}

static int ref_duration(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    u128 ip, fr;
    unsigned fd;
    const char *p;
    uint64_t mult = 0;

    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (ref_number(s, &ip, &fr, &fd, &p) != 0)
        return -1;
    for (size_t i = 0; mult == 0 && i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(p, units[i].name) == 0)
            mult = units[i].mult;
    if (mult == 0)
        return -1;
    return ref_scale(ip, fr, fd, mult, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size), text[64];
    uint64_t v = 0x5a5a5a5a5a5a5a5aULL, want, back;
    int rc, ref;

    rc = units_parse_size(s, &v);
    ref = ref_size(s, &want);
    FUZZ_CHECK(rc == 0 || rc == CIO_EINVAL);
    FUZZ_CHECK((rc == 0) == (ref == 0));
    if (rc == 0) {
        FUZZ_CHECK(v == want);
        units_format_size(v, text, sizeof(text));
        FUZZ_CHECK(units_parse_size(text, &back) == 0 && back == v);
    } else {
        FUZZ_CHECK(v == 0x5a5a5a5a5a5a5a5aULL);
    }

    v = 0x5a5a5a5a5a5a5a5aULL;
    rc = units_parse_duration(s, &v);
    ref = ref_duration(s, &want);
    FUZZ_CHECK(rc == 0 || rc == CIO_EINVAL);
    FUZZ_CHECK((rc == 0) == (ref == 0));
    if (rc == 0)
        FUZZ_CHECK(v == want);
    else
        FUZZ_CHECK(v == 0x5a5a5a5a5a5a5a5aULL);

    /* Any value formats to something that parses back to it. */
    if (size >= 8) {
        fuzz_in_t in = {data, size};
        uint64_t x = fuzz_uint(&in, 8);
        units_format_size(x, text, sizeof(text));
        FUZZ_CHECK(units_parse_size(text, &back) == 0 && back == x);
    }
    free(s);
    return 0;
}
