/* main.c - storaged: start-up, the store/metadata pairing check, signals. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/rand.h>
#include <h2o.h>
#include "storaged/commit.h"
#include "common/conf.h"
#include "storaged/http.h"
#include "storaged/repair.h"
#include "storaged/scrub.h"
#include "common/lockfile.h"
#include "common/log.h"
#include "storaged/meta.h"
#include "common/notify.h"
#include "storaged/store.h"

#define SHUTDOWN_GRACE_MS 10000

static void put_id(uint8_t id[16], uint64_t hi, uint64_t lo)
{
    for (int i = 0; i < 8; i++) {
        id[i] = (uint8_t)(hi >> (56 - 8 * i));
        id[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
}

static void get_id(const uint8_t id[16], uint64_t *hi, uint64_t *lo)
{
    *hi = *lo = 0;
    for (int i = 0; i < 8; i++) {
        *hi = *hi << 8 | id[i];
        *lo = *lo << 8 | id[8 + i];
    }
}

/* Pairs the data store with its metadata (formatting both when new), applies
 * the configured capacity and returns what a crash left pending to the free
 * map. One transaction; a new store's superblock is written after it, so
 * that the metadata holds the store's identity before the store does. A cut
 * between the two leaves metadata with an identity and no object, and a
 * store without a superblock: the next start writes the superblock. */
static int prepare(meta_t *m, store_t *s, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    uint64_t hi, lo, count = 0, bytes = 0, objects = 0;
    uint8_t id[16], sid[16];
    int ret, rc, sret, format = 0;

    if ((rc = mdb_txn_begin(m->env, NULL, 0, &txn)) != 0) {
        snprintf(err, errlen, "mdb_txn_begin: %s", mdb_strerror(rc));
        return CIO_EDB;
    }
    if ((ret = meta_state_get(m, txn, META_STORE_ID_HI, &hi)) != 0 || (ret = meta_state_get(m, txn, META_STORE_ID_LO, &lo)) != 0)
        goto fail;
    sret = store_read_super(s, sid);
    if (sret != 0 && sret != CIO_ENOTFOUND) {
        ret = sret;
        goto fail;
    }
    if (hi == 0 && lo == 0) {
        alloc_extent_t super;
        if (sret == 0) {
            snprintf(err, errlen, "%s holds a ComIO store but %s has no metadata for it; refusing to format it again", s->path,
                     "server.meta_path");
            ret = CIO_ECONFIG;
            goto fail;
        }
        if (RAND_bytes(id, sizeof(id)) != 1) {
            snprintf(err, errlen, "RAND_bytes failed");
            ret = CIO_ESYS;
            goto fail;
        }
        get_id(id, &hi, &lo);
        if ((ret = alloc_set_capacity(&m->alloc, txn, s->size)) != 0 ||
            (ret = alloc_alloc(&m->alloc, txn, STORE_SUPER_SIZE, &super)) != 0)
            goto fail;
        if (super.off != 0) {
            snprintf(err, errlen, "new store: superblock not at offset 0");
            ret = CIO_EPROTO;
            goto fail;
        }
        if ((ret = meta_state_put(m, txn, META_STORE_ID_HI, hi)) != 0 || (ret = meta_state_put(m, txn, META_STORE_ID_LO, lo)) != 0)
            goto fail;
        format = 1;
    } else {
        put_id(id, hi, lo);
        if (sret == CIO_ENOTFOUND && (ret = meta_state_get(m, txn, META_OBJECTS, &objects)) != 0)
            goto fail;
        if (sret == CIO_ENOTFOUND && objects == 0) {
            format = 1; /* the first start was cut before the superblock was synced: no object is on the store */
        } else if (sret == CIO_ENOTFOUND || memcmp(id, sid, 16) != 0) {
            snprintf(err, errlen, "%s does not belong to the metadata in server.meta_path (store id mismatch); refusing to start",
                     s->path);
            ret = CIO_ECONFIG;
            goto fail;
        }
        /* first, so that what a crash left pending cannot stand in the way of a smaller capacity */
        if ((ret = meta_pending_reclaim(m, txn, &count, &bytes)) != 0)
            goto fail;
        if ((ret = alloc_set_capacity(&m->alloc, txn, s->size)) != 0) {
            snprintf(err, errlen, "cannot change the capacity to %llu bytes: the space beyond it is in use",
                     (unsigned long long)s->size);
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        snprintf(err, errlen, "mdb_txn_commit: %s", mdb_strerror(rc));
        ret = rc == MDB_MAP_FULL ? CIO_EMAPFULL : CIO_EDB;
        goto fail;
    }
    if (format) {
        if ((ret = store_write_super(s, id)) != 0)
            goto fail;
        log_msg(LOG_LVL_INFO, "formatted a new store", "path", s->path, NULL);
    }
    if (count > 0) {
        char c[24], b[24];
        snprintf(c, sizeof(c), "%llu", (unsigned long long)count);
        snprintf(b, sizeof(b), "%llu", (unsigned long long)bytes);
        log_msg(LOG_LVL_INFO, "reclaimed space left by interrupted writes", "extents", c, "bytes", b, NULL);
    }
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (err[0] == '\0')
        snprintf(err, errlen, "cannot prepare the store: %s", cio_strerror(ret));
    if (ret == CIO_EMAPFULL && strlen(err) + 40 < errlen)
        strcat(err, " (raise server.meta_map_size)");
    return ret;
}

/* The directory h2o spills large request bodies to (instead of /tmp). */
static void set_body_spill_dir(const char *meta_path)
{
    char dir[FILENAME_MAX - 32];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/bodies", meta_path) >= sizeof(dir))
        return; /* too long a path: keep h2o's default */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_msg(LOG_LVL_WARN, "cannot create the body spill directory", "path", dir, "error", strerror(errno), NULL);
        return;
    }
    snprintf(h2o_socket_buffer_mmap_settings.fn_template, sizeof(h2o_socket_buffer_mmap_settings.fn_template), "%s/h2o.b.XXXXXX",
             dir);
}

