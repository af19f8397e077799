/* test_logrec.c - unit tests of the replication log record codec (proto/logrec.c). */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proto/logrec.h"
#include "testutil.h"

static const uint8_t sample_etag[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
                                        0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e};

static char long_key[LOGREC_KEY_MAX + 2];
static char long_bucket[LOGREC_BUCKET_MAX + 2];
static char long_ctype[LOGREC_CTYPE_MAX + 2];
static char long_origin[LOGREC_ORIGIN_MAX + 2];

static void init_long_strings(void)
{
    memset(long_key, 'k', sizeof(long_key) - 1);
    memset(long_bucket, 'b', sizeof(long_bucket) - 1);
    memset(long_ctype, 'c', sizeof(long_ctype) - 1);
    memset(long_origin, 'o', sizeof(long_origin) - 1);
}

static logrec_t sample(logrec_op_t op)
{
    logrec_t r;
    memset(&r, 0, sizeof(r));
    r.seq = 42;
    r.hlc = 42;
    r.op = op;
    r.bucket = "mybucket";
    r.bucket_len = 8;
    r.mtime_ms = 1701234567890;
    r.origin = "site-a";
    r.origin_len = 6;
    if (!logrec_op_bucket_only(op)) {
        r.key = "myfile";
        r.key_len = 6;
    }
    if (op == LOGREC_PUT) {
        r.size = 12345;
        memcpy(r.etag, sample_etag, sizeof(r.etag));
        r.content_type = "text/plain";
        r.content_type_len = 10;
    }
    return r;
}

/* Decodes from an exact-size heap copy so that valgrind/ASan see any read past the end. */
static int decode_copy(const void *data, size_t len, logrec_t *r)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, data, len);
    int rc = logrec_decode(copy, len, r);
    free(copy);
    return rc;
}

static int str_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    uintptr_t lo = (uintptr_t)buf, hi = (uintptr_t)buf + len, q = (uintptr_t)p;
    return q >= lo && q + n <= hi;
}

static void check_same(const logrec_t *a, const logrec_t *b)
{
    CHECK(a->seq == b->seq);
    CHECK_EQ_INT(a->op, b->op);
    CHECK(str_eq(a->bucket, a->bucket_len, b->bucket, b->bucket_len));
    CHECK(str_eq(a->key, a->key_len, b->key, b->key_len));
    CHECK(a->size == b->size);
    CHECK(memcmp(a->etag, b->etag, sizeof(a->etag)) == 0);
    CHECK(str_eq(a->content_type, a->content_type_len, b->content_type, b->content_type_len));
    CHECK(a->mtime_ms == b->mtime_ms);
    CHECK(str_eq(a->origin, a->origin_len, b->origin, b->origin_len));
    CHECK(vctx_equal(&a->ctx, &b->ctx));
    CHECK(a->meta_len == b->meta_len && (a->meta_len == 0 || memcmp(a->meta, b->meta, a->meta_len) == 0));
}

/* Encodes r, decodes it back, checks every field, the zero-copy pointers, and
 * that every strict prefix of the encoding is refused. */
