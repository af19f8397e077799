/* test_awschunk.c - the aws-chunked decoder: AWS's chunked upload example
 * (seed and chunk signatures), unsigned bodies with trailers, and bodies
 * with a bad chunk signature, truncated, or of the wrong size. */
#include "testutil.h"
#include "common/buf.h"
#include "proto/awschunk.h"

#define T0 1369353600 /* 20130524T000000Z */
#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
#define H(n, v)                                                                                                                    \
    {                                                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                                                         \
    }

/* The verified request of AWS's chunked upload example. */
static void example_auth(sigv4_auth_t *a)
{
    static const char secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
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
                           "x-amz-decoded-content-length;x-amz-storage-class,Signature=" SEED),
    };
    sigv4_request_t r = {"PUT", 3, "/examplebucket/chunkObject.txt", 30, NULL, 0, h, 8};
    sigv4_error_t e;
    CHECK_EQ_INT(sigv4_parse(&r, T0, "us-east-1", a, &e), 0);
    CHECK_EQ_INT(sigv4_verify(&r, a, secret, sizeof(secret) - 1, &e), 0);
}

/* The example's body: 65536 and 1024 bytes of 'a', then the final chunk. */
static void example_body(buf_t *b)
{
    char *a = malloc(65536);
    memset(a, 'a', 65536);
    buf_init(b, 1 << 20);
    buf_puts(b, "10000;chunk-signature=" SIG1 "\r\n");
    buf_append(b, a, 65536);
    buf_puts(b, "\r\n400;chunk-signature=" SIG2 "\r\n");
    buf_append(b, a, 1024);
    buf_puts(b, "\r\n0;chunk-signature=" SIG3 "\r\n\r\n");
    free(a);
}

static int decode(buf_t *b, const awschunk_opts_t *o, size_t *out, awschunk_trailer_t *tr, size_t *ntr, sigv4_error_t *e)
{
    /* an exact-size copy: ASan sees a read past the end */
    char *copy = test_dup_exact(b->data, b->len);
    int rc = awschunk_decode(copy, b->len, o, out, tr, 4, ntr, e);
    if (rc == 0) {
        for (size_t i = 0; i < *out; i++)
            if (copy[i] != 'a' && o->auth != NULL) {
                rc = 99;
                break;
            }
        memcpy(b->data, copy, b->len);
    }
    free(copy);
    return rc;
}

