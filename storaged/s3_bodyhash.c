/* s3_bodyhash.c - the SHA-256 of a large signed S3 body, on a thread of its own; the request continues on its loop. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "storaged/s3_bodyhash.h"

typedef struct bodyhash {
    h2o_multithread_message_t msg;
    http_thread_t *thread;
    h2o_req_t *req;           /* NULL once the client went away (loop thread only) */
    struct bodyhash **holder; /* the request pool's pointer to us (loop thread only) */
    const uint8_t *body;      /* req->entity: read by the thread until `done` */
    size_t len;
    s3_bodyhash_cb cb;
    void *arg;
    int cancel; /* atomic: the request is being disposed of, stop at the next block */
    int done;   /* atomic: the thread reads the body no more */
    int ok;     /* written by the thread before `done` */
    uint8_t digest[32];
} bodyhash_t;

static unsigned running; /* hashing threads, all loops; atomic */

static void *hash_main(void *arg)
{
    bodyhash_t *h = arg;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = sizeof(h->digest);
    int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;

    for (size_t off = 0; ok && off < h->len; off += S3_BODYHASH_BLOCK) {
        size_t k = h->len - off < S3_BODYHASH_BLOCK ? h->len - off : S3_BODYHASH_BLOCK;
        if (__atomic_load_n(&h->cancel, __ATOMIC_ACQUIRE))
            ok = 0;
        else
            ok = EVP_DigestUpdate(c, h->body + off, k) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(c, h->digest, &n) == 1;
    EVP_MD_CTX_free(c);
    h->ok = ok;
    __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
    /* from here the body may be gone; h lives until the loop has the message */
    h2o_multithread_send_message(&h->thread->bodyhash_done, &h->msg);
    return NULL;
}

/* The request is being freed (the client went away): the body goes with it, so stop the thread reading it first. */
static void on_dispose(void *p)
{
    bodyhash_t *h = *(bodyhash_t **)p;

    if (h == NULL)
        return;
    h->req = NULL;
    h->holder = NULL;
    __atomic_store_n(&h->cancel, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&h->done, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL); /* at most one block (about a millisecond) */
    }
}

int s3_bodyhash_start(h2o_req_t *req, s3_bodyhash_cb cb, void *arg)
{
    pthread_attr_t attr;
    pthread_t tid;
    bodyhash_t *h, **holder;

    if (req->entity.base == NULL || req->entity.len < S3_BODYHASH_MIN)
        return 0;
    if (__atomic_add_fetch(&running, 1, __ATOMIC_RELAXED) > S3_BODYHASH_THREADS || (h = calloc(1, sizeof(*h))) == NULL) {
        __atomic_fetch_sub(&running, 1, __ATOMIC_RELAXED);
        return 0;
    }
    h->thread = http_req_thread(req);
    h->req = req;
    h->body = (const uint8_t *)req->entity.base;
    h->len = req->entity.len;
    h->cb = cb;
    h->arg = arg;
    holder = h2o_mem_alloc_shared(&req->pool, sizeof(*holder), on_dispose);
    *holder = h;
    h->holder = holder;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, hash_main, h) != 0) {
        pthread_attr_destroy(&attr);
        *holder = NULL;
        free(h);
        __atomic_fetch_sub(&running, 1, __ATOMIC_RELAXED);
        return 0;
    }
    pthread_attr_destroy(&attr);
    return 1;
}

void s3_bodyhash_on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        bodyhash_t *h = H2O_STRUCT_FROM_MEMBER(bodyhash_t, msg.link, link);
        h2o_linklist_unlink(link);
        __atomic_fetch_sub(&running, 1, __ATOMIC_RELAXED);
        if (h->req != NULL) {
            *h->holder = NULL;
            h->cb(h->req, h->ok ? h->digest : NULL, h->arg);
        }
        free(h);
    }
}
