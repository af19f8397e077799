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

/* Runs a command for `target` (NULL: all); its output in *text (malloc'ed, the caller frees). */
static int run_for(conf_t *conf, int retry, const char *target, char **text, char *err, size_t errlen)
{
    size_t len;
    FILE *out = open_memstream(text, &len);
    if (out == NULL)
        return -1;
    int ret = failed_command(conf, retry, target, out, err, errlen);
    fclose(out);
    return ret;
}

static int run(conf_t *conf, int retry, char **text, char *err, size_t errlen)
{
    return run_for(conf, retry, NULL, text, err, errlen);
}

/* Gives conf the targets "b" and "c", as conf_finalize would. */
static int two_targets(conf_t *conf)
{
    static const char *const names[] = {"b", "c"};
    if ((conf->targets = calloc(2, sizeof(*conf->targets))) == NULL)
        return -1;
    conf->ntargets = 2;
    for (size_t i = 0; i < 2; i++)
        if ((conf->targets[i].name = strdup(names[i])) == NULL || (conf->targets[i].url = strdup("http://127.0.0.1:9")) == NULL)
            return -1;
    return 0;
}

static int lines(const char *text)
{
    int n = 0;
    for (; text != NULL && *text; text++)
        n += *text == '\n';
    return n;
}

static void test_list_then_retry(void)
{
    conf_t conf;
    meta_t m;
    MDB_txn *txn;
    char dir[256], err[1200], *text = NULL;

    static const char *const names[] = {"b", "c"};
    CHECK(conf_init(&conf) == 0);
    CHECK(two_targets(&conf) == 0);
    CHECK(site_env_fresh(&m, "meta", dir, sizeof(dir)) == 0);
    CHECK(site_append_puts(&m, 2, 10) == 0);
    /* record both log records as failed for b, and the first for c too, as repld does */
    CHECK(mdb_txn_begin(m.env, NULL, 0, &txn) == 0);
    CHECK(replog_targets_open(&m, txn, names, 2, NULL) == 0);
    for (uint64_t seq = 1; seq <= 2; seq++) {
        MDB_val k, v;
        uint8_t kb[8];
        be_put(kb, seq, 8);
        k.mv_size = 8;
        k.mv_data = kb;
        CHECK(mdb_get(txn, m.replog, &k, &v) == 0);
        CHECK(replog_fail(&m, txn, "b", seq, v.mv_data, v.mv_size, 4, "remote returned 507: full", 1764000000000) == 0);
        if (seq == 1)
            CHECK(replog_fail(&m, txn, "c", seq, v.mv_data, v.mv_size, 1, "remote returned 400: no", 1764000000000) == 0);
    }
    CHECK(mdb_txn_commit(txn) == 0);
    meta_close(&m);
    conf.meta_path = strdup(dir);
    /* the environment's own size, not the 16 GiB default: valgrind's origin tracking (--track-origins) spent minutes
     * on a map that large */
    conf.meta_map_size = 16u << 20;

    CHECK(run(&conf, 0, &text, err, sizeof(err)) == 0);
    CHECK(text != NULL &&
          strstr(text, "{\"seq\":1,\"target\":\"b\",\"event_id\":\"1-bkt-k0\",\"op\":\"PUT\",\"bucket\":\"bkt\",\"key\":\"k0\"") ==
              text);
    CHECK(text != NULL &&
          strstr(text, "\"error\":\"remote returned 507: full\",\"attempts\":4,\"failed_at\":\"2025-11-24T") != NULL);
    CHECK(text != NULL && strstr(text, "{\"seq\":2,\"target\":\"b\",") != NULL);
    CHECK(text != NULL && strstr(text, "{\"seq\":1,\"target\":\"c\",") != NULL);
    CHECK_EQ_INT(lines(text), 3);
    free(text);
    text = NULL;
    CHECK(run_for(&conf, 0, "c", &text, err, sizeof(err)) == 0);
    CHECK_EQ_INT(lines(text), 1);
    free(text);
    text = NULL;
    CHECK(run_for(&conf, 1, "nosuch", &text, err, sizeof(err)) == CIO_EINVAL);
    CHECK(strstr(err, "'nosuch'") != NULL);
    free(text);
    text = NULL;

    CHECK(run_for(&conf, 1, "b", &text, err, sizeof(err)) == 0);
    CHECK(text != NULL && strncmp(text, "2 failed event(s) put back in line;", 35) == 0);
    free(text);
    text = NULL;
    CHECK(run(&conf, 0, &text, err, sizeof(err)) == 0); /* c's is left */
    CHECK(text != NULL && strstr(text, "{\"seq\":1,\"target\":\"c\",") == text);
    CHECK_EQ_INT(lines(text), 1);
    free(text);
    text = NULL;
    CHECK(run(&conf, 1, &text, err, sizeof(err)) == 0);
    CHECK(text != NULL && strncmp(text, "1 failed event(s) put back in line;", 35) == 0);
    free(text);
    text = NULL;
    CHECK(run(&conf, 0, &text, err, sizeof(err)) == 0);
    CHECK_EQ_STR(text, "");
    free(text);
    CHECK(meta_open_env(&m, dir, 0, META_OPEN_RDONLY, err, sizeof(err)) == 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED), 0);
    CHECK_EQ_INT(site_counter(&m, META_REPL_FAILED_TOTAL), 3);
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
