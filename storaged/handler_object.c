/* handler_object.c - the object endpoints: GET/HEAD with ranges, PUT, and bucket listings. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/bwlimit.h"
#include "common/date.h"
#include "common/hex.h"
#include "common/zcodec.h"
#include "common/limits.h"
#include "proto/logrec.h"
#include "storaged/handler_object.h"
#include "common/conflict.h"
#include "storaged/http_commit.h"
#include "storaged/http_precond.h"
#include "storaged/deeplist.h"
#include "storaged/integrity.h"
#include "storaged/objmeta_http.h"
#include "storaged/repair.h"

/* What one GET holds of the object at a time: a body up to INLINE_READ_MAX
 * is read at once; a larger one is streamed, one window of STREAM_CHUNK read
 * from the store each time the socket took the previous one. A client that
 * reads slowly (or not at all) thus holds one window, not the object
 * (docs/security.md). 64 KiB is also what h2o's own file handler reads at a
 * time. */
#define STREAM_CHUNK (64 * 1024)
#define INLINE_READ_MAX STREAM_CHUNK
/* A verified read is of whole checksum blocks: a window is one block (or what
 * is left of it), and a small body needs at most the two blocks it touches. */
_Static_assert(STREAM_CHUNK == BLOCKSUM_BLOCK, "a stream window is one checksum block");

/* A PUT's If-Match / If-None-Match / If-Unmodified-Since against the key's
 * current object, evaluated here, on the loop, when the request arrives. A
 * key in a bucket not created yet has no current object either. When the
 * request has preconditions, *checked is set and *version names the object
 * they were checked against (0: none); the committer then refuses the PUT if
 * another write changed the key before its transaction (commit.h,
 * expect_version), so the check and the write are atomic. Returns
 * HTTP_PRECOND_PASS, HTTP_PRECOND_FAILED, or a CIO_* error of the metadata
 * read. */
static int put_precondition(http_server_t *srv, h2o_req_t *req, const path_t *p, int *checked, uint64_t *version)
{
    http_thread_t *t = http_req_thread(req);
    h2o_iovec_t etag = h2o_iovec_init(NULL, 0);
    char quoted[HTTP_OBJ_ETAG_MAX];
    http_precond_t pc;
    meta_obj_t o;
    MDB_txn *txn;
    int ret;

    *checked = 0;
    *version = 0;
    http_precond_from_req(req, &pc);
    if (pc.if_match.base == NULL && pc.if_none_match.base == NULL && pc.if_unmodified_since.base == NULL)
        return HTTP_PRECOND_PASS;
    if ((txn = http_req_rtxn_begin(t)) == NULL)
        return CIO_EDB;
    ret = meta_obj_get(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o);
    http_req_rtxn_end(t);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    *checked = 1;
    *version = ret == 0 ? o.version : 0;
    if (ret == 0)
        etag = h2o_iovec_init(quoted, http_obj_etag(&o, quoted));
    return http_precond_eval(&pc, etag, ret == 0 ? date_seconds(o.mtime_ms) : 0, 0);
}

static void native_error_range(h2o_req_t *req, uint64_t size)
{
    char buf[48];
    snprintf(buf, sizeof(buf), "bytes */%" PRIu64, size);
    http_req_error_hdr(req, 416, "InvalidRange", "the requested range is not satisfiable", H2O_TOKEN_CONTENT_RANGE, buf);
}

static void native_content_headers(h2o_req_t *req, const char *ctype, size_t ctype_len, const uint8_t *meta, size_t meta_len)
{
    http_req_add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype, ctype_len);
    objmeta_http_add(req, meta, meta_len);
}

const handler_api_t handler_object_native = {
    .error = http_req_error,
    .error_range = native_error_range,
    .cio_error = http_req_cio_error,
    .content_headers = native_content_headers,
    .answer_put = NULL,
};

int handler_object_write(http_server_t *srv, h2o_req_t *req, const path_t *p, const char *body, size_t len,
                         const handler_api_t *api)
{
    h2o_iovec_t ct = http_req_header(req, H2O_TOKEN_CONTENT_TYPE);
    http_commit_t *pend;
    uint64_t expect_version;
    int ret, expect_set;
    uint8_t meta[OBJMETA_MAX];
    size_t meta_len;
    const char *meta_code;
    char meta_err[256];

    if (len > srv->conf->max_object_size) {
        api->error(req, 413, "EntityTooLarge", "the object exceeds server.max_object_size");
        return 0;
    }
    if (ct.len > LOGREC_CTYPE_MAX) {
        api->error(req, 400, "InvalidArgument", "Content-Type is longer than 255 bytes");
        return 0;
    }
    if (ct.base == NULL || ct.len == 0)
        ct = h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    if (objmeta_http_read(req, meta, &meta_len, &meta_code, meta_err, sizeof(meta_err)) != 0) {
        api->error(req, 400, meta_code, meta_err);
        return 0;
    }
    if ((ret = put_precondition(srv, req, p, &expect_set, &expect_version)) != HTTP_PRECOND_PASS) {
        if (ret == HTTP_PRECOND_FAILED)
            api->error(req, 412, "PreconditionFailed",
                       "the key's current object does not match If-Match, If-None-Match or "
                       "If-Unmodified-Since");
        else
            api->cio_error(req, ret, "PUT failed");
        return 0;
    }
    if ((pend = http_commit_new(req, COMMIT_PUT, p)) == NULL) {
        api->cio_error(req, CIO_ENOMEM, "PUT failed");
        return 0;
    }
    pend->answer = api->answer_put;
    pend->job.expect_set = expect_set;
    pend->job.expect_version = expect_version;
    pend->job.body = body != NULL ? body : "";
    pend->job.size = len;
    memcpy(pend->job.ctype, ct.base, ct.len);
    pend->job.ctype_len = ct.len;
    memcpy(pend->job.meta, meta, meta_len);
    pend->job.meta_len = meta_len;
    http_req_count_in(len);
    return http_commit_submit(req, pend);
}

