/* repair.c - the repairer: a worker that fetches a damaged object's good copy from a peer and swaps it in. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "common/clock.h"
#include "common/log.h"
#include "proto/presign.h"
#include "storaged/fetch.h"
#include "storaged/meta.h"
#include "storaged/quarantine.h"
#include "storaged/repair.h"
#include "storaged/repair_backoff.h"

/* replication.targets and storage.repair_peers, each at most CONF_TARGETS_MAX long */
#define REPAIR_PEERS_MAX (2 * CONF_TARGETS_MAX)

typedef struct {
    const char *name, *url, *secret; /* borrowed from the configuration */
    int64_t down_until_ms;           /* atomic, monotonic: asked last until then (it did not answer) */
} peer_t;

typedef struct job {
    struct job *next;
    repair_what_t what;
    repair_lane_t lane;
    int64_t asked_ms;    /* monotonic */
    int64_t deadline_ms; /* monotonic */
    repair_done_t done;  /* NULL: repair_object waits on `finished`, unless detached */
    void *arg;
    int detached;     /* repair_background's: nobody waits, freed when done */
    int verify;       /* repair_check's: repaired only when a read now finds damage */
    int force;        /* repair_check_ask's with force: the back-off does not drop it */
    int64_t retry_ms; /* dropped by the back-off (ENQUEUE_DROPPED): when a request would run again */
    int finished, result;
} job_t;

#define ASK_URL_MAX (PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX) + sizeof(REPAIR_URL_MARK))

/* One peer being asked for a repair's copy: its fetch streams into an extent
 * of its own, so that peers asked at once (hedged) never write over each
 * other. The worker's own; the extent is kept for the next peer asked
 * through it until the repair ends. */
typedef struct {
    fetch_t *f;
    alloc_extent_t e; /* pending, {0, 0} until first used */
    blocksum_calc_t calc;
    size_t peer;        /* index in rp.peers, while busy */
    int busy;           /* its transfer is in the lane's multi handle */
    int hedged;         /* it said nothing for the hedge delay: marked down, the next peer asked as well */
    int64_t started_ms; /* monotonic */
    char url[ASK_URL_MAX];
} ask_t;

/* One lane: its queue (under rp.mu) and its worker. */
typedef struct {
    job_t *head, **tail;
    size_t queued;
    const job_t *running; /* the job the worker is on, NULL between jobs */
    pthread_t tid;
    int thread_started;
    /* the worker's own: */
    CURLM *multi;
    ask_t *asks; /* one per peer, as many may be asked at once */
} lane_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job queued, a job finished, a stop */
    int started, stopping;
    lane_t lanes[REPAIR_NLANES];
    repair_backoff_t backoff; /* under mu */
    int cancel;               /* atomic: abandons a fetch in flight */
    /* set by repair_start, read-only afterwards (but the peers' down_until_ms) */
    meta_t *meta;
    store_t *store;
    fetch_opts_t opts;
    uint64_t timeout_ms, hedge_ms;
    peer_t *peers;
    size_t npeers;
} rp = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static repair_stats_t counts; /* atomic fields */

#define COUNT(field, n) __atomic_add_fetch(&counts.field, (n), __ATOMIC_RELAXED)

/* The label of each repair_skip_t in comio_repair_skipped_total{reason}. */
static const char *const skip_names[REPAIR_NSKIPS] = {
    [REPAIR_SKIP_DUPLICATE] = "duplicate",
    [REPAIR_SKIP_BACKOFF] = "backoff",
    [REPAIR_SKIP_RECENT] = "recent_failure",
    [REPAIR_SKIP_EXPIRED] = "expired",
};

void repair_what_set(repair_what_t *w, const char *b, size_t blen, const char *k, size_t klen, uint64_t version, const char *origin,
                     size_t origin_len, uint64_t off, uint64_t block, integrity_path_t path)
{
    memset(w, 0, sizeof(*w));
    w->blen = blen > LOGREC_BUCKET_MAX ? LOGREC_BUCKET_MAX : blen;
    memcpy(w->bucket, b, w->blen);
    w->klen = klen > LOGREC_KEY_MAX ? LOGREC_KEY_MAX : klen;
    memcpy(w->key, k, w->klen);
    w->origin_len = origin_len > LOGREC_ORIGIN_MAX ? LOGREC_ORIGIN_MAX : origin_len;
    memcpy(w->origin, origin, w->origin_len);
    w->version = version;
    w->off = off;
    w->block = block;
    w->path = path;
}

/* ---- extents ---- */

/* Allocates a pending extent for `size` bytes in a transaction of its own:
 * a crash before the swap gives it back at start-up. */
