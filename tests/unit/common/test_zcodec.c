/* test_zcodec.c - unit tests for common/zcodec.c: round trips, data that does not compress, and frames to refuse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "common/zcodec.h"
#include "testutil.h"

/* n bytes of JSON-like log lines: compresses well */
static char *text(size_t n)
{
    char *p = malloc(n + 64);
    size_t len = 0;
    for (unsigned i = 0; len < n; i++)
        len += (size_t)sprintf(p + len, "{\"ts\":%u,\"level\":\"info\",\"msg\":\"request done\",\"status\":200}\n",
                               i * 7919u % 100000u);
    return p;
}

/* n bytes that do not compress (xorshift) */
static char *noise(size_t n, uint64_t seed)
{
    char *p = malloc(n ? n : 1);
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)(x >> 24);
    }
    return p;
}

static void round_trip(const char *src, size_t len, int expect_compressed)
{
    zcodec_t *z;
    buf_t c, d;
    char err[128];

    buf_init(&c, SIZE_MAX);
    buf_init(&d, 0);
    CHECK_EQ_INT(zcodec_new(&z, ZCODEC_LEVEL_DEFAULT), 0);
    int ret = zcodec_compress(z, src, len, &c);
    CHECK_EQ_INT(ret, expect_compressed);
    if (ret == 1) {
        CHECK(c.len <= len / 100 * ZCODEC_KEEP_PERCENT + 1);
        CHECK_EQ_INT(zcodec_decompress(c.data, c.len, len, &d, err, sizeof(err)), 0);
        CHECK_EQ_INT(d.len, len);
        CHECK(d.len == len && memcmp(d.data, src, len) == 0);
        /* one byte less of room: refused */
        if (len > 0) {
            CHECK_EQ_INT(zcodec_decompress(c.data, c.len, len - 1, &d, err, sizeof(err)), CIO_ETOOBIG);
            CHECK_EQ_INT(d.len, 0);
        }
    } else {
        CHECK_EQ_INT(c.len, 0);
    }
    /* the context is reusable: a second body of the same data gives the same answer */
    CHECK_EQ_INT(zcodec_compress(z, src, len, &c), expect_compressed);
    zcodec_free(z);
    buf_free(&c);
    buf_free(&d);
}

static void test_round_trips(void)
{
    char *t = text(1 << 20), *r = noise(1 << 20, 42);
    round_trip(t, 1 << 20, 1);
    round_trip(t, 4096, 1);
    round_trip(t, 300 * 1024, 1); /* over two samples */
    round_trip(r, 1 << 20, 0);    /* the sample says no */
    round_trip(r, 4096, 0);       /* the whole says no */
    round_trip(t, ZCODEC_MIN_INPUT - 1, 0);
    round_trip("", 0, 0);
    /* compressible at first, noise after: the sample says yes, the whole decides */
    char *mix = malloc(1 << 20);
    memcpy(mix, t, 1 << 16);
    memcpy(mix + (1 << 16), r, (1 << 20) - (1 << 16));
    round_trip(mix, 1 << 20, 0);
    free(mix);
    free(t);
    free(r);
}

/* A frame made by zstd itself, without our settings (no content size when streamed). */
static size_t frame(const char *src, size_t len, char *dst, size_t cap, int with_size)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t n;
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    if (with_size) {
        n = ZSTD_compress2(c, dst, cap, src, len);
    } else {
        ZSTD_outBuffer o = {dst, cap, 0};
        ZSTD_inBuffer in = {src, len, 0};
        ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue);
        while (ZSTD_compressStream2(c, &o, &in, ZSTD_e_end) != 0)
            ;
        n = o.pos;
    }
    ZSTD_freeCCtx(c);
    return n;
}

