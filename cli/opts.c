/* opts.c - command-line option helpers shared by the comio subcommands. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "cli/opts.h"
#include "common/units.h"

int cli_opt_value(int argc, char **argv, int *i, const char *cmd, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "comio %s: %s needs a value\n", cmd, name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int cli_site_arg(int argc, char **argv, int *i, const char *cmd, cli_site_args_t *a)
{
    static const struct {
        const char *flag;
        size_t off;
    } flags[] = {
        {"--url", offsetof(cli_site_args_t, url)},
        {"--token", offsetof(cli_site_args_t, token)},
        {"--token-file", offsetof(cli_site_args_t, token_file)},
        {"--ca-file", offsetof(cli_site_args_t, ca_file)},
        {"--timeout", offsetof(cli_site_args_t, timeout)},
    };

    for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
        int r = cli_opt_value(argc, argv, i, cmd, flags[f].flag, (const char **)((char *)a + flags[f].off));
        if (r != 0)
            return r;
    }
    return 0;
}

int cli_site_resolve(const cli_site_args_t *a, const char *cmd, const char *default_url, cli_site_t *out)
{
    char err[CLI_HTTP_URL_MAX + 256];

    out->timeout_ms = CLI_HTTP_DEFAULT_TIMEOUT_MS;
    out->ca_file = a->ca_file;
    if (a->timeout != NULL && (units_parse_duration(a->timeout, &out->timeout_ms) != 0 || out->timeout_ms == 0)) {
        fprintf(stderr, "comio %s: --timeout '%s' is not a duration such as 5s or 500ms\n", cmd, a->timeout);
        return -1;
    }
    if (cli_http_base_url(a->url != NULL ? a->url : default_url, out->url, sizeof(out->url), err, sizeof(err)) != 0 ||
        cli_http_token(a->token, a->token_file, out->token, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio %s: %s\n", cmd, err);
        return -1;
    }
    return 0;
}

cli_http_opts_t cli_site_http_opts(const cli_site_t *s, size_t max_body)
{
    cli_http_opts_t o = {s->token[0] ? s->token : NULL, s->ca_file, s->timeout_ms, max_body};
    return o;
}
