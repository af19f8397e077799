/* resync.c - "comio resync": a full sync of one target on request, watched. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/opts.h"
#include "cli/progress.h"
#include "cli/resync.h"
#include "common/bucket.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/ctl.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/syncctl.h"
#include "common/units.h"

#define POLL_MS 500 /* how often a watching comio resync asks repld's status */
#define CTL_TIMEOUT_MS 5000

static void usage(FILE *out)
{
    fprintf(out, "usage: comio resync --target NAME [--bucket B] [--dry-run] [--delete-extra] [--rate-limit RATE]\n"
                 "                    [--wait | --no-wait] [--json] [--config FILE | --socket PATH]\n"
                 "       comio resync --cancel --target NAME [--config FILE | --socket PATH]\n"
                 "\n"
                 "Asks this site's repld for a full sync of one target: its objects are compared with the\n"
                 "target's listing and only the differences are shipped.\n"
                 "  --target NAME      the target, as named in replication.targets\n"
                 "  --bucket B         only bucket B\n"
                 "  --dry-run          ship nothing; report what would be shipped and deleted (waits for the answer)\n"
                 "  --delete-extra     delete on the target what only it holds: it becomes an exact copy\n"
                 "  --rate-limit RATE  this sync's bandwidth, e.g. 50MB/s or 100Mbit (default replication.sync_rate_limit)\n"
                 "  --cancel           stop the target's running sync at its next batch\n"
                 "  --wait, --no-wait  watch the sync until it ends (default on a terminal, and with --dry-run)\n"
                 "  --json             print JSON: the answer, or once the sync ends its status and report\n"
                 "  --config FILE      read replication.socket from this site's configuration\n"
                 "  --socket PATH      repld's control socket (default /run/comio/repld.sock)\n"
                 "Ctrl-C stops the watching, not the sync. Exit: 0 done, 1 failed events or refused, 2 usage,\n"
                 "3 repld not running, 4 a sync of that target already runs, 5 --cancel found none running.\n");
}

/* A target's sync object of repld's status, decoded. */
typedef struct {
    char phase[16], started[40], bucket[LIMIT_BUCKET_MAX + 1], key[256];
    uint64_t scanned, scanned_bytes, shipped, shipped_bytes, skipped, failed, extra, deleted, deleted_bytes, extra_buckets,
        estimated;
    double secs, rate, eta;
    int dry_run;
    char error[600];
} sstat_t;

static void u64m(const json_doc_t *d, const json_tok_t *o, const char *name, uint64_t *v)
{
    if (json_u64(d, json_member(d, o, name), v) != 0)
        *v = 0;
}

static void dblm(const json_doc_t *d, const json_tok_t *o, const char *name, double *v)
{
    if (json_double(d, json_member(d, o, name), v) != 0)
        *v = -1;
}

static void strm(const json_doc_t *d, const json_tok_t *o, const char *name, char *out, size_t cap)
{
    if (json_str(d, json_member(d, o, name), out, cap, NULL) != 0)
        out[0] = '\0';
}

/* Asks repld's status and decodes target's sync into *st (and its raw JSON
 * into *raw when not NULL). 0, or -1 after printing why. */
