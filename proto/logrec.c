/* logrec.c - the replication log record codec: msgpack-c encoder, bounded zero-copy decoder. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "logrec.h"

/* A record has 10 known fields; the cap leaves room for fields that later
 * versions may add while bounding the work a hostile record can cause. */
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
};

#define REQ_COMMON (F_V | F_SEQ | F_OP | F_B | F_MT | F_O)
#define REQ_PUT (REQ_COMMON | F_K | F_SZ | F_ET)
#define REQ_DELETE (REQ_COMMON | F_K)
#define REQ_PURGE (REQ_COMMON)
#define PUT_ONLY (F_SZ | F_ET | F_CT)

const char *logrec_op_name(logrec_op_t op)
{
    switch (op) {
    case LOGREC_PUT:
        return "PUT";
    case LOGREC_DELETE:
        return "DELETE";
    case LOGREC_PURGE:
        return "PURGE";
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
    if (r->op == LOGREC_PURGE) {
        snprintf(buf, cap, "%" PRId64 "-%.*s-*", r->mtime_ms, blen, blen ? r->bucket : "");
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

static int logrec_check(const logrec_t *r)
{
    static const uint8_t zero_etag[16];

    if (r->op != LOGREC_PUT && r->op != LOGREC_DELETE && r->op != LOGREC_PURGE)
        return CIO_EINVAL;
    if (!str_ok(r->bucket, r->bucket_len, 1, LOGREC_BUCKET_MAX) || !str_ok(r->origin, r->origin_len, 1, LOGREC_ORIGIN_MAX))
        return CIO_EINVAL;
    if (r->op == LOGREC_PURGE) {
        if (r->key_len != 0)
            return CIO_EINVAL;
    } else if (!str_ok(r->key, r->key_len, 1, LOGREC_KEY_MAX)) {
        return CIO_EINVAL;
    }
    if (r->op == LOGREC_PUT) {
        if (!str_ok(r->content_type, r->content_type_len, 0, LOGREC_CTYPE_MAX))
            return CIO_EINVAL;
    } else if (r->size != 0 || r->content_type_len != 0 || memcmp(r->etag, zero_etag, sizeof(zero_etag)) != 0) {
        /* These fields are not encoded for DELETE/PURGE: refuse rather than drop them silently. */
        return CIO_EINVAL;
    }
    return 0;
}

static int pack_key(msgpack_packer *pk, const char *k)
{
    return msgpack_pack_str_with_body(pk, k, strlen(k));
}

static int pack_str_field(msgpack_packer *pk, const char *k, const char *s, size_t len)
{
    if (pack_key(pk, k) != 0)
        return -1;
    /* msgpack_pack_str_body with length 0 would call the writer with a NULL pointer. */
    if (msgpack_pack_str(pk, len) != 0)
        return -1;
    return len == 0 ? 0 : msgpack_pack_str_body(pk, s, len);
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

    size_t n = 7; /* v, seq, op, b, mt, o, + k */
    if (r->op == LOGREC_PURGE)
        n = 6;
    else if (r->op == LOGREC_PUT)
        n += 3; /* sz, et, ct */

    if (msgpack_pack_map(&pk, n) != 0)
        goto fail;
    if (pack_key(&pk, "v") != 0 || msgpack_pack_uint64(&pk, LOGREC_FORMAT_VERSION) != 0)
        goto fail;
    if (pack_key(&pk, "seq") != 0 || msgpack_pack_uint64(&pk, r->seq) != 0)
        goto fail;
    if (pack_key(&pk, "op") != 0 || msgpack_pack_uint64(&pk, (uint64_t)r->op) != 0)
        goto fail;
    if (pack_str_field(&pk, "b", r->bucket, r->bucket_len) != 0)
        goto fail;
    if (r->op != LOGREC_PURGE && pack_str_field(&pk, "k", r->key, r->key_len) != 0)
        goto fail;
    if (r->op == LOGREC_PUT) {
        if (pack_key(&pk, "sz") != 0 || msgpack_pack_uint64(&pk, r->size) != 0)
            goto fail;
        if (pack_key(&pk, "et") != 0 || msgpack_pack_bin_with_body(&pk, r->etag, sizeof(r->etag)) != 0)
            goto fail;
        if (pack_str_field(&pk, "ct", r->content_type, r->content_type_len) != 0)
            goto fail;
    }
    if (pack_key(&pk, "mt") != 0 || msgpack_pack_int64(&pk, r->mtime_ms) != 0)
        goto fail;
    if (pack_str_field(&pk, "o", r->origin, r->origin_len) != 0)
        goto fail;
    return 0;

fail:
    /* The only failure of msgpack_sbuffer_write is realloc; drop the partial record. */
    out->size = start;
    return CIO_ENOMEM;
}

/* ---- decoding ----
 *
 * msgpack_unpack_next does reference str/bin in the input, but it allocates
 * each map/array from its header count before reading the elements (a 5-byte
 * map32 header makes it allocate gigabytes). So the decoder walks the bytes
 * itself: no allocation, every length checked against what is left. */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} rd_t;

static size_t rd_left(const rd_t *rd)
{
    return (size_t)(rd->end - rd->p);
}

static int rd_be(rd_t *rd, size_t n, uint64_t *v)
{
    if (rd_left(rd) < n)
        return CIO_EPROTO;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | rd->p[i];
    rd->p += n;
    *v = x;
    return 0;
}

static int rd_skip(rd_t *rd, uint64_t n)
{
    if (rd_left(rd) < n)
        return CIO_EPROTO;
    rd->p += n;
    return 0;
}

/* Reads an integer of any msgpack int format. *neg is set when the value is
 * negative (then *u holds it as a two's-complement int64). */
static int rd_int(rd_t *rd, uint64_t *u, int *neg)
{
    if (rd_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    uint64_t v;
    int err;
    *neg = 0;
    if (t <= 0x7f) {
        *u = t;
        return 0;
    }
    if (t >= 0xe0) {
        *u = (uint64_t)(int64_t)(int8_t)t;
        *neg = 1;
        return 0;
    }
    switch (t) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if ((err = rd_be(rd, (size_t)1 << (t - 0xcc), &v)) != 0)
            return err;
        *u = v;
        return 0;
    case 0xd0:
        if ((err = rd_be(rd, 1, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int8_t)(uint8_t)v;
        break;
    case 0xd1:
        if ((err = rd_be(rd, 2, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int16_t)(uint16_t)v;
        break;
    case 0xd2:
        if ((err = rd_be(rd, 4, &v)) != 0)
            return err;
        *u = (uint64_t)(int64_t)(int32_t)(uint32_t)v;
        break;
    case 0xd3:
        if ((err = rd_be(rd, 8, &v)) != 0)
            return err;
        *u = v;
        break;
    default:
        return CIO_EPROTO;
    }
    *neg = (int64_t)*u < 0;
    return 0;
}

static int rd_uint(rd_t *rd, uint64_t *v)
{
    int neg, err = rd_int(rd, v, &neg);
    if (err != 0)
        return err;
    return neg ? CIO_EPROTO : 0;
}

static int rd_int64(rd_t *rd, int64_t *v)
{
    uint64_t u;
    int neg, err = rd_int(rd, &u, &neg);
    if (err != 0)
        return err;
    if (!neg && u > (uint64_t)INT64_MAX)
        return CIO_EPROTO;
    *v = (int64_t)u;
    return 0;
}

/* Reads a str (bin when `bin`) header and body; *s points into the input. */
static int rd_raw(rd_t *rd, int bin, const char **s, size_t *len, size_t max)
{
    if (rd_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    uint64_t n;
    int err = 0;
    if (!bin && t >= 0xa0 && t <= 0xbf)
        n = t & 0x1f;
    else if (!bin && t >= 0xd9 && t <= 0xdb)
        err = rd_be(rd, (size_t)1 << (t - 0xd9), &n);
    else if (bin && t >= 0xc4 && t <= 0xc6)
        err = rd_be(rd, (size_t)1 << (t - 0xc4), &n);
    else
        return CIO_EPROTO;
    if (err != 0)
        return err;
    if (n > max || n > rd_left(rd))
        return CIO_EPROTO;
    *s = (const char *)rd->p;
    *len = (size_t)n;
    rd->p += n;
    return 0;
}

/* Reads a map header; *n is its entry count. */
static int rd_map(rd_t *rd, uint64_t *n)
{
    if (rd_left(rd) < 1)
        return CIO_EPROTO;
    uint8_t t = *rd->p++;
    if (t >= 0x80 && t <= 0x8f) {
        *n = t & 0x0f;
        return 0;
    }
    if (t == 0xde)
        return rd_be(rd, 2, n);
    if (t == 0xdf)
        return rd_be(rd, 4, n);
    return CIO_EPROTO;
}

/* Skips one value of any type. Nesting is handled by counting the values
 * still to skip instead of recursing; each value takes at least one byte, so
 * a count above the bytes left is already malformed and the walk is O(len). */
static int rd_skip_value(rd_t *rd)
{
    uint64_t pending = 1;
    while (pending > 0) {
        if (pending > rd_left(rd))
            return CIO_EPROTO;
        pending--;
        uint8_t t = *rd->p++;
        uint64_t n;
        int err = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
            continue; /* fixint, nil, bool */
        if (t >= 0x80 && t <= 0x8f) {
            pending += 2u * (t & 0x0f);
            continue;
        }
        if (t >= 0x90 && t <= 0x9f) {
            pending += t & 0x0f;
            continue;
        }
        if (t >= 0xa0 && t <= 0xbf) {
            err = rd_skip(rd, t & 0x1f);
        } else {
            switch (t) {
            case 0xc4: /* bin 8/16/32 */
            case 0xc5:
            case 0xc6:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xc4), &n)) == 0)
                    err = rd_skip(rd, n);
                break;
            case 0xd9: /* str 8/16/32 */
            case 0xda:
            case 0xdb:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xd9), &n)) == 0)
                    err = rd_skip(rd, n);
                break;
            case 0xc7: /* ext 8/16/32: length, type byte, data */
            case 0xc8:
            case 0xc9:
                if ((err = rd_be(rd, (size_t)1 << (t - 0xc7), &n)) == 0)
                    err = rd_skip(rd, n + 1);
                break;
            case 0xca: /* float 32/64 */
                err = rd_skip(rd, 4);
                break;
            case 0xcb:
                err = rd_skip(rd, 8);
                break;
            case 0xcc: /* uint/int 8..64 */
            case 0xcd:
            case 0xce:
            case 0xcf:
                err = rd_skip(rd, (uint64_t)1 << (t - 0xcc));
                break;
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3:
                err = rd_skip(rd, (uint64_t)1 << (t - 0xd0));
                break;
            case 0xd4: /* fixext 1/2/4/8/16: type byte + data */
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                err = rd_skip(rd, 1 + ((uint64_t)1 << (t - 0xd4)));
                break;
            case 0xdc: /* array 16/32 */
            case 0xdd:
                if ((err = rd_be(rd, t == 0xdc ? 2 : 4, &n)) == 0)
                    pending += n;
                break;
            case 0xde: /* map 16/32 */
            case 0xdf:
                if ((err = rd_be(rd, t == 0xde ? 2 : 4, &n)) == 0)
                    pending += 2 * n;
                break;
            default: /* 0xc1: never used */
                return CIO_EPROTO;
            }
        }
        if (err != 0)
            return err;
    }
    return 0;
}

