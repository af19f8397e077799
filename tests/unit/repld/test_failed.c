/* test_failed.c - unit tests of `repld --list-failed` and `--retry-failed`
 * (repld/failed.c) on a real LMDB environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/conf.h"
#include "common/log.h"
#include "common/be.h"
#include "repld/failed.h"
#include "testutil.h"
#include "siteutil.h"

/* Runs a command; its output in *text (malloc'ed, the caller frees). */
static int run(conf_t *conf, int retry, char **text, char *err, size_t errlen)
{
    size_t len;
    FILE *out = open_memstream(text, &len);
    if (out == NULL)
        return -1;
    int ret = failed_command(conf, retry, out, err, errlen);
    fclose(out);
    return ret;
}

static void test_list_then_retry(void)
{
    conf_t conf;
    meta_t m;
    MDB_txn *txn;
    char dir[256], err[1200], *text = NULL;

    CHECK(conf_init(&conf) == 0);
    CHECK(site_env_fresh(&m, "meta", dir, sizeof(dir)) == 0);
    CHECK(site_append_puts(&m, 2, 10) == 0);
    /* record both log records as failed, as repld does */
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    for (uint64_t seq = 1; seq <= 2; seq++) {
        MDB_val k, v;
        uint8_t kb[8];
        be_put(kb, seq, 8);
        k.mv_size = 8;
        k.mv_data = kb;
        CHECK(mdb_get(txn, m.replog, &k, &v) == 0);
        CHECK(replog_fail(&m, txn, seq, v.mv_data, v.mv_size, 4, "remote returned 507: full", 1764000000000) == 0);
    }
    CHECK(mdb_txn_commit(txn) == 0);
    meta_close(&m);
    conf.meta_path = strdup(dir);

    CHECK(run(&conf, 0, &text, err, sizeof(err)) == 0);
    CHECK(text != NULL &&
          strstr(text, "{\"seq\":1,\"event_id\":\"1-bkt-k0\",\"op\":\"PUT\",\"bucket\":\"bkt\",\"key\":\"k0\"") == text);
    CHECK(text != NULL &&
          strstr(text, "\"error\":\"remote returned 507: full\",\"attempts\":4,\"failed_at\":\"2025-11-24T") != NULL);
    CHECK(text != NULL && strstr(text, "{\"seq\":2,") != NULL);
    free(text);
    text = NULL;

    CHECK(run(&conf, 1, &text, err, sizeof(err)) == 0);
    CHECK(text != NULL && strncmp(text, "2 failed event(s) put back in line;", 35) == 0);
    free(text);
    text = NULL;
    CHECK(run(&conf, 0, &text, err, sizeof(err)) == 0);
    CHECK_EQ_STR(text, "");
    free(text);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED_TOTAL), 2);
    meta_close(&m);
    conf_free(&conf);
}

/* Issue 11, defect 4: pointed at a wrong path, neither command creates anything. */
static void test_wrong_path_creates_nothing(void)
{
    conf_t conf;
    char dir[256], err[1200], *text = NULL;
    struct stat st;

    CHECK(conf_init(&conf) == 0);
    snprintf(dir, sizeof(dir), "%s/nowhere/site.meta", site_tmp);
    conf.meta_path = strdup(dir);
    for (int retry = 0; retry <= 1; retry++) {
        CHECK(run(&conf, retry, &text, err, sizeof(err)) == CIO_ENOTFOUND);
        CHECK(strstr(err, dir) != NULL && strstr(err, "server.meta_path") != NULL);
        free(text);
        text = NULL;
        CHECK(stat(dir, &st) != 0);
    }
    snprintf(dir, sizeof(dir), "%s/nowhere", site_tmp);
    CHECK(stat(dir, &st) != 0);
    conf_free(&conf);
}

int main(void)
{
    if (site_tmp_make() != 0) {
        perror("mkdtemp");
        return 1;
    }
    log_init("test", "test_failed", LOG_LVL_ERROR, 0);
    RUN(test_list_then_retry);
    RUN(test_wrong_path_creates_nothing);
    site_tmp_remove();
    return TEST_SUMMARY();
}
