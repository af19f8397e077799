/* syncsend.c - a full sync's sender threads: each posts one whole batch until it is done. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/curlopt.h"
#include "common/limits.h"
#include "common/log.h"
#include "repld/syncsend.h"

#define BACKOFF_CAP_MS 60000
#define REPLY_MAX (64u << 20)
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 600000L /* the replica may fetch large objects before it answers */
#define DEAD_LINK_S 20L

typedef struct {
    struct syncsend *ss;
    pthread_t tid;
    int started;
    CURL *curl;
    batch_enc_t enc;
    int enc_ready;
    batch_res_t *res; /* results of the batch being posted */
    size_t res_cap;
} sender_t;

struct syncsend {
    const conf_t *conf;
    const conf_target_t *tgt;
    char *url;
    struct curl_slist *headers;
    int stop_fd;
    bwlimit_t *bw; /* NULL: no pacing (syncsend_set_bwlimit) */
    int bw_slot;
    int done_fd;  /* eventfd: a batch finished */
    int abort_fd; /* eventfd: readable while aborted (a back-off's poll sees it) */
    int aborted;  /* atomic: read by libcurl's progress callback */
    unsigned n;
    sender_t *s;

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    int stopping;
    syncsend_batch_t *todo_head, **todo_tail; /* submitted, not yet taken by a sender */
    syncsend_batch_t *oldest, *newest;        /* submitted, not taken back, linked through `newer` */
    unsigned inflight;                        /* submitted and not taken back */
    uint64_t backoff_ms;                      /* shared by the senders: one outage, one back-off */
    int outage_logged;
};

unsigned syncsend_depth(const conf_target_t *tgt)
{
    /* The target's `workers` is how many batches the operator lets this site
     * keep in flight to it; a sync beside the log's shipping takes no more.
     * Four are enough to overlap reading here with applying there (five
     * measured no faster), and each more is memory held here (a batch's
     * encoded body) and events shipped again after a crash. */
    unsigned d = tgt->workers < SYNCSEND_DEPTH_MAX ? tgt->workers : SYNCSEND_DEPTH_MAX;
    return d > 0 ? d : 1;
}

/* ---- batches ---- */

int syncsend_batch_add(syncsend_batch_t *b, const char *site, size_t reserve, const void *rec, size_t rec_len, int has_data,
                       const void *data, size_t data_len, const char *url, uint64_t seq, uint64_t bytes)
{
    int ret;
    syncsend_ev_t *n = buf_grow_array(b->ev, &b->cap, b->nev, sizeof(*n), 64);
    if (n == NULL)
        return CIO_ENOMEM;
    b->ev = n;
    if (rec != NULL) {
        if (!b->enc_init) {
            if ((ret = batch_enc_init(&b->enc, site, strlen(site))) != 0)
                return ret;
            b->enc_init = 1;
            b->enc_open = 1;
            if ((ret = batch_enc_reserve(&b->enc, reserve)) != 0)
                return ret; /* (the body is started: the next add tries again) */
        } else if (!b->enc_open) {
            if ((ret = batch_enc_restart(&b->enc, site, strlen(site))) != 0)
                return ret;
            b->enc_open = 1;
        }
        if ((ret = batch_enc_add(&b->enc, rec, rec_len, has_data, has_data ? (data != NULL ? data : "") : NULL, data_len, url,
                                 url != NULL ? strlen(url) : 0)) != 0)
            return ret;
    }
    syncsend_ev_t *e = &b->ev[b->nev++];
    memset(e, 0, sizeof(*e));
    e->seq = seq;
    e->bytes = bytes;
    b->bytes += (has_data ? data_len : 0) + rec_len;
    b->obj += bytes;
    return 0;
}

void syncsend_batch_clear(syncsend_batch_t *b)
{
    b->nev = 0;
    b->bytes = 0;
    b->obj = 0;
    b->enc_open = 0;
    if (b->enc_init && batch_enc_peak(&b->enc) > SYNCSEND_KEEP_BYTES) {
        batch_enc_free(&b->enc);
        b->enc_init = 0;
    }
    b->ret = 0;
    b->shipped = b->shipped_bytes = b->deleted = b->deleted_bytes = b->failed = b->failed_bytes = 0;
    b->error[0] = '\0';
    b->store[0] = '\0';
    b->next = NULL;
}

void syncsend_batch_free(syncsend_batch_t *b)
{
    if (b == NULL)
        return;
    syncsend_batch_clear(b);
    if (b->enc_init)
        batch_enc_free(&b->enc);
    b->enc_init = 0;
    free(b->ev);
    b->ev = NULL;
    b->cap = 0;
}

