/* test_meta_format.c - unit tests for common/meta.c's metadata format: recording it, the migration steps, refusals. */
#include <stdint.h>
#include <string.h>
#include <lmdb.h>
#include "testutil.h"
#include "siteutil.h"
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
    CHECK(strstr(err, "older than this repld understands (1): start storaged first") != NULL);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == CIO_EPROTO);
    CHECK(meta_open_env(&m, dir, 16u << 20, META_OPEN_CREATE, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_FORMAT_VERSION), 1);
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
    CHECK(strstr(err, "metadata format 2 is newer than this storaged understands (1): run a newer ComIO, or restore the "
                      "metadata of this release") != NULL);
    CHECK(strstr(err, dir) != NULL);
    CHECK(m.env == NULL);
    CHECK(meta_open_env(&m, dir, 0, 0, err, sizeof(err)) == CIO_EPROTO);
    CHECK(strstr(err, "newer than this repld understands") != NULL);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == CIO_EPROTO);
}

/* ---- the migration framework, with steps of the test's own ---- */

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

int main(void)
{
    if (site_tmp_make() != 0)
        return 1;
    RUN(test_new_env_is_current);
    RUN(test_unversioned_upgrades);
    RUN(test_newer_refused);
    RUN(test_migrate_steps);
    site_tmp_remove();
    return TEST_SUMMARY();
}
