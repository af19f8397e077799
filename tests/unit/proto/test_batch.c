/* test_batch.c - unit tests of the replication batch and reply codecs (proto/batch.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proto/batch.h"
#include "testutil.h"

static const uint8_t sample_etag[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
                                        0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e};

/* Encoded sample records, built once in main. */
static msgpack_sbuffer rec_put5;  /* PUT of a 5-byte object, seq 1 */
static msgpack_sbuffer rec_put0;  /* PUT of an empty object, seq 2 */
static msgpack_sbuffer rec_del;   /* DELETE, seq 3 */
static msgpack_sbuffer rec_purge; /* PURGE, seq 4 */
static msgpack_sbuffer rec_put4k; /* PUT of a 4 KiB object, seq 5 */

static char xs[BATCH_URL_MAX + 2];

static void encode_rec(msgpack_sbuffer *sb, logrec_op_t op, uint64_t seq, uint64_t size)
{
    logrec_t r;
    memset(&r, 0, sizeof(r));
    r.seq = seq;
    r.hlc = seq;
    r.op = op;
    r.bucket = "bkt";
    r.bucket_len = 3;
    r.mtime_ms = 1701234567890;
    r.origin = "site-a";
    r.origin_len = 6;
    if (op != LOGREC_PURGE) {
        r.key = "dir/file";
        r.key_len = 8;
    }
    if (op == LOGREC_PUT) {
        r.size = size;
        memcpy(r.etag, sample_etag, sizeof(r.etag));
    }
    msgpack_sbuffer_init(sb);
    if (logrec_encode(&r, sb) != 0)
        abort();
}

static void init_samples(void)
{
    encode_rec(&rec_put5, LOGREC_PUT, 1, 5);
    encode_rec(&rec_put0, LOGREC_PUT, 2, 0);
    encode_rec(&rec_del, LOGREC_DELETE, 3, 0);
    encode_rec(&rec_purge, LOGREC_PURGE, 4, 0);
    encode_rec(&rec_put4k, LOGREC_PUT, 5, 4096);
    memset(xs, 'x', sizeof(xs));
}

static void free_samples(void)
{
    msgpack_sbuffer_destroy(&rec_put5);
    msgpack_sbuffer_destroy(&rec_put0);
    msgpack_sbuffer_destroy(&rec_del);
    msgpack_sbuffer_destroy(&rec_purge);
    msgpack_sbuffer_destroy(&rec_put4k);
}

static int inside(const void *p, size_t n, const void *buf, size_t len)
{
    uintptr_t lo = (uintptr_t)buf, hi = (uintptr_t)buf + len, q = (uintptr_t)p;
    return q >= lo && q + n <= hi;
}

static char *heap_copy(const void *data, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, data, len);
    return copy;
}

/* Decodes a whole batch from an exact-size heap copy (so that valgrind/ASan
 * see any read past the end): the first error of init or of any event, or 0
 * when every event decodes. An event count that disagrees with nevents, or
 * a pointer outside the buffer, gives -100. */
static int decode_all(const void *data, size_t len)
{
    char *buf = heap_copy(data, len);
    batch_dec_t d;
    batch_event_t ev;
    int rc = batch_dec_init(&d, buf, len);
    size_t got = 0;
    while (rc == 0) {
        rc = batch_dec_next(&d, &ev);
        if (rc != 0)
            break;
        got++;
        if (!inside(ev.rec_raw, ev.rec_raw_len, buf, len) || (ev.has_data && !inside(ev.data, ev.data_len, buf, len)) ||
            (ev.url != NULL && !inside(ev.url, ev.url_len, buf, len)) || !inside(ev.rec.bucket, ev.rec.bucket_len, buf, len))
            rc = -100;
    }
    if (rc == CIO_ENOTFOUND)
        rc = got == d.nevents ? 0 : -100;
    free(buf);
    return rc;
}

/* ---- encoder round trips ---- */

static void test_roundtrip(void)
{
    static const char url[] = "https://a.example/admin/replication/fetch/bkt/dir/file?version=1&expires=9&sig=00";
    batch_enc_t e;
    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put0.data, rec_put0.size, 1, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, url, strlen(url)), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_purge.data, rec_purge.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(e.nevents, 5);
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);

    /* The event array header is array32 with the count patched in. */
    CHECK_EQ_INT((uint8_t)buf[e.count_off], 0xdd);
    CHECK(memcmp(buf + e.count_off + 1, "\0\0\0\5", 4) == 0);

    char *copy = heap_copy(buf, len);
    batch_dec_t d;
    batch_event_t ev;
    CHECK_EQ_INT(batch_dec_init(&d, copy, len), 0);
    CHECK_EQ_INT(d.nevents, 5);
    CHECK(d.src_len == 6 && memcmp(d.src, "site-a", 6) == 0);
    CHECK(inside(d.src, d.src_len, copy, len));

    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK_EQ_INT(ev.rec.op, LOGREC_PUT);
    CHECK(ev.rec.seq == 1 && ev.rec.size == 5);
    CHECK(ev.rec_raw_len == rec_put5.size && memcmp(ev.rec_raw, rec_put5.data, rec_put5.size) == 0);
    CHECK(inside(ev.rec_raw, ev.rec_raw_len, copy, len));
    CHECK(inside(ev.rec.key, ev.rec.key_len, copy, len));
    CHECK(ev.has_data && ev.data_len == 5 && memcmp(ev.data, "hello", 5) == 0);
    CHECK(inside(ev.data, ev.data_len, copy, len));
    CHECK(ev.url == NULL && ev.url_len == 0);

    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.seq == 2 && ev.rec.size == 0);
    CHECK(ev.has_data && ev.data_len == 0 && ev.url == NULL);
    CHECK(inside(ev.data, 0, copy, len));

    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.seq == 1 && !ev.has_data && ev.data == NULL);
    CHECK(ev.url_len == strlen(url) && memcmp(ev.url, url, ev.url_len) == 0);
    CHECK(inside(ev.url, ev.url_len, copy, len));

    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.seq == 3 && ev.rec.op == LOGREC_DELETE && !ev.has_data && ev.url == NULL);
    CHECK(ev.rec.key_len == 8 && memcmp(ev.rec.key, "dir/file", 8) == 0);

    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.seq == 4 && ev.rec.op == LOGREC_PURGE && !ev.has_data && ev.url == NULL);

    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_ENOTFOUND);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_ENOTFOUND);
    CHECK_EQ_INT(d.next, len);
    free(copy);

    /* Every strict prefix is refused. */
    int bad = 0;
    for (size_t n = 0; n < len; n++)
        if (decode_all(buf, n) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(decode_all(buf, len), 0);

    /* Finishing again after more events re-patches the count. */
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK(memcmp(buf + e.count_off + 1, "\0\0\0\6", 4) == 0);
    CHECK_EQ_INT(decode_all(buf, len), 0);
    batch_enc_free(&e);
    batch_enc_free(&e); /* harmless twice */
}