/* ---- waiting ---- */

static int stopping(const struct syncsend *ss)
{
    struct pollfd p = {ss->stop_fd, POLLIN, 0};
    return __atomic_load_n(&ss->aborted, __ATOMIC_RELAXED) || poll(&p, 1, 0) > 0;
}

/* Sleeps up to ms. Returns 1 when repld stops or the sync is aborted. */
static int nap(struct syncsend *ss, uint64_t ms)
{
    struct pollfd p[2] = {{ss->stop_fd, POLLIN, 0}, {ss->abort_fd, POLLIN, 0}};
    int n = poll(p, 2, (int)(ms > 3600000 ? 3600000 : ms));
    return n > 0 || stopping(ss);
}

static void set_error(syncsend_batch_t *b, const char *err)
{
    snprintf(b->error, sizeof(b->error), "%.*s", (int)sizeof(b->error) - 1, err);
}

/* Backs off after a failed post, the back-off shared by all senders
 * (doubling up to BACKOFF_CAP_MS), logging the first failure of an outage.
 * Returns 1 when repld stops or the sync is aborted meanwhile. */
static int back_off(struct syncsend *ss, syncsend_batch_t *b, const char *err)
{
    char delay[32];
    uint64_t ms;
    int log_it;

    set_error(b, err);
    pthread_mutex_lock(&ss->mu);
    ms = ss->backoff_ms;
    log_it = !ss->outage_logged || ms >= BACKOFF_CAP_MS;
    ss->outage_logged = 1;
    ss->backoff_ms = ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : ms * 2;
    pthread_mutex_unlock(&ss->mu);
    snprintf(delay, sizeof(delay), "%.1fs", ms / 1000.0);
    if (log_it)
        log_msg(LOG_LVL_WARN, "full sync: target unavailable; will try again", "target", ss->tgt->name, "request", "batch", "error",
                err, "retry_in", delay, NULL);
    return nap(ss, ms);
}

static uint64_t first_backoff(const conf_target_t *tgt)
{
    return tgt->retry_delay_ms > 0 && tgt->retry_delay_ms < 1000 ? tgt->retry_delay_ms : 1000;
}

static void reachable(struct syncsend *ss)
{
    pthread_mutex_lock(&ss->mu);
    ss->outage_logged = 0;
    ss->backoff_ms = first_backoff(ss->tgt);
    pthread_mutex_unlock(&ss->mu);
}

/* ---- posting ---- */

void syncsend_set_bwlimit(syncsend_t *ss, bwlimit_t *bw, int slot)
{
    ss->bw = bw;
    ss->bw_slot = slot;
}

/* Cuts a transfer once repld stops or the sync is aborted: none waits for its timeout. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return stopping(arg);
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

static void count_failed(syncsend_batch_t *b, syncsend_ev_t *e)
{
    e->done = 1;
    b->failed++;
    b->failed_bytes += e->bytes;
}

/* Takes a 200 reply's results for the events posted (order[0..n)): counts
 * what is done, and *retry when an event is to be posted again. Returns 0,
 * or CIO_EPROTO (err says why) when the reply does not answer these events. */
static int take_results(sender_t *w, syncsend_batch_t *b, const buf_t *reply, syncsend_ev_t **order, size_t n, int *retry,
                        char *err, size_t errlen)
{
    struct syncsend *ss = w->ss;
    const char *store = NULL;
    size_t store_len = 0;

    *retry = 0;
    if (batch_reply_decode_store(reply->data != NULL ? reply->data : "", reply->len, w->res, n, NULL, NULL, &store, &store_len) !=
        0) {
        snprintf(err, errlen, "remote returned a malformed reply (%zu bytes)", reply->len);
        return CIO_EPROTO;
    }
    for (size_t i = 0; i < n; i++)
        if (w->res[i].seq != order[i]->seq) {
            snprintf(err, errlen, "remote answered for other events than it was sent");
            return CIO_EPROTO;
        }
    if (store_len > 0)
        snprintf(b->store, sizeof(b->store), "%.*s", (int)store_len, store);
    for (size_t i = 0; i < n; i++) {
        syncsend_ev_t *e = order[i];
        const batch_res_t *r = &w->res[i];
        switch (r->result) {
        case BATCH_APPLIED:
        case BATCH_SKIPPED:
            e->done = 1;
            b->shipped++;
            b->shipped_bytes += e->bytes;
            if (e->extra) {
                b->deleted++;
                b->deleted_bytes += e->extra_size;
            }
            break;
        case BATCH_RETRY:
            /* an outage of the fetch from this site spends no attempt, as in ship.c */
            if (!(r->status >= 502 && r->status <= 504) && ++e->attempts > ss->tgt->retry_attempts)
                count_failed(b, e);
            else
                *retry = 1;
            snprintf(b->error, sizeof(b->error), "remote returned %u: %.*s", r->status, (int)r->error_len, r->error);
            break;
        default:
            count_failed(b, e);
            snprintf(b->error, sizeof(b->error), "remote returned %u: %.*s", r->status, (int)r->error_len, r->error);
            log_msg(LOG_LVL_ERROR, "full sync: the target refused an event for good", "target", ss->tgt->name, "error", b->error,
                    NULL);
        }
    }
    return 0;
}

