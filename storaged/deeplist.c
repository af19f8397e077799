/* deeplist.c - the deep listing: a bucket's objects with a digest of their
 * bytes as read and verified now, page by page, bounded in bytes read.
 *
 * The digest is the CRC32C of the object's whole content. It is computed
 * from the bytes read, not from the stored block CRCs, so it does not depend
 * on the block size a site wrote its checksums with, and an object without
 * a checksum record (written before them, or with them off) gets the same
 * digest as its copy with one: the two sites' digests compare whatever each
 * stored. The bytes are verified first: against the block CRCs when the
 * object has a record, else against its MD5 (the ETag). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/cksum.h"
#include "common/date.h"
#include "common/hex.h"
#include "common/limits.h"
#include "common/objmeta.h"
#include "storaged/commit.h"
#include "storaged/deeplist.h"
#include "storaged/integrity.h"

#define DEEPLIST_CHUNK (1u << 20) /* bytes read at a time: whole blocks of the usual 64 KiB */
#define DEEPLIST_TICK_MS 10       /* a held reply is looked at again this often */

typedef struct {
    http_server_t *srv;
    MDB_txn *txn;
    const path_t *p;
    buf_t *b;
    size_t n, max;
    uint64_t bytes, budget;
    int truncated;
    char last[PATH_KEY_MAX + 1];
    size_t last_len;
    char *chunk; /* DEEPLIST_CHUNK bytes, or one block when blocks are larger */
    size_t chunk_len;
    int failed; /* a CIO_* code that ends the page (out of memory) */
    /* the request's resume: where the previous page stopped inside the first object */
    int resuming;
    deepcursor_t from;
    /* the reply's: this page stopped inside its first object */
    int partial;
    deepcursor_t to;
} deep_ctx_t;

/* A reply held back by the rate: in the request's pool, disposed with it. */
typedef struct {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    buf_t b;
    int64_t due_ns;
} held_t;

static __thread h2o_timeout_t held_timeout;
static __thread h2o_loop_t *held_loop;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int chunk_for(deep_ctx_t *d, size_t want)
{
    if (d->chunk_len >= want)
        return 0;
    free(d->chunk);
    d->chunk_len = 0;
    if ((d->chunk = malloc(want)) == NULL)
        return CIO_ENOMEM;
    d->chunk_len = want;
    return 0;
}

/* Reads object o from byte *pos (a block boundary; the CRC32C of the bytes
 * before it in *crc) to its end, or, when it has block checksums, until
 * `limit` more bytes would be passed (a block at least): *pos is then where
 * it stopped. *how "blocks" or "md5"; an object without checksums is read
 * whole from 0, whatever *pos said. Returns 0 (done when *pos == o->size),
 * CIO_ECORRUPT (*bad the first failing block, UINT64_MAX for an MD5
 * mismatch), CIO_EIO or CIO_ENOMEM. */
static int digest_object(deep_ctx_t *d, const meta_obj_t *o, uint64_t limit, uint64_t *pos, uint32_t *crc, const char **how,
                         uint64_t *bad)
{
    blocksum_view_t v;
    uint8_t *owned = NULL, md5[CKSUM_SIZE_MAX];
    cksum_t md;
    int have = 0, ret, md_open = 0;

    *bad = UINT64_MAX;
    if (o->size > 0 && (ret = integrity_sums(d->srv->meta, d->txn, d->p->bucket, d->p->bucket_len, o->key, o->key_len, o, 0,
                                             o->size, &v, &owned, &have)) != 0)
        goto fail;
    *how = have ? "blocks" : "md5";
    size_t step = DEEPLIST_CHUNK, block = have ? (size_t)1 << v.shift : 1;
    if (block > step)
        step = block;
    if (!have || *pos >= o->size || (*pos & (block - 1)) != 0)
        *pos = 0, *crc = 0; /* from the start: no checksums to split by, or a resume that does not fit */
    if (have && limit < step)
        step = limit < block ? block : (size_t)(limit & ~(uint64_t)(block - 1));
    if ((ret = chunk_for(d, step)) != 0)
        goto fail;
    if (!have) {
        if ((ret = cksum_init(&md, CKSUM_MD5)) != 0)
            goto fail;
        md_open = 1;
    }
    for (uint64_t start = *pos; *pos < o->size;) {
        size_t n = o->size - *pos < step ? (size_t)(o->size - *pos) : step;
        if (have && *pos > start && *pos - start + n > limit)
            break; /* the page's bytes are read: the rest in the next page */
        if ((ret = integrity_read(d->srv->store, o->off, *pos, d->chunk, n, have ? &v : NULL, bad)) != 0)
            goto fail;
        if (!have && (ret = cksum_update(&md, d->chunk, n)) != 0)
            goto fail;
        *crc = cksum_crc32c(*crc, d->chunk, n);
        *pos += n;
        d->bytes += n;
    }
    if (!have) {
        md_open = 0;
        if ((ret = cksum_final(&md, md5)) != 0)
            goto fail;
        if (memcmp(md5, o->etag, 16) != 0) {
            *bad = UINT64_MAX;
            ret = CIO_ECORRUPT;
            goto fail;
        }
    }
    free(owned);
    return 0;
fail:
    if (md_open)
        cksum_free(&md);
    free(owned);
    return ret;
}

