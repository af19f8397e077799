/* s3_multidel.c - S3's DeleteObjects: up to 1,000 keys deleted in one request, each as a native DELETE.
 *
 * The <Delete> body is parsed whole first (proto/s3xml.h): a malformed one,
 * or one of more than 1,000 keys, deletes nothing. Each key then becomes one
 * COMMIT_DELETE job of the group committer, exactly as DELETE /{bucket}/{key}
 * (one log record each, replicated alike). The jobs of a request are one
 * group: each job's done() (committer thread) counts the group down, and the
 * last posts the group to its loop, where the reply is made once every
 * deletion is durable, and, on a site with sync targets, once they hold the
 * group's last log record (storaged/syncwait.h), as a native DELETE waits.
 *
 * The loop's receiver of finished groups is registered on the loop's queue
 * at its first DeleteObjects (h2o registers under the queue's mutex, so a
 * running loop may add one) and lives as long as the loop (the process). The
 * atomic count down orders every job's results before the last one's post. */
#include <stdlib.h>
#include <string.h>
#include "proto/s3xml.h"
#include "storaged/http_commit.h"
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

_Static_assert(LIMIT_KEY_MAX <= LOGREC_KEY_MAX, "a key the parser accepts fits a commit job");

typedef struct multidel multidel_t;

/* One key's deletion. */
typedef struct {
    commit_job_t job;
    multidel_t *group;
    int skipped; /* not submitted: a VersionId other than "null" (no versions here) */
} del_t;

struct multidel {
    h2o_multithread_message_t msg;        /* posted to `receiver` when the last job is done */
    h2o_multithread_receiver_t *receiver; /* the loop's (loop_receiver) */
    http_thread_t *thread;
    h2o_req_t *req;           /* NULL once the client went away */
    struct multidel **holder; /* the request pool's pointer to us */
    size_t pending;           /* atomic: jobs not done yet */
    int quiet;
    syncwait_req_t wait; /* waiting for the sync targets */
    int waiting;         /* wait is in use: the request's dispose cancels it */
    s3xml_delete_t del;  /* the request's <Delete>: the VersionIds the reply echoes */
    size_t n;
    del_t dels[];
};

static _Thread_local h2o_multithread_receiver_t *receiver_of_loop;

static void group_free(multidel_t *g)
{
    s3xml_delete_free(&g->del);
    free(g);
}

static void on_groups(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* The calling loop's receiver of finished groups, registered on first use; NULL when out of memory. */
static h2o_multithread_receiver_t *loop_receiver(http_thread_t *t)
{
    if (receiver_of_loop == NULL) {
        h2o_multithread_receiver_t *r = calloc(1, sizeof(*r));
        if (r == NULL)
            return NULL;
        h2o_multithread_register_receiver(t->ctx.queue, r, on_groups);
        receiver_of_loop = r;
    }
    return receiver_of_loop;
}

/* done() of each job, on the committer thread: the last one posts the group. */
static void on_job_done(commit_job_t *job)
{
    multidel_t *g = ((del_t *)job->ctx)->group;
    if (__atomic_sub_fetch(&g->pending, 1, __ATOMIC_ACQ_REL) == 0)
        h2o_multithread_send_message(g->receiver, &g->msg);
}

static void on_req_dispose(void *p)
{
    multidel_t *g = *(multidel_t **)p;
    if (g == NULL)
        return;
    if (g->waiting) {
        /* every deletion is durable; the client gave up waiting for the sync targets */
        syncwait_cancel(&g->wait);
        g->thread->inflight--;
        group_free(g);
        return;
    }
    g->req = NULL; /* the jobs run on; on_groups frees the group */
    g->holder = NULL;
}

/* <Key> and, when the request named one, <VersionId>. */
static void put_key(buf_t *b, const multidel_t *g, size_t i)
{
    const s3xml_object_t *o = &g->del.objects[i];
    s3_xml_elem(b, "Key", o->key, o->key_len);
    if (o->version_id != NULL)
        s3_xml_elem(b, "VersionId", o->version_id, o->version_id_len);
}

static void put_error(buf_t *b, const multidel_t *g, size_t i, const char *code, const char *msg)
{
    buf_puts(b, "<Error>");
    put_key(b, g, i);
    s3_xml_elem(b, "Code", code, strlen(code));
    s3_xml_elem(b, "Message", msg, strlen(msg));
    buf_puts(b, "</Error>");
}

static void answer(multidel_t *g)
{
    h2o_req_t *req = g->req;
    buf_t b;

    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "DeleteResult");
    for (size_t i = 0; i < g->n; i++) {
        const del_t *d = &g->dels[i];
        int r = d->job.result;
        if (d->skipped) {
            put_error(&b, g, i, "NoSuchVersion", "The specified version does not exist (the bucket keeps no versions)");
        } else if (r == 0) {
            if (!g->quiet) {
                buf_puts(&b, "<Deleted>");
                put_key(&b, g, i);
                buf_puts(&b, "</Deleted>");
            }
        } else if (r == CIO_ENOTFOUND) {
            put_error(&b, g, i, "NoSuchBucket", "The specified bucket does not exist");
        } else if (r == CIO_ENOSPC || r == CIO_EMAPFULL) {
            put_error(&b, g, i, "InsufficientStorage", cio_strerror(r));
        } else {
            put_error(&b, g, i, "InternalError", cio_strerror(r));
        }
    }
    buf_puts(&b, "</DeleteResult>");
    s3_reply_xml(req, 200, &b);
}

