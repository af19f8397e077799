/* units.h - parsing of human sizes ("512MB", "2GiB") and durations ("500ms"). */
#ifndef COMIO_UNITS_H
#define COMIO_UNITS_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

/* Parses a size. Accepted: a non-negative integer or decimal number (at most 19
 * digits after the point, even when the value would be exact) followed by
 * an optional unit, case-insensitive, optional single space between:
 *   B; KB MB GB TB PB (powers of 1000); KiB MiB GiB TiB PiB (powers of 1024);
 *   K M G T P alone mean the decimal units.
 * A bare number is bytes. The result must be a whole number of bytes that fits
 * in uint64_t. Returns 0, or CIO_EINVAL (malformed, empty, negative, overflow,
 * fractional byte). `*out` is untouched on error. */
int units_parse_size(const char *s, uint64_t *out) CIO_MUST_CHECK;

/* Parses a duration into milliseconds. Accepted: a non-negative integer or
 * decimal number (at most 19 digits after the point) followed by a unit: ms, s, m, h, d (case-sensitive as written).
 * "0" alone is accepted. Returns 0 or CIO_EINVAL (malformed, no unit, overflow,
 * sub-millisecond remainder). `*out_ms` is untouched on error. */
int units_parse_duration(const char *s, uint64_t *out_ms) CIO_MUST_CHECK;

/* Parses a transfer rate into bytes per second: a size as units_parse_size
 * takes it, optionally followed by "/s" ("50MB/s", "512KiB"), or a number
 * of bits with a decimal prefix K M G T, "bit" and optionally "/s"
 * ("100Mbit", "1Gbit/s", "8kbit"; case-insensitive; 8 bits a byte, a
 * fraction of a byte rounded down). 0 is refused: no rate means no limit,
 * which is said by leaving the setting out. Returns 0 or CIO_EINVAL;
 * `*out` is untouched on error. */
int units_parse_rate(const char *s, uint64_t *out) CIO_MUST_CHECK;

/* Formats `bytes` as the shortest exact form with a binary or decimal unit
 * ("1MB", "2GiB", "1500B") into buf (NUL-terminated, truncated to cap). */
void units_format_size(uint64_t bytes, char *buf, size_t cap);

#endif
