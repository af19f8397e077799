/* synclist.c - the replication listing codec: a msgpack-c encoder, a bounded zero-copy decoder. */
#include <string.h>
#include "proto/mpread.h"
#include "proto/mpwrite.h"
#include "proto/synclist.h"

#define MAP_MAX 32        /* known keys are 4 to 6; room for later ones, bounded work */
#define FIELD_NAME_MAX 64 /* longest map key accepted */

int synclist_enc_init(synclist_enc_t *e, synclist_kind_t kind, const char *site, size_t site_len, const char *store,
                      size_t store_len)
{
    static const char count32[5] = {(char)0xdd, 0, 0, 0, 0};
    if (e == NULL || (kind != SYNCLIST_BUCKETS && kind != SYNCLIST_KEYS) || site == NULL || site_len == 0 ||
        site_len > LOGREC_ORIGIN_MAX || store_len > SYNCLIST_STORE_MAX || (store == NULL && store_len > 0))
        return CIO_EINVAL;
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
    /* "more" and the entries go last: both are patched at finish */
    if (msgpack_pack_map(&e->pk, 5) != 0 || mpw_key(&e->pk, "v") != 0 ||
        msgpack_pack_uint64(&e->pk, SYNCLIST_FORMAT_VERSION) != 0 || mpw_key(&e->pk, "site") != 0 ||
        mpw_str(&e->pk, site, site_len) != 0 || mpw_key(&e->pk, "store") != 0 || mpw_str(&e->pk, store, store_len) != 0 ||
        mpw_key(&e->pk, "more") != 0)
        goto fail;
    e->more_off = e->sb.size;
    if (msgpack_pack_false(&e->pk) != 0 || mpw_key(&e->pk, kind == SYNCLIST_BUCKETS ? "buckets" : "keys") != 0)
        goto fail;
    e->count_off = e->sb.size;
    if (msgpack_sbuffer_write(&e->sb, count32, sizeof(count32)) != 0)
        goto fail;
    return 0;
fail:
    msgpack_sbuffer_destroy(&e->sb);
    memset(e, 0, sizeof(*e));
    return CIO_ENOMEM;
}

/* Cuts sb back to `size` after a failed append: the listing stays as it was. */
static int undo(synclist_enc_t *e, size_t size)
{
    e->sb.size = size;
    return CIO_ENOMEM;
}

int synclist_enc_bucket(synclist_enc_t *e, const synclist_bucket_t *b)
{
    if (e == NULL || e->sb.data == NULL || e->kind != SYNCLIST_BUCKETS || b == NULL || b->name == NULL || b->name_len == 0 ||
        b->name_len > LOGREC_BUCKET_MAX || b->origin_len > LOGREC_ORIGIN_MAX || b->purge_origin_len > LOGREC_ORIGIN_MAX ||
        (b->origin == NULL && b->origin_len > 0) || (b->purge_origin == NULL && b->purge_origin_len > 0))
        return CIO_EINVAL;
    if (e->n >= SYNCLIST_MAX_ENTRIES)
        return CIO_ETOOBIG;
    size_t at = e->sb.size;
    msgpack_packer *pk = &e->pk;
    if (msgpack_pack_map(pk, 6) != 0 || mpw_key(pk, "n") != 0 || mpw_str(pk, b->name, b->name_len) != 0 || mpw_key(pk, "h") != 0 ||
        msgpack_pack_uint64(pk, b->hlc) != 0 || mpw_key(pk, "o") != 0 || mpw_str(pk, b->origin, b->origin_len) != 0 ||
        mpw_key(pk, "d") != 0 || (b->deleted ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) != 0 || mpw_key(pk, "ph") != 0 ||
        msgpack_pack_uint64(pk, b->purge_hlc) != 0 || mpw_key(pk, "po") != 0 ||
        mpw_str(pk, b->purge_origin, b->purge_origin_len) != 0)
        return undo(e, at);
    e->n++;
    return 0;
}

