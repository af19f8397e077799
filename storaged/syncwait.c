/* syncwait.c - writes held for sync targets' acknowledgements: the inotify watch, the timers, the degraded state. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include "common/ackfile.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/replog.h"
#include "storaged/syncwait.h"

#define RECHECK_MS 50  /* after the shortest sync_timeout, how often a write waiting for a longer one is checked again */
#define CATCHUP_MS 100 /* a degraded target is back once it acknowledged the head of at most about this long ago */

typedef struct {
    const conf_target_t *tgt;
    ackfile_owner_t owner;
    int degraded;            /* atomic */
    uint64_t degraded_total; /* atomic: times it entered the state */
    uint64_t catchup_seq;    /* under log_mu, while degraded: the head it must reach to be back ... */
    int64_t catchup_ms;      /* ... as sampled then */
} sync_target_t;

struct syncwait {
    const conf_t *conf;
    meta_t *meta;
    ackfile_t *acks;
    uint32_t sync_mask; /* bit i: conf->targets[i] has mode: sync */
    uint64_t min_timeout_ms;
    sync_target_t t[CONF_TARGETS_MAX];
    uint64_t head;               /* atomic */
    uint64_t completed, pending; /* atomic: writes answered so */
    pthread_mutex_t log_mu;      /* one "degraded" / "back in sync" line per transition */
};

struct syncwait_loop {
    syncwait_t *sw;
    h2o_loop_t *loop;
    int ifd;
    h2o_socket_t *sock;
    h2o_timeout_t first;   /* min_timeout_ms: every waiting write */
    h2o_timeout_t recheck; /* RECHECK_MS: writes waiting for a target with a longer timeout */
    h2o_linklist_t waiting;
    MDB_txn *rtxn; /* renewed to read the log's head (refresh_head) */
};

int syncwait_new(syncwait_t **out, const conf_t *conf, meta_t *meta, const char *dir, uint64_t store_hi, uint64_t store_lo,
                 uint64_t head)
{
    syncwait_t *sw;
    int ret;

    *out = NULL;
    if (!conf->repl_enabled)
        return 0;
    if ((sw = calloc(1, sizeof(*sw))) == NULL)
        return CIO_ENOMEM;
    sw->conf = conf;
    sw->meta = meta;
    sw->head = head;
    sw->min_timeout_ms = UINT64_MAX;
    for (size_t i = 0; i < conf->ntargets && i < CONF_TARGETS_MAX; i++) {
        const conf_target_t *t = &conf->targets[i];
        if (t->mode == NULL || strcmp(t->mode, "sync") != 0)
            continue;
        sw->sync_mask |= 1u << i;
        sw->t[i].tgt = t;
        sw->t[i].owner = (ackfile_owner_t){t->name, store_hi, store_lo, ackfile_url_hash(t->url)};
        if (t->sync_timeout_ms < sw->min_timeout_ms)
            sw->min_timeout_ms = t->sync_timeout_ms;
    }
    if (sw->sync_mask == 0) {
        free(sw);
        return 0;
    }
    if ((ret = ackfile_open(&sw->acks, dir)) != 0) {
        free(sw);
        return ret;
    }
    pthread_mutex_init(&sw->log_mu, NULL);
    *out = sw;
    return 0;
}

