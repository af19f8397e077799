/* syncrec.c - the "repl_sync" table: each target's full sync record. */
#include <string.h>
#include "common/be.h"
#include "common/syncrec.h"

#define FORMAT 1
#define FIXED (3 + 8 * SYNCREC_COUNTERS)
#define TAIL (1 + 8 * 5)
#define REC_MAX (FIXED + 4 * (1 + 255) + 2 + LOGREC_KEY_MAX + 2 + SYNCREC_ERROR_MAX + TAIL)

const char *syncrec_phase_name(syncrec_phase_t p)
{
    switch (p) {
    case SYNCREC_IDLE:
        return "idle";
    case SYNCREC_RUNNING:
        return "running";
    case SYNCREC_DONE:
        return "done";
    case SYNCREC_CANCELLED:
        return "cancelled";
    }
    return "?";
}

const char *syncrec_reason_name(syncrec_reason_t r)
{
    switch (r) {
    case SYNCREC_NEW_TARGET:
        return "new target";
    case SYNCREC_STORE_REPLACED:
        return "store replaced";
    case SYNCREC_REQUESTED:
        return "requested";
    case SYNCREC_UNLOGGED:
        return "writes while replication was off";
    }
    return "";
}

static uint64_t *counter(syncrec_t *r, int i)
{
    uint64_t *v[SYNCREC_COUNTERS] = {&r->started_ms, &r->finished_ms,   &r->scanned, &r->scanned_bytes,
                                     &r->shipped,    &r->shipped_bytes, &r->skipped, &r->skipped_bytes,
                                     &r->failed,     &r->failed_bytes,  &r->extra,   &r->extra_bytes};
    return v[i];
}

/* Reads a string of `width` length bytes at *p into out (cap bytes with the NUL). */
static int get_str(const uint8_t **p, const uint8_t *end, int width, char *out, size_t cap, size_t *len)
{
    size_t n;
    if (end - *p < width)
        return CIO_EPROTO;
    n = width == 1 ? (*p)[0] : (size_t)be_get(*p, 2);
    *p += width;
    if (n + 1 > cap || (size_t)(end - *p) < n)
        return CIO_EPROTO;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    if (len != NULL)
        *len = n;
    return 0;
}

int syncrec_get(meta_t *m, MDB_txn *txn, const char *name, syncrec_t *r)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    const uint8_t *p, *end;
    size_t klen;
    int rc = mdb_get(txn, m->repl_sync, &k, &v);
    if (rc != 0)
        return meta_err(rc, "mdb_get(repl_sync)");
    p = v.mv_data;
    end = p + v.mv_size;
    if (v.mv_size < FIXED || p[0] != FORMAT || p[1] > SYNCREC_CANCELLED || p[2] > SYNCREC_UNLOGGED)
        return CIO_EPROTO;
    memset(r, 0, sizeof(*r));
    r->phase = (syncrec_phase_t)p[1];
    r->reason = (syncrec_reason_t)p[2];
    for (int i = 0; i < SYNCREC_COUNTERS; i++)
        *counter(r, i) = be_get(p + 3 + 8 * i, 8);
    p += FIXED;
    if (get_str(&p, end, 1, r->store_started, sizeof(r->store_started), NULL) != 0 ||
        get_str(&p, end, 1, r->store_done, sizeof(r->store_done), NULL) != 0 ||
        get_str(&p, end, 1, r->only_bucket, sizeof(r->only_bucket), NULL) != 0 ||
        get_str(&p, end, 1, r->bucket, sizeof(r->bucket), NULL) != 0 || get_str(&p, end, 2, r->key, sizeof(r->key), &klen) != 0 ||
        get_str(&p, end, 2, r->error, sizeof(r->error), NULL) != 0)
        return CIO_EPROTO;
    if (p != end) {
        /* the options' tail */
        if (end - p != TAIL)
            return CIO_EPROTO;
        r->flags = p[0];
        r->rate_limit = be_get(p + 1, 8);
        r->horizon = be_get(p + 9, 8);
        r->deleted = be_get(p + 17, 8);
        r->deleted_bytes = be_get(p + 25, 8);
        r->extra_buckets = be_get(p + 33, 8);
    }
    r->key_len = (uint16_t)klen;
    return 0;
}

static uint8_t *put_str(uint8_t *p, int width, const char *s, size_t n)
{
    if (width == 1)
        *p++ = (uint8_t)n;
    else
        be_put(p, n, 2), p += 2;
    memcpy(p, s, n);
    return p + n;
}

int syncrec_put(meta_t *m, MDB_txn *txn, const char *name, const syncrec_t *r)
{
    uint8_t buf[REC_MAX], *p = buf;
    syncrec_t c = *r;
    size_t el = strnlen(r->error, SYNCREC_ERROR_MAX);
    if (strlen(r->store_started) > SYNCREC_STORE_MAX || strlen(r->store_done) > SYNCREC_STORE_MAX ||
        strlen(r->only_bucket) > LOGREC_BUCKET_MAX || strlen(r->bucket) > LOGREC_BUCKET_MAX || r->key_len > LOGREC_KEY_MAX)
        return CIO_EINVAL;
    *p++ = FORMAT;
    *p++ = (uint8_t)r->phase;
    *p++ = (uint8_t)r->reason;
    for (int i = 0; i < SYNCREC_COUNTERS; i++, p += 8)
        be_put(p, *counter(&c, i), 8);
    p = put_str(p, 1, r->store_started, strlen(r->store_started));
    p = put_str(p, 1, r->store_done, strlen(r->store_done));
    p = put_str(p, 1, r->only_bucket, strlen(r->only_bucket));
    p = put_str(p, 1, r->bucket, strlen(r->bucket));
    p = put_str(p, 2, r->key, r->key_len);
    p = put_str(p, 2, r->error, el);
    *p++ = r->flags;
    be_put(p, r->rate_limit, 8);
    be_put(p + 8, r->horizon, 8);
    be_put(p + 16, r->deleted, 8);
    be_put(p + 24, r->deleted_bytes, 8);
    be_put(p + 32, r->extra_buckets, 8);
    p += 40;
    MDB_val k = {strlen(name), (void *)name}, v = {(size_t)(p - buf), buf};
    return meta_err(mdb_put(txn, m->repl_sync, &k, &v, 0), "mdb_put(repl_sync)");
}

int syncrec_del(meta_t *m, MDB_txn *txn, const char *name, size_t name_len)
{
    MDB_val k = {name_len, (void *)name};
    int rc = mdb_del(txn, m->repl_sync, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_del(repl_sync)");
}
