/* test_objmeta.c - unit tests for common/objmeta.c: canonical encoding, validation, caps, lookup, digest. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "common/objmeta.h"

#define P(n, v)                                                                                                                    \
    {                                                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                                                         \
    }

static void test_encode_sorts_and_lowercases(void)
{
    objmeta_pair_t in[] = {P("X-Amz-Meta-Zeta", "z"), P("Cache-Control", "no-cache"), P("x-amz-meta-alpha", "a b\tc")};
    uint8_t blob[OBJMETA_MAX];
    size_t len, bad = 99;
    CHECK_EQ_INT(objmeta_encode(in, 3, blob, &len, &bad), 0);
    CHECK_EQ_INT(bad, 99);
    CHECK_EQ_INT(objmeta_validate(blob, len), 0);

    objmeta_iter_t it;
    objmeta_pair_t p;
    const char *want[][2] = {{"cache-control", "no-cache"}, {"x-amz-meta-alpha", "a b\tc"}, {"x-amz-meta-zeta", "z"}};
    objmeta_iter_init(&it, blob, len);
    for (int i = 0; i < 3; i++) {
        CHECK(objmeta_next(&it, &p) == 1);
        CHECK(p.name_len == strlen(want[i][0]) && memcmp(p.name, want[i][0], p.name_len) == 0);
        CHECK(p.value_len == strlen(want[i][1]) && memcmp(p.value, want[i][1], p.value_len) == 0);
    }
    CHECK_EQ_INT(objmeta_next(&it, &p), 0);
    CHECK_EQ_INT(objmeta_next(&it, &p), 0);

    /* the same metadata in another order and case is the same blob */
    objmeta_pair_t in2[] = {P("x-amz-meta-ZETA", "z"), P("x-amz-meta-alpha", "a b\tc"), P("cache-control", "no-cache")};
    uint8_t blob2[OBJMETA_MAX];
    size_t len2;
    CHECK_EQ_INT(objmeta_encode(in2, 3, blob2, &len2, NULL), 0);
    CHECK(objmeta_equal(blob, len, blob2, len2));
    char d1[17], d2[17];
    objmeta_digest_hex(blob, len, d1);
    objmeta_digest_hex(blob2, len2, d2);
    CHECK_EQ_INT(strlen(d1), 16);
    CHECK_EQ_STR(d1, d2);

    const char *v;
    size_t vlen;
    CHECK_EQ_INT(objmeta_get(blob, len, "cache-control", &v, &vlen), 1);
    CHECK(vlen == 8 && memcmp(v, "no-cache", 8) == 0);
    CHECK_EQ_INT(objmeta_get(blob, len, "content-encoding", &v, &vlen), 0);

    /* a value differs: not equal, another digest */
    in2[0].value = "y";
    CHECK_EQ_INT(objmeta_encode(in2, 3, blob2, &len2, NULL), 0);
    CHECK(!objmeta_equal(blob, len, blob2, len2));
    objmeta_digest_hex(blob2, len2, d2);
    CHECK(strcmp(d1, d2) != 0);
}

static void test_empty(void)
{
    uint8_t blob[OBJMETA_MAX];
    size_t len = 7;
    char d[17];
    CHECK_EQ_INT(objmeta_encode(NULL, 0, blob, &len, NULL), 0);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(objmeta_validate(blob, 0), 0);
    CHECK_EQ_INT(objmeta_validate(NULL, 0), 0);
    CHECK(objmeta_equal(NULL, 0, blob, 0));
    objmeta_digest_hex(blob, 0, d);
    CHECK_EQ_STR(d, "");
}

static void test_encode_refuses(void)
{
    uint8_t blob[OBJMETA_MAX];
    size_t len, bad;
    objmeta_pair_t crlf[] = {P("cache-control", "ok"), P("x-amz-meta-a", "x\r\ny: z")};
    bad = 99;
    CHECK_EQ_INT(objmeta_encode(crlf, 2, blob, &len, &bad), CIO_EINVAL);
    CHECK_EQ_INT(bad, 1);
    objmeta_pair_t nul[] = {{"x-amz-meta-a", 12, "a\0b", 3}};
    CHECK_EQ_INT(objmeta_encode(nul, 1, blob, &len, &bad), CIO_EINVAL);
    objmeta_pair_t badname[] = {P("x-amz-meta-a b", "v")};
    CHECK_EQ_INT(objmeta_encode(badname, 1, blob, &len, &bad), CIO_EINVAL);
    objmeta_pair_t bare[] = {P("X-Amz-Meta-", "v")};
    CHECK_EQ_INT(objmeta_encode(bare, 1, blob, &len, &bad), CIO_EINVAL);
    objmeta_pair_t empty[] = {{"", 0, "v", 1}};
    CHECK_EQ_INT(objmeta_encode(empty, 1, blob, &len, &bad), CIO_EINVAL);
    objmeta_pair_t twice[] = {P("x-amz-meta-a", "1"), P("cache-control", "x"), P("X-AMZ-META-A", "2")};
    CHECK_EQ_INT(objmeta_encode(twice, 3, blob, &len, &bad), CIO_EINVAL);
    CHECK_EQ_INT(bad, 2);
    char longname[OBJMETA_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname));
    objmeta_pair_t ln[] = {{longname, OBJMETA_NAME_MAX + 1, "", 0}};
    CHECK_EQ_INT(objmeta_encode(ln, 1, blob, &len, &bad), CIO_EINVAL);
    ln[0].name_len = OBJMETA_NAME_MAX;
    CHECK_EQ_INT(objmeta_encode(ln, 1, blob, &len, &bad), 0);
}