static void roundtrip(const logrec_t *r)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(r, &sb), 0);

    logrec_t d;
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    check_same(r, &d);
    CHECK(d.key != NULL && d.content_type != NULL);
    CHECK(inside(d.bucket, d.bucket_len, sb.data, sb.size));
    CHECK(inside(d.origin, d.origin_len, sb.data, sb.size));
    if (d.key_len > 0)
        CHECK(inside(d.key, d.key_len, sb.data, sb.size));
    if (d.content_type_len > 0)
        CHECK(inside(d.content_type, d.content_type_len, sb.data, sb.size));

    int bad = 0;
    for (size_t n = 0; n < sb.size; n++)
        if (decode_copy(sb.data, n, &d) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_put(void)
{
    logrec_t r = sample(LOGREC_PUT);
    roundtrip(&r);

    r.content_type = "";
    r.content_type_len = 0;
    roundtrip(&r);
    r.content_type = NULL; /* NULL with length 0 is allowed */
    roundtrip(&r);

    r = sample(LOGREC_PUT);
    r.key = long_key;
    r.key_len = LOGREC_KEY_MAX;
    r.bucket = long_bucket;
    r.bucket_len = LOGREC_BUCKET_MAX;
    r.content_type = long_ctype;
    r.content_type_len = LOGREC_CTYPE_MAX;
    r.origin = long_origin;
    r.origin_len = LOGREC_ORIGIN_MAX;
    r.seq = UINT64_MAX;
    r.size = UINT64_MAX;
    r.mtime_ms = INT64_MAX;
    roundtrip(&r);

    r = sample(LOGREC_PUT);
    r.seq = 0;
    r.size = 0;
    r.mtime_ms = -1;
    memset(r.etag, 0, sizeof(r.etag));
    r.bucket = "a";
    r.bucket_len = 1;
    r.key = "k";
    r.key_len = 1;
    r.origin = "s";
    r.origin_len = 1;
    roundtrip(&r);

    r.mtime_ms = INT64_MIN;
    roundtrip(&r);
    r.mtime_ms = -129; /* int16 */
    roundtrip(&r);
    r.mtime_ms = -40000; /* int32 */
    roundtrip(&r);
    r.seq = 0x100000000ull; /* uint64 */
    r.mtime_ms = 255;       /* uint8 */
    roundtrip(&r);
}

static void test_roundtrip_delete_purge(void)
{
    logrec_t r = sample(LOGREC_DELETE);
    roundtrip(&r);
    r.seq = UINT64_MAX;
    r.mtime_ms = -1701234567890;
    r.key = long_key;
    r.key_len = LOGREC_KEY_MAX;
    roundtrip(&r);

    r = sample(LOGREC_PURGE);
    roundtrip(&r);
    r.seq = 0;
    r.bucket = long_bucket;
    r.bucket_len = LOGREC_BUCKET_MAX;
    roundtrip(&r);

    /* The decoded PURGE has an empty, non-NULL key. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    r = sample(LOGREC_PURGE);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    logrec_t d;
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK(d.key != NULL && d.key_len == 0);
    CHECK(d.size == 0 && d.content_type_len == 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A DELETE record spelled out byte by byte: pins the wire format. */
static void test_golden_bytes(void)
{
    static const uint8_t golden[] = {
        0x88,                                    /* map, 8 entries */
        0xa1, 'v', 0x02,                         /* v: 2 */
        0xa3, 's', 'e',  'q',  0xcd, 0x01, 0x00, /* seq: 256 */
        0xa1, 'h', 0xcd, 0x02, 0x00,             /* h: 512 */
        0xa2, 'o', 'p',  0x02,                   /* op: DELETE */
        0xa1, 'b', 0xa3, 'b',  'k',  't',        /* b: "bkt" */
        0xa1, 'k', 0xa1, 'x',                    /* k: "x" */
        0xa2, 'm', 't',  0xff,                   /* mt: -1 */
        0xa1, 'o', 0xa1, 's',                    /* o: "s" */
    };
    logrec_t r;
    memset(&r, 0, sizeof(r));
    r.seq = 256;
    r.hlc = 512;
    r.op = LOGREC_DELETE;
    r.bucket = "bkt";
    r.bucket_len = 3;
    r.key = "x";
    r.key_len = 1;
    r.mtime_ms = -1;
    r.origin = "s";
    r.origin_len = 1;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(sb.size, sizeof(golden));
    CHECK(sb.size == sizeof(golden) && memcmp(sb.data, golden, sizeof(golden)) == 0);
    msgpack_sbuffer_destroy(&sb);

    logrec_t d;
    CHECK_EQ_INT(decode_copy(golden, sizeof(golden), &d), 0);
    CHECK(d.seq == 256 && d.hlc == 512 && d.op == LOGREC_DELETE && d.mtime_ms == -1);
    CHECK(d.parent_hlc == 0 && d.parent_origin != NULL && d.parent_origin_len == 0);
}

static void test_encode_appends(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    logrec_t a = sample(LOGREC_PUT), b = sample(LOGREC_PURGE), d;
    CHECK_EQ_INT(logrec_encode(&a, &sb), 0);
    size_t first = sb.size;
    CHECK_EQ_INT(logrec_encode(&b, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, first, &d), 0);
    check_same(&a, &d);
    CHECK_EQ_INT(logrec_decode(sb.data + first, sb.size - first, &d), 0);
    check_same(&b, &d);
    /* Two records in one buffer are trailing bytes for the first. */
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}

static void test_encode_invalid(void)
{
    struct {
        const char *what;
        logrec_op_t op;
        int field; /* which field to break */
    } cases[] = {
        {"op 0", LOGREC_PUT, 0},
        {"op 4", LOGREC_PUT, 1},
        {"bucket empty", LOGREC_PUT, 2},
        {"bucket 64", LOGREC_DELETE, 3},
        {"bucket NULL", LOGREC_PURGE, 4},
        {"key empty", LOGREC_PUT, 5},
        {"key empty", LOGREC_DELETE, 5},
        {"key 1025", LOGREC_PUT, 6},
        {"key NULL", LOGREC_DELETE, 7},
        {"purge key", LOGREC_PURGE, 8},
        {"ctype 256", LOGREC_PUT, 9},
        {"ctype NULL", LOGREC_PUT, 10},
        {"origin empty", LOGREC_PUT, 11},
        {"origin 256", LOGREC_PURGE, 12},
        {"delete size", LOGREC_DELETE, 13},
        {"delete etag", LOGREC_DELETE, 14},
        {"purge ctype", LOGREC_PURGE, 15},
        {"purge size", LOGREC_PURGE, 13},
    };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    logrec_t ok = sample(LOGREC_PUT);
    CHECK_EQ_INT(logrec_encode(&ok, &sb), 0);
    size_t before = sb.size;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        logrec_t r = sample(cases[i].op);
        switch (cases[i].field) {
        case 0:
            r.op = (logrec_op_t)0;
            break;
        case 1:
            r.op = (logrec_op_t)4;
            break;
        case 2:
            r.bucket_len = 0;
            break;
        case 3:
            r.bucket = long_bucket;
            r.bucket_len = LOGREC_BUCKET_MAX + 1;
            break;
        case 4:
            r.bucket = NULL;
            break;
        case 5:
            r.key_len = 0;
            break;
        case 6:
            r.key = long_key;
            r.key_len = LOGREC_KEY_MAX + 1;
            break;
        case 7:
            r.key = NULL;
            break;
        case 8:
            r.key = "x";
            r.key_len = 1;
            break;
        case 9:
            r.content_type = long_ctype;
            r.content_type_len = LOGREC_CTYPE_MAX + 1;
            break;
        case 10:
            r.content_type = NULL;
            break;
        case 11:
            r.origin_len = 0;
            break;
        case 12:
            r.origin = long_origin;
            r.origin_len = LOGREC_ORIGIN_MAX + 1;
            break;
        case 13:
            r.size = 1;
            break;
        case 14:
            r.etag[15] = 1;
            break;
        case 15:
            r.content_type = "a";
            r.content_type_len = 1;
            break;
        }
        int rc = logrec_encode(&r, &sb);
        if (rc != CIO_EINVAL)
            fprintf(stderr, "  encode case '%s' gave %d\n", cases[i].what, rc);
        CHECK_EQ_INT(rc, CIO_EINVAL);
        CHECK_EQ_INT(sb.size, before); /* nothing appended */
    }
    CHECK_EQ_INT(logrec_encode(NULL, &sb), CIO_EINVAL);
    CHECK_EQ_INT(logrec_encode(&ok, NULL), CIO_EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- hand-built records ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} builder_t;

static void key(builder_t *b, const char *k)
{
    (void)msgpack_pack_str_with_body(&b->pk, k, strlen(k));
}

static void str(builder_t *b, const char *s, size_t n)
{
    (void)msgpack_pack_str(&b->pk, n);
    if (n)
        (void)msgpack_pack_str_body(&b->pk, s, n);
}

/* Starts a valid record of `op` whose map header counts `extra` more
 * entries than written, and leaves out the field named `skip` (may be NULL).
 * The caller then packs `extra` key/value pairs. Keys in a fixed order. */
static void build(builder_t *b, logrec_op_t op, const char *skip, size_t extra)
{
    static const char *const put_keys[] = {"v", "seq", "op", "b", "k", "sz", "et", "ct", "mt", "o"};
    static const char *const del_keys[] = {"v", "seq", "op", "b", "k", "mt", "o"};
    static const char *const purge_keys[] = {"v", "seq", "op", "b", "mt", "o"};
    const char *const *keys = op == LOGREC_PUT ? put_keys : op == LOGREC_DELETE ? del_keys : purge_keys;
    size_t n = op == LOGREC_PUT ? 10 : op == LOGREC_DELETE ? 7 : 6;

    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    (void)msgpack_pack_map(&b->pk, n - (skip != NULL) + extra);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i];
        if (skip != NULL && strcmp(k, skip) == 0)
            continue;
        key(b, k);
        if (strcmp(k, "v") == 0)
            (void)msgpack_pack_uint64(&b->pk, 1);
        else if (strcmp(k, "seq") == 0)
            (void)msgpack_pack_uint64(&b->pk, 7);
        else if (strcmp(k, "op") == 0)
            (void)msgpack_pack_uint64(&b->pk, (uint64_t)op);
        else if (strcmp(k, "b") == 0)
            str(b, "bkt", 3);
        else if (strcmp(k, "k") == 0)
            str(b, "a/b", 3);
        else if (strcmp(k, "sz") == 0)
            (void)msgpack_pack_uint64(&b->pk, 3);
        else if (strcmp(k, "et") == 0)
            (void)msgpack_pack_bin_with_body(&b->pk, sample_etag, 16);
        else if (strcmp(k, "ct") == 0)
            str(b, "text/plain", 10);
        else if (strcmp(k, "mt") == 0)
            (void)msgpack_pack_int64(&b->pk, 1000);
        else
            str(b, "site", 4);
    }
}

static int finish(builder_t *b, logrec_t *r)
{
    int rc = decode_copy(b->sb.data, b->sb.size, r);
    msgpack_sbuffer_destroy(&b->sb);
    return rc;
}

static void test_builder_baseline(void)
{
    builder_t b;
    logrec_t r;
    build(&b, LOGREC_PUT, NULL, 0);
    CHECK_EQ_INT(finish(&b, &r), 0);
    build(&b, LOGREC_DELETE, NULL, 0);
    CHECK_EQ_INT(finish(&b, &r), 0);
    build(&b, LOGREC_PURGE, NULL, 0);
    CHECK_EQ_INT(finish(&b, &r), 0);
    CHECK(r.seq == 7 && r.op == LOGREC_PURGE && r.mtime_ms == 1000 && r.bucket_len == 3 && r.origin_len == 4);

    /* "ct" is optional for PUT. */
    build(&b, LOGREC_PUT, "ct", 0);
    CHECK_EQ_INT(finish(&b, &r), 0);
    CHECK(r.content_type != NULL && r.content_type_len == 0);

    /* PURGE may carry an empty key. */
    build(&b, LOGREC_PURGE, NULL, 1);
    key(&b, "k");
    str(&b, "", 0);
    CHECK_EQ_INT(finish(&b, &r), 0);
    CHECK(r.key_len == 0);
}

