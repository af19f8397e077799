/* zcodec.h - zstd compression of bodies that cross between sites (libzstd).
 *
 * The sender compresses a body with a reusable context (zcodec_t, one per
 * thread) and keeps the raw body when it does not compress; the receiver
 * decompresses with a hard cap on the output, so that a small frame that
 * would expand beyond the cap (a "zstd bomb") is refused before its output
 * is allocated. Frames are standard zstd frames (RFC 8878), i.e. what HTTP's
 * `Content-Encoding: zstd` carries. */
#ifndef COMIO_ZCODEC_H
#define COMIO_ZCODEC_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/err.h"

#define ZCODEC_LEVEL_MIN 1
#define ZCODEC_LEVEL_MAX 19      /* zstd's "ultra" levels 20..22 need windows a receiver would refuse */
#define ZCODEC_LEVEL_DEFAULT 3   /* zstd's own default: several hundred MB/s per core, most of the ratio */
#define ZCODEC_MIN_INPUT 512     /* a smaller body is sent as is: a frame's header and a round of CPU buy nothing */
#define ZCODEC_SAMPLE 65536      /* bytes compressed first, to tell cheaply whether a larger body compresses */
#define ZCODEC_KEEP_PERCENT 90   /* compressed output kept only when at most this share of the input */
#define ZCODEC_WINDOW_LOG_MAX 24 /* the largest window (16 MiB) a received frame may ask for: bounds a decoder's memory */

/* A compression context, reused across calls by one thread. */
typedef struct zcodec zcodec_t;

/* Makes a context compressing at `level` (clamped to ZCODEC_LEVEL_MIN..MAX).
 * Returns 0 or CIO_ENOMEM; *out is the caller's, freed with zcodec_free. */
int zcodec_new(zcodec_t **out, int level) CIO_MUST_CHECK;

/* Frees z (NULL: nothing). */
void zcodec_free(zcodec_t *z);

/* Compresses src[0..len) into `out` (emptied first; its data is the
 * caller's, as any buf_t) when that is worth it: the body is at least
 * ZCODEC_MIN_INPUT bytes, a first sample of ZCODEC_SAMPLE bytes (of a
 * body over twice that) compresses to at most ZCODEC_KEEP_PERCENT of its
 * size, and so does the whole body. Data that does not compress costs one
 * sample's compression, not the body's.
 * Returns 1 when out holds one zstd frame (with the content size in its
 * header) to send in place of src, 0 when src should be sent as is (out is
 * then empty), or CIO_ENOMEM / CIO_ETOOBIG (out's cap) / CIO_EPROTO (zstd
 * failed: logged). */
int zcodec_compress(zcodec_t *z, const void *src, size_t len, buf_t *out) CIO_MUST_CHECK;

/* A compressor of one stream (a large object served window by window):
 * one zstd frame, each piece flushed as it is given, so that what is sent
 * never waits for the next piece. */
typedef struct zcodec_stream zcodec_stream_t;

/* Starts a frame of `size` bytes in all (declared in its header) at `level`.
 * Returns 0 or CIO_ENOMEM; *out is the caller's, freed with
 * zcodec_stream_free. */
int zcodec_stream_new(zcodec_stream_t **out, int level, uint64_t size) CIO_MUST_CHECK;

/* Frees z (NULL: nothing). */
void zcodec_stream_free(zcodec_stream_t *z);

/* Compresses the next piece src[0..len) into `out` (emptied first): all of
 * it, flushed; `last` ends the frame (the pieces must then add up to the
 * size given to zcodec_stream_new). Returns 0, CIO_ENOMEM, CIO_ETOOBIG
 * (out's cap) or CIO_EPROTO (zstd failed, e.g. the pieces do not add up to
 * the size: logged). */
int zcodec_stream_put(zcodec_stream_t *z, const void *src, size_t len, int last, buf_t *out) CIO_MUST_CHECK;

/* Decompresses the zstd frames src[0..len) into `out` (emptied first; at
 * most `cap` bytes; out->max is ignored). A frame that declares a content
 * size over `cap` is refused before anything is allocated; one that does
 * not declare it is refused as soon as its output passes `cap`, so out never
 * holds more than cap + 1 bytes.
 * Returns 0; CIO_ETOOBIG (over the cap); CIO_EPROTO (not zstd, corrupt,
 * truncated, or asking for a window over 2^ZCODEC_WINDOW_LOG_MAX); or
 * CIO_ENOMEM. On failure out is freed (data NULL) and `err` (errlen bytes,
 * may be 0) says why in one line. */
int zcodec_decompress(const void *src, size_t len, size_t cap, buf_t *out, char *err, size_t errlen) CIO_MUST_CHECK;

#endif
