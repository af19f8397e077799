/* batch.c - the replication batch and reply codecs: msgpack-c encoders, bounded zero-copy decoders. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "proto/batch.h"
#include "proto/mpread.h"
#include "proto/mpwrite.h"

/* Each map (envelope, event, reply, result) has 2 to 4 known keys; the cap
 * leaves room for keys that later versions may add while bounding the work a
 * hostile map can cause. */
#define BATCH_MAP_MAX 32
/* Longest map key accepted; known keys are 1..3 bytes. */
#define BATCH_FIELD_NAME_MAX 64
/* msgpack's widest str/bin header counts 32 bits. */
#define BATCH_RAW_MAX ((uint64_t)UINT32_MAX)

const char *batch_result_name(batch_result_t r)
{
    switch (r) {
    case BATCH_APPLIED:
        return "applied";
    case BATCH_SKIPPED:
        return "skipped";
    case BATCH_RETRY:
        return "retry";
    case BATCH_PERMANENT:
        return "permanent";
    }
    return "?";
}

static int key_is(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

/* Marks `bit` seen; a known key given twice is malformed. */
static int see(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return CIO_EPROTO;
    *seen |= bit;
    return 0;
}

/* Reads the "v" field (once) and refuses a format newer than ours: it may
 * change the meaning of known fields. */
static int read_version(mpread_t *rd, unsigned *seen, unsigned bit)
{
    uint64_t v;
    int err;
    if ((err = see(seen, bit)) != 0 || (err = mpread_uint(rd, &v)) != 0)
        return err;
    return v < 1 || v > BATCH_FORMAT_VERSION ? CIO_EPROTO : 0;
}

/* ---- encoding ---- */

/* Writes the batch's header into e's empty buffer. */
static int enc_header(batch_enc_t *e, const char *src, size_t src_len)
{
    if (src == NULL || src_len == 0 || src_len > BATCH_SRC_MAX)
        return CIO_EINVAL;

    /* "ev" goes last: the events are appended after its header. */
    static const char count32[5] = {(char)0xdd, 0, 0, 0, 0};
    if (msgpack_pack_map(&e->pk, 3) != 0)
        goto fail;
    if (mpw_key(&e->pk, "v") != 0 || msgpack_pack_uint64(&e->pk, BATCH_FORMAT_VERSION) != 0)
        goto fail;
    if (mpw_key(&e->pk, "src") != 0 || mpw_str(&e->pk, src, src_len) != 0)
        goto fail;
    if (mpw_key(&e->pk, "ev") != 0)
        goto fail;
    e->count_off = e->sb.size;
    if (msgpack_sbuffer_write(&e->sb, count32, sizeof(count32)) != 0)
        goto fail;
    return 0;

fail:
    msgpack_sbuffer_destroy(&e->sb);
    msgpack_sbuffer_init(&e->sb);
    return CIO_ENOMEM;
}

int batch_enc_init(batch_enc_t *e, const char *src, size_t src_len)
{
    if (e == NULL)
        return CIO_EINVAL;
    memset(e, 0, sizeof(*e));
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
    return enc_header(e, src, src_len);
}

int batch_enc_restart(batch_enc_t *e, const char *src, size_t src_len)
{
    if (e == NULL)
        return CIO_EINVAL;
    if (e->sb.size > e->peak)
        e->peak = e->sb.size;
    e->sb.size = 0; /* the buffer keeps its capacity */
    e->nevents = 0;
    e->count_off = 0;
    return enc_header(e, src, src_len);
}

size_t batch_enc_capacity(const batch_enc_t *e)
{
    return e->sb.alloc;
}

int batch_enc_reserve(batch_enc_t *e, size_t bytes)
{
    if (e == NULL)
        return CIO_EINVAL;
    if (bytes <= e->sb.alloc)
        return 0;
    char *n = realloc(e->sb.data, bytes); /* msgpack_sbuffer_write grows it with realloc too */
    if (n == NULL)
        return CIO_ENOMEM;
    e->sb.data = n;
    e->sb.alloc = bytes;
    return 0;
}

size_t batch_enc_peak(const batch_enc_t *e)
{
    return e->sb.size > e->peak ? e->sb.size : e->peak;
}

/* Checks an event against the rules the decoder enforces. */
static int event_check(const void *rec, size_t rec_len, int has_data, const void *data, size_t data_len, const char *url,
                       size_t url_len)
{
    logrec_t r;
    if (rec_len > BATCH_RAW_MAX || (has_data && data_len > BATCH_RAW_MAX))
        return CIO_ETOOBIG;
    if (rec == NULL || logrec_decode(rec, rec_len, &r) != 0)
        return CIO_EINVAL;
    if (has_data && data == NULL && data_len != 0)
        return CIO_EINVAL;
    if (url != NULL && (url_len == 0 || url_len > BATCH_URL_MAX))
        return CIO_EINVAL;
    if (r.op == LOGREC_PUT) {
        if ((has_data != 0) == (url != NULL))
            return CIO_EINVAL;
        if (has_data && data_len != r.size)
            return CIO_EINVAL;
    } else if (has_data || url != NULL) {
        return CIO_EINVAL;
    }
    return 0;
}

int batch_enc_add(batch_enc_t *e, const void *rec, size_t rec_len, int has_data, const void *data, size_t data_len, const char *url,
                  size_t url_len)
{
    if (e == NULL || e->sb.data == NULL)
        return CIO_EINVAL;
    int err = event_check(rec, rec_len, has_data, data, data_len, url, url_len);
    if (err != 0)
        return err;
    if (e->nevents >= BATCH_MAX_EVENTS)
        return CIO_ETOOBIG;

    size_t start = e->sb.size;
    msgpack_packer *pk = &e->pk;
    if (msgpack_pack_map(pk, has_data || url != NULL ? 2 : 1) != 0)
        goto fail;
    if (mpw_key(pk, "r") != 0 || mpw_bin(pk, rec, rec_len) != 0)
        goto fail;
    if (has_data && (mpw_key(pk, "d") != 0 || mpw_bin(pk, data, data_len) != 0))
        goto fail;
    if (url != NULL && (mpw_key(pk, "u") != 0 || mpw_str(pk, url, url_len) != 0))
        goto fail;
    e->nevents++;
    return 0;

fail:
    /* The only failure of msgpack_sbuffer_write is realloc; drop the partial event. */
    e->sb.size = start;
    return CIO_ENOMEM;
}

int batch_enc_finish(batch_enc_t *e, const char **buf, size_t *len)
{
    if (e == NULL || e->sb.data == NULL || buf == NULL || len == NULL)
        return CIO_EINVAL;
    uint8_t *h = (uint8_t *)e->sb.data + e->count_off + 1;
    uint32_t n = (uint32_t)e->nevents;
    h[0] = (uint8_t)(n >> 24);
    h[1] = (uint8_t)(n >> 16);
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    *buf = e->sb.data;
    *len = e->sb.size;
    return 0;
}

void batch_enc_free(batch_enc_t *e)
{
    if (e == NULL)
        return;
    msgpack_sbuffer_destroy(&e->sb);
    memset(e, 0, sizeof(*e));
}

/* ---- decoding ---- */

static size_t offset_in(const mpread_t *rd, const char *buf)
{
    return (size_t)((const char *)rd->p - buf);
}

enum { E_V = 1u << 0, E_SRC = 1u << 1, E_EV = 1u << 2 };

int batch_dec_init(batch_dec_t *d, const char *buf, size_t len)
{
    if (d == NULL || buf == NULL)
        return CIO_EPROTO;
    batch_dec_t r;
    memset(&r, 0, sizeof(r));
    r.buf = buf;
    r.len = len;
    mpread_t rd;
    mpread_init(&rd, buf, len);
    size_t n;
    unsigned seen = 0;
    int err;

    if ((err = mpread_map(&rd, BATCH_MAP_MAX, &n)) != 0)
        return err;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if ((err = mpread_str(&rd, &k, &klen, BATCH_FIELD_NAME_MAX)) != 0)
            return err;
        if (key_is(k, klen, "v")) {
            if ((err = read_version(&rd, &seen, E_V)) != 0)
                return err;
        } else if (key_is(k, klen, "src")) {
            if ((err = see(&seen, E_SRC)) != 0 || (err = mpread_str(&rd, &r.src, &r.src_len, BATCH_SRC_MAX)) != 0)
                return err;
            if (r.src_len == 0)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "ev")) {
            if ((err = see(&seen, E_EV)) != 0 || (err = mpread_array(&rd, BATCH_MAX_EVENTS, &r.nevents)) != 0)
                return err;
            /* Walk over the events now so that the keys after "ev" are read
             * and a truncated array is refused before anything is applied. */
            r.next = offset_in(&rd, buf);
            for (size_t j = 0; j < r.nevents; j++)
                if ((err = mpread_skip(&rd)) != 0)
                    return err;
        } else if ((err = mpread_skip(&rd)) != 0) {
            return err; /* unknown keys: forward compatibility */
        }
    }
    if (mpread_left(&rd) != 0)
        return CIO_EPROTO;
    if (seen != (E_V | E_SRC | E_EV))
        return CIO_EPROTO;
    *d = r;
    return 0;
}