/* A format-2 bucket record (op `op`) with `extra` more map entries the caller packs. */
static void build_bucket(builder_t *b, logrec_op_t op, size_t extra)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    (void)msgpack_pack_map(&b->pk, 7 + extra);
    key(b, "v");
    (void)msgpack_pack_uint64(&b->pk, 2);
    key(b, "seq");
    (void)msgpack_pack_uint64(&b->pk, 5);
    key(b, "h");
    (void)msgpack_pack_uint64(&b->pk, 99);
    key(b, "op");
    (void)msgpack_pack_uint64(&b->pk, (uint64_t)op);
    key(b, "b");
    str(b, "bkt", 3);
    key(b, "mt");
    (void)msgpack_pack_int64(&b->pk, 1000);
    key(b, "o");
    str(b, "site", 4);
}

/* Bucket creation and deletion: format 2, a bucket, a version, an origin and
 * an mtime; no key, size, ETag or content type, in either direction. */
static void test_bucket_ops(void)
{
    for (int op = LOGREC_BUCKET_CREATE; op <= LOGREC_BUCKET_DELETE; op++) {
        logrec_t r = sample((logrec_op_t)op), d;
        r.hlc = 0x0123456789abULL << 16 | 7;
        roundtrip(&r);
        r.parent_hlc = 5;
        r.parent_origin = "site-b";
        r.parent_origin_len = 6;
        roundtrip(&r);

        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        r = sample((logrec_op_t)op);
        CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
        CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
        CHECK(d.op == (logrec_op_t)op && d.hlc == 42 && d.key != NULL && d.key_len == 0 && d.size == 0);
        msgpack_sbuffer_destroy(&sb);

        /* the encoder refuses what a bucket op does not carry */
        msgpack_sbuffer_init(&sb);
        r = sample((logrec_op_t)op);
        r.key = "k";
        r.key_len = 1;
        CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
        r = sample((logrec_op_t)op);
        r.size = 1;
        CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
        r = sample((logrec_op_t)op);
        r.etag[0] = 1;
        CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
        r = sample((logrec_op_t)op);
        r.content_type = "a";
        r.content_type_len = 1;
        CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
        CHECK_EQ_INT(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);

        /* the decoder: the hand-built record decodes, and refuses each such field, even an empty key */
        builder_t b;
        build_bucket(&b, (logrec_op_t)op, 0);
        CHECK_EQ_INT(finish(&b, &d), 0);
        CHECK(d.op == (logrec_op_t)op && d.hlc == 99 && d.seq == 5 && d.bucket_len == 3 && d.key_len == 0);
        static const char *const fields[] = {"k", "k", "sz", "et", "ct"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            build_bucket(&b, (logrec_op_t)op, 1);
            key(&b, fields[i]);
            if (i == 0)
                str(&b, "x", 1);
            else if (i == 1)
                str(&b, "", 0);
            else if (i == 2)
                (void)msgpack_pack_uint64(&b.pk, 0);
            else if (i == 3)
                (void)msgpack_pack_bin_with_body(&b.pk, sample_etag, 16);
            else
                str(&b, "", 0);
            CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
        }
        /* format 1 never had them: a format-1 bucket op is malformed */
        build(&b, (logrec_op_t)op, NULL, 0);
        CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
        build(&b, LOGREC_PURGE, NULL, 0);
        CHECK_EQ_INT(finish(&b, &d), 0);
    }
    char id[LOGREC_EVENT_ID_MAX];
    logrec_t r = sample(LOGREC_BUCKET_CREATE);
    logrec_event_id(&r, id, sizeof(id));
    CHECK_EQ_STR(id, "1701234567890-mybucket-+");
    r.op = LOGREC_BUCKET_DELETE;
    logrec_event_id(&r, id, sizeof(id));
    CHECK_EQ_STR(id, "1701234567890-mybucket--");
}

/* A format-1 record (written before versions were clocks) still decodes:
 * its version is its seq, and it has no parent. */
static void test_format1_record(void)
{
    static const uint8_t v1[] = {
        0x87, 0xa1, 'v', 0x01, 0xa3, 's', 'e',  'q', 0xcd, 0x01, 0x00, 0xa2, 'o',  'p', 0x02, 0xa1, 'b',
        0xa3, 'b',  'k', 't',  0xa1, 'k', 0xa1, 'x', 0xa2, 'm',  't',  0xff, 0xa1, 'o', 0xa1, 's',
    };
    logrec_t d;
    CHECK_EQ_INT(decode_copy(v1, sizeof(v1), &d), 0);
    CHECK(d.seq == 256 && d.hlc == 256 && d.parent_hlc == 0 && d.parent_origin_len == 0);

    /* seqs start at 1: a format-1 record at seq 0 would have version 0, which no record has */
    builder_t z;
    msgpack_sbuffer_init(&z.sb);
    msgpack_packer_init(&z.pk, &z.sb, msgpack_sbuffer_write);
    (void)msgpack_pack_map(&z.pk, 6);
    key(&z, "v");
    (void)msgpack_pack_uint64(&z.pk, 1);
    key(&z, "seq");
    (void)msgpack_pack_uint64(&z.pk, 0);
    key(&z, "op");
    (void)msgpack_pack_uint64(&z.pk, LOGREC_PURGE);
    key(&z, "b");
    str(&z, "bkt", 3);
    key(&z, "mt");
    (void)msgpack_pack_int64(&z.pk, 1);
    key(&z, "o");
    str(&z, "s", 1);
    CHECK_EQ_INT(finish(&z, &d), CIO_EPROTO);

    /* format 1 has no version fields: one there is malformed */
    builder_t b;
    build(&b, LOGREC_DELETE, NULL, 1);
    key(&b, "h");
    (void)msgpack_pack_uint64(&b.pk, 9);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
}

