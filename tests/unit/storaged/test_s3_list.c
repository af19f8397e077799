/* test_s3_list.c - unit tests of S3's listing pages (storaged/s3_list.c) over
 * a real environment: every page walk, with and without a delimiter, gives
 * exactly what a naive roll-up of all keys gives, and a common prefix is
 * skipped with one seek, not by reading its keys. */
#include "storaged/s3_list.c"
#include "testutil.h"

static char tmpdir[] = "/tmp/comio_unit.XXXXXX";

/* A fresh environment in <tmpdir>/<name>, of map_mb MiB. */
static int env_open(meta_t *m, const char *name, unsigned map_mb)
{
    char dir[256], err[256];
    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    return meta_open_env(m, dir, (uint64_t)map_mb << 20, META_OPEN_CREATE, err, sizeof(err));
}

#define NKEYS 3000

static char *keys[NKEYS + 100200];
static size_t nkeys;

/* Appends a copy of k to keys[]; aborts when the array is full. */
static void add_key(const char *k)
{
    if (nkeys == sizeof(keys) / sizeof(keys[0]))
        abort();
    keys[nkeys++] = strdup(k);
}

static int cmp_str(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return cmp_bytes(x, strlen(x), y, strlen(y));
}

static int put_keys(meta_t *m, const char *b, char **ks, size_t n)
{
    MDB_txn *txn;
    meta_obj_t o;
    memset(&o, 0, sizeof(o));
    o.version = 1;
    o.size = 3;
    o.mtime_ms = 1700000000123;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (meta_obj_put(m, txn, b, strlen(b), ks[i], strlen(ks[i]), &o, NULL) != 0) {
            mdb_txn_abort(txn);
            return -1;
        }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* The values of every <tag>..</tag> in xml, appended to out[*n]. */
static void collect(const char *xml, size_t len, const char *tag, char **out, size_t *n)
{
    char open[32], close[32];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *p = xml, *end = xml + len;
    while (p < end && (p = memmem(p, (size_t)(end - p), open, strlen(open))) != NULL) {
        p += strlen(open);
        const char *e = memmem(p, (size_t)(end - p), close, strlen(close));
        out[(*n)++] = strndup(p, (size_t)(e - p));
        p = e;
    }
}

/* What a listing of everything must give: the keys under prefix, each rolled up at the first delimiter after it. */
static size_t reference(const char *prefix, const char *delim, char **out)
{
    size_t n = 0, plen = strlen(prefix), dlen = strlen(delim);
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = keys[i];
        if (strncmp(k, prefix, plen) != 0)
            continue;
        size_t elen = strlen(k);
        const char *d = dlen > 0 ? strstr(k + plen, delim) : NULL;
        if (d != NULL)
            elen = (size_t)(d - k) + dlen;
        if (n > 0 && strlen(out[n - 1]) == elen && memcmp(out[n - 1], k, elen) == 0)
            continue;
        out[n++] = strndup(k, elen);
    }
    return n;
}

/* Walks every page of `max` entries as a client does (after = the last entry) and compares with the reference. */
static void walk(meta_t *m, const char *b, const char *prefix, const char *delim, size_t max, size_t *visits)
{
    static char *got[NKEYS + 100200], *want[NKEYS + 100200];
    http_server_t srv = {.meta = m};
    s3_req_t s = {.bucket = b, .bucket_len = strlen(b)};
    list_q_t q;
    size_t ngot = 0, nwant = reference(prefix, delim, want), pages = 0;

    memset(&q, 0, sizeof(q));
    q.plen = strlen(prefix);
    memcpy(q.prefix, prefix, q.plen);
    q.dlen = strlen(delim);
    memcpy(q.delim, delim, q.dlen);
    q.max = max;
    *visits = 0;
    for (;;) {
        list_t l;
        MDB_txn *txn;
        memset(&l, 0, sizeof(l));
        l.q = &q;
        buf_init(&l.contents, S3_REPLY_MAX);
        buf_init(&l.prefixes, S3_REPLY_MAX);
        CHECK_EQ_INT(mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn), 0);
        CHECK_EQ_INT(list_page(&srv, txn, &s, &l), 0);
        mdb_txn_abort(txn);
        size_t before = ngot;
        collect(l.contents.data, l.contents.len, "Key", got, &ngot);
        collect(l.prefixes.data, l.prefixes.len, "Prefix", got, &ngot);
        qsort(got + before, ngot - before, sizeof(char *), cmp_str);
        CHECK(ngot - before == l.n && l.n <= max);
        buf_free(&l.contents);
        buf_free(&l.prefixes);
        *visits += l.visits;
        pages++;
        if (!l.truncated || pages > nwant + 2)
            break;
        CHECK(l.n == max); /* a truncated page is full */
        memcpy(q.after, l.last, l.last_len);
        q.alen = l.last_len;
    }
    CHECK_EQ_INT(ngot, nwant);
    for (size_t i = 0; i < ngot && i < nwant; i++)
        if (strcmp(got[i], want[i]) != 0) {
            fprintf(stderr, "prefix '%s' delim '%s' max %zu: entry %zu is '%s', want '%s'\n", prefix, delim, max, i, got[i],
                    want[i]);
            CHECK(0);
            break;
        }
    for (size_t i = 0; i < ngot; i++)
        free(got[i]);
    for (size_t i = 0; i < nwant; i++)
        free(want[i]);
}

