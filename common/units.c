/* units.c - strict, overflow-safe parsing and formatting of sizes and durations. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/units.h"

/* More fractional digits than this cannot be carried exactly in a uint64_t
 * (10^19 is the largest power of ten that fits). */
#define UNITS_MAX_FRAC_DIGITS 19

/* A parsed "<int>[.<frac>]": the value is int + frac / 10^frac_digits, with
 * trailing zeros already stripped from frac. */
typedef struct {
    uint64_t ipart;
    uint64_t frac;
    unsigned frac_digits;
} units_num_t;

typedef struct {
    const char *name;
    uint64_t mult;
} units_unit_t;

static const units_unit_t units_size_units[] = {
    {"B", 1ULL},
    {"K", 1000ULL},
    {"KB", 1000ULL},
    {"KiB", 1ULL << 10},
    {"M", 1000000ULL},
    {"MB", 1000000ULL},
    {"MiB", 1ULL << 20},
    {"G", 1000000000ULL},
    {"GB", 1000000000ULL},
    {"GiB", 1ULL << 30},
    {"T", 1000000000000ULL},
    {"TB", 1000000000000ULL},
    {"TiB", 1ULL << 40},
    {"P", 1000000000000000ULL},
    {"PB", 1000000000000000ULL},
    {"PiB", 1ULL << 50},
};

static const units_unit_t units_duration_units[] = {
    {"ms", 1ULL}, {"s", 1000ULL}, {"m", 60ULL * 1000}, {"h", 60ULL * 60 * 1000}, {"d", 24ULL * 60 * 60 * 1000},
};

/* Parses the number at the start of s; *end points after it. Digits are read
 * by hand (not strtoull/strtod) so signs, spaces, hex and exponents are all
 * refused and every overflow is caught. */
static int units_parse_number(const char *s, units_num_t *num, const char **end)
{
    const char *p = s;
    uint64_t ipart = 0, frac = 0;
    unsigned ndigits = 0;

    if (*p < '0' || *p > '9')
        return CIO_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (ipart > (UINT64_MAX - d) / 10)
            return CIO_EINVAL;
        ipart = ipart * 10 + d;
    }
    if (*p == '.') {
        const char *fstart = ++p, *last_nonzero = NULL;
        for (; *p >= '0' && *p <= '9'; p++)
            if (*p != '0')
                last_nonzero = p;
        if (p == fstart)
            return CIO_EINVAL; /* "1." */
        if (last_nonzero != NULL) {
            for (const char *q = fstart; q <= last_nonzero; q++) {
                if (++ndigits > UNITS_MAX_FRAC_DIGITS)
                    return CIO_EINVAL;
                frac = frac * 10 + (uint64_t)(*q - '0');
            }
        }
    }
    num->ipart = ipart;
    num->frac = frac;
    num->frac_digits = ndigits;
    *end = p;
    return CIO_OK;
}

static uint64_t units_gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Computes num * mult exactly. Fails on overflow or when the fraction does not
 * come out as a whole number of base units: with p = 10^digits and
 * g = gcd(mult, p), frac * mult / p is whole iff (p / g) divides frac. */
static int units_scale(const units_num_t *num, uint64_t mult, uint64_t *out)
{
    uint64_t whole, part = 0;

    if (mult != 0 && num->ipart > UINT64_MAX / mult)
        return CIO_EINVAL;
    whole = num->ipart * mult;
    if (num->frac != 0) {
        uint64_t p = 1, g, q, m;
        for (unsigned i = 0; i < num->frac_digits; i++)
            p *= 10;
        g = units_gcd(mult, p);
        q = p / g;
        m = mult / g;
        if (num->frac % q != 0)
            return CIO_EINVAL;
        if (num->frac / q > UINT64_MAX / m)
            return CIO_EINVAL;
        part = (num->frac / q) * m;
    }
    if (whole > UINT64_MAX - part)
        return CIO_EINVAL;
    *out = whole + part;
    return CIO_OK;
}

/* The multiplier of a size unit name (B, KB, MiB, ...); CIO_EINVAL when unknown. */
static int units_parse_size_unit(const char *name, uint64_t *mult)
{
    for (size_t i = 0; i < sizeof(units_size_units) / sizeof(units_size_units[0]); i++)
        if (strcasecmp(name, units_size_units[i].name) == 0) {
            *mult = units_size_units[i].mult;
            return CIO_OK;
        }
    return CIO_EINVAL;
}