void syncwait_note_head(syncwait_t *sw, uint64_t seq)
{
    uint64_t cur = __atomic_load_n(&sw->head, __ATOMIC_RELAXED);
    while (seq > cur && !__atomic_compare_exchange_n(&sw->head, &cur, seq, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

uint64_t syncwait_head(syncwait_t *sw)
{
    return __atomic_load_n(&sw->head, __ATOMIC_RELAXED);
}

/* Target i's ack point, 0 when its slot cannot be trusted; *trusted says
 * which, and *nfailed (may be NULL) the failures noted in the slot. */
static uint64_t acked(syncwait_t *sw, size_t i, int *trusted, uint64_t *nfailed)
{
    uint64_t a = 0, n = 0;
    *trusted = ackfile_read(sw->acks, &sw->t[i].owner, &a, &n) == 0;
    if (nfailed != NULL)
        *nfailed = *trusted ? n : 0;
    return *trusted ? a : 0;
}

static void set_degraded(syncwait_t *sw, size_t i, int on, uint64_t ack)
{
    sync_target_t *t = &sw->t[i];
    char a[24], h[24];

    pthread_mutex_lock(&sw->log_mu);
    if (__atomic_load_n(&t->degraded, __ATOMIC_RELAXED) != on) {
        __atomic_store_n(&t->degraded, on, __ATOMIC_RELAXED);
        snprintf(a, sizeof(a), "%" PRIu64, ack);
        snprintf(h, sizeof(h), "%" PRIu64, syncwait_head(sw));
        if (on) {
            t->catchup_seq = 0;
            __atomic_add_fetch(&t->degraded_total, 1, __ATOMIC_RELAXED);
            log_msg(LOG_LVL_WARN,
                    t->tgt->sync_fallback == CONF_SYNC_FALLBACK_WAIT
                        ? "sync target degraded: a write waited sync_timeout; writes keep waiting for it"
                        : "sync target degraded: a write waited sync_timeout; writes are answered PENDING until it catches up",
                    "target", t->tgt->name, "acked_seq", a, "head_seq", h, NULL);
        } else {
            log_msg(LOG_LVL_INFO, "sync target caught up: writes wait for it again", "target", t->tgt->name, "acked_seq", a,
                    "head_seq", h, NULL);
        }
    }
    pthread_mutex_unlock(&sw->log_mu);
}

/* A degraded target returns to sync once its ack point reached the head as
 * it was at a check at most about CATCHUP_MS earlier: it keeps up with the
 * writes. (The head of now would never be reached under a steady load.) */
static void check_recovery(syncwait_t *sw, const uint64_t *ack, const int *trusted, int64_t now)
{
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++) {
        sync_target_t *t = &sw->t[i];
        int back = 0;
        if (!(sw->sync_mask & (1u << i)) || !__atomic_load_n(&t->degraded, __ATOMIC_RELAXED) || !trusted[i])
            continue;
        pthread_mutex_lock(&sw->log_mu);
        if (t->catchup_seq != 0 && ack[i] >= t->catchup_seq) {
            back = 1;
        } else if (t->catchup_seq == 0 || now - t->catchup_ms >= CATCHUP_MS) {
            t->catchup_seq = syncwait_head(sw) > 0 ? syncwait_head(sw) : 1;
            t->catchup_ms = now;
            back = ack[i] >= t->catchup_seq;
        }
        if (back)
            t->catchup_seq = 0;
        pthread_mutex_unlock(&sw->log_mu);
        if (back)
            set_degraded(sw, i, 0, ack[i]);
    }
}

/* Notes the log's head as LMDB has it now: client writes, and the events
 * applied from other sites and logged again here (a chain), which repld
 * ships and acknowledges alike. */
static void refresh_head(syncwait_loop_t *l)
{
    uint64_t head, records;
    int rc = l->rtxn == NULL ? mdb_txn_begin(l->sw->meta->env, NULL, MDB_RDONLY, &l->rtxn) : mdb_txn_renew(l->rtxn);
    if (rc != 0) {
        if (l->rtxn != NULL)
            mdb_txn_abort(l->rtxn);
        l->rtxn = NULL;
        return; /* the head noted so far stays: ack points beyond it are not trusted */
    }
    if (replog_stats(l->sw->meta, l->rtxn, &head, &records) == 0)
        syncwait_note_head(l->sw, head);
    mdb_txn_reset(l->rtxn);
}

/* Every sync target's ack point, read before the log's head: an ack point
 * beyond the head is not this log's (a file left from before the metadata
 * was restored from a backup) and is not trusted. */
static void read_all(syncwait_loop_t *l, uint64_t *ack, int *trusted, uint64_t *nfailed)
{
    syncwait_t *sw = l->sw;
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++)
        ack[i] = (sw->sync_mask & (1u << i)) ? acked(sw, i, &trusted[i], nfailed != NULL ? &nfailed[i] : NULL) : (trusted[i] = 0);
    refresh_head(l);
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++)
        if (trusted[i] && ack[i] > syncwait_head(sw)) {
            trusted[i] = 0;
            ack[i] = 0;
        }
}

