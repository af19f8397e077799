/* test_limits.c - common/limits.h: its _Static_asserts compile, and every
 * module's own name for a limit is the limit itself. */
#include <stdio.h>
#include "testutil.h"
#include "common/limits.h"
#include "proto/batch.h"
#include "proto/logrec.h"
#include "proto/presign.h"
#include "storaged/path.h"

static void test_aliases_agree(void)
{
    CHECK_EQ_INT(LOGREC_BUCKET_MAX, LIMIT_BUCKET_MAX);
    CHECK_EQ_INT(LOGREC_KEY_MAX, LIMIT_KEY_MAX);
    CHECK_EQ_INT(PATH_BUCKET_MAX, LIMIT_BUCKET_MAX);
    CHECK_EQ_INT(PATH_KEY_MAX, LIMIT_KEY_MAX);
    CHECK_EQ_INT(BATCH_URL_MAX, LIMIT_FETCH_URL_MAX);
    CHECK(LOGREC_ORIGIN_MAX >= LIMIT_SITE_ID_MAX);
    CHECK(BATCH_SRC_MAX >= LIMIT_SITE_ID_MAX);
}

/* The bound a presigned URL is held to, worked out by hand once. */
static void test_fetch_url_bound(void)
{
    CHECK_EQ_INT(PRESIGN_QUERY_MAX, 199); /* "?version=&origin=&expires=&sig=", 20 + 64 + 20 + 64 */
    CHECK_EQ_INT(PRESIGN_URL_LEN_MAX(0), 25 + 3 * 63 + 1 + 3 * 1024 + 199);
    CHECK(PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX) <= LIMIT_FETCH_URL_MAX);
}

/* Messages print the limits through LIMIT_TEXT: the text is the value. */
static void test_text(void)
{
    char n[32];
    snprintf(n, sizeof(n), "%d", LIMIT_KEY_MAX);
    CHECK_EQ_STR(LIMIT_TEXT(LIMIT_KEY_MAX), n);
    snprintf(n, sizeof(n), "%d", LIMIT_LIST_KEYS_MAX);
    CHECK_EQ_STR(LIMIT_TEXT(LIMIT_LIST_KEYS_MAX), n);
    snprintf(n, sizeof(n), "%d", LIMIT_BUCKET_MAX);
    CHECK_EQ_STR(LIMIT_TEXT(LIMIT_BUCKET_MAX), n);
}

int main(void)
{
    RUN(test_aliases_agree);
    RUN(test_fetch_url_bound);
    RUN(test_text);
    return TEST_SUMMARY();
}
