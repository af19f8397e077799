/* handler_object.h - the object endpoints: GET/HEAD (with ranges), PUT and
 * the listing of a bucket's keys.
 *
 * Each handler takes the server, the request (borrowed from h2o until it is
 * answered) and the parsed path, answers the request (now or once the
 * mutation is durable) and returns 0, on_req's "handled". */
#ifndef COMIO_HANDLER_OBJECT_H
#define COMIO_HANDLER_OBJECT_H

#include "storaged/http_req.h"
#include "storaged/path.h"

/* GET or HEAD /{bucket}/{key}; with ?version=V&origin=O that version: the
 * current object if it is that one, else a conflict's loser the site keeps
 * (404 NoSuchVersion when neither, or when the loser was a DELETE). */
int handler_object_get(http_server_t *srv, h2o_req_t *req, const path_t *p);

/* GET and HEAD of an object; with `version` non-zero only that version is
 * served (the fetch endpoint), anything else is 410: the version from site
 * `origin` (origin_len bytes, borrowed for the call; meta_obj_current), or
 * with origin NULL (a fetch URL of the previous release) any object with
 * that version number. With `kept` and an origin, a version that is not
 * current is looked up among the conflict losers kept (common/conflict.h)
 * instead; when it is not there either: 404 NoSuchVersion (kept 1, a
 * client's GET), or 410 (kept 2, the fetch endpoint). */
int handler_object_serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin,
                         size_t origin_len, int kept, int zstd_level, uint64_t *counts, int bw_slot);
/* bw_slot (the fetch endpoint; -1: none): the fetching target's slot in
 * srv->bw; each window sent is taken from that target's bandwidth limit
 * (common/bwlimit.h), and a window that must wait is sent from a timer of
 * the loop, PACE_TICK_MS at a time, never by blocking it. */
/* zstd_level (the fetch endpoint; 0: never) > 0: a whole object streamed in
 * more than one window is sent with Content-Encoding: zstd at that level,
 * chunked, one frame flushed window by window, when its first window
 * compresses by at least 10% (common/zcodec.h); otherwise as is. Ranges,
 * HEAD and smaller objects are always sent as is. counts (NULL: none)
 * gets the object bytes served added atomically to counts[0] and the body
 * bytes sent for them to counts[1]; it must outlive the request. */

/* PUT /{bucket}/{key}: the body (req->entity) becomes the object. */
int handler_object_put(http_server_t *srv, h2o_req_t *req, const path_t *p);

/* GET or HEAD /{bucket}?prefix=&start-after=&max-keys= */
int handler_object_list(http_server_t *srv, h2o_req_t *req, const path_t *p);

#endif
