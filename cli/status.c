/* status.c - "comio status": fetches a site's replication status, prints it
 * aligned for people or as JSON, and turns it into an exit status for alerts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "cli/http.h"
#include "cli/opts.h"
#include "common/json.h"
#include "cli/status.h"
#include "common/units.h"

#define STATUS_REPLY_MAX (1 << 20)
#define STATUS_DEFAULT_URL "http://127.0.0.1:8080"

enum { EXIT_OK = 0, EXIT_ALERT = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define STATUS_TARGETS_MAX 32 /* targets printed; the JSON (--json) has them all */

/* One entry of "targets". */
typedef struct {
    char name[64], url[CLI_HTTP_URL_MAX], state[16], site[256], error[512];
    char sync[16], fallback[8]; /* from "sync_targets": "" for an async target, else "sync" or "degraded" */
    uint64_t sync_timeout_ms;
    uint64_t pending, bytes_pending, replicated, skipped, failed;
    double lag;
    /* its full sync; have_sync 0 from a site older than full sync */
    int have_sync;
    char sync_phase[16], sync_reason[32], sync_bucket[64];
    uint64_t sync_scanned, sync_shipped, sync_skipped, sync_failed, sync_extra;
    uint64_t sync_deleted; /* keys only the target held, deleted there (0 from a site that does not say) */
    int sync_dry_run;
    double sync_rate, sync_seconds, sync_eta; /* eta < 0: unknown */
} target_t;

typedef struct {
    int enabled;
    char repld[16];
    uint64_t queued, replicated, failed, pending, bytes_pending, bytes_replicated, head;
    double lag;
    char last[40]; /* "" when never */
    int have_remote;
    char remote_url[CLI_HTTP_URL_MAX], remote_state[16], remote_error[512];
    double retry_in;
    unsigned workers, sending;
    uint64_t in_flight;
    int have_skew; /* a site older than clock_skew_events does not send it */
    uint64_t skew;
    int have_conflicts; /* nor one older than conflicts */
    uint64_t conflicts, kept;
    size_t ntargets, targets_total;
    target_t targets[STATUS_TARGETS_MAX];
    size_t nsync; /* entries of "sync_targets" */
} status_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: comio status [--url URL] [--json] [--token TOKEN | --token-file FILE] [--ca-file FILE]\n"
                 "                    [--timeout DURATION] [--max-lag DURATION]\n"
                 "\n"
                 "Prints the replication status of the site at URL (default " STATUS_DEFAULT_URL ").\n"
                 "\n"
                 "  --url URL            the site's storaged, http:// or https://\n"
                 "  --json               print the site's JSON as it came\n"
                 "  --token TOKEN        server.access_token of the site (else --token-file, else $COMIO_TOKEN)\n"
                 "  --token-file FILE    read the token from FILE\n"
                 "  --ca-file FILE       trust the CA certificates in FILE (PEM) for https://\n"
                 "  --timeout DURATION   give up after this long, e.g. 5s (default 10s)\n"
                 "  --max-lag DURATION   also alert when the oldest pending event is older, e.g. 30s\n"
                 "\n"
                 "exit status: 0 ok; 1 a problem worth an alert (failed events, repld down, replica not\n"
                 "answering, lag over --max-lag); 2 usage; 3 the status could not be had.\n");
}

static void human_bytes(uint64_t v, char *out, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double x = (double)v;
    size_t u = 0;
    if (v < 1024) {
        snprintf(out, cap, "%" PRIu64 " B", v);
        return;
    }
    x /= 1024;
    while (x >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s (%" PRIu64 " bytes)", x, units[u], v);
}

/* Copies s, replacing control bytes so that a remote's error text cannot
 * move the cursor or forge lines. */
static void printable(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s != '\0' && n + 1 < cap; s++)
        out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    out[n] = '\0';
}

static int need_u64(const json_doc_t *d, const json_tok_t *root, const char *name, uint64_t *out, char *err, size_t errlen)
{
    if (json_u64(d, json_member(d, root, name), out) != 0) {
        snprintf(err, errlen, "\"%s\" is missing or not a count", name);
        return CIO_EPROTO;
    }
    return 0;
}

