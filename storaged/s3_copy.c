/* s3_copy.c - S3's CopyObject: PUT /{bucket}/{key} with x-amz-copy-source.
 *
 * The source's record is looked up on the loop, its bytes are read by a
 * thread of their own (never on the loop: an object may be as large as
 * server.max_object_size), then the copy is committed as an ordinary PUT
 * through the group committer, so that it is one log record and replicates
 * like any other write. A reader token (commit_reader_enter) taken before the
 * lookup keeps the source's extent from being reused until the bytes are
 * read, even when the source is overwritten or deleted meanwhile: the copy is
 * of the version that was current when the request arrived. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/date.h"
#include "storaged/http_commit.h"
#include "storaged/http_precond.h"
#include "storaged/objmeta_http.h"
#include "storaged/s3.h"
#include "storaged/integrity.h"
#include "storaged/repair.h"
#include "storaged/s3_reply.h"

#define COPY_READS_MAX 8 /* sources being read at once, all loops together; beyond, 503 SlowDown */

/* One copy between its lookup and its submission to the committer. */
typedef struct copy {
    h2o_multithread_message_t msg;
    http_server_t *srv;
    http_thread_t *thread;
    h2o_multithread_receiver_t *rx; /* the loop's receiver of read copies (copy_rx of that loop) */
    h2o_req_t *req;                 /* NULL once the client went away */
    struct copy **holder;           /* the request pool's pointer to us */
    uint64_t token;                 /* reader token; left by the reading thread */
    uint64_t off, size;             /* the source's extent and size */
    char *body;                     /* malloc'ed, size bytes (at least 1); handed to the PUT's job */
    int read_rc;                    /* integrity_read's result */
    int have_sums;                  /* the source's bytes are verified against its block checksums: */
    blocksum_view_t sums;           /* those, their CRCs in sums_owned (malloc'ed) */
    uint8_t *sums_owned;
    uint64_t bad_block; /* read_rc CIO_ECORRUPT: the first block that failed */
    repair_what_t what; /* the source's identity, for the reading thread's repair */
    const path_t *src;  /* the source and its record, in the request's pool: read only while req lives */
    const meta_obj_t *src_obj;
    path_t dest;
    char ctype[LOGREC_CTYPE_MAX + 1];
    size_t ctype_len;
    uint8_t meta[OBJMETA_MAX];
    size_t meta_len;
} copy_t;

static unsigned copies_reading;                     /* all loops; atomic */
static __thread h2o_multithread_receiver_t copy_rx; /* this loop's receiver of read copies */
static __thread int copy_rx_ready;

static void copy_free(copy_t *c)
{
    free(c->sums_owned);
    free(c->body);
    free(c);
}

static void copy_dispose(void *p)
{
    copy_t *c = *(copy_t **)p;
    if (c != NULL)
        c->req = NULL;
}

/* Reads the source again after its repair: the same version at its new
 * extent, verified. Returns integrity_read's codes; CIO_ECORRUPT when the
 * source is no longer that version (the copy is of the version current when
 * the request arrived). Reading thread. */
static int reread_repaired(copy_t *c)
{
    const repair_what_t *w = &c->what;
    uint64_t token = commit_reader_enter(c->srv->commit);
    MDB_txn *txn = NULL;
    meta_obj_t o;
    int ret;

    free(c->sums_owned);
    c->sums_owned = NULL;
    c->have_sums = 0;
    if (mdb_txn_begin(c->srv->meta->env, NULL, MDB_RDONLY, &txn) != 0) {
        ret = CIO_EDB;
        goto out;
    }
    ret = meta_obj_get(c->srv->meta, txn, w->bucket, w->blen, w->key, w->klen, &o);
    if (ret == CIO_ENOTFOUND || (ret == 0 && (!meta_obj_current(&o, w->version, w->origin, w->origin_len) || o.size != c->size)))
        ret = CIO_ECORRUPT;
    if (ret == 0)
        ret = integrity_sums(c->srv->meta, txn, w->bucket, w->blen, w->key, w->klen, &o, 0, o.size, &c->sums, &c->sums_owned,
                             &c->have_sums);
    mdb_txn_abort(txn);
    if (ret == 0) {
        c->off = o.off;
        ret = integrity_read(c->srv->store, c->off, 0, c->body, (size_t)c->size, c->have_sums ? &c->sums : NULL, &c->bad_block);
    }
out:
    commit_reader_leave(c->srv->commit, token);
    return ret;
}

