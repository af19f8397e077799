/* test_hex.c - unit tests for common/hex.c: encoding, digit values, strict decoding. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "common/hex.h"

static void test_tables(void)
{
    CHECK_EQ_STR(hex_lower, "0123456789abcdef");
    CHECK_EQ_STR(hex_upper, "0123456789ABCDEF");
}

static void test_encode_empty(void)
{
    char out[4] = "xyz";
    hex_encode(out, "", 0);
    CHECK_EQ_STR(out, "");
    hex_encode(out, NULL, 0); /* nothing is read */
    CHECK_EQ_STR(out, "");
}

/* Every byte value, against printf's %02x. */
static void test_encode_every_byte(void)
{
    uint8_t all[256];
    char out[513], want[513];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
        snprintf(want + 2 * i, 3, "%02x", i);
    }
    memset(out, 'x', sizeof(out));
    hex_encode(out, all, sizeof(all));
    CHECK_EQ_STR(out, want);

    /* an MD5-sized ETag: 32 digits, the NUL right after */
    uint8_t md[16];
    char etag[34];
    memset(md, 0xd4, sizeof(md));
    memset(etag, 'x', sizeof(etag));
    hex_encode(etag, md, sizeof(md));
    CHECK_EQ_INT(strlen(etag), 32);
    CHECK(etag[33] == 'x'); /* nothing written past 2 * len + 1 */
}

/* Every length up to 13 (four bytes at a time, then a tail), every byte value
 * in every place, both cases: the digits printf gives, and nothing written
 * past the NUL. */
static void test_encode_lengths(void)
{
    uint8_t in[13];
    char out[2 * sizeof(in) + 2], want[2 * sizeof(in) + 1];
    int bad = 0;

    for (int upper = 0; upper <= 1; upper++)
        for (size_t len = 0; len <= sizeof(in); len++)
            for (size_t at = 0; at < len; at++)
                for (int b = 0; b < 256; b++) {
                    for (size_t i = 0; i < len; i++)
                        in[i] = (uint8_t)(i * 77 + 5);
                    in[at] = (uint8_t)b;
                    for (size_t i = 0; i < len; i++)
                        snprintf(want + 2 * i, 3, upper ? "%02X" : "%02x", in[i]);
                    want[2 * len] = '\0';
                    memset(out, 'x', sizeof(out));
                    (upper ? hex_encode_upper : hex_encode)(out, in, len);
                    bad += strcmp(out, want) != 0 || out[2 * len + 1] != 'x';
                }
    CHECK_EQ_INT(bad, 0);
}

static void test_value(void)
{
    for (int c = -1; c < 256; c++) {
        int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        CHECK_EQ_INT(hex_value(c), want);
    }
}

static void test_decode_round_trip(void)
{
    uint8_t all[256], back[256];
    char text[513];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)(255 - i);
    hex_encode(text, all, sizeof(all));
    memset(back, 0, sizeof(back));
    CHECK_EQ_INT(hex_decode_lower(back, text, sizeof(back)), 0);
    CHECK(memcmp(all, back, sizeof(all)) == 0);
    CHECK_EQ_INT(hex_decode_lower(back, "", 0), 0);
}

static void test_decode_refuses(void)
{
    uint8_t out[2];
    CHECK_EQ_INT(hex_decode_lower(out, "ab", 1), 0);
    CHECK_EQ_INT(out[0], 0xab);
    CHECK_EQ_INT(hex_decode_lower(out, "AB", 1), CIO_EINVAL); /* one spelling only */
    CHECK_EQ_INT(hex_decode_lower(out, "aB", 1), CIO_EINVAL);
    CHECK_EQ_INT(hex_decode_lower(out, "0g", 1), CIO_EINVAL);
    CHECK_EQ_INT(hex_decode_lower(out, "00 0", 2), CIO_EINVAL);
    CHECK_EQ_INT(hex_decode_lower(out, "0\0", 1), CIO_EINVAL);
}

int main(void)
{
    RUN(test_tables);
    RUN(test_encode_empty);
    RUN(test_encode_every_byte);
    RUN(test_encode_lengths);
    RUN(test_value);
    RUN(test_decode_round_trip);
    RUN(test_decode_refuses);
    return TEST_SUMMARY();
}
