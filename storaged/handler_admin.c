/* handler_admin.c - the operator's endpoints: health, replication status, metrics, bucket list and purge. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "common/bucket.h"
#include "common/conflict.h"
#include "common/ctl.h"
#include "common/date.h"
#include "storaged/integrity.h"
#include "storaged/handler_admin.h"
#include "storaged/mpu.h"
#include "storaged/http_commit.h"
#include "storaged/path.h"
#include "storaged/repair.h"
#include "storaged/scrub.h"
#include "common/hlc.h"
#include "common/replog.h"
#include "common/replstat.h"

int handler_admin_buckets(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_txn *txn;
    buf_t b;
    int rc, n = 0;

    if ((txn = http_req_rtxn_begin(t)) == NULL || mdb_cursor_open(txn, srv->meta->buckets, &cur) != 0) {
        if (txn != NULL)
            http_req_rtxn_end(t);
        http_req_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    buf_init(&b, HTTP_REQ_REPLY_MAX);
    buf_puts(&b, "{\"buckets\":[");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        meta_bucket_t bk;
        char ts[DATE_ISO8601_MS_LEN + 1];
        if (meta_bucket_get(srv->meta, txn, k.mv_data, k.mv_size, &bk) != 0)
            continue;
        date_iso8601_ms(bk.ctime_ms, ts);
        buf_puts(&b, n++ == 0 ? "{\"name\":" : ",{\"name\":");
        buf_json_str(&b, k.mv_data, k.mv_size);
        buf_printf(&b, ",\"created\":\"%s\",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64, ts, bk.objects, bk.bytes);
        if (bk.version.hlc != 0) { /* 0: made by an object's PUT, never created or deleted as such */
            buf_printf(&b, ",\"version\":%" PRIu64 ",\"origin\":", bk.version.hlc);
            buf_json_str(&b, bk.version.origin, bk.version.origin_len);
        }
        if (bk.deleted) /* deleted elsewhere, kept here until its last object goes */
            buf_puts(&b, ",\"deleted\":true");
        buf_puts(&b, "}");
    }
    mdb_cursor_close(cur);
    http_req_rtxn_end(t);
    buf_puts(&b, "]}");
    http_req_reply_buf(req, 200, &b);
    return 0;
}

int handler_admin_health(http_server_t *srv, h2o_req_t *req)
{
    buf_t b;
    buf_init(&b, 4096);
    buf_puts(&b, "{\"status\":\"ok\",\"site\":");
    buf_json_str(&b, srv->conf->site_id, strlen(srv->conf->site_id));
    buf_puts(&b, ",\"version\":\"" COMIO_VERSION "\"}");
    http_req_reply_buf(req, 200, &b);
    return 0;
}

/* ---- questions to repld's control socket, asked off the event loop ---- */

#define ASIDES_MAX 16 /* concurrent questions; beyond, storaged answers from LMDB alone */

typedef struct aside {
    h2o_multithread_message_t msg;
    http_thread_t *thread;
    const conf_t *conf;
    h2o_req_t *req;        /* NULL once the client went away */
    struct aside **holder; /* the request pool's pointer to us */
    int metrics;           /* the question: 0 status, 1 metrics */
    int answered;          /* repld answered */
    buf_t answer;
    buf_t own; /* metrics: storaged's own part, made on the loop */
} aside_t;

static unsigned asides_running; /* all threads; atomic */

static void aside_dispose(void *p)
{
    aside_t *a = *(aside_t **)p;
    if (a != NULL)
        a->req = NULL;
}

static void *aside_main(void *arg)
{
    aside_t *a = arg;
    a->answered = ctl_query(a->conf->socket_path, a->metrics ? "metrics" : "status", &a->answer, 1000) == 0;
    h2o_multithread_send_message(&a->thread->aside_replies, &a->msg);
    return NULL;
}

/* storaged's part of the status: the sync targets' state (syncwait.h), as
 * "sync_targets" at the end of the JSON object in b. */
