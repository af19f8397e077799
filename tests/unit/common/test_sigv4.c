/* test_sigv4.c - SigV4 verification against AWS's published examples for S3
 * (the GET object, PUT object, list and presigned URL examples, date
 * 20130524, access key AKIAIOSFODNN7EXAMPLE) and S3's error cases. */
#include <time.h>
#include "testutil.h"
#include "common/sigv4.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T0 1369353600 /* 20130524T000000Z */
#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define H(n, v)                                                                                                                    \
    {                                                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                                                         \
    }

static sigv4_request_t req(const char *method, const char *path, const char *query, const sigv4_header_t *h, size_t n)
{
    sigv4_request_t r = {method, strlen(method), path, strlen(path), query, query ? strlen(query) : 0, h, n};
    return r;
}

static int check(const sigv4_request_t *r, int64_t now, const char *region, sigv4_auth_t *a, sigv4_error_t *e)
{
    int rc = sigv4_parse(r, now, region, a, e);
    if (rc != 0)
        return rc;
    if (strcmp(a->access_key, AK) != 0)
        return 1;
    return sigv4_verify(r, a, SECRET, strlen(SECRET), e);
}

/* "Example: GET Object": a range of test.txt */
static void test_get_object(void)
{
    sigv4_header_t h[] = {
        H("Host", "examplebucket.s3.amazonaws.com"),
        H("Range", "bytes=0-9"),
        H("x-amz-content-sha256", EMPTY),
        H("x-amz-date", "20130524T000000Z"),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                           "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    };
    sigv4_request_t r = req("GET", "/test.txt", NULL, h, 5);
    sigv4_auth_t a;
    sigv4_error_t e;

    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(a.payload, SIGV4_PAYLOAD_SHA256);
    CHECK_EQ_INT(sigv4_payload_check(&a, "", 0, &e), 0);
    CHECK(sigv4_payload_check(&a, "x", 1, &e) != 0 && strcmp(e.code, "XAmzContentSHA256Mismatch") == 0);
    /* a changed signed header: the signature no longer matches */
    h[1].value = "bytes=0-19";
    h[1].value_len = 10;
    CHECK(check(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "SignatureDoesNotMatch") == 0 && e.status == 403);
    h[1].value = "bytes=0-9";
    h[1].value_len = 9;
    /* a wrong secret */
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK(sigv4_verify(&r, &a, "wrong", 5, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    /* a header value with extra spaces is signed trimmed and collapsed */
    h[1].value = "  bytes=0-9 ";
    h[1].value_len = 12;
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    /* the clock: 15 minutes is fine, 20 is not */
    CHECK_EQ_INT(check(&r, T0 + 15 * 60, "us-east-1", &a, &e), 0);
    CHECK(check(&r, T0 + 20 * 60, "us-east-1", &a, &e) != 0 && strcmp(e.code, "RequestTimeTooSkewed") == 0 && e.status == 403);
    CHECK(check(&r, T0 - 20 * 60, "us-east-1", &a, &e) != 0 && strcmp(e.code, "RequestTimeTooSkewed") == 0);
    /* SignedHeaders in another case: signed in lower case all the same */
    h[4].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                 "SignedHeaders=Host;RANGE;x-Amz-Content-SHA256;X-AMZ-DATE,"
                 "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    h[4].value_len = strlen(h[4].value);
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    /* header names in any case; only letters fold: "x\ramz-date" or "x-amz_date" is no x-amz-date */
    h[0].name = "HOST";
    h[3].name = "X-Amz-Date";
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    h[3].name = "x\ramz-date";
    CHECK(check(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "AccessDenied") == 0);
    h[3].name = "x-amz_date";
    CHECK(check(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "AccessDenied") == 0);
    h[3].name = "x-amz-date";
    h[0].name = "Host";
    /* another region: the error names the one expected */
    CHECK(check(&r, T0, "eu-west-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationHeaderMalformed") == 0 && e.status == 400 &&
          strstr(e.msg, "expecting 'eu-west-1'") != NULL);
}

/* "Example: PUT Object": a path with an encoded character, a Date header and a storage class */
static void test_put_object(void)
{
    sigv4_header_t h[] = {
        H("Host", "examplebucket.s3.amazonaws.com"),
        H("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        H("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                           "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    };
    sigv4_request_t r = req("PUT", "/test%24file.text", NULL, h, 6);
    sigv4_auth_t a;
    sigv4_error_t e;
    static const char body[] = "Welcome to Amazon S3.";

    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(sigv4_payload_check(&a, body, sizeof(body) - 1, &e), 0);
    CHECK(sigv4_payload_check(&a, "Welcome to Amazon S4.", sizeof(body) - 1, &e) != 0);
    /* the path is signed as sent: a decoded '$' is another request */
    r = req("PUT", "/test$file.text", NULL, h, 6);
    CHECK(check(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
}

/* "Example: GET Bucket Lifecycle" and "Example: Get Bucket (List Objects)": signed queries */
static void test_queries(void)
{
    sigv4_header_t h[] = {
        H("Host", "examplebucket.s3.amazonaws.com"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-content-sha256", EMPTY),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                           "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    };
    sigv4_request_t r = req("GET", "/", "lifecycle", h, 4);
    sigv4_auth_t a;
    sigv4_error_t e;

    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    h[3].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                 "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                 "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    h[3].value_len = strlen(h[3].value);
    r = req("GET", "/", "max-keys=2&prefix=J", h, 4);
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    /* the order of the parameters as sent does not matter */
    r = req("GET", "/", "prefix=J&max-keys=2", h, 4);
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    r = req("GET", "/", "prefix=K&max-keys=2", h, 4);
    CHECK(check(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
}

/* "Authenticating Requests: Using Query Parameters": the presigned GET of test.txt */
static void test_presigned(void)
{
    static const char q[] = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
                            "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&"
                            "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    sigv4_header_t h[] = {H("Host", "examplebucket.s3.amazonaws.com")};
    sigv4_request_t r = req("GET", "/test.txt", q, h, 1);
    sigv4_auth_t a;
    sigv4_error_t e;

    CHECK_EQ_INT(sigv4_is_signed(NULL, 0, q, strlen(q)), SIGV4_SIGNED);
    CHECK_EQ_INT(sigv4_is_signed("Bearer x", 8, "prefix=a", 8), 0);
    CHECK_EQ_INT(sigv4_is_signed("AWS4-HMAC-SHA256 Credential=x", 29, NULL, 0), SIGV4_SIGNED);
    CHECK_EQ_INT(sigv4_is_signed("AWS AK:c2ln", 11, NULL, 0), SIGV4_SIGNED_V2);
    CHECK_EQ_INT(sigv4_is_signed(NULL, 0, "AWSAccessKeyId=AK&Signature=x&Expires=1", 39), SIGV4_SIGNED_V2);
    CHECK_EQ_INT(sigv4_is_signed(NULL, 0, "Signature=x", 11), 0);
    CHECK_EQ_INT(check(&r, T0 + 3600, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(a.presigned, 1);
    CHECK_EQ_INT(a.payload, SIGV4_PAYLOAD_UNSIGNED);
    CHECK_EQ_INT(check(&r, T0 + 86400, "us-east-1", &a, &e), 0);
    CHECK(check(&r, T0 + 86401, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AccessDenied") == 0 &&
          strcmp(e.msg, "Request has expired") == 0 && e.status == 403);
    CHECK(check(&r, T0, "eu-west-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationQueryParametersError") == 0);
    r.method = "PUT";
    r.method_len = 3;
    CHECK(check(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    /* X-Amz-Expires out of 1..604800 */
    static const char q2[] = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
                             "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&"
                             "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    r = req("GET", "/test.txt", q2, h, 1);
    CHECK(check(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationQueryParametersError") == 0 && e.status == 400);
}

/* "Example: PUT Object" of the chunked upload: the seed and each chunk's signature */
static void test_chunks(void)
{
    sigv4_header_t h[] = {
        H("Host", "s3.amazonaws.com"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        H("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        H("Content-Encoding", "aws-chunked"),
        H("x-amz-decoded-content-length", "66560"),
        H("Content-Length", "66824"),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-decoded-content-length;x-amz-storage-class,"
                           "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
    };
    sigv4_request_t r = req("PUT", "/examplebucket/chunkObject.txt", NULL, h, 8);
    sigv4_auth_t a;
    sigv4_error_t e;
    char sig[SIGV4_SIG_HEX + 1], *data = malloc(65536);

    memset(data, 'a', 65536);
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(a.payload, SIGV4_PAYLOAD_STREAMING);
    sigv4_chunk_signature(&a, a.signature, data, 65536, sig);
    CHECK_EQ_STR(sig, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    sigv4_chunk_signature(&a, sig, data, 1024, sig);
    CHECK_EQ_STR(sig, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497");
    sigv4_chunk_signature(&a, sig, NULL, 0, sig);
    CHECK_EQ_STR(sig, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");
    free(data);
}

/* The signing-key cache: a hit gives the key a derivation gives (the chunk
 * chain of AWS's example still matches from a hit); another secret, date,
 * region or access key is a miss, never the cached key; a full cache
 * replaces its oldest entry; a wiped cache is empty. */
static void test_keycache(void)
{
    sigv4_header_t h[] = {
        H("Host", "s3.amazonaws.com"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        H("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        H("Content-Encoding", "aws-chunked"),
        H("x-amz-decoded-content-length", "66560"),
        H("Content-Length", "66824"),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-decoded-content-length;x-amz-storage-class,"
                           "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
    };
    sigv4_request_t r = req("PUT", "/examplebucket/chunkObject.txt", NULL, h, 8);
    static sigv4_keycache_t c; /* zero: empty */
    sigv4_auth_t a, plain;
    sigv4_error_t e;
    char sig[SIGV4_SIG_HEX + 1], *data = malloc(65536);
    uint8_t day1[32];

    memset(data, 'a', 65536);
    CHECK_EQ_INT(check(&r, T0, "us-east-1", &plain, &e), 0);
    /* a miss derives and keeps the key; the next request of the scope is a hit with the same key */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
        memset(a.key, 0, sizeof(a.key));
        CHECK_EQ_INT(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e), 0);
        CHECK(memcmp(a.key, plain.key, 32) == 0);
        CHECK_EQ_INT(c.misses, 1);
        CHECK_EQ_INT(c.hits, (uint64_t)i);
    }
    sigv4_chunk_signature(&a, a.signature, data, 65536, sig);
    CHECK_EQ_STR(sig, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    /* another secret for the same access key, date and region: a miss, and the signature does not match */
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK(sigv4_verify_cached(&r, &a, "wrong", 5, &c, &e) == CIO_EINVAL && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    CHECK_EQ_INT(c.misses, 2);
    CHECK(memcmp(a.key, plain.key, 32) != 0);
    /* the same secret one byte longer or shorter is another secret */
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET) - 1, &c, &e) != 0);
    CHECK_EQ_INT(c.misses, 3);
    /* the right secret is still a hit */
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e), 0);
    CHECK_EQ_INT(c.hits, 2);
    memcpy(day1, a.key, 32);
    /* the next day: a miss and another key (the signature, made for the 24th, no longer matches) */
    h[1].value = "20130525T000000Z";
    h[7].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/us-east-1/s3/aws4_request,"
                 "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                 "x-amz-decoded-content-length;x-amz-storage-class,"
                 "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    h[7].value_len = strlen(h[7].value);
    CHECK_EQ_INT(sigv4_parse(&r, T0 + 86400, "us-east-1", &a, &e), 0);
    CHECK(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    CHECK_EQ_INT(c.misses, 4);
    CHECK(memcmp(a.key, day1, 32) != 0);
    /* another region: a miss */
    h[7].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/eu-west-1/s3/aws4_request,"
                 "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                 "x-amz-decoded-content-length;x-amz-storage-class,"
                 "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    h[7].value_len = strlen(h[7].value);
    CHECK_EQ_INT(sigv4_parse(&r, T0 + 86400, "eu-west-1", &a, &e), 0);
    CHECK(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e) != 0);
    CHECK_EQ_INT(c.misses, 5);
    /* another access key: a miss */
    h[7].value = "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20130525/eu-west-1/s3/aws4_request,"
                 "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                 "x-amz-decoded-content-length;x-amz-storage-class,"
                 "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    h[7].value_len = strlen(h[7].value);
    CHECK_EQ_INT(sigv4_parse(&r, T0 + 86400, "eu-west-1", &a, &e), 0);
    CHECK(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e) != 0);
    CHECK_EQ_INT(c.misses, 6);
    /* SIGV4_KEYCACHE_SLOTS other secrets later, the first entry (the 24th) has been replaced: a miss again */
    h[1].value = "20130524T000000Z";
    h[7].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                 "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                 "x-amz-decoded-content-length;x-amz-storage-class,"
                 "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    h[7].value_len = strlen(h[7].value);
    for (int i = 0; i < SIGV4_KEYCACHE_SLOTS; i++) {
        char other[16];
        snprintf(other, sizeof(other), "other-%d", i);
        CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
        CHECK(sigv4_verify_cached(&r, &a, other, strlen(other), &c, &e) != 0);
    }
    CHECK_EQ_INT(c.misses, 6 + SIGV4_KEYCACHE_SLOTS);
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e), 0);
    CHECK_EQ_INT(c.misses, 7 + SIGV4_KEYCACHE_SLOTS);
    /* wiped: empty, and a miss again */
    sigv4_keycache_wipe(&c);
    CHECK(c.slot[0].used == 0 && c.slot[0].secret[0] == 0 && c.hits == 0 && c.misses == 0);
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK_EQ_INT(sigv4_verify_cached(&r, &a, SECRET, strlen(SECRET), &c, &e), 0);
    CHECK_EQ_INT(c.misses, 1);
    sigv4_keycache_wipe(&c);
    free(data);
}

static void test_malformed(void)
{
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-date", "20130524T000000Z"),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature="
                           "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        H("x-amz-content-sha256", EMPTY),
        H("x-amz-meta-a", "1"),
    };
    sigv4_request_t r = req("GET", "/", NULL, h, 3);
    sigv4_auth_t a;
    sigv4_error_t e;

    /* no x-amz-content-sha256 */
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "MissingSecurityHeader") == 0);
    /* an x-amz-* header not signed */
    r = req("GET", "/", NULL, h, 5);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AccessDenied") == 0);
    /* a bad x-amz-content-sha256 */
    h[3].value = "nope";
    h[3].value_len = 4;
    r = req("GET", "/", NULL, h, 4);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "InvalidArgument") == 0);
    /* host not signed */
    h[3].value = EMPTY;
    h[3].value_len = 64;
    h[2].value = "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=x-amz-date,"
                 "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    h[2].value_len = strlen(h[2].value);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationHeaderMalformed") == 0);
    /* garbage credential */
    h[2].value = "AWS4-HMAC-SHA256 Credential=AK/2013/us-east-1,SignedHeaders=host,Signature=x";
    h[2].value_len = strlen(h[2].value);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationHeaderMalformed") == 0);
    h[2].value = "AWS4-HMAC-SHA256 ";
    h[2].value_len = strlen(h[2].value);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) != 0 && strcmp(e.code, "AuthorizationHeaderMalformed") == 0);
    CHECK(sigv4_equal("abc", "abc", 3) && !sigv4_equal("abc", "abd", 3));
}

/* a signed header's value is signed trimmed, with each inner run of spaces
 * and tabs as one space (the signature: the spec's canonical form, computed
 * with Python's hmac for "a b c") */
static void test_value_spaces(void)
{
    static const char *const same[] = {"a b c", "  a b c ", "a  b   c", "a\tb \t c", "\ta b\tc\t", "a \t\t b c"};
    static const char *const other[] = {"a bc", "ab c", "a b c d", "a b  c."};
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-content-sha256", EMPTY),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-meta-s", ""),
        H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-s,"
                           "Signature=199334725740946f516c8a6398fbeb4324877431f79622ee93b0026464dab108"),
    };
    sigv4_request_t r = req("GET", "/x", NULL, h, 5);
    sigv4_auth_t a;
    sigv4_error_t e;

    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        h[3].value = same[i];
        h[3].value_len = strlen(same[i]);
        CHECK_EQ_INT(check(&r, T0, "us-east-1", &a, &e), 0);
    }
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        h[3].value = other[i];
        h[3].value_len = strlen(other[i]);
        CHECK(check(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    }
}

/* X-Amz-Date as seconds: the same as timegm() gives, also for a day past
 * its month's end (counted on into the next month) and a leap second; a
 * date before 1970 is refused */
static void test_dates(void)
{
    static const char *const dates[] = {"19700101T000000Z", "20130524T000000Z", "20000229T235959Z", "19000228T120000Z",
                                        "21000301T000000Z", "20240229T000000Z", "20230231T000000Z", "20231231T235960Z",
                                        "00000101T000000Z", "99991231T235959Z", "20261202T172050Z"};
    char auth[256];
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-content-sha256", EMPTY),
        H("Authorization", ""),
    };
    sigv4_request_t r = req("GET", "/", NULL, h, 4);
    sigv4_auth_t a;
    sigv4_error_t e;

    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        const char *d = dates[i];
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = atoi((char[]){d[0], d[1], d[2], d[3], 0}) - 1900;
        tm.tm_mon = atoi((char[]){d[4], d[5], 0}) - 1;
        tm.tm_mday = atoi((char[]){d[6], d[7], 0});
        tm.tm_hour = atoi((char[]){d[9], d[10], 0});
        tm.tm_min = atoi((char[]){d[11], d[12], 0});
        tm.tm_sec = atoi((char[]){d[13], d[14], 0});
        int64_t want = (int64_t)timegm(&tm);
        snprintf(auth, sizeof(auth),
                 "AWS4-HMAC-SHA256 Credential=AK/%.8s/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                 "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
                 d);
        h[1].value = d;
        h[1].value_len = 16;
        h[3].value = auth;
        h[3].value_len = strlen(auth);
        if (want < 0) { /* before 1970: refused, as a date it cannot read */
            CHECK(sigv4_parse(&r, want, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "AccessDenied") == 0);
            continue;
        }
        CHECK_EQ_INT(sigv4_parse(&r, want, "us-east-1", &a, &e), 0);
        CHECK(a.date == want);
        CHECK(strcmp(a.scope + 8, "/us-east-1/s3/aws4_request") == 0 && memcmp(a.scope, d, 8) == 0);
    }
}

/* the hex of x-amz-content-sha256 and of Signature, told apart from what only looks like it */
static void test_hex_forms(void)
{
    char sha[65], auth[256];
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-content-sha256", EMPTY),
        H("Authorization", ""),
    };
    sigv4_request_t r = req("GET", "/", NULL, h, 4);
    sigv4_auth_t a;
    sigv4_error_t e;
    const char *sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

    /* upper-case hex is taken and kept in lower case */
    for (int i = 0; i < 64; i++)
        sha[i] = (char)(EMPTY[i] >= 'a' ? EMPTY[i] - 32 : EMPTY[i]);
    sha[64] = '\0';
    h[2].value = sha;
    h[2].value_len = 64;
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 "
             "Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%s",
             sig);
    h[3].value = auth;
    h[3].value_len = strlen(auth);
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    CHECK(a.payload == SIGV4_PAYLOAD_SHA256 && strcmp(a.payload_hash, EMPTY) == 0 && strcmp(a.content_sha256, sha) == 0);
    /* anything else in any one place is no digest: a control character whose 0x20 bit makes a digit, a 'g', a '/' */
    static const char bad[] = {0x10, 0x19, 'g', 'G', '/', ':', '`', '@', ' ', (char)0xb0};
    for (size_t k = 0; k < sizeof(bad); k++)
        for (int at = 0; at < 64; at += 21) {
            memcpy(sha, EMPTY, 65);
            sha[at] = bad[k];
            CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "InvalidArgument") == 0);
        }
    memcpy(sha, EMPTY, 65);
    /* the Signature: 64 lower-case hex digits, nothing else */
    static const char badsig[] = {'A', 'F', 'g', 0x10, 0x11, '/', ':', '`'};
    for (size_t k = 0; k < sizeof(badsig); k++) {
        snprintf(auth, sizeof(auth),
                 "AWS4-HMAC-SHA256 "
                 "Credential=AK/20130524/us-east-1/s3/"
                 "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%.40s%c%.23s",
                 sig, badsig[k], sig + 41);
        h[3].value_len = strlen(auth);
        CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL && strcmp(e.code, "AuthorizationHeaderMalformed") == 0 &&
              strstr(e.msg, "64 lower-case hex digits") != NULL);
    }
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 "
             "Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%s",
             sig);
    h[3].value_len = strlen(auth);
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", &a, &e), 0);
    /* a Credential of more or fewer than five parts */
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 "
             "Credential=AK/20130524/us-east-1/s3/aws4_request/x,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%s",
             sig);
    h[3].value_len = strlen(auth);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL &&
          strstr(e.msg, "access-key/date/region/s3/aws4_request") != NULL);
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%s",
             sig);
    h[3].value_len = strlen(auth);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL &&
          strstr(e.msg, "access-key/date/region/s3/aws4_request") != NULL);
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 "
             "Credential=AK/20130524/us-east-1/s3/aws4_request/,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=%s",
             sig);
    h[3].value_len = strlen(auth);
    CHECK(sigv4_parse(&r, T0, "us-east-1", &a, &e) == CIO_EINVAL &&
          strstr(e.msg, "access-key/date/region/s3/aws4_request") != NULL);
    /* equal: every byte counts */
    CHECK(sigv4_equal(sig, sig, 64));
    for (int at = 0; at < 64; at++) {
        char other[65];
        memcpy(other, sig, 65);
        other[at] ^= 1;
        CHECK(!sigv4_equal(sig, other, 64) && sigv4_equal(sig, other, (size_t)at));
    }
}

