/* fetch.c - fetching a large object from the primary into its extent (libcurl). */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "common/curlopt.h"
#include "storaged/fetch.h"

#define FETCH_CONNECT_TIMEOUT_MS 10000L
/* No overall deadline (objects may be large and links slow), but a transfer
 * that moves fewer than STALL_BYTES a second for STALL_SECONDS is dead. */
#define FETCH_STALL_BYTES 1024L
#define FETCH_STALL_SECONDS 30L
/* The body of an answer other than 200 is read and dropped up to this much. */
#define FETCH_DISCARD_MAX (64 * 1024)
/* Its first bytes are kept to find the peer's error code in ({"error":..,"code":"DataDamaged"}, docs/api.md). */
#define FETCH_ERRBODY_MAX 1024
#define FETCH_ERRCODE_MAX 40

/* Where one fetch's body goes: from fetch_begin to fetch_finish. */
typedef struct {
    CURL *curl;
    store_t *s;
    uint64_t off, size, got;
    const uint8_t *etag; /* borrowed from fetch_begin's caller until fetch_finish */
    EVP_MD_CTX *md;
    long status;  /* 0 until the first body bytes arrive */
    int answered; /* a status line arrived (fetch_answered) */
    size_t discarded;
    char errbody[FETCH_ERRBODY_MAX + 1]; /* the first bytes of a body other than 200's, NUL-terminated */
    size_t errbody_len;
    int too_long, io_failed, md_failed;
    blocksum_calc_t *sums; /* NULL: none computed */
    char cerr[CURL_ERROR_SIZE];
} sink_t;

struct fetch {
    CURL *curl; /* kept between fetches (DNS cache, TLS session) but not its connections, see below */
    const int *cancel;
    long timeout_ms; /* the whole transfer's bound (fetch_set_timeout); 0: none */
    sink_t k;        /* the fetch under way */
};

int fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : CIO_ENOMEM;
}

fetch_t *fetch_new(const int *cancel)
{
    fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->cancel = cancel;
    if ((f->curl = curl_easy_init()) == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

void fetch_set_timeout(fetch_t *f, uint64_t ms)
{
    f->timeout_ms = ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)ms;
}

void fetch_free(fetch_t *f)
{
    if (f == NULL)
        return;
    curl_easy_cleanup(f->curl);
    free(f);
}

/* Streams the body into the extent as it arrives: never more than one of
 * curl's buffers in memory. Returning less than n aborts the transfer. */
static size_t on_body(char *p, size_t one, size_t n, void *arg)
{
    sink_t *k = arg;

    n *= one;
    if (k->status == 0 && curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &k->status) != CURLE_OK)
        k->status = -1;
    if (k->status != 200) {
        size_t keep = n < FETCH_ERRBODY_MAX - k->errbody_len ? n : FETCH_ERRBODY_MAX - k->errbody_len;
        memcpy(k->errbody + k->errbody_len, p, keep);
        k->errbody_len += keep;
        k->errbody[k->errbody_len] = '\0'; /* a NUL inside only shortens what error_code searches */
        k->discarded += n;
        return k->discarded > FETCH_DISCARD_MAX ? 0 : n;
    }
    if (n > k->size - k->got) {
        k->too_long = 1;
        return 0;
    }
    if (store_write(k->s, k->off + k->got, p, n) != 0) {
        k->io_failed = 1;
        return 0;
    }
    if (EVP_DigestUpdate(k->md, p, n) != 1) {
        k->md_failed = 1;
        return 0;
    }
    if (k->sums != NULL)
        blocksum_calc_feed(k->sums, p, n);
    k->got += n;
    return n;
}

/* libcurl calls this with each header line, the status line first: the
 * peer answered, whatever the status. */
static size_t on_header(char *p, size_t one, size_t n, void *arg)
{
    sink_t *k = arg;
    k->answered = 1;
    return one * n;
}

/* libcurl calls this at least once a second, also while nothing moves. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    const fetch_t *f = arg;
    return f->cancel != NULL && __atomic_load_n(f->cancel, __ATOMIC_RELAXED) != 0;
}

/* The "code" of an error body (letters and digits only) into out, or "" when there is none. */
static void error_code(const char *body, char out[FETCH_ERRCODE_MAX + 1])
{
    static const char field[] = "\"code\":\"";
    const char *at = strstr(body, field);
    size_t n = 0;

    if (at != NULL)
        for (at += sizeof(field) - 1; n < FETCH_ERRCODE_MAX && isalnum((unsigned char)at[n]); n++)
            out[n] = at[n];
    out[n] = '\0';
}