int handler_object_put(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    return handler_object_write(srv, req, p, req->entity.base, req->entity.len, &handler_object_native);
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
    uint64_t first_off; /* where the body starts in the store */
    size_t last_n;      /* object bytes of the window read last */
    char *chunk;
    int released;
    zcodec_stream_t *z;       /* NULL: sent as is */
    buf_t zout;               /* the compressed window being sent */
    int first_ready;          /* the first window is read (and compressed) already, waiting to be sent */
    int started;              /* the headers went: damage found before is answered by serve, after by stream_proceed */
    int may_repair;           /* damage found may still wait for a repair (once per request; never the fetch endpoint) */
    int repair_behind;        /* the fetch endpoint serving a replica: damage found queues a repair (fetch_repair_behind) */
    uint64_t *counts;         /* NULL, or [0] object bytes served, [1] bytes sent (atomic; the server's) */
    int count_sent;           /* the reply was counted with no body: count each window as it is sent */
    int bw_slot;              /* the fetching target's bandwidth slot (srv->bw), -1: not paced */
    h2o_timeout_entry_t pace; /* linked while a window waits for the target's bandwidth limit */
    int64_t pace_due_ns;      /* CLOCK_MONOTONIC: when that window may go */
    h2o_req_t *pace_req;
    h2o_iovec_t pace_iov;
    int pace_final;
    /* block checksums (integrity.h): when `verified`, each window is the
     * object's blocks read whole and checked before any byte of them goes */
    int verified;
    blocksum_view_t sums; /* its CRCs in the request's pool */
    uint64_t ext_off;     /* the object's extent */
    const char *slice;    /* the window's bytes to send, inside chunk */
    int damaged;          /* the last read found a block that fails its checksum */
    uint64_t bad_block;   /* ... this one */
    const char *bucket;   /* for the damage report: in the request's pool */
    const char *key;
    uint64_t version;
    char origin[LOGREC_ORIGIN_MAX + 1];
} stream_t;

#define PACE_TICK_MS 2 /* a window held back by a bandwidth limit is looked at again this often */

/* The event loop's timeout for paced windows: one per loop thread, made on first use. */
static __thread h2o_timeout_t pace_timeout;
static __thread h2o_loop_t *pace_loop;

static void stream_release(stream_t *s)
{
    if (!s->released) {
        s->released = 1;
        commit_reader_leave(s->srv->commit, s->token);
    }
    free(s->chunk);
    s->chunk = NULL;
    zcodec_stream_free(s->z);
    s->z = NULL;
    buf_free(&s->zout);
}

static void stream_dispose(void *p)
{
    stream_t *s = p;
    if (h2o_timeout_is_linked(&s->pace))
        h2o_timeout_unlink(&s->pace);
    stream_release(s);
}

static int64_t pace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pace_link(stream_t *s)
{
    h2o_loop_t *loop = s->pace_req->conn->ctx->loop;
    if (pace_loop != loop) {
        h2o_timeout_init(loop, &pace_timeout, PACE_TICK_MS);
        pace_loop = loop;
    }
    h2o_timeout_link(loop, &pace_timeout, &s->pace);
}

