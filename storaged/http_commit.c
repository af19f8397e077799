/* http_commit.c - mutations from HTTP: hand them to the group committer, answer them once durable. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/apply.h"
#include "storaged/http_commit.h"

static void on_req_dispose(void *p)
{
    http_commit_t *pend = *(http_commit_t **)p;
    if (pend == NULL)
        return;
    if (pend->waiting) {
        /* committed, and the client gave up waiting for the sync targets: the write replicates as in async mode */
        syncwait_cancel(&pend->wait);
        pend->thread->inflight--;
        free(pend->body_owned);
        free(pend);
        return;
    }
    /* the client went away before the answer: keep the job, drop the request */
    pend->req = NULL;
    pend->holder = NULL;
    commit_release_body(pend->thread->srv->commit, &pend->job);
}

void http_commit_job_done(commit_job_t *job)
{
    http_commit_t *pend = job->ctx;
    h2o_multithread_send_message(&pend->thread->replies, &pend->msg);
}

http_commit_t *http_commit_new(h2o_req_t *req, commit_op_t op, const path_t *p)
{
    http_commit_t *pend = calloc(1, sizeof(*pend));
    if (pend == NULL)
        return NULL;
    pend->job.op = op;
    memcpy(pend->job.bucket, p->bucket, p->bucket_len + 1);
    pend->job.blen = p->bucket_len;
    memcpy(pend->job.key, p->key, p->key_len + 1);
    pend->job.klen = p->key_len;
    pend->job.done = http_commit_job_done;
    pend->job.ctx = pend;
    pend->thread = http_req_thread(req);
    pend->req = req;
    return pend;
}

int http_commit_submit(h2o_req_t *req, http_commit_t *pend)
{
    http_commit_t **holder = h2o_mem_alloc_shared(&req->pool, sizeof(*holder), on_req_dispose);
    *holder = pend;
    pend->holder = holder;
    pend->thread->inflight++;
    commit_submit(pend->thread->srv->commit, &pend->job);
    return 0;
}

/* The version a mutation made, with its origin (this site): X-Comio-Version
 * and X-Comio-Origin, so that a client can record which version it wrote. */
static void add_version_headers(h2o_req_t *req, const commit_job_t *j)
{
    char ver[21];
    fmt_u64(ver, j->version);
    http_req_add_header_str(req, "x-comio-version", ver);
    http_req_add_header_str(req, "x-comio-origin", http_req_thread(req)->srv->conf->site_id);
}

static void answer_put(h2o_req_t *req, commit_job_t *j)
{
    char quoted[35], ver[21], size[21];
    buf_t b;

    if (j->result != 0) {
        http_req_cio_error(req, j->result, "PUT failed");
        return;
    }
    quoted_etag(j->etag, quoted);
    fmt_u64(ver, j->version);
    fmt_u64(size, j->size);
    http_req_add_header(req, H2O_TOKEN_ETAG, quoted, 34);
    add_version_headers(req, j);
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
    buf_puts(&b, ",\"origin\":");
    buf_json_str(&b, http_req_thread(req)->srv->conf->site_id, strlen(http_req_thread(req)->srv->conf->site_id));
    buf_puts(&b, "}");
    http_req_reply_buf(req, 200, &b);
}

