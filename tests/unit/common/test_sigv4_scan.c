/* test_sigv4_scan.c - common/sigv4.c's shortcuts against the long way: the
 * 64 hex digits of a signature checked a word at a time against a byte at a
 * time (every byte value in every place), and the Credential's whole-scope
 * comparison against its split. Includes the .c to reach the static functions. */
#include <stdio.h>
#include <string.h>
#include "common/sigv4.c"
#include "testutil.h"

/* the reference: every byte one of the sixteen digits */
static int hex_ref(const char *s, size_t n)
{
    return n == SIGV4_SIG_HEX && strspn(s, "0123456789abcdef") >= n;
}

static void test_is_signature(void)
{
    static const char good[] = "0123456789abcdef0123456789abcdeffedcba98765432100123456789abcdef";
    char s[65];
    int mismatches = 0;

    CHECK(sigv4_is_signature(good, 64));
    CHECK(!sigv4_is_signature(good, 63));
    CHECK(!sigv4_is_signature(good, 65));
    for (int at = 0; at < 64; at++)
        for (int b = 0; b < 256; b++) {
            memcpy(s, good, sizeof(s));
            s[at] = (char)b;
            mismatches += sigv4_is_signature(s, 64) != hex_ref(s, 64);
        }
    CHECK_EQ_INT(mismatches, 0);
}

/* the scope compared whole accepts what the split accepts, and nothing else */
static void test_credential(void)
{
    static const struct {
        const char *cred;
        int ok;
        const char *code; /* when refused */
    } cases[] = {
        {"AK/20130524/us-east-1/s3/aws4_request", 1, NULL}, {"A/20130524/us-east-1/s3/aws4_request", 1, NULL},
        {"/20130524/us-east-1/s3/aws4_request", 0, "X"},    {"A/K/20130524/us-east-1/s3/aws4_request", 0, "X"},
        {"AK//20130524/us-east-1/s3/aws4_request", 0, "X"}, {"AK/20130525/us-east-1/s3/aws4_request", 0, "X"},
        {"AK/20130524/us-east-11/s3/aws4_request", 0, "X"}, {"AK/20130524/us-east-/s3/aws4_request", 0, "X"},
        {"AK/20130524/us-east-1/s4/aws4_request", 0, "X"},  {"AK/20130524/us-east-1/s3/aws4_requesT", 0, "X"},
        {"AK/20130524/us-east-1/s3/aws4_request/", 0, "X"}, {"AK20130524/us-east-1/s3/aws4_request", 0, "X"},
        {"20130524/us-east-1/s3/aws4_request", 0, "X"},     {"", 0, "X"},
    };
    sigv4_auth_t a;
    sigv4_error_t e;
    char cred[300];

    memcpy(a.amz_date, "20130524T000000Z", 17);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_credential(cases[i].cred, strlen(cases[i].cred), "us-east-1", &a, "X", "what", &e);
        CHECK_EQ_INT(rc == 0, cases[i].ok);
        if (rc != 0 && strcmp(e.code, cases[i].code) != 0)
            fprintf(stderr, "  %s: %s\n", cases[i].cred, e.code);
        if (rc == 0) {
            CHECK(strncmp(a.access_key, cases[i].cred, strlen(a.access_key)) == 0 && cases[i].cred[strlen(a.access_key)] == '/');
            CHECK_EQ_STR(a.scope, "20130524/us-east-1/s3/aws4_request");
            CHECK_EQ_INT(a.scope_len, strlen(a.scope));
        } else {
            CHECK_EQ_STR(e.code, cases[i].code);
        }
    }
    /* the longest access key, and one byte more (403 InvalidAccessKeyId, as from the split) */
    for (size_t kl = SIGV4_ACCESS_KEY_MAX; kl <= SIGV4_ACCESS_KEY_MAX + 1; kl++) {
        memset(cred, 'K', kl);
        snprintf(cred + kl, sizeof(cred) - kl, "/20130524/us-east-1/s3/aws4_request");
        int rc = parse_credential(cred, strlen(cred), "us-east-1", &a, "X", "what", &e);
        if (kl == SIGV4_ACCESS_KEY_MAX) {
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_INT(strlen(a.access_key), kl);
        } else {
            CHECK(rc == CIO_EINVAL && strcmp(e.code, "InvalidAccessKeyId") == 0 && e.status == 403);
        }
    }
    /* a region with a '/' (never configured) is only compared part by part */
    CHECK(parse_credential("AK/20130524/a/b/s3/aws4_request", 31, "a/b", &a, "X", "what", &e) == CIO_EINVAL);
}

int main(void)
{
    RUN(test_is_signature);
    RUN(test_credential);
    return TEST_SUMMARY();
}