/* A PUT event whose record carries the object's metadata ("m"), inline and fetched, next to one without: the
 * replica decodes the metadata from the record, in the batch buffer. */
static void test_metadata(void)
{
    static const char url[] = "https://a.example/admin/replication/fetch/bkt/dir/file?version=6&expires=9&sig=00";
    objmeta_pair_t pairs[] = {{"content-encoding", 16, "gzip", 4}, {"x-amz-meta-a", 12, "1", 1}};
    uint8_t blob[OBJMETA_MAX];
    size_t blen, len;
    msgpack_sbuffer rec;
    logrec_t r;
    batch_enc_t e;
    batch_dec_t d;
    batch_event_t ev;
    const char *buf;

    CHECK_EQ_INT(objmeta_encode(pairs, 2, blob, &blen, NULL), 0);
    memset(&r, 0, sizeof(r));
    r.seq = r.hlc = 6;
    r.op = LOGREC_PUT;
    r.bucket = "bkt";
    r.bucket_len = 3;
    r.key = "dir/file";
    r.key_len = 8;
    r.size = 5;
    r.origin = "site-a";
    r.origin_len = 6;
    r.meta = blob;
    r.meta_len = blen;
    msgpack_sbuffer_init(&rec);
    CHECK_EQ_INT(logrec_encode(&r, &rec), 0);
    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec.data, rec.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec.data, rec.size, 0, NULL, 0, url, strlen(url)), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    char *copy = heap_copy(buf, len);
    CHECK_EQ_INT(batch_dec_init(&d, copy, len), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
        CHECK(ev.rec.seq == 6 && ev.rec.meta_len == blen && memcmp(ev.rec.meta, blob, blen) == 0);
        CHECK(inside(ev.rec.meta, ev.rec.meta_len, copy, len));
        CHECK(i == 0 ? ev.has_data : ev.url != NULL);
    }
    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.seq == 1 && ev.rec.meta_len == 0);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_ENOTFOUND);
    free(copy);
    int bad = 0;
    for (size_t n = 0; n < len; n++)
        if (decode_all(buf, n) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    batch_enc_free(&e);
    msgpack_sbuffer_destroy(&rec);
}

/* A restarted encoder starts a new batch in the same buffer: the old events
 * are gone, the capacity stays, and the new batch decodes like a fresh one. */
static void test_restart(void)
{
    batch_enc_t e;
    const char *buf;
    size_t len, cap;
    batch_dec_t d;
    batch_event_t ev;

    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    cap = batch_enc_capacity(&e);
    CHECK(cap >= len);

    CHECK_EQ_INT(batch_enc_restart(&e, "site-b", 6), 0);
    CHECK_EQ_INT(e.nevents, 0);
    CHECK_EQ_INT(batch_enc_capacity(&e), cap);
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK_EQ_INT(batch_dec_init(&d, buf, len), 0);
    CHECK_EQ_INT(d.nevents, 1);
    CHECK(d.src_len == 6 && memcmp(d.src, "site-b", 6) == 0);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    CHECK(ev.rec.op == LOGREC_DELETE);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_ENOTFOUND);
    CHECK_EQ_INT(decode_all(buf, len), 0);

    /* a bad source is refused as by batch_enc_init */
    CHECK_EQ_INT(batch_enc_restart(&e, "", 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_restart(&e, "s", 1), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK_EQ_INT(batch_dec_init(&d, buf, len), 0);
    CHECK_EQ_INT(d.nevents, 0);
    batch_enc_free(&e);
}

/* A reserved encoder keeps its buffer where it is while batches fill it
 * (no realloc moves it), keeps what it held across the reserve, and its peak
 * is the most bytes it held, not its capacity. */
static void test_reserve(void)
{
    batch_enc_t e;
    const char *buf, *first;
    size_t len, len1;
    batch_dec_t d;

    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_reserve(&e, 1u << 20), 0);
    CHECK(batch_enc_capacity(&e) >= (1u << 20));
    CHECK_EQ_INT(batch_enc_reserve(&e, 100), 0); /* never shrinks */
    CHECK(batch_enc_capacity(&e) >= (1u << 20));
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len1), 0);
    CHECK_EQ_INT(decode_all(buf, len1), 0);
    CHECK_EQ_INT(batch_dec_init(&d, buf, len1), 0);
    CHECK_EQ_INT(d.nevents, 1);
    first = buf;
    CHECK_EQ_INT(batch_enc_peak(&e), len1);

    /* a larger batch fills the reserved room in place */
    char data[4096];
    memset(data, 'x', sizeof(data));
    CHECK_EQ_INT(batch_enc_restart(&e, "site-a", 6), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ_INT(batch_enc_add(&e, rec_put4k.data, rec_put4k.size, 1, data, sizeof(data), NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK(buf == first);
    CHECK(len > 200 * sizeof(data));
    CHECK_EQ_INT(decode_all(buf, len), 0);
    /* a smaller one after it leaves the peak at the larger */
    CHECK_EQ_INT(batch_enc_restart(&e, "site-a", 6), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len1), 0);
    CHECK(len1 < len);
    CHECK_EQ_INT(batch_enc_peak(&e), len);
    CHECK(batch_enc_peak(&e) < batch_enc_capacity(&e));
    CHECK_EQ_INT(batch_enc_reserve(NULL, 1), CIO_EINVAL);
    batch_enc_free(&e);
}

static void test_empty_batch(void)
{
    batch_enc_t e;
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_init(&e, "s", 1), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    batch_dec_t d;
    batch_event_t ev;
    CHECK_EQ_INT(batch_dec_init(&d, buf, len), 0);
    CHECK_EQ_INT(d.nevents, 0);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_ENOTFOUND);
    batch_enc_free(&e);
}

static void test_many_events(void)
{
    enum { N = 5000 };
    batch_enc_t e;
    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int rc;
        switch (i % 4) {
        case 0:
            rc = batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "abcde", 5, NULL, 0);
            break;
        case 1:
            rc = batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, "http://x/y", 10);
            break;
        case 2:
            rc = batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0);
            break;
        default:
            rc = batch_enc_add(&e, rec_purge.data, rec_purge.size, 0, NULL, 0, NULL, 0);
            break;
        }
        if (rc != 0)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);

    char *copy = heap_copy(buf, len);
    batch_dec_t d;
    batch_event_t ev;
    CHECK_EQ_INT(batch_dec_init(&d, copy, len), 0);
    CHECK_EQ_INT(d.nevents, N);
    size_t got = 0;
    bad = 0;
    while (batch_dec_next(&d, &ev) == 0) {
        logrec_op_t want = got % 4 < 2 ? LOGREC_PUT : got % 4 == 2 ? LOGREC_DELETE : LOGREC_PURGE;
        if (ev.rec.op != want || ev.has_data != (got % 4 == 0) || (ev.url != NULL) != (got % 4 == 1))
            bad++;
        got++;
    }
    CHECK_EQ_INT(got, N);
    CHECK_EQ_INT(bad, 0);
    free(copy);
    batch_enc_free(&e);
}

