/* utf8.h - UTF-8 validation (RFC 3629) and the escape ComIO's JSON uses for
 * bytes that are not UTF-8.
 *
 * Keys are byte strings; JSON text must be UTF-8 (RFC 8259). The writer
 * (buf_json_str) passes valid UTF-8 through and writes every other byte B as
 * the escape of the lone low surrogate U+DC00+B (B is 0x80-0xFF, so
 * U+DC80-U+DCFF): Python's "surrogateescape" convention. Valid UTF-8 never
 * encodes a surrogate, so the mapping is reversible; the reader (json_str)
 * turns each such escape back into its byte. */
#ifndef COMIO_UTF8_H
#define COMIO_UTF8_H

#include <stddef.h>

/* The first and last code unit of the escapes that stand for raw bytes
 * 0x80-0xFF: U+DC00 + byte. */
#define UTF8_BYTE_ESCAPE_BASE 0xDC00
#define UTF8_BYTE_ESCAPE_MIN 0xDC80
#define UTF8_BYTE_ESCAPE_MAX 0xDCFF

/* Returns the length (1 to 4) of the valid UTF-8 sequence that starts at
 * p[0], looking at no more than the n bytes there (n >= 1), or 0 when p[0]
 * does not start one: a stray continuation byte, 0xC0, 0xC1 or 0xF5-0xFF,
 * a truncated sequence, an overlong form, an encoded surrogate
 * (U+D800-U+DFFF) or a code point above U+10FFFF. */
size_t utf8_seq_len(const unsigned char *p, size_t n);

#endif
