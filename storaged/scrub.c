/* scrub.c - the background scrub: paced passes over every object (and then every kept conflict loser), their state in
 * "scrub", the damage in "damaged". */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/be.h"
#include "common/clock.h"
#include "common/conflict.h"
#include "common/date.h"
#include "common/log.h"
#include "storaged/integrity.h"
#include "storaged/quarantine.h"
#include "storaged/repair.h"
#include "storaged/scrub.h"

static char state_key[] = "state"; /* the key of the state record in "scrub" */
_Static_assert(SCRUBREC_POS_MAX == META_OBJKEY_MAX, "the position is an objkey");
_Static_assert(SCRUBREC_LPOS_MAX == CONFLICT_POS_MAX, "the losers' position is a conflicts key");

/* One object of a page, copied out of its read transaction. */
typedef struct {
    uint8_t objkey[META_OBJKEY_MAX];
    size_t objkey_len;
    char bucket[LOGREC_BUCKET_MAX + 1];
    size_t blen;
    char key[LOGREC_KEY_MAX + 1];
    size_t klen;
    meta_obj_t o; /* the fields a scrub needs: version, origin, off, size, etag */
} item_t;

struct scrub {
    meta_t *meta;
    store_t *store;
    uint64_t rate;
    uint64_t interval_ms;
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    int stop, asked;
    int running;
    scrub_pass_t cur, last;
    uint8_t pos[META_OBJKEY_MAX]; /* the last objkey done in the current pass */
    size_t pos_len;
    int losers;                     /* the current pass is past its objects, in the kept losers' walk: */
    uint8_t lpos[CONFLICT_POS_MAX]; /* the last loser's table key done in it (lpos_len 0: none yet) */
    size_t lpos_len;
    char pos_bucket[LOGREC_BUCKET_MAX + 1];
    char pos_key[LOGREC_KEY_MAX + 1];
    uint64_t paced;                              /* the current pass runs at this rate (0: unpaced) */
    uint64_t tot_objects, tot_bytes, tot_filled; /* every pass's since storaged started: the metrics' counters */
    int64_t upgraded_ms;                         /* META_SCRUB_UPGRADED_MS, 0 if none */
    /* the scrub thread only */
    int64_t saved_mono_ms;
    int64_t pace_t0_us;
    uint64_t pace_bytes;
    uint8_t *chunk;
    item_t *page;
};

/* ---- the state record ---- */