static int is_loopback(const char *listen)
{
    return listen != NULL && (strncmp(listen, "127.", 4) == 0 || strcmp(listen, "::1") == 0 || strcmp(listen, "localhost") == 0);
}

int main(int argc, char **argv)
{
    conf_t conf;
    store_t store;
    meta_t meta;
    commit_t *commit = NULL;
    http_server_t *http = NULL;
    scrub_t *scrub = NULL;
    char err[1024] = "";
    sigset_t sigs;
    int sig, ret, meta_lock = -1;

    if (conf_init(&conf) != 0) {
        fprintf(stderr, "storaged: out of memory\n");
        return 1;
    }
    if (conf_from_args(&conf, argc, argv, NULL, err, sizeof(err)) != 0 ||
        (!conf.help && conf_finalize(&conf, 1, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s\n", err);
        conf_free(&conf);
        return 2;
    }
    if (conf.help) {
        conf_usage("storaged");
        conf_free(&conf);
        return 0;
    }
    log_init(conf.site_id, "storaged", conf.log_level, conf.log_json);
    if (conf.log_file != NULL && log_open_file(conf.log_file) != 0) {
        fprintf(stderr, "storaged: logging.file: cannot open '%s': %s\n", conf.log_file, strerror(errno));
        conf_free(&conf);
        return 2;
    }

    /* signals are taken by sigwait below; every thread inherits the mask */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* a taken port is found before the store is created or formatted: a bad start changes nothing */
    if (http_check_listen(&conf, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot start the HTTP server", "error", err, NULL);
        conf_free(&conf);
        return 1;
    }
    if (store_open(&store, conf.storage_path, conf.storage_size, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the data store", "error", err, NULL);
        conf_free(&conf);
        return 1;
    }
    if (meta_open(&meta, conf.meta_path, conf.meta_map_size, conf.site_id, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the metadata", "error", err, NULL);
        goto fail_store;
    }
    /* a copy of the store carries the same store id: the metadata is locked too (the store is, by store_open) */
    if ((meta_lock = lockfile_take(conf.meta_path, "storaged.lock", "storaged", err, sizeof(err))) == -1) {
        log_msg(LOG_LVL_ERROR, "cannot open the metadata", "error", err, NULL);
        goto fail_meta;
    }
    if (prepare(&meta, &store, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot start", "error", err, NULL);
        goto fail_meta;
    }
    set_body_spill_dir(conf.meta_path);
    if ((ret = commit_start(&commit, &meta, &store, conf.site_id, conf.repl_enabled, 2)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot start the committer", "error", cio_strerror(ret), NULL);
        goto fail_meta;
    }
    commit_set_checksums(commit, conf.checksums);
    commit_set_tombstone_ttl(commit, conf.tombstone_ttl_ms);
    commit_set_multipart_ttl(commit, conf.s3_multipart_ttl_ms);
    commit_set_conflict_ttl(commit, conf.conflict_ttl_ms);
    commit_set_max_clock_skew(commit, (int64_t)conf.max_clock_skew_ms);
    if (conf.checksums && (ret = repair_start(&conf, &meta, &store)) != 0)
        log_msg(LOG_LVL_ERROR, "cannot start the repairer: damaged objects are not repaired", "error", cio_strerror(ret), NULL);
    if ((ret = scrub_start(&scrub, &meta, &store, conf.scrub_rate, conf.scrub_interval_ms, conf.checksums)) != 0)
        log_msg(LOG_LVL_ERROR, "cannot start the scrub: serving without it", "error", cio_strerror(ret), NULL);
    if (http_start(&http, &conf, &meta, &store, commit, scrub, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot start the HTTP server", "error", err, NULL);
        repair_stop();
        scrub_stop(scrub);
        commit_stop(commit);
        goto fail_meta;
    }
    if (!is_loopback(conf.listen) && (conf.access_token == NULL || conf.access_token[0] == '\0'))
        log_msg(LOG_LVL_WARN, "listening beyond loopback without server.access_token: anyone who reaches the port can write", NULL);
    {
        char port[8];
        snprintf(port, sizeof(port), "%u", conf.port);
        log_msg(LOG_LVL_INFO, "storaged listening", "listen", conf.listen, "port", port, "storage", conf.storage_path, "meta",
                conf.meta_path, "replication", conf.repl_enabled ? "enabled" : "disabled", NULL);
    }
    notify_send("READY=1");

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (log_reopen() != 0)
                log_msg(LOG_LVL_ERROR, "cannot reopen the log file; still writing to the old one", "file", conf.log_file, "error",
                        strerror(errno), NULL);
            else if (conf.log_file != NULL)
                log_msg(LOG_LVL_INFO, "log file reopened", "file", conf.log_file, NULL);
            http_reload(http);
            continue;
        }
        break;
    }
    log_msg(LOG_LVL_INFO, "shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    notify_send("STOPPING=1");
    repair_stop(); /* first: a GET or a scrub waiting for a repair gets its 503 / CIO_EAGAIN now, not after the grace */
    http_stop(http, SHUTDOWN_GRACE_MS);
    scrub_stop(scrub); /* after the loops: no request reads it any more */
    commit_stop(commit);
    meta_close(&meta);
    close(meta_lock);
    store_close(&store);
    log_msg(LOG_LVL_INFO, "stopped", NULL);
    conf_free(&conf);
    return 0;
fail_meta:
    meta_close(&meta);
    if (meta_lock != -1)
        close(meta_lock);
fail_store:
    store_close(&store);
    conf_free(&conf);
    return 1;
}
