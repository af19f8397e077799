/* syncctl.h - the full sync commands of repld's control socket, both sides:
 * the one home of their syntax, shared by `repld --resync/--cancel`,
 * `comio resync` (the clients) and repld's control thread (the server).
 *
 *   resync NAME [BUCKET] [-dry-run] [-delete-extra] [-rate=BYTES_PER_S]
 *   cancel NAME
 *   report NAME
 *
 * A bucket name never starts with '-', so options and the bucket cannot be
 * taken for each other. resync and cancel are answered with one line:
 * "ok: ..." (done as asked), "busy: ..." (a sync of that target already
 * runs: which, since when, how far) or "error: ..."; report with the sync's
 * report as JSON (repld/sync.h sync_report) or "error: ...". */
#ifndef COMIO_SYNCCTL_H
#define COMIO_SYNCCTL_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/err.h"

typedef enum { SYNCCTL_RESYNC = 1, SYNCCTL_CANCEL = 2, SYNCCTL_REPORT = 3 } syncctl_cmd_t;

typedef struct {
    syncctl_cmd_t cmd;
    char target[128];
    char bucket[64]; /* "" all */
    int dry_run, delete_extra;
    uint64_t rate; /* bytes/s; 0 none given */
} syncctl_req_t;

/* Writes r as a command line (without the newline) into cmd. 0 or CIO_EINVAL (too long). */
int syncctl_format(const syncctl_req_t *r, char *cmd, size_t cap) CIO_MUST_CHECK;

/* Parses a command line into *r. 0, CIO_ENOTFOUND (not a sync command) or
 * CIO_EINVAL (malformed: the reason in err). Checks the syntax only: the
 * target's existence and the bucket's name are the server's to check. */
int syncctl_parse(const char *cmd, syncctl_req_t *r, char *err, size_t errlen) CIO_MUST_CHECK;

/* The answers' kinds. */
typedef enum { SYNCCTL_OK = 0, SYNCCTL_BUSY = 1, SYNCCTL_ERROR = 2 } syncctl_answer_t;

/* Sends r to the repld listening on `socket` and reads its answer into out.
 * Returns 0 with *kind set, or CIO_ENOTFOUND / CIO_EIO as ctl_query (no
 * repld, or no answer in time). */
int syncctl_send(const char *socket, const syncctl_req_t *r, buf_t *out, syncctl_answer_t *kind) CIO_MUST_CHECK;

#endif