static int key_is(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

/* Decodes the value of one map entry whose key is k[0..klen). Sets the
 * field's bit in *seen; a known key seen twice is malformed. */
static int decode_field(rd_t *rd, const char *k, size_t klen, logrec_t *r, unsigned *seen)
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
    else
        return rd_skip_value(rd); /* forward compatibility */

    if (*seen & bit)
        return CIO_EPROTO;
    *seen |= bit;

    switch (bit) {
    case F_V:
        if ((err = rd_uint(rd, &u)) != 0)
            return err;
        /* Refuse a newer format: it may change the meaning of known fields. */
        if (u < 1 || u > LOGREC_FORMAT_VERSION)
            return CIO_EPROTO;
        return 0;
    case F_SEQ:
        return rd_uint(rd, &r->seq);
    case F_OP:
        if ((err = rd_uint(rd, &u)) != 0)
            return err;
        if (u != LOGREC_PUT && u != LOGREC_DELETE && u != LOGREC_PURGE)
            return CIO_EPROTO;
        r->op = (logrec_op_t)u;
        return 0;
    case F_B:
        return rd_raw(rd, 0, &r->bucket, &r->bucket_len, LOGREC_BUCKET_MAX);
    case F_K:
        return rd_raw(rd, 0, &r->key, &r->key_len, LOGREC_KEY_MAX);
    case F_SZ:
        return rd_uint(rd, &r->size);
    case F_ET:
        if ((err = rd_raw(rd, 1, &s, &n, sizeof(r->etag))) != 0)
            return err;
        if (n != sizeof(r->etag))
            return CIO_EPROTO;
        memcpy(r->etag, s, sizeof(r->etag));
        return 0;
    case F_CT:
        return rd_raw(rd, 0, &r->content_type, &r->content_type_len, LOGREC_CTYPE_MAX);
    case F_MT:
        return rd_int64(rd, &r->mtime_ms);
    default: /* F_O */
        return rd_raw(rd, 0, &r->origin, &r->origin_len, LOGREC_ORIGIN_MAX);
    }
}

