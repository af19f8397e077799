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

/* Parses a rate into bytes per second. Accepted: "0" (no rate), or a number
 * (as for sizes) followed by a unit, optional single space between, case-insensitive:
 *   bits per second: bit kbit Mbit Gbit (powers of 1000) and Kibit Mibit Gibit, each
 *   optionally followed by "/s", or the same with "bps" (100Mbps);
 *   bytes per second: any size unit of units_parse_size followed by "/s" (20MB/s, 1GiB/s).
 * A bit rate is rounded down to whole bytes per second. A bare number, or a
 * size without "/s", is refused: the unit says whether bits or bytes are
 * meant. Returns 0 or CIO_EINVAL; `*out` is untouched on error. */
int units_parse_rate(const char *s, uint64_t *out) CIO_MUST_CHECK;

/* Formats `bytes` as the shortest exact form with a binary or decimal unit
 * ("1MB", "2GiB", "1500B") into buf (NUL-terminated, truncated to cap). */
void units_format_size(uint64_t bytes, char *buf, size_t cap);

#endif
