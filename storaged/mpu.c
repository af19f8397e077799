/* mpu.c - the multipart upload tables and their record codec (mpu.h). */
#include <string.h>
#include "common/be.h"
#include "storaged/mpu.h"

#define UPLOAD_FORMAT 1
#define PART_FORMAT 1
#define PART_KEY_LEN (MPU_ID_LEN + 4)

_Static_assert(MPU_RECORD_MAX >= 1 + 8 + 4 * 2 + LOGREC_BUCKET_MAX + LOGREC_KEY_MAX + LOGREC_CTYPE_MAX + OBJMETA_MAX,
               "an upload record fits MPU_RECORD_MAX");
_Static_assert(MPU_PART_RECORD_LEN == 1 + 8 + 8 + 8 + 16 + 8, "a part record's length");

int mpu_open(meta_t *m, MDB_txn *txn)
{
    int rc;
    if ((rc = mdb_dbi_open(txn, "mpu", MDB_CREATE, &m->mpu)) != 0 ||
        (rc = mdb_dbi_open(txn, "mpu_part", MDB_CREATE, &m->mpu_part)) != 0)
        return meta_err(rc, "mdb_dbi_open(mpu)");
    return 0;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
    be_put(p, n, 2);
    memcpy(p + 2, s, n);
    return p + 2 + n;
}

size_t mpu_upload_encode(const mpu_upload_t *u, uint8_t *out)
{
    uint8_t *p = out;
    *p++ = UPLOAD_FORMAT;
    be_put(p, (uint64_t)u->initiated_ms, 8);
    p += 8;
    p = put_str(p, u->bucket, u->blen);
    p = put_str(p, u->key, u->klen);
    p = put_str(p, u->ctype, u->ctype_len);
    p = put_str(p, u->meta, u->meta_len);
    return (size_t)(p - out);
}

/* Reads a 2-byte length and that many bytes, at most cap, into dst; NUL-terminates when `nul`. */
static int get_str(const uint8_t **p, const uint8_t *end, void *dst, uint16_t *len, size_t cap, int nul)
{
    if (end - *p < 2)
        return CIO_EPROTO;
    size_t n = (size_t)be_get(*p, 2);
    *p += 2;
    if (n > cap || (size_t)(end - *p) < n)
        return CIO_EPROTO;
    memcpy(dst, *p, n);
    if (nul)
        ((char *)dst)[n] = '\0';
    *len = (uint16_t)n;
    *p += n;
    return 0;
}

int mpu_upload_decode(const uint8_t *buf, size_t len, mpu_upload_t *out)
{
    const uint8_t *p = buf, *end = buf + len;
    if (len < 9 || p[0] != UPLOAD_FORMAT)
        return CIO_EPROTO;
    out->initiated_ms = (int64_t)be_get(p + 1, 8);
    p += 9;
    if (get_str(&p, end, out->bucket, &out->blen, LOGREC_BUCKET_MAX, 1) != 0 || out->blen == 0 ||
        get_str(&p, end, out->key, &out->klen, LOGREC_KEY_MAX, 1) != 0 || out->klen == 0 ||
        get_str(&p, end, out->ctype, &out->ctype_len, LOGREC_CTYPE_MAX, 1) != 0 ||
        get_str(&p, end, out->meta, &out->meta_len, OBJMETA_MAX, 0) != 0 || p != end)
        return CIO_EPROTO;
    if (memchr(out->bucket, '\0', out->blen) != NULL || memchr(out->key, '\0', out->klen) != NULL ||
        memchr(out->ctype, '\0', out->ctype_len) != NULL)
        return CIO_EPROTO;
    if (out->meta_len > 0 && objmeta_validate(out->meta, out->meta_len) != 0)
        return CIO_EPROTO;
    return 0;
}

size_t mpu_part_encode(const mpu_part_t *p, uint8_t *out)
{
    out[0] = PART_FORMAT;
    be_put(out + 1, p->ext.off, 8);
    be_put(out + 9, p->ext.len, 8);
    be_put(out + 17, p->size, 8);
    memcpy(out + 25, p->md5, 16);
    be_put(out + 41, (uint64_t)p->mtime_ms, 8);
    return MPU_PART_RECORD_LEN;
}

int mpu_part_decode(const uint8_t *buf, size_t len, mpu_part_t *out)
{
    if (len != MPU_PART_RECORD_LEN || buf[0] != PART_FORMAT)
        return CIO_EPROTO;
    out->ext.off = be_get(buf + 1, 8);
    out->ext.len = be_get(buf + 9, 8);
    out->size = be_get(buf + 17, 8);
    memcpy(out->md5, buf + 25, 16);
    out->mtime_ms = (int64_t)be_get(buf + 41, 8);
    if (out->size > MPU_PART_SIZE_MAX || out->ext.len < out->size || out->ext.off > UINT64_MAX - out->ext.len)
        return CIO_EPROTO;
    return 0;
}

