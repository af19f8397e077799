/* test_merge.c - unit tests for cli/merge.c: the merge-join of comio diff, fed from arrays, no server. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli/merge.h"
#include "testutil.h"

/* A sequence over an array; fails with CIO_EIO instead of giving entry `fail_at` (SIZE_MAX: never). */
typedef struct {
    const merge_entry_t *v;
    size_t n, i, fail_at, calls;
} seq_t;

static int seq_next(void *p, const merge_entry_t **e)
{
    seq_t *s = p;
    s->calls++;
    if (s->i == s->fail_at)
        return CIO_EIO;
    if (s->i == s->n)
        return 0;
    *e = &s->v[s->i++];
    return 1;
}

static merge_entry_t ent(const char *key, uint64_t size, const char *etag)
{
    merge_entry_t e;
    memset(&e, 0, sizeof(e));
    e.key_len = strlen(key);
    memcpy(e.key, key, e.key_len);
    e.size = size;
    snprintf(e.etag, sizeof(e.etag), "%s", etag);
    return e;
}

/* The report, as text: "kind key;" per key, bytes outside printable ASCII as \xHH. */
typedef struct {
    char text[8192];
    size_t len;
} log_t;

static void visit(void *arg, merge_kind_t kind, const merge_entry_t *src, const merge_entry_t *tgt)
{
    static const char *const names[] = {"same", "missing", "extra", "different", "version", "metadata", "content"};
    log_t *l = arg;
    const merge_entry_t *e = src != NULL ? src : tgt;

    /* each side that holds the key is given, and no other */
    CHECK((src != NULL) == (kind != MERGE_EXTRA));
    CHECK((tgt != NULL) == (kind != MERGE_MISSING));
    l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s ", names[kind]);
    for (size_t i = 0; i < e->key_len; i++) {
        unsigned char c = (unsigned char)e->key[i];
        l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, c > 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    if (merge_damaged(src, tgt) & MERGE_DAMAGED_SOURCE)
        l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, " damaged-source");
    if (merge_damaged(src, tgt) & MERGE_DAMAGED_TARGET)
        l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, " damaged-target");
    l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, ";");
}

/* Merges src[0..ns) and tgt[0..nt); returns merge_join's result, the report in *l. */
static int run(const merge_entry_t *src, size_t ns, const merge_entry_t *tgt, size_t nt, log_t *l)
{
    seq_t s = {src, ns, 0, SIZE_MAX, 0}, t = {tgt, nt, 0, SIZE_MAX, 0};
    l->len = 0;
    l->text[0] = '\0';
    int ret = merge_join(seq_next, &s, &t, visit, l);
    if (ret == 0) { /* both walked to their end, and not asked again after */
        CHECK_EQ_INT(s.i, ns);
        CHECK_EQ_INT(t.i, nt);
        CHECK_EQ_INT(s.calls, ns + 1);
        CHECK_EQ_INT(t.calls, nt + 1);
    }
    return ret;
}

static void test_key_cmp(void)
{
    CHECK(merge_key_cmp("a", 1, "b", 1) < 0);
    CHECK(merge_key_cmp("b", 1, "a", 1) > 0);
    CHECK(merge_key_cmp("ab", 2, "ab", 2) == 0);
    CHECK(merge_key_cmp("a", 1, "ab", 2) < 0); /* a key before the longer keys it starts */
    CHECK(merge_key_cmp("ab", 2, "a", 1) > 0);
    CHECK(merge_key_cmp("z", 1, "\x80", 1) < 0); /* bytes compare unsigned */
    CHECK(merge_key_cmp("\xff", 1, "\x80", 1) > 0);
    CHECK(merge_key_cmp("", 0, "", 0) == 0);
}

static void test_empty_and_one_sided(void)
{
    merge_entry_t a[] = {ent("a", 1, "e1"), ent("b", 2, "e2")};
    log_t l;

    CHECK_EQ_INT(run(NULL, 0, NULL, 0, &l), 0);
    CHECK_EQ_STR(l.text, "");
    CHECK_EQ_INT(run(a, 2, NULL, 0, &l), 0);
    CHECK_EQ_STR(l.text, "missing a;missing b;");
    CHECK_EQ_INT(run(NULL, 0, a, 2, &l), 0);
    CHECK_EQ_STR(l.text, "extra a;extra b;");
    CHECK_EQ_INT(run(a, 2, a, 2, &l), 0);
    CHECK_EQ_STR(l.text, "same a;same b;");
}