enum { F_R = 1u << 0, F_D = 1u << 1, F_U = 1u << 2 };

int batch_dec_next(batch_dec_t *d, batch_event_t *ev)
{
    if (d == NULL || ev == NULL || d->buf == NULL)
        return CIO_EPROTO;
    if (d->index >= d->nevents)
        return CIO_ENOTFOUND;
    if (d->next > d->len)
        return CIO_EPROTO;

    batch_event_t e;
    memset(&e, 0, sizeof(e));
    mpread_t rd;
    mpread_init(&rd, d->buf + d->next, d->len - d->next);
    size_t n;
    unsigned seen = 0;
    int err;

    if ((err = mpread_map(&rd, BATCH_MAP_MAX, &n)) != 0)
        return err;
    for (size_t i = 0; i < n; i++) {
        const char *k, *s;
        size_t klen;
        if ((err = mpread_str(&rd, &k, &klen, BATCH_FIELD_NAME_MAX)) != 0)
            return err;
        if (key_is(k, klen, "r")) {
            if ((err = see(&seen, F_R)) != 0 || (err = mpread_bin(&rd, &e.rec_raw, &e.rec_raw_len, BATCH_RAW_MAX)) != 0)
                return err;
        } else if (key_is(k, klen, "d")) {
            if ((err = see(&seen, F_D)) != 0 || (err = mpread_bin(&rd, &s, &e.data_len, BATCH_RAW_MAX)) != 0)
                return err;
            e.data = s;
            e.has_data = 1;
        } else if (key_is(k, klen, "u")) {
            if ((err = see(&seen, F_U)) != 0 || (err = mpread_str(&rd, &e.url, &e.url_len, BATCH_URL_MAX)) != 0)
                return err;
            if (e.url_len == 0)
                return CIO_EPROTO;
        } else if ((err = mpread_skip(&rd)) != 0) {
            return err;
        }
    }
    if ((seen & F_R) == 0)
        return CIO_EPROTO;
    if (logrec_decode(e.rec_raw, e.rec_raw_len, &e.rec) != 0)
        return CIO_EPROTO;
    if (e.rec.op == LOGREC_PUT) {
        if (e.has_data == (e.url != NULL))
            return CIO_EPROTO;
        if (e.has_data && e.data_len != e.rec.size)
            return CIO_EPROTO;
    } else if (e.has_data || e.url != NULL) {
        return CIO_EPROTO;
    }
    d->next += (d->len - d->next) - mpread_left(&rd);
    d->index++;
    *ev = e;
    return 0;
}