int mpu_id_valid(const char *id, size_t len)
{
    if (len != MPU_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

int mpu_get(meta_t *m, MDB_txn *txn, const char *id, mpu_upload_t *out)
{
    MDB_val k = {MPU_ID_LEN, (void *)id}, v;
    int rc = mdb_get(txn, m->mpu, &k, &v);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    if (rc != 0)
        return meta_err(rc, "mdb_get(mpu)");
    return mpu_upload_decode(v.mv_data, v.mv_size, out);
}

int mpu_put(meta_t *m, MDB_txn *txn, const char *id, const mpu_upload_t *u)
{
    uint8_t buf[MPU_RECORD_MAX];
    MDB_val k = {MPU_ID_LEN, (void *)id}, v = {mpu_upload_encode(u, buf), buf};
    return meta_err(mdb_put(txn, m->mpu, &k, &v, 0), "mdb_put(mpu)");
}

static void part_key(uint8_t *kb, const char *id, uint32_t number)
{
    memcpy(kb, id, MPU_ID_LEN);
    be_put(kb + MPU_ID_LEN, number, 4);
}

int mpu_part_get(meta_t *m, MDB_txn *txn, const char *id, uint32_t number, mpu_part_t *out)
{
    uint8_t kb[PART_KEY_LEN];
    part_key(kb, id, number);
    MDB_val k = {PART_KEY_LEN, kb}, v;
    int rc = mdb_get(txn, m->mpu_part, &k, &v);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    if (rc != 0)
        return meta_err(rc, "mdb_get(mpu_part)");
    out->number = number;
    return mpu_part_decode(v.mv_data, v.mv_size, out);
}

int mpu_part_put(meta_t *m, MDB_txn *txn, const char *id, const mpu_part_t *p, mpu_part_t *old, int *had_old)
{
    uint8_t kb[PART_KEY_LEN], vb[MPU_PART_RECORD_LEN];
    int ret = mpu_part_get(m, txn, id, p->number, old);
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    *had_old = ret == 0;
    part_key(kb, id, p->number);
    MDB_val k = {PART_KEY_LEN, kb}, v = {mpu_part_encode(p, vb), vb};
    return meta_err(mdb_put(txn, m->mpu_part, &k, &v, 0), "mdb_put(mpu_part)");
}

int mpu_part_each(meta_t *m, MDB_txn *txn, const char *id, uint32_t after, mpu_part_cb cb, void *ctx)
{
    uint8_t kb[PART_KEY_LEN];
    MDB_cursor *cur;
    mpu_part_t p;
    int rc, ret = 0;

    if (after >= UINT32_MAX)
        return 0;
    part_key(kb, id, after + 1);
    MDB_val k = {PART_KEY_LEN, kb}, v;
    if ((rc = mdb_cursor_open(txn, m->mpu_part, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(mpu_part)");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != PART_KEY_LEN || memcmp(k.mv_data, id, MPU_ID_LEN) != 0)
            break;
        p.number = (uint32_t)be_get((const uint8_t *)k.mv_data + MPU_ID_LEN, 4);
        if ((ret = mpu_part_decode(v.mv_data, v.mv_size, &p)) != 0 || (ret = cb(ctx, &p)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_cursor_get(mpu_part)");
}

int mpu_del(meta_t *m, MDB_txn *txn, const char *id, mpu_release_cb release, void *ctx, uint64_t *nparts, uint64_t *bytes)
{
    uint8_t kb[PART_KEY_LEN];
    MDB_cursor *cur;
    mpu_part_t p;
    int rc, ret;

    if (nparts != NULL)
        *nparts = 0;
    if (bytes != NULL)
        *bytes = 0;
    MDB_val uk = {MPU_ID_LEN, (void *)id};
    rc = mdb_del(txn, m->mpu, &uk, NULL);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOTFOUND;
    if (rc != 0)
        return meta_err(rc, "mdb_del(mpu)");
    if ((rc = mdb_cursor_open(txn, m->mpu_part, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(mpu_part)");
    for (;;) {
        part_key(kb, id, 0);
        MDB_val k = {PART_KEY_LEN, kb}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != PART_KEY_LEN || memcmp(k.mv_data, id, MPU_ID_LEN) != 0))) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        if ((ret = mpu_part_decode(v.mv_data, v.mv_size, &p)) != 0 ||
            (release != NULL && p.ext.len > 0 && (ret = release(ctx, p.ext)) != 0)) {
            mdb_cursor_close(cur);
            return ret;
        }
        if (nparts != NULL)
            (*nparts)++;
        if (bytes != NULL)
            *bytes += p.size;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 ? 0 : meta_err(rc, "mpu_del(mpu_part)");
}

int mpu_each(meta_t *m, MDB_txn *txn, const char *after, mpu_upload_cb cb, void *ctx)
{
    MDB_cursor *cur;
    mpu_upload_t u;
    int rc, ret = 0;
    MDB_val k = {MPU_ID_LEN, (void *)after}, v;

    if ((rc = mdb_cursor_open(txn, m->mpu, &cur)) != 0)
        return meta_err(rc, "mdb_cursor_open(mpu)");
    if (after != NULL) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == MPU_ID_LEN && memcmp(k.mv_data, after, MPU_ID_LEN) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != MPU_ID_LEN) {
            ret = CIO_EPROTO;
            break;
        }
        if ((ret = mpu_upload_decode(v.mv_data, v.mv_size, &u)) != 0 || (ret = cb(ctx, k.mv_data, &u)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_err(rc, "mdb_cursor_get(mpu)");
}

int mpu_count(meta_t *m, MDB_txn *txn, uint64_t *n)
{
    MDB_stat st;
    int rc = mdb_stat(txn, m->mpu, &st);
    if (rc != 0)
        return meta_err(rc, "mdb_stat(mpu)");
    *n = st.ms_entries;
    return 0;
}