/* Format 2: "h" is required and non-zero; a parent is a version and a site together. */
static void test_format2_versions(void)
{
    msgpack_sbuffer sb;
    logrec_t r = sample(LOGREC_PUT), d;
    r.hlc = UINT64_MAX - 1;
    r.parent_hlc = 77;
    r.parent_origin = "site-b";
    r.parent_origin_len = 6;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0); /* in place: the strings point into sb */
    CHECK(d.hlc == UINT64_MAX - 1 && d.parent_hlc == 77 && d.parent_origin_len == 6 && memcmp(d.parent_origin, "site-b", 6) == 0);
    msgpack_sbuffer_destroy(&sb);

    /* the encoder refuses a record without a version, or half a parent */
    msgpack_sbuffer_init(&sb);
    r = sample(LOGREC_DELETE);
    r.hlc = 0;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r = sample(LOGREC_DELETE);
    r.parent_hlc = 5;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r = sample(LOGREC_DELETE);
    r.parent_origin = "x";
    r.parent_origin_len = 1;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);

    /* the decoder likewise: a format-2 record without "h", with "h" 0, or half a parent */
    static const char *const bad[] = {"no h", "h 0", "ph only", "po only"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        (void)msgpack_pack_map(&pk, i == 0 ? 6 : 7);
        (void)msgpack_pack_str_with_body(&pk, "v", 1);
        (void)msgpack_pack_uint64(&pk, 2);
        (void)msgpack_pack_str_with_body(&pk, "seq", 3);
        (void)msgpack_pack_uint64(&pk, 3);
        (void)msgpack_pack_str_with_body(&pk, "op", 2);
        (void)msgpack_pack_uint64(&pk, LOGREC_PURGE);
        (void)msgpack_pack_str_with_body(&pk, "b", 1);
        (void)msgpack_pack_str_with_body(&pk, "bkt", 3);
        (void)msgpack_pack_str_with_body(&pk, "mt", 2);
        (void)msgpack_pack_int64(&pk, 1);
        (void)msgpack_pack_str_with_body(&pk, "o", 1);
        (void)msgpack_pack_str_with_body(&pk, "s", 1);
        if (i == 1) {
            (void)msgpack_pack_str_with_body(&pk, "h", 1);
            (void)msgpack_pack_uint64(&pk, 0);
        } else if (i == 2) {
            (void)msgpack_pack_str_with_body(&pk, "ph", 2);
            (void)msgpack_pack_uint64(&pk, 4);
        } else if (i == 3) {
            (void)msgpack_pack_str_with_body(&pk, "po", 2);
            (void)msgpack_pack_str_with_body(&pk, "s", 1);
        }
        if (decode_copy(sb.data, sb.size, &d) != CIO_EPROTO)
            fprintf(stderr, "  format-2 case '%s' decoded\n", bad[i]);
        CHECK_EQ_INT(decode_copy(sb.data, sb.size, &d), CIO_EPROTO);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* A format-2 record of `op` with one more map entry the caller packs. */
static void build2(builder_t *b, logrec_op_t op)
{
    build(b, op, "v", 3);
    key(b, "v");
    (void)msgpack_pack_uint64(&b->pk, 2);
    key(b, "h");
    (void)msgpack_pack_uint64(&b->pk, 9);
}

/* build2 with `keys` keys of the caller's to follow. */
static void build2k(builder_t *b, size_t keys, logrec_op_t op)
{
    build(b, op, "v", 2 + keys);
    key(b, "v");
    (void)msgpack_pack_uint64(&b->pk, 2);
    key(b, "h");
    (void)msgpack_pack_uint64(&b->pk, 9);
}

/* The object's metadata ("m"): round trips on a PUT, absent is none (every record from before it), and
 * only a valid, non-empty blob on a PUT is taken. */
static void test_metadata(void)
{
    objmeta_pair_t pairs[] = {{"Content-Encoding", 16, "gzip", 4}, {"x-amz-meta-colour", 17, "blue", 4}};
    uint8_t blob[OBJMETA_MAX];
    size_t blen;
    msgpack_sbuffer sb;
    logrec_t r = sample(LOGREC_PUT), d;
    builder_t b;

    CHECK_EQ_INT(objmeta_encode(pairs, 2, blob, &blen, NULL), 0);
    r.meta = blob;
    r.meta_len = blen;
    roundtrip(&r);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK(d.meta_len == blen && inside((const char *)d.meta, d.meta_len, sb.data, sb.size));
    msgpack_sbuffer_destroy(&sb);

    /* without metadata: no "m" written, and none decoded (meta is "", not NULL) */
    r = sample(LOGREC_PUT);
    roundtrip(&r);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK(d.meta_len == 0 && d.meta != NULL);
    msgpack_sbuffer_destroy(&sb);

    /* an old PUT without "m", of format 1 and of format 2 */
    build(&b, LOGREC_PUT, NULL, 0);
    CHECK_EQ_INT(finish(&b, &d), 0);
    CHECK(d.meta_len == 0 && d.meta != NULL);
    build(&b, LOGREC_PUT, "v", 2);
    key(&b, "v");
    (void)msgpack_pack_uint64(&b.pk, 2);
    key(&b, "h");
    (void)msgpack_pack_uint64(&b.pk, 9);
    CHECK_EQ_INT(finish(&b, &d), 0);
    CHECK(d.meta_len == 0);

    /* a format-2 PUT with "m" decodes; an empty, invalid or non-bin one, one on a DELETE, one in format 1 do not */
    build2(&b, LOGREC_PUT);
    key(&b, "m");
    (void)msgpack_pack_bin_with_body(&b.pk, blob, blen);
    CHECK_EQ_INT(finish(&b, &d), 0);
    CHECK(d.meta_len == blen);
    build2(&b, LOGREC_PUT);
    key(&b, "m");
    (void)msgpack_pack_bin_with_body(&b.pk, blob, 0);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build2(&b, LOGREC_PUT);
    key(&b, "m");
    (void)msgpack_pack_bin_with_body(&b.pk, "\1A\0\0", 4); /* an upper-case name */
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build2(&b, LOGREC_PUT);
    key(&b, "m");
    str(&b, (const char *)blob, blen);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build2(&b, LOGREC_DELETE);
    key(&b, "m");
    (void)msgpack_pack_bin_with_body(&b.pk, blob, blen);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build(&b, LOGREC_PUT, NULL, 1);
    key(&b, "m");
    (void)msgpack_pack_bin_with_body(&b.pk, blob, blen);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);

    /* the encoder: metadata on a DELETE, or an invalid blob, is refused */
    msgpack_sbuffer_init(&sb);
    r = sample(LOGREC_DELETE);
    r.meta = blob;
    r.meta_len = blen;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r = sample(LOGREC_PUT);
    r.meta = (const uint8_t *)"\1A\0\0";
    r.meta_len = 4;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r.meta = NULL;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A multipart upload's ETag ("mp" part count and "me" MD5 of the parts' MD5s): a PUT's, both or neither, in range. */
static void test_multipart_etag(void)
{
    msgpack_sbuffer sb;
    logrec_t r = sample(LOGREC_PUT), d;
    builder_t b;
    uint8_t md[16];

    memset(md, 0x5a, sizeof(md));
    r.mpu_parts = 4;
    memcpy(r.mpu_md5, md, 16);
    roundtrip(&r);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK(d.mpu_parts == 4 && memcmp(d.mpu_md5, md, 16) == 0);
    msgpack_sbuffer_destroy(&sb);
    /* a plain PUT decodes as none */
    r = sample(LOGREC_PUT);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK_EQ_INT(d.mpu_parts, 0);
    msgpack_sbuffer_destroy(&sb);

    /* the decoder: both halves, a count of 1..10000, 16 bytes, on a PUT of format 2 only */
    build2k(&b, 2, LOGREC_PUT);
    key(&b, "mp");
    (void)msgpack_pack_uint64(&b.pk, 10000);
    key(&b, "me");
    (void)msgpack_pack_bin_with_body(&b.pk, md, 16);
    CHECK_EQ_INT(finish(&b, &d), 0);
    CHECK_EQ_INT(d.mpu_parts, 10000);
    build2(&b, LOGREC_PUT);
    key(&b, "mp");
    (void)msgpack_pack_uint64(&b.pk, 2);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build2(&b, LOGREC_PUT);
    key(&b, "me");
    (void)msgpack_pack_bin_with_body(&b.pk, md, 16);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    for (uint64_t bad = 0; bad <= 10001; bad += 10001) {
        build2k(&b, 2, LOGREC_PUT);
        key(&b, "mp");
        (void)msgpack_pack_uint64(&b.pk, bad);
        key(&b, "me");
        (void)msgpack_pack_bin_with_body(&b.pk, md, 16);
        CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    }
    build2k(&b, 2, LOGREC_PUT);
    key(&b, "mp");
    (void)msgpack_pack_uint64(&b.pk, 2);
    key(&b, "me");
    (void)msgpack_pack_bin_with_body(&b.pk, md, 15);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build2k(&b, 2, LOGREC_DELETE);
    key(&b, "mp");
    (void)msgpack_pack_uint64(&b.pk, 2);
    key(&b, "me");
    (void)msgpack_pack_bin_with_body(&b.pk, md, 16);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    build(&b, LOGREC_PUT, NULL, 2);
    key(&b, "mp");
    (void)msgpack_pack_uint64(&b.pk, 2);
    key(&b, "me");
    (void)msgpack_pack_bin_with_body(&b.pk, md, 16);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO); /* format 1 */

    /* the encoder: on a DELETE, over 10000, an MD5 without a count */
    msgpack_sbuffer_init(&sb);
    r = sample(LOGREC_DELETE);
    r.mpu_parts = 2;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r = sample(LOGREC_PUT);
    r.mpu_parts = 10001;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    r.mpu_parts = 0;
    r.mpu_md5[3] = 1;
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A format-2 PUT whose "c" is the caller's: `pairs` [site, version] pairs. */
static int decode_ctx_pairs(const char *const *sites, const uint64_t *hlcs, size_t pairs, logrec_t *d)
{
    builder_t b;
    build2(&b, LOGREC_PUT);
    key(&b, "c");
    (void)msgpack_pack_array(&b.pk, pairs);
    for (size_t i = 0; i < pairs; i++) {
        (void)msgpack_pack_array(&b.pk, 2);
        str(&b, sites[i], strlen(sites[i]));
        (void)msgpack_pack_uint64(&b.pk, hlcs[i]);
    }
    return finish(&b, d);
}