static int need_str(const json_doc_t *d, const json_tok_t *t, const char *name, char *out, size_t cap, char *err, size_t errlen)
{
    if (json_str(d, t, out, cap, NULL) != 0) {
        snprintf(err, errlen, "\"%s\" is missing or not a string", name);
        return CIO_EPROTO;
    }
    return 0;
}

/* Reads the fields of the status reply (docs/api.md) into st. */
static int decode(const json_doc_t *d, status_t *st, char *err, size_t errlen)
{
    const json_tok_t *root = json_root(d), *t;
    int ret;

    memset(st, 0, sizeof(*st));
    if (root == NULL || root->type != JSON_OBJECT) {
        snprintf(err, errlen, "the reply is not a JSON object");
        return CIO_EPROTO;
    }
    if (json_bool(json_member(d, root, "enabled"), &st->enabled) != 0) {
        snprintf(err, errlen, "\"enabled\" is missing or not a boolean");
        return CIO_EPROTO;
    }
    if ((ret = need_str(d, json_member(d, root, "repld"), "repld", st->repld, sizeof(st->repld), err, errlen)) != 0 ||
        (ret = need_u64(d, root, "events_queued", &st->queued, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "events_replicated", &st->replicated, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "events_failed", &st->failed, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "events_pending", &st->pending, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "bytes_pending", &st->bytes_pending, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "bytes_replicated", &st->bytes_replicated, err, errlen)) != 0 ||
        (ret = need_u64(d, root, "log_head_seq", &st->head, err, errlen)) != 0)
        return ret;
    if (json_double(d, json_member(d, root, "lag_seconds"), &st->lag) != 0 || st->lag < 0) {
        snprintf(err, errlen, "\"lag_seconds\" is missing or not a duration");
        return CIO_EPROTO;
    }
    t = json_member(d, root, "last_replication");
    if (t != NULL && t->type != JSON_NULL &&
        (ret = need_str(d, t, "last_replication", st->last, sizeof(st->last), err, errlen)) != 0)
        return ret;
    t = json_member(d, root, "remote");
    if (t != NULL && t->type == JSON_OBJECT) {
        char raw[sizeof(st->remote_error)];
        st->have_remote = 1;
        if ((ret = need_str(d, json_member(d, t, "url"), "remote.url", st->remote_url, sizeof(st->remote_url), err, errlen)) != 0 ||
            (ret = need_str(d, json_member(d, t, "state"), "remote.state", st->remote_state, sizeof(st->remote_state), err,
                            errlen)) != 0)
            return ret;
        if (json_str(d, json_member(d, t, "last_error"), raw, sizeof(raw), NULL) == 0)
            printable(raw, st->remote_error, sizeof(st->remote_error));
        if (json_double(d, json_member(d, t, "retry_in_seconds"), &st->retry_in) != 0)
            st->retry_in = 0;
    }
    st->have_skew = json_u64(d, json_member(d, root, "clock_skew_events"), &st->skew) == 0;
    st->have_conflicts = json_u64(d, json_member(d, root, "conflicts"), &st->conflicts) == 0 &&
                         json_u64(d, json_member(d, root, "conflicts_kept"), &st->kept) == 0;
    const json_tok_t *targets = json_member(d, root, "targets");
    for (t = json_first(d, targets); t != NULL; t = json_next(d, targets, t)) {
        target_t *g = &st->targets[st->ntargets];
        char raw[sizeof(g->error)];
        st->targets_total++;
        if (st->ntargets == STATUS_TARGETS_MAX)
            continue;
        memset(g, 0, sizeof(*g));
        if ((ret = need_str(d, json_member(d, t, "name"), "targets[].name", raw, sizeof(g->name), err, errlen)) != 0)
            return ret;
        printable(raw, g->name, sizeof(g->name));
        if (json_str(d, json_member(d, t, "url"), raw, sizeof(g->url), NULL) == 0)
            printable(raw, g->url, sizeof(g->url));
        if (json_str(d, json_member(d, t, "state"), raw, sizeof(g->state), NULL) == 0)
            printable(raw, g->state, sizeof(g->state));
        if (json_str(d, json_member(d, t, "site"), raw, sizeof(g->site), NULL) == 0)
            printable(raw, g->site, sizeof(g->site));
        if (json_str(d, json_member(d, t, "last_error"), raw, sizeof(raw), NULL) == 0)
            printable(raw, g->error, sizeof(g->error));
        if (json_u64(d, json_member(d, t, "events_pending"), &g->pending) != 0 ||
            json_u64(d, json_member(d, t, "bytes_pending"), &g->bytes_pending) != 0 ||
            json_u64(d, json_member(d, t, "events_replicated"), &g->replicated) != 0 ||
            json_double(d, json_member(d, t, "lag_seconds"), &g->lag) != 0) {
            snprintf(err, errlen, "target \"%s\": a count or the lag is missing", g->name);
            return CIO_EPROTO;
        }
        if (json_u64(d, json_member(d, t, "events_skipped"), &g->skipped) != 0)
            g->skipped = 0;
        if (json_u64(d, json_member(d, t, "events_failed"), &g->failed) != 0)
            g->failed = 0;
        const json_tok_t *sy = json_member(d, t, "sync");
        if (sy != NULL && json_str(d, json_member(d, sy, "phase"), raw, sizeof(g->sync_phase), NULL) == 0) {
            g->have_sync = 1;
            printable(raw, g->sync_phase, sizeof(g->sync_phase));
            if (json_str(d, json_member(d, sy, "reason"), raw, sizeof(g->sync_reason), NULL) == 0)
                printable(raw, g->sync_reason, sizeof(g->sync_reason));
            if (json_str(d, json_member(d, sy, "bucket"), raw, sizeof(g->sync_bucket), NULL) == 0)
                printable(raw, g->sync_bucket, sizeof(g->sync_bucket));
            if (json_u64(d, json_member(d, sy, "objects_scanned"), &g->sync_scanned) != 0 ||
                json_u64(d, json_member(d, sy, "objects_shipped"), &g->sync_shipped) != 0 ||
                json_u64(d, json_member(d, sy, "objects_skipped"), &g->sync_skipped) != 0 ||
                json_u64(d, json_member(d, sy, "objects_failed"), &g->sync_failed) != 0 ||
                json_u64(d, json_member(d, sy, "objects_extra"), &g->sync_extra) != 0 ||
                json_double(d, json_member(d, sy, "objects_per_second"), &g->sync_rate) != 0 ||
                json_double(d, json_member(d, sy, "duration_seconds"), &g->sync_seconds) != 0)
                g->have_sync = 0;
            if (json_double(d, json_member(d, sy, "eta_seconds"), &g->sync_eta) != 0)
                g->sync_eta = -1;
            if (json_u64(d, json_member(d, sy, "objects_deleted"), &g->sync_deleted) != 0)
                g->sync_deleted = 0;
            g->sync_dry_run = json_member(d, sy, "dry_run") != NULL && json_member(d, sy, "dry_run")->type == JSON_TRUE;
        }
        st->ntargets++;
    }
    /* storaged's part: the sync targets' state, matched to the targets by name */
    const json_tok_t *syncs = json_member(d, root, "sync_targets");
    for (t = json_first(d, syncs); t != NULL; t = json_next(d, syncs, t)) {
        char raw[64], name[64];
        st->nsync++;
        if (json_str(d, json_member(d, t, "name"), raw, sizeof(raw), NULL) != 0)
            continue;
        printable(raw, name, sizeof(name));
        for (size_t i = 0; i < st->ntargets; i++) {
            target_t *g = &st->targets[i];
            if (strcmp(g->name, name) != 0)
                continue;
            if (json_str(d, json_member(d, t, "state"), raw, sizeof(g->sync), NULL) == 0)
                printable(raw, g->sync, sizeof(g->sync));
            if (json_str(d, json_member(d, t, "fallback"), raw, sizeof(g->fallback), NULL) == 0)
                printable(raw, g->fallback, sizeof(g->fallback));
            if (json_u64(d, json_member(d, t, "timeout_ms"), &g->sync_timeout_ms) != 0)
                g->sync_timeout_ms = 0;
        }
    }
    const json_tok_t *workers = json_member(d, root, "workers");
    for (t = json_first(d, workers); t != NULL; t = json_next(d, workers, t)) {
        uint64_t events = 0;
        st->workers++;
        if (json_str_eq(d, json_member(d, t, "state"), "sending"))
            st->sending++;
        if (json_u64(d, json_member(d, t, "events"), &events) == 0)
            st->in_flight += events;
    }
    return 0;
}