static void test_max_events(void)
{
    batch_enc_t e;
    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    int bad = 0;
    for (int i = 0; i < BATCH_MAX_EVENTS; i++)
        if (batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0) != 0)
            bad++;
    CHECK_EQ_INT(bad, 0);
    size_t before = e.sb.size;
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), CIO_ETOOBIG);
    CHECK_EQ_INT(e.sb.size, before);
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK_EQ_INT(decode_all(buf, len), 0);
    batch_enc_free(&e);
}

static void test_encode_invalid(void)
{
    batch_enc_t e;
    char src[BATCH_SRC_MAX + 1];
    memset(src, 's', sizeof(src));
    CHECK_EQ_INT(batch_enc_init(&e, NULL, 1), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_init(&e, "", 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_init(&e, src, BATCH_SRC_MAX + 1), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_init(NULL, "a", 1), CIO_EINVAL);
    batch_enc_free(&e);
    CHECK_EQ_INT(batch_enc_init(&e, src, BATCH_SRC_MAX), 0);

    const char *u = "http://x";
    size_t before = e.sb.size;
    /* PUT: both, neither, wrong data length, NULL data with a length. */
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, u, 8), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hell", 4, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, NULL, 5, NULL, 0), CIO_EINVAL);
    /* url empty or too long; exactly the cap is fine. */
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, u, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, xs, BATCH_URL_MAX + 1), CIO_EINVAL);
    /* DELETE/PURGE with data or url (even empty data). */
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 1, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, u, 8), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_purge.data, rec_purge.size, 1, "x", 1, NULL, 0), CIO_EINVAL);
    /* Records that do not decode. */
    CHECK_EQ_INT(batch_enc_add(&e, NULL, 0, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, "\x80", 1, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size - 1, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_add(NULL, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(e.sb.size, before);
    CHECK_EQ_INT(e.nevents, 0);

    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, xs, BATCH_URL_MAX), 0);
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_finish(&e, NULL, &len), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, NULL), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    CHECK_EQ_INT(decode_all(buf, len), 0);
    batch_enc_free(&e);
    /* After free, the encoder refuses until initialised again. */
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), CIO_EINVAL);
}

/* ---- hand-built batches ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} builder_t;

static void b_init(builder_t *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void b_raw(builder_t *b, const void *p, size_t n)
{
    if (n)
        (void)msgpack_sbuffer_write(&b->sb, p, n);
}

static void b_key(builder_t *b, const char *k)
{
    (void)msgpack_pack_str_with_body(&b->pk, k, strlen(k));
}

static void b_str(builder_t *b, const char *s, size_t n)
{
    (void)msgpack_pack_str(&b->pk, n);
    b_raw(b, s, n);
}

static void b_bin(builder_t *b, const void *s, size_t n)
{
    (void)msgpack_pack_bin(&b->pk, n);
    b_raw(b, s, n);
}

static void b_uint(builder_t *b, uint64_t v)
{
    (void)msgpack_pack_uint64(&b->pk, v);
}

/* A record as the "r" bin. */
static void b_rec(builder_t *b, const msgpack_sbuffer *rec)
{
    b_key(b, "r");
    b_bin(b, rec->data, rec->size);
}

/* The standard envelope {"v":1,"src":"site-a","ev":[<nev events follow>]}. */
static void b_env(builder_t *b, size_t nev)
{
    b_init(b);
    (void)msgpack_pack_map(&b->pk, 3);
    b_key(b, "v");
    b_uint(b, 1);
    b_key(b, "src");
    b_str(b, "site-a", 6);
    b_key(b, "ev");
    (void)msgpack_pack_array(&b->pk, nev);
}

/* Decodes what was built (exact-size copy) and releases the builder. */
static int b_decode(builder_t *b)
{
    int rc = decode_all(b->sb.data, b->sb.size);
    msgpack_sbuffer_destroy(&b->sb);
    return rc;
}

/* One DELETE event, the simplest valid one. */
static void b_del_event(builder_t *b)
{
    (void)msgpack_pack_map(&b->pk, 1);
    b_rec(b, &rec_del);
}

static void test_builder_baseline(void)
{
    builder_t b;
    b_env(&b, 1);
    b_del_event(&b);
    CHECK_EQ_INT(b_decode(&b), 0);

    /* A fixarray header (minimal) and array16/map16 headers are all fine. */
    b_init(&b);
    b_raw(&b, "\xde\x00\x03", 3); /* map16 of 3 */
    b_key(&b, "v");
    b_raw(&b, "\xcf\0\0\0\0\0\0\0\1", 9); /* uint64 1 */
    b_key(&b, "src");
    b_raw(&b, "\xdb\0\0\0\1s", 6); /* str32 "s" */
    b_key(&b, "ev");
    b_raw(&b, "\xdc\x00\x02", 3); /* array16 of 2 */
    b_del_event(&b);
    b_raw(&b, "\xdf\0\0\0\1", 5); /* map32 of 1 */
    b_key(&b, "r");
    b_raw(&b, "\xc6", 1); /* bin32 */
    uint8_t n32[4] = {0, 0, 0, (uint8_t)rec_del.size};
    b_raw(&b, n32, 4);
    b_raw(&b, rec_del.data, rec_del.size);
    CHECK_EQ_INT(b_decode(&b), 0);

    /* Keys in any order, unknown keys (with nested values) skipped. */
    b_init(&b);
    (void)msgpack_pack_map(&b.pk, 4);
    b_key(&b, "ev");
    (void)msgpack_pack_array(&b.pk, 1);
    (void)msgpack_pack_map(&b.pk, 3);
    b_key(&b, "later");
    (void)msgpack_pack_array(&b.pk, 2);
    (void)msgpack_pack_map(&b.pk, 1);
    b_key(&b, "x");
    (void)msgpack_pack_double(&b.pk, 2.5);
    (void)msgpack_pack_nil(&b.pk);
    b_key(&b, "d");
    b_bin(&b, "hello", 5);
    b_rec(&b, &rec_put5);
    b_key(&b, "zz");
    (void)msgpack_pack_ext_with_body(&b.pk, "abc", 3, 7);
    b_key(&b, "src");
    b_str(&b, "s", 1);
    b_key(&b, "v");
    b_uint(&b, 1);
    CHECK_EQ_INT(b_decode(&b), 0);
}

