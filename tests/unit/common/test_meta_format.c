/* test_meta_format.c - unit tests for common/meta.c's metadata format: recording it, the migration steps, refusals. */
#include <stdint.h>
#include <string.h>
#include <lmdb.h>
#include "testutil.h"
#include "siteutil.h"
#include "common/be.h"
#include "common/cksum.h"
#include "common/meta.h"

_Static_assert(sizeof(meta_migrations) / sizeof(meta_migrations[0]) == META_FORMAT_CURRENT, "one step per format");

/* Sets (or with del, removes) the recorded format, as an older or newer release would leave it. */
static int put_format(meta_t *m, uint64_t v, int del)
{
    MDB_txn *txn;
    static char name[] = "format_version"; /* the stored name of META_FORMAT_VERSION */
    MDB_val k = {sizeof(name) - 1, name};
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if ((del ? mdb_del(txn, m->state, &k, NULL) : meta_state_put(m, txn, META_FORMAT_VERSION, v)) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* A new environment is born at the current format; an empty one with no format is new, not old. */
static void test_new_env_is_current(void)
{
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    CHECK(site_env_fresh(&m, "new", dir, sizeof(dir)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), META_FORMAT_CURRENT);
    meta_close(&m);
}

/* A store with data and no format (written before formats were recorded) is upgraded by storaged's open. */
static void test_unversioned_upgrades(void)
{
    meta_t m;
    char dir[sizeof(site_tmp) + 32], err[512];
    CHECK(site_env_fresh(&m, "old", dir, sizeof(dir)) == 0);
    CHECK(site_append_puts(&m, 2, 10) == 0);
    CHECK(put_format(&m, 0, 1) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 0);
    meta_close(&m);
    /* repld neither opens nor upgrades it */
    CHECK(meta_open_env(&m, dir, 0, 0, err, sizeof(err)) == CIO_EPROTO);
    CHECK(strstr(err, "older than this repld understands (5): start storaged first") != NULL);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == CIO_EPROTO);
    CHECK(meta_open_env(&m, dir, 16u << 20, META_OPEN_CREATE, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), META_FORMAT_CURRENT);
    CHECK_EQ_INT(site_counter(&m, META_LOG_COUNT), 2);
    meta_close(&m);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == 0);
    meta_close(&m);
}

/* A newer format is refused by every opener, with what to do, and is left as it was. */
static void test_newer_refused(void)
{
    meta_t m;
    char dir[sizeof(site_tmp) + 32], err[512];
    CHECK(site_env_fresh(&m, "newer", dir, sizeof(dir)) == 0);
    CHECK(put_format(&m, META_FORMAT_CURRENT + 1, 0) == 0);
    meta_close(&m);
    CHECK(meta_open_env(&m, dir, 16u << 20, META_OPEN_CREATE, err, sizeof(err)) == CIO_EPROTO);
    CHECK(strstr(err, "metadata format 6 is newer than this storaged understands (5): run a newer ComIO, or restore the "
                      "metadata of this release") != NULL);
    CHECK(strstr(err, dir) != NULL);
    CHECK(m.env == NULL);
    CHECK(meta_open_env(&m, dir, 0, 0, err, sizeof(err)) == CIO_EPROTO);
    CHECK(strstr(err, "newer than this repld understands") != NULL);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == CIO_EPROTO);
}

/* ---- format 1 -> 2: object records gain an origin ---- */

/* Writes an object record as metadata format 1 wrote it: record format
 * `format` (1: written here, 2: applied from a primary), version, an extent,
 * size, ETag, mtime, content type, key. */
