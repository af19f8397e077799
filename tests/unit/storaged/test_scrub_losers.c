/* test_scrub_losers.c - the scrub's walk of the kept conflict losers (storaged/scrub.c) records its position
 * as the objects' walk does: a pass stopped in it saves the last loser done, and resumes after it, so each loser is
 * read and counted once per pass (docs/operations.md, "Scrub").
 *
 * A real LMDB environment and image file, three losers with checksums, the scrub thread itself: no objects, so a
 * pass goes straight to the losers. The first loser in table order is damaged: read twice, it would be counted
 * twice. Every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "testutil.h"
#include "siteutil.h"
#include "common/be.h"
#include "common/blocksum.h"
#include "common/conflict.h"
#include "storaged/scrub.h"
#include "storaged/store.h"

#define NLOSERS 3
#define RATE 100000 /* bytes/s while the first pass runs: the second loser's read is then followed by a 9 s wait */

static const uint64_t SIZES[NLOSERS] = {1000, 900000, 300000}; /* in table order */

typedef struct {
    char key[8];
    uint8_t md5[16];
} named_t;

static int by_md5(const void *a, const void *b)
{
    return memcmp(((const named_t *)a)->md5, ((const named_t *)b)->md5, 16);
}

/* Writes loser i (the i-th in table order, key k) of SIZES[i] random bytes at 1 MiB * (i + 1), with its checksums. */
static int put_loser(meta_t *m, store_t *s, const char *k, int i)
{
    static uint8_t body[1 << 20];
    blocksum_calc_t calc;
    conflict_t c;
    uint8_t *owned = NULL;
    MDB_txn *txn;
    int ret = -1;

    for (uint64_t j = 0; j < SIZES[i]; j++)
        body[j] = (uint8_t)rand();
    memset(&c, 0, sizeof(c));
    c.loser = meta_ver_make(100 + (uint64_t)i, "a", 1);
    c.winner = meta_ver_make(200, "b", 1);
    c.off = (uint64_t)(i + 1) << 20;
    c.alen = c.size = SIZES[i];
    c.time_ms = 1700000000000;
    c.key_len = (uint16_t)snprintf(c.key, sizeof(c.key), "%s", k);
    if (store_write(s, c.off, body, (size_t)c.size) != 0 || blocksum_calc_init(&calc, c.size) != 0)
        return -1;
    blocksum_calc_feed(&calc, body, (size_t)c.size);
    if (conflict_sums_from_calc(&c, &calc, &owned) == 0 && mdb_txn_begin(m->env, NULL, 0, &txn) == 0) {
        if (conflict_put(m, txn, "bkt", 3, &c) == 0 && mdb_txn_commit(txn) == 0)
            ret = 0;
        else
            mdb_txn_abort(txn);
    }
    free(owned);
    blocksum_calc_free(&calc);
    return ret;
}

/* The committed state record; 0 or -1. */
static int load_state(meta_t *m, scrubrec_state_t *st)
{
    MDB_txn *txn;
    MDB_val key = {5, (void *)"state"}, v;
    int ret = -1;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (mdb_get(txn, m->scrub, &key, &v) == 0 && scrubrec_state_decode(v.mv_data, v.mv_size, st) == 0)
        ret = 0;
    mdb_txn_abort(txn);
    return ret;
}

/* Whether the running pass's status shows `want` (a piece of its counts). */
static int current_shows(scrub_t *sc, meta_t *m, const char *want)
{
    MDB_txn *txn;
    buf_t b;
    int found = 0;
    buf_init(&b, 1 << 16);
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (scrub_status_json(sc, m, txn, &b) == 0 && buf_append(&b, "", 1) == 0) {
        const char *cur = strstr(b.data, "\"current\":{");
        found = cur != NULL && strstr(cur, want) != NULL;
    }
    mdb_txn_abort(txn);
    buf_free(&b);
    return found;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void test_resume_after_last_loser(void)
{
    static meta_t m;
    static scrubrec_state_t st;
    store_t s;
    scrub_t *sc;
    named_t names[NLOSERS];
    char dir[sizeof(site_tmp) + 32], path[sizeof(dir) + 16], err[256];
    uint8_t want_pos[64], bad = 0;
    int i;

    CHECK(site_env_fresh(&m, "scrub", dir, sizeof(dir)) == 0);
    snprintf(path, sizeof(path), "%s/store.img", dir);
    CHECK_EQ_INT(store_open(&s, path, 8u << 20, err, sizeof(err)), 0);
    for (i = 0; i < NLOSERS; i++) {
        snprintf(names[i].key, sizeof(names[i].key), "k%d", i);
        EVP_Digest(names[i].key, strlen(names[i].key), names[i].md5, NULL, EVP_md5(), NULL);
    }
    qsort(names, NLOSERS, sizeof(names[0]), by_md5);
    for (i = 0; i < NLOSERS; i++)
        CHECK(put_loser(&m, &s, names[i].key, i) == 0);
    /* the first loser damaged behind the scrub's back */
    CHECK(store_read(&s, (1u << 20) + 10, &bad, 1) == 0);
    bad ^= 0x40;
    CHECK(store_write(&s, (1u << 20) + 10, &bad, 1) == 0);
    /* its table key: the position the walk records once it is done */
    memcpy(want_pos, "bkt", 4);
    memcpy(want_pos + 4, names[0].md5, 16);
    be_put(want_pos + 20, 100, 8);
    want_pos[28] = 'a';

    /* a new store's first pass starts at once; stopped once the first loser is done, in the second's wait */
    CHECK_EQ_INT(scrub_start(&sc, &m, &s, RATE, 86400000, 1), 0);
    for (i = 0; i < 500 && !current_shows(sc, &m, "\"bytes\":1000,\"damaged\":1,"); i++)
        sleep_ms(10);
    CHECK(i < 500);
    scrub_stop(sc);
    CHECK_EQ_INT(load_state(&m, &st), 0);
    CHECK(st.running == 1 && st.cur.pass == 1 && st.cur.bytes == 1000 && st.cur.damaged == 1);
    CHECK(st.losers == 1 && st.lpos_len == 29 && memcmp(st.lpos, want_pos, 29) == 0);

    /* resumed (unpaced): after the first loser, which is neither read nor counted again */
    CHECK_EQ_INT(scrub_start(&sc, &m, &s, 0, 86400000, 1), 0);
    for (i = 0; i < 1000 && (load_state(&m, &st) != 0 || st.running); i++)
        sleep_ms(10);
    CHECK(i < 1000);
    scrub_stop(sc);
    CHECK(st.last.pass == 1 && st.last.objects == 0 && st.last.damaged == 1);
    CHECK_EQ_INT(st.last.bytes, SIZES[0] + SIZES[1] + SIZES[2]);
    CHECK(!st.losers && st.lpos_len == 0 && st.pos_len == 0);
    store_close(&s);
    meta_close(&m);
}

int main(void)
{
    (void)site_append_puts; /* siteutil.h helpers this file has no use for */
    (void)site_counter;
    if (site_tmp_make() != 0)
        return 1;
    RUN(test_resume_after_last_loser);
    site_tmp_remove();
    return TEST_SUMMARY();
}
