/* scrub.c - "comio scrub": a site's scrub status, a pass now watched to its end, or one object checked now. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/http.h"
#include "cli/opts.h"
#include "cli/progress.h"
#include "cli/scrub.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/percent.h"

#define SCRUB_DEFAULT_URL "http://127.0.0.1:8080"
#define SCRUB_REPLY_MAX (4 * 1024 * 1024)
#define POLL_MS 250
#define START_WAIT_MS 60000 /* a pass asked for starts within a second; beyond this, something is wrong */

static void usage(FILE *out)
{
    fprintf(out, "usage: comio scrub [--now | --release-quarantine | --object BUCKET/KEY [--force]] [--json] [--url URL]\n"
                 "                   [--token TOKEN | --token-file FILE] [--ca-file FILE] [--timeout DURATION]\n"
                 "\n"
                 "Shows the background scrub of the site at URL (default " SCRUB_DEFAULT_URL "): the pass running,\n"
                 "the last one finished, and the damaged objects on record.\n"
                 "  --now    start a pass now (at storage.scrub_rate; unpaced when it is 0) and watch it to its end,\n"
                 "           with a progress bar on a terminal; then print its totals and the damaged objects\n"
                 "  --json   print the scrub's status as JSON (with --now: once the pass ended)\n"
                 "  --release-quarantine  give the damaged extents that repairs set aside back to the allocator\n"
                 "           (once the disk is known good: they may hold new data from then on)\n"
                 "  --object BUCKET/KEY  check that object now and repair it from a peer if damaged; says whether the\n"
                 "           check was queued or held back by the repair's back-off after a failed repair\n"
                 "  --force  with --object: ask even within the back-off (a peer is back)\n"
                 "The damage a pass finds is repaired from a peer site when one holds a good copy; only what was not\n"
                 "repaired stays on record.\n"
                 "Ctrl-C stops the watching, not the pass.\n"
                 "exit status: 0 no damage left (found by the pass and not repaired; without --now: on record); 1 damage;\n"
                 "2 usage; "
                 "3 the site could not be reached or refused; 4 --now: a pass runs already (nothing changed);\n"
                 "--object: 0 queued, 5 held back by the repair's back-off (nothing queued).\n");
}

/* A pass of the status, decoded. */
typedef struct {
    uint64_t pass, objects, bytes, damaged, repaired, filled, skipped;
    double seconds, eta;
    char bucket[LIMIT_BUCKET_MAX + 1], key[256];
} spass_t;

typedef struct {
    int running, have_last;
    spass_t cur, last;
    uint64_t store_objects, store_bytes, rate, damaged_objects;
    uint64_t quarantined_extents, quarantined_bytes;
} sstat_t;

static uint64_t u64m(const json_doc_t *d, const json_tok_t *o, const char *name)
{
    uint64_t v = 0;
    return json_u64(d, json_member(d, o, name), &v) == 0 ? v : 0;
}

static void pass_decode(const json_doc_t *d, const json_tok_t *o, spass_t *p)
{
    memset(p, 0, sizeof(*p));
    p->pass = u64m(d, o, "pass");
    p->objects = u64m(d, o, "objects");
    p->bytes = u64m(d, o, "bytes");
    p->damaged = u64m(d, o, "damaged");
    p->repaired = u64m(d, o, "repaired");
    p->filled = u64m(d, o, "filled");
    p->skipped = u64m(d, o, "skipped");
    if (json_double(d, json_member(d, o, "seconds"), &p->seconds) != 0)
        p->seconds = 0;
    if (json_double(d, json_member(d, o, "eta_seconds"), &p->eta) != 0)
        p->eta = -1;
    const json_tok_t *pos = json_member(d, o, "position");
    if (json_str(d, json_member(d, pos, "bucket"), p->bucket, sizeof(p->bucket), NULL) != 0)
        p->bucket[0] = '\0';
    if (json_str(d, json_member(d, pos, "key"), p->key, sizeof(p->key), NULL) != 0)
        p->key[0] = '\0';
}

static int status_decode(json_doc_t *d, const buf_t *body, sstat_t *st)
{
    const json_tok_t *root, *t;
    memset(st, 0, sizeof(*st));
    if (json_parse(d, body->data ? body->data : "", body->len, NULL, 0) != 0 || (root = json_root(d)) == NULL ||
        root->type != JSON_OBJECT)
        return -1;
    st->running = (t = json_member(d, root, "running")) != NULL && t->type == JSON_TRUE;
    st->rate = u64m(d, root, "rate");
    st->damaged_objects = u64m(d, root, "damaged_objects");
    st->store_objects = u64m(d, json_member(d, root, "store"), "objects");
    st->store_bytes = u64m(d, json_member(d, root, "store"), "bytes");
    st->quarantined_extents = u64m(d, json_member(d, root, "quarantine"), "extents");
    st->quarantined_bytes = u64m(d, json_member(d, root, "quarantine"), "bytes");
    if ((t = json_member(d, root, "current")) != NULL && t->type == JSON_OBJECT)
        pass_decode(d, t, &st->cur);
    if ((t = json_member(d, root, "last")) != NULL && t->type == JSON_OBJECT) {
        pass_decode(d, t, &st->last);
        st->have_last = 1;
    }
    return 0;
}

