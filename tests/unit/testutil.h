/* testutil.h - the smallest test harness: CHECK macros and a summary line.
 *
 * A test file defines test functions, calls them from main through RUN(), and
 * returns TEST_SUMMARY(), which prints "N passed, N failed" and the exit code. */
#ifndef COMIO_TESTUTIL_H
#define COMIO_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_checks_passed;
static int test_checks_failed;

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (cond) {                                                                                                                \
            test_checks_passed++;                                                                                                  \
        } else {                                                                                                                   \
            test_checks_failed++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                               \
        }                                                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                                         \
    do {                                                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                                                            \
        if (check_a_ == check_b_) {                                                                                                \
            test_checks_passed++;                                                                                                  \
        } else {                                                                                                                   \
            test_checks_failed++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, check_a_, check_b_);     \
        }                                                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                                                         \
    do {                                                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                                                               \
        if (check_a_ != NULL && check_b_ != NULL && strcmp(check_a_, check_b_) == 0) {                                             \
            test_checks_passed++;                                                                                                  \
        } else {                                                                                                                   \
            test_checks_failed++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, #b,                      \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                                               \
        }                                                                                                                          \
    } while (0)

#define RUN(fn)                                                                                                                    \
    do {                                                                                                                           \
        int before_ = test_checks_failed;                                                                                          \
        fn();                                                                                                                      \
        fprintf(stderr, "%s %s\n", test_checks_failed == before_ ? "ok  " : "FAIL", #fn);                                          \
    } while (0)

/* An exact-size heap copy of s[0..len) (not NUL-terminated), for inputs given
 * as (ptr, len): ASan and valgrind then catch a read past the end. Aborts when
 * out of memory; the caller frees it. */
static inline char *test_dup_exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    if (p == NULL)
        abort();
    if (len)
        memcpy(p, s, len);
    return p;
}

#define TEST_SUMMARY() (printf("%d passed, %d failed\n", test_checks_passed, test_checks_failed), test_checks_failed == 0 ? 0 : 1)

#endif