/* Encodes the events of b not done yet into w's encoder, from b's body,
 * for a post after some events were answered: *body and *len then hold it
 * (owned by w->enc until its next use). Returns 0, CIO_EPROTO when b's body
 * does not decode into b's events (never, unless memory was corrupted), or
 * the encoder's error. */
static int reencode(sender_t *w, syncsend_batch_t *b, const char **body, size_t *len)
{
    const char *site = w->ss->conf->site_id, *all;
    size_t all_len;
    batch_dec_t d;
    batch_event_t ev;
    int ret;

    if (!w->enc_ready) {
        if ((ret = batch_enc_init(&w->enc, site, strlen(site))) != 0)
            return ret;
        w->enc_ready = 1;
    } else if ((ret = batch_enc_restart(&w->enc, site, strlen(site))) != 0) {
        return ret;
    }
    if ((ret = batch_enc_finish(&b->enc, &all, &all_len)) != 0 || (ret = batch_dec_init(&d, all, all_len)) != 0)
        return ret;
    if (d.nevents != b->nev)
        return CIO_EPROTO;
    for (size_t i = 0; i < b->nev; i++) {
        if ((ret = batch_dec_next(&d, &ev)) != 0)
            return ret == CIO_ENOTFOUND ? CIO_EPROTO : ret;
        if (ev.rec.seq != b->ev[i].seq)
            return CIO_EPROTO;
        if (!b->ev[i].done &&
            (ret = batch_enc_add(&w->enc, ev.rec_raw, ev.rec_raw_len, ev.has_data, ev.data, ev.data_len, ev.url, ev.url_len)) != 0)
            return ret;
    }
    return batch_enc_finish(&w->enc, body, len);
}

/* Posts batch b until every event is acknowledged or counted failed. 0, 1
 * when repld stops or the sync is aborted first, or an error. */
static int post(sender_t *w, syncsend_batch_t *b)
{
    struct syncsend *ss = w->ss;
    int ret;

    if (b->nev > w->res_cap) {
        batch_res_t *r = realloc(w->res, b->nev * sizeof(*r));
        if (r == NULL)
            return CIO_ENOMEM;
        w->res = r;
        w->res_cap = b->nev;
    }
    for (;;) {
        syncsend_ev_t **order = NULL;
        size_t n = 0;
        const char *body;
        size_t len;
        buf_t reply;
        char err[600], errbuf[CURL_ERROR_SIZE] = "";
        long status = 0;
        CURLcode cc;
        int retry;

        if (stopping(ss))
            return 1;
        if ((order = malloc(b->nev * sizeof(*order))) == NULL)
            return CIO_ENOMEM;
        for (size_t i = 0; i < b->nev; i++)
            if (!b->ev[i].done)
                order[n++] = &b->ev[i];
        if (n == 0) {
            free(order);
            return 0;
        }
        /* the batch's own body while every event is to be posted (the first post); else the events not done, taken
         * from that body into this sender's encoder */
        ret = n == b->nev ? batch_enc_finish(&b->enc, &body, &len) : reencode(w, b, &body, &len);
        if (ret != 0) {
            free(order);
            return ret;
        }
        buf_init(&reply, REPLY_MAX);
        curlopt_body_t pb; /* the limit is read per post: SIGHUP changes it */
        curlopt_post_body(w->curl, &pb, ss->bw, ss->bw_slot, body, len);
        curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &reply);
        curl_easy_setopt(w->curl, CURLOPT_ERRORBUFFER, errbuf);
        cc = curl_easy_perform(w->curl);
        if (cc != CURLE_OK)
            snprintf(err, sizeof(err), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        else
            curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK && status == 200 && take_results(w, b, &reply, order, n, &retry, err, sizeof(err)) == 0) {
            free(order);
            buf_free(&reply);
            reachable(ss);
            if (retry && back_off(ss, b, b->error))
                return 1;
            continue;
        }
        if (cc == CURLE_OK && status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 && status != 429) {
            /* the batch is refused as a whole: its events can never apply as sent */
            excerpt(&reply, status, err, sizeof(err));
            for (size_t i = 0; i < n; i++)
                count_failed(b, order[i]);
            set_error(b, err);
            log_msg(LOG_LVL_ERROR, "full sync: the target refused a batch", "target", ss->tgt->name, "error", err, NULL);
            free(order);
            buf_free(&reply);
            continue;
        }
        if (cc == CURLE_OK && status != 200)
            excerpt(&reply, status, err, sizeof(err));
        free(order);
        buf_free(&reply);
        if (back_off(ss, b, err))
            return 1;
    }
}

