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

/* How an API answers the object endpoints it shares with the native one:
 * its error bodies, the representation headers of a GET and the reply to a
 * PUT once durable. handler_object_native is the native API's (JSON errors,
 * docs/api.md); storaged/s3_object.c has S3's. */
typedef struct handler_api {
    /* an error reply; drops the headers added before (http_req_error) */
    void (*error)(h2o_req_t *req, int status, const char *code, const char *msg);
    /* 416 for a Range outside an object of `size` bytes */
    void (*error_range)(h2o_req_t *req, uint64_t size);
    void (*cio_error)(h2o_req_t *req, int err, const char *what);
    /* adds Content-Type (ctype, ctype_len bytes) and the headers of the object's metadata blob (meta,
     * meta_len bytes, common/objmeta.h; NULL and 0 for none), both borrowed for the call */
    void (*content_headers)(h2o_req_t *req, const char *ctype, size_t ctype_len, const uint8_t *meta, size_t meta_len);
    /* answers a PUT's committed (or failed) job; NULL: the native JSON reply (storaged/http_commit.c) */
    void (*answer_put)(h2o_req_t *req, commit_job_t *j);
} handler_api_t;

extern const handler_api_t handler_object_native;

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
                         size_t origin_len, int kept, int zstd_level, uint64_t *counts, int bw_slot, int repair_behind);
/* repair_behind (the fetch endpoint serving a replica or a full sync; 0
 * for a peer's repair, and for clients): a block that fails its checksum
 * is answered as always (503 DataDamaged, or a reply cut short once the
 * headers went) and a repair of this site's copy from its peers is queued
 * in the background (storaged/repair.h, repair_background), so that the
 * fetcher's retry gets the good bytes. A client's GET waits for its repair
 * instead. */
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

/* What handler_object_put does, for any API: body[0..len) (living as long as
 * req) becomes the object at p, with the request's Content-Type and its
 * If-Match / If-None-Match / If-Unmodified-Since checked; errors and the
 * reply as `api` says. Returns 0. */
int handler_object_write(http_server_t *srv, h2o_req_t *req, const path_t *p, const char *body, size_t len,
                         const handler_api_t *api);

/* The current object at p for GET or HEAD (Range, If-Range and the
 * conditional headers as handler_object_get), answered as `api` says. Returns 0. */
int handler_object_read(http_server_t *srv, h2o_req_t *req, const path_t *p, const handler_api_t *api);

/* GET or HEAD /{bucket}?prefix=&start-after=&max-keys=; with deep=1, deeplist_handle (deeplist.h) */
int handler_object_list(http_server_t *srv, h2o_req_t *req, const path_t *p);

#endif
