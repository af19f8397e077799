/* http_commit.h - mutations from HTTP: handed to the group committer,
 * answered on the request's loop once durable (or failed).
 *
 * Internal to the HTTP layer. The reply comes back to the loop thread as a
 * message on http_thread_t.replies; if the client went away meanwhile the
 * job still completes and nothing is answered. */
#ifndef COMIO_HTTP_COMMIT_H
#define COMIO_HTTP_COMMIT_H

#include "storaged/commit.h"
#include "storaged/http_req.h"
#include "storaged/path.h"

/* A mutation on its way through the committer. */
typedef struct http_commit {
    commit_job_t job;
    h2o_multithread_message_t msg;
    http_thread_t *thread;
    h2o_req_t *req;              /* NULL once the client went away */
    struct http_commit **holder; /* the request pool's pointer to us */
    char *body_owned;            /* NULL, or the job's body when the request's was decoded (malloc'ed): freed with the job */
    syncwait_req_t wait;         /* committed, waiting for the sync targets (syncwait.h) */
    int waiting;                 /* wait is in use: the request's dispose cancels it */
    /* answers the finished job instead of the native API's reply (S3: storaged/s3_object.c); NULL: native */
    void (*answer)(h2o_req_t *req, commit_job_t *j);
} http_commit_t;

/* A new job of `op` on p's bucket and key for req, not yet submitted; NULL
 * when out of memory. The caller fills in the op's other fields, then calls
 * http_commit_submit. */
http_commit_t *http_commit_new(h2o_req_t *req, commit_op_t op, const path_t *p);

/* Hands pend to the committer; from here pend belongs to the HTTP layer,
 * which frees it once answered. Returns 0 (on_req's "handled"). */
int http_commit_submit(h2o_req_t *req, http_commit_t *pend);

/* A mutation that needs nothing but its bucket and key (DELETE, bucket
 * create and delete, purge): submitted, or answered 500 when out of memory.
 * Returns 0. */
int http_commit_mutation(h2o_req_t *req, commit_op_t op, const path_t *p);

/* The committer's `done` callback (any thread): posts the job back to its loop. */
void http_commit_job_done(commit_job_t *job);

/* Answers an apply job with its per-event results (msgpack). */
void http_commit_answer_apply(h2o_req_t *req, commit_job_t *j);

/* The receiver of http_thread_t.replies: answers each finished job whose
 * client is still there, and frees it. */
void http_commit_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
