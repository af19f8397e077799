/* test_syncctl.c - unit tests for common/syncctl.c: the full sync commands round-trip, and bad ones are refused. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "common/syncctl.h"

static void test_round_trip(void)
{
    syncctl_req_t r, back;
    char cmd[256], err[200];
    memset(&r, 0, sizeof(r));
    r.cmd = SYNCCTL_RESYNC;
    snprintf(r.target, sizeof(r.target), "site-b");
    CHECK(syncctl_format(&r, cmd, sizeof(cmd)) == 0);
    CHECK_EQ_STR(cmd, "resync site-b"); /* what repld --resync has always sent */
    snprintf(r.bucket, sizeof(r.bucket), "photos");
    r.dry_run = 1;
    r.delete_extra = 1;
    r.rate = 50000000;
    CHECK(syncctl_format(&r, cmd, sizeof(cmd)) == 0);
    CHECK_EQ_STR(cmd, "resync site-b photos -dry-run -delete-extra -rate=50000000");
    CHECK(syncctl_parse(cmd, &back, err, sizeof(err)) == 0);
    CHECK(back.cmd == SYNCCTL_RESYNC && back.dry_run && back.delete_extra && back.rate == 50000000);
    CHECK_EQ_STR(back.target, "site-b");
    CHECK_EQ_STR(back.bucket, "photos");
    CHECK(syncctl_parse("cancel site-b", &back, err, sizeof(err)) == 0 && back.cmd == SYNCCTL_CANCEL);
    CHECK(syncctl_parse("report site-b", &back, err, sizeof(err)) == 0 && back.cmd == SYNCCTL_REPORT);
}

static void test_refused(void)
{
    syncctl_req_t r;
    char err[200];
    CHECK(syncctl_parse("status", &r, err, sizeof(err)) == CIO_ENOTFOUND);
    CHECK(syncctl_parse("resync ", &r, err, sizeof(err)) == CIO_EINVAL);
    CHECK(syncctl_parse("resync b -rate=0", &r, err, sizeof(err)) == CIO_EINVAL);
    CHECK(syncctl_parse("resync b -rate=x", &r, err, sizeof(err)) == CIO_EINVAL);
    CHECK(syncctl_parse("resync b -fast", &r, err, sizeof(err)) == CIO_EINVAL && strstr(err, "-fast") != NULL);
    CHECK(syncctl_parse("resync b one two", &r, err, sizeof(err)) == CIO_EINVAL);
    CHECK(syncctl_parse("cancel b -dry-run", &r, err, sizeof(err)) == CIO_EINVAL);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_refused);
    return TEST_SUMMARY();
}
