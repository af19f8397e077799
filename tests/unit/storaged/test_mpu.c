/* test_mpu.c - the multipart upload tables (storaged/mpu.c): the record codec, bounded on bad input, and the table calls. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "storaged/meta.h"
#include "storaged/mpu.h"
#include "testutil.h"

static const char ID_A[] = "0123456789abcdef0123456789abcdef";
static const char ID_B[] = "fedcba9876543210fedcba9876543210";

static void upload_init(mpu_upload_t *u, const char *b, const char *k)
{
    memset(u, 0, sizeof(*u));
    u->initiated_ms = 1700000000123;
    u->blen = (uint16_t)strlen(b);
    memcpy(u->bucket, b, u->blen);
    u->klen = (uint16_t)strlen(k);
    memcpy(u->key, k, u->klen);
    u->ctype_len = 10;
    memcpy(u->ctype, "text/plain", 10);
}

static void test_upload_codec(void)
{
    mpu_upload_t u, d;
    uint8_t buf[MPU_RECORD_MAX];
    size_t n;

    upload_init(&u, "bucket", "dir/key");
    /* one metadata pair: name "x-amz-meta-a" value "1", as objmeta_encode writes it */
    objmeta_pair_t pair = {"x-amz-meta-a", 12, "1", 1};
    size_t bad;
    {
        size_t ml;
        CHECK_EQ_INT(objmeta_encode(&pair, 1, u.meta, &ml, &bad), 0);
        u.meta_len = (uint16_t)ml;
    }
    n = mpu_upload_encode(&u, buf);
    CHECK(n <= MPU_RECORD_MAX);
    CHECK_EQ_INT(mpu_upload_decode(buf, n, &d), 0);
    CHECK_EQ_INT(d.initiated_ms, u.initiated_ms);
    CHECK_EQ_STR(d.bucket, "bucket");
    CHECK_EQ_STR(d.key, "dir/key");
    CHECK_EQ_STR(d.ctype, "text/plain");
    CHECK_EQ_INT(d.meta_len, u.meta_len);
    CHECK(memcmp(d.meta, u.meta, u.meta_len) == 0);
    /* every truncation, a byte too many, an unknown format: refused, never read past the end */
    for (size_t cut = 0; cut < n; cut++) {
        char *p = test_dup_exact((const char *)buf, cut);
        CHECK_EQ_INT(mpu_upload_decode((const uint8_t *)p, cut, &d), CIO_EPROTO);
        free(p);
    }
    buf[n] = 0;
    CHECK_EQ_INT(mpu_upload_decode(buf, n + 1, &d), CIO_EPROTO);
    buf[0] = 2;
    CHECK_EQ_INT(mpu_upload_decode(buf, n, &d), CIO_EPROTO);
    buf[0] = 1;
    /* an empty key, a key over its cap, broken metadata */
    upload_init(&u, "bucket", "k");
    u.klen = 0;
    n = mpu_upload_encode(&u, buf);
    CHECK_EQ_INT(mpu_upload_decode(buf, n, &d), CIO_EPROTO);
    upload_init(&u, "bucket", "k");
    n = mpu_upload_encode(&u, buf);
    buf[9 + 2 + 6] = 0xff; /* the key's length, high byte */
    CHECK_EQ_INT(mpu_upload_decode(buf, n, &d), CIO_EPROTO);
    upload_init(&u, "bucket", "k");
    u.meta_len = 3;
    memcpy(u.meta, "\x05zz", 3);
    n = mpu_upload_encode(&u, buf);
    CHECK_EQ_INT(mpu_upload_decode(buf, n, &d), CIO_EPROTO);
}

static void test_part_codec(void)
{
    mpu_part_t p, d;
    uint8_t buf[MPU_PART_RECORD_LEN + 1];

    memset(&p, 0, sizeof(p));
    p.ext = (alloc_extent_t){1 << 20, 5 << 20};
    p.size = (5 << 20) - 7;
    memset(p.md5, 0xab, 16);
    p.mtime_ms = 42;
    CHECK_EQ_INT(mpu_part_encode(&p, buf), MPU_PART_RECORD_LEN);
    CHECK_EQ_INT(mpu_part_decode(buf, MPU_PART_RECORD_LEN, &d), 0);
    CHECK_EQ_INT(d.ext.off, p.ext.off);
    CHECK_EQ_INT(d.ext.len, p.ext.len);
    CHECK_EQ_INT(d.size, p.size);
    CHECK(memcmp(d.md5, p.md5, 16) == 0);
    CHECK_EQ_INT(d.mtime_ms, 42);
    CHECK_EQ_INT(mpu_part_decode(buf, MPU_PART_RECORD_LEN - 1, &d), CIO_EPROTO);
    CHECK_EQ_INT(mpu_part_decode(buf, MPU_PART_RECORD_LEN + 1, &d), CIO_EPROTO);
    /* a size larger than its extent, and than a part may be */
    p.size = p.ext.len + 1;
    mpu_part_encode(&p, buf);
    CHECK_EQ_INT(mpu_part_decode(buf, MPU_PART_RECORD_LEN, &d), CIO_EPROTO);
    p.ext.len = UINT64_MAX / 2;
    p.size = MPU_PART_SIZE_MAX + 1;
    mpu_part_encode(&p, buf);
    CHECK_EQ_INT(mpu_part_decode(buf, MPU_PART_RECORD_LEN, &d), CIO_EPROTO);
}

