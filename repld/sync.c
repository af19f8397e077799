/* sync.c - a target's full sync: bucket walk, merge-join, batches, persisted position. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/clock.h"
#include "common/curlopt.h"
#include "common/date.h"
#include "common/log.h"
#include "common/percent.h"
#include "common/replog.h"
#include "common/syncrec.h"
#include "proto/batch.h"
#include "proto/logrec.h"
#include "proto/presign.h"
#include "repld/sync.h"
#include "repld/syncsend.h"

#define SRC_PAGE 256                   /* source keys read per read transaction */
#define TGT_PAGE 1000                  /* target keys asked per listing */
#define PERSIST_KEYS 1000              /* keys walked without a batch handed on before the position is persisted anyway */
#define PERSIST_MS 1000                /* an acknowledged batch persists the position if none did for this long */
#define BATCH_EVENTS_MAX 500           /* events per sync batch (the target's batch_size when that is larger) */
#define BATCH_BYTES_MAX (8u << 20)     /* inline bytes and records per sync batch */
#define BACKLOG_BYTES_MAX (1u << 20)   /* events beyond batch_size are added only while the batch is below this */
#define INFLIGHT_BYTES_MAX (16u << 20) /* batch bodies in flight to the target at most (one batch goes whatever its size) */
#define EVENT_BYTES_MAX (16u * 1024)   /* a batch event's bytes beside its inline data: record, URL, headers */
#define BACKOFF_CAP_MS 60000
#define PROBE_MS 10000          /* while idle, how often the target's store identity is asked */
#define PROBE_TIMEOUT_MS 10000L /* and how long such a question may take */
#define PRESIGN_TTL_S 3600
#define EXTRA_LOGGED 20 /* keys only the target holds that a sync logs one by one */
#define LIST_REPLY_MAX (64u << 20)
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 600000L /* the replica may fetch large objects before it answers */
#define DEAD_LINK_S 20L

/* A target's listing of one bucket, a page at a time. */
typedef struct {
    buf_t reply;
    synclist_key_t *keys;
    size_t n, cap, i;
    int more;
    char last[LOGREC_KEY_MAX];
    size_t last_len;
} tpage_t;

struct sync {
    const conf_t *conf;
    const conf_target_t *tgt;
    meta_t *meta;
    int stop_fd, wake_fd, store_fd;
    pthread_t tid;
    int started;
    CURL *curl;
    struct curl_slist *headers;
    char *base; /* the target's URL without a trailing slash */

    pthread_mutex_t mu; /* guards the fields below up to `rec` */
    char peer_store[BATCH_STORE_MAX + 1];
    int requested;
    char req_bucket[LOGREC_BUCKET_MAX + 1];
    uint8_t req_flags;    /* SYNCREC_F_DRY_RUN, SYNCREC_F_DELETE_EXTRA */
    uint64_t req_rate;    /* bytes/s; 0: replication.sync_rate_limit */
    sync_report_t report; /* what the running or last sync found, by bucket, and its first keys (sync_report) */
    uint64_t generation;  /* syncs started (or resumed) since repld started: a watcher tells its own from the last */
    int cancel;
    int running;
    syncrec_t shown; /* the running sync's record as last persisted, for sync_request's answer */

    /* the sync thread's own */
    syncrec_t rec;
    syncsend_t *send;        /* the batches in flight (NULL until the first sync ships) */
    syncsend_batch_t *cur;   /* the batch being built */
    syncsend_batch_t *spare; /* batches taken back, for reuse (a list through next) */
    bwlimit_t *bw;           /* borrowed (sync_start); NULL: no pacing */
    int bw_slot;
    uint64_t next_seq;
    uint64_t backoff_ms;
    int outage_logged;
    char *scratch;
    size_t scratch_cap;
    msgpack_sbuffer recbuf; /* the record of the event being added (ev_add) */
    size_t since_persist;
    unsigned unpersisted;  /* batches acknowledged since the position was last persisted */
    uint64_t persisted_ms; /* when it was last persisted (monotonic) */
    int probing;           /* an idle probe of the target's store is under way */
    uint64_t pace_ms;      /* with a rate limit: when the next batch may go (monotonic) */
    size_t inflight_bytes; /* the bodies (syncsend_batch_t.bytes) of the batches submitted and not taken back */
};

/* ---- the decision ---- */

sync_action_t sync_decide(const meta_entry_t *src, const synclist_key_t *tgt)
{
    if (src == NULL)
        return tgt != NULL ? SYNC_EXTRA : SYNC_SKIP;
    const meta_obj_t *o = &src->obj;
    if (tgt == NULL)
        return src->deleted ? SYNC_SKIP : SYNC_PUT;
    int c = hlc_version_cmp(o->version, o->origin, o->origin_len, tgt->hlc, tgt->origin, tgt->origin_len);
    if (c <= 0)
        return SYNC_SKIP; /* the same version, or a later one the target holds */
    if (!src->deleted)
        return SYNC_PUT;
    return tgt->deleted ? SYNC_SKIP : SYNC_DELETE; /* a later tombstone over a tombstone changes nothing the target serves */
}

int sync_extra_deleted(const synclist_key_t *tgt, const char *site, size_t site_len, uint64_t horizon, int delete_extra)
{
    if (tgt == NULL || tgt->deleted)
        return 0;
    if (delete_extra)
        return 1;
    /* this site wrote that version, holds neither it nor a later one, nor a tombstone: it was deleted here, and the
     * tombstone, which orders after it, was collected (it is at or below the horizon) */
    return horizon != 0 && tgt->hlc < horizon && tgt->origin_len == site_len && memcmp(tgt->origin, site, site_len) == 0;
}

/* ---- the report ---- */

/* Starts the report of a new sync. Under mu. */
static void report_reset(sync_t *s)
{
    s->report.nb = 0;
    buf_free(&s->report.keys);
    buf_init(&s->report.keys, 4u << 20);
    s->report.nkeys = 0;
    s->report.nlisted = 0;
}

/* The report's entry for bucket b (the last one when it is b): NULL when out of memory. Under mu. */
static sync_report_bucket_t *report_bucket(sync_t *s, const char *b)
{
    sync_report_t *r = &s->report;
    if (r->nb > 0 && strcmp(r->b[r->nb - 1].name, b) == 0)
        return &r->b[r->nb - 1];
    sync_report_bucket_t *n = buf_grow_array(r->b, &r->cap, r->nb, sizeof(*n), 16);
    if (n == NULL)
        return NULL;
    r->b = n;
    memset(&r->b[r->nb], 0, sizeof(r->b[0]));
    snprintf(r->b[r->nb].name, sizeof(r->b[0].name), "%s", b);
    return &r->b[r->nb++];
}

typedef enum { REP_PUT, REP_DELETE, REP_DELETE_EXTRA, REP_EXTRA, REP_BUCKET_ONLY } rep_action_t;