static void test_context(void)
{
    msgpack_sbuffer sb;
    logrec_t r = sample(LOGREC_PUT), d;

    /* round trip, the floor included, and a record without one decodes empty */
    vctx_add(&r.ctx, "site-b", 6, 500);
    vctx_add(&r.ctx, "site-a", 6, 400);
    roundtrip(&r);
    r.ctx.floor = 100;
    roundtrip(&r);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    CHECK_EQ_INT(logrec_decode(sb.data, sb.size, &d), 0);
    CHECK(d.ctx.floor == 100 && d.ctx.n == 2 && vctx_get(&d.ctx, "site-a", 6) == 400 && vctx_get(&d.ctx, "site-b", 6) == 500 &&
          vctx_get(&d.ctx, "site-c", 6) == 100);
    msgpack_sbuffer_destroy(&sb);
    r = sample(LOGREC_DELETE);
    vctx_add(&r.ctx, "x", 1, 9);
    roundtrip(&r);
    r = sample(LOGREC_PUT);
    roundtrip(&r);

    /* a bucket op carries none: the encoder refuses one, the decoder too */
    msgpack_sbuffer_init(&sb);
    r = sample(LOGREC_PURGE);
    vctx_add(&r.ctx, "x", 1, 9);
    CHECK_EQ_INT(logrec_encode(&r, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    builder_t b;
    build2(&b, LOGREC_PURGE);
    key(&b, "c");
    (void)msgpack_pack_array(&b.pk, 0);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);

    /* the decoder takes only what the encoder writes */
    static const char *const ok_sites[] = {"", "a", "b"};
    static const uint64_t ok_hlcs[] = {5, 6, 7};
    CHECK_EQ_INT(decode_ctx_pairs(ok_sites, ok_hlcs, 3, &d), 0);
    CHECK(d.ctx.floor == 5 && d.ctx.n == 2);
    static const char *const unordered[] = {"b", "a"};
    CHECK_EQ_INT(decode_ctx_pairs(unordered, ok_hlcs + 1, 2, &d), CIO_EPROTO);
    static const char *const twice[] = {"a", "a"};
    CHECK_EQ_INT(decode_ctx_pairs(twice, ok_hlcs + 1, 2, &d), CIO_EPROTO);
    static const char *const floor_late[] = {"a", ""};
    CHECK_EQ_INT(decode_ctx_pairs(floor_late, ok_hlcs + 1, 2, &d), CIO_EPROTO);
    static const uint64_t zero[] = {0};
    CHECK_EQ_INT(decode_ctx_pairs(ok_sites + 1, zero, 1, &d), CIO_EPROTO);
    static const uint64_t below_floor[] = {5, 5};
    CHECK_EQ_INT(decode_ctx_pairs(ok_sites, below_floor, 2, &d), CIO_EPROTO);
    char many[VCTX_MAX + 2][4];
    const char *sites[VCTX_MAX + 2];
    uint64_t hlcs[VCTX_MAX + 2];
    for (size_t i = 0; i < VCTX_MAX + 2; i++) {
        snprintf(many[i], sizeof(many[i]), "s%02zu", i);
        sites[i] = many[i];
        hlcs[i] = 10 + i;
    }
    CHECK_EQ_INT(decode_ctx_pairs(sites, hlcs, VCTX_MAX, &d), 0);
    CHECK_EQ_INT(d.ctx.n, VCTX_MAX);
    CHECK_EQ_INT(decode_ctx_pairs(sites, hlcs, VCTX_MAX + 1, &d), CIO_EPROTO);
    /* an empty one is fine; a format-1 record has none */
    CHECK_EQ_INT(decode_ctx_pairs(sites, hlcs, 0, &d), 0);
    CHECK(d.ctx.n == 0 && d.ctx.floor == 0);
    build(&b, LOGREC_PUT, NULL, 1);
    key(&b, "c");
    (void)msgpack_pack_array(&b.pk, 0);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
    /* a pair that is not [str, uint] */
    build2(&b, LOGREC_PUT);
    key(&b, "c");
    (void)msgpack_pack_array(&b.pk, 1);
    (void)msgpack_pack_array(&b.pk, 3);
    str(&b, "a", 1);
    (void)msgpack_pack_uint64(&b.pk, 1);
    (void)msgpack_pack_uint64(&b.pk, 1);
    CHECK_EQ_INT(finish(&b, &d), CIO_EPROTO);
}

static void test_missing_required(void)
{
    static const char *const put_req[] = {"v", "seq", "op", "b", "k", "sz", "et", "mt", "o"};
    static const char *const del_req[] = {"v", "seq", "op", "b", "k", "mt", "o"};
    static const char *const purge_req[] = {"v", "seq", "op", "b", "mt", "o"};
    builder_t b;
    logrec_t r;
    for (size_t i = 0; i < sizeof(put_req) / sizeof(put_req[0]); i++) {
        build(&b, LOGREC_PUT, put_req[i], 0);
        CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    }
    for (size_t i = 0; i < sizeof(del_req) / sizeof(del_req[0]); i++) {
        build(&b, LOGREC_DELETE, del_req[i], 0);
        CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    }
    for (size_t i = 0; i < sizeof(purge_req) / sizeof(purge_req[0]); i++) {
        build(&b, LOGREC_PURGE, purge_req[i], 0);
        CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    }
}

typedef enum {
    VAL_STR,      /* str of `n` 'x' bytes */
    VAL_BIN,      /* bin of `n` bytes */
    VAL_UINT,     /* smallest uint encoding of n */
    VAL_NEG,      /* -(n) */
    VAL_FIXINT64, /* int64 format (0xd3) of n */
    VAL_FIXUINT8, /* uint8 format (0xcc) of n */
    VAL_NIL,
    VAL_TRUE,
    VAL_DOUBLE,
    VAL_ARRAY,
    VAL_MAP,
} val_kind_t;

static char xs[70000]; /* filler bytes for strings, bins and exts */

static void pack_val(builder_t *b, val_kind_t kind, uint64_t n)
{
    switch (kind) {
    case VAL_STR:
        str(b, xs, (size_t)n);
        break;
    case VAL_BIN:
        (void)msgpack_pack_bin_with_body(&b->pk, xs, (size_t)n);
        break;
    case VAL_UINT:
        (void)msgpack_pack_uint64(&b->pk, n);
        break;
    case VAL_NEG:
        (void)msgpack_pack_int64(&b->pk, -(int64_t)n);
        break;
    case VAL_FIXINT64:
        (void)msgpack_pack_fix_int64(&b->pk, (int64_t)n);
        break;
    case VAL_FIXUINT8:
        (void)msgpack_pack_fix_uint8(&b->pk, (uint8_t)n);
        break;
    case VAL_NIL:
        (void)msgpack_pack_nil(&b->pk);
        break;
    case VAL_TRUE:
        (void)msgpack_pack_true(&b->pk);
        break;
    case VAL_DOUBLE:
        (void)msgpack_pack_double(&b->pk, 1.5);
        break;
    case VAL_ARRAY:
        (void)msgpack_pack_array(&b->pk, 1);
        (void)msgpack_pack_uint64(&b->pk, n);
        break;
    case VAL_MAP:
        (void)msgpack_pack_map(&b->pk, 1);
        key(b, "x");
        (void)msgpack_pack_uint64(&b->pk, n);
        break;
    }
}

/* Replaces field `k` of a valid record of `op` with a value of another kind. */
static void test_field_values(void)
{
    static const struct {
        logrec_op_t op;
        const char *k;
        val_kind_t kind;
        uint64_t n;
        int want;
    } cases[] = {
        {LOGREC_PUT, "v", VAL_UINT, 2, CIO_EPROTO}, /* newer format refused */
        {LOGREC_PUT, "v", VAL_UINT, 0, CIO_EPROTO},
        {LOGREC_PUT, "v", VAL_STR, 1, CIO_EPROTO},
        {LOGREC_PUT, "v", VAL_FIXUINT8, 1, 0},
        {LOGREC_PURGE, "v", VAL_UINT, UINT64_MAX, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_STR, 3, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_NEG, 1, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_NIL, 0, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_DOUBLE, 0, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_ARRAY, 1, CIO_EPROTO},
        {LOGREC_PUT, "seq", VAL_FIXINT64, 5, 0}, /* non-negative int format is fine */
        {LOGREC_DELETE, "seq", VAL_UINT, UINT64_MAX, 0},
        {LOGREC_PUT, "op", VAL_UINT, 0, CIO_EPROTO},
        {LOGREC_PUT, "op", VAL_UINT, 6, CIO_EPROTO},
        {LOGREC_PUT, "op", VAL_UINT, LOGREC_BUCKET_CREATE, CIO_EPROTO}, /* format 1 has no bucket ops */
        {LOGREC_PUT, "op", VAL_NEG, 1, CIO_EPROTO},
        {LOGREC_PUT, "op", VAL_STR, 1, CIO_EPROTO},
        {LOGREC_PUT, "op", VAL_UINT, LOGREC_DELETE, CIO_EPROTO},   /* DELETE with sz/et/ct */
        {LOGREC_DELETE, "op", VAL_UINT, LOGREC_PURGE, CIO_EPROTO}, /* PURGE with a key */
        {LOGREC_PUT, "b", VAL_BIN, 3, CIO_EPROTO},
        {LOGREC_PUT, "b", VAL_UINT, 3, CIO_EPROTO},
        {LOGREC_PUT, "b", VAL_STR, 0, CIO_EPROTO},
        {LOGREC_PUT, "b", VAL_STR, LOGREC_BUCKET_MAX, 0},
        {LOGREC_PUT, "b", VAL_STR, LOGREC_BUCKET_MAX + 1, CIO_EPROTO},
        {LOGREC_PUT, "k", VAL_STR, 0, CIO_EPROTO},
        {LOGREC_DELETE, "k", VAL_STR, 0, CIO_EPROTO},
        {LOGREC_PUT, "k", VAL_STR, LOGREC_KEY_MAX, 0},
        {LOGREC_PUT, "k", VAL_STR, LOGREC_KEY_MAX + 1, CIO_EPROTO},
        {LOGREC_DELETE, "k", VAL_STR, LOGREC_KEY_MAX + 1, CIO_EPROTO},
        {LOGREC_PUT, "k", VAL_BIN, 3, CIO_EPROTO},
        {LOGREC_PUT, "k", VAL_NIL, 0, CIO_EPROTO},
        {LOGREC_PUT, "sz", VAL_NEG, 1, CIO_EPROTO},
        {LOGREC_PUT, "sz", VAL_STR, 1, CIO_EPROTO},
        {LOGREC_PUT, "sz", VAL_UINT, UINT64_MAX, 0},
        {LOGREC_PUT, "et", VAL_STR, 16, CIO_EPROTO},
        {LOGREC_PUT, "et", VAL_BIN, 15, CIO_EPROTO},
        {LOGREC_PUT, "et", VAL_BIN, 17, CIO_EPROTO},
        {LOGREC_PUT, "et", VAL_BIN, 0, CIO_EPROTO},
        {LOGREC_PUT, "et", VAL_BIN, 16, 0},
        {LOGREC_PUT, "ct", VAL_STR, 0, 0},
        {LOGREC_PUT, "ct", VAL_STR, LOGREC_CTYPE_MAX, 0},
        {LOGREC_PUT, "ct", VAL_STR, LOGREC_CTYPE_MAX + 1, CIO_EPROTO},
        {LOGREC_PUT, "ct", VAL_BIN, 3, CIO_EPROTO},
        {LOGREC_PUT, "ct", VAL_NIL, 0, CIO_EPROTO},
        {LOGREC_PUT, "mt", VAL_STR, 3, CIO_EPROTO},
        {LOGREC_PUT, "mt", VAL_DOUBLE, 0, CIO_EPROTO},
        {LOGREC_PUT, "mt", VAL_UINT, (uint64_t)INT64_MAX, 0},
        {LOGREC_PUT, "mt", VAL_UINT, (uint64_t)INT64_MAX + 1, CIO_EPROTO},
        {LOGREC_PUT, "mt", VAL_NEG, 1, 0},
        {LOGREC_PURGE, "mt", VAL_TRUE, 0, CIO_EPROTO},
        {LOGREC_PUT, "o", VAL_STR, 0, CIO_EPROTO},
        {LOGREC_PUT, "o", VAL_STR, LOGREC_ORIGIN_MAX, 0},
        {LOGREC_PUT, "o", VAL_STR, LOGREC_ORIGIN_MAX + 1, CIO_EPROTO},
        {LOGREC_PURGE, "o", VAL_BIN, 4, CIO_EPROTO},
        {LOGREC_PURGE, "o", VAL_MAP, 4, CIO_EPROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        builder_t b;
        logrec_t r;
        build(&b, cases[i].op, cases[i].k, 1);
        key(&b, cases[i].k);
        pack_val(&b, cases[i].kind, cases[i].n);
        int rc = finish(&b, &r);
        if (rc != cases[i].want)
            fprintf(stderr, "  field case %zu (%s kind %d) gave %d\n", i, cases[i].k, (int)cases[i].kind, rc);
        CHECK_EQ_INT(rc, cases[i].want);
    }
}

static void test_put_only_fields(void)
{
    static const char *const put_only[] = {"sz", "et", "ct"};
    for (int op = LOGREC_DELETE; op <= LOGREC_PURGE; op++) {
        for (size_t i = 0; i < 3; i++) {
            builder_t b;
            logrec_t r;
            build(&b, (logrec_op_t)op, NULL, 1);
            key(&b, put_only[i]);
            if (i == 1)
                pack_val(&b, VAL_BIN, 16);
            else if (i == 0)
                pack_val(&b, VAL_UINT, 0);
            else
                pack_val(&b, VAL_STR, 0);
            CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
        }
    }
    builder_t b;
    logrec_t r;
    build(&b, LOGREC_PURGE, NULL, 1);
    key(&b, "k");
    str(&b, "x", 1);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
}

static void test_duplicate_key(void)
{
    static const char *const keys[] = {"v", "seq", "op", "b", "k", "sz", "et", "ct", "mt", "o"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        builder_t b;
        logrec_t r;
        build(&b, LOGREC_PUT, NULL, 1);
        key(&b, keys[i]);
        if (strcmp(keys[i], "et") == 0)
            pack_val(&b, VAL_BIN, 16);
        else if (strcmp(keys[i], "b") == 0 || strcmp(keys[i], "k") == 0 || strcmp(keys[i], "ct") == 0 || strcmp(keys[i], "o") == 0)
            pack_val(&b, VAL_STR, 3);
        else
            pack_val(&b, VAL_UINT, 1);
        CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    }
}

static void test_unknown_keys(void)
{
    builder_t b;
    logrec_t r;

    /* Every kind of value under an unknown key is skipped. */
    build(&b, LOGREC_PUT, NULL, 12);
    key(&b, "zz");
    (void)msgpack_pack_nil(&b.pk);
    key(&b, "z1");
    (void)msgpack_pack_false(&b.pk);
    key(&b, "z2");
    (void)msgpack_pack_float(&b.pk, 2.5f);
    key(&b, "z3");
    (void)msgpack_pack_double(&b.pk, 2.5);
    key(&b, "z4");
    (void)msgpack_pack_int64(&b.pk, INT64_MIN);
    key(&b, "z5");
    (void)msgpack_pack_ext_with_body(&b.pk, "abcd", 4, 7); /* fixext 4 */
    key(&b, "z6");
    (void)msgpack_pack_ext_with_body(&b.pk, xs, 300, 1); /* ext 16 */
    key(&b, "z7");
    pack_val(&b, VAL_BIN, 70000); /* bin 32 */
    key(&b, "z8");
    (void)msgpack_pack_array(&b.pk, 20);
    for (int i = 0; i < 20; i++)
        (void)msgpack_pack_map(&b.pk, 0);
    key(&b, "z9");
    (void)msgpack_pack_map(&b.pk, 2);
    key(&b, "a");
    (void)msgpack_pack_array(&b.pk, 2);
    str(&b, xs, 40);
    (void)msgpack_pack_uint64(&b.pk, UINT64_MAX);
    (void)msgpack_pack_uint64(&b.pk, 5); /* a non-string key inside an unknown value is fine */
    (void)msgpack_pack_nil(&b.pk);
    key(&b, "future_field_with_a_long_name");
    str(&b, xs, 1000);
    key(&b, "");
    (void)msgpack_pack_true(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), 0);
    CHECK(r.seq == 7 && r.content_type_len == 10);
}

static void test_unknown_deep_nesting(void)
{
    /* 100000 nested arrays under an unknown key: skipped without recursion. */
    enum { DEPTH = 100000 };
    builder_t b;
    logrec_t r;
    build(&b, LOGREC_DELETE, NULL, 1);
    key(&b, "deep");
    for (int i = 0; i < DEPTH; i++)
        (void)msgpack_pack_array(&b.pk, 1);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), 0);

    /* The same, one element short. */
    build(&b, LOGREC_DELETE, NULL, 1);
    key(&b, "deep");
    for (int i = 0; i < DEPTH; i++)
        (void)msgpack_pack_array(&b.pk, 1);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
}

