/* ship.c - repld's dispatcher: log window, batching, replies, cursor, status. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "proto/batch.h"
#include "common/ackfile.h"
#include "common/be.h"
#include "common/bucket.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/conflict.h"
#include "common/ctl.h"
#include "common/replog.h"
#include "common/log.h"
#include "common/notify.h"
#include "proto/presign.h"
#include "common/replstat.h"
#include "repld/repair_ask.h"
#include "repld/sender.h"
#include "repld/ship.h"
#include "common/syncctl.h"
#include "repld/sync.h"

#define BACKOFF_CAP_MS 10000                /* a target back from an outage is tried again within this; an attempt is one connect */
#define CAP_LOG_EVERY_MS 60000              /* at the cap, "replica unavailable" is logged at most this often */
#define BATCH_BYTES_MAX (8u * 1024 * 1024)  /* stop adding inline data beyond this */
#define QUEUED_BYTES_MAX (2u * 1024 * 1024) /* the same for a worker's batches beyond its first */
#define SPARE_MAX (SENDER_QUEUE * 64)       /* batches kept for reuse: as many as 64 workers (the most) hold */
#define BACKLOG_EVENTS 500                  /* events a batch may hold while a backlog exists (the in-flight rule) */
#define BACKLOG_BYTES_MAX (2u * 1024 * 1024) /* events beyond batch_size are added only while the batch is below this */
#define WINDOW_EVENTS_MAX 32768              /* the window never holds more than this (nor less than the old rule's) */
#define PERSIST_EVERY_MS 10                  /* while batches are in flight, the cursor is persisted at least this often */
#define PRESIGN_TTL_S 3600
#define IDLE_POLL_MS 1000     /* upper bound on a sleep, even with inotify */
#define NOTIFY_FALLBACK_MS 20 /* without inotify */
#define STOP_GRACE_MS 10000
#define ACK_HOLDS_MAX 64 /* superseded events whose superseder may not be acknowledged yet (ack_point) */

/* EV_FAILED: refused for good, recorded in "repl_failed" by the next persist,
 * in the commit that moves the cursor past it; EV_DONE once it is recorded. */
typedef enum { EV_READY, EV_INFLIGHT, EV_DONE, EV_FAILED } ev_state_t;

/* How an EV_DONE event was retired: what it counts for once the cursor passes it. */
typedef enum { RETIRED_NOT, RETIRED_ACKED, RETIRED_SUPERSEDED, RETIRED_SKIPPED } ev_retired_t;

typedef struct {
    uint64_t seq;
    char *rec; /* copy of the log record, in the same allocation as the event */
    size_t rec_len;
    logrec_t r;        /* decoded, pointing into rec */
    uint32_t attempts; /* refusals so far */
    uint64_t hold_ms;  /* current delay after "retry" answers that spend no attempt */
    uint64_t due_ms;   /* monotonic time it may be sent again */
    ev_state_t state;
    ev_retired_t retired;
    int from_retry; /* came from "repl_retry", not from the log */
    int inl;        /* in the batch being built, with bytes read from the store at inl_off */
    uint64_t inl_off;
    char error[256];
} ev_t;

typedef struct {
    ev_t **v;
    size_t len, cap;
} evvec_t;

typedef struct {
    send_job_t job;
    batch_enc_t enc;
    ev_t **evs;
    batch_res_t *results; /* batch_events() of them: the reply's, one per event */
    size_t n;
    size_t cap;        /* bytes of encoding beyond which no event is added */
    size_t max_events; /* events beyond which none is added: batch_size, or up to batch_events() in a backlog */
} batch_t;

/* One dispatcher: the state of shipping to one target, run by a thread of
 * its own (target_main). Nothing here is shared with another target's
 * dispatcher; the control thread reads the fields under mu. */
typedef struct {
    const conf_t *conf;
    const conf_target_t *tgt; /* borrowed from conf */
    meta_t *meta;
    int store_fd;
    sender_t *sender;
    sync_t *sync; /* the target's full sync (repld/sync.h), started before the dispatcher */
    int efd, ifd;
    int stop_fd; /* the run's: readable once the dispatchers must stop (never drained) */
    pthread_t tid;
    int started, ret;

    MDB_txn *snap; /* the dispatcher's read transaction, reset between uses (snap_begin, snap_end) */
    char *scratch; /* object bytes read for an inline event, before they are copied into a batch */
    size_t scratch_cap;

    evvec_t win; /* events from the log, in seq order; [0] is the oldest not yet retired */
    evvec_t rq;  /* events put back by --retry-failed */
    uint64_t next_read;
    uint64_t cursor; /* persisted: every seq <= cursor is done */
    /* What the next persist writes is found from the events' states, never
     * from a list that an allocation could fail to extend (a failed event
     * left off such a list would be trimmed unrecorded): */
    size_t nfailing; /* events in EV_FAILED, to record in "repl_failed" */
    size_t rq_done;  /* re-driven events in EV_DONE, to delete from "repl_retry" */
    /* Retired since the last persist: acknowledged (superseded ones included),
     * or not sent because the target is their origin. They make a persist due;
     * what it counts is found from the events the cursor passes (persist). */
    uint64_t add_acked, add_skipped;
    int64_t last_ok_ms;
    uint64_t persisted_ms; /* when persist last committed */

    uint64_t backoff_ms, backoff_until;
    uint64_t cap_logged_ms; /* when "replica unavailable" was last logged at the cap */
    uint64_t idle_poll_ms;  /* the safety poll while idle (IDLE_POLL_MS) */
    uint64_t next_unmap_ms; /* drop_mapped_pages() */
    void *map_addr;         /* LMDB's map of data.mdb (find_map), NULL if unknown */
    size_t map_len;
    int remote_state; /* 0 unknown, 1 up, 2 backing off */
    char remote_error[512];
    char remote_error_copy[512];                /* control thread only */
    char peer_site[LOGREC_ORIGIN_MAX + 1];      /* the target's site id, from its replies ("" until one names it); under mu */
    char peer_site_copy[LOGREC_ORIGIN_MAX + 1]; /* control thread only */

    /* status, guarded by mu (read by the control thread) */
    pthread_mutex_t mu;
    uint64_t lat_counts[REPLSTAT_LAT_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_n;
    uint64_t payload_bytes, wire_bytes; /* batch bytes before and after compression, every POST */
    bwlimit_t *bw;                      /* the run's; NULL when it could not be opened (no limit) */
    int bw_slot;                        /* this target's slot in it, -1: none */
    uint64_t bw_at_ms, bw_at_bytes;     /* the last sample of the slot's byte counter (control thread) */
    double bw_rate;                     /* bytes/s between the last two samples (control thread) */

    /* The ack point published for storaged's sync waits (common/ackfile.h):
     * every seq <= it is acknowledged. A superseded event is retired without
     * being sent; a later event carries its key's state, at a seq no higher
     * than the log's head when it was found superseded (its guard). Until
     * the ack point reaches the guard, it stays below the superseded seq:
     * a write answered COMPLETED is readable on the target, or a newer one. */
    ackfile_t *acks; /* the run's, NULL when it could not be opened */
    size_t ack_slot;
    uint64_t ack_published;
    struct {
        uint64_t seq, guard;
    } holds[ACK_HOLDS_MAX];
    size_t nholds;

    /* finished batches kept for reuse (batch_get, batch_put): dispatcher only */
    batch_t *spare[SPARE_MAX];
    size_t nspare;
    size_t nbatches; /* batches allocated: in spare, being filled, with a worker, or done and not yet taken */
} ship_t;

static int vec_push(evvec_t *v, ev_t *e)
{
    ev_t **n = buf_grow_array(v->v, &v->cap, v->len, sizeof(*n), 64);
    if (n == NULL)
        return CIO_ENOMEM;
    v->v = n;
    v->v[v->len++] = e;
    return 0;
}

static void ev_free(ev_t *e)
{
    free(e);
}

static ev_t *ev_new(uint64_t seq, const void *rec, size_t len)
{
    /* one allocation: the event, then its record (records are small, LOGREC_MAX at most) */
    ev_t *e = malloc(sizeof(*e) + (len ? len : 1));
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->rec = (char *)(e + 1);
    memcpy(e->rec, rec, len);
    e->rec_len = len;
    e->seq = seq;
    if (logrec_decode(e->rec, len, &e->r) != 0) {
        /* cannot happen for records storaged wrote; keep the event so it is recorded as failed */
        memset(&e->r, 0, sizeof(e->r));
        e->state = EV_FAILED;
        snprintf(e->error, sizeof(e->error), "log record %" PRIu64 " does not decode", seq);
    }
    return e;
}

/* The most events one batch holds: batch_size for a trickle, and while a
 * backlog exists up to BACKLOG_EVENTS (never fewer than batch_size, never
 * more than a batch may carry). Over a long round trip a fixed number of
 * batches in flight caps the rate at workers x events per batch / RTT; a batch
 * that grows with the backlog keeps enough events in flight to fill the link
 * whatever the RTT, while a lone event still leaves at once in a batch of
 * one. The events beyond batch_size stop at BACKLOG_BYTES_MAX: what a batch
 * of batch_size events held before (up to BATCH_BYTES_MAX of large inline
 * objects) it still may, and the bytes in flight stay about
 * workers x SENDER_QUEUE x 2 MiB, several bandwidth-delay products of a fast
 * long link, where 8 MiB batches of small events made repld's memory grow
 * eightfold for nothing. */
static size_t batch_events(const conf_target_t *c)
{
    size_t n = c->batch_size > BACKLOG_EVENTS ? c->batch_size : BACKLOG_EVENTS;
    return n > BATCH_MAX_EVENTS ? BATCH_MAX_EVENTS : n;
}

/* Events read ahead of the cursor: enough for every worker's batches at their
 * largest, bounded in memory by WINDOW_EVENTS_MAX (a few hundred bytes each). */
static size_t window_max(const conf_target_t *c)
{
    size_t w = (size_t)c->workers * c->batch_size * 4;
    size_t grown = (size_t)c->workers * SENDER_QUEUE * batch_events(c);
    if (grown > WINDOW_EVENTS_MAX)
        grown = WINDOW_EVENTS_MAX;
    if (w < grown)
        w = grown;
    return w < 1024 ? 1024 : w;
}

static void fail_event(ship_t *s, ev_t *e, const char *error);
static void refused(ship_t *s, ev_t *e, const char *error, int permanent);

/* ---- reading the log ---- */

/* A read transaction on the newest committed state, in *txn until snap_end.
 * One handle is kept and renewed: no allocation per snapshot. */
static int snap_begin(ship_t *s, MDB_txn **txn)
{
    int rc = s->snap != NULL ? mdb_txn_renew(s->snap) : mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &s->snap);
    if (rc != 0) {
        if (s->snap != NULL) {
            mdb_txn_abort(s->snap);
            s->snap = NULL;
        }
        return meta_err(rc, "mdb_txn_begin");
    }
    *txn = s->snap;
    return 0;
}