static void *copy_read_main(void *arg)
{
    copy_t *c = arg;
    /* the source is verified as a GET is: damaged bytes never become a new object with fresh checksums */
    c->read_rc = c->size > 0 ? integrity_read(c->srv->store, c->off, 0, c->body, (size_t)c->size, c->have_sums ? &c->sums : NULL,
                                              &c->bad_block)
                             : 0;
    commit_reader_leave(c->srv->commit, c->token);
    if (c->read_rc == CIO_ECORRUPT) {
        /* repaired from a peer (this thread may wait for it), then read again */
        integrity_damaged(INTEGRITY_GET, c->what.bucket, c->what.key, c->what.version, c->what.origin, c->bad_block);
        c->what.block = c->bad_block;
        if (repair_object(&c->what, REPAIR_LANE_CLIENT) == 0)
            c->read_rc = reread_repaired(c);
    }
    h2o_multithread_send_message(c->rx, &c->msg);
    return NULL;
}

static void answer_copy(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35], ts[DATE_ISO8601_MS_LEN + 1];
    buf_t b;

    if (j->result == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
        return;
    }
    if (j->result != 0) {
        s3_error_cio(req, j->result, "CopyObject failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    date_iso8601_ms(j->mtime_ms, ts);
    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "CopyObjectResult");
    s3_xml_elem(&b, "LastModified", ts, strlen(ts));
    s3_xml_elem(&b, "ETag", quoted, 34);
    buf_puts(&b, "</CopyObjectResult>");
    s3_reply_xml(req, 200, &b);
}

/* A copy whose bytes were read: submitted as a PUT of them, or answered 500. */
static void copy_submit(copy_t *c)
{
    h2o_req_t *req = c->req;
    http_commit_t *pend;

    *c->holder = NULL;
    if (c->read_rc == CIO_ECORRUPT) { /* reported by the reading thread, and not repaired */
        s3_error(req, 503, "ServiceUnavailable",
                 "The source object's stored data fails its checksum and no good copy is available; the damage is logged", NULL);
        copy_free(c);
        return;
    }
    if (c->read_rc != 0) {
        s3_error_cio(req, c->read_rc, "CopyObject: reading the source failed");
        copy_free(c);
        return;
    }
    if ((pend = http_commit_new(req, COMMIT_PUT, &c->dest)) == NULL) {
        s3_error_cio(req, CIO_ENOMEM, "CopyObject failed");
        copy_free(c);
        return;
    }
    pend->answer = answer_copy;
    pend->job.body = c->body;
    pend->body_owned = c->body; /* freed with the job */
    c->body = NULL;
    pend->job.size = c->size;
    memcpy(pend->job.ctype, c->ctype, c->ctype_len + 1);
    pend->job.ctype_len = c->ctype_len;
    memcpy(pend->job.meta, c->meta, c->meta_len);
    pend->job.meta_len = c->meta_len;
    copy_free(c);
    (void)http_commit_submit(req, pend);
}

static void on_copies_read(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        copy_t *c = H2O_STRUCT_FROM_MEMBER(copy_t, msg.link, link);
        h2o_linklist_unlink(link);
        __atomic_fetch_sub(&copies_reading, 1, __ATOMIC_RELAXED);
        c->thread->inflight--;
        if (c->req == NULL) {
            copy_free(c); /* the client went away: nothing is written */
            continue;
        }
        copy_submit(c);
    }
}

/* Decodes x-amz-copy-source ("[/]bucket/key", percent-encoded, maybe
 * "?versionId=...") into *src. Answers and returns -1 when it is bad. */
static int parse_copy_source(h2o_req_t *req, const s3_req_t *s, h2o_iovec_t v, path_t *src)
{
    const char *q = memchr(v.base, '?', v.len), *code;
    size_t len = q != NULL ? (size_t)(q - v.base) : v.len;
    char *p;

    if (q != NULL) {
        size_t ql = v.len - len - 1;
        if (ql >= 9 && memcmp(q + 1, "versionId", 9) == 0 && (ql == 9 || q[10] == '='))
            s3_error(req, 501, "NotImplemented",
                     "A header or query you provided implies functionality that is not implemented: versionId in x-amz-copy-source "
                     "(this server keeps no versions)",
                     s->resource);
        else
            s3_error(req, 400, "InvalidArgument", "x-amz-copy-source: the only parameter after '?' is versionId", s->resource);
        return -1;
    }
    p = h2o_mem_alloc_pool(&req->pool, len + 2);
    p[0] = '/';
    memcpy(p + 1, v.base, len);
    if (path_parse(len > 0 && v.base[0] == '/' ? p + 1 : p, len > 0 && v.base[0] == '/' ? len : len + 1, src, &code) != 0 ||
        src->bucket_len == 0 || src->key_len == 0) {
        s3_error(req, 400, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                 s->resource);
        return -1;
    }
    return 0;
}