static void *sender_main(void *arg)
{
    sender_t *w = arg;
    struct syncsend *ss = w->ss;
    uint64_t one = 1;

    pthread_mutex_lock(&ss->mu);
    for (;;) {
        while (ss->todo_head == NULL && !ss->stopping)
            pthread_cond_wait(&ss->cv, &ss->mu);
        if (ss->stopping)
            break;
        syncsend_batch_t *b = ss->todo_head;
        if ((ss->todo_head = b->next) == NULL)
            ss->todo_tail = &ss->todo_head;
        pthread_mutex_unlock(&ss->mu);
        b->ret = post(w, b);
        if (w->enc_ready) {
            batch_enc_free(&w->enc); /* a batch posted again in part: rare, its copy is not kept */
            w->enc_ready = 0;
        }
        pthread_mutex_lock(&ss->mu);
        b->finished = 1;
        if (write(ss->done_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_msg(LOG_LVL_WARN, "cannot wake the sync thread", "error", strerror(errno), NULL);
    }
    pthread_mutex_unlock(&ss->mu);
    return NULL;
}

/* ---- the API ---- */

void syncsend_submit(syncsend_t *ss, syncsend_batch_t *b)
{
    pthread_mutex_lock(&ss->mu);
    b->next = NULL;
    b->newer = NULL;
    b->finished = 0;
    *ss->todo_tail = b;
    ss->todo_tail = &b->next;
    if (ss->newest != NULL)
        ss->newest->newer = b;
    else
        ss->oldest = b;
    ss->newest = b;
    ss->inflight++;
    pthread_cond_signal(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
}

unsigned syncsend_inflight(syncsend_t *ss)
{
    pthread_mutex_lock(&ss->mu);
    unsigned n = ss->inflight;
    pthread_mutex_unlock(&ss->mu);
    return n;
}

int syncsend_done_fd(const syncsend_t *ss)
{
    return ss->done_fd;
}

syncsend_batch_t *syncsend_take(syncsend_t *ss)
{
    uint64_t v;
    pthread_mutex_lock(&ss->mu);
    syncsend_batch_t *b = ss->oldest;
    if (b != NULL && b->finished) {
        if ((ss->oldest = b->newer) == NULL)
            ss->newest = NULL;
        b->newer = NULL;
        ss->inflight--;
    } else {
        /* (a sender marks a batch finished and writes under mu: a batch that finishes after this read wakes again) */
        b = NULL;
        if (read(ss->done_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            log_msg(LOG_LVL_WARN, "cannot read the sync's completion descriptor", "error", strerror(errno), NULL);
    }
    pthread_mutex_unlock(&ss->mu);
    return b;
}

void syncsend_abort(syncsend_t *ss)
{
    uint64_t one = 1;
    if (__atomic_exchange_n(&ss->aborted, 1, __ATOMIC_RELAXED) || ss->abort_fd < 0)
        return;
    if (write(ss->abort_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_msg(LOG_LVL_WARN, "cannot abort the sync's senders", "error", strerror(errno), NULL);
}

void syncsend_resume(syncsend_t *ss)
{
    uint64_t v;
    if (!__atomic_load_n(&ss->aborted, __ATOMIC_RELAXED))
        return;
    if (read(ss->abort_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_msg(LOG_LVL_WARN, "cannot read the sync's abort descriptor", "error", strerror(errno), NULL);
    __atomic_store_n(&ss->aborted, 0, __ATOMIC_RELAXED);
    reachable(ss);
}

void syncsend_stop(syncsend_t *ss)
{
    if (ss == NULL)
        return;
    syncsend_abort(ss);
    pthread_mutex_lock(&ss->mu);
    ss->stopping = 1;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    for (unsigned i = 0; i < ss->n; i++) {
        sender_t *w = &ss->s[i];
        if (w->started)
            pthread_join(w->tid, NULL);
        if (w->curl != NULL)
            curl_easy_cleanup(w->curl);
        if (w->enc_ready)
            batch_enc_free(&w->enc);
        free(w->res);
    }
    while (ss->oldest != NULL) { /* every batch not taken back, posted or not */
        syncsend_batch_t *b = ss->oldest;
        ss->oldest = b->newer;
        syncsend_batch_free(b);
        free(b);
    }
    curl_slist_free_all(ss->headers);
    if (ss->done_fd >= 0)
        close(ss->done_fd);
    if (ss->abort_fd >= 0)
        close(ss->abort_fd);
    pthread_mutex_destroy(&ss->mu);
    pthread_cond_destroy(&ss->cv);
    free(ss->s);
    free(ss->url);
    free(ss);
}

int syncsend_start(syncsend_t **out, const conf_t *conf, const conf_target_t *tgt, int stop_fd)
{
    curlopt_t shared = {.agent = "comio-repld",
                        .ca_file = conf->ca_file,
                        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                        .timeout_ms = REQUEST_TIMEOUT_MS,
                        .dead_link_s = DEAD_LINK_S};
    char auth[sizeof("Authorization: Bearer ") + LIMIT_TOKEN_MAX];
    struct syncsend *ss = calloc(1, sizeof(*ss));
    size_t ulen;
    int ret = CIO_ENOMEM;

    if (ss == NULL)
        return CIO_ENOMEM;
    ss->conf = conf;
    ss->tgt = tgt;
    ss->stop_fd = stop_fd;
    ss->bw_slot = -1;
    ss->done_fd = ss->abort_fd = -1;
    ss->n = syncsend_depth(tgt);
    ss->todo_tail = &ss->todo_head;
    ss->backoff_ms = first_backoff(tgt);
    pthread_mutex_init(&ss->mu, NULL);
    pthread_cond_init(&ss->cv, NULL);
    if ((ss->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || (ss->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot create an event descriptor", "error", strerror(errno), NULL);
        ret = CIO_ESYS;
        goto fail;
    }
    ulen = strlen(tgt->url);
    if (ulen > 0 && tgt->url[ulen - 1] == '/')
        ulen--; /* tolerate a trailing slash in the target's url */
    if ((ss->url = malloc(ulen + sizeof("/admin/replication/batch"))) == NULL || (ss->s = calloc(ss->n, sizeof(*ss->s))) == NULL)
        goto fail;
    snprintf(ss->url, ulen + sizeof("/admin/replication/batch"), "%.*s/admin/replication/batch", (int)ulen, tgt->url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tgt->token != NULL ? tgt->token : "");
    if ((ret = curlopt_header_add(&ss->headers, auth)) != 0 ||
        (ret = curlopt_header_add(&ss->headers, "Content-Type: application/msgpack")) != 0 ||
        (ret = curlopt_header_add(&ss->headers, "Expect:")) != 0) /* no 100-continue round trip */
        goto fail;
    for (unsigned i = 0; i < ss->n; i++) {
        sender_t *w = &ss->s[i];
        w->ss = ss;
        if ((w->curl = curl_easy_init()) == NULL) {
            ret = CIO_ENOMEM;
            goto fail;
        }
        if ((ret = curlopt_apply(w->curl, &shared)) != 0)
            goto fail;
        curl_easy_setopt(w->curl, CURLOPT_URL, ss->url);
        curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, ss->headers);
        curl_easy_setopt(w->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, curlopt_to_buf);
        curl_easy_setopt(w->curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(w->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(w->curl, CURLOPT_XFERINFODATA, ss);
    }
    for (unsigned i = 0; i < ss->n; i++) {
        sender_t *w = &ss->s[i];
        if ((errno = pthread_create(&w->tid, NULL, sender_main, w)) != 0) {
            log_msg(LOG_LVL_ERROR, "pthread_create failed", "error", strerror(errno), NULL);
            ret = CIO_ESYS;
            goto fail;
        }
        w->started = 1;
    }
    *out = ss;
    return 0;
fail:
    syncsend_stop(ss); /* the senders started so far have nothing to post: they leave at once */
    return ret;
}