static void snap_end(ship_t *s)
{
    mdb_txn_reset(s->snap);
}

typedef struct {
    ship_t *s;
    evvec_t *into;
    size_t max;
    int from_retry;
} fill_ctx_t;

/* replog_visit_cb: one event into the window or the re-drive queue. */
static int take_event(void *ctx, uint64_t seq, const char *rec, size_t len)
{
    fill_ctx_t *fc = ctx;
    if (fc->into->len >= fc->max)
        return 1;
    ev_t *e = ev_new(seq, rec, len);
    if (e == NULL || vec_push(fc->into, e) != 0) {
        ev_free(e);
        return CIO_ENOMEM;
    }
    e->from_retry = fc->from_retry;
    if (!fc->from_retry)
        fc->s->next_read = seq + 1;
    if (e->state == EV_FAILED)
        fail_event(fc->s, e, e->error);
    return 0;
}

/* Tops up the window from the log, and the re-drive queue from "repl_retry"
 * once it is empty. */
static int fill(ship_t *s)
{
    size_t max = window_max(s->tgt);
    MDB_txn *txn;
    int ret = 0;

    if (s->win.len >= max && s->rq.len > 0)
        return 0;
    if ((ret = snap_begin(s, &txn)) != 0)
        return ret;
    if (s->win.len < max) {
        fill_ctx_t fc = {s, &s->win, max, 0};
        ret = replog_scan(s->meta, txn, s->next_read, take_event, &fc);
    }
    if (ret == 0 && s->rq.len == 0) {
        fill_ctx_t fc = {s, &s->rq, max, 1};
        ret = replog_retry_scan(s->meta, txn, s->tgt->name, take_event, &fc);
    }
    snap_end(s);
    return ret;
}

/* ---- building a batch ---- */

/* Where the bytes of an event's record are verified against (event_record). */
typedef enum {
    SUMS_OBJECT, /* an object's: meta_sums_view */
    SUMS_LOSER,  /* a kept loser's own, from its conflict record: the view set */
    SUMS_NONE,   /* a kept loser whose record keeps none (written before records kept them): unverified */
} ev_sums_t;

/* The record holding the bytes of PUT event e, into *o: its object while
 * that is the event's version, else the conflict loser the site keeps for
 * it (a write that lost a race here still ships: the other sites must see
 * the race; docs/replication-apply.md, Conflicts). With `sums` not NULL,
 * *how says where the bytes' checksums are, and for a loser's *sums is their
 * view (borrowed from txn). 0, 1 when neither (the event was superseded: a
 * later event carries the key's state), or an error. */
static int event_record(ship_t *s, MDB_txn *txn, const ev_t *e, meta_obj_t *o, blocksum_view_t *sums, ev_sums_t *how)
{
    conflict_t k;
    int ret = meta_obj_get(s->meta, txn, e->r.bucket, e->r.bucket_len, e->r.key, e->r.key_len, o);
    if (how != NULL) {
        *how = SUMS_OBJECT;
        memset(sums, 0, sizeof(*sums));
    }
    if (ret != 0 && ret != CIO_ENOTFOUND)
        return ret;
    if (ret == 0 && meta_obj_current(o, e->r.hlc, e->r.origin, e->r.origin_len))
        return 0;
    ret = conflict_get(s->meta, txn, e->r.bucket, e->r.bucket_len, e->r.key, e->r.key_len, e->r.hlc, e->r.origin, e->r.origin_len,
                       &k);
    if (ret == CIO_ENOTFOUND || (ret == 0 && k.deleted))
        return 1;
    if (ret != 0)
        return ret;
    /* the loser's record, not the winner's: no inline CRC left from the winner's record (it would fail the
     * loser's bytes as damaged); the loser's own checksums are its conflict record's */
    if (how != NULL) {
        *how = k.has_sums ? SUMS_LOSER : SUMS_NONE;
        *sums = k.sums;
    }
    conflict_as_obj(&k, o);
    return 0;
}

/* Reads the bytes of an inline PUT into s->scratch (*data points there until
 * the next call). Returns 0, 1 when the object has moved on (overwritten or
 * deleted since the event: a later event carries its state), 2 when the bytes
 * fail their block checksums (logged, and storaged asked to repair the
 * object, repld/repair_ask.h: the event ships nothing now and is retried like
 * a refused one, so a retry finds the repaired bytes; after retry_attempts it
 * is recorded as failed and the log moves on), 3 when the bytes are those of
 * a conflict's kept loser and fail the checksums its record keeps (logged;
 * no repair is asked, as losers are not repaired: retried, then failed, the
 * same way), or an error.
 *
 * The bytes are read from the extent that `txn` names; storaged may free and
 * reuse that extent at any time (its quarantine protects only its own
 * readers), so they are not trusted until recheck() has seen the object
 * unchanged in a snapshot taken after the read. */
