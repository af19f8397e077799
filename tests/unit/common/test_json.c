/* test_json.c - unit tests for common/json.c: what it accepts, what it refuses, its bounds and accessors. */
#include <stdint.h>
#include <stdlib.h>
#include "common/json.h"
#include "testutil.h"

static int parse(json_doc_t *d, const char *text)
{
    char err[128];
    return json_parse(d, text, strlen(text), err, sizeof(err));
}

static void test_accepts(void)
{
    static const char *const ok[] = {
        "0",
        "-0",
        "1.5",
        "-12.25e+3",
        "1E-2",
        "123456789012345678901234567890",
        "true",
        "false",
        "null",
        "\"\"",
        " \t\r\n{} ",
        "[]",
        "[1,[2,[3]],{\"a\":{}}]",
        "{\"a\":1,\"a\":2}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"",
        "\"caf\xc3\xa9\"",
        "\"\xf4\x8f\xbf\xbf \xf0\x90\x80\x80 \xed\x9f\xbf \xee\x80\x80\"", /* U+10FFFF, U+10000, U+D7FF, U+E000 */
        "\"\\udc80\\udcff\\udcFF\"",                                       /* the escapes of raw bytes */
        "\"\\ud800\\udc80\"",                                              /* a pair, not a byte */
    };
    json_doc_t d;
    json_init(&d, 1000, 16);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int ret = parse(&d, ok[i]);
        if (ret != 0)
            fprintf(stderr, "refused: %s\n", ok[i]);
        CHECK_EQ_INT(ret, 0);
        CHECK(json_root(&d) != NULL);
    }
    json_free(&d);
}

static void test_refuses(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "+1",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "[1,]",
        "{\"a\":1,}",
        "[,1]",
        "{a:1}",
        "{'a':1}",
        "{\"a\" 1}",
        "{\"a\":}",
        "[1 2]",
        "[",
        "]",
        "{",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\ud800\"",
        "\"\\ud800\\u0041\"",
        "\"\\udc00\"",
        "\"\\udc7f\"", /* lone low surrogates that stand for no byte */
        "\"\\udd00\"",
        "\"\\udfff\"",
        "\"\\udc80\\ud800\"",
        "\"\xff\xfe raw bytes\"", /* the text must be UTF-8 */
        "\"\x80\"",
        "\"\xc3\"",
        "\"\xc3(\"",
        "\"\xc0\x80\"",             /* overlong NUL */
        "\"\xe0\x9f\xbf\"",         /* overlong U+07FF */
        "\"\xf0\x8f\xbf\xbf\"",     /* overlong U+FFFF */
        "\"\xed\xa0\x80\"",         /* an encoded surrogate */
        "\"\xf4\x90\x80\x80\"",     /* above U+10FFFF */
        "\"\xf8\x88\x80\x80\x80\"", /* five bytes */
        "\"\xe2\x82\"",             /* truncated */
        "\"tab\there\"",
        "\"nl\nhere\"",
        "1 2",
        "{} x",
        "[1]]",
        "// c\n1",
        "[1]/* c */",
    };
    json_doc_t d;
    json_init(&d, 1000, 16);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[128] = "";
        int ret = json_parse(&d, bad[i], strlen(bad[i]), err, sizeof(err));
        if (ret != CIO_EPROTO)
            fprintf(stderr, "not refused as malformed (%d): %s\n", ret, bad[i]);
        CHECK_EQ_INT(ret, CIO_EPROTO);
        CHECK(strstr(err, "at byte") != NULL);
        CHECK(json_root(&d) == NULL);
    }
    /* a NUL byte inside the text is a control byte, not an end */
    CHECK_EQ_INT(json_parse(&d, "\"a\0b\"", 5, NULL, 0), CIO_EPROTO);
    CHECK_EQ_INT(json_parse(&d, "1\0", 2, NULL, 0), CIO_EPROTO);
    json_free(&d);
}

static void test_bounds(void)
{
    json_doc_t d;
    char err[128];

    json_init(&d, 4, 2);
    CHECK_EQ_INT(parse(&d, "[1,2,3]"), 0);
    CHECK_EQ_INT(json_parse(&d, "[1,2,3,4]", 9, err, sizeof(err)), CIO_ETOOBIG);
    CHECK(strstr(err, "more than 4 values") != NULL);
    CHECK_EQ_INT(parse(&d, "[[1]]"), 0);
    CHECK_EQ_INT(json_parse(&d, "[[[1]]]", 7, err, sizeof(err)), CIO_ETOOBIG);
    CHECK(strstr(err, "deeper than 2") != NULL);
    json_free(&d);

    /* deep nesting is refused before it can exhaust the stack */
    size_t n = 100000;
    char *deep = malloc(2 * n);
    CHECK(deep != NULL);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    json_init(&d, 1 << 20, 64);
    CHECK_EQ_INT(json_parse(&d, deep, 2 * n, NULL, 0), CIO_ETOOBIG);
    free(deep);

    /* the token array is reused across documents */
    CHECK_EQ_INT(parse(&d, "[1,2,3,4,5,6,7,8,9,10]"), 0);
    json_tok_t *before = d.toks;
    CHECK_EQ_INT(parse(&d, "[1,2]"), 0);
    CHECK(d.toks == before);
    CHECK_EQ_INT(d.ntoks, 3);
    json_free(&d);
}

