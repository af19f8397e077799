/* be.h - big-endian integers, the byte order of every LMDB key and counter
 * ComIO stores (so that LMDB's byte-wise key order is numeric order). */
#ifndef COMIO_BE_H
#define COMIO_BE_H

#include <stdint.h>

/* Writes the low `n` bytes of v (n <= 8) to p, most significant first. */
static inline void be_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Reads an n-byte (n <= 8) big-endian unsigned integer. */
static inline uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

#endif