static void test_refused(void)
{
    size_t big = 64u << 20; /* 64 MiB of zeros: a few KiB of frame */
    char *zeros = calloc(1, big), *f = malloc(1 << 20), err[160];
    buf_t d;
    size_t n;

    buf_init(&d, 0);
    /* a bomb that says its size: refused before any output is allocated */
    n = frame(zeros, big, f, 1 << 20, 1);
    CHECK(n < 64 * 1024);
    CHECK_EQ_INT(zcodec_decompress(f, n, 1 << 20, &d, err, sizeof(err)), CIO_ETOOBIG);
    CHECK(d.data == NULL);
    CHECK(strstr(err, "declares") != NULL);
    /* a bomb that hides its size: refused once the output passes the cap */
    n = frame(zeros, big, f, 1 << 20, 0);
    CHECK_EQ_INT(ZSTD_getFrameContentSize(f, n), ZSTD_CONTENTSIZE_UNKNOWN);
    CHECK_EQ_INT(zcodec_decompress(f, n, 1 << 20, &d, err, sizeof(err)), CIO_ETOOBIG);
    CHECK(d.data == NULL && d.len == 0); /* a refused frame keeps nothing */
    /* under a cap it fits, the same frame decodes */
    CHECK_EQ_INT(zcodec_decompress(f, n, big, &d, err, sizeof(err)), 0);
    CHECK_EQ_INT(d.len, big);

    /* truncated frames: every cut is refused */
    char *t = text(100000);
    n = frame(t, 100000, f, 1 << 20, 1);
    for (size_t cut = 0; cut < n; cut += cut < 64 ? 1 : 97)
        CHECK_EQ_INT(zcodec_decompress(f, cut, 1 << 20, &d, err, sizeof(err)), CIO_EPROTO);
    CHECK_EQ_INT(zcodec_decompress(f, n - 1, 1 << 20, &d, err, sizeof(err)), CIO_EPROTO);
    /* corrupt frames: a flipped byte anywhere is refused (the checksum catches what the format does not) */
    for (size_t at = 0; at < n; at += 13) {
        char *c = malloc(n);
        memcpy(c, f, n);
        c[at] ^= 0x5a;
        int ret = zcodec_decompress(c, n, 1 << 20, &d, err, sizeof(err));
        CHECK(ret == CIO_EPROTO || ret == CIO_ETOOBIG);
        free(c);
    }
    /* not zstd at all, and nothing at all */
    CHECK_EQ_INT(zcodec_decompress("\x82\xa3src", 5, 1 << 20, &d, err, sizeof(err)), CIO_EPROTO);
    CHECK(strstr(err, "not a zstd frame") != NULL);
    CHECK_EQ_INT(zcodec_decompress("", 0, 1 << 20, &d, err, sizeof(err)), CIO_EPROTO);
    /* two frames back to back are one body */
    size_t n2 = frame(t, 1000, f + n, (1 << 20) - n, 0);
    CHECK_EQ_INT(zcodec_decompress(f, n + n2, 1 << 20, &d, err, sizeof(err)), 0);
    CHECK_EQ_INT(d.len, 101000);
    CHECK(memcmp(d.data, t, 100000) == 0 && memcmp(d.data + 100000, t, 1000) == 0);
    /* a frame followed by garbage */
    memcpy(f + n, "junk", 4);
    CHECK_EQ_INT(zcodec_decompress(f, n + 4, 1 << 20, &d, err, sizeof(err)), CIO_EPROTO);
    free(t);
    free(zeros);
    free(f);
    buf_free(&d);
}

/* A stream in pieces: one frame, each piece's output decodable as it comes (flushed). */
static void test_stream(void)
{
    size_t len = 300000, piece = 65536;
    char *t = text(len), err[160];
    zcodec_stream_t *z;
    buf_t out, all, d;

    buf_init(&out, SIZE_MAX);
    buf_init(&all, SIZE_MAX);
    buf_init(&d, 0);
    CHECK_EQ_INT(zcodec_stream_new(&z, ZCODEC_LEVEL_DEFAULT, len), 0);
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        CHECK_EQ_INT(zcodec_stream_put(z, t + off, n, off + n == len, &out), 0);
        CHECK(out.len > 0);
        CHECK_EQ_INT(buf_append(&all, out.data, out.len), 0);
    }
    zcodec_stream_free(z);
    CHECK(all.len < len / 10);
    CHECK_EQ_INT(ZSTD_getFrameContentSize(all.data, all.len), len);
    CHECK_EQ_INT(zcodec_decompress(all.data, all.len, len, &d, err, sizeof(err)), 0);
    CHECK(d.len == len && memcmp(d.data, t, len) == 0);

    /* pieces that do not add up to the declared size end in an error, not a wrong frame */
    CHECK_EQ_INT(zcodec_stream_new(&z, 1, len), 0);
    CHECK_EQ_INT(zcodec_stream_put(z, t, 1000, 0, &out), 0);
    CHECK_EQ_INT(zcodec_stream_put(z, t, 1000, 1, &out), CIO_EPROTO);
    zcodec_stream_free(z);
    zcodec_stream_free(NULL);
    free(t);
    buf_free(&out);
    buf_free(&all);
    buf_free(&d);
}

int main(void)
{
    RUN(test_round_trips);
    RUN(test_refused);
    RUN(test_stream);
    return TEST_SUMMARY();
}
