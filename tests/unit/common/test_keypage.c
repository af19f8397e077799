/* test_keypage.c - unit tests of what a full sync reads from a site's
 * environment: a bucket's keys with their tombstones in key order
 * (meta_key_page, common/meta.c), the store identity, and the repl_sync
 * records (common/syncrec.c). */
#include "common/meta.h"
#include "common/syncrec.h"
#include "testutil.h"
#include "siteutil.h"

static int put_obj(meta_t *m, MDB_txn *txn, const char *b, const char *k, uint64_t v)
{
    meta_obj_t o;
    memset(&o, 0, sizeof(o));
    o.version = v;
    o.size = v % 100;
    o.origin_len = 6;
    memcpy(o.origin, "site-a", 7);
    return meta_obj_put(m, txn, b, strlen(b), k, strlen(k), &o, NULL);
}

static int put_tomb(meta_t *m, MDB_txn *txn, const char *b, const char *k, uint64_t v)
{
    meta_tomb_t t;
    memset(&t, 0, sizeof(t));
    t.version = meta_ver_make(v, "site-a", 6);
    return meta_tomb_put(m, txn, b, strlen(b), k, strlen(k), &t);
}

/* Every key of bucket b, page by page of `max`, as "k:o" or "k:t" joined by spaces. */
static void walk(meta_t *m, const char *b, size_t max, char *out, size_t cap, int *pages)
{
    char after[LOGREC_KEY_MAX + 1] = "";
    size_t alen = 0, used = 0;
    int more = 1;
    MDB_txn *txn;

    out[0] = '\0';
    *pages = 0;
    while (more && *pages < 1000) {
        meta_entry_t *page;
        size_t n;
        CHECK_EQ_INT(mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn), 0);
        CHECK_EQ_INT(meta_key_page(m, txn, b, strlen(b), after, alen, max, &page, &n, &more), 0);
        mdb_txn_abort(txn);
        (*pages)++;
        CHECK(n <= 2 * max);
        for (size_t i = 0; i < n; i++)
            used +=
                (size_t)snprintf(out + used, cap - used, "%s%s:%c", used ? " " : "", page[i].obj.key, page[i].deleted ? 't' : 'o');
        if (n > 0) {
            alen = page[n - 1].obj.key_len;
            memcpy(after, page[n - 1].obj.key, alen);
        }
        free(page);
    }
}

static void test_key_page(void)
{
    meta_t m;
    char dir[256], got[4096];
    MDB_txn *txn;
    int pages;

    CHECK_EQ_INT(site_env_fresh(&m, "keypage", dir, sizeof(dir)), 0);
    CHECK_EQ_INT(mdb_txn_begin(m.env, NULL, 0, &txn), 0);
    CHECK_EQ_INT(put_obj(&m, txn, "bk", "a", 5), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "b", 6), 0);
    CHECK_EQ_INT(put_obj(&m, txn, "bk", "c", 7), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "d", 8), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "e", 9), 0);
    CHECK_EQ_INT(put_obj(&m, txn, "bk", "f", 10), 0);
    /* a key with both: the later version is its state */
    CHECK_EQ_INT(put_obj(&m, txn, "bk", "g", 11), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "g", 3), 0);
    CHECK_EQ_INT(put_obj(&m, txn, "bk", "h", 2), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "h", 12), 0);
    /* the bucket's own tombstone (empty key) and other buckets are not listed */
    CHECK_EQ_INT(put_tomb(&m, txn, "bk", "", 13), 0);
    CHECK_EQ_INT(put_obj(&m, txn, "bj", "z", 1), 0);
    CHECK_EQ_INT(put_tomb(&m, txn, "bl", "a", 1), 0);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    static const char want[] = "a:o b:t c:o d:t e:t f:o g:o h:t";
    for (size_t max = 1; max <= 10; max++) {
        walk(&m, "bk", max, got, sizeof(got), &pages);
        CHECK_EQ_STR(got, want);
    }
    walk(&m, "nobucket", 4, got, sizeof(got), &pages);
    CHECK_EQ_STR(got, "");
    CHECK_EQ_INT(pages, 1);
    meta_close(&m);
}

