/* alloc.c - the extent allocator: best-fit allocation and coalescing free over two LMDB indexes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "common/alloc.h"
#include "common/log.h"

#define STATE_CAPACITY "capacity"
#define STATE_FREE "free"
#define STATE_RESERVED "reserved"

/* Big-endian keys make LMDB's default memcmp order the numeric order, so
 * MDB_SET_RANGE finds "the next offset" and "the smallest length >= n". */
static void be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* MAP_FULL is an expected condition the caller acts on (grow the map), so it
 * is not logged; anything else means a broken environment and is. */
static int db_err(int rc, const char *call)
{
    if (rc == MDB_MAP_FULL)
        return CIO_EMAPFULL;
    log_msg(LOG_LVL_ERROR, "LMDB call failed in the extent allocator", "call", call, "error", mdb_strerror(rc), NULL);
    return CIO_EDB;
}

static int state_get(const alloc_t *a, MDB_txn *txn, const char *name, uint64_t *out, int *found)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, a->state, &k, &v);

    *out = 0;
    if (found != NULL)
        *found = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return db_err(rc, "mdb_get");
    if (v.mv_size != 8)
        return CIO_EPROTO;
    *out = be64_get(v.mv_data);
    if (found != NULL)
        *found = 1;
    return 0;
}

static int state_put(const alloc_t *a, MDB_txn *txn, const char *name, uint64_t value)
{
    unsigned char buf[8];
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof(buf), buf};
    int rc;

    be64_put(buf, value);
    if ((rc = mdb_put(txn, a->state, &k, &v, 0)) != 0)
        return db_err(rc, "mdb_put");
    return 0;
}

static void len_key(unsigned char key[16], uint64_t off, uint64_t len)
{
    be64_put(key, len);
    be64_put(key + 8, off);
}

static int extent_put(const alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len)
{
    unsigned char okey[8], oval[8], lkey[16];
    MDB_val k = {sizeof(okey), okey}, v = {sizeof(oval), oval};
    int rc;

    be64_put(okey, off);
    be64_put(oval, len);
    if ((rc = mdb_put(txn, a->free_off, &k, &v, 0)) != 0)
        return db_err(rc, "mdb_put");
    len_key(lkey, off, len);
    k.mv_size = sizeof(lkey);
    k.mv_data = lkey;
    v.mv_size = 0;
    v.mv_data = lkey; /* any valid pointer: the value is empty */
    if ((rc = mdb_put(txn, a->free_len, &k, &v, 0)) != 0)
        return db_err(rc, "mdb_put");
    return 0;
}

/* A missing entry means the two indexes disagree: the map is corrupt. */
static int del_checked(MDB_txn *txn, MDB_dbi dbi, MDB_val *k)
{
    int rc = mdb_del(txn, dbi, k, NULL);

    if (rc == MDB_NOTFOUND)
        return CIO_EPROTO;
    if (rc != 0)
        return db_err(rc, "mdb_del");
    return 0;
}

static int len_del(const alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len)
{
    unsigned char lkey[16];
    MDB_val k = {sizeof(lkey), lkey};

    len_key(lkey, off, len);
    return del_checked(txn, a->free_len, &k);
}

static int extent_del(const alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len)
{
    unsigned char okey[8];
    MDB_val k = {sizeof(okey), okey};
    int rc;

    be64_put(okey, off);
    if ((rc = del_checked(txn, a->free_off, &k)) != 0)
        return rc;
    return len_del(a, txn, off, len);
}

static int decode_off_entry(const MDB_val *k, const MDB_val *v, uint64_t *off, uint64_t *len)
{
    if (k->mv_size != 8 || v->mv_size != 8)
        return CIO_EPROTO;
    *off = be64_get(k->mv_data);
    *len = be64_get(v->mv_data);
    return 0;
}

/* Validates [off, off+len) against `capacity` and the free map, then inserts
 * it, merged with the free extents that end at `off` or start at its end.
 * Leaves the free total to the caller. Nothing is written unless valid. */