/* Unknown values nested 100000 deep are skipped without recursion. */
static void test_unknown_deep_nesting(void)
{
    enum { DEPTH = 100000 };
    builder_t b;
    b_init(&b);
    (void)msgpack_pack_map(&b.pk, 4);
    b_key(&b, "deep");
    for (int i = 0; i < DEPTH; i++)
        b_raw(&b, "\x91", 1);
    b_raw(&b, "\x01", 1);
    b_key(&b, "v");
    b_uint(&b, 1);
    b_key(&b, "src");
    b_str(&b, "s", 1);
    b_key(&b, "ev");
    (void)msgpack_pack_array(&b.pk, 1);
    (void)msgpack_pack_map(&b.pk, 2);
    b_rec(&b, &rec_del);
    b_key(&b, "deep");
    for (int i = 0; i < DEPTH; i++)
        b_raw(&b, "\x81\xa1k", 3);
    b_raw(&b, "\xc0", 1);
    CHECK_EQ_INT(b_decode(&b), 0);

    /* The same, one level short of complete: malformed. */
    b_env(&b, 1);
    (void)msgpack_pack_map(&b.pk, 2);
    b_rec(&b, &rec_del);
    b_key(&b, "deep");
    for (int i = 0; i < DEPTH; i++)
        b_raw(&b, "\x92", 1);
    b_raw(&b, "\x01", 1);
    CHECK_EQ_INT(b_decode(&b), CIO_EPROTO);
}

/* Envelopes missing a key, with a wrong type, or a bad value. */
static void test_bad_envelope(void)
{
    static const struct {
        const char *what;
        const char *bytes; /* the whole input, as written */
        size_t len;
    } raw[] = {
        {"empty", "", 0},    {"not a map", "\x93\x01\x02\x03", 4},    {"int", "\x01", 1},
        {"nil", "\xc0", 1},  {"map with int key", "\x81\x01\x01", 3}, {"empty map", "\x80", 1},
        {"0xc1", "\xc1", 1},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        int rc = decode_all(raw[i].bytes, raw[i].len);
        if (rc != CIO_EPROTO)
            fprintf(stderr, "  case '%s' gave %d\n", raw[i].what, rc);
        CHECK_EQ_INT(rc, CIO_EPROTO);
    }

    enum {
        MISS_V,
        MISS_SRC,
        MISS_EV,
        V0,
        V2,
        V_STR,
        V_NEG,
        SRC_EMPTY,
        SRC_LONG,
        SRC_BIN,
        EV_MAP,
        EV_INT,
        EV_TOO_MANY,
        EV_SHORT,
        DUP_V,
        DUP_SRC,
        DUP_EV,
        TRAILING,
        KEY_LONG,
        NCASES
    };
    int bad = 0;
    for (int c = 0; c < NCASES; c++) {
        builder_t b;
        b_init(&b);
        size_t n = 3;
        if (c == MISS_V || c == MISS_SRC || c == MISS_EV)
            n = 2;
        if (c == DUP_V || c == DUP_SRC || c == DUP_EV || c == KEY_LONG)
            n = 4;
        (void)msgpack_pack_map(&b.pk, n);
        if (c != MISS_V) {
            b_key(&b, "v");
            if (c == V0)
                b_uint(&b, 0);
            else if (c == V2)
                b_uint(&b, BATCH_FORMAT_VERSION + 1);
            else if (c == V_STR)
                b_str(&b, "1", 1);
            else if (c == V_NEG)
                (void)msgpack_pack_int64(&b.pk, -1);
            else
                b_uint(&b, 1);
        }
        if (c == DUP_V) {
            b_key(&b, "v");
            b_uint(&b, 1);
        }
        if (c == KEY_LONG) {
            b_str(&b, xs, 65);
            b_uint(&b, 1);
        }
        if (c != MISS_SRC) {
            b_key(&b, "src");
            if (c == SRC_EMPTY)
                b_str(&b, "", 0);
            else if (c == SRC_LONG)
                b_str(&b, xs, BATCH_SRC_MAX + 1);
            else if (c == SRC_BIN)
                b_bin(&b, "s", 1);
            else
                b_str(&b, "s", 1);
        }
        if (c == DUP_SRC) {
            b_key(&b, "src");
            b_str(&b, "s", 1);
        }
        if (c != MISS_EV) {
            b_key(&b, "ev");
            if (c == EV_MAP) {
                (void)msgpack_pack_map(&b.pk, 0);
            } else if (c == EV_INT) {
                b_uint(&b, 0);
            } else if (c == EV_TOO_MANY) {
                /* The count alone is refused: no events needed. */
                (void)msgpack_pack_array(&b.pk, BATCH_MAX_EVENTS + 1);
            } else if (c == EV_SHORT) {
                (void)msgpack_pack_array(&b.pk, 2);
                b_del_event(&b);
            } else {
                (void)msgpack_pack_array(&b.pk, 1);
                b_del_event(&b);
            }
        }
        if (c == DUP_EV) {
            b_key(&b, "ev");
            (void)msgpack_pack_array(&b.pk, 0);
        }
        if (c == TRAILING)
            b_raw(&b, "\xc0", 1);
        int rc = b_decode(&b);
        if (rc != CIO_EPROTO) {
            fprintf(stderr, "  envelope case %d gave %d\n", c, rc);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* More than 32 envelope entries. */
    builder_t b;
    b_init(&b);
    (void)msgpack_pack_map(&b.pk, 33);
    for (int i = 0; i < 30; i++) {
        b_key(&b, "x");
        b_uint(&b, 0);
    }
    b_key(&b, "v");
    b_uint(&b, 1);
    b_key(&b, "src");
    b_str(&b, "s", 1);
    b_key(&b, "ev");
    (void)msgpack_pack_array(&b.pk, 0);
    CHECK_EQ_INT(b_decode(&b), CIO_EPROTO);
}

/* Events that break a rule; each in an otherwise valid batch, after a valid event. */
static void test_bad_events(void)
{
    enum {
        NOT_MAP,
        EMPTY_MAP,
        MISS_R,
        R_STR,
        R_GARBAGE,
        R_TRAILING,
        R_TRUNC,
        PUT_BOTH,
        PUT_NEITHER,
        PUT_D_SHORT,
        PUT_D_LONG,
        PUT_D_STR,
        PUT_U_EMPTY,
        PUT_U_LONG,
        PUT_U_BIN,
        DEL_D,
        DEL_D_EMPTY,
        DEL_U,
        PURGE_D,
        PURGE_U,
        DUP_R,
        DUP_D,
        DUP_U,
        EV_KEY_INT,
        TOO_MANY_KEYS,
        NCASES
    };
    int bad = 0;
    for (int c = 0; c < NCASES; c++) {
        builder_t b;
        b_env(&b, 2);
        b_del_event(&b);
        switch (c) {
        case NOT_MAP:
            b_uint(&b, 1);
            break;
        case EMPTY_MAP:
            (void)msgpack_pack_map(&b.pk, 0);
            break;
        case MISS_R:
            (void)msgpack_pack_map(&b.pk, 1);
            b_key(&b, "d");
            b_bin(&b, "hello", 5);
            break;
        case R_STR:
            (void)msgpack_pack_map(&b.pk, 1);
            b_key(&b, "r");
            b_str(&b, rec_del.data, rec_del.size);
            break;
        case R_GARBAGE:
            (void)msgpack_pack_map(&b.pk, 1);
            b_key(&b, "r");
            b_bin(&b, "\x81\xa1v\x01", 4);
            break;
        case R_TRAILING: {
            (void)msgpack_pack_map(&b.pk, 1);
            b_key(&b, "r");
            (void)msgpack_pack_bin(&b.pk, rec_del.size + 1);
            b_raw(&b, rec_del.data, rec_del.size);
            b_raw(&b, "\xc0", 1);
            break;
        }
        case R_TRUNC:
            (void)msgpack_pack_map(&b.pk, 1);
            b_key(&b, "r");
            b_bin(&b, rec_del.data, rec_del.size - 1);
            break;
        case PUT_BOTH:
            (void)msgpack_pack_map(&b.pk, 3);
            b_rec(&b, &rec_put5);
            b_key(&b, "d");
            b_bin(&b, "hello", 5);
            b_key(&b, "u");
            b_str(&b, "http://x", 8);
            break;
        case PUT_NEITHER:
            (void)msgpack_pack_map(&b.pk, 1);
            b_rec(&b, &rec_put5);
            break;
        case PUT_D_SHORT:
        case PUT_D_LONG:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_put5);
            b_key(&b, "d");
            b_bin(&b, "hello!", c == PUT_D_SHORT ? 4 : 6);
            break;
        case PUT_D_STR:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_put5);
            b_key(&b, "d");
            b_str(&b, "hello", 5);
            break;
        case PUT_U_EMPTY:
        case PUT_U_LONG:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_put5);
            b_key(&b, "u");
            b_str(&b, xs, c == PUT_U_EMPTY ? 0 : BATCH_URL_MAX + 1);
            break;
        case PUT_U_BIN:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_put5);
            b_key(&b, "u");
            b_bin(&b, "http://x", 8);
            break;
        case DEL_D:
        case DEL_D_EMPTY:
        case PURGE_D:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, c == PURGE_D ? &rec_purge : &rec_del);
            b_key(&b, "d");
            b_bin(&b, "x", c == DEL_D_EMPTY ? 0 : 1);
            break;
        case DEL_U:
        case PURGE_U:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, c == PURGE_U ? &rec_purge : &rec_del);
            b_key(&b, "u");
            b_str(&b, "http://x", 8);
            break;
        case DUP_R:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_del);
            b_rec(&b, &rec_del);
            break;
        case DUP_D:
            (void)msgpack_pack_map(&b.pk, 3);
            b_rec(&b, &rec_put5);
            b_key(&b, "d");
            b_bin(&b, "hello", 5);
            b_key(&b, "d");
            b_bin(&b, "hello", 5);
            break;
        case DUP_U:
            (void)msgpack_pack_map(&b.pk, 3);
            b_rec(&b, &rec_put5);
            b_key(&b, "u");
            b_str(&b, "http://x", 8);
            b_key(&b, "u");
            b_str(&b, "http://x", 8);
            break;
        case EV_KEY_INT:
            (void)msgpack_pack_map(&b.pk, 2);
            b_rec(&b, &rec_del);
            b_uint(&b, 1);
            b_uint(&b, 1);
            break;
        default: /* TOO_MANY_KEYS */
            (void)msgpack_pack_map(&b.pk, 33);
            b_rec(&b, &rec_del);
            for (int i = 0; i < 32; i++) {
                b_key(&b, "x");
                b_uint(&b, 0);
            }
            break;
        }
        int rc = b_decode(&b);
        if (rc != CIO_EPROTO) {
            fprintf(stderr, "  event case %d gave %d\n", c, rc);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* The limits themselves are fine: a url of exactly BATCH_URL_MAX, 32 keys. */
    builder_t b;
    b_env(&b, 2);
    (void)msgpack_pack_map(&b.pk, 2);
    b_rec(&b, &rec_put5);
    b_key(&b, "u");
    b_str(&b, xs, BATCH_URL_MAX);
    (void)msgpack_pack_map(&b.pk, 32);
    b_rec(&b, &rec_del);
    for (int i = 0; i < 31; i++) {
        b_key(&b, "x");
        b_uint(&b, 0);
    }
    CHECK_EQ_INT(b_decode(&b), 0);
}

