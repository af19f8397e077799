/* hex.h - hexadecimal text of bytes: the digit tables, encoding (ETags,
 * signatures) and decoding.
 *
 * Not OpenSSL's OPENSSL_buf2hexstr_ex (uppercase only; our ETags and
 * signatures are lowercase) nor h2o's h2o_hex_encode (common/ and proto/ are
 * linked into the CLI, which does not link h2o). Pure functions, no
 * allocation: hex_encode is on every PUT and GET (the ETag). */
#ifndef COMIO_HEX_H
#define COMIO_HEX_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

/* The sixteen digits, indexed by a nibble (plus the NUL of the literal). */
extern const char hex_lower[17]; /* "0123456789abcdef" */
extern const char hex_upper[17]; /* "0123456789ABCDEF", for percent-encoding */

/* Writes the 2 * len lowercase hex digits of src[0..len) and a NUL into dst,
 * which holds 2 * len + 1 bytes. len 0 writes "". */
void hex_encode(char *dst, const void *src, size_t len);

/* hex_encode with upper-case digits (S3's request ids). */
void hex_encode_upper(char *dst, const void *src, size_t len);

/* The value (0..15) of hex digit c, either case; -1 when c is not one. */
int hex_value(int c);

/* Decodes exactly 2 * len lowercase hex digits from src into dst[0..len):
 * the strict inverse of hex_encode (an uppercase digit is refused, so there is
 * one spelling of each value). Returns 0 or CIO_EINVAL (a byte that is not a
 * lowercase hex digit; dst is then partly written). */
int hex_decode_lower(uint8_t *dst, const char *src, size_t len) CIO_MUST_CHECK;

#endif
