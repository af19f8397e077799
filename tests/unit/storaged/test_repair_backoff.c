/* test_repair_backoff.c - the back-off of failed repairs (storaged/repair_backoff.c): intervals grow and are capped, a
 * background request is dropped within one, a client's only when the failure is under a second old or came after it was
 * asked, a drop is said once per interval, a success forgets, and the table stays bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/repair_backoff.h"
#include "testutil.h"

static repair_backoff_t bo; /* large: not on the stack */

static void what(repair_what_t *w, const char *key, uint64_t version)
{
    repair_what_set(w, "bkt", 3, key, strlen(key), version, "site-a", 6, 4096, 0, INTEGRITY_GET);
}

/* repair_backoff_check's answer for a request asked at t, dropping *first and *retry. */
static int check(const repair_what_t *w, int client, int64_t t)
{
    int first;
    int64_t retry;
    return repair_backoff_check(&bo, w, client, t, &first, &retry);
}

static void test_intervals_grow_and_are_capped(void)
{
    repair_what_t w;
    int first;
    int64_t retry, t = 1000000;

    repair_backoff_init(&bo, 30000);
    what(&w, "k", 7);
    CHECK_EQ_INT(check(&w, 0, t), 0); /* nothing failed yet */
    repair_backoff_done(&bo, &w, CIO_EAGAIN, t);
    CHECK_EQ_INT(repair_backoff_check(&bo, &w, 0, t + 1, &first, &retry), CIO_EAGAIN);
    CHECK(first == 1 && retry == t + REPAIR_BACKOFF_FIRST_MS);
    CHECK_EQ_INT(repair_backoff_check(&bo, &w, 0, t + 2, &first, &retry), CIO_EAGAIN);
    CHECK(first == 0); /* said once per interval */
    CHECK_EQ_INT(check(&w, 0, t + REPAIR_BACKOFF_FIRST_MS - 1), CIO_EAGAIN);
    CHECK_EQ_INT(check(&w, 0, t + REPAIR_BACKOFF_FIRST_MS), 0);
    /* 5 s, 10 s, 20 s, then the 30 s cap */
    int64_t want[] = {2 * REPAIR_BACKOFF_FIRST_MS, 4 * REPAIR_BACKOFF_FIRST_MS, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        t += 100000;
        repair_backoff_done(&bo, &w, CIO_ENOTFOUND, t);
        CHECK_EQ_INT(repair_backoff_check(&bo, &w, 0, t, &first, &retry), CIO_ENOTFOUND);
        CHECK(first == 1 && retry == t + want[i]);
        CHECK_EQ_INT(check(&w, 0, t + want[i] - 1), CIO_ENOTFOUND);
        CHECK_EQ_INT(check(&w, 0, t + want[i]), 0);
    }
    /* a success forgets: the next failure starts again at the first interval */
    repair_backoff_done(&bo, &w, 0, t);
    CHECK_EQ_INT(check(&w, 0, t), 0);
    repair_backoff_done(&bo, &w, CIO_ECORRUPT, t);
    CHECK_EQ_INT(repair_backoff_check(&bo, &w, 0, t, &first, &retry), CIO_ECORRUPT);
    CHECK(retry == t + REPAIR_BACKOFF_FIRST_MS);
    /* a local error says nothing of the peers: forgets too */
    repair_backoff_done(&bo, &w, CIO_ENOSPC, t);
    CHECK_EQ_INT(check(&w, 0, t), 0);
    /* a cap below the first interval is the interval */
    repair_backoff_init(&bo, 2000);
    repair_backoff_done(&bo, &w, CIO_EAGAIN, t);
    CHECK_EQ_INT(check(&w, 0, t + 1999), CIO_EAGAIN);
    CHECK_EQ_INT(check(&w, 0, t + 2000), 0);
}

static void test_a_client_shares_only_a_recent_failure(void)
{
    repair_what_t w;
    int64_t t = 5000000;

    repair_backoff_init(&bo, 300000);
    what(&w, "k", 7);
    repair_backoff_done(&bo, &w, CIO_EAGAIN, t);
    CHECK_EQ_INT(check(&w, 1, t), CIO_EAGAIN);
    CHECK_EQ_INT(check(&w, 1, t + REPAIR_BACKOFF_RECENT_MS - 1), CIO_EAGAIN);
    CHECK_EQ_INT(check(&w, 1, t + REPAIR_BACKOFF_RECENT_MS), 0); /* tried again, though background requests are not */
    CHECK_EQ_INT(check(&w, 0, t + REPAIR_BACKOFF_RECENT_MS), CIO_EAGAIN);
    CHECK_EQ_INT(check(&w, 1, t - 60000), CIO_EAGAIN); /* asked before that attempt ended: it waited for it, shares it */
    /* no back-off at all: every request runs */
    repair_backoff_init(&bo, 0);
    repair_backoff_done(&bo, &w, CIO_EAGAIN, t);
    CHECK_EQ_INT(check(&w, 0, t), 0);
    CHECK_EQ_INT(check(&w, 1, t), 0);
}

static void test_objects_are_told_apart_and_the_table_is_bounded(void)
{
    repair_what_t w, other;
    char key[32];
    int64_t t = 9000000;

    repair_backoff_init(&bo, 300000);
    what(&w, "k", 7);
    repair_backoff_done(&bo, &w, CIO_EAGAIN, t);
    what(&other, "k", 8); /* another version */
    CHECK_EQ_INT(check(&other, 0, t), 0);
    what(&other, "k2", 7); /* another key */
    CHECK_EQ_INT(check(&other, 0, t), 0);
    other = w;
    other.off += 4096; /* another extent */
    CHECK_EQ_INT(check(&other, 0, t), 0);
    CHECK_EQ_INT(check(&w, 0, t), CIO_EAGAIN);
    /* more failed objects than slots: the one that failed longest ago (w) is forgotten, the newest are kept */
    for (int i = 0; i < REPAIR_BACKOFF_SLOTS; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        what(&other, key, 1);
        repair_backoff_done(&bo, &other, CIO_EAGAIN, t + 1 + i);
    }
    CHECK_EQ_INT(check(&w, 0, t + 10), 0);
    CHECK_EQ_INT(check(&other, 0, t + 10), CIO_EAGAIN);
    what(&other, "many-1", 1);
    CHECK_EQ_INT(check(&other, 0, t + 10), CIO_EAGAIN);
}

int main(void)
{
    RUN(test_intervals_grow_and_are_capped);
    RUN(test_a_client_shares_only_a_recent_failure);
    RUN(test_objects_are_told_apart_and_the_table_is_bounded);
    return TEST_SUMMARY();
}
