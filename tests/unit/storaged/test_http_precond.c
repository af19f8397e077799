/* test_http_precond.c - unit tests of conditional request evaluation (storaged/http_precond.c). */
#include <stdlib.h>
#include <string.h>
#include "storaged/http_precond.h"
#include "testutil.h"

#define ETAG "\"0123456789abcdef0123456789abcdef\""
#define OTHER "\"ffffffffffffffffffffffffffffffff\""
#define MTIME 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define MTIME_STR "Sun, 06 Nov 1994 08:49:37 GMT"
#define BEFORE_STR "Sun, 06 Nov 1994 08:49:36 GMT"
#define AFTER_STR "Sun, 06 Nov 1994 08:49:38 GMT"

static h2o_iovec_t v(const char *s)
{
    return s == NULL ? h2o_iovec_init(NULL, 0) : h2o_iovec_init(s, strlen(s));
}

/* Every value gets an exact-size heap copy so that ASan catches a read past its end. */
static char *copies[8];
static size_t ncopies;

static h2o_iovec_t exact(const char *s)
{
    if (s == NULL)
        return h2o_iovec_init(NULL, 0);
    size_t len = strlen(s);
    char *p = malloc(len ? len : 1);
    if (p == NULL)
        abort();
    memcpy(p, s, len);
    copies[ncopies++] = p;
    return h2o_iovec_init(p, len);
}

static void free_copies(void)
{
    while (ncopies > 0)
        free(copies[--ncopies]);
}

static int eval(const char *im, const char *inm, const char *ims, const char *ius, const char *etag, int read)
{
    http_precond_t h;
    h.if_match = exact(im);
    h.if_none_match = exact(inm);
    h.if_modified_since = exact(ims);
    h.if_unmodified_since = exact(ius);
    int rc = http_precond_eval(&h, v(etag), MTIME, read);
    free_copies();
    return rc;
}

static int if_range(const char *value)
{
    int rc = http_precond_if_range(exact(value), v(ETAG), MTIME);
    free_copies();
    return rc;
}

