/* test_deepcursor.c - unit tests for proto/deepcursor.c: the deep listing's resume cursor, which a client echoes back. */
#include <stdio.h>
#include <string.h>
#include "proto/deepcursor.h"
#include "testutil.h"

static int parse(const char *s, deepcursor_t *c)
{
    return deepcursor_parse(s, strlen(s), c);
}

static void test_valid(void)
{
    deepcursor_t c;
    CHECK_EQ_INT(parse("65536.0a0b0c0d.117714717588979712.736974652d61", &c), 0);
    CHECK(c.offset == 65536 && c.crc == 0x0a0b0c0d && c.version == 117714717588979712ull);
    CHECK_EQ_STR(c.origin, "site-a");
    CHECK_EQ_INT(parse("1.ffffffff.0.", &c), 0); /* an origin "" (a version from before origins) */
    CHECK(c.offset == 1 && c.crc == 0xffffffffu && c.version == 0);
    CHECK_EQ_STR(c.origin, "");
    /* the longest origin */
    char s[DEEPCURSOR_MAX + 3]; /* room for one more origin byte below */
    int n = snprintf(s, sizeof(s), "18446744073709551615.00000000.18446744073709551615.");
    for (int i = 0; i < LOGREC_ORIGIN_MAX; i++)
        n += snprintf(s + n, sizeof(s) - (size_t)n, "7a");
    CHECK_EQ_INT((size_t)n, (size_t)DEEPCURSOR_MAX);
    CHECK_EQ_INT(parse(s, &c), 0);
    CHECK_EQ_INT(strlen(c.origin), LOGREC_ORIGIN_MAX);
    strcat(s, "7a"); /* one byte too many */
    CHECK_EQ_INT(parse(s, &c), CIO_EINVAL);
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "",
        "0.0a0b0c0d.1.61",                     /* offset 0: nothing read yet is no cursor */
        "-1.0a0b0c0d.1.61",                    /* not a count */
        "+1.0a0b0c0d.1.61",                    /* strtoull's sign */
        " 1.0a0b0c0d.1.61",                    /* its spaces */
        "1.0A0B0C0D.1.61",                     /* upper case */
        "1.0a0b0c0.1.61",                      /* 7 digits */
        "1.0a0b0c0d0.1.61",                    /* 9 digits */
        "1.0a0b0c0d.x.61",                     /* version not a count */
        "1.0a0b0c0d.1",                        /* no origin part */
        "1.0a0b0c0d.1.6",                      /* odd hex */
        "1.0a0b0c0d.1.6G",                     /* not hex */
        "1.0a0b0c0d.1.0061",                   /* a NUL in the origin */
        "123456789012345678901.0a0b0c0d.1.61", /* 21 digits */
        "18446744073709551616.0a0b0c0d.1.61",  /* 2^64 */
        "01.0a0b0c0d.1.61",                    /* a leading zero: one spelling per cursor */
        "1.0a0b0c0d.00.61",
        "1.0a0b0c0d.1.61.", /* a byte too many */
        "1..0a0b0c0d.1.61",
        "1.0a0b0c0d.123456789012345678901.61",
    };
    deepcursor_t c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ret = parse(bad[i], &c);
        if (ret != CIO_EINVAL)
            fprintf(stderr, "accepted: '%s'\n", bad[i]);
        CHECK_EQ_INT(ret, CIO_EINVAL);
    }
    /* the length given is what is parsed: a prefix is no cursor, and nothing past it is read */
    CHECK_EQ_INT(deepcursor_parse("1.0a0b0c0d.1.61", 5, &c), CIO_EINVAL);
    CHECK_EQ_INT(deepcursor_parse("1.0a0b0c0d.1.61XYZ", 15, &c), 0);
    CHECK_EQ_STR(c.origin, "a");
    CHECK(c.offset == 1);
}

static void test_format(void)
{
    deepcursor_t c = {196608, 0xdeadbeef, 42, "site-b"}, back;
    char text[DEEPCURSOR_MAX + 1];
    size_t n = deepcursor_format(&c, text);
    CHECK_EQ_STR(text, "196608.deadbeef.42.736974652d62");
    CHECK_EQ_INT(n, strlen(text));
    CHECK_EQ_INT(deepcursor_parse(text, n, &back), 0);
    CHECK(back.offset == c.offset && back.crc == c.crc && back.version == c.version);
    CHECK_EQ_STR(back.origin, c.origin);
    c.offset = 0; /* nothing read: no cursor */
    CHECK_EQ_INT(deepcursor_format(&c, text), 0);
}

int main(void)
{
    RUN(test_valid);
    RUN(test_refused);
    RUN(test_format);
    return TEST_SUMMARY();
}
