/* zcodec.c - zstd compression of bodies that cross between sites (libzstd). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>
#include "common/log.h"
#include "common/zcodec.h"

_Static_assert(ZCODEC_LEVEL_MAX <= 19, "levels over 19 need windows over ZCODEC_WINDOW_LOG_MAX");
_Static_assert(ZCODEC_KEEP_PERCENT > 0 && ZCODEC_KEEP_PERCENT < 100, "a kept frame is smaller than its input");

struct zcodec {
    ZSTD_CCtx *cctx;
};

/* Makes room for `n` bytes in b from its start (b->len is not changed). */
static int room(buf_t *b, size_t n)
{
    if (n > b->max)
        return CIO_ETOOBIG;
    if (n + 1 > b->cap) {
        char *d = realloc(b->data, n + 1);
        if (d == NULL)
            return CIO_ENOMEM;
        b->data = d;
        b->cap = n + 1;
    }
    return 0;
}

int zcodec_new(zcodec_t **out, int level)
{
    zcodec_t *z = calloc(1, sizeof(*z));
    if (z == NULL || (z->cctx = ZSTD_createCCtx()) == NULL) {
        free(z);
        return CIO_ENOMEM;
    }
    level = level < ZCODEC_LEVEL_MIN ? ZCODEC_LEVEL_MIN : level > ZCODEC_LEVEL_MAX ? ZCODEC_LEVEL_MAX : level;
    /* the checksum costs 4 bytes and catches a frame damaged past what TLS or TCP check */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1))) {
        zcodec_free(z);
        return CIO_ENOMEM;
    }
    *out = z;
    return 0;
}

void zcodec_free(zcodec_t *z)
{
    if (z == NULL)
        return;
    ZSTD_freeCCtx(z->cctx);
    free(z);
}

/* Compresses src[0..len) into b's data if the frame fits in `limit` bytes:
 * 1 (b->len is the frame's size), 0 (it does not fit), or an error. */
static int compress_within(zcodec_t *z, const void *src, size_t len, size_t limit, buf_t *b)
{
    size_t n;
    int ret;

    if ((ret = room(b, limit)) != 0)
        return ret;
    n = ZSTD_compress2(z->cctx, b->data, limit, src, len);
    if (ZSTD_isError(n)) {
        /* the session is reset before the next frame whatever the error */
        ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_only);
        if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
            return 0; /* larger than the limit: not worth it */
        log_msg(LOG_LVL_ERROR, "ZSTD_compress2 failed", "error", ZSTD_getErrorName(n), NULL);
        return CIO_EPROTO;
    }
    b->len = n;
    b->data[n] = '\0';
    return 1;
}

int zcodec_compress(zcodec_t *z, const void *src, size_t len, buf_t *out)
{
    int ret;

    out->len = 0;
    out->err = 0;
    if (len < ZCODEC_MIN_INPUT)
        return 0;
    /* a body that does not compress is found out for the price of a sample */
    if (len > 2 * (size_t)ZCODEC_SAMPLE &&
        (ret = compress_within(z, src, ZCODEC_SAMPLE, (size_t)ZCODEC_SAMPLE * ZCODEC_KEEP_PERCENT / 100, out)) <= 0) {
        out->len = 0;
        return ret;
    }
    /* the limit makes zstd stop as soon as the frame would not be worth sending */
    ret = compress_within(z, src, len, len / 100 * ZCODEC_KEEP_PERCENT + len % 100 * ZCODEC_KEEP_PERCENT / 100, out);
    if (ret <= 0)
        out->len = 0;
    return ret;
}

struct zcodec_stream {
    ZSTD_CCtx *cctx;
};

int zcodec_stream_new(zcodec_stream_t **out, int level, uint64_t size)
{
    zcodec_stream_t *z = calloc(1, sizeof(*z));
    if (z == NULL || (z->cctx = ZSTD_createCCtx()) == NULL) {
        free(z);
        return CIO_ENOMEM;
    }
    level = level < ZCODEC_LEVEL_MIN ? ZCODEC_LEVEL_MIN : level > ZCODEC_LEVEL_MAX ? ZCODEC_LEVEL_MAX : level;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z->cctx, size))) {
        zcodec_stream_free(z);
        return CIO_ENOMEM;
    }
    *out = z;
    return 0;
}

