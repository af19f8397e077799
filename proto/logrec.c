/* logrec.c - the replication log record codec: msgpack-c encoder, bounded zero-copy decoder. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "proto/logrec.h"
#include "proto/mpread.h"
#include "proto/mpwrite.h"

/* A record has 15 known fields; the cap leaves room for fields that later
 * versions may add while bounding the work a hostile record can cause. */
_Static_assert(LOGREC_ORIGIN_MAX >= LIMIT_SITE_ID_MAX, "a record's origin is a site id");
#define LOGREC_MAP_MAX 32
/* Longest map key accepted; known keys are 1..3 bytes. */
#define LOGREC_FIELD_NAME_MAX 64

/* Field bits, to enforce "each known key at most once" and the per-op
 * required sets. */
enum {
    F_V = 1u << 0,
    F_SEQ = 1u << 1,
    F_OP = 1u << 2,
    F_B = 1u << 3,
    F_K = 1u << 4,
    F_SZ = 1u << 5,
    F_ET = 1u << 6,
    F_CT = 1u << 7,
    F_MT = 1u << 8,
    F_O = 1u << 9,
    F_H = 1u << 10,
    F_PH = 1u << 11,
    F_PO = 1u << 12,
    F_C = 1u << 13,
    F_M = 1u << 14,
    F_MP = 1u << 15,
    F_ME = 1u << 16,
};

#define REQ_COMMON (F_V | F_SEQ | F_OP | F_B | F_MT | F_O)
#define REQ_PUT (REQ_COMMON | F_K | F_SZ | F_ET)
#define REQ_DELETE (REQ_COMMON | F_K)
#define REQ_PURGE (REQ_COMMON) /* and the other bucket-only ops */
#define PUT_ONLY (F_SZ | F_ET | F_CT | F_M | F_MP | F_ME)

const char *logrec_op_name(logrec_op_t op)
{
    switch (op) {
    case LOGREC_PUT:
        return "PUT";
    case LOGREC_DELETE:
        return "DELETE";
    case LOGREC_PURGE:
        return "PURGE";
    case LOGREC_BUCKET_CREATE:
        return "BUCKET_CREATE";
    case LOGREC_BUCKET_DELETE:
        return "BUCKET_DELETE";
    }
    return "?";
}

void logrec_event_id(const logrec_t *r, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return;
    if (r == NULL) {
        buf[0] = '\0';
        return;
    }
    /* Clamp so that an out-of-range record cannot make %.*s read past its caps. */
    int blen = (int)(r->bucket_len <= LOGREC_BUCKET_MAX ? r->bucket_len : LOGREC_BUCKET_MAX);
    if (r->bucket == NULL)
        blen = 0;
    if (logrec_op_bucket_only(r->op)) {
        snprintf(buf, cap, "%" PRId64 "-%.*s-%s", r->mtime_ms, blen, blen ? r->bucket : "",
                 r->op == LOGREC_PURGE           ? "*"
                 : r->op == LOGREC_BUCKET_CREATE ? "+"
                                                 : "-");
        return;
    }
    int klen = (int)(r->key_len <= LOGREC_KEY_MAX ? r->key_len : LOGREC_KEY_MAX);
    if (r->key == NULL)
        klen = 0;
    snprintf(buf, cap, "%" PRId64 "-%.*s-%.*s", r->mtime_ms, blen, blen ? r->bucket : "", klen, klen ? r->key : "");
}

/* ---- encoding ---- */

static int str_ok(const char *s, size_t len, size_t min, size_t max)
{
    return len >= min && len <= max && (len == 0 || s != NULL);
}

static int op_known(uint64_t op)
{
    return op >= LOGREC_PUT && op <= LOGREC_BUCKET_DELETE;
}