static void add_sync_status(http_server_t *srv, buf_t *b)
{
    if (srv->sync == NULL)
        return;
    while (b->len > 0 && b->data[b->len - 1] != '}')
        b->len--;
    if (b->len == 0)
        return;
    b->len--;
    buf_puts(b, ",\"sync_targets\":");
    syncwait_status_json(srv->sync, b);
    buf_puts(b, "}\n");
}

static void finish_status(http_server_t *srv, h2o_req_t *req, const buf_t *repld_answer)
{
    buf_t b;
    buf_init(&b, 64 * 1024);
    if (repld_answer != NULL) {
        buf_append(&b, repld_answer->data, repld_answer->len);
    } else if (replstat_json(srv->meta, srv->conf, NULL, &b) != 0) {
        buf_free(&b);
        http_req_cio_error(req, CIO_EDB, "status failed");
        return;
    }
    add_sync_status(srv, &b);
    if (b.err != 0) {
        buf_free(&b);
        http_req_cio_error(req, b.err, "status failed");
        return;
    }
    http_req_reply_buf(req, 200, &b);
}

static void finish_metrics(http_server_t *srv, h2o_req_t *req, buf_t *own, const buf_t *repld_answer)
{
    if (repld_answer != NULL)
        buf_append(own, repld_answer->data, repld_answer->len);
    else if (replstat_metrics(srv->meta, srv->conf, NULL, own) != 0)
        own->err = own->err ? own->err : CIO_EDB;
    if (own->err != 0) {
        http_req_reply_buf(req, 500, own);
        return;
    }
    http_req_reply(req, 200, "text/plain; version=0.0.4", own->data, own->len);
    buf_free(own);
}

void handler_admin_on_asides(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        aside_t *a = H2O_STRUCT_FROM_MEMBER(aside_t, msg.link, link);
        h2o_linklist_unlink(link);
        a->thread->asides--;
        __atomic_fetch_sub(&asides_running, 1, __ATOMIC_RELAXED);
        if (a->req != NULL) {
            http_server_t *srv = a->thread->srv;
            *a->holder = NULL;
            if (a->metrics)
                finish_metrics(srv, a->req, &a->own, a->answered ? &a->answer : NULL);
            else
                finish_status(srv, a->req, a->answered ? &a->answer : NULL);
        }
        buf_free(&a->answer);
        buf_free(&a->own);
        free(a);
    }
}

/* Asks the running repld (it knows the remote's state and its workers); when
 * it does not answer, storaged renders the same figures from LMDB alone.
 * Takes `own` (metrics only) whatever happens. Returns 1 when the question
 * went off (the answer comes later), 0 when the caller must answer now. */
static int ask_repld(http_server_t *srv, h2o_req_t *req, int metrics, buf_t *own)
{
    pthread_attr_t attr;
    pthread_t tid;
    aside_t *a;

    if (!srv->conf->repl_enabled || srv->conf->socket_path == NULL)
        return 0;
    if (__atomic_add_fetch(&asides_running, 1, __ATOMIC_RELAXED) > ASIDES_MAX || (a = calloc(1, sizeof(*a))) == NULL) {
        __atomic_fetch_sub(&asides_running, 1, __ATOMIC_RELAXED);
        return 0;
    }
    a->thread = http_req_thread(req);
    a->conf = srv->conf;
    a->req = req;
    a->metrics = metrics;
    buf_init(&a->answer, CTL_REPLY_MAX);
    buf_init(&a->own, HTTP_REQ_REPLY_MAX);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, aside_main, a) != 0) {
        pthread_attr_destroy(&attr);
        free(a);
        __atomic_fetch_sub(&asides_running, 1, __ATOMIC_RELAXED);
        return 0;
    }
    pthread_attr_destroy(&attr);
    if (own != NULL) {
        a->own = *own; /* the thread never touches `own` */
        buf_init(own, own->max);
    }
    a->holder = h2o_mem_alloc_shared(&req->pool, sizeof(*a->holder), aside_dispose);
    *a->holder = a;
    a->thread->asides++;
    return 1;
}

