/* http.c - storaged's HTTP server: listeners, event loops, TLS, routing, start and stop. */
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
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "common/bucket.h"
#include "common/clock.h"
#include "common/limits.h"
#include "storaged/handler_admin.h"
#include "storaged/handler_conflicts.h"
#include "storaged/handler_object.h"
#include "storaged/handler_repl.h"
#include "storaged/http.h"
#include "storaged/http_commit.h"
#include "storaged/http_req.h"
#include "storaged/mpu.h"
#include "storaged/path.h"
#include "storaged/s3.h"
#include "storaged/s3_bodyhash.h"
#include "common/replog.h"

#define HEADERS_MAX (32 * 1024)                                                 /* request line and headers */
#define HTTP_S3_PART_REQUEST_MAX ((size_t)MPU_PART_SIZE_MAX + 64 * 1024 * 1024) /* a 5 GiB part with aws-chunked framing */
#define HTTP2_IDLE_TIMEOUT_MS (10 * 1000)                                       /* h2o's default, stated: docs/security.md */
#define HTTP2_REQUESTS_PER_CONN 16                                              /* requests of one HTTP/2 connection run at once */

/* The running server; a global so that its memory stays reachable to the end. */
static http_server_t *running;

typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} handler_t;

/* ---- routing ---- */