static int put_v1_object(meta_t *m, int format, const char *key, uint64_t version)
{
    uint8_t kb[META_OBJKEY_MAX], vb[1200], *p = vb;
    size_t klen = strlen(key);
    MDB_txn *txn;
    *p++ = (uint8_t)format;
    for (int f = 0; f < 4; f++) { /* version, off, alen, size */
        uint64_t v = f == 0 ? version : f == 3 ? 3 : 4096 * (uint64_t)f;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)(v >> (8 * i));
    }
    memset(p, 0xab, 16); /* etag */
    p += 16;
    memset(p, 0, 8); /* mtime */
    p[7] = 9;
    p += 8;
    *p++ = 0; /* content type "x/y" */
    *p++ = 3;
    memcpy(p, "x/y", 3);
    p += 3;
    *p++ = (uint8_t)(klen >> 8);
    *p++ = (uint8_t)klen;
    memcpy(p, key, klen);
    p += klen;
    MDB_val k = {meta_objkey(kb, "bkt", 3, key, klen), kb}, v = {(size_t)(p - vb), vb};
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if (mdb_put(txn, m->objects, &k, &v, 0) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

static int get_object(meta_t *m, const char *key, meta_obj_t *o)
{
    MDB_txn *txn;
    int ret;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    ret = meta_obj_get(m, txn, "bkt", 3, key, strlen(key), o);
    mdb_txn_abort(txn);
    return ret;
}

/* A format-1 store: its object records are rewritten with the origin of
 * their version (this site's for its own writes, "" for a primary's), the
 * legacy version (a seq) kept as it was; a key too long to be stored whole
 * too. Before the upgrade, the current decoder refuses the old records. */
static void test_format1_objects_upgrade(void)
{
    meta_t m;
    meta_obj_t o;
    char dir[sizeof(site_tmp) + 32], err[512], longkey[700];
    memset(longkey, 'L', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    CHECK(site_env_fresh(&m, "v1objects", dir, sizeof(dir)) == 0);
    CHECK(put_v1_object(&m, 1, "mine", 7) == 0);
    CHECK(put_v1_object(&m, 2, "theirs", 5) == 0);
    CHECK(put_v1_object(&m, 1, longkey, 8) == 0);
    CHECK(put_format(&m, 1, 0) == 0);
    CHECK_EQ_INT(get_object(&m, "mine", &o), CIO_EPROTO);
    meta_close(&m);
    CHECK(meta_open_site(&m, dir, 16u << 20, META_OPEN_CREATE, "site-x", err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), META_FORMAT_CURRENT);
    CHECK_EQ_INT(get_object(&m, "mine", &o), 0);
    CHECK_EQ_INT(o.version, 7);
    CHECK_EQ_STR(o.origin, "site-x");
    CHECK_EQ_INT(o.size, 3);
    CHECK_EQ_INT(o.off, 4096);
    CHECK_EQ_INT(o.alen, 8192);
    CHECK_EQ_INT(o.mtime_ms, 9);
    CHECK_EQ_STR(o.ctype, "x/y");
    CHECK_EQ_STR(o.key, "mine");
    CHECK(meta_obj_current(&o, 7, "site-x", 6)); /* a format-1 log record still pending names it */
    CHECK_EQ_INT(get_object(&m, "theirs", &o), 0);
    CHECK_EQ_INT(o.version, 5);
    CHECK_EQ_STR(o.origin, "");
    CHECK_EQ_INT(get_object(&m, longkey, &o), 0);
    CHECK_EQ_INT(o.version, 8);
    CHECK_EQ_STR(o.key, longkey);
    meta_close(&m);
    /* opened again: nothing more to do */
    CHECK(meta_open_site(&m, dir, 16u << 20, META_OPEN_CREATE, "site-x", err, sizeof(err)) == 0);
    CHECK_EQ_INT(get_object(&m, "mine", &o), 0);
    CHECK_EQ_STR(o.origin, "site-x");
    meta_close(&m);
}

/* ---- the migration framework, with steps of the test's own ---- */

static int put_object(meta_t *m, const char *key, const meta_obj_t *o)
{
    MDB_txn *txn;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if (meta_obj_put(m, txn, "bkt", 3, key, strlen(key), o, NULL) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* put_object with the block checksums of o->size bytes of `data` (meta_obj_put). */
static int put_object_sums(meta_t *m, const char *key, const meta_obj_t *o, const void *data)
{
    MDB_txn *txn;
    blocksum_calc_t c;
    int ret = -1;
    if (blocksum_calc_init(&c, o->size) != 0 || mdb_txn_begin(m->env, NULL, 0, &txn) != 0) {
        blocksum_calc_free(&c);
        return -1;
    }
    blocksum_calc_feed(&c, data, (size_t)o->size);
    if (meta_obj_put(m, txn, "bkt", 3, key, strlen(key), o, &c) != 0)
        mdb_txn_abort(txn);
    else
        ret = mdb_txn_commit(txn) == 0 ? 0 : -1;
    blocksum_calc_free(&c);
    return ret;
}

/* The raw "objects" value of key into out (cap bytes); its length, or 0 on failure. */
static size_t raw_object(meta_t *m, const char *key, uint8_t *out, size_t cap)
{
    uint8_t kb[META_OBJKEY_MAX];
    MDB_txn *txn;
    MDB_val k = {meta_objkey(kb, "bkt", 3, key, strlen(key)), kb}, v;
    size_t n = 0;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_get(txn, m->objects, &k, &v) == 0 && v.mv_size <= cap) {
        memcpy(out, v.mv_data, v.mv_size);
        n = v.mv_size;
    }
    mdb_txn_abort(txn);
    return n;
}

/* Object records with metadata (record format 5) read back whole, with and without a context; one without
 * metadata is still written as before (format 3 or 4) and reads as none; a record of format 5 cut short, with an
 * empty or an invalid blob is refused. */
static void test_object_metadata(void)
{
    static meta_obj_t o, back;
    static uint8_t raw[8192];
    objmeta_pair_t pairs[] = {{"cache-control", 13, "no-cache", 8}, {"x-amz-meta-k", 12, "v", 1}};
    size_t blen, n;
    meta_t m;
    char dir[sizeof(site_tmp) + 32];

    CHECK(site_env_fresh(&m, "objmeta", dir, sizeof(dir)) == 0);
    memset(&o, 0, sizeof(o));
    o.version = 5;
    o.size = 3;
    o.origin_len = 6;
    memcpy(o.origin, "site-a", 6);
    o.ctype_len = 3;
    memcpy(o.ctype, "x/y", 3);
    CHECK_EQ_INT(objmeta_encode(pairs, 2, o.meta, &blen, NULL), 0);
    o.meta_len = (uint16_t)blen;
    CHECK(put_object(&m, "with", &o) == 0);
    CHECK_EQ_INT(get_object(&m, "with", &back), 0);
    CHECK(back.meta_len == blen && memcmp(back.meta, o.meta, blen) == 0 && back.version == 5);
    CHECK(back.ctype_len == 3 && back.ctx.n == 0 && back.ctx.floor == 0);
    n = raw_object(&m, "with", raw, sizeof(raw));
    CHECK(n > 0 && raw[0] == 5);

    /* with a context too */
    vctx_add(&o.ctx, "site-b", 6, 3);
    CHECK(put_object(&m, "ctx", &o) == 0);
    CHECK_EQ_INT(get_object(&m, "ctx", &back), 0);
    CHECK(back.meta_len == blen && back.ctx.n == 1 && back.ctx.e[0].hlc == 3);

    /* without metadata: the format of before, read as none */
    vctx_init(&o.ctx);
    o.meta_len = 0;
    CHECK(put_object(&m, "none", &o) == 0);
    CHECK(raw_object(&m, "none", raw, sizeof(raw)) > 0 && raw[0] == 3);
    memset(&back, 0xee, sizeof(back));
    CHECK_EQ_INT(get_object(&m, "none", &back), 0);
    CHECK_EQ_INT(back.meta_len, 0);

    /* damaged format-5 records */
    n = raw_object(&m, "with", raw, sizeof(raw));
    for (size_t cut = 1; cut < n; cut++) {
        MDB_val v = {cut, raw};
        if (meta_obj_decode(&v, &back) != CIO_EPROTO)
            fprintf(stderr, "  a record cut at %zu of %zu decoded\n", cut, n);
        CHECK(meta_obj_decode(&v, &back) == CIO_EPROTO);
    }
    MDB_val v = {n, raw};
    CHECK_EQ_INT(meta_obj_decode(&v, &back), 0);
    raw[n - blen] = 'A'; /* the first pair's name: upper case */
    CHECK_EQ_INT(meta_obj_decode(&v, &back), CIO_EPROTO);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), META_FORMAT_CURRENT);
    meta_close(&m);
}

/* The object record of a multipart upload's object (format 6) keeps its part count and parts' MD5, with and
 * without metadata; cut short, with a part count of 0 or over 10,000, it is refused. */
static void test_object_multipart(void)
{
    static meta_obj_t o, back;
    static uint8_t raw[8192];
    objmeta_pair_t pair = {"x-amz-meta-k", 12, "v", 1};
    size_t blen, n;
    meta_t m;
    char dir[sizeof(site_tmp) + 32];

    CHECK(site_env_fresh(&m, "objmpu", dir, sizeof(dir)) == 0);
    memset(&o, 0, sizeof(o));
    o.version = 7;
    o.size = 11 << 20;
    o.origin_len = 6;
    memcpy(o.origin, "site-a", 6);
    memset(o.etag, 0x11, 16);
    o.mpu_parts = 3;
    memset(o.mpu_md5, 0x22, 16);
    CHECK(put_object(&m, "bare", &o) == 0);
    n = raw_object(&m, "bare", raw, sizeof(raw));
    CHECK(n > 0 && raw[0] == 6);
    memset(&back, 0xee, sizeof(back));
    CHECK_EQ_INT(get_object(&m, "bare", &back), 0);
    CHECK(back.mpu_parts == 3 && back.mpu_md5[0] == 0x22 && back.mpu_md5[15] == 0x22 && back.etag[0] == 0x11);
    CHECK_EQ_INT(back.meta_len, 0);
    for (size_t cut = 1; cut < n; cut++) {
        MDB_val v = {cut, raw};
        CHECK(meta_obj_decode(&v, &back) == CIO_EPROTO);
    }
    raw[n - 20] = raw[n - 19] = raw[n - 18] = raw[n - 17] = 0; /* a part count of 0 */
    MDB_val v = {n, raw};
    CHECK_EQ_INT(meta_obj_decode(&v, &back), CIO_EPROTO);
    raw[n - 18] = 0x27;
    raw[n - 17] = 0x11; /* 10,001 */
    CHECK_EQ_INT(meta_obj_decode(&v, &back), CIO_EPROTO);

    CHECK_EQ_INT(objmeta_encode(&pair, 1, o.meta, &blen, NULL), 0);
    o.meta_len = (uint16_t)blen;
    vctx_add(&o.ctx, "site-b", 6, 3);
    o.mpu_parts = 10000;
    CHECK(put_object(&m, "meta", &o) == 0);
    CHECK_EQ_INT(get_object(&m, "meta", &back), 0);
    CHECK(back.mpu_parts == 10000 && back.meta_len == blen && memcmp(back.meta, o.meta, blen) == 0 && back.ctx.n == 1);
    /* an object of a plain PUT: no multipart fields, the formats of before */
    o.mpu_parts = 0;
    memset(o.mpu_md5, 0, 16);
    CHECK(put_object(&m, "plain", &o) == 0);
    CHECK(raw_object(&m, "plain", raw, sizeof(raw)) > 0 && raw[0] == 5);
    memset(&back, 0xee, sizeof(back));
    CHECK_EQ_INT(get_object(&m, "plain", &back), 0);
    CHECK_EQ_INT(back.mpu_parts, 0);
    meta_close(&m);
}

/* A store of format 2 (the release before object metadata) opens, is upgraded to 3 without a record changing,
 * and its objects read as having no metadata. */
static void test_format2_upgrades_to_metadata(void)
{
    static meta_obj_t o, back;
    static uint8_t before[8192], after[8192];
    meta_t m;
    char dir[sizeof(site_tmp) + 32], err[512];
    CHECK(site_env_fresh(&m, "v2", dir, sizeof(dir)) == 0);
    memset(&o, 0, sizeof(o));
    o.version = 9;
    o.size = 1;
    o.origin_len = 1;
    o.origin[0] = 's';
    CHECK(put_object(&m, "old", &o) == 0);
    CHECK(put_format(&m, 2, 0) == 0);
    size_t n = raw_object(&m, "old", before, sizeof(before));
    CHECK(n > 0 && before[0] == 3);
    meta_close(&m);
    CHECK(meta_open_env(&m, dir, 0, 0, err, sizeof(err)) == CIO_EPROTO); /* repld: storaged upgrades first */
    CHECK(meta_open_site(&m, dir, 16u << 20, META_OPEN_CREATE, "s", err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), META_FORMAT_CURRENT);
    CHECK(raw_object(&m, "old", after, sizeof(after)) == n && memcmp(before, after, n) == 0);
    memset(&back, 0xee, sizeof(back));
    CHECK_EQ_INT(get_object(&m, "old", &back), 0);
    CHECK(back.version == 9 && back.meta_len == 0);
    meta_close(&m);
}

static int step_calls;

static int step_count(meta_t *m, MDB_txn *txn)
{
    step_calls++;
    return meta_state_add(m, txn, META_OBJECTS, 10);
}

static int step_fail(meta_t *m, MDB_txn *txn)
{
    step_calls++;
    if (meta_state_add(m, txn, META_OBJECTS, 1000) != 0) /* made, then rolled back with the step */
        return CIO_EDB;
    return CIO_EIO;
}

static void test_migrate_steps(void)
{
    static const meta_migration_t steps[] = {
        {"zero to one", NULL},
        {"one to two", step_count},
        {"two to three", step_count},
        {"three to four", step_fail},
    };
    meta_t m;
    char dir[sizeof(site_tmp) + 32], err[512];

    CHECK(site_env_fresh(&m, "steps", dir, sizeof(dir)) == 0);
    CHECK(put_format(&m, 0, 0) == 0);
    /* each step in order, each recording its version */
    step_calls = 0;
    CHECK(meta_format_migrate(&m, steps, 0, 2, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 2);
    CHECK_EQ_INT(step_calls, 1);
    CHECK_EQ_INT(site_counter(&m, META_OBJECTS), 10);
    /* resumes where it stopped; a failing step keeps the last completed format and none of its own changes */
    step_calls = 0;
    CHECK(meta_format_migrate(&m, steps, 2, 4, err, sizeof(err)) == CIO_EIO);
    CHECK_EQ_INT(step_calls, 2);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 3);
    CHECK_EQ_INT(site_counter(&m, META_OBJECTS), 20);
    CHECK(strstr(err, "from 3 to 4 (three to four)") != NULL);
    CHECK(strstr(err, "stays at format 3") != NULL);
    /* nothing to do */
    CHECK(meta_format_migrate(&m, steps, 3, 3, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 3);
    meta_close(&m);
}

/* A format-4 store has no "blocksums" table: repld refuses it, storaged's
 * step to 5 creates it, and its objects read as having no checksums. */
static void test_format4_gets_blocksums(void)
{
    meta_t m;
    MDB_txn *txn;
    MDB_dbi dbi;
    meta_obj_t o;
    blocksum_rec_t r;
    char dir[sizeof(site_tmp) + 32], err[512];

    CHECK(site_env_fresh(&m, "v4", dir, sizeof(dir)) == 0);
    memset(&o, 0, sizeof(o));
    o.version = 5;
    o.size = 3;
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "old", 3, &o, NULL) == 0);
    CHECK(mdb_drop(txn, m.blocksums, 1) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK(put_format(&m, 4, 0) == 0);
    meta_close(&m);
    CHECK(meta_open_env(&m, dir, 0, 0, err, sizeof(err)) == CIO_EPROTO);
    CHECK(meta_open_env(&m, dir, 16u << 20, META_OPEN_CREATE, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 5);
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(mdb_dbi_open(txn, "blocksums", 0, &dbi) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "old", 3, &o) == 0 && o.version == 5);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "old", 3, &r) == CIO_ENOTFOUND);
    mdb_txn_abort(txn);
    meta_close(&m);
}