int handler_admin_status(http_server_t *srv, h2o_req_t *req)
{
    if (!ask_repld(srv, req, 0, NULL))
        finish_status(srv, req, NULL);
    return 0;
}

/* The bytes of large objects this site served to each target's fetches,
 * before and after compression (storaged's own: it serves them). */
static void fetch_metrics(http_server_t *srv, buf_t *b)
{
    static const char *const names[2] = {"comio_replication_fetch_payload_bytes_total", "comio_replication_fetch_wire_bytes_total"};
    static const char *const help[2] = {
        "Object bytes this site served to the target's fetches of large objects, since storaged started.",
        "The same fetches' body bytes as sent, compressed or not."};
    const conf_t *conf = srv->conf;

    if (conf->ntargets == 0)
        return;
    for (int k = 0; k < 2; k++) {
        uint64_t total = 0;
        for (size_t i = 0; i < conf->ntargets; i++)
            total += __atomic_load_n(&srv->fetch_bytes[i][k], __ATOMIC_RELAXED);
        buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", names[k], help[k], names[k], names[k], total);
        for (size_t i = 0; i < conf->ntargets; i++)
            buf_printf(b, "%s{target=\"%s\"} %" PRIu64 "\n", names[k], conf->targets[i].name,
                       __atomic_load_n(&srv->fetch_bytes[i][k], __ATOMIC_RELAXED));
    }
}