int logrec_decode(const char *buf, size_t len, logrec_t *out)
{
    if (buf == NULL || out == NULL)
        return CIO_EPROTO;

    /* Decode into a local so that *out is untouched on error. */
    logrec_t r;
    memset(&r, 0, sizeof(r));
    rd_t rd = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    uint64_t n;
    unsigned seen = 0;
    int err;

    if ((err = rd_map(&rd, &n)) != 0)
        return err;
    if (n > LOGREC_MAP_MAX)
        return CIO_EPROTO;
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if ((err = rd_raw(&rd, 0, &k, &klen, LOGREC_FIELD_NAME_MAX)) != 0)
            return err;
        if ((err = decode_field(&rd, k, klen, &r, &seen)) != 0)
            return err;
    }
    if (rd_left(&rd) != 0)
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
    if (r.op == LOGREC_PURGE) {
        if (r.key_len != 0)
            return CIO_EPROTO;
    } else if (r.key_len == 0) {
        return CIO_EPROTO;
    }
    if (r.op != LOGREC_PUT && (seen & PUT_ONLY) != 0)
        return CIO_EPROTO;
    /* Absent strings are "" rather than NULL, so callers may print them. */
    if (r.key == NULL)
        r.key = "";
    if (r.content_type == NULL)
        r.content_type = "";
    *out = r;
    return 0;
}
