/* http_precond.c - conditional requests: RFC 9110's preconditions over an object's ETag and Last-Modified. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "storaged/http_precond.h"

#define DATE_MAX 64 /* longest HTTP-date form is 29 bytes; anything past this is not one */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One entity-tag from a list at *pos: sets *tag to the quoted opaque tag and
 * *weak. Returns 1 for a tag, 2 for "*", 0 at the end of the list, -1 when
 * the list does not parse. */
static int next_tag(h2o_iovec_t list, size_t *pos, h2o_iovec_t *tag, int *weak)
{
    size_t i = *pos, start;

    while (i < list.len && (is_ows(list.base[i]) || list.base[i] == ','))
        i++;
    if (i == list.len) {
        *pos = i;
        return 0;
    }
    *weak = 0;
    if (list.base[i] == '*') {
        *pos = i + 1;
        return 2;
    }
    if (list.len - i >= 2 && list.base[i] == 'W' && list.base[i + 1] == '/') {
        *weak = 1;
        i += 2;
    }
    if (i == list.len || list.base[i] != '"')
        return -1;
    start = i++;
    while (i < list.len && list.base[i] != '"')
        i++;
    if (i == list.len)
        return -1;
    *tag = h2o_iovec_init(list.base + start, i + 1 - start);
    i++;
    while (i < list.len && is_ows(list.base[i]))
        i++;
    if (i < list.len && list.base[i] != ',')
        return -1;
    *pos = i;
    return 1;
}

/* Does the list name the current ETag? `strong` asks for RFC 9110's strong
 * comparison (a weak tag never matches), else the weak one. "*" matches any
 * current object. A list that does not parse matches nothing. */
static int list_matches(h2o_iovec_t list, h2o_iovec_t etag, int strong)
{
    size_t pos = 0;
    h2o_iovec_t tag;
    int weak, rc, found = 0;

    while ((rc = next_tag(list, &pos, &tag, &weak)) > 0) {
        if (rc == 2)
            found |= etag.base != NULL;
        else if (etag.base != NULL && !(strong && weak) && h2o_memis(tag.base, tag.len, etag.base, etag.len))
            found = 1;
    }
    return rc == 0 && found;
}

int http_precond_parse_date(h2o_iovec_t v, int64_t *out)
{
    static const char *const forms[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        "%a %b %e %H:%M:%S %Y",      /* asctime: Sun Nov  6 08:49:37 1994 */
    };
    char s[DATE_MAX];

    if (v.base == NULL || v.len == 0 || v.len >= sizeof(s))
        return CIO_EINVAL;
    memcpy(s, v.base, v.len);
    s[v.len] = '\0';
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(s, forms[i], &tm);
        if (end != NULL && *end == '\0') {
            *out = (int64_t)timegm(&tm);
            return 0;
        }
    }
    return CIO_EINVAL;
}

int http_precond_eval(const http_precond_t *h, h2o_iovec_t etag, int64_t mtime, int read)
{
    int64_t date;

    /* 1 and 2: the client's copy must still be current */
    if (h->if_match.base != NULL) {
        if (!list_matches(h->if_match, etag, 1))
            return HTTP_PRECOND_FAILED;
    } else if (h->if_unmodified_since.base != NULL && etag.base != NULL &&
               http_precond_parse_date(h->if_unmodified_since, &date) == 0 && mtime > date) {
        return HTTP_PRECOND_FAILED;
    }
    /* 3 and 4: the client's copy is not to be sent or overwritten again */
    if (h->if_none_match.base != NULL) {
        if (list_matches(h->if_none_match, etag, 0))
            return read ? HTTP_PRECOND_NOT_MODIFIED : HTTP_PRECOND_FAILED;
    } else if (read && h->if_modified_since.base != NULL && etag.base != NULL &&
               http_precond_parse_date(h->if_modified_since, &date) == 0 && mtime <= date) {
        return HTTP_PRECOND_NOT_MODIFIED;
    }
    return HTTP_PRECOND_PASS;
}

int http_precond_if_range(h2o_iovec_t if_range, h2o_iovec_t etag, int64_t mtime)
{
    int64_t date;
    size_t i = 0;

    if (if_range.base == NULL)
        return 1;
    while (i < if_range.len && is_ows(if_range.base[i]))
        i++;
    if_range = h2o_iovec_init(if_range.base + i, if_range.len - i);
    while (if_range.len > 0 && is_ows(if_range.base[if_range.len - 1]))
        if_range.len--;
    if (if_range.len >= 2 && if_range.base[0] == 'W' && if_range.base[1] == '/')
        return 0; /* a weak entity-tag never matches */
    if (if_range.len > 0 && if_range.base[0] == '"')
        return etag.base != NULL && h2o_memis(if_range.base, if_range.len, etag.base, etag.len);
    return http_precond_parse_date(if_range, &date) == 0 && date == mtime;
}

/* Which of http_precond_t's headers `name` is (an index into the `out` of
 * http_precond_from_req), or -1. h2o names every header it knows by its token,
 * so a pointer is compared, not a name; its length picks the one to compare
 * with (most headers are none of these: one load and a switch). */
static int precond_index(const h2o_iovec_t *name)
{
    switch (name->len) {
    case 5:
        return name == &H2O_TOKEN_RANGE->buf ? 5 : -1;
    case 8:
        return name == &H2O_TOKEN_IF_MATCH->buf ? 0 : name == &H2O_TOKEN_IF_RANGE->buf ? 4 : -1;
    case 13:
        return name == &H2O_TOKEN_IF_NONE_MATCH->buf ? 1 : -1;
    case 17:
        return name == &H2O_TOKEN_IF_MODIFIED_SINCE->buf ? 2 : -1;
    case 19:
        return name == &H2O_TOKEN_IF_UNMODIFIED_SINCE->buf ? 3 : -1;
    default:
        return -1;
    }
}

void http_precond_from_req(h2o_req_t *req, http_precond_t *h)
{
    h2o_iovec_t *out[] = {&h->if_match, &h->if_none_match, &h->if_modified_since, &h->if_unmodified_since, &h->if_range, &h->range};
    unsigned seen[6] = {0};

    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < req->headers.size; i++) {
        int k = precond_index(req->headers.entries[i].name);
        if (k < 0)
            continue;
        if (seen[k]++ == 0)
            *out[k] = req->headers.entries[i].value;
        else if (k < 2) /* a list header that came in several lines is one list (RFC 9110 5.3) */
            *out[k] = h2o_concat(&req->pool, *out[k], h2o_iovec_init(H2O_STRLIT(", ")), req->headers.entries[i].value);
    }
    for (size_t k = 2; k < 4; k++) /* a date is one value: a repeated one is invalid, hence ignored */
        if (seen[k] > 1)
            *out[k] = h2o_iovec_init(NULL, 0);
}