static int do_admin(http_server_t *srv, h2o_req_t *req, int m)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *p = req->path.base;

    if (http_req_path_is(req, "/admin/health"))
        return m == HTTP_REQ_GET || m == HTTP_REQ_HEAD ? handler_admin_health(srv, req)
                                                       : (http_req_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    /* replication has its own credentials, never the access token */
    if (http_req_path_is(req, "/admin/replication/batch"))
        return m == HTTP_REQ_POST ? handler_repl_apply(srv, req)
                                  : (http_req_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    if (len > 25 && memcmp(p, "/admin/replication/fetch/", 25) == 0)
        return handler_repl_fetch(srv, req, m);
    if (http_req_path_is(req, "/admin/replication/list"))
        return handler_repl_list(srv, req, m);
    if (!http_req_authorized(srv, req)) {
        http_req_error(req, 401, "Unauthorized", "missing or wrong access token");
        return 0;
    }
    if (http_req_path_is(req, "/admin/replication/status"))
        return m == HTTP_REQ_GET || m == HTTP_REQ_HEAD ? handler_admin_status(srv, req)
                                                       : (http_req_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    if (http_req_path_is(req, "/admin/scrub"))
        return handler_admin_scrub(srv, req, m);
    /* /admin/conflicts/{bucket}/{key}; "/admin/conflicts/objects" is the purge of a bucket named "conflicts" */
    if (len > 17 && memcmp(p, "/admin/conflicts/", 17) == 0 && memchr(p + 17, '/', len - 17) != NULL)
        return m == HTTP_REQ_DELETE ? handler_conflicts_delete(srv, req)
                                    : (http_req_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    if (http_req_path_is(req, "/admin/conflicts"))
        return m == HTTP_REQ_GET || m == HTTP_REQ_HEAD ? handler_conflicts_list(srv, req)
                                                       : (http_req_error(req, 405, "MethodNotAllowed", "method not allowed"), 0);
    /* /admin/{bucket}/objects */
    static const char suffix[] = "/objects";
    if (len > 7 + sizeof(suffix) - 1 && memcmp(p + len - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0) {
        const char *name = p + 7;
        size_t nlen = len - 7 - (sizeof(suffix) - 1);
        if (m != HTTP_REQ_DELETE) {
            http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
            return 0;
        }
        return handler_admin_purge(srv, req, name, nlen);
    }
    http_req_error(req, 404, "NotFound", "no such admin endpoint");
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *srv = ((handler_t *)self)->srv;
    int m = http_req_method(req);
    const char *code;
    path_t p;

    if (http_req_header_bytes(req) > HEADERS_MAX) {
        http_req_error(req, 431, "RequestHeaderFieldsTooLarge", "request headers exceed 32 KiB");
        return 0;
    }
    int s3 = s3_is_s3(req);
    if (s3 != 0)
        return s3_dispatch(srv, req, s3);
    if (http_req_path_is(req, "/metrics") && (m == HTTP_REQ_GET || m == HTTP_REQ_HEAD))
        return handler_admin_metrics(srv, req);
    if (req->path.len >= 7 && memcmp(req->path.base, "/admin/", 7) == 0)
        return do_admin(srv, req, m);
    if (path_parse(req->path.base, req->path.len, &p, &code) != 0) {
        const char *msg = strcmp(code, "InvalidBucketName") == 0 ? "invalid bucket name"
                          : strcmp(code, "KeyTooLong") == 0      ? "the key is longer than " LIMIT_TEXT(LIMIT_KEY_MAX) " bytes"
                          : strcmp(code, "InvalidKey") == 0      ? "the key contains a NUL byte"
                                                                 : "malformed request path";
        http_req_error(req, 400, code, msg);
        return 0;
    }
    if (p.bucket_len == 0) {
        if (m == HTTP_REQ_GET || m == HTTP_REQ_HEAD)
            return handler_admin_buckets(srv, req);
        http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
        return 0;
    }
    if (bucket_name_reserved(p.bucket, p.bucket_len)) {
        http_req_error(req, 400, "InvalidBucketName", "bucket names " BUCKET_RESERVED_TEXT " are reserved");
        return 0;
    }
    if ((m == HTTP_REQ_PUT || m == HTTP_REQ_DELETE) && !http_req_authorized(srv, req)) {
        http_req_error(req, 401, "Unauthorized", "missing or wrong access token");
        return 0;
    }
    if (p.key_len == 0) {
        switch (m) {
        case HTTP_REQ_GET:
        case HTTP_REQ_HEAD:
            return handler_object_list(srv, req, &p);
        case HTTP_REQ_PUT:
            return http_commit_mutation(req, COMMIT_BUCKET_CREATE, &p);
        case HTTP_REQ_DELETE:
            return http_commit_mutation(req, COMMIT_BUCKET_DELETE, &p);
        }
    } else {
        switch (m) {
        case HTTP_REQ_GET:
        case HTTP_REQ_HEAD:
            return handler_object_get(srv, req, &p);
        case HTTP_REQ_PUT:
            return handler_object_put(srv, req, &p);
        case HTTP_REQ_DELETE:
            return http_commit_mutation(req, COMMIT_DELETE, &p);
        }
    }
    http_req_error(req, 405, "MethodNotAllowed", "method not allowed");
    return 0;
}

static void on_wakeup(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    /* nothing to do: the loop only needed to notice `stopping` */
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
    h2o_multithread_register_receiver(t->ctx.queue, &t->replies, http_commit_on_replies);
    h2o_multithread_register_receiver(t->ctx.queue, &t->wakeup, on_wakeup);
    h2o_multithread_register_receiver(t->ctx.queue, &t->aside_replies, handler_admin_on_asides);
    h2o_multithread_register_receiver(t->ctx.queue, &t->bodyhash_done, s3_bodyhash_on_done);
    if (srv->sync != NULL)
        t->sync = syncwait_loop_new(srv->sync, t->loop);
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
    int64_t deadline = clock_mono_ms() + srv->grace_ms;
    /* h2o 2.2.5 does not close idle HTTP/1 keep-alive connections on shutdown,
     * so wait for our own work only (mutations and control-socket questions),
     * then give the last answers a moment to be written */
    while ((t->inflight > 0 || t->asides > 0) && clock_mono_ms() < deadline)
        h2o_evloop_run(t->loop, 10);
    for (int64_t flush = clock_mono_ms() + 50; clock_mono_ms() < flush && clock_mono_ms() < deadline;)
        h2o_evloop_run(t->loop, 10);
    if (t->rtxn != NULL)
        mdb_txn_abort(t->rtxn);
    t->rtxn = NULL;
    s3_thread_done();
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

/* Writes to sync targets wait for their acknowledgements (syncwait.h):
 * reads the store's identity and the log's head for it. */
static int start_sync(http_server_t *srv, char *err, size_t errlen)
{
    uint64_t hi = 0, lo = 0, head = 0, records;
    MDB_txn *txn;
    int ret;

    if ((ret = meta_err(mdb_txn_begin(srv->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        goto fail;
    if ((ret = meta_state_get(srv->meta, txn, META_STORE_ID_HI, &hi)) == 0 &&
        (ret = meta_state_get(srv->meta, txn, META_STORE_ID_LO, &lo)) == 0)
        ret = replog_stats(srv->meta, txn, &head, &records);
    mdb_txn_abort(txn);
    if (ret == 0 && (ret = syncwait_new(&srv->sync, srv->conf, srv->meta, srv->conf->meta_path, hi, lo, head)) == 0)
        return 0;
fail:
    snprintf(err, errlen, "cannot set up waiting for sync targets: %s", cio_strerror(ret));
    return ret;
}

int http_start(http_server_t **out, const conf_t *conf, meta_t *meta, store_t *store, commit_t *commit, struct scrub *scrub,
               char *err, size_t errlen)
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
    srv->scrub = scrub;
    {
        MDB_txn *txn;
        if (mdb_txn_begin(meta->env, NULL, MDB_RDONLY, &txn) == 0) {
            if (meta_store_id(meta, txn, srv->store_id) != 0)
                srv->store_id[0] = '\0';
            mdb_txn_abort(txn);
        }
    }
    srv->fetch.ca_file = conf->ca_file;
    srv->nthreads = conf->threads != 0 ? conf->threads : ncpus();
    /* the fetches each target makes from us share its bandwidth_limit with repld's batches to it */
    if (conf->ntargets > 0 && bwlimit_open(&srv->bw, conf->meta_path, conf) != 0)
        log_msg(LOG_LVL_WARN, "no bandwidth file: the targets' bandwidth_limit does not pace their fetches", NULL);

    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("comio/" COMIO_VERSION));
    srv->globalconf.max_request_entity_size = (size_t)conf->max_object_size;
    /* S3's UploadPart takes up to 5 GiB (and its aws-chunked framing) whatever max_object_size is; a larger
     * PutObject or native PUT is still refused by its handler, once buffered (docs/s3.md, "Multipart uploads") */
    if (conf->s3_ncredentials > 0 && srv->globalconf.max_request_entity_size < HTTP_S3_PART_REQUEST_MAX)
        srv->globalconf.max_request_entity_size = HTTP_S3_PART_REQUEST_MAX;
    /* the limit covers the whole request, body included: leave room for large uploads */
    srv->globalconf.http1.req_timeout = 300 * 1000;
    /* HTTP/2 (TLS by ALPN; cleartext by prior knowledge or Upgrade: h2c, h2o's
     * default): a connection with no request in progress, or stalled inside a
     * HEADERS block, is closed after the idle timeout. h2o accepts up to 100
     * streams but runs only this many requests of a connection at once and
     * queues the rest: each running GET holds one read window (handler_object.c),
     * so a client that reads nothing holds at most 16 windows, not 100. */
    srv->globalconf.http2.idle_timeout = HTTP2_IDLE_TIMEOUT_MS;
    srv->globalconf.http2.max_concurrent_requests_per_connection = HTTP2_REQUESTS_PER_CONN;
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
    if (start_sync(srv, err, errlen) != 0) {
        http_unstart(srv);
        return CIO_ESYS;
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

void http_reload(http_server_t *srv)
{
    if (srv->bw != NULL)
        bwlimit_reload(srv->bw, srv->conf);
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
