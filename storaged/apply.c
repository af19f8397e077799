/* apply.c - a replication batch decoded into a COMMIT_APPLY job, and its reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "storaged/apply.h"
#include "proto/batch.h"
#include "proto/presign.h"
#include "common/bucket.h"

/* Bytes of the job's arena an event needs: its strings, each NUL-terminated. */
static size_t event_bytes(const batch_event_t *ev)
{
    return ev->rec.bucket_len + 1 + ev->rec.key_len + 1 + ev->rec.content_type_len + 1 + ev->rec.meta_len + 1 + ev->rec.origin_len +
           1 + ev->rec.parent_origin_len + 1 + (ev->url != NULL ? ev->url_len + 1 : 0);
}

static const char *arena_copy(char **arena, const char *s, size_t len)
{
    char *p = *arena;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    *arena += len + 1;
    return p;
}

static void refuse(commit_item_t *it, const char *msg)
{
    it->final = 1;
    it->result = BATCH_PERMANENT;
    it->status = 400;
    snprintf(it->error, sizeof(it->error), "%s", msg);
}

/* What a replica can never apply, whatever its state. */
static void check_event(commit_item_t *it, const batch_event_t *ev)
{
    if (it->version == 0)
        refuse(it, "version 0: versions start at 1");
    else if (!presign_origin_valid(it->origin, it->origin_len) ||
             (it->parent_origin_len > 0 && !presign_origin_valid(it->parent_origin, it->parent_origin_len)))
        refuse(it, "the origin is not a site id (1 to 64 of A-Z a-z 0-9 . _ -)"); /* it goes into headers and URLs */
    else if (!bucket_name_valid(it->bucket, it->blen) || bucket_name_reserved(it->bucket, it->blen))
        refuse(it, "invalid bucket name");
    else if (it->op != LOGREC_PURGE && memchr(it->key, '\0', it->klen) != NULL)
        refuse(it, "the key contains a NUL byte");
    else if (ev->url != NULL && (memchr(ev->url, '\0', ev->url_len) != NULL ||
                                 (strncasecmp(it->url, "http://", 7) != 0 && strncasecmp(it->url, "https://", 8) != 0)))
        refuse(it, "the URL is not an http:// or https:// URL");
}

int apply_decode(commit_job_t *job, const char *buf, size_t len, char *err, size_t errlen)
{
    batch_dec_t d;
    batch_event_t ev;
    commit_item_t *items = NULL;
    char *arena, *at;
    size_t bytes = 0, n = 0;
    int ret;

    job->items = NULL;
    job->nitems = 0;
    if (batch_dec_init(&d, buf, len) != 0) {
        snprintf(err, errlen, "not a replication batch (bad envelope or version)");
        return CIO_EPROTO;
    }
    /* first pass: the whole batch must decode before anything is applied */
    while ((ret = batch_dec_next(&d, &ev)) == 0) {
        bytes += event_bytes(&ev);
        n++;
    }
    if (ret != CIO_ENOTFOUND || n != d.nevents) {
        snprintf(err, errlen, "event %zu of the batch is malformed", n);
        return CIO_EPROTO;
    }
    if (n == 0)
        return 0;
    /* one block: the items, then their strings */
    /* n is at most BATCH_MAX_EVENTS and bytes at most len + 6n: no overflow */
    if ((items = calloc(1, n * sizeof(*items) + bytes)) == NULL)
        goto nomem;
    arena = (char *)(items + n);
    /* second pass: the same bytes again, now copied into the job */
    if (batch_dec_init(&d, buf, len) != 0)
        goto proto;
    at = arena;
    for (size_t i = 0; i < n; i++) {
        commit_item_t *it = &items[i];
        if (batch_dec_next(&d, &ev) != 0)
            goto proto;
        it->op = ev.rec.op;
        it->seq = ev.rec.seq;
        it->version = ev.rec.hlc;
        it->origin_len = ev.rec.origin_len;
        it->origin = arena_copy(&at, ev.rec.origin, ev.rec.origin_len);
        it->parent_version = ev.rec.parent_hlc;
        it->parent_origin_len = ev.rec.parent_origin_len;
        it->parent_origin = arena_copy(&at, ev.rec.parent_origin, ev.rec.parent_origin_len);
        it->ctx = ev.rec.ctx;
        it->blen = ev.rec.bucket_len;
        it->bucket = arena_copy(&at, ev.rec.bucket, ev.rec.bucket_len);
        it->klen = ev.rec.key_len;
        it->key = arena_copy(&at, ev.rec.key, ev.rec.key_len);
        it->ctype_len = ev.rec.content_type_len;
        it->ctype = arena_copy(&at, ev.rec.content_type, ev.rec.content_type_len);
        it->meta_len = ev.rec.meta_len;
        it->meta = (const uint8_t *)arena_copy(&at, (const char *)ev.rec.meta, ev.rec.meta_len);
        it->size = ev.rec.size;
        memcpy(it->etag, ev.rec.etag, 16);
        it->mpu_parts = ev.rec.mpu_parts;
        memcpy(it->mpu_md5, ev.rec.mpu_md5, 16);
        it->mtime_ms = ev.rec.mtime_ms;
        if (ev.url != NULL)
            it->url = arena_copy(&at, ev.url, ev.url_len);
        else
            it->data = ev.data;
        check_event(it, &ev);
    }
    job->items = items;
    job->nitems = n;
    return 0;
proto:
    snprintf(err, errlen, "the batch changed between two decodings");
    free(items);
    return CIO_EPROTO;
nomem:
    snprintf(err, errlen, "out of memory for a batch of %zu events", n);
    return CIO_ENOMEM;
}

int apply_reply(const commit_job_t *job, const char *site, msgpack_sbuffer *sb)
{
    return apply_reply_store(job, site, NULL, sb);
}

int apply_reply_store(const commit_job_t *job, const char *site, const char *store, msgpack_sbuffer *sb)
{
    batch_res_t *res = NULL;
    int ret;

    if (job->nitems > 0 && (res = calloc(job->nitems, sizeof(*res))) == NULL)
        return CIO_ENOMEM;
    for (size_t i = 0; i < job->nitems; i++) {
        const commit_item_t *it = &job->items[i];
        res[i].seq = it->seq;
        if (it->final && (job->result == 0 || it->result == BATCH_PERMANENT)) {
            res[i].result = it->result;
            res[i].status = it->status;
            res[i].error = it->error;
        } else {
            /* the job failed as a whole: nothing of it was committed */
            res[i].result = BATCH_RETRY;
            res[i].status = job->result == CIO_ENOSPC || job->result == CIO_EMAPFULL ? 507 : 500;
            res[i].error = cio_strerror(job->result != 0 ? job->result : CIO_EAGAIN);
        }
        res[i].error_len = strlen(res[i].error);
    }
    ret = batch_reply_encode_store(res, job->nitems, site, strlen(site), store != NULL && *store ? store : NULL,
                                   store != NULL ? strlen(store) : 0, sb);
    free(res);
    return ret;
}

void apply_free(commit_job_t *job)
{
    free(job->items); /* the strings live in the same block */
    job->items = NULL;
    job->nitems = 0;
}
