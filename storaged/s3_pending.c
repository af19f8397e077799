/* s3_pending.c - TEMPORARY, delete at the merge: stand-ins for s3_checksum_check (storaged/s3_checksum.c), s3_list_objects and s3_delete_objects (branch s3list) until those land. */
#include "storaged/s3.h"
#include "storaged/s3_reply.h"

int s3_checksum_check(h2o_req_t *req, const s3_req_t *s)
{
    return 0;
}

int s3_list_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s, int v2)
{
    s3_error(req, 501, "NotImplemented", "ListObjects is not implemented yet", s->resource);
    return 0;
}

int s3_delete_objects(http_server_t *srv, h2o_req_t *req, const s3_req_t *s)
{
    s3_error(req, 501, "NotImplemented", "DeleteObjects is not implemented yet", s->resource);
    return 0;
}