/* The x-amz-copy-source-if-* headers, as http_precond reads If-*. */
static void copy_preconditions(h2o_req_t *req, http_precond_t *pc)
{
    static const struct {
        const char *name;
        size_t len;
        size_t field;
    } hs[] = {
        {H2O_STRLIT("x-amz-copy-source-if-match"), offsetof(http_precond_t, if_match)},
        {H2O_STRLIT("x-amz-copy-source-if-none-match"), offsetof(http_precond_t, if_none_match)},
        {H2O_STRLIT("x-amz-copy-source-if-modified-since"), offsetof(http_precond_t, if_modified_since)},
        {H2O_STRLIT("x-amz-copy-source-if-unmodified-since"), offsetof(http_precond_t, if_unmodified_since)},
    };

    memset(pc, 0, sizeof(*pc));
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        ssize_t at = h2o_find_header_by_str(&req->headers, hs[i].name, hs[i].len, -1);
        if (at != -1)
            *(h2o_iovec_t *)((char *)pc + hs[i].field) = req->headers.entries[at].value;
    }
}

/* The metadata of the copy: the source's (COPY) or the request's (REPLACE)
 * into c. Answers and returns -1 when the request's are bad. */
static int copy_metadata(h2o_req_t *req, const s3_req_t *s, int replace, const meta_obj_t *o, copy_t *c)
{
    const char *code;
    char err[256];

    if (!replace) {
        memcpy(c->ctype, o->ctype, o->ctype_len + 1);
        c->ctype_len = o->ctype_len;
        memcpy(c->meta, o->meta, o->meta_len);
        c->meta_len = o->meta_len;
        return 0;
    }
    h2o_iovec_t ct = http_req_header(req, H2O_TOKEN_CONTENT_TYPE);
    if (ct.len > LOGREC_CTYPE_MAX) {
        s3_error(req, 400, "InvalidArgument", "Content-Type is longer than 255 bytes", s->resource);
        return -1;
    }
    if (ct.base == NULL || ct.len == 0)
        ct = h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    memcpy(c->ctype, ct.base, ct.len);
    c->ctype[ct.len] = '\0';
    c->ctype_len = ct.len;
    if (objmeta_http_read(req, c->meta, &c->meta_len, &code, err, sizeof(err)) != 0) {
        s3_error(req, 400, code, err, s->resource);
        return -1;
    }
    return 0;
}