static int read_inline(ship_t *s, MDB_txn *txn, ev_t *e, const char **data)
{
    meta_obj_t o;
    blocksum_view_t lsums; /* a kept loser's checksums (how), borrowed from txn */
    ev_sums_t how;
    int ret;

    *data = NULL;
    ret = event_record(s, txn, e, &o, &lsums, &how);
    if (ret == 0 && o.size != e->r.size)
        return 1;
    if (ret != 0)
        return ret;
    if (o.size + 1 > s->scratch_cap) {
        char *n = realloc(s->scratch, (size_t)o.size + 1);
        if (n == NULL)
            return CIO_ENOMEM;
        s->scratch = n;
        s->scratch_cap = (size_t)o.size + 1;
    }
    size_t done = 0;
    while (done < o.size) {
        ssize_t n = pread(s->store_fd, s->scratch + done, (size_t)o.size - done, (off_t)(o.off + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            log_msg(LOG_LVL_ERROR, "cannot read an object from the data store", "error", n == 0 ? "short read" : strerror(errno),
                    NULL);
            return CIO_EIO;
        }
        done += (size_t)n;
    }
    if (s->conf->checksums && o.size > 0 && how != SUMS_NONE) {
        blocksum_view_t v = lsums;
        uint64_t bad = 0;
        if (how == SUMS_LOSER ||
            meta_sums_view(s->meta, txn, e->r.bucket, e->r.bucket_len, e->r.key, e->r.key_len, &o, 0, o.size, &v) == 0) {
            if (blocksum_verify(&v, 0, s->scratch, (size_t)o.size, &bad) != 0) {
                char vs[24], bs[24], bucket[LOGREC_BUCKET_MAX + 1], key[LOGREC_KEY_MAX + 1];
                snprintf(vs, sizeof(vs), "%" PRIu64, o.version);
                snprintf(bs, sizeof(bs), "%" PRIu64, bad);
                snprintf(bucket, sizeof(bucket), "%.*s", (int)e->r.bucket_len, e->r.bucket);
                snprintf(key, sizeof(key), "%.*s", (int)e->r.key_len, e->r.key);
                log_msg(LOG_LVL_ERROR, "object data damaged: a block does not match its checksum; not shipped inline", "path",
                        "inline", "bucket", bucket, "key", key, "version", vs, "origin", o.origin, "block", bs, "kept_loser",
                        how == SUMS_LOSER ? "true" : "false", NULL);
                /* a kept loser is not repaired from a peer (docs/operations.md): it is only never shipped damaged */
                if (how == SUMS_OBJECT)
                    repair_ask(s->conf, e->r.bucket, e->r.bucket_len, e->r.key, e->r.key_len);
                return how == SUMS_LOSER ? 3 : 2;
            }
        }
    }
    e->inl = 1;
    e->inl_off = o.off;
    *data = s->scratch;
    return 0;
}

/* Proves that the bytes read for the batch's inline events are those of the
 * versions they are shipped as, without hashing them: in a snapshot taken
 * after every read had returned, each object must still hold the event's
 * version at the same extent. Why that suffices: storaged frees an extent
 * only in a commit that changes its object's version (overwrite, delete,
 * purge); it can hand it to another PUT, and write into it, only after that
 * commit has returned, and so after the commit is visible to any read
 * transaction begun later. Had a write into the extent begun before our read
 * returned, this later snapshot would show the object changed or gone.
 * A (version, origin) pair is never reused, so "same version" means "same
 * record" (meta_obj_current). (The replica checks every inline body
 * against its ETag before it applies it: corruption is caught there.)
 * Returns 0 when all hold; otherwise the number of events that moved on,
 * marked with inl = -1; or a negative error. */
static int recheck(ship_t *s, batch_t *b)
{
    MDB_txn *txn;
    int ret, moved = 0;

    if ((ret = snap_begin(s, &txn)) != 0)
        return ret;
    for (size_t i = 0; i < b->n; i++) {
        ev_t *e = b->evs[i];
        meta_obj_t o;
        if (e->inl != 1)
            continue;
        ret = event_record(s, txn, e, &o, NULL, NULL);
        if (ret < 0)
            break;
        if (ret == 1 || o.off != e->inl_off) {
            e->inl = -1;
            moved++;
        }
        ret = 0;
    }
    snap_end(s);
    return ret != 0 ? ret : moved;
}

/* Keeps the ack point below superseded event e until `guard` is acknowledged;
 * when the holds are full, merges into the first one (conservative: the
 * lower seq and the higher guard). */
static void hold_ack(ship_t *s, uint64_t seq, uint64_t guard)
{
    if (s->nholds < ACK_HOLDS_MAX) {
        s->holds[s->nholds].seq = seq;
        s->holds[s->nholds++].guard = guard;
        return;
    }
    if (seq < s->holds[0].seq)
        s->holds[0].seq = seq;
    if (guard > s->holds[0].guard)
        s->holds[0].guard = guard;
}

/* The log's head now (in txn, or a snapshot of its own when txn is NULL):
 * the guard of an event superseded now. UINT64_MAX when it cannot be read:
 * publish_ack reads it again later (a later head is a higher, still safe
 * guard). */
static uint64_t log_head(ship_t *s, MDB_txn *txn)
{
    uint64_t head = 0, records;
    int own = txn == NULL, ret;
    if (own && snap_begin(s, &txn) != 0)
        return UINT64_MAX;
    ret = replog_stats(s->meta, txn, &head, &records);
    if (own)
        snap_end(s);
    return ret == 0 ? head : UINT64_MAX;
}

static void retire_superseded(ship_t *s, ev_t *e, MDB_txn *txn)
{
    if (s->acks != NULL && !e->from_retry)
        hold_ack(s, e->seq, log_head(s, txn));
    e->state = EV_DONE;
    e->retired = RETIRED_SUPERSEDED;
    s->add_acked++;
    if (e->from_retry)
        s->rq_done++;
}

/* Whether the target is the event's origin: the site it would go back to.
 * The target's site id is known from its replies (peer_site); until one
 * came, every event is sent (the replica skips what it holds). Only the
 * dispatcher writes peer_site, so it reads it without the lock. */
static int from_target(const ship_t *s, const ev_t *e)
{
    size_t n = strlen(s->peer_site);
    return n > 0 && e->r.origin_len == n && memcmp(e->r.origin, s->peer_site, n) == 0;
}

static void retire_skipped(ship_t *s, ev_t *e)
{
    e->state = EV_DONE;
    e->retired = RETIRED_SKIPPED;
    s->add_skipped++;
    if (e->from_retry)
        s->rq_done++;
}

/* Fills one batch with ready events; returns the number added. */
static size_t build_once(ship_t *s, batch_t *b, uint64_t now)
{
    evvec_t *lists[2] = {&s->rq, &s->win};
    MDB_txn *txn = NULL;

    if (snap_begin(s, &txn) != 0)
        return 0;
    for (int l = 0; l < 2; l++) {
        evvec_t *v = lists[l];
        for (size_t i = 0; i < v->len && b->n < b->max_events && b->enc.sb.size < b->cap &&
                           (b->n < s->tgt->batch_size || b->enc.sb.size < BACKLOG_BYTES_MAX);
             i++) {
            ev_t *e = v->v[i];
            const char *data = NULL;
            char url[BATCH_URL_MAX];
            int ret = 0, inl = 0;

            if (e->state != EV_READY || e->due_ms > now)
                continue;
            if (from_target(s, e)) {
                retire_skipped(s, e); /* never shipped back where it happened */
                continue;
            }
            url[0] = '\0';
            e->inl = 0;
            if (e->r.op == LOGREC_PUT) {
                if (e->r.size < s->tgt->inline_threshold) {
                    ret = read_inline(s, txn, e, &data);
                    if (ret == 2) {
                        /* damaged here: nothing ships, storaged is repairing it (read_inline); retried, then given up */
                        refused(s, e, "the object's data is damaged here (a block fails its checksum) and was not repaired", 0);
                        continue;
                    }
                    if (ret == 3) {
                        /* a kept loser's bytes damaged: never repaired, so never shipped; retried, then given up */
                        refused(
                            s, e,
                            "the conflict loser's data is damaged here (a block fails its checksum); kept losers are not repaired",
                            0);
                        continue;
                    }
                    inl = 1;
                }
                if (!inl) {
                    meta_obj_t o;
                    ret = event_record(s, txn, e, &o, NULL, NULL);
                    if (ret == 0) {
                        /* signed with this target's token: the one it presents to us when it fetches */
                        const char *secret = s->tgt->token != NULL ? s->tgt->token : "";
                        ret = presign_url(secret, strlen(secret), s->conf->public_url, e->r.bucket, e->r.bucket_len, e->r.key,
                                          e->r.key_len, e->r.hlc, e->r.origin, e->r.origin_len,
                                          clock_wall_ms() / 1000 + PRESIGN_TTL_S, url, sizeof(url));
                    }
                }
                if (ret == 1) {
                    retire_superseded(s, e, txn);
                    continue;
                }
                if (ret == CIO_ETOOBIG && !inl) {
                    /* the URL will never fit (conf caps public_url, so this is a safety net): do not loop on it */
                    fail_event(s, e, "the presigned URL is longer than a batch allows: shorten server.public_url");
                    continue;
                }
                if (ret != 0) {
                    log_msg(LOG_LVL_WARN, "cannot prepare an event; will try again", "error", cio_strerror(ret), NULL);
                    e->due_ms = now + s->tgt->retry_delay_ms;
                    continue;
                }
            }
            ret = batch_enc_add(&b->enc, e->rec, e->rec_len, inl, data, inl ? (size_t)e->r.size : 0,
                                inl ? NULL : (url[0] ? url : NULL), inl ? 0 : strlen(url));
            if (ret == CIO_EINVAL) {
                /* an event the replica would refuse: keep it in the failed table, do not loop on it */
                fail_event(s, e, "the log record cannot be encoded into a batch");
                continue;
            }
            if (ret != 0)
                break; /* the batch is full (or out of memory): the event stays ready */
            e->state = EV_INFLIGHT;
            b->evs[b->n++] = e;
        }
    }
    snap_end(s);
    return b->n;
}

/* ---- batches, reused ---- */

#define SPARE_BYTES_MAX (BACKLOG_BYTES_MAX + (1u << 20)) /* an encoder that held more than this is freed, not kept */
#define EVENT_BYTES_MAX (16u * 1024)                     /* a batch event's bytes beside its inline data: record, URL, headers */

/* The most bytes a batch can reach: events are added while it holds less than
 * BATCH_BYTES_MAX, and the last one may bring up to an inline object (an
 * inline_threshold beyond BATCH_BYTES_MAX is left to realloc: rare, and
 * correct, only not hole-free). */
static size_t batch_reserve(const ship_t *s)
{
    size_t inl = s->tgt->inline_threshold < BATCH_BYTES_MAX ? (size_t)s->tgt->inline_threshold : BATCH_BYTES_MAX;
    return BATCH_BYTES_MAX + inl + EVENT_BYTES_MAX;
}

static void batch_free(ship_t *s, batch_t *b)
{
    batch_enc_free(&b->enc);
    free(b->evs);
    free(b->results);
    free(b);
    s->nbatches--;
}

static void complete(ship_t *s, send_job_t *job);

/* A batch to fill: a kept one (its encoder's pages are resident already: no
 * allocation, no page faults), else a new one. A new encoder reserves room
 * for the largest batch at once (batch_enc_reserve): the pages are only
 * touched as batches fill them, and the buffer never moves, where growing it
 * by doubling left each old buffer behind as a hole in the heap.
 *
 * There are never more batches than workers hold (SENDER_QUEUE each): when
 * that many exist and none is spare, a worker that has room has finished one
 * that the dispatcher has not taken back yet, so it is taken back now. A
 * batch made for that moment instead would be one too many once it came
 * back, and freeing and making such batches again is what made repld's
 * memory creep up over a long drain. Taking a job back may start a backoff:
 * the caller checks. NULL when out of memory. */
static batch_t *batch_get(ship_t *s)
{
    batch_t *b;
    send_job_t *job;
    if (s->nspare == 0 && s->nbatches >= SENDER_QUEUE * (size_t)s->tgt->workers)
        while ((job = sender_take_done(s->sender)) != NULL)
            complete(s, job);
    if (s->nspare > 0) {
        b = s->spare[--s->nspare];
        b->max_events = s->tgt->batch_size;
        if (batch_enc_restart(&b->enc, s->conf->site_id, strlen(s->conf->site_id)) == 0)
            return b;
        batch_free(s, b);
        return NULL;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return NULL;
    s->nbatches++;
    if ((b->evs = calloc(batch_events(s->tgt), sizeof(*b->evs))) == NULL ||
        (b->results = calloc(batch_events(s->tgt), sizeof(*b->results))) == NULL ||
        batch_enc_init(&b->enc, s->conf->site_id, strlen(s->conf->site_id)) != 0 ||
        batch_enc_reserve(&b->enc, batch_reserve(s)) != 0) {
        batch_free(s, b); /* batch_enc_free is harmless on a zeroed or failed encoder */
        return NULL;
    }
    b->max_events = s->tgt->batch_size; /* a trickle's; dispatch grows it in a backlog */
    return b;
}

/* Keeps a finished batch for the next batch_get, unless its encoder ever held
 * more than SPARE_BYTES_MAX (that much of it is resident: it is freed), so
 * that the memory a drain holds is reached with its first batches and stays
 * there. */
static void batch_put(ship_t *s, batch_t *b)
{
    memset(&b->job, 0, sizeof(b->job));
    b->n = 0;
    if (batch_enc_peak(&b->enc) > SPARE_BYTES_MAX || s->nspare >= SPARE_MAX) {
        batch_free(s, b);
        return;
    }
    s->spare[s->nspare++] = b;
}

/* Fills one batch and proves its inline bytes (recheck). When an object moved
 * on while it was read, its event is retired as superseded and the batch is
 * built again without it: rare, and bounded, since each pass retires one. */
static size_t build(ship_t *s, batch_t *b, uint64_t now)
{
    for (;;) {
        int moved;
        if (build_once(s, b, now) == 0 || (moved = recheck(s, b)) == 0)
            return b->n;
        for (size_t i = 0; i < b->n; i++) {
            ev_t *e = b->evs[i];
            e->state = EV_READY;
            if (e->inl == -1)
                retire_superseded(s, e, NULL);
        }
        b->n = 0;
        if (moved < 0) {
            /* cannot check now: nothing is sent, the events stay ready */
            log_msg(LOG_LVL_WARN, "cannot prepare a batch; will try again", "error", cio_strerror(moved), NULL);
            return 0;
        }
        if (batch_enc_restart(&b->enc, s->conf->site_id, strlen(s->conf->site_id)) != 0)
            return 0;
    }
}

/* Events the next batch may hold: batch_size, or in a backlog (more ready
 * events than batch_size) the backlog shared among the workers, so that each
 * has one batch, within [batch_size, batch_events()]. */
static size_t batch_limit(ship_t *s, uint64_t now)
{
    evvec_t *lists[2] = {&s->rq, &s->win};
    size_t n = 0, most = batch_events(s->tgt) * s->tgt->workers;
    for (int l = 0; l < 2 && n < most; l++)
        for (size_t i = 0; i < lists[l]->len && n < most; i++) {
            ev_t *e = lists[l]->v[i];
            if (e->state == EV_READY && e->due_ms <= now)
                n++;
        }
    n /= s->tgt->workers;
    return n < s->tgt->batch_size ? s->tgt->batch_size : n;
}

/* Whether the ready events fill a batch of `cap` bytes and batch_size events. */
static int ready_full(ship_t *s, uint64_t now, size_t cap)
{
    evvec_t *lists[2] = {&s->rq, &s->win};
    size_t n = 0, bytes = 0;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->len; i++) {
            ev_t *e = lists[l]->v[i];
            if (e->state != EV_READY || e->due_ms > now)
                continue;
            bytes += e->rec_len + (e->r.op == LOGREC_PUT && e->r.size < s->tgt->inline_threshold ? (size_t)e->r.size : 0);
            if (++n >= s->tgt->batch_size || bytes >= cap)
                return 1;
        }
    return 0;
}

static void dispatch(ship_t *s)
{
    uint64_t now = clock_mono_ms();
    int w, queued;

    if (now < s->backoff_until)
        return;
    while ((w = sender_idle(s->sender, &queued)) >= 0) {
        /* A worker's second (third, fourth) batch goes out at once on a lane
         * of its own (sender.h), so a long round trip holds SENDER_QUEUE
         * batches per worker in flight and B never waits for this thread. It
         * is smaller in bytes (memory), and only a full one is given: otherwise
         * events gather, as they do when every lane is busy. */
        size_t cap = queued ? QUEUED_BYTES_MAX : BATCH_BYTES_MAX;
        if (queued && !ready_full(s, now, cap))
            return;
        batch_t *b = batch_get(s);
        if (b == NULL)
            return;
        if (now < s->backoff_until) { /* batch_get took back a job that failed */
            batch_put(s, b);
            return;
        }
        b->cap = cap;
        b->max_events = batch_limit(s, now);
        const char *body;
        size_t len;
        if (build(s, b, now) == 0 || batch_enc_finish(&b->enc, &body, &len) != 0) {
            for (size_t i = 0; i < b->n; i++)
                b->evs[i]->state = EV_READY;
            batch_put(s, b);
            return;
        }
        b->job.body = body;
        b->job.len = len;
        b->job.results = b->results;
        b->job.nevents = b->n;
        b->job.owner = b;
        sender_submit(s->sender, (unsigned)w, &b->job);
    }
}

/* ---- replies ---- */

static void fail_event(ship_t *s, ev_t *e, const char *error)
{
    char id[LOGREC_EVENT_ID_MAX];
    if (e->error != error)
        snprintf(e->error, sizeof(e->error), "%s", error);
    e->state = EV_FAILED;
    s->nfailing++;
    if (s->acks != NULL)
        ackfile_note_failed(s->acks, s->ack_slot, e->seq); /* before the ack point can pass it: a waiting write is PENDING */
    logrec_event_id(&e->r, id, sizeof(id));
    /* the seed's line, word for word */
    log_msg(LOG_LVL_ERROR, "Failed to replicate event", "event_id", id, "error", error, NULL);
}

static void refused(ship_t *s, ev_t *e, const char *error, int permanent)
{
    e->attempts++;
    if (permanent || e->attempts > s->tgt->retry_attempts) {
        fail_event(s, e, error);
        return;
    }
    snprintf(e->error, sizeof(e->error), "%s", error);
    e->state = EV_READY;
    e->due_ms = clock_mono_ms() + s->tgt->retry_delay_ms;
}

static void back_off(ship_t *s, send_job_t *job)
{
    char delay[32];
    pthread_mutex_lock(&s->mu);
    if ((uint64_t)clock_mono_ms() < s->backoff_until) {
        /* another worker's batch already started this backoff step: one failed
         * round of batches is one step, however many workers were sending */
        snprintf(s->remote_error, sizeof(s->remote_error), "%s", job->error);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->backoff_until = clock_mono_ms() + s->backoff_ms;
    snprintf(delay, sizeof(delay), "%.1fs", s->backoff_ms / 1000.0);
    snprintf(s->remote_error, sizeof(s->remote_error), "%s", job->error);
    if (job->outcome == SEND_AUTH)
        log_msg(LOG_LVL_ERROR, "remote rejected the token: set replication.accept_token on the replica", "target", s->tgt->name,
                "error", job->error, "retry_in", delay, NULL);
    else if (s->remote_state != 2 ||
             (s->backoff_ms >= BACKOFF_CAP_MS && (uint64_t)clock_mono_ms() - s->cap_logged_ms >= CAP_LOG_EVERY_MS)) {
        /* when the outage starts, then at most once a minute at the cap */
        if (s->backoff_ms >= BACKOFF_CAP_MS)
            s->cap_logged_ms = (uint64_t)clock_mono_ms();
        log_msg(LOG_LVL_WARN, "replica unavailable; events are kept and retried", "target", s->tgt->name, "error", job->error,
                "retry_in", delay, NULL);
    }
    s->remote_state = 2;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : s->backoff_ms * 2;
    pthread_mutex_unlock(&s->mu);
}

static void record_latency(ship_t *s, uint64_t us)
{
    double sec = us / 1e6;
    size_t i = 0;
    while (i < REPLSTAT_LAT_BUCKETS && sec > replstat_lat_bounds[i])
        i++;
    pthread_mutex_lock(&s->mu);
    s->lat_counts[i]++;
    s->lat_sum += sec;
    s->lat_n++;
    pthread_mutex_unlock(&s->mu);
}

static void complete(ship_t *s, send_job_t *job)
{
    batch_t *b = job->owner;

    pthread_mutex_lock(&s->mu);
    s->payload_bytes += job->payload_bytes;
    s->wire_bytes += job->wire_bytes;
    pthread_mutex_unlock(&s->mu);

    if (job->outcome == SEND_OK) {
        for (size_t i = 0; i < b->n; i++)
            if (job->results[i].seq != b->evs[i]->seq) {
                job->outcome = SEND_TRANSPORT;
                snprintf(job->error, sizeof(job->error), "remote answered for seq %" PRIu64 " in place of %" PRIu64,
                         job->results[i].seq, b->evs[i]->seq);
                break;
            }
    }
    if (job->outcome == SEND_OK) {
        char outage[256] = ""; /* the last "could not fetch" answer, logged once per batch */
        record_latency(s, job->rtt_us);
        if (s->remote_state != 1)
            log_msg(LOG_LVL_INFO, "replica reachable", "target", s->tgt->name, "url", s->tgt->url, NULL);
        pthread_mutex_lock(&s->mu);
        if (job->site[0] != '\0' && strcmp(job->site, s->peer_site) != 0)
            snprintf(s->peer_site, sizeof(s->peer_site), "%s", job->site); /* its events are not sent back (from_target) */
        s->remote_state = 1;
        s->remote_error[0] = '\0';
        sync_note_store(s->sync, job->store); /* a replaced store gets a full sync */
        s->backoff_ms = s->tgt->retry_delay_ms > 0 ? s->tgt->retry_delay_ms : 1000;
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < b->n; i++) {
            ev_t *e = b->evs[i];
            batch_res_t *r = &job->results[i];
            char err[600];
            switch (r->result) {
            case BATCH_APPLIED:
            case BATCH_SKIPPED:
                e->state = EV_DONE;
                e->retired = RETIRED_ACKED;
                s->add_acked++;
                s->last_ok_ms = clock_wall_ms();
                if (e->from_retry)
                    s->rq_done++;
                break;
            default:
                snprintf(err, sizeof(err), "remote returned %u: %.*s", r->status, (int)r->error_len, r->error);
                if (r->result == BATCH_RETRY && r->status >= 502 && r->status <= 504) {
                    /* The replica could not fetch from this site (our storaged is down or
                     * unreachable from there) or is stopping: an outage, not a refusal, so no
                     * attempt is spent; the event waits, doubling its delay up to the cap. */
                    e->hold_ms =
                        e->hold_ms == 0 ? s->backoff_ms : (e->hold_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : e->hold_ms * 2);
                    e->due_ms = clock_mono_ms() + e->hold_ms;
                    e->state = EV_READY;
                    snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1, err);
                    snprintf(outage, sizeof(outage), "%.*s", (int)sizeof(outage) - 1, err);
                } else {
                    refused(s, e, err, r->result == BATCH_PERMANENT);
                }
            }
        }
        if (outage[0] != '\0') {
            log_msg(LOG_LVL_WARN, "replica could not fetch objects from this site; events are kept and retried", "target",
                    s->tgt->name, "error", outage, NULL);
            /* the target is up, but these events wait: the status says why (a damaged copy here: "DataDamaged") */
            pthread_mutex_lock(&s->mu);
            snprintf(s->remote_error, sizeof(s->remote_error), "%s", outage);
            pthread_mutex_unlock(&s->mu);
        }
    } else if (job->outcome == SEND_REFUSED) {
        for (size_t i = 0; i < b->n; i++)
            refused(s, b->evs[i], job->error, 0);
    } else {
        for (size_t i = 0; i < b->n; i++)
            b->evs[i]->state = EV_READY; /* transport failures consume no attempts */
        back_off(s, job);
    }
    buf_free(&job->reply);
    batch_put(s, b);
}

