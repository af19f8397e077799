/* quarantine.c - damaged extents kept out of the allocator: their records under "quarantine/" in the "scrub" table. */
#include <inttypes.h>
#include <string.h>
#include "common/be.h"
#include "common/date.h"
#include "common/log.h"
#include "storaged/quarantine.h"

#define PREFIX_LEN (sizeof(QUARANTINE_PREFIX) - 1)
#define KEY_LEN (PREFIX_LEN + 8)

static void make_key(uint8_t k[KEY_LEN], uint64_t off)
{
    memcpy(k, QUARANTINE_PREFIX, PREFIX_LEN);
    be_put(k + PREFIX_LEN, off, 8);
}

int quarantine_add(meta_t *m, MDB_txn *txn, alloc_extent_t e, const scrubrec_damaged_t *object)
{
    uint8_t k[KEY_LEN], v[SCRUBREC_QUARANTINE_MAX];
    scrubrec_quarantine_t q = {e.len, *object};
    size_t n = scrubrec_quarantine_encode(v, &q);
    if (n == 0)
        return CIO_EINVAL;
    make_key(k, e.off);
    MDB_val key = {KEY_LEN, k}, val = {n, v};
    return meta_err(mdb_put(txn, m->scrub, &key, &val, 0), "mdb_put(scrub quarantine)");
}

/* Calls visit for each record in key order until it returns non-zero. 0, that value, CIO_EPROTO or a meta_err code. */
static int each(meta_t *m, MDB_txn *txn, int (*visit)(void *arg, uint64_t off, const scrubrec_quarantine_t *q), void *arg)
{
    uint8_t seek[KEY_LEN];
    MDB_cursor *c;
    MDB_val k, v;
    int rc, ret = 0;

    make_key(seek, 0);
    if ((rc = mdb_cursor_open(txn, m->scrub, &c)) != 0)
        return meta_err(rc, "mdb_cursor_open(scrub)");
    k.mv_size = KEY_LEN;
    k.mv_data = seek;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        scrubrec_quarantine_t q;
        if (k.mv_size != KEY_LEN || memcmp(k.mv_data, QUARANTINE_PREFIX, PREFIX_LEN) != 0)
            break;
        if (scrubrec_quarantine_decode(v.mv_data, v.mv_size, &q) != 0) {
            log_msg(LOG_LVL_ERROR, "a quarantined extent's record does not decode", NULL);
            ret = CIO_EPROTO;
            break;
        }
        ret = visit(arg, be_get((const uint8_t *)k.mv_data + PREFIX_LEN, 8), &q);
    }
    if (rc != 0 && rc != MDB_NOTFOUND && ret == 0)
        ret = meta_err(rc, "mdb_cursor_get(scrub)");
    mdb_cursor_close(c);
    return ret;
}

typedef struct {
    uint64_t extents, bytes;
    buf_t *b;     /* quarantine_json: the list */
    meta_t *m;    /* quarantine_release */
    MDB_txn *txn; /* quarantine_release */
} tally_t;

static int count_one(void *arg, uint64_t off, const scrubrec_quarantine_t *q)
{
    tally_t *t = arg;
    t->extents++;
    t->bytes += q->len;
    return 0;
}

int quarantine_totals(meta_t *m, MDB_txn *txn, uint64_t *extents, uint64_t *bytes)
{
    tally_t t = {0};
    int ret = each(m, txn, count_one, &t);
    *extents = t.extents;
    *bytes = t.bytes;
    return ret == CIO_EPROTO ? 0 : ret; /* logged; the totals count what decodes */
}

static int show_one(void *arg, uint64_t off, const scrubrec_quarantine_t *q)
{
    tally_t *t = arg;
    char ts[DATE_ISO8601_MS_LEN + 1];
    if (t->extents++ >= QUARANTINE_SHOWN)
        return 1;
    buf_printf(t->b, "%s{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 ",\"bucket\":", t->extents > 1 ? "," : "", off, q->len);
    buf_json_str(t->b, q->object.bucket, q->object.blen);
    buf_puts(t->b, ",\"key\":");
    buf_json_str(t->b, q->object.key, q->object.klen);
    buf_printf(t->b, ",\"version\":%" PRIu64 ",\"origin\":", q->object.version);
    buf_json_str(t->b, q->object.origin, q->object.origin_len);
    if (q->object.block == UINT64_MAX)
        buf_puts(t->b, ",\"block\":null");
    else
        buf_printf(t->b, ",\"block\":%" PRIu64, q->object.block);
    date_iso8601_ms(q->object.found_ms, ts);
    buf_printf(t->b, ",\"quarantined\":\"%s\"}", ts);
    return 0;
}

int quarantine_json(meta_t *m, MDB_txn *txn, buf_t *b)
{
    uint64_t extents, bytes;
    tally_t t = {0};
    int ret;

    if ((ret = quarantine_totals(m, txn, &extents, &bytes)) != 0)
        return ret;
    buf_printf(b, ",\"quarantine\":{\"extents\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"list\":[", extents, bytes);
    t.b = b;
    ret = each(m, txn, show_one, &t);
    buf_puts(b, "]}");
    return ret == 1 || ret == CIO_EPROTO ? 0 : ret;
}

/* Keys are collected first: the table is not changed under the cursor. */
typedef struct {
    uint64_t off[64], len[64];
    size_t n;
} batch_t;

static int collect(void *arg, uint64_t off, const scrubrec_quarantine_t *q)
{
    batch_t *bt = arg;
    bt->off[bt->n] = off;
    bt->len[bt->n] = q->len;
    return ++bt->n == sizeof(bt->off) / sizeof(bt->off[0]);
}

int quarantine_release(meta_t *m, MDB_txn *txn, uint64_t *extents, uint64_t *bytes)
{
    batch_t bt;
    int ret;

    *extents = *bytes = 0;
    do {
        bt.n = 0;
        if ((ret = each(m, txn, collect, &bt)) != 0 && ret != 1)
            return ret;
        for (size_t i = 0; i < bt.n; i++) {
            uint8_t k[KEY_LEN];
            make_key(k, bt.off[i]);
            MDB_val key = {KEY_LEN, k};
            if ((ret = alloc_free(&m->alloc, txn, (alloc_extent_t){bt.off[i], bt.len[i]})) != 0)
                return ret;
            if ((ret = meta_err(mdb_del(txn, m->scrub, &key, NULL), "mdb_del(scrub quarantine)")) != 0)
                return ret;
            (*extents)++;
            *bytes += bt.len[i];
        }
    } while (bt.n == sizeof(bt.off) / sizeof(bt.off[0]));
    return 0;
}
