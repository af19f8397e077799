/* fuzz_objmeta.c - libFuzzer target for the object metadata blob (common/objmeta.c).
 *
 * The input is one blob. Beyond "no crash, no read outside the input": an
 * accepted blob's pairs lie inside it and are valid, and re-encoding them
 * gives the same bytes (the blob is canonical); a refused one never
 * encodes from its pairs to itself. */
#include "fuzz.h"
#include "common/objmeta.h"

static int fuzz_inside_blob(const char *s, size_t n, const uint8_t *buf, size_t len)
{
    return n == 0 || ((const uint8_t *)s >= buf && (const uint8_t *)s + n <= buf + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static objmeta_pair_t pairs[OBJMETA_PAIRS_MAX];
    static uint8_t out[OBJMETA_MAX];
    objmeta_iter_t it;
    size_t n = 0, len;

    if (objmeta_validate(data, size) != 0)
        return 0;
    objmeta_iter_init(&it, data, size);
    while (objmeta_next(&it, &pairs[n])) {
        const objmeta_pair_t *p = &pairs[n];
        FUZZ_CHECK(fuzz_inside_blob(p->name, p->name_len, data, size) && fuzz_inside_blob(p->value, p->value_len, data, size));
        FUZZ_CHECK(objmeta_name_ok(p->name, p->name_len) && objmeta_value_ok(p->value, p->value_len));
        FUZZ_CHECK(++n <= OBJMETA_PAIRS_MAX);
    }
    FUZZ_CHECK(objmeta_encode(pairs, n, out, &len, NULL) == 0);
    FUZZ_CHECK(len == size && (size == 0 || memcmp(out, data, size) == 0));
    FUZZ_CHECK(objmeta_equal(out, len, data, size));
    return 0;
}