/* Records a decision for key k of bucket b (REP_BUCKET_ONLY: b is a bucket only the target holds). */
static void report(sync_t *s, const char *b, const char *k, size_t klen, rep_action_t a, uint64_t size)
{
    static const char *const names[] = {"put", "delete", "delete-extra", "extra", "bucket-only"};
    pthread_mutex_lock(&s->mu);
    sync_report_bucket_t *e = report_bucket(s, b);
    if (e != NULL) {
        switch (a) {
        case REP_PUT:
            e->put++;
            e->put_bytes += size;
            break;
        case REP_DELETE:
            e->del++;
            break;
        case REP_DELETE_EXTRA:
            e->del_extra++;
            e->del_extra_bytes += size;
            break;
        case REP_EXTRA:
            e->extra++;
            e->extra_bytes += size;
            break;
        case REP_BUCKET_ONLY:
            e->target_only = 1;
            break;
        }
    }
    if (a != REP_BUCKET_ONLY && s->report.nkeys++ < SYNC_REPORT_KEYS && s->report.keys.len < SYNC_REPORT_BYTES) {
        buf_t *o = &s->report.keys;
        s->report.nlisted++;
        buf_puts(o, s->report.nlisted > 1 ? ",{\"bucket\":" : "{\"bucket\":");
        buf_json_str(o, b, strlen(b));
        buf_puts(o, ",\"key\":");
        buf_json_str(o, k, klen);
        buf_printf(o, ",\"action\":\"%s\",\"size\":%" PRIu64 "}", names[a], size);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- waiting ---- */

static int stopping(sync_t *s)
{
    struct pollfd p = {s->stop_fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

static int cancelled(sync_t *s)
{
    pthread_mutex_lock(&s->mu);
    int c = s->cancel;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* Sleeps up to ms, or until stopped or woken. Returns 1 when repld stops. */
static int nap(sync_t *s, uint64_t ms)
{
    struct pollfd p[2] = {{s->stop_fd, POLLIN, 0}, {s->wake_fd, POLLIN, 0}};
    int n = poll(p, 2, (int)(ms > 3600000 ? 3600000 : ms));
    if (n > 0 && p[1].revents != 0) {
        uint64_t v;
        if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            log_msg(LOG_LVL_WARN, "cannot read the sync's wake-up descriptor", "error", strerror(errno), NULL);
    }
    return n > 0 && p[0].revents != 0;
}

static void wake(sync_t *s)
{
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
        log_msg(LOG_LVL_WARN, "cannot wake the sync thread", "error", strerror(errno), NULL);
}

/* ---- HTTP ---- */

/* Whether a --resync waits to start. */
static int requested(sync_t *s)
{
    pthread_mutex_lock(&s->mu);
    int r = s->requested;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* Aborts a transfer once repld stops or the sync is cancelled, and an idle
 * probe once a --resync waits: none of them waits for a request's timeout. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    sync_t *s = arg;
    return stopping(s) || cancelled(s) || (s->probing && requested(s));
}

/* One GET of url from the target. Fills *reply (capped at `cap`) and
 * *status (0 when no HTTP answer came). Returns 0 when an HTTP answer came,
 * else CIO_EIO with the reason in err. */
static int request(sync_t *s, const char *url, buf_t *reply, size_t cap, long *status, char *err, size_t errlen)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode cc;

    buf_init(reply, cap);
    *status = 0;
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, curlopt_to_buf);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, errbuf);
    cc = curl_easy_perform(s->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return CIO_EIO;
    }
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* An error reply's text for logs: a short printable excerpt. */
static void excerpt(const buf_t *b, long status, char *err, size_t errlen)
{
    char text[200];
    size_t n = b->len < sizeof(text) - 1 ? b->len : sizeof(text) - 1;
    for (size_t i = 0; i < n; i++)
        text[i] = b->data[i] >= 32 && b->data[i] < 127 ? b->data[i] : '.';
    text[n] = '\0';
    snprintf(err, errlen, "remote returned %ld: %s", status, text);
}

/* Backs off after a failed request (doubling up to BACKOFF_CAP_MS), logging
 * the first failure of an outage. Returns 1 when repld stops or the sync is
 * cancelled meanwhile. */
static int back_off(sync_t *s, const char *what, const char *err)
{
    char delay[32];
    snprintf(delay, sizeof(delay), "%.1fs", s->backoff_ms / 1000.0);
    if (!s->outage_logged || s->backoff_ms >= BACKOFF_CAP_MS)
        log_msg(LOG_LVL_WARN, "full sync: target unavailable; will try again", "target", s->tgt->name, "request", what, "error",
                err, "retry_in", delay, NULL);
    s->outage_logged = 1;
    snprintf(s->rec.error, sizeof(s->rec.error), "%.*s", (int)sizeof(s->rec.error) - 1, err);
    int stop = nap(s, s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : s->backoff_ms * 2;
    return stop || stopping(s) || cancelled(s);
}

static void reachable(sync_t *s)
{
    s->outage_logged = 0;
    s->backoff_ms = s->tgt->retry_delay_ms > 0 && s->tgt->retry_delay_ms < 1000 ? s->tgt->retry_delay_ms : 1000;
}

/* GETs a listing (bucket NULL: the buckets) into *reply and checks its
 * envelope into *d, retrying transport failures. Notes the target's store.
 * Returns 0, 1 when stopped or cancelled meanwhile, or with `once` (a probe)
 * CIO_EIO on the first failure. */
static int get_listing(sync_t *s, const char *bucket, const char *after, size_t alen, buf_t *reply, synclist_dec_t *d, int once)
{
    buf_t url;
    char err[600];
    long status;
    int ret;

    for (;;) {
        buf_init(&url, 16384);
        buf_puts(&url, s->base);
        buf_puts(&url, "/admin/replication/list");
        if (bucket != NULL) {
            buf_puts(&url, "?bucket=");
            percent_append(&url, bucket, strlen(bucket), 0);
            buf_puts(&url, "&after=");
            percent_append(&url, after, alen, 0);
            buf_printf(&url, "&max=%d", TGT_PAGE);
        }
        if (url.err != 0) {
            buf_free(&url);
            return url.err;
        }
        ret = request(s, url.data, reply, LIST_REPLY_MAX, &status, err, sizeof(err));
        buf_free(&url);
        if (ret == 0 && status == 200) {
            if (synclist_dec_init(d, reply->data != NULL ? reply->data : "", reply->len) == 0 &&
                d->kind == (bucket != NULL ? SYNCLIST_KEYS : SYNCLIST_BUCKETS)) {
                char store[BATCH_STORE_MAX + 1];
                snprintf(store, sizeof(store), "%.*s", (int)d->store_len, d->store);
                sync_note_store(s, store);
                reachable(s);
                return 0;
            }
            snprintf(err, sizeof(err), "remote returned a malformed listing (%zu bytes)", reply->len);
        } else if (ret == 0 && status == 404) {
            snprintf(err, sizeof(err), "the target does not serve /admin/replication/list: it needs a release with full sync");
        } else if (ret == 0) {
            excerpt(reply, status, err, sizeof(err));
        }
        buf_free(reply);
        if (once)
            return CIO_EIO;
        if (back_off(s, "list", err))
            return 1;
    }
}

/* ---- persisting ---- */

static int persist(sync_t *s)
{
    MDB_txn *txn;
    int ret;
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, 0, &txn), "mdb_txn_begin")) != 0)
        return ret;
    if ((ret = syncrec_put(s->meta, txn, s->tgt->name, &s->rec)) != 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    if ((ret = meta_err(mdb_txn_commit(txn), "mdb_txn_commit")) != 0)
        return ret;
    pthread_mutex_lock(&s->mu);
    s->shown = s->rec;
    pthread_mutex_unlock(&s->mu);
    s->since_persist = 0;
    s->unpersisted = 0;
    s->persisted_ms = (uint64_t)clock_mono_ms();
    return 0;
}

/* The target's sync record into *r, and (unlogged may be NULL) when this site
 * last committed a write while replication was off (META_UNLOGGED_MS; 0: never). */
static int load(sync_t *s, syncrec_t *r, uint64_t *unlogged)
{
    MDB_txn *txn;
    int ret;
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = syncrec_get(s->meta, txn, s->tgt->name, r);
    if (unlogged != NULL && (ret == 0 || ret == CIO_ENOTFOUND)) {
        int uret = meta_state_get(s->meta, txn, META_UNLOGGED_MS, unlogged);
        if (uret != 0)
            ret = uret;
    }
    mdb_txn_abort(txn);
    return ret;
}

/* ---- the batch ---- */

/* A sync is a backlog from its first key: its batches hold what the log's
 * batches hold while a backlog exists (repld/ship.c, batch_events): up to
 * BATCH_EVENTS_MAX events, or batch_size when that is larger, the events
 * beyond batch_size only while the batch holds less than BACKLOG_BYTES_MAX.
 * Batches of batch_size (100 by default) made the sync of 100,000 4 KiB
 * objects run at about 0.77x of the drain of the same events.
 *
 * What a sync holds: each batch's body (its events encoded once, inline
 * bytes included) for the batches in flight (syncsend_depth, and their
 * bodies at most INFLIGHT_BYTES_MAX together) and the one being filled.
 * BACKLOG_BYTES_MAX is 1 MiB, not the log's 2 MiB, so that a sync of a
 * thousand 4 KiB objects already fills that pipeline: with 2 MiB it took
 * two batches where a larger sync held five, and repld's memory during a
 * sync of 100,000 objects was 1.9 times that of 1,000 (docs/benchmarks.md,
 * fullsync). */
static size_t batch_max(const sync_t *s)
{
    size_t n = s->tgt->batch_size > BATCH_EVENTS_MAX ? s->tgt->batch_size : BATCH_EVENTS_MAX;
    return n > BATCH_MAX_EVENTS ? BATCH_MAX_EVENTS : n;
}

/* Whether the batch being filled is full. */
static int batch_full(const sync_t *s)
{
    const syncsend_batch_t *b = s->cur;
    return b->nev >= batch_max(s) || b->bytes >= BATCH_BYTES_MAX || (b->nev >= s->tgt->batch_size && b->bytes >= BACKLOG_BYTES_MAX);
}

/* The most bytes a batch body can reach: events are added while it holds
 * less than BATCH_BYTES_MAX, and the last one may bring up to an inline
 * object (an inline_threshold beyond BATCH_BYTES_MAX is left to realloc:
 * rare, and correct, only not hole-free), as repld/ship.c reserves. */
static size_t batch_reserve(const sync_t *s)
{
    size_t inl = s->tgt->inline_threshold < BATCH_BYTES_MAX ? (size_t)s->tgt->inline_threshold : BATCH_BYTES_MAX;
    return BATCH_BYTES_MAX + inl + EVENT_BYTES_MAX;
}

/* Adds an event: its record r (seq set here), with inline bytes or a URL for
 * a PUT, encoded into the batch's body at once (a dry run's is only counted).
 * The inline bytes are copied once, from the read buffer into the body: a
 * batch holds them there alone, which is what the target is sent. */
static int ev_add(sync_t *s, logrec_t *r, const char *data, size_t data_len, int has_data, const char *url)
{
    int ret;

    r->seq = s->next_seq + 1;
    s->recbuf.size = 0; /* one buffer for every record: its first allocation (8 KiB) is made once */
    if ((ret = logrec_encode(r, &s->recbuf)) != 0)
        return ret;
    if ((ret = syncsend_batch_add(s->cur, s->conf->site_id, batch_reserve(s),
                                  (s->rec.flags & SYNCREC_F_DRY_RUN) ? NULL : s->recbuf.data, s->recbuf.size, has_data, data,
                                  has_data ? data_len : 0, url, r->seq, r->op == LOGREC_PUT ? r->size : 0)) != 0)
        return ret;
    s->next_seq++;
    return 0;
}

/* The sync's own bandwidth limit (rec.rate_limit, bytes/s): before a batch
 * goes, waits until the object bytes of the batches before it have had
 * their time. The bytes of a PUT count whether they go inline or are
 * fetched by the target from this site's storaged with the URL the event
 * carries: the target fetches them while it applies the batch, so pacing
 * the batches paces the fetches. Returns 1 when stopped or cancelled
 * meanwhile, or the error of a batch taken back meanwhile (take_back). */
static int take_back(sync_t *s, unsigned most, int block);

static int pace(sync_t *s)
{
    uint64_t rate = s->rec.rate_limit, now = (uint64_t)clock_mono_ms();
    if (rate == 0)
        return 0;
    while (s->pace_ms > now) {
        /* batches acknowledged meanwhile are taken back (their progress shown) in naps of at most PERSIST_MS */
        uint64_t left = s->pace_ms - now;
        int ret = take_back(s, 0, 0);
        if (ret != 0)
            return ret;
        if (nap(s, left < PERSIST_MS ? left : PERSIST_MS) || stopping(s) || cancelled(s))
            return 1;
        now = (uint64_t)clock_mono_ms();
    }
    /* a sync idle for a while does not save up a burst */
    uint64_t start = s->pace_ms > now ? s->pace_ms : now;
    s->pace_ms = start + s->cur->obj * 1000 / rate;
    return 0;
}

/* Persists the position a batch was handed on at, once it and every batch
 * before it are acknowledged: the walk's state then (position, scanned,
 * skipped, extra) with the acknowledged counters of now, which are those
 * of exactly these batches. */
static int persist_at(sync_t *s, const syncsend_batch_t *b)
{
    syncrec_t walked = s->rec;
    int ret;
    s->rec = b->at;
    s->rec.shipped = walked.shipped;
    s->rec.shipped_bytes = walked.shipped_bytes;
    s->rec.deleted = walked.deleted;
    s->rec.deleted_bytes = walked.deleted_bytes;
    s->rec.failed = walked.failed;
    s->rec.failed_bytes = walked.failed_bytes;
    memcpy(s->rec.error, walked.error, sizeof(s->rec.error));
    size_t since = s->since_persist;
    ret = persist(s);
    s->since_persist = since; /* counts the walk, which is further on */
    s->rec = walked;
    if (ret != 0)
        log_msg(LOG_LVL_ERROR, "full sync: cannot persist the position", "target", s->tgt->name, "error", cio_strerror(ret), NULL);
    return ret;
}

/* Takes back the batches that are done, in the order they were handed on,
 * until at most `most` are in flight (with `block` 0: only those done
 * already): adds up each one's outcome, and every syncsend_depth-th one, or
 * the first one PERSIST_MS after the last persist (so that the progress
 * shown moves at least that often, even when batches are few and slow),
 * persists the position it was handed on at. Returns 0; 1 when repld stops
 * or the sync is cancelled, or a batch was cut short by that; or a batch's
 * error, or persist's. On any of these nothing is in flight any more, and
 * nothing after the last batch fully done was persisted. */
static int take_back(sync_t *s, unsigned most, int block)
{
    int ret = 0;
    while (s->send != NULL && syncsend_inflight(s->send) > (ret != 0 ? 0 : most)) {
        syncsend_batch_t *b = syncsend_take(s->send);
        if (b != NULL) {
            s->inflight_bytes -= b->bytes < s->inflight_bytes ? b->bytes : s->inflight_bytes;
            if (b->ret != 0 && ret == 0)
                ret = b->ret;
            if (ret == 0) {
                s->rec.shipped += b->shipped;
                s->rec.shipped_bytes += b->shipped_bytes;
                s->rec.deleted += b->deleted;
                s->rec.deleted_bytes += b->deleted_bytes;
                s->rec.failed += b->failed;
                s->rec.failed_bytes += b->failed_bytes;
                if (b->error[0] != '\0')
                    memcpy(s->rec.error, b->error, sizeof(s->rec.error));
                /* a persist is a synced LMDB commit, about a millisecond, on the walk's path: one per `depth`
                 * batches keeps it off most of them, and at most depth - 1 acknowledged batches unpersisted */
                if (++s->unpersisted >= syncsend_depth(s->tgt) || (uint64_t)clock_mono_ms() - s->persisted_ms >= PERSIST_MS)
                    ret = persist_at(s, b);
            }
            if (ret != 0)
                syncsend_abort(s->send); /* the rest come back at once: this sync stops here */
            sync_note_store(s, b->store);
            syncsend_batch_clear(b);
            b->next = s->spare;
            s->spare = b;
            continue;
        }
        if (!block && ret == 0)
            break;
        if (ret == 0 && (stopping(s) || cancelled(s))) {
            ret = 1;
            syncsend_abort(s->send);
            continue;
        }
        struct pollfd p[3] = {{syncsend_done_fd(s->send), POLLIN, 0}, {s->stop_fd, POLLIN, 0}, {s->wake_fd, POLLIN, 0}};
        if (poll(p, 3, 1000) > 0 && p[2].revents != 0) {
            uint64_t v;
            if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_msg(LOG_LVL_WARN, "cannot read the sync's wake-up descriptor", "error", strerror(errno), NULL);
        }
    }
    if (ret != 0 && s->send != NULL)
        syncsend_resume(s->send); /* nothing is in flight: the next sync posts again */
    return ret;
}

static int wait_inflight(sync_t *s, unsigned most)
{
    return take_back(s, most, 1);
}

/* Hands the batch being built to the senders, with the position reached,
 * once fewer than their depth are in flight; a dry run counts it as sent
 * and acknowledged instead and persists the position. Returns 0, 1 when
 * repld stops or the sync is cancelled first (the events are dropped: they
 * are shipped again after the resume), or an error. */
static int flush(sync_t *s)
{
    syncsend_batch_t *b = s->cur;
    int ret;

    if (b->nev == 0)
        return 0;
    if (s->rec.flags & SYNCREC_F_DRY_RUN) {
        /* counted as if sent and acknowledged: what a real sync would ship */
        for (size_t i = 0; i < b->nev; i++) {
            s->rec.shipped++;
            s->rec.shipped_bytes += b->ev[i].bytes;
            if (b->ev[i].extra) {
                s->rec.deleted++;
                s->rec.deleted_bytes += b->ev[i].extra_size;
            }
        }
        syncsend_batch_clear(b);
        if ((ret = persist(s)) != 0)
            log_msg(LOG_LVL_ERROR, "full sync: cannot persist the position", "target", s->tgt->name, "error", cio_strerror(ret),
                    NULL);
        return ret;
    }
    if (s->send == NULL) {
        if ((ret = syncsend_start(&s->send, s->conf, s->tgt, s->stop_fd)) != 0)
            return ret;
        syncsend_set_bwlimit(s->send, s->bw, s->bw_slot);
    }
    ret = wait_inflight(s, syncsend_depth(s->tgt) - 1);
    /* the bytes in flight are bounded too, not only the batches: batches of large inline objects (up to
     * BATCH_BYTES_MAX each) go fewer at a time */
    while (ret == 0 && s->inflight_bytes > 0 && s->inflight_bytes + b->bytes > INFLIGHT_BYTES_MAX)
        ret = wait_inflight(s, syncsend_inflight(s->send) - 1);
    if (ret != 0 || (ret = pace(s)) != 0) {
        syncsend_batch_clear(b);
        return ret;
    }
    if (s->spare != NULL) {
        s->cur = s->spare;
        s->spare = s->cur->next;
        s->cur->next = NULL;
    } else if ((s->cur = calloc(1, sizeof(*s->cur))) == NULL) {
        s->cur = b;
        syncsend_batch_clear(b);
        return CIO_ENOMEM;
    }
    b->at = s->rec;
    s->inflight_bytes += b->bytes;
    syncsend_submit(s->send, b);
    s->since_persist = 0; /* the batch persists this position once acknowledged */
    return 0;
}

/* After a sync ended, however it ended: nothing left in flight (cut short
 * when it ended early: what was not persisted is shipped again after the
 * resume) and no event left in the batch being built. */
static void settle(sync_t *s)
{
    if (s->send != NULL && syncsend_inflight(s->send) > 0) {
        syncsend_abort(s->send);
        if (wait_inflight(s, 0) == 0)
            syncsend_resume(s->send);
    }
    syncsend_batch_clear(s->cur);
}

/* Flushes the batch and waits until every batch in flight is acknowledged,
 * each persisting its position; then persists the position reached: every
 * key up to it is done. For what must be applied before what follows (a
 * bucket before its keys, the keys before their bucket's delete), and the
 * end of a bucket. 0, 1 (stopped or cancelled), or an error. */
static int checkpoint(sync_t *s)
{
    int ret = flush(s);
    if (ret == 0)
        ret = wait_inflight(s, 0);
    if (ret != 0)
        return ret;
    if ((ret = persist(s)) != 0)
        log_msg(LOG_LVL_ERROR, "full sync: cannot persist the position", "target", s->tgt->name, "error", cio_strerror(ret), NULL);
    return ret;
}

/* Hands the batch on when it is full, or once PERSIST_KEYS keys were walked
 * since a batch last went (a checkpoint when none has events). */
static int maybe_flush(sync_t *s)
{
    /* with a rate limit, batches of at most a quarter of a second's bytes: the pace stays even */
    uint64_t quarter = s->rec.rate_limit / 4 > 65536 ? s->rec.rate_limit / 4 : 65536;
    if (batch_full(s) || (s->rec.rate_limit != 0 && s->cur->obj >= quarter))
        return flush(s);
    if (s->since_persist >= PERSIST_KEYS)
        return s->cur->nev > 0 ? flush(s) : checkpoint(s);
    return 0;
}

/* ---- synthesizing events ---- */

static void rec_origin(const sync_t *s, const char *origin, size_t origin_len, logrec_t *r)
{
    /* a version from before origins were recorded was this site's */
    r->origin = origin_len > 0 ? origin : s->conf->site_id;
    r->origin_len = origin_len > 0 ? origin_len : strlen(s->conf->site_id);
}

/* Reads an object's bytes, proven to be the version shipped as ship.c's
 * recheck proves them: the object still holds that version at the same
 * extent in a snapshot taken after the read. Returns 0, 1 when the object
 * moved on (the log carries its later state), or an error. */
static int read_bytes(sync_t *s, const char *b, size_t blen, meta_obj_t *o)
{
    MDB_txn *txn;
    meta_obj_t now;
    int ret;

    if (o->size + 1 > s->scratch_cap) {
        char *n = realloc(s->scratch, (size_t)o->size + 1);
        if (n == NULL)
            return CIO_ENOMEM;
        s->scratch = n;
        s->scratch_cap = (size_t)o->size + 1;
    }
    for (size_t done = 0; done < o->size;) {
        ssize_t n = pread(s->store_fd, s->scratch + done, (size_t)o->size - done, (off_t)(o->off + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            log_msg(LOG_LVL_ERROR, "cannot read an object from the data store", "error", n == 0 ? "short read" : strerror(errno),
                    NULL);
            return CIO_EIO;
        }
        done += (size_t)n;
    }
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = meta_obj_get(s->meta, txn, b, blen, o->key, o->key_len, &now);
    mdb_txn_abort(txn);
    if (ret == CIO_ENOTFOUND)
        return 1;
    if (ret != 0)
        return ret;
    return meta_obj_current(&now, o->version, o->origin, o->origin_len) && now.off == o->off ? 0 : 1;
}

/* Adds the PUT of source object `e` of bucket b to the batch. Returns 0, 1
 * when the object moved on since the page was read (skipped: the log ships
 * its later state), or an error. */
static int add_put(sync_t *s, const char *b, size_t blen, const meta_entry_t *e)
{
    MDB_txn *txn;
    meta_obj_t o;
    logrec_t r;
    char url[BATCH_URL_MAX];
    int ret;

    /* the current record: its extent may have moved since the page was read */
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = meta_obj_get(s->meta, txn, b, blen, e->obj.key, e->obj.key_len, &o);
    mdb_txn_abort(txn);
    if (ret == CIO_ENOTFOUND || (ret == 0 && !meta_obj_current(&o, e->obj.version, e->obj.origin, e->obj.origin_len)))
        return 1;
    if (ret != 0)
        return ret;
    memset(&r, 0, sizeof(r));
    r.op = LOGREC_PUT;
    r.hlc = o.version;
    r.bucket = b;
    r.bucket_len = blen;
    r.key = o.key;
    r.key_len = o.key_len;
    r.size = o.size;
    memcpy(r.etag, o.etag, 16);
    r.content_type = o.ctype;
    r.content_type_len = o.ctype_len;
    r.meta = o.meta;
    r.meta_len = o.meta_len;
    r.mpu_parts = o.mpu_parts; /* a multipart upload's S3 ETag goes with its object */
    memcpy(r.mpu_md5, o.mpu_md5, 16);
    r.mtime_ms = o.mtime_ms;
    r.parent_origin = "";
    r.ctx = o.ctx;
    rec_origin(s, o.origin, o.origin_len, &r);
    if (s->rec.flags & SYNCREC_F_DRY_RUN)
        return ev_add(s, &r, NULL, 0, 0, NULL); /* counted, never sent */
    if (o.size < s->tgt->inline_threshold) {
        if ((ret = read_bytes(s, b, blen, &o)) != 0)
            return ret;
        return ev_add(s, &r, s->scratch, (size_t)o.size, 1, NULL);
    }
    /* signed with this target's token, exactly as ship.c signs live events */
    const char *secret = s->tgt->token != NULL ? s->tgt->token : "";
    if ((ret = presign_url(secret, strlen(secret), s->conf->public_url, b, blen, o.key, o.key_len, o.version, o.origin,
                           o.origin_len, clock_wall_ms() / 1000 + PRESIGN_TTL_S, url, sizeof(url))) != 0)
        return ret;
    return ev_add(s, &r, NULL, 0, 0, url);
}

static int add_delete(sync_t *s, const char *b, size_t blen, const meta_entry_t *e)
{
    logrec_t r;
    memset(&r, 0, sizeof(r));
    r.op = LOGREC_DELETE;
    r.hlc = e->obj.version;
    r.bucket = b;
    r.bucket_len = blen;
    r.key = e->obj.key;
    r.key_len = e->obj.key_len;
    r.mtime_ms = e->obj.mtime_ms;
    r.parent_origin = "";
    r.ctx = e->obj.ctx;
    rec_origin(s, e->obj.origin, e->obj.origin_len, &r);
    return ev_add(s, &r, NULL, 0, 0, NULL);
}

/* The DELETE of key t only the target holds: version t's + 1 from this site,
 * with t's version as its parent and in its context, so that on the
 * target it is a causal successor of t (docs/replication-apply.md,
 * "Deleting what only the target holds"). */
static int add_delete_extra(sync_t *s, const char *b, size_t blen, const synclist_key_t *t)
{
    logrec_t r;
    int ret;
    memset(&r, 0, sizeof(r));
    r.op = LOGREC_DELETE;
    r.hlc = t->hlc + 1;
    r.bucket = b;
    r.bucket_len = blen;
    r.key = t->key;
    r.key_len = t->key_len;
    r.mtime_ms = clock_wall_ms();
    r.parent_hlc = t->origin_len > 0 ? t->hlc : 0; /* a parent needs its origin */
    r.parent_origin = t->origin_len > 0 ? t->origin : "";
    r.parent_origin_len = t->origin_len;
    vctx_init(&r.ctx);
    vctx_add(&r.ctx, t->origin, t->origin_len, t->hlc);
    rec_origin(s, NULL, 0, &r);
    if ((ret = ev_add(s, &r, NULL, 0, 0, NULL)) == 0) {
        s->cur->ev[s->cur->nev - 1].extra = 1;
        s->cur->ev[s->cur->nev - 1].extra_size = t->size;
    }
    return ret;
}

/* A bucket-only event (BUCKET_CREATE, BUCKET_DELETE, PURGE) at version v. */
static int add_bucket_op(sync_t *s, logrec_op_t op, const char *b, size_t blen, const meta_ver_t *v, int64_t mtime_ms)
{
    logrec_t r;
    memset(&r, 0, sizeof(r));
    r.op = op;
    r.hlc = v->hlc;
    r.bucket = b;
    r.bucket_len = blen;
    r.key = "";
    r.mtime_ms = mtime_ms;
    r.parent_origin = "";
    rec_origin(s, v->origin, v->origin_len, &r);
    return ev_add(s, &r, NULL, 0, 0, NULL);
}

/* ---- one bucket ---- */

static int cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static void tpage_free(tpage_t *t)
{
    buf_free(&t->reply);
    free(t->keys);
    t->keys = NULL;
    t->n = t->cap = t->i = 0;
}

/* The next page of the target's listing of bucket b, after t->last. 0, 1 (stopped), or an error. */
static int tpage_next(sync_t *s, const char *b, tpage_t *t)
{
    synclist_dec_t d;
    synclist_key_t k;
    int ret;

    tpage_free(t);
    if ((ret = get_listing(s, b, t->last, t->last_len, &t->reply, &d, 0)) != 0)
        return ret;
    t->more = d.more;
    if (d.n > 0 && (t->keys = calloc(d.n, sizeof(*t->keys))) == NULL)
        return CIO_ENOMEM;
    while ((ret = synclist_dec_key(&d, &k)) == 0) {
        /* strictly after the key asked from, in order: a listing that goes back could make the walk loop */
        const char *prev = t->n > 0 ? t->keys[t->n - 1].key : t->last;
        size_t prev_len = t->n > 0 ? t->keys[t->n - 1].key_len : t->last_len;
        if (cmp_key(k.key, k.key_len, prev, prev_len) <= 0) {
            ret = CIO_EPROTO;
            break;
        }
        t->keys[t->n++] = k;
    }
    if (ret != CIO_ENOTFOUND) {
        log_msg(LOG_LVL_ERROR, "full sync: the target's listing does not decode or is out of order", "target", s->tgt->name, NULL);
        return CIO_EPROTO;
    }
    if (t->n > 0) {
        t->last_len = t->keys[t->n - 1].key_len;
        memcpy(t->last, t->keys[t->n - 1].key, t->last_len);
    } else {
        t->more = 0; /* an empty page ends the listing, whatever it says: no loop */
    }
    return 0;
}

static void set_position(sync_t *s, const char *key, size_t len)
{
    memcpy(s->rec.key, key, len);
    s->rec.key[len] = '\0';
    s->rec.key_len = (uint16_t)len;
    s->since_persist++;
}

/* The bucket-level events of bucket b: its record and its purge version
 * against the target's (tb, NULL when the target lacks the bucket). */
static int sync_bucket_record(sync_t *s, const char *b, size_t blen, const synclist_bucket_t *tb)
{
    MDB_txn *txn;
    meta_bucket_t bk;
    meta_ver_t purge;
    int ret;

    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = meta_bucket_get(s->meta, txn, b, blen, &bk);
    if (ret == 0)
        ret = meta_purge_get(s->meta, txn, b, blen, &purge);
    mdb_txn_abort(txn);
    if (ret == CIO_ENOTFOUND)
        return 0; /* gone since the walk began: its DELETE is in the log */
    if (ret != 0)
        return ret;
    if (bk.version.hlc != 0 &&
        (tb == NULL ||
         hlc_version_cmp(bk.version.hlc, bk.version.origin, bk.version.origin_len, tb->hlc, tb->origin, tb->origin_len) > 0) &&
        (ret = add_bucket_op(s, bk.deleted ? LOGREC_BUCKET_DELETE : LOGREC_BUCKET_CREATE, b, blen, &bk.version, bk.ctime_ms)) != 0)
        return ret;
    if (purge.hlc != 0 &&
        (tb == NULL ||
         hlc_version_cmp(purge.hlc, purge.origin, purge.origin_len, tb->purge_hlc, tb->purge_origin, tb->purge_origin_len) > 0) &&
        (ret = add_bucket_op(s, LOGREC_PURGE, b, blen, &purge, clock_wall_ms())) != 0)
        return ret;
    /* the bucket exists on the target before its objects arrive */
    return checkpoint(s);
}

/* Whether this site holds key k of bucket b now, as an object or a
 * tombstone: 1, 0, or an error. */
static int held_now(sync_t *s, const char *b, size_t blen, const char *k, size_t klen)
{
    MDB_txn *txn;
    meta_obj_t o;
    meta_tomb_t t;
    int ret;
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = meta_obj_get(s->meta, txn, b, blen, k, klen, &o);
    if (ret == CIO_ENOTFOUND)
        ret = meta_tomb_get(s->meta, txn, b, blen, k, klen, &t);
    mdb_txn_abort(txn);
    return ret == 0 ? 1 : ret == CIO_ENOTFOUND ? 0 : ret;
}

/* sync_bucket's answer when the target names another store than the one the
 * sync began with: what it acknowledged is gone, the sync must start over. */
#define STORE_CHANGED 2

static int store_changed(sync_t *s)
{
    pthread_mutex_lock(&s->mu);
    int changed = s->peer_store[0] != '\0' && s->rec.store_started[0] != '\0' && strcmp(s->peer_store, s->rec.store_started) != 0;
    pthread_mutex_unlock(&s->mu);
    return changed;
}

/* Merge-joins bucket b's keys after the persisted position with the target's.
 * 0, 1 (stopped or cancelled), STORE_CHANGED or an error. */
static int sync_bucket(sync_t *s, const char *b, const synclist_bucket_t *tb)
{
    size_t blen = strlen(b);
    meta_entry_t *src = NULL;
    size_t ns = 0, is = 0, walked = 0;
    int smore = 1, ret;
    char slast[LOGREC_KEY_MAX];
    size_t slast_len = s->rec.key_len;
    tpage_t *tp = calloc(1, sizeof(*tp));

    if (tp == NULL)
        return CIO_ENOMEM;
    memcpy(slast, s->rec.key, slast_len);
    memcpy(tp->last, s->rec.key, slast_len);
    tp->last_len = slast_len;
    tp->more = 1;
    if ((ret = sync_bucket_record(s, b, blen, tb)) != 0)
        goto done;
    for (;;) {
        if (is == ns && smore) {
            MDB_txn *txn;
            free(src);
            src = NULL;
            ns = is = 0;
            if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
                goto done;
            ret = meta_key_page(s->meta, txn, b, blen, slast, slast_len, SRC_PAGE, &src, &ns, &smore);
            mdb_txn_abort(txn);
            if (ret != 0)
                goto done;
            if (ns == 0)
                smore = 0;
            else
                memcpy(slast, src[ns - 1].obj.key, slast_len = src[ns - 1].obj.key_len);
        }
        if (tp->i == tp->n && tp->more && (tb != NULL || tp->n > 0)) {
            if ((ret = tpage_next(s, b, tp)) != 0)
                goto done;
        } else if (tp->i == tp->n) {
            tp->more = 0; /* a bucket the target lacks lists nothing */
        }
        const meta_entry_t *se = is < ns ? &src[is] : NULL;
        const synclist_key_t *te = tp->i < tp->n ? &tp->keys[tp->i] : NULL;
        if (se == NULL && te == NULL)
            break;
        int c = se == NULL ? 1 : te == NULL ? -1 : cmp_key(se->obj.key, se->obj.key_len, te->key, te->key_len);
        const meta_entry_t *sx = c <= 0 ? se : NULL;
        const synclist_key_t *tx = c >= 0 ? te : NULL;
        switch (sync_decide(sx, tx)) {
        case SYNC_PUT:
            ret = add_put(s, b, blen, sx);
            if (ret == 1) {
                s->rec.skipped++;
                s->rec.skipped_bytes += sx->obj.size;
                ret = 0;
            } else if (ret == 0) {
                report(s, b, sx->obj.key, sx->obj.key_len, REP_PUT, sx->obj.size);
            }
            break;
        case SYNC_DELETE:
            if ((ret = add_delete(s, b, blen, sx)) == 0)
                report(s, b, sx->obj.key, sx->obj.key_len, REP_DELETE, 0);
            break;
        case SYNC_EXTRA: {
            char key[LOGREC_KEY_MAX + 1];
            if ((ret = held_now(s, b, blen, tx->key, tx->key_len)) < 0)
                break;
            if (ret == 1) {
                /* written here since the page was read, and already shipped live: not the target's alone */
                s->rec.skipped++;
                ret = 0;
                break;
            }
            if (sync_extra_deleted(tx, s->conf->site_id, strlen(s->conf->site_id),
                                   (s->rec.flags & SYNCREC_F_HORIZON) ? s->rec.horizon : 0,
                                   (s->rec.flags & SYNCREC_F_DELETE_EXTRA) != 0)) {
                if ((ret = add_delete_extra(s, b, blen, tx)) == 0)
                    report(s, b, tx->key, tx->key_len, REP_DELETE_EXTRA, tx->size);
                break;
            }
            report(s, b, tx->key, tx->key_len, REP_EXTRA, tx->size);
            snprintf(key, sizeof(key), "%.*s", (int)tx->key_len, tx->key);
            s->rec.extra++;
            s->rec.extra_bytes += tx->size;
            /* a rebuilt site syncing back to its peer finds every key extra: the first few are logged, all are counted */
            if (s->rec.extra <= EXTRA_LOGGED)
                log_msg(LOG_LVL_INFO,
                        s->rec.extra < EXTRA_LOGGED ? "full sync: the target holds a key this site does not"
                                                    : "full sync: the target holds a key this site does not (more are counted, "
                                                      "not logged)",
                        "target", s->tgt->name, "bucket", b, "key", key, NULL);
            break;
        }
        case SYNC_SKIP:
            s->rec.skipped++;
            s->rec.skipped_bytes += sx != NULL && !sx->deleted ? sx->obj.size : 0;
            break;
        }
        if (ret != 0)
            goto done;
        if (sx != NULL) {
            s->rec.scanned++;
            s->rec.scanned_bytes += sx->deleted ? 0 : sx->obj.size;
            set_position(s, sx->obj.key, sx->obj.key_len);
            is++;
        } else {
            set_position(s, tx->key, tx->key_len);
        }
        if (tx != NULL)
            tp->i++;
        if ((ret = maybe_flush(s)) != 0)
            goto done;
        if ((++walked & 63) == 0) {
            if (cancelled(s) || stopping(s)) {
                ret = 1;
                goto done;
            }
            if (store_changed(s)) {
                ret = STORE_CHANGED;
                goto done;
            }
        }
    }
    ret = checkpoint(s);
done:
    free(src);
    tpage_free(tp);
    free(tp);
    return ret;
}

/* ---- a whole sync ---- */

/* The source's bucket names from `from` on (all of them, in name order),
 * or only `only`; *names is a malloc'd array of malloc'd strings. */
static int source_buckets(sync_t *s, const char *from, const char *only, char ***names, size_t *n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t cap = 0;
    int rc, ret = 0;

    *names = NULL;
    *n = 0;
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->meta->buckets, &cur)) != 0) {
        mdb_txn_abort(txn);
        return meta_err(rc, "mdb_cursor_open(buckets)");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char *name;
        if (k.mv_size == 0 || k.mv_size > LOGREC_BUCKET_MAX)
            continue;
        if (cmp_key(k.mv_data, k.mv_size, from, strlen(from)) < 0)
            continue;
        if (*only != '\0' && (k.mv_size != strlen(only) || memcmp(k.mv_data, only, k.mv_size) != 0))
            continue;
        char **nn = buf_grow_array(*names, &cap, *n, sizeof(*nn), 16);
        if (nn == NULL) {
            ret = CIO_ENOMEM;
            break;
        }
        *names = nn;
        if ((name = strndup(k.mv_data, k.mv_size)) == NULL) {
            ret = CIO_ENOMEM;
            break;
        }
        (*names)[(*n)++] = name;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

/* This site's tombstone horizon (META_TOMB_HORIZON). */
static int read_horizon(sync_t *s, uint64_t *h)
{
    MDB_txn *txn;
    int ret;
    if ((ret = meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin")) != 0)
        return ret;
    ret = meta_state_get(s->meta, txn, META_TOMB_HORIZON, h);
    mdb_txn_abort(txn);
    return ret;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds to the source's bucket names those only the target holds (from the
 * position on, or the one bucket asked), and sorts them: the walk visits
 * them too, to report (or delete) what they hold. */
static int add_target_buckets(sync_t *s, const synclist_bucket_t *tb, size_t ntb, char ***names, size_t *n)
{
    size_t nsrc = *n;
    for (size_t j = 0; j < ntb; j++) {
        char name[LOGREC_BUCKET_MAX + 1], **nn;
        int known = 0;
        snprintf(name, sizeof(name), "%.*s", (int)tb[j].name_len, tb[j].name);
        if (strcmp(name, s->rec.bucket) < 0 || (s->rec.only_bucket[0] != '\0' && strcmp(name, s->rec.only_bucket) != 0))
            continue;
        for (size_t i = 0; i < nsrc && !known; i++)
            known = strcmp((*names)[i], name) == 0;
        if (known)
            continue;
        if ((nn = realloc(*names, (*n + 1) * sizeof(*nn))) == NULL)
            return CIO_ENOMEM;
        *names = nn;
        if ((nn[*n] = strdup(name)) == NULL)
            return CIO_ENOMEM;
        (*n)++;
    }
    if (*n > 1) /* (qsort takes no NULL, even for nothing) */
        qsort(*names, *n, sizeof(**names), cmp_name);
    return 0;
}

/* Whether this site holds bucket b now. */
static int source_has_bucket(sync_t *s, const char *b)
{
    MDB_txn *txn;
    meta_bucket_t bk;
    int ret;
    if (meta_err(mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin") != 0)
        return 1; /* when in doubt, nothing is deleted */
    ret = meta_bucket_get(s->meta, txn, b, strlen(b), &bk);
    mdb_txn_abort(txn);
    return ret != CIO_ENOTFOUND;
}

/* A bucket only the target holds (t), walked: counted and reported, and with
 * --delete-extra deleted there (a BUCKET_DELETE at the target's bucket
 * version + 1; the target deletes a bucket only once it is empty, so the
 * key DELETEs just shipped go first). */
static int target_only_bucket(sync_t *s, const char *b, const synclist_bucket_t *t)
{
    int ret;
    s->rec.extra_buckets++;
    report(s, b, "", 0, REP_BUCKET_ONLY, 0);
    log_msg(LOG_LVL_INFO,
            (s->rec.flags & SYNCREC_F_DELETE_EXTRA) ? "full sync: deleting a bucket only the target holds"
                                                    : "full sync: the target holds a bucket this site does not",
            "target", s->tgt->name, "bucket", b, NULL);
    if (!(s->rec.flags & SYNCREC_F_DELETE_EXTRA))
        return 0;
    meta_ver_t v;
    memset(&v, 0, sizeof(v));
    v.hlc = t->hlc + 1;
    if ((ret = add_bucket_op(s, LOGREC_BUCKET_DELETE, b, strlen(b), &v, clock_wall_ms())) != 0)
        return ret;
    return checkpoint(s);
}

static void log_end(sync_t *s, const char *msg)
{
    char sc[24], sh[24], sk[24], fa[24], ex[24], by[24], dur[32];
    double secs = s->rec.finished_ms > s->rec.started_ms ? (s->rec.finished_ms - s->rec.started_ms) / 1000.0 : 0;
    snprintf(sc, sizeof(sc), "%" PRIu64, s->rec.scanned);
    snprintf(sh, sizeof(sh), "%" PRIu64, s->rec.shipped);
    snprintf(sk, sizeof(sk), "%" PRIu64, s->rec.skipped);
    snprintf(fa, sizeof(fa), "%" PRIu64, s->rec.failed);
    snprintf(ex, sizeof(ex), "%" PRIu64, s->rec.extra);
    snprintf(by, sizeof(by), "%" PRIu64, s->rec.shipped_bytes);
    snprintf(dur, sizeof(dur), "%.3fs", secs);
    log_msg(s->rec.failed > 0 ? LOG_LVL_WARN : LOG_LVL_INFO, msg, "target", s->tgt->name, "scanned", sc, "shipped", sh,
            "bytes_shipped", by, "skipped", sk, "failed", fa, "extra", ex, "duration", dur, NULL);
}

/* Runs (or resumes) the sync in s->rec. 0 once complete or cancelled, 1 when repld stops, or an error. */
static int run(sync_t *s, int resumed)
{
    buf_t reply;
    synclist_dec_t d;
    synclist_bucket_t *tb = NULL;
    size_t ntb = 0, nb = 0;
    char **names = NULL, store[BATCH_STORE_MAX + 1];
    int ret;

    /* the target's buckets, and its store identity */
    if ((ret = get_listing(s, NULL, NULL, 0, &reply, &d, 0)) != 0)
        return ret;
    snprintf(store, sizeof(store), "%.*s", (int)d.store_len, d.store);
    if (resumed && strcmp(store, s->rec.store_started) != 0) {
        /* its store was replaced while the sync was cut short: what it had acknowledged is gone */
        log_msg(LOG_LVL_WARN, "full sync: the target's store changed during the sync; starting over", "target", s->tgt->name, NULL);
        syncrec_t fresh;
        memset(&fresh, 0, sizeof(fresh));
        memcpy(fresh.store_done, s->rec.store_done, sizeof(fresh.store_done));
        memcpy(fresh.only_bucket, s->rec.only_bucket, sizeof(fresh.only_bucket));
        fresh.reason = SYNCREC_STORE_REPLACED;
        s->rec = fresh;
        resumed = 0;
    }
    if (!resumed) {
        s->rec.phase = SYNCREC_RUNNING;
        s->rec.started_ms = (uint64_t)clock_wall_ms();
        if ((ret = read_horizon(s, &s->rec.horizon)) != 0)
            goto done;
        snprintf(s->rec.store_started, sizeof(s->rec.store_started), "%s", store);
        if ((ret = persist(s)) != 0)
            goto done;
    }
    char rate[32] = "none";
    if (s->rec.rate_limit != 0)
        snprintf(rate, sizeof(rate), "%" PRIu64 "B/s", s->rec.rate_limit);
    log_msg(LOG_LVL_INFO, resumed ? "full sync resumed" : "full sync started", "target", s->tgt->name, "reason",
            syncrec_reason_name(s->rec.reason), "bucket", s->rec.only_bucket[0] ? s->rec.only_bucket : "*", "from_bucket",
            s->rec.bucket, "dry_run", (s->rec.flags & SYNCREC_F_DRY_RUN) ? "true" : "false", "delete_extra",
            (s->rec.flags & SYNCREC_F_DELETE_EXTRA) ? "true" : "false", "rate_limit", rate, NULL);
    if (d.n > 0 && (tb = calloc(d.n, sizeof(*tb))) == NULL) {
        ret = CIO_ENOMEM;
        goto done;
    }
    while (ntb < d.n && synclist_dec_bucket(&d, &tb[ntb]) == 0)
        ntb++;
    if ((ret = source_buckets(s, s->rec.bucket, s->rec.only_bucket, &names, &nb)) != 0 ||
        (ret = add_target_buckets(s, tb, ntb, &names, &nb)) != 0)
        goto done;
    for (size_t i = 0; i < nb && ret == 0; i++) {
        const synclist_bucket_t *t = NULL;
        for (size_t j = 0; j < ntb && t == NULL; j++)
            if (tb[j].name_len == strlen(names[i]) && memcmp(tb[j].name, names[i], tb[j].name_len) == 0)
                t = &tb[j];
        if (strcmp(names[i], s->rec.bucket) != 0) {
            snprintf(s->rec.bucket, sizeof(s->rec.bucket), "%s", names[i]);
            s->rec.key_len = 0;
            s->rec.key[0] = '\0';
        }
        ret = cancelled(s) || stopping(s) ? 1 : store_changed(s) ? STORE_CHANGED : sync_bucket(s, names[i], t);
        if (ret == 0 && t != NULL && !source_has_bucket(s, names[i]))
            ret = target_only_bucket(s, names[i], t);
    }
    if (ret == STORE_CHANGED) {
        /* left running: the next round resumes it, sees the new store and starts over */
        log_msg(LOG_LVL_WARN, "full sync: the target's store changed during the sync", "target", s->tgt->name, NULL);
        ret = 0;
        goto done;
    }
    if (ret == 0) {
        s->rec.phase = SYNCREC_DONE;
        s->rec.finished_ms = (uint64_t)clock_wall_ms();
        if (!(s->rec.flags & SYNCREC_F_DRY_RUN)) /* a dry run synced nothing: a sync the target needs is still due */
            memcpy(s->rec.store_done, s->rec.store_started, sizeof(s->rec.store_done));
        s->rec.bucket[0] = '\0';
        s->rec.key[0] = '\0';
        s->rec.key_len = 0;
        if ((ret = persist(s)) == 0)
            log_end(s, "full sync finished");
    }
done:
    for (size_t i = 0; i < nb; i++)
        free(names[i]);
    free(names);
    free(tb);
    buf_free(&reply);
    return ret;
}

/* Marks the sync cancelled, from its last persisted state. */
static void finish_cancel(sync_t *s)
{
    syncrec_t r;
    if (load(s, &r, NULL) != 0)
        r = s->rec;
    r.phase = SYNCREC_CANCELLED;
    r.finished_ms = (uint64_t)clock_wall_ms();
    /* the operator stopped it: the store is not synced again on its own, only by repld --resync (cancelled
     * before the target ever answered, the store it names now) */
    if (!(r.flags & SYNCREC_F_DRY_RUN))
        memcpy(r.store_done, r.store_started, sizeof(r.store_done));
    if (r.store_done[0] == '\0' && !(r.flags & SYNCREC_F_DRY_RUN)) {
        pthread_mutex_lock(&s->mu);
        snprintf(r.store_done, sizeof(r.store_done), "%s", s->peer_store);
        pthread_mutex_unlock(&s->mu);
    }
    s->rec = r;
    if (persist(s) == 0)
        log_end(s, "full sync cancelled; the target may lack objects until repld --resync");
}

/* Whether the log still holds every write this site ever committed: nothing
 * was trimmed from it (the trim point is 0) and nothing was committed while
 * replication was off. A new target then needs no full sync: the log, which
 * it is sent from its start, is the whole state. 1 yes, 0 no (or unknown). */
static int log_complete(sync_t *s, uint64_t unlogged)
{
    MDB_txn *txn;
    uint64_t trim = 1;
    if (unlogged != 0 || mdb_txn_begin(s->meta->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    int ret = replog_cursor(s->meta, txn, &trim);
    mdb_txn_abort(txn);
    return ret == 0 && trim == 0;
}

/* A new target of a site whose log is complete: recorded as synced with the
 * store it has now, without a scan. */
static void adopt(sync_t *s)
{
    syncrec_t r;
    memset(&r, 0, sizeof(r));
    r.phase = SYNCREC_DONE;
    r.reason = SYNCREC_NEW_TARGET;
    r.started_ms = r.finished_ms = (uint64_t)clock_wall_ms();
    pthread_mutex_lock(&s->mu);
    snprintf(r.store_started, sizeof(r.store_started), "%s", s->peer_store);
    pthread_mutex_unlock(&s->mu);
    memcpy(r.store_done, r.store_started, sizeof(r.store_done));
    s->rec = r;
    if (persist(s) == 0)
        log_msg(LOG_LVL_INFO, "no full sync needed: the log holds every write of this site", "target", s->tgt->name, NULL);
}

/* What to do now: a reason to start a sync (and *resume), or 0 to wait. */
static int due(sync_t *s, int *resume)
{
    syncrec_t r;
    uint64_t unlogged = 0;
    int ret = load(s, &r, &unlogged), reason = 0, adopt_now = 0;
    int complete = ret == CIO_ENOTFOUND && log_complete(s, unlogged);
    *resume = 0;
    pthread_mutex_lock(&s->mu);
    if (ret == 0 && r.phase == SYNCREC_RUNNING) {
        s->rec = r;
        *resume = 1;
        reason = r.reason;
    } else if (s->requested) {
        reason = SYNCREC_REQUESTED;
    } else if (complete) {
        adopt_now = s->peer_store[0] != '\0'; /* else wait for the target's store identity (the probe below) */
    } else if (ret == CIO_ENOTFOUND || (ret == 0 && r.store_done[0] == '\0' && (r.flags & SYNCREC_F_DRY_RUN))) {
        reason = SYNCREC_NEW_TARGET; /* (or only a dry run ran: nothing was ever synced) */
    } else if (ret == 0 && s->peer_store[0] != '\0' && strcmp(s->peer_store, r.store_done) != 0) {
        reason = SYNCREC_STORE_REPLACED;
    } else if (ret == 0 && unlogged != 0 && unlogged >= r.started_ms && !(r.flags & SYNCREC_F_DRY_RUN)) {
        /* writes this site committed while replication was off are in no log:
         * only a full sync that began after them brings them to the target */
        reason = SYNCREC_UNLOGGED;
    } else if (ret != 0 && ret != CIO_ENOTFOUND) {
        log_msg(LOG_LVL_ERROR, "full sync: cannot read the sync record", "target", s->tgt->name, "error", cio_strerror(ret), NULL);
    }
    if (reason != 0 && !*resume) {
        syncrec_t fresh;
        memset(&fresh, 0, sizeof(fresh));
        if (ret == 0)
            memcpy(fresh.store_done, r.store_done, sizeof(fresh.store_done));
        fresh.reason = (syncrec_reason_t)reason;
        fresh.flags = SYNCREC_F_HORIZON; /* always sound: what this site provably deleted goes */
        fresh.rate_limit = s->conf->sync_rate_limit;
        if (reason == SYNCREC_REQUESTED) {
            memcpy(fresh.only_bucket, s->req_bucket, sizeof(fresh.only_bucket));
            fresh.flags |= s->req_flags;
            if (s->req_rate != 0)
                fresh.rate_limit = s->req_rate;
        }
        s->rec = fresh;
        report_reset(s);
        s->pace_ms = 0;
    }
    s->requested = 0;
    s->cancel = 0;
    s->running = reason != 0;
    if (s->running) {
        s->shown = s->rec;
        s->generation++;
    }
    pthread_mutex_unlock(&s->mu);
    if (adopt_now)
        adopt(s);
    return reason;
}

static void *sync_main(void *arg)
{
    sync_t *s = arg;
    uint64_t next_probe = 0;

    while (!stopping(s)) {
        int resume, ret;
        if (due(s, &resume) != 0) {
            ret = run(s, resume);
            settle(s);
            pthread_mutex_lock(&s->mu);
            int cancel = s->cancel;
            s->running = 0;
            pthread_mutex_unlock(&s->mu);
            if (ret == 1 && cancel && !stopping(s))
                finish_cancel(s);
            else if (ret < 0) {
                log_msg(LOG_LVL_ERROR, "full sync: failed; will try again", "target", s->tgt->name, "error", cio_strerror(ret),
                        NULL);
                if (nap(s, BACKOFF_CAP_MS))
                    break;
            }
            next_probe = 0;
            continue;
        }
        uint64_t now = (uint64_t)clock_mono_ms();
        if (now >= next_probe) {
            /* the target's store identity, when no batch reply told it lately */
            buf_t reply;
            synclist_dec_t d;
            s->probing = 1;
            curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, PROBE_TIMEOUT_MS);
            if (get_listing(s, NULL, NULL, 0, &reply, &d, 1) == 0)
                buf_free(&reply);
            curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
            s->probing = 0;
            next_probe = (uint64_t)clock_mono_ms() + PROBE_MS;
            continue;
        }
        if (nap(s, next_probe - now))
            break;
    }
    return NULL;
}

/* ---- the API ---- */

void sync_note_store(sync_t *s, const char *store)
{
    if (s == NULL || store == NULL || store[0] == '\0')
        return;
    pthread_mutex_lock(&s->mu);
    int changed = strcmp(s->peer_store, store) != 0;
    if (changed)
        snprintf(s->peer_store, sizeof(s->peer_store), "%s", store);
    pthread_mutex_unlock(&s->mu);
    if (changed)
        wake(s);
}

/* One line on the running sync: since when, why, and where it is. Under mu. */
static void describe(const sync_t *s, char *msg, size_t cap)
{
    char ts[DATE_ISO8601_LEN + 1] = "";
    if (s->shown.started_ms > 0)
        date_iso8601((int64_t)s->shown.started_ms, ts);
    snprintf(msg, cap,
             "a full sync of target %s is running (reason: %s%s, bucket: %s, started %s, at bucket '%s' key '%.*s', %" PRIu64
             " objects scanned, %" PRIu64 " shipped); repld --cancel --target %s stops it",
             s->tgt->name, syncrec_reason_name(s->shown.reason), (s->shown.flags & SYNCREC_F_DRY_RUN) ? ", dry run" : "",
             s->shown.only_bucket[0] ? s->shown.only_bucket : "all", ts[0] ? ts : "just now", s->shown.bucket,
             (int)(s->shown.key_len > 200 ? 200 : s->shown.key_len), s->shown.key, s->shown.scanned, s->shown.shipped,
             s->tgt->name);
}

int sync_request(sync_t *s, const sync_opts_t *o, char *msg, size_t cap)
{
    const char *bucket = o->bucket;
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    if (s->running || s->requested) {
        if (s->running)
            describe(s, msg, cap);
        else
            snprintf(msg, cap, "a full sync of target %s was requested and is about to start; repld --cancel --target %s drops it",
                     s->tgt->name, s->tgt->name);
        ret = CIO_EAGAIN;
    } else {
        s->requested = 1;
        snprintf(s->req_bucket, sizeof(s->req_bucket), "%s", bucket != NULL ? bucket : "");
        s->req_flags = (uint8_t)((o->dry_run ? SYNCREC_F_DRY_RUN : 0) | (o->delete_extra ? SYNCREC_F_DELETE_EXTRA : 0));
        s->req_rate = o->rate;
        snprintf(msg, cap, "full sync of target %s started (bucket: %s%s%s); repld --status shows its progress", s->tgt->name,
                 bucket != NULL && *bucket ? bucket : "all", o->dry_run ? ", dry run" : "",
                 o->delete_extra ? ", deleting what only the target holds" : "");
    }
    pthread_mutex_unlock(&s->mu);
    if (ret == 0)
        wake(s);
    return ret;
}

int sync_cancel(sync_t *s, char *msg, size_t cap)
{
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    if (s->running) {
        s->cancel = 1;
        snprintf(msg, cap, "cancelling the full sync of target %s at its next batch", s->tgt->name);
    } else if (s->requested) {
        s->requested = 0;
        snprintf(msg, cap, "the requested full sync of target %s will not start", s->tgt->name);
    } else {
        snprintf(msg, cap, "no full sync of target %s is running", s->tgt->name);
        ret = CIO_ENOTFOUND;
    }
    pthread_mutex_unlock(&s->mu);
    if (ret == 0)
        wake(s);
    return ret;
}

int sync_report(sync_t *s, buf_t *out)
{
    pthread_mutex_lock(&s->mu);
    const syncrec_t *r = &s->shown;
    buf_puts(out, "{\"target\":");
    buf_json_str(out, s->tgt->name, strlen(s->tgt->name));
    buf_printf(out, ",\"generation\":%" PRIu64 ",\"requested\":%s", s->generation, s->requested ? "true" : "false");
    buf_printf(out, ",\"phase\":\"%s\",\"running\":%s,\"dry_run\":%s,\"delete_extra\":%s,\"rate_limit\":%" PRIu64,
               syncrec_phase_name(r->phase), s->running ? "true" : "false", (r->flags & SYNCREC_F_DRY_RUN) ? "true" : "false",
               (r->flags & SYNCREC_F_DELETE_EXTRA) ? "true" : "false", r->rate_limit);
    buf_puts(out, ",\"buckets\":[");
    for (size_t i = 0; i < s->report.nb; i++) {
        const sync_report_bucket_t *b = &s->report.b[i];
        buf_puts(out, i > 0 ? ",{\"name\":" : "{\"name\":");
        buf_json_str(out, b->name, strlen(b->name));
        buf_printf(out,
                   ",\"target_only\":%s,\"put\":%" PRIu64 ",\"put_bytes\":%" PRIu64 ",\"delete\":%" PRIu64
                   ",\"delete_extra\":%" PRIu64 ",\"delete_extra_bytes\":%" PRIu64 ",\"extra\":%" PRIu64 ",\"extra_bytes\":%" PRIu64
                   "}",
                   b->target_only ? "true" : "false", b->put, b->put_bytes, b->del, b->del_extra, b->del_extra_bytes, b->extra,
                   b->extra_bytes);
    }
    buf_printf(out, "],\"keys_total\":%" PRIu64 ",\"keys_listed\":%" PRIu64 ",\"keys\":[", s->report.nkeys, s->report.nlisted);
    if (s->report.keys.len > 0)
        buf_append(out, s->report.keys.data, s->report.keys.len);
    int ret = buf_puts(out, "]}\n");
    pthread_mutex_unlock(&s->mu);
    return ret != 0 ? ret : out->err;
}

static void sync_free(sync_t *s)
{
    buf_free(&s->report.keys);
    free(s->report.b);
    if (s->curl != NULL)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    if (s->store_fd >= 0)
        close(s->store_fd);
    syncsend_stop(s->send);
    syncsend_batch_free(s->cur);
    free(s->cur);
    while (s->spare != NULL) {
        syncsend_batch_t *b = s->spare;
        s->spare = b->next;
        syncsend_batch_free(b);
        free(b);
    }
    free(s->scratch);
    msgpack_sbuffer_destroy(&s->recbuf);
    free(s->base);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sync_start(sync_t **out, const conf_t *conf, const conf_target_t *tgt, meta_t *meta, int stop_fd, bwlimit_t *bw, int bw_slot)
{
    curlopt_t shared = {.agent = "comio-repld",
                        .ca_file = conf->ca_file,
                        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                        .timeout_ms = REQUEST_TIMEOUT_MS,
                        .dead_link_s = DEAD_LINK_S};
    char auth[sizeof("Authorization: Bearer ") + LIMIT_TOKEN_MAX];
    struct curl_slist *l;
    sync_t *s = calloc(1, sizeof(*s));
    size_t ulen;
    int ret = CIO_ENOMEM;

    if (s == NULL)
        return CIO_ENOMEM;
    s->conf = conf;
    s->tgt = tgt;
    s->meta = meta;
    s->stop_fd = stop_fd;
    s->store_fd = -1;
    s->bw = bw;
    s->bw_slot = bw_slot;
    msgpack_sbuffer_init(&s->recbuf);
    pthread_mutex_init(&s->mu, NULL);
    reachable(s);
    if ((s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot create an event descriptor", "error", strerror(errno), NULL);
        ret = CIO_ESYS;
        goto fail;
    }
    if ((s->store_fd = open(conf->storage_path, O_RDONLY | O_CLOEXEC)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the data store", "path", conf->storage_path, "error", strerror(errno), NULL);
        ret = CIO_ESYS;
        goto fail;
    }
    ulen = strlen(tgt->url);
    if (ulen > 0 && tgt->url[ulen - 1] == '/')
        ulen--; /* tolerate a trailing slash in the target's url */
    if ((s->base = strndup(tgt->url, ulen)) == NULL)
        goto fail;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tgt->token != NULL ? tgt->token : "");
    if ((l = curl_slist_append(NULL, auth)) == NULL)
        goto fail;
    s->headers = l;
    if ((l = curl_slist_append(s->headers, "Content-Type: application/msgpack")) == NULL ||
        (l = curl_slist_append(s->headers, "Expect:")) == NULL) /* no 100-continue round trip */
        goto fail;
    if ((s->cur = calloc(1, sizeof(*s->cur))) == NULL || (s->curl = curl_easy_init()) == NULL)
        goto fail;
    if ((ret = curlopt_apply(s->curl, &shared)) != 0)
        goto fail;
    curl_easy_setopt(s->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFODATA, s);
    if ((errno = pthread_create(&s->tid, NULL, sync_main, s)) != 0) {
        log_msg(LOG_LVL_ERROR, "pthread_create failed", "error", strerror(errno), NULL);
        ret = CIO_ESYS;
        goto fail;
    }
    s->started = 1;
    *out = s;
    return 0;
fail:
    sync_free(s);
    return ret;
}

void sync_stop(sync_t *s)
{
    if (s == NULL)
        return;
    if (s->started)
        pthread_join(s->tid, NULL);
    sync_free(s);
}
