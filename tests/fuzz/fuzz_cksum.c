/* fuzz_cksum.c - libFuzzer target for common/cksum.c: the strict base64
 * decoder S3's checksum headers go through, and the CRCs over pieces.
 *
 * The whole input is base64 text to cksum_base64_decode: an accepted text
 * decodes to at most 3/4 of its length and encodes back to exactly itself
 * (one spelling per value); a refused one is CIO_EINVAL, or CIO_ETOOBIG with a
 * cap one byte short of the decoded size. The input as bytes encodes to text
 * that decodes back to it. Each CRC over the input cut in two at a point the
 * first byte picks equals the CRC of the whole, and CRC32C's tables agree
 * with ISA-L's (cksum_crc32c), whole and in pieces. */
#include "fuzz.h"
#include "common/cksum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size / 4 * 3, n = 0, tl;
    uint8_t *out = malloc(cap + 1), *back = malloc(size + 1);
    char *text = malloc(CKSUM_BASE64_LEN(size) + 1), *again = malloc(size + 1);
    int rc;

    FUZZ_CHECK(out != NULL && back != NULL && text != NULL && again != NULL);
    rc = cksum_base64_decode(out, cap, (const char *)data, size, &n);
    if (rc == 0) {
        FUZZ_CHECK(n <= cap && size % 4 == 0 && n + 2 >= cap);
        tl = cksum_base64_encode(again, out, n);
        FUZZ_CHECK(tl == size && memcmp(again, data, size) == 0);
        if (n > 0) /* one byte less room: too big, never a different answer */
            FUZZ_CHECK(cksum_base64_decode(out, n - 1, (const char *)data, size, &n) == CIO_ETOOBIG);
    } else {
        FUZZ_CHECK(rc == CIO_EINVAL && n == 0);
    }

    tl = cksum_base64_encode(text, data, size);
    FUZZ_CHECK(tl == CKSUM_BASE64_LEN(size) && text[tl] == '\0');
    FUZZ_CHECK(cksum_base64_decode(back, size, text, tl, &n) == 0 && n == size && memcmp(back, data, size) == 0);

    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    FUZZ_CHECK(cksum_crc32(cksum_crc32(0, data, cut), data + cut, size - cut) == cksum_crc32(0, data, size));
    FUZZ_CHECK(cksum_crc64nvme(cksum_crc64nvme(0, data, cut), data + cut, size - cut) == cksum_crc64nvme(0, data, size));
    uint32_t c = cksum_crc32c_sw(cksum_crc32c_sw(0, data, cut), data + cut, size - cut);
    FUZZ_CHECK(c == cksum_crc32c_sw(0, data, size));
    FUZZ_CHECK(c == cksum_crc32c(0, data, size) && c == cksum_crc32c(cksum_crc32c(0, data, cut), data + cut, size - cut));
    free(out);
    free(back);
    free(text);
    free(again);
    return 0;
}
