/* test_vctx.c - unit tests of the causal context (common/vctx.c). */
#include <stdio.h>
#include <string.h>
#include "common/vctx.h"
#include "testutil.h"

static void add(vctx_t *c, const char *site, uint64_t hlc)
{
    vctx_add(c, site, strlen(site), hlc);
}

static uint64_t get(const vctx_t *c, const char *site)
{
    return vctx_get(c, site, strlen(site));
}

static void test_add_get(void)
{
    vctx_t c;
    vctx_init(&c);
    CHECK(get(&c, "a") == 0);
    add(&c, "b", 5);
    add(&c, "a", 7);
    add(&c, "b", 3); /* older: no change */
    CHECK(get(&c, "a") == 7 && get(&c, "b") == 5 && get(&c, "c") == 0);
    CHECK(vctx_seen(&c, "b", 1, 5) && !vctx_seen(&c, "b", 1, 6) && !vctx_seen(&c, "c", 1, 1));
    CHECK(c.n == 2 && strcmp(c.e[0].site, "a") == 0 && strcmp(c.e[1].site, "b") == 0);
    /* a prefix sorts first */
    add(&c, "ab", 1);
    CHECK(c.n == 3 && strcmp(c.e[1].site, "ab") == 0);
    /* a version of no site raises the floor and drops what it covers */
    add(&c, "", 4);
    CHECK(c.floor == 4 && c.n == 2 && get(&c, "ab") == 4 && get(&c, "zz") == 4 && get(&c, "a") == 7);
    add(&c, "q", 2); /* below the floor: already seen */
    CHECK(c.n == 2);
}

static void test_merge_equal(void)
{
    vctx_t a, b;
    vctx_init(&a);
    vctx_init(&b);
    add(&a, "x", 1);
    add(&a, "y", 9);
    add(&b, "y", 4);
    add(&b, "z", 6);
    CHECK(!vctx_equal(&a, &b));
    vctx_merge(&a, &b);
    CHECK(get(&a, "x") == 1 && get(&a, "y") == 9 && get(&a, "z") == 6 && a.n == 3);
    vctx_merge(&b, &a);
    CHECK(vctx_equal(&a, &b)); /* the merge is commutative: equal knowledge, equal form */
}

static void test_trim(void)
{
    vctx_t c, before;
    vctx_init(&c);
    add(&c, "a", 5);
    add(&c, "b", 6);
    before = c;
    vctx_trim(&c, "a", 1, 7);
    CHECK(c.n == 1 && get(&c, "a") == 0);
    add(&c, "a", 7);
    CHECK(get(&c, "a") == 7 && get(&c, "b") == 6);
    c = before;
    vctx_trim(&c, "b", 1, 5); /* the entry knows more: it stays */
    CHECK(vctx_equal(&c, &before));
    c.floor = 3;
    vctx_trim(&c, "", 0, 4);
    CHECK(c.floor == 0 && c.n == 2);
    add(&c, "", 4);
    CHECK(c.floor == 4 && get(&c, "a") == 5);
}

/* Past VCTX_MAX sites the smallest entry goes into the floor: knowledge is
 * rounded up, never down. */
static void test_cap(void)
{
    vctx_t c;
    char s[8];
    vctx_init(&c);
    for (int i = 0; i < VCTX_MAX; i++) {
        snprintf(s, sizeof(s), "s%02d", i);
        add(&c, s, 100 + (uint64_t)i);
    }
    CHECK(c.n == VCTX_MAX && c.floor == 0);
    add(&c, "new", 50); /* smaller than all: becomes the floor */
    CHECK(c.n == VCTX_MAX && c.floor == 50 && get(&c, "new") == 50);
    add(&c, "new2", 500); /* evicts s00 (100) */
    CHECK(c.n == VCTX_MAX && c.floor == 100 && get(&c, "s00") == 100 && get(&c, "new2") == 500 && get(&c, "s01") == 101);
    for (int i = 0; i < VCTX_MAX; i++) {
        snprintf(s, sizeof(s), "s%02d", i);
        CHECK(get(&c, s) >= 100 + (uint64_t)i);
    }
}

static void test_encode_decode(void)
{
    vctx_t c, d;
    uint8_t buf[VCTX_ENCODED_MAX + 4];
    size_t n, used;
    char s[LIMIT_SITE_ID_MAX + 1];

    vctx_init(&c);
    n = vctx_encode(buf, &c);
    CHECK(n == 9 && vctx_decode(buf, n, &d, &used) == 0 && used == 9 && vctx_equal(&c, &d));
    for (int i = 0; i < VCTX_MAX; i++) {
        memset(s, 'a' + i, LIMIT_SITE_ID_MAX);
        vctx_add(&c, s, LIMIT_SITE_ID_MAX, 1000 + (uint64_t)i);
    }
    c.floor = 999;
    n = vctx_encode(buf, &c);
    CHECK(n == VCTX_ENCODED_MAX);
    buf[n] = 0xee; /* what follows is the caller's */
    CHECK(vctx_decode(buf, n + 1, &d, &used) == 0 && used == n && vctx_equal(&c, &d));
    int bad = 0;
    for (size_t k = 0; k < n; k++)
        if (vctx_decode(buf, k, &d, &used) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    /* out of order, a zero-length site, a count beyond the cap, a version at the floor */
    vctx_init(&c);
    add(&c, "a", 5);
    add(&c, "b", 6);
    n = vctx_encode(buf, &c);
    buf[9 + 8 + 1] = 'c'; /* "a" becomes "c": after "b" */
    CHECK(vctx_decode(buf, n, &d, &used) == CIO_EPROTO);
    n = vctx_encode(buf, &c);
    buf[9 + 8] = 0;
    CHECK(vctx_decode(buf, n, &d, &used) == CIO_EPROTO);
    n = vctx_encode(buf, &c);
    buf[8] = VCTX_MAX + 1;
    CHECK(vctx_decode(buf, n, &d, &used) == CIO_EPROTO);
    n = vctx_encode(buf, &c);
    buf[7] = 5; /* floor 5 = a's version */
    CHECK(vctx_decode(buf, n, &d, &used) == CIO_EPROTO);
}

int main(void)
{
    RUN(test_add_get);
    RUN(test_merge_equal);
    RUN(test_trim);
    RUN(test_cap);
    RUN(test_encode_decode);
    return TEST_SUMMARY();
}