/* ---- the ack point ---- */

/* Every seq <= the result is acknowledged by the target (applied, skipped
 * as already held, or not sent because the target is its origin), and
 * every superseded one among them has its superseder acknowledged. Events
 * refused for good count once persist recorded them as failed (the cursor
 * moves past them). */
static uint64_t ack_point(ship_t *s)
{
    uint64_t p = s->cursor, ack;
    for (size_t n = 0; n < s->win.len && s->win.v[n]->state == EV_DONE; n++)
        p = s->win.v[n]->seq;
    for (size_t i = 0; i < s->nholds; i++)
        if (s->holds[i].guard == UINT64_MAX)
            s->holds[i].guard = log_head(s, NULL);
    /* A superseder may be superseded in turn, and held itself: lower the ack
     * point until every hold at or below it has its guard at or below it. */
    ack = p;
    for (int lowered = 1; lowered;) {
        lowered = 0;
        for (size_t i = 0; i < s->nholds; i++)
            if (s->holds[i].seq <= ack && s->holds[i].guard > ack) {
                ack = s->holds[i].seq - 1;
                lowered = 1;
            }
    }
    for (size_t i = 0; i < s->nholds;)
        if (s->holds[i].guard <= ack)
            s->holds[i] = s->holds[--s->nholds]; /* its superseder is acknowledged */
        else
            i++;
    return ack;
}

