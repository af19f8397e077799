/* repl_verify.c - the verify-only fetch: the lookup on the loop, the read on a few threads, the answer back on the loop. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "proto/logrec.h"
#include "storaged/integrity.h"
#include "storaged/repl_verify.h"

_Static_assert(REPL_VERIFY_CHUNK % BLOCKSUM_BLOCK == 0, "a verify reads whole checksum blocks");

/* One verify between its lookup and its answer. */
typedef struct verify {
    h2o_multithread_message_t msg;
    struct verify *next;            /* in the queue of verifies waiting for a thread */
    h2o_multithread_receiver_t *rx; /* the request's loop's (verify_rx of that loop) */
    http_server_t *srv;
    http_thread_t *thread;
    h2o_req_t *req;         /* NULL once the client went away (loop thread only) */
    struct verify **holder; /* the request pool's pointer to us (loop thread only) */
    uint64_t token;         /* reader token; left by the reading thread */
    uint64_t off, size;     /* the version's extent and size */
    blocksum_view_t view;   /* its checksums, the CRCs in `owned` (malloc'ed) or inline in the view */
    uint8_t *owned;
    char bucket[PATH_BUCKET_MAX + 1], key[PATH_KEY_MAX + 1], origin[LOGREC_ORIGIN_MAX + 1]; /* for the damage report */
    uint64_t version;
    int result;         /* integrity_read's: set by the thread before the message */
    uint64_t bad_block; /* result CIO_ECORRUPT: the first block that fails */
} verify_t;

static struct {
    pthread_mutex_t mu;
    verify_t *head, **tail; /* waiting for a thread */
    size_t queued;
    unsigned threads; /* running; each takes verifies until none waits, then ends */
} vq = {.mu = PTHREAD_MUTEX_INITIALIZER, .tail = &vq.head};

static __thread h2o_multithread_receiver_t verify_rx; /* this loop's receiver of finished verifies */
static __thread int verify_rx_ready;

static void verify_free(verify_t *v)
{
    free(v->owned);
    free(v);
}

static void verify_dispose(void *p)
{
    verify_t *v = *(verify_t **)p;
    if (v != NULL)
        v->req = NULL;
}

static void *verify_main(void *arg)
{
    char *chunk = malloc(REPL_VERIFY_CHUNK);

    for (;;) {
        pthread_mutex_lock(&vq.mu);
        verify_t *v = vq.head;
        if (v == NULL) {
            vq.threads--; /* under the lock: a verify queued after this is given a thread of its own */
            pthread_mutex_unlock(&vq.mu);
            break;
        }
        if ((vq.head = v->next) == NULL)
            vq.tail = &vq.head;
        vq.queued--;
        pthread_mutex_unlock(&vq.mu);

        v->result = chunk != NULL
                        ? integrity_read_all(v->srv->store, v->off, v->size, &v->view, chunk, REPL_VERIFY_CHUNK, &v->bad_block)
                        : CIO_ENOMEM;
        commit_reader_leave(v->srv->commit, v->token);
        if (v->result == CIO_ECORRUPT)
            integrity_damaged(INTEGRITY_GET, v->bucket, v->key, v->version, v->origin, v->bad_block);
        h2o_multithread_send_message(v->rx, &v->msg);
    }
    free(chunk);
    return NULL;
}

static void answer(h2o_req_t *req, int result)
{
    if (result == CIO_ECORRUPT)
        http_req_error(req, 503, "DataDamaged", "this site's copy of the object fails its block checksum");
    else if (result == CIO_ENOTFOUND)
        http_req_error(req, 410, "VersionGone", "this version of the object is gone (overwritten or deleted)");
    else if (result == CIO_EAGAIN)
        http_req_error(req, 429, "SlowDown", "too many verify-only fetches at once: try again later");
    else if (result != 0)
        http_req_cio_error(req, result, "verify failed");
    else
        http_req_reply(req, 200, "application/json", "", 0);
}

static void on_verified(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        verify_t *v = H2O_STRUCT_FROM_MEMBER(verify_t, msg.link, link);
        h2o_linklist_unlink(link);
        v->thread->inflight--;
        if (v->req != NULL) {
            *v->holder = NULL;
            answer(v->req, v->result);
        }
        verify_free(v);
    }
}

/* Queues v for a reading thread, starting one when fewer than
 * REPL_VERIFY_THREADS run. 0, CIO_EAGAIN (the queue is full) or CIO_ESYS
 * (no thread could be started and none runs); v is not queued then. */
static int verify_submit(verify_t *v)
{
    int ret = 0;

    pthread_mutex_lock(&vq.mu);
    if (vq.queued >= REPL_VERIFY_QUEUE_MAX) {
        pthread_mutex_unlock(&vq.mu);
        return CIO_EAGAIN;
    }
    v->next = NULL;
    *vq.tail = v;
    vq.tail = &v->next;
    vq.queued++;
    if (vq.threads < REPL_VERIFY_THREADS) {
        pthread_attr_t attr;
        pthread_t tid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, verify_main, NULL) == 0) {
            vq.threads++;
        } else if (vq.threads == 0) {
            /* nobody would take it: with no thread running the queue held nothing before v */
            vq.head = NULL;
            vq.tail = &vq.head;
            vq.queued = 0;
            ret = CIO_ESYS;
            log_msg(LOG_LVL_ERROR, "cannot start a verify thread", NULL);
        }
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_unlock(&vq.mu);
    return ret;
}

int repl_verify_serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin, size_t origin_len)
{
    http_thread_t *t = http_req_thread(req);
    uint64_t token = commit_reader_enter(srv->commit);
    verify_t *v = NULL;
    blocksum_view_t view;
    uint8_t *owned = NULL;
    int have = 0, ret;
    meta_obj_t o;
    MDB_txn *txn;

    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        ret = CIO_EDB;
        goto out;
    }
    ret = meta_obj_get(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o);
    if (ret == 0 && (origin != NULL ? !meta_obj_current(&o, version, origin, origin_len) : o.version != version))
        ret = CIO_ENOTFOUND;
    if (ret == 0)
        ret = integrity_sums(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o, 0, o.size, &view, &owned, &have);
    http_req_rtxn_end(t);
    if (ret != 0 || !have || o.size == 0)
        goto out; /* no checksums to check it by: good, as a fetch would serve it */
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        ret = CIO_ENOMEM;
        goto out;
    }
    if (!verify_rx_ready) {
        h2o_multithread_register_receiver(req->conn->ctx->queue, &verify_rx, on_verified);
        verify_rx_ready = 1;
    }
    v->rx = &verify_rx;
    v->srv = srv;
    v->thread = t;
    v->req = req;
    v->token = token;
    v->off = o.off;
    v->size = o.size;
    v->view = view;
    v->owned = owned;
    owned = NULL;
    memcpy(v->bucket, p->bucket, p->bucket_len);
    memcpy(v->key, p->key, p->key_len);
    memcpy(v->origin, o.origin, o.origin_len);
    v->version = o.version;
    if ((ret = verify_submit(v)) != 0)
        goto out;
    /* from here the reading thread owns the token; the answer comes from on_verified */
    v->holder = h2o_mem_alloc_shared(&req->pool, sizeof(*v->holder), verify_dispose);
    *v->holder = v;
    t->inflight++;
    return 0;
out:
    commit_reader_leave(srv->commit, token);
    if (v != NULL)
        verify_free(v);
    free(owned);
    answer(req, ret);
    return 0;
}