/* On error neither the decoder nor the event changes. */
static void test_error_leaves_output(void)
{
    builder_t b;
    b_env(&b, 2);
    b_del_event(&b);
    (void)msgpack_pack_map(&b.pk, 1);
    b_rec(&b, &rec_put5); /* PUT without data: malformed */

    batch_dec_t d, saved;
    batch_event_t ev, ev_saved;
    memset(&d, 0x5a, sizeof(d));
    memcpy(&saved, &d, sizeof(d));
    CHECK_EQ_INT(batch_dec_init(&d, b.sb.data, b.sb.size - 1), CIO_EPROTO);
    CHECK(memcmp(&d, &saved, sizeof(d)) == 0);

    CHECK_EQ_INT(batch_dec_init(&d, b.sb.data, b.sb.size), 0);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), 0);
    memcpy(&saved, &d, sizeof(d));
    memcpy(&ev_saved, &ev, sizeof(ev));
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_EPROTO);
    CHECK(memcmp(&d, &saved, sizeof(d)) == 0);
    CHECK(memcmp(&ev, &ev_saved, sizeof(ev)) == 0);
    CHECK_EQ_INT(batch_dec_next(&d, &ev), CIO_EPROTO); /* still */

    CHECK_EQ_INT(batch_dec_init(NULL, b.sb.data, b.sb.size), CIO_EPROTO);
    CHECK_EQ_INT(batch_dec_init(&d, NULL, 0), CIO_EPROTO);
    CHECK_EQ_INT(batch_dec_next(NULL, &ev), CIO_EPROTO);
    CHECK_EQ_INT(batch_dec_next(&d, NULL), CIO_EPROTO);
    msgpack_sbuffer_destroy(&b.sb);
}

/* ---- the reply ---- */

