/* ctl.h - repld's control socket: a unix stream socket that answers one
 * command per connection ("status\n" -> JSON, "metrics\n" -> Prometheus text).
 * The server side runs in repld; the client side serves `repld --status` and
 * storaged's status and metrics endpoints. */
#ifndef COMIO_CTL_H
#define COMIO_CTL_H

#include <stddef.h>
#include "common/buf.h"
#include "common/err.h"

#define CTL_CMD_MAX 256
#define CTL_REPLY_MAX (1024 * 1024)

/* Renders the answer to `cmd` (without the newline) into out; returns 0, or
 * CIO_ENOTFOUND for an unknown command. Called on the control thread. */
typedef int (*ctl_handler_t)(void *ctx, const char *cmd, buf_t *out);

typedef struct ctl_server ctl_server_t;

/* Binds `path` (replacing a stale socket file, creating the parent directory
 * if missing) and serves it on a thread. On failure writes a reason into err. */
int ctl_start(ctl_server_t **out, const char *path, ctl_handler_t fn, void *ctx, char *err, size_t errlen) CIO_MUST_CHECK;

/* Stops serving and removes the socket file. */
void ctl_stop(ctl_server_t *s);

/* Sends `cmd` to the socket at `path` and reads the whole answer into out
 * (capped at CTL_REPLY_MAX), giving up after timeout_ms. Returns 0,
 * CIO_ENOTFOUND (nobody listening: no socket file or connection refused), or
 * CIO_EIO (timeout, short answer). */
int ctl_query(const char *path, const char *cmd, buf_t *out, int timeout_ms) CIO_MUST_CHECK;

#endif
