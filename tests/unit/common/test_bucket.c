/* test_bucket.c - unit tests for common/bucket.c: S3 bucket name rules and the reserved names. */
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "common/bucket.h"

static int valid(const char *s, size_t len)
{
    char *p = test_dup_exact(s, len);
    int ok = bucket_name_valid(p, len);
    free(p);
    return ok;
}

static int reserved(const char *s, size_t len)
{
    char *p = test_dup_exact(s, len);
    int r = bucket_name_reserved(p, len);
    free(p);
    return r;
}

static void test_names(void)
{
    static const struct {
        const char *name;
        int valid;
    } cases[] = {
        {"", 0},
        {"a", 0},
        {"ab", 0},
        {"abc", 1},
        {"123", 1},
        {"a1b", 1},
        {"my.bucket.name", 1},
        {"my-bucket", 1},
        {"a--b", 1},
        {"a.b", 1},
        {"a-.b", 1},
        {"ABC", 0},
        {"aBc", 0},
        {"a_b", 0},
        {"a b", 0},
        {"a/b", 0},
        {"a%b", 0},
        {"caf\xc3\xa9", 0},
        {"-abc", 0},
        {"abc-", 0},
        {".abc", 0},
        {"abc.", 0},
        {"a..b", 0},
        {"a...b", 0},
        {"192.168.1.1", 0},
        {"1.2.3.4", 0},
        {"999.999.999.999", 0},
        {"10.0.0.1", 0},
        {"1.2.3", 1},
        {"1.2.3.4.5", 1},
        {"1234.2.3.4", 1},
        {"192.168.1.1a", 1},
        {"a192.168.1.1", 1},
        {"xn--abc", 0},
        {"xn--", 0},
        {"xn-abc", 1},
        {"axn--abc", 1},
        {"abc-s3alias", 0},
        {"-s3alias", 0},
        {"s3alias", 1},
        {"abc-s3aliasx", 1},
        {"abc.s3alias", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = valid(cases[i].name, strlen(cases[i].name));
        if (got != cases[i].valid)
            fprintf(stderr, "  bucket '%s': got %d\n", cases[i].name, got);
        CHECK_EQ_INT(got, cases[i].valid);
    }
}

static void test_lengths(void)
{
    char name[LIMIT_BUCKET_MAX + 20];
    memset(name, 'a', sizeof(name));
    CHECK_EQ_INT(valid(name, LIMIT_BUCKET_MIN - 1), 0);
    CHECK_EQ_INT(valid(name, LIMIT_BUCKET_MIN), 1);
    CHECK_EQ_INT(valid(name, LIMIT_BUCKET_MAX), 1);
    CHECK_EQ_INT(valid(name, LIMIT_BUCKET_MAX + 1), 0);
    CHECK_EQ_INT(valid(name, sizeof(name)), 0);
    CHECK_EQ_INT(valid("ab\0c", 4), 0);
    CHECK_EQ_INT(bucket_name_valid(NULL, 5), 0);
    /* Only `len` bytes count. */
    CHECK_EQ_INT(valid("abc-", 3), 1);
    CHECK_EQ_INT(valid("abcdef-s3alias", 6), 1);
}

static void test_reserved(void)
{
    CHECK_EQ_INT(reserved("admin", 5), 1);
    CHECK_EQ_INT(reserved("metrics", 7), 1);
    /* reserved names are valid ones: refusing them is a separate check */
    CHECK_EQ_INT(valid("admin", 5), 1);
    CHECK_EQ_INT(valid("metrics", 7), 1);
    static const char *const not_reserved[] = {"", "adm", "admins", "Admin", "metric", "metrics2", "xadmin", "my-bucket"};
    for (size_t i = 0; i < sizeof(not_reserved) / sizeof(not_reserved[0]); i++)
        CHECK_EQ_INT(reserved(not_reserved[i], strlen(not_reserved[i])), 0);
    CHECK_EQ_INT(reserved("adminx", 5), 1); /* only `len` bytes count */
    CHECK_EQ_INT(bucket_name_reserved(NULL, 5), 0);
    /* the message names each of them */
    CHECK(strstr(BUCKET_RESERVED_TEXT, "'admin'") != NULL);
    CHECK(strstr(BUCKET_RESERVED_TEXT, "'metrics'") != NULL);
}

int main(void)
{
    RUN(test_names);
    RUN(test_lengths);
    RUN(test_reserved);
    return TEST_SUMMARY();
}
