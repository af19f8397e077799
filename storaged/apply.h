/* apply.h - a replica's side of a replication batch: the request decoded into
 * a COMMIT_APPLY job, and the job's outcome encoded as the reply.
 *
 * The rules the committer applies the events by (last writer wins by
 * version, tombstones, purge versions) are in docs/replication-apply.md and
 * storaged/replica.c; the formats in proto/batch.h and docs/protocol.md. */
#ifndef COMIO_APPLY_H
#define COMIO_APPLY_H

#include <stddef.h>
#include <msgpack.h>
#include "storaged/commit.h"
#include "common/err.h"

#define APPLY_CTYPE "application/msgpack" /* content type of batches and replies */

/* Decodes the batch buf[0..len) into job->items and job->nitems (0 for an
 * empty batch, items NULL). Every event is decoded before the caller may
 * apply any, so a malformed batch changes nothing. Bucket names, keys,
 * content types and URLs are copied into memory owned by the job (released
 * by apply_free); inline data is not copied: item->data points into buf,
 * which the caller keeps valid as it does a PUT's body (job->body = buf).
 * Events no replica can ever apply (an invalid or reserved bucket name, a key
 * with a NUL byte, version 0, a URL that is not http:// or https://) are
 * marked permanent failures here; the rest are left to the committer.
 * Returns 0, CIO_EPROTO (malformed; a one-line reason in err) or CIO_ENOMEM
 * (err set too). On failure the job holds nothing. */
int apply_decode(commit_job_t *job, const char *buf, size_t len, char *err, size_t errlen) CIO_MUST_CHECK;

/* Appends the reply to a finished job (one result per event, in batch order,
 * and this site's id `site`, which repld uses not to send a site its own
 * events back) to sb. When the job as a whole failed (job->result), nothing of it was
 * committed: every event not refused for good is reported as a retry.
 * Returns 0 or CIO_ENOMEM. */
int apply_reply(const commit_job_t *job, const char *site, msgpack_sbuffer *sb) CIO_MUST_CHECK;

/* apply_reply, naming this site's store identity `store` too (NULL or "":
 * none), by which a sender recognises a replaced store (repld/sync.h). */
int apply_reply_store(const commit_job_t *job, const char *site, const char *store, msgpack_sbuffer *sb) CIO_MUST_CHECK;

/* Releases what apply_decode allocated; the job may be freed afterwards. */
void apply_free(commit_job_t *job);

#endif
