/* test_synclist.c - unit tests of the replication listing codec (proto/synclist.c). */
#include "proto/synclist.h"
#include "testutil.h"

static const uint8_t ETAG[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e};

static void test_keys_round_trip(void)
{
    synclist_enc_t e;
    synclist_dec_t d;
    synclist_key_t k, out;
    const char *buf;
    size_t len;

    CHECK_EQ_INT(synclist_enc_init(&e, SYNCLIST_KEYS, "site-b", 6, "0123456789abcdef0123456789abcdef", 32), 0);
    memset(&k, 0, sizeof(k));
    k.key = "a/b";
    k.key_len = 3;
    k.hlc = 12345;
    k.origin = "site-a";
    k.origin_len = 6;
    memcpy(k.etag, ETAG, 16);
    k.size = 99;
    CHECK_EQ_INT(synclist_enc_key(&e, &k), 0);
    memset(&k, 0, sizeof(k));
    k.key = "gone";
    k.key_len = 4;
    k.hlc = 777;
    k.origin = "site-c";
    k.origin_len = 6;
    k.deleted = 1;
    CHECK_EQ_INT(synclist_enc_key(&e, &k), 0);
    CHECK_EQ_INT(synclist_enc_bucket(&e, &(synclist_bucket_t){.name = "x", .name_len = 3}), CIO_EINVAL); /* the other kind */
    CHECK_EQ_INT(synclist_enc_finish(&e, 1, &buf, &len), 0);

    char *copy = test_dup_exact(buf, len);
    CHECK_EQ_INT(synclist_dec_init(&d, copy, len), 0);
    CHECK_EQ_INT(d.kind, SYNCLIST_KEYS);
    CHECK_EQ_INT(d.n, 2);
    CHECK(d.more == 1);
    CHECK(d.site_len == 6 && memcmp(d.site, "site-b", 6) == 0);
    CHECK(d.store_len == 32 && memcmp(d.store, "0123456789abcdef", 16) == 0);
    CHECK_EQ_INT(synclist_dec_bucket(&d, &(synclist_bucket_t){0}), CIO_EPROTO); /* the other kind */
    CHECK_EQ_INT(synclist_dec_key(&d, &out), 0);
    CHECK(out.key_len == 3 && memcmp(out.key, "a/b", 3) == 0 && out.hlc == 12345 && out.size == 99 && !out.deleted);
    CHECK(memcmp(out.etag, ETAG, 16) == 0 && out.origin_len == 6 && memcmp(out.origin, "site-a", 6) == 0);
    CHECK_EQ_INT(synclist_dec_key(&d, &out), 0);
    CHECK(out.key_len == 4 && out.deleted && out.size == 0 && out.hlc == 777);
    CHECK_EQ_INT(synclist_dec_key(&d, &out), CIO_ENOTFOUND);
    /* every cut of a valid listing is refused as a whole */
    for (size_t cut = 0; cut < len; cut++) {
        char *p = test_dup_exact(copy, cut);
        synclist_dec_t dd;
        CHECK(synclist_dec_init(&dd, p, cut) == CIO_EPROTO);
        free(p);
    }
    free(copy);
    synclist_enc_free(&e);
}

static void test_buckets_round_trip(void)
{
    synclist_enc_t e;
    synclist_dec_t d;
    synclist_bucket_t b, out;
    const char *buf;
    size_t len;

    CHECK_EQ_INT(synclist_enc_init(&e, SYNCLIST_BUCKETS, "site-b", 6, "", 0), 0);
    memset(&b, 0, sizeof(b));
    b.name = "photos";
    b.name_len = 6;
    b.hlc = 5;
    b.origin = "site-a";
    b.origin_len = 6;
    b.deleted = 1;
    b.purge_hlc = 9;
    b.purge_origin = "site-c";
    b.purge_origin_len = 6;
    CHECK_EQ_INT(synclist_enc_bucket(&e, &b), 0);
    CHECK_EQ_INT(synclist_enc_finish(&e, 0, &buf, &len), 0);
    CHECK_EQ_INT(synclist_dec_init(&d, buf, len), 0);
    CHECK(d.kind == SYNCLIST_BUCKETS && d.n == 1 && d.more == 0 && d.store_len == 0);
    CHECK_EQ_INT(synclist_dec_bucket(&d, &out), 0);
    CHECK(out.name_len == 6 && memcmp(out.name, "photos", 6) == 0 && out.hlc == 5 && out.deleted == 1 && out.purge_hlc == 9);
    CHECK(out.purge_origin_len == 6 && memcmp(out.purge_origin, "site-c", 6) == 0);
    CHECK_EQ_INT(synclist_dec_bucket(&d, &out), CIO_ENOTFOUND);
    synclist_enc_free(&e);
}