int handler_admin_metrics(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    uint64_t capacity = 0, free_bytes = 0, extents = 0, largest = 0, objects = 0, bytes = 0, head = 0, records = 0;
    uint64_t applied = 0, skipped = 0, failed = 0, permanent = 0, tombstones = 0, skew = 0, conflicts = 0, kept = 0;
    uint64_t commits, jobs, mpu_chased, mpu_hashed, mpu_joined, uploads = 0, expired = 0, summed = 0;
    integrity_stats_t is;
    MDB_txn *txn;
    buf_t b;

    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        http_req_cio_error(req, CIO_EDB, "metrics failed");
        return 0;
    }
    if (alloc_stats(&srv->meta->alloc, txn, &capacity, &free_bytes, &extents, &largest) != 0 ||
        meta_state_get(srv->meta, txn, META_OBJECTS, &objects) != 0 || meta_state_get(srv->meta, txn, META_BYTES, &bytes) != 0 ||
        replog_stats(srv->meta, txn, &head, &records) != 0 || meta_state_get(srv->meta, txn, META_APPLY_APPLIED, &applied) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_SKIPPED, &skipped) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_FAILED, &failed) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_PERMANENT, &permanent) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_CLOCK_SKEW, &skew) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_CONFLICTS, &conflicts) != 0 ||
        meta_tomb_count(srv->meta, txn, &tombstones) != 0 || conflict_count(srv->meta, txn, &kept) != 0 ||
        mpu_count(srv->meta, txn, &uploads) != 0 || meta_state_get(srv->meta, txn, META_MPU_EXPIRED, &expired) != 0 ||
        meta_sums_count(srv->meta, txn, &summed) != 0) {
        http_req_rtxn_end(t);
        http_req_cio_error(req, CIO_EDB, "metrics failed");
        return 0;
    }
    http_req_rtxn_end(t);
    commit_stats(srv->commit, &commits, &jobs);
    commit_mpu_stats(srv->commit, &mpu_chased, &mpu_hashed, &mpu_joined);

    buf_init(&b, HTTP_REQ_REPLY_MAX);
    http_req_metrics(&b);
    buf_printf(&b,
               "# HELP comio_objects Objects stored.\n"
               "# TYPE comio_objects gauge\n"
               "comio_objects %" PRIu64 "\n"
               "# HELP comio_object_bytes Bytes of object data stored (logical sizes).\n"
               "# TYPE comio_object_bytes gauge\n"
               "comio_object_bytes %" PRIu64 "\n"
               "# HELP comio_store_capacity_bytes Capacity of the data store managed by storaged.\n"
               "# TYPE comio_store_capacity_bytes gauge\n"
               "comio_store_capacity_bytes %" PRIu64 "\n"
               "# HELP comio_store_used_bytes Bytes of the data store allocated (including quarantined extents).\n"
               "# TYPE comio_store_used_bytes gauge\n"
               "comio_store_used_bytes %" PRIu64 "\n"
               "# HELP comio_store_free_bytes Bytes of the data store free.\n"
               "# TYPE comio_store_free_bytes gauge\n"
               "comio_store_free_bytes %" PRIu64 "\n"
               "# HELP comio_store_free_extents Free extents in the data store (fragmentation).\n"
               "# TYPE comio_store_free_extents gauge\n"
               "comio_store_free_extents %" PRIu64 "\n"
               "# HELP comio_store_largest_free_bytes Largest contiguous free extent (the largest object that fits).\n"
               "# TYPE comio_store_largest_free_bytes gauge\n"
               "comio_store_largest_free_bytes %" PRIu64 "\n"
               "# HELP comio_replog_head_seq Highest sequence number in the replication log.\n"
               "# TYPE comio_replog_head_seq gauge\n"
               "comio_replog_head_seq %" PRIu64 "\n"
               "# HELP comio_replog_records Records in the replication log not yet trimmed.\n"
               "# TYPE comio_replog_records gauge\n"
               "comio_replog_records %" PRIu64 "\n"
               "# HELP comio_commits_total Metadata transactions committed by the group committer.\n"
               "# TYPE comio_commits_total counter\n"
               "comio_commits_total %" PRIu64 "\n"
               "# HELP comio_commit_jobs_total Mutations completed by the group committer.\n"
               "# TYPE comio_commit_jobs_total counter\n"
               "comio_commit_jobs_total %" PRIu64 "\n",
               objects, bytes, capacity, capacity - free_bytes, free_bytes, extents, largest, head, records, commits, jobs);
    buf_printf(&b,
               "# HELP comio_replica_events_total Replicated events this site received as a replica, by result.\n"
               "# TYPE comio_replica_events_total counter\n"
               "comio_replica_events_total{result=\"applied\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"skipped\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"retry\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"permanent\"} %" PRIu64 "\n"
               "# HELP comio_replica_tombstones Deleted keys this site remembers (until replication.tombstone_ttl).\n"
               "# TYPE comio_replica_tombstones gauge\n"
               "comio_replica_tombstones %" PRIu64 "\n"
               "# HELP comio_clock_seconds This site's clock: the time of the largest version taken or applied, since the epoch.\n"
               "# TYPE comio_clock_seconds gauge\n"
               "comio_clock_seconds %" PRIu64 ".%03u\n",
               applied, skipped, failed - permanent, permanent, tombstones, hlc_ms(commit_clock(srv->commit)) / 1000,
               (unsigned)(hlc_ms(commit_clock(srv->commit)) % 1000));
    buf_printf(&b,
               "# HELP comio_s3_multipart_uploads S3 multipart uploads in progress (neither completed nor aborted).\n"
               "# TYPE comio_s3_multipart_uploads gauge\n"
               "comio_s3_multipart_uploads %" PRIu64 "\n"
               "# HELP comio_s3_multipart_uploads_expired_total Multipart uploads removed after s3.multipart_ttl.\n"
               "# TYPE comio_s3_multipart_uploads_expired_total counter\n"
               "comio_s3_multipart_uploads_expired_total %" PRIu64 "\n"
               "# HELP comio_s3_multipart_complete_bytes_total Bytes of completed multipart objects, by where their MD5 and "
               "block checksums were computed: as the parts were stored (chased) or by the Complete (hashed).\n"
               "# TYPE comio_s3_multipart_complete_bytes_total counter\n"
               "comio_s3_multipart_complete_bytes_total{hash=\"chased\"} %" PRIu64 "\n"
               "comio_s3_multipart_complete_bytes_total{hash=\"hashed\"} %" PRIu64 "\n"
               "# HELP comio_s3_multipart_joined_bytes_total Bytes of completed multipart objects whose parts lay back to "
               "back and became the object's extent, not copied.\n"
               "# TYPE comio_s3_multipart_joined_bytes_total counter\n"
               "comio_s3_multipart_joined_bytes_total %" PRIu64 "\n",
               uploads, expired, mpu_chased, mpu_hashed, mpu_joined);
    integrity_stats(&is);
    buf_printf(&b,
               "# HELP comio_checksum_blocks_verified_total Blocks of object data read and verified against their checksums.\n"
               "# TYPE comio_checksum_blocks_verified_total counter\n"
               "comio_checksum_blocks_verified_total %" PRIu64 "\n"
               "# HELP comio_checksum_mismatches_total Object data found damaged: a read whose block fails its checksum (get), "
               "bytes received for a replica that fail the event's ETag (apply).\n"
               "# TYPE comio_checksum_mismatches_total counter\n"
               "comio_checksum_mismatches_total{path=\"get\"} %" PRIu64 "\n"
               "comio_checksum_mismatches_total{path=\"apply\"} %" PRIu64 "\n"
               "comio_checksum_mismatches_total{path=\"scrub\"} %" PRIu64 "\n"
               "# HELP comio_checksum_objects_unverified Objects without block checksums (written before them or with "
               "storage.checksums off): served unverified.\n"
               "# TYPE comio_checksum_objects_unverified gauge\n"
               "comio_checksum_objects_unverified %" PRIu64 "\n",
               is.verified, is.mismatches[INTEGRITY_GET], is.mismatches[INTEGRITY_APPLY], is.mismatches[INTEGRITY_SCRUB],
               objects > summed ? objects - summed : 0);
    scrub_t *sc = srv->scrub;
    if (sc != NULL) {
        if ((txn = http_req_rtxn_begin(t)) == NULL) {
            buf_free(&b);
            http_req_cio_error(req, CIO_EDB, "metrics failed");
            return 0;
        }
        int sret = scrub_metrics(sc, srv->meta, txn, &b);
        http_req_rtxn_end(t);
        if (sret != 0) {
            buf_free(&b);
            http_req_cio_error(req, sret, "metrics failed");
            return 0;
        }
    }
    fetch_metrics(srv, &b);
    if (srv->sync != NULL)
        syncwait_metrics(srv->sync, &b);
    if (b.err != 0) {
        http_req_reply_buf(req, 500, &b);
        return 0;
    }
    /* a primary adds the shipper's comio_replication_* figures */
    if (srv->conf->repl_enabled && !ask_repld(srv, req, 1, &b))
        finish_metrics(srv, req, &b, NULL);
    else if (!srv->conf->repl_enabled) {
        if (srv->conf->accept_token != NULL) {
            replstat_skew_metric(skew, &b); /* a site that only applies counts skew and conflicts too */
            replstat_conflicts_metric(conflicts, kept, &b);
        }
        http_req_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
        buf_free(&b);
    }
    return 0;
}

