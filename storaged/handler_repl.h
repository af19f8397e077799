/* handler_repl.h - the replication endpoints: a replica applies batches
 * (POST /admin/replication/batch), a primary serves presigned fetches of
 * large objects (GET /admin/replication/fetch/{bucket}/{key}).
 *
 * Both check their own credentials (replication.accept_token, the presigned
 * URL's signature), never server.access_token. Each answers the request
 * (borrowed from h2o until answered) and returns 0, on_req's "handled". */
#ifndef COMIO_HANDLER_REPL_H
#define COMIO_HANDLER_REPL_H

#include "storaged/http_req.h"

/* POST /admin/replication/batch: a msgpack batch (proto/batch.h), applied
 * through the committer; answered with per-event results. */
int handler_repl_apply(http_server_t *srv, h2o_req_t *req);

/* /admin/replication/fetch/...: `method` is http_req_method(req); anything
 * but GET is 405. */
int handler_repl_fetch(http_server_t *srv, h2o_req_t *req, int method);

/* GET /admin/replication/list[?bucket=B&after=K&max=N]: what this site
 * holds, for a sender's full sync (proto/synclist.h): without `bucket` its
 * buckets, with it the bucket's keys (objects and tombstones) after K in key
 * order, at most N (default HANDLER_REPL_LIST_DEFAULT, at most
 * HANDLER_REPL_LIST_MAX). Authorised like the batch endpoint; a bad
 * parameter is a 400 with a JSON error. `method` is http_req_method(req). */
#define HANDLER_REPL_LIST_DEFAULT 1000
#define HANDLER_REPL_LIST_MAX 10000
int handler_repl_list(http_server_t *srv, h2o_req_t *req, int method);

#endif