/* Publishes the ack point when it moved: at once, not at the next persist,
 * since writes to sync targets wait for it. */
static void publish_ack(ship_t *s)
{
    uint64_t ack;
    if (s->acks == NULL || (ack = ack_point(s)) <= s->ack_published)
        return;
    s->ack_published = ack;
    if (ackfile_publish(s->acks, s->ack_slot, ack) != 0)
        log_msg(LOG_LVL_WARN, "cannot signal the acknowledgement file", "path", ackfile_path(s->acks), "error", strerror(errno),
                NULL);
}

/* ---- the cursor ---- */

/* Adds what retired event e counts for to the counters of a persist. */
static void count_retired(const ev_t *e, uint64_t *acked, uint64_t *bytes, uint64_t *skipped)
{
    if (e->state != EV_DONE)
        return;
    if (e->retired == RETIRED_SKIPPED)
        (*skipped)++;
    else if (e->retired != RETIRED_NOT)
        (*acked)++;
    if (e->retired == RETIRED_ACKED && e->r.op == LOGREC_PUT)
        *bytes += e->r.size;
}

/* Writes failures, re-drive acknowledgements, the new cursor, the trimming of
 * shipped records and the counters in one transaction; only then are the
 * retired events dropped from memory. An event is counted in the commit that
 * drops it, never before: one retired above the cursor (acknowledged out of
 * order, or superseded behind an event still pending) is retired again after
 * a restart, so counting it at once counted it twice. Unless `now` is set,
 * and while there is nothing to record as failed, it waits for
 * PERSIST_EVERY_MS or a quarter of the window to be retired: one commit for
 * many batches. The cursor moves
 * over an EV_FAILED event only in the commit that records it, and what is
 * written is found from the events' states: nothing here allocates. */
