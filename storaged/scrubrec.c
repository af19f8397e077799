/* scrubrec.c - the scrub's state and damaged-object records: encoding and strict decoding. */
#include <string.h>
#include "common/be.h"
#include "storaged/scrubrec.h"

static void put_pass(uint8_t **p, const scrub_pass_t *x)
{
    uint64_t f[8] = {x->pass,   (uint64_t)x->started_ms, (uint64_t)x->ended_ms, x->objects, x->bytes, x->damaged, x->filled,
                     x->skipped};
    for (int i = 0; i < 8; i++, *p += 8)
        be_put(*p, f[i], 8);
}

static void get_pass(const uint8_t **p, scrub_pass_t *x)
{
    uint64_t f[8];
    for (int i = 0; i < 8; i++, *p += 8)
        f[i] = be_get(*p, 8);
    x->pass = f[0];
    x->started_ms = (int64_t)f[1];
    x->ended_ms = (int64_t)f[2];
    x->objects = f[3];
    x->bytes = f[4];
    x->damaged = f[5];
    x->filled = f[6];
    x->skipped = f[7];
    x->repaired = 0; /* in the trailer, if any */
}

size_t scrubrec_state_encode(uint8_t *out, const scrubrec_state_t *s)
{
    uint8_t *p = out;
    size_t n = s->pos_len > SCRUBREC_POS_MAX ? SCRUBREC_POS_MAX : s->pos_len;
    *p++ = SCRUBREC_FORMAT;
    *p++ = s->running ? 1 : 0;
    put_pass(&p, &s->cur);
    put_pass(&p, &s->last);
    be_put(p, n, 2);
    memcpy(p + 2, s->pos, n);
    p += 2 + n;
    be_put(p, s->cur.repaired, 8);
    be_put(p + 8, s->last.repaired, 8);
    p += SCRUBREC_STATE_TRAILER;
    if (s->losers) {
        n = s->lpos_len > SCRUBREC_LPOS_MAX ? SCRUBREC_LPOS_MAX : s->lpos_len;
        *p = 1;
        be_put(p + 1, n, 2);
        memcpy(p + SCRUBREC_STATE_LOSERS, s->lpos, n);
        p += SCRUBREC_STATE_LOSERS + n;
    }
    return (size_t)(p - out);
}

int scrubrec_state_decode(const void *data, size_t len, scrubrec_state_t *s)
{
    const uint8_t *p = data;
    if (len < SCRUBREC_STATE_FIXED || p[0] != SCRUBREC_FORMAT || p[1] > 1)
        return CIO_EPROTO;
    s->running = p[1];
    p += 2;
    get_pass(&p, &s->cur);
    get_pass(&p, &s->last);
    s->pos_len = (size_t)be_get(p, 2);
    s->losers = 0;
    s->lpos_len = 0;
    size_t base = SCRUBREC_STATE_FIXED + s->pos_len, with_trailer = base + SCRUBREC_STATE_TRAILER;
    if (s->pos_len > SCRUBREC_POS_MAX || (len != base && len != with_trailer && len < with_trailer + SCRUBREC_STATE_LOSERS)) {
        s->pos_len = 0;
        return CIO_EPROTO;
    }
    if (len > with_trailer) {
        /* the losers' walk: marked 1, its position to the end */
        const uint8_t *w = (const uint8_t *)data + with_trailer;
        size_t n = (size_t)be_get(w + 1, 2);
        if (w[0] != 1 || n > SCRUBREC_LPOS_MAX || len != with_trailer + SCRUBREC_STATE_LOSERS + n) {
            s->pos_len = 0;
            return CIO_EPROTO;
        }
        s->losers = 1;
        s->lpos_len = n;
        memcpy(s->lpos, w + SCRUBREC_STATE_LOSERS, n);
    }
    memcpy(s->pos, p + 2, s->pos_len);
    if (len > base) {
        p += 2 + s->pos_len;
        s->cur.repaired = be_get(p, 8);
        s->last.repaired = be_get(p + 8, 8);
    }
    return 0;
}

size_t scrubrec_damaged_encode(uint8_t *out, const scrubrec_damaged_t *d)
{
    uint8_t *p = out;
    if (d->origin_len > LOGREC_ORIGIN_MAX || d->blen > LOGREC_BUCKET_MAX || d->klen > LOGREC_KEY_MAX)
        return 0;
    *p++ = SCRUBREC_FORMAT;
    be_put(p, d->version, 8);
    be_put(p + 8, d->block, 8);
    be_put(p + 16, (uint64_t)d->found_ms, 8);
    p += 24;
    *p++ = (uint8_t)d->origin_len;
    memcpy(p, d->origin, d->origin_len);
    p += d->origin_len;
    *p++ = (uint8_t)d->blen;
    memcpy(p, d->bucket, d->blen);
    p += d->blen;
    be_put(p, d->klen, 2);
    memcpy(p + 2, d->key, d->klen);
    return (size_t)(p + 2 + d->klen - out);
}

int scrubrec_damaged_decode(const void *data, size_t len, scrubrec_damaged_t *d)
{
    const uint8_t *p = data, *end = p + len;
    if (len < 1 + 24 + 1 || p[0] != SCRUBREC_FORMAT)
        return CIO_EPROTO;
    d->version = be_get(p + 1, 8);
    d->block = be_get(p + 9, 8);
    d->found_ms = (int64_t)be_get(p + 17, 8);
    p += 25;
    d->origin_len = *p++;
    if (d->origin_len > LOGREC_ORIGIN_MAX || (size_t)(end - p) < d->origin_len + 1)
        return CIO_EPROTO;
    d->origin = (const char *)p;
    p += d->origin_len;
    d->blen = *p++;
    if (d->blen > LOGREC_BUCKET_MAX || (size_t)(end - p) < d->blen + 2)
        return CIO_EPROTO;
    d->bucket = (const char *)p;
    p += d->blen;
    d->klen = (size_t)be_get(p, 2);
    p += 2;
    if (d->klen > LOGREC_KEY_MAX || (size_t)(end - p) != d->klen)
        return CIO_EPROTO;
    d->key = (const char *)p;
    return 0;
}

size_t scrubrec_quarantine_encode(uint8_t *out, const scrubrec_quarantine_t *q)
{
    size_t n = scrubrec_damaged_encode(out + 8, &q->object);
    if (n == 0)
        return 0;
    be_put(out, q->len, 8);
    return 8 + n;
}

int scrubrec_quarantine_decode(const void *data, size_t len, scrubrec_quarantine_t *q)
{
    if (len < 8)
        return CIO_EPROTO;
    q->len = be_get(data, 8);
    return scrubrec_damaged_decode((const uint8_t *)data + 8, len - 8, &q->object);
}