static void on_pace(h2o_timeout_entry_t *entry)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, pace, entry);
    if (pace_now_ns() < s->pace_due_ns) {
        pace_link(s);
        return;
    }
    h2o_send(s->pace_req, &s->pace_iov, 1, s->pace_final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* Takes the window from the fetching target's bandwidth limit (shared with
 * repld's batches to it: common/bwlimit.h). Returns 1 when it must wait:
 * then on_pace sends it, without holding the loop. */
static int stream_paced(stream_t *s, h2o_req_t *req, h2o_iovec_t *iov, int final)
{
    uint64_t wait = bwlimit_take(s->srv->bw, s->bw_slot, iov->len);
    if (wait == 0)
        return 0;
    s->pace_due_ns = pace_now_ns() + (int64_t)wait;
    s->pace_req = req;
    s->pace_iov = *iov;
    s->pace_final = final;
    s->pace.cb = on_pace;
    pace_link(s);
    return 1;
}

/* Reads the next window into s->chunk and, when compressing, compresses it
 * into s->zout. Returns the window's bytes to send, or NULL (s->damaged set
 * when a block failed its checksum: then reported). */
static h2o_iovec_t *stream_next(stream_t *s, h2o_iovec_t *iov)
{
    size_t n = s->remaining < STREAM_CHUNK ? (size_t)s->remaining : STREAM_CHUNK;

    if (s->verified) {
        /* the window ends at a block boundary (or the range's end), and the block it lies in is read whole */
        uint64_t pos = s->off - s->ext_off, roff, rlen, bad = 0;
        if (n > STREAM_CHUNK - (pos & (STREAM_CHUNK - 1)))
            n = (size_t)(STREAM_CHUNK - (pos & (STREAM_CHUNK - 1)));
        blocksum_widen(s->sums.shift, s->sums.size, pos, n, &roff, &rlen);
        int ret = integrity_read(s->srv->store, s->ext_off, roff, s->chunk, (size_t)rlen, &s->sums, &bad);
        if (ret == CIO_ECORRUPT) {
            s->damaged = 1;
            s->bad_block = bad;
            integrity_damaged(INTEGRITY_GET, s->bucket, s->key, s->version, s->origin, bad);
        }
        if (ret != 0)
            return NULL;
        s->slice = s->chunk + (pos - roff);
    } else {
        if (store_read(s->srv->store, s->off, s->chunk, n) != 0)
            return NULL;
        s->slice = s->chunk;
    }
    s->off += n;
    s->remaining -= n;
    s->last_n = n;
    *iov = h2o_iovec_init(s->slice, n);
    if (s->z != NULL) {
        if (zcodec_stream_put(s->z, s->slice, n, s->remaining == 0, &s->zout) != 0)
            return NULL;
        *iov = h2o_iovec_init(s->zout.data, s->zout.len);
    }
    return iov;
}

static int stream_defer(stream_t *s, h2o_req_t *req);

/* The fetch endpoint met damage while serving a replica (or a full sync):
 * it answers 503 or cuts its reply, as before, and queues a repair of this
 * copy from this site's peers (repair_background: once per object while
 * one is queued or running, none in the back-off after a failure), so that the replica's retry gets good bytes
 * instead of the same refusal forever. Strings NUL-terminated but b and k,
 * borrowed for the call. */
static void fetch_repair_behind(const char *b, size_t blen, const char *k, size_t klen, uint64_t version, const char *origin,
                                uint64_t off, uint64_t block)
{
    repair_what_t w;
    repair_what_set(&w, b, blen, k, klen, version, origin, strlen(origin), off, block, INTEGRITY_GET);
    repair_background(&w);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    stream_t *s = (stream_t *)g;
    h2o_iovec_t iov;

    s->started = 1;
    if (s->first_ready) {
        s->first_ready = 0;
        iov = s->z != NULL ? h2o_iovec_init(s->zout.data, s->zout.len) : h2o_iovec_init(s->slice, s->off - s->first_off);
    } else if (stream_next(s, &iov) == NULL) {
        /* damage after the headers went: the stream waits for the repair and goes on from the good copy (on_repairs) */
        if (s->damaged && s->may_repair && stream_defer(s, req) == 0)
            return;
        if (s->damaged && s->repair_behind)
            fetch_repair_behind(s->bucket, strlen(s->bucket), s->key, strlen(s->key), s->version, s->origin, s->ext_off,
                                s->bad_block);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    if (s->count_sent)
        http_req_count_out(iov.len);
    if (s->counts != NULL) {
        __atomic_add_fetch(&s->counts[0], s->z != NULL ? s->last_n : iov.len, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->counts[1], iov.len, __ATOMIC_RELAXED);
    }
    if (stream_paced(s, req, &iov, s->remaining == 0))
        return;
    h2o_send(req, &iov, 1, s->remaining == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* Whether the client takes zstd: a "zstd" coding in Accept-Encoding, not with q=0. */
static int accepts_zstd(h2o_req_t *req)
{
    h2o_iovec_t v = http_req_header(req, H2O_TOKEN_ACCEPT_ENCODING);
    size_t i = 0;

    while (v.base != NULL && i < v.len) {
        size_t start, end, next;
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == ',' || v.base[i] == '\t'))
            i++;
        start = i;
        while (i < v.len && v.base[i] != ',' && v.base[i] != ';' && v.base[i] != ' ' && v.base[i] != '\t')
            i++;
        end = i;
        next = i;
        while (next < v.len && v.base[next] != ',')
            next++;
        if (h2o_lcstris(v.base + start, end - start, H2O_STRLIT("zstd"))) {
            /* parameters: only q=0 (and 0.0, 0.00, 0.000) refuses it */
            for (size_t k = end; k + 2 < next; k++)
                if ((v.base[k] == 'q' || v.base[k] == 'Q') && v.base[k + 1] == '=' && v.base[k + 2] == '0') {
                    size_t m = k + 3;
                    if (m < next && v.base[m] == '.')
                        for (m++; m < next && v.base[m] == '0'; m++)
                            ;
                    if (m == next || v.base[m] == ' ' || v.base[m] == ';' || v.base[m] == '\t')
                        return 0;
                }
            return 1;
        }
        i = next;
    }
    return 0;
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
}

/* 304: the validators (added by the caller) and no body. */
static void send_not_modified(h2o_req_t *req)
{
    static h2o_generator_t none = {NULL, NULL};

    req->res.status = 304;
    req->res.reason = http_req_reason(304);
    http_req_count(req, 304, 0);
    h2o_start_response(req, &none);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/* ---- a GET that found damage waits for the repair ----
 * The read that failed is given up (its reader token left); the repair runs
 * on the repairer's thread (storaged/repair.h) and posts the outcome back
 * to this loop, which serves the request again from the repaired copy
 * (once: damage found again is a 503), or answers 503 if no peer has a good
 * copy. The loop never waits on the network. */

typedef struct pending_repair {
    h2o_multithread_message_t msg;
    h2o_multithread_receiver_t *rx; /* the loop's (repair_rx) */
    http_server_t *srv;
    http_thread_t *thread;
    h2o_req_t *req;                 /* NULL once the client went away */
    struct pending_repair **holder; /* the request pool's pointer to us */
    path_t p;
    const handler_api_t *api;
    uint64_t version; /* serve's arguments, to serve again */
    char origin[LOGREC_ORIGIN_MAX + 1];
    size_t origin_len;
    int has_origin, kept;
    stream_t *stream; /* a stream that waits in the middle (stream_defer); NULL: serve again from the start */
    int result;       /* the repair's: set by the repairer before the message */
} pending_repair_t;

static __thread h2o_multithread_receiver_t repair_rx;
static __thread int repair_rx_ready;

/* serve's `flags` */
#define SERVE_REPAIRED 1      /* served again after a repair (on_repairs): damage found now is a 503, not another repair */
#define SERVE_REPAIR_BEHIND 2 /* the fetch endpoint serving a replica: damage found queues a repair (fetch_repair_behind) */

static int serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin, size_t origin_len,
                 int kept, int zstd_level, uint64_t *counts, int bw_slot, const handler_api_t *api, int flags);
static void reply_damaged(h2o_req_t *req, const handler_api_t *api, const path_t *p, const meta_obj_t *o, uint64_t block);

static void pending_repair_dispose(void *p)
{
    pending_repair_t *pr = *(pending_repair_t **)p;
    if (pr != NULL)
        pr->req = NULL;
}

static void on_repair_done(void *arg, int result)
{
    pending_repair_t *pr = arg;
    pr->result = result;
    h2o_multithread_send_message(pr->rx, &pr->msg);
}

/* Points a stream that found damage at the object's repaired extent: the
 * same version, the same bytes, elsewhere. -1 when the object is no longer
 * that version (rewritten meanwhile: the reply is cut). */
static int stream_resume(stream_t *s, h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    MDB_txn *txn;
    meta_obj_t o;
    int ret;

    if ((txn = http_req_rtxn_begin(t)) == NULL)
        return -1;
    ret = meta_obj_get(s->srv->meta, txn, s->bucket, strlen(s->bucket), s->key, strlen(s->key), &o);
    http_req_rtxn_end(t);
    if (ret != 0 || !meta_obj_current(&o, s->version, s->origin, strlen(s->origin)) || o.size != s->sums.size)
        return -1;
    /* the reader token taken at the start is older than any free of the new extent: it protects it too */
    s->off = o.off + (s->off - s->ext_off);
    s->first_off = o.off + (s->first_off - s->ext_off);
    s->ext_off = o.off;
    return 0;
}

static void on_repairs(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        pending_repair_t *pr = H2O_STRUCT_FROM_MEMBER(pending_repair_t, msg.link, link);
        h2o_linklist_unlink(link);
        pr->thread->inflight--;
        if (pr->req != NULL) {
            *pr->holder = NULL;
            if (pr->stream != NULL) {
                if (pr->result == 0 && stream_resume(pr->stream, pr->req) == 0)
                    stream_proceed(&pr->stream->super, pr->req);
                else
                    h2o_send(pr->req, NULL, 0, H2O_SEND_STATE_ERROR);
            } else if (pr->result == 0) {
                (void)serve(pr->srv, pr->req, &pr->p, pr->version, pr->has_origin ? pr->origin : NULL, pr->origin_len, pr->kept, 0,
                            NULL, -1, pr->api, SERVE_REPAIRED);
            } else {
                meta_obj_t none;
                memset(&none, 0, sizeof(none));
                reply_damaged(pr->req, pr->api, &pr->p, &none, UINT64_MAX);
            }
        }
        free(pr);
    }
}

/* A waiting request for the repair of w: 0 once submitted (answered by on_repairs), -1 when it could not be (pr freed). */
static int pending_submit(pending_repair_t *pr, h2o_req_t *req, const repair_what_t *w)
{
    if (!repair_rx_ready) {
        h2o_multithread_register_receiver(req->conn->ctx->queue, &repair_rx, on_repairs);
        repair_rx_ready = 1;
    }
    pr->rx = &repair_rx;
    pr->thread = http_req_thread(req);
    pr->req = req;
    pr->holder = h2o_mem_alloc_shared(&req->pool, sizeof(*pr->holder), pending_repair_dispose);
    *pr->holder = pr;
    pr->thread->inflight++;
    if (repair_submit(w, on_repair_done, pr) != 0) {
        pr->thread->inflight--;
        *pr->holder = NULL;
        free(pr);
        return -1;
    }
    return 0;
}

static int stream_defer(stream_t *s, h2o_req_t *req)
{
    pending_repair_t *pr;
    repair_what_t w;

    s->may_repair = 0; /* once: damage found again cuts the reply */
    s->damaged = 0;
    if ((pr = calloc(1, sizeof(*pr))) == NULL)
        return -1;
    pr->srv = s->srv;
    pr->stream = s;
    repair_what_set(&w, s->bucket, strlen(s->bucket), s->key, strlen(s->key), s->version, s->origin, strlen(s->origin), s->ext_off,
                    s->bad_block, INTEGRITY_GET);
    return pending_submit(pr, req, &w);
}

/* Hands req to the repairer for object o, damaged at `block` at its extent.
 * Returns 0 when it waits for the repair (answered later), -1 when it could
 * not be queued (the caller answers 503). */
static int defer_to_repair(http_server_t *srv, h2o_req_t *req, const path_t *p, const meta_obj_t *o, uint64_t block,
                           uint64_t version, const char *origin, size_t origin_len, int kept, const handler_api_t *api)
{
    pending_repair_t *pr;
    repair_what_t w;

    if ((pr = calloc(1, sizeof(*pr))) == NULL)
        return -1;
    pr->srv = srv;
    pr->p = *p;
    pr->api = api;
    pr->version = version;
    pr->has_origin = origin != NULL;
    pr->origin_len = origin_len > LOGREC_ORIGIN_MAX ? LOGREC_ORIGIN_MAX : origin_len;
    if (origin != NULL)
        memcpy(pr->origin, origin, pr->origin_len);
    pr->kept = kept;
    repair_what_set(&w, p->bucket, p->bucket_len, p->key, p->key_len, o->version, o->origin, o->origin_len, o->off, block,
                    INTEGRITY_GET);
    return pending_submit(pr, req, &w);
}

/* 503 for an object whose bytes fail their checksum: no client ever gets a
 * wrong byte (docs/api.md). Block UINT64_MAX: reported already (stream_next). */
static void reply_damaged(h2o_req_t *req, const handler_api_t *api, const path_t *p, const meta_obj_t *o, uint64_t block)
{
    if (block != UINT64_MAX)
        integrity_damaged(INTEGRITY_GET, p->bucket, p->key, o->version, o->origin, block);
    /* S3 clients retry a 503 ServiceUnavailable; the native API names the cause */
    if (api == &handler_object_native)
        api->error(req, 503, "DataDamaged",
                   "the object's stored data fails its block checksum and no good copy is available here; the damage is logged");
    else
        api->error(req, 503, "ServiceUnavailable",
                   "The object's stored data fails its checksum and no good copy is available; the damage is logged");
}

/* `flags`: SERVE_*. */
static int serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin, size_t origin_len,
                 int kept, int zstd_level, uint64_t *counts, int bw_slot, const handler_api_t *api, int flags)
{
    http_thread_t *t = http_req_thread(req);
    meta_obj_t o;
    meta_bucket_t bk;
    MDB_txn *txn;
    uint64_t token, first = 0, last = 0, len;
    http_precond_t pc;
    char buf[96], etag[HTTP_OBJ_ETAG_MAX];
    size_t etag_len;
    int64_t mtime;
    int ret, ranged = 0, cond, have_sums = 0, loser = 0;
    blocksum_view_t sums;
    conflict_t k; /* a kept loser's record (loser): its checksums borrowed from the read transaction */
    size_t headers_before = req->res.headers.size; /* dropped again when the request waits for a repair */
    /* a client's read that finds damage waits for a repair; the fetch endpoint's (a peer repairing) never does */
    int may_repair = !(flags & SERVE_REPAIRED) && kept != 2;
    int behind = (flags & SERVE_REPAIR_BEHIND) != 0;

    token = commit_reader_enter(srv->commit);
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        commit_reader_leave(srv->commit, token);
        api->cio_error(req, CIO_EDB, "GET failed");
        return 0;
    }
    ret = meta_obj_get(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o);
    if (ret == CIO_ENOTFOUND && meta_bucket_get(srv->meta, txn, p->bucket, p->bucket_len, &bk) == CIO_ENOTFOUND)
        ret = 1;
    if (kept && origin != NULL && ret != 1 &&
        (ret == CIO_ENOTFOUND || (ret == 0 && !meta_obj_current(&o, version, origin, origin_len)))) {
        /* not the current version: a conflict's loser this site keeps, if it is one */
        ret = conflict_get(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, version, origin, origin_len, &k);
        if (ret == 0 && k.deleted)
            ret = kept == 2 ? 2 : 3; /* a DELETE: no bytes */
        if (ret == 0) {
            conflict_as_obj(&k, &o);
            loser = 1;
        } else if (ret == CIO_ENOTFOUND) {
            ret = kept == 2 ? 2 : 3; /* the fetch endpoint: gone (a newer event follows) */
        }
    } else if ((!kept || origin == NULL) && version != 0 &&
               (ret == 1 || ret == CIO_ENOTFOUND ||
                (ret == 0 && (origin != NULL ? !meta_obj_current(&o, version, origin, origin_len) : o.version != version)))) {
        ret = 2; /* overwritten or deleted since the URL was signed: a newer event follows */
    }
    if (ret == 0) {
        /* the fetch endpoint's ETag stays the MD5 of the bytes, which a fetching replica checks them against */
        if (kept == 2)
            o.mpu_parts = 0;
        etag_len = http_obj_etag(&o, etag);
        mtime = date_seconds(o.mtime_ms); /* the Last-Modified shown: a replicated mtime is clamped to 1970..9999 */
        /* a Range whose If-Range names another version of the object would splice two versions: the whole
         * current object instead. Known here, so that a Range GET copies only the CRCs of the blocks it reads */
        http_precond_from_req(req, &pc);
        if (http_precond_if_range(pc.if_range, h2o_iovec_init(etag, etag_len), mtime))
            ranged = parse_range(pc.range, o.size, &first, &last);
    }
    if (ret == 0 && ranged >= 0 && srv->conf->checksums && o.size > 0 && !http_req_is_head(req)) {
        /* the CRCs of the blocks read, copied into the request's pool: they outlive the read transaction (an inline
         * CRC is in sums). A loser's are its record's (none in a record written before they were kept: unverified) */
        uint8_t *owned = NULL;
        uint64_t soff = ranged > 0 ? first : 0, slen = ranged > 0 ? last - first + 1 : o.size;
        if (loser) {
            if ((have_sums = k.has_sums))
                sums = blocksum_view_range(&k.sums, soff, slen);
        } else {
            ret = integrity_sums(srv->meta, txn, p->bucket, p->bucket_len, p->key, p->key_len, &o, soff, slen, &sums, &owned,
                                 &have_sums);
        }
        if (ret == 0 && have_sums && sums.crcs != NULL) {
            uint8_t *copy = h2o_mem_alloc_pool(&req->pool, (size_t)sums.n * 4);
            memcpy(copy, sums.crcs, (size_t)sums.n * 4);
            sums.crcs = copy;
        }
        free(owned);
    }
    http_req_rtxn_end(t);
    if (loser) /* a kept loser is never repaired from a peer (docs/operations.md): its damage is only refused */
        may_repair = behind = 0;
    if (ret != 0) {
        commit_reader_leave(srv->commit, token);
        if (ret == 2)
            api->error(req, 410, "VersionGone", "this version of the object is gone (overwritten or deleted)");
        else if (ret == 3)
            api->error(req, 404, "NoSuchVersion", "neither the current version nor a conflict's loser this site keeps");
        else if (ret == 1)
            api->error(req, 404, "NoSuchBucket", "no such bucket");
        else if (ret == CIO_ENOTFOUND)
            api->error(req, 404, "NoSuchKey", "no such key");
        else
            api->cio_error(req, ret, "GET failed");
        return 0;
    }

    cond = http_precond_eval(&pc, h2o_iovec_init(etag, etag_len), mtime, 1); /* pc: read with the ETag above */
    if (cond == HTTP_PRECOND_FAILED) {
        commit_reader_leave(srv->commit, token);
        api->error(req, 412, "PreconditionFailed", "the object does not match If-Match or If-Unmodified-Since");
        return 0;
    }
    http_req_add_header(req, H2O_TOKEN_ETAG, etag, etag_len);
    {
        struct tm tm;
        date_gmtime(o.mtime_ms, &tm);
        h2o_time2str_rfc1123(buf, &tm);
        http_req_add_header(req, H2O_TOKEN_LAST_MODIFIED, buf, H2O_TIMESTR_RFC1123_LEN);
    }
    fmt_u64(buf, o.version);
    http_req_add_header_str(req, "x-comio-version", buf);
    http_req_add_header_str(req, "x-comio-origin", o.origin);
    if (cond == HTTP_PRECOND_NOT_MODIFIED) {
        commit_reader_leave(srv->commit, token);
        send_not_modified(req);
        return 0;
    }
    /* not on the fetch endpoint (kept 2): its Content-Encoding is replication's own (zstd), which the
     * fetcher decodes; the object's stored Content-Encoding travels in the log record instead */
    api->content_headers(req, o.ctype, o.ctype_len, kept != 2 ? o.meta : NULL, kept != 2 ? o.meta_len : 0);
    http_req_add_header(req, H2O_TOKEN_ACCEPT_RANGES, H2O_STRLIT("bytes"));

    if (ranged < 0) {
        commit_reader_leave(srv->commit, token);
        api->error_range(req, o.size);
        return 0;
    }
    if (ranged > 0) {
        snprintf(buf, sizeof(buf), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, o.size);
        http_req_add_header(req, H2O_TOKEN_CONTENT_RANGE, buf, strlen(buf));
        len = last - first + 1;
    } else {
        first = 0;
        len = o.size;
    }
    /* a small body, verified, is read (whole blocks) and checked before anything is answered */
    h2o_iovec_t small = {NULL, 0};
    if (!http_req_is_head(req) && len > 0 && len <= INLINE_READ_MAX && have_sums) {
        uint64_t roff, rlen, bad = 0;
        blocksum_widen(sums.shift, sums.size, first, len, &roff, &rlen);
        char *rbuf = h2o_mem_alloc_pool(&req->pool, (size_t)rlen);
        ret = integrity_read(srv->store, o.off, roff, rbuf, (size_t)rlen, &sums, &bad);
        if (ret != 0) {
            commit_reader_leave(srv->commit, token);
            if (ret == CIO_ECORRUPT && may_repair) {
                integrity_damaged(INTEGRITY_GET, p->bucket, p->key, o.version, o.origin, bad);
                req->res.headers.size = headers_before;
                if (defer_to_repair(srv, req, p, &o, bad, version, origin, origin_len, kept, api) == 0)
                    return 0;
                reply_damaged(req, api, p, &o, UINT64_MAX);
            } else if (ret == CIO_ECORRUPT) {
                reply_damaged(req, api, p, &o, bad);
                if (behind)
                    fetch_repair_behind(p->bucket, p->bucket_len, p->key, p->key_len, o.version, o.origin, o.off, bad);
            } else
                api->cio_error(req, ret, "GET failed");
            return 0;
        }
        small = h2o_iovec_init(rbuf + (first - roff), (size_t)len);
    }
    req->res.status = ranged > 0 ? 206 : 200;
    req->res.reason = http_req_reason(req->res.status);
    req->res.content_length = len;
    /* a stream that may go compressed is counted window by window, as sent */
    int may_compress = zstd_level > 0 && ranged == 0 && !http_req_is_head(req) && len > INLINE_READ_MAX && accepts_zstd(req);
    http_req_count(req, req->res.status, http_req_is_head(req) || may_compress ? 0 : len);

    if (http_req_is_head(req) || len == 0) {
        static h2o_generator_t none = {NULL, NULL};
        commit_reader_leave(srv->commit, token);
        h2o_start_response(req, &none);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 0;
    }
    if (len <= INLINE_READ_MAX) {
        static h2o_generator_t none = {NULL, NULL};
        h2o_iovec_t iov = small;
        if (iov.base == NULL) {
            iov = h2o_iovec_init(h2o_mem_alloc_pool(&req->pool, (size_t)len), (size_t)len);
            ret = store_read(srv->store, o.off + first, iov.base, (size_t)len);
        }
        commit_reader_leave(srv->commit, token);
        if (counts != NULL && ret == 0) {
            __atomic_add_fetch(&counts[0], len, __ATOMIC_RELAXED);
            __atomic_add_fetch(&counts[1], len, __ATOMIC_RELAXED);
        }
        (void)bwlimit_take(srv->bw, bw_slot, (size_t)len); /* one window: sent at once, its time paid by the next */
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
    s->off = s->first_off = o.off + first;
    s->remaining = len;
    s->counts = counts;
    s->count_sent = may_compress;
    s->bw_slot = bw_slot;
    s->ext_off = o.off;
    if ((s->verified = have_sums)) {
        s->may_repair = may_repair;
        s->repair_behind = behind;
        s->sums = sums;
        s->key = h2o_mem_alloc_pool(&req->pool, p->key_len + 1);
        memcpy((char *)s->key, p->key, p->key_len + 1);
        s->bucket = h2o_mem_alloc_pool(&req->pool, p->bucket_len + 1);
        memcpy((char *)s->bucket, p->bucket, p->bucket_len + 1);
        s->version = o.version;
        memcpy(s->origin, o.origin, o.origin_len + 1);
    }
    buf_init(&s->zout, SIZE_MAX);
    if ((s->chunk = malloc(STREAM_CHUNK)) == NULL) {
        h2o_start_response(req, &s->super);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return 0;
    }
    if (may_compress || s->verified) {
        h2o_iovec_t iov;
        /* the first window is read before the headers go: a damaged first block is a clean 503, and when
         * compressing it decides: compressed only when it gains 10% */
        if ((may_compress && zcodec_stream_new(&s->z, zstd_level, len) != 0) || stream_next(s, &iov) == NULL) {
            if (s->damaged) {
                /* the reader token is left when the pool disposes of s */
                req->res.headers.size = headers_before;
                if (may_repair && defer_to_repair(srv, req, p, &o, s->bad_block, version, origin, origin_len, kept, api) == 0)
                    return 0;
                reply_damaged(req, api, p, &o, UINT64_MAX);
                if (behind)
                    fetch_repair_behind(p->bucket, p->bucket_len, p->key, p->key_len, o.version, o.origin, o.off, s->bad_block);
                return 0;
            }
            h2o_start_response(req, &s->super);
            h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
            return 0;
        }
        s->first_ready = 1;
        if (s->z == NULL) {
            /* not compressing: the window read is sent first, as is */
        } else if (s->zout.len > (size_t)(s->off - s->first_off) / 100 * ZCODEC_KEEP_PERCENT) {
            zcodec_stream_free(s->z); /* as is: the window read is sent first, unchanged */
            s->z = NULL;
        } else {
            req->res.content_length = SIZE_MAX; /* chunked: the compressed size is known at the end */
            http_req_add_header(req, H2O_TOKEN_CONTENT_ENCODING, H2O_STRLIT("zstd"));
        }
    }
    if (zstd_level > 0)
        http_req_add_header(req, H2O_TOKEN_VARY, H2O_STRLIT("Accept-Encoding"));
    h2o_start_response(req, &s->super);
    stream_proceed(&s->super, req);
    return 0;
}

