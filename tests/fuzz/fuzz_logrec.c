/* fuzz_logrec.c - libFuzzer target for the log record decoder (proto/logrec.c, proto/mpread.c).
 *
 * The input is one encoded record. Beyond "no crash, no read outside the
 * input": a refused input leaves the output untouched; an accepted one keeps
 * every documented bound, points into the input, and survives
 * decode -> encode -> decode unchanged, and the encoding is canonical (encoding
 * the re-decoded record gives the same bytes). */
#include "fuzz.h"
#include "proto/logrec.h"

static void check_bounds(const logrec_t *r, const uint8_t *buf, size_t len)
{
    static const uint8_t zero_etag[16];

    FUZZ_CHECK(r->op >= LOGREC_PUT && r->op <= LOGREC_BUCKET_DELETE);
    FUZZ_CHECK(r->bucket_len >= 1 && r->bucket_len <= LOGREC_BUCKET_MAX && fuzz_inside(r->bucket, r->bucket_len, buf, len));
    FUZZ_CHECK(r->origin_len >= 1 && r->origin_len <= LOGREC_ORIGIN_MAX && fuzz_inside(r->origin, r->origin_len, buf, len));
    FUZZ_CHECK(r->key != NULL && r->content_type != NULL);
    FUZZ_CHECK(r->key_len <= LOGREC_KEY_MAX && fuzz_inside(r->key, r->key_len, buf, len));
    FUZZ_CHECK(r->content_type_len <= LOGREC_CTYPE_MAX && fuzz_inside(r->content_type, r->content_type_len, buf, len));
    FUZZ_CHECK(r->meta != NULL && r->meta_len <= OBJMETA_MAX && fuzz_inside((const char *)r->meta, r->meta_len, buf, len));
    FUZZ_CHECK(objmeta_validate(r->meta, r->meta_len) == 0);
    if (logrec_op_bucket_only(r->op))
        FUZZ_CHECK(r->key_len == 0);
    else
        FUZZ_CHECK(r->key_len >= 1);
    if (r->op != LOGREC_PUT)
        FUZZ_CHECK(r->size == 0 && r->content_type_len == 0 && r->meta_len == 0 && r->mpu_parts == 0 &&
                   memcmp(r->etag, zero_etag, sizeof(zero_etag)) == 0);
    FUZZ_CHECK(r->mpu_parts <= LOGREC_MPU_PARTS_MAX && (r->mpu_parts > 0 || memcmp(r->mpu_md5, zero_etag, sizeof(zero_etag)) == 0));
}

static int same_str(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_rec(const logrec_t *a, const logrec_t *b)
{
    return a->seq == b->seq && a->op == b->op && same_str(a->bucket, a->bucket_len, b->bucket, b->bucket_len) &&
           same_str(a->key, a->key_len, b->key, b->key_len) && a->size == b->size &&
           memcmp(a->etag, b->etag, sizeof(a->etag)) == 0 &&
           same_str(a->content_type, a->content_type_len, b->content_type, b->content_type_len) && a->mtime_ms == b->mtime_ms &&
           same_str(a->origin, a->origin_len, b->origin, b->origin_len) && vctx_equal(&a->ctx, &b->ctx) &&
           same_str((const char *)a->meta, a->meta_len, (const char *)b->meta, b->meta_len) && a->mpu_parts == b->mpu_parts &&
           memcmp(a->mpu_md5, b->mpu_md5, sizeof(a->mpu_md5)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    logrec_t r, r2, sentinel;
    msgpack_sbuffer sb1, sb2;
    char id[64];

    memset(&sentinel, 0xa5, sizeof(sentinel));
    r = sentinel;
    if (logrec_decode((const char *)data, size, &r) != 0) {
        FUZZ_CHECK(memcmp(&r, &sentinel, sizeof(r)) == 0);
        return 0;
    }
    check_bounds(&r, data, size);
    logrec_event_id(&r, id, sizeof(id));
    FUZZ_CHECK(strlen(id) < sizeof(id));

    /* What the decoder accepts, the encoder accepts, and it means the same. */
    msgpack_sbuffer_init(&sb1);
    msgpack_sbuffer_init(&sb2);
    FUZZ_CHECK(logrec_encode(&r, &sb1) == 0);
    FUZZ_CHECK(logrec_decode(sb1.data, sb1.size, &r2) == 0);
    check_bounds(&r2, (const uint8_t *)sb1.data, sb1.size);
    FUZZ_CHECK(same_rec(&r, &r2));
    FUZZ_CHECK(logrec_encode(&r2, &sb2) == 0);
    FUZZ_CHECK(sb1.size == sb2.size && memcmp(sb1.data, sb2.data, sb1.size) == 0);
    /* One byte short is never a record. */
    FUZZ_CHECK(logrec_decode(sb1.data, sb1.size - 1, &r2) != 0);
    msgpack_sbuffer_destroy(&sb1);
    msgpack_sbuffer_destroy(&sb2);
    return 0;
}
