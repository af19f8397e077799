/* http.c - the CLI's HTTP client on one libcurl easy handle per site. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "cli/http.h"
#include "common/curlopt.h"

struct cli_http {
    CURL *curl;
    struct curl_slist *headers;
    size_t max_body;
    char curl_error[CURL_ERROR_SIZE];
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    buf_t *body = ctx;
    return buf_append(body, p, size * n) == 0 ? size * n : 0; /* 0 makes curl stop with CURLE_WRITE_ERROR */
}

cli_http_t *cli_http_new(const cli_http_opts_t *opts)
{
    cli_http_t *h = calloc(1, sizeof(*h));
    long timeout = (long)(opts->timeout_ms ? opts->timeout_ms : CLI_HTTP_DEFAULT_TIMEOUT_MS);
    curlopt_t shared = {.agent = "comio", .ca_file = opts->ca_file, .connect_timeout_ms = timeout, .timeout_ms = timeout};
    int ok = 1;

    if (h == NULL || (h->curl = curl_easy_init()) == NULL)
        goto fail;
    h->max_body = opts->max_body;
    if (opts->token != NULL && opts->token[0] != '\0') {
        char auth[CLI_HTTP_TOKEN_MAX + 32];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", opts->token);
        if ((h->headers = curl_slist_append(NULL, auth)) == NULL)
            goto fail;
    }
    if (curlopt_apply(h->curl, &shared) != 0)
        goto fail;
    ok &= curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->curl_error) == CURLE_OK;
    ok &= curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
    if (h->headers != NULL)
        ok &= curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers) == CURLE_OK;
    if (!ok)
        goto fail;
    return h;
fail:
    cli_http_free(h);
    return NULL;
}

void cli_http_free(cli_http_t *h)
{
    if (h == NULL)
        return;
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h);
}

static int perform(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen);

int cli_http_get(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen)
{
    curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    return perform(h, url, body, status, err, errlen);
}

int cli_http_post(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen)
{
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, 0L);
    int ret = perform(h, url, body, status, err, errlen);
    curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    return ret;
}

static int perform(cli_http_t *h, const char *url, buf_t *body, long *status, char *err, size_t errlen)
{
    /* reuse the body's memory from one page to the next: a diff of any size
     * keeps the largest reply, not one allocation per page */
    body->len = 0;
    body->err = 0;
    body->max = h->max_body;
    *status = 0;
    h->curl_error[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(h->curl);
    if (rc == CURLE_WRITE_ERROR && body->err != 0) {
        if (body->err == CIO_ETOOBIG)
            snprintf(err, errlen, "%s: reply larger than %zu bytes", url, h->max_body);
        else
            snprintf(err, errlen, "%s: out of memory", url);
        return body->err;
    }
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", url, h->curl_error[0] ? h->curl_error : curl_easy_strerror(rc));
        return CIO_EIO;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

static int read_token_file(const char *path, char *out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    if (fp == NULL) {
        snprintf(err, errlen, "cannot open token file %s: %s", path, strerror(errno));
        return CIO_ECONFIG;
    }
    n = fread(out, 1, CLI_HTTP_TOKEN_MAX, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        snprintf(err, errlen, "cannot read token file %s", path);
        return CIO_ECONFIG;
    }
    if (n == CLI_HTTP_TOKEN_MAX) {
        snprintf(err, errlen, "token file %s is longer than %d bytes", path, CLI_HTTP_TOKEN_MAX - 1);
        return CIO_ECONFIG;
    }
    out[n] = '\0';
    /* trim surrounding whitespace (an editor's final newline) */
    while (n > 0 && isspace((unsigned char)out[n - 1]))
        out[--n] = '\0';
    size_t lead = 0;
    while (out[lead] != '\0' && isspace((unsigned char)out[lead]))
        lead++;
    memmove(out, out + lead, n - lead + 1);
    return 0;
}

int cli_http_token(const char *given, const char *file, char *out, char *err, size_t errlen)
{
    const char *env = getenv("COMIO_TOKEN");
    const char *from = "--token";
    int ret;

    out[0] = '\0';
    if (given != NULL) {
        if (strlen(given) >= CLI_HTTP_TOKEN_MAX) {
            snprintf(err, errlen, "the token is longer than %d bytes", CLI_HTTP_TOKEN_MAX - 1);
            return CIO_ECONFIG;
        }
        strcpy(out, given);
    } else if (file != NULL) {
        if ((ret = read_token_file(file, out, err, errlen)) != 0)
            return ret;
        from = "the token file";
    } else if (env != NULL && env[0] != '\0') {
        if (strlen(env) >= CLI_HTTP_TOKEN_MAX) {
            snprintf(err, errlen, "COMIO_TOKEN is longer than %d bytes", CLI_HTTP_TOKEN_MAX - 1);
            return CIO_ECONFIG;
        }
        strcpy(out, env);
        from = "COMIO_TOKEN";
    } else {
        return 0;
    }
    if (out[0] == '\0') {
        snprintf(err, errlen, "%s is empty", from);
        return CIO_ECONFIG;
    }
    for (const char *p = out; *p != '\0'; p++)
        if (*p <= ' ' || *p > '~') {
            snprintf(err, errlen, "%s holds a byte that cannot go in an HTTP header (space, control or non-ASCII)", from);
            out[0] = '\0';
            return CIO_ECONFIG;
        }
    return 0;
}

int cli_http_base_url(const char *url, char *out, size_t cap, char *err, size_t errlen)
{
    size_t n = strlen(url);

    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "'%s' is not an http:// or https:// URL", url);
        return CIO_ECONFIG;
    }
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n >= cap) {
        snprintf(err, errlen, "the URL is longer than %zu bytes", cap - 1);
        return CIO_ECONFIG;
    }
    if (memchr(url, '?', n) != NULL || memchr(url, '#', n) != NULL) {
        snprintf(err, errlen, "'%s': give the site's base URL, without a query", url);
        return CIO_ECONFIG;
    }
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}
