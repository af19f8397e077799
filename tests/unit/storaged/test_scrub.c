/* test_scrub.c - the scrub's "damaged" record (storaged/scrub.c): it round-trips, and its decoder is bounded on bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/scrub.c"
#include "testutil.h"

static void test_damaged_codec(void)
{
    uint8_t v[DAMAGED_MAX + 1];
    damaged_t d;
    size_t n = damaged_encode(v, 117717887849136128ull, 3, 1700000000123, "site-a", 6, "photos", 6, "2024/cat.jpg", 12);
    MDB_val val = {n, v};

    CHECK_EQ_INT(damaged_decode(&val, &d), 0);
    CHECK(d.version == 117717887849136128ull && d.block == 3 && d.found_ms == 1700000000123);
    CHECK(d.origin_len == 6 && memcmp(d.origin, "site-a", 6) == 0);
    CHECK(d.blen == 6 && memcmp(d.bucket, "photos", 6) == 0);
    CHECK(d.klen == 12 && memcmp(d.key, "2024/cat.jpg", 12) == 0);
    /* every truncation and a byte too many: refused, never read past the end */
    for (size_t cut = 0; cut < n; cut++) {
        char *p = test_dup_exact((const char *)v, cut);
        MDB_val t = {cut, p};
        CHECK_EQ_INT(damaged_decode(&t, &d), CIO_EPROTO);
        free(p);
    }
    v[n] = 0;
    val.mv_size = n + 1;
    CHECK_EQ_INT(damaged_decode(&val, &d), CIO_EPROTO);
    val.mv_size = n;
    v[0] = 2; /* an unknown format */
    CHECK_EQ_INT(damaged_decode(&val, &d), CIO_EPROTO);
    v[0] = DAMAGED_FORMAT;
    /* the largest record fits, and an unknown block reads back as such */
    static char origin[LOGREC_ORIGIN_MAX], bucket[LOGREC_BUCKET_MAX], key[LOGREC_KEY_MAX];
    memset(origin, 'o', sizeof(origin));
    memset(bucket, 'b', sizeof(bucket));
    memset(key, 'k', sizeof(key));
    n = damaged_encode(v, 1, UINT64_MAX, 1, origin, sizeof(origin), bucket, sizeof(bucket), key, sizeof(key));
    CHECK(n == DAMAGED_MAX);
    val.mv_size = n;
    CHECK_EQ_INT(damaged_decode(&val, &d), 0);
    CHECK(d.block == UINT64_MAX && d.klen == sizeof(key));
}

int main(void)
{
    RUN(test_damaged_codec);
    return TEST_SUMMARY();
}