static int zero16(const uint8_t *p)
{
    for (int i = 0; i < 16; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

int synclist_enc_key(synclist_enc_t *e, const synclist_key_t *k)
{
    if (e == NULL || e->sb.data == NULL || e->kind != SYNCLIST_KEYS || k == NULL || k->key == NULL || k->key_len == 0 ||
        k->key_len > LOGREC_KEY_MAX || k->hlc == 0 || k->origin_len > LOGREC_ORIGIN_MAX ||
        (k->origin == NULL && k->origin_len > 0) || (k->deleted && (k->size != 0 || !zero16(k->etag))))
        return CIO_EINVAL;
    if (e->n >= SYNCLIST_MAX_ENTRIES)
        return CIO_ETOOBIG;
    size_t at = e->sb.size;
    msgpack_packer *pk = &e->pk;
    if (msgpack_pack_map(pk, k->deleted ? 4 : 6) != 0 || mpw_key(pk, "k") != 0 || mpw_bin(pk, k->key, k->key_len) != 0 ||
        mpw_key(pk, "h") != 0 || msgpack_pack_uint64(pk, k->hlc) != 0 || mpw_key(pk, "o") != 0 ||
        mpw_str(pk, k->origin, k->origin_len) != 0 || mpw_key(pk, "d") != 0 ||
        (k->deleted ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) != 0)
        return undo(e, at);
    if (!k->deleted &&
        (mpw_key(pk, "e") != 0 || mpw_bin(pk, k->etag, 16) != 0 || mpw_key(pk, "s") != 0 || msgpack_pack_uint64(pk, k->size) != 0))
        return undo(e, at);
    e->n++;
    return 0;
}

int synclist_enc_finish(synclist_enc_t *e, int more, const char **buf, size_t *len)
{
    if (e == NULL || e->sb.data == NULL || buf == NULL || len == NULL)
        return CIO_EINVAL;
    uint8_t *p = (uint8_t *)e->sb.data;
    p[e->more_off] = more ? 0xc3 : 0xc2;
    uint32_t n = (uint32_t)e->n;
    p[e->count_off + 1] = (uint8_t)(n >> 24);
    p[e->count_off + 2] = (uint8_t)(n >> 16);
    p[e->count_off + 3] = (uint8_t)(n >> 8);
    p[e->count_off + 4] = (uint8_t)n;
    *buf = e->sb.data;
    *len = e->sb.size;
    return 0;
}

void synclist_enc_free(synclist_enc_t *e)
{
    if (e == NULL)
        return;
    msgpack_sbuffer_destroy(&e->sb);
    memset(e, 0, sizeof(*e));
}

/* ---- decoding ---- */

static int key_is(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

static int see(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return CIO_EPROTO;
    *seen |= bit;
    return 0;
}

static int read_bool(mpread_t *rd, int *v)
{
    if (mpread_left(rd) < 1 || (rd->p[0] != 0xc2 && rd->p[0] != 0xc3))
        return CIO_EPROTO;
    *v = rd->p[0] == 0xc3;
    rd->p++;
    return 0;
}

enum { E_V = 1, E_SITE = 2, E_STORE = 4, E_MORE = 8, E_LIST = 16 };

int synclist_dec_init(synclist_dec_t *d, const char *buf, size_t len)
{
    synclist_dec_t t;
    mpread_t rd;
    size_t nkeys;
    unsigned seen = 0;

    if (d == NULL || (buf == NULL && len > 0))
        return CIO_EPROTO;
    memset(&t, 0, sizeof(t));
    t.store = "";
    mpread_init(&rd, buf, len);
    if (mpread_map(&rd, MAP_MAX, &nkeys) != 0)
        return CIO_EPROTO;
    for (size_t i = 0; i < nkeys; i++) {
        const char *k;
        size_t klen;
        uint64_t v;
        if (mpread_str(&rd, &k, &klen, FIELD_NAME_MAX) != 0)
            return CIO_EPROTO;
        if (key_is(k, klen, "v")) {
            if (see(&seen, E_V) != 0 || mpread_uint(&rd, &v) != 0 || v < 1 || v > SYNCLIST_FORMAT_VERSION)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "site")) {
            if (see(&seen, E_SITE) != 0 || mpread_str(&rd, &t.site, &t.site_len, LOGREC_ORIGIN_MAX) != 0 || t.site_len == 0)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "store")) {
            if (see(&seen, E_STORE) != 0 || mpread_str(&rd, &t.store, &t.store_len, SYNCLIST_STORE_MAX) != 0)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "more")) {
            if (see(&seen, E_MORE) != 0 || read_bool(&rd, &t.more) != 0)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "buckets") || key_is(k, klen, "keys")) {
            if (see(&seen, E_LIST) != 0 || mpread_array(&rd, SYNCLIST_MAX_ENTRIES, &t.n) != 0)
                return CIO_EPROTO;
            t.kind = k[0] == 'b' ? SYNCLIST_BUCKETS : SYNCLIST_KEYS;
            t.next = (size_t)((const char *)rd.p - buf);
            for (size_t j = 0; j < t.n; j++)
                if (mpread_skip(&rd) != 0)
                    return CIO_EPROTO;
        } else if (mpread_skip(&rd) != 0) {
            return CIO_EPROTO;
        }
    }
    if (mpread_left(&rd) != 0 || (seen & (E_V | E_SITE | E_MORE | E_LIST)) != (E_V | E_SITE | E_MORE | E_LIST))
        return CIO_EPROTO;
    t.buf = buf;
    t.len = len;
    *d = t;
    return 0;
}

enum { B_N = 1, B_H = 2, B_O = 4, B_D = 8, B_PH = 16, B_PO = 32 };