static void test_map_bounds(void)
{
    builder_t b;
    logrec_t r;
    char k[8];

    /* 10 known + 22 unknown = 32 entries: accepted. */
    build(&b, LOGREC_PUT, NULL, 22);
    for (int i = 0; i < 22; i++) {
        snprintf(k, sizeof(k), "x%d", i);
        key(&b, k);
        (void)msgpack_pack_nil(&b.pk);
    }
    CHECK_EQ_INT(finish(&b, &r), 0);

    /* 33 entries: refused. */
    build(&b, LOGREC_PUT, NULL, 23);
    for (int i = 0; i < 23; i++) {
        snprintf(k, sizeof(k), "x%d", i);
        key(&b, k);
        (void)msgpack_pack_nil(&b.pk);
    }
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);

    /* Huge declared counts cost nothing. */
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map16[] = {0xde, 0x03, 0xe8, 0xa1, 'v', 0x01};
    CHECK_EQ_INT(decode_copy(map32, sizeof(map32), &r), CIO_EPROTO);
    CHECK_EQ_INT(decode_copy(map16, sizeof(map16), &r), CIO_EPROTO);

    /* Unknown value declaring far more elements than bytes left. */
    build(&b, LOGREC_PURGE, NULL, 1);
    key(&b, "x");
    (void)msgpack_pack_array(&b.pk, 0xffffffffu);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    build(&b, LOGREC_PURGE, NULL, 1);
    key(&b, "x");
    (void)msgpack_pack_str(&b.pk, 0xffffffffu);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
    build(&b, LOGREC_PURGE, NULL, 1);
    key(&b, "x");
    (void)msgpack_pack_ext(&b.pk, 0xffffffffu, 1);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
}

