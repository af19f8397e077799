/* test_bwlimit.c - unit tests for common/bwlimit.c: slots by target name, the
 * pacing arithmetic, and the file shared by two openers (two processes). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/bwlimit.h"
#include "testutil.h"

static char dir[] = "/tmp/comio-test-bwlimit-XXXXXX";

static char name_b[] = "b", name_c[] = "c";

static void two_targets(conf_t *c, conf_target_t t[2], uint64_t limit_b, uint64_t limit_c)
{
    memset(c, 0, sizeof(*c));
    memset(t, 0, 2 * sizeof(*t));
    t[0].name = name_b;
    t[0].bandwidth_limit = limit_b;
    t[1].name = name_c;
    t[1].bandwidth_limit = limit_c;
    c->targets = t;
    c->ntargets = 2;
}

static void test_slots_and_limits(void)
{
    conf_t c;
    conf_target_t t[2];
    bwlimit_t *one = NULL, *two = NULL;

    two_targets(&c, t, 1000000, 0);
    CHECK_EQ_INT(bwlimit_open(&one, dir, &c), 0);
    CHECK_EQ_INT(bwlimit_open(&two, dir, &c), 0); /* the other daemon: the same file */
    int b = bwlimit_slot(one, "b"), cs = bwlimit_slot(one, "c");
    CHECK(b >= 0 && cs >= 0 && b != cs);
    CHECK_EQ_INT(bwlimit_slot(two, "b"), b);
    CHECK_EQ_INT(bwlimit_slot(one, "nobody"), -1);
    CHECK(bwlimit_limit(two, b) == 1000000);
    CHECK(bwlimit_limit(two, cs) == 0);

    /* no limit: never a wait, but the bytes are counted */
    CHECK(bwlimit_take(one, cs, 65536) == 0);
    CHECK(bwlimit_bytes(two, cs) == 65536);

    /* 1 MB/s with a 50 ms burst: 50 KB go at once, then each byte waits 1 us more, whoever takes it */
    uint64_t w1 = bwlimit_take(one, b, 40000);
    uint64_t w2 = bwlimit_take(two, b, 40000);
    CHECK(w1 == 0);
    CHECK(w2 > 25000000 && w2 <= 30000000); /* 80 ms of bytes, 50 ms of burst: about 30 ms */
    CHECK(bwlimit_bytes(one, b) == 80000);

    /* a new limit set through one opener is the other's at once */
    two_targets(&c, t, 0, 2000000);
    bwlimit_apply(two, &c);
    CHECK(bwlimit_limit(one, b) == 0 && bwlimit_take(one, b, 1 << 20) == 0);
    CHECK(bwlimit_limit(one, cs) == 2000000);

    /* NULL (no file) and -1 (no slot) are no limit */
    CHECK(bwlimit_take(NULL, 0, 100) == 0 && bwlimit_take(one, -1, 100) == 0);
    CHECK(bwlimit_slot(NULL, "b") == -1 && bwlimit_limit(NULL, 0) == 0);
    bwlimit_close(one);
    bwlimit_close(two);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_slots_and_limits);
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s", dir, BWLIMIT_FILE);
    unlink(path);
    rmdir(dir);
    return TEST_SUMMARY();
}