/* One line of progress, redrawn in place on the terminal. */
static void draw(const sstat_t *st)
{
    char bar[CLI_BAR_WIDTH + 1], done[16], total[16], eta[24] = "--";
    uint64_t all = st->store_bytes > st->cur.bytes ? st->store_bytes : st->cur.bytes;
    cli_bar(st->cur.bytes, all, bar);
    cli_size_text(st->cur.bytes, done, sizeof(done));
    cli_size_text(all, total, sizeof(total));
    if (st->cur.eta >= 0)
        snprintf(eta, sizeof(eta), "%.0fs", st->cur.eta);
    printf("\r\033[K[%s] scrub pass %" PRIu64 ": %s/%.40s  %" PRIu64 "/%" PRIu64 " objects  %s/%s  damaged %" PRIu64
           "  filled %" PRIu64 "  ETA %s",
           bar, st->cur.pass, st->cur.bucket, st->cur.key, st->cur.objects, st->store_objects, done, total, st->cur.damaged,
           st->cur.filled, eta);
    fflush(stdout);
}

static void print_pass(const char *what, const spass_t *p)
{
    char b[16];
    cli_size_text(p->bytes, b, sizeof(b));
    printf("%s pass %" PRIu64 ": %" PRIu64 " objects (%s), damaged %" PRIu64 ", repaired %" PRIu64 ", filled in %" PRIu64
           ", skipped %" PRIu64,
           what, p->pass, p->objects, b, p->damaged, p->repaired, p->filled, p->skipped);
    if (p->seconds > 0)
        printf(", in %.1fs", p->seconds);
    printf("\n");
}

/* The damaged objects of the status, one a line. */
static void print_damaged(json_doc_t *d, uint64_t count)
{
    const json_tok_t *arr = json_member(d, json_root(d), "damaged");
    size_t n = 0;
    if (count == 0)
        return;
    printf("damaged objects on record: %" PRIu64 "\n", count);
    for (const json_tok_t *e = json_first(d, arr); e != NULL; e = json_next(d, arr, e), n++) {
        char bucket[LIMIT_BUCKET_MAX + 1], key[1100], block[24] = "unknown (MD5)";
        uint64_t blk;
        if (json_str(d, json_member(d, e, "bucket"), bucket, sizeof(bucket), NULL) != 0 ||
            json_str(d, json_member(d, e, "key"), key, sizeof(key), NULL) != 0)
            continue;
        if (json_u64(d, json_member(d, e, "block"), &blk) == 0)
            snprintf(block, sizeof(block), "%" PRIu64, blk);
        printf("  %s/%s  block %s\n", bucket, key, block);
    }
    if (n < count)
        printf("  ... and %" PRIu64 " more\n", count - n);
}

/* GETs (post 0) or POSTs the status into body; the HTTP status in *code. 0, or -1 after printing why. */
static int ask(cli_http_t *http, const char *url, int post, buf_t *body, long *code)
{
    char err[1024];
    int ret = post ? cli_http_post(http, url, body, code, err, sizeof(err)) : cli_http_get(http, url, body, code, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "comio scrub: cannot reach the site: %s\n", err);
        return -1;
    }
    return 0;
}

/* POST ?release-quarantine=true and prints what was released. Returns the exit status. */
static int release_quarantine(cli_http_t *http, const char *base, int as_json, json_doc_t *doc, buf_t *body)
{
    char url[CLI_HTTP_URL_MAX + 64], size[16];
    long code = 0;

    snprintf(url, sizeof(url), "%s?release-quarantine=true", base);
    if (ask(http, url, 1, body, &code) != 0)
        return SCRUB_EXIT_UNREACHABLE;
    if (code != 200 || json_parse(doc, body->data ? body->data : "", body->len, NULL, 0) != 0) {
        fprintf(stderr, "comio scrub: %s answered %ld: %.*s\n", url, code, (int)(body->len > 300 ? 300 : body->len),
                body->data ? body->data : "");
        return SCRUB_EXIT_UNREACHABLE;
    }
    if (as_json) {
        fwrite(body->data, 1, body->len, stdout);
        fputc('\n', stdout);
        return SCRUB_EXIT_OK;
    }
    uint64_t bytes = u64m(doc, json_root(doc), "released_bytes");
    cli_size_text(bytes, size, sizeof(size));
    printf("released %" PRIu64 " quarantined extents (%s)\n", u64m(doc, json_root(doc), "released_extents"), size);
    return SCRUB_EXIT_OK;
}