static void test_mixed(void)
{
    merge_entry_t src[] = {ent("a1", 5, "e1"), ent("b", 1, "x"), ent("c", 2, "y"),
                           ent("d", 3, "z"),   ent("f", 1, "q"), ent("h", 0, "")};
    merge_entry_t tgt[] = {ent("a", 5, "e1"), ent("b", 1, "x"), ent("c", 3, "y"), ent("d", 3, "w"),
                           ent("e", 1, "q"),  ent("g", 1, "q"), ent("h", 0, ""),  ent("i", 9, "i")};
    log_t l;

    CHECK_EQ_INT(run(src, 6, tgt, 8, &l), 0);
    CHECK_EQ_STR(l.text, "extra a;missing a1;same b;different c;different d;extra e;missing f;extra g;same h;extra i;");
    CHECK_EQ_INT(run(tgt, 8, src, 6, &l), 0); /* the other way round */
    CHECK_EQ_STR(l.text, "missing a;extra a1;same b;different c;different d;missing e;extra f;missing g;same h;missing i;");
}

static void test_prefixes_and_bytes(void)
{
    merge_entry_t src[] = {ent("a", 1, "e"), ent("ab", 1, "e"), ent("z", 1, "e"), ent("\xc3\xa9", 1, "e"), ent("\xff", 1, "e")};
    merge_entry_t tgt[] = {ent("a", 1, "e"),    ent("a\x01", 1, "e"),    ent("z", 1, "e"),
                           ent("\x80", 1, "e"), ent("\xc3\xa9", 1, "e"), ent("\xff\xfe", 1, "e")};
    log_t l;

    CHECK_EQ_INT(run(src, 5, tgt, 6, &l), 0);
    CHECK_EQ_STR(l.text, "same a;extra a\\x01;missing ab;same z;extra \\x80;same \\xc3\\xa9;missing \\xff;extra \\xff\\xfe;");
}

static void test_errors(void)
{
    merge_entry_t a[] = {ent("a", 1, "e"), ent("b", 1, "e"), ent("c", 1, "e")};
    log_t l = {"", 0};
    seq_t s = {a, 3, 0, 1, 0}, t = {a, 3, 0, SIZE_MAX, 0};

    /* the source fails on its second entry: the first key was visited, then the walk stops */
    CHECK_EQ_INT(merge_join(seq_next, &s, &t, visit, &l), CIO_EIO);
    CHECK_EQ_STR(l.text, "same a;");
    CHECK_EQ_INT(s.calls, 2);
    /* the target fails at once: nothing is visited */
    seq_t s2 = {a, 3, 0, SIZE_MAX, 0}, t2 = {a, 3, 0, 0, 0};
    l.len = 0;
    l.text[0] = '\0';
    CHECK_EQ_INT(merge_join(seq_next, &s2, &t2, visit, &l), CIO_EIO);
    CHECK_EQ_STR(l.text, "");
    CHECK_EQ_INT(s2.calls, 1);
    /* the source fails first: the target is not asked */
    seq_t s3 = {a, 3, 0, 0, 0}, t3 = {a, 3, 0, SIZE_MAX, 0};
    CHECK_EQ_INT(merge_join(seq_next, &s3, &t3, visit, &l), CIO_EIO);
    CHECK_EQ_INT(t3.calls, 0);
}

/* Two random sets of keys over a small alphabet against a brute-force answer. */
static void test_random(void)
{
    enum { UNIVERSE = 64 };
    static merge_entry_t all[UNIVERSE], src[UNIVERSE], tgt[UNIVERSE];
    uint32_t seed = 7;
    int failed = 0;

    /* the universe in key order: two-byte keys of 'a', 'b', 0x80, 0xff, and their one-byte prefixes */
    static const char alpha[] = {'a', 'b', (char)0x80, (char)0xff};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        char k1[2] = {alpha[i], 0};
        all[n++] = ent(k1, 1, "e");
        for (int j = 0; j < 4; j++) {
            char k2[3] = {alpha[i], alpha[j], 0};
            all[n++] = ent(k2, 1, "e");
        }
    }
    for (int round = 0; round < 2000 && !failed; round++) {
        size_t ns = 0, nt = 0;
        log_t want = {"", 0}, got;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 5; /* 0 neither, 1 source, 2 target, 3 same, 4 different */
            if (r == 1 || r >= 3)
                src[ns++] = all[i];
            if (r >= 2) {
                tgt[nt] = all[i];
                if (r == 4)
                    tgt[nt].size++;
                nt++;
            }
            if (r > 0)
                visit(&want,
                      r == 1   ? MERGE_MISSING
                      : r == 2 ? MERGE_EXTRA
                      : r == 3 ? MERGE_SAME
                               : MERGE_DIFFERENT,
                      r == 2 ? NULL : &all[i], r == 1 ? NULL : &all[i]);
        }
        failed = run(src, ns, tgt, nt, &got) != 0 || strcmp(got.text, want.text) != 0;
        if (failed)
            fprintf(stderr, "round %d:\n got  %s\n want %s\n", round, got.text, want.text);
    }
    CHECK(!failed);
}

