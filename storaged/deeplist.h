/* deeplist.h - the deep listing of a bucket (GET /{bucket}?deep=1): each
 * object's listing entry with a digest of its bytes as they are on this
 * site's disk now, read and verified against their block checksums, or the
 * damage found instead. What "comio diff --deep" compares (docs/api.md,
 * "Deep listing"). */
#ifndef COMIO_STORAGED_DEEPLIST_H
#define COMIO_STORAGED_DEEPLIST_H

#include <h2o.h>
#include "storaged/http_req.h"
#include "proto/deepcursor.h"
#include "storaged/path.h"

#define DEEPLIST_BYTES_DEFAULT (16ull << 20) /* object bytes one page reads, unless max-bytes says */
#define DEEPLIST_BYTES_MIN (64ull << 10)
#define DEEPLIST_BYTES_MAX (1ull << 30)
#define DEEPLIST_RATE_MIN (64ull << 10) /* the lowest rate= (bytes per second) but 0 */

/* Answers GET or HEAD /{bucket}?deep=1[&start-after=K][&max-keys=N]
 * [&max-bytes=B][&rate=R][&resume=C]: a page of at most N objects (1..1000,
 * default 1000) after K, ending before the object that would bring the bytes
 * read over B. A first object larger than B that has block checksums is
 * read B at a time: the page then lists nothing and gives a resume cursor,
 * (proto/deepcursor.h), which the next request passes with the same K (an object without block
 * checksums is read whole: its MD5 cannot be carried over). With R (bytes per second, 0 none) the reply is held until the
 * page's bytes at R have elapsed, without blocking the event loop, so a
 * client that pages on reads at most R on average. Needs the access token
 * (401). Replies 200 with the page, 400 for a bad parameter, 404
 * NoSuchBucket; reads happen on the calling loop thread. Returns 0. */
int deeplist_handle(http_server_t *srv, h2o_req_t *req, const path_t *p);

#endif