static void line(const char *key, const char *value)
{
    char k[32];
    snprintf(k, sizeof(k), "%s:", key);
    printf("%-19s %s\n", k, value);
}

static void print_status(const char *url, const status_t *st)
{
    char v[CLI_HTTP_URL_MAX + 600], a[64], b[64];

    line("site", url);
    line("replication", !st->enabled ? "disabled" : st->nsync > 0 ? "enabled (sync to some targets)" : "enabled (async)");
    line("repld", st->repld);
    if (st->have_remote) {
        char safe_url[CLI_HTTP_URL_MAX];
        printable(st->remote_url, safe_url, sizeof(safe_url));
        if (strcmp(st->remote_state, "backing_off") == 0)
            snprintf(v, sizeof(v), "%s, backing_off (retry in %.1f s)", safe_url, st->retry_in);
        else
            snprintf(v, sizeof(v), "%s, %s", safe_url, st->remote_state);
        line("remote", v);
        if (st->remote_error[0] != '\0')
            line("remote error", st->remote_error);
    } else {
        line("remote", st->enabled ? "unknown (repld is not running)" : "-");
    }
    snprintf(v, sizeof(v), "%" PRIu64, st->queued);
    line("events queued", v);
    snprintf(v, sizeof(v), "%" PRIu64, st->replicated);
    line("events replicated", v);
    snprintf(v, sizeof(v), "%" PRIu64, st->pending);
    line("events pending", v);
    human_bytes(st->bytes_pending, a, sizeof(a));
    line("bytes pending", a);
    snprintf(v, sizeof(v), "%" PRIu64, st->failed);
    line("events failed", v);
    snprintf(v, sizeof(v), "%.0f ms", st->lag * 1000);
    line("lag", v);
    line("last replication", st->last[0] ? st->last : "never");
    human_bytes(st->bytes_replicated, b, sizeof(b));
    line("bytes replicated", b);
    snprintf(v, sizeof(v), "%" PRIu64, st->head);
    line("log head seq", v);
    if (st->workers > 0) {
        snprintf(v, sizeof(v), "%u sending, %u idle (%" PRIu64 " events in flight)", st->sending, st->workers - st->sending,
                 st->in_flight);
        line("workers", v);
    }
    if (st->have_skew) {
        snprintf(v, sizeof(v), "%" PRIu64 "%s", st->skew, st->skew ? " (remote versions far ahead of this clock: check NTP)" : "");
        line("clock skew events", v);
    }
    if (st->have_conflicts) {
        snprintf(v, sizeof(v), "%" PRIu64 " found, %" PRIu64 " losers kept%s", st->conflicts, st->kept,
                 st->kept ? " (comio conflicts lists them)" : "");
        line("conflicts", v);
    }
    /* one block per target: a "target" line, then its figures indented */
    for (size_t i = 0; i < st->ntargets; i++) {
        const target_t *g = &st->targets[i];
        snprintf(v, sizeof(v), "%s, %s, %s", g->name, g->url, g->state[0] ? g->state : "unknown");
        line("target", v);
        line("  site", g->site[0] ? g->site : "unknown (no reply yet)");
        if (g->sync[0] != '\0') {
            snprintf(v, sizeof(v), "%s (fallback %s after %" PRIu64 " ms)", g->sync, g->fallback, g->sync_timeout_ms);
            line("  sync", v);
        }
        snprintf(v, sizeof(v), "%" PRIu64, g->pending);
        line("  events pending", v);
        human_bytes(g->bytes_pending, a, sizeof(a));
        line("  bytes pending", a);
        snprintf(v, sizeof(v), "%.0f ms", g->lag * 1000);
        line("  lag", v);
        snprintf(v, sizeof(v), "%" PRIu64 " (%" PRIu64 " skipped: it is their origin)", g->replicated, g->skipped);
        line("  replicated", v);
        snprintf(v, sizeof(v), "%" PRIu64, g->failed);
        line("  events failed", v);
        if (g->error[0] != '\0')
            line("  last error", g->error);
        if (g->have_sync) {
            if (strcmp(g->sync_phase, "idle") == 0)
                snprintf(v, sizeof(v), "none yet");
            else {
                char eta[48] = "", del[48] = "";
                if (g->sync_eta >= 0)
                    snprintf(eta, sizeof(eta), ", about %.0f s left", g->sync_eta);
                if (g->sync_deleted > 0)
                    snprintf(del, sizeof(del), ", %" PRIu64 " deleted", g->sync_deleted);
                snprintf(v, sizeof(v),
                         "%s (%s%s)%s%s, %.1f s: %" PRIu64 " scanned, %" PRIu64 " %s, %" PRIu64 " skipped, %" PRIu64
                         " failed, %" PRIu64 " extra%s, %.0f objects/s%s",
                         g->sync_phase, g->sync_reason, g->sync_dry_run ? ", dry run" : "",
                         strcmp(g->sync_phase, "running") == 0 ? " in bucket " : "",
                         strcmp(g->sync_phase, "running") == 0 ? g->sync_bucket : "", g->sync_seconds, g->sync_scanned,
                         g->sync_shipped, g->sync_dry_run ? "would ship" : "shipped", g->sync_skipped, g->sync_failed,
                         g->sync_extra, del, g->sync_rate, eta);
            }
            line("  full sync", v);
        }
    }
    if (st->targets_total > st->ntargets) {
        snprintf(v, sizeof(v), "%zu more (see --json)", st->targets_total - st->ntargets);
        line("target", v);
    }
}