/* Writes the state, copied under mu (the caller does not hold it), in one synced commit. Scrub thread only. */
static int state_save(scrub_t *sc)
{
    scrubrec_state_t st;
    uint8_t v[SCRUBREC_STATE_MAX];
    MDB_txn *txn = NULL;
    int rc;

    pthread_mutex_lock(&sc->mu);
    st.running = sc->running;
    st.cur = sc->cur;
    st.last = sc->last;
    memcpy(st.pos, sc->pos, sc->pos_len);
    st.pos_len = sc->pos_len;
    st.losers = sc->losers;
    memcpy(st.lpos, sc->lpos, sc->lpos_len);
    st.lpos_len = sc->lpos_len;
    pthread_mutex_unlock(&sc->mu);
    MDB_val key = {sizeof(state_key) - 1, state_key}, val = {scrubrec_state_encode(v, &st), v};
    if ((rc = mdb_txn_begin(sc->meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(scrub)");
    if ((rc = mdb_put(txn, sc->meta->scrub, &key, &val, 0)) != 0) {
        mdb_txn_abort(txn);
        return meta_err(rc, "mdb_put(scrub)");
    }
    sc->saved_mono_ms = clock_mono_ms();
    return meta_err(mdb_txn_commit(txn), "mdb_txn_commit(scrub)");
}

/* Writes the state if it was last written SCRUB_SAVE_MS ago or more (a failure is logged). Scrub thread only. */
static void save_progress(scrub_t *sc)
{
    if (clock_mono_ms() - sc->saved_mono_ms >= SCRUB_SAVE_MS && state_save(sc) != 0)
        log_msg(LOG_LVL_ERROR, "cannot record the scrub's progress", NULL);
}

/* Reads the state into sc (no record: a store never scrubbed). 0, CIO_EPROTO (logged) or a meta_err code. */
static int state_load(scrub_t *sc)
{
    MDB_txn *txn = NULL;
    MDB_val key = {sizeof(state_key) - 1, state_key}, v;
    uint64_t up = 0;
    int rc, ret = 0;

    if ((rc = mdb_txn_begin(sc->meta->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(scrub)");
    if ((ret = meta_u64_get(txn, sc->meta->scrub, META_SCRUB_UPGRADED_MS, strlen(META_SCRUB_UPGRADED_MS), "scrub", &up)) != 0)
        goto done;
    sc->upgraded_ms = (int64_t)up;
    rc = mdb_get(txn, sc->meta->scrub, &key, &v);
    if (rc == MDB_NOTFOUND)
        goto done;
    if (rc != 0) {
        ret = meta_err(rc, "mdb_get(scrub)");
        goto done;
    }
    scrubrec_state_t st;
    if ((ret = scrubrec_state_decode(v.mv_data, v.mv_size, &st)) != 0)
        goto done;
    sc->running = st.running;
    sc->cur = st.cur;
    sc->last = st.last;
    memcpy(sc->pos, st.pos, st.pos_len);
    sc->pos_len = st.pos_len;
    sc->losers = st.losers;
    memcpy(sc->lpos, st.lpos, st.lpos_len);
    sc->lpos_len = st.lpos_len;
    /* the position as the status shows it: the objkey is the bucket, a NUL and the key (a long key's is hashed: shown cut) */
    const uint8_t *nul = memchr(st.pos, 0, st.pos_len);
    if (nul != NULL && (size_t)(nul - st.pos) <= LOGREC_BUCKET_MAX) {
        size_t blen = (size_t)(nul - st.pos), klen = strnlen((const char *)nul + 1, st.pos_len - blen - 1);
        memcpy(sc->pos_bucket, st.pos, blen);
        sc->pos_bucket[blen] = '\0';
        memcpy(sc->pos_key, nul + 1, klen);
        sc->pos_key[klen] = '\0';
    }
done:
    mdb_txn_abort(txn);
    if (ret == CIO_EPROTO)
        log_msg(LOG_LVL_ERROR, "the scrub's state record does not decode", NULL);
    return ret;
}

/* ---- the "damaged" table ---- */

/* Records item it as damaged at `block` (UINT64_MAX: the MD5 failed) unless
 * it is no longer the object read; *current tells which. A record of the same
 * version keeps its first finding time. */
static int damaged_put(scrub_t *sc, const item_t *it, uint64_t block, int *current)
{
    uint8_t v[SCRUBREC_DAMAGED_MAX];
    MDB_val key = {it->objkey_len, (void *)it->objkey}, old, val;
    MDB_txn *txn = NULL;
    meta_obj_t o;
    int64_t found = clock_wall_ms();
    int rc, ret;

    *current = 0;
    if ((rc = mdb_txn_begin(sc->meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(damaged)");
    ret = meta_obj_get(sc->meta, txn, it->bucket, it->blen, it->key, it->klen, &o);
    if (ret == CIO_ENOTFOUND || (ret == 0 && !(meta_obj_current(&o, it->o.version, it->o.origin, it->o.origin_len) &&
                                               o.off == it->o.off && o.size == it->o.size))) {
        mdb_txn_abort(txn);
        return 0; /* rewritten or deleted meanwhile: what was read was not (only) its bytes */
    }
    if (ret != 0)
        goto fail;
    *current = 1;
    scrubrec_damaged_t prev;
    if (mdb_get(txn, sc->meta->damaged, &key, &old) == 0 && scrubrec_damaged_decode(old.mv_data, old.mv_size, &prev) == 0 &&
        prev.version == it->o.version)
        found = prev.found_ms; /* found again: keep when it was first */
    scrubrec_damaged_t d = {it->o.version, block, found, it->o.origin, it->bucket, it->key, it->o.origin_len, it->blen, it->klen};
    val.mv_size = scrubrec_damaged_encode(v, &d);
    val.mv_data = v;
    if ((rc = mdb_put(txn, sc->meta->damaged, &key, &val, 0)) != 0) {
        ret = meta_err(rc, "mdb_put(damaged)");
        goto fail;
    }
    return meta_err(mdb_txn_commit(txn), "mdb_txn_commit(damaged)");
fail:
    mdb_txn_abort(txn);
    return ret;
}

/* ---- pacing ---- */

/* Sleeps until the pass's bytes since pace_t0 fit the rate, or a stop. Returns 1 on a stop. */
static int pace(scrub_t *sc, uint64_t n)
{
    int stop;
    pthread_mutex_lock(&sc->mu);
    sc->pace_bytes += n;
    if (sc->paced != 0 && !sc->stop) {
        int64_t due_us = sc->pace_t0_us + (int64_t)(sc->pace_bytes * 1000000.0 / (double)sc->paced);
        int64_t wait_ms = (due_us - clock_mono_us()) / 1000;
        if (wait_ms > 0) {
            struct timespec ts = clock_wall_after(wait_ms);
            pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
        }
    }
    stop = sc->stop;
    pthread_mutex_unlock(&sc->mu);
    return stop;
}

/* ---- one object ---- */

/* Gives an object without checksums the ones computed from its bytes, if it
 * is still the same version at the same extent. *filled tells whether it was. */
static int fill_in(scrub_t *sc, const item_t *it, const blocksum_calc_t *calc, int *filled)
{
    MDB_txn *txn;
    meta_obj_t o;
    int rc, ret;

    *filled = 0;
    if ((rc = mdb_txn_begin(sc->meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(scrub fill)");
    ret = meta_obj_get(sc->meta, txn, it->bucket, it->blen, it->key, it->klen, &o);
    if (ret == CIO_ENOTFOUND || (ret == 0 && !(meta_obj_current(&o, it->o.version, it->o.origin, it->o.origin_len) &&
                                               o.off == it->o.off && o.size == it->o.size))) {
        mdb_txn_abort(txn);
        return 0; /* rewritten meanwhile: never the wrong checksums */
    }
    if (ret != 0 || (ret = meta_sums_put(sc->meta, txn, it->bucket, it->blen, it->key, it->klen, &o, calc)) != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return meta_err(rc, "mdb_txn_commit(scrub fill)");
    *filled = 1;
    return 0;
}

/* Result of one object. */
enum { R_OK, R_FILLED, R_DAMAGED, R_REPAIRED, R_SKIPPED, R_STOPPED };

static int scrub_object(scrub_t *sc, const item_t *it, uint64_t *bytes_read)
{
    const meta_obj_t *o = &it->o;
    blocksum_view_t view;
    blocksum_calc_t calc;
    uint8_t *owned = NULL, md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *md5 = NULL;
    uint64_t bad = UINT64_MAX, done = 0;
    int have = 0, ret, result = R_OK, current;
    MDB_txn *txn;

    memset(&calc, 0, sizeof(calc));
    *bytes_read = 0;
    if (mdb_txn_begin(sc->meta->env, NULL, MDB_RDONLY, &txn) != 0)
        return R_SKIPPED;
    if (o->size > 0) {
        ret = integrity_sums(sc->meta, txn, it->bucket, it->blen, it->key, it->klen, o, 0, o->size, &view, &owned, &have);
    } else {
        ret = 0;
        have = meta_sums_view(sc->meta, txn, it->bucket, it->blen, it->key, it->klen, o, 0, 0, &view) == 0;
    }
    mdb_txn_abort(txn);
    if (ret != 0)
        return R_SKIPPED;
    if (!have) {
        if (blocksum_calc_init(&calc, o->size) != 0 || (md5 = EVP_MD_CTX_new()) == NULL ||
            EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
            result = R_SKIPPED;
            goto out;
        }
    }
    while (done < o->size) {
        size_t n = o->size - done < SCRUB_CHUNK ? (size_t)(o->size - done) : SCRUB_CHUNK;
        ret = integrity_read(sc->store, o->off, done, sc->chunk, n, have ? &view : NULL, &bad);
        if (ret == CIO_ECORRUPT) {
            *bytes_read += n; /* read, and the pass stops at the object's first bad block */
            result = R_DAMAGED;
            break;
        }
        if (ret != 0) {
            log_msg(LOG_LVL_WARN, "the scrub could not read an object: skipped", "bucket", it->bucket, "key", it->key, "error",
                    cio_strerror(ret), NULL);
            result = R_SKIPPED;
            break;
        }
        if (!have) {
            blocksum_calc_feed(&calc, sc->chunk, n);
            EVP_DigestUpdate(md5, sc->chunk, n);
        }
        done += n;
        *bytes_read += n;
        if (pace(sc, n)) {
            result = R_STOPPED;
            goto out;
        }
    }
    if (result == R_OK && !have) {
        if (EVP_DigestFinal_ex(md5, md, &mdlen) != 1 || mdlen != 16) {
            result = R_SKIPPED;
            goto out;
        }
        if (memcmp(md, o->etag, 16) != 0) {
            result = R_DAMAGED;
            bad = UINT64_MAX;
        } else {
            int filled;
            if (blocksum_calc_done(&calc) != 0 || fill_in(sc, it, &calc, &filled) != 0 || !filled) {
                result = R_SKIPPED;
            } else {
                result = R_FILLED;
                log_msg(LOG_LVL_DEBUG, "scrub filled in an object's block checksums", "bucket", it->bucket, "key", it->key, NULL);
            }
        }
    }
    if (result == R_DAMAGED) {
        /* bytes read while the object was rewritten are not damage: only an object still current is */
        if (damaged_put(sc, it, bad, &current) != 0 || !current) {
            result = current ? R_DAMAGED : R_SKIPPED;
        }
        if (result == R_DAMAGED) {
            repair_what_t w;
            integrity_damaged(INTEGRITY_SCRUB, it->bucket, it->key, o->version, o->origin, bad);
            /* from a peer, now: a repair puts good bytes in place and drops the "damaged" entry; a failed one leaves it */
            repair_what_set(&w, it->bucket, it->blen, it->key, it->klen, o->version, o->origin, o->origin_len, o->off, bad,
                            INTEGRITY_SCRUB);
            if (repair_object(&w, REPAIR_LANE_BACKGROUND) == 0)
                result = R_REPAIRED;
        }
    }
out:
    EVP_MD_CTX_free(md5);
    blocksum_calc_free(&calc);
    free(owned);
    return result;
}

/* ---- kept conflict losers ---- */

/* One kept loser, copied out of its read transaction with its CRCs. */
typedef struct {
    int found;
    char bucket[LOGREC_BUCKET_MAX + 1];
    conflict_t k;  /* k.sums.crcs points at crcs, or holds the inline CRC */
    uint8_t *crcs; /* owned, NULL for none */
} loser_t;

static int loser_copy(void *arg, const char *b, size_t blen, const conflict_t *c)
{
    loser_t *l = arg;
    l->found = 1;
    memcpy(l->bucket, b, blen);
    l->bucket[blen] = '\0';
    l->k = *c;
    return c->has_sums ? blocksum_view_copy(&l->k.sums, &l->crcs) : 0;
}

/* Whether loser l is still kept with the same bytes: damage read from an
 * extent freed since (the loser overwritten, purged, expired, removed) is not
 * damage. */
static int loser_current(scrub_t *sc, const loser_t *l)
{
    MDB_txn *txn;
    conflict_t now;
    int ret;
    if (mdb_txn_begin(sc->meta->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    ret = conflict_get(sc->meta, txn, l->bucket, strlen(l->bucket), l->k.key, l->k.key_len, l->k.loser.hlc, l->k.loser.origin,
                       l->k.loser.origin_len, &now);
    mdb_txn_abort(txn);
    return ret == 0 && now.off == l->k.off && now.size == l->k.size;
}

/* Reads loser l's bytes through the checksums its record keeps; R_OK,
 * R_DAMAGED (counted and logged, path "scrub"; a loser is never repaired),
 * R_SKIPPED or R_STOPPED, with *bytes_read. */
static int scrub_loser(scrub_t *sc, const loser_t *l, uint64_t *bytes_read)
{
    uint64_t done = 0, bad = 0, size = l->k.size;
    int ret = 0;

    *bytes_read = 0;
    while (done < size) {
        size_t n = size - done < SCRUB_CHUNK ? (size_t)(size - done) : SCRUB_CHUNK;
        ret = integrity_read(sc->store, l->k.off, done, sc->chunk, n, &l->k.sums, &bad);
        *bytes_read += n;
        if (ret != 0)
            break;
        done += n;
        if (pace(sc, n))
            return R_STOPPED;
    }
    if (ret == CIO_ECORRUPT && loser_current(sc, l)) {
        integrity_damaged(INTEGRITY_SCRUB, l->bucket, l->k.key, l->k.loser.hlc, l->k.loser.origin, bad);
        return R_DAMAGED;
    }
    return ret == 0 ? R_OK : R_SKIPPED;
}

/* After the objects, the kept losers that have checksums (docs/storage.md,
 * "Conflict records"), one per read transaction (they are few: they expire),
 * in table order from after sc->lpos, which records each loser done as
 * sc->pos records each object (saved with the counters, at most every
 * SCRUB_SAVE_MS): a pass cut here resumes after the last loser saved. Their
 * bytes and damage count in the pass's; their damage is not put in
 * "damaged", which names objects. Returns R_STOPPED on a stop, else R_OK. */
static int scrub_losers(scrub_t *sc)
{
    uint8_t pos[CONFLICT_POS_MAX];
    size_t pos_len;
    loser_t l;

    pthread_mutex_lock(&sc->mu);
    memcpy(pos, sc->lpos, sc->lpos_len);
    pos_len = sc->lpos_len;
    pthread_mutex_unlock(&sc->mu);
    for (;;) {
        MDB_txn *txn;
        uint64_t bytes = 0;
        int more, ret, r = R_OK, stop;

        memset(&l, 0, sizeof(l));
        if (mdb_txn_begin(sc->meta->env, NULL, MDB_RDONLY, &txn) != 0)
            return R_OK;
        ret = conflict_list(sc->meta, txn, NULL, 0, pos, &pos_len, 1, loser_copy, &l, &more);
        mdb_txn_abort(txn);
        if (ret == 0 && l.found && l.k.has_sums && !l.k.deleted)
            r = scrub_loser(sc, &l, &bytes);
        free(l.crcs);
        if (ret != 0) {
            log_msg(LOG_LVL_WARN, "the scrub could not read the kept conflict losers: left for the next pass", "error",
                    cio_strerror(ret), NULL);
            return R_OK;
        }
        if (!l.found || r == R_STOPPED)
            return l.found ? R_STOPPED : R_OK; /* a loser cut short is done again after the restart */
        pthread_mutex_lock(&sc->mu);
        sc->cur.bytes += bytes;
        sc->cur.damaged += r == R_DAMAGED;
        sc->tot_bytes += bytes;
        memcpy(sc->lpos, pos, pos_len);
        sc->lpos_len = pos_len;
        stop = sc->stop;
        pthread_mutex_unlock(&sc->mu);
        save_progress(sc);
        if (stop)
            return R_STOPPED;
    }
}

/* ---- passes ---- */

/* Reads the next page of objects after sc->pos into sc->page; *n of them. */
static int read_page(scrub_t *sc, size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret = 0;
    uint8_t pos[META_OBJKEY_MAX];
    size_t pos_len;

    *n = 0;
    pthread_mutex_lock(&sc->mu);
    memcpy(pos, sc->pos, sc->pos_len);
    pos_len = sc->pos_len;
    pthread_mutex_unlock(&sc->mu);
    if ((rc = mdb_txn_begin(sc->meta->env, NULL, MDB_RDONLY, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(scrub)");
    if ((rc = mdb_cursor_open(txn, sc->meta->objects, &cur)) != 0) {
        ret = meta_err(rc, "mdb_cursor_open(objects)");
        goto done;
    }
    if (pos_len == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k.mv_size = pos_len;
        k.mv_data = pos;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == pos_len && memcmp(k.mv_data, pos, pos_len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    for (; rc == 0 && *n < SCRUB_PAGE; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        item_t *it = &sc->page[*n];
        const uint8_t *nul = memchr(k.mv_data, 0, k.mv_size);
        if (k.mv_size > META_OBJKEY_MAX || nul == NULL || (size_t)(nul - (const uint8_t *)k.mv_data) > LOGREC_BUCKET_MAX ||
            meta_obj_decode(&v, &it->o) != 0) {
            log_msg(LOG_LVL_ERROR, "the scrub skips an object record that does not decode", NULL);
            continue;
        }
        memcpy(it->objkey, k.mv_data, k.mv_size);
        it->objkey_len = k.mv_size;
        it->blen = (size_t)(nul - (const uint8_t *)k.mv_data);
        memcpy(it->bucket, k.mv_data, it->blen);
        it->bucket[it->blen] = '\0';
        it->klen = it->o.key_len;
        memcpy(it->key, it->o.key, it->klen);
        it->key[it->klen] = '\0';
        (*n)++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = meta_err(rc, "mdb_cursor_get(objects)");
done:
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

static void log_pass(const char *msg, const scrub_pass_t *p)
{
    char pass[24], objects[24], bytes[24], damaged[24], filled[24], skipped[24], secs[32];
    snprintf(pass, sizeof(pass), "%" PRIu64, p->pass);
    snprintf(objects, sizeof(objects), "%" PRIu64, p->objects);
    snprintf(bytes, sizeof(bytes), "%" PRIu64, p->bytes);
    snprintf(damaged, sizeof(damaged), "%" PRIu64, p->damaged);
    snprintf(filled, sizeof(filled), "%" PRIu64, p->filled);
    snprintf(skipped, sizeof(skipped), "%" PRIu64, p->skipped);
    snprintf(secs, sizeof(secs), "%.3f", p->ended_ms > p->started_ms ? (double)(p->ended_ms - p->started_ms) / 1000.0 : 0.0);
    if (p->ended_ms == 0)
        log_msg(LOG_LVL_INFO, msg, "pass", pass, "objects_done", objects, NULL);
    else
        log_msg(LOG_LVL_INFO, msg, "pass", pass, "objects", objects, "bytes", bytes, "damaged", damaged, "filled", filled,
                "skipped", skipped, "seconds", secs, NULL);
}

/* Runs the current pass from sc->pos (or, past its objects, sc->lpos) to its end or a stop. */
static void run_pass(scrub_t *sc)
{
    size_t n;
    int losers;
    pthread_mutex_lock(&sc->mu);
    sc->pace_t0_us = clock_mono_us();
    sc->pace_bytes = 0;
    losers = sc->losers;
    pthread_mutex_unlock(&sc->mu);
    while (!losers) {
        if (read_page(sc, &n) != 0) {
            /* logged; try again later rather than spin */
            pthread_mutex_lock(&sc->mu);
            struct timespec ts = clock_wall_after(5000);
            if (!sc->stop)
                pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
            int stop = sc->stop;
            pthread_mutex_unlock(&sc->mu);
            if (stop)
                return;
            continue;
        }
        if (n == 0) {
            /* the objects are done: on to the losers, from the first */
            pthread_mutex_lock(&sc->mu);
            sc->losers = losers = 1;
            sc->lpos_len = 0;
            pthread_mutex_unlock(&sc->mu);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const item_t *it = &sc->page[i];
            uint64_t bytes;
            int r = scrub_object(sc, it, &bytes);
            if (r == R_STOPPED)
                return; /* the object is done again after the restart */
            pthread_mutex_lock(&sc->mu);
            sc->cur.objects++;
            sc->cur.bytes += bytes;
            sc->cur.damaged += r == R_DAMAGED || r == R_REPAIRED;
            sc->cur.repaired += r == R_REPAIRED;
            sc->cur.filled += r == R_FILLED;
            sc->cur.skipped += r == R_SKIPPED;
            sc->tot_objects++;
            sc->tot_bytes += bytes;
            sc->tot_filled += r == R_FILLED;
            memcpy(sc->pos, it->objkey, it->objkey_len);
            sc->pos_len = it->objkey_len;
            memcpy(sc->pos_bucket, it->bucket, it->blen + 1);
            memcpy(sc->pos_key, it->key, it->klen + 1);
            int stop = sc->stop;
            pthread_mutex_unlock(&sc->mu);
            save_progress(sc);
            if (stop)
                return;
        }
    }
    if (scrub_losers(sc) == R_STOPPED)
        return; /* resumed after the last loser recorded */
    pthread_mutex_lock(&sc->mu);
    sc->cur.ended_ms = clock_wall_ms();
    sc->last = sc->cur;
    sc->running = 0;
    sc->pos_len = 0;
    sc->losers = 0;
    sc->lpos_len = 0;
    sc->pos_bucket[0] = sc->pos_key[0] = '\0';
    pthread_mutex_unlock(&sc->mu);
    if (state_save(sc) != 0)
        log_msg(LOG_LVL_ERROR, "cannot record the end of a scrub pass", NULL);
    log_pass("scrub pass finished", &sc->last);
}

/* When the next scheduled pass is due (wall ms), or INT64_MAX: none. Under mu. */
static int64_t next_due(const scrub_t *sc)
{
    if (sc->rate == 0)
        return INT64_MAX;
    if (sc->last.pass != 0)
        return sc->last.ended_ms + (int64_t)sc->interval_ms;
    if (sc->upgraded_ms != 0)
        return sc->upgraded_ms + (int64_t)sc->interval_ms;
    return 0; /* a new store: at once */
}

static void *scrub_main(void *arg)
{
    scrub_t *sc = arg;
    pthread_mutex_lock(&sc->mu);
    for (;;) {
        if (sc->stop)
            break;
        int64_t due = next_due(sc), now = clock_wall_ms();
        if (!sc->running && !sc->asked && now < due) {
            int64_t wait = due - now;
            struct timespec ts = clock_wall_after(wait > 3600000 ? 3600000 : wait);
            pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
            continue;
        }
        int resumed = sc->running;
        if (!sc->running) {
            memset(&sc->cur, 0, sizeof(sc->cur));
            sc->cur.pass = sc->last.pass + 1;
            sc->cur.started_ms = now;
            sc->pos_len = 0;
            sc->losers = 0;
            sc->lpos_len = 0;
            sc->pos_bucket[0] = sc->pos_key[0] = '\0';
            sc->running = 1;
        }
        /* every pass at the configured rate; with 0 only asked-for (or resumed) passes run, unpaced */
        sc->paced = sc->rate;
        sc->asked = 0;
        pthread_mutex_unlock(&sc->mu);
        if (state_save(sc) != 0)
            log_msg(LOG_LVL_ERROR, "cannot record the start of a scrub pass", NULL);
        log_pass(resumed ? "scrub pass resumed" : "scrub pass started", &sc->cur);
        run_pass(sc);
        pthread_mutex_lock(&sc->mu);
    }
    pthread_mutex_unlock(&sc->mu);
    if (sc->running && state_save(sc) != 0)
        log_msg(LOG_LVL_ERROR, "cannot record the scrub's progress", NULL);
    return NULL;
}

/* A store never scrubbed that holds objects (run with checksums off so far)
 * schedules its first pass like an upgraded one: one interval from now, not
 * a surprise read of everything at the first start with checksums on. */
static int schedule_from_now(scrub_t *sc)
{
    MDB_txn *txn;
    uint64_t objects = 0;
    int rc, ret;

    if ((rc = mdb_txn_begin(sc->meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(scrub)");
    if ((ret = meta_state_get(sc->meta, txn, META_OBJECTS, &objects)) != 0 || objects == 0) {
        mdb_txn_abort(txn);
        return ret; /* a new store: its first pass starts at once */
    }
    sc->upgraded_ms = clock_wall_ms();
    if ((ret = meta_u64_put(txn, sc->meta->scrub, META_SCRUB_UPGRADED_MS, strlen(META_SCRUB_UPGRADED_MS), "scrub",
                            (uint64_t)sc->upgraded_ms)) != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    return meta_err(mdb_txn_commit(txn), "mdb_txn_commit(scrub)");
}

int scrub_start(scrub_t **out, meta_t *m, store_t *s, uint64_t rate, uint64_t interval_ms, int checksums)
{
    scrub_t *sc;
    int ret;

    *out = NULL;
    if ((sc = calloc(1, sizeof(*sc))) == NULL)
        return CIO_ENOMEM;
    sc->meta = m;
    sc->store = s;
    sc->rate = rate;
    sc->interval_ms = interval_ms;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    if ((ret = state_load(sc)) != 0)
        goto fail;
    if (!checksums) {
        *out = sc; /* status only: nothing is verified with checksums off */
        return 0;
    }
    if (sc->last.pass == 0 && !sc->running && sc->upgraded_ms == 0 && (ret = schedule_from_now(sc)) != 0)
        goto fail;
    if ((sc->chunk = malloc(SCRUB_CHUNK)) == NULL || (sc->page = calloc(SCRUB_PAGE, sizeof(item_t))) == NULL) {
        ret = CIO_ENOMEM;
        goto fail;
    }
    if (pthread_create(&sc->tid, NULL, scrub_main, sc) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot start the scrub thread", NULL);
        ret = CIO_ESYS;
        goto fail;
    }
    sc->started = 1;
    *out = sc;
    return 0;
fail:
    free(sc->chunk);
    free(sc->page);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    free(sc);
    return ret;
}

void scrub_stop(scrub_t *sc)
{
    if (sc == NULL)
        return;
    if (sc->started) {
        pthread_mutex_lock(&sc->mu);
        sc->stop = 1;
        pthread_cond_broadcast(&sc->cv);
        pthread_mutex_unlock(&sc->mu);
        pthread_join(sc->tid, NULL);
    }
    free(sc->chunk);
    free(sc->page);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    free(sc);
}

int scrub_request(scrub_t *sc)
{
    int ret = 0;
    if (!sc->started)
        return CIO_EINVAL;
    pthread_mutex_lock(&sc->mu);
    if (sc->running || sc->asked)
        ret = CIO_EAGAIN;
    else
        sc->asked = 1;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    return ret;
}

/* ---- status and metrics ---- */

static void json_time(buf_t *b, const char *name, int64_t ms)
{
    char ts[DATE_ISO8601_MS_LEN + 1];
    if (ms <= 0) {
        buf_printf(b, ",\"%s\":null", name);
        return;
    }
    date_iso8601_ms(ms, ts);
    buf_printf(b, ",\"%s\":\"%s\"", name, ts);
}

static void json_counts(buf_t *b, const scrub_pass_t *p)
{
    buf_printf(b,
               "\"pass\":%" PRIu64 ",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"damaged\":%" PRIu64 ",\"repaired\":%" PRIu64
               ",\"filled\":%" PRIu64 ",\"skipped\":%" PRIu64,
               p->pass, p->objects, p->bytes, p->damaged, p->repaired, p->filled, p->skipped);
    json_time(b, "started", p->started_ms);
}

int scrub_status_json(scrub_t *sc, meta_t *m, MDB_txn *txn, buf_t *b)
{
    scrub_pass_t cur, last;
    uint64_t objects = 0, bytes = 0, rate, paced;
    int running, enabled, ret, rc;
    int64_t due;
    char pb[LOGREC_BUCKET_MAX + 1], pk[LOGREC_KEY_MAX + 1];
    MDB_cursor *c = NULL;
    MDB_stat st;
    MDB_val k, v;

    if ((ret = meta_state_get(m, txn, META_OBJECTS, &objects)) != 0 || (ret = meta_state_get(m, txn, META_BYTES, &bytes)) != 0)
        return ret;
    pthread_mutex_lock(&sc->mu);
    cur = sc->cur;
    last = sc->last;
    running = sc->running;
    rate = sc->rate;
    paced = sc->paced;
    enabled = sc->started;
    due = sc->started ? next_due(sc) : INT64_MAX;
    memcpy(pb, sc->pos_bucket, sizeof(pb));
    memcpy(pk, sc->pos_key, sizeof(pk));
    pthread_mutex_unlock(&sc->mu);

    buf_printf(b, "{\"enabled\":%s,\"running\":%s,\"rate\":%" PRIu64 ",\"interval_seconds\":%" PRIu64, enabled ? "true" : "false",
               running ? "true" : "false", running ? paced : rate, sc->interval_ms / 1000);
    buf_printf(b, ",\"store\":{\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", objects, bytes);
    buf_puts(b, ",\"current\":");
    if (!running) {
        buf_puts(b, "null");
    } else {
        double secs = (double)(clock_wall_ms() - cur.started_ms) / 1000.0;
        buf_puts(b, "{");
        json_counts(b, &cur);
        buf_puts(b, ",\"position\":{\"bucket\":");
        buf_json_str(b, pb, strlen(pb));
        buf_puts(b, ",\"key\":");
        buf_json_str(b, pk, strlen(pk));
        buf_puts(b, "}");
        /* the eta from the bytes left at the configured pace, or at the pace so far when unpaced */
        double left = bytes > cur.bytes ? (double)(bytes - cur.bytes) : 0.0;
        double speed = paced != 0 ? (double)paced : (secs > 0 && cur.bytes > 0 ? cur.bytes / secs : 0);
        if (speed > 0)
            buf_printf(b, ",\"eta_seconds\":%.0f", left / speed);
        else
            buf_puts(b, ",\"eta_seconds\":null");
        buf_puts(b, "}");
    }
    buf_puts(b, ",\"last\":");
    if (last.pass == 0) {
        buf_puts(b, "null");
    } else {
        buf_puts(b, "{");
        json_counts(b, &last);
        json_time(b, "ended", last.ended_ms);
        buf_printf(b, ",\"seconds\":%.3f}", (double)(last.ended_ms - last.started_ms) / 1000.0);
    }
    if (due == INT64_MAX || running)
        buf_puts(b, ",\"next\":null");
    else
        json_time(b, "next", due < clock_wall_ms() ? clock_wall_ms() : due);
    if ((rc = mdb_stat(txn, m->damaged, &st)) != 0)
        return meta_err(rc, "mdb_stat(damaged)");
    buf_printf(b, ",\"damaged_objects\":%zu,\"damaged\":[", (size_t)st.ms_entries);
    if ((rc = mdb_cursor_open(txn, m->damaged, &c)) != 0)
        return meta_err(rc, "mdb_cursor_open(damaged)");
    int n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < SCRUB_DAMAGED_SHOWN; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        scrubrec_damaged_t d;
        if (scrubrec_damaged_decode(v.mv_data, v.mv_size, &d) != 0)
            continue;
        buf_puts(b, n++ == 0 ? "{\"bucket\":" : ",{\"bucket\":");
        buf_json_str(b, d.bucket, d.blen);
        buf_puts(b, ",\"key\":");
        buf_json_str(b, d.key, d.klen);
        buf_printf(b, ",\"version\":%" PRIu64 ",\"origin\":", d.version);
        buf_json_str(b, d.origin, d.origin_len);
        if (d.block == UINT64_MAX)
            buf_puts(b, ",\"block\":null");
        else
            buf_printf(b, ",\"block\":%" PRIu64, d.block);
        json_time(b, "found", d.found_ms);
        buf_puts(b, "}");
    }
    mdb_cursor_close(c);
    buf_puts(b, "]");
    repair_stats_t rs;
    repair_stats(&rs);
    buf_printf(b,
               ",\"repair\":{\"attempted\":%" PRIu64 ",\"repaired\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"damaged_everywhere\":%" PRIu64 ",\"blocks\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
               rs.attempted, rs.repaired, rs.failed, rs.everywhere, rs.blocks, rs.bytes);
    if ((ret = quarantine_json(m, txn, b)) != 0)
        return ret;
    buf_puts(b, "}");
    return 0;
}

int scrub_metrics(scrub_t *sc, meta_t *m, MDB_txn *txn, buf_t *b)
{
    scrub_pass_t last;
    uint64_t objects, bytes, filled;
    int running;
    MDB_stat st;
    int rc;

    if ((rc = mdb_stat(txn, m->damaged, &st)) != 0)
        return meta_err(rc, "mdb_stat(damaged)");
    pthread_mutex_lock(&sc->mu);
    last = sc->last;
    running = sc->running;
    objects = sc->tot_objects;
    bytes = sc->tot_bytes;
    filled = sc->tot_filled;
    pthread_mutex_unlock(&sc->mu);
    buf_printf(b,
               "# HELP comio_scrub_running Whether a scrub pass is running.\n"
               "# TYPE comio_scrub_running gauge\n"
               "comio_scrub_running %d\n"
               "# HELP comio_scrub_passes_total Scrub passes finished (the store's, kept across restarts).\n"
               "# TYPE comio_scrub_passes_total counter\n"
               "comio_scrub_passes_total %" PRIu64 "\n"
               "# HELP comio_scrub_objects_total Objects scrubbed since storaged started.\n"
               "# TYPE comio_scrub_objects_total counter\n"
               "comio_scrub_objects_total %" PRIu64 "\n"
               "# HELP comio_scrub_bytes_total Object bytes the scrub read since storaged started.\n"
               "# TYPE comio_scrub_bytes_total counter\n"
               "comio_scrub_bytes_total %" PRIu64 "\n"
               "# HELP comio_scrub_filled_total Objects without block checksums given theirs by the scrub since storaged "
               "started.\n"
               "# TYPE comio_scrub_filled_total counter\n"
               "comio_scrub_filled_total %" PRIu64 "\n"
               "# HELP comio_scrub_damaged_objects Damaged objects on record (found by a scrub, not rewritten since).\n"
               "# TYPE comio_scrub_damaged_objects gauge\n"
               "comio_scrub_damaged_objects %zu\n"
               "# HELP comio_scrub_last_pass_end_seconds When the last scrub pass finished, since the epoch (0: never).\n"
               "# TYPE comio_scrub_last_pass_end_seconds gauge\n"
               "comio_scrub_last_pass_end_seconds %" PRId64 ".%03d\n",
               running, last.pass, objects, bytes, filled, (size_t)st.ms_entries, last.ended_ms / 1000,
               (int)(last.ended_ms % 1000));
    return repair_metrics(m, txn, b);
}

int scrub_release_quarantine(meta_t *m, uint64_t *extents, uint64_t *bytes)
{
    MDB_txn *txn;
    int rc, ret;
    char es[24], bs[24];

    *extents = *bytes = 0;
    if ((rc = mdb_txn_begin(m->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(release quarantine)");
    if ((ret = quarantine_release(m, txn, extents, bytes)) != 0) {
        mdb_txn_abort(txn);
        *extents = *bytes = 0;
        return ret;
    }
    if ((ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit(release quarantine)")) != 0) {
        *extents = *bytes = 0;
        return ret;
    }
    snprintf(es, sizeof(es), "%" PRIu64, *extents);
    snprintf(bs, sizeof(bs), "%" PRIu64, *bytes);
    log_msg(LOG_LVL_WARN, "quarantined extents released: they may hold new data from now on", "extents", es, "bytes", bs, NULL);
    return 0;
}