static void test_dates(void)
{
    int64_t t = 0;
    CHECK_EQ_INT(http_precond_parse_date(exact(MTIME_STR), &t), 0);
    CHECK_EQ_INT(t, MTIME);
    t = 0;
    CHECK_EQ_INT(http_precond_parse_date(exact("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
    CHECK_EQ_INT(t, MTIME);
    t = 0;
    CHECK_EQ_INT(http_precond_parse_date(exact("Sun Nov  6 08:49:37 1994"), &t), 0);
    CHECK_EQ_INT(t, MTIME);
    CHECK_EQ_INT(http_precond_parse_date(exact("yesterday"), &t), CIO_EINVAL);
    CHECK_EQ_INT(http_precond_parse_date(exact("Sun, 06 Nov 1994 08:49:37 GMT trailing"), &t), CIO_EINVAL);
    CHECK_EQ_INT(http_precond_parse_date(exact(""), &t), CIO_EINVAL);
    free_copies();
}

static void test_if_none_match(void)
{
    CHECK_EQ_INT(eval(NULL, ETAG, NULL, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(NULL, "W/" ETAG, NULL, NULL, ETAG, 1), 304); /* weak comparison */
    CHECK_EQ_INT(eval(NULL, "*", NULL, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(NULL, OTHER ", " ETAG, NULL, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(NULL, OTHER, NULL, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, "\"0123\"", NULL, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, "garbage", NULL, NULL, ETAG, 1), 0);
    /* a method that changes state: 412 */
    CHECK_EQ_INT(eval(NULL, "*", NULL, NULL, ETAG, 0), 412);
    CHECK_EQ_INT(eval(NULL, ETAG, NULL, NULL, ETAG, 0), 412);
    CHECK_EQ_INT(eval(NULL, "*", NULL, NULL, NULL, 0), 0); /* create-only PUT of a new key */
    /* If-None-Match wins over If-Modified-Since */
    CHECK_EQ_INT(eval(NULL, OTHER, AFTER_STR, NULL, ETAG, 1), 0);
}

static void test_if_modified_since(void)
{
    CHECK_EQ_INT(eval(NULL, NULL, MTIME_STR, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(NULL, NULL, AFTER_STR, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(NULL, NULL, BEFORE_STR, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, NULL, "not a date", NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, NULL, MTIME_STR, NULL, ETAG, 0), 0); /* GET and HEAD only */
}

static void test_if_match(void)
{
    CHECK_EQ_INT(eval(ETAG, NULL, NULL, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval("*", NULL, NULL, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(OTHER ", " ETAG, NULL, NULL, NULL, ETAG, 1), 0);
    CHECK_EQ_INT(eval(OTHER, NULL, NULL, NULL, ETAG, 1), 412);
    CHECK_EQ_INT(eval("W/" ETAG, NULL, NULL, NULL, ETAG, 1), 412); /* strong comparison */
    CHECK_EQ_INT(eval("*", NULL, NULL, NULL, NULL, 0), 412);       /* no current object */
    CHECK_EQ_INT(eval(ETAG " junk", NULL, NULL, NULL, ETAG, 1), 412);
    /* If-Match decides; If-Unmodified-Since is not looked at */
    CHECK_EQ_INT(eval(ETAG, NULL, NULL, BEFORE_STR, ETAG, 1), 0);
    /* then If-None-Match */
    CHECK_EQ_INT(eval(ETAG, ETAG, NULL, NULL, ETAG, 1), 304);
    CHECK_EQ_INT(eval(OTHER, ETAG, NULL, NULL, ETAG, 1), 412);
}

static void test_if_unmodified_since(void)
{
    CHECK_EQ_INT(eval(NULL, NULL, NULL, MTIME_STR, ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, NULL, NULL, AFTER_STR, ETAG, 0), 0);
    CHECK_EQ_INT(eval(NULL, NULL, NULL, BEFORE_STR, ETAG, 1), 412);
    CHECK_EQ_INT(eval(NULL, NULL, NULL, BEFORE_STR, ETAG, 0), 412);
    CHECK_EQ_INT(eval(NULL, NULL, NULL, "bogus", ETAG, 1), 0);
    CHECK_EQ_INT(eval(NULL, NULL, NULL, BEFORE_STR, NULL, 0), 0);
    /* a failed If-Unmodified-Since comes before If-None-Match's 304 */
    CHECK_EQ_INT(eval(NULL, ETAG, NULL, BEFORE_STR, ETAG, 1), 412);
}

static void test_if_range(void)
{
    CHECK_EQ_INT(http_precond_if_range(v(NULL), v(ETAG), MTIME), 1);
    CHECK_EQ_INT(if_range(ETAG), 1);
    CHECK_EQ_INT(if_range(" " ETAG " "), 1);
    CHECK_EQ_INT(if_range(OTHER), 0);
    CHECK_EQ_INT(if_range("W/" ETAG), 0); /* weak tags never match */
    CHECK_EQ_INT(if_range(MTIME_STR), 1);
    CHECK_EQ_INT(if_range(AFTER_STR), 0); /* a date matches exactly or not at all */
    CHECK_EQ_INT(if_range(BEFORE_STR), 0);
    CHECK_EQ_INT(if_range("garbage"), 0);
    /* a date whose weekday starts with W is not a weak entity-tag */
    CHECK_EQ_INT(http_precond_if_range(v("Wed, 02 Dec 2026 00:48:29 GMT"), v(ETAG), 1796172509), 1);
    CHECK_EQ_INT(if_range(""), 0);
}

int main(void)
{
    RUN(test_dates);
    RUN(test_if_none_match);
    RUN(test_if_modified_since);
    RUN(test_if_match);
    RUN(test_if_unmodified_since);
    RUN(test_if_range);
    return TEST_SUMMARY();
}