static void test_navigation(void)
{
    const char *text = "{\"bucket\":\"b\",\"objects\":[{\"key\":\"k1\",\"size\":11,\"etag\":\"x\",\"nested\":{\"a\":[1,2]}},"
                       "{\"key\":\"k\\u00e9\",\"size\":0}],\"is_truncated\":false,\"next_start_after\":null,\"n\\u0061me\":1}";
    json_doc_t d;
    char s[16];
    size_t len;
    uint64_t v;
    int b;

    json_init(&d, 1000, 8);
    CHECK_EQ_INT(parse(&d, text), 0);
    const json_tok_t *root = json_root(&d), *objs = json_member(&d, root, "objects");
    CHECK(root != NULL && root->type == JSON_OBJECT && root->count == 5);
    CHECK(objs != NULL && objs->type == JSON_ARRAY && objs->count == 2);
    CHECK(json_member(&d, root, "missing") == NULL);
    CHECK(json_member(&d, objs, "key") == NULL);  /* not an object */
    CHECK(json_member(&d, root, "name") != NULL); /* names are compared decoded */
    CHECK(json_member(&d, root, "next_start_after")->type == JSON_NULL);
    CHECK_EQ_INT(json_bool(json_member(&d, root, "is_truncated"), &b), 0);
    CHECK_EQ_INT(b, 0);
    CHECK_EQ_INT(json_bool(json_member(&d, root, "bucket"), &b), CIO_EINVAL);

    const json_tok_t *o = json_first(&d, objs);
    CHECK(o != NULL && o->type == JSON_OBJECT);
    CHECK_EQ_INT(json_str(&d, json_member(&d, o, "key"), s, sizeof(s), &len), 0);
    CHECK_EQ_STR(s, "k1");
    CHECK_EQ_INT(json_u64(&d, json_member(&d, o, "size"), &v), 0);
    CHECK_EQ_INT(v, 11);
    o = json_next(&d, objs, o); /* skips the nested subtree */
    CHECK(o != NULL);
    CHECK_EQ_INT(json_str(&d, json_member(&d, o, "key"), s, sizeof(s), &len), 0);
    CHECK_EQ_STR(s, "k\xc3\xa9");
    CHECK_EQ_INT(len, 3);
    CHECK(json_next(&d, objs, o) == NULL);
    CHECK(json_first(&d, json_member(&d, root, "bucket")) == NULL);
    json_free(&d);
}

static void test_values(void)
{
    json_doc_t d;
    char s[8];
    size_t len;
    uint64_t v;
    double x;

    json_init(&d, 100, 4);
    CHECK_EQ_INT(parse(&d, "[18446744073709551615,18446744073709551616,-1,1.0,1e2,0.012,1e999]"), 0);
    const json_tok_t *arr = json_root(&d), *t = json_first(&d, arr);
    CHECK_EQ_INT(json_u64(&d, t, &v), 0);
    CHECK(v == UINT64_MAX);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_u64(&d, t, &v), CIO_ETOOBIG);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_u64(&d, t, &v), CIO_EINVAL);
    CHECK_EQ_INT(json_double(&d, t, &x), 0);
    CHECK(x == -1.0);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_u64(&d, t, &v), CIO_EINVAL);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_double(&d, t, &x), 0);
    CHECK(x == 100.0);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_double(&d, t, &x), 0);
    CHECK(x > 0.0119 && x < 0.0121);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_double(&d, t, &x), CIO_EINVAL); /* overflows a double */
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), CIO_EINVAL);

    /* strings: escapes, a surrogate pair, the cap, a decoded NUL */
    CHECK_EQ_INT(parse(&d, "[\"a\\nb\",\"\\ud83d\\ude00\",\"1234567\",\"12345678\",\"x\\u0000y\",\"\\\"\"]"), 0);
    arr = json_root(&d);
    t = json_first(&d, arr);
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), 0);
    CHECK_EQ_STR(s, "a\nb");
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), 0);
    CHECK_EQ_STR(s, "\xf0\x9f\x98\x80");
    CHECK_EQ_INT(len, 4);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), 0);
    CHECK_EQ_INT(len, 7);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), CIO_ETOOBIG);
    CHECK_EQ_STR(s, "");
    CHECK_EQ_INT(len, 0);
    t = json_next(&d, arr, t);
    CHECK_EQ_INT(json_str(&d, t, s, sizeof(s), &len), 0);
    CHECK_EQ_INT(len, 3);
    CHECK(memcmp(s, "x\0y", 3) == 0);
    CHECK(!json_str_eq(&d, t, "x"));
    t = json_next(&d, arr, t);
    CHECK(json_str_eq(&d, t, "\""));
    CHECK(!json_str_eq(&d, t, "\"\""));
    CHECK(!json_str_eq(&d, t, ""));
    json_free(&d);
}

int main(void)
{
    RUN(test_accepts);
    RUN(test_refuses);
    RUN(test_bounds);
    RUN(test_navigation);
    RUN(test_values);
    return TEST_SUMMARY();
}
