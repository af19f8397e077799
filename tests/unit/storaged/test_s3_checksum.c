/* test_s3_checksum.c - unit tests of S3's checksum verdict (storaged/s3_checksum.c):
 * every header and trailer case without a server. */
#include <stdarg.h>
#include <string.h>
#include "storaged/s3_checksum.h"
#include "testutil.h"

/* The checksums of BODY, base64 of the big-endian value, computed apart from
 * ComIO (Python's zlib, hashlib and the published CRC check values). */
#define BODY "123456789"
#define CRC32_OK "y/Q5Jg=="
#define CRC32C_OK "4waSgw=="
#define CRC64_OK "rosUhgp5mIg="
#define SHA1_OK "98O8HYCOBHMq32eZZczDTKeuNEE="
#define SHA256_OK "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU="
#define MD5_OK "JfnnlDI7RTiF9RgfG2JNCw=="

static s3_checksum_verdict_t v;

/* Verifies BODY against the fields given as "name", "value", ..., NULL; every
 * name and value an exact-size heap copy so that ASan sees a read past it. */
static int verify_body(const char *body, const char *first, ...)
{
    s3_checksum_field_t f[S3_CHECKSUM_FIELDS_MAX];
    char *copies[2 * S3_CHECKSUM_FIELDS_MAX];
    size_t n = 0, nc = 0;
    va_list ap;
    const char *name = first;

    va_start(ap, first);
    while (name != NULL && n < S3_CHECKSUM_FIELDS_MAX) {
        const char *value = va_arg(ap, const char *);
        copies[nc++] = test_dup_exact(name, strlen(name));
        copies[nc++] = test_dup_exact(value, strlen(value));
        f[n] = (s3_checksum_field_t){copies[nc - 2], strlen(name), copies[nc - 1], strlen(value)};
        n++;
        name = va_arg(ap, const char *);
    }
    va_end(ap);
    char *b = test_dup_exact(body, strlen(body));
    int rc = s3_checksum_verify(f, n, b, strlen(body), &v);
    free(b);
    while (nc > 0)
        free(copies[--nc]);
    return rc;
}

#define verify(...) verify_body(BODY, __VA_ARGS__, NULL)

static int refused(const char *code, const char *msg)
{
    return v.status == 400 && v.code != NULL && strcmp(v.code, code) == 0 && strcmp(v.msg, msg) == 0;
}

static void test_nothing_sent(void)
{
    CHECK_EQ_INT(s3_checksum_verify(NULL, 0, BODY, 9, &v), 0);
    CHECK_EQ_INT(verify("content-type", "text/plain", "x-amz-checksum-type", "FULL_OBJECT", "x-amz-checksum-mode", "ENABLED"), 0);
}

static void test_each_algorithm_matches(void)
{
    CHECK_EQ_INT(verify("x-amz-checksum-crc32", CRC32_OK), 0);
    CHECK_EQ_INT(verify("x-amz-checksum-crc32c", CRC32C_OK), 0);
    CHECK_EQ_INT(verify("x-amz-checksum-crc64nvme", CRC64_OK), 0);
    CHECK_EQ_INT(verify("x-amz-checksum-sha1", SHA1_OK), 0);
    CHECK_EQ_INT(verify("x-amz-checksum-sha256", SHA256_OK), 0);
    CHECK_EQ_INT(verify("content-md5", MD5_OK), 0);
    CHECK_EQ_INT(verify("Content-MD5", MD5_OK, "X-Amz-Checksum-CRC32C", CRC32C_OK), 0); /* names in any case */
    /* the empty body: CRC 0, and the digests of nothing */
    CHECK_EQ_INT(verify_body("", "x-amz-checksum-crc32", "AAAAAA==", "content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==", NULL), 0);
    CHECK_EQ_INT(verify_body("", "x-amz-checksum-crc64nvme", "AAAAAAAAAAA=", NULL), 0);
}