static int persist(ship_t *s, int now)
{
    evvec_t *lists[2] = {&s->rq, &s->win};
    size_t n = 0;
    uint64_t cursor = s->cursor, acked = 0, bytes = 0, skipped = 0;
    MDB_txn *txn;
    int rc, ret = 0;

    /* failed events count as done for the cursor: they are recorded below, in the same commit */
    while (n < s->win.len && (s->win.v[n]->state == EV_DONE || s->win.v[n]->state == EV_FAILED)) {
        count_retired(s->win.v[n], &acked, &bytes, &skipped);
        cursor = s->win.v[n++]->seq;
    }
    for (size_t i = 0; i < s->rq.len; i++) /* re-driven events leave memory once done */
        count_retired(s->rq.v[i], &acked, &bytes, &skipped);
    if (cursor == s->cursor && s->nfailing == 0 && s->rq_done == 0 && s->add_acked == 0 && s->add_skipped == 0)
        return 0;
    if (!now && s->nfailing == 0 && n < window_max(s->tgt) / 4 && (uint64_t)clock_mono_ms() < s->persisted_ms + PERSIST_EVERY_MS)
        return 0;
    if ((rc = mdb_txn_begin(s->meta->env, NULL, 0, &txn)) != 0)
        return meta_err(rc, "mdb_txn_begin");
    for (int l = 0; l < 2 && ret == 0; l++)
        for (size_t i = 0; i < lists[l]->len && ret == 0; i++) {
            ev_t *e = lists[l]->v[i];
            if (e->state == EV_FAILED)
                ret = replog_fail(s->meta, txn, s->tgt->name, e->seq, e->rec, e->rec_len, e->attempts, e->error, clock_wall_ms());
            else if (e->state == EV_DONE && e->from_retry)
                ret = replog_retry_done(s->meta, txn, s->tgt->name, e->seq);
        }
    if (ret == 0 && cursor != s->cursor)
        ret = replog_target_advance(s->meta, txn, s->tgt->name, cursor);
    if (ret == 0 && (acked > 0 || skipped > 0 || s->add_acked > 0 || s->add_skipped > 0))
        ret = replog_target_count(s->meta, txn, s->tgt->name, acked, bytes, skipped, s->last_ok_ms);
    if (ret != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return meta_err(rc, "mdb_txn_commit");

    /* durable: forget what it covers. Re-driven events that are done or were
     * recorded as failed again leave the queue; failed log events are done. */
    for (size_t j = 0; j < s->rq.len;)
        if (s->rq.v[j]->state == EV_DONE || s->rq.v[j]->state == EV_FAILED) {
            ev_free(s->rq.v[j]);
            s->rq.v[j] = s->rq.v[--s->rq.len];
        } else {
            j++;
        }
    for (size_t i = 0; i < n; i++)
        ev_free(s->win.v[i]);
    if (n > 0) {
        memmove(s->win.v, s->win.v + n, (s->win.len - n) * sizeof(*s->win.v));
        s->win.len -= n;
    }
    if (s->nfailing > 0)
        for (size_t i = 0; i < s->win.len; i++)
            if (s->win.v[i]->state == EV_FAILED)
                s->win.v[i]->state = EV_DONE;
    s->nfailing = s->rq_done = 0;
    s->cursor = cursor;
    s->add_acked = s->add_skipped = 0;
    s->persisted_ms = clock_mono_ms();
    return 0;
}

/* ---- status ---- */

/* The limit in force and the rate measured over the last second or more:
 * everything sent to the target, batches and the fetches it makes from us
 * (both daemons count in the shared slot). */
static void bandwidth_state(ship_t *s, replstat_target_live_t *live, uint64_t now)
{
    uint64_t bytes = bwlimit_bytes(s->bw, s->bw_slot);
    if (s->bw_at_ms == 0 || now >= s->bw_at_ms + 1000) {
        if (s->bw_at_ms != 0)
            s->bw_rate = (double)(bytes - s->bw_at_bytes) * 1000.0 / (double)(now - s->bw_at_ms);
        s->bw_at_ms = now;
        s->bw_at_bytes = bytes;
    }
    live->bandwidth_limit = bwlimit_limit(s->bw, s->bw_slot);
    live->bandwidth_bytes = bytes;
    live->bandwidth_rate = s->bw_rate;
}

/* The control thread's copy of what dispatcher s knows; strings point into s's *_copy buffers. */
static void live_state(ship_t *s, replstat_target_live_t *live)
{
    uint64_t now = clock_mono_ms();
    memset(live, 0, sizeof(*live));
    live->name = s->tgt->name;
    live->url = s->tgt->url;
    live->nworkers = s->tgt->workers < REPLSTAT_WORKERS_MAX ? s->tgt->workers : REPLSTAT_WORKERS_MAX;
    for (unsigned w = 0; s->sender != NULL && w < live->nworkers; w++)
        sender_worker_state(s->sender, w, &live->workers[w].busy, &live->workers[w].events);
    pthread_mutex_lock(&s->mu);
    live->remote_state = s->remote_state;
    snprintf(s->remote_error_copy, sizeof(s->remote_error_copy), "%s", s->remote_error);
    live->remote_error = s->remote_error_copy;
    snprintf(s->peer_site_copy, sizeof(s->peer_site_copy), "%s", s->peer_site);
    live->site = s->peer_site_copy;
    live->retry_in_seconds = s->remote_state == 2 && s->backoff_until > now ? (s->backoff_until - now) / 1000.0 : 0.0;
    memcpy(live->lat_counts, s->lat_counts, sizeof(live->lat_counts));
    live->lat_sum = s->lat_sum;
    live->lat_n = s->lat_n;
    live->payload_bytes = s->payload_bytes;
    live->wire_bytes = s->wire_bytes;
    pthread_mutex_unlock(&s->mu);
    if (s->sender != NULL)
        (void)sender_compressing(s->sender, &live->compression_fallback);
    bandwidth_state(s, live, now);
}

/* The whole run: one dispatcher per target, the signals and the control socket. */
typedef struct {
    const conf_t *conf;
    meta_t *meta;
    ship_t *t; /* conf->ntargets of them */
    size_t n;
    replstat_target_live_t *live; /* control thread only */
    ctl_server_t *ctl;
    bwlimit_t *bw; /* the targets' bandwidth limits, shared with storaged; NULL: none could be opened */
} run_t;

static int on_ctl(void *ctx, const char *cmd, buf_t *out)
{
    run_t *r = ctx;
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "metrics") == 0) {
        replstat_live_t live = {r->n, r->live};
        for (size_t i = 0; i < r->n; i++)
            live_state(&r->t[i], &r->live[i]);
        return cmd[0] == 's' ? replstat_json(r->meta, r->conf, &live, out) : replstat_metrics(r->meta, r->conf, &live, out);
    }
    if (strcmp(cmd, "ping") == 0)
        return buf_puts(out, "pong\n");
    syncctl_req_t req;
    char msg[1024];
    int ret = syncctl_parse(cmd, &req, msg, sizeof(msg));
    if (ret == CIO_EINVAL)
        return buf_printf(out, "error: %s\n", msg);
    if (ret == 0) {
        /* syncctl.h: answered "ok: ...", "busy: ..." or "error: ..."; report: JSON */
        for (size_t i = 0; i < r->n; i++) {
            ship_t *s = &r->t[i];
            if (strcmp(s->tgt->name, req.target) != 0)
                continue;
            if (s->sync == NULL)
                return buf_printf(out, "error: target %s has no sync thread\n", s->tgt->name);
            if (req.bucket[0] != '\0' && !bucket_name_valid(req.bucket, strlen(req.bucket)))
                return buf_printf(out, "error: '%s' is not a bucket name\n", req.bucket);
            if (req.cmd == SYNCCTL_REPORT)
                return sync_report(s->sync, out);
            if (req.cmd == SYNCCTL_CANCEL) {
                ret = sync_cancel(s->sync, msg, sizeof(msg));
            } else {
                sync_opts_t o = {req.bucket, req.dry_run, req.delete_extra, req.rate};
                ret = sync_request(s->sync, &o, msg, sizeof(msg));
            }
            return buf_printf(out, "%s: %s\n", ret == 0 ? "ok" : ret == CIO_EAGAIN ? "busy" : "error", msg);
        }
        return buf_printf(out, "error: no target named %s in this repld's configuration\n", req.target);
    }
    return CIO_ENOTFOUND;
}