int handler_object_serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin,
                         size_t origin_len, int kept, int zstd_level, uint64_t *counts, int bw_slot, int repair_behind)
{
    return serve(srv, req, p, version, origin, origin_len, kept, zstd_level, counts, bw_slot, &handler_object_native,
                 repair_behind ? SERVE_REPAIR_BEHIND : 0);
}

int handler_object_read(http_server_t *srv, h2o_req_t *req, const path_t *p, const handler_api_t *api)
{
    return serve(srv, req, p, 0, NULL, 0, 0, 0, NULL, -1, api, 0);
}

int handler_object_get(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    char vs[24], origin[LOGREC_ORIGIN_MAX + 1];
    size_t vlen, olen;
    uint64_t v;
    int rv = http_req_query_param(req, "version", vs, sizeof(vs), &vlen),
        ro = http_req_query_param(req, "origin", origin, sizeof(origin), &olen);

    if (rv == CIO_ENOTFOUND && ro == CIO_ENOTFOUND)
        return handler_object_serve(srv, req, p, 0, NULL, 0, 0, 0, NULL, -1, 0);
    /* ?version=V&origin=O: that version, current or kept as a conflict's loser */
    if (rv != 0 || vlen == 0 || vlen > 20 || strspn(vs, "0123456789") != vlen || (v = strtoull(vs, NULL, 10)) == 0 || ro != 0 ||
        olen == 0) {
        http_req_error(req, 400, "InvalidArgument", "version and origin: a positive integer and a site id, both or neither");
        return 0;
    }
    return handler_object_serve(srv, req, p, v, origin, olen, 1, 0, NULL, -1, 0);
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
    char etag[33], ts[DATE_ISO8601_MS_LEN + 1], md[2 * OBJMETA_DIGEST_LEN + 1];

    if (l->n == l->max) {
        l->truncated = 1;
        return 1;
    }
    hex_encode(etag, o->etag, 16);
    date_iso8601_ms(o->mtime_ms, ts);
    buf_puts(l->b, l->n == 0 ? "{\"key\":" : ",{\"key\":");
    l->json_key(l->b, o->key, o->key_len);
    buf_printf(l->b, ",\"size\":%" PRIu64 ",\"etag\":\"%s\",\"last_modified\":\"%s\",\"version\":%" PRIu64 ",\"origin\":", o->size,
               etag, ts, o->version);
    buf_json_str(l->b, o->origin, o->origin_len); /* a site id: never needs the key's escaping mode */
    objmeta_digest_hex(o->meta, o->meta_len, md);
    buf_printf(l->b, ",\"meta_digest\":\"%s\"}", md);
    memcpy(l->last, o->key, o->key_len + 1);
    l->last_len = o->key_len;
    l->n++;
    return 0;
}