static int logrec_check(const logrec_t *r)
{
    static const uint8_t zero_etag[16];

    if (!op_known((uint64_t)r->op))
        return CIO_EINVAL;
    if (!str_ok(r->bucket, r->bucket_len, 1, LOGREC_BUCKET_MAX) || !str_ok(r->origin, r->origin_len, 1, LOGREC_ORIGIN_MAX))
        return CIO_EINVAL;
    if (r->hlc == 0 || !str_ok(r->parent_origin, r->parent_origin_len, 0, LOGREC_ORIGIN_MAX) ||
        (r->parent_hlc == 0) != (r->parent_origin_len == 0))
        return CIO_EINVAL;
    if (r->ctx.n > VCTX_MAX)
        return CIO_EINVAL;
    if (logrec_op_bucket_only(r->op)) {
        if (r->key_len != 0 || r->ctx.n != 0 || r->ctx.floor != 0)
            return CIO_EINVAL;
    } else if (!str_ok(r->key, r->key_len, 1, LOGREC_KEY_MAX)) {
        return CIO_EINVAL;
    }
    if (r->op == LOGREC_PUT) {
        if (!str_ok(r->content_type, r->content_type_len, 0, LOGREC_CTYPE_MAX) || r->meta_len > OBJMETA_MAX ||
            (r->meta_len > 0 && (r->meta == NULL || objmeta_validate(r->meta, r->meta_len) != 0)))
            return CIO_EINVAL;
        if (r->mpu_parts > LOGREC_MPU_PARTS_MAX || (r->mpu_parts == 0 && memcmp(r->mpu_md5, zero_etag, sizeof(zero_etag)) != 0))
            return CIO_EINVAL;
    } else if (r->size != 0 || r->content_type_len != 0 || r->meta_len != 0 || r->mpu_parts != 0 ||
               memcmp(r->etag, zero_etag, sizeof(zero_etag)) != 0) {
        /* These fields are only encoded for PUT: refuse rather than drop them silently. */
        return CIO_EINVAL;
    }
    return 0;
}

static int pack_str_field(msgpack_packer *pk, const char *k, const char *s, size_t len)
{
    return mpw_key(pk, k) != 0 ? -1 : mpw_str(pk, s, len);
}

/* "c": [[site, version], ...], the floor first as the empty site when it is set. */
static int pack_ctx(msgpack_packer *pk, const vctx_t *c)
{
    if (mpw_key(pk, "c") != 0 || msgpack_pack_array(pk, (size_t)c->n + (c->floor != 0)) != 0)
        return -1;
    if (c->floor != 0 && (msgpack_pack_array(pk, 2) != 0 || msgpack_pack_str(pk, 0) != 0 || msgpack_pack_uint64(pk, c->floor) != 0))
        return -1;
    for (uint8_t i = 0; i < c->n; i++)
        if (msgpack_pack_array(pk, 2) != 0 || msgpack_pack_str_with_body(pk, c->e[i].site, c->e[i].site_len) != 0 ||
            msgpack_pack_uint64(pk, c->e[i].hlc) != 0)
            return -1;
    return 0;
}