static int reply_decode_copy(const void *data, size_t len, batch_res_t *res, size_t n)
{
    char *buf = heap_copy(data, len);
    int rc = batch_reply_decode(buf, len, res, n, NULL, NULL);
    free(buf);
    return rc;
}

static void test_reply_roundtrip(void)
{
    static char long_err[BATCH_ERROR_MAX + 10];
    memset(long_err, 'e', sizeof(long_err));
    batch_res_t in[5] = {
        {1, BATCH_APPLIED, 200, "", 0},
        {2, BATCH_SKIPPED, 200, NULL, 0},
        {3, BATCH_RETRY, 507, "no space", 8},
        {UINT64_MAX, BATCH_PERMANENT, 400, long_err, sizeof(long_err)},
        {5, BATCH_RETRY, 502, "fetch failed", 12},
    };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode(in, 5, NULL, 0, &sb), 0);

    batch_res_t out[5];
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, out, 5, NULL, NULL), 0);
    for (int i = 0; i < 5; i++) {
        CHECK(out[i].seq == in[i].seq);
        CHECK_EQ_INT(out[i].result, in[i].result);
        CHECK_EQ_INT(out[i].status, in[i].status);
        CHECK(out[i].error != NULL);
        if (out[i].error_len > 0)
            CHECK(inside(out[i].error, out[i].error_len, sb.data, sb.size));
    }
    CHECK_EQ_INT(out[0].error_len, 0);
    CHECK_EQ_INT(out[1].error_len, 0);
    CHECK(out[2].error_len == 8 && memcmp(out[2].error, "no space", 8) == 0);
    CHECK_EQ_INT(out[3].error_len, BATCH_ERROR_MAX); /* cut */
    CHECK(memcmp(out[3].error, long_err, BATCH_ERROR_MAX) == 0);

    /* A count other than n, and every strict prefix, are refused. */
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 4), CIO_EPROTO);
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 6), CIO_EPROTO);
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 0), CIO_EPROTO);
    int bad = 0;
    for (size_t n = 0; n < sb.size; n++)
        if (reply_decode_copy(sb.data, n, out, 5) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 5), 0);

    /* Appends: a second reply after the first. */
    size_t first = sb.size;
    CHECK_EQ_INT(batch_reply_encode(in, 1, NULL, 0, &sb), 0);
    CHECK_EQ_INT(batch_reply_decode(sb.data + first, sb.size - first, out, 1, NULL, NULL), 0);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, out, 5, NULL, NULL), CIO_EPROTO); /* trailing bytes */
    msgpack_sbuffer_destroy(&sb);

    /* An empty reply. */
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode(NULL, 0, NULL, 0, &sb), 0);
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, NULL, 0), 0);
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 1), CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}

/* A cut never splits a UTF-8 sequence. */
static void test_reply_error_cut_utf8(void)
{
    static char err[BATCH_ERROR_MAX + 8];
    memset(err, 'a', sizeof(err));
    memcpy(err + BATCH_ERROR_MAX - 2, "\xe2\x82\xac", 3); /* a euro sign straddling the cap */
    batch_res_t in = {1, BATCH_PERMANENT, 400, err, sizeof(err)}, out;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode(&in, 1, NULL, 0, &sb), 0);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, &out, 1, NULL, NULL), 0);
    CHECK_EQ_INT(out.error_len, BATCH_ERROR_MAX - 2);
    msgpack_sbuffer_destroy(&sb);
}

/* The replica's site id rides in the reply; a reply without it (an older
 * replica) still decodes, and one with an empty "site" is refused. */