/* The checksums follow the object record: written with it, replaced with it, removed with it; one block's CRC
 * inside it, and a small object's record from before inline CRCs still read. */
static void test_blocksums_follow_object(void)
{
    meta_t m;
    MDB_txn *txn;
    enum { BIG = BLOCKSUM_INLINE_MAX + 100 };
    static uint8_t big[BIG];
    meta_obj_t o, back;
    blocksum_rec_t r;
    blocksum_view_t v;
    blocksum_calc_t sums, big_sums;
    uint64_t n = 9, bad = 0;
    char dir[sizeof(site_tmp) + 32];

    CHECK(site_env_fresh(&m, "sums", dir, sizeof(dir)) == 0);
    memset(&o, 0, sizeof(o));
    o.version = 7;
    o.off = 4096;
    o.size = BIG;
    CHECK(blocksum_calc_init(&sums, BIG) == 0);
    blocksum_calc_feed(&sums, big, BIG);
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    /* more than one block: a record in "blocksums" */
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, &sums) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k", 1, &r) == 0 && blocksum_matches(&r, 7, "", 0, 4096, BIG) && r.nblocks == 2);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "k", 1, &back) == 0 && !back.crc_inline);
    CHECK(meta_sums_view(&m, txn, "bkt", 3, "k", 1, &back, 0, BIG, &v) == 0 && v.n == 2 && v.crcs != NULL);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 1);
    /* the same bytes' record rewritten: kept */
    CHECK(meta_obj_update(&m, txn, "bkt", 3, "k", 1, &o) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k", 1, &r) == 0);
    /* sums for another size are refused */
    o.size = 4;
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, &sums) == CIO_EINVAL);
    /* new bytes without checksums: the old ones go */
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, NULL) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k", 1, &r) == CIO_ENOTFOUND);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "k", 1, &back) == 0 && !back.crc_inline);
    CHECK(meta_sums_view(&m, txn, "bkt", 3, "k", 1, &back, 0, 4, &v) == CIO_ENOTFOUND);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 0);

    /* one block at most: the CRC in the object record, no record in "blocksums" */
    blocksum_calc_free(&sums);
    CHECK(blocksum_calc_init(&sums, 3) == 0);
    blocksum_calc_feed(&sums, "abc", 3);
    o.size = 3;
    o.crc_inline = 0; /* ignored by put: the sums decide */
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, &sums) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k", 1, &r) == CIO_ENOTFOUND);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "k", 1, &back) == 0 && back.crc_inline && back.crc32c == cksum_crc32c(0, "abc", 3));
    CHECK(meta_sums_view(&m, txn, "bkt", 3, "k", 1, &back, 0, 3, &v) == 0 && v.n == 1 && v.crcs == NULL);
    CHECK(blocksum_verify(&v, 0, "abc", 3, &bad) == 0);
    CHECK(blocksum_verify(&v, 0, "abd", 3, &bad) == CIO_EIO && bad == 0);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 1);
    /* rewritten as read (a new context): the CRC stays, counted once */
    CHECK(meta_obj_update(&m, txn, "bkt", 3, "k", 1, &back) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "k", 1, &back) == 0 && back.crc_inline);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 1);
    /* a big object over a small one, and back */
    o.size = BIG;
    CHECK(blocksum_calc_init(&big_sums, BIG) == 0);
    blocksum_calc_feed(&big_sums, big, BIG);
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, &big_sums) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "k", 1, &back) == 0 && !back.crc_inline);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 1);
    o.size = 3;
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k", 1, &o, &sums) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k", 1, &r) == CIO_ENOTFOUND);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 1);
    /* an empty object: an inline CRC of no block */
    blocksum_calc_t none;
    CHECK(blocksum_calc_init(&none, 0) == 0);
    o.size = 0;
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "empty", 5, &o, &none) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt", 3, "empty", 5, &back) == 0 && back.crc_inline);
    CHECK(meta_sums_view(&m, txn, "bkt", 3, "empty", 5, &back, 0, 0, &v) == 0 && v.n == 0);
    blocksum_calc_free(&none);
    o.size = 3;
    CHECK(meta_obj_put(&m, txn, "bkt", 3, "k2", 2, &o, &sums) == 0);
    CHECK(meta_obj_put(&m, txn, "bkt2", 4, "k", 1, &o, &sums) == 0);
    o.size = BIG;
    CHECK(meta_obj_put(&m, txn, "bkt2", 4, "big", 3, &o, &big_sums) == 0);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 5);
    CHECK(meta_obj_del(&m, txn, "bkt", 3, "k", 1) == 0);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 4);
    CHECK(meta_obj_del_bucket(&m, txn, "bkt", 3) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt", 3, "k2", 2, &r) == CIO_ENOTFOUND);
    CHECK(meta_sums_get(&m, txn, "bkt2", 4, "big", 3, &r) == 0);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 2);

    /* a store written before inline CRCs: a small object with a record in
     * "blocksums" and none in its object record still verifies by its record */
    uint8_t kb[META_OBJKEY_MAX], rec[64];
    uint32_t crc = cksum_crc32c(0, "xyz", 3);
    o.size = 3;
    CHECK(meta_obj_put(&m, txn, "bkt2", 4, "old", 3, &o, NULL) == 0);
    MDB_val key = {meta_objkey(kb, "bkt2", 4, "old", 3), kb};
    MDB_val val = {blocksum_encode(rec, BLOCKSUM_SHIFT, 7, "", 0, 4096, 3, &crc), rec};
    CHECK(val.mv_size > 0 && mdb_put(txn, m.blocksums, &key, &val, 0) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt2", 4, "old", 3, &back) == 0 && !back.crc_inline);
    CHECK(meta_sums_view(&m, txn, "bkt2", 4, "old", 3, &back, 0, 3, &v) == 0 && v.n == 1 && v.crcs != NULL);
    CHECK(blocksum_verify(&v, 0, "xyz", 3, &bad) == 0);
    CHECK(blocksum_verify(&v, 0, "xyZ", 3, &bad) == CIO_EIO);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 3);
    /* rewritten with checksums: inline now, the old record gone */
    CHECK(meta_obj_put(&m, txn, "bkt2", 4, "old", 3, &o, &sums) == 0);
    CHECK(meta_sums_get(&m, txn, "bkt2", 4, "old", 3, &r) == CIO_ENOTFOUND);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 3);
    /* the scrub's fill-in of a small object puts its CRC inline */
    CHECK(meta_obj_put(&m, txn, "bkt2", 4, "fill", 4, &o, NULL) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt2", 4, "fill", 4, &back) == 0 && !back.crc_inline);
    CHECK(meta_sums_put(&m, txn, "bkt2", 4, "fill", 4, &back, &sums) == 0);
    CHECK(meta_obj_get(&m, txn, "bkt2", 4, "fill", 4, &back) == 0 && back.crc_inline && back.size == 3);
    CHECK(meta_sums_count(&m, txn, &n) == 0 && n == 4);
    mdb_txn_abort(txn);
    blocksum_calc_free(&sums);
    blocksum_calc_free(&big_sums);
    meta_close(&m);
}