static void on_synced(syncwait_req_t *w, int completed)
{
    multidel_t *g = H2O_STRUCT_FROM_MEMBER(multidel_t, wait, w);
    g->thread->inflight--;
    g->waiting = 0;
    *g->holder = NULL;
    http_req_add_header_str(g->req, "x-comio-replication", completed ? "COMPLETED" : "PENDING");
    answer(g);
    group_free(g);
}

/* On the loop: groups whose every job is done. */
static void on_groups(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        multidel_t *g = H2O_STRUCT_FROM_MEMBER(multidel_t, msg.link, link);
        syncwait_t *sw = g->thread->srv->sync;
        uint64_t seq = 0;
        int changed = 0;

        h2o_linklist_unlink(link);
        for (size_t i = 0; i < g->n; i++) {
            const commit_job_t *j = &g->dels[i].job;
            if (g->dels[i].skipped)
                continue;
            if (sw != NULL && j->seq != 0)
                syncwait_note_head(sw, j->seq);
            if (j->seq > seq)
                seq = j->seq;
            changed |= j->result == 0;
        }
        if (sw != NULL && g->req != NULL && changed) {
            int completed;
            /* nothing logged (only missing keys): the reply tells of the state at the head, as a native DELETE */
            if (syncwait_add(g->thread->sync, &g->wait, seq != 0 ? seq : syncwait_head(sw), on_synced, &completed)) {
                g->waiting = 1;
                continue;
            }
            g->thread->inflight--;
            *g->holder = NULL;
            http_req_add_header_str(g->req, "x-comio-replication", completed ? "COMPLETED" : "PENDING");
            answer(g);
            group_free(g);
            continue;
        }
        g->thread->inflight--;
        if (g->req != NULL) {
            *g->holder = NULL;
            answer(g);
        }
        group_free(g);
    }
}

/* Non-zero when the request carries a checksum of its body: Content-MD5, or
 * x-amz-checksum-* as a header or a trailer. S3 requires one for DeleteObjects. */
static int has_checksum(h2o_req_t *req, const s3_req_t *s)
{
    static const char ck[] = "x-amz-checksum-";

    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("content-md5")))
            return 1;
        if (h->name->len > sizeof(ck) - 1 && h2o_lcstris(h->name->base, sizeof(ck) - 1, ck, sizeof(ck) - 1) &&
            !h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-amz-checksum-mode")) &&
            !h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-amz-checksum-algorithm")) &&
            !h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-amz-checksum-type")))
            return 1;
    }
    for (size_t i = 0; i < s->ntrailers; i++)
        if (s->trailers[i][0].len > sizeof(ck) - 1 && memcmp(s->trailers[i][0].base, ck, sizeof(ck) - 1) == 0)
            return 1;
    return 0;
}

int s3_delete_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    http_thread_t *t = http_req_thread(req);
    h2o_multithread_receiver_t *receiver;
    s3xml_delete_t del;
    multidel_t *g;
    char err[256];
    int ret;

    if (!has_checksum(req, s)) {
        s3_error(req, 400, "InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
                 s->resource);
        return 0;
    }
    if (s3_checksum_check(req, s) != 0)
        return 0; /* answered */
    if ((ret = s3xml_delete_parse(s->body.base, s->body.len, &del, err, sizeof(err))) != 0) {
        if (ret == CIO_ENOMEM)
            s3_error_cio(req, ret, "DeleteObjects");
        else
            s3_error(req, 400, "MalformedXML", err, s->resource);
        return 0;
    }
    if ((ret = s3_bucket_exists(srv, req, s)) != 1) {
        ret = ret == 0 ? CIO_ENOTFOUND : ret;
        goto fail;
    }
    if ((receiver = loop_receiver(t)) == NULL || (g = calloc(1, sizeof(*g) + del.nobjects * sizeof(del_t))) == NULL) {
        ret = CIO_ENOMEM;
        goto fail;
    }
    g->receiver = receiver;
    g->thread = t;
    g->req = req;
    g->quiet = del.quiet;
    g->n = del.nobjects;
    for (size_t i = 0; i < del.nobjects; i++) {
        const s3xml_object_t *o = &del.objects[i];
        del_t *d = &g->dels[i];
        d->group = g;
        d->job.op = COMMIT_DELETE;
        memcpy(d->job.bucket, s->bucket, s->bucket_len);
        d->job.blen = s->bucket_len;
        memcpy(d->job.key, o->key, o->key_len); /* the parser caps keys at LIMIT_KEY_MAX, NUL-terminated by calloc */
        d->job.klen = o->key_len;
        d->job.done = on_job_done;
        d->job.ctx = d;
        d->skipped = o->version_id != NULL && strcmp(o->version_id, "null") != 0;
        if (!d->skipped)
            g->pending++;
    }
    g->del = del; /* the group owns it from here */
    g->holder = h2o_mem_alloc_shared(&req->pool, sizeof(*g->holder), on_req_dispose);
    *g->holder = g;
    t->inflight++;
    if (g->pending == 0) { /* nothing to submit: answered now */
        h2o_multithread_send_message(g->receiver, &g->msg);
        return 0;
    }
    /* pending is final before the first submit: a job may finish before the loop below ends */
    size_t n = g->n;
    for (size_t i = 0; i < n; i++)
        if (!g->dels[i].skipped)
            commit_submit(srv->commit, &g->dels[i].job);
    return 0;
fail:
    s3xml_delete_free(&del);
    if (ret == CIO_ENOTFOUND)
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
    else
        s3_error_cio(req, ret, "DeleteObjects");
    return 0;
}