static int deep_one(void *ctx, const meta_obj_t *o)
{
    deep_ctx_t *d = ctx;
    char etag[33], ts[DATE_ISO8601_MS_LEN + 1], md[2 * OBJMETA_DIGEST_LEN + 1];
    const char *how = "md5";
    uint32_t crc = 0;
    uint64_t bad, pos = 0;

    if (d->n == d->max || (d->n > 0 && d->bytes + o->size > d->budget)) {
        d->truncated = 1;
        return 1;
    }
    /* the first object may be one the previous page stopped inside, and may stop inside this one */
    if (d->n == 0 && d->resuming && o->version == d->from.version && strcmp(o->origin, d->from.origin) == 0)
        pos = d->from.offset, crc = d->from.crc;
    int ret = digest_object(d, o, d->n == 0 ? d->budget : UINT64_MAX, &pos, &crc, &how, &bad);
    if (ret == CIO_ENOMEM) {
        d->failed = ret;
        return 1;
    }
    if (ret == 0 && pos < o->size) {
        d->partial = 1;
        d->to.offset = pos;
        d->to.crc = crc;
        d->to.version = o->version;
        memcpy(d->to.origin, o->origin, o->origin_len + 1);
        return 1;
    }
    hex_encode(etag, o->etag, 16);
    date_iso8601_ms(o->mtime_ms, ts);
    buf_puts(d->b, d->n == 0 ? "{\"key\":" : ",{\"key\":");
    buf_json_str(d->b, o->key, o->key_len);
    buf_printf(d->b, ",\"size\":%" PRIu64 ",\"etag\":\"%s\",\"last_modified\":\"%s\",\"version\":%" PRIu64 ",\"origin\":", o->size,
               etag, ts, o->version);
    buf_json_str(d->b, o->origin, o->origin_len);
    objmeta_digest_hex(o->meta, o->meta_len, md);
    buf_printf(d->b, ",\"meta_digest\":\"%s\"", md);
    if (ret == 0) {
        buf_printf(d->b, ",\"digest\":\"%08" PRIx32 "\",\"verified\":\"%s\"}", crc, how);
    } else {
        const char *reason = ret == CIO_ECORRUPT ? (bad == UINT64_MAX ? "md5" : "checksum") : "read";
        if (ret == CIO_ECORRUPT)
            integrity_damaged(INTEGRITY_GET, d->p->bucket, o->key, o->version, o->origin, bad);
        buf_printf(d->b, ",\"damaged\":{\"reason\":\"%s\",\"block\":", reason);
        if (ret == CIO_ECORRUPT && bad != UINT64_MAX)
            buf_printf(d->b, "%" PRIu64 "}}", bad);
        else
            buf_puts(d->b, "null}}");
    }
    memcpy(d->last, o->key, o->key_len + 1);
    d->last_len = o->key_len;
    d->n++;
    return 0;
}

static void held_dispose(void *p)
{
    held_t *h = p;
    if (h2o_timeout_is_linked(&h->entry))
        h2o_timeout_unlink(&h->entry);
    buf_free(&h->b);
}

static void held_link(held_t *h)
{
    h2o_loop_t *loop = h->req->conn->ctx->loop;
    if (held_loop != loop) {
        h2o_timeout_init(loop, &held_timeout, DEEPLIST_TICK_MS);
        held_loop = loop;
    }
    h2o_timeout_link(loop, &held_timeout, &h->entry);
}

static void on_held(h2o_timeout_entry_t *entry)
{
    held_t *h = H2O_STRUCT_FROM_MEMBER(held_t, entry, entry);
    if (now_ns() < h->due_ns) {
        held_link(h);
        return;
    }
    http_req_reply_buf(h->req, 200, &h->b); /* frees the buffer: the dispose finds it empty */
}

