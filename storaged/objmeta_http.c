/* objmeta_http.c - an object's metadata headers: PUT request -> blob -> GET/HEAD reply. */
#include <stdio.h>
#include <string.h>
#include "common/limits.h"
#include "storaged/objmeta_http.h"

/* The standard headers kept besides Content-Type, lower-case. */
static const char *const standard[] = {"cache-control", "content-disposition", "content-encoding", "content-language", "expires"};

static int kept(const h2o_iovec_t *name)
{
    if (name->len >= OBJMETA_USER_PREFIX_LEN && h2o_lcstris(name->base, OBJMETA_USER_PREFIX_LEN, H2O_STRLIT(OBJMETA_USER_PREFIX)))
        return 1;
    for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++)
        if (h2o_lcstris(name->base, name->len, standard[i], strlen(standard[i])))
            return 1;
    return 0;
}

int objmeta_http_read(h2o_req_t *req, uint8_t *blob, size_t *len, const char **code, char *err, size_t errlen)
{
    objmeta_pair_t pairs[OBJMETA_PAIRS_MAX];
    size_t n = 0, bad = 0, blob_len = 0;
    int ret;

    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (!kept(h->name))
            continue;
        if (n == OBJMETA_PAIRS_MAX) {
            *code = "MetadataTooLarge";
            snprintf(err, errlen, "more than %d metadata headers", OBJMETA_PAIRS_MAX);
            return CIO_ETOOBIG;
        }
        /* the name as the client sent it, for the message; stored lower-case */
        pairs[n].name = h->orig_name != NULL ? h->orig_name : h->name->base;
        pairs[n].name_len = h->name->len;
        pairs[n].value = h->value.base;
        pairs[n].value_len = h->value.len;
        n++;
    }
    if ((ret = objmeta_encode(pairs, n, blob, &blob_len, &bad)) != 0) {
        int nl = (int)(pairs[bad].name_len > 128 ? 128 : pairs[bad].name_len);
        const char *name = pairs[bad].name;
        if (ret == CIO_ETOOBIG) {
            *code = "MetadataTooLarge";
            if (pairs[bad].name_len >= OBJMETA_USER_PREFIX_LEN &&
                h2o_lcstris(name, OBJMETA_USER_PREFIX_LEN, H2O_STRLIT(OBJMETA_USER_PREFIX)))
                snprintf(err, errlen, "%.*s: the user metadata (X-Amz-Meta-*) exceeds " LIMIT_TEXT(LIMIT_OBJMETA_USER_MAX) " bytes",
                         nl, name);
            else
                snprintf(err, errlen, "%.*s: the object's metadata headers exceed " LIMIT_TEXT(LIMIT_OBJMETA_MAX) " bytes", nl,
                         name);
        } else {
            *code = "InvalidArgument";
            if (!objmeta_name_ok(name, pairs[bad].name_len))
                snprintf(err, errlen, "%.*s: not a valid metadata name (at most 255 bytes, with a name after X-Amz-Meta-)", nl,
                         name);
            else if (!objmeta_value_ok(pairs[bad].value, pairs[bad].value_len))
                snprintf(err, errlen, "%.*s: the value holds a control character", nl, name);
            else
                snprintf(err, errlen, "%.*s: the header is given twice", nl, name);
        }
        return ret;
    }
    *len = blob_len;
    return 0;
}

void objmeta_http_add(h2o_req_t *req, const uint8_t *blob, size_t len)
{
    objmeta_iter_t it;
    objmeta_pair_t p;

    objmeta_iter_init(&it, blob, len);
    while (objmeta_next(&it, &p)) {
        h2o_iovec_t name = h2o_strdup(&req->pool, p.name, p.name_len), value = h2o_strdup(&req->pool, p.value, p.value_len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
    }
}