/* Settles what it can of req at time now; 1 when nothing is left to wait for. */
static int settle(syncwait_t *sw, syncwait_req_t *req, const uint64_t *ack, int64_t now)
{
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++) {
        uint32_t bit = 1u << i;
        const conf_target_t *tgt = sw->t[i].tgt;
        if (!(req->waiting & bit))
            continue;
        if (ack[i] >= req->seq) {
            req->waiting &= ~bit;
            /* refused for good: the ack point passed it, the target does not hold it */
            if (sw->acks != NULL && ackfile_was_failed(sw->acks, &sw->t[i].owner, req->seq, req->fail_mark[i]))
                req->gave_up |= bit;
            continue;
        }
        int async = tgt->sync_fallback == CONF_SYNC_FALLBACK_ASYNC;
        int timed_out = now - req->start_ms >= (int64_t)tgt->sync_timeout_ms;
        if (timed_out)
            set_degraded(sw, i, 1, ack[i]);
        if (async && (timed_out || __atomic_load_n(&sw->t[i].degraded, __ATOMIC_RELAXED))) {
            req->waiting &= ~bit;
            req->gave_up |= bit;
        }
    }
    return req->waiting == 0;
}

static void count(syncwait_t *sw, int completed)
{
    __atomic_add_fetch(completed ? &sw->completed : &sw->pending, 1, __ATOMIC_RELAXED);
}

static void finish(syncwait_req_t *req)
{
    int completed = req->gave_up == 0;
    syncwait_cancel(req);
    count(req->loop->sw, completed);
    req->done(req, completed);
}

/* Every waiting write of loop l, in the order they came (seq order, nearly). */
static void run_waiting(syncwait_loop_t *l)
{
    uint64_t ack[CONF_TARGETS_MAX];
    int trusted[CONF_TARGETS_MAX];
    int64_t now = clock_mono_ms();

    read_all(l, ack, trusted, NULL);
    check_recovery(l->sw, ack, trusted, now);
    for (h2o_linklist_t *n = l->waiting.next; n != &l->waiting;) {
        syncwait_req_t *req = H2O_STRUCT_FROM_MEMBER(syncwait_req_t, link, n);
        n = n->next;
        if (settle(l->sw, req, ack, now))
            finish(req);
    }
}

static void on_file(h2o_socket_t *sock, const char *err)
{
    syncwait_loop_t *l = sock->data;
    char buf[4096];
    while (read(l->ifd, buf, sizeof(buf)) > 0)
        ;
    run_waiting(l);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    syncwait_req_t *req = H2O_STRUCT_FROM_MEMBER(syncwait_req_t, timer, entry);
    syncwait_loop_t *l = req->loop;
    uint64_t ack[CONF_TARGETS_MAX];
    int trusted[CONF_TARGETS_MAX];

    read_all(l, ack, trusted, NULL);
    if (settle(l->sw, req, ack, clock_mono_ms())) {
        finish(req);
        return;
    }
    /* a target with a longer timeout, or sync_fallback: wait with a timeout not yet reached */
    int left = 0;
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++)
        if ((req->waiting & (1u << i)) && clock_mono_ms() - req->start_ms < (int64_t)l->sw->t[i].tgt->sync_timeout_ms)
            left = 1;
    if (left)
        h2o_timeout_link(l->loop, &l->recheck, &req->timer);
}