/* ---- the reply ---- */

/* Cuts an error text at BATCH_ERROR_MAX, backing off so as not to split a
 * UTF-8 sequence (at most 3 continuation bytes). */
static size_t error_cut(const char *s, size_t len)
{
    if (len <= BATCH_ERROR_MAX)
        return len;
    size_t n = BATCH_ERROR_MAX;
    for (int i = 0; i < 3 && n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80; i++)
        n--;
    return n;
}

int batch_reply_encode(const batch_res_t *res, size_t n, const char *site, size_t site_len, msgpack_sbuffer *sb)
{
    return batch_reply_encode_store(res, n, site, site_len, NULL, 0, sb);
}

int batch_reply_encode_store(const batch_res_t *res, size_t n, const char *site, size_t site_len, const char *store,
                             size_t store_len, msgpack_sbuffer *sb)
{
    if (sb == NULL || (res == NULL && n > 0) || n > BATCH_MAX_EVENTS ||
        (site != NULL && (site_len == 0 || site_len > BATCH_SRC_MAX)) ||
        (store != NULL && (store_len == 0 || store_len > BATCH_STORE_MAX)))
        return CIO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (res[i].result != BATCH_APPLIED && res[i].result != BATCH_SKIPPED && res[i].result != BATCH_RETRY &&
            res[i].result != BATCH_PERMANENT)
            return CIO_EINVAL;
        if (res[i].error == NULL && res[i].error_len != 0)
            return CIO_EINVAL;
    }

    size_t start = sb->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 2 + (site != NULL) + (store != NULL)) != 0)
        goto fail;
    if (mpw_key(&pk, "v") != 0 || msgpack_pack_uint64(&pk, BATCH_FORMAT_VERSION) != 0)
        goto fail;
    if (site != NULL && (mpw_key(&pk, "site") != 0 || mpw_str(&pk, site, site_len) != 0))
        goto fail;
    if (store != NULL && (mpw_key(&pk, "store") != 0 || mpw_str(&pk, store, store_len) != 0))
        goto fail;
    if (mpw_key(&pk, "res") != 0 || msgpack_pack_array(&pk, n) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const batch_res_t *r = &res[i];
        if (msgpack_pack_map(&pk, 4) != 0)
            goto fail;
        if (mpw_key(&pk, "seq") != 0 || msgpack_pack_uint64(&pk, r->seq) != 0)
            goto fail;
        if (mpw_key(&pk, "r") != 0 || msgpack_pack_uint64(&pk, (uint64_t)r->result) != 0)
            goto fail;
        if (mpw_key(&pk, "st") != 0 || msgpack_pack_uint64(&pk, r->status) != 0)
            goto fail;
        if (mpw_key(&pk, "e") != 0 || mpw_str(&pk, r->error, r->error ? error_cut(r->error, r->error_len) : 0) != 0)
            goto fail;
    }
    return 0;

