/* http.c - storaged's HTTP front end: listeners, event loops, routing, replies. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "storaged/apply.h"
#include "common/buf.h"
#include "storaged/http.h"
#include "common/log.h"
#include "common/replog.h"
#include "storaged/path.h"
#include "proto/presign.h"
#include "common/replstat.h"
#include "common/ctl.h"

#define INLINE_READ_MAX (1024 * 1024) /* GET bodies up to this are read at once */
#define STREAM_CHUNK (1024 * 1024)    /* larger ones are streamed in chunks of this */
#define LIST_MAX_KEYS 1000
#define REPLY_MAX (64 * 1024 * 1024) /* cap on any generated JSON reply */
#define HEADERS_MAX (32 * 1024)      /* request line and headers */
#define REFUSAL_LOG_MS 60000         /* "no accept_token" is logged at most this often */

typedef struct http_thread http_thread_t;

struct http_server {
    const conf_t *conf;
    meta_t *meta;
    store_t *store;
    commit_t *commit;
    fetch_opts_t fetch;        /* how this site, as a replica, reaches its primary */
    int64_t refusal_logged_ms; /* atomic: last "no accept_token" log line */
    h2o_globalconf_t globalconf;
    SSL_CTX *ssl_ctx;
    size_t nthreads;
    http_thread_t *threads;
    int stopping; /* atomic */
    unsigned grace_ms;
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cv;
    pthread_cond_t park_cv; /* never signalled */
    size_t nready, ndrained;
};

/* The running server; a global so that its memory stays reachable to the end. */
static http_server_t *running;

struct http_thread {
    http_server_t *srv;
    pthread_t tid;
    int listen_fd;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t replies;
    h2o_multithread_receiver_t wakeup;
    h2o_multithread_receiver_t aside_replies;
    size_t asides; /* control-socket questions in flight (loop thread only) */
    MDB_txn *rtxn;
    size_t inflight; /* loop thread only */
};

typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} handler_t;

/* A mutation on its way through the committer. */
typedef struct pending {
    commit_job_t job;
    h2o_multithread_message_t msg;
    http_thread_t *thread;
    h2o_req_t *req;          /* NULL once the client went away */
    struct pending **holder; /* the request pool's pointer to us */
} pending_t;

/* ---- metrics ---- */

enum { M_GET, M_HEAD, M_PUT, M_DELETE, M_POST, M_OTHER, M_COUNT };
static const char *const method_names[M_COUNT] = {"GET", "HEAD", "PUT", "DELETE", "POST", "OTHER"};
static const int status_codes[] = {200, 204, 206, 400, 401, 403, 404, 405, 409, 410, 411, 413, 416, 431, 500, 503, 507, 0};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))
static uint64_t metric_requests[M_COUNT][NSTATUS];
static uint64_t metric_bytes_in, metric_bytes_out;

static int method_index(h2o_req_t *req)
{
    static const struct {
        const char *name;
        size_t len;
    } m[] = {{"GET", 3}, {"HEAD", 4}, {"PUT", 3}, {"DELETE", 6}, {"POST", 4}};
    for (int i = 0; i < M_OTHER; i++)
        if (h2o_memis(req->method.base, req->method.len, m[i].name, m[i].len))
            return i;
    return M_OTHER;
}

static void count_reply(h2o_req_t *req, int status, size_t body)
{
    size_t s = 0;
    while (status_codes[s] != 0 && status_codes[s] != status)
        s++;
    __atomic_fetch_add(&metric_requests[method_index(req)][s], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&metric_bytes_out, body, __ATOMIC_RELAXED);
}

/* ---- replies ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Internal Server Error";
    }
}

static int is_head(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, v.base, v.len);
}

static void add_header_str(h2o_req_t *req, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v.base, v.len);
}

/* Every reply carries a Content-Length: without it h2o 2.2.5 closes the
 * connection after a non-200 reply. */
static void reply(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    if (ctype != NULL)
        add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype, strlen(ctype));
    count_reply(req, status, is_head(req) ? 0 : len);
    h2o_send_inline(req, body, len);
}

static void reply_buf(h2o_req_t *req, int status, buf_t *b)
{
    if (b->err != 0) {
        static const char oom[] = "{\"error\":\"reply too large or out of memory\",\"code\":\"InternalError\"}";
        reply(req, 500, "application/json", oom, sizeof(oom) - 1);
    } else {
        reply(req, status, "application/json", b->data, b->len);
    }
    buf_free(b);
}

static void reply_error(h2o_req_t *req, int status, const char *code, const char *msg)
{
    buf_t b;
    buf_init(&b, 8192);
    buf_puts(&b, "{\"error\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_puts(&b, ",\"code\":");
    buf_json_str(&b, code, strlen(code));
    buf_puts(&b, "}");
    if (status == 401)
        add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, H2O_STRLIT("Bearer"));
    reply_buf(req, status, &b);
}

static void reply_cio_error(h2o_req_t *req, int err, const char *what)
{
    char msg[256];
    switch (err) {
    case CIO_ENOSPC:
        reply_error(req, 507, "InsufficientStorage", "not enough contiguous free space in the data store");
        return;
    case CIO_EMAPFULL:
        reply_error(req, 507, "InsufficientStorage", "the metadata database is full (raise server.meta_map_size)");
        return;
    default:
        snprintf(msg, sizeof(msg), "%s: %s", what, cio_strerror(err));
        reply_error(req, 500, "InternalError", msg);
    }
}

static void iso_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

