/* test_buf.c - unit tests for common/buf.c's writers: JSON strings of any bytes and percent-encoding, read back through
 * common/json.c. */
#include <stdint.h>
#include <stdlib.h>
#include "common/buf.h"
#include "common/json.h"
#include "common/utf8.h"
#include "testutil.h"

/* Writes s[0..n) with buf_json_str into *b (emptied first). */
static void write_str(buf_t *b, const char *s, size_t n)
{
    b->len = 0;
    b->err = 0;
    CHECK_EQ_INT(buf_json_str(b, s, n), 0);
}

/* 1 when the whole of p[0..n) is UTF-8 without control bytes (what a strict reader takes in a string). */
static int valid_utf8(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len(s + i, n - i);
        if (k == 0 || s[i] < 0x20)
            return 0;
        i += k;
    }
    return 1;
}

/* Writes s[0..n), checks the text is UTF-8, parses it and checks the decoded bytes are s. */
static int round_trip(const char *s, size_t n)
{
    buf_t b;
    json_doc_t d;
    char out[600], err[128] = "";
    size_t len = SIZE_MAX;
    int ok;

    buf_init(&b, 1 << 16);
    json_init(&d, 4, 2);
    write_str(&b, s, n);
    ok = valid_utf8(b.data, b.len) && json_parse(&d, b.data, b.len, err, sizeof(err)) == 0 &&
         json_str(&d, json_root(&d), out, sizeof(out), &len) == 0 && len == n && memcmp(out, s, n) == 0;
    if (!ok)
        fprintf(stderr, "round trip failed for %zu bytes: %s (%s)\n", n, b.data, err);
    json_free(&d);
    buf_free(&b);
    return ok;
}

static void test_every_byte(void)
{
    buf_t b;
    char want[16];

    buf_init(&b, 64);
    for (unsigned c = 0; c < 256; c++) {
        char s[1] = {(char)c};
        if (c == '"' || c == '\\')
            snprintf(want, sizeof(want), "\"\\%c\"", c);
        else if (c < 0x20 || c == 0x7f)
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        else if (c >= 0x80) /* a lone byte 0x80-0xFF is never UTF-8 */
            snprintf(want, sizeof(want), "\"\\udc%02x\"", c);
        else
            snprintf(want, sizeof(want), "\"%c\"", c);
        write_str(&b, s, 1);
        CHECK_EQ_STR(b.data, want);
        CHECK(round_trip(s, 1));
    }
    /* and every byte in one string, each beside ASCII and beside another */
    char all[512];
    for (unsigned c = 0; c < 256; c++) {
        all[2 * c] = (char)c;
        all[2 * c + 1] = (char)(255 - c);
    }
    CHECK(round_trip(all, sizeof(all)));
    buf_free(&b);
}

static void test_sequences(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", "\"\""},
        {"plain/key.txt", "\"plain/key.txt\""},
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},                                     /* valid UTF-8 stays byte-identical */
        {"\xe2\x82\xac \xf0\x9f\x98\x80", "\"\xe2\x82\xac \xf0\x9f\x98\x80\""}, /* 3 and 4 bytes */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},                           /* U+10FFFF, the last code point */
        {"\xed\x9f\xbf\xee\x80\x80", "\"\xed\x9f\xbf\xee\x80\x80\""},           /* U+D7FF and U+E000, beside the surrogates */
        {"\xf4\x90\x80\x80", "\"\\udcf4\\udc90\\udc80\\udc80\""},               /* above U+10FFFF */
        {"\xed\xa0\x80", "\"\\udced\\udca0\\udc80\""},                          /* U+D800 encoded */
        {"\xed\xb2\x80", "\"\\udced\\udcb2\\udc80\""},                          /* U+DC80 encoded: not its own escape */
        {"\xc0\x80", "\"\\udcc0\\udc80\""},                                     /* overlong NUL */
        {"\xc1\xbf", "\"\\udcc1\\udcbf\""},                                     /* overlong 0x7F */
        {"\xe0\x9f\xbf", "\"\\udce0\\udc9f\\udcbf\""},                          /* overlong U+07FF */
        {"\xf0\x8f\xbf\xbf", "\"\\udcf0\\udc8f\\udcbf\\udcbf\""},               /* overlong U+FFFF */
        {"\xe2\x82", "\"\\udce2\\udc82\""},                                     /* truncated at the end */
        {"\xe2\x82x", "\"\\udce2\\udc82x\""},                                   /* truncated before ASCII */
        {"\xf0\x9f\x98\xc3\xa9", "\"\\udcf0\\udc9f\\udc98\xc3\xa9\""},          /* truncated before UTF-8 */
        {"\xc3\xa9\xa9", "\"\xc3\xa9\\udca9\""},                                /* a stray continuation byte */
        {"\xf8\x88\x80\x80\x80", "\"\\udcf8\\udc88\\udc80\\udc80\\udc80\""},    /* the old five-byte form */
        {"\xff\xfe", "\"\\udcff\\udcfe\""},
        {"a\"b\\c\x7f", "\"a\\\"b\\\\c\\u007f\""},
    };
    buf_t b;

    buf_init(&b, 1024);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].in);
        write_str(&b, cases[i].in, n);
        CHECK_EQ_STR(b.data, cases[i].want);
        CHECK(round_trip(cases[i].in, n));
    }
    buf_free(&b);
}

