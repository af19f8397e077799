/* conflicts.c - "comio conflicts": lists the losers of concurrent writes a site keeps (GET /admin/conflicts). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/conflicts.h"
#include "cli/http.h"
#include "cli/opts.h"
#include "common/bucket.h"
#include "common/json.h"
#include "common/limits.h"

#define CONFLICTS_REPLY_MAX (16 << 20)
#define CONFLICTS_DEFAULT_URL "http://127.0.0.1:8080"
#define CONFLICTS_PAGES_MAX 100000 /* bounds the walk should a site answer "truncated" for ever */

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static void usage(FILE *out)
{
    fprintf(out, "usage: comio conflicts [--url URL] [--bucket BUCKET] [--json] [--token TOKEN | --token-file FILE]\n"
                 "                       [--ca-file FILE] [--timeout DURATION]\n"
                 "\n"
                 "Lists the losers of concurrent writes that the site at URL (default " CONFLICTS_DEFAULT_URL ") keeps:\n"
                 "one line per loser: bucket, key, the losing version and its site, PUT (with its size) or DELETE,\n"
                 "the version it lost to and its site.\n"
                 "\n"
                 "  --url URL            the site's storaged, http:// or https://\n"
                 "  --bucket BUCKET      only this bucket's\n"
                 "  --json               print {\"conflicts\":[...]}: every record as the site gives it\n"
                 "  --token TOKEN        server.access_token of the site (else --token-file, else $COMIO_TOKEN)\n"
                 "  --token-file FILE    read the token from FILE\n"
                 "  --ca-file FILE       trust the CA certificates in FILE (PEM) for https://\n"
                 "  --timeout DURATION   give up on a page after this long, e.g. 5s (default 10s)\n"
                 "\n"
                 "exit status: 0 the list was printed (empty or not); 2 usage; 3 it could not be had.\n");
}

/* Prints one record as a line; 0, or -1 when it lacks a field. */
static int print_line(const json_doc_t *d, const json_tok_t *rec)
{
    char bucket[LIMIT_BUCKET_MAX + 1], key[LIMIT_KEY_MAX + 1], lo[LIMIT_SITE_ID_MAX + 1], wo[LIMIT_SITE_ID_MAX + 1], op[16];
    uint64_t lv, wv, size = 0;
    size_t n;
    const json_tok_t *loser = json_member(d, rec, "loser"), *winner = json_member(d, rec, "winner");

    if (loser == NULL || winner == NULL || json_str(d, json_member(d, rec, "bucket"), bucket, sizeof(bucket), &n) != 0 ||
        json_str(d, json_member(d, rec, "key"), key, sizeof(key), &n) != 0 ||
        json_u64(d, json_member(d, loser, "version"), &lv) != 0 ||
        json_str(d, json_member(d, loser, "origin"), lo, sizeof(lo), &n) != 0 ||
        json_str(d, json_member(d, loser, "op"), op, sizeof(op), &n) != 0 ||
        json_u64(d, json_member(d, winner, "version"), &wv) != 0 ||
        json_str(d, json_member(d, winner, "origin"), wo, sizeof(wo), &n) != 0)
        return -1;
    if (strcmp(op, "PUT") == 0 && json_u64(d, json_member(d, loser, "size"), &size) != 0)
        return -1;
    if (strcmp(op, "PUT") == 0)
        printf("%s\t%s\t%" PRIu64 "\t%s\tPUT %" PRIu64 " bytes\tlost to %" PRIu64 "\t%s\n", bucket, key, lv, lo, size, wv, wo);
    else
        printf("%s\t%s\t%" PRIu64 "\t%s\tDELETE\tlost to %" PRIu64 "\t%s\n", bucket, key, lv, lo, wv, wo);
    return 0;
}