/* ---- the loop ---- */

/* repld reads the log through LMDB's map, so every page of a drained backlog
 * would stay in its RSS (shared page cache, but counted as its memory by ps
 * and top). Dropping the mapping's pages now and then keeps the RSS to what
 * repld uses; the pages it still needs fault back in from the page cache. */
#define UNMAP_INTERVAL_MS 50

/* Finds LMDB's mapping of data.mdb in /proc/self/maps (mdb_env_info gives
 * its address only for MDB_FIXEDMAP). Leaves map_addr NULL if not found. */
static void find_map(ship_t *s)
{
    struct stat st;
    char line[4608];
    int fd;
    FILE *fp;

    if (mdb_env_get_fd(s->meta->env, &fd) != 0 || fstat(fd, &st) != 0 || (fp = fopen("/proc/self/maps", "re")) == NULL)
        return;
    while (fgets(line, sizeof(line), fp) != NULL) {
        unsigned long lo, hi, ino;
        unsigned maj, mnr;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &lo, &hi, &maj, &mnr, &ino) == 5 && ino == (unsigned long)st.st_ino &&
            makedev(maj, mnr) == st.st_dev && (s->map_addr == NULL || hi - lo > s->map_len)) {
            s->map_addr = (void *)lo;
            s->map_len = hi - lo;
        }
    }
    fclose(fp);
}

static void drop_mapped_pages(ship_t *s)
{
    MDB_envinfo info;
    uint64_t now = clock_mono_ms();
    long page = sysconf(_SC_PAGESIZE);

    if (s->map_addr == NULL || now < s->next_unmap_ms || page <= 0)
        return;
    s->next_unmap_ms = now + UNMAP_INTERVAL_MS;
    if (mdb_env_info(s->meta->env, &info) != 0)
        return;
    size_t len = (info.me_last_pgno + 1) * (size_t)page;
    if (len > s->map_len)
        len = s->map_len;
    madvise(s->map_addr, len, MADV_DONTNEED); /* advice: nothing to do if it fails */
}