/* Every byte in every place of a SignedHeaders name (eight at a time, then
 * the tail, are checked and folded apart): a control character, a space,
 * ':', DEL and every byte from 0x80 are refused, letters fold to lower case,
 * the rest is kept. */
static void test_signed_header_chars(void)
{
    static const char prefix[] = "host;x-amz-content-sha256;x-amz-date;";
    const size_t plen = sizeof(prefix) - 1, nlen = 19; /* the name spans eight-byte words and a tail */
    char auth[512], name[32];
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-date", "20130524T000000Z"),
        H("x-amz-content-sha256", EMPTY),
        {"Authorization", 13, auth, 0},
    };
    sigv4_request_t r = req("GET", "/", NULL, h, 4);
    sigv4_auth_t a;
    sigv4_error_t e;

    for (unsigned c = 0; c < 256; c++) {
        if (c == ';' || c == ',')
            continue; /* a separator: of names, of the Authorization header's parts */
        for (size_t pos = 0; pos < nlen; pos++) {
            memset(name, 'a', nlen);
            name[pos] = (char)c;
            int n = snprintf(auth, sizeof(auth),
                             "AWS4-HMAC-SHA256 Credential=%s/20130524/us-east-1/s3/aws4_request,SignedHeaders=%s", AK, prefix);
            memcpy(auth + n, name, nlen);
            n += (int)nlen;
            n += snprintf(auth + n, sizeof(auth) - (size_t)n, ";zz,Signature=%s", EMPTY); /* a space is never trailing */
            h[3].value_len = (size_t)n;
            int bad = c <= 0x20 || c >= 0x7f || c == ':', rc = sigv4_parse(&r, T0, "us-east-1", &a, &e);
            if (bad) {
                CHECK(rc != 0 && strstr(e.msg, "holds a character no header name has") != NULL);
            } else {
                CHECK_EQ_INT(rc, 0);
                char want = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                CHECK(rc == 0 && a.signed_headers[plen + pos] == want && a.signed_headers_len == plen + nlen + 3 && a.nsigned == 5);
            }
        }
    }
}