void http_commit_answer_apply(h2o_req_t *req, commit_job_t *j)
{
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    http_server_t *srv = http_req_thread(req)->srv;
    if (apply_reply_store(j, srv->conf->site_id, srv->store_id, &sb) != 0)
        http_req_cio_error(req, CIO_ENOMEM, "batch reply");
    else
        http_req_reply(req, 200, APPLY_CTYPE, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void answer(h2o_req_t *req, commit_job_t *j)
{
    http_commit_t *pend = j->ctx;
    buf_t b;

    if (pend->answer != NULL) {
        pend->answer(req, j);
        return;
    }
    if (j->op == COMMIT_APPLY) {
        http_commit_answer_apply(req, j); /* per-event results, also when the job failed */
        return;
    }
    if (j->op == COMMIT_CONFLICT_DELETE) {
        if (j->result == CIO_ENOTFOUND)
            http_req_error(req, 404, "NoSuchConflict", "this site keeps no such conflict loser");
        else if (j->result != 0)
            http_req_cio_error(req, j->result, "removing the conflict failed");
        else
            http_req_reply(req, 204, NULL, "", 0);
        return;
    }
    if (j->result == CIO_ENOTFOUND) {
        http_req_error(req, 404, "NoSuchBucket", "no such bucket");
        return;
    }
    switch (j->op) {
    case COMMIT_PUT:
        answer_put(req, j);
        return;
    case COMMIT_DELETE:
    case COMMIT_BUCKET_DELETE:
        if (j->result == CIO_ENOTEMPTY)
            http_req_error(req, 409, "BucketNotEmpty", "the bucket is not empty");
        else if (j->result != 0)
            http_req_cio_error(req, j->result, "DELETE failed");
        else {
            if (j->version != 0) /* 0: there was nothing to delete */
                add_version_headers(req, j);
            http_req_reply(req, 204, NULL, "", 0);
        }
        return;
    case COMMIT_PURGE:
        if (j->result != 0) {
            http_req_cio_error(req, j->result, "purge failed");
            return;
        }
        add_version_headers(req, j);
        buf_init(&b, 1024);
        buf_printf(&b, "{\"deleted_count\":%" PRIu64 ",\"freed_size\":%" PRIu64 ",\"version\":%" PRIu64 ",\"origin\":", j->count,
                   j->bytes, j->version);
        buf_json_str(&b, http_req_thread(req)->srv->conf->site_id, strlen(http_req_thread(req)->srv->conf->site_id));
        buf_puts(&b, "}");
        http_req_reply_buf(req, 200, &b);
        return;
    case COMMIT_BUCKET_CREATE:
        if (j->result != 0) {
            http_req_cio_error(req, j->result, "bucket creation failed");
            return;
        }
        if (j->version != 0) /* 0: it existed, nothing was written */
            add_version_headers(req, j);
        buf_init(&b, 1024);
        buf_puts(&b, "{\"bucket\":");
        buf_json_str(&b, j->bucket, j->blen);
        buf_printf(&b, ",\"created\":%s}", j->created ? "true" : "false");
        http_req_reply_buf(req, 200, &b);
        return;
    case COMMIT_APPLY:
    case COMMIT_CONFLICT_DELETE:
        return; /* answered above */
    default:    /* the multipart operations: S3's only, answered by pend->answer */
        http_req_cio_error(req, CIO_EINVAL, "no answer for this operation");
        return;
    }
}

/* A client write that changed something or not: a site with sync targets
 * answers it once they hold it (syncwait.h). */
static int is_client_write(const commit_job_t *j)
{
    switch (j->op) {
    case COMMIT_PUT:
    case COMMIT_DELETE:
    case COMMIT_PURGE:
    case COMMIT_BUCKET_CREATE:
    case COMMIT_BUCKET_DELETE:
    case COMMIT_MPU_COMPLETE:
        return j->result == 0;
    default:
        return 0;
    }
}

static void answer_synced(http_commit_t *pend, int completed)
{
    http_req_add_header_str(pend->req, "x-comio-replication", completed ? "COMPLETED" : "PENDING");
    answer(pend->req, &pend->job);
}

static void on_synced(syncwait_req_t *w, int completed)
{
    http_commit_t *pend = H2O_STRUCT_FROM_MEMBER(http_commit_t, wait, w);
    pend->thread->inflight--;
    pend->waiting = 0;
    *pend->holder = NULL;
    answer_synced(pend, completed);
    free(pend->body_owned);
    free(pend);
}

void http_commit_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        http_commit_t *pend = H2O_STRUCT_FROM_MEMBER(http_commit_t, msg.link, link);
        h2o_linklist_unlink(link);
        syncwait_t *sw = pend->thread->srv->sync;
        if (sw != NULL && pend->job.seq != 0)
            syncwait_note_head(sw, pend->job.seq);
        if (sw != NULL && pend->req != NULL && is_client_write(&pend->job)) {
            int completed;
            /* nothing changed (seq 0): the reply tells of the state at the head, which must be on the targets */
            uint64_t seq = pend->job.seq != 0 ? pend->job.seq : syncwait_head(sw);
            if (syncwait_add(pend->thread->sync, &pend->wait, seq, on_synced, &completed)) {
                pend->waiting = 1; /* answered by on_synced, or dropped by on_req_dispose */
                continue;
            }
            pend->thread->inflight--;
            *pend->holder = NULL;
            answer_synced(pend, completed);
            free(pend->body_owned);
            free(pend);
            continue;
        }
        pend->thread->inflight--;
        if (pend->req != NULL) {
            *pend->holder = NULL;
            answer(pend->req, &pend->job);
        }
        if (pend->job.op == COMMIT_APPLY)
            apply_free(&pend->job);
        free(pend->body_owned);
        free(pend);
    }
}

int http_commit_mutation(h2o_req_t *req, commit_op_t op, const path_t *p)
{
    http_commit_t *pend = http_commit_new(req, op, p);
    if (pend == NULL) {
        http_req_cio_error(req, CIO_ENOMEM, "request failed");
        return 0;
    }
    return http_commit_submit(req, pend);
}
