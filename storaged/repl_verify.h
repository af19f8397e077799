/* repl_verify.h - the verify-only fetch (`&verify=1` on a presigned fetch
 * URL): a version's bytes read through its block checksums, off the event
 * loop, and only the verdict answered.
 *
 * A peer's repairer asks it when its fetch of our copy was cut short
 * (storaged/repair.h): was that our damage, or a dropped connection? The
 * answer needs the whole object read, which for an object of hundreds of
 * MiB would hold every other connection of the loop. So the record and its
 * checksums are looked up on the loop, the bytes are read by one of at most
 * REPL_VERIFY_THREADS threads (all loops together; started when work comes,
 * gone when there is none), and the answer is sent from the request's loop
 * when the read is done. A reader token (commit_reader_enter) taken before
 * the lookup keeps the extent from being reused until the read is over.
 *
 * Answers (docs/api.md): 200 with an empty body (the version is good, or
 * has no checksums to check it by), 503 DataDamaged (a block fails: counted
 * and logged by integrity_damaged), 410 VersionGone, 429 SlowDown when
 * REPL_VERIFY_QUEUE_MAX verifies wait already (never 503: to a repairer a
 * 503 means "damaged"), 500 otherwise. Internal to storaged's HTTP layer. */
#ifndef COMIO_STORAGED_REPL_VERIFY_H
#define COMIO_STORAGED_REPL_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include "storaged/http_req.h"
#include "storaged/path.h"

#define REPL_VERIFY_THREADS 2       /* verifies reading at once, all loops together */
#define REPL_VERIFY_QUEUE_MAX 64    /* verifies waiting for a thread; beyond, 429 */
#define REPL_VERIFY_CHUNK (1 << 20) /* read (whole checksum blocks) at a time */

/* Answers the verify-only fetch of version (version, origin) of the object
 * at p (origin NULL: a URL of the previous release, any object with that
 * version number; origin_len bytes, borrowed for the call). The signature
 * is checked by the caller. Answers now or from the request's loop later;
 * returns 0, on_req's "handled". */
int repl_verify_serve(http_server_t *srv, h2o_req_t *req, const path_t *p, uint64_t version, const char *origin, size_t origin_len);

#endif
