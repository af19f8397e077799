/* sender.c - repld's workers: SENDER_QUEUE lanes each, one libcurl handle
 * and one batch in flight per lane. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/clock.h"
#include "common/curlopt.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/zcodec.h"
#include "repld/sender.h"

#define REPLY_MAX (64u * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 600000L /* the replica may fetch large objects before it answers */
/* A link that dies silently (no RST: a cut cable, a dropped route) must not
 * hold a batch for TCP's default 15 minutes of retransmissions: keepalive
 * probes while we wait for the answer, and TCP_USER_TIMEOUT for data or
 * probes left unacknowledged, give up on the connection within about this. */
#define DEAD_LINK_S 20L

struct worker;

/* One connection of a worker: its thread posts the worker's job in slot
 * `slot` (q[slot]) whenever there is one. */
typedef struct {
    struct worker *w;
    unsigned slot;
    pthread_t tid;
    CURL *curl;
    zcodec_t *z; /* NULL when the target's compression is none */
    buf_t zbody; /* the compressed body of the job being posted */
    int posting; /* q[slot] is being posted */
} lane_t;

typedef struct worker {
    struct sender *s;
    unsigned index;
    send_job_t *q[SENDER_QUEUE]; /* the jobs in flight, one per lane; NULL when the lane is free */
    lane_t lane[SENDER_QUEUE];
} worker_t;

struct sender {
    const conf_t *conf;
    char *url;
    struct curl_slist *headers;
    struct curl_slist *headers_zstd; /* headers plus Content-Encoding: zstd */
    const char *target;              /* the target's name, for logs (borrowed from conf) */
    int zstd;                        /* the target's compression is zstd */
    int64_t zstd_off_until_ms;       /* monotonic: batches go as is until then (a refused zstd body); atomic */
    int64_t zstd_retry_ms;           /* SENDER_ZSTD_RETRY_MS, or COMIO_REPLD_ZSTD_RETRY_MS (tests) */
    int notify_fd;
    bwlimit_t *bw; /* NULL: no pacing (sender_set_bwlimit) */
    int bw_slot;
    unsigned n;
    worker_t *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    send_job_t *done_head, **done_tail; /* finished, not yet taken, oldest first */
};

void sender_set_bwlimit(sender_t *s, bwlimit_t *bw, int slot)
{
    s->bw = bw;
    s->bw_slot = slot;
}

