/* fuzz_batch.c - libFuzzer target for the batch and reply decoders (proto/batch.c).
 *
 * Input: one mode byte, then
 *   mode even: a batch (what a replica receives at /admin/replication/batch);
 *   mode odd:  a 2-byte expected result count n (big-endian, taken modulo
 *              BATCH_MAX_EVENTS + 2), then a reply (what repld receives).
 * Invariants: a refused input leaves the outputs untouched; accepted events
 * and results keep the documented bounds and point into the input; and
 * decode -> encode -> decode gives the same events (results) back. */
#include "proto/batch.h"
#include "fuzz.h"

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_event(const batch_event_t *ev, const uint8_t *buf, size_t len)
{
    FUZZ_CHECK(fuzz_inside(ev->rec_raw, ev->rec_raw_len, buf, len));
    FUZZ_CHECK(ev->has_data == 0 || ev->has_data == 1);
    if (ev->has_data)
        FUZZ_CHECK(ev->data != NULL && fuzz_inside(ev->data, ev->data_len, buf, len));
    if (ev->url != NULL)
        FUZZ_CHECK(ev->url_len >= 1 && ev->url_len <= BATCH_URL_MAX && fuzz_inside(ev->url, ev->url_len, buf, len));
    if (ev->rec.op == LOGREC_PUT) {
        FUZZ_CHECK(ev->has_data != (ev->url != NULL));
        FUZZ_CHECK(!ev->has_data || ev->data_len == ev->rec.size);
    } else {
        FUZZ_CHECK(!ev->has_data && ev->url == NULL);
    }
    /* The record the event carries is the one decoded from rec_raw. */
    logrec_t again;
    FUZZ_CHECK(logrec_decode(ev->rec_raw, ev->rec_raw_len, &again) == 0 && again.seq == ev->rec.seq && again.op == ev->rec.op);
}

/* Decodes every event of a batch the envelope check accepted; returns how
 * many decoded before the end or the first malformed one (then *complete = 0). */
static size_t walk(batch_dec_t *d, const uint8_t *buf, size_t len, batch_event_t *evs, int *complete)
{
    batch_event_t ev, sentinel;
    size_t i = 0;
    int rc;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    *complete = 0;
    for (;;) {
        batch_dec_t before = *d;
        ev = sentinel;
        rc = batch_dec_next(d, &ev);
        if (rc == CIO_ENOTFOUND) {
            FUZZ_CHECK(i == d->nevents && d->index == d->nevents);
            *complete = 1;
            return i;
        }
        if (rc != 0) {
            FUZZ_CHECK(rc == CIO_EPROTO);
            FUZZ_CHECK(memcmp(&before, d, sizeof(before)) == 0 && memcmp(&ev, &sentinel, sizeof(ev)) == 0);
            return i;
        }
        FUZZ_CHECK(i < d->nevents && d->index == i + 1 && d->next <= d->len);
        check_event(&ev, buf, len);
        if (evs != NULL)
            evs[i] = ev;
        i++;
    }
}