/* An entry at version v from site o. */
static merge_entry_t ent_v(const char *key, uint64_t size, const char *etag, uint64_t v, const char *o)
{
    merge_entry_t e = ent(key, size, etag);
    e.has_version = 1;
    e.version = v;
    snprintf(e.origin, sizeof(e.origin), "%s", o);
    return e;
}

/* The same bytes at another version (or from another site) is a difference of its own; different bytes stay
 * "different" whatever the versions; a side without versions (an older release) compares bytes only. */
static void test_versions(void)
{
    merge_entry_t a = ent_v("k", 3, "e1", 7, "site-a");
    merge_entry_t same = ent_v("k", 3, "e1", 7, "site-a"), later = ent_v("k", 3, "e1", 8, "site-a");
    merge_entry_t other = ent_v("k", 3, "e1", 7, "site-b"), bytes = ent_v("k", 4, "e2", 8, "site-b");
    merge_entry_t old = ent("k", 3, "e1");
    CHECK_EQ_INT(merge_compare(&a, &same), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&a, &later), MERGE_VERSION);
    CHECK_EQ_INT(merge_compare(&a, &other), MERGE_VERSION);
    CHECK_EQ_INT(merge_compare(&a, &bytes), MERGE_DIFFERENT);
    CHECK_EQ_INT(merge_compare(&a, &old), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&old, &a), MERGE_SAME);
    merge_entry_t src[] = {ent_v("a", 1, "x", 1, "s"), ent_v("b", 1, "x", 1, "s")};
    merge_entry_t tgt[] = {ent_v("a", 1, "x", 1, "s"), ent_v("b", 1, "x", 2, "s")};
    seq_t ss = {src, 2, 0, SIZE_MAX, 0}, ts = {tgt, 2, 0, SIZE_MAX, 0};
    log_t l;
    memset(&l, 0, sizeof(l));
    CHECK_EQ_INT(merge_join(seq_next, &ss, &ts, visit, &l), 0);
    CHECK_EQ_STR(l.text, "same a;version b;");
}

/* An entry with metadata digest md ("" for none). */
static merge_entry_t ent_m(const char *key, uint64_t v, const char *md)
{
    merge_entry_t e = ent_v(key, 3, "e1", v, "site-a");
    e.has_meta = 1;
    snprintf(e.meta, sizeof(e.meta), "%s", md);
    return e;
}

/* Same bytes, other metadata: a category of its own, before "version" (a write made on the target alone has both);
 * different bytes stay "different"; a side that lists no digest (an older release) is not compared on it. */
static void test_metadata(void)
{
    merge_entry_t a = ent_m("k", 7, "0123456789abcdef");
    merge_entry_t same = ent_m("k", 7, "0123456789abcdef"), none = ent_m("k", 7, ""), later = ent_m("k", 8, "");
    merge_entry_t old = ent_v("k", 3, "e1", 7, "site-a"), bytes = ent_m("k", 7, "");
    bytes.size = 4;
    CHECK_EQ_INT(merge_compare(&a, &same), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&a, &none), MERGE_METADATA);
    CHECK_EQ_INT(merge_compare(&none, &a), MERGE_METADATA);
    CHECK_EQ_INT(merge_compare(&a, &later), MERGE_METADATA);
    CHECK_EQ_INT(merge_compare(&none, &later), MERGE_VERSION);
    CHECK_EQ_INT(merge_compare(&a, &bytes), MERGE_DIFFERENT);
    CHECK_EQ_INT(merge_compare(&a, &old), MERGE_SAME);
    merge_entry_t src[] = {ent_m("a", 1, ""), ent_m("b", 1, "00")};
    merge_entry_t tgt[] = {ent_m("a", 1, ""), ent_m("b", 2, "11")};
    seq_t ss = {src, 2, 0, SIZE_MAX, 0}, ts = {tgt, 2, 0, SIZE_MAX, 0};
    log_t l;
    memset(&l, 0, sizeof(l));
    CHECK_EQ_INT(merge_join(seq_next, &ss, &ts, visit, &l), 0);
    CHECK_EQ_STR(l.text, "same a;metadata b;");
}

