/* handler_admin.h - the operator's endpoints: /admin/health,
 * /admin/replication/status, /metrics, the bucket list and purge.
 *
 * Each handler answers the request (borrowed from h2o until answered), now
 * or, for status and metrics on a primary, once repld's control socket
 * answered on a thread of its own; each returns 0, on_req's "handled".
 * Authorization is the router's (http.c). */
#ifndef COMIO_HANDLER_ADMIN_H
#define COMIO_HANDLER_ADMIN_H

#include "storaged/http_req.h"

/* GET /admin/health */
int handler_admin_health(http_server_t *srv, h2o_req_t *req);

/* GET /admin/replication/status: repld's answer, or the same JSON from LMDB
 * alone when repld does not answer. */
int handler_admin_status(http_server_t *srv, h2o_req_t *req);

/* GET /metrics (Prometheus text); a primary adds repld's figures. */
int handler_admin_metrics(http_server_t *srv, h2o_req_t *req);

/* GET / : the buckets with their counts. */
int handler_admin_buckets(http_server_t *srv, h2o_req_t *req);

/* DELETE /admin/{bucket}/objects[?confirm=true]: a dry run, or the purge of
 * every object of the bucket `name` (nlen bytes, not NUL-terminated). */
int handler_admin_purge(http_server_t *srv, h2o_req_t *req, const char *name, size_t nlen);

/* GET /admin/scrub: the scrub's status (storaged/scrub.h, scrub_status_json);
 * POST /admin/scrub: starts a pass now, 202 with the status, or 409
 * ScrubRunning when one runs (nothing changes), 409 ScrubDisabled with
 * storage.checksums off. */
int handler_admin_scrub(http_server_t *srv, h2o_req_t *req, int method);

/* The receiver of http_thread_t.aside_replies: answers status and metrics
 * requests once repld answered (or did not). */
void handler_admin_on_asides(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
