/* deeplist.h - the deep listing of a bucket (GET /{bucket}?deep=1): each
 * object's listing entry with a digest of its bytes as they are on this
 * site's disk now, read and verified against their block checksums, or the
 * damage found instead. What "comio diff --deep" compares (docs/api.md,
 * "Deep listing"). */
#ifndef COMIO_STORAGED_DEEPLIST_H
#define COMIO_STORAGED_DEEPLIST_H

#include <h2o.h>
#include "storaged/http_req.h"
#include "proto/logrec.h"
#include "storaged/path.h"

#define DEEPLIST_BYTES_DEFAULT (16ull << 20) /* object bytes one page reads, unless max-bytes says */
#define DEEPLIST_BYTES_MIN (64ull << 10)
#define DEEPLIST_BYTES_MAX (1ull << 30)
#define DEEPLIST_CURSOR_MAX (20 + 1 + 8 + 1 + 20 + 1 + 2 * LOGREC_ORIGIN_MAX) /* "offset.crc.version.hex(origin)" */

/* Where a page stopped inside an object: its bytes [0, offset) are read and
 * verified, their CRC32C is crc; the object is (version, origin). */
typedef struct {
    uint64_t offset;
    uint32_t crc;
    uint64_t version;
    char origin[LOGREC_ORIGIN_MAX + 1]; /* NUL-terminated */
} deeplist_cursor_t;

/* Parses a resume cursor s[0..len) (NUL-terminated at len), as a reply
 * gives it: "offset.crc.version.origin", offset and version decimal, crc 8
 * lowercase hex digits, origin's bytes in hex. 0, or CIO_EINVAL. */
int deeplist_cursor_parse(const char *s, size_t len, deeplist_cursor_t *c) CIO_MUST_CHECK;

/* Answers GET or HEAD /{bucket}?deep=1[&start-after=K][&max-keys=N]
 * [&max-bytes=B][&rate=R][&resume=C]: a page of at most N objects (1..1000,
 * default 1000) after K, ending before the object that would bring the bytes
 * read over B. A first object larger than B that has block checksums is
 * read B at a time: the page then lists nothing and gives a resume cursor,
 * which the next request passes with the same K (an object without block
 * checksums is read whole: its MD5 cannot be carried over). With R (bytes per second, 0 none) the reply is held until the
 * page's bytes at R have elapsed, without blocking the event loop, so a
 * client that pages on reads at most R on average. Needs the access token
 * (401). Replies 200 with the page, 400 for a bad parameter, 404
 * NoSuchBucket; reads happen on the calling loop thread. Returns 0. */
int deeplist_handle(http_server_t *srv, h2o_req_t *req, const path_t *p);

#endif
