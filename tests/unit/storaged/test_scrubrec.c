/* test_scrubrec.c - the scrub's records (storaged/scrubrec.c): they round-trip, and their decoders are bounded on bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/scrubrec.h"
#include "testutil.h"

static void test_damaged(void)
{
    uint8_t v[SCRUBREC_DAMAGED_MAX + 1];
    scrubrec_damaged_t in = {117717887849136128ull, 3, 1700000000123, "site-a", "photos", "2024/cat.jpg", 6, 6, 12}, d;
    size_t n = scrubrec_damaged_encode(v, &in);

    CHECK(n == 1 + 24 + 1 + 6 + 1 + 6 + 2 + 12);
    CHECK_EQ_INT(scrubrec_damaged_decode(v, n, &d), 0);
    CHECK(d.version == in.version && d.block == 3 && d.found_ms == in.found_ms);
    CHECK(d.origin_len == 6 && memcmp(d.origin, "site-a", 6) == 0);
    CHECK(d.blen == 6 && memcmp(d.bucket, "photos", 6) == 0);
    CHECK(d.klen == 12 && memcmp(d.key, "2024/cat.jpg", 12) == 0);
    /* every truncation and a byte too many: refused, never read past the end */
    for (size_t cut = 0; cut < n; cut++) {
        char *p = test_dup_exact((const char *)v, cut);
        CHECK_EQ_INT(scrubrec_damaged_decode(p, cut, &d), CIO_EPROTO);
        free(p);
    }
    v[n] = 0;
    CHECK_EQ_INT(scrubrec_damaged_decode(v, n + 1, &d), CIO_EPROTO);
    v[0] = 2; /* an unknown format */
    CHECK_EQ_INT(scrubrec_damaged_decode(v, n, &d), CIO_EPROTO);
    /* the largest record fits; an unknown block reads back as such; a string too long is refused */
    static char origin[LOGREC_ORIGIN_MAX + 1], bucket[LOGREC_BUCKET_MAX + 1], key[LOGREC_KEY_MAX + 1];
    memset(origin, 'o', sizeof(origin));
    memset(bucket, 'b', sizeof(bucket));
    memset(key, 'k', sizeof(key));
    scrubrec_damaged_t big = {1, UINT64_MAX, 1, origin, bucket, key, LOGREC_ORIGIN_MAX, LOGREC_BUCKET_MAX, LOGREC_KEY_MAX};
    n = scrubrec_damaged_encode(v, &big);
    CHECK(n == SCRUBREC_DAMAGED_MAX);
    CHECK_EQ_INT(scrubrec_damaged_decode(v, n, &d), 0);
    CHECK(d.block == UINT64_MAX && d.klen == LOGREC_KEY_MAX);
    big.klen++;
    CHECK(scrubrec_damaged_encode(v, &big) == 0);
}

static void test_quarantine(void)
{
    uint8_t v[SCRUBREC_QUARANTINE_MAX];
    scrubrec_quarantine_t in, q;
    in.len = 1 << 20;
    in.object = (scrubrec_damaged_t){7, 2, 1700000000123, "site-a", "photos", "cat.jpg", 6, 6, 7};
    size_t n = scrubrec_quarantine_encode(v, &in);
    CHECK(n == 8 + 1 + 24 + 1 + 6 + 1 + 6 + 2 + 7);
    CHECK_EQ_INT(scrubrec_quarantine_decode(v, n, &q), 0);
    CHECK(q.len == 1 << 20 && q.object.version == 7 && q.object.block == 2 && q.object.klen == 7 &&
          memcmp(q.object.key, "cat.jpg", 7) == 0);
    for (size_t cut = 0; cut < n; cut++)
        CHECK_EQ_INT(scrubrec_quarantine_decode(v, cut, &q), CIO_EPROTO);
}