int s3_copy_object(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    h2o_iovec_t dir = h2o_iovec_init(NULL, 0);
    path_t *src = h2o_mem_alloc_pool(&req->pool, sizeof(*src));
    char etag[HTTP_OBJ_ETAG_MAX];
    size_t etag_len;
    http_precond_t pc;
    meta_bucket_t bk;
    meta_obj_t *o = h2o_mem_alloc_pool(&req->pool, sizeof(*o));
    copy_t *c = NULL;
    MDB_txn *txn;
    pthread_attr_t attr;
    pthread_t tid;
    uint64_t token;
    int rc, replace, reading = 0, have_sums = 0;
    blocksum_view_t sums = {0};
    uint8_t *sums_owned = NULL;
    ssize_t at;

    at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-copy-source"), -1);
    if (parse_copy_source(req, s, req->headers.entries[at].value, src) != 0)
        return 0;
    if ((at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amz-metadata-directive"), -1)) != -1)
        dir = req->headers.entries[at].value;
    if (dir.base != NULL && !h2o_memis(dir.base, dir.len, H2O_STRLIT("COPY")) &&
        !h2o_memis(dir.base, dir.len, H2O_STRLIT("REPLACE"))) {
        s3_error(req, 400, "InvalidArgument", "Unknown metadata directive: x-amz-metadata-directive is COPY or REPLACE",
                 s->resource);
        return 0;
    }
    replace = dir.base != NULL && h2o_memis(dir.base, dir.len, H2O_STRLIT("REPLACE"));
    if (!replace && src->bucket_len == s->bucket_len && memcmp(src->bucket, s->bucket, s->bucket_len) == 0 &&
        src->key_len == s->key_len && memcmp(src->key, s->key, s->key_len) == 0) {
        s3_error(req, 400, "InvalidRequest",
                 "This copy request is illegal because it is trying to copy an object to itself without changing the object's "
                 "metadata, storage class, website redirect location or encryption attributes.",
                 s->resource);
        return 0;
    }
    if ((rc = s3_bucket_exists(srv, req, s)) <= 0) {
        if (rc == 0)
            s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        else
            s3_error_cio(req, rc, "CopyObject failed");
        return 0;
    }

    token = commit_reader_enter(srv->commit);
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        rc = CIO_EDB;
        goto fail;
    }
    rc = meta_bucket_get(srv->meta, txn, src->bucket, src->bucket_len, &bk);
    if (rc == 0 && bk.deleted)
        rc = 1;
    else if (rc == CIO_ENOTFOUND)
        rc = 1;
    else if (rc == 0)
        rc = meta_obj_get(srv->meta, txn, src->bucket, src->bucket_len, src->key, src->key_len, o);
    if (rc == 0 && srv->conf->checksums && o->size > 0)
        rc = integrity_sums(srv->meta, txn, src->bucket, src->bucket_len, src->key, src->key_len, o, 0, o->size, &sums, &sums_owned,
                            &have_sums);
    http_req_rtxn_end(t);
    if (rc == 1) {
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
        goto done;
    }
    if (rc == CIO_ENOTFOUND) {
        s3_error(req, 404, "NoSuchKey", "The specified key does not exist.", s->resource);
        goto done;
    }
    if (rc != 0)
        goto fail;
    etag_len = http_obj_etag(o, etag); /* a multipart upload's object: its multipart ETag, as GET shows it */
    copy_preconditions(req, &pc);
    /* a copy changes state, but S3 answers both "not modified" outcomes of the source with 412 */
    if (http_precond_eval(&pc, h2o_iovec_init(etag, etag_len), date_seconds(o->mtime_ms), 1) != HTTP_PRECOND_PASS) {
        s3_error(req, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", s->resource);
        goto done;
    }
    if (o->size > srv->conf->max_object_size) {
        s3_error(req, 400, "InvalidRequest", "The specified copy source is larger than server.max_object_size", s->resource);
        goto done;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        rc = CIO_ENOMEM;
        goto fail;
    }
    if (copy_metadata(req, s, replace, o, c) != 0)
        goto done;
    if ((c->body = malloc(o->size > 0 ? (size_t)o->size : 1)) == NULL) {
        rc = CIO_ENOMEM;
        goto fail;
    }
    if (__atomic_add_fetch(&copies_reading, 1, __ATOMIC_RELAXED) > COPY_READS_MAX) {
        __atomic_fetch_sub(&copies_reading, 1, __ATOMIC_RELAXED);
        s3_error(req, 503, "SlowDown", "Please reduce your request rate: too many copies at once", s->resource);
        goto done;
    }
    reading = 1;
    if (!copy_rx_ready) {
        h2o_multithread_register_receiver(req->conn->ctx->queue, &copy_rx, on_copies_read);
        copy_rx_ready = 1;
    }
    c->srv = srv;
    c->thread = t;
    c->rx = &copy_rx;
    c->req = req;
    c->token = token;
    c->off = o->off;
    c->size = o->size;
    c->have_sums = have_sums;
    c->sums = sums;
    c->sums_owned = sums_owned;
    sums_owned = NULL;
    c->src = src;
    c->src_obj = o;
    repair_what_set(&c->what, src->bucket, src->bucket_len, src->key, src->key_len, o->version, o->origin, o->origin_len, o->off,
                    UINT64_MAX, INTEGRITY_GET);
    c->dest = *s->path;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, copy_read_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        rc = CIO_ESYS;
        goto fail;
    }
    /* from here the reading thread owns the token; the reply comes from on_copies_read */
    c->holder = h2o_mem_alloc_shared(&req->pool, sizeof(*c->holder), copy_dispose);
    *c->holder = c;
    t->inflight++;
    return 0;

fail:
    s3_error_cio(req, rc, "CopyObject failed");
done:
    if (reading)
        __atomic_fetch_sub(&copies_reading, 1, __ATOMIC_RELAXED);
    commit_reader_leave(srv->commit, token);
    free(sums_owned);
    if (c != NULL)
        copy_free(c);
    return 0;
}