/* A deep listing's entry: a digest, or (digest NULL) damaged in `block`. */
static merge_entry_t ent_d(const char *key, uint64_t size, const char *etag, const char *digest, uint64_t block)
{
    merge_entry_t e = ent_v(key, size, etag, 5, "site-a");
    if (digest != NULL) {
        e.has_digest = 1;
        snprintf(e.digest, sizeof(e.digest), "%s", digest);
    } else {
        e.damaged = 1;
        e.damaged_block = block;
        snprintf(e.damaged_reason, sizeof(e.damaged_reason), "checksum");
    }
    return e;
}

static void test_deep(void)
{
    merge_entry_t a = ent_d("k", 7, "e1", "0a0b0c0d", 0), same = ent_d("k", 7, "e1", "0a0b0c0d", 0);
    merge_entry_t other = ent_d("k", 7, "e1", "ffffffff", 0), bad = ent_d("k", 7, "e1", NULL, 3);
    merge_entry_t plain = ent_v("k", 7, "e1", 5, "site-a"), bigger = ent_d("k", 8, "e2", "ffffffff", 0);
    /* the same ETag over other bytes: a content difference; other bytes with another ETag stay "different" */
    CHECK_EQ_INT(merge_compare(&a, &same), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&a, &other), MERGE_CONTENT);
    CHECK_EQ_INT(merge_compare(&other, &a), MERGE_CONTENT);
    CHECK_EQ_INT(merge_compare(&a, &bigger), MERGE_DIFFERENT);
    /* a content difference wins over another version: the bytes matter more */
    merge_entry_t later = other;
    later.version = 9;
    CHECK_EQ_INT(merge_compare(&a, &later), MERGE_CONTENT);
    /* a side without a digest (damaged, or a listing that is not deep) compares as before */
    CHECK_EQ_INT(merge_compare(&a, &bad), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&bad, &a), MERGE_SAME);
    CHECK_EQ_INT(merge_compare(&a, &plain), MERGE_SAME);
    CHECK_EQ_INT(merge_damaged(&a, &same), 0);
    CHECK_EQ_INT(merge_damaged(&bad, &a), MERGE_DAMAGED_SOURCE);
    CHECK_EQ_INT(merge_damaged(&a, &bad), MERGE_DAMAGED_TARGET);
    CHECK_EQ_INT(merge_damaged(&bad, &bad), MERGE_DAMAGED_SOURCE | MERGE_DAMAGED_TARGET);
    CHECK_EQ_INT(merge_damaged(NULL, &bad), MERGE_DAMAGED_TARGET);
    CHECK_EQ_INT(merge_damaged(&bad, NULL), MERGE_DAMAGED_SOURCE);
    CHECK_EQ_INT(merge_damaged(NULL, NULL), 0);
    /* crafted listings: damage is told apart from the verdict, on the side that has it */
    merge_entry_t src[] = {ent_d("a", 1, "e", "00000001", 0), ent_d("b", 1, "e", NULL, 0), ent_d("c", 1, "e", "00000003", 0),
                           ent_d("d", 1, "e", NULL, 0),       ent_d("e", 1, "e", NULL, 2), ent_d("f", 1, "e", "00000006", 0)};
    merge_entry_t tgt[] = {ent_d("a", 1, "e", "00000001", 0), ent_d("b", 1, "e", "00000002", 0), ent_d("c", 1, "e", NULL, 0),
                           ent_d("d", 1, "e", NULL, 0),       ent_d("f", 1, "e", "0000000f", 0), ent_d("g", 1, "e", NULL, 1)};
    log_t l;
    memset(&l, 0, sizeof(l));
    CHECK_EQ_INT(run(src, 6, tgt, 6, &l), 0);
    CHECK_EQ_STR(l.text, "same a;same b damaged-source;same c damaged-target;same d damaged-source damaged-target;"
                         "missing e damaged-source;content f;extra g damaged-target;");
}

int main(void)
{
    RUN(test_key_cmp);
    RUN(test_empty_and_one_sided);
    RUN(test_mixed);
    RUN(test_prefixes_and_bytes);
    RUN(test_errors);
    RUN(test_random);
    RUN(test_versions);
    RUN(test_metadata);
    RUN(test_deep);
    return TEST_SUMMARY();
}