/* One POST of body[0..len) with `headers`; sets the job's outcome, status, error and reply. */
static void attempt(lane_t *l, send_job_t *job, const char *body, size_t len, struct curl_slist *headers)
{
    struct sender *s = l->w->s;
    CURL *curl = l->curl;
    char errbuf[CURL_ERROR_SIZE] = "";
    curlopt_body_t pb;
    CURLcode cc;

    buf_free(&job->reply);
    buf_init(&job->reply, REPLY_MAX);
    job->http_status = 0;
    job->error[0] = '\0';
    job->site[0] = '\0';
    job->payload_bytes += job->len;
    job->wire_bytes += len;
    job->store[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, s->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curlopt_post_body(curl, &pb, s->bw, s->bw_slot, body, len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curlopt_to_buf);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &job->reply);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        job->outcome = SEND_TRANSPORT;
        snprintf(job->error, sizeof(job->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &job->http_status);
    if (job->http_status == 200) {
        const char *site = NULL, *store = NULL;
        size_t site_len = 0, store_len = 0;
        if (batch_reply_decode_store(job->reply.data != NULL ? job->reply.data : "", job->reply.len, job->results, job->nevents,
                                     &site, &site_len, &store, &store_len) == 0) {
            job->outcome = SEND_OK;
            snprintf(job->site, sizeof(job->site), "%.*s", (int)site_len, site != NULL ? site : "");
            snprintf(job->store, sizeof(job->store), "%.*s", (int)store_len, store != NULL ? store : "");
            return;
        }
        job->outcome = SEND_TRANSPORT;
        snprintf(job->error, sizeof(job->error), "remote returned a malformed reply (%zu bytes)", job->reply.len);
        return;
    }
    /* error replies are JSON {"error": ...}: keep a short, printable excerpt */
    char excerpt[200];
    size_t n = job->reply.len < sizeof(excerpt) - 1 ? job->reply.len : sizeof(excerpt) - 1;
    for (size_t i = 0; i < n; i++) {
        char c = job->reply.data[i];
        excerpt[i] = c >= 0x20 && c < 0x7f ? c : ' ';
    }
    excerpt[n] = '\0';
    snprintf(job->error, sizeof(job->error), "remote returned %ld: %s", job->http_status, excerpt);
    if (job->http_status == 401 || job->http_status == 403)
        job->outcome = SEND_AUTH;
    else if (job->http_status >= 400 && job->http_status < 500 && job->http_status != 408 && job->http_status != 429)
        job->outcome = SEND_REFUSED;
    else
        job->outcome = SEND_TRANSPORT;
}

int sender_compressing(sender_t *s, int *fallback)
{
    *fallback = s->zstd && clock_mono_ms() < __atomic_load_n(&s->zstd_off_until_ms, __ATOMIC_RELAXED);
    return s->zstd && !*fallback;
}

/* The target took as is a batch it refused compressed: it does not accept
 * zstd. Batches go as is for a while; the operator is told once per window
 * (by the worker whose refusal opened it: the others find it open). */
static void zstd_refused(struct sender *s, const char *refusal)
{
    char delay[32];
    int64_t now = clock_mono_ms();
    if (__atomic_exchange_n(&s->zstd_off_until_ms, now + s->zstd_retry_ms, __ATOMIC_RELAXED) > now)
        return;
    snprintf(delay, sizeof(delay), "%llums", (unsigned long long)s->zstd_retry_ms);
    log_msg(LOG_LVL_WARN,
            "target refuses zstd-compressed batches (an older storaged?): sending them uncompressed; upgrade the target or set "
            "compression: none for it",
            "target", s->target, "error", refusal, "retry_compression_in", delay, NULL);
}

static void post(lane_t *l, send_job_t *job)
{
    struct sender *s = l->w->s;
    int fallback, compressed = 0;
    int64_t t0 = clock_mono_us();

    buf_init(&job->reply, REPLY_MAX);
    job->payload_bytes = job->wire_bytes = 0;
    if (l->z != NULL && sender_compressing(s, &fallback)) {
        int ret = zcodec_compress(l->z, job->body, job->len, &l->zbody);
        compressed = ret == 1;
        if (ret < 0) /* send it as is: compression is an optimisation */
            log_msg(LOG_LVL_WARN, "cannot compress a batch; sending it uncompressed", "target", s->target, "error",
                    cio_strerror(ret), NULL);
    }
    if (!compressed) {
        attempt(l, job, job->body, job->len, s->headers);
    } else {
        attempt(l, job, l->zbody.data, l->zbody.len, s->headers_zstd);
        if (job->http_status == 400 || job->http_status == 415) {
            /* an older storaged reads the frame as msgpack (400), a proxy may
             * refuse the encoding (415): the same batch as is tells which */
            char refusal[sizeof(job->error)];
            memcpy(refusal, job->error, sizeof(refusal));
            attempt(l, job, job->body, job->len, s->headers);
            if (job->http_status != 400 && job->http_status != 415 && job->http_status != 0)
                zstd_refused(s, refusal);
        }
        /* a large compressed body is not kept between batches */
        if (l->zbody.cap > 4u * 1024 * 1024)
            buf_free(&l->zbody);
    }
    job->rtt_us = (uint64_t)(clock_mono_us() - t0);
}

static void *lane_main(void *arg)
{
    lane_t *l = arg;
    worker_t *w = l->w;
    struct sender *s = w->s;
    uint64_t one = 1;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (w->q[l->slot] == NULL && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping)
            break;
        send_job_t *job = w->q[l->slot];
        l->posting = 1;
        pthread_mutex_unlock(&s->mu);
        post(l, job);
        pthread_mutex_lock(&s->mu);
        l->posting = 0;
        w->q[l->slot] = NULL;
        job->done_next = NULL;
        *s->done_tail = job;
        s->done_tail = &job->done_next;
        if (write(s->notify_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_msg(LOG_LVL_WARN, "cannot wake the dispatcher", "error", strerror(errno), NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Joins the first `started` lanes (worker by worker, told to stop already)
 * and frees everything s holds, s included. */
static void sender_free(struct sender *s, unsigned started)
{
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->w[i / SENDER_QUEUE].lane[i % SENDER_QUEUE].tid, NULL);
    for (unsigned i = 0; s->w != NULL && i < s->n; i++)
        for (unsigned k = 0; k < SENDER_QUEUE; k++) {
            lane_t *l = &s->w[i].lane[k];
            if (l->curl != NULL)
                curl_easy_cleanup(l->curl);
            zcodec_free(l->z);
            buf_free(&l->zbody);
        }
    curl_slist_free_all(s->headers);
    curl_slist_free_all(s->headers_zstd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->url);
    free(s->w);
    free(s);
}

int sender_start(sender_t **out, const conf_t *conf, const conf_target_t *tgt, unsigned nworkers, int notify_fd)
{
    struct sender *s = calloc(1, sizeof(*s));
    curlopt_t shared = {.agent = "comio-repld",
                        .ca_file = conf->ca_file,
                        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                        .timeout_ms = REQUEST_TIMEOUT_MS,
                        .dead_link_s = DEAD_LINK_S};
    char auth[sizeof("Authorization: Bearer ") + LIMIT_TOKEN_MAX];
    unsigned started = 0;
    size_t ulen;
    int ret = CIO_ENOMEM;

    if (s == NULL)
        return CIO_ENOMEM;
    s->conf = conf;
    s->target = tgt->name;
    s->zstd = tgt->compression == CONF_COMPRESSION_ZSTD;
    /* for tests only: a short window shows that compression is tried again after it */
    {
        const char *v = getenv("COMIO_REPLD_ZSTD_RETRY_MS");
        s->zstd_retry_ms = v != NULL && atoi(v) > 0 ? atoi(v) : (int64_t)SENDER_ZSTD_RETRY_MS;
    }
    s->notify_fd = notify_fd;
    s->n = nworkers;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->done_tail = &s->done_head;
    ulen = strlen(tgt->url);
    if ((s->url = malloc(ulen + 32)) == NULL || (s->w = calloc(nworkers, sizeof(*s->w))) == NULL)
        goto fail;
    /* tolerate a trailing slash in the target's url */
    snprintf(s->url, ulen + 32, "%.*s/admin/replication/batch", (int)(ulen > 0 && tgt->url[ulen - 1] == '/' ? ulen - 1 : ulen),
             tgt->url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tgt->token != NULL ? tgt->token : "");
    if ((ret = curlopt_header_add(&s->headers, auth)) != 0 ||
        (ret = curlopt_header_add(&s->headers, "Content-Type: application/msgpack")) != 0 ||
        (ret = curlopt_header_add(&s->headers, "Expect:")) != 0) /* no 100-continue round trip */
        goto fail;
    for (struct curl_slist *h = s->headers; h != NULL; h = h->next)
        if ((ret = curlopt_header_add(&s->headers_zstd, h->data)) != 0)
            goto fail;
    if ((ret = curlopt_header_add(&s->headers_zstd, "Content-Encoding: zstd")) != 0)
        goto fail;
    for (unsigned i = 0; i < nworkers; i++) {
        s->w[i].s = s;
        s->w[i].index = i;
        for (unsigned k = 0; k < SENDER_QUEUE; k++)
            buf_init(&s->w[i].lane[k].zbody, SIZE_MAX);
    }
    for (unsigned i = 0; i < nworkers; i++)
        for (unsigned k = 0; k < SENDER_QUEUE; k++) {
            lane_t *l = &s->w[i].lane[k];
            l->w = &s->w[i];
            l->slot = k;
            if (s->zstd && (ret = zcodec_new(&l->z, (int)tgt->compression_level)) != 0)
                goto fail;
            if ((l->curl = curl_easy_init()) == NULL) {
                ret = CIO_ENOMEM;
                goto fail;
            }
            if ((ret = curlopt_apply(l->curl, &shared)) != 0)
                goto fail;
            if ((ret = pthread_create(&l->tid, NULL, lane_main, l)) != 0) {
                log_msg(LOG_LVL_ERROR, "pthread_create failed", "error", strerror(ret), NULL);
                ret = CIO_ESYS;
                goto fail;
            }
            started++;
        }
    *out = s;
    return 0;

fail:
    /* the lanes started so far have no job: they leave at once */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sender_free(s, started);
    return ret;
}

int sender_idle(sender_t *s, int *queued)
{
    int idx = -1;
    unsigned least = SENDER_QUEUE;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->n && least > 0; i++) {
        unsigned held = 0;
        for (unsigned k = 0; k < SENDER_QUEUE; k++)
            held += s->w[i].q[k] != NULL;
        if (held < least) {
            least = held;
            idx = (int)i;
        }
    }
    *queued = idx >= 0 && least > 0;
    pthread_mutex_unlock(&s->mu);
    return idx;
}

unsigned sender_busy(sender_t *s)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned k = 0; k < SENDER_QUEUE; k++)
            n += s->w[i].q[k] != NULL;
    for (send_job_t *j = s->done_head; j != NULL; j = j->done_next)
        n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void sender_submit(sender_t *s, unsigned w, send_job_t *job)
{
    worker_t *wk = &s->w[w];
    pthread_mutex_lock(&s->mu);
    job->worker = w;
    for (unsigned i = 0; i < SENDER_QUEUE; i++)
        if (wk->q[i] == NULL) {
            wk->q[i] = job;
            break;
        }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

send_job_t *sender_take_done(sender_t *s)
{
    send_job_t *job;
    pthread_mutex_lock(&s->mu);
    if ((job = s->done_head) != NULL && (s->done_head = job->done_next) == NULL)
        s->done_tail = &s->done_head;
    pthread_mutex_unlock(&s->mu);
    return job;
}

void sender_worker_state(sender_t *s, unsigned w, int *busy, size_t *events)
{
    *busy = 0;
    *events = 0;
    pthread_mutex_lock(&s->mu);
    for (unsigned k = 0; k < SENDER_QUEUE; k++)
        if (s->w[w].q[k] != NULL) {
            *busy = 1;
            *events += s->w[w].q[k]->nevents;
        }
    pthread_mutex_unlock(&s->mu);
}

void sender_stop(sender_t *s)
{
    unsigned busy = 0;

    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned k = 0; k < SENDER_QUEUE; k++)
            busy += s->w[i].lane[k].posting;
    pthread_mutex_unlock(&s->mu);
    if (busy > 0)
        return; /* a worker still posting keeps everything until the process exits */
    sender_free(s, s->n * SENDER_QUEUE);
}
