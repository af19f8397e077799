/* json.h - a small, strict, bounded JSON reader (RFC 8259) for the replies of a ComIO site.
 *
 * json_parse() checks a whole document and records it as a flat array of
 * tokens, one per value (an object member is its name's string token followed
 * by its value), in document order. Nothing is copied: tokens point into the
 * caller's text, and strings are decoded on demand into caller buffers.
 *
 * Strict: one value surrounded by optional whitespace; no trailing commas,
 * comments, leading zeros, NaN or single quotes; control bytes in strings
 * must be escaped; the text must be UTF-8 (RFC 3629: no overlongs, encoded
 * surrogates or code points above U+10FFFF); \u escapes must pair their
 * surrogates, except the lone low surrogates U+DC80-U+DCFF, which stand for
 * the raw bytes 0x80-0xFF of a key that is not UTF-8 (the escape buf_json_str
 * writes, see common/utf8.h) and decode to those bytes. Duplicate member
 * names are not refused; json_member() finds the first.
 *
 * Bounded: at most `max_toks` tokens and `max_depth` levels of nesting, and
 * texts under 4 GiB. The token array is kept between parses, so a document
 * reused for many replies allocates only when a reply is bigger than all
 * before it. */
#ifndef COMIO_JSON_H
#define COMIO_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

typedef enum {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type_t;

typedef struct {
    json_type_t type;
    uint32_t start; /* offset of the value in the text; strings: just after the opening quote */
    uint32_t len;   /* bytes of text; strings: between the quotes, still escaped */
    uint32_t count; /* arrays: elements; objects: members */
    uint32_t end;   /* index of the first token after this value and everything inside it */
} json_tok_t;

typedef struct {
    const char *text; /* the last text parsed: the caller's, not copied */
    size_t len;
    json_tok_t *toks; /* owned */
    size_t ntoks, cap;
    size_t max_toks;
    unsigned max_depth;
} json_doc_t;

/* Initialises an empty document that accepts at most `max_toks` values and
 * `max_depth` levels of nested arrays and objects. */
void json_init(json_doc_t *d, size_t max_toks, unsigned max_depth);

/* Frees the tokens; the document may be initialised again. */
void json_free(json_doc_t *d);

/* Parses text[0..len). The tokens refer to `text`, which must stay unchanged
 * while they are used. Returns 0; CIO_EPROTO when the text is not one valid
 * JSON value; CIO_ETOOBIG beyond max_toks, max_depth or 4 GiB; CIO_ENOMEM.
 * On error a reason with the byte offset is written to err (may be NULL)
 * and the document holds no value. */
int json_parse(json_doc_t *d, const char *text, size_t len, char *err, size_t errlen) CIO_MUST_CHECK;

/* The top-level value of the last successful parse (NULL when none). */
const json_tok_t *json_root(const json_doc_t *d);

/* The value of the first member called `name` of object `obj`; NULL when obj
 * is NULL, not an object, or has no such member. */
const json_tok_t *json_member(const json_doc_t *d, const json_tok_t *obj, const char *name);

/* Iterates the elements of array `arr`: json_first() gives the first (NULL
 * when arr is NULL, not an array, or empty), json_next() the one after `elem`
 * (NULL after the last). */
const json_tok_t *json_first(const json_doc_t *d, const json_tok_t *arr);
const json_tok_t *json_next(const json_doc_t *d, const json_tok_t *arr, const json_tok_t *elem);

/* Decodes string `t` into out (NUL-terminated; *outlen, may be NULL, gets the
 * length, which counts a decoded \u0000 as one byte). Each \udc80-\udcff
 * escape decodes to the one byte 0x80-0xff it stands for, so a key written
 * by buf_json_str() comes back as the same bytes. Returns 0, CIO_EINVAL
 * when t is NULL or not a string, CIO_ETOOBIG when it needs more than cap-1
 * bytes (out then holds ""). */
int json_str(const json_doc_t *d, const json_tok_t *t, char *out, size_t cap, size_t *outlen) CIO_MUST_CHECK;

/* Returns 1 when `t` is a string whose decoded value is exactly s, else 0. */
int json_str_eq(const json_doc_t *d, const json_tok_t *t, const char *s);

/* Reads a number that is a non-negative integer without fraction or exponent
 * and fits in uint64_t. Returns 0, CIO_EINVAL (NULL, not a number, not such
 * an integer) or CIO_ETOOBIG (overflow). */
int json_u64(const json_doc_t *d, const json_tok_t *t, uint64_t *out) CIO_MUST_CHECK;

/* Reads any number as a double. Returns 0 or CIO_EINVAL (NULL, not a number,
 * or out of double's range). */
int json_double(const json_doc_t *d, const json_tok_t *t, double *out) CIO_MUST_CHECK;

/* Reads true or false. Returns 0 or CIO_EINVAL. */
int json_bool(const json_tok_t *t, int *out) CIO_MUST_CHECK;

#endif