int logrec_encode(const logrec_t *r, msgpack_sbuffer *out)
{
    if (r == NULL || out == NULL)
        return CIO_EINVAL;
    int err = logrec_check(r);
    if (err != 0)
        return err;

    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);

    size_t n = 8; /* v, seq, h, op, b, mt, o, + k */
    if (logrec_op_bucket_only(r->op))
        n = 7;
    else if (r->op == LOGREC_PUT)
        n += 3 + (r->meta_len > 0) + 2 * (r->mpu_parts > 0); /* sz, et, ct, m, mp + me */
    if (r->parent_hlc != 0)
        n += 2; /* ph, po */
    if (r->ctx.n > 0 || r->ctx.floor != 0)
        n++; /* c */

    if (msgpack_pack_map(&pk, n) != 0)
        goto fail;
    if (mpw_key(&pk, "v") != 0 || msgpack_pack_uint64(&pk, LOGREC_FORMAT_VERSION) != 0)
        goto fail;
    if (mpw_key(&pk, "seq") != 0 || msgpack_pack_uint64(&pk, r->seq) != 0)
        goto fail;
    if (mpw_key(&pk, "h") != 0 || msgpack_pack_uint64(&pk, r->hlc) != 0)
        goto fail;
    if (mpw_key(&pk, "op") != 0 || msgpack_pack_uint64(&pk, (uint64_t)r->op) != 0)
        goto fail;
    if (pack_str_field(&pk, "b", r->bucket, r->bucket_len) != 0)
        goto fail;
    if (!logrec_op_bucket_only(r->op) && pack_str_field(&pk, "k", r->key, r->key_len) != 0)
        goto fail;
    if (r->op == LOGREC_PUT) {
        if (mpw_key(&pk, "sz") != 0 || msgpack_pack_uint64(&pk, r->size) != 0)
            goto fail;
        if (mpw_key(&pk, "et") != 0 || msgpack_pack_bin_with_body(&pk, r->etag, sizeof(r->etag)) != 0)
            goto fail;
        if (pack_str_field(&pk, "ct", r->content_type, r->content_type_len) != 0)
            goto fail;
        if (r->meta_len > 0 && (mpw_key(&pk, "m") != 0 || msgpack_pack_bin_with_body(&pk, r->meta, r->meta_len) != 0))
            goto fail;
        if (r->mpu_parts > 0 && (mpw_key(&pk, "mp") != 0 || msgpack_pack_uint64(&pk, r->mpu_parts) != 0 ||
                                 mpw_key(&pk, "me") != 0 || msgpack_pack_bin_with_body(&pk, r->mpu_md5, sizeof(r->mpu_md5)) != 0))
            goto fail;
    }
    if (mpw_key(&pk, "mt") != 0 || msgpack_pack_int64(&pk, r->mtime_ms) != 0)
        goto fail;
    if (pack_str_field(&pk, "o", r->origin, r->origin_len) != 0)
        goto fail;
    if (r->parent_hlc != 0 && (mpw_key(&pk, "ph") != 0 || msgpack_pack_uint64(&pk, r->parent_hlc) != 0 ||
                               pack_str_field(&pk, "po", r->parent_origin, r->parent_origin_len) != 0))
        goto fail;
    if ((r->ctx.n > 0 || r->ctx.floor != 0) && pack_ctx(&pk, &r->ctx) != 0)
        goto fail;
    return 0;

fail:
    /* The only failure of msgpack_sbuffer_write is realloc; drop the partial record. */
    out->size = start;
    return CIO_ENOMEM;
}

/* ---- decoding ----
 *
 * msgpack-c's unpacker allocates each map/array from its header count before
 * reading the elements, so the decoder walks the bytes with proto/mpread.h:
 * no allocation, every length checked against what is left. */

/* The context of "c" (logrec.h): refused unless it is exactly what
 * pack_ctx writes for some context, so that a decoded record encodes back
 * to the same bytes. */
static int decode_ctx(mpread_t *rd, vctx_t *c)
{
    size_t n, pair, slen;
    const char *site;
    uint64_t hlc;
    int err;

    if ((err = mpread_array(rd, VCTX_MAX + 1, &n)) != 0)
        return err;
    vctx_init(c);
    for (size_t i = 0; i < n; i++) {
        if ((err = mpread_array(rd, 2, &pair)) != 0)
            return err;
        if (pair != 2)
            return CIO_EPROTO;
        if ((err = mpread_str(rd, &site, &slen, LIMIT_SITE_ID_MAX)) != 0 || (err = mpread_uint(rd, &hlc)) != 0)
            return err;
        if (hlc == 0)
            return CIO_EPROTO;
        if (slen == 0) {
            if (i != 0) /* the floor comes first, once */
                return CIO_EPROTO;
            c->floor = hlc;
            continue;
        }
        if (c->n == VCTX_MAX || hlc <= c->floor)
            return CIO_EPROTO;
        if (c->n > 0) {
            const vctx_entry_t *last = &c->e[c->n - 1];
            size_t m = last->site_len < slen ? last->site_len : slen;
            int cmp = memcmp(last->site, site, m);
            if (cmp > 0 || (cmp == 0 && last->site_len >= slen))
                return CIO_EPROTO; /* out of order, or a site twice */
        }
        vctx_add(c, site, slen, hlc);
    }
    return 0;
}

