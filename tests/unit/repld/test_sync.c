/* test_sync.c - unit tests of the full sync's decision for one key (repld/sync.c, sync_decide). */
#include "repld/sync.h"
#include "testutil.h"

static meta_entry_t src(uint64_t v, const char *origin, int deleted)
{
    meta_entry_t e;
    memset(&e, 0, sizeof(e));
    e.deleted = deleted;
    e.obj.version = v;
    e.obj.origin_len = (uint16_t)strlen(origin);
    memcpy(e.obj.origin, origin, e.obj.origin_len + 1);
    memcpy(e.obj.key, "k", 2);
    e.obj.key_len = 1;
    return e;
}

static synclist_key_t tgt(uint64_t v, const char *origin, int deleted)
{
    synclist_key_t k;
    memset(&k, 0, sizeof(k));
    k.key = "k";
    k.key_len = 1;
    k.hlc = v;
    k.origin = origin;
    k.origin_len = strlen(origin);
    k.deleted = deleted;
    return k;
}

static void test_object(void)
{
    meta_entry_t s = src(100, "site-a", 0);
    synclist_key_t t;
    CHECK_EQ_INT(sync_decide(&s, NULL), SYNC_PUT); /* the target lacks it */
    t = tgt(100, "site-a", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* the same version */
    t = tgt(90, "site-a", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_PUT); /* an older one */
    t = tgt(90, "site-z", 1);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_PUT); /* an older tombstone: the object came back later */
    t = tgt(110, "site-b", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* a later one: the target's stays */
    t = tgt(110, "site-b", 1);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* deleted later: nothing comes back */
    t = tgt(100, "site-b", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* the same clock, the larger origin wins: site-b */
    t = tgt(100, "site-0", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_PUT);
}

static void test_tombstone(void)
{
    meta_entry_t s = src(100, "site-a", 1);
    synclist_key_t t;
    CHECK_EQ_INT(sync_decide(&s, NULL), SYNC_SKIP); /* nothing to delete */
    t = tgt(90, "site-a", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_DELETE);
    t = tgt(90, "site-a", 1);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* deleted already */
    t = tgt(110, "site-a", 0);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP); /* written again later */
    t = tgt(100, "site-a", 1);
    CHECK_EQ_INT(sync_decide(&s, &t), SYNC_SKIP);
}

static void test_only_one_side(void)
{
    synclist_key_t t = tgt(5, "site-b", 0);
    CHECK_EQ_INT(sync_decide(NULL, &t), SYNC_EXTRA); /* reported, never deleted */
    CHECK_EQ_INT(sync_decide(NULL, NULL), SYNC_SKIP);
}

/* A key only the target holds is deleted with --delete-extra, or when this
 * site wrote it and its version is below this site's tombstone horizon. */
static void test_extra_deleted(void)
{
    synclist_key_t mine = tgt(5, "site-a", 0), theirs = tgt(5, "site-b", 0), tomb = tgt(5, "site-a", 1);
    CHECK(sync_extra_deleted(&mine, "site-a", 6, 0, 0) == 0);   /* nothing collected: proves nothing */
    CHECK(sync_extra_deleted(&mine, "site-a", 6, 5, 0) == 0);   /* not older than the horizon */
    CHECK(sync_extra_deleted(&mine, "site-a", 6, 6, 0) == 1);   /* written here, deleted, tombstone collected */
    CHECK(sync_extra_deleted(&theirs, "site-a", 6, 6, 0) == 0); /* maybe never seen here: reported */
    CHECK(sync_extra_deleted(&theirs, "site-a", 6, 0, 1) == 1); /* --delete-extra */
    CHECK(sync_extra_deleted(&tomb, "site-a", 6, 6, 1) == 0);   /* a tombstone deletes nothing */
    CHECK(sync_extra_deleted(NULL, "site-a", 6, 6, 1) == 0);
}

int main(void)
{
    RUN(test_object);
    RUN(test_tombstone);
    RUN(test_only_one_side);
    RUN(test_extra_deleted);
    return TEST_SUMMARY();
}