static uint64_t u64_or0(const json_doc_t *d, const json_tok_t *t)
{
    uint64_t v;
    return json_u64(d, t, &v) == 0 ? v : 0;
}

/* The scrub's line (GET /admin/scrub) into v, and the damaged objects on
 * record; "unknown" when the site does not say (an older one). */
static void scrub_line(cli_http_t *http, const char *url, char *v, size_t cap)
{
    char target[CLI_HTTP_URL_MAX + 32], err[512], when[40] = "";
    buf_t body;
    json_doc_t d;
    long code = 0;
    const json_tok_t *root, *p;
    uint64_t pass = 0, objects = 0, bad = 0, filled = 0, total = 0, damaged = 0;

    snprintf(v, cap, "unknown");
    snprintf(target, sizeof(target), "%s/admin/scrub", url);
    buf_init(&body, 1 << 20);
    json_init(&d, 4096, 8);
    if (cli_http_get(http, target, &body, &code, err, sizeof(err)) != 0 || code != 200 ||
        json_parse(&d, body.data ? body.data : "", body.len, NULL, 0) != 0 || (root = json_root(&d)) == NULL)
        goto done;
    damaged = u64_or0(&d, json_member(&d, root, "damaged_objects"));
    total = u64_or0(&d, json_member(&d, json_member(&d, root, "store"), "objects"));
    if ((p = json_member(&d, root, "current")) != NULL && p->type == JSON_OBJECT) {
        pass = u64_or0(&d, json_member(&d, p, "pass"));
        objects = u64_or0(&d, json_member(&d, p, "objects"));
        bad = u64_or0(&d, json_member(&d, p, "damaged"));
        snprintf(v, cap, "pass %" PRIu64 " running: %" PRIu64 " of about %" PRIu64 " objects, %" PRIu64 " damaged", pass, objects,
                 total, bad);
    } else if ((p = json_member(&d, root, "last")) != NULL && p->type == JSON_OBJECT) {
        pass = u64_or0(&d, json_member(&d, p, "pass"));
        objects = u64_or0(&d, json_member(&d, p, "objects"));
        bad = u64_or0(&d, json_member(&d, p, "damaged"));
        filled = u64_or0(&d, json_member(&d, p, "filled"));
        if (json_str(&d, json_member(&d, p, "ended"), when, sizeof(when), NULL) != 0)
            when[0] = '\0';
        snprintf(v, cap, "last pass %" PRIu64 " ended %s: %" PRIu64 " objects, %" PRIu64 " damaged, %" PRIu64 " filled in", pass,
                 when, objects, bad, filled);
    } else {
        snprintf(v, cap, "no pass yet");
    }
    if (damaged > 0 && strlen(v) + 48 < cap)
        snprintf(v + strlen(v), cap - strlen(v), "; %" PRIu64 " damaged on record", damaged);
done:
    json_free(&d);
    buf_free(&body);
}

