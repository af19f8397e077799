/* test_store.c - unit tests of the data store's copy within itself
 * (store_copy): the bytes land at the destination, the source stays, a copy
 * of several pages goes whole, and what the kernel refuses
 * is CIO_EAGAIN with nothing copied; and the writeback hint (store_writeback). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "storaged/store.h"
#include "testutil.h"

#define MIB (1024u * 1024)

static char dir[] = "/tmp/comio-test-store-XXXXXX";
static char path[sizeof(dir) + 16];

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void test_copy(void)
{
    store_t s;
    char err[256];
    size_t n = 3 * MIB + 17; /* not a multiple of a page */
    uint8_t *src = malloc(n), *got = malloc(n);

    CHECK(src != NULL && got != NULL);
    CHECK_EQ_INT(store_open(&s, path, 64 * MIB, err, sizeof(err)), 0);
    fill(src, n, 7);
    CHECK_EQ_INT(store_write(&s, 4 * MIB, src, n), 0);
    CHECK_EQ_INT(store_copy(&s, 40 * MIB + 4096, 4 * MIB, n), 0);
    CHECK_EQ_INT(store_read(&s, 40 * MIB + 4096, got, n), 0);
    CHECK(memcmp(got, src, n) == 0);
    memset(got, 0, n);
    CHECK_EQ_INT(store_read(&s, 4 * MIB, got, n), 0);
    CHECK(memcmp(got, src, n) == 0); /* the source is left as it was */
    CHECK_EQ_INT(store_copy(&s, 50 * MIB, 4 * MIB, 0), 0);
    /* overlapping ranges: the kernel refuses (EINVAL), nothing is copied, the caller copies through a buffer */
    CHECK_EQ_INT(store_copy(&s, 4 * MIB + 4096, 4 * MIB, n), CIO_EAGAIN);
    CHECK_EQ_INT(store_read(&s, 4 * MIB, got, n), 0);
    CHECK(memcmp(got, src, n) == 0);
    store_writeback(&s, 40 * MIB + 4096, n); /* a hint: the bytes stay what they are */
    store_writeback(&s, 0, 0);
    CHECK_EQ_INT(store_sync(&s), 0);
    CHECK_EQ_INT(store_read(&s, 40 * MIB + 4096, got, n), 0);
    CHECK(memcmp(got, src, n) == 0);
    store_close(&s);
    free(src);
    free(got);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/store.img", dir);
    RUN(test_copy);
    unlink(path);
    rmdir(dir);
    return TEST_SUMMARY();
}