int synclist_dec_bucket(synclist_dec_t *d, synclist_bucket_t *out)
{
    synclist_bucket_t b;
    mpread_t rd;
    size_t nkeys;
    unsigned seen = 0;

    if (d == NULL || out == NULL || d->kind != SYNCLIST_BUCKETS)
        return CIO_EPROTO;
    if (d->index >= d->n)
        return CIO_ENOTFOUND;
    memset(&b, 0, sizeof(b));
    b.origin = b.purge_origin = "";
    mpread_init(&rd, d->buf + d->next, d->len - d->next);
    if (mpread_map(&rd, MAP_MAX, &nkeys) != 0)
        return CIO_EPROTO;
    for (size_t i = 0; i < nkeys; i++) {
        const char *k;
        size_t klen;
        int ret;
        if (mpread_str(&rd, &k, &klen, FIELD_NAME_MAX) != 0)
            return CIO_EPROTO;
        if (key_is(k, klen, "n"))
            ret = see(&seen, B_N) != 0 || mpread_str(&rd, &b.name, &b.name_len, LOGREC_BUCKET_MAX) != 0 || b.name_len == 0;
        else if (key_is(k, klen, "h"))
            ret = see(&seen, B_H) != 0 || mpread_uint(&rd, &b.hlc) != 0;
        else if (key_is(k, klen, "o"))
            ret = see(&seen, B_O) != 0 || mpread_str(&rd, &b.origin, &b.origin_len, LOGREC_ORIGIN_MAX) != 0;
        else if (key_is(k, klen, "d"))
            ret = see(&seen, B_D) != 0 || read_bool(&rd, &b.deleted) != 0;
        else if (key_is(k, klen, "ph"))
            ret = see(&seen, B_PH) != 0 || mpread_uint(&rd, &b.purge_hlc) != 0;
        else if (key_is(k, klen, "po"))
            ret = see(&seen, B_PO) != 0 || mpread_str(&rd, &b.purge_origin, &b.purge_origin_len, LOGREC_ORIGIN_MAX) != 0;
        else
            ret = mpread_skip(&rd) != 0;
        if (ret)
            return CIO_EPROTO;
    }
    if (!(seen & B_N))
        return CIO_EPROTO;
    d->next = (size_t)((const char *)rd.p - d->buf);
    d->index++;
    *out = b;
    return 0;
}

enum { K_K = 1, K_H = 2, K_O = 4, K_D = 8, K_E = 16, K_S = 32 };

int synclist_dec_key(synclist_dec_t *d, synclist_key_t *out)
{
    synclist_key_t kk;
    mpread_t rd;
    size_t nkeys;
    unsigned seen = 0;

    if (d == NULL || out == NULL || d->kind != SYNCLIST_KEYS)
        return CIO_EPROTO;
    if (d->index >= d->n)
        return CIO_ENOTFOUND;
    memset(&kk, 0, sizeof(kk));
    kk.origin = "";
    mpread_init(&rd, d->buf + d->next, d->len - d->next);
    if (mpread_map(&rd, MAP_MAX, &nkeys) != 0)
        return CIO_EPROTO;
    for (size_t i = 0; i < nkeys; i++) {
        const char *k, *etag;
        size_t klen, elen;
        int ret;
        if (mpread_str(&rd, &k, &klen, FIELD_NAME_MAX) != 0)
            return CIO_EPROTO;
        if (key_is(k, klen, "k"))
            ret = see(&seen, K_K) != 0 || mpread_bin(&rd, &kk.key, &kk.key_len, LOGREC_KEY_MAX) != 0 || kk.key_len == 0;
        else if (key_is(k, klen, "h"))
            ret = see(&seen, K_H) != 0 || mpread_uint(&rd, &kk.hlc) != 0 || kk.hlc == 0;
        else if (key_is(k, klen, "o"))
            ret = see(&seen, K_O) != 0 || mpread_str(&rd, &kk.origin, &kk.origin_len, LOGREC_ORIGIN_MAX) != 0;
        else if (key_is(k, klen, "d"))
            ret = see(&seen, K_D) != 0 || read_bool(&rd, &kk.deleted) != 0;
        else if (key_is(k, klen, "e")) {
            ret = see(&seen, K_E) != 0 || mpread_bin(&rd, &etag, &elen, 16) != 0 || elen != 16;
            if (!ret)
                memcpy(kk.etag, etag, 16);
        } else if (key_is(k, klen, "s"))
            ret = see(&seen, K_S) != 0 || mpread_uint(&rd, &kk.size) != 0;
        else
            ret = mpread_skip(&rd) != 0;
        if (ret)
            return CIO_EPROTO;
    }
    if ((seen & (K_K | K_H | K_D)) != (K_K | K_H | K_D))
        return CIO_EPROTO;
    if (kk.deleted ? (seen & (K_E | K_S)) != 0 : (seen & (K_E | K_S)) != (K_E | K_S))
        return CIO_EPROTO;
    d->next = (size_t)((const char *)rd.p - d->buf);
    d->index++;
    *out = kk;
    return 0;
}