/* Appends to `out` each reason to alert; returns how many. */
static int problems(const status_t *st, uint64_t max_lag_ms, int have_max_lag, char out[][160], int max)
{
    int n = 0;
    if (st->enabled && strcmp(st->repld, "running") != 0 && n < max)
        snprintf(out[n++], 160, "repld is %s: nothing is shipped to the replica", st->repld);
    if (st->failed > 0 && n < max)
        snprintf(out[n++], 160, "%" PRIu64 " failed event(s): see repld --list-failed, re-drive with repld --retry-failed",
                 st->failed);
    if (st->have_remote && strcmp(st->remote_state, "backing_off") == 0 && n < max)
        snprintf(out[n++], 160, "the replica does not accept batches (backing off)");
    for (size_t i = 1; i < st->ntargets; i++) /* the first is "remote" above */
        if (strcmp(st->targets[i].state, "backing_off") == 0 && n < max)
            snprintf(out[n++], 160, "target %.60s does not accept batches (backing off)", st->targets[i].name);
    for (size_t i = 0; i < st->ntargets; i++)
        if (strcmp(st->targets[i].sync, "degraded") == 0 && n < max)
            snprintf(out[n++], 160, "sync target %.60s is degraded: its fallback applies to writes", st->targets[i].name);
    if (have_max_lag && st->lag * 1000 > (double)max_lag_ms && n < max)
        snprintf(out[n++], 160, "lag %.0f ms is over --max-lag %" PRIu64 " ms", st->lag * 1000, max_lag_ms);
    return n;
}