int conflicts_main(int argc, char **argv)
{
    cli_site_args_t args = {0};
    cli_site_t site;
    const char *bucket = NULL;
    char target[CLI_HTTP_URL_MAX + 2048], err[CLI_HTTP_URL_MAX + 256];
    char marker[1024] = "";
    int as_json = 0, exit_status = EXIT_UNREACHABLE, printed = 0;
    cli_http_t *http = NULL;
    json_doc_t doc;
    buf_t body;
    long code;

    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1, r = 1;
        if (r == 0)
            r = cli_site_arg(argc, argv, &i, "conflicts", &args);
        if (r == 0)
            r = cli_opt_value(argc, argv, &i, "conflicts", "--bucket", &bucket);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "comio conflicts: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (bucket != NULL && !bucket_name_valid(bucket, strlen(bucket))) {
        fprintf(stderr, "comio conflicts: --bucket '%s' is not a bucket name\n", bucket);
        return EXIT_USAGE;
    }
    if (cli_site_resolve(&args, "conflicts", CONFLICTS_DEFAULT_URL, &site) != 0)
        return EXIT_USAGE;

    cli_http_opts_t opts = cli_site_http_opts(&site, CONFLICTS_REPLY_MAX);
    buf_init(&body, CONFLICTS_REPLY_MAX);
    json_init(&doc, 1 << 20, 16);
    if ((http = cli_http_new(&opts)) == NULL) {
        fprintf(stderr, "comio conflicts: cannot set up libcurl\n");
        goto done;
    }
    if (as_json)
        fputs("{\"conflicts\":[", stdout);
    for (int page = 0; page < CONFLICTS_PAGES_MAX; page++) {
        const json_tok_t *root, *list, *rec;
        int truncated = 0;
        size_t n;

        snprintf(target, sizeof(target), "%s/admin/conflicts?max-keys=1000%s%s%s%s", site.url, bucket ? "&bucket=" : "",
                 bucket ? bucket : "", marker[0] ? "&marker=" : "", marker);
        body.len = 0;
        if (cli_http_get(http, target, &body, &code, err, sizeof(err)) != 0) {
            fprintf(stderr, "comio conflicts: cannot reach the site: %s\n", err);
            goto done;
        }
        if (code != 200) {
            fprintf(stderr, "comio conflicts: %s answered %ld%s: %.*s\n", target, code,
                    code == 401 ? " (the site needs its access token: --token, --token-file or COMIO_TOKEN)" : "",
                    (int)(body.len > 300 ? 300 : body.len), body.data ? body.data : "");
            goto done;
        }
        if (json_parse(&doc, body.data ? body.data : "", body.len, err, sizeof(err)) != 0 || (root = json_root(&doc)) == NULL ||
            (list = json_member(&doc, root, "conflicts")) == NULL ||
            json_bool(json_member(&doc, root, "truncated"), &truncated) != 0) {
            fprintf(stderr, "comio conflicts: %s: unexpected reply: %s\n", target, err);
            goto done;
        }
        for (rec = json_first(&doc, list); rec != NULL; rec = json_next(&doc, list, rec)) {
            if (as_json) {
                fputs(printed++ ? "," : "", stdout);
                fwrite(body.data + rec->start, 1, rec->len, stdout);
            } else if (print_line(&doc, rec) != 0) {
                fprintf(stderr, "comio conflicts: %s: unexpected record\n", target);
                goto done;
            }
        }
        if (!truncated)
            break;
        if (json_str(&doc, json_member(&doc, root, "next"), marker, sizeof(marker), &n) != 0 || n == 0) {
            fprintf(stderr, "comio conflicts: %s: a truncated page without a usable \"next\"\n", target);
            goto done;
        }
    }
    if (as_json)
        fputs("]}\n", stdout);
    exit_status = EXIT_OK;
done:
    if (fflush(stdout) != 0 && exit_status != EXIT_UNREACHABLE)
        exit_status = EXIT_UNREACHABLE;
    cli_http_free(http);
    json_free(&doc);
    buf_free(&body);
    return exit_status;
}