static void test_encoder_refusals(void)
{
    synclist_enc_t e;
    synclist_key_t k;
    CHECK_EQ_INT(synclist_enc_init(&e, SYNCLIST_KEYS, "", 0, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(synclist_enc_init(&e, (synclist_kind_t)7, "s", 1, NULL, 0), CIO_EINVAL);
    CHECK_EQ_INT(synclist_enc_init(&e, SYNCLIST_KEYS, "s", 1, "x", SYNCLIST_STORE_MAX + 1), CIO_EINVAL);
    CHECK_EQ_INT(synclist_enc_init(&e, SYNCLIST_KEYS, "s", 1, NULL, 0), 0);
    memset(&k, 0, sizeof(k));
    k.key = "k";
    k.key_len = 1;
    CHECK_EQ_INT(synclist_enc_key(&e, &k), CIO_EINVAL); /* version 0 */
    k.hlc = 1;
    k.deleted = 1;
    k.size = 3;
    CHECK_EQ_INT(synclist_enc_key(&e, &k), CIO_EINVAL); /* a tombstone with a size */
    k.size = 0;
    k.key_len = LOGREC_KEY_MAX + 1;
    CHECK_EQ_INT(synclist_enc_key(&e, &k), CIO_EINVAL);
    CHECK_EQ_INT(e.n, 0);
    synclist_enc_free(&e);
}

/* Hand-made listings: what a decoder must refuse, and what it must accept. */
static void test_decoder_edges(void)
{
    synclist_dec_t d;
    synclist_key_t k;
    /* {"v":1,"site":"b","more":false,"keys":[]} plus an unknown key: accepted */
    static const char ok[] = "\x85\xa1v\x01\xa4site\xa1"
                             "b\xa4more\xc2\xa4keys\x90\xa6"
                             "future\xc0";
    CHECK_EQ_INT(synclist_dec_init(&d, ok, sizeof(ok) - 1), 0);
    CHECK(d.n == 0 && d.store_len == 0);
    /* both lists */
    static const char both[] = "\x85\xa1v\x01\xa4site\xa1"
                               "b\xa4more\xc2\xa4keys\x90\xa7"
                               "buckets\x90";
    CHECK_EQ_INT(synclist_dec_init(&d, both, sizeof(both) - 1), CIO_EPROTO);
    /* "more" not a bool */
    static const char more[] = "\x84\xa1v\x01\xa4site\xa1"
                               "b\xa4more\x01\xa4keys\x90";
    CHECK_EQ_INT(synclist_dec_init(&d, more, sizeof(more) - 1), CIO_EPROTO);
    /* a newer format */
    static const char v2[] = "\x84\xa1v\x02\xa4site\xa1"
                             "b\xa4more\xc2\xa4keys\x90";
    CHECK_EQ_INT(synclist_dec_init(&d, v2, sizeof(v2) - 1), CIO_EPROTO);
    /* a key entry without "d", and a tombstone with an ETag */
    static const char nod[] = "\x84\xa1v\x01\xa4site\xa1"
                              "b\xa4more\xc2\xa4keys\x91\x82\xa1k\xc4\x01x\xa1h\x01";
    CHECK_EQ_INT(synclist_dec_init(&d, nod, sizeof(nod) - 1), 0);
    CHECK_EQ_INT(synclist_dec_key(&d, &k), CIO_EPROTO);
    static const char tomb[] = "\x84\xa1v\x01\xa4site\xa1"
                               "b\xa4more\xc2\xa4keys\x91\x84\xa1k\xc4\x01x\xa1h\x01\xa1"
                               "d\xc3\xa1s\x00";
    CHECK_EQ_INT(synclist_dec_init(&d, tomb, sizeof(tomb) - 1), 0);
    CHECK_EQ_INT(synclist_dec_key(&d, &k), CIO_EPROTO);
    CHECK_EQ_INT(synclist_dec_init(&d, NULL, 0), CIO_EPROTO);
}

int main(void)
{
    RUN(test_keys_round_trip);
    RUN(test_buckets_round_trip);
    RUN(test_encoder_refusals);
    RUN(test_decoder_edges);
    return TEST_SUMMARY();
}