int status_main(int argc, char **argv)
{
    cli_site_args_t args = {0};
    cli_site_t site;
    const char *max_lag_arg = NULL;
    char target[CLI_HTTP_URL_MAX + 64], err[CLI_HTTP_URL_MAX + 256];
    char why[8][160];
    uint64_t max_lag_ms = 0;
    int as_json = 0, exit_status = EXIT_UNREACHABLE;
    cli_http_t *http = NULL;
    json_doc_t doc;
    status_t st;
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
            r = cli_site_arg(argc, argv, &i, "status", &args);
        if (r == 0)
            r = cli_opt_value(argc, argv, &i, "status", "--max-lag", &max_lag_arg);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "comio status: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (max_lag_arg != NULL && units_parse_duration(max_lag_arg, &max_lag_ms) != 0) {
        fprintf(stderr, "comio status: --max-lag '%s' is not a duration such as 30s or 500ms\n", max_lag_arg);
        return EXIT_USAGE;
    }
    if (cli_site_resolve(&args, "status", STATUS_DEFAULT_URL, &site) != 0)
        return EXIT_USAGE;

    cli_http_opts_t opts = cli_site_http_opts(&site, STATUS_REPLY_MAX);
    buf_init(&body, STATUS_REPLY_MAX);
    json_init(&doc, 4096, 16);
    if ((http = cli_http_new(&opts)) == NULL) {
        fprintf(stderr, "comio status: cannot set up libcurl\n");
        goto done;
    }
    snprintf(target, sizeof(target), "%s/admin/replication/status", site.url);
    if (cli_http_get(http, target, &body, &code, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio status: cannot reach the site: %s\n", err);
        goto done;
    }
    if (code != 200) {
        fprintf(stderr, "comio status: %s answered %ld%s: %.*s\n", target, code,
                code == 401 ? " (the site needs its access token: --token, --token-file or COMIO_TOKEN)" : "",
                (int)(body.len > 300 ? 300 : body.len), body.data ? body.data : "");
        goto done;
    }
    if (json_parse(&doc, body.data ? body.data : "", body.len, err, sizeof(err)) != 0 || decode(&doc, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio status: %s: unexpected reply: %s\n", target, err);
        goto done;
    }
    int n = problems(&st, max_lag_ms, max_lag_arg != NULL, why, 8);
    if (as_json) {
        fwrite(body.data, 1, body.len, stdout);
        if (body.len == 0 || body.data[body.len - 1] != '\n')
            putchar('\n');
    } else {
        char sv[600];
        print_status(site.url, &st);
        scrub_line(http, site.url, sv, sizeof(sv));
        line("scrub", sv);
        for (int i = 0; i < n; i++)
            line("problem", why[i]);
    }
    exit_status = n > 0 ? EXIT_ALERT : EXIT_OK;
done:
    if (fflush(stdout) != 0 && exit_status != EXIT_UNREACHABLE)
        exit_status = EXIT_UNREACHABLE;
    cli_http_free(http);
    json_free(&doc);
    buf_free(&body);
    return exit_status;
}