static int get_status(const char *socket, const char *target, sstat_t *st, buf_t *raw)
{
    buf_t out;
    json_doc_t d;
    char err[200];
    int ret = -1;

    buf_init(&out, CTL_REPLY_MAX);
    json_init(&d, 1 << 16, 16);
    memset(st, 0, sizeof(*st));
    if (ctl_query(socket, "status", &out, CTL_TIMEOUT_MS) != 0 || out.len == 0) {
        fprintf(stderr, "comio resync: repld does not answer on %s any more\n", socket);
        goto done;
    }
    if (json_parse(&d, out.data, out.len, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio resync: repld's status does not parse: %s\n", err);
        goto done;
    }
    const json_tok_t *t = json_first(&d, json_member(&d, json_root(&d), "targets"));
    for (; t != NULL && !json_str_eq(&d, json_member(&d, t, "name"), target);
         t = json_next(&d, json_member(&d, json_root(&d), "targets"), t))
        ;
    const json_tok_t *s = json_member(&d, t, "sync");
    if (s == NULL || s->type != JSON_OBJECT) {
        fprintf(stderr, "comio resync: repld's status has no sync of target %s\n", target);
        goto done;
    }
    strm(&d, s, "phase", st->phase, sizeof(st->phase));
    strm(&d, s, "started", st->started, sizeof(st->started));
    strm(&d, s, "bucket", st->bucket, sizeof(st->bucket));
    strm(&d, s, "key", st->key, sizeof(st->key));
    strm(&d, s, "last_error", st->error, sizeof(st->error));
    u64m(&d, s, "objects_scanned", &st->scanned);
    u64m(&d, s, "bytes_scanned", &st->scanned_bytes);
    u64m(&d, s, "objects_shipped", &st->shipped);
    u64m(&d, s, "bytes_shipped", &st->shipped_bytes);
    u64m(&d, s, "objects_skipped", &st->skipped);
    u64m(&d, s, "objects_failed", &st->failed);
    u64m(&d, s, "objects_extra", &st->extra);
    u64m(&d, s, "objects_deleted", &st->deleted);
    u64m(&d, s, "bytes_deleted", &st->deleted_bytes);
    u64m(&d, s, "buckets_extra", &st->extra_buckets);
    u64m(&d, s, "objects_estimated", &st->estimated);
    dblm(&d, s, "duration_seconds", &st->secs);
    dblm(&d, s, "bytes_per_second", &st->rate);
    dblm(&d, s, "eta_seconds", &st->eta);
    st->dry_run = json_member(&d, s, "dry_run") != NULL && json_member(&d, s, "dry_run")->type == JSON_TRUE;
    if (raw != NULL)
        buf_append(raw, out.data + s->start, s->len);
    ret = 0;
done:
    json_free(&d);
    buf_free(&out);
    return ret;
}

/* One line of progress, redrawn in place on the terminal. */
static void draw(const sstat_t *st)
{
    char bar[CLI_BAR_WIDTH + 1], sb[16], rb[16], eta[24] = "--";
    uint64_t total = st->estimated > st->scanned ? st->estimated : st->scanned;
    cli_bar(st->scanned, total, bar);
    cli_size_text(st->shipped_bytes, sb, sizeof(sb));
    cli_size_text(st->rate > 0 ? (uint64_t)st->rate : 0, rb, sizeof(rb));
    if (st->eta >= 0)
        snprintf(eta, sizeof(eta), "%.0fs", st->eta);
    printf("\r\033[K[%s] full sync%s: %s/%.40s  scanned %" PRIu64 "/%" PRIu64 "  shipped %" PRIu64 " (%s)  skipped %" PRIu64
           "  failed %" PRIu64 "  extra %" PRIu64 "  %s/s  ETA %s",
           bar, st->dry_run ? " (dry run)" : "", st->bucket, st->key, st->scanned, total, st->shipped, sb, st->skipped, st->failed,
           st->extra, rb, eta);
    fflush(stdout);
}

/* The totals of a finished sync, and with a dry run what it would ship, by bucket. */
static void print_totals(const char *target, const sstat_t *st, const char *report)
{
    char sc[16], sh[16], de[16];
    cli_size_text(st->scanned_bytes, sc, sizeof(sc));
    cli_size_text(st->shipped_bytes, sh, sizeof(sh));
    cli_size_text(st->deleted_bytes, de, sizeof(de));
    printf("full sync of target %s %s in %.1fs%s: scanned %" PRIu64 " (%s), %s %" PRIu64 " (%s), skipped %" PRIu64
           ", failed %" PRIu64 ", %s %" PRIu64 " (%s), extra %" PRIu64 " keys and %" PRIu64 " buckets\n",
           target, strcmp(st->phase, "done") == 0 ? "finished" : st->phase, st->secs > 0 ? st->secs : 0.0,
           st->dry_run ? " (dry run: nothing was shipped)" : "", st->scanned, sc, st->dry_run ? "would ship" : "shipped",
           st->shipped, sh, st->skipped, st->failed, st->dry_run ? "would delete" : "deleted", st->deleted, de, st->extra,
           st->extra_buckets);
    if (st->error[0] != '\0' && st->failed > 0)
        printf("last error: %s\n", st->error);
    if (report == NULL)
        return;
    json_doc_t d;
    json_init(&d, 1 << 20, 16);
    if (json_parse(&d, report, strlen(report), NULL, 0) == 0) {
        const json_tok_t *arr = json_member(&d, json_root(&d), "buckets");
        for (const json_tok_t *b = json_first(&d, arr); b != NULL; b = json_next(&d, arr, b)) {
            char name[LIMIT_BUCKET_MAX + 1], pb[16], xb[16];
            uint64_t put = 0, put_bytes = 0, del = 0, dx = 0, dxb = 0, ex = 0;
            strm(&d, b, "name", name, sizeof(name));
            u64m(&d, b, "put", &put);
            u64m(&d, b, "put_bytes", &put_bytes);
            u64m(&d, b, "delete", &del);
            u64m(&d, b, "delete_extra", &dx);
            u64m(&d, b, "delete_extra_bytes", &dxb);
            u64m(&d, b, "extra", &ex);
            cli_size_text(put_bytes, pb, sizeof(pb));
            cli_size_text(dxb, xb, sizeof(xb));
            printf("  bucket %s%s: %s %" PRIu64 " objects (%s) and %" PRIu64 " deletes, delete %" PRIu64
                   " keys only the target holds (%s), leave %" PRIu64 "\n",
                   name,
                   json_member(&d, b, "target_only") != NULL && json_member(&d, b, "target_only")->type == JSON_TRUE
                       ? " (only on the target)"
                       : "",
                   st->dry_run ? "would ship" : "shipped", put, pb, del, dx, xb, ex);
        }
    }
    json_free(&d);
}

static int report_json(const char *socket, const char *target, buf_t *out);

/* The target's sync generation (syncs started since repld started), and whether one runs or waits to start. */
static int generation(const char *socket, const char *target, uint64_t *gen, int *running, int *pending)
{
    buf_t out;
    json_doc_t d;
    int ret = -1;
    buf_init(&out, CTL_REPLY_MAX);
    json_init(&d, 1 << 16, 16);
    if (report_json(socket, target, &out) == 0 && json_parse(&d, out.data, out.len, NULL, 0) == 0 &&
        json_u64(&d, json_member(&d, json_root(&d), "generation"), gen) == 0) {
        const json_tok_t *r = json_member(&d, json_root(&d), "running"), *p = json_member(&d, json_root(&d), "requested");
        *running = r != NULL && r->type == JSON_TRUE;
        *pending = p != NULL && p->type == JSON_TRUE;
        ret = 0;
    }
    json_free(&d);
    buf_free(&out);
    return ret;
}

static int report_json(const char *socket, const char *target, buf_t *out)
{
    syncctl_req_t r;
    syncctl_answer_t kind;
    memset(&r, 0, sizeof(r));
    r.cmd = SYNCCTL_REPORT;
    snprintf(r.target, sizeof(r.target), "%s", target);
    return syncctl_send(socket, &r, out, &kind) == 0 && kind == SYNCCTL_OK ? 0 : -1;
}

int resync_main(int argc, char **argv)
{
    const char *target = NULL, *bucket = NULL, *rate = NULL, *config = NULL, *socket = NULL;
    int dry_run = 0, delete_extra = 0, cancel = 0, json = 0, wait = -1;
    syncctl_req_t req;
    syncctl_answer_t kind = SYNCCTL_ERROR;
    conf_t conf;
    buf_t out;
    char err[1024];
    int ret;

    memset(&req, 0, sizeof(req));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return RESYNC_EXIT_OK;
        }
        if (strcmp(a, "--dry-run") == 0)
            dry_run = 1;
        else if (strcmp(a, "--delete-extra") == 0)
            delete_extra = 1;
        else if (strcmp(a, "--cancel") == 0)
            cancel = 1;
        else if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--wait") == 0)
            wait = 1;
        else if (strcmp(a, "--no-wait") == 0)
            wait = 0;
        else if ((r = cli_opt_value(argc, argv, &i, "resync", "--target", &target)) != 0 ||
                 (r = cli_opt_value(argc, argv, &i, "resync", "--bucket", &bucket)) != 0 ||
                 (r = cli_opt_value(argc, argv, &i, "resync", "--rate-limit", &rate)) != 0 ||
                 (r = cli_opt_value(argc, argv, &i, "resync", "--config", &config)) != 0 ||
                 (r = cli_opt_value(argc, argv, &i, "resync", "--socket", &socket)) != 0) {
            if (r < 0)
                return RESYNC_EXIT_USAGE;
        } else {
            fprintf(stderr, "comio resync: unknown option '%s' (comio resync --help)\n", a);
            return RESYNC_EXIT_USAGE;
        }
    }
    if (target == NULL || target[0] == '\0' || strlen(target) > CONF_TARGET_NAME_MAX || strchr(target, ' ') != NULL) {
        fprintf(stderr, "comio resync: expected --target NAME (a target of replication.targets)\n");
        return RESYNC_EXIT_USAGE;
    }
    if (cancel && (bucket != NULL || dry_run || delete_extra || rate != NULL)) {
        fprintf(stderr, "comio resync: --cancel takes --target only\n");
        return RESYNC_EXIT_USAGE;
    }
    if (bucket != NULL && !bucket_name_valid(bucket, strlen(bucket))) {
        fprintf(stderr, "comio resync: --bucket: '%s' is not a valid bucket name\n", bucket);
        return RESYNC_EXIT_USAGE;
    }
    if (rate != NULL && units_parse_rate(rate, &req.rate) != 0) {
        fprintf(stderr, "comio resync: --rate-limit: expected a rate such as 50MB/s, 512KiB/s or 100Mbit, got '%s'\n", rate);
        return RESYNC_EXIT_USAGE;
    }
    if (config != NULL && socket != NULL) {
        fprintf(stderr, "comio resync: give --config or --socket, not both\n");
        return RESYNC_EXIT_USAGE;
    }
    if (conf_init(&conf) != 0)
        return RESYNC_EXIT_FAILED;
    if (config != NULL && conf_load_file(&conf, config, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio resync: %s\n", err);
        conf_free(&conf);
        return RESYNC_EXIT_USAGE;
    }
    if (socket == NULL)
        socket = conf.socket_path;

    req.cmd = cancel ? SYNCCTL_CANCEL : SYNCCTL_RESYNC;
    snprintf(req.target, sizeof(req.target), "%s", target);
    snprintf(req.bucket, sizeof(req.bucket), "%s", bucket != NULL ? bucket : "");
    req.dry_run = dry_run;
    req.delete_extra = delete_extra;
    if (wait < 0)
        wait = !cancel && (dry_run || isatty(STDOUT_FILENO));

    /* the syncs started before the request: ours is a later one */
    sstat_t st;
    uint64_t gen0 = 0;
    int running = 0, pending = 0;
    if (wait && !cancel)
        (void)generation(socket, target, &gen0, &running, &pending);
    buf_init(&out, CTL_REPLY_MAX);
    ret = syncctl_send(socket, &req, &out, &kind);
    if (ret != 0) {
        fprintf(stderr, "comio resync: repld is not running (no answer on %s): a full sync runs in repld\n", socket);
        buf_free(&out);
        conf_free(&conf);
        return RESYNC_EXIT_NO_REPLD;
    }
    /* the answer's text, after "ok: " / "busy: " / "error: " */
    const char *msg = out.data, *colon = memchr(out.data, ':', out.len);
    if (colon != NULL)
        msg = colon + 2 <= out.data + out.len ? colon + 2 : colon + 1;
    int mlen = (int)(out.data + out.len - msg);
    while (mlen > 0 && msg[mlen - 1] == '\n')
        mlen--;
    if (json && (!wait || kind != SYNCCTL_OK)) {
        buf_t j;
        buf_init(&j, 1 << 16);
        buf_printf(&j, "{\"answer\":\"%s\",\"message\":", kind == SYNCCTL_OK ? "ok" : kind == SYNCCTL_BUSY ? "busy" : "error");
        buf_json_str(&j, msg, (size_t)mlen);
        buf_puts(&j, "}\n");
        fwrite(j.data, 1, j.len, kind == SYNCCTL_OK ? stdout : stderr);
        buf_free(&j);
    } else if (kind != SYNCCTL_OK) {
        fprintf(stderr, "comio resync: %.*s\n", mlen, msg);
    } else if (!json) {
        printf("%.*s\n", mlen, msg);
    }
    int idle = cancel && kind == SYNCCTL_ERROR && mlen > 0 && memmem(msg, (size_t)mlen, "no full sync", 12) != NULL;
    buf_free(&out);
    if (kind != SYNCCTL_OK) {
        conf_free(&conf);
        return kind == SYNCCTL_BUSY ? RESYNC_EXIT_BUSY : idle ? RESYNC_EXIT_IDLE : RESYNC_EXIT_FAILED;
    }
    if (!wait) {
        conf_free(&conf);
        return RESYNC_EXIT_OK;
    }

    /* watching: until a sync that started after the request ends */
    int tty = isatty(STDOUT_FILENO), seen_running = 0;
    uint64_t last_gen = gen0;
    time_t asked = time(NULL);
    const int start_wait_s = 120; /* a requested sync starts within seconds (the sync thread may be in a probe) */
    if (tty && !json)
        printf("Ctrl-C stops watching, not the sync (comio resync --cancel --target %s stops it)\n", target);
    for (;;) {
        uint64_t gen = 0;
        if (generation(socket, target, &gen, &running, &pending) != 0 || get_status(socket, target, &st, NULL) != 0) {
            fprintf(stderr, "comio resync: repld does not answer on %s any more\n", socket);
            conf_free(&conf);
            return RESYNC_EXIT_NO_REPLD;
        }
        if (gen < last_gen)
            gen0 = 0; /* repld restarted: it resumes the sync, counting from 0 again */
        last_gen = gen;
        if (gen > gen0 && running) {
            seen_running = 1;
            if (tty && !json)
                draw(&st);
        } else if (gen > gen0 && !pending) {
            break; /* ours has ended */
        } else if (!seen_running && time(NULL) > asked + start_wait_s) {
            fprintf(stderr,
                    "comio resync: the sync of target %s did not start within %d s (cancelled meanwhile?); see repld's log\n",
                    target, start_wait_s);
            conf_free(&conf);
            return RESYNC_EXIT_FAILED;
        }
        usleep(POLL_MS * 1000);
    }
    if (tty && !json)
        printf("\r\033[K");
    buf_t rep, raw;
    buf_init(&rep, CTL_REPLY_MAX);
    buf_init(&raw, CTL_REPLY_MAX);
    int have_report = report_json(socket, target, &rep) == 0 && buf_append(&rep, "", 1) == 0;
    if (json) {
        (void)get_status(socket, target, &st, &raw);
        printf("{\"sync\":%.*s,\"report\":%s}\n", (int)raw.len, raw.data != NULL ? raw.data : "null",
               have_report ? rep.data : "null");
    } else {
        print_totals(target, &st, have_report ? rep.data : NULL);
    }
    buf_free(&rep);
    buf_free(&raw);
    conf_free(&conf);
    return st.failed > 0 || strcmp(st.phase, "done") != 0 ? RESYNC_EXIT_FAILED : RESYNC_EXIT_OK;
}