int handler_admin_purge(http_server_t *srv, h2o_req_t *req, const char *name, size_t nlen)
{
    http_thread_t *t = http_req_thread(req);
    char confirm[16];
    size_t clen;
    path_t p;
    meta_bucket_t bk;
    MDB_txn *txn;
    buf_t b;
    int ret;

    memset(&p, 0, sizeof(p));
    if (!bucket_name_valid(name, nlen)) {
        http_req_error(req, 400, "InvalidBucketName", "invalid bucket name");
        return 0;
    }
    memcpy(p.bucket, name, nlen);
    p.bucket_len = nlen;
    ret = http_req_query_param(req, "confirm", confirm, sizeof(confirm), &clen);
    if (ret == 0 && strcmp(confirm, "true") == 0)
        return http_commit_mutation(req, COMMIT_PURGE, &p);
    /* a dry run: report what a purge would remove */
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        http_req_cio_error(req, CIO_EDB, "purge failed");
        return 0;
    }
    ret = meta_bucket_get(srv->meta, txn, p.bucket, p.bucket_len, &bk);
    http_req_rtxn_end(t);
    if (ret == CIO_ENOTFOUND) {
        http_req_error(req, 404, "NoSuchBucket", "no such bucket");
        return 0;
    }
    if (ret != 0) {
        http_req_cio_error(req, ret, "purge failed");
        return 0;
    }
    buf_init(&b, 1024);
    buf_printf(&b, "{\"count\":%" PRIu64 ",\"total_size\":%" PRIu64 "}", bk.objects, bk.bytes);
    http_req_reply_buf(req, 200, &b);
    return 0;
}