static void test_pages_match_reference(void)
{
    static const char *const parts[] = {"a", "b", "a/", "b/", "/", "ab", "x y", "\xc3\xa9", "~", "-", "a/b/", "\xff"};
    meta_t m;
    size_t visits;
    unsigned seed = 12345;

    CHECK_EQ_INT(env_open(&m, "small", 64), 0);
    /* keys made of a few pieces: nested prefixes, delimiters at every place, byte 0xff */
    while (nkeys < NKEYS) {
        char k[64] = "";
        int np = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 5;
        for (int i = 0; i < np; i++)
            strcat(k, parts[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof(parts) / sizeof(parts[0]))]);
        size_t j;
        for (j = 0; j < nkeys && strcmp(keys[j], k) != 0; j++)
            ;
        if (j == nkeys)
            add_key(k);
    }
    /* long keys: beyond ~400 bytes LMDB stores them as runs sharing their first bytes (common/meta.c) */
    for (int i = 0; i < 60; i++) {
        char k[LIMIT_KEY_MAX + 1];
        memset(k, 'L', 450);
        snprintf(k + 450, sizeof(k) - 450, i % 3 == 0 ? "/a%d" : i % 3 == 1 ? "/b/%d/c" : "%d/", i);
        if (i % 7 == 0)
            memset(k + strlen(k), 'z', LIMIT_KEY_MAX - strlen(k)), k[LIMIT_KEY_MAX] = '\0';
        add_key(k);
    }
    qsort(keys, nkeys, sizeof(char *), cmp_str);
    CHECK_EQ_INT(put_keys(&m, "bk", keys, nkeys), 0);
    /* another bucket's keys are never listed */
    CHECK_EQ_INT(put_keys(&m, "bj", keys, 10), 0);
    CHECK_EQ_INT(put_keys(&m, "bl", keys, 10), 0);

    static char long_prefix[452];
    memset(long_prefix, 'L', 450);
    strcpy(long_prefix + 450, "/");
    const char *const prefixes[] = {"", "a", "a/", "a/b/", "zzz", "\xff", "LLL", long_prefix};
    static const char *const delims[] = {"", "/", "b/", "ab", "\xff", "x y"};
    static const size_t maxes[] = {1, 2, 7, 1000};
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
        for (size_t d = 0; d < sizeof(delims) / sizeof(delims[0]); d++)
            for (size_t x = 0; x < sizeof(maxes) / sizeof(maxes[0]); x++)
                walk(&m, "bk", prefixes[p], delims[d], maxes[x], &visits);
    meta_close(&m);
}

/* 100,000 keys under "big/" cost one read each with no delimiter, a handful with "/". */
static void test_common_prefix_is_skipped(void)
{
    meta_t m;
    size_t visits, base = nkeys;

    CHECK_EQ_INT(env_open(&m, "big", 256), 0);
    for (size_t i = 0; i < 100000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "big/%06zu", i);
        add_key(k);
    }
    add_key("after");
    add_key("big0");
    add_key("bif");
    add_key("zz/1");
    add_key("zz/2");
    for (size_t i = 0; i < base; i++)
        free(keys[i]);
    memmove(keys, keys + base, (nkeys - base) * sizeof(char *));
    nkeys -= base;
    qsort(keys, nkeys, sizeof(char *), cmp_str);
    CHECK_EQ_INT(put_keys(&m, "bk", keys, nkeys), 0);
    walk(&m, "bk", "", "/", 1000, &visits);
    CHECK(visits < 10);
    walk(&m, "bk", "", "/", 1, &visits);
    CHECK(visits < 20);
    walk(&m, "bk", "big/", "/", 1000, &visits);
    CHECK(visits >= 100000);
    meta_close(&m);
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    nkeys = 0;
}

int main(void)
{
    char cmd[64];
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    RUN(test_pages_match_reference);
    RUN(test_common_prefix_is_skipped);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    return TEST_SUMMARY();
}
