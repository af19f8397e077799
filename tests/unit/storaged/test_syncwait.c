/* test_syncwait.c - unit tests for storaged/syncwait.c: when a waiting write is settled, COMPLETED or PENDING, and the degraded
 * state. */
#include <stdlib.h>
#include <unistd.h>
#include "storaged/syncwait.c"
#include "testutil.h"

static conf_target_t tgts[2];
static syncwait_t sw;
static char name_b[] = "b", name_c[] = "c", url_b[] = "http://b", url_c[] = "http://c";

/* Two sync targets: b (timeout 100 ms, fallback async) and c (timeout 300 ms, fallback `cfb`). */
static void setup(int cfb)
{
    memset(&sw, 0, sizeof(sw));
    memset(tgts, 0, sizeof(tgts));
    tgts[0] = (conf_target_t){.name = name_b, .url = url_b, .sync_timeout_ms = 100, .sync_fallback = CONF_SYNC_FALLBACK_ASYNC};
    tgts[1] = (conf_target_t){.name = name_c, .url = url_c, .sync_timeout_ms = 300, .sync_fallback = cfb};
    sw.sync_mask = 3;
    sw.t[0].tgt = &tgts[0];
    sw.t[1].tgt = &tgts[1];
    sw.head = 10;
    pthread_mutex_init(&sw.log_mu, NULL);
}

static syncwait_req_t req(uint64_t seq)
{
    syncwait_req_t r;
    memset(&r, 0, sizeof(r));
    r.seq = seq;
    r.start_ms = 1000;
    r.waiting = 3;
    return r;
}

static void test_acknowledged_by_all(void)
{
    uint64_t ack[CONF_TARGETS_MAX] = {9, 10};
    setup(CONF_SYNC_FALLBACK_ASYNC);
    syncwait_req_t r = req(10);
    CHECK_EQ_INT(settle(&sw, &r, ack, 1000), 0); /* b has not acknowledged seq 10 */
    CHECK(r.waiting == 1 && r.gave_up == 0);
    ack[0] = 12;
    CHECK_EQ_INT(settle(&sw, &r, ack, 1050), 1);
    CHECK(r.gave_up == 0); /* COMPLETED */
    CHECK_EQ_INT(sw.t[0].degraded, 0);
}

static void test_timeout_async_gives_up_and_degrades(void)
{
    uint64_t ack[CONF_TARGETS_MAX] = {0, 10};
    setup(CONF_SYNC_FALLBACK_ASYNC);
    syncwait_req_t r = req(10);
    CHECK_EQ_INT(settle(&sw, &r, ack, 1099), 0);
    CHECK_EQ_INT(settle(&sw, &r, ack, 1100), 1); /* b's 100 ms passed */
    CHECK(r.gave_up == 1);                       /* PENDING */
    CHECK_EQ_INT(sw.t[0].degraded, 1);
    CHECK(sw.t[0].degraded_total == 1);

    /* while b is degraded, a new write does not wait for it */
    sw.head = 11;
    syncwait_req_t r2 = req(11);
    r2.start_ms = 2000;
    ack[1] = 11;
    CHECK_EQ_INT(settle(&sw, &r2, ack, 2000), 1);
    CHECK(r2.gave_up == 1);

    /* b catches up with the head of an earlier check: back to sync, and the next write waits for it again */
    int trusted[CONF_TARGETS_MAX] = {1, 1};
    ack[0] = 10;
    check_recovery(&sw, ack, trusted, 2000);
    CHECK_EQ_INT(sw.t[0].degraded, 1); /* 10 < head 11, sampled now */
    sw.head = 15;                      /* writes go on */
    ack[0] = 12;
    check_recovery(&sw, ack, trusted, 2010);
    CHECK_EQ_INT(sw.t[0].degraded, 0); /* it reached the head of 10 ms ago: it keeps up */

    /* a target that lags behind: the reference moves on every 100 ms */
    set_degraded(&sw, 0, 1, 0);
    CHECK(sw.t[0].degraded_total == 2);
    check_recovery(&sw, ack, trusted, 3000); /* samples head 15 */
    sw.head = 30;
    ack[0] = 14;
    check_recovery(&sw, ack, trusted, 3050);
    CHECK_EQ_INT(sw.t[0].degraded, 1);
    check_recovery(&sw, ack, trusted, 3100); /* 14 < 15, 100 ms on: samples head 30 */
    ack[0] = 20;
    check_recovery(&sw, ack, trusted, 3150);
    CHECK_EQ_INT(sw.t[0].degraded, 1); /* 20 passed 15, but the reference is 30 now */
    trusted[0] = 0;
    ack[0] = 30;
    check_recovery(&sw, ack, trusted, 3160);
    CHECK_EQ_INT(sw.t[0].degraded, 1); /* a slot it cannot trust never ends it */
    trusted[0] = 1;
    check_recovery(&sw, ack, trusted, 3170);
    CHECK_EQ_INT(sw.t[0].degraded, 0);
    syncwait_req_t r3 = req(31);
    r3.start_ms = 3000;
    CHECK_EQ_INT(settle(&sw, &r3, ack, 3000), 0);
    CHECK(r3.waiting == 3);
}

static void test_timeout_wait_keeps_waiting(void)
{
    uint64_t ack[CONF_TARGETS_MAX] = {10, 0};
    setup(CONF_SYNC_FALLBACK_WAIT);
    syncwait_req_t r = req(10);
    CHECK_EQ_INT(settle(&sw, &r, ack, 1300), 0); /* c's 300 ms passed: degraded, still waiting */
    CHECK(r.waiting == 2 && r.gave_up == 0);
    CHECK_EQ_INT(sw.t[1].degraded, 1);
    CHECK_EQ_INT(settle(&sw, &r, ack, 99000), 0);
    ack[1] = 10;
    CHECK_EQ_INT(settle(&sw, &r, ack, 99001), 1);
    CHECK(r.gave_up == 0); /* COMPLETED, however late */
}

static void test_longer_timeout_of_another_target(void)
{
    uint64_t ack[CONF_TARGETS_MAX] = {0, 0};
    setup(CONF_SYNC_FALLBACK_ASYNC);
    syncwait_req_t r = req(10);
    CHECK_EQ_INT(settle(&sw, &r, ack, 1150), 0); /* b gave up, c's 300 ms not yet */
    CHECK(r.waiting == 2 && r.gave_up == 1);
    ack[1] = 10;
    CHECK_EQ_INT(settle(&sw, &r, ack, 1200), 1);
    CHECK(r.gave_up == 1); /* PENDING: b does not hold it */
}

int main(void)
{
    log_init("test", "test", LOG_LVL_ERROR, 0);
    RUN(test_acknowledged_by_all);
    RUN(test_timeout_async_gives_up_and_degrades);
    RUN(test_timeout_wait_keeps_waiting);
    RUN(test_longer_timeout_of_another_target);
    return TEST_SUMMARY();
}