static void test_reply_site(void)
{
    batch_res_t in = {7, BATCH_APPLIED, 200, "", 0}, out;
    const char *site = "x";
    size_t site_len = 99;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode(&in, 1, "site-b", 6, &sb), 0);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, &out, 1, &site, &site_len), 0);
    CHECK(site_len == 6 && memcmp(site, "site-b", 6) == 0 && inside(site, site_len, sb.data, sb.size));
    CHECK(out.seq == 7);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, &out, 1, NULL, NULL), 0); /* not wanted: fine */
    int bad = 0;
    for (size_t n = 0; n < sb.size; n++)
        if (reply_decode_copy(sb.data, n, &out, 1) != CIO_EPROTO)
            bad++;
    CHECK_EQ_INT(bad, 0);
    sb.size = 0;
    CHECK_EQ_INT(batch_reply_encode(&in, 1, NULL, 0, &sb), 0); /* an older replica's reply */
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, &out, 1, &site, &site_len), 0);
    CHECK(site == NULL && site_len == 0);
    sb.size = 0;
    CHECK_EQ_INT(batch_reply_encode(&in, 1, "", 0, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    /* {"v":1,"res":[],"site":""} by hand: an empty site id is malformed */
    static const char empty_site[] = "\x83\xa1v\x01\xa3res\x90\xa4site\xa0";
    CHECK_EQ_INT(batch_reply_decode(empty_site, sizeof(empty_site) - 1, NULL, 0, &site, &site_len), CIO_EPROTO);
    static const char no_site[] = "\x82\xa1v\x01\xa3res\x90";
    CHECK_EQ_INT(batch_reply_decode(no_site, sizeof(no_site) - 1, NULL, 0, &site, &site_len), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* The replica's store identity rides in the reply too (full sync): an
 * older reply has none, an empty or too long one is refused, and a decoder
 * that does not ask for it skips it. */
static void test_reply_store(void)
{
    batch_res_t in = {7, BATCH_SKIPPED, 200, "", 0}, out;
    const char *site = NULL, *store = "x";
    size_t site_len = 0, store_len = 99;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode_store(&in, 1, "site-b", 6, "0123456789abcdef0123456789abcdef", 32, &sb), 0);
    CHECK_EQ_INT(batch_reply_decode_store(sb.data, sb.size, &out, 1, &site, &site_len, &store, &store_len), 0);
    CHECK(store_len == 32 && memcmp(store, "0123456789abcdef", 16) == 0 && inside(store, store_len, sb.data, sb.size));
    CHECK(site_len == 6 && out.seq == 7 && out.result == BATCH_SKIPPED);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, &out, 1, &site, &site_len), 0); /* an older repld: skipped */
    sb.size = 0;
    CHECK_EQ_INT(batch_reply_encode(&in, 1, "site-b", 6, &sb), 0);
    CHECK_EQ_INT(batch_reply_decode_store(sb.data, sb.size, &out, 1, NULL, NULL, &store, &store_len), 0);
    CHECK(store == NULL && store_len == 0);
    sb.size = 0;
    CHECK_EQ_INT(batch_reply_encode_store(&in, 1, "site-b", 6, "", 0, &sb), CIO_EINVAL);
    CHECK_EQ_INT(batch_reply_encode_store(&in, 1, "site-b", 6, "x", BATCH_STORE_MAX + 1, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    static const char empty_store[] = "\x83\xa1v\x01\xa3res\x90\xa5store\xa0";
    CHECK_EQ_INT(batch_reply_decode_store(empty_store, sizeof(empty_store) - 1, NULL, 0, NULL, NULL, &store, &store_len),
                 CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}

static void test_reply_encode_invalid(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    batch_res_t r = {1, BATCH_APPLIED, 200, "", 0};
    CHECK_EQ_INT(batch_reply_encode(&r, 1, NULL, 0, NULL), CIO_EINVAL);
    CHECK_EQ_INT(batch_reply_encode(NULL, 1, NULL, 0, &sb), CIO_EINVAL);
    CHECK_EQ_INT(batch_reply_encode(&r, BATCH_MAX_EVENTS + 1, NULL, 0, &sb), CIO_EINVAL);
    r.result = (batch_result_t)4;
    CHECK_EQ_INT(batch_reply_encode(&r, 1, NULL, 0, &sb), CIO_EINVAL);
    r.result = BATCH_RETRY;
    r.error = NULL;
    r.error_len = 3;
    CHECK_EQ_INT(batch_reply_encode(&r, 1, NULL, 0, &sb), CIO_EINVAL);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Builds {"v":1,"res":[one result]} with the result's fields chosen by `c`. */
enum {
    RC_OK,
    RC_NO_E,
    RC_E_MAX,
    RC_E_LONG,
    RC_E_BIN,
    RC_MISS_SEQ,
    RC_MISS_R,
    RC_MISS_ST,
    RC_R4,
    RC_R_NEG,
    RC_ST_BIG,
    RC_SEQ_STR,
    RC_DUP_SEQ,
    RC_UNKNOWN,
    RC_NOT_MAP,
    RC_MISS_V,
    RC_V2,
    RC_MISS_RES,
    RC_RES_MAP,
    RC_DUP_RES,
    RC_TRAILING,
    RC_NCASES
};

static void build_reply(builder_t *b, int c)
{
    b_init(b);
    (void)msgpack_pack_map(&b->pk, c == RC_MISS_V || c == RC_MISS_RES ? 1 : c == RC_DUP_RES ? 3 : 2);
    if (c != RC_MISS_V) {
        b_key(b, "v");
        b_uint(b, c == RC_V2 ? BATCH_FORMAT_VERSION + 1 : 1);
    }
    if (c == RC_MISS_RES)
        return;
    b_key(b, "res");
    if (c == RC_RES_MAP) {
        (void)msgpack_pack_map(&b->pk, 0);
        return;
    }
    (void)msgpack_pack_array(&b->pk, 1);
    if (c == RC_NOT_MAP) {
        b_uint(b, 1);
        return;
    }
    size_t n = 4;
    if (c == RC_NO_E || c == RC_MISS_SEQ || c == RC_MISS_R || c == RC_MISS_ST)
        n = 3;
    else if (c == RC_DUP_SEQ || c == RC_UNKNOWN)
        n = 5;
    (void)msgpack_pack_map(&b->pk, n);
    if (c == RC_UNKNOWN) {
        b_key(b, "retry_after");
        (void)msgpack_pack_array(&b->pk, 1);
        b_str(b, "1s", 2);
    }
    if (c != RC_MISS_SEQ) {
        b_key(b, "seq");
        if (c == RC_SEQ_STR)
            b_str(b, "9", 1);
        else
            b_uint(b, 9);
    }
    if (c == RC_DUP_SEQ) {
        b_key(b, "seq");
        b_uint(b, 9);
    }
    if (c != RC_MISS_R) {
        b_key(b, "r");
        if (c == RC_R4)
            b_uint(b, 4);
        else if (c == RC_R_NEG)
            (void)msgpack_pack_int64(&b->pk, -1);
        else
            b_uint(b, BATCH_RETRY);
    }
    if (c != RC_MISS_ST) {
        b_key(b, "st");
        b_uint(b, c == RC_ST_BIG ? (uint64_t)UINT32_MAX + 1 : 507);
    }
    if (c != RC_NO_E) {
        b_key(b, "e");
        if (c == RC_E_BIN)
            b_bin(b, "x", 1);
        else
            b_str(b, xs, c == RC_E_MAX ? BATCH_ERROR_MAX : c == RC_E_LONG ? BATCH_ERROR_MAX + 1 : 4);
    }
    if (c == RC_DUP_RES) {
        b_key(b, "res");
        (void)msgpack_pack_array(&b->pk, 0);
    }
    if (c == RC_TRAILING)
        b_raw(b, "\x00", 1);
}

static void test_reply_decode_cases(void)
{
    int bad = 0;
    for (int c = 0; c < RC_NCASES; c++) {
        builder_t b;
        build_reply(&b, c);
        batch_res_t out, saved;
        memset(&out, 0x5a, sizeof(out));
        memcpy(&saved, &out, sizeof(out));
        int rc = reply_decode_copy(b.sb.data, b.sb.size, &out, 1);
        int want = c == RC_OK || c == RC_NO_E || c == RC_E_MAX || c == RC_UNKNOWN ? 0 : CIO_EPROTO;
        if (rc != want) {
            fprintf(stderr, "  reply case %d gave %d\n", c, rc);
            bad++;
        }
        if (rc == 0) {
            CHECK(out.seq == 9 && out.result == BATCH_RETRY && out.status == 507);
            CHECK_EQ_INT(out.error_len, c == RC_NO_E ? 0 : c == RC_E_MAX ? BATCH_ERROR_MAX : 4);
            CHECK(out.error != NULL);
        } else {
            CHECK(memcmp(&out, &saved, sizeof(out)) == 0); /* untouched on error */
        }
        msgpack_sbuffer_destroy(&b.sb);
    }
    CHECK_EQ_INT(bad, 0);

    /* An error late in the array leaves the earlier results untouched too. */
    batch_res_t in[2] = {{1, BATCH_APPLIED, 200, "", 0}, {2, BATCH_APPLIED, 200, "", 0}}, out[2], saved[2];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(batch_reply_encode(in, 2, NULL, 0, &sb), 0);
    sb.data[sb.size - 1] = (char)0xc1; /* last byte: the second result's empty "e" */
    memset(out, 0x5a, sizeof(out));
    memcpy(saved, out, sizeof(out));
    CHECK_EQ_INT(reply_decode_copy(sb.data, sb.size, out, 2), CIO_EPROTO);
    CHECK(memcmp(out, saved, sizeof(out)) == 0);
    CHECK_EQ_INT(batch_reply_decode(NULL, 0, out, 1, NULL, NULL), CIO_EPROTO);
    CHECK_EQ_INT(batch_reply_decode(sb.data, sb.size, NULL, 1, NULL, NULL), CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
}

static void test_result_name(void)
{
    CHECK_EQ_STR(batch_result_name(BATCH_APPLIED), "applied");
    CHECK_EQ_STR(batch_result_name(BATCH_SKIPPED), "skipped");
    CHECK_EQ_STR(batch_result_name(BATCH_RETRY), "retry");
    CHECK_EQ_STR(batch_result_name(BATCH_PERMANENT), "permanent");
    CHECK_EQ_STR(batch_result_name((batch_result_t)9), "?");
}

/* ---- mutation fuzz ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Flips bytes of valid batches and replies: decoding must return only 0,
 * CIO_EPROTO or CIO_ENOTFOUND, never read outside the buffer (exact-size heap
 * copies), and every event it accepts must obey the batch rules. */
static void test_mutation(void)
{
    enum { ITERATIONS = 20000, NSEEDS = 4 };
    msgpack_sbuffer seeds[NSEEDS];
    for (int i = 0; i < NSEEDS; i++)
        msgpack_sbuffer_init(&seeds[i]);

    batch_enc_t e;
    const char *buf;
    size_t len;
    CHECK_EQ_INT(batch_enc_init(&e, "site-a", 6), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 1, "hello", 5, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put0.data, rec_put0.size, 1, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_put5.data, rec_put5.size, 0, NULL, 0, "http://h/x", 10), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_del.data, rec_del.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_add(&e, rec_purge.data, rec_purge.size, 0, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(batch_enc_finish(&e, &buf, &len), 0);
    (void)msgpack_sbuffer_write(&seeds[0], buf, len);
    batch_enc_free(&e);

    builder_t b;
    b_init(&b);
    (void)msgpack_pack_map(&b.pk, 4);
    b_key(&b, "ev");
    (void)msgpack_pack_array(&b.pk, 2);
    (void)msgpack_pack_map(&b.pk, 2);
    b_key(&b, "x");
    (void)msgpack_pack_array(&b.pk, 2);
    (void)msgpack_pack_ext_with_body(&b.pk, "ab", 2, 1);
    (void)msgpack_pack_float(&b.pk, 1.5f);
    b_rec(&b, &rec_del);
    b_del_event(&b);
    b_key(&b, "v");
    b_uint(&b, 1);
    b_key(&b, "zz");
    b_str(&b, xs, 40);
    b_key(&b, "src");
    b_str(&b, "s", 1);
    (void)msgpack_sbuffer_write(&seeds[1], b.sb.data, b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);

    batch_res_t res[3] = {{1, BATCH_APPLIED, 200, "", 0}, {2, BATCH_RETRY, 507, "full", 4}, {3, BATCH_PERMANENT, 400, "bad", 3}};
    CHECK_EQ_INT(batch_reply_encode(res, 3, NULL, 0, &seeds[2]), 0);
    build_reply(&b, RC_UNKNOWN);
    (void)msgpack_sbuffer_write(&seeds[3], b.sb.data, b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);

    int bad_rc = 0, bad_event = 0, accepted = 0, events = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        int which = (int)(rng() % NSEEDS);
        const msgpack_sbuffer *seed = &seeds[which];
        size_t n = seed->size;
        uint64_t shape = rng() % 8;
        if (shape == 0)
            n = rng() % (seed->size + 1);
        else if (shape == 1)
            n = seed->size + 1 + rng() % 8;
        char *m = malloc(n ? n : 1);
        if (m == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            m[i] = i < seed->size ? seed->data[i] : (char)rng();
        int flips = 1 + (int)(rng() % 4);
        for (int f = 0; f < flips && n > 0; f++) {
            size_t at = rng() % n;
            if (rng() & 1)
                m[at] = (char)rng();
            else
                m[at] ^= (char)(1u << (rng() % 8));
        }

        if (which < 2) {
            batch_dec_t d;
            batch_event_t ev;
            int rc = batch_dec_init(&d, m, n);
            while (rc == 0) {
                rc = batch_dec_next(&d, &ev);
                if (rc != 0)
                    break;
                events++;
                logrec_t again;
                int ok = inside(ev.rec_raw, ev.rec_raw_len, m, n) && logrec_decode(ev.rec_raw, ev.rec_raw_len, &again) == 0;
                if (ev.rec.op == LOGREC_PUT)
                    ok = ok && ev.has_data != (ev.url != NULL) && (!ev.has_data || ev.data_len == ev.rec.size);
                else
                    ok = ok && !ev.has_data && ev.url == NULL;
                if (ev.has_data && !inside(ev.data, ev.data_len, m, n))
                    ok = 0;
                if (ev.url != NULL && (!inside(ev.url, ev.url_len, m, n) || ev.url_len == 0 || ev.url_len > BATCH_URL_MAX))
                    ok = 0;
                if (!ok)
                    bad_event++;
            }
            if (rc == CIO_ENOTFOUND)
                accepted++;
            else if (rc != CIO_EPROTO)
                bad_rc++;
        } else {
            batch_res_t out[3];
            int rc = batch_reply_decode(m, n, out, which == 2 ? 3 : 1, NULL, NULL);
            if (rc == 0) {
                accepted++;
                for (int i = 0; i < (which == 2 ? 3 : 1); i++)
                    if (out[i].result > BATCH_PERMANENT || out[i].error_len > BATCH_ERROR_MAX ||
                        (out[i].error_len > 0 && !inside(out[i].error, out[i].error_len, m, n)))
                        bad_event++;
            } else if (rc != CIO_EPROTO) {
                bad_rc++;
            }
        }
        free(m);
    }
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(bad_event, 0);
    CHECK(accepted > 0);
    fprintf(stderr, "     mutation: %d of %d accepted, %d events decoded\n", accepted, ITERATIONS, events);
    for (int i = 0; i < NSEEDS; i++)
        msgpack_sbuffer_destroy(&seeds[i]);
}

int main(void)
{
    init_samples();
    RUN(test_roundtrip);
    RUN(test_metadata);
    RUN(test_restart);
    RUN(test_reserve);
    RUN(test_empty_batch);
    RUN(test_many_events);
    RUN(test_max_events);
    RUN(test_encode_invalid);
    RUN(test_builder_baseline);
    RUN(test_unknown_deep_nesting);
    RUN(test_bad_envelope);
    RUN(test_bad_events);
    RUN(test_error_leaves_output);
    RUN(test_reply_roundtrip);
    RUN(test_reply_error_cut_utf8);
    RUN(test_reply_encode_invalid);
    RUN(test_reply_site);
    RUN(test_reply_store);
    RUN(test_reply_decode_cases);
    RUN(test_result_name);
    RUN(test_mutation);
    free_samples();
    return TEST_SUMMARY();
}