static void test_id_valid(void)
{
    CHECK(mpu_id_valid(ID_A, 32));
    CHECK(!mpu_id_valid(ID_A, 31));
    CHECK(!mpu_id_valid("0123456789ABCDEF0123456789abcdef", 32));
    CHECK(!mpu_id_valid("0123456789abcdef0123456789abcde/", 32));
}

static int collect(void *ctx, const mpu_part_t *p)
{
    uint32_t *seen = ctx;
    seen[++seen[0]] = p->number;
    return 0;
}

static int freed(void *ctx, alloc_extent_t e)
{
    uint64_t *sum = ctx;
    *sum += e.len;
    return 0;
}

static int count_uploads(void *ctx, const char *id, const mpu_upload_t *u)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_tables(void)
{
    char dir[] = "/tmp/comio-test-mpu-XXXXXX", err[256], cmd[PATH_MAX];
    meta_t m;
    MDB_txn *txn;
    mpu_upload_t u, got;
    mpu_part_t p, old;
    uint32_t seen[8] = {0};
    uint64_t n, nparts, bytes, sum = 0;
    int had_old, uploads = 0;

    if (mkdtemp(dir) == NULL || meta_open(&m, dir, 16u << 20, "test-site", err, sizeof(err)) != 0) {
        CHECK(0);
        return;
    }
    CHECK_EQ_INT(mdb_txn_begin(m.env, NULL, 0, &txn), 0);
    upload_init(&u, "bkt", "key");
    CHECK_EQ_INT(mpu_put(&m, txn, ID_A, &u), 0);
    upload_init(&u, "bkt", "other");
    CHECK_EQ_INT(mpu_put(&m, txn, ID_B, &u), 0);
    CHECK_EQ_INT(mpu_get(&m, txn, ID_A, &got), 0);
    CHECK_EQ_STR(got.key, "key");
    memset(&p, 0, sizeof(p));
    for (uint32_t i = 3; i >= 1; i--) { /* stored out of order, listed in order */
        p.number = i;
        p.ext = (alloc_extent_t){i * 4096, 4096};
        p.size = 100 * i;
        CHECK_EQ_INT(mpu_part_put(&m, txn, ID_A, &p, &old, &had_old), 0);
        CHECK(!had_old);
    }
    p.number = 2;
    p.ext = (alloc_extent_t){40960, 8192};
    CHECK_EQ_INT(mpu_part_put(&m, txn, ID_A, &p, &old, &had_old), 0);
    CHECK(had_old && old.ext.off == 2 * 4096 && old.number == 2);
    p.number = 1;
    CHECK_EQ_INT(mpu_part_put(&m, txn, ID_B, &p, &old, &had_old), 0);
    CHECK_EQ_INT(mpu_part_each(&m, txn, ID_A, 0, collect, seen), 0);
    CHECK(seen[0] == 3 && seen[1] == 1 && seen[2] == 2 && seen[3] == 3);
    seen[0] = 0;
    CHECK_EQ_INT(mpu_part_each(&m, txn, ID_A, 2, collect, seen), 0);
    CHECK(seen[0] == 1 && seen[1] == 3);
    CHECK_EQ_INT(mpu_count(&m, txn, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(mpu_each(&m, txn, NULL, count_uploads, &uploads), 0);
    CHECK_EQ_INT(uploads, 2);
    uploads = 0;
    CHECK_EQ_INT(mpu_each(&m, txn, ID_A, count_uploads, &uploads), 0);
    CHECK_EQ_INT(uploads, 1);
    /* removing A frees A's three parts only */
    CHECK_EQ_INT(mpu_del(&m, txn, ID_A, freed, &sum, &nparts, &bytes), 0);
    CHECK_EQ_INT(nparts, 3);
    CHECK_EQ_INT(sum, 4096 + 8192 + 4096);
    CHECK_EQ_INT(mpu_get(&m, txn, ID_A, &got), CIO_ENOTFOUND);
    CHECK_EQ_INT(mpu_part_get(&m, txn, ID_A, 1, &p), CIO_ENOTFOUND);
    CHECK_EQ_INT(mpu_part_get(&m, txn, ID_B, 1, &p), 0);
    CHECK_EQ_INT(mpu_del(&m, txn, ID_A, NULL, NULL, NULL, NULL), CIO_ENOTFOUND);
    mdb_txn_abort(txn);
    meta_close(&m);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
    log_init("test", "test_mpu", LOG_LVL_WARN, 0);
    RUN(test_upload_codec);
    RUN(test_part_codec);
    RUN(test_id_valid);
    RUN(test_tables);
    return TEST_SUMMARY();
}