int fetch_begin(fetch_t *f, const fetch_opts_t *o, const char *url, store_t *s, uint64_t off, uint64_t size, const uint8_t etag[16],
                blocksum_calc_t *sums, char *err, size_t errlen)
{
    sink_t *k = &f->k;
    int ret;

    memset(k, 0, sizeof(*k));
    k->curl = f->curl;
    k->s = s;
    k->off = off;
    k->size = size;
    k->etag = etag;
    k->sums = sums;
    if ((k->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(k->md, EVP_md5(), NULL) != 1) {
        snprintf(err, errlen, "out of memory");
        ret = CIO_ENOMEM;
        goto fail;
    }
    curl_easy_reset(f->curl);
    curlopt_t shared = {
        .agent = "comio-storaged", .ca_file = o != NULL ? o->ca_file : NULL, .connect_timeout_ms = FETCH_CONNECT_TIMEOUT_MS};
    if ((ret = curlopt_apply(f->curl, &shared)) != 0) {
        snprintf(err, errlen, "cannot set up libcurl: %s", cio_strerror(ret));
        ret = ret == CIO_ENOMEM ? CIO_ENOMEM : CIO_EAGAIN; /* the contract of fetch_to_store */
        goto fail;
    }
    curl_easy_setopt(f->curl, CURLOPT_URL, url);
    /* Keep-alive: across a WAN a new connection costs one round trip (three
     * with TLS) per object. storaged's shutdown does not wait for idle
     * connections, and one idle for longer than this is not reused. */
    curl_easy_setopt(f->curl, CURLOPT_MAXAGE_CONN, 30L);
    /* the primary compresses when its target has compression: zstd; libcurl
     * decodes, so the size and MD5 below are checked on the object's bytes */
    curl_easy_setopt(f->curl, CURLOPT_ACCEPT_ENCODING, "zstd");
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_LIMIT, FETCH_STALL_BYTES);
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_TIME, FETCH_STALL_SECONDS);
    if (f->timeout_ms > 0)
        curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, k->cerr);
    curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
    return 0;
fail:
    EVP_MD_CTX_free(k->md);
    k->md = NULL;
    return ret;
}

CURL *fetch_curl(fetch_t *f)
{
    return f->curl;
}

int fetch_answered(const fetch_t *f)
{
    return f->k.answered;
}

int fetch_finish(fetch_t *f, CURLcode rc, unsigned *status, char *err, size_t errlen)
{
    sink_t *k = &f->k;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    long code = 0;
    int ret;

    *status = 0;
    /* the handle outlives the fetch: forget the pointers into it */
    curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, NULL);
    if (curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code > 0 && code < 1000)
        *status = (unsigned)code;
    if (k->io_failed) {
        snprintf(err, errlen, "writing the fetched bytes to the data store failed");
        ret = CIO_EIO;
    } else if (k->md_failed) {
        snprintf(err, errlen, "MD5 computation failed");
        ret = CIO_ENOMEM;
    } else if (k->too_long) {
        snprintf(err, errlen, "the primary sent more than the record's %" PRIu64 " bytes", k->size);
        ret = CIO_EAGAIN;
    } else if (*status == 410) {
        snprintf(err, errlen, "the primary no longer holds this version (410)");
        ret = CIO_ENOTFOUND;
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(err, errlen, "fetch abandoned: the replica is shutting down");
        ret = CIO_EAGAIN;
    } else if (rc != CURLE_OK) {
        snprintf(err, errlen, "fetch from the primary failed: %s", k->cerr[0] != '\0' ? k->cerr : curl_easy_strerror(rc));
        ret = CIO_EAGAIN;
    } else if (*status != 200) {
        /* with its error code: a 503 DataDamaged (a damaged copy there) is not an overloaded peer */
        char ecode[FETCH_ERRCODE_MAX + 1];
        error_code(k->errbody, ecode);
        snprintf(err, errlen, "the primary answered %u%s%s", *status, ecode[0] != '\0' ? " " : "", ecode);
        ret = CIO_EAGAIN;
    } else if (k->got != k->size) {
        snprintf(err, errlen, "size mismatch: the primary sent %" PRIu64 " bytes, the record says %" PRIu64, k->got, k->size);
        ret = CIO_EAGAIN;
    } else if (EVP_DigestFinal_ex(k->md, md, &mdlen) != 1 || mdlen != 16) {
        snprintf(err, errlen, "MD5 computation failed");
        ret = CIO_ENOMEM;
    } else if (CRYPTO_memcmp(md, k->etag, 16) != 0) {
        snprintf(err, errlen, "ETag mismatch: the bytes fetched do not match the record's ETag");
        ret = CIO_ECORRUPT;
    } else {
        ret = 0;
    }
    EVP_MD_CTX_free(k->md);
    k->md = NULL;
    return ret;
}

int fetch_to_store(fetch_t *f, const fetch_opts_t *o, const char *url, store_t *s, uint64_t off, uint64_t size,
                   const uint8_t etag[16], blocksum_calc_t *sums, unsigned *status, char *err, size_t errlen)
{
    int ret;

    *status = 0;
    if ((ret = fetch_begin(f, o, url, s, off, size, etag, sums, err, errlen)) != 0)
        return ret;
    return fetch_finish(f, curl_easy_perform(f->curl), status, err, errlen);
}