static void fuzz_batch(const uint8_t *data, size_t size)
{
    batch_dec_t d, d2, sentinel;
    batch_event_t *evs = NULL, ev2;
    batch_enc_t enc;
    const char *out;
    size_t outlen, n;
    int complete;

    memset(&sentinel, 0x5a, sizeof(sentinel));
    d = sentinel;
    if (batch_dec_init(&d, (const char *)data, size) != 0) {
        FUZZ_CHECK(memcmp(&d, &sentinel, sizeof(d)) == 0);
        return;
    }
    FUZZ_CHECK(d.nevents <= BATCH_MAX_EVENTS && d.index == 0 && d.next <= size);
    FUZZ_CHECK(d.src_len >= 1 && d.src_len <= BATCH_SRC_MAX && fuzz_inside(d.src, d.src_len, data, size));
    /* Each event takes at least one byte, so this bounds the allocation. */
    FUZZ_CHECK(d.nevents <= size);
    if ((evs = calloc(d.nevents + 1, sizeof(*evs))) == NULL)
        abort();
    n = walk(&d, data, size, evs, &complete);
    if (!complete)
        goto out;

    /* Re-encode the whole batch: the encoder takes what the decoder gave. */
    FUZZ_CHECK(batch_enc_init(&enc, d.src, d.src_len) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(batch_enc_add(&enc, evs[i].rec_raw, evs[i].rec_raw_len, evs[i].has_data, evs[i].data, evs[i].data_len,
                                 evs[i].url, evs[i].url_len) == 0);
    FUZZ_CHECK(batch_enc_finish(&enc, &out, &outlen) == 0);
    FUZZ_CHECK(batch_dec_init(&d2, out, outlen) == 0);
    FUZZ_CHECK(d2.nevents == n && same_bytes(d2.src, d2.src_len, d.src, d.src_len));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(batch_dec_next(&d2, &ev2) == 0);
        FUZZ_CHECK(same_bytes(ev2.rec_raw, ev2.rec_raw_len, evs[i].rec_raw, evs[i].rec_raw_len));
        FUZZ_CHECK(ev2.has_data == evs[i].has_data);
        FUZZ_CHECK(!ev2.has_data || same_bytes(ev2.data, ev2.data_len, evs[i].data, evs[i].data_len));
        FUZZ_CHECK((ev2.url == NULL) == (evs[i].url == NULL));
        FUZZ_CHECK(ev2.url == NULL || same_bytes(ev2.url, ev2.url_len, evs[i].url, evs[i].url_len));
    }
    FUZZ_CHECK(batch_dec_next(&d2, &ev2) == CIO_ENOTFOUND);
    batch_enc_free(&enc);
out:
    free(evs);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    size_t n = (size_t)fuzz_uint(&in, 2) % (BATCH_MAX_EVENTS + 2);
    batch_res_t *res, *res2;
    msgpack_sbuffer sb;

    if ((res = malloc((n + 1) * sizeof(*res))) == NULL || (res2 = malloc((n + 1) * sizeof(*res2))) == NULL)
        abort();
    memset(res, 0x5a, (n + 1) * sizeof(*res));
    memcpy(res2, res, (n + 1) * sizeof(*res));
    const char *store = NULL;
    size_t store_len = 0;
    if (batch_reply_decode_store((const char *)in.p, in.left, res, n, NULL, NULL, &store, &store_len) != 0) {
        FUZZ_CHECK(memcmp(res, res2, (n + 1) * sizeof(*res)) == 0);
        goto out;
    }
    FUZZ_CHECK(n <= BATCH_MAX_EVENTS);
    FUZZ_CHECK(store == NULL ? store_len == 0
                             : store_len >= 1 && store_len <= BATCH_STORE_MAX && fuzz_inside(store, store_len, in.p, in.left));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(res[i].result <= BATCH_PERMANENT && strcmp(batch_result_name(res[i].result), "?") != 0);
        FUZZ_CHECK(res[i].error != NULL && res[i].error_len <= BATCH_ERROR_MAX);
        FUZZ_CHECK(res[i].error_len == 0 || fuzz_inside(res[i].error, res[i].error_len, in.p, in.left));
    }
    msgpack_sbuffer_init(&sb);
    FUZZ_CHECK(batch_reply_encode(res, n, NULL, 0, &sb) == 0);
    FUZZ_CHECK(batch_reply_decode(sb.data, sb.size, res2, n, NULL, NULL) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(res2[i].seq == res[i].seq && res2[i].result == res[i].result && res2[i].status == res[i].status &&
                   same_bytes(res2[i].error, res2[i].error_len, res[i].error, res[i].error_len));
    /* Any other count is refused. */
    FUZZ_CHECK(batch_reply_decode(sb.data, sb.size, res2, n + 1, NULL, NULL) == CIO_EPROTO);
    msgpack_sbuffer_destroy(&sb);
out:
    free(res);
    free(res2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0)
        fuzz_batch(data + 1, size - 1);
    else
        fuzz_reply(data + 1, size - 1);
    return 0;
}
