/* s3_list.c - S3's ListObjects (V1) and ListObjectsV2: a bucket's keys and common prefixes as XML.
 *
 * One read transaction serves the whole page. The keys come from
 * meta_obj_list in key order; with a delimiter, the first key found under a
 * new common prefix ends the pass, and the next pass seeks past every key
 * that can start with that prefix (the prefix followed by 0xff bytes up to
 * the longest key), so a common prefix costs one seek whatever the number of
 * keys under it. A page holds at most max-keys entries, keys and common
 * prefixes counted alike, as S3 counts them. The position a page ends at
 * (V1's NextMarker, V2's continuation token: base64 of it) is its last
 * entry; a common prefix that sorts at or before the position a request
 * starts after is not listed again, nor is any key under it. */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/date.h"
#include "common/hex.h"
#include "common/limits.h"
#include "common/percent.h"
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

#define TOKEN_MAX (4 * ((LIMIT_KEY_MAX + 2) / 3)) /* base64 of the longest position */
#define PASSES_MAX (LIMIT_LIST_KEYS_MAX + LIMIT_KEY_MAX + 2)

/* What a listing was asked for; strings are NUL-terminated. */
typedef struct {
    int v2, url, owner;
    char prefix[LIMIT_KEY_MAX + 1], delim[LIMIT_KEY_MAX + 1], after[LIMIT_KEY_MAX + 1];
    char marker[LIMIT_KEY_MAX + 1]; /* V1's marker, V2's start-after, as given */
    char token[TOKEN_MAX + 1];      /* V2's continuation-token, as given */
    size_t plen, dlen, alen, mlen, tlen;
    int has_marker, has_token;
    size_t max;
} list_q_t;

typedef struct {
    const list_q_t *q;
    buf_t contents, prefixes; /* the page's <Contents> and <CommonPrefixes> */
    size_t n;                 /* entries on the page */
    size_t visits;            /* keys read (what a skipped common prefix saves) */
    int truncated;
    int restart;                  /* the pass ended at a common prefix: the next one starts at `skip` */
    char skip[LIMIT_KEY_MAX];     /* the common prefix, then 0xff bytes: every key under it sorts at or before */
    size_t skip_len;              /*   */
    char last[LIMIT_KEY_MAX + 1]; /* the page's last entry */
    size_t last_len;              /*   */
} list_t;

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* <name>value</name>, percent-encoded ('/' kept, as S3) with encoding-type=url. */
static void put_name(buf_t *b, const list_q_t *q, const char *name, const char *p, size_t n)
{
    if (!q->url) {
        s3_xml_elem(b, name, p, n);
        return;
    }
    buf_printf(b, "<%s>", name);
    percent_append(b, p, n, PERCENT_KEEP_SLASH);
    buf_printf(b, "</%s>", name);
}

static void remember(list_t *l, const char *p, size_t n)
{
    memcpy(l->last, p, n);
    l->last[n] = '\0';
    l->last_len = n;
    l->n++;
}

static int list_one(void *ctx, const meta_obj_t *o)
{
    list_t *l = ctx;
    const list_q_t *q = l->q;

    l->visits++;
    if (q->dlen > 0) {
        const char *d = memmem(o->key + q->plen, o->key_len - q->plen, q->delim, q->dlen);
        if (d != NULL) {
            size_t cplen = (size_t)(d - o->key) + q->dlen;
            memcpy(l->skip, o->key, cplen);
            memset(l->skip + cplen, 0xff, sizeof(l->skip) - cplen);
            l->skip_len = sizeof(l->skip);
            l->restart = 1;
            if (q->alen > 0 && cmp_bytes(o->key, cplen, q->after, q->alen) <= 0)
                return 1; /* listed on an earlier page */
            if (l->n == q->max) {
                l->truncated = 1;
                l->restart = 0;
                return 1;
            }
            buf_puts(&l->prefixes, "<CommonPrefixes>");
            put_name(&l->prefixes, q, "Prefix", o->key, cplen);
            buf_puts(&l->prefixes, "</CommonPrefixes>");
            remember(l, o->key, cplen);
            return 1;
        }
    }
    if (l->n == q->max) {
        l->truncated = 1;
        return 1;
    }
    char etag[HTTP_OBJ_ETAG_MAX], ts[DATE_ISO8601_MS_LEN + 1];
    size_t etag_len = http_obj_etag(o, etag);
    date_iso8601_ms(o->mtime_ms, ts);
    buf_puts(&l->contents, "<Contents>");
    put_name(&l->contents, q, "Key", o->key, o->key_len);
    s3_xml_elem(&l->contents, "LastModified", ts, DATE_ISO8601_MS_LEN);
    s3_xml_elem(&l->contents, "ETag", etag, etag_len);
    s3_xml_elem_u64(&l->contents, "Size", o->size);
    if (q->owner)
        buf_puts(&l->contents, "<Owner><ID>" S3_OWNER_NAME "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName></Owner>");
    buf_puts(&l->contents, "<StorageClass>STANDARD</StorageClass></Contents>");
    remember(l, o->key, o->key_len);
    return 0;
}