/* Random byte strings, weighted towards the bytes that start and continue sequences. */
static void test_random(void)
{
    static const unsigned char pick[] = {0x00, 0x1f, '"',  '\\', 'a',  0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf,
                                         0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90};
    uint32_t seed = 12345;
    char s[64];
    int failed = 0;

    for (int round = 0; round < 20000 && !failed; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof(s);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (seed >> 16) & 1 ? (char)pick[(seed >> 17) % sizeof(pick)] : (char)(seed >> 24);
        }
        failed = !round_trip(s, n);
    }
    CHECK(!failed);
}

static void test_caps(void)
{
    buf_t b;

    buf_init(&b, 7); /* "\udcff" needs 8 bytes with its quotes */
    CHECK_EQ_INT(buf_json_str(&b, "\xff", 1), CIO_ETOOBIG);
    buf_free(&b);
    buf_init(&b, 8);
    CHECK_EQ_INT(buf_json_str(&b, "\xff", 1), 0);
    CHECK_EQ_INT(b.len, 8);
    buf_free(&b);
}

static void test_url(void)
{
    buf_t b;

    buf_init(&b, 1024);
    CHECK_EQ_INT(buf_json_url(&b, "a b/c\xc3\xa9\xff~-._Z9%\"", 16), 0);
    CHECK_EQ_STR(b.data, "\"a%20b%2Fc%C3%A9%FF~-._Z9%25%22\"");
    b.len = 0;
    CHECK_EQ_INT(buf_json_url(&b, "\x00\x01", 2), 0);
    CHECK_EQ_INT(b.len, 8);
    CHECK(memcmp(b.data, "\"%00%01\"", 8) == 0);
    buf_free(&b);
}

/* buf_grow_array: room when there is, doubling from `first`, the contents kept, and an overflow refused with
 * the array and its capacity untouched. */
static void test_grow_array(void)
{
    size_t cap = 0, n;
    int *v = NULL;
    for (n = 0; n < 100; n++) {
        int *nv = buf_grow_array(v, &cap, n, sizeof(*v), 4);
        CHECK(nv != NULL);
        v = nv;
        CHECK(cap > n);
        v[n] = (int)n;
    }
    CHECK_EQ_INT((int)cap, 128);
    for (n = 0; n < 100; n++)
        CHECK_EQ_INT(v[n], (int)n);
    CHECK(buf_grow_array(v, &cap, 99, sizeof(*v), 4) == v); /* room left: the same array */
    size_t big = SIZE_MAX / 2 + 1;
    CHECK(buf_grow_array(v, &big, big, sizeof(*v), 4) == NULL);
    CHECK(big == SIZE_MAX / 2 + 1);
    free(v);
}

int main(void)
{
    RUN(test_grow_array);
    RUN(test_every_byte);
    RUN(test_sequences);
    RUN(test_random);
    RUN(test_caps);
    RUN(test_url);
    return TEST_SUMMARY();
}
