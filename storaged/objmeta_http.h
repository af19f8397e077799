/* objmeta_http.h - an object's metadata headers on the HTTP side: read from
 * a PUT into the blob of common/objmeta.h, and added back to a GET or HEAD.
 *
 * The headers kept (docs/api.md): Content-Encoding, Content-Disposition,
 * Cache-Control, Expires, Content-Language and every X-Amz-Meta-* header
 * (any case; returned lower-case). Content-Type is not among them: the
 * object record keeps it apart, as it always has. Both functions run on the
 * loop thread that owns `req` (borrowed from h2o, storaged/http_req.h). */
#ifndef COMIO_OBJMETA_HTTP_H
#define COMIO_OBJMETA_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "common/err.h"
#include "common/objmeta.h"

/* Reads the metadata headers of req into blob (OBJMETA_MAX bytes) and sets
 * *len to the blob's length (0: the request has none). Returns 0, or:
 *   CIO_EINVAL  a value with a control character (CR, LF, NUL, ...), an
 *               X-Amz-Meta- header without a name after the prefix, or a
 *               header given twice;
 *   CIO_ETOOBIG the user metadata exceeds OBJMETA_USER_MAX bytes (names
 *               after the prefix plus values, as S3 counts) or the whole
 *               blob OBJMETA_MAX.
 * On error *code is the S3 error code to answer 400 with ("InvalidArgument"
 * or "MetadataTooLarge", static strings) and err (errlen bytes) a message
 * that names the offending header; nothing else is changed. */
int objmeta_http_read(h2o_req_t *req, uint8_t *blob, size_t *len, const char **code, char *err, size_t errlen) CIO_MUST_CHECK;

/* Adds a response header for each pair of blob[0..len) (a valid blob: an
 * object record's), names and values copied into req's pool. */
void objmeta_http_add(h2o_req_t *req, const uint8_t *blob, size_t len);

#endif
