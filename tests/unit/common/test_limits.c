/* test_limits.c - common/limits.h: its _Static_asserts compile, and every
 * module's own name for a limit is the limit itself. */
#include "testutil.h"
#include "common/limits.h"
#include "proto/batch.h"
#include "proto/logrec.h"
#include "proto/presign.h"

static void test_aliases_agree(void)
{
    CHECK_EQ_INT(LOGREC_BUCKET_MAX, LIMIT_BUCKET_MAX);
    CHECK_EQ_INT(LOGREC_KEY_MAX, LIMIT_KEY_MAX);
    CHECK_EQ_INT(BATCH_URL_MAX, LIMIT_FETCH_URL_MAX);
    CHECK(LOGREC_ORIGIN_MAX >= LIMIT_SITE_ID_MAX);
    CHECK(BATCH_SRC_MAX >= LIMIT_SITE_ID_MAX);
}

/* The bound a presigned URL is held to, worked out by hand once. */
static void test_fetch_url_bound(void)
{
    CHECK_EQ_INT(PRESIGN_QUERY_MAX, 127);
    CHECK_EQ_INT(PRESIGN_URL_LEN_MAX(0), 25 + 3 * 63 + 1 + 3 * 1024 + 127);
    CHECK(PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX) <= LIMIT_FETCH_URL_MAX);
}

int main(void)
{
    RUN(test_aliases_agree);
    RUN(test_fetch_url_bound);
    return TEST_SUMMARY();
}