int units_parse_size(const char *s, uint64_t *out)
{
    units_num_t num;
    const char *p;
    uint64_t mult = 0, v;

    if (s == NULL || units_parse_number(s, &num, &p) != CIO_OK)
        return CIO_EINVAL;
    if (*p == ' ')
        p++; /* one optional space, and then a unit must follow */
    if (*p == '\0') {
        if (p != s && p[-1] == ' ')
            return CIO_EINVAL;
        mult = 1;
    } else {
        for (size_t i = 0; i < sizeof(units_size_units) / sizeof(units_size_units[0]); i++) {
            if (strcasecmp(p, units_size_units[i].name) == 0) {
                mult = units_size_units[i].mult;
                break;
            }
        }
        if (mult == 0)
            return CIO_EINVAL;
    }
    if (units_scale(&num, mult, &v) != CIO_OK)
        return CIO_EINVAL;
    *out = v;
    return CIO_OK;
}

int units_parse_duration(const char *s, uint64_t *out_ms)
{
    units_num_t num;
    const char *p;
    uint64_t mult = 0, v;

    if (s == NULL)
        return CIO_EINVAL;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return CIO_OK;
    }
    if (units_parse_number(s, &num, &p) != CIO_OK)
        return CIO_EINVAL;
    for (size_t i = 0; i < sizeof(units_duration_units) / sizeof(units_duration_units[0]); i++) {
        if (strcmp(p, units_duration_units[i].name) == 0) {
            mult = units_duration_units[i].mult;
            break;
        }
    }
    if (mult == 0 || units_scale(&num, mult, &v) != CIO_OK)
        return CIO_EINVAL;
    *out_ms = v;
    return CIO_OK;
}

int units_parse_rate(const char *s, uint64_t *out)
{
    static const units_unit_t bit_units[] = {
        {"bit", 1},
        {"kbit", 1000ULL},
        {"mbit", 1000000ULL},
        {"gbit", 1000000000ULL},
        {"kibit", 1ULL << 10},
        {"mibit", 1ULL << 20},
        {"gibit", 1ULL << 30},
        {"bps", 1},
        {"kbps", 1000ULL},
        {"mbps", 1000000ULL},
        {"gbps", 1000000000ULL},
    };
    char unit[16];
    units_num_t num;
    const char *p;
    size_t len;
    uint64_t v;

    if (s == NULL)
        return CIO_EINVAL;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return CIO_OK;
    }
    if (units_parse_number(s, &num, &p) != CIO_OK)
        return CIO_EINVAL;
    if (*p == ' ')
        p++;
    len = strlen(p);
    if (len == 0 || len >= sizeof(unit))
        return CIO_EINVAL;
    memcpy(unit, p, len + 1);
    int per_s = len > 2 && strcasecmp(unit + len - 2, "/s") == 0;
    if (per_s)
        unit[len - 2] = '\0';
    for (size_t i = 0; i < sizeof(bit_units) / sizeof(bit_units[0]); i++)
        if (strcasecmp(unit, bit_units[i].name) == 0) {
            if (per_s && bit_units[i].name[strlen(bit_units[i].name) - 1] == 's')
                return CIO_EINVAL;                                  /* "Mbps/s" */
            if (units_scale(&num, bit_units[i].mult, &v) != CIO_OK) /* a whole number of bits per second */
                return CIO_EINVAL;
            *out = v / 8;
            return CIO_OK;
        }
    if (!per_s || units_parse_size_unit(unit, &v) != CIO_OK || units_scale(&num, v, &v) != CIO_OK)
        return CIO_EINVAL;
    *out = v;
    return CIO_OK;
}

void units_format_size(uint64_t bytes, char *buf, size_t cap)
{
    /* Largest unit first, so the first exact hit of a family is its shortest. */
    static const units_unit_t units[] = {
        {"PiB", 1ULL << 50},   {"PB", 1000000000000000ULL}, {"TiB", 1ULL << 40}, {"TB", 1000000000000ULL}, {"GiB", 1ULL << 30},
        {"GB", 1000000000ULL}, {"MiB", 1ULL << 20},         {"MB", 1000000ULL},  {"KiB", 1ULL << 10},      {"KB", 1000ULL},
        {"B", 1ULL},
    };
    char best[32] = "", cand[32];

    if (cap == 0)
        return;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (bytes != 0 && bytes % units[i].mult != 0)
            continue;
        if (bytes == 0 && units[i].mult != 1)
            continue;
        snprintf(cand, sizeof(cand), "%llu%s", (unsigned long long)(bytes / units[i].mult), units[i].name);
        if (best[0] == '\0' || strlen(cand) < strlen(best))
            memcpy(best, cand, sizeof(best));
    }
    snprintf(buf, cap, "%s", best);
}