/* The 429 of a check the repair's back-off dropped: what failed last, and
 * when asking again runs (also as Retry-After, in whole seconds). */
static void reply_held(h2o_req_t *req, const repair_asked_t *asked)
{
    const char *last = asked->failure == CIO_ENOTFOUND  ? "no peer holds this version"
                       : asked->failure == CIO_ECORRUPT ? "every peer's copy is damaged too"
                                                        : "no peer gave a good copy (unreachable, timed out or failed)";
    char secs[24];
    buf_t b;

    snprintf(secs, sizeof(secs), "%" PRIu64, (asked->retry_in_ms + 999) / 1000);
    buf_init(&b, 1024);
    buf_puts(&b, "{\"error\":\"not queued: this object's last repair found no good copy, and asking again is held back until "
                 "retry_in_ms has passed (force=true asks now)\",\"code\":\"RepairBackoff\",\"queued\":false,\"last_failure\":");
    buf_json_str(&b, last, strlen(last));
    buf_printf(&b, ",\"retry_in_ms\":%" PRIu64 "}", asked->retry_in_ms);
    http_req_add_header(req, H2O_TOKEN_RETRY_AFTER, secs, strlen(secs));
    http_req_reply_buf(req, 429, &b);
}

/* POST /admin/scrub?bucket=B&key=K[&force=true]: one object checked now,
 * and repaired if damaged (repair_check_ask), for repld when its inline
 * read finds damage and for an operator. 202 when queued (or one is queued
 * or running already), 429 when the repair's back-off dropped it. */
static void check_one(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    char bucket[LOGREC_BUCKET_MAX + 1], key[LOGREC_KEY_MAX + 1], force[8];
    size_t blen, klen, flen;
    repair_what_t w;
    repair_asked_t asked;
    meta_obj_t o;
    MDB_txn *txn;
    int ret;

    if (http_req_query_param(req, "bucket", bucket, sizeof(bucket), &blen) != 0 || blen == 0 ||
        http_req_query_param(req, "key", key, sizeof(key), &klen) != 0 || klen == 0) {
        http_req_error(req, 400, "InvalidArgument", "bucket and key must both be given, each within its length limit");
        return;
    }
    if ((ret = http_req_query_param(req, "force", force, sizeof(force), &flen)) != CIO_ENOTFOUND &&
        (ret != 0 || flen != 4 || memcmp(force, "true", 4) != 0)) {
        http_req_error(req, 400, "InvalidArgument", "force must be true");
        return;
    }
    int forced = ret == 0;
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        http_req_cio_error(req, CIO_EDB, "object check failed");
        return;
    }
    ret = meta_obj_get(srv->meta, txn, bucket, blen, key, klen, &o);
    if (ret == 0)
        repair_what_set(&w, bucket, blen, key, klen, o.version, o.origin, o.origin_len, o.off, UINT64_MAX, INTEGRITY_SCRUB);
    http_req_rtxn_end(t);
    if (ret == CIO_ENOTFOUND) {
        http_req_error(req, 404, "NoSuchKey", "no such object");
        return;
    }
    if (ret == 0 && (ret = repair_check_ask(&w, forced, &asked)) == CIO_EAGAIN) {
        http_req_error(req, 503, "ServiceUnavailable", "the repair queue is full or stopped (or storage.checksums is off)");
        return;
    }
    if (ret != 0) {
        http_req_cio_error(req, ret, "object check failed");
        return;
    }
    if (asked.how == REPAIR_ASKED_BACKOFF) {
        reply_held(req, &asked);
        return;
    }
    static const char queued[] = "{\"queued\":true}", joined[] = "{\"queued\":true,\"already\":true}";
    if (asked.how == REPAIR_ASKED_JOINED)
        http_req_reply(req, 202, "application/json", joined, sizeof(joined) - 1);
    else
        http_req_reply(req, 202, "application/json", queued, sizeof(queued) - 1);
}

