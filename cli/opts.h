/* opts.h - command-line option helpers shared by the comio subcommands. */
#ifndef COMIO_CLI_OPTS_H
#define COMIO_CLI_OPTS_H

#include <stdint.h>
#include "cli/http.h"

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE". Returns 1 with
 * *val set (pointing into argv; *i moved past a separate value), 0 when
 * argv[*i] is another option, -1 when the value is missing (then
 * "comio CMD: --name needs a value" is printed on stderr). */
int cli_opt_value(int argc, char **argv, int *i, const char *cmd, const char *name, const char **val);

/* How a subcommand that talks to one site reaches it: --url, --token,
 * --token-file, --ca-file and --timeout as given (NULL: not given). */
typedef struct {
    const char *url, *token, *token_file, *ca_file, *timeout;
} cli_site_args_t;

/* Takes argv[*i] when it is one of the cli_site_args_t flags, like
 * cli_opt_value: 1 taken, 0 another option, -1 its value is missing. */
int cli_site_arg(int argc, char **argv, int *i, const char *cmd, cli_site_args_t *a);

/* What cli_site_resolve makes of cli_site_args_t. */
typedef struct {
    char url[CLI_HTTP_URL_MAX]; /* the base URL, without a trailing slash */
    char token[CLI_HTTP_TOKEN_MAX];
    uint64_t timeout_ms;
    const char *ca_file;
} cli_site_t;

/* Checks and resolves `a` for subcommand `cmd`: the URL (default_url when
 * none was given), the token (--token, --token-file or COMIO_TOKEN; see
 * cli_http_token) and the timeout (a duration such as 5s; default
 * CLI_HTTP_DEFAULT_TIMEOUT_MS). Returns 0, or -1 after printing
 * "comio CMD: <why>" on stderr (a usage error). */
int cli_site_resolve(const cli_site_args_t *a, const char *cmd, const char *default_url, cli_site_t *out);

/* The client options for `s`: its token (if any), CA file and timeout, and
 * replies of at most max_body bytes. */
cli_http_opts_t cli_site_http_opts(const cli_site_t *s, size_t max_body);

#endif