fail:
    sb->size = start;
    return CIO_ENOMEM;
}

enum { R_SEQ = 1u << 0, R_R = 1u << 1, R_ST = 1u << 2, R_E = 1u << 3 };

static int decode_result(mpread_t *rd, batch_res_t *out)
{
    batch_res_t r;
    memset(&r, 0, sizeof(r));
    r.error = "";
    size_t n;
    unsigned seen = 0;
    uint64_t v;
    int err;

    if ((err = mpread_map(rd, BATCH_MAP_MAX, &n)) != 0)
        return err;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if ((err = mpread_str(rd, &k, &klen, BATCH_FIELD_NAME_MAX)) != 0)
            return err;
        if (key_is(k, klen, "seq")) {
            if ((err = see(&seen, R_SEQ)) != 0 || (err = mpread_uint(rd, &r.seq)) != 0)
                return err;
        } else if (key_is(k, klen, "r")) {
            if ((err = see(&seen, R_R)) != 0 || (err = mpread_uint(rd, &v)) != 0)
                return err;
            if (v > BATCH_PERMANENT)
                return CIO_EPROTO;
            r.result = (batch_result_t)v;
        } else if (key_is(k, klen, "st")) {
            if ((err = see(&seen, R_ST)) != 0 || (err = mpread_uint(rd, &v)) != 0)
                return err;
            if (v > UINT_MAX)
                return CIO_EPROTO;
            r.status = (unsigned)v;
        } else if (key_is(k, klen, "e")) {
            if ((err = see(&seen, R_E)) != 0 || (err = mpread_str(rd, &r.error, &r.error_len, BATCH_ERROR_MAX)) != 0)
                return err;
        } else if ((err = mpread_skip(rd)) != 0) {
            return err;
        }
    }
    if ((seen & (R_SEQ | R_R | R_ST)) != (R_SEQ | R_R | R_ST))
        return CIO_EPROTO;
    *out = r;
    return 0;
}

