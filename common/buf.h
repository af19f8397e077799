/* buf.h - a growable byte buffer with a hard cap, for replies and encoders. */
#ifndef COMIO_BUF_H
#define COMIO_BUF_H

#include <stddef.h>
#include "common/err.h"

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends beyond this many bytes fail with CIO_ETOOBIG */
    int err;    /* first error of an append, sticky */
} buf_t;

/* Initialises an empty buffer that may grow to `max` bytes. */
void buf_init(buf_t *b, size_t max);

/* Frees the data; the buffer may be initialised again. */
void buf_free(buf_t *b);

/* Room for one more element in a malloc'd array `v` of `n` elements of
 * `elem` bytes with room for *cap: v itself when n < *cap, else v grown
 * (realloc) to twice *cap, or to `first` elements when *cap is 0, with *cap
 * updated. NULL when out of memory (or the size overflows): v is then
 * unchanged and still the caller's, and so is *cap. */
void *buf_grow_array(void *v, size_t *cap, size_t n, size_t elem, size_t first);

/* Append bytes / a string / printf output. Each returns 0 or the sticky error
 * (CIO_ENOMEM or CIO_ETOOBIG); after an error further appends do nothing. */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends p[0..n) (any bytes) as a JSON string with its quotes, losslessly
 * and as valid UTF-8 (RFC 8259): '"' and '\\' as \" and \\, control bytes and
 * DEL as \u00XX, valid UTF-8 (RFC 3629) as is, and each other byte B as
 * \udcXX, the lone low surrogate U+DC00+B (see common/utf8.h), which
 * json_str() and Python's json.loads(...).encode("utf-8", "surrogateescape")
 * turn back into B. Text that is valid UTF-8 comes out as it always did.
 * Returns 0 or the buffer's sticky error. */
int buf_json_str(buf_t *b, const char *p, size_t n);

/* Appends p[0..n) percent-encoded (common/percent.h, '/' encoded too), in quotes: a JSON
 * string of plain ASCII (a listing's encoding-type=url). Returns 0 or the
 * sticky error. */
int buf_json_url(buf_t *b, const char *p, size_t n);

#endif