static void hex16(const uint8_t *md, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

/* The quoted ETag header value: '"' hex16 '"'; out holds 35 bytes. */
static void quoted_etag(const uint8_t *md, char *out)
{
    out[0] = '"';
    hex16(md, out + 1);
    out[33] = '"';
    out[34] = '\0';
}

/* Decimal v into out (at least 21 bytes), NUL-terminated; returns the length.
 * On every reply, where snprintf's format parsing showed in profiles. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* ---- request helpers ---- */

static http_thread_t *thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
}

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* Compares the Authorization header with "Bearer <token>" in constant time
 * (hashing both first hides the token's length too). */
static int bearer_matches(h2o_req_t *req, const char *token)
{
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    h2o_iovec_t v;

    v = header_value(req, H2O_TOKEN_AUTHORIZATION);
    if (v.base == NULL || v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
        return 0;
    SHA256((const unsigned char *)token, strlen(token), want);
    SHA256((const unsigned char *)v.base + 7, v.len - 7, got);
    return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

static int authorized(http_server_t *srv, h2o_req_t *req)
{
    const char *token = srv->conf->access_token;
    return token == NULL || *token == '\0' || bearer_matches(req, token);
}

static MDB_txn *rtxn_begin(http_thread_t *t)
{
    int rc = t->rtxn == NULL ? mdb_txn_begin(t->srv->meta->env, NULL, MDB_RDONLY, &t->rtxn) : mdb_txn_renew(t->rtxn);
    if (rc != 0) {
        meta_err(rc, "read transaction");
        if (t->rtxn != NULL) {
            mdb_txn_abort(t->rtxn);
            t->rtxn = NULL;
        }
        return NULL;
    }
    return t->rtxn;
}

static void rtxn_end(http_thread_t *t)
{
    mdb_txn_reset(t->rtxn);
}

static int query_param(h2o_req_t *req, const char *name, char *out, size_t cap, size_t *outlen)
{
    if (req->query_at == SIZE_MAX) {
        *outlen = 0;
        out[0] = '\0';
        return CIO_ENOTFOUND;
    }
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    return path_query_get(q, qlen, name, out, cap, outlen);
}

/* h2o 2.2.5 accepts request heads of about 400 KB; we take far less. */
static size_t header_bytes(h2o_req_t *req)
{
    size_t n = req->path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

static int reserved_bucket(const path_t *p)
{
    return strcmp(p->bucket, "admin") == 0 || strcmp(p->bucket, "metrics") == 0;
}

/* ---- mutations: hand to the committer, answer when durable ---- */

static void on_req_dispose(void *p)
{
    pending_t *pend = *(pending_t **)p;
    if (pend == NULL)
        return;
    /* the client went away before the answer: keep the job, drop the request */
    pend->req = NULL;
    pend->holder = NULL;
    commit_release_body(pend->thread->srv->commit, &pend->job);
}

static void on_job_done(commit_job_t *job)
{
    pending_t *pend = job->ctx;
    h2o_multithread_send_message(&pend->thread->replies, &pend->msg);
}

static pending_t *pending_new(h2o_req_t *req, commit_op_t op, const path_t *p)
{
    pending_t *pend = calloc(1, sizeof(*pend));
    if (pend == NULL)
        return NULL;
    pend->job.op = op;
    memcpy(pend->job.bucket, p->bucket, p->bucket_len + 1);
    pend->job.blen = p->bucket_len;
    memcpy(pend->job.key, p->key, p->key_len + 1);
    pend->job.klen = p->key_len;
    pend->job.done = on_job_done;
    pend->job.ctx = pend;
    pend->thread = thread_of(req);
    pend->req = req;
    return pend;
}

static int pending_submit(h2o_req_t *req, pending_t *pend)
{
    pending_t **holder = h2o_mem_alloc_shared(&req->pool, sizeof(*holder), on_req_dispose);
    *holder = pend;
    pend->holder = holder;
    pend->thread->inflight++;
    commit_submit(pend->thread->srv->commit, &pend->job);
    return 0;
}

static void answer_put(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35], ver[21], size[21];
    buf_t b;

    if (j->result != 0) {
        reply_cio_error(req, j->result, "PUT failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    fmt_u64(ver, j->version);
    fmt_u64(size, j->size);
    add_header(req, H2O_TOKEN_ETAG, quoted, 34);
    add_header_str(req, "x-comio-version", ver);
    buf_init(&b, 8192);
    buf_puts(&b, "{\"bucket\":");
    buf_json_str(&b, j->bucket, j->blen);
    buf_puts(&b, ",\"key\":");
    buf_json_str(&b, j->key, j->klen);
    buf_puts(&b, ",\"size\":");
    buf_puts(&b, size);
    buf_puts(&b, ",\"etag\":");
    buf_puts(&b, quoted);
    buf_puts(&b, ",\"version\":");
    buf_puts(&b, ver);
    buf_puts(&b, "}");
    reply_buf(req, 200, &b);
}

static void answer_apply(h2o_req_t *req, commit_job_t *j)
{
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    if (apply_reply(j, &sb) != 0)
        reply_cio_error(req, CIO_ENOMEM, "batch reply");
    else
        reply(req, 200, APPLY_CTYPE, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void answer(h2o_req_t *req, commit_job_t *j)
{
    buf_t b;

    if (j->op == COMMIT_APPLY) {
        answer_apply(req, j); /* per-event results, also when the job failed */
        return;
    }
    if (j->result == CIO_ENOTFOUND) {
        reply_error(req, 404, "NoSuchBucket", "no such bucket");
        return;
    }
    switch (j->op) {
    case COMMIT_PUT:
        answer_put(req, j);
        return;
    case COMMIT_DELETE:
    case COMMIT_BUCKET_DELETE:
        if (j->result == CIO_ENOTEMPTY)
            reply_error(req, 409, "BucketNotEmpty", "the bucket is not empty");
        else if (j->result != 0)
            reply_cio_error(req, j->result, "DELETE failed");
        else
            reply(req, 204, NULL, "", 0);
        return;
    case COMMIT_PURGE:
        if (j->result != 0) {
            reply_cio_error(req, j->result, "purge failed");
            return;
        }
        buf_init(&b, 1024);
        buf_printf(&b, "{\"deleted_count\":%" PRIu64 ",\"freed_size\":%" PRIu64 "}", j->count, j->bytes);
        reply_buf(req, 200, &b);
        return;
    case COMMIT_BUCKET_CREATE:
        if (j->result != 0) {
            reply_cio_error(req, j->result, "bucket creation failed");
            return;
        }
        buf_init(&b, 1024);
        buf_puts(&b, "{\"bucket\":");
        buf_json_str(&b, j->bucket, j->blen);
        buf_printf(&b, ",\"created\":%s}", j->created ? "true" : "false");
        reply_buf(req, 200, &b);
        return;
    case COMMIT_APPLY:
        return; /* answered above */
    }
}

static void on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        pending_t *pend = H2O_STRUCT_FROM_MEMBER(pending_t, msg.link, link);
        h2o_linklist_unlink(link);
        pend->thread->inflight--;
        if (pend->req != NULL) {
            *pend->holder = NULL;
            answer(pend->req, &pend->job);
        }
        if (pend->job.op == COMMIT_APPLY)
            apply_free(&pend->job);
        free(pend);
    }
}

static void on_wakeup(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    /* nothing to do: the loop only needed to notice `stopping` */
}

/* ---- handlers ---- */

static int do_put_object(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    h2o_iovec_t ct = header_value(req, H2O_TOKEN_CONTENT_TYPE);
    pending_t *pend;

    if (req->entity.len > srv->conf->max_object_size) {
        reply_error(req, 413, "EntityTooLarge", "the object exceeds server.max_object_size");
        return 0;
    }
    if (ct.len > LOGREC_CTYPE_MAX) {
        reply_error(req, 400, "InvalidArgument", "Content-Type is longer than 255 bytes");
        return 0;
    }
    if (ct.base == NULL || ct.len == 0)
        ct = h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    if ((pend = pending_new(req, COMMIT_PUT, p)) == NULL) {
        reply_cio_error(req, CIO_ENOMEM, "PUT failed");
        return 0;
    }
    pend->job.body = req->entity.base != NULL ? req->entity.base : "";
    pend->job.size = req->entity.len;
    memcpy(pend->job.ctype, ct.base, ct.len);
    pend->job.ctype_len = ct.len;
    __atomic_fetch_add(&metric_bytes_in, req->entity.len, __ATOMIC_RELAXED);
    return pending_submit(req, pend);
}

static int do_mutation(h2o_req_t *req, commit_op_t op, const path_t *p)
{
    pending_t *pend = pending_new(req, op, p);
    if (pend == NULL) {
        reply_cio_error(req, CIO_ENOMEM, "request failed");
        return 0;
    }
    return pending_submit(req, pend);
}

/* Parses "bytes=a-b", "bytes=a-", "bytes=-n" against size. Returns 1 for a
 * satisfiable single range, 0 to ignore the header (serve everything), -1 for
 * unsatisfiable. */
static int parse_range(h2o_iovec_t v, uint64_t size, uint64_t *first, uint64_t *last)
{
    char buf[64], *dash, *end;
    unsigned long long a, b;

    if (v.len < 7 || v.len >= sizeof(buf) || strncmp(v.base, "bytes=", 6) != 0)
        return 0;
    memcpy(buf, v.base + 6, v.len - 6);
    buf[v.len - 6] = '\0';
    if (strchr(buf, ',') != NULL || (dash = strchr(buf, '-')) == NULL)
        return 0; /* multiple ranges: serve the whole object */
    *dash = '\0';
    if (buf[0] == '\0') { /* suffix */
        if (dash[1] < '0' || dash[1] > '9')
            return 0;
        b = strtoull(dash + 1, &end, 10);
        if (*end != '\0')
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (buf[0] < '0' || buf[0] > '9')
        return 0;
    a = strtoull(buf, &end, 10);
    if (*end != '\0')
        return 0;
    if (dash[1] == '\0') {
        b = size - 1;
    } else {
        if (dash[1] < '0' || dash[1] > '9')
            return 0;
        b = strtoull(dash + 1, &end, 10);
        if (*end != '\0' || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

typedef struct {
    h2o_generator_t super;
    http_server_t *srv;
    uint64_t token; /* reader token; released at dispose */
    uint64_t off, remaining;
    char *chunk;
    int released;
} stream_t;

static void stream_release(stream_t *s)
{
    if (!s->released) {
        s->released = 1;
        commit_reader_leave(s->srv->commit, s->token);
    }
    free(s->chunk);
    s->chunk = NULL;
}

static void stream_dispose(void *p)
{
    stream_release(p);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    stream_t *s = (stream_t *)g;
    size_t n = s->remaining < STREAM_CHUNK ? (size_t)s->remaining : STREAM_CHUNK;
    h2o_iovec_t iov = h2o_iovec_init(s->chunk, n);

    if (store_read(s->srv->store, s->off, s->chunk, n) != 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    s->off += n;
    s->remaining -= n;
    h2o_send(req, &iov, 1, s->remaining == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
}

/* GET and HEAD of an object; with `version` non-zero only that version is
 * served (the primary's fetch endpoint), anything else is 410. */
static int serve_object(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version)
{
    http_thread_t *t = thread_of(req);
    meta_obj_t o;
    meta_bucket_t bk;
    MDB_txn *txn;
    uint64_t token, first = 0, last = 0, len;
    char buf[96];
    int ret, ranged;

    token = commit_reader_enter(srv->commit);
    if ((txn = rtxn_begin(t)) == NULL) {
        commit_reader_leave(srv->commit, token);
        reply_cio_error(req, CIO_EDB, "GET failed");
        return 0;
    }
    ret = meta_obj_get(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o);
    if (ret == CIO_ENOTFOUND && meta_bucket_get(srv->meta, txn, p->bucket, p->bucket_len, &bk) == CIO_ENOTFOUND)
        ret = 1;
    if (version != 0 && (ret == 1 || ret == CIO_ENOTFOUND || (ret == 0 && !meta_obj_current(&o, version))))
        ret = 2; /* overwritten or deleted since the URL was signed: a newer event follows */
    rtxn_end(t);
    if (ret != 0) {
        commit_reader_leave(srv->commit, token);
        if (ret == 2)
            reply_error(req, 410, "VersionGone", "this version of the object is gone (overwritten or deleted)");
        else if (ret == 1)
            reply_error(req, 404, "NoSuchBucket", "no such bucket");
        else if (ret == CIO_ENOTFOUND)
            reply_error(req, 404, "NoSuchKey", "no such key");
        else
            reply_cio_error(req, ret, "GET failed");
        return 0;
    }

    quoted_etag(o.etag, buf);
    add_header(req, H2O_TOKEN_ETAG, buf, 34);
    add_header(req, H2O_TOKEN_CONTENT_TYPE, o.ctype, o.ctype_len);
    add_header(req, H2O_TOKEN_ACCEPT_RANGES, H2O_STRLIT("bytes"));
    {
        time_t secs = (time_t)(o.mtime_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        add_header(req, H2O_TOKEN_LAST_MODIFIED, buf, strlen(buf));
    }
    fmt_u64(buf, o.version);
    add_header_str(req, "x-comio-version", buf);

    ranged = parse_range(header_value(req, H2O_TOKEN_RANGE), o.size, &first, &last);
    if (ranged < 0) {
        commit_reader_leave(srv->commit, token);
        snprintf(buf, sizeof(buf), "bytes */%" PRIu64, o.size);
        add_header(req, H2O_TOKEN_CONTENT_RANGE, buf, strlen(buf));
        reply_error(req, 416, "InvalidRange", "the requested range is not satisfiable");
        return 0;
    }
    if (ranged > 0) {
        snprintf(buf, sizeof(buf), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, o.size);
        add_header(req, H2O_TOKEN_CONTENT_RANGE, buf, strlen(buf));
        len = last - first + 1;
    } else {
        first = 0;
        len = o.size;
    }
    req->res.status = ranged > 0 ? 206 : 200;
    req->res.reason = reason_of(req->res.status);
    req->res.content_length = len;
    count_reply(req, req->res.status, is_head(req) ? 0 : len);

    if (is_head(req) || len == 0) {
        static h2o_generator_t none = {NULL, NULL};
        commit_reader_leave(srv->commit, token);
        h2o_start_response(req, &none);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 0;
    }
    if (len <= INLINE_READ_MAX) {
        static h2o_generator_t none = {NULL, NULL};
        h2o_iovec_t iov = h2o_iovec_init(h2o_mem_alloc_pool(&req->pool, (size_t)len), (size_t)len);
        ret = store_read(srv->store, o.off + first, iov.base, (size_t)len);
        commit_reader_leave(srv->commit, token);
        h2o_start_response(req, &none);
        h2o_send(req, &iov, 1, ret == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR);
        return 0;
    }
    stream_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), stream_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = stream_proceed;
    s->super.stop = stream_stop;
    s->srv = srv;
    s->token = token;
    s->off = o.off + first;
    s->remaining = len;
    if ((s->chunk = malloc(STREAM_CHUNK)) == NULL) {
        h2o_start_response(req, &s->super);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return 0;
    }
    h2o_start_response(req, &s->super);
    stream_proceed(&s->super, req);
    return 0;
}

static int do_get_object(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    return serve_object(srv, req, p, 0);
}

typedef struct {
    buf_t *b;
    int (*json_key)(buf_t *, const char *, size_t); /* buf_json_str, or buf_json_url for encoding-type=url */
    size_t n, max;
    int truncated;
    char last[PATH_KEY_MAX + 1];
    size_t last_len;
} list_ctx_t;

static int list_one(void *ctx, const meta_obj_t *o)
{
    list_ctx_t *l = ctx;
    char etag[33], ts[40];

    if (l->n == l->max) {
        l->truncated = 1;
        return 1;
    }
    hex16(o->etag, etag);
    iso_time(o->mtime_ms, ts, sizeof(ts));
    buf_puts(l->b, l->n == 0 ? "{\"key\":" : ",{\"key\":");
    l->json_key(l->b, o->key, o->key_len);
    buf_printf(l->b, ",\"size\":%" PRIu64 ",\"etag\":\"%s\",\"last_modified\":\"%s\"}", o->size, etag, ts);
    memcpy(l->last, o->key, o->key_len + 1);
    l->last_len = o->key_len;
    l->n++;
    return 0;
}

static int do_list_objects(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    http_thread_t *t = thread_of(req);
    char prefix[PATH_KEY_MAX + 1], after[PATH_KEY_MAX + 1], maxs[32], enc[8];
    size_t plen, alen, mlen, elen;
    meta_bucket_t bk;
    list_ctx_t l;
    MDB_txn *txn;
    buf_t b;
    int ret;

    if ((ret = query_param(req, "prefix", prefix, sizeof(prefix), &plen)) != 0 && ret != CIO_ENOTFOUND)
        goto bad_param;
    if ((ret = query_param(req, "start-after", after, sizeof(after), &alen)) != 0 && ret != CIO_ENOTFOUND)
        goto bad_param;
    memset(&l, 0, sizeof(l));
    l.max = LIST_MAX_KEYS;
    if ((ret = query_param(req, "max-keys", maxs, sizeof(maxs), &mlen)) == 0) {
        char *end;
        long v = strtol(maxs, &end, 10);
        if (mlen == 0 || maxs[0] < '0' || maxs[0] > '9' || *end != '\0' || v < 1 || v > LIST_MAX_KEYS) {
            reply_error(req, 400, "InvalidArgument", "max-keys must be an integer from 1 to 1000");
            return 0;
        }
        l.max = (size_t)v;
    } else if (ret != CIO_ENOTFOUND) {
        goto bad_param;
    }
    l.json_key = buf_json_str;
    if ((ret = query_param(req, "encoding-type", enc, sizeof(enc), &elen)) == 0 && strcmp(enc, "url") == 0) {
        l.json_key = buf_json_url;
    } else if (ret != CIO_ENOTFOUND) {
        reply_error(req, 400, "InvalidArgument", "encoding-type must be url");
        return 0;
    }

    buf_init(&b, REPLY_MAX);
    l.b = &b;
    buf_puts(&b, "{\"bucket\":");
    buf_json_str(&b, p->bucket, p->bucket_len);
    buf_puts(&b, ",\"prefix\":");
    l.json_key(&b, prefix, plen);
    buf_puts(&b, l.json_key == buf_json_url ? ",\"encoding_type\":\"url\",\"objects\":[" : ",\"objects\":[");
    if ((txn = rtxn_begin(t)) == NULL) {
        buf_free(&b);
        reply_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    ret = meta_bucket_get(srv->meta, txn, p->bucket, p->bucket_len, &bk);
    if (ret == 0)
        ret = meta_obj_list(srv->meta, txn, p->bucket, p->bucket_len, prefix, plen, after, alen, l.max + 1, list_one, &l);
    rtxn_end(t);
    if (ret != 0) {
        buf_free(&b);
        if (ret == CIO_ENOTFOUND)
            reply_error(req, 404, "NoSuchBucket", "no such bucket");
        else
            reply_cio_error(req, ret, "listing failed");
        return 0;
    }
    buf_printf(&b, "],\"is_truncated\":%s,\"next_start_after\":", l.truncated ? "true" : "false");
    if (l.truncated)
        l.json_key(&b, l.last, l.last_len);
    else
        buf_puts(&b, "null");
    buf_puts(&b, "}");
    reply_buf(req, 200, &b);
    return 0;
bad_param:
    reply_error(req, 400, ret == CIO_ETOOBIG ? "KeyTooLong" : "InvalidArgument", "malformed query parameter");
    return 0;
}

static int do_list_buckets(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = thread_of(req);
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_txn *txn;
    buf_t b;
    int rc, n = 0;

    if ((txn = rtxn_begin(t)) == NULL || mdb_cursor_open(txn, srv->meta->buckets, &cur) != 0) {
        if (txn != NULL)
            rtxn_end(t);
        reply_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    buf_init(&b, REPLY_MAX);
    buf_puts(&b, "{\"buckets\":[");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        meta_bucket_t bk;
        char ts[40];
        if (meta_bucket_get(srv->meta, txn, k.mv_data, k.mv_size, &bk) != 0)
            continue;
        iso_time(bk.ctime_ms, ts, sizeof(ts));
        buf_puts(&b, n++ == 0 ? "{\"name\":" : ",{\"name\":");
        buf_json_str(&b, k.mv_data, k.mv_size);
        buf_printf(&b, ",\"created\":\"%s\",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", ts, bk.objects, bk.bytes);
    }
    mdb_cursor_close(cur);
    rtxn_end(t);
    buf_puts(&b, "]}");
    reply_buf(req, 200, &b);
    return 0;
}

static int do_health(http_server_t *srv, h2o_req_t *req)
{
    buf_t b;
    buf_init(&b, 4096);
    buf_puts(&b, "{\"status\":\"ok\",\"site\":");
    buf_json_str(&b, srv->conf->site_id, strlen(srv->conf->site_id));
    buf_puts(&b, ",\"version\":\"" COMIO_VERSION "\"}");
    reply_buf(req, 200, &b);
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

static void finish_status(http_server_t *srv, h2o_req_t *req, const buf_t *repld_answer)
{
    buf_t b;
    if (repld_answer != NULL) {
        reply(req, 200, "application/json", repld_answer->data, repld_answer->len);
        return;
    }
    buf_init(&b, 64 * 1024);
    if (replstat_json(srv->meta, srv->conf->repl_enabled, NULL, &b) != 0) {
        buf_free(&b);
        reply_cio_error(req, CIO_EDB, "status failed");
        return;
    }
    reply_buf(req, 200, &b);
}

static void finish_metrics(http_server_t *srv, h2o_req_t *req, buf_t *own, const buf_t *repld_answer)
{
    if (repld_answer != NULL)
        buf_append(own, repld_answer->data, repld_answer->len);
    else if (replstat_metrics(srv->meta, NULL, own) != 0)
        own->err = own->err ? own->err : CIO_EDB;
    if (own->err != 0) {
        reply_buf(req, 500, own);
        return;
    }
    reply(req, 200, "text/plain; version=0.0.4", own->data, own->len);
    buf_free(own);
}

static void on_aside_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
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
    a->thread = thread_of(req);
    a->conf = srv->conf;
    a->req = req;
    a->metrics = metrics;
    buf_init(&a->answer, CTL_REPLY_MAX);
    buf_init(&a->own, REPLY_MAX);
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

static int do_status(http_server_t *srv, h2o_req_t *req)
{
    if (!ask_repld(srv, req, 0, NULL))
        finish_status(srv, req, NULL);
    return 0;
}

static int do_metrics(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = thread_of(req);
    uint64_t capacity = 0, free_bytes = 0, extents = 0, largest = 0, objects = 0, bytes = 0, head = 0, records = 0;
    uint64_t applied = 0, skipped = 0, failed = 0, permanent = 0, tombstones = 0;
    uint64_t commits, jobs;
    MDB_txn *txn;
    buf_t b;

    if ((txn = rtxn_begin(t)) == NULL) {
        reply_cio_error(req, CIO_EDB, "metrics failed");
        return 0;
    }
    if (alloc_stats(&srv->meta->alloc, txn, &capacity, &free_bytes, &extents, &largest) != 0 ||
        meta_state_get(srv->meta, txn, META_OBJECTS, &objects) != 0 || meta_state_get(srv->meta, txn, META_BYTES, &bytes) != 0 ||
        replog_stats(srv->meta, txn, &head, &records) != 0 || meta_state_get(srv->meta, txn, META_APPLY_APPLIED, &applied) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_SKIPPED, &skipped) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_FAILED, &failed) != 0 ||
        meta_state_get(srv->meta, txn, META_APPLY_PERMANENT, &permanent) != 0 ||
        meta_tomb_count(srv->meta, txn, &tombstones) != 0) {
        rtxn_end(t);
        reply_cio_error(req, CIO_EDB, "metrics failed");
        return 0;
    }
    rtxn_end(t);
    commit_stats(srv->commit, &commits, &jobs);

    buf_init(&b, REPLY_MAX);
    buf_puts(&b, "# HELP comio_http_requests_total HTTP requests answered, by method and status.\n"
                 "# TYPE comio_http_requests_total counter\n");
    for (int m = 0; m < M_COUNT; m++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t n = __atomic_load_n(&metric_requests[m][s], __ATOMIC_RELAXED);
            if (n == 0)
                continue;
            if (status_codes[s] != 0)
                buf_printf(&b, "comio_http_requests_total{method=\"%s\",status=\"%d\"} %" PRIu64 "\n", method_names[m],
                           status_codes[s], n);
            else
                buf_printf(&b, "comio_http_requests_total{method=\"%s\",status=\"other\"} %" PRIu64 "\n", method_names[m], n);
        }
    buf_printf(&b,
               "# HELP comio_http_received_bytes_total Object bytes received in PUT bodies.\n"
               "# TYPE comio_http_received_bytes_total counter\n"
               "comio_http_received_bytes_total %" PRIu64 "\n"
               "# HELP comio_http_sent_bytes_total Body bytes sent in replies.\n"
               "# TYPE comio_http_sent_bytes_total counter\n"
               "comio_http_sent_bytes_total %" PRIu64 "\n"
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
               __atomic_load_n(&metric_bytes_in, __ATOMIC_RELAXED), __atomic_load_n(&metric_bytes_out, __ATOMIC_RELAXED), objects,
               bytes, capacity, capacity - free_bytes, free_bytes, extents, largest, head, records, commits, jobs);
    buf_printf(&b,
               "# HELP comio_replica_events_total Replicated events this site received as a replica, by result.\n"
               "# TYPE comio_replica_events_total counter\n"
               "comio_replica_events_total{result=\"applied\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"skipped\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"retry\"} %" PRIu64 "\n"
               "comio_replica_events_total{result=\"permanent\"} %" PRIu64 "\n"
               "# HELP comio_replica_tombstones Deleted keys this replica remembers (until replication.tombstone_ttl).\n"
               "# TYPE comio_replica_tombstones gauge\n"
               "comio_replica_tombstones %" PRIu64 "\n",
               applied, skipped, failed - permanent, permanent, tombstones);
    if (b.err != 0) {
        reply_buf(req, 500, &b);
        return 0;
    }
    /* a primary adds the shipper's comio_replication_* figures */
    if (srv->conf->repl_enabled && !ask_repld(srv, req, 1, &b))
        finish_metrics(srv, req, &b, NULL);
    else if (!srv->conf->repl_enabled) {
        reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
        buf_free(&b);
    }
    return 0;
}

static int do_purge(http_server_t *srv, h2o_req_t *req, const char *name, size_t nlen)
{
    http_thread_t *t = thread_of(req);
    char confirm[16];
    size_t clen;
    path_t p;
    meta_bucket_t bk;
    MDB_txn *txn;
    buf_t b;
    int ret;

    memset(&p, 0, sizeof(p));
    if (!path_bucket_valid(name, nlen)) {
        reply_error(req, 400, "InvalidBucketName", "invalid bucket name");
        return 0;
    }
    memcpy(p.bucket, name, nlen);
    p.bucket_len = nlen;
    ret = query_param(req, "confirm", confirm, sizeof(confirm), &clen);
    if (ret == 0 && strcmp(confirm, "true") == 0)
        return do_mutation(req, COMMIT_PURGE, &p);
    /* a dry run: report what a purge would remove */
    if ((txn = rtxn_begin(t)) == NULL) {
        reply_cio_error(req, CIO_EDB, "purge failed");
        return 0;
    }
    ret = meta_bucket_get(srv->meta, txn, p.bucket, p.bucket_len, &bk);
    rtxn_end(t);
    if (ret == CIO_ENOTFOUND) {
        reply_error(req, 404, "NoSuchBucket", "no such bucket");
        return 0;
    }
    if (ret != 0) {
        reply_cio_error(req, ret, "purge failed");
        return 0;
    }
    buf_init(&b, 1024);
    buf_printf(&b, "{\"count\":%" PRIu64 ",\"total_size\":%" PRIu64 "}", bk.objects, bk.bytes);
    reply_buf(req, 200, &b);
    return 0;
}

static int path_is(h2o_req_t *req, const char *s)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return h2o_memis(req->path.base, len, s, strlen(s));
}

/* ---- replication: a replica applies batches, a primary serves fetches ---- */

/* The refusal is the operator's to fix, not the sender's: say it in the log,
 * but not once per batch of a primary that keeps retrying. */
static void log_refusal(http_server_t *srv)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t last = __atomic_load_n(&srv->refusal_logged_ms, __ATOMIC_RELAXED);
    if (last != 0 && now - last < REFUSAL_LOG_MS)
        return;
    if (!__atomic_compare_exchange_n(&srv->refusal_logged_ms, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return; /* another loop logs it */
    log_msg(LOG_LVL_WARN, "refusing replication batches: replication.accept_token is not set on this site", NULL);
}

static int do_apply_batch(http_server_t *srv, h2o_req_t *req)
{
    const char *token = srv->conf->accept_token;
    char err[256];
    pending_t *pend;
    int ret;

    if (token == NULL || *token == '\0') {
        log_refusal(srv);
        reply_error(req, 403, "ReplicationNotAccepted", "this site accepts no replication: replication.accept_token is not set");
        return 0;
    }
    if (!bearer_matches(req, token)) {
        reply_error(req, 401, "Unauthorized", "missing or wrong replication token");
        return 0;
    }
    if ((pend = calloc(1, sizeof(*pend))) == NULL) {
        reply_cio_error(req, CIO_ENOMEM, "batch failed");
        return 0;
    }
    pend->job.op = COMMIT_APPLY;
    pend->job.body = req->entity.base != NULL ? req->entity.base : "";
    pend->job.fetch = &srv->fetch;
    pend->job.done = on_job_done;
    pend->job.ctx = pend;
    pend->thread = thread_of(req);
    pend->req = req;
    /* decoding is cheap and allocation-bounded; hashing and writing the
     * inline data happen off the loop, on the committer's I/O threads */
    ret = apply_decode(&pend->job, pend->job.body, req->entity.len, err, sizeof(err));
    if (ret != 0 || pend->job.nitems == 0) {
        if (ret == CIO_EPROTO)
            reply_error(req, 400, "MalformedBatch", err);
        else if (ret != 0)
            reply_cio_error(req, ret, "batch failed");
        else
            answer_apply(req, &pend->job); /* an empty batch: nothing to commit */
        free(pend);
        return 0;
    }
    return pending_submit(req, pend);
}

/* GET /admin/replication/fetch/{bucket}/{key}?version=V&expires=E&sig=HEX */
static int do_fetch(http_server_t *srv, h2o_req_t *req, int m)
{
    static const char prefix[] = "/admin/replication/fetch";
    const char *secret = srv->conf->remote_token, *code;
    char num[32], sig[PRESIGN_SIG_HEX + 2];
    unsigned long long version, expires;
    size_t len, siglen;
    path_t p;
    char *end;
    int ret;

    if (m != M_GET) {
        reply_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (secret == NULL || *secret == '\0') {
        reply_error(req, 403, "AccessDenied", "this site serves no replication fetches: replication.remote_token is not set");
        return 0;
    }
    if (path_parse(req->path.base + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1), &p, &code) != 0) {
        reply_error(req, 400, code, "malformed fetch path");
        return 0;
    }
    if (p.bucket_len == 0 || p.key_len == 0) {
        reply_error(req, 400, "InvalidURI", "expected /admin/replication/fetch/{bucket}/{key}");
        return 0;
    }
    /* a missing or unreadable version, expires or sig can only be a URL
     * nobody signed: the same answer as a wrong signature */
    if (query_param(req, "version", num, sizeof(num), &len) != 0 || len == 0 || num[0] < '0' || num[0] > '9' ||
        (errno = 0, version = strtoull(num, &end, 10), *end != '\0' || errno == ERANGE) || version == 0 ||
        query_param(req, "expires", num, sizeof(num), &len) != 0 || len == 0 || num[0] < '0' || num[0] > '9' ||
        (errno = 0, expires = strtoull(num, &end, 10), *end != '\0' || errno == ERANGE) || expires > INT64_MAX)
        ret = CIO_EINVAL;
    else if (query_param(req, "sig", sig, sizeof(sig), &siglen) != 0)
        ret = CIO_EINVAL;
    else
        ret = presign_verify(secret, strlen(secret), "GET", p.bucket, p.bucket_len, p.key, p.key_len, version, (int64_t)expires,
                             sig, siglen, (int64_t)time(NULL));
    if (ret == CIO_EAGAIN) {
        reply_error(req, 403, "ExpiredSignature", "the fetch URL has expired");
        return 0;
    }
    if (ret == CIO_ENOMEM) {
        reply_cio_error(req, ret, "signature check failed");
        return 0;
    }
    if (ret != 0) {
        reply_error(req, 403, "SignatureDoesNotMatch", "the fetch URL's signature does not match");
        return 0;
    }
    return serve_object(srv, req, &p, version);
}

static int do_admin(http_server_t *srv, h2o_req_t *req, int m)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *p = req->path.base;

    if (path_is(req, "/admin/health"))
        return m == M_GET || m == M_HEAD ? do_health(srv, req)
                                         : (reply_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    /* replication has its own credentials, never the access token */
    if (path_is(req, "/admin/replication/batch"))
        return m == M_POST ? do_apply_batch(srv, req) : (reply_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    if (len > 25 && memcmp(p, "/admin/replication/fetch/", 25) == 0)
        return do_fetch(srv, req, m);
    if (!authorized(srv, req)) {
        reply_error(req, 401, "Unauthorized", "missing or wrong access token");
        return 0;
    }
    if (path_is(req, "/admin/replication/status"))
        return m == M_GET || m == M_HEAD ? do_status(srv, req)
                                         : (reply_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    /* /admin/{bucket}/objects */
    static const char suffix[] = "/objects";
    if (len > 7 + sizeof(suffix) - 1 && memcmp(p + len - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0) {
        const char *name = p + 7;
        size_t nlen = len - 7 - (sizeof(suffix) - 1);
        if (m != M_DELETE) {
            reply_error(req, 405, "MethodNotAllowed", "method not allowed");
            return 0;
        }
        return do_purge(srv, req, name, nlen);
    }
    reply_error(req, 404, "NotFound", "no such admin endpoint");
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((handler_t *)self)->srv;
    int m = method_index(req);
    const char *code;
    path_t p;

    if (header_bytes(req) > HEADERS_MAX) {
        reply_error(req, 431, "RequestHeaderFieldsTooLarge", "request headers exceed 32 KiB");
        return 0;
    }
    if (path_is(req, "/metrics") && (m == M_GET || m == M_HEAD))
        return do_metrics(srv, req);
    if (req->path.len >= 7 && memcmp(req->path.base, "/admin/", 7) == 0)
        return do_admin(srv, req, m);
    if (path_parse(req->path.base, req->path.len, &p, &code) != 0) {
        const char *msg = strcmp(code, "InvalidBucketName") == 0 ? "invalid bucket name"
                          : strcmp(code, "KeyTooLong") == 0      ? "the key is longer than 1024 bytes"
                          : strcmp(code, "InvalidKey") == 0      ? "the key contains a NUL byte"
                                                                 : "malformed request path";
        reply_error(req, 400, code, msg);
        return 0;
    }
    if (p.bucket_len == 0) {
        if (m == M_GET || m == M_HEAD)
            return do_list_buckets(srv, req);
        reply_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (reserved_bucket(&p)) {
        reply_error(req, 400, "InvalidBucketName", "bucket names 'admin' and 'metrics' are reserved");
        return 0;
    }
    if ((m == M_PUT || m == M_DELETE) && !authorized(srv, req)) {
        reply_error(req, 401, "Unauthorized", "missing or wrong access token");
        return 0;
    }
    if (p.key_len == 0) {
        switch (m) {
        case M_GET:
        case M_HEAD:
            return do_list_objects(srv, req, &p);
        case M_PUT:
            return do_mutation(req, COMMIT_BUCKET_CREATE, &p);
        case M_DELETE:
            return do_mutation(req, COMMIT_BUCKET_DELETE, &p);
        }
    } else {
        switch (m) {
        case M_GET:
        case M_HEAD:
            return do_get_object(srv, req, &p);
        case M_PUT:
            return do_put_object(srv, req, &p);
        case M_DELETE:
            return do_mutation(req, COMMIT_DELETE, &p);
        }
    }
    reply_error(req, 405, "MethodNotAllowed", "method not allowed");
    return 0;
}

/* ---- loops and listeners ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_thread_t *t = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&t->accept_ctx, sock);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *thread_main(void *arg)
{
    http_thread_t *t = arg;
    http_server_t *srv = t->srv;

    /* h2o keeps per-thread allocators: everything of a loop is made on its thread */
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &srv->globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = srv->globalconf.hosts;
    t->accept_ctx.ssl_ctx = srv->ssl_ctx;
    h2o_multithread_register_receiver(t->ctx.queue, &t->replies, on_replies);
    h2o_multithread_register_receiver(t->ctx.queue, &t->wakeup, on_wakeup);
    h2o_multithread_register_receiver(t->ctx.queue, &t->aside_replies, on_aside_replies);
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    pthread_mutex_lock(&srv->ready_mu);
    srv->nready++;
    pthread_cond_signal(&srv->ready_cv);
    pthread_mutex_unlock(&srv->ready_mu);

    while (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
        h2o_evloop_run(t->loop, INT32_MAX);
    /* stop accepting; answer what is in flight; close keep-alive connections */
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    h2o_context_request_shutdown(&t->ctx);
    uint64_t deadline = mono_ms() + srv->grace_ms;
    /* h2o 2.2.5 does not close idle HTTP/1 keep-alive connections on shutdown,
     * so wait for our own work only (mutations and control-socket questions),
     * then give the last answers a moment to be written */
    while ((t->inflight > 0 || t->asides > 0) && mono_ms() < deadline)
        h2o_evloop_run(t->loop, 10);
    for (uint64_t flush = mono_ms() + 50; mono_ms() < flush && mono_ms() < deadline;)
        h2o_evloop_run(t->loop, 10);
    if (t->rtxn != NULL)
        mdb_txn_abort(t->rtxn);
    t->rtxn = NULL;
    /* Report drained, then park: the loop's memory stays owned by a live
     * thread (h2o keeps per-thread free lists) until the process exits. */
    pthread_mutex_lock(&srv->ready_mu);
    srv->ndrained++;
    pthread_cond_broadcast(&srv->ready_cv);
    for (;;)
        pthread_cond_wait(&srv->park_cv, &srv->ready_mu);
    return NULL;
}

/* Each loop thread listens on its own socket with SO_REUSEPORT, so that the
 * kernel spreads connections evenly. But the kernel lets any process of the
 * same user join such a group: a second storaged configured with the same
 * port would silently take half of the connections, and the objects PUT
 * through them. So the first socket is preceded by a probe bound without
 * SO_REUSEPORT, which fails while anybody listens there. (Two servers
 * started within the same microseconds could still both pass: the probe
 * is closed before the group forms.) */
static int port_is_free(const struct addrinfo *ai, const char *host, unsigned port, char *err, size_t errlen)
{
    int on = 1, ok = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 1; /* the real socket() below reports it */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
        errno == EADDRINUSE) {
        snprintf(err, errlen, "cannot listen on %s:%u: another process listens there (%s)", host, port, strerror(EADDRINUSE));
        ok = 0;
    }
    close(fd);
    return ok;
}

static int open_listener(const conf_t *conf, int probe, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int fd = -1, on = 1, rc;
    const char *host = conf->listen != NULL && *conf->listen != '\0' ? conf->listen : "0.0.0.0";

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", conf->port);
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        snprintf(err, errlen, "server.listen: cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    if (probe && !port_is_free(res, host, conf->port, err, errlen)) {
        freeaddrinfo(res);
        return -1;
    }
    if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", host, conf->port, strerror(errno));
        if (fd != -1)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int http_check_listen(const conf_t *conf, char *err, size_t errlen)
{
    int fd = open_listener(conf, 1, err, errlen);
    if (fd == -1)
        return CIO_ESYS;
    close(fd);
    return 0;
}

static SSL_CTX *make_ssl_ctx(const conf_t *conf, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "TLS: cannot create a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
        snprintf(err, errlen, "server.tls.cert: cannot load '%s': %s", conf->tls_cert, ERR_reason_error_string(ERR_get_error()));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "server.tls.key: cannot load '%s' or it does not match the certificate", conf->tls_key);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static unsigned ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (unsigned)n;
}

/* Undoes a start that failed before any loop thread ran: the listeners, the
 * TLS context, h2o's configuration and the server itself. */
static void http_unstart(http_server_t *srv)
{
    if (srv->threads != NULL)
        for (size_t i = 0; i < srv->nthreads; i++)
            if (srv->threads[i].listen_fd >= 0)
                close(srv->threads[i].listen_fd);
    free(srv->threads);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    h2o_config_dispose(&srv->globalconf);
    free(srv);
}

int http_start(http_server_t **out, const conf_t *conf, meta_t *meta, store_t *store, commit_t *commit, char *err, size_t errlen)
{
    http_server_t *srv = calloc(1, sizeof(*srv));
    h2o_hostconf_t *host;
    h2o_pathconf_t *pathconf;
    handler_t *h;

    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return CIO_ENOMEM;
    }
    srv->conf = conf;
    srv->meta = meta;
    srv->store = store;
    srv->commit = commit;
    srv->fetch.ca_file = conf->ca_file;
    srv->nthreads = conf->threads != 0 ? conf->threads : ncpus();

    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("comio/" COMIO_VERSION));
    srv->globalconf.max_request_entity_size = (size_t)conf->max_object_size;
    /* the limit covers the whole request, body included: leave room for large uploads */
    srv->globalconf.http1.req_timeout = 300 * 1000;
    host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pathconf = h2o_config_register_path(host, "/", 0);
    h = (handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;

    if (conf->tls_cert != NULL && (srv->ssl_ctx = make_ssl_ctx(conf, err, errlen)) == NULL) {
        http_unstart(srv);
        return CIO_ECONFIG;
    }
    if ((srv->threads = calloc(srv->nthreads, sizeof(*srv->threads))) == NULL) {
        snprintf(err, errlen, "out of memory");
        http_unstart(srv);
        return CIO_ENOMEM;
    }
    for (size_t i = 0; i < srv->nthreads; i++)
        srv->threads[i].listen_fd = -1;
    for (size_t i = 0; i < srv->nthreads; i++) {
        http_thread_t *t = &srv->threads[i];
        t->srv = srv;
        if ((t->listen_fd = open_listener(conf, i == 0, err, errlen)) == -1) {
            http_unstart(srv);
            return CIO_ESYS;
        }
    }
    pthread_mutex_init(&srv->ready_mu, NULL);
    pthread_cond_init(&srv->ready_cv, NULL);
    pthread_cond_init(&srv->park_cv, NULL);
    for (size_t i = 0; i < srv->nthreads; i++) {
        if (pthread_create(&srv->threads[i].tid, NULL, thread_main, &srv->threads[i]) != 0) {
            /* loops already running hold the server: it stays for the exit that follows */
            snprintf(err, errlen, "pthread_create: %s", strerror(errno));
            return CIO_ESYS;
        }
    }
    /* the loops must be set up before anybody may message them */
    pthread_mutex_lock(&srv->ready_mu);
    while (srv->nready < srv->nthreads)
        pthread_cond_wait(&srv->ready_cv, &srv->ready_mu);
    pthread_mutex_unlock(&srv->ready_mu);
    *out = running = srv;
    return 0;
}

void http_stop(http_server_t *srv, unsigned grace_ms)
{
    /* a batch waiting for a large fetch answers "retry" within the grace period */
    commit_abandon_fetches(srv->commit);
    srv->grace_ms = grace_ms;
    __atomic_store_n(&srv->stopping, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < srv->nthreads; i++)
        h2o_multithread_send_message(&srv->threads[i].wakeup, NULL);
    pthread_mutex_lock(&srv->ready_mu);
    while (srv->ndrained < srv->nthreads)
        pthread_cond_wait(&srv->ready_cv, &srv->ready_mu);
    pthread_mutex_unlock(&srv->ready_mu);
    /* the loop threads stay parked until the process exits */
}