static int free_insert(const alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len, uint64_t capacity)
{
    unsigned char okey[8];
    MDB_val k = {sizeof(okey), okey}, v;
    MDB_cursor *cur = NULL;
    uint64_t noff = 0, nlen = 0, poff = 0, plen = 0, new_off = off, new_len = len;
    int has_next = 0, has_prev = 0, rc;

    if (len == 0 || off % ALLOC_BLOCK != 0 || len % ALLOC_BLOCK != 0 || len > capacity || off > capacity - len)
        return CIO_EINVAL;

    /* Free extents are disjoint, so only the first one at or after `off` and
     * the one just before it can overlap or touch [off, off+len). */
    if ((rc = mdb_cursor_open(txn, a->free_off, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    be64_put(okey, off);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0) {
        if ((rc = decode_off_entry(&k, &v, &noff, &nlen)) != 0)
            goto done;
        has_next = 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    } else if (rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    }
    if (rc == 0) {
        if ((rc = decode_off_entry(&k, &v, &poff, &plen)) != 0)
            goto done;
        has_prev = 1;
    } else if (rc != MDB_NOTFOUND) {
        rc = db_err(rc, "mdb_cursor_get");
        goto done;
    }
    mdb_cursor_close(cur);
    cur = NULL;

    if (has_next && noff - off < len)
        return CIO_EINVAL;
    if (has_prev && plen > off - poff) /* poff < off: SET_RANGE put it before */
        return CIO_EINVAL;

    if (has_prev && plen == off - poff) {
        /* free_off[poff] is overwritten below; only its length key moves. */
        if ((rc = len_del(a, txn, poff, plen)) != 0)
            return rc;
        new_off = poff;
        new_len += plen;
    }
    if (has_next && noff - off == len) {
        if ((rc = extent_del(a, txn, noff, nlen)) != 0)
            return rc;
        new_len += nlen;
    }
    return extent_put(a, txn, new_off, new_len);

done:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc;
}

int alloc_open(alloc_t *a, MDB_txn *txn)
{
    int rc;

    if ((rc = mdb_dbi_open(txn, "free_off", MDB_CREATE, &a->free_off)) != 0 ||
        (rc = mdb_dbi_open(txn, "free_len", MDB_CREATE, &a->free_len)) != 0 ||
        (rc = mdb_dbi_open(txn, "alloc", MDB_CREATE, &a->state)) != 0)
        return db_err(rc, "mdb_dbi_open");
    return 0;
}

int alloc_set_capacity(alloc_t *a, MDB_txn *txn, uint64_t capacity)
{
    uint64_t old, total;
    int formatted, rc;

    capacity -= capacity % ALLOC_BLOCK;
    if ((rc = state_get(a, txn, STATE_CAPACITY, &old, &formatted)) != 0 || (rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0)
        return rc;

    if (capacity > old) {
        /* Also formats a new store (old = 0): the whole range becomes free. */
        if ((rc = free_insert(a, txn, old, capacity - old, capacity)) != 0)
            return rc;
        total += capacity - old;
    } else if (capacity < old) {
        unsigned char okey[8];
        MDB_val k = {sizeof(okey), okey}, v;
        MDB_cursor *cur;
        uint64_t loff, llen;

        if ((rc = mdb_cursor_open(txn, a->free_off, &cur)) != 0)
            return db_err(rc, "mdb_cursor_open");
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            return CIO_EINVAL;
        if (rc != 0)
            return db_err(rc, "mdb_cursor_get");
        if ((rc = decode_off_entry(&k, &v, &loff, &llen)) != 0)
            return rc;
        if (loff > old || llen > old - loff)
            return CIO_EPROTO;
        /* [capacity, old) is free only if the last free extent covers it. */
        if (llen != old - loff || loff > capacity)
            return CIO_EINVAL;
        if (total < old - capacity)
            return CIO_EPROTO;
        if ((rc = extent_del(a, txn, loff, llen)) != 0)
            return rc;
        if (loff < capacity && (rc = extent_put(a, txn, loff, capacity - loff)) != 0)
            return rc;
        total -= old - capacity;
    } else if (formatted) {
        return 0;
    }
    if ((rc = state_put(a, txn, STATE_CAPACITY, capacity)) != 0)
        return rc;
    return state_put(a, txn, STATE_FREE, total);
}

uint64_t alloc_round(uint64_t bytes)
{
    return (bytes + (ALLOC_BLOCK - 1)) / ALLOC_BLOCK * ALLOC_BLOCK;
}

int alloc_alloc(alloc_t *a, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out)
{
    unsigned char lkey[16];
    MDB_val k = {sizeof(lkey), lkey}, v;
    MDB_cursor *cur;
    uint64_t len, foff, flen, total;
    int rc;

    out->off = 0;
    out->len = 0;
    if (bytes == 0)
        return 0;
    if (bytes > UINT64_MAX - (ALLOC_BLOCK - 1))
        return CIO_ENOSPC;
    len = alloc_round(bytes);

    /* (len, 0) sorts before every extent of length len, so SET_RANGE lands on
     * the smallest sufficient extent, lowest offset first. */
    len_key(lkey, 0, len);
    if ((rc = mdb_cursor_open(txn, a->free_len, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return CIO_ENOSPC;
    if (rc != 0)
        return db_err(rc, "mdb_cursor_get");
    if (k.mv_size != 16)
        return CIO_EPROTO;
    flen = be64_get(k.mv_data);
    foff = be64_get((const unsigned char *)k.mv_data + 8);
    if ((rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0)
        return rc;
    if (flen < len || total < len)
        return CIO_EPROTO;

    /* Hand out the low end: the remainder keeps its place next to whatever
     * follows it, and a growing store fills from the front. */
    if ((rc = extent_del(a, txn, foff, flen)) != 0)
        return rc;
    if (flen > len && (rc = extent_put(a, txn, foff + len, flen - len)) != 0)
        return rc;
    if ((rc = state_put(a, txn, STATE_FREE, total - len)) != 0)
        return rc;
    out->off = foff;
    out->len = len;
    return 0;
}

int alloc_take(alloc_t *a, MDB_txn *txn, uint64_t off, uint64_t len)
{
    unsigned char okey[8];
    MDB_val k = {sizeof(okey), okey}, v;
    MDB_cursor *cur;
    uint64_t foff = 0, flen = 0, total;
    int rc;

    if (len == 0 || off % ALLOC_BLOCK != 0 || len % ALLOC_BLOCK != 0 || off > UINT64_MAX - len)
        return CIO_EINVAL;

    /* The only free extent that can hold `off` is the one starting at it or
     * the last one before it. */
    be64_put(okey, off);
    if ((rc = mdb_cursor_open(txn, a->free_off, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && (k.mv_size != 8 || be64_get(k.mv_data) != off))
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0)
        rc = decode_off_entry(&k, &v, &foff, &flen);
    else
        rc = rc == MDB_NOTFOUND ? CIO_ENOSPC : db_err(rc, "mdb_cursor_get");
    mdb_cursor_close(cur);
    if (rc != 0)
        return rc;
    if (foff > off || flen < len || off - foff > flen - len)
        return CIO_ENOSPC;
    if ((rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0)
        return rc;
    if (total < len)
        return CIO_EPROTO;

    if ((rc = extent_del(a, txn, foff, flen)) != 0)
        return rc;
    if (off > foff && (rc = extent_put(a, txn, foff, off - foff)) != 0)
        return rc;
    if (off - foff < flen - len && (rc = extent_put(a, txn, off + len, foff + flen - off - len)) != 0)
        return rc;
    return state_put(a, txn, STATE_FREE, total - len);
}

int alloc_largest(alloc_t *a, MDB_txn *txn, alloc_extent_t *out)
{
    MDB_val k, v;
    MDB_cursor *cur;
    int rc;

    *out = (alloc_extent_t){0, 0};
    if ((rc = mdb_cursor_open(txn, a->free_len, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return db_err(rc, "mdb_cursor_get");
    if (k.mv_size != 16)
        return CIO_EPROTO;
    out->len = be64_get(k.mv_data);
    out->off = be64_get((const unsigned char *)k.mv_data + 8);
    return 0;
}

/* The pieces of free extent f outside `avoid`, in offset order, until visit
 * returns nonzero (its value is returned). Whether any range overlapped f
 * goes into *overlapped. */
static int pieces_outside(alloc_extent_t f, const alloc_extent_t *avoid, size_t n, int *overlapped,
                          int (*visit)(void *arg, alloc_extent_t piece), void *arg)
{
    uint64_t pos = f.off, end = f.off + f.len;
    int rc;

    *overlapped = 0;
    for (size_t i = 0; i < n && pos < end; i++) {
        uint64_t r_end = avoid[i].off + avoid[i].len;
        if (avoid[i].len == 0 || r_end <= pos)
            continue;
        if (avoid[i].off >= end)
            break;
        *overlapped = 1;
        if (avoid[i].off > pos && (rc = visit(arg, (alloc_extent_t){pos, avoid[i].off - pos})) != 0)
            return rc;
        pos = r_end;
    }
    return pos < end ? visit(arg, (alloc_extent_t){pos, end - pos}) : 0;
}

/* A free_len key into the extent it names. */
static int decode_len_key(const MDB_val *k, alloc_extent_t *f)
{
    if (k->mv_size != 16)
        return CIO_EPROTO;
    f->len = be64_get(k->mv_data);
    f->off = be64_get((const unsigned char *)k->mv_data + 8);
    return 0;
}

typedef struct {
    uint64_t len;       /* alloc_outside: the length wanted */
    alloc_extent_t got; /* the piece found (alloc_outside: the first long enough; largest: the longest) */
} piece_pick_t;

static int pick_first_fit(void *arg, alloc_extent_t piece)
{
    piece_pick_t *p = arg;
    if (piece.len < p->len)
        return 0;
    p->got = piece;
    return 1;
}

static int pick_longest(void *arg, alloc_extent_t piece)
{
    piece_pick_t *p = arg;
    if (piece.len > p->got.len)
        p->got = piece;
    return 0;
}

int alloc_alloc_outside(alloc_t *a, MDB_txn *txn, uint64_t bytes, const alloc_extent_t *avoid, size_t n, alloc_extent_t *out)
{
    unsigned char lkey[16];
    MDB_val k = {sizeof(lkey), lkey}, v;
    MDB_cursor *cur;
    piece_pick_t pick = {0};
    int rc, overlapped, found = 0;

    *out = (alloc_extent_t){0, 0};
    if (bytes == 0)
        return 0;
    if (bytes > UINT64_MAX - (ALLOC_BLOCK - 1))
        return CIO_ENOSPC;
    pick.len = alloc_round(bytes);
    len_key(lkey, 0, pick.len);
    if ((rc = mdb_cursor_open(txn, a->free_len, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    /* smallest first, as alloc_alloc; an extent no range overlaps always fits, so the walk ends at the first one */
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (size_t seen = 0; rc == 0 && seen <= ALLOC_AVOID_SCAN; seen++) {
        alloc_extent_t f;
        if ((rc = decode_len_key(&k, &f)) != 0)
            break;
        if ((found = pieces_outside(f, avoid, n, &overlapped, pick_first_fit, &pick)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc == CIO_EPROTO ? rc : db_err(rc, "mdb_cursor_get");
    if (!found)
        return CIO_ENOSPC;
    if ((rc = alloc_take(a, txn, pick.got.off, pick.len)) != 0)
        return rc == CIO_ENOSPC || rc == CIO_EINVAL ? CIO_EPROTO : rc; /* the piece was read as free just now */
    *out = (alloc_extent_t){pick.got.off, pick.len};
    return 0;
}

int alloc_largest_outside(alloc_t *a, MDB_txn *txn, const alloc_extent_t *avoid, size_t n, alloc_extent_t *out)
{
    MDB_val k, v;
    MDB_cursor *cur;
    piece_pick_t pick = {0};
    int rc, overlapped = 1;

    *out = (alloc_extent_t){0, 0};
    if ((rc = mdb_cursor_open(txn, a->free_len, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    /* largest first: an extent no longer than the best piece so far cannot hold a longer one */
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    for (size_t seen = 0; rc == 0 && seen <= ALLOC_AVOID_SCAN && overlapped; seen++) {
        alloc_extent_t f;
        if ((rc = decode_len_key(&k, &f)) != 0)
            break;
        if (f.len <= pick.got.len)
            break;
        (void)pieces_outside(f, avoid, n, &overlapped, pick_longest, &pick);
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc == CIO_EPROTO ? rc : db_err(rc, "mdb_cursor_get");
    *out = pick.got;
    return 0;
}

int alloc_reserve(alloc_t *a, MDB_txn *txn, uint64_t bytes, alloc_extent_t *out)
{
    uint64_t reserved;
    int rc;

    if ((rc = alloc_alloc(a, txn, bytes, out)) != 0)
        return rc;
    if ((rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0)
        return rc;
    return state_put(a, txn, STATE_RESERVED, reserved + out->len);
}

int alloc_reserve_held(alloc_t *a, MDB_txn *txn, uint64_t bytes)
{
    uint64_t reserved, capacity, total;
    int rc;

    if (bytes == 0)
        return 0;
    if ((rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0 ||
        (rc = state_get(a, txn, STATE_CAPACITY, &capacity, NULL)) != 0 || (rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0)
        return rc;
    if (bytes > capacity - total - reserved)
        return CIO_EINVAL;
    return state_put(a, txn, STATE_RESERVED, reserved + bytes);
}

int alloc_unreserve(alloc_t *a, MDB_txn *txn, uint64_t bytes)
{
    uint64_t reserved;
    int rc;

    if (bytes == 0)
        return 0;
    if ((rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0)
        return rc;
    if (bytes > reserved)
        return CIO_EINVAL;
    return state_put(a, txn, STATE_RESERVED, reserved - bytes);
}

int alloc_unreserve_all(alloc_t *a, MDB_txn *txn, uint64_t *bytes)
{
    uint64_t reserved;
    int rc;

    if ((rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0)
        return rc;
    if (bytes != NULL)
        *bytes = reserved;
    return reserved == 0 ? 0 : state_put(a, txn, STATE_RESERVED, 0);
}

int alloc_free(alloc_t *a, MDB_txn *txn, alloc_extent_t e)
{
    uint64_t capacity, total;
    int rc;

    if (e.len == 0)
        return e.off == 0 ? 0 : CIO_EINVAL;
    if ((rc = state_get(a, txn, STATE_CAPACITY, &capacity, NULL)) != 0 || (rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0)
        return rc;
    if ((rc = free_insert(a, txn, e.off, e.len, capacity)) != 0)
        return rc;
    return state_put(a, txn, STATE_FREE, total + e.len);
}

int alloc_stats(alloc_t *a, MDB_txn *txn, uint64_t *capacity, uint64_t *free_bytes, uint64_t *free_extents, uint64_t *largest)
{
    uint64_t value;
    int rc;

    if (capacity != NULL) {
        if ((rc = state_get(a, txn, STATE_CAPACITY, &value, NULL)) != 0)
            return rc;
        *capacity = value;
    }
    if (free_bytes != NULL) {
        uint64_t reserved;
        if ((rc = state_get(a, txn, STATE_FREE, &value, NULL)) != 0 ||
            (rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0)
            return rc;
        *free_bytes = value + reserved; /* reserved space holds no object: it is free to them */
    }
    if (free_extents != NULL) {
        MDB_stat st;
        if ((rc = mdb_stat(txn, a->free_off, &st)) != 0)
            return db_err(rc, "mdb_stat");
        *free_extents = st.ms_entries;
    }
    if (largest != NULL) {
        alloc_extent_t e;
        if ((rc = alloc_largest(a, txn, &e)) != 0)
            return rc;
        *largest = e.len;
    }
    return 0;
}

int alloc_foreach_free(alloc_t *a, MDB_txn *txn, alloc_visit_t visit, void *arg)
{
    MDB_val k, v;
    MDB_cursor *cur;
    alloc_extent_t e;
    int rc;

    if ((rc = mdb_cursor_open(txn, a->free_off, &cur)) != 0)
        return db_err(rc, "mdb_cursor_open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = decode_off_entry(&k, &v, &e.off, &e.len)) != 0 || (rc = visit(arg, e)) != 0)
            goto done;
    }
    rc = rc == MDB_NOTFOUND ? 0 : db_err(rc, "mdb_cursor_get");
done:
    mdb_cursor_close(cur);
    return rc;
}

struct check_state {
    alloc_t *a;
    MDB_txn *txn;
    uint64_t capacity;
    uint64_t sum;
    uint64_t count;
    uint64_t prev_end; /* end of the previous extent; valid when count > 0 */
    char *msg;
    size_t msglen;
};

static int check_fail(struct check_state *cs, const char *what, alloc_extent_t e)
{
    if (cs->msg != NULL && cs->msglen > 0)
        snprintf(cs->msg, cs->msglen, "free extent [%" PRIu64 ", +%" PRIu64 "): %s", e.off, e.len, what);
    return CIO_EPROTO;
}

static int check_visit(void *arg, alloc_extent_t e)
{
    struct check_state *cs = arg;
    unsigned char lkey[16];
    MDB_val k = {sizeof(lkey), lkey}, v;
    int rc;

    if (e.len == 0 || e.off % ALLOC_BLOCK != 0 || e.len % ALLOC_BLOCK != 0)
        return check_fail(cs, "empty or not aligned", e);
    if (e.len > cs->capacity || e.off > cs->capacity - e.len)
        return check_fail(cs, "beyond the capacity", e);
    if (cs->count > 0 && e.off < cs->prev_end)
        return check_fail(cs, "overlaps its predecessor", e);
    if (cs->count > 0 && e.off == cs->prev_end)
        return check_fail(cs, "touches its predecessor (not coalesced)", e);
    len_key(lkey, e.off, e.len);
    rc = mdb_get(cs->txn, cs->a->free_len, &k, &v);
    if (rc == MDB_NOTFOUND)
        return check_fail(cs, "missing from free_len", e);
    if (rc != 0)
        return db_err(rc, "mdb_get");
    if (v.mv_size != 0)
        return check_fail(cs, "has a non-empty free_len value", e);
    cs->sum += e.len;
    cs->count++;
    cs->prev_end = e.off + e.len;
    return 0;
}

int alloc_check(alloc_t *a, MDB_txn *txn, char *msg, size_t msglen)
{
    struct check_state cs = {.a = a, .txn = txn, .msg = msg, .msglen = msglen};
    uint64_t total, reserved;
    MDB_stat st;
    int rc;

    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if ((rc = state_get(a, txn, STATE_CAPACITY, &cs.capacity, NULL)) != 0 ||
        (rc = state_get(a, txn, STATE_FREE, &total, NULL)) != 0 || (rc = state_get(a, txn, STATE_RESERVED, &reserved, NULL)) != 0)
        goto malformed;
    if ((rc = alloc_foreach_free(a, txn, check_visit, &cs)) != 0)
        goto malformed;
    /* Every free_off extent has its free_len key and keys are unique, so
     * equal counts mean the two indexes hold the same set. */
    if ((rc = mdb_stat(txn, a->free_len, &st)) != 0)
        return db_err(rc, "mdb_stat");
    if (st.ms_entries != cs.count) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "free_len has %zu entries, free_off %" PRIu64, st.ms_entries, cs.count);
        return CIO_EPROTO;
    }
    if (total != cs.sum) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "free total is %" PRIu64 " but the free extents sum to %" PRIu64, total, cs.sum);
        return CIO_EPROTO;
    }
    if (reserved > cs.capacity - total) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "%" PRIu64 " bytes reserved but only %" PRIu64 " are allocated", reserved, cs.capacity - total);
        return CIO_EPROTO;
    }
    return 0;

malformed:
    if (rc == CIO_EPROTO && msg != NULL && msglen > 0 && msg[0] == '\0')
        snprintf(msg, msglen, "malformed record in the allocator's databases");
    return rc;
}