static void test_bad_keys(void)
{
    builder_t b;
    logrec_t r;

    /* A non-string map key. */
    build(&b, LOGREC_PUT, NULL, 1);
    (void)msgpack_pack_uint64(&b.pk, 1);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);

    build(&b, LOGREC_PUT, NULL, 1);
    (void)msgpack_pack_bin_with_body(&b.pk, "v", 1);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);

    /* Field names up to 64 bytes are accepted, longer ones refused. */
    build(&b, LOGREC_PUT, NULL, 1);
    str(&b, xs, 64);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), 0);
    build(&b, LOGREC_PUT, NULL, 1);
    str(&b, xs, 65);
    (void)msgpack_pack_nil(&b.pk);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);

    /* Keys are case-sensitive: "SEQ" is unknown, so "seq" is missing. */
    build(&b, LOGREC_PUT, "seq", 1);
    key(&b, "SEQ");
    (void)msgpack_pack_uint64(&b.pk, 1);
    CHECK_EQ_INT(finish(&b, &r), CIO_EPROTO);
}

static void test_not_a_record(void)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"empty", "", 0},         {"nil", "\xc0", 1},       {"int", "\x01", 1},           {"str", "\xa1v", 2},
        {"array", "\x91\x80", 2}, {"empty map", "\x80", 1}, {"reserved byte", "\xc1", 1}, {"map key truncated", "\x81\xa3se", 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        logrec_t r;
        int rc = decode_copy(cases[i].bytes, cases[i].len, &r);
        if (rc != CIO_EPROTO)
            fprintf(stderr, "  case '%s' gave %d\n", cases[i].what, rc);
        CHECK_EQ_INT(rc, CIO_EPROTO);
    }
    logrec_t r;
    CHECK_EQ_INT(logrec_decode(NULL, 0, &r), CIO_EPROTO);
    CHECK_EQ_INT(logrec_decode("\x80", 1, NULL), CIO_EPROTO);
}