static void test_example(void)
{
    sigv4_auth_t a;
    awschunk_opts_t o = {&a, 0, 66560};
    awschunk_trailer_t tr[4];
    sigv4_error_t e;
    size_t out, ntr;
    buf_t b;

    example_auth(&a);
    example_body(&b);
    CHECK_EQ_INT(b.len, 66824); /* the example's Content-Length */
    CHECK_EQ_INT(decode(&b, &o, &out, tr, &ntr, &e), 0);
    CHECK_EQ_INT(out, 66560);
    CHECK_EQ_INT(ntr, 0);
    buf_free(&b);

    /* a bad chunk signature: the second chunk's */
    example_body(&b);
    b.data[65536 + 100 + 30] ^= 1;
    CHECK(decode(&b, &o, &out, tr, &ntr, &e) != 0);
    buf_free(&b);
    example_body(&b);
    memcpy(strstr(b.data, SIG1), SIG2, 64);
    CHECK(decode(&b, &o, &out, tr, &ntr, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0 && e.status == 403);
    buf_free(&b);
    /* a changed data byte */
    example_body(&b);
    b.data[1000] = 'b';
    CHECK(decode(&b, &o, &out, tr, &ntr, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    buf_free(&b);
    example_body(&b);
    /* truncated at every kind of place */
    for (size_t cut = 0; cut < b.len; cut += cut < 200 ? 1 : 997) {
        char *copy = test_dup_exact(b.data, cut);
        CHECK(awschunk_decode(copy, cut, &o, &out, tr, 4, &ntr, &e) != 0);
        free(copy);
    }
    /* the size: x-amz-decoded-content-length must be the data's */
    o.decoded_len = 66561;
    CHECK(decode(&b, &o, &out, tr, &ntr, &e) != 0 && strcmp(e.code, "IncompleteBody") == 0);
    o.decoded_len = 66559;
    CHECK(decode(&b, &o, &out, tr, &ntr, &e) != 0 && strcmp(e.code, "IncompleteBody") == 0);
    buf_free(&b);
}

static void test_unsigned_trailer(void)
{
    static const char body[] = "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Amz-Checksum-CRC32:DUoRhQ==\r\n\r\n";
    awschunk_opts_t o = {NULL, 1, 11};
    awschunk_trailer_t tr[4];
    sigv4_error_t e;
    size_t out, ntr;
    char *copy = test_dup_exact(body, sizeof(body) - 1);

    CHECK_EQ_INT(awschunk_decode(copy, sizeof(body) - 1, &o, &out, tr, 4, &ntr, &e), 0);
    CHECK_EQ_INT(out, 11);
    CHECK(memcmp(copy, "hello world", 11) == 0);
    CHECK_EQ_INT(ntr, 1);
    CHECK(ntr == 1 && tr[0].name_len == 20 && memcmp(tr[0].name, "x-amz-checksum-crc32", 20) == 0);
    CHECK(ntr == 1 && tr[0].value_len == 8 && memcmp(tr[0].value, "DUoRhQ==", 8) == 0);
    free(copy);

    /* a chunk signature where none belongs, a size that is not hex, bytes after the end, no trailer allowed */
    static const char *const bad[] = {
        "5;chunk-signature=00\r\nhello\r\n0\r\n\r\n",
        "5x\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\nmore",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
        "\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.decoded_len = 5;
        copy = test_dup_exact(bad[i], strlen(bad[i]));
        CHECK(awschunk_decode(copy, strlen(bad[i]), &o, &out, tr, 4, &ntr, &e) != 0);
        free(copy);
    }
    /* too many trailers */
    static const char many[] = "0\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\n\r\n";
    o.decoded_len = 0;
    copy = test_dup_exact(many, sizeof(many) - 1);
    CHECK(awschunk_decode(copy, sizeof(many) - 1, &o, &out, tr, 4, &ntr, &e) != 0 && strcmp(e.code, "InvalidRequest") == 0);
    free(copy);
    /* no trailers expected */
    static const char one[] = "0\r\na:1\r\n\r\n";
    o.trailer = 0;
    copy = test_dup_exact(one, sizeof(one) - 1);
    CHECK(awschunk_decode(copy, sizeof(one) - 1, &o, &out, tr, 4, &ntr, &e) != 0);
    free(copy);
}

static void test_signed_trailer(void)
{
    sigv4_auth_t a;
    awschunk_opts_t o = {&a, 1, 3};
    awschunk_trailer_t tr[4];
    sigv4_error_t e;
    size_t out, ntr;
    char s1[65], s2[65], ts[65];
    buf_t b;

    example_auth(&a);
    sigv4_chunk_signature(&a, a.signature, "abc", 3, s1);
    sigv4_chunk_signature(&a, s1, "", 0, s2);
    sigv4_trailer_signature(&a, s2, "x-amz-checksum-crc32:NSRBwg==\n", 30, ts);
    buf_init(&b, 4096);
    buf_printf(&b,
               "3;chunk-signature=%s\r\nabc\r\n0;chunk-signature=%s\r\nx-amz-checksum-crc32:NSRBwg==\r\n"
               "x-amz-trailer-signature:%s\r\n\r\n",
               s1, s2, ts);
    char *copy = test_dup_exact(b.data, b.len);
    CHECK_EQ_INT(awschunk_decode(copy, b.len, &o, &out, tr, 4, &ntr, &e), 0);
    CHECK(out == 3 && memcmp(copy, "abc", 3) == 0 && ntr == 1);
    free(copy);
    /* a changed trailer value breaks the trailer signature */
    copy = test_dup_exact(b.data, b.len);
    *strstr(copy, "NSRB") = 'M';
    CHECK(awschunk_decode(copy, b.len, &o, &out, tr, 4, &ntr, &e) != 0 && strcmp(e.code, "SignatureDoesNotMatch") == 0);
    free(copy);
    buf_free(&b);
    /* a missing trailer signature */
    buf_init(&b, 4096);
    buf_printf(&b, "3;chunk-signature=%s\r\nabc\r\n0;chunk-signature=%s\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n", s1, s2);
    copy = test_dup_exact(b.data, b.len);
    CHECK(awschunk_decode(copy, b.len, &o, &out, tr, 4, &ntr, &e) != 0);
    free(copy);
    buf_free(&b);
}

int main(void)
{
    RUN(test_example);
    RUN(test_unsigned_trailer);
    RUN(test_signed_trailer);
    return TEST_SUMMARY();
}
