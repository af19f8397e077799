/* fuzz_synclist.c - libFuzzer target for the replication listing decoder (proto/synclist.c).
 *
 * Input: a listing, as repld's full sync receives it from GET
 * /admin/replication/list. Invariants: a refused envelope or entry leaves
 * the outputs untouched; accepted entries keep the documented bounds and
 * point into the input; and decode -> encode -> decode gives the same
 * entries back. */
#include "proto/synclist.h"
#include "fuzz.h"

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    synclist_dec_t d, d2, sentinel;
    synclist_enc_t enc;
    const char *out;
    size_t outlen, n = 0;
    int rc;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    d = sentinel;
    if (synclist_dec_init(&d, (const char *)data, size) != 0) {
        FUZZ_CHECK(memcmp(&d, &sentinel, sizeof(d)) == 0);
        return 0;
    }
    FUZZ_CHECK(d.kind == SYNCLIST_BUCKETS || d.kind == SYNCLIST_KEYS);
    FUZZ_CHECK(d.n <= SYNCLIST_MAX_ENTRIES && d.n <= size && (d.more == 0 || d.more == 1));
    FUZZ_CHECK(d.site_len >= 1 && d.site_len <= LOGREC_ORIGIN_MAX && fuzz_inside(d.site, d.site_len, data, size));
    FUZZ_CHECK(d.store_len <= SYNCLIST_STORE_MAX && fuzz_inside(d.store, d.store_len, data, size));
    FUZZ_CHECK(synclist_enc_init(&enc, d.kind, d.site, d.site_len, d.store, d.store_len) == 0);
    for (;;) {
        synclist_dec_t before = d;
        if (d.kind == SYNCLIST_KEYS) {
            synclist_key_t k, ks;
            memset(&ks, 0x5a, sizeof(ks));
            k = ks;
            rc = synclist_dec_key(&d, &k);
            if (rc != 0) {
                FUZZ_CHECK(memcmp(&k, &ks, sizeof(k)) == 0 && memcmp(&before, &d, sizeof(d)) == 0);
                break;
            }
            FUZZ_CHECK(k.key_len >= 1 && k.key_len <= LOGREC_KEY_MAX && fuzz_inside(k.key, k.key_len, data, size));
            FUZZ_CHECK(k.hlc != 0 && k.origin_len <= LOGREC_ORIGIN_MAX && fuzz_inside(k.origin, k.origin_len, data, size));
            FUZZ_CHECK(!k.deleted || k.size == 0);
            FUZZ_CHECK(synclist_enc_key(&enc, &k) == 0);
        } else {
            synclist_bucket_t b, bs;
            memset(&bs, 0x5a, sizeof(bs));
            b = bs;
            rc = synclist_dec_bucket(&d, &b);
            if (rc != 0) {
                FUZZ_CHECK(memcmp(&b, &bs, sizeof(b)) == 0 && memcmp(&before, &d, sizeof(d)) == 0);
                break;
            }
            FUZZ_CHECK(b.name_len >= 1 && b.name_len <= LOGREC_BUCKET_MAX && fuzz_inside(b.name, b.name_len, data, size));
            FUZZ_CHECK(fuzz_inside(b.origin, b.origin_len, data, size) &&
                       fuzz_inside(b.purge_origin, b.purge_origin_len, data, size));
            FUZZ_CHECK(synclist_enc_bucket(&enc, &b) == 0);
        }
        n++;
    }
    FUZZ_CHECK(rc == CIO_ENOTFOUND || rc == CIO_EPROTO);
    if (rc == CIO_ENOTFOUND) {
        FUZZ_CHECK(n == d.n);
        /* the round trip: the same entries, in the same order */
        FUZZ_CHECK(synclist_enc_finish(&enc, d.more, &out, &outlen) == 0);
        FUZZ_CHECK(synclist_dec_init(&d2, out, outlen) == 0);
        FUZZ_CHECK(d2.kind == d.kind && d2.n == n && d2.more == d.more && same_bytes(d2.site, d2.site_len, d.site, d.site_len) &&
                   same_bytes(d2.store, d2.store_len, d.store, d.store_len));
        synclist_dec_t again;
        FUZZ_CHECK(synclist_dec_init(&again, (const char *)data, size) == 0);
        for (size_t i = 0; i < n; i++) {
            if (d.kind == SYNCLIST_KEYS) {
                synclist_key_t a, b;
                FUZZ_CHECK(synclist_dec_key(&again, &a) == 0 && synclist_dec_key(&d2, &b) == 0);
                FUZZ_CHECK(same_bytes(a.key, a.key_len, b.key, b.key_len) && a.hlc == b.hlc && a.deleted == b.deleted &&
                           a.size == b.size && memcmp(a.etag, b.etag, 16) == 0 &&
                           same_bytes(a.origin, a.origin_len, b.origin, b.origin_len));
            } else {
                synclist_bucket_t a, b;
                FUZZ_CHECK(synclist_dec_bucket(&again, &a) == 0 && synclist_dec_bucket(&d2, &b) == 0);
                FUZZ_CHECK(same_bytes(a.name, a.name_len, b.name, b.name_len) && a.hlc == b.hlc && a.deleted == b.deleted &&
                           a.purge_hlc == b.purge_hlc && same_bytes(a.origin, a.origin_len, b.origin, b.origin_len) &&
                           same_bytes(a.purge_origin, a.purge_origin_len, b.purge_origin, b.purge_origin_len));
            }
        }
    }
    synclist_enc_free(&enc);
    return 0;
}
