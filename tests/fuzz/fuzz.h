/* fuzz.h - what every libFuzzer target of tests/fuzz/ shares: an invariant
 * check that aborts with a message, and a reader that splits the fuzzer's
 * bytes into fields.
 *
 * A failed FUZZ_CHECK prints the file, the line and the condition, then
 * aborts, so libFuzzer saves the input as a crash artifact. */
#ifndef COMIO_FUZZ_H
#define COMIO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                                           \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* The fuzzer's input, consumed field by field from the front. Reading past
 * the end yields zeros and empty slices, so every input is usable. */
typedef struct {
    const uint8_t *p;
    size_t left;
} fuzz_in_t;

static inline uint64_t fuzz_uint(fuzz_in_t *in, size_t nbytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < nbytes && in->left > 0; i++, in->p++, in->left--)
        v = v << 8 | *in->p;
    return v;
}

/* A slice of up to `max` bytes whose length is given by the next byte(s). */
static inline const uint8_t *fuzz_slice(fuzz_in_t *in, size_t max, size_t *len)
{
    size_t n = (size_t)fuzz_uint(in, max > 255 ? 2 : 1) % (max + 1);
    if (n > in->left)
        n = in->left;
    const uint8_t *s = in->p;
    in->p += n;
    in->left -= n;
    *len = n;
    return s;
}

/* A malloc'ed copy of s[0..len) with a NUL after it (aborts when out of memory). */
static inline char *fuzz_strndup(const void *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL)
        abort();
    if (len > 0)
        memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

/* Whether p[0..n) lies within buf[0..len). */
static inline int fuzz_inside(const void *p, size_t n, const void *buf, size_t len)
{
    const char *a = p, *b = buf;
    return n == 0 || (a >= b && n <= len && (size_t)(a - b) <= len - n);
}

#endif