/* An object of one block keeps its CRC32C at the end of its record, the
 * format byte flagged, in every record format from 3; such a record cut
 * short, flagged on an object over one block or on a format-1 record, is
 * refused. */
static void test_object_inline_crc(void)
{
    static meta_obj_t o, back;
    static uint8_t raw[8192];
    objmeta_pair_t pair = {"x-amz-meta-k", 12, "v", 1};
    size_t blen = 0, n;
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    static const char *keys[] = {"plain", "ctx", "meta", "mpu"};

    CHECK(site_env_fresh(&m, "objcrc", dir, sizeof(dir)) == 0);
    for (int f = 0; f < 4; f++) {
        memset(&o, 0, sizeof(o));
        o.version = 9;
        o.size = 5;
        o.origin_len = 6;
        memcpy(o.origin, "site-a", 6);
        if (f == 1)
            vctx_add(&o.ctx, "site-b", 6, 3);
        if (f == 2) {
            CHECK_EQ_INT(objmeta_encode(&pair, 1, o.meta, &blen, NULL), 0);
            o.meta_len = (uint16_t)blen;
        }
        if (f == 3)
            o.mpu_parts = 2;
        CHECK(put_object_sums(&m, keys[f], &o, "hello") == 0);
        n = raw_object(&m, keys[f], raw, sizeof(raw));
        CHECK(n > 4 && raw[0] == (0x80 | (3 + f)));
        CHECK(be_get(raw + n - 4, 4) == cksum_crc32c(0, "hello", 5));
        memset(&back, 0xee, sizeof(back));
        CHECK_EQ_INT(get_object(&m, keys[f], &back), 0);
        CHECK(back.crc_inline == 1 && back.crc32c == cksum_crc32c(0, "hello", 5) && back.size == 5 && back.version == 9);
        CHECK(back.ctx.n == (f == 1) && back.meta_len == (f == 2 ? blen : 0) && back.mpu_parts == (f == 3 ? 2u : 0u));
        for (size_t cut = 1; cut < n; cut++) {
            MDB_val v = {cut, raw};
            if (meta_obj_decode(&v, &back) != CIO_EPROTO)
                fprintf(stderr, "  a record of format %d cut at %zu of %zu decoded\n", 3 + f, cut, n);
            CHECK(meta_obj_decode(&v, &back) == CIO_EPROTO);
        }
        MDB_val v = {n, raw};
        be_put(raw + 1 + 24, BLOCKSUM_INLINE_MAX + 1, 8); /* an object over one block cannot have it inline */
        CHECK_EQ_INT(meta_obj_decode(&v, &back), CIO_EPROTO);
        be_put(raw + 1 + 24, BLOCKSUM_INLINE_MAX, 8);
        CHECK_EQ_INT(meta_obj_decode(&v, &back), 0);
        raw[0] = 0x80 | 1; /* not on a format-1 record */
        CHECK_EQ_INT(meta_obj_decode(&v, &back), CIO_EPROTO);
    }
    /* without checksums: unflagged, read as none */
    o.size = 5;
    CHECK(put_object(&m, "bare", &o) == 0);
    n = raw_object(&m, "bare", raw, sizeof(raw));
    CHECK(n > 0 && (raw[0] & 0x80) == 0);
    CHECK_EQ_INT(get_object(&m, "bare", &back), 0);
    CHECK(back.crc_inline == 0);
    meta_close(&m);
}

int main(void)
{
    if (site_tmp_make() != 0)
        return 1;
    RUN(test_new_env_is_current);
    RUN(test_format4_gets_blocksums);
    RUN(test_blocksums_follow_object);
    RUN(test_object_inline_crc);
    RUN(test_unversioned_upgrades);
    RUN(test_newer_refused);
    RUN(test_format1_objects_upgrade);
    RUN(test_migrate_steps);
    RUN(test_object_metadata);
    RUN(test_object_multipart);
    RUN(test_format2_upgrades_to_metadata);
    site_tmp_remove();
    return TEST_SUMMARY();
}
