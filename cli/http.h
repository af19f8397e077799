/* http.h - the CLI's HTTP client: GET requests to a ComIO site (libcurl, one
 * keep-alive connection per client), bearer tokens. URL escaping is common/percent.h. */
#ifndef COMIO_CLI_HTTP_H
#define COMIO_CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"

#define CLI_HTTP_TOKEN_MAX (LIMIT_TOKEN_MAX + 1) /* any token the config takes, and its NUL */
#define CLI_HTTP_DEFAULT_TIMEOUT_MS 10000
/* The longest site URL the CLI holds: a --url base, or a remote_url that
 * `comio status` shows (any configured URL fits). */
#define CLI_HTTP_URL_MAX 2048
_Static_assert(CLI_HTTP_URL_MAX > LIMIT_URL_MAX, "the CLI holds any configured URL");

typedef struct {
    const char *token;   /* sent as "Authorization: Bearer <token>"; NULL: none. Borrowed for the client's life */
    const char *ca_file; /* PEM bundle to trust for https:// instead of the system's; NULL: the system's. Borrowed */
    uint64_t timeout_ms; /* whole request, connection included; 0: CLI_HTTP_DEFAULT_TIMEOUT_MS */
    size_t max_body;     /* a longer reply body is an error */
} cli_http_opts_t;

typedef struct cli_http cli_http_t;

/* Creates a client (curl_global_init must have run). Returns NULL when out of
 * memory or when libcurl cannot be set up. */
cli_http_t *cli_http_new(const cli_http_opts_t *opts);

/* Closes the connection and frees the client (NULL is fine). */
void cli_http_free(cli_http_t *h);

/* GETs `url` (NUL-terminated) and stores the reply body in `body` (emptied
 * first; `body->max` is raised to opts.max_body) and the HTTP status in
 * *status. Redirects are not followed; only http:// and https:// are allowed.
 * Returns 0 when a reply arrived (any status), else CIO_EIO (no connection,
 * TLS failure, timeout: the reason is in err), CIO_ETOOBIG (body over
 * max_body) or CIO_ENOMEM. */
int cli_http_get(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen) CIO_MUST_CHECK;

/* The same as cli_http_get with a POST of an empty body. */
int cli_http_post(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen) CIO_MUST_CHECK;

/* Picks the token: `given` when not NULL, else the contents of `file` when
 * not NULL (surrounding whitespace removed), else $COMIO_TOKEN when set and
 * not empty, else none (*out = ""). A token must be 1 to CLI_HTTP_TOKEN_MAX-1
 * printable ASCII bytes without spaces. `out` holds CLI_HTTP_TOKEN_MAX bytes.
 * Returns 0, or CIO_ECONFIG with a reason in err. */
int cli_http_token(const char *given, const char *file, char *out, char *err, size_t errlen) CIO_MUST_CHECK;

/* Copies a site URL into out (cap bytes) without its trailing slashes.
 * Returns 0, or CIO_ECONFIG with a reason in err when it is not an http://
 * or https:// URL or does not fit. */
int cli_http_base_url(const char *url, char *out, size_t cap, char *err, size_t errlen) CIO_MUST_CHECK;

#endif
