/* handler_conflicts.h - the operator's view of kept conflict losers:
 * GET /admin/conflicts[?bucket=B&max-keys=N&marker=M] (docs/api.md). */
#ifndef COMIO_HANDLER_CONFLICTS_H
#define COMIO_HANDLER_CONFLICTS_H

#include "storaged/http_req.h"

/* Lists the kept losers (common/conflict.h) as JSON, in pages of at most
 * max-keys (1..1000, default 1000); "next" is the marker of the next page
 * when "truncated". Needs the access token, like every /admin endpoint. */
int handler_conflicts_list(http_server_t *srv, h2o_req_t *req);

/* DELETE /admin/conflicts/{bucket}/{key}?version=V&origin=O: removes that
 * kept loser (and frees its bytes) on this site only: 204, 404
 * NoSuchConflict, or 400 for a malformed target. */
int handler_conflicts_delete(http_server_t *srv, h2o_req_t *req);

#endif