static int extent_take(uint64_t size, alloc_extent_t *e)
{
    MDB_txn *txn;
    int rc, ret;

    if ((rc = mdb_txn_begin(rp.meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(repair)");
    if ((ret = alloc_alloc(&rp.meta->alloc, txn, size, e)) != 0 || (ret = meta_pending_add(rp.meta, txn, *e)) != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    return meta_err(mdb_txn_commit(txn), "mdb_txn_commit(repair)");
}

/* Returns the pending extent e to the free map in txn. */
static int extent_give_back_in(MDB_txn *txn, alloc_extent_t e)
{
    int ret = meta_pending_del(rp.meta, txn, e);
    return ret != 0 ? ret : alloc_free(&rp.meta->alloc, txn, e);
}

static void extent_give_back(alloc_extent_t e)
{
    MDB_txn *txn;
    int ret;
    if (mdb_txn_begin(rp.meta->env, NULL, 0, &txn) != 0) {
        log_msg(LOG_LVL_ERROR, "repair: cannot free an unused extent (it is reclaimed at the next start)", NULL);
        return;
    }
    if ((ret = extent_give_back_in(txn, e)) != 0 || (ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit(repair)")) != 0) {
        if (ret != 0)
            mdb_txn_abort(txn);
        log_msg(LOG_LVL_ERROR, "repair: cannot free an unused extent (it is reclaimed at the next start)", "error",
                cio_strerror(ret), NULL);
    }
}

/* ---- one repair ---- */

/* Whether the CRCs computed over the fetched bytes are those of our record (v: NULL when the object has none). */
static int crcs_match(const blocksum_calc_t *calc, const blocksum_view_t *v, uint64_t *bad)
{
    if (v == NULL || v->shift != calc->shift)
        return 1; /* nothing to compare block by block: the MD5 vouched for the bytes */
    if (v->first != 0 || v->n != calc->nblocks)
        return 0;
    for (uint64_t i = 0; i < v->n; i++) {
        if (blocksum_view_crc(v, i) != calc->crcs[i]) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

static void fmt_u64(char *out, size_t cap, uint64_t v)
{
    if (v == UINT64_MAX)
        snprintf(out, cap, "unknown");
    else
        snprintf(out, cap, "%" PRIu64, v);
}

/* Reads w's object record into *o and its checksums into *v (their CRCs
 * in *owned, freed by the caller; *have 0 when none). Returns 0, 1 when the
 * object is no longer w's version at w's extent (repaired already,
 * rewritten, deleted) or empty, or an error. */
static int load_current(const repair_what_t *w, meta_obj_t *o, blocksum_view_t *v, uint8_t **owned, int *have)
{
    MDB_txn *txn;
    int ret;

    *owned = NULL;
    *have = 0;
    if (mdb_txn_begin(rp.meta->env, NULL, MDB_RDONLY, &txn) != 0)
        return CIO_EDB;
    ret = meta_obj_get(rp.meta, txn, w->bucket, w->blen, w->key, w->klen, o);
    if (ret == CIO_ENOTFOUND ||
        (ret == 0 && (!meta_obj_current(o, w->version, w->origin, w->origin_len) || o->off != w->off || o->size == 0)))
        ret = 1;
    else if (ret == 0)
        ret = integrity_sums(rp.meta, txn, w->bucket, w->blen, w->key, w->klen, o, 0, o->size, v, owned, have);
    mdb_txn_abort(txn);
    return ret;
}

/* After a reply cut short: asks the peer that signed `url` (a fetch URL) to
 * verify its copy without sending it (`&verify=1`, handler_repl.c). A peer
 * streams a damaged copy until it meets the first bad block and then cuts
 * the reply, which alone does not tell damage from a dropped connection.
 * 1 when the peer answers 503: its copy is damaged. */
static int peer_copy_damaged(fetch_t *f, const char *url, const meta_obj_t *o, alloc_extent_t e)
{
    char vurl[PRESIGN_URL_LEN_MAX(LIMIT_URL_MAX) + sizeof(REPAIR_URL_MARK) + sizeof("&verify=1")], err[FETCH_ERROR_MAX];
    unsigned status = 0;

    snprintf(vurl, sizeof(vurl), "%s&verify=1", url);
    /* no body comes with the answer: nothing is written at e, the size check fails whatever the status */
    int ret = fetch_to_store(f, &rp.opts, vurl, rp.store, e.off, o->size, o->etag, NULL, &status, err, sizeof(err));
    return ret != 0 && status == 503;
}

/* The order to ask the peers in: those not known down first, then those
 * that did not answer a moment ago, each group as configured. Returns n. */
static size_t peer_order(size_t order[REPAIR_PEERS_MAX])
{
    int64_t now = clock_mono_ms();
    size_t n = 0;

    for (int down = 0; down <= 1; down++)
        for (size_t i = 0; i < rp.npeers; i++)
            if ((__atomic_load_n(&rp.peers[i].down_until_ms, __ATOMIC_RELAXED) > now) == down)
                order[n++] = i;
    return n;
}

/* Remembers whether p answered (any HTTP status) or not (no status: refused,
 * reset, timed out); said when that changes. */
static void peer_answered(peer_t *p, int answered)
{
    int64_t was = __atomic_load_n(&p->down_until_ms, __ATOMIC_RELAXED), now = clock_mono_ms();

    if (answered) {
        if (was != 0 && __atomic_exchange_n(&p->down_until_ms, 0, __ATOMIC_RELAXED) != 0)
            log_msg(LOG_LVL_INFO, "repair: a peer answers again", "peer", p->name, NULL);
        return;
    }
    __atomic_store_n(&p->down_until_ms, now + REPAIR_PEER_DOWN_MS, __ATOMIC_RELAXED);
    if (was <= now) {
        char ms[24];
        snprintf(ms, sizeof(ms), "%d", REPAIR_PEER_DOWN_MS);
        log_msg(LOG_LVL_WARN, "repair: a peer did not answer; the next repairs ask it after the others", "peer", p->name, "for_ms",
                ms, NULL);
    }
}

/* What the peers asked for one repair answered. */
typedef struct {
    size_t damaged_there, missing, other;
} tally_t;

/* Ends a's fetch unheard: it lost the race, or never started. */
static void ask_abandon(lane_t *l, ask_t *a)
{
    char err[FETCH_ERROR_MAX];
    unsigned status;

    curl_multi_remove_handle(l->multi, fetch_curl(a->f)); /* CURLM_OK also when it is in no multi handle */
    a->busy = 0;
    int ignored = fetch_finish(a->f, CURLE_ABORTED_BY_CALLBACK, &status, err, sizeof(err)); /* never 0: not run to its end */
    (void)ignored;
}

/* Starts asking peer pi through a for j's object (o). Returns 1 when its
 * transfer is under way in l's multi handle, 0 when it could not start
 * (tallied and logged as a peer that gave no good copy), or an error that
 * ends the repair (no extent for it: CIO_ENOSPC, a meta_err code). */
static int ask_start(const job_t *j, lane_t *l, ask_t *a, size_t pi, const meta_obj_t *o, tally_t *t, int quiet)
{
    const repair_what_t *w = &j->what;
    peer_t *p = &rp.peers[pi];
    int64_t now = clock_mono_ms();
    char err[FETCH_ERROR_MAX], vs[24];
    int ret;

    if (a->e.len == 0 && (ret = extent_take(o->size, &a->e)) != 0)
        return ret;
    blocksum_calc_free(&a->calc);
    if ((ret = blocksum_calc_init(&a->calc, o->size)) != 0)
        return ret;
    /* an object written before origins has none: the URL form without one names it by its version alone */
    if ((ret = presign_url(p->secret, strlen(p->secret), p->url, w->bucket, w->blen, w->key, w->klen, w->version,
                           w->origin_len > 0 ? w->origin : NULL, w->origin_len, clock_wall_ms() / 1000 + REPAIR_URL_EXPIRES_S,
                           a->url, sizeof(a->url) - (sizeof(REPAIR_URL_MARK) - 1))) != 0) {
        snprintf(err, sizeof(err), "cannot sign the fetch URL: %s", cio_strerror(ret));
        goto fail;
    }
    strcat(a->url, REPAIR_URL_MARK); /* the peer queues no repair of its own copy in turn */
    fetch_set_timeout(a->f, (uint64_t)(j->deadline_ms - now));
    if ((ret = fetch_begin(a->f, &rp.opts, a->url, rp.store, a->e.off, o->size, o->etag, &a->calc, err, sizeof(err))) != 0)
        goto fail;
    if (curl_multi_add_handle(l->multi, fetch_curl(a->f)) != CURLM_OK) {
        ask_abandon(l, a);
        snprintf(err, sizeof(err), "cannot add the fetch to the repair's curl multi handle");
        goto fail;
    }
    a->busy = 1;
    a->hedged = 0;
    a->peer = pi;
    a->started_ms = now;
    return 1;
fail:
    t->other++;
    fmt_u64(vs, sizeof(vs), w->version);
    log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN, "repair: a peer gave no good copy", "peer", p->name, "bucket", w->bucket, "key",
            w->key, "version", vs, "origin", w->origin, "status", "0", "error", err, NULL);
    return 0;
}

/* Ends a's transfer, which curl ended with rc (or which is abandoned: rc
 * CURLE_OPERATION_TIMEDOUT at the deadline, CURLE_ABORTED_BY_CALLBACK when
 * stopping). Returns 1 when a holds a verified copy, else 0 (tallied and
 * logged). */
static int ask_done(const job_t *j, lane_t *l, ask_t *a, CURLcode rc, const meta_obj_t *o, const blocksum_view_t *v, tally_t *t,
                    int quiet)
{
    const repair_what_t *w = &j->what;
    peer_t *p = &rp.peers[a->peer];
    char err[FETCH_ERROR_MAX], vs[24], st[8];
    unsigned status = 0;
    uint64_t bad = UINT64_MAX;

    curl_multi_remove_handle(l->multi, fetch_curl(a->f));
    a->busy = 0;
    int ret = fetch_finish(a->f, rc, &status, err, sizeof(err));
    if (!__atomic_load_n(&rp.cancel, __ATOMIC_RELAXED))
        peer_answered(p, status != 0 || ret != CIO_EAGAIN);
    if (ret == 0 && blocksum_calc_done(&a->calc) == 0 && crcs_match(&a->calc, v, &bad))
        return 1;
    if (ret == 0) {
        char bs[24];
        fmt_u64(bs, sizeof(bs), bad);
        snprintf(err, sizeof(err), "the bytes match the ETag but not our checksum of block %s", bs);
        t->other++;
    } else if (status == 503) {
        t->damaged_there++; /* its own integrity_read refused its copy: DataDamaged */
    } else if (status == 200 && ret == CIO_EAGAIN && peer_copy_damaged(a->f, a->url, o, a->e)) {
        t->damaged_there++; /* cut short past its first block, and the peer says its copy is damaged */
    } else if (ret == CIO_ENOTFOUND || status == 404) {
        t->missing++;
    } else {
        t->other++;
    }
    fmt_u64(vs, sizeof(vs), w->version);
    snprintf(st, sizeof(st), "%u", status);
    log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN, "repair: a peer gave no good copy", "peer", p->name, "bucket", w->bucket, "key",
            w->key, "version", vs, "origin", w->origin, "status", st, "error", err, NULL);
    return 0;
}

/* When the next peer is to be asked as well (monotonic ms): the hedge delay
 * after the latest ask started, if no ask under way has answered yet; else
 * INT64_MAX (one is sending, or none is under way: nothing to hedge). */
static int64_t hedge_due_ms(const lane_t *l)
{
    int64_t latest = INT64_MIN;

    for (size_t i = 0; i < rp.npeers; i++) {
        const ask_t *a = &l->asks[i];
        if (!a->busy)
            continue;
        if (fetch_answered(a->f))
            return INT64_MAX;
        if (a->started_ms > latest)
            latest = a->started_ms;
    }
    return latest == INT64_MIN ? INT64_MAX : latest + (int64_t)rp.hedge_ms;
}

/* The asks under way have said nothing for the hedge delay: each is marked
 * down as one that timed out (the next repairs ask it last), and `next` is
 * asked as well (counted, said). */
static void hedge(const job_t *j, lane_t *l, size_t next, int64_t now)
{
    char ms[24];

    COUNT(hedged, 1);
    snprintf(ms, sizeof(ms), "%" PRIu64, rp.hedge_ms);
    for (size_t i = 0; i < rp.npeers; i++) {
        ask_t *a = &l->asks[i];
        if (!a->busy || a->hedged || now - a->started_ms < (int64_t)rp.hedge_ms)
            continue;
        a->hedged = 1;
        peer_answered(&rp.peers[a->peer], 0);
        log_msg(LOG_LVL_INFO, "repair: a peer has not answered yet; asking the next one as well", "peer", rp.peers[a->peer].name,
                "next", rp.peers[next].name, "bucket", j->what.bucket, "key", j->what.key, "after_ms", ms, NULL);
    }
}

/* Asks the peers (peer_order) for a verified copy of j's object (o), one
 * after another, and the next one as well whenever those asked said nothing
 * (no status line) for the hedge delay (rp.hedge_ms): the first verified
 * copy wins and the other asks are abandoned. Returns 0 with *win the ask
 * holding the copy (at win->e, its CRCs in win->calc), or CIO_ECORRUPT
 * (every peer that answered holds it damaged), CIO_ENOTFOUND (none holds
 * the version), CIO_EAGAIN, or an error of extent_take. Each peer that gave
 * none is logged, at debug level when `quiet` (this object's repair was
 * logged a moment ago). Every ask is ended when it returns; the extents
 * stay with the asks (asks_release). */
static int fetch_good_copy(const job_t *j, lane_t *l, const meta_obj_t *o, const blocksum_view_t *v, ask_t **win, int quiet)
{
    size_t order[REPAIR_PEERS_MAX], n = peer_order(order), next = 0, busy = 0;
    tally_t t = {0, 0, 0};
    int ret = 0;

    *win = NULL;
    for (;;) {
        int64_t now = clock_mono_ms(), due = hedge_due_ms(l);
        int cancel = __atomic_load_n(&rp.cancel, __ATOMIC_RELAXED);

        if (cancel || now >= j->deadline_ms) {
            /* the asks' own timeouts end them at the deadline; this ends what is left */
            for (size_t i = 0; i < rp.npeers; i++)
                if (l->asks[i].busy)
                    ask_done(j, l, &l->asks[i], cancel ? CURLE_ABORTED_BY_CALLBACK : CURLE_OPERATION_TIMEDOUT, o, v, &t, quiet);
            busy = 0;
            break;
        }
        while (next < n && ret == 0 && (busy == 0 || now >= due)) {
            ask_t *a = NULL;
            for (size_t i = 0; i < rp.npeers && a == NULL; i++)
                if (!l->asks[i].busy)
                    a = &l->asks[i];
            if (busy > 0)
                hedge(j, l, order[next], now);
            int started = ask_start(j, l, a, order[next++], o, &t, quiet);
            if (started < 0)
                ret = started; /* no extent: the asks under way may still win */
            busy += started == 1;
            due = hedge_due_ms(l);
        }
        if (busy == 0)
            break;
        int running, queued;
        CURLMsg *msg;
        curl_multi_perform(l->multi, &running);
        while ((msg = curl_multi_info_read(l->multi, &queued)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (size_t i = 0; i < rp.npeers; i++) {
                ask_t *a = &l->asks[i];
                if (a->busy && fetch_curl(a->f) == msg->easy_handle) {
                    CURLcode rc = msg->data.result; /* msg is freed by the removal in ask_done */
                    busy--;
                    if (ask_done(j, l, a, rc, o, v, &t, quiet) && *win == NULL)
                        *win = a;
                    break;
                }
            }
        }
        if (*win != NULL)
            break;
        if (busy == 0)
            continue; /* the next peer at once */
        /* curl_multi_poll also wakes for curl's own timers; a second at most, to see a stop */
        int64_t wait = 1000;
        if (next < n && ret == 0 && due - now < wait)
            wait = due - now;
        if (j->deadline_ms - now < wait)
            wait = j->deadline_ms - now;
        curl_multi_poll(l->multi, NULL, 0, wait > 0 ? (int)wait : 0, NULL);
    }
    for (size_t i = 0; i < rp.npeers; i++)
        if (l->asks[i].busy)
            ask_abandon(l, &l->asks[i]); /* lost the race: nothing said of it */
    if (*win != NULL)
        return 0;
    if (ret != 0)
        return ret;
    if (next < n)
        t.other++; /* peers left unasked: the deadline, or stopping */
    if (t.damaged_there > 0 && t.other == 0)
        return CIO_ECORRUPT;
    if (t.other == 0)
        return CIO_ENOTFOUND;
    return CIO_EAGAIN;
}

/* Gives back the extents the asks hold (but `kept`, swapped in) and frees their CRCs. */
static void asks_release(lane_t *l, const ask_t *kept)
{
    for (size_t i = 0; i < rp.npeers; i++) {
        ask_t *a = &l->asks[i];
        if (a->e.len > 0 && a != kept)
            extent_give_back(a->e);
        a->e = (alloc_extent_t){0, 0};
        blocksum_calc_free(&a->calc);
    }
}

/* Points the object at e (with the CRCs computed) and quarantines its
 * damaged extent, if it is still that version at the damaged extent; else
 * gives e back. *swapped tells which. */
static int swap_in(const repair_what_t *w, alloc_extent_t e, const blocksum_calc_t *calc, int *swapped)
{
    MDB_txn *txn;
    meta_obj_t o;
    int rc, ret;

    *swapped = 0;
    if ((rc = mdb_txn_begin(rp.meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin(repair)");
    ret = meta_obj_get(rp.meta, txn, w->bucket, w->blen, w->key, w->klen, &o);
    if (ret == CIO_ENOTFOUND || (ret == 0 && (!meta_obj_current(&o, w->version, w->origin, w->origin_len) || o.off != w->off))) {
        ret = extent_give_back_in(txn, e); /* a newer write (or another repair) won */
    } else if (ret == 0) {
        alloc_extent_t old = {o.off, o.alen};
        scrubrec_damaged_t d = {w->version, w->block,      clock_wall_ms(), w->origin, w->bucket,
                                w->key,     w->origin_len, w->blen,         w->klen};
        o.off = e.off;
        o.alen = e.len;
        if ((ret = meta_obj_put(rp.meta, txn, w->bucket, w->blen, w->key, w->klen, &o, calc)) == 0 &&
            (ret = meta_pending_del(rp.meta, txn, e)) == 0 && (ret = quarantine_add(rp.meta, txn, old, &d)) == 0)
            *swapped = 1;
    }
    if (ret != 0) {
        mdb_txn_abort(txn);
        *swapped = 0;
        return ret;
    }
    return meta_err(mdb_txn_commit(txn), "mdb_txn_commit(repair)");
}

static int run(const job_t *j, lane_t *l)
{
    const repair_what_t *w = &j->what;
    blocksum_view_t view;
    uint8_t *owned = NULL;
    ask_t *win = NULL;
    char vs[24], bs[24], offs[24], sizes[24];
    int have = 0, ret, swapped = 0, quiet = 0;
    meta_obj_t o;

    if ((ret = load_current(w, &o, &view, &owned, &have)) != 0)
        return ret == 1 ? 0 : ret; /* repaired already, rewritten or deleted: nothing damaged to repair */

    COUNT(attempted, 1);
    fmt_u64(vs, sizeof(vs), w->version);
    fmt_u64(bs, sizeof(bs), w->block);
    if (rp.npeers == 0) {
        /* every GET of the object asks again: said once in a while */
        if (!integrity_recent("no peer", w->bucket, w->key, w->version, w->origin, w->block))
            log_msg(LOG_LVL_ERROR, "repair: no peer to repair from (replication.targets, storage.repair_peers)", "bucket",
                    w->bucket, "key", w->key, "version", vs, "origin", w->origin, "block", bs, NULL);
        ret = CIO_ENOTFOUND;
        goto out;
    }
    /* a replica retrying its fetch, or a client reading again, asks again and again: its peers' answers are said once in a while */
    quiet = integrity_recent("repair asked", w->bucket, w->key, w->version, w->origin, w->off);
    ret = fetch_good_copy(j, l, &o, have ? &view : NULL, &win, quiet);
    if (ret == 0)
        ret = store_sync(rp.store);
    if (ret == 0)
        ret = swap_in(w, win->e, &win->calc, &swapped);
    /* the winner's extent is swapped in, or given back by swap_in when a newer write won; on an error it goes back here */
    asks_release(l, ret == 0 ? win : NULL);
out:
    if (ret == 0 && swapped) {
        uint64_t blocks = blocksum_nblocks(o.size, BLOCKSUM_SHIFT);
        COUNT(repaired, 1);
        COUNT(blocks, blocks);
        COUNT(bytes, o.size);
        fmt_u64(offs, sizeof(offs), w->off);
        fmt_u64(sizes, sizeof(sizes), o.size);
        log_msg(LOG_LVL_WARN, "object repaired from a peer: the damaged extent is quarantined", "path",
                integrity_path_name(w->path), "bucket", w->bucket, "key", w->key, "version", vs, "origin", w->origin, "block", bs,
                "peer", rp.peers[win->peer].name, "bytes", sizes, "quarantined_offset", offs, NULL);
    } else if (ret == CIO_ECORRUPT) {
        COUNT(failed, 1);
        COUNT(everywhere, 1);
        if (!integrity_recent("damaged everywhere", w->bucket, w->key, w->version, w->origin, w->off))
            log_msg(LOG_LVL_ERROR, "object data damaged on every site: no good copy anywhere, both copies left as they are", "path",
                    integrity_path_name(w->path), "bucket", w->bucket, "key", w->key, "version", vs, "origin", w->origin, "block",
                    bs, NULL);
    } else if (ret != 0) {
        COUNT(failed, 1);
        /* per outcome: a peer that was down and now answers that it holds no such version is said again */
        if (!integrity_recent(ret == CIO_ENOTFOUND ? "repair failed: not held" : "repair failed", w->bucket, w->key, w->version,
                              w->origin, w->off))
            log_msg(LOG_LVL_ERROR, "repair failed: the object stays damaged here", "path", integrity_path_name(w->path), "bucket",
                    w->bucket, "key", w->key, "version", vs, "origin", w->origin, "block", bs, "error",
                    ret == CIO_ENOTFOUND ? "no peer holds this version: the object is on this site only (not replicated yet); "
                                           "it stays damaged until it is written again"
                                         : cio_strerror(ret),
                    NULL);
    }
    free(owned);
    return ret;
}

/* For repair_check: reads j's object as it is now through integrity_read.
 * Returns 1 when a block fails (counted and logged; j->what.block set), 0
 * when it is good, has no checksums or is no longer the version at the
 * extent j names, or an error. */
static int verify_current(job_t *j)
{
    repair_what_t *w = &j->what;
    blocksum_view_t view;
    uint8_t *owned = NULL;
    char *chunk = NULL;
    uint64_t bad = UINT64_MAX;
    int have = 0, ret;
    meta_obj_t o;

    if ((ret = load_current(w, &o, &view, &owned, &have)) != 0)
        return ret == 1 ? 0 : ret;
    if (!have)
        goto out; /* without block checksums there is nothing to check a block against */
    if ((chunk = malloc(REPAIR_CHECK_CHUNK)) == NULL) {
        ret = CIO_ENOMEM;
        goto out;
    }
    ret = integrity_read_all(rp.store, o.off, o.size, &view, chunk, REPAIR_CHECK_CHUNK, &bad);
    if (ret == CIO_ECORRUPT) {
        w->block = bad;
        integrity_damaged(w->path, w->bucket, w->key, w->version, w->origin, bad);
        ret = 1;
    }
out:
    free(chunk);
    free(owned);
    return ret;
}

/* ---- the worker ---- */

static void finish(job_t *j, int result)
{
    if (j->done != NULL || j->detached) {
        if (j->done != NULL)
            j->done(j->arg, result);
        free(j);
        return;
    }
    pthread_mutex_lock(&rp.mu);
    j->result = result;
    j->finished = 1;
    pthread_cond_broadcast(&rp.cv);
    pthread_mutex_unlock(&rp.mu);
}

/* Says, once per back-off interval of the object, that a request for it was dropped. */
static void say_dropped(const repair_what_t *w, int result, int64_t retry_ms)
{
    char vs[24], in[24];
    int64_t left = retry_ms - clock_mono_ms();

    fmt_u64(vs, sizeof(vs), w->version);
    snprintf(in, sizeof(in), "%" PRId64, left > 0 ? left : 0);
    log_msg(LOG_LVL_WARN, "repair not tried again yet: it found no good copy a moment ago (back-off)", "bucket", w->bucket, "key",
            w->key, "version", vs, "origin", w->origin, "error", cio_strerror(result), "retry_in_ms", in, NULL);
}

/* Whether j is to be dropped by the back-off (under rp.mu): 0, or the
 * failure it answers with (counted, said; j->retry_ms set). */
static int backoff_drop(job_t *j)
{
    int first;

    if (j->force)
        return 0;
    int ret = repair_backoff_check(&rp.backoff, &j->what, j->lane == REPAIR_LANE_CLIENT, j->asked_ms, &first, &j->retry_ms);
    if (ret != 0) {
        COUNT(skipped[j->lane == REPAIR_LANE_CLIENT ? REPAIR_SKIP_RECENT : REPAIR_SKIP_BACKOFF], 1);
        if (first)
            say_dropped(&j->what, ret, j->retry_ms);
    }
    return ret;
}

static void *worker_main(void *arg)
{
    lane_t *l = arg;

    pthread_mutex_lock(&rp.mu);
    for (;;) {
        while (l->head == NULL && !rp.stopping)
            pthread_cond_wait(&rp.cv, &rp.mu);
        job_t *j = l->head;
        if (j == NULL)
            break; /* stopping, nothing left */
        if ((l->head = j->next) == NULL)
            l->tail = &l->head;
        l->queued--;
        int stopping = rp.stopping, result = CIO_EAGAIN, ran = 0;
        if (!stopping && clock_mono_ms() >= j->deadline_ms)
            COUNT(skipped[REPAIR_SKIP_EXPIRED], 1);
        else if (!stopping && (result = backoff_drop(j)) == 0) /* another attempt failed while it waited */
            ran = 1;
        l->running = ran ? j : NULL;
        pthread_mutex_unlock(&rp.mu);
        if (ran) {
            result = j->verify ? verify_current(j) : 1;
            if (result == 1)
                result = run(j, l);
        }
        pthread_mutex_lock(&rp.mu);
        l->running = NULL;
        if (ran)
            repair_backoff_done(&rp.backoff, &j->what, result, clock_mono_ms());
        pthread_mutex_unlock(&rp.mu);
        finish(j, result);
        pthread_mutex_lock(&rp.mu);
    }
    pthread_mutex_unlock(&rp.mu);
    return NULL;
}

int repair_what_same(const repair_what_t *a, const repair_what_t *b)
{
    return a->version == b->version && a->off == b->off && a->blen == b->blen && a->klen == b->klen &&
           a->origin_len == b->origin_len && memcmp(a->bucket, b->bucket, a->blen) == 0 && memcmp(a->key, b->key, a->klen) == 0 &&
           memcmp(a->origin, b->origin, a->origin_len) == 0;
}

/* Whether a job for w's object is queued or running in either lane (a
 * client's repair serves a background reader too). Under rp.mu. */
static int asked_already(const repair_what_t *w)
{
    for (int i = 0; i < REPAIR_NLANES; i++) {
        const lane_t *l = &rp.lanes[i];
        if (l->running != NULL && repair_what_same(&l->running->what, w))
            return 1;
        for (const job_t *q = l->head; q != NULL; q = q->next)
            if (repair_what_same(&q->what, w))
                return 1;
    }
    return 0;
}

#define ENQUEUE_DUPLICATE 1 /* enqueue: with `once`, a job for the object is queued or running in a lane */
#define ENQUEUE_DROPPED 2   /* enqueue: dropped by the back-off; j->result is the failure to answer */

/* Queues j in its lane. Returns 0, ENQUEUE_DUPLICATE, ENQUEUE_DROPPED (both
 * counted) or CIO_EAGAIN (the lane is full, or stopping). */
static int enqueue(job_t *j, int once)
{
    lane_t *l = &rp.lanes[j->lane];
    int ret = 0;

    j->next = NULL;
    j->asked_ms = clock_mono_ms();
    j->deadline_ms = j->asked_ms + (int64_t)rp.timeout_ms;
    pthread_mutex_lock(&rp.mu);
    if (!rp.started || rp.stopping || l->queued >= REPAIR_QUEUE_MAX) {
        ret = CIO_EAGAIN;
    } else if (once && asked_already(&j->what)) {
        COUNT(skipped[REPAIR_SKIP_DUPLICATE], 1);
        ret = ENQUEUE_DUPLICATE; /* a scan of at most REPAIR_NLANES * REPAIR_QUEUE_MAX jobs, on a path taken only when damage was
                                    found */
    } else if ((j->result = backoff_drop(j)) != 0) {
        ret = ENQUEUE_DROPPED;
    } else {
        *l->tail = j;
        l->tail = &j->next;
        l->queued++;
        pthread_cond_broadcast(&rp.cv);
    }
    pthread_mutex_unlock(&rp.mu);
    return ret;
}

int repair_object(const repair_what_t *w, repair_lane_t lane)
{
    job_t j;
    int ret;

    memset(&j, 0, sizeof(j));
    j.what = *w;
    j.lane = lane;
    if ((ret = enqueue(&j, 0)) != 0)
        return ret == ENQUEUE_DROPPED ? j.result : ret;
    pthread_mutex_lock(&rp.mu);
    while (!j.finished)
        pthread_cond_wait(&rp.cv, &rp.mu);
    pthread_mutex_unlock(&rp.mu);
    return j.result;
}

int repair_submit(const repair_what_t *w, repair_done_t done, void *arg)
{
    job_t *j = calloc(1, sizeof(*j));
    int ret;

    if (j == NULL)
        return CIO_ENOMEM;
    j->what = *w;
    j->lane = REPAIR_LANE_CLIENT;
    j->done = done;
    j->arg = arg;
    if ((ret = enqueue(j, 0)) == ENQUEUE_DROPPED)
        ret = j->result;
    if (ret != 0)
        free(j);
    return ret;
}

void repair_background(const repair_what_t *w)
{
    job_t *j = calloc(1, sizeof(*j));
    int ret = CIO_ENOMEM;
    if (j != NULL) {
        j->what = *w;
        j->lane = REPAIR_LANE_BACKGROUND;
        j->detached = 1;
        if ((ret = enqueue(j, 1)) == 0)
            return;
    }
    free(j);
    if (ret == ENQUEUE_DUPLICATE || ret == ENQUEUE_DROPPED)
        return; /* asked already (that repair serves this reader too), or failed a moment ago: counted */
    log_msg(LOG_LVL_WARN, "cannot queue the repair of a damaged object (the repair queue is full or stopped)", "bucket", w->bucket,
            "key", w->key, NULL);
}

int repair_check_ask(const repair_what_t *w, int force, repair_asked_t *out)
{
    job_t *j = calloc(1, sizeof(*j));
    int ret;

    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return CIO_ENOMEM;
    j->what = *w;
    j->lane = REPAIR_LANE_BACKGROUND;
    j->detached = 1;
    j->verify = 1;
    j->force = force;
    ret = enqueue(j, 1);
    if (ret == ENQUEUE_DROPPED) {
        int64_t left = j->retry_ms - clock_mono_ms();
        out->how = REPAIR_ASKED_BACKOFF;
        out->failure = j->result;
        out->retry_in_ms = left > 0 ? (uint64_t)left : 0;
    } else if (ret == ENQUEUE_DUPLICATE) {
        out->how = REPAIR_ASKED_JOINED;
    }
    if (ret != 0)
        free(j);
    return ret == ENQUEUE_DUPLICATE || ret == ENQUEUE_DROPPED ? 0 : ret; /* asked already, or failed a moment ago: counted */
}

int repair_check(const repair_what_t *w)
{
    repair_asked_t asked;
    return repair_check_ask(w, 0, &asked);
}

/* Adds a peer unless its URL is listed already or it has no secret to sign with. */
static void add_peer(const char *name, const char *url, const char *secret)
{
    if (secret == NULL || *secret == '\0') {
        log_msg(LOG_LVL_WARN, "repair: a peer without a token is not asked (give it a token, or set replication.accept_token)",
                "peer", name, NULL);
        return;
    }
    for (size_t i = 0; i < rp.npeers; i++)
        if (strcmp(rp.peers[i].url, url) == 0)
            return;
    if (rp.npeers < REPAIR_PEERS_MAX) /* the configuration's limits keep it there */
        rp.peers[rp.npeers++] = (peer_t){name, url, secret, 0};
}

/* Frees what repair_start made (the threads joined or never started). */
static void release(void)
{
    for (int i = 0; i < REPAIR_NLANES; i++) {
        lane_t *l = &rp.lanes[i];
        for (size_t k = 0; l->asks != NULL && k < rp.npeers; k++)
            fetch_free(l->asks[k].f);
        free(l->asks);
        l->asks = NULL;
        if (l->multi != NULL)
            curl_multi_cleanup(l->multi);
        l->multi = NULL;
    }
    free(rp.peers); /* their strings are the configuration's */
    rp.peers = NULL;
    rp.npeers = 0;
}

/* Joins the workers started. */
static void join_workers(void)
{
    for (int i = 0; i < REPAIR_NLANES; i++) {
        if (rp.lanes[i].thread_started)
            pthread_join(rp.lanes[i].tid, NULL);
        rp.lanes[i].thread_started = 0;
    }
}

int repair_start(const conf_t *conf, meta_t *m, store_t *s)
{
    rp.meta = m;
    rp.store = s;
    rp.opts.ca_file = conf->ca_file;
    rp.timeout_ms = conf->repair_timeout_ms;
    rp.hedge_ms = rp.timeout_ms / 4 < REPAIR_HEDGE_MS ? rp.timeout_ms / 4 : REPAIR_HEDGE_MS;
    repair_backoff_init(&rp.backoff, conf->repair_backoff_ms);
    if ((rp.peers = calloc(REPAIR_PEERS_MAX, sizeof(*rp.peers))) == NULL) {
        release();
        return CIO_ENOMEM;
    }
    for (size_t i = 0; i < conf->ntargets; i++)
        add_peer(conf->targets[i].name, conf->targets[i].url, conf->targets[i].token);
    for (size_t i = 0; i < conf->nrepair_peers; i++) {
        const conf_target_t *p = &conf->repair_peers[i];
        add_peer(p->name, p->url, p->token != NULL ? p->token : conf->accept_token);
    }
    for (int i = 0; i < REPAIR_NLANES; i++) {
        lane_t *l = &rp.lanes[i];
        l->head = NULL;
        l->tail = &l->head;
        if ((l->multi = curl_multi_init()) == NULL || (l->asks = calloc(rp.npeers + 1, sizeof(*l->asks))) == NULL) {
            release();
            return CIO_ENOMEM;
        }
        for (size_t k = 0; k < rp.npeers; k++) {
            if ((l->asks[k].f = fetch_new(&rp.cancel)) == NULL) {
                release();
                return CIO_ENOMEM;
            }
        }
    }
    for (int i = 0; i < REPAIR_NLANES; i++) {
        if (pthread_create(&rp.lanes[i].tid, NULL, worker_main, &rp.lanes[i]) != 0) {
            log_msg(LOG_LVL_ERROR, "cannot start the repair thread", NULL);
            pthread_mutex_lock(&rp.mu);
            rp.stopping = 1;
            pthread_cond_broadcast(&rp.cv);
            pthread_mutex_unlock(&rp.mu);
            join_workers();
            release();
            return CIO_ESYS;
        }
        rp.lanes[i].thread_started = 1;
    }
    pthread_mutex_lock(&rp.mu);
    rp.started = 1;
    pthread_mutex_unlock(&rp.mu);
    return 0;
}

void repair_stop(void)
{
    pthread_mutex_lock(&rp.mu);
    int started = rp.started;
    rp.stopping = 1;
    __atomic_store_n(&rp.cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&rp.cv);
    pthread_mutex_unlock(&rp.mu);
    if (!started)
        return;
    join_workers();
    release();
}

void repair_stats(repair_stats_t *out)
{
    out->attempted = __atomic_load_n(&counts.attempted, __ATOMIC_RELAXED);
    out->repaired = __atomic_load_n(&counts.repaired, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&counts.failed, __ATOMIC_RELAXED);
    out->everywhere = __atomic_load_n(&counts.everywhere, __ATOMIC_RELAXED);
    out->blocks = __atomic_load_n(&counts.blocks, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&counts.bytes, __ATOMIC_RELAXED);
    out->hedged = __atomic_load_n(&counts.hedged, __ATOMIC_RELAXED);
    for (int i = 0; i < REPAIR_NSKIPS; i++)
        out->skipped[i] = __atomic_load_n(&counts.skipped[i], __ATOMIC_RELAXED);
}

int repair_metrics(meta_t *m, MDB_txn *txn, buf_t *b)
{
    repair_stats_t st;
    uint64_t extents, bytes;
    int ret;

    if ((ret = quarantine_totals(m, txn, &extents, &bytes)) != 0)
        return ret;
    repair_stats(&st);
    buf_printf(b,
               "# HELP comio_repair_attempted_total Repairs of damaged objects from a peer attempted since storaged started.\n"
               "# TYPE comio_repair_attempted_total counter\n"
               "comio_repair_attempted_total %" PRIu64 "\n"
               "# HELP comio_repair_repaired_total Damaged objects repaired from a peer since storaged started.\n"
               "# TYPE comio_repair_repaired_total counter\n"
               "comio_repair_repaired_total %" PRIu64 "\n"
               "# HELP comio_repair_failed_total Repairs that found no good copy since storaged started.\n"
               "# TYPE comio_repair_failed_total counter\n"
               "comio_repair_failed_total %" PRIu64 "\n"
               "# HELP comio_repair_damaged_everywhere_total Repairs that failed because every peer's copy is damaged too.\n"
               "# TYPE comio_repair_damaged_everywhere_total counter\n"
               "comio_repair_damaged_everywhere_total %" PRIu64 "\n"
               "# HELP comio_repair_blocks_total Checksum blocks written back by repairs since storaged started.\n"
               "# TYPE comio_repair_blocks_total counter\n"
               "comio_repair_blocks_total %" PRIu64 "\n"
               "# HELP comio_repair_bytes_total Object bytes written back by repairs since storaged started.\n"
               "# TYPE comio_repair_bytes_total counter\n"
               "comio_repair_bytes_total %" PRIu64 "\n"
               "# HELP comio_repair_hedged_total Peers asked for a repair's copy while the one asked before had not answered "
               "within the hedge delay.\n"
               "# TYPE comio_repair_hedged_total counter\n"
               "comio_repair_hedged_total %" PRIu64 "\n"
               "# HELP comio_repair_quarantined_extents Damaged extents kept out of the allocator.\n"
               "# TYPE comio_repair_quarantined_extents gauge\n"
               "comio_repair_quarantined_extents %" PRIu64 "\n"
               "# HELP comio_repair_quarantined_bytes Bytes of the damaged extents kept out of the allocator.\n"
               "# TYPE comio_repair_quarantined_bytes gauge\n"
               "comio_repair_quarantined_bytes %" PRIu64 "\n",
               st.attempted, st.repaired, st.failed, st.everywhere, st.blocks, st.bytes, st.hedged, extents, bytes);
    buf_printf(b, "# HELP comio_repair_skipped_total Repairs asked for but not run since storaged started, by reason: one for "
                  "the object queued or running (duplicate), within the back-off after a failure (backoff), a client's within "
                  "a second of a failure (recent_failure), waited past storage.repair_timeout (expired).\n"
                  "# TYPE comio_repair_skipped_total counter\n");
    for (int i = 0; i < REPAIR_NSKIPS; i++)
        buf_printf(b, "comio_repair_skipped_total{reason=\"%s\"} %" PRIu64 "\n", skip_names[i], st.skipped[i]);
    return 0;
}
