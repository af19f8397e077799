/* test_path.c - unit tests of request target parsing (storaged/path.c). */
#include <stdlib.h>
#include <string.h>
#include "storaged/path.h"
#include "testutil.h"

static int parse(const char *s, size_t len, path_t *out, const char **code)
{
    char *p = test_dup_exact(s, len);
    int rc = path_parse(p, len, out, code);
    free(p);
    return rc;
}

static int query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap, size_t *outlen)
{
    char *p = test_dup_exact(q, qlen);
    int rc = path_query_get(p, qlen, name, out, cap, outlen);
    free(p);
    return rc;
}

static void test_parse_table(void)
{
    static const struct {
        const char *path;
        const char *code; /* NULL: success */
        const char *bucket;
        const char *key;
    } cases[] = {
        {"/", NULL, "", ""},
        {"/?list-type=2", NULL, "", ""},
        {"", "InvalidURI", NULL, NULL},
        {"bucket/key", "InvalidURI", NULL, NULL},
        {"?/bkt", "InvalidURI", NULL, NULL},
        {"/b", "InvalidBucketName", NULL, NULL},
        {"/b/", "InvalidBucketName", NULL, NULL},
        {"/b/key", "InvalidBucketName", NULL, NULL},
        {"/bkt", NULL, "bkt", ""},
        {"/bkt/", NULL, "bkt", ""},
        {"/bkt/x", NULL, "bkt", "x"},
        {"/bkt//x", NULL, "bkt", "/x"},
        {"/bkt//", NULL, "bkt", "/"},
        {"/bkt/a/b/c/", NULL, "bkt", "a/b/c/"},
        {"/bkt/a%2Fb", NULL, "bkt", "a/b"},
        {"/bkt/a%2fb", NULL, "bkt", "a/b"},
        {"/bkt/%41%62%63", NULL, "bkt", "Abc"},
        {"/bkt/%e2%82%AC", NULL, "bkt", "\xe2\x82\xac"},
        {"/bkt/a+b", NULL, "bkt", "a+b"},
        {"/bkt/a%20b", NULL, "bkt", "a b"},
        {"/bkt/a%2Bb", NULL, "bkt", "a+b"},
        {"/bkt/a%3Fb", NULL, "bkt", "a?b"},
        {"/bkt/caf\xc3\xa9", NULL, "bkt", "caf\xc3\xa9"},
        {"/bkt/x?acl", NULL, "bkt", "x"},
        {"/bkt/x?", NULL, "bkt", "x"},
        {"/bkt?list-type=2&prefix=a/b", NULL, "bkt", ""},
        {"/bkt/?x", NULL, "bkt", ""},
        {"/bkt/a?b/c", NULL, "bkt", "a"},
        {"/bkt/x?%zz", NULL, "bkt", "x"},
        {"/b%6Bt/x", NULL, "bkt", "x"},
        {"/my.bucket-1/k", NULL, "my.bucket-1", "k"},
        {"/bkt/a%00b", "InvalidKey", NULL, NULL},
        {"/bkt/%00", "InvalidKey", NULL, NULL},
        {"/bkt/a%zzb", "InvalidURI", NULL, NULL},
        {"/bkt/a%4", "InvalidURI", NULL, NULL},
        {"/bkt/a%", "InvalidURI", NULL, NULL},
        {"/bkt/%g0", "InvalidURI", NULL, NULL},
        {"/bkt/%0g", "InvalidURI", NULL, NULL},
        {"/bkt/%-1", "InvalidURI", NULL, NULL},
        {"/bkt/a%4?1", "InvalidURI", NULL, NULL},
        {"/%zz/x", "InvalidURI", NULL, NULL},
        {"/B/%zz", "InvalidURI", NULL, NULL}, /* bad escape wins over bad bucket */
        {"/B/%00", "InvalidBucketName", NULL, NULL},
        {"/Bkt/x", "InvalidBucketName", NULL, NULL},
        {"//x", "InvalidBucketName", NULL, NULL},
        {"//", "InvalidBucketName", NULL, NULL},
        {"/b%2Fkt/x", "InvalidBucketName", NULL, NULL},
        {"/bk%00t/x", "InvalidBucketName", NULL, NULL},
        {"/a_b/x", "InvalidBucketName", NULL, NULL},
        {"/192.168.1.1/x", "InvalidBucketName", NULL, NULL},
        {"/xn--abc/x", "InvalidBucketName", NULL, NULL},
        {"/abc-s3alias/x", "InvalidBucketName", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        path_t p;
        const char *code = "unset";
        int rc = parse(cases[i].path, strlen(cases[i].path), &p, &code);
        if (cases[i].code == NULL) {
            if (rc != 0)
                fprintf(stderr, "  path '%s': %d %s\n", cases[i].path, rc, code ? code : "(null)");
            CHECK_EQ_INT(rc, 0);
            CHECK(code == NULL);
            CHECK_EQ_STR(p.bucket, cases[i].bucket);
            CHECK_EQ_INT(p.bucket_len, strlen(cases[i].bucket));
            CHECK_EQ_STR(p.key, cases[i].key);
            CHECK_EQ_INT(p.key_len, strlen(cases[i].key));
        } else {
            if (rc != CIO_EINVAL || code == NULL || strcmp(code, cases[i].code) != 0)
                fprintf(stderr, "  path '%s': %d %s, want %s\n", cases[i].path, rc, code ? code : "(null)", cases[i].code);
            CHECK_EQ_INT(rc, CIO_EINVAL);
            CHECK_EQ_STR(code, cases[i].code);
            CHECK_EQ_INT(p.bucket_len, 0);
            CHECK_EQ_INT(p.key_len, 0);
        }
    }
}

static void test_parse_lengths(void)
{
    enum { BIG = 3 * (PATH_KEY_MAX + 2) + 200 };
    static char buf[BIG];
    path_t p;
    const char *code;
    size_t n;

    /* 1024 raw key bytes fit, 1025 do not. */
    memcpy(buf, "/bkt/", 5);
    memset(buf + 5, 'k', PATH_KEY_MAX + 1);
    CHECK_EQ_INT(parse(buf, 5 + PATH_KEY_MAX, &p, &code), 0);
    CHECK_EQ_INT(p.key_len, PATH_KEY_MAX);
    CHECK_EQ_INT(strlen(p.key), PATH_KEY_MAX);
    CHECK_EQ_INT(parse(buf, 5 + PATH_KEY_MAX + 1, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "KeyTooLong");

    /* The cap is on decoded bytes: 1024 escapes (3072 chars) fit, 1025 do not. */
    n = 5;
    for (int i = 0; i < PATH_KEY_MAX + 1; i++, n += 3)
        memcpy(buf + n, "%2F", 3);
    CHECK_EQ_INT(parse(buf, n - 3, &p, &code), 0);
    CHECK_EQ_INT(p.key_len, PATH_KEY_MAX);
    CHECK(p.key[0] == '/' && p.key[PATH_KEY_MAX - 1] == '/' && p.key[PATH_KEY_MAX] == '\0');
    CHECK_EQ_INT(parse(buf, n, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "KeyTooLong");

    /* Past the cap, a bad escape or a NUL still decides the error. */
    memcpy(buf + n, "%zz", 3);
    CHECK_EQ_INT(parse(buf, n + 3, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidURI");
    memcpy(buf + n, "%00", 3);
    CHECK_EQ_INT(parse(buf, n + 3, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidKey");

    /* A query after a long key is not part of it. */
    memset(buf + 5, 'k', PATH_KEY_MAX);
    memcpy(buf + 5 + PATH_KEY_MAX, "?max-keys=1", 11);
    CHECK_EQ_INT(parse(buf, 5 + PATH_KEY_MAX + 11, &p, &code), 0);
    CHECK_EQ_INT(p.key_len, PATH_KEY_MAX);

    /* Bucket of 63 fits, 64 does not, neither does a very long one. */
    buf[0] = '/';
    memset(buf + 1, 'b', 1000);
    buf[64] = '/';
    buf[65] = 'k';
    CHECK_EQ_INT(parse(buf, 66, &p, &code), 0);
    CHECK_EQ_INT(p.bucket_len, 63);
    CHECK_EQ_INT(strlen(p.bucket), 63);
    memset(buf + 1, 'b', 1000);
    buf[65] = '/';
    CHECK_EQ_INT(parse(buf, 66, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidBucketName");
    CHECK_EQ_INT(parse(buf, 1001, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidBucketName");

    /* Only `len` bytes are read: a cut escape is bad even if memory goes on. */
    const char *s = "/bkt/a%2Fb";
    CHECK_EQ_INT(parse(s, 6, &p, &code), 0);
    CHECK_EQ_STR(p.key, "a");
    CHECK_EQ_INT(parse(s, 7, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidURI");
    CHECK_EQ_INT(parse(s, 8, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidURI");
    CHECK_EQ_INT(parse(s, 4, &p, &code), 0);
    CHECK_EQ_STR(p.bucket, "bkt");
    CHECK_EQ_INT(parse(s, 1, &p, &code), 0);
    CHECK_EQ_INT(p.bucket_len, 0);

    /* code may be NULL. */
    CHECK_EQ_INT(path_parse("x", 1, &p, NULL), CIO_EINVAL);
    CHECK_EQ_INT(path_parse("/bkt/k", 6, &p, NULL), 0);
    CHECK_EQ_INT(path_parse(NULL, 0, &p, &code), CIO_EINVAL);
    CHECK_EQ_STR(code, "InvalidURI");
}

static void test_query_table(void)
{
    static const struct {
        const char *query;
        const char *name;
        size_t cap;
        int rc;
        const char *value;
    } cases[] = {
        {"a=1&b=2", "a", 64, 0, "1"},
        {"a=1&b=2", "b", 64, 0, "2"},
        {"a=1&b=2", "c", 64, CIO_ENOTFOUND, ""},
        {"", "a", 64, CIO_ENOTFOUND, ""},
        {"acl", "acl", 64, 0, ""},
        {"uploads&acl", "acl", 64, 0, ""},
        {"acl=", "acl", 64, 0, ""},
        {"a=&b=2", "a", 64, 0, ""},
        {"a=1&b=2", "", 64, CIO_ENOTFOUND, ""},
        {"=5", "", 64, 0, "5"},
        {"prefix=a+b", "prefix", 64, 0, "a b"},
        {"prefix=a%2Bb", "prefix", 64, 0, "a+b"},
        {"prefix=a%20b%2fc%2F", "prefix", 64, 0, "a b/c/"},
        {"prefix=%C3%a9", "prefix", 64, 0, "\xc3\xa9"},
        {"prefix=a%26b%3Dc", "prefix", 64, 0, "a&b=c"},
        {"a=b=c", "a", 64, 0, "b=c"},
        {"prefix=%zz", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=%4", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=abc%", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=%4&x=1", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=%00", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=a%00b", "prefix", 64, CIO_EINVAL, ""},
        {"prefix=%zz&a=1", "a", 64, 0, "1"}, /* another parameter's bad value does not matter */
        {"bad%zz=1&a=2", "a", 64, 0, "2"},   /* nor does a bad name */
        {"max-keys=5&max=3", "max", 64, 0, "3"},
        {"max-keys=5&max=3", "max-keys", 64, 0, "5"},
        {"max=3&max-keys=5", "max-keys", 64, 0, "5"},
        {"max=3&max-keys=5", "max", 64, 0, "3"},
        {"max-keys=5", "max", 64, CIO_ENOTFOUND, ""},
        {"max", "max-keys", 64, CIO_ENOTFOUND, ""},
        {"max-keysx=1", "max-keys", 64, CIO_ENOTFOUND, ""},
        {"xmax-keys=1", "max-keys", 64, CIO_ENOTFOUND, ""},
        {"max%2Dkeys=7", "max-keys", 64, 0, "7"},
        {"my+name=1", "my name", 64, 0, "1"},
        {"a=1&a=2", "a", 64, 0, "1"},
        {"&&a=1&", "a", 64, 0, "1"},
        {"a=12345", "a", 6, 0, "12345"},
        {"a=12345", "a", 5, CIO_ETOOBIG, ""},
        {"a=%31%32%33%34%35", "a", 6, 0, "12345"},
        {"a=%31%32%33%34%35%36", "a", 6, CIO_ETOOBIG, ""},
        {"a=1234567%zz", "a", 3, CIO_EINVAL, ""}, /* bad encoding wins over too long */
        {"a=1234567%00", "a", 3, CIO_EINVAL, ""},
        {"a=", "a", 1, 0, ""},
        {"a", "a", 1, 0, ""},
        {"a=1", "a", 1, CIO_ETOOBIG, ""},
        {"a=1", "a", 0, CIO_ETOOBIG, NULL},
        {"b=1", "a", 0, CIO_ENOTFOUND, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        size_t outlen = 99;
        memset(out, 'Z', sizeof(out));
        int rc = query_get(cases[i].query, strlen(cases[i].query), cases[i].name, out, cases[i].cap, &outlen);
        if (rc != cases[i].rc)
            fprintf(stderr, "  query '%s' name '%s': got %d\n", cases[i].query, cases[i].name, rc);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (cases[i].value != NULL) {
            CHECK_EQ_STR(out, cases[i].value);
            CHECK_EQ_INT(outlen, strlen(cases[i].value));
        } else {
            CHECK(out[0] == 'Z'); /* cap 0: nothing written */
        }
    }
}

static void test_query_edges(void)
{
    char out[16];
    size_t n;
    /* Only qlen bytes are read. */
    CHECK_EQ_INT(query_get("a=123", 4, "a", out, sizeof(out), &n), 0);
    CHECK_EQ_STR(out, "12");
    CHECK_EQ_INT(query_get("a=1%41", 5, "a", out, sizeof(out), &n), CIO_EINVAL);
    CHECK_EQ_INT(query_get("max-keys=1", 3, "max-keys", out, sizeof(out), &n), CIO_ENOTFOUND);
    CHECK_EQ_INT(query_get("max-keys=1", 3, "max", out, sizeof(out), &n), 0);
    CHECK_EQ_STR(out, "");
    /* outlen may be NULL; query may be NULL when empty. */
    CHECK_EQ_INT(query_get("a=x", 3, "a", out, sizeof(out), NULL), 0);
    CHECK_EQ_STR(out, "x");
    CHECK_EQ_INT(path_query_get(NULL, 0, "a", out, sizeof(out), &n), CIO_ENOTFOUND);
    CHECK_EQ_INT(path_query_get("a=1", 3, NULL, out, sizeof(out), &n), CIO_EINVAL);

    /* A value exactly cap-1 long after decoding. */
    static char q[2 + 3 * 15 + 1];
    memcpy(q, "a=", 2);
    for (int i = 0; i < 15; i++)
        memcpy(q + 2 + 3 * i, "%7e", 3);
    CHECK_EQ_INT(query_get(q, 2 + 3 * 15, "a", out, sizeof(out), &n), 0);
    CHECK_EQ_INT(n, 15);
    CHECK(out[0] == '~' && out[14] == '~' && out[15] == '\0');
    q[2 + 3 * 15] = 'x';
    CHECK_EQ_INT(query_get(q, 2 + 3 * 15 + 1, "a", out, sizeof(out), &n), CIO_ETOOBIG);
}

int main(void)
{
    RUN(test_parse_table);
    RUN(test_parse_lengths);
    RUN(test_query_table);
    RUN(test_query_edges);
    return TEST_SUMMARY();
}