syncwait_loop_t *syncwait_loop_new(syncwait_t *sw, h2o_loop_t *loop)
{
    syncwait_loop_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->sw = sw;
    l->loop = loop;
    h2o_linklist_init_anchor(&l->waiting);
    if ((l->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0 ||
        inotify_add_watch(l->ifd, ackfile_path(sw->acks), IN_MODIFY) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot watch the acknowledgement file: writes to sync targets are answered PENDING", "path",
                ackfile_path(sw->acks), "error", strerror(errno), NULL);
        if (l->ifd >= 0)
            close(l->ifd);
        free(l);
        return NULL;
    }
    h2o_timeout_init(loop, &l->first, sw->min_timeout_ms);
    h2o_timeout_init(loop, &l->recheck, RECHECK_MS);
    l->sock = h2o_evloop_socket_create(loop, l->ifd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_socket_read_start(l->sock, on_file);
    return l;
}

int syncwait_add(syncwait_loop_t *l, syncwait_req_t *req, uint64_t seq, syncwait_done_cb done, int *completed)
{
    uint64_t ack[CONF_TARGETS_MAX];
    int trusted[CONF_TARGETS_MAX];

    memset(req, 0, sizeof(*req)); /* unlinked, as h2o's lists and timeouts expect */
    if (l == NULL) {
        *completed = 0;
        return 0;
    }
    req->loop = l;
    req->done = done;
    req->seq = seq;
    req->start_ms = clock_mono_ms();
    req->timer.cb = on_timer;
    req->waiting = l->sw->sync_mask;
    read_all(l, ack, trusted, req->fail_mark);
    check_recovery(l->sw, ack, trusted, req->start_ms);
    if (settle(l->sw, req, ack, req->start_ms)) {
        *completed = req->gave_up == 0;
        count(l->sw, *completed);
        return 0;
    }
    h2o_linklist_insert(&l->waiting, &req->link);
    h2o_timeout_link(l->loop, &l->first, &req->timer);
    return 1;
}

void syncwait_cancel(syncwait_req_t *req)
{
    if (h2o_linklist_is_linked(&req->link))
        h2o_linklist_unlink(&req->link);
    if (h2o_timeout_is_linked(&req->timer))
        h2o_timeout_unlink(&req->timer);
}

void syncwait_status_json(syncwait_t *sw, buf_t *out)
{
    int first = 1;
    buf_puts(out, "[");
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++) {
        int trusted;
        if (!(sw->sync_mask & (1u << i)))
            continue;
        const sync_target_t *t = &sw->t[i];
        uint64_t a = acked(sw, i, &trusted, NULL);
        trusted = trusted && a <= syncwait_head(sw); /* as read_all judges it */
        buf_puts(out, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        buf_json_str(out, t->tgt->name, strlen(t->tgt->name));
        buf_printf(out, ",\"mode\":\"sync\",\"state\":\"%s\",\"fallback\":\"%s\",\"timeout_ms\":%" PRIu64 ",\"acked_seq\":",
                   __atomic_load_n(&t->degraded, __ATOMIC_RELAXED) ? "degraded" : "sync",
                   t->tgt->sync_fallback == CONF_SYNC_FALLBACK_WAIT ? "wait" : "async", t->tgt->sync_timeout_ms);
        if (trusted)
            buf_printf(out, "%" PRIu64, a);
        else
            buf_puts(out, "null");
        buf_printf(out, ",\"head_seq\":%" PRIu64 ",\"degraded_total\":%" PRIu64 "}", syncwait_head(sw),
                   __atomic_load_n(&t->degraded_total, __ATOMIC_RELAXED));
    }
    buf_puts(out, "]");
}

void syncwait_metrics(syncwait_t *sw, buf_t *out)
{
    buf_puts(out, "# HELP comio_replication_sync_degraded 1 while the sync target is degraded (its fallback in force).\n"
                  "# TYPE comio_replication_sync_degraded gauge\n");
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++)
        if (sw->sync_mask & (1u << i))
            buf_printf(out, "comio_replication_sync_degraded{target=\"%s\"} %d\n", sw->t[i].tgt->name,
                       __atomic_load_n(&sw->t[i].degraded, __ATOMIC_RELAXED));
    buf_puts(out, "# HELP comio_replication_sync_degraded_total Times the sync target became degraded, since storaged started.\n"
                  "# TYPE comio_replication_sync_degraded_total counter\n");
    for (size_t i = 0; i < CONF_TARGETS_MAX; i++)
        if (sw->sync_mask & (1u << i))
            buf_printf(out, "comio_replication_sync_degraded_total{target=\"%s\"} %" PRIu64 "\n", sw->t[i].tgt->name,
                       __atomic_load_n(&sw->t[i].degraded_total, __ATOMIC_RELAXED));
    buf_printf(out,
               "# HELP comio_replication_sync_writes_total Writes answered on a site with sync targets, by X-Comio-Replication.\n"
               "# TYPE comio_replication_sync_writes_total counter\n"
               "comio_replication_sync_writes_total{result=\"completed\"} %" PRIu64 "\n"
               "comio_replication_sync_writes_total{result=\"pending\"} %" PRIu64 "\n",
               __atomic_load_n(&sw->completed, __ATOMIC_RELAXED), __atomic_load_n(&sw->pending, __ATOMIC_RELAXED));
}