int handler_admin_scrub(http_server_t *srv, h2o_req_t *req, int method)
{
    http_thread_t *t = http_req_thread(req);
    scrub_t *sc = srv->scrub;
    int status = 200, ret;
    char num[8];
    size_t len;
    MDB_txn *txn;
    buf_t b;

    if (method != HTTP_REQ_GET && method != HTTP_REQ_HEAD && method != HTTP_REQ_POST) {
        http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (sc == NULL) {
        http_req_error(req, 503, "ServiceUnavailable", "the scrub could not start: see the log");
        return 0;
    }
    int release = method == HTTP_REQ_POST ? http_req_query_param(req, "release-quarantine", num, sizeof(num), &len) : CIO_ENOTFOUND;
    if (release != CIO_ENOTFOUND) {
        /* the damaged extents repairs set aside go back to the allocator (storaged/quarantine.h) */
        uint64_t extents, bytes;
        if (release != 0 || strcmp(num, "true") != 0) {
            http_req_error(req, 400, "InvalidArgument", "release-quarantine must be true");
            return 0;
        }
        if ((ret = scrub_release_quarantine(srv->meta, &extents, &bytes)) != 0) {
            http_req_cio_error(req, ret, "releasing the quarantine failed");
            return 0;
        }
        buf_init(&b, 256);
        buf_printf(&b, "{\"released_extents\":%" PRIu64 ",\"released_bytes\":%" PRIu64 "}", extents, bytes);
        http_req_reply_buf(req, 200, &b);
        return 0;
    }
    if (method == HTTP_REQ_POST && (http_req_query_param(req, "key", num, sizeof(num), &len) != CIO_ENOTFOUND ||
                                    http_req_query_param(req, "bucket", num, sizeof(num), &len) != CIO_ENOTFOUND)) {
        check_one(srv, req);
        return 0;
    }
    if (method == HTTP_REQ_POST) {
        ret = scrub_request(sc);
        if (ret == CIO_EAGAIN) {
            http_req_error(req, 409, "ScrubRunning", "a scrub pass is running already");
            return 0;
        }
        if (ret != 0) {
            http_req_error(req, 409, "ScrubDisabled", "storage.checksums is off: there is nothing to verify");
            return 0;
        }
        status = 202;
    }
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        http_req_cio_error(req, CIO_EDB, "scrub status failed");
        return 0;
    }
    buf_init(&b, 1024 * 1024);
    ret = scrub_status_json(sc, srv->meta, txn, &b);
    http_req_rtxn_end(t);
    if (ret != 0 || b.err != 0) {
        buf_free(&b);
        http_req_cio_error(req, ret != 0 ? ret : b.err, "scrub status failed");
        return 0;
    }
    http_req_reply_buf(req, status, &b);
    return 0;
}