/* The page: passes of meta_obj_list until it is full or the keys end. */
static int list_page(http_server_t *srv, MDB_txn *txn, const s3_req_t *s, list_t *l)
{
    const list_q_t *q = l->q;
    char from[LIMIT_KEY_MAX];
    size_t fromlen = q->alen;
    int ret;

    memcpy(from, q->after, q->alen);
    for (size_t pass = 0; pass < PASSES_MAX; pass++) {
        l->restart = 0;
        ret = meta_obj_list(srv->meta, txn, s->bucket, s->bucket_len, q->prefix, q->plen, from, fromlen, q->max - l->n + 1,
                            list_one, l);
        if (ret != 0 || !l->restart)
            return ret;
        memcpy(from, l->skip, l->skip_len);
        fromlen = l->skip_len;
    }
    return CIO_EINVAL; /* cannot happen: each pass lists or skips one common prefix, and few can be skipped */
}

/* A query parameter into out (cap bytes); *has 0 when absent. Answers the error itself and returns -1. */
static int param(h2o_req_t *req, const s3_req_t *s, const char *name, char *out, size_t cap, size_t *len, int *has)
{
    int ret = http_req_query_param(req, name, out, cap, len);
    if (has != NULL)
        *has = ret == 0;
    if (ret == 0 || ret == CIO_ENOTFOUND) {
        if (ret != 0)
            *len = 0, out[0] = '\0';
        return 0;
    }
    char msg[96];
    snprintf(msg, sizeof(msg), "%s is %s", name, ret == CIO_ETOOBIG ? "too long" : "malformed");
    s3_error(req, 400, "InvalidArgument", msg, s->resource);
    return -1;
}

/* Reads and checks the query. Answers a bad one itself and returns -1. */
static int read_query(h2o_req_t *req, const s3_req_t *s, int v2, list_q_t *q)
{
    char num[32], enc[8], fo[8];
    size_t nlen, elen, folen;
    int has_max, has_enc, has_fo;

    memset(q, 0, sizeof(*q));
    q->v2 = v2;
    if (param(req, s, "prefix", q->prefix, sizeof(q->prefix), &q->plen, NULL) != 0 ||
        param(req, s, "delimiter", q->delim, sizeof(q->delim), &q->dlen, NULL) != 0 ||
        param(req, s, v2 ? "start-after" : "marker", q->marker, sizeof(q->marker), &q->mlen, &q->has_marker) != 0 ||
        param(req, s, "max-keys", num, sizeof(num), &nlen, &has_max) != 0 ||
        param(req, s, "encoding-type", enc, sizeof(enc), &elen, &has_enc) != 0 ||
        param(req, s, "fetch-owner", fo, sizeof(fo), &folen, &has_fo) != 0)
        return -1;
    if (v2 && param(req, s, "continuation-token", q->token, sizeof(q->token), &q->tlen, &q->has_token) != 0)
        return -1;
    q->max = LIMIT_LIST_KEYS_MAX;
    if (has_max) {
        unsigned long long v = 0;
        if (nlen == 0 || nlen > 19 || strspn(num, "0123456789") != nlen) {
            s3_error(req, 400, "InvalidArgument", "max-keys must be a non-negative integer", s->resource);
            return -1;
        }
        v = strtoull(num, NULL, 10);
        q->max = v < LIMIT_LIST_KEYS_MAX ? (size_t)v : LIMIT_LIST_KEYS_MAX; /* S3 caps larger values */
    }
    if (has_enc) {
        if (strcmp(enc, "url") != 0) {
            s3_error(req, 400, "InvalidArgument", "Invalid Encoding Method specified in Request", s->resource);
            return -1;
        }
        q->url = 1;
    }
    q->owner = v2 ? has_fo && strcmp(fo, "true") == 0 : 1; /* V1 always names the owner */
    /* where the page starts: after the continuation token's position, else after the marker */
    if (q->has_token) {
        unsigned char dec[TOKEN_MAX];
        int n = q->tlen == 0 || q->tlen % 4 != 0 ? -1 : EVP_DecodeBlock(dec, (const unsigned char *)q->token, (int)q->tlen);
        if (n >= 0)
            n -= (q->tlen > 0 && q->token[q->tlen - 1] == '=') + (q->tlen > 1 && q->token[q->tlen - 2] == '=');
        if (n <= 0 || n > LIMIT_KEY_MAX) {
            s3_error(req, 400, "InvalidArgument", "The continuation token provided is incorrect", s->resource);
            return -1;
        }
        memcpy(q->after, dec, (size_t)n);
        q->alen = (size_t)n;
    } else {
        memcpy(q->after, q->marker, q->mlen);
        q->alen = q->mlen;
    }
    return 0;
}