/* Keys longer than the objects table stores whole share a prefix and sort by hash there: still in key order. */
static void test_key_page_long_keys(void)
{
    meta_t m;
    char dir[256], got[65536], want[65536] = "";
    char key[LOGREC_KEY_MAX + 1];
    MDB_txn *txn;
    size_t used = 0;
    int pages;

    CHECK_EQ_INT(site_env_fresh(&m, "keypage-long", dir, sizeof(dir)), 0);
    CHECK_EQ_INT(mdb_txn_begin(m.env, NULL, 0, &txn), 0);
    memset(key, 'x', 600);
    for (int i = 0; i < 12; i++) {
        snprintf(key + 600, sizeof(key) - 600, "%02d", i);
        CHECK_EQ_INT(i % 3 == 0 ? put_tomb(&m, txn, "bk", key, 100 + i) : put_obj(&m, txn, "bk", key, 100 + i), 0);
        used += (size_t)snprintf(want + used, sizeof(want) - used, "%s%s:%c", used ? " " : "", key, i % 3 == 0 ? 't' : 'o');
    }
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    for (size_t max = 1; max <= 13; max += 3) {
        walk(&m, "bk", max, got, sizeof(got), &pages);
        CHECK(strcmp(got, want) == 0);
    }
    meta_close(&m);
}

static void test_syncrec(void)
{
    meta_t m;
    char dir[256], id[META_STORE_ID_HEX + 1];
    MDB_txn *txn;
    syncrec_t r, back;

    CHECK_EQ_INT(site_env_fresh(&m, "syncrec", dir, sizeof(dir)), 0);
    CHECK_EQ_INT(mdb_txn_begin(m.env, NULL, 0, &txn), 0);
    CHECK_EQ_INT(meta_store_id(&m, txn, id), CIO_ENOTFOUND); /* storaged has not formatted a store here */
    CHECK_EQ_INT(meta_state_put(&m, txn, META_STORE_ID_HI, 0x0123456789abcdefull), 0);
    CHECK_EQ_INT(meta_state_put(&m, txn, META_STORE_ID_LO, 0xfedcba9876543210ull), 0);
    CHECK_EQ_INT(meta_store_id(&m, txn, id), 0);
    CHECK_EQ_STR(id, "0123456789abcdeffedcba9876543210");
    CHECK_EQ_INT(syncrec_get(&m, txn, "b", &r), CIO_ENOTFOUND);
    memset(&r, 0, sizeof(r));
    r.phase = SYNCREC_RUNNING;
    r.reason = SYNCREC_STORE_REPLACED;
    r.started_ms = 1;
    r.scanned = 2;
    r.extra_bytes = 3;
    strcpy(r.store_started, id);
    strcpy(r.bucket, "photos");
    r.key_len = 5;
    memcpy(r.key, "a/b/c", 6);
    strcpy(r.error, "remote returned 507");
    CHECK_EQ_INT(syncrec_put(&m, txn, "b", &r), 0);
    CHECK_EQ_INT(syncrec_get(&m, txn, "b", &back), 0);
    CHECK(memcmp(&r, &back, sizeof(r)) == 0);
    CHECK_EQ_INT(syncrec_del(&m, txn, "b", 1), 0);
    CHECK_EQ_INT(syncrec_del(&m, txn, "b", 1), 0);
    CHECK_EQ_INT(syncrec_get(&m, txn, "b", &back), CIO_ENOTFOUND);
    mdb_txn_abort(txn);
    meta_close(&m);
}

int main(void)
{
    (void)site_append_puts; /* siteutil.h helpers this file has no use for */
    (void)site_counter;
    if (site_tmp_make() != 0)
        return 1;
    RUN(test_key_page);
    RUN(test_key_page_long_keys);
    RUN(test_syncrec);
    site_tmp_remove();
    return TEST_SUMMARY();
}
