/* deepcursor.h - the resume cursor of the deep listing (storaged/deeplist.h,
 * docs/api.md "Deep listing"): where a page stopped inside an object, as
 * the reply gives it and the next request passes it back.
 *
 * Text: "offset.crc.version.origin": offset (1..2^64-1) and version
 * (0..2^64-1) in decimal without leading zeros, crc the CRC32C of the bytes
 * [0, offset) as 8 lowercase hex digits, origin the origin's bytes (no NUL)
 * in lowercase hex. One spelling per cursor. Pure: no I/O, no allocation. */
#ifndef COMIO_PROTO_DEEPCURSOR_H
#define COMIO_PROTO_DEEPCURSOR_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "proto/logrec.h"

#define DEEPCURSOR_MAX (20 + 1 + 8 + 1 + 20 + 1 + 2 * LOGREC_ORIGIN_MAX) /* the longest text, without its NUL */

/* Where a page stopped inside an object: its bytes [0, offset) are read and
 * verified, their CRC32C is crc; the object is (version, origin). */
typedef struct {
    uint64_t offset;
    uint32_t crc;
    uint64_t version;
    char origin[LOGREC_ORIGIN_MAX + 1]; /* NUL-terminated */
} deepcursor_t;

/* Parses s[0..len) strictly. Returns 0 with *c set, or CIO_EINVAL (*c then
 * zeroed). s needs no NUL. */
int deepcursor_parse(const char *s, size_t len, deepcursor_t *c) CIO_MUST_CHECK;

/* Writes c's text and a NUL into out (DEEPCURSOR_MAX + 1 bytes). Returns
 * its length, or 0 when c cannot be written (offset 0, an origin longer
 * than LOGREC_ORIGIN_MAX). */
size_t deepcursor_format(const deepcursor_t *c, char out[DEEPCURSOR_MAX + 1]);

#endif