/* Header names match whatever the case of their letters, and only then:
 * every byte in every place of "x-amz-content-sha256" (compared eight bytes
 * at a time, then the tail), the name found or not. */
static void test_header_name_case(void)
{
    char name[21] = "x-amz-content-sha256";
    sigv4_header_t h[] = {
        H("Host", "h"),
        H("x-amz-date", "20130524T000000Z"),
        {name, 20, EMPTY, 64},
        H("Authorization", "AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/aws4_request,"
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=" EMPTY),
    };
    sigv4_request_t r = req("GET", "/", NULL, h, 4);
    static const char orig[] = "x-amz-content-sha256";
    sigv4_auth_t a;
    sigv4_error_t e;

    for (size_t pos = 0; pos < 20; pos++)
        for (unsigned c = 0; c < 256; c++) {
            unsigned char o = (unsigned char)orig[pos];
            int same = c == o || (o >= 'a' && o <= 'z' && c == (unsigned)(o - 32));
            memcpy(name, orig, 20);
            name[pos] = (char)c;
            int rc = sigv4_parse(&r, T0, "us-east-1", &a, &e);
            CHECK((rc == 0) == same);
        }
}

/* sigv4_equal compares words, then a tail: a difference anywhere is seen. */
static void test_equal_words(void)
{
    char x[80], y[80];

    for (size_t n = 0; n <= sizeof(x); n++) {
        memset(x, 'q', sizeof(x));
        memset(y, 'q', sizeof(y));
        CHECK(sigv4_equal(x, y, n));
        for (size_t i = 0; i < n; i++) {
            y[i] = 'r';
            CHECK(!sigv4_equal(x, y, n));
            y[i] = 'q';
        }
    }
}

int main(void)
{
    RUN(test_get_object);
    RUN(test_put_object);
    RUN(test_queries);
    RUN(test_presigned);
    RUN(test_chunks);
    RUN(test_keycache);
    RUN(test_malformed);
    RUN(test_value_spaces);
    RUN(test_dates);
    RUN(test_hex_forms);
    RUN(test_signed_header_chars);
    RUN(test_header_name_case);
    RUN(test_equal_words);
    return TEST_SUMMARY();
}
