/* test_percent.c - unit tests for common/percent.c: every byte, round trips, caps, bad escapes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "common/percent.h"

static int unreserved(int c)
{
    return strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", c) != NULL && c != 0;
}

/* Each byte alone: kept as is or %XX in uppercase, as snprintf says. */
static void test_encode_every_byte(void)
{
    int wrong = 0;
    for (int c = 0; c < 256; c++) {
        char src = (char)c, out[8], want[8];
        for (unsigned flags = 0; flags <= PERCENT_KEEP_SLASH; flags++) {
            if (unreserved(c) || (c == '/' && flags == PERCENT_KEEP_SLASH))
                snprintf(want, sizeof(want), "%c", c);
            else
                snprintf(want, sizeof(want), "%%%02X", c);
            size_t n = percent_encode(out, sizeof(out), &src, 1, flags);
            out[n < sizeof(out) ? n : 0] = '\0';
            if (n != strlen(want) || strcmp(out, want) != 0)
                wrong++;
        }
    }
    CHECK_EQ_INT(wrong, 0);
}

static void test_round_trip_all_bytes(void)
{
    char all[256], enc[PERCENT_ENCODED_MAX(256)], back[256];
    size_t n, m;
    int nul = 0;
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    for (unsigned flags = 0; flags <= PERCENT_KEEP_SLASH; flags++) {
        n = percent_encode(enc, sizeof(enc), all, sizeof(all), flags);
        CHECK(n <= sizeof(enc));
        CHECK(memchr(enc, '+', n) == NULL); /* '+' is encoded, so a query decoder reads it back */
        CHECK_EQ_INT(percent_decode(enc, n, back, sizeof(back), &m, 0, &nul), 0);
        CHECK(m == sizeof(all) && memcmp(all, back, m) == 0);
        CHECK_EQ_INT(nul, 1);
        CHECK_EQ_INT(percent_decode(enc, n, back, sizeof(back), &m, PERCENT_PLUS_SPACE, NULL), 0);
        CHECK(m == sizeof(all) && memcmp(all, back, m) == 0);
        CHECK(percent_decoded_equals(enc, n, all, sizeof(all), 0));
    }
    /* lowercase escapes decode the same */
    for (int c = 0; c < 256; c++) {
        char esc[4], d;
        snprintf(esc, sizeof(esc), "%%%02x", c);
        CHECK(percent_decode(esc, 3, &d, 1, &m, 0, NULL) == 0 && m == 1 && (unsigned char)d == c);
    }
}

static void test_encode_cap(void)
{
    char out[8];
    memset(out, 'x', sizeof(out));
    CHECK_EQ_INT(percent_encode(NULL, 0, "a b", 3, 0), 5); /* measure */
    CHECK_EQ_INT(percent_encode(out, 5, "a b", 3, 0), 5);
    CHECK(memcmp(out, "a%20b", 5) == 0 && out[5] == 'x'); /* no NUL written */
    CHECK_EQ_INT(percent_encode(out, 4, "a b", 3, 0), 5); /* too small: says so */
    CHECK_EQ_INT(percent_encode(out, 0, "", 0, 0), 0);
    CHECK_EQ_INT(percent_encode(out, sizeof(out), "a/b", 3, 0), 5);
    CHECK_EQ_INT(percent_encode(out, sizeof(out), "a/b", 3, PERCENT_KEEP_SLASH), 3);
}

static void test_append(void)
{
    buf_t b;
    buf_init(&b, 64);
    CHECK_EQ_INT(percent_append(&b, "k y/é", 6, 0), 0);
    CHECK(b.len == strlen("k%20y%2F%C3%A9") && memcmp(b.data, "k%20y%2F%C3%A9", b.len) == 0);
    buf_free(&b);
    buf_init(&b, 4);
    CHECK_EQ_INT(percent_append(&b, "   ", 3, 0), CIO_ETOOBIG); /* the buffer's cap holds */
    buf_free(&b);
}

static void test_decode_bad_and_capped(void)
{
    static const char *const bad[] = {"%", "%0", "a%", "%G0", "%0G", "%zz", "% 1", "%%41", "ab%4"};
    char dst[16];
    size_t n = 99;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]);
        char *p = malloc(len + 1); /* exact size: a read past the end shows under ASan */
        memcpy(p, bad[i], len);
        CHECK_EQ_INT(percent_decode(p, len, dst, sizeof(dst), &n, 0, NULL), CIO_EINVAL);
        CHECK_EQ_INT(n, 0);
        CHECK(!percent_decoded_equals(p, len, "A", 1, 0));
        free(p);
    }
    /* too long, but a bad escape further on still wins */
    CHECK_EQ_INT(percent_decode("abcdef", 6, dst, 3, &n, 0, NULL), CIO_ETOOBIG);
    CHECK(n == 6 && memcmp(dst, "abc", 3) == 0);
    CHECK_EQ_INT(percent_decode("abcdef%", 7, dst, 3, &n, 0, NULL), CIO_EINVAL);
    CHECK_EQ_INT(percent_decode("", 0, dst, 0, &n, 0, NULL), 0);
    CHECK_EQ_INT(n, 0);
    /* '+' is a space only when asked */
    CHECK(percent_decode("a+b", 3, dst, sizeof(dst), &n, 0, NULL) == 0 && n == 3 && memcmp(dst, "a+b", 3) == 0);
    CHECK(percent_decode("a+b", 3, dst, sizeof(dst), &n, PERCENT_PLUS_SPACE, NULL) == 0 && memcmp(dst, "a b", 3) == 0);
}

static void test_decoded_equals(void)
{
    CHECK(percent_decoded_equals("version", 7, "version", 7, 0));
    CHECK(percent_decoded_equals("%76ersion", 9, "version", 7, 0));
    CHECK(!percent_decoded_equals("versio", 6, "version", 7, 0));
    CHECK(!percent_decoded_equals("versions", 8, "version", 7, 0));
    CHECK(percent_decoded_equals("a+b", 3, "a b", 3, PERCENT_PLUS_SPACE));
    CHECK(!percent_decoded_equals("a+b", 3, "a b", 3, 0));
    CHECK(percent_decoded_equals("", 0, "", 0, 0));
}

int main(void)
{
    RUN(test_encode_every_byte);
    RUN(test_round_trip_all_bytes);
    RUN(test_encode_cap);
    RUN(test_append);
    RUN(test_decode_bad_and_capped);
    RUN(test_decoded_equals);
    return TEST_SUMMARY();
}
