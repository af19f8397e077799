/* test_conflict.c - unit tests for common/conflict.c's records: every format round-trips, records of the
 * formats written before checksums were kept still read (as losers without checksums), and a record whose
 * checksums do not fit its loser is refused, on the way in and on the way out. */
#include <stdint.h>
#include <string.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include "testutil.h"
#include "siteutil.h"
#include "common/be.h"
#include "common/blocksum.h"
#include "common/conflict.h"

/* A PUT loser of key k, `size` bytes at extent 4096, from site "a", beaten by site "b". */
static conflict_t loser(const char *k, uint64_t hlc, uint64_t size)
{
    conflict_t c;
    memset(&c, 0, sizeof(c));
    c.loser = meta_ver_make(hlc, "a", 1);
    c.winner = meta_ver_make(hlc + 1, "b", 1);
    c.off = 4096;
    c.alen = size;
    c.size = size;
    memset(c.etag, 0x5a, 16);
    c.mtime_ms = 1700000000000;
    c.ctype_len = (uint16_t)snprintf(c.ctype, sizeof(c.ctype), "text/plain");
    c.time_ms = 1700000000001;
    c.key_len = (uint16_t)snprintf(c.key, sizeof(c.key), "%s", k);
    return c;
}

static int put(meta_t *m, const conflict_t *c)
{
    MDB_txn *txn;
    int ret;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if ((ret = conflict_put(m, txn, "bkt", 3, c)) != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* The table key of (k, hlc, origin) in bucket "bkt", as docs/storage.md gives it. */
static size_t table_key(uint8_t *out, const char *k, uint64_t hlc, const char *origin)
{
    memcpy(out, "bkt", 4); /* with its NUL */
    EVP_Digest(k, strlen(k), out + 4, NULL, EVP_md5(), NULL);
    be_put(out + 20, hlc, 8);
    memcpy(out + 28, origin, strlen(origin));
    return 28 + strlen(origin);
}

/* Writes value v[0..n) as the record of (k, hlc, "a") behind conflict_put's back: 0 or -1. */
static int put_raw(meta_t *m, const char *k, uint64_t hlc, const uint8_t *v, size_t n)
{
    uint8_t kb[64];
    MDB_txn *txn;
    MDB_val key = {table_key(kb, k, hlc, "a"), kb}, val = {n, (void *)v};
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    if (mdb_put(txn, m->conflicts, &key, &val, 0) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* The stored format byte of (k, hlc, "a"), or -1. */
static int raw_format(meta_t *m, const char *k, uint64_t hlc)
{
    uint8_t kb[64];
    MDB_txn *txn;
    MDB_val key = {table_key(kb, k, hlc, "a"), kb}, v;
    int f = -1;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (mdb_get(txn, m->conflicts, &key, &v) == 0 && v.mv_size > 0)
        f = ((const uint8_t *)v.mv_data)[0];
    mdb_txn_abort(txn);
    return f;
}

/* Reads (k, hlc, "a") back and checks `want`'s bytes buf[0..size) against the checksums it keeps: 0 when they
 * verify, 1 when the record keeps none, CIO_EIO when they fail, or the read's error. *out gets the record. */
static int get_and_verify(meta_t *m, const char *k, uint64_t hlc, const uint8_t *buf, conflict_t *out)
{
    MDB_txn *txn;
    uint64_t bad;
    int ret;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    ret = conflict_get(m, txn, "bkt", 3, k, strlen(k), hlc, "a", 1, out);
    if (ret == 0)
        ret = !out->has_sums ? 1 : blocksum_verify(&out->sums, 0, buf, (size_t)out->size, &bad);
    mdb_txn_abort(txn);
    return ret;
}

/* The fields format 1 holds, equal. */
static int same_base(const conflict_t *a, const conflict_t *b)
{
    return a->loser.hlc == b->loser.hlc && strcmp(a->loser.origin, b->loser.origin) == 0 && a->winner.hlc == b->winner.hlc &&
           strcmp(a->winner.origin, b->winner.origin) == 0 && a->off == b->off && a->alen == b->alen && a->size == b->size &&
           memcmp(a->etag, b->etag, 16) == 0 && a->mtime_ms == b->mtime_ms && strcmp(a->ctype, b->ctype) == 0 &&
           a->time_ms == b->time_ms && a->deleted == b->deleted && strcmp(a->key, b->key) == 0;
}

static const uint8_t META[] = "\x0c"
                              "x-amz-meta-w"
                              "\x00\x01"
                              "a";

/* Every kind of record round-trips, in the format that kind is written in: 1 (no metadata, no checksums; a
 * DELETE), 2 (metadata), 3 (checksums: one inline CRC, many blocks, none for an empty object; with metadata
 * or without). The checksums read back verify the loser's bytes, and fail them once a byte changes. */
static void test_formats_round_trip(void)
{
    static uint8_t big[200000 + 7], small[5000];
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    conflict_t c, back;
    blocksum_calc_t calc;
    uint8_t *owned;

    CHECK(site_env_fresh(&m, "rt", dir, sizeof(dir)) == 0);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + (i >> 9));
    memset(small, 's', sizeof(small));

    c = loser("plain", 10, sizeof(small));
    CHECK(put(&m, &c) == 0);
    CHECK_EQ_INT(raw_format(&m, "plain", 10), 1);
    CHECK_EQ_INT(get_and_verify(&m, "plain", 10, small, &back), 1);
    CHECK(same_base(&c, &back) && back.meta_len == 0);

    c = loser("meta", 11, sizeof(small));
    c.meta_len = sizeof(META) - 1;
    memcpy(c.meta, META, c.meta_len);
    CHECK(put(&m, &c) == 0);
    CHECK_EQ_INT(raw_format(&m, "meta", 11), 2);
    CHECK_EQ_INT(get_and_verify(&m, "meta", 11, small, &back), 1);
    CHECK(same_base(&c, &back) && back.meta_len == c.meta_len && memcmp(back.meta, META, c.meta_len) == 0);

    c = loser("del", 12, 0);
    c.deleted = 1;
    c.alen = 0;
    CHECK(put(&m, &c) == 0);
    CHECK_EQ_INT(raw_format(&m, "del", 12), 1);
    CHECK_EQ_INT(get_and_verify(&m, "del", 12, small, &back), 1);
    CHECK(same_base(&c, &back));

    /* one block: the inline CRC, kept in the view itself */
    c = loser("one", 13, sizeof(small));
    CHECK(blocksum_calc_init(&calc, sizeof(small)) == 0);
    blocksum_calc_feed(&calc, small, sizeof(small));
    CHECK(conflict_sums_from_calc(&c, &calc, &owned) == 0);
    CHECK(owned == NULL && c.has_sums && c.sums.crcs == NULL && c.sums.n == 1);
    blocksum_calc_free(&calc);
    CHECK(put(&m, &c) == 0);
    CHECK_EQ_INT(raw_format(&m, "one", 13), 3);
    CHECK_EQ_INT(get_and_verify(&m, "one", 13, small, &back), 0);
    CHECK(same_base(&c, &back) && back.meta_len == 0 && back.sums.shift == BLOCKSUM_INLINE_SHIFT && back.sums.n == 1);
    small[4999] ^= 1;
    CHECK_EQ_INT(get_and_verify(&m, "one", 13, small, &back), CIO_EIO);
    small[4999] ^= 1;

    /* many blocks, the last partial, with metadata */
    c = loser("many", 14, sizeof(big));
    c.meta_len = sizeof(META) - 1;
    memcpy(c.meta, META, c.meta_len);
    CHECK(blocksum_calc_init(&calc, sizeof(big)) == 0);
    blocksum_calc_feed(&calc, big, 100000);
    blocksum_calc_feed(&calc, big + 100000, sizeof(big) - 100000);
    CHECK(conflict_sums_from_calc(&c, &calc, &owned) == 0);
    CHECK(owned != NULL && c.sums.crcs == owned && c.sums.n == 4);
    blocksum_calc_free(&calc);
    CHECK(put(&m, &c) == 0);
    free(owned);
    CHECK_EQ_INT(raw_format(&m, "many", 14), 3);
    CHECK_EQ_INT(get_and_verify(&m, "many", 14, big, &back), 0);
    CHECK(same_base(&c, &back) && back.meta_len == c.meta_len && memcmp(back.meta, META, c.meta_len) == 0);
    CHECK(back.sums.shift == BLOCKSUM_SHIFT && back.sums.n == 4 && back.sums.first == 0 && back.sums.size == sizeof(big));
    big[3 * BLOCKSUM_BLOCK + 2] ^= 0x40; /* the partial last block */
    CHECK_EQ_INT(get_and_verify(&m, "many", 14, big, &back), CIO_EIO);
    big[3 * BLOCKSUM_BLOCK + 2] ^= 0x40;

    /* an empty object: checksums of no blocks */
    c = loser("empty", 15, 0);
    c.alen = 0;
    CHECK(blocksum_calc_init(&calc, 0) == 0);
    CHECK(conflict_sums_from_calc(&c, &calc, &owned) == 0 && owned == NULL && c.sums.n == 0);
    blocksum_calc_free(&calc);
    CHECK(put(&m, &c) == 0);
    CHECK_EQ_INT(raw_format(&m, "empty", 15), 3);
    CHECK_EQ_INT(get_and_verify(&m, "empty", 15, big, &back), 0);
    CHECK(back.has_sums && back.sums.n == 0);

    /* the walks read them too; a removal takes the checksums with the record, and frees the extent */
    {
        MDB_txn *txn;
        alloc_extent_t ext;
        CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
        CHECK_EQ_INT(conflict_del(&m, txn, "bkt", 3, "many", 4, 14, "a", 1, &ext), 0);
        CHECK(ext.off == 4096 && ext.len == sizeof(big));
        CHECK_EQ_INT(conflict_get(&m, txn, "bkt", 3, "many", 4, 14, "a", 1, &back), CIO_ENOTFOUND);
        CHECK(mdb_txn_commit(txn) == 0);
    }
    meta_close(&m);
}

static int count_sums(void *arg, const char *b, size_t blen, const conflict_t *c)
{
    int *n = arg;
    n[0]++;
    n[1] += c->has_sums;
    return 0;
}

/* conflict_list decodes every format, and says which records keep checksums. */
static void test_list_every_format(void)
{
    static uint8_t body[70000];
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    conflict_t c;
    blocksum_calc_t calc;
    uint8_t *owned, pos[CONFLICT_POS_MAX];
    size_t pos_len = 0;
    int n[2] = {0, 0}, more = 0;
    MDB_txn *txn;

    CHECK(site_env_fresh(&m, "list", dir, sizeof(dir)) == 0);
    c = loser("k1", 20, sizeof(body));
    CHECK(put(&m, &c) == 0);
    c = loser("k2", 21, sizeof(body));
    CHECK(blocksum_calc_init(&calc, sizeof(body)) == 0);
    blocksum_calc_feed(&calc, body, sizeof(body));
    CHECK(conflict_sums_from_calc(&c, &calc, &owned) == 0);
    blocksum_calc_free(&calc);
    CHECK(put(&m, &c) == 0);
    free(owned);
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK_EQ_INT(conflict_list(&m, txn, "bkt", 3, pos, &pos_len, 10, count_sums, n, &more), 0);
    mdb_txn_abort(txn);
    CHECK(n[0] == 2 && n[1] == 1 && more == 0);
    meta_close(&m);
}

/* The record as a release before checksums were kept wrote it (format 1; format 2 with metadata), byte by byte
 * as docs/storage.md gives it: it reads, without checksums (its loser is served unverified). */
static void test_old_formats_read(void)
{
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    uint8_t v[512], *p;
    conflict_t back;

    CHECK(site_env_fresh(&m, "old", dir, sizeof(dir)) == 0);
    for (int format = 1; format <= 2; format++) {
        p = v;
        *p++ = (uint8_t)format;
        be_put(p, 30, 8);         /* loser version */
        be_put(p + 8, 31, 8);     /* winner version */
        be_put(p + 16, 1234, 8);  /* time recorded */
        be_put(p + 24, 8192, 8);  /* offset */
        be_put(p + 32, 4096, 8);  /* allocated length */
        be_put(p + 40, 4000, 8);  /* size */
        memset(p + 48, 0xee, 16); /* ETag */
        be_put(p + 64, 999, 8);   /* mtime */
        p[72] = 0;                /* flags */
        p += 73;
        be_put(p, 3, 2);
        memcpy(p + 2, "a/b", 3);
        p += 5;
        *p++ = 1;
        *p++ = 'a'; /* loser origin */
        *p++ = 1;
        *p++ = 'b'; /* winner origin */
        be_put(p, 3, 2);
        memcpy(p + 2, "old", 3);
        p += 5;
        if (format == 2) {
            be_put(p, sizeof(META) - 1, 2);
            memcpy(p + 2, META, sizeof(META) - 1);
            p += 2 + sizeof(META) - 1;
        }
        CHECK(put_raw(&m, "old", 30, v, (size_t)(p - v)) == 0);
        CHECK_EQ_INT(get_and_verify(&m, "old", 30, v, &back), 1);
        CHECK(back.loser.hlc == 30 && strcmp(back.loser.origin, "a") == 0 && back.winner.hlc == 31 && back.off == 8192 &&
              back.alen == 4096 && back.size == 4000 && back.etag[15] == 0xee && back.mtime_ms == 999 &&
              strcmp(back.ctype, "a/b") == 0 && strcmp(back.key, "old") == 0 && !back.deleted && back.time_ms == 1234);
        CHECK_EQ_INT(back.meta_len, format == 2 ? sizeof(META) - 1 : 0);
        CHECK(!back.has_sums);
        /* the same bytes with a byte too many are refused, not misread */
        *p++ = 0;
        CHECK(put_raw(&m, "old", 30, v, (size_t)(p - v)) == 0);
        CHECK_EQ_INT(get_and_verify(&m, "old", 30, v, &back), CIO_EPROTO);
    }
    meta_close(&m);
}

/* Checksums that do not fit the loser are refused by conflict_put, and a stored record whose checksums do not
 * fit (too few or too many CRCs, a block size out of range, checksums on a DELETE) does not decode, nor one
 * whose flags have a bit besides the DELETE's. */
static void test_bad_sums_refused(void)
{
    static uint8_t body[150000];
    meta_t m;
    char dir[sizeof(site_tmp) + 32];
    conflict_t c, back;
    blocksum_calc_t calc;
    uint8_t *owned;
    uint8_t kb[64];
    MDB_txn *txn;
    MDB_val key, v;
    uint8_t good[2048];
    size_t good_len;

    CHECK(site_env_fresh(&m, "bad", dir, sizeof(dir)) == 0);
    c = loser("k", 40, sizeof(body));
    CHECK(blocksum_calc_init(&calc, sizeof(body)) == 0);
    blocksum_calc_feed(&calc, body, sizeof(body));
    CHECK(conflict_sums_from_calc(&c, &calc, &owned) == 0);
    /* another size's checksums */
    conflict_t other = loser("k", 40, sizeof(body) + 1);
    uint8_t *o2;
    CHECK_EQ_INT(conflict_sums_from_calc(&other, &calc, &o2), CIO_EINVAL);
    CHECK(!other.has_sums && o2 == NULL);
    blocksum_calc_free(&calc);
    c.sums.n--;
    CHECK_EQ_INT(put(&m, &c), CIO_EINVAL);
    c.sums.n++;
    c.sums.first = 1;
    CHECK_EQ_INT(put(&m, &c), CIO_EINVAL);
    c.sums.first = 0;
    c.deleted = 1;
    CHECK_EQ_INT(put(&m, &c), CIO_EINVAL);
    c.deleted = 0;
    CHECK(put(&m, &c) == 0);
    free(owned);

    /* the stored value, edited */
    CHECK(mdb_txn_begin(m.env, NULL, MDB_RDONLY, &txn) == 0);
    key = (MDB_val){table_key(kb, "k", 40, "a"), kb};
    CHECK(mdb_get(txn, m.conflicts, &key, &v) == 0 && v.mv_size <= sizeof(good));
    good_len = v.mv_size;
    memcpy(good, v.mv_data, good_len);
    mdb_txn_abort(txn);
    CHECK_EQ_INT(good[0], 3);
    CHECK_EQ_INT(good[good_len - 13], BLOCKSUM_SHIFT);    /* the shift, then three CRCs to the end */
    CHECK(put_raw(&m, "k", 40, good, good_len - 4) == 0); /* a CRC short */
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    memcpy(good + good_len, "\0\0\0\0", 4);
    CHECK(put_raw(&m, "k", 40, good, good_len + 4) == 0); /* a CRC too many */
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    CHECK(put_raw(&m, "k", 40, good, good_len - 13) == 0); /* no checksums at all */
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    good[good_len - 13] = BLOCKSUM_SHIFT_MIN - 1;
    CHECK(put_raw(&m, "k", 40, good, good_len) == 0);
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    good[good_len - 13] = BLOCKSUM_SHIFT;
    good[73] = 1; /* flags: a DELETE, which has no bytes to check */
    CHECK(put_raw(&m, "k", 40, good, good_len) == 0);
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    good[73] = 2; /* flags: a bit no writer sets (a record has one spelling) */
    CHECK(put_raw(&m, "k", 40, good, good_len) == 0);
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), CIO_EPROTO);
    good[73] = 0;
    CHECK(put_raw(&m, "k", 40, good, good_len) == 0);
    CHECK_EQ_INT(get_and_verify(&m, "k", 40, body, &back), 0);
    meta_close(&m);
}

int main(void)
{
    (void)site_append_puts; /* siteutil.h helpers this file has no use for */
    (void)site_counter;
    if (site_tmp_make() != 0)
        return 1;
    RUN(test_formats_round_trip);
    RUN(test_list_every_format);
    RUN(test_old_formats_read);
    RUN(test_bad_sums_refused);
    site_tmp_remove();
    return TEST_SUMMARY();
}
