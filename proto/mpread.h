/* mpread.h - a bounded, zero-copy, non-allocating msgpack reader for the wire decoders.
 *
 * msgpack-c's unpacker references str/bin in its input, but allocates every
 * map and array from its declared count before reading the elements, so a
 * 5-byte map32 header makes it allocate gigabytes. The codecs of proto/
 * decode untrusted input with this reader instead: it reads one item at a
 * time from (buf, len), checks every length against the bytes left, never
 * reads outside the input and never allocates.
 *
 * Every function returns 0 and advances the reader past the item, or returns
 * CIO_EPROTO (wrong type, truncated input, a value beyond the given cap); on
 * error the reader's position is unspecified and the caller must give up on
 * the input. Integers may use any msgpack int format whose value fits; map,
 * array, str and bin headers may use any width (a non-minimal header is valid
 * msgpack and is accepted). No I/O. */
#ifndef COMIO_MPREAD_H
#define COMIO_MPREAD_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

/* A position in an input buffer. The input is borrowed: it must outlive the
 * reader and every pointer the reader hands out. */
typedef struct {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte */
} mpread_t;

/* Starts reading buf[0..len). buf may be NULL only when len is 0. */
void mpread_init(mpread_t *rd, const void *buf, size_t len);

/* Bytes not read yet. */
size_t mpread_left(const mpread_t *rd);

/* Reads a non-negative integer (positive fixint, uint 8..64, or a signed int
 * format holding a value >= 0). */
int mpread_uint(mpread_t *rd, uint64_t *v) CIO_MUST_CHECK;

/* Reads any integer that fits an int64 (a uint64 above INT64_MAX is refused). */
int mpread_int64(mpread_t *rd, int64_t *v) CIO_MUST_CHECK;

/* Reads a str (fixstr, str 8/16/32) of at most `max` bytes; *s points at its
 * body inside the input (not NUL-terminated), *len is its length. */
int mpread_str(mpread_t *rd, const char **s, size_t *len, size_t max) CIO_MUST_CHECK;

/* Reads a bin (bin 8/16/32) of at most `max` bytes, like mpread_str. */
int mpread_bin(mpread_t *rd, const char **s, size_t *len, size_t max) CIO_MUST_CHECK;

/* Reads a map header (fixmap, map 16/32) declaring at most `max` entries;
 * *n is the entry count. The caller then reads 2 * *n values. */
int mpread_map(mpread_t *rd, size_t max, size_t *n) CIO_MUST_CHECK;

/* Reads an array header (fixarray, array 16/32) declaring at most `max`
 * elements; *n is the element count. */
int mpread_array(mpread_t *rd, size_t max, size_t *n) CIO_MUST_CHECK;

/* Skips one value of any type, nested maps and arrays included, without
 * recursion: the work is proportional to the bytes skipped, whatever the
 * nesting depth or the declared counts. The never-used byte 0xc1 is refused. */
int mpread_skip(mpread_t *rd) CIO_MUST_CHECK;

#endif