/* A parameter that is a count in [min, max]: 0 with *out, 1 absent, -1 bad. */
static int count_param(h2o_req_t *req, const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
    char s[32];
    size_t len;
    int ret = http_req_query_param(req, name, s, sizeof(s), &len);
    if (ret == CIO_ENOTFOUND)
        return 1;
    if (ret != 0 || len == 0 || len > 20 || strspn(s, "0123456789") != len)
        return -1;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int deeplist_handle(http_server_t *srv, h2o_req_t *req, const path_t *p)
{
    http_thread_t *t = http_req_thread(req);
    char after[PATH_KEY_MAX + 1], flag[8], cursor[DEEPCURSOR_MAX + 1];
    size_t alen = 0, flen;
    uint64_t max = LIMIT_LIST_KEYS_MAX, rate = 0, token;
    int64_t started = now_ns();
    meta_bucket_t bk;
    deep_ctx_t d;
    buf_t b;
    int ret;

    if (!http_req_authorized(srv, req)) {
        http_req_error(req, 401, "Unauthorized", "missing or wrong access token");
        return 0;
    }
    memset(&d, 0, sizeof(d));
    d.budget = DEEPLIST_BYTES_DEFAULT;
    if (http_req_query_param(req, "deep", flag, sizeof(flag), &flen) != 0 || strcmp(flag, "1") != 0) {
        http_req_error(req, 400, "InvalidArgument", "deep must be 1");
        return 0;
    }
    if ((ret = http_req_query_param(req, "start-after", after, sizeof(after), &alen)) != 0 && ret != CIO_ENOTFOUND) {
        http_req_error(req, 400, ret == CIO_ETOOBIG ? "KeyTooLong" : "InvalidArgument", "malformed query parameter");
        return 0;
    }
    if (ret == CIO_ENOTFOUND)
        alen = 0;
    if (count_param(req, "max-keys", 1, LIMIT_LIST_KEYS_MAX, &max) < 0) {
        http_req_error(req, 400, "InvalidArgument", "max-keys must be an integer from 1 to " LIMIT_TEXT(LIMIT_LIST_KEYS_MAX));
        return 0;
    }
    if (count_param(req, "max-bytes", DEEPLIST_BYTES_MIN, DEEPLIST_BYTES_MAX, &d.budget) < 0) {
        http_req_error(req, 400, "InvalidArgument", "max-bytes must be an integer from 65536 to 1073741824");
        return 0;
    }
    /* a page reads a block at least: below DEEPLIST_RATE_MIN one reply would be held for minutes */
    if (count_param(req, "rate", 0, UINT64_MAX / 2, &rate) < 0 || (rate > 0 && rate < DEEPLIST_RATE_MIN)) {
        http_req_error(req, 400, "InvalidArgument", "rate must be 0 (unlimited) or an integer from 65536 (bytes per second)");
        return 0;
    }
    if ((ret = http_req_query_param(req, "resume", cursor, sizeof(cursor), &flen)) != CIO_ENOTFOUND) {
        if (ret != 0 || deepcursor_parse(cursor, flen, &d.from) != 0) {
            http_req_error(req, 400, "InvalidArgument", "resume must be a deep listing's resume cursor, as given");
            return 0;
        }
        d.resuming = 1;
    }
    if (rate > 0 && d.budget > rate)
        d.budget = rate < DEEPLIST_BYTES_MIN ? DEEPLIST_BYTES_MIN : rate; /* about a second of reading per page */

    buf_init(&b, HTTP_REQ_REPLY_MAX);
    d.srv = srv;
    d.p = p;
    d.b = &b;
    d.max = (size_t)max;
    buf_puts(&b, "{\"bucket\":");
    buf_json_str(&b, p->bucket, p->bucket_len);
    buf_puts(&b, ",\"deep\":true,\"objects\":[");
    token = commit_reader_enter(srv->commit); /* no extent read here is reused before the page is done */
    if ((d.txn = http_req_rtxn_begin(t)) == NULL) {
        commit_reader_leave(srv->commit, token);
        buf_free(&b);
        http_req_cio_error(req, CIO_EDB, "listing failed");
        return 0;
    }
    ret = meta_bucket_get(srv->meta, d.txn, p->bucket, p->bucket_len, &bk);
    if (ret == 0)
        ret = meta_obj_list(srv->meta, d.txn, p->bucket, p->bucket_len, "", 0, after, alen, d.max + 1, deep_one, &d);
    http_req_rtxn_end(t);
    commit_reader_leave(srv->commit, token);
    free(d.chunk);
    if (ret == 0 && d.failed != 0)
        ret = d.failed;
    if (ret != 0) {
        buf_free(&b);
        if (ret == CIO_ENOTFOUND)
            http_req_error(req, 404, "NoSuchBucket", "no such bucket");
        else
            http_req_cio_error(req, ret, "deep listing failed");
        return 0;
    }
    buf_printf(&b, "],\"bytes_read\":%" PRIu64 ",\"is_truncated\":%s,\"next_start_after\":", d.bytes,
               d.truncated || d.partial ? "true" : "false");
    if (d.partial) {
        /* the same start-after again, with this cursor */
        char text[DEEPCURSOR_MAX + 1] = "";
        if (deepcursor_format(&d.to, text) == 0)
            b.err = CIO_EINVAL; /* cannot happen: the offset is past a block, the origin a site id */
        buf_printf(&b, "null,\"resume\":\"%s\"", text);
    } else if (d.truncated)
        buf_json_str(&b, d.last, d.last_len);
    else
        buf_puts(&b, "null");
    buf_puts(&b, "}");
    int64_t due = started + (rate > 0 ? (int64_t)((double)d.bytes * 1e9 / (double)rate) : 0);
    if (rate == 0 || now_ns() >= due || b.err != 0) {
        http_req_reply_buf(req, 200, &b);
        return 0;
    }
    held_t *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), held_dispose);
    memset(h, 0, sizeof(*h));
    h->req = req;
    h->b = b;
    h->due_ns = due;
    h->entry.cb = on_held;
    held_link(h);
    return 0;
}
