/* http.h - storaged's HTTP front end: h2o event loops, routing, replies.
 *
 * One thread per event loop, each with its own SO_REUSEPORT listener. Reads
 * are served on the loops; every mutation is handed to the group committer
 * (commit.h) and answered from the loop once it is durable. */
#ifndef COMIO_HTTP_H
#define COMIO_HTTP_H

#include <stddef.h>
#include "storaged/commit.h"
#include "common/conf.h"
#include "common/err.h"
#include "storaged/meta.h"
#include "storaged/store.h"

typedef struct http_server http_server_t;

/* Checks, before anything is opened or formatted, that the server could
 * listen as configured: the address resolves, the port may be bound, and
 * nobody listens there yet. Returns 0, or CIO_ESYS with a reason in err.
 * http_start checks again (another process may take the port meanwhile). */
int http_check_listen(const conf_t *conf, char *err, size_t errlen) CIO_MUST_CHECK;

/* Binds the listeners and starts the loops. `conf`, `meta`, `store`,
 * `commit` and `scrub` (storaged/scrub.h; NULL: none, /admin/scrub answers
 * 503) must outlive the server. On failure writes a reason into err and
 * returns CIO_ESYS or CIO_ECONFIG. */
struct scrub;
int http_start(http_server_t **out, const conf_t *conf, meta_t *meta, store_t *store, commit_t *commit, struct scrub *scrub,
               char *err, size_t errlen) CIO_MUST_CHECK;

/* Stops accepting, lets requests in flight finish and keep-alive connections
 * close (at most `grace_ms`), then parks the loop threads: the process is
 * expected to exit soon after. */
void http_stop(http_server_t *s, unsigned grace_ms);

/* On SIGHUP: reads the config file again and applies the targets'
 * bandwidth_limit (common/bwlimit.h: bwlimit_reload); nothing else of it.
 * Logs what changed, or the config error. */
void http_reload(http_server_t *s);

#endif