void zcodec_stream_free(zcodec_stream_t *z)
{
    if (z == NULL)
        return;
    ZSTD_freeCCtx(z->cctx);
    free(z);
}

int zcodec_stream_put(zcodec_stream_t *z, const void *src, size_t len, int last, buf_t *out)
{
    ZSTD_inBuffer in = {src, len, 0};
    size_t want = ZSTD_compressBound(len) + 64, left;
    int ret;

    out->len = 0;
    out->err = 0;
    do {
        if ((ret = room(out, out->len + want)) != 0)
            return ret;
        ZSTD_outBuffer o = {out->data, out->cap - 1, out->len};
        left = ZSTD_compressStream2(z->cctx, &o, &in, last ? ZSTD_e_end : ZSTD_e_flush);
        out->len = o.pos;
        if (ZSTD_isError(left)) {
            log_msg(LOG_LVL_ERROR, "ZSTD_compressStream2 failed", "error", ZSTD_getErrorName(left), NULL);
            return CIO_EPROTO;
        }
        want = left > 4096 ? left : 4096;
    } while (left != 0); /* 0: all of the piece is in out, flushed (or the frame ended) */
    out->data[out->len] = '\0';
    return 0;
}

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int zcodec_decompress(const void *src, size_t len, size_t cap, buf_t *out, char *err, size_t errlen)
{
    ZSTD_DCtx *d = NULL;
    ZSTD_inBuffer in = {src, len, 0};
    unsigned long long declared;
    size_t r = 1, want;
    int ret;

    out->len = 0;
    out->err = 0;
    out->max = cap == SIZE_MAX ? cap : cap + 1;
    say(err, errlen, "%s", "ok");
    if (len == 0) {
        say(err, errlen, "%s", "empty zstd body: no frame");
        return CIO_EPROTO;
    }
    declared = ZSTD_getFrameContentSize(src, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
        say(err, errlen, "%s", "not a zstd frame");
        return CIO_EPROTO;
    }
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap) {
        say(err, errlen, "zstd frame declares %llu bytes, over the limit of %zu", declared, cap);
        return CIO_ETOOBIG;
    }
    if ((d = ZSTD_createDCtx()) == NULL || ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, ZCODEC_WINDOW_LOG_MAX))) {
        ret = CIO_ENOMEM;
        say(err, errlen, "%s", "out of memory");
        goto fail;
    }
    /* a declared size is a first guess only: later frames may follow, and a
     * lying header is caught by zstd when the output does not match it */
    want = declared != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)declared + 1 : len * 4;
    if (want < 4096)
        want = 4096;
    if (want > out->max)
        want = out->max;
    if ((ret = room(out, want)) != 0)
        goto nomem;
    for (;;) {
        if (out->len == out->cap - 1) {
            if (out->len >= cap) {
                say(err, errlen, "zstd body decompresses to more than the limit of %zu bytes", cap);
                ret = CIO_ETOOBIG;
                goto fail;
            }
            want = out->cap * 2 > out->max ? out->max : out->cap * 2;
            if ((ret = room(out, want)) != 0)
                goto nomem;
        }
        ZSTD_outBuffer o = {out->data, out->cap - 1, out->len};
        r = ZSTD_decompressStream(d, &o, &in);
        out->len = o.pos;
        if (ZSTD_isError(r)) {
            say(err, errlen, "corrupt zstd frame: %s", ZSTD_getErrorName(r));
            ret = CIO_EPROTO;
            goto fail;
        }
        if (out->len > cap) {
            say(err, errlen, "zstd body decompresses to more than the limit of %zu bytes", cap);
            ret = CIO_ETOOBIG;
            goto fail;
        }
        /* done when all input is taken and the decoder holds nothing back:
         * the frame ended, or it wants input there is no more of (truncated) */
        if (in.pos == in.size && (r == 0 || o.pos < o.size))
            break;
    }
    if (r != 0) {
        say(err, errlen, "%s", "truncated zstd frame");
        ret = CIO_EPROTO;
        goto fail;
    }
    out->data[out->len] = '\0';
    ZSTD_freeDCtx(d);
    return 0;

nomem:
    say(err, errlen, "%s", "out of memory");
fail:
    ZSTD_freeDCtx(d);
    buf_free(out); /* what was decoded is dropped at once: a refused frame holds no memory */
    return ret;
}