static void test_trailing_bytes(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    logrec_t r = sample(LOGREC_PUT), d;
    CHECK_EQ_INT(logrec_encode(&r, &sb), 0);
    msgpack_sbuffer_write(&sb, "\0", 1);
    CHECK_EQ_INT(decode_copy(sb.data, sb.size, &d), CIO_EPROTO);
    msgpack_sbuffer_write(&sb, "garbage", 7);
    CHECK_EQ_INT(decode_copy(sb.data, sb.size, &d), CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}

static void test_error_leaves_output(void)
{
    logrec_t r, before;
    memset(&r, 0xab, sizeof(r));
    before = r;
    CHECK_EQ_INT(decode_copy("\x81\xa1v\x02", 4, &r), CIO_EPROTO);
    CHECK(memcmp(&r, &before, sizeof(r)) == 0);
}

static void test_event_id(void)
{
    char buf[2048];
    logrec_t r = sample(LOGREC_PUT);
    logrec_event_id(&r, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "1701234567890-mybucket-myfile");

    r = sample(LOGREC_DELETE);
    r.mtime_ms = -5;
    logrec_event_id(&r, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "-5-mybucket-myfile");

    r = sample(LOGREC_PURGE);
    logrec_event_id(&r, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "1701234567890-mybucket-*");

    /* Strings are (ptr, len): bytes past len are not used. */
    r = sample(LOGREC_PUT);
    r.bucket_len = 2;
    r.key_len = 3;
    logrec_event_id(&r, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "1701234567890-my-myf");

    /* The longest id fits in LOGREC_EVENT_ID_MAX bytes, exactly. */
    r.bucket = long_bucket;
    r.bucket_len = LOGREC_BUCKET_MAX;
    r.key = long_key;
    r.key_len = LOGREC_KEY_MAX;
    r.mtime_ms = INT64_MIN;
    logrec_event_id(&r, buf, LOGREC_EVENT_ID_MAX);
    CHECK_EQ_INT(strlen(buf), LOGREC_EVENT_ID_MAX - 1);

    r = sample(LOGREC_PUT);
    logrec_event_id(&r, buf, 5);
    CHECK_EQ_STR(buf, "1701");
    buf[0] = 'Z';
    logrec_event_id(&r, buf, 0);
    CHECK(buf[0] == 'Z');
    logrec_event_id(&r, buf, 1);
    CHECK_EQ_STR(buf, "");
}

static void test_op_name(void)
{
    CHECK_EQ_STR(logrec_op_name(LOGREC_PUT), "PUT");
    CHECK_EQ_STR(logrec_op_name(LOGREC_DELETE), "DELETE");
    CHECK_EQ_STR(logrec_op_name(LOGREC_PURGE), "PURGE");
    CHECK_EQ_STR(logrec_op_name(LOGREC_BUCKET_CREATE), "BUCKET_CREATE");
    CHECK_EQ_STR(logrec_op_name(LOGREC_BUCKET_DELETE), "BUCKET_DELETE");
    CHECK_EQ_STR(logrec_op_name((logrec_op_t)0), "?");
    CHECK_EQ_STR(logrec_op_name((logrec_op_t)9), "?");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Flips bytes of valid encodings: decode must return 0 or CIO_EPROTO, never
 * read outside the buffer, and anything it accepts must re-encode. */
static void test_mutation(void)
{
    enum { ITERATIONS = 20000 };
    msgpack_sbuffer seeds[4];
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_init(&seeds[i]);
    logrec_t s0 = sample(LOGREC_PUT), s1 = sample(LOGREC_DELETE), s2 = sample(LOGREC_PURGE);
    CHECK_EQ_INT(logrec_encode(&s0, &seeds[0]), 0);
    CHECK_EQ_INT(logrec_encode(&s1, &seeds[1]), 0);
    CHECK_EQ_INT(logrec_encode(&s2, &seeds[2]), 0);
    builder_t b;
    build(&b, LOGREC_PUT, NULL, 2);
    key(&b, "x");
    (void)msgpack_pack_array(&b.pk, 3);
    (void)msgpack_pack_map(&b.pk, 1);
    key(&b, "y");
    (void)msgpack_pack_ext_with_body(&b.pk, "abc", 3, 2);
    (void)msgpack_pack_double(&b.pk, 1.0);
    str(&b, xs, 300);
    key(&b, "z");
    (void)msgpack_pack_bin_with_body(&b.pk, xs, 20);
    msgpack_sbuffer_write(&seeds[3], b.sb.data, b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);

    int bad_rc = 0, bad_ptr = 0, bad_reenc = 0, accepted = 0;
    char *buf = NULL;
    for (int it = 0; it < ITERATIONS; it++) {
        const msgpack_sbuffer *seed = &seeds[rng() % 4];
        size_t len = seed->size;
        /* Sometimes cut or extend the record too. */
        uint64_t shape = rng() % 8;
        if (shape == 0)
            len = rng() % (seed->size + 1);
        else if (shape == 1)
            len = seed->size + 1 + rng() % 8;
        buf = malloc(len ? len : 1);
        if (buf == NULL)
            abort();
        for (size_t i = 0; i < len; i++)
            buf[i] = i < seed->size ? seed->data[i] : (char)rng();
        int flips = 1 + (int)(rng() % 4);
        for (int f = 0; f < flips && len > 0; f++) {
            size_t at = rng() % len;
            if (rng() & 1)
                buf[at] = (char)rng();
            else
                buf[at] ^= (char)(1u << (rng() % 8));
        }
        logrec_t r;
        int rc = logrec_decode(buf, len, &r);
        if (rc != 0 && rc != CIO_EPROTO)
            bad_rc++;
        if (rc == 0) {
            accepted++;
            if (!inside(r.bucket, r.bucket_len, buf, len) || !inside(r.origin, r.origin_len, buf, len) ||
                (r.key_len && !inside(r.key, r.key_len, buf, len)) ||
                (r.content_type_len && !inside(r.content_type, r.content_type_len, buf, len)))
                bad_ptr++;
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            logrec_t d;
            if (logrec_encode(&r, &sb) != 0 || logrec_decode(sb.data, sb.size, &d) != 0)
                bad_reenc++;
            msgpack_sbuffer_destroy(&sb);
        }
        free(buf);
    }
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(bad_ptr, 0);
    CHECK_EQ_INT(bad_reenc, 0);
    CHECK(accepted > 0); /* some mutations (e.g. in string bodies) keep the record valid */
    fprintf(stderr, "     mutation: %d of %d accepted\n", accepted, ITERATIONS);
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_destroy(&seeds[i]);
}

int main(void)
{
    init_long_strings();
    memset(xs, 'x', sizeof(xs));
    RUN(test_roundtrip_put);
    RUN(test_roundtrip_delete_purge);
    RUN(test_golden_bytes);
    RUN(test_bucket_ops);
    RUN(test_format1_record);
    RUN(test_format2_versions);
    RUN(test_context);
    RUN(test_metadata);
    RUN(test_multipart_etag);
    RUN(test_encode_appends);
    RUN(test_encode_invalid);
    RUN(test_builder_baseline);
    RUN(test_missing_required);
    RUN(test_field_values);
    RUN(test_put_only_fields);
    RUN(test_duplicate_key);
    RUN(test_unknown_keys);
    RUN(test_unknown_deep_nesting);
    RUN(test_map_bounds);
    RUN(test_bad_keys);
    RUN(test_not_a_record);
    RUN(test_trailing_bytes);
    RUN(test_error_leaves_output);
    RUN(test_event_id);
    RUN(test_op_name);
    RUN(test_mutation);
    return TEST_SUMMARY();
}