/* Decodes the result array at rd; writes into res only when `res` is not
 * NULL (the first pass only checks). */
static int decode_results(mpread_t *rd, batch_res_t *res, size_t n)
{
    size_t count;
    int err;
    if ((err = mpread_array(rd, BATCH_MAX_EVENTS, &count)) != 0)
        return err;
    if (count != n)
        return CIO_EPROTO;
    for (size_t i = 0; i < count; i++) {
        batch_res_t r;
        if ((err = decode_result(rd, &r)) != 0)
            return err;
        if (res != NULL)
            res[i] = r;
    }
    return 0;
}

enum { P_V = 1u << 0, P_RES = 1u << 1, P_SITE = 1u << 2, P_STORE = 1u << 3 };

int batch_reply_decode(const char *buf, size_t len, batch_res_t *res, size_t n, const char **site, size_t *site_len)
{
    return batch_reply_decode_store(buf, len, res, n, site, site_len, NULL, NULL);
}

int batch_reply_decode_store(const char *buf, size_t len, batch_res_t *res, size_t n, const char **site, size_t *site_len,
                             const char **store, size_t *store_len)
{
    const char *sv = NULL, *stv = NULL;
    size_t sl = 0, stl = 0;
    if (buf == NULL || (res == NULL && n > 0))
        return CIO_EPROTO;
    mpread_t rd, at_res;
    mpread_init(&rd, buf, len);
    at_res = rd;
    size_t m;
    unsigned seen = 0;
    int err;

    /* First pass: check everything, so that res is untouched on error. */
    if ((err = mpread_map(&rd, BATCH_MAP_MAX, &m)) != 0)
        return err;
    for (size_t i = 0; i < m; i++) {
        const char *k;
        size_t klen;
        if ((err = mpread_str(&rd, &k, &klen, BATCH_FIELD_NAME_MAX)) != 0)
            return err;
        if (key_is(k, klen, "v")) {
            if ((err = read_version(&rd, &seen, P_V)) != 0)
                return err;
        } else if (key_is(k, klen, "res")) {
            if ((err = see(&seen, P_RES)) != 0)
                return err;
            at_res = rd;
            if ((err = decode_results(&rd, NULL, n)) != 0)
                return err;
        } else if (key_is(k, klen, "site")) {
            if ((err = see(&seen, P_SITE)) != 0 || (err = mpread_str(&rd, &sv, &sl, BATCH_SRC_MAX)) != 0)
                return err;
            if (sl == 0)
                return CIO_EPROTO;
        } else if (key_is(k, klen, "store")) {
            if ((err = see(&seen, P_STORE)) != 0 || (err = mpread_str(&rd, &stv, &stl, BATCH_STORE_MAX)) != 0)
                return err;
            if (stl == 0)
                return CIO_EPROTO;
        } else if ((err = mpread_skip(&rd)) != 0) {
            return err;
        }
    }
    if (mpread_left(&rd) != 0 || (seen & (P_V | P_RES)) != (P_V | P_RES))
        return CIO_EPROTO;
    if ((err = decode_results(&at_res, res, n)) != 0)
        return err;
    if (site != NULL)
        *site = sv;
    if (site_len != NULL)
        *site_len = sl;
    if (store != NULL)
        *store = stv;
    if (store_len != NULL)
        *store_len = stl;
    return 0;
}