static void test_mismatch_is_bad_digest(void)
{
    /* the value of another body ("12345678"), well formed */
    CHECK_EQ_INT(verify("x-amz-checksum-crc32", "muDarw=="), 1);
    CHECK(refused("BadDigest", "The CRC32 you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("x-amz-checksum-crc32c", CRC32_OK), 1);
    CHECK(refused("BadDigest", "The CRC32C you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="), 1);
    CHECK(refused("BadDigest", "The CRC64NVME you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("x-amz-checksum-sha1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), 1);
    CHECK(refused("BadDigest", "The SHA1 you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("x-amz-checksum-sha256", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), 1);
    CHECK(refused("BadDigest", "The SHA256 you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="), 1);
    CHECK(refused("BadDigest", "The Content-MD5 you specified did not match what we received."));
    /* one body byte changed */
    CHECK_EQ_INT(verify_body("123456780", "x-amz-checksum-crc64nvme", CRC64_OK, NULL), 1);
    CHECK(refused("BadDigest", "The CRC64NVME you specified did not match the calculated checksum."));
    /* a good Content-MD5 does not excuse a bad CRC, nor the other way round */
    CHECK_EQ_INT(verify("content-md5", MD5_OK, "x-amz-checksum-crc32", CRC32C_OK), 1);
    CHECK(refused("BadDigest", "The CRC32 you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("content-md5", SHA1_OK, "x-amz-checksum-crc32", CRC32_OK), 1);
    CHECK_EQ_INT(verify("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==", "x-amz-checksum-crc32", CRC32_OK), 1);
    CHECK(refused("BadDigest", "The Content-MD5 you specified did not match what we received."));
}

static void test_malformed(void)
{
    static const char *bad[] = {"",         "y/Q5Jg",   "y/Q5Jg=",  "y/Q5Jg==\n", " y/Q5Jg==",
                                "y_Q5Jg==", "cbf43926", "y/Q5Jh==", "y/Q5",       /* three bytes */ "y/Q5JgA=" /* five */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(verify("x-amz-checksum-crc32", bad[i]), 1);
        CHECK(refused("InvalidRequest", "Value for x-amz-checksum-crc32 header is invalid."));
        CHECK_EQ_INT(verify("content-md5", bad[i]), 1);
        CHECK(refused("InvalidDigest", "The Content-MD5 you specified was invalid."));
    }
    CHECK_EQ_INT(verify("x-amz-checksum-sha256", SHA1_OK), 1); /* a SHA-1's length */
    CHECK(refused("InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid."));
    CHECK_EQ_INT(verify("content-md5", CRC64_OK), 1);
    CHECK(refused("InvalidDigest", "The Content-MD5 you specified was invalid."));
}

static void test_one_algorithm_only(void)
{
    const char *msg = "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.";
    CHECK_EQ_INT(verify("x-amz-checksum-crc32", CRC32_OK, "x-amz-checksum-crc32c", CRC32C_OK), 1);
    CHECK(refused("InvalidRequest", msg));
    CHECK_EQ_INT(verify("x-amz-checksum-crc32", CRC32_OK, "x-amz-checksum-crc32", CRC32_OK), 1); /* header and trailer */
    CHECK(refused("InvalidRequest", msg));
}

static void test_sdk_algorithm(void)
{
    CHECK_EQ_INT(verify("x-amz-sdk-checksum-algorithm", "CRC32C", "x-amz-checksum-crc32c", CRC32C_OK), 0);
    CHECK_EQ_INT(verify("x-amz-checksum-crc64nvme", CRC64_OK, "x-amz-sdk-checksum-algorithm", "crc64nvme"), 0);
    const char *absent = "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer "
                         "headers were found.";
    CHECK_EQ_INT(verify("x-amz-sdk-checksum-algorithm", "CRC32"), 1);
    CHECK(refused("InvalidRequest", absent));
    CHECK_EQ_INT(verify("x-amz-sdk-checksum-algorithm", "SHA256", "x-amz-checksum-sha1", SHA1_OK), 1);
    CHECK(refused("InvalidRequest", absent));
    static const char *unknown[] = {"MD5", "CRC", "crc32 ", "", "SHA512"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        CHECK_EQ_INT(verify("x-amz-sdk-checksum-algorithm", unknown[i], "x-amz-checksum-crc32", CRC32_OK), 1);
        CHECK(refused("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid."));
    }
    /* the names that are not algorithms are other S3 headers, left alone */
    CHECK_EQ_INT(verify("x-amz-checksum-algorithm", "CRC32", "x-amz-checksum-md5", "anything"), 0);
}

static void test_trailer_named(void)
{
    CHECK_EQ_INT(verify("x-amz-trailer", "x-amz-checksum-sha256", "x-amz-checksum-sha256", SHA256_OK), 0);
    CHECK_EQ_INT(verify("x-amz-trailer", " x-amz-meta-a , x-amz-checksum-crc32c", "x-amz-checksum-crc32c", CRC32C_OK), 0);
    CHECK_EQ_INT(verify("x-amz-trailer", "x-amz-checksum-crc32"), 1);
    CHECK(refused("InvalidRequest", "x-amz-trailer names x-amz-checksum-crc32, but the trailer was not sent."));
    CHECK_EQ_INT(verify("x-amz-trailer", "x-amz-checksum-crc32", "x-amz-checksum-crc32", "muDarw=="), 1);
    CHECK(refused("BadDigest", "The CRC32 you specified did not match the calculated checksum."));
    CHECK_EQ_INT(verify("x-amz-trailer", "x-amz-meta-other"), 0); /* not a checksum: not ours to check */
}

int main(void)
{
    RUN(test_nothing_sent);
    RUN(test_each_algorithm_matches);
    RUN(test_mismatch_is_bad_digest);
    RUN(test_malformed);
    RUN(test_one_algorithm_only);
    RUN(test_sdk_algorithm);
    RUN(test_trailer_named);
    return TEST_SUMMARY();
}
