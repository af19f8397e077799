/* handler_repl.c - the replication endpoints: apply a batch (replica), serve a presigned fetch (primary). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "common/clock.h"
#include "common/bucket.h"
#include "common/log.h"
#include "common/zcodec.h"
#include "proto/synclist.h"
#include "storaged/apply.h"
#include "proto/presign.h"
#include "storaged/apply.h"
#include "storaged/handler_object.h"
#include "storaged/handler_repl.h"
#include "storaged/http_commit.h"
#include "storaged/path.h"
#include "storaged/repair.h"
#include "storaged/repl_verify.h"

#define REFUSAL_LOG_MS 60000 /* "no accept_token" is logged at most this often */

/* The refusal is the operator's to fix, not the sender's: say it in the log,
 * but not once per batch of a primary that keeps retrying. */
static void log_refusal(http_server_t *srv)
{
    int64_t now = clock_mono_ms();
    int64_t last = __atomic_load_n(&srv->refusal_logged_ms, __ATOMIC_RELAXED);
    if (last != 0 && now - last < REFUSAL_LOG_MS)
        return;
    if (!__atomic_compare_exchange_n(&srv->refusal_logged_ms, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return; /* another loop logs it */
    log_msg(LOG_LVL_WARN, "refusing replication batches: replication.accept_token is not set on this site", NULL);
}

/* The body of a batch as sent: identity, or zstd (docs/protocol.md). Sets
 * *body and *len to the batch itself, decoded into pend->body_owned when it
 * came compressed. Returns 0, or answers the request (415 for an encoding
 * other than these, 400 for a frame that is corrupt or decodes to more than
 * the largest body this site accepts) and returns -1. */
static int batch_body(http_server_t *srv, h2o_req_t *req, http_commit_t *pend, const char **body, size_t *len)
{
    h2o_iovec_t enc = http_req_header(req, H2O_TOKEN_CONTENT_ENCODING);
    char err[200];
    buf_t out;
    int ret;

    *body = req->entity.base != NULL ? req->entity.base : "";
    *len = req->entity.len;
    if (enc.base == NULL || h2o_lcstris(enc.base, enc.len, H2O_STRLIT("identity")))
        return 0;
    if (!h2o_lcstris(enc.base, enc.len, H2O_STRLIT("zstd"))) {
        http_req_error(req, 415, "UnsupportedContentEncoding", "a batch is sent as is or with Content-Encoding: zstd");
        return -1;
    }
    /* on the loop thread: zstd decodes at a GB/s or more, a batch of a few MB in milliseconds */
    buf_init(&out, 0);
    ret = zcodec_decompress(*body, *len, (size_t)srv->conf->max_object_size, &out, err, sizeof(err));
    if (ret == CIO_ENOMEM) {
        http_req_cio_error(req, ret, "batch failed");
        return -1;
    }
    if (ret != 0) {
        http_req_error(req, 400, ret == CIO_ETOOBIG ? "BatchTooLarge" : "MalformedCompressedBatch", err);
        return -1;
    }
    pend->body_owned = out.data != NULL ? out.data : strdup("");
    if (pend->body_owned == NULL) {
        http_req_cio_error(req, CIO_ENOMEM, "batch failed");
        return -1;
    }
    *body = pend->body_owned;
    *len = out.len;
    return 0;
}

/* The replication token check of the batch and listing endpoints: 1 when
 * the request may go on, else 0 with the error answered. */
static int repl_authorized(http_server_t *srv, h2o_req_t *req)
{
    const char *token = srv->conf->accept_token;
    if (token == NULL || *token == '\0') {
        log_refusal(srv);
        http_req_error(req, 403, "ReplicationNotAccepted", "this site accepts no replication: replication.accept_token is not set");
        return 0;
    }
    if (!http_req_bearer_matches(req, token)) {
        http_req_error(req, 401, "Unauthorized", "missing or wrong replication token");
        return 0;
    }
    return 1;
}

int handler_repl_apply(http_server_t *srv, h2o_req_t *req)
{
    char err[256];
    http_commit_t *pend;
    const char *body;
    size_t len;
    int ret;

    if (!repl_authorized(srv, req))
        return 0;
    if ((pend = calloc(1, sizeof(*pend))) == NULL) {
        http_req_cio_error(req, CIO_ENOMEM, "batch failed");
        return 0;
    }
    if (batch_body(srv, req, pend, &body, &len) != 0) {
        free(pend);
        return 0;
    }
    pend->job.op = COMMIT_APPLY;
    pend->job.body = body;
    pend->job.fetch = &srv->fetch;
    pend->job.done = http_commit_job_done;
    pend->job.ctx = pend;
    pend->thread = http_req_thread(req);
    pend->req = req;
    /* decoding is cheap and allocation-bounded; hashing and writing the
     * inline data happen off the loop, on the committer's I/O threads */
    ret = apply_decode(&pend->job, pend->job.body, len, err, sizeof(err));
    if (ret != 0 || pend->job.nitems == 0) {
        if (ret == CIO_EPROTO)
            http_req_error(req, 400, "MalformedBatch", err);
        else if (ret != 0)
            http_req_cio_error(req, ret, "batch failed");
        else
            http_commit_answer_apply(req, &pend->job); /* an empty batch: nothing to commit */
        free(pend->body_owned);
        free(pend);
        return 0;
    }
    return http_commit_submit(req, pend);
}

/* GET /admin/replication/fetch/{bucket}/{key}?version=V&origin=O&expires=E&sig=HEX
 * (a URL of the previous release has no origin: proto/presign.h) */
/* The tokens a fetch URL may be signed with: each target's (repld signs a
 * target's fetches with its token), or the seed's remote_token on a site
 * that ships nowhere; and last this site's accept_token, with which a site
 * that ships here signs its repairs (storaged/repair.h): it holds the
 * token that lets it write here, so reading costs nothing more. */
static size_t fetch_nsecrets(const conf_t *conf)
{
    return (conf->ntargets > 0 ? conf->ntargets : 1) + 1;
}

static const char *fetch_secret(const conf_t *conf, size_t i)
{
    if (i == fetch_nsecrets(conf) - 1)
        return conf->accept_token;
    return conf->ntargets > 0 ? conf->targets[i].token : conf->remote_token;
}

static int fetch_has_secret(const conf_t *conf)
{
    for (size_t i = 0; i < fetch_nsecrets(conf); i++) {
        const char *s = fetch_secret(conf, i);
        if (s != NULL && *s != '\0')
            return 1;
    }
    return 0;
}

int handler_repl_fetch(http_server_t *srv, h2o_req_t *req, int method)
{
    static const char prefix[] = "/admin/replication/fetch";
    /* repld signs each target's fetches with that target's token: any of them may have signed this one */
    const conf_t *conf = srv->conf;
    const char *code;
    char num[32], sig[PRESIGN_SIG_HEX + 2], origin[LIMIT_SITE_ID_MAX + 2];
    unsigned long long version, expires;
    size_t len, siglen, origin_len = 0;
    int has_origin = 0, zstd_level = 0;
    uint64_t *counts = NULL;
    int bw_slot = -1;
    path_t p;
    char *end;
    int ret;

    if (method != HTTP_REQ_GET) {
        http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (!fetch_has_secret(conf)) {
        http_req_error(req, 403, "AccessDenied", "this site serves no replication fetches: no target has a token");
        return 0;
    }
    if (path_parse(req->path.base + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1), &p, &code) != 0) {
        http_req_error(req, 400, code, "malformed fetch path");
        return 0;
    }
    if (p.bucket_len == 0 || p.key_len == 0) {
        http_req_error(req, 400, "InvalidURI", "expected /admin/replication/fetch/{bucket}/{key}");
        return 0;
    }
    /* a missing or unreadable version, expires or sig can only be a URL
     * nobody signed: the same answer as a wrong signature */
    if (http_req_query_param(req, "version", num, sizeof(num), &len) != 0 || len == 0 || num[0] < '0' || num[0] > '9' ||
        (errno = 0, version = strtoull(num, &end, 10), *end != '\0' || errno == ERANGE) || version == 0 ||
        http_req_query_param(req, "expires", num, sizeof(num), &len) != 0 || len == 0 || num[0] < '0' || num[0] > '9' ||
        (errno = 0, expires = strtoull(num, &end, 10), *end != '\0' || errno == ERANGE) || expires > INT64_MAX)
        ret = CIO_EINVAL;
    else if (http_req_query_param(req, "sig", sig, sizeof(sig), &siglen) != 0)
        ret = CIO_EINVAL;
    else if ((has_origin = http_req_query_param(req, "origin", origin, sizeof(origin), &origin_len) == 0) &&
             !presign_origin_valid(origin, origin_len))
        ret = CIO_EINVAL;
    else {
        /* a bad signature under one target's token may be good under the next */
        ret = CIO_EINVAL;
        for (size_t i = 0; i < fetch_nsecrets(conf) && ret == CIO_EINVAL; i++) {
            const char *secret = fetch_secret(conf, i);
            if (secret != NULL && *secret != '\0')
                ret = presign_verify(secret, strlen(secret), "GET", p.bucket, p.bucket_len, p.key, p.key_len, version,
                                     has_origin ? origin : NULL, origin_len, (int64_t)expires, sig, siglen, clock_wall_ms() / 1000);
            /* the token that signed it names the target fetching: its compression applies */
            if (ret == 0 && i < conf->ntargets) {
                counts = srv->fetch_bytes[i];
                bw_slot = bwlimit_slot(srv->bw, conf->targets[i].name);
                if (conf->targets[i].compression == CONF_COMPRESSION_ZSTD)
                    zstd_level = (int)conf->targets[i].compression_level;
            }
        }
    }
    if (ret == CIO_EAGAIN) {
        http_req_error(req, 403, "ExpiredSignature", "the fetch URL has expired");
        return 0;
    }
    if (ret == CIO_ENOMEM) {
        http_req_cio_error(req, ret, "signature check failed");
        return 0;
    }
    if (ret != 0) {
        http_req_error(req, 403, "SignatureDoesNotMatch", "the fetch URL's signature does not match");
        return 0;
    }
    if (http_req_query_param(req, "verify", num, sizeof(num), &len) == 0 && strcmp(num, "1") == 0)
        return repl_verify_serve(srv, req, &p, version, has_origin ? origin : NULL, origin_len); /* off the loop */
    /* a peer's repair fetching our copy (REPAIR_URL_MARK, outside the signature: it can only make us ask less) queues no
     * repair of ours; a replica's fetch does (handler_object.h, repair_behind) */
    int is_repair = http_req_query_param(req, REPAIR_URL_PARAM, num, sizeof(num), &len) == 0 && strcmp(num, "1") == 0;
    /* a version kept as a conflict's loser is served too: the fetching site records the race */
    return handler_object_serve(srv, req, &p, version, has_origin ? origin : NULL, origin_len, 2, zstd_level, counts, bw_slot,
                                !is_repair);
}

/* ---- the listing for a full sync ---- */

static int list_buckets(http_server_t *srv, MDB_txn *txn, synclist_enc_t *e)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;

    if ((rc = mdb_cursor_open(txn, srv->meta->buckets, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(buckets)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        meta_bucket_t bk;
        meta_ver_t purge;
        synclist_bucket_t b;
        if ((ret = meta_bucket_get(srv->meta, txn, k.mv_data, k.mv_size, &bk)) != 0 ||
            (ret = meta_purge_get(srv->meta, txn, k.mv_data, k.mv_size, &purge)) != 0)
            break;
        b.name = k.mv_data;
        b.name_len = k.mv_size;
        b.hlc = bk.version.hlc;
        b.origin = bk.version.origin;
        b.origin_len = bk.version.origin_len;
        b.deleted = bk.deleted;
        b.purge_hlc = purge.hlc;
        b.purge_origin = purge.origin;
        b.purge_origin_len = purge.origin_len;
        ret = synclist_enc_bucket(e, &b);
    }
    mdb_cursor_close(cur);
    return ret;
}

#define LIST_PAGE 256 /* keys read from LMDB at a time: a page's records are copied, so this bounds the memory */

static int list_keys(http_server_t *srv, MDB_txn *txn, const char *b, size_t blen, const char *after, size_t alen, size_t max,
                     synclist_enc_t *e, int *more)
{
    char last[LIMIT_KEY_MAX];
    size_t lastlen = alen, listed = 0;
    int ret = 0;

    memcpy(last, after, alen);
    *more = 1;
    while (*more && listed < max && ret == 0) {
        meta_entry_t *page;
        size_t n, want = max - listed < LIST_PAGE ? max - listed : LIST_PAGE;
        if ((ret = meta_key_page(srv->meta, txn, b, blen, last, lastlen, want, &page, &n, more)) != 0)
            return ret;
        if (n > want) {
            n = want;
            *more = 1;
        }
        for (size_t i = 0; i < n && ret == 0; i++) {
            const meta_obj_t *o = &page[i].obj;
            synclist_key_t k;
            memset(&k, 0, sizeof(k));
            k.key = o->key;
            k.key_len = o->key_len;
            k.hlc = o->version;
            k.origin = o->origin;
            k.origin_len = o->origin_len;
            k.deleted = page[i].deleted;
            if (!k.deleted) {
                memcpy(k.etag, o->etag, 16);
                k.size = o->size;
            }
            if (k.hlc != 0) /* a version of none cannot be compared: a record of a store never upgraded */
                ret = synclist_enc_key(e, &k);
        }
        if (n > 0) {
            lastlen = page[n - 1].obj.key_len;
            memcpy(last, page[n - 1].obj.key, lastlen);
        }
        listed += n;
        free(page);
    }
    return ret;
}

int handler_repl_list(http_server_t *srv, h2o_req_t *req, int method)
{
    http_thread_t *t = http_req_thread(req);
    char bucket[LIMIT_BUCKET_MAX + 2], num[24], *end, after[LIMIT_KEY_MAX + 2];
    size_t blen = 0, alen = 0, len, max = HANDLER_REPL_LIST_DEFAULT;
    int has_bucket, ret, more = 0;
    synclist_enc_t e;
    const char *body;
    MDB_txn *txn;

    if (method != HTTP_REQ_GET) {
        http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (!repl_authorized(srv, req))
        return 0;
    ret = http_req_query_param(req, "bucket", bucket, sizeof(bucket), &blen);
    has_bucket = ret == 0;
    if ((ret != 0 && ret != CIO_ENOTFOUND) || (has_bucket && !bucket_name_valid(bucket, blen))) {
        http_req_error(req, 400, "InvalidBucketName", "bucket: not a valid bucket name");
        return 0;
    }
    ret = http_req_query_param(req, "after", after, sizeof(after), &alen);
    if ((ret != 0 && ret != CIO_ENOTFOUND) || alen > LIMIT_KEY_MAX) {
        http_req_error(req, 400, "InvalidArgument", "after: a key of at most " LIMIT_TEXT(LIMIT_KEY_MAX) " bytes");
        return 0;
    }
    if (ret == 0 && !has_bucket) {
        http_req_error(req, 400, "InvalidArgument", "after: goes with bucket");
        return 0;
    }
    ret = http_req_query_param(req, "max", num, sizeof(num), &len);
    if (ret == 0) {
        unsigned long long v;
        errno = 0;
        v = strtoull(num, &end, 10);
        if (len == 0 || num[0] < '0' || num[0] > '9' || *end != '\0' || errno == ERANGE || v < 1 || v > HANDLER_REPL_LIST_MAX) {
            http_req_error(req, 400, "InvalidArgument", "max: a number from 1 to " LIMIT_TEXT(HANDLER_REPL_LIST_MAX));
            return 0;
        }
        max = (size_t)v;
    } else if (ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, "InvalidArgument", "max: a number from 1 to " LIMIT_TEXT(HANDLER_REPL_LIST_MAX));
        return 0;
    }
    if (synclist_enc_init(&e, has_bucket ? SYNCLIST_KEYS : SYNCLIST_BUCKETS, srv->conf->site_id, strlen(srv->conf->site_id),
                          srv->store_id, strlen(srv->store_id)) != 0) {
        http_req_cio_error(req, CIO_ENOMEM, "listing failed");
        return 0;
    }
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        synclist_enc_free(&e);
        http_req_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    ret = has_bucket ? list_keys(srv, txn, bucket, blen, after, alen, max, &e, &more) : list_buckets(srv, txn, &e);
    http_req_rtxn_end(t);
    if (ret == 0)
        ret = synclist_enc_finish(&e, more, &body, &len);
    if (ret != 0)
        http_req_cio_error(req, ret, "listing failed");
    else
        http_req_reply(req, 200, APPLY_CTYPE, body, len);
    synclist_enc_free(&e);
    return 0;
}
