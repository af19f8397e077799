/* fuzz_deepcursor.c - libFuzzer target for the deep listing's resume cursor (proto/deepcursor.c).
 *
 * Any bytes go to deepcursor_parse. An accepted cursor formats back to the
 * very bytes given (one spelling per cursor), and parses again to the same
 * fields; a refused one leaves the result zeroed. */
#include "fuzz.h"
#include "proto/deepcursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    deepcursor_t c, again;
    char text[DEEPCURSOR_MAX + 1];
    static const deepcursor_t zero;

    if (deepcursor_parse((const char *)data, size, &c) != 0) {
        FUZZ_CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
        return 0;
    }
    FUZZ_CHECK(size <= DEEPCURSOR_MAX && c.offset > 0);
    size_t n = deepcursor_format(&c, text);
    FUZZ_CHECK(n == size && memcmp(text, data, size) == 0);
    FUZZ_CHECK(deepcursor_parse(text, n, &again) == 0);
    FUZZ_CHECK(again.offset == c.offset && again.crc == c.crc && again.version == c.version && strcmp(again.origin, c.origin) == 0);
    return 0;
}
