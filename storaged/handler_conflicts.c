/* handler_conflicts.c - GET /admin/conflicts: the kept losers of concurrent writes. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "common/bucket.h"
#include "common/buf.h"
#include "common/date.h"
#include "common/hex.h"
#include "common/limits.h"
#include "common/conflict.h"
#include "storaged/handler_conflicts.h"
#include "storaged/http_commit.h"
#include "storaged/path.h"
#include "proto/presign.h"

static int put_conflict(void *arg, const char *b, size_t blen, const conflict_t *c)
{
    buf_t *out = arg;
    char etag[33], mt[DATE_ISO8601_MS_LEN + 1], at[DATE_ISO8601_MS_LEN + 1];

    hex_encode(etag, c->etag, 16);
    date_iso8601_ms(c->mtime_ms, mt);
    date_iso8601_ms(c->time_ms, at);
    buf_puts(out, out->len > 0 && out->data[out->len - 1] == '}' ? ",{\"bucket\":" : "{\"bucket\":");
    buf_json_str(out, b, blen);
    buf_puts(out, ",\"key\":");
    buf_json_str(out, c->key, c->key_len);
    buf_printf(out, ",\"loser\":{\"version\":%" PRIu64 ",\"origin\":", c->loser.hlc);
    buf_json_str(out, c->loser.origin, c->loser.origin_len);
    if (c->deleted) {
        buf_printf(out, ",\"op\":\"DELETE\",\"last_modified\":\"%s\"}", mt);
    } else {
        buf_printf(out, ",\"op\":\"PUT\",\"size\":%" PRIu64 ",\"etag\":\"%s\",\"last_modified\":\"%s\",\"content_type\":", c->size,
                   etag, mt);
        buf_json_str(out, c->ctype, c->ctype_len);
        buf_puts(out, "}");
    }
    buf_printf(out, ",\"winner\":{\"version\":%" PRIu64 ",\"origin\":", c->winner.hlc);
    buf_json_str(out, c->winner.origin, c->winner.origin_len);
    buf_printf(out, "},\"recorded\":\"%s\"}", at);
    return 0;
}

int handler_conflicts_list(http_server_t *srv, h2o_req_t *req)
{
    http_thread_t *t = http_req_thread(req);
    char bucket[LIMIT_BUCKET_MAX + 1], maxs[16], marker[2 * CONFLICT_POS_MAX + 1], next[2 * CONFLICT_POS_MAX + 1];
    uint8_t pos[CONFLICT_POS_MAX];
    size_t blen = 0, mlen, klen, pos_len = 0, max = LIMIT_LIST_KEYS_MAX;
    MDB_txn *txn;
    buf_t b;
    int ret, more = 0;

    if ((ret = http_req_query_param(req, "bucket", bucket, sizeof(bucket), &blen)) == 0) {
        if (!bucket_name_valid(bucket, blen)) {
            http_req_error(req, 400, "InvalidBucketName", "invalid bucket name");
            return 0;
        }
    } else if (ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, "InvalidArgument", "bucket: not a bucket name");
        return 0;
    } else {
        blen = 0;
    }
    if ((ret = http_req_query_param(req, "max-keys", maxs, sizeof(maxs), &mlen)) == 0) {
        char *end;
        long v = strtol(maxs, &end, 10);
        if (mlen == 0 || maxs[0] < '0' || maxs[0] > '9' || *end != '\0' || v < 1 || v > LIMIT_LIST_KEYS_MAX) {
            http_req_error(req, 400, "InvalidArgument", "max-keys must be an integer from 1 to " LIMIT_TEXT(LIMIT_LIST_KEYS_MAX));
            return 0;
        }
        max = (size_t)v;
    } else if (ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, "InvalidArgument", "max-keys must be an integer from 1 to " LIMIT_TEXT(LIMIT_LIST_KEYS_MAX));
        return 0;
    }
    if ((ret = http_req_query_param(req, "marker", marker, sizeof(marker), &klen)) == 0) {
        if (klen == 0 || klen % 2 != 0 || hex_decode_lower(pos, marker, klen / 2) != 0 ||
            (blen > 0 && (klen / 2 <= blen || memcmp(pos, bucket, blen) != 0 || pos[blen] != 0))) {
            http_req_error(req, 400, "InvalidArgument", "marker: not a marker this listing gave");
            return 0;
        }
        pos_len = klen / 2;
    } else if (ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, "InvalidArgument", "marker: not a marker this listing gave");
        return 0;
    }
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        http_req_cio_error(req, CIO_EDB, "listing conflicts failed");
        return 0;
    }
    buf_init(&b, HTTP_REQ_REPLY_MAX);
    buf_puts(&b, "{\"conflicts\":[");
    ret = conflict_list(srv->meta, txn, bucket, blen, pos, &pos_len, max, put_conflict, &b, &more);
    http_req_rtxn_end(t);
    if (ret != 0) {
        buf_free(&b);
        http_req_cio_error(req, ret, "listing conflicts failed");
        return 0;
    }
    buf_printf(&b, "],\"truncated\":%s", more ? "true" : "false");
    if (more) {
        hex_encode(next, pos, pos_len);
        buf_printf(&b, ",\"next\":\"%s\"", next);
    }
    buf_puts(&b, "}");
    http_req_reply_buf(req, 200, &b);
    return 0;
}

int handler_conflicts_delete(http_server_t *srv, h2o_req_t *req)
{
    static const char prefix[] = "/admin/conflicts";
    char vs[24], origin[LOGREC_ORIGIN_MAX + 1];
    size_t vlen, olen;
    const char *code;
    http_commit_t *pend;
    path_t p;
    uint64_t v = 0;

    (void)srv;
    if (path_parse(req->path.base + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1), &p, &code) != 0 ||
        p.bucket_len == 0 || p.key_len == 0) {
        http_req_error(req, 400, "InvalidURI", "expected /admin/conflicts/{bucket}/{key}?version=V&origin=O");
        return 0;
    }
    if (http_req_query_param(req, "version", vs, sizeof(vs), &vlen) != 0 || vlen == 0 || vlen > 20 ||
        strspn(vs, "0123456789") != vlen || (v = strtoull(vs, NULL, 10)) == 0) {
        http_req_error(req, 400, "InvalidArgument", "version: the loser's version, a positive integer");
        return 0;
    }
    if (http_req_query_param(req, "origin", origin, sizeof(origin), &olen) != 0 || !presign_origin_valid(origin, olen)) {
        http_req_error(req, 400, "InvalidArgument", "origin: the loser's site id");
        return 0;
    }
    if ((pend = http_commit_new(req, COMMIT_CONFLICT_DELETE, &p)) == NULL) {
        http_req_cio_error(req, CIO_ENOMEM, "request failed");
        return 0;
    }
    pend->job.loser_version = v;
    memcpy(pend->job.loser_origin, origin, olen + 1);
    pend->job.loser_origin_len = olen;
    return http_commit_submit(req, pend);
}