/* User metadata: exactly OBJMETA_USER_MAX bytes (names after the prefix plus values) is taken, one more is not. */
static void test_user_cap(void)
{
    static char value[OBJMETA_MAX];
    uint8_t blob[OBJMETA_MAX];
    size_t len, bad;
    memset(value, 'v', sizeof(value));
    objmeta_pair_t in[] = {{"x-amz-meta-ab", 13, value, 1000},
                           {"content-disposition", 19, value, 1500},
                           {"x-amz-meta-c", 12, value, OBJMETA_USER_MAX - 1000 - 2 - 1}};
    CHECK_EQ_INT(objmeta_encode(in, 3, blob, &len, &bad), 0);
    CHECK_EQ_INT(objmeta_validate(blob, len), 0);
    in[2].value_len++;
    CHECK_EQ_INT(objmeta_encode(in, 3, blob, &len, &bad), CIO_ETOOBIG);
    CHECK_EQ_INT(bad, 2);
}

static void test_total_cap(void)
{
    static char value[OBJMETA_MAX];
    uint8_t blob[OBJMETA_MAX];
    size_t len, bad;
    memset(value, 'v', sizeof(value));
    /* two standard headers filling the blob exactly: 1 + 13 + 2 + v1 + 1 + 16 + 2 + v2 */
    size_t v1 = 2000, v2 = OBJMETA_MAX - (1 + 13 + 2) - (1 + 16 + 2) - v1;
    objmeta_pair_t in[] = {{"cache-control", 13, value, v1}, {"content-language", 16, value, v2}};
    CHECK_EQ_INT(objmeta_encode(in, 2, blob, &len, &bad), 0);
    CHECK_EQ_INT(len, OBJMETA_MAX);
    CHECK_EQ_INT(objmeta_validate(blob, len), 0);
    in[1].value_len++;
    CHECK_EQ_INT(objmeta_encode(in, 2, blob, &len, &bad), CIO_ETOOBIG);
    CHECK_EQ_INT(bad, 1);
}

static void test_validate_refuses(void)
{
    uint8_t blob[OBJMETA_MAX];
    size_t len;
    objmeta_pair_t in[] = {P("a", "1"), P("b", "2")};
    CHECK_EQ_INT(objmeta_encode(in, 2, blob, &len, NULL), 0);
    CHECK_EQ_INT(objmeta_validate(blob, len), 0);
    /* every truncation is refused, but the one after the first pair (5 bytes), a blob of its own */
    for (size_t cut = 1; cut < len; cut++) {
        char *dup = test_dup_exact((const char *)blob, cut);
        CHECK(objmeta_validate((const uint8_t *)dup, cut) == (cut == 5 ? 0 : CIO_EPROTO));
        free(dup);
    }
    uint8_t b[16];
    /* out of order */
    memcpy(b, "\1b\0\0\1a\0\0", 8);
    CHECK_EQ_INT(objmeta_validate(b, 8), CIO_EPROTO);
    /* a name twice */
    memcpy(b, "\1a\0\0\1a\0\0", 8);
    CHECK_EQ_INT(objmeta_validate(b, 8), CIO_EPROTO);
    /* upper case */
    memcpy(b, "\1A\0\0", 4);
    CHECK_EQ_INT(objmeta_validate(b, 4), CIO_EPROTO);
    /* an empty name */
    memcpy(b, "\0\0\0", 3);
    CHECK_EQ_INT(objmeta_validate(b, 3), CIO_EPROTO);
    /* a CR in a value */
    memcpy(b, "\1a\0\1\r", 5);
    CHECK_EQ_INT(objmeta_validate(b, 5), CIO_EPROTO);
    /* a value longer than what is left */
    memcpy(b, "\1a\0\5ab", 6);
    CHECK_EQ_INT(objmeta_validate(b, 6), CIO_EPROTO);
    /* the shorter of two names sharing a start comes first */
    memcpy(b, "\1a\0\0\2ab\0\0", 9);
    CHECK_EQ_INT(objmeta_validate(b, 9), 0);
    memcpy(b, "\2ab\0\0\1a\0\0", 9);
    CHECK_EQ_INT(objmeta_validate(b, 9), CIO_EPROTO);
    /* too long in all */
    static uint8_t big[OBJMETA_MAX + 1];
    CHECK_EQ_INT(objmeta_validate(big, sizeof(big)), CIO_EPROTO);
}

int main(void)
{
    RUN(test_encode_sorts_and_lowercases);
    RUN(test_empty);
    RUN(test_encode_refuses);
    RUN(test_user_cap);
    RUN(test_total_cap);
    RUN(test_validate_refuses);
    return TEST_SUMMARY();
}
