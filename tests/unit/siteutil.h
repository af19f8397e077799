/* siteutil.h - a site's LMDB environment for unit tests: a temporary
 * directory, a fresh environment in it, log records, counters.
 *
 * Static functions for the tests of the log and of repld; one test file
 * includes it once, after testutil.h. */
#ifndef COMIO_SITEUTIL_H
#define COMIO_SITEUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/meta.h"
#include "common/replog.h"

static char site_tmp[] = "/tmp/comio_unit.XXXXXX";

/* Creates the temporary directory; 0 or -1. */
static int site_tmp_make(void)
{
    return mkdtemp(site_tmp) != NULL ? 0 : -1;
}

/* Removes it and everything in it. */
static void site_tmp_remove(void)
{
    char cmd[32 + sizeof(site_tmp)];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", site_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", site_tmp);
}

/* A fresh environment in <tmp>/<name> (whatever was there is removed),
 * created as storaged creates it. The path is written into dir (dirlen bytes). */
static int site_env_fresh(meta_t *m, const char *name, char *dir, size_t dirlen)
{
    char cmd[4200], err[256];
    snprintf(dir, dirlen, "%s/%s", site_tmp, name);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return -1;
    return meta_open_env(m, dir, 16u << 20, META_OPEN_CREATE, err, sizeof(err));
}

/* Appends PUT records of `size` bytes for bkt/k0 .. bkt/k{n-1}, seqs taken as storaged takes them. */
static int site_append_puts(meta_t *m, int n, uint64_t size)
{
    MDB_txn *txn;
    if (mdb_txn_begin(m->env, NULL, 0, &txn) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        char key[16];
        logrec_t r = {0};
        snprintf(key, sizeof(key), "k%d", i);
        r.op = LOGREC_PUT;
        r.bucket = "bkt";
        r.bucket_len = 3;
        r.key = key;
        r.key_len = strlen(key);
        r.size = size;
        r.mtime_ms = 1;
        r.origin = "site-a";
        r.origin_len = 6;
        if (replog_next_seq(m, txn, &r.seq) != 0 || (r.hlc = r.seq, replog_append(m, txn, &r)) != 0) {
            mdb_txn_abort(txn);
            return -1;
        }
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* A counter's committed value; UINT64_MAX when it cannot be read. */
static uint64_t site_counter(meta_t *m, meta_counter_t c)
{
    MDB_txn *txn;
    uint64_t v = UINT64_MAX;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn) != 0)
        return v;
    if (meta_state_get(m, txn, c, &v) != 0)
        v = UINT64_MAX;
    mdb_txn_abort(txn);
    return v;
}

#endif