int handler_object_list(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    http_thread_t *t = http_req_thread(req);
    char prefix[PATH_KEY_MAX + 1], after[PATH_KEY_MAX + 1], maxs[32], enc[8];
    size_t plen, alen, mlen, elen;
    meta_bucket_t bk;
    list_ctx_t l;
    MDB_txn *txn;
    buf_t b;
    int ret;

    if (http_req_query_param(req, "deep", enc, sizeof(enc), &elen) != CIO_ENOTFOUND)
        return deeplist_handle(srv, req, p); /* each object's bytes read and verified: deeplist.h */
    if ((ret = http_req_query_param(req, "prefix", prefix, sizeof(prefix), &plen)) != 0 && ret != CIO_ENOTFOUND)
        goto bad_param;
    if ((ret = http_req_query_param(req, "start-after", after, sizeof(after), &alen)) != 0 && ret != CIO_ENOTFOUND)
        goto bad_param;
    memset(&l, 0, sizeof(l));
    l.max = LIMIT_LIST_KEYS_MAX;
    if ((ret = http_req_query_param(req, "max-keys", maxs, sizeof(maxs), &mlen)) == 0) {
        char *end;
        long v = strtol(maxs, &end, 10);
        if (mlen == 0 || maxs[0] < '0' || maxs[0] > '9' || *end != '\0' || v < 1 || v > LIMIT_LIST_KEYS_MAX) {
            http_req_error(req, 400, "InvalidArgument", "max-keys must be an integer from 1 to " LIMIT_TEXT(LIMIT_LIST_KEYS_MAX));
            return 0;
        }
        l.max = (size_t)v;
    } else if (ret != CIO_ENOTFOUND) {
        goto bad_param;
    }
    l.json_key = buf_json_str;
    if ((ret = http_req_query_param(req, "encoding-type", enc, sizeof(enc), &elen)) == 0 && strcmp(enc, "url") == 0) {
        l.json_key = buf_json_url;
    } else if (ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, "InvalidArgument", "encoding-type must be url");
        return 0;
    }

    buf_init(&b, HTTP_REQ_REPLY_MAX);
    l.b = &b;
    buf_puts(&b, "{\"bucket\":");
    buf_json_str(&b, p->bucket, p->bucket_len);
    buf_puts(&b, ",\"prefix\":");
    l.json_key(&b, prefix, plen);
    buf_puts(&b, l.json_key == buf_json_url ? ",\"encoding_type\":\"url\",\"objects\":[" : ",\"objects\":[");
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        buf_free(&b);
        http_req_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    ret = meta_bucket_get(srv->meta, txn, p->bucket, p->bucket_len, &bk);
    if (ret == 0)
        ret = meta_obj_list(srv->meta, txn, p->bucket, p->bucket_len, prefix, plen, after, alen, l.max + 1, list_one, &l);
    http_req_rtxn_end(t);
    if (ret != 0) {
        buf_free(&b);
        if (ret == CIO_ENOTFOUND)
            http_req_error(req, 404, "NoSuchBucket", "no such bucket");
        else
            http_req_cio_error(req, ret, "listing failed");
        return 0;
    }
    buf_printf(&b, "],\"is_truncated\":%s,\"next_start_after\":", l.truncated ? "true" : "false");
    if (l.truncated)
        l.json_key(&b, l.last, l.last_len);
    else
        buf_puts(&b, "null");
    buf_puts(&b, "}");
    http_req_reply_buf(req, 200, &b);
    return 0;
bad_param:
    http_req_error(req, 400, ret == CIO_ETOOBIG ? "KeyTooLong" : "InvalidArgument", "malformed query parameter");
    return 0;
}