/* POST ?bucket=B&key=K[&force=true] for `object` (BUCKET/KEY) and prints
 * what became of the check. Returns the exit status. */
static int check_object(cli_http_t *http, const char *base, const char *object, int force, int as_json, json_doc_t *doc,
                        buf_t *body)
{
    const char *slash = strchr(object, '/');
    char last[256] = "", err[1024];
    uint64_t retry_ms = 0;
    int already = 0, ret = SCRUB_EXIT_UNREACHABLE;
    long code = 0;
    buf_t url;

    buf_init(&url, CLI_HTTP_URL_MAX + 3 * (LIMIT_BUCKET_MAX + LIMIT_KEY_MAX) + 64);
    buf_printf(&url, "%s?bucket=", base);
    percent_append(&url, object, (size_t)(slash - object), 0);
    buf_puts(&url, "&key=");
    percent_append(&url, slash + 1, strlen(slash + 1), 0);
    buf_printf(&url, "%s", force ? "&force=true" : "");
    if (buf_append(&url, "", 1) != 0) {
        fprintf(stderr, "comio scrub: the object's name is too long for a URL\n");
        goto done;
    }
    if (cli_http_post(http, url.data, body, &code, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio scrub: cannot reach the site: %s\n", err);
        goto done;
    }
    if ((code != 202 && code != 429) || json_parse(doc, body->data ? body->data : "", body->len, NULL, 0) != 0) {
        fprintf(stderr, "comio scrub: %s answered %ld%s: %.*s\n", base, code,
                code == 401 ? " (the site needs its access token: --token, --token-file or COMIO_TOKEN)" : "",
                (int)(body->len > 300 ? 300 : body->len), body->data ? body->data : "");
        goto done;
    }
    ret = code == 202 ? SCRUB_EXIT_OK : SCRUB_EXIT_HELD;
    if (as_json) {
        fwrite(body->data, 1, body->len, stdout);
        fputc('\n', stdout);
        goto done;
    }
    const json_tok_t *root = json_root(doc);
    if (code == 202) {
        if (json_bool(json_member(doc, root, "already"), &already) != 0)
            already = 0;
        printf(already ? "check of %s: one is queued or running already\n"
                       : "check of %s queued: read through its checksums now, repaired from a peer if damaged "
                         "(storaged's log, comio scrub)\n",
               object);
        goto done;
    }
    if (json_str(doc, json_member(doc, root, "last_failure"), last, sizeof(last), NULL) != 0)
        snprintf(last, sizeof(last), "unknown");
    retry_ms = u64m(doc, root, "retry_in_ms");
    printf("check of %s not queued: its last repair found no good copy (%s); the back-off lets it run again in %.1f s "
           "(--force asks now)\n",
           object, last, (double)retry_ms / 1000.0);
done:
    buf_free(&url);
    return ret;
}

int scrub_main(int argc, char **argv)
{
    cli_site_args_t args = {0};
    cli_site_t site;
    char url[CLI_HTTP_URL_MAX + 32];
    int now = 0, as_json = 0, release = 0, force = 0, exit_status = SCRUB_EXIT_UNREACHABLE, tty = isatty(STDOUT_FILENO);
    const char *object = NULL;
    cli_http_t *http = NULL;
    json_doc_t doc;
    buf_t body;
    long code = 0;
    sstat_t st;

    for (int i = 1; i < argc; i++) {
        int r;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return SCRUB_EXIT_OK;
        }
        if (strcmp(argv[i], "--now") == 0) {
            now = 1;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
            continue;
        }
        if (strcmp(argv[i], "--release-quarantine") == 0) {
            release = 1;
            continue;
        }
        if (strcmp(argv[i], "--force") == 0) {
            force = 1;
            continue;
        }
        if (strcmp(argv[i], "--object") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "comio scrub: --object needs BUCKET/KEY\n");
                return SCRUB_EXIT_USAGE;
            }
            object = argv[++i];
            continue;
        }
        r = cli_site_arg(argc, argv, &i, "scrub", &args);
        if (r < 0)
            return SCRUB_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "comio scrub: unknown option '%s' (comio scrub --help)\n", argv[i]);
            return SCRUB_EXIT_USAGE;
        }
    }
    if (now + release + (object != NULL) > 1) {
        fprintf(stderr, "comio scrub: --now, --release-quarantine and --object: one at a time\n");
        return SCRUB_EXIT_USAGE;
    }
    if (object != NULL && (strchr(object, '/') == NULL || object[0] == '/' || strchr(object, '/')[1] == '\0')) {
        fprintf(stderr, "comio scrub: --object takes BUCKET/KEY, both given\n");
        return SCRUB_EXIT_USAGE;
    }
    if (force && object == NULL) {
        fprintf(stderr, "comio scrub: --force goes with --object\n");
        return SCRUB_EXIT_USAGE;
    }
    if (cli_site_resolve(&args, "scrub", SCRUB_DEFAULT_URL, &site) != 0)
        return SCRUB_EXIT_USAGE;
    cli_http_opts_t opts = cli_site_http_opts(&site, SCRUB_REPLY_MAX);
    snprintf(url, sizeof(url), "%s/admin/scrub", site.url);
    buf_init(&body, SCRUB_REPLY_MAX);
    json_init(&doc, 1 << 16, 8);
    if ((http = cli_http_new(&opts)) == NULL) {
        fprintf(stderr, "comio scrub: cannot set up libcurl\n");
        goto done;
    }
    if (release) {
        exit_status = release_quarantine(http, url, as_json, &doc, &body);
        goto done;
    }
    if (object != NULL) {
        exit_status = check_object(http, url, object, force, as_json, &doc, &body);
        goto done;
    }
    if (ask(http, url, now, &body, &code) != 0)
        goto done;
    if (code == 409 && body.data != NULL && memmem(body.data, body.len, "ScrubRunning", 12) != NULL) {
        fprintf(stderr, "comio scrub: a scrub pass runs already (comio scrub shows it)\n");
        exit_status = SCRUB_EXIT_BUSY;
        goto done;
    }
    if (code != 200 && code != 202) {
        fprintf(stderr, "comio scrub: %s answered %ld%s: %.*s\n", url, code,
                code == 401 ? " (the site needs its access token: --token, --token-file or COMIO_TOKEN)" : "",
                (int)(body.len > 300 ? 300 : body.len), body.data ? body.data : "");
        goto done;
    }
    if (status_decode(&doc, &body, &st) != 0) {
        fprintf(stderr, "comio scrub: %s: unexpected reply\n", url);
        goto done;
    }
    if (now) {
        /* ours is the pass after the last finished one: watch until it is the last finished one */
        uint64_t ours = (st.have_last ? st.last.pass : 0) + 1;
        int waited_ms = 0;
        if (tty && !as_json)
            printf("Ctrl-C stops watching, not the pass\n");
        for (;;) {
            usleep(POLL_MS * 1000);
            if (ask(http, url, 0, &body, &code) != 0)
                goto done;
            if (code != 200 || status_decode(&doc, &body, &st) != 0) {
                fprintf(stderr, "comio scrub: %s answered %ld while watching the pass\n", url, code);
                goto done;
            }
            if (st.have_last && st.last.pass >= ours)
                break;
            if (st.running) {
                if (tty && !as_json)
                    draw(&st);
            } else if ((waited_ms += POLL_MS) > START_WAIT_MS) {
                fprintf(stderr, "comio scrub: the pass did not start within %d s; see storaged's log\n", START_WAIT_MS / 1000);
                goto done;
            }
        }
        if (tty && !as_json)
            printf("\r\033[K");
        exit_status = st.last.damaged > st.last.repaired ? SCRUB_EXIT_DAMAGED : SCRUB_EXIT_OK;
    } else {
        exit_status = st.damaged_objects > 0 ? SCRUB_EXIT_DAMAGED : SCRUB_EXIT_OK;
    }
    if (as_json) {
        fwrite(body.data, 1, body.len, stdout);
        fputc('\n', stdout);
    } else {
        if (!now && st.running)
            print_pass("scrub running:", &st.cur);
        if (st.have_last)
            print_pass(now ? "scrub finished:" : "scrub last finished:", &st.last);
        else if (!st.running)
            printf("scrub: no pass has finished yet\n");
        print_damaged(&doc, st.damaged_objects);
        if (st.quarantined_extents > 0) {
            char qb[16];
            cli_size_text(st.quarantined_bytes, qb, sizeof(qb));
            printf("quarantined extents: %" PRIu64 " (%s), kept out of use (comio scrub --release-quarantine)\n",
                   st.quarantined_extents, qb);
        }
    }
done:
    if (fflush(stdout) != 0 && exit_status != SCRUB_EXIT_UNREACHABLE)
        exit_status = SCRUB_EXIT_UNREACHABLE;
    cli_http_free(http);
    json_free(&doc);
    buf_free(&body);
    return exit_status;
}