static int key_is(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

/* Decodes the value of one map entry whose key is k[0..klen). Sets the
 * field's bit in *seen; a known key seen twice is malformed. */
static int decode_field(mpread_t *rd, const char *k, size_t klen, logrec_t *r, unsigned *seen, uint64_t *format)
{
    unsigned bit;
    uint64_t u;
    int err;
    const char *s;
    size_t n;

    if (key_is(k, klen, "v"))
        bit = F_V;
    else if (key_is(k, klen, "seq"))
        bit = F_SEQ;
    else if (key_is(k, klen, "op"))
        bit = F_OP;
    else if (key_is(k, klen, "b"))
        bit = F_B;
    else if (key_is(k, klen, "k"))
        bit = F_K;
    else if (key_is(k, klen, "sz"))
        bit = F_SZ;
    else if (key_is(k, klen, "et"))
        bit = F_ET;
    else if (key_is(k, klen, "ct"))
        bit = F_CT;
    else if (key_is(k, klen, "mt"))
        bit = F_MT;
    else if (key_is(k, klen, "o"))
        bit = F_O;
    else if (key_is(k, klen, "h"))
        bit = F_H;
    else if (key_is(k, klen, "ph"))
        bit = F_PH;
    else if (key_is(k, klen, "po"))
        bit = F_PO;
    else if (key_is(k, klen, "c"))
        bit = F_C;
    else if (key_is(k, klen, "m"))
        bit = F_M;
    else if (key_is(k, klen, "mp"))
        bit = F_MP;
    else if (key_is(k, klen, "me"))
        bit = F_ME;
    else
        return mpread_skip(rd); /* forward compatibility */

    if (*seen & bit)
        return CIO_EPROTO;
    *seen |= bit;

    switch (bit) {
    case F_V:
        if ((err = mpread_uint(rd, &u)) != 0)
            return err;
        /* Refuse a newer format: it may change the meaning of known fields. */
        if (u < 1 || u > LOGREC_FORMAT_VERSION)
            return CIO_EPROTO;
        *format = u;
        return 0;
    case F_SEQ:
        return mpread_uint(rd, &r->seq);
    case F_OP:
        if ((err = mpread_uint(rd, &u)) != 0)
            return err;
        if (!op_known(u))
            return CIO_EPROTO;
        r->op = (logrec_op_t)u;
        return 0;
    case F_B:
        return mpread_str(rd, &r->bucket, &r->bucket_len, LOGREC_BUCKET_MAX);
    case F_K:
        return mpread_str(rd, &r->key, &r->key_len, LOGREC_KEY_MAX);
    case F_SZ:
        return mpread_uint(rd, &r->size);
    case F_ET:
        if ((err = mpread_bin(rd, &s, &n, sizeof(r->etag))) != 0)
            return err;
        if (n != sizeof(r->etag))
            return CIO_EPROTO;
        memcpy(r->etag, s, sizeof(r->etag));
        return 0;
    case F_CT:
        return mpread_str(rd, &r->content_type, &r->content_type_len, LOGREC_CTYPE_MAX);
    case F_MT:
        return mpread_int64(rd, &r->mtime_ms);
    case F_H:
        return mpread_uint(rd, &r->hlc);
    case F_PH:
        return mpread_uint(rd, &r->parent_hlc);
    case F_PO:
        return mpread_str(rd, &r->parent_origin, &r->parent_origin_len, LOGREC_ORIGIN_MAX);
    case F_C:
        return decode_ctx(rd, &r->ctx);
    case F_M:
        if ((err = mpread_bin(rd, &s, &n, OBJMETA_MAX)) != 0)
            return err;
        /* absent is "none": an empty "m" is not the canonical encoding of anything */
        if (n == 0 || objmeta_validate((const uint8_t *)s, n) != 0)
            return CIO_EPROTO;
        r->meta = (const uint8_t *)s;
        r->meta_len = n;
        return 0;
    case F_MP:
        if ((err = mpread_uint(rd, &u)) != 0)
            return err;
        if (u < 1 || u > LOGREC_MPU_PARTS_MAX)
            return CIO_EPROTO;
        r->mpu_parts = (uint32_t)u;
        return 0;
    case F_ME:
        if ((err = mpread_bin(rd, &s, &n, sizeof(r->mpu_md5))) != 0)
            return err;
        if (n != sizeof(r->mpu_md5))
            return CIO_EPROTO;
        memcpy(r->mpu_md5, s, sizeof(r->mpu_md5));
        return 0;
    default: /* F_O */
        return mpread_str(rd, &r->origin, &r->origin_len, LOGREC_ORIGIN_MAX);
    }
}

int logrec_decode(const char *buf, size_t len, logrec_t *out)
{
    if (buf == NULL || out == NULL)
        return CIO_EPROTO;

    /* Decode into a local so that *out is untouched on error. */
    logrec_t r;
    memset(&r, 0, sizeof(r));
    mpread_t rd;
    size_t n;
    unsigned seen = 0;
    uint64_t format = 0;
    int err;

    mpread_init(&rd, buf, len);
    if ((err = mpread_map(&rd, LOGREC_MAP_MAX, &n)) != 0)
        return err;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if ((err = mpread_str(&rd, &k, &klen, LOGREC_FIELD_NAME_MAX)) != 0)
            return err;
        if ((err = decode_field(&rd, k, klen, &r, &seen, &format)) != 0)
            return err;
    }
    if (mpread_left(&rd) != 0)
        return CIO_EPROTO;

    unsigned required = REQ_PURGE;
    if ((seen & F_OP) != 0 && r.op == LOGREC_PUT)
        required = REQ_PUT;
    else if ((seen & F_OP) != 0 && r.op == LOGREC_DELETE)
        required = REQ_DELETE;
    if ((seen & required) != required)
        return CIO_EPROTO;
    if (r.bucket_len == 0 || r.origin_len == 0)
        return CIO_EPROTO;
    if (logrec_op_bucket_only(r.op)) {
        /* a bucket op has no key at all (a PURGE of format 1 may carry an empty one) */
        if (r.key_len != 0 || (r.op != LOGREC_PURGE && (seen & F_K) != 0))
            return CIO_EPROTO;
    } else if (r.key_len == 0) {
        return CIO_EPROTO;
    }
    if (r.op != LOGREC_PUT && (seen & PUT_ONLY) != 0)
        return CIO_EPROTO;
    if (((seen & F_MP) != 0) != ((seen & F_ME) != 0)) /* a multipart ETag has both halves */
        return CIO_EPROTO;
    if (logrec_op_bucket_only(r.op) && (seen & F_C) != 0)
        return CIO_EPROTO;
    if (format == 1) {
        /* versions were seqs: a format-1 record has no version fields of its own, nor bucket ops */
        if ((seen & (F_H | F_PH | F_PO | F_C | F_M | F_MP | F_ME)) != 0 || r.op > LOGREC_PURGE)
            return CIO_EPROTO;
        r.hlc = r.seq;
        if (r.hlc == 0) /* seqs start at 1: no record has version 0 */
            return CIO_EPROTO;
    } else if ((seen & F_H) == 0 || r.hlc == 0 || (r.parent_hlc == 0) != (r.parent_origin_len == 0)) {
        return CIO_EPROTO;
    }
    /* Absent strings are "" rather than NULL, so callers may print them. */
    if (r.key == NULL)
        r.key = "";
    if (r.content_type == NULL)
        r.content_type = "";
    if (r.parent_origin == NULL)
        r.parent_origin = "";
    if (r.meta == NULL)
        r.meta = (const uint8_t *)"";
    *out = r;
    return 0;
}