static void test_state(void)
{
    static scrubrec_state_t in, out;
    uint8_t v[SCRUBREC_STATE_MAX + 1];

    in.running = 1;
    in.cur = (scrub_pass_t){12, 1700000000000, 0, 9120, 48101000000, 1, 2, 3, 1};
    in.last = (scrub_pass_t){11, 1600000000000, 1600000024070, 18190, 96300000000, 4, 0, 2, 3};
    memcpy(in.pos,
           "photos\0"
           "2024/cat.jpg",
           19);
    in.pos_len = 19;
    size_t n = scrubrec_state_encode(v, &in);
    CHECK(n == SCRUBREC_STATE_FIXED + 19 + SCRUBREC_STATE_TRAILER);
    CHECK_EQ_INT(scrubrec_state_decode(v, n, &out), 0);
    CHECK(out.running == 1 && out.pos_len == 19 && memcmp(out.pos, in.pos, 19) == 0);
    CHECK(memcmp(&out.cur, &in.cur, sizeof(in.cur)) == 0 && memcmp(&out.last, &in.last, sizeof(in.last)) == 0);
    CHECK(out.cur.repaired == 1 && out.last.repaired == 3);
    /* a record of the release before the trailer: read, its repaired counts 0 */
    CHECK_EQ_INT(scrubrec_state_decode(v, n - SCRUBREC_STATE_TRAILER, &out), 0);
    CHECK(out.cur.repaired == 0 && out.last.repaired == 0 && out.cur.pass == 12 && out.last.damaged == 4 && out.pos_len == 19);
    for (size_t cut = 0; cut < n; cut++) {
        if (cut == n - SCRUBREC_STATE_TRAILER)
            continue; /* the old form, above */
        char *p = test_dup_exact((const char *)v, cut);
        CHECK_EQ_INT(scrubrec_state_decode(p, cut, &out), CIO_EPROTO);
        free(p);
    }
    v[n] = 0;
    CHECK_EQ_INT(scrubrec_state_decode(v, n + 1, &out), CIO_EPROTO);
    CHECK(!out.losers && out.lpos_len == 0);

    /* in the kept losers' walk: the trailer, then 1 and the last loser's table key; no loser done yet: an empty one */
    in.losers = 1;
    memcpy(in.lpos, "photos", 7);      /* the bucket and its NUL */
    memset(in.lpos + 7, 0xa5, 16 + 8); /* the key's MD5, the loser's version */
    memcpy(in.lpos + 31, "site-a", 6); /* its origin */
    memset(in.lpos + 37, 'x', 6);
    in.lpos_len = 43;
    size_t m = scrubrec_state_encode(v, &in);
    CHECK(m == n + SCRUBREC_STATE_LOSERS + 43 && v[n] == 1);
    CHECK_EQ_INT(scrubrec_state_decode(v, m, &out), 0);
    CHECK(out.losers == 1 && out.lpos_len == 43 && memcmp(out.lpos, in.lpos, 43) == 0);
    CHECK(out.pos_len == 19 && out.cur.repaired == 1 && out.last.repaired == 3);
    for (size_t cut = n + 1; cut < m; cut++) {
        char *p = test_dup_exact((const char *)v, cut);
        CHECK_EQ_INT(scrubrec_state_decode(p, cut, &out), CIO_EPROTO);
        free(p);
    }
    v[m] = 0;
    CHECK_EQ_INT(scrubrec_state_decode(v, m + 1, &out), CIO_EPROTO);
    v[n] = 0; /* marked other than 1 */
    CHECK_EQ_INT(scrubrec_state_decode(v, m, &out), CIO_EPROTO);
    in.lpos_len = 0;
    m = scrubrec_state_encode(v, &in);
    CHECK(m == n + SCRUBREC_STATE_LOSERS);
    CHECK_EQ_INT(scrubrec_state_decode(v, m, &out), 0);
    CHECK(out.losers == 1 && out.lpos_len == 0);
    in.losers = 0;
    CHECK(scrubrec_state_encode(v, &in) == n);

    v[1] = 2; /* running is 0 or 1 */
    CHECK_EQ_INT(scrubrec_state_decode(v, n, &out), CIO_EPROTO);
    v[1] = 1;
    v[0] = 9;
    CHECK_EQ_INT(scrubrec_state_decode(v, n, &out), CIO_EPROTO);
}

int main(void)
{
    RUN(test_damaged);
    RUN(test_quarantine);
    RUN(test_state);
    return TEST_SUMMARY();
}
