/* s3_bodyhash.h - the SHA-256 of a large signed S3 body, computed off the
 * event loop (docs/s3.md, Signatures).
 *
 * A PutObject whose x-amz-content-sha256 is the body's SHA-256 must hash the
 * whole body before anything is stored; for a body of hundreds of MiB that is
 * a large fraction of a second, which on the loop thread would hold every
 * other connection of the loop. Bodies of S3_BODYHASH_MIN bytes or more are
 * hashed on a thread of their own (at most S3_BODYHASH_THREADS at once, over
 * the whole process; beyond, the caller hashes on the loop as before), and
 * the request continues on its loop when the digest is known.
 *
 * The body is req->entity, read in place by the thread. If the client goes
 * away meanwhile, the request's dispose stops the thread at its next block
 * and waits for it (at most one block of S3_BODYHASH_BLOCK bytes), so the
 * body is never read after h2o frees it; the continuation is then not called.
 * Internal to storaged's HTTP layer. */
#ifndef COMIO_S3_BODYHASH_H
#define COMIO_S3_BODYHASH_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "storaged/http_req.h"

#define S3_BODYHASH_MIN (1u << 20)   /* bodies from 1 MiB are hashed off the loop */
#define S3_BODYHASH_BLOCK (1u << 20) /* the thread checks for a cancelled request between blocks of this size */
#define S3_BODYHASH_THREADS 8        /* hashing threads at once, all loops together */

/* Called on req's loop thread once the body is hashed: `digest` is its
 * SHA-256 (32 bytes, valid for the call), or NULL when hashing failed (out of
 * memory: answer 500). `arg` is the caller's. Not called when the client went
 * away. The callback answers req (or hands it on). */
typedef void (*s3_bodyhash_cb)(h2o_req_t *req, const uint8_t *digest, void *arg);

/* Starts hashing req->entity on a thread. Returns 1 when started (cb will
 * answer; the caller returns 0 from on_req and touches req no more), or 0
 * when the body is smaller than S3_BODYHASH_MIN, S3_BODYHASH_THREADS are
 * already running, or a thread could not be made: the caller hashes inline.
 * arg must live as long as req (allocate it from req->pool). */
int s3_bodyhash_start(h2o_req_t *req, s3_bodyhash_cb cb, void *arg);

/* The receiver of http_thread_t.bodyhash_done: calls each finished hash's
 * callback whose client is still there, and frees it. */
void s3_bodyhash_on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