int s3_list_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s, int v2)
{
    http_thread_t *t = http_req_thread(req);
    list_q_t q;
    list_t l;
    meta_bucket_t bk;
    MDB_txn *txn;
    buf_t b;
    int ret;

    if (read_query(req, s, v2, &q) != 0)
        return 0;
    memset(&l, 0, sizeof(l));
    l.q = &q;
    buf_init(&l.contents, S3_REPLY_MAX);
    buf_init(&l.prefixes, S3_REPLY_MAX);
    if ((txn = http_req_rtxn_begin(t)) == NULL) {
        ret = CIO_EDB;
        goto fail;
    }
    ret = meta_bucket_get(srv->meta, txn, s->bucket, s->bucket_len, &bk);
    if (ret == 0 && bk.deleted)
        ret = CIO_ENOTFOUND; /* deleted while it held objects: gone for S3, as in ListBuckets */
    if (ret == 0 && q.max > 0)
        ret = list_page(srv, txn, s, &l);
    http_req_rtxn_end(t);
    if (ret != 0)
        goto fail;

    buf_init(&b, S3_REPLY_MAX);
    s3_xml_open(&b, "ListBucketResult");
    s3_xml_elem(&b, "Name", s->bucket, s->bucket_len);
    put_name(&b, &q, "Prefix", q.prefix, q.plen);
    if (v2) {
        if (q.has_token)
            s3_xml_elem(&b, "ContinuationToken", q.token, q.tlen);
        if (l.truncated) {
            char tok[TOKEN_MAX + 1];
            int n = EVP_EncodeBlock((unsigned char *)tok, (const unsigned char *)l.last, (int)l.last_len);
            s3_xml_elem(&b, "NextContinuationToken", tok, (size_t)n);
        }
        s3_xml_elem_u64(&b, "KeyCount", l.n);
    } else {
        put_name(&b, &q, "Marker", q.marker, q.mlen);
        if (l.truncated && q.dlen > 0)
            put_name(&b, &q, "NextMarker", l.last, l.last_len);
    }
    s3_xml_elem_u64(&b, "MaxKeys", q.max);
    if (q.dlen > 0)
        put_name(&b, &q, "Delimiter", q.delim, q.dlen);
    buf_puts(&b, l.truncated ? "<IsTruncated>true</IsTruncated>" : "<IsTruncated>false</IsTruncated>");
    if (v2 && q.has_marker)
        put_name(&b, &q, "StartAfter", q.marker, q.mlen);
    if (q.url)
        buf_puts(&b, "<EncodingType>url</EncodingType>");
    if (l.contents.len > 0)
        buf_append(&b, l.contents.data, l.contents.len);
    if (l.prefixes.len > 0)
        buf_append(&b, l.prefixes.data, l.prefixes.len);
    buf_puts(&b, "</ListBucketResult>");
    if (l.contents.err != 0 || l.prefixes.err != 0)
        b.err = CIO_ETOOBIG;
    buf_free(&l.contents);
    buf_free(&l.prefixes);
    s3_reply_xml(req, 200, &b);
    return 0;
fail:
    buf_free(&l.contents);
    buf_free(&l.prefixes);
    if (ret == CIO_ENOTFOUND)
        s3_error(req, 404, "NoSuchBucket", "The specified bucket does not exist", s->resource);
    else
        s3_error_cio(req, ret, "listing failed");
    return 0;
}