static int setup_fds(ship_t *s)
{
    char path[4200];

    if ((s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot create an event descriptor", "error", strerror(errno), NULL);
        return CIO_ESYS;
    }
    /* storaged writes the wake file after each commit that logged (replog_wake) */
    snprintf(path, sizeof(path), "%s/%s", s->conf->meta_path, REPLOG_WAKE_FILE);
    s->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (s->ifd >= 0 && inotify_add_watch(s->ifd, path, IN_MODIFY) < 0) {
        log_msg(LOG_LVL_WARN, "cannot watch the log; polling instead", "path", path, "error", strerror(errno), NULL);
        close(s->ifd);
        s->ifd = -1;
    }
    return 0;
}

static void drain(int fd)
{
    char tmp[4096];
    if (fd >= 0)
        while (read(fd, tmp, sizeof(tmp)) > 0)
            ;
}

static int next_wait_ms(ship_t *s)
{
    uint64_t now = clock_mono_ms(), wake = now + (s->ifd >= 0 ? s->idle_poll_ms : NOTIFY_FALLBACK_MS);
    evvec_t *lists[2] = {&s->rq, &s->win};
    if (s->backoff_until > now && s->backoff_until < wake)
        wake = s->backoff_until;
    /* a persist put off while batches are in flight (persist) */
    if ((s->add_acked > 0 || s->add_skipped > 0 || s->rq_done > 0) && s->persisted_ms + PERSIST_EVERY_MS < wake)
        wake = s->persisted_ms + PERSIST_EVERY_MS > now ? s->persisted_ms + PERSIST_EVERY_MS : now;
    /* with every worker busy, ready events must wait for a completion (the
     * eventfd wakes us): their due times would only make poll() spin */
    int queued;
    if (s->backoff_until <= now && sender_idle(s->sender, &queued) >= 0 && !queued)
        for (int l = 0; l < 2; l++)
            for (size_t i = 0; i < lists[l]->len; i++) {
                ev_t *e = lists[l]->v[i];
                if (e->state == EV_READY && e->due_ms < wake)
                    wake = e->due_ms > now ? e->due_ms : now;
            }
    return (int)(wake - now);
}

/* Sets up dispatcher s for target tgt: its cursor, data store descriptor,
 * wake-up descriptors and workers. */
static int target_open(ship_t *s, const conf_t *conf, const conf_target_t *tgt, meta_t *meta, int stop_fd, ackfile_t *acks,
                       size_t slot, uint64_t run_id, bwlimit_t *bw)
{
    MDB_txn *txn;
    replog_target_t st;
    int ret;

    memset(s, 0, sizeof(*s));
    s->conf = conf;
    s->tgt = tgt;
    s->meta = meta;
    s->efd = s->ifd = s->store_fd = -1;
    s->stop_fd = stop_fd;
    s->backoff_ms = tgt->retry_delay_ms > 0 ? tgt->retry_delay_ms : 1000;
    /* for tests only: a long safety poll shows that every wake-up comes from the wake file */
    {
        const char *v = getenv("COMIO_REPLD_IDLE_POLL_MS");
        s->idle_poll_ms = v != NULL && atoi(v) > 0 ? (uint64_t)atoi(v) : IDLE_POLL_MS;
    }
    pthread_mutex_init(&s->mu, NULL);
    if ((s->store_fd = open(conf->storage_path, O_RDONLY | O_CLOEXEC)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the data store", "path", conf->storage_path, "error", strerror(errno), NULL);
        return CIO_ESYS;
    }
    if ((ret = meta_err(mdb_txn_begin(meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = replog_target_get(meta, txn, tgt->name, &st);
    mdb_txn_abort(txn);
    if (ret != 0) {
        log_msg(LOG_LVL_ERROR, "cannot read the replication cursor", "target", tgt->name, "error", cio_strerror(ret), NULL);
        return ret;
    }
    s->cursor = st.cursor;
    s->next_read = s->cursor + 1;
    if (acks != NULL) {
        uint64_t hi = 0, lo = 0;
        if ((ret = meta_err(mdb_txn_begin(meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
            return ret;
        ret = meta_state_get(meta, txn, META_STORE_ID_HI, &hi);
        if (ret == 0)
            ret = meta_state_get(meta, txn, META_STORE_ID_LO, &lo);
        mdb_txn_abort(txn);
        if (ret != 0)
            return ret;
        ackfile_owner_t owner = {tgt->name, hi, lo, ackfile_url_hash(tgt->url)};
        s->acks = acks;
        s->ack_slot = slot;
        s->ack_published = s->cursor;
        ackfile_stamp(acks, slot, &owner, run_id, s->cursor);
    }
    if ((ret = setup_fds(s)) != 0 || (ret = sender_start(&s->sender, conf, tgt, tgt->workers, s->efd)) != 0)
        return ret;
    s->bw = bw;
    s->bw_slot = bwlimit_slot(bw, tgt->name);
    sender_set_bwlimit(s->sender, bw, s->bw_slot);
    find_map(s);
    return 0;
}

static void target_close(ship_t *s)
{
    if (s->sender != NULL)
        sender_stop(s->sender);
    for (size_t i = 0; i < s->win.len; i++)
        if (s->win.v[i]->state != EV_INFLIGHT)
            ev_free(s->win.v[i]);
    for (size_t i = 0; i < s->rq.len; i++)
        if (s->rq.v[i]->state != EV_INFLIGHT)
            ev_free(s->rq.v[i]);
    if (s->snap != NULL)
        mdb_txn_abort(s->snap);
    for (size_t i = 0; i < s->nspare; i++)
        batch_free(s, s->spare[i]);
    free(s->scratch);
    free(s->win.v);
    free(s->rq.v);
    if (s->store_fd >= 0)
        close(s->store_fd);
    if (s->efd >= 0)
        close(s->efd);
    if (s->ifd >= 0)
        close(s->ifd);
    pthread_mutex_destroy(&s->mu);
}

/* A dispatcher's thread: today's ship loop with its target's settings,
 * until stop_fd turns readable and the batches in flight are done (or
 * STOP_GRACE_MS has passed). */
static void *target_main(void *arg)
{
    ship_t *s = arg;
    int ret = 0, stopping = 0;
    uint64_t stop_deadline = 0;

    for (;;) {
        send_job_t *job;
        while ((job = sender_take_done(s->sender)) != NULL)
            complete(s, job);
        publish_ack(s);
        if ((ret = persist(s, stopping || sender_busy(s->sender) == 0)) != 0)
            log_msg(LOG_LVL_ERROR, "cannot persist the replication cursor; will retry", "target", s->tgt->name, "error",
                    cio_strerror(ret), NULL);
        publish_ack(s); /* failed events recorded: the cursor moved past them */
        drop_mapped_pages(s);
        if (stopping) {
            if (sender_busy(s->sender) == 0 || (uint64_t)clock_mono_ms() >= stop_deadline)
                break;
        } else {
            if ((ret = fill(s)) != 0)
                log_msg(LOG_LVL_ERROR, "cannot read the replication log", "target", s->tgt->name, "error", cio_strerror(ret), NULL);
            dispatch(s);
        }

        struct pollfd p[3] = {{s->efd, POLLIN, 0}, {s->stop_fd, POLLIN, 0}, {s->ifd, POLLIN, 0}};
        int n = poll(p, s->ifd >= 0 ? 3 : 2, stopping ? 50 : next_wait_ms(s));
        if (n < 0 && errno != EINTR) {
            log_msg(LOG_LVL_ERROR, "poll failed", "error", strerror(errno), NULL);
            break;
        }
        drain(s->efd);
        drain(s->ifd);
        if (n > 0 && p[1].revents != 0 && !stopping) {
            stopping = 1;
            stop_deadline = clock_mono_ms() + STOP_GRACE_MS;
        }
    }
    s->ret = persist(s, 1);
    {
        char cur[24];
        snprintf(cur, sizeof(cur), "%" PRIu64, s->cursor);
        log_msg(LOG_LVL_INFO, "stopped shipping", "target", s->tgt->name, "cursor", cur, NULL);
    }
    return NULL;
}

_Static_assert(CONF_TARGET_NAME_MAX <= REPLOG_TARGET_NAME_MAX, "a target's name fits the log's keys");

/* Brings the per-target state in the log in line with the configured
 * targets (replog_targets_open), in one transaction. */
static int open_targets(const conf_t *conf, meta_t *meta)
{
    const char **names;
    MDB_txn *txn;
    int ret;

    if (conf->ntargets == 0)
        return CIO_EINVAL;
    if ((names = calloc(conf->ntargets, sizeof(*names))) == NULL)
        return CIO_ENOMEM;
    for (size_t i = 0; i < conf->ntargets; i++)
        names[i] = conf->targets[i].name;
    if ((ret = meta_err(mdb_txn_begin(meta->env, NULL, 0, &txn), "mdb_txn_begin")) == 0) {
        if ((ret = replog_targets_open(meta, txn, names, conf->ntargets, NULL)) != 0)
            mdb_txn_abort(txn);
        else
            ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit");
    }
    free(names);
    return ret;
}

static bwlimit_t *volatile run_bw; /* the last run's bandwidth limits, kept until the process exits (volatile: a
                                    * store the compiler may not drop, so that they stay reachable) */

int ship_run(const conf_t *conf, meta_t *meta)
{
    run_t r;
    sigset_t sigs;
    char err[512];
    int ret = 0, sfd = -1, stop_fd = -1;
    size_t opened = 0;
    ackfile_t *acks = NULL;

    memset(&r, 0, sizeof(r));
    r.conf = conf;
    r.meta = meta;
    r.n = conf->ntargets;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);

    if ((ret = open_targets(conf, meta)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot set up the targets' replication state", "error", cio_strerror(ret), NULL);
        return ret;
    }
    if ((r.t = calloc(r.n, sizeof(*r.t))) == NULL || (r.live = calloc(r.n, sizeof(*r.live))) == NULL) {
        ret = CIO_ENOMEM;
        goto done;
    }
    if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 || (stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot create event descriptors", "error", strerror(errno), NULL);
        ret = CIO_ESYS;
        goto done;
    }
    /* without it, sync writes are answered by their fallback policy: shipping goes on */
    if (ackfile_open(&acks, conf->meta_path) != 0)
        log_msg(LOG_LVL_WARN, "no acknowledgement file: writes to sync targets will wait for their timeout", NULL);
    if (bwlimit_open(&r.bw, conf->meta_path, conf) != 0)
        log_msg(LOG_LVL_WARN, "no bandwidth file: the targets' bandwidth_limit is not enforced", NULL);
    for (; opened < r.n; opened++)
        if ((ret = target_open(&r.t[opened], conf, &conf->targets[opened], meta, stop_fd, acks, opened,
                               (uint64_t)clock_wall_ms() << 20 ^ (uint64_t)getpid(), r.bw)) != 0) {
            opened++; /* partly set up: closed below */
            goto done;
        }
    for (size_t i = 0; i < r.n; i++)
        if ((ret = sync_start(&r.t[i].sync, conf, &conf->targets[i], meta, stop_fd, r.bw, r.t[i].bw_slot)) != 0) {
            log_msg(LOG_LVL_ERROR, "cannot start the full sync thread", "target", conf->targets[i].name, "error", cio_strerror(ret),
                    NULL);
            goto done;
        }
    if (ctl_start(&r.ctl, conf->socket_path, on_ctl, &r, err, sizeof(err)) != 0)
        log_msg(LOG_LVL_WARN, "no control socket: repld --status will not reach this process", "error", err, NULL);
    for (size_t i = 0; i < r.n; i++) {
        ship_t *s = &r.t[i];
        char cur[24], w[8];
        snprintf(cur, sizeof(cur), "%" PRIu64, s->cursor);
        snprintf(w, sizeof(w), "%u", s->tgt->workers);
        log_msg(LOG_LVL_INFO, "repld shipping", "target", s->tgt->name, "remote", s->tgt->url, "cursor", cur, "workers", w, "meta",
                conf->meta_path, NULL);
        if ((errno = pthread_create(&s->tid, NULL, target_main, s)) != 0) {
            log_msg(LOG_LVL_ERROR, "pthread_create failed", "error", strerror(errno), NULL);
            ret = CIO_ESYS;
            break;
        }
        s->started = 1;
    }
    if (ret == 0)
        notify_send("READY=1");

    while (ret == 0) {
        struct pollfd p = {sfd, POLLIN, 0};
        struct signalfd_siginfo si;
        int stop = 0;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            log_msg(LOG_LVL_ERROR, "poll failed", "error", strerror(errno), NULL);
            break;
        }
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo != SIGHUP) {
                stop = 1;
                continue;
            }
            if (log_reopen() != 0)
                log_msg(LOG_LVL_ERROR, "cannot reopen the log file; still writing to the old one", "error", strerror(errno), NULL);
            else
                log_msg(LOG_LVL_INFO, "log file reopened", NULL);
            if (r.bw != NULL)
                bwlimit_reload(r.bw, conf); /* logs what changed or why nothing did */
        }
        if (stop)
            break;
    }
    log_msg(LOG_LVL_INFO, "shutting down; finishing batches in flight", NULL);
    notify_send("STOPPING=1");

done:
    if (stop_fd >= 0) {
        uint64_t one = 1;
        if (write(stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_msg(LOG_LVL_ERROR, "cannot tell the dispatchers to stop", "error", strerror(errno), NULL);
    }
    for (size_t i = 0; i < opened; i++)
        if (r.t[i].started) {
            pthread_join(r.t[i].tid, NULL);
            if (ret == 0)
                ret = r.t[i].ret;
        }
    ctl_stop(r.ctl); /* after the joins: the dispatchers stay readable for status until they stop */
    for (size_t i = 0; i < opened; i++) {
        sync_stop(r.t[i].sync); /* stop_fd is readable: the sync threads are leaving too */
        r.t[i].sync = NULL;
    }
    for (size_t i = 0; i < opened; i++)
        target_close(&r.t[i]);
    log_msg(LOG_LVL_INFO, "repld stopped", NULL);
    ackfile_close(acks);
    run_bw = r.bw; /* never unmapped: a worker abandoned to process exit (sender_stop) may still pace through it */
    free(r.t);
    free(r.live);
    if (sfd >= 0)
        close(sfd);
    if (stop_fd >= 0)
        close(stop_fd);
    return ret;
}
