/* diff.c - "comio diff": two sites' sorted, paged bucket listings fed to the
 * merge-join of cli/merge.c, reporting keys missing, extra or different on the target,
 * and those with the same bytes at another version. With --deep the listings
 * are the sites' deep listings (storaged/deeplist.h): each object's content
 * digest, or the damage its site found, reported apart.
 *
 * Both listings come in storaged's order: bytewise (memcmp) order of the full
 * key, for long keys too (storaged stores keys longer than its LMDB room by
 * prefix and hash, and its listing re-sorts such runs into key order). The
 * merge relies on that order and checks it: a listing that goes backwards is
 * an error, never a silent wrong answer. Memory holds one page per site (the
 * reply, its tokens, the current key), so any number of keys can be compared. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "cli/diff.h"
#include "cli/http.h"
#include "cli/merge.h"
#include "cli/opts.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/percent.h"
#include "common/utf8.h"
#include "common/units.h"

#define DIFF_PAGE_MAX LIMIT_LIST_KEYS_MAX /* storaged's largest max-keys */
#define DIFF_REPLY_MAX (32u << 20)
/* A page of the largest keys, every byte JSON-escaped as \udcXX, with 1 KiB
 * of ETag, size, date and punctuation each, fits. */
_Static_assert((6 * LIMIT_KEY_MAX + 1024) * DIFF_PAGE_MAX <= DIFF_REPLY_MAX, "a listing page fits the reply cap");
#define DIFF_PROGRESS_MS 250
#define DIFF_OBJECT_MAX (1ull << 42)          /* the largest object a site keeps checksums for (BLOCKSUM_SIZE_MAX) */
#define DIFF_RESUME_MAX 600                   /* a deep listing's resume cursor: "offset.crc.version.hex(origin)" */
#define DIFF_RATE_MIN (64u << 10)             /* the sites' lowest rate but 0 (DEEPLIST_RATE_MIN) */
#define DIFF_DEEP_TIMEOUT_MS (10 * 60 * 1000) /* --deep's default --timeout */

enum { EXIT_SAME = 0, EXIT_DIFFERENT = 1, EXIT_USAGE = 2, EXIT_ERROR = 3, EXIT_DAMAGED = 4 };
enum { ONLY_NONE, ONLY_SOURCE, ONLY_TARGET };

typedef struct {
    char name[LIMIT_BUCKET_MAX + 1];
    int on_source, on_target;
    uint64_t source_keys, target_keys, missing, extra, different, metadata, versions;
    uint64_t content, damaged_source, damaged_target; /* --deep */
} bucket_t;

/* One site and its position in the listing of the current bucket. */
typedef struct {
    const char *role; /* "source" or "target" */
    char url[CLI_HTTP_URL_MAX];
    cli_http_t *http;
    buf_t body, target;
    json_doc_t doc;
    const char *bucket;
    const json_tok_t *objects, *next_obj;
    int fetched, truncated, exists;
    char after[LIMIT_KEY_MAX + 1];
    size_t after_len;
    merge_entry_t cur;
    int have_cur;
    uint64_t keys;                    /* of the current bucket */
    unsigned page;                    /* keys per listing request */
    int deep;                         /* deep listings (--deep) ... */
    uint64_t rate;                    /* ... read at most this fast by the site (bytes/s, 0: no limit) */
    char resume[DIFF_RESUME_MAX + 1]; /* the cursor into a large object the last deep page stopped inside; "" none */
    uint64_t partial;                 /* its offset: the bytes of that object read so far */
    void (*on_partial)(void *arg);    /* called after each such page (the progress line), with ... */
    void *on_partial_arg;             /* ... this */
    char *err;                        /* where site_step() reports a failure: diff_bucket()'s caller's buffer */
    size_t errlen;
} site_t;

typedef struct {
    int json, quiet, progress;
    int no_versions; /* --no-versions: keys, sizes and ETags only */
    uint64_t limit;  /* differences to print; UINT64_MAX: all */
    unsigned page;
    uint64_t printed, missing, extra, different, metadata, versions, keys, source_keys, target_keys;
    int deep;                                         /* --deep: content digests and damage */
    uint64_t rate;                                    /* --rate-limit, bytes/s per site; 0: none */
    uint64_t content, damaged_source, damaged_target; /* --deep's counts */
    uint64_t bytes;                                   /* object bytes the two sites read (--deep) */
    const uint64_t *partial[2];                       /* each site's bytes read into a large object not done yet */
    uint64_t started_ms, next_progress_ms;
    int drawn; /* a progress line is on the terminal */
    const char *bucket;
} report_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: comio diff --source URL --target URL [--bucket NAME] [--json] [--limit N] [--quiet] [--no-versions]\n"
                 "                  [--token TOKEN | --token-file FILE] [--source-token TOKEN] [--target-token TOKEN]\n"
                 "                  [--ca-file FILE] [--timeout DURATION] [--page-size N] [--deep [--rate-limit RATE]]\n"
                 "\n"
                 "Compares the objects of two sites (keys, sizes, ETags, metadata, versions) and prints the keys\n"
                 "missing on the target, extra on the target, different, with different metadata (same bytes),\n"
                 "and of a different version (same bytes and metadata). --deep has each site read and verify\n"
                 "every object's bytes and compares their content digests too; damaged objects are listed apart.\n"
                 "\n"
                 "  --source URL, --target URL  the two sites' storaged, http:// or https://\n"
                 "  --bucket NAME         compare this bucket only (default: every bucket of either site)\n"
                 "  --json                print one JSON document: the differences and the counts\n"
                 "  --limit N             print at most N differences (the counts stay complete)\n"
                 "  --quiet               print nothing; the exit status tells\n"
                 "  --no-versions         compare keys, sizes and ETags only (sites not filled by replication)\n"
                 "  --token TOKEN         token for both sites (else --token-file, else $COMIO_TOKEN)\n"
                 "  --token-file FILE     read that token from FILE\n"
                 "  --source-token TOKEN, --target-token TOKEN  a token for one site\n"
                 "  --ca-file FILE        trust the CA certificates in FILE (PEM) for https://\n"
                 "  --timeout DURATION    give up on a request after this long, e.g. 30s (default 10s)\n"
                 "  --page-size N         keys per listing request, 1 to 1000 (default 1000)\n"
                 "  --deep                compare content digests of the bytes on disk; report damaged objects\n"
                 "  --rate-limit RATE     with --deep: each site reads at most RATE, e.g. 50MB/s (default: no limit)\n"
                 "\n"
                 "exit status: 0 no differences; 1 differences; 2 usage; 3 a site could not be listed;\n"
                 "             4 (--deep) damaged objects found, with or without differences.\n");
}

static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- output ---- */

/* A key for people: control bytes, DEL, backslash and bytes that are not UTF-8 as \xHH, the rest as is. */
static void put_text(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (c < 0x20 || c == 0x7f || c == '\\' || len == 0) {
            fprintf(out, "\\x%02x", c);
            len = 1;
        } else {
            fwrite(s + i, 1, len, out);
        }
        i += len;
    }
}

/* A JSON string, written as storaged writes its own (buf_json_str: UTF-8, any bytes lossless). */
static void put_json(FILE *out, const char *s, size_t n)
{
    buf_t b;
    buf_init(&b, 6 * n + 2); /* every byte escaped, and the quotes */
    if (buf_json_str(&b, s, n) == 0)
        fwrite(b.data, 1, b.len, out);
    else
        fputs("null", out); /* out of memory: still a JSON document */
    buf_free(&b);
}

static void put_json_entry(FILE *out, const merge_entry_t *e)
{
    if (e == NULL) {
        fputs("null", out);
        return;
    }
    fprintf(out, "{\"size\":%" PRIu64 ",\"etag\":", e->size);
    put_json(out, e->etag, strlen(e->etag));
    if (e->has_version) {
        fprintf(out, ",\"version\":%" PRIu64 ",\"origin\":", e->version);
        put_json(out, e->origin, strlen(e->origin));
    }
    if (e->has_meta)
        fprintf(out, ",\"meta_digest\":\"%s\"", e->meta);
    if (e->has_digest)
        fprintf(out, ",\"digest\":\"%s\"", e->digest);
    if (e->damaged) {
        fprintf(out, ",\"damaged\":{\"reason\":\"%s\",\"block\":", e->damaged_reason);
        if (e->damaged_block != UINT64_MAX)
            fprintf(out, "%" PRIu64 "}", e->damaged_block);
        else
            fputs("null}", out);
    }
    putc('}', out);
}

static void progress_clear(report_t *r)
{
    if (r->drawn)
        fputs("\r\033[K", stderr);
    r->drawn = 0;
}

static void progress(report_t *r, int force)
{
    uint64_t now;
    /* --deep: every object may take long to read, so the clock is looked at after each */
    if (!r->progress || (!force && !r->deep && (r->keys & 127) != 0) || (now = clock_mono_ms()) < r->next_progress_ms)
        return;
    double secs = (double)(now - r->started_ms) / 1000.0;
    if (r->deep)
        fprintf(stderr,
                "\r\033[Kcomio diff --deep: %" PRIu64 " objects, %.1f MB compared (%.1f MB/s), %" PRIu64 " differences, %" PRIu64
                " damaged, bucket ",
                r->keys, (double)(r->bytes + *r->partial[0] + *r->partial[1]) / 1e6,
                secs > 0 ? (double)(r->bytes + *r->partial[0] + *r->partial[1]) / 1e6 / secs : 0.0,
                r->missing + r->extra + r->different + r->metadata + r->versions + r->content,
                r->damaged_source + r->damaged_target);
    else
        fprintf(stderr, "\r\033[Kcomio diff: %" PRIu64 " keys compared (%.0f keys/s), %" PRIu64 " differences, bucket ", r->keys,
                secs > 0 ? (double)r->keys / secs : 0.0, r->missing + r->extra + r->different + r->metadata + r->versions);
    put_text(stderr, r->bucket ? r->bucket : "", r->bucket ? strlen(r->bucket) : 0);
    fflush(stderr);
    r->drawn = 1;
    r->next_progress_ms = now + DIFF_PROGRESS_MS;
}

/* One side of a difference, for people. */
static void put_text_entry(const merge_entry_t *e, int versions, int metadata)
{
    printf("%" PRIu64 " bytes, etag %s", e->size, e->etag);
    if (metadata && e->has_meta)
        printf(", metadata %s", e->meta[0] != '\0' ? e->meta : "none");
    if (versions && e->has_version) {
        printf(", version %" PRIu64 " from ", e->version);
        put_text(stdout, e->origin, strlen(e->origin));
    }
}

/* One difference: kind "missing" (source only), "extra" (target only), "different", "metadata" (same bytes,
 * other metadata) or "version" (same bytes and metadata, another version). */
static void report(report_t *r, const char *bucket, const char *kind, const merge_entry_t *src, const merge_entry_t *tgt)
{
    const merge_entry_t *e = src != NULL ? src : tgt;
    if (r->quiet || r->printed >= r->limit)
        return;
    progress_clear(r);
    if (r->json) {
        fputs(r->printed == 0 ? "\n" : ",\n", stdout);
        fputs("{\"bucket\":", stdout);
        put_json(stdout, bucket, strlen(bucket));
        fputs(",\"key\":", stdout);
        put_json(stdout, e->key, e->key_len);
        if (strcmp(kind, "damaged") == 0)
            printf(",\"type\":\"damaged\",\"side\":\"%s\",\"source\":", src != NULL ? "source" : "target");
        else
            printf(",\"type\":\"%s\",\"source\":", kind);
        put_json_entry(stdout, src);
        fputs(",\"target\":", stdout);
        put_json_entry(stdout, tgt);
        putc('}', stdout);
    } else {
        int versions = strcmp(kind, "version") == 0, metadata = strcmp(kind, "metadata") == 0;
        if (strcmp(kind, "damaged") == 0) {
            /* the side that found it, and where: not a difference between the sites */
            const char *side = src != NULL ? "source" : "target";
            printf("damaged on %-7s ", side);
            put_text(stdout, bucket, strlen(bucket));
            putc('/', stdout);
            put_text(stdout, e->key, e->key_len);
            if (e->damaged_block != UINT64_MAX)
                printf("  %s: block %" PRIu64 " fails its checksum\n", side, e->damaged_block);
            else
                printf("  %s: %s\n", side,
                       strcmp(e->damaged_reason, "md5") == 0 ? "the bytes fail the object's MD5 (no block checksums)"
                                                             : "the bytes could not be read");
            r->printed++;
            if (r->progress)
                r->next_progress_ms = 0;
            return;
        }
        printf("%-18s ", strcmp(kind, "missing") == 0   ? "missing on target"
                         : strcmp(kind, "extra") == 0   ? "extra on target"
                         : strcmp(kind, "content") == 0 ? "other content"
                         : versions                     ? "different version"
                         : metadata                     ? "other metadata"
                                                        : kind);
        put_text(stdout, bucket, strlen(bucket));
        putc('/', stdout);
        put_text(stdout, e->key, e->key_len);
        if (src != NULL) {
            fputs("  source: ", stdout);
            put_text_entry(src, versions, metadata);
        }
        if (tgt != NULL) {
            fputs(src != NULL ? "; target: " : "  target: ", stdout);
            put_text_entry(tgt, versions, metadata);
        }
        putc('\n', stdout);
    }
    r->printed++;
    if (r->progress)
        r->next_progress_ms = 0; /* redraw at once */
}

/* ---- listing ---- */

static int site_init(site_t *s, const char *role, const char *url, const char *token, const char *ca_file, uint64_t timeout_ms,
                     unsigned page, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->role = role;
    buf_init(&s->body, DIFF_REPLY_MAX);
    /* the site's URL, then "/bucket?max-keys=N&start-after=key", both escaped */
    buf_init(&s->target, CLI_HTTP_URL_MAX + PERCENT_ENCODED_MAX(LIMIT_BUCKET_MAX + LIMIT_KEY_MAX) + 64);
    json_init(&s->doc, 64 * (size_t)page + 64, 16);
    if (cli_http_base_url(url, s->url, sizeof(s->url), err, errlen) != 0)
        return CIO_ECONFIG;
    cli_http_opts_t opts = {token[0] ? token : NULL, ca_file, timeout_ms, DIFF_REPLY_MAX};
    if ((s->http = cli_http_new(&opts)) == NULL) {
        snprintf(err, errlen, "cannot set up libcurl");
        return CIO_ENOMEM;
    }
    return 0;
}

static void site_free(site_t *s)
{
    cli_http_free(s->http);
    buf_free(&s->body);
    buf_free(&s->target);
    json_free(&s->doc);
}

/* GETs s->target into s->body; answers with 200 parse into s->doc. *code gets the status. */
static int site_get(site_t *s, long *code, char *err, size_t errlen)
{
    char why[256];
    int ret;

    if (s->target.err != 0) {
        snprintf(err, errlen, "%s: request URL too long", s->role);
        return CIO_ETOOBIG;
    }
    if ((ret = cli_http_get(s->http, s->target.data, &s->body, code, err, errlen)) != 0) {
        char tmp[1024];
        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, errlen, "%s: %s", s->role, tmp);
        return ret;
    }
    if (*code != 200)
        return 0;
    if ((ret = json_parse(&s->doc, s->body.data ? s->body.data : "", s->body.len, why, sizeof(why))) != 0) {
        snprintf(err, errlen, "%s: %s: reply is not the JSON expected: %s", s->role, s->target.data, why);
        return CIO_EPROTO;
    }
    return 0;
}

static int http_error(site_t *s, long code, char *err, size_t errlen)
{
    size_t n = s->body.len > 200 ? 200 : s->body.len;
    snprintf(err, errlen, "%s: %s answered %ld%s: %.*s", s->role, s->target.data, code,
             code == 401 ? " (the site needs its access token)" : "", (int)n, s->body.data ? s->body.data : "");
    return CIO_EIO;
}

static void site_open(site_t *s, const char *bucket)
{
    s->bucket = bucket;
    s->objects = s->next_obj = NULL;
    s->fetched = s->truncated = s->have_cur = 0;
    s->exists = 1;
    s->after_len = 0;
    s->resume[0] = '\0';
    s->partial = 0;
    s->keys = 0;
}

/* A 404 is "no such bucket" only when storaged says so: a wrong URL must not look like an empty site. */
static int is_no_such_bucket(site_t *s)
{
    return s->body.data != NULL && json_parse(&s->doc, s->body.data, s->body.len, NULL, 0) == 0 &&
           json_str_eq(&s->doc, json_member(&s->doc, json_root(&s->doc), "code"), "NoSuchBucket");
}

static int fetch_page(site_t *s, unsigned page, char *err, size_t errlen)
{
    const json_tok_t *root, *trunc;
    long code;
    int truncated, ret;

    s->target.len = 0;
    s->target.err = 0;
    buf_puts(&s->target, s->url);
    buf_puts(&s->target, "/");
    percent_append(&s->target, s->bucket, strlen(s->bucket), 0);
    buf_printf(&s->target, "?max-keys=%u", page);
    if (s->deep) {
        buf_puts(&s->target, "&deep=1");
        if (s->rate > 0)
            buf_printf(&s->target, "&rate=%" PRIu64, s->rate);
    }
    if (s->fetched && s->after_len > 0) { /* after a first page that stopped inside its first object: none yet */
        buf_puts(&s->target, "&start-after=");
        percent_append(&s->target, s->after, s->after_len, 0);
    }
    if (s->resume[0] != '\0') {
        buf_puts(&s->target, "&resume=");
        percent_append(&s->target, s->resume, strlen(s->resume), 0);
    }
    if ((ret = site_get(s, &code, err, errlen)) != 0)
        return ret;
    if (code == 404 && is_no_such_bucket(s)) { /* not here (or not any more): nothing (more) to list */
        s->exists = s->exists && s->fetched;
        s->fetched = 1;
        s->truncated = 0;
        return 0;
    }
    if (code != 200)
        return http_error(s, code, err, errlen);
    root = json_root(&s->doc);
    s->objects = json_member(&s->doc, root, "objects");
    trunc = json_member(&s->doc, root, "is_truncated");
    if (s->objects == NULL || s->objects->type != JSON_ARRAY || json_bool(trunc, &truncated) != 0) {
        snprintf(err, errlen, "%s: %s: reply has no \"objects\" array or \"is_truncated\"", s->role, s->target.data);
        return CIO_EPROTO;
    }
    const json_tok_t *resume = s->deep ? json_member(&s->doc, root, "resume") : NULL;
    if (resume != NULL) {
        /* the page stopped inside its first object: the same start-after again, with the cursor; each cursor
         * must be at least one 64 KiB block further into the object, or the walk would not end */
        char cur[DIFF_RESUME_MAX + 1];
        size_t clen;
        uint64_t prev = s->resume[0] != '\0' ? strtoull(s->resume, NULL, 10) : 0;
        if (!truncated || s->objects->count != 0 || json_str(&s->doc, resume, cur, sizeof(cur), &clen) != 0 || clen == 0 ||
            cur[0] < '0' || cur[0] > '9' || strtoull(cur, NULL, 10) < prev + (64u << 10) ||
            strtoull(cur, NULL, 10) > DIFF_OBJECT_MAX) {
            snprintf(err, errlen, "%s: %s: a \"resume\" cursor that does not move on", s->role, s->target.data);
            return CIO_EPROTO;
        }
        memcpy(s->resume, cur, clen + 1);
        s->partial = strtoull(cur, NULL, 10);
        s->fetched = 1;
        s->truncated = 1;
        s->next_obj = NULL;
        return 0;
    }
    s->resume[0] = '\0';
    s->partial = 0;
    if (truncated) {
        char next[LIMIT_KEY_MAX + 1];
        size_t nlen;
        /* the next page must start beyond this one, or the walk would not end */
        if (s->objects->count == 0 ||
            json_str(&s->doc, json_member(&s->doc, root, "next_start_after"), next, sizeof(next), &nlen) != 0 ||
            (s->fetched && merge_key_cmp(next, nlen, s->after, s->after_len) <= 0)) {
            snprintf(err, errlen, "%s: %s: truncated reply without a usable \"next_start_after\"", s->role, s->target.data);
            return CIO_EPROTO;
        }
        memcpy(s->after, next, nlen + 1);
        s->after_len = nlen;
    }
    s->fetched = 1;
    s->truncated = truncated;
    s->next_obj = json_first(&s->doc, s->objects);
    return 0;
}

/* A deep listing's part of an entry: a digest, or the damage found. NULL, or what is wrong. */
static const char *decode_deep(site_t *s, const json_tok_t *o, merge_entry_t *e)
{
    const json_tok_t *d = json_member(&s->doc, o, "damaged"), *dg = json_member(&s->doc, o, "digest"), *blk;
    size_t len;

    e->has_digest = e->damaged = 0;
    e->damaged_block = UINT64_MAX;
    e->damaged_reason[0] = '\0';
    if ((d == NULL) == (dg == NULL))
        return "neither or both of \"digest\" and \"damaged\" (is the site's storaged older than --deep?)";
    if (dg != NULL) {
        if (json_str(&s->doc, dg, e->digest, sizeof(e->digest), &len) != 0 || len != MERGE_DIGEST_MAX ||
            strspn(e->digest, "0123456789abcdef") != len)
            return "a \"digest\" that is not " LIMIT_TEXT(MERGE_DIGEST_MAX) " hex digits";
        e->has_digest = 1;
        return NULL;
    }
    if (json_str(&s->doc, json_member(&s->doc, d, "reason"), e->damaged_reason, sizeof(e->damaged_reason), &len) != 0 || len == 0 ||
        memchr(e->damaged_reason, '\0', len) != NULL)
        return "a \"damaged\" without a \"reason\"";
    blk = json_member(&s->doc, d, "block");
    if (blk != NULL && blk->type != JSON_NULL && (json_u64(&s->doc, blk, &e->damaged_block) != 0 || e->damaged_block == UINT64_MAX))
        return "a \"damaged\" whose \"block\" is not a count";
    e->damaged = 1;
    return NULL;
}

static int decode_entry(site_t *s, const json_tok_t *o, merge_entry_t *e, char *err, size_t errlen)
{
    const char *what = NULL;
    e->has_digest = e->damaged = 0; /* a listing that is not deep has neither */
    e->damaged_block = UINT64_MAX;
    e->damaged_reason[0] = '\0';
    if (json_str(&s->doc, json_member(&s->doc, o, "key"), e->key, sizeof(e->key), &e->key_len) != 0 || e->key_len == 0)
        what = "\"key\" missing, empty or longer than " LIMIT_TEXT(LIMIT_KEY_MAX) " bytes";
    else if (json_u64(&s->doc, json_member(&s->doc, o, "size"), &e->size) != 0)
        what = "\"size\" missing or not a count";
    else if (json_str(&s->doc, json_member(&s->doc, o, "etag"), e->etag, sizeof(e->etag), NULL) != 0)
        what = "\"etag\" missing or too long";
    else if ((e->has_version = json_member(&s->doc, o, "version") != NULL) &&
             (json_u64(&s->doc, json_member(&s->doc, o, "version"), &e->version) != 0 ||
              json_str(&s->doc, json_member(&s->doc, o, "origin"), e->origin, sizeof(e->origin), NULL) != 0))
        what = "\"version\" that is not a count, or no \"origin\" (or one too long)"; /* a site without versions has neither */
    else if ((e->has_meta = json_member(&s->doc, o, "meta_digest") != NULL) &&
             json_str(&s->doc, json_member(&s->doc, o, "meta_digest"), e->meta, sizeof(e->meta), NULL) != 0)
        what = "\"meta_digest\" that is not a string of at most " LIMIT_TEXT(MERGE_META_MAX) " characters";
    else if (s->deep)
        what = decode_deep(s, o, e);
    if (what == NULL)
        return 0;
    snprintf(err, errlen, "%s: %s: an object in the listing has %s", s->role, s->target.data, what);
    return CIO_EPROTO;
}

/* Moves to the next object of the bucket: 1 with s->cur set, 0 at the end, <0 error. */
static int site_next(site_t *s, unsigned page, char *err, size_t errlen)
{
    merge_entry_t e;
    int ret;

    for (int pages = 0; s->next_obj == NULL; pages++) {
        /* a truncated page is never empty but one that stopped inside a large object (--deep): fetch on then */
        if ((s->fetched && !s->truncated) || (pages > 0 && s->resume[0] == '\0'))
            return 0;
        if ((ret = fetch_page(s, page, err, errlen)) != 0)
            return ret;
        if (s->resume[0] != '\0' && s->on_partial != NULL)
            s->on_partial(s->on_partial_arg); /* a large object may take many pages: show them */
    }
    if ((ret = decode_entry(s, s->next_obj, &e, err, errlen)) != 0)
        return ret;
    s->next_obj = json_next(&s->doc, s->objects, s->next_obj);
    if (s->have_cur && merge_key_cmp(e.key, e.key_len, s->cur.key, s->cur.key_len) <= 0) {
        snprintf(err, errlen, "%s: the listing of bucket %s is not in key order (after %.100s comes %.100s): cannot compare",
                 s->role, s->bucket, s->cur.key, e.key);
        return CIO_EPROTO;
    }
    s->cur = e;
    s->have_cur = 1;
    s->keys++;
    return 1;
}

/* merge_next_fn over a site's paged listing. */
static int site_step(void *seq, const merge_entry_t **e)
{
    site_t *s = seq;
    *e = &s->cur;
    return site_next(s, s->page, s->err, s->errlen);
}

typedef struct {
    report_t *r;
    bucket_t *b;
} visit_t;

/* merge_visit_fn: counts the key, reports a difference, draws the progress. */
static void visit(void *arg, merge_kind_t kind, const merge_entry_t *src, const merge_entry_t *tgt)
{
    visit_t *v = arg;
    report_t *r = v->r;
    bucket_t *b = v->b;

    switch (kind) {
    case MERGE_MISSING:
        b->missing++;
        r->missing++;
        report(r, b->name, "missing", src, NULL);
        break;
    case MERGE_EXTRA:
        b->extra++;
        r->extra++;
        report(r, b->name, "extra", NULL, tgt);
        break;
    case MERGE_DIFFERENT:
        b->different++;
        r->different++;
        report(r, b->name, "different", src, tgt);
        break;
    case MERGE_METADATA:
        b->metadata++;
        r->metadata++;
        report(r, b->name, "metadata", src, tgt);
        break;
    case MERGE_VERSION:
        if (r->no_versions)
            break;
        b->versions++;
        r->versions++;
        report(r, b->name, "version", src, tgt);
        break;
    case MERGE_CONTENT:
        b->content++;
        r->content++;
        report(r, b->name, "content", src, tgt);
        break;
    case MERGE_SAME:
        break;
    }
    unsigned dmg = merge_damaged(src, tgt);
    if (dmg & MERGE_DAMAGED_SOURCE) {
        b->damaged_source++;
        r->damaged_source++;
        report(r, b->name, "damaged", src, NULL);
    }
    if (dmg & MERGE_DAMAGED_TARGET) {
        b->damaged_target++;
        r->damaged_target++;
        report(r, b->name, "damaged", NULL, tgt);
    }
    r->bytes += (src != NULL ? src->size : 0) + (tgt != NULL ? tgt->size : 0);
    r->keys++;
    progress(r, 0);
}

/* on_partial: a deep page stopped inside a large object. */
static void partial_progress(void *arg)
{
    progress(arg, 0);
}

/* The merge-join of one bucket. */
static int diff_bucket(site_t *src, site_t *tgt, bucket_t *b, report_t *r, char *err, size_t errlen)
{
    visit_t v = {r, b};
    int ret;

    site_open(src, b->name);
    site_open(tgt, b->name);
    src->page = tgt->page = r->page;
    src->deep = tgt->deep = r->deep;
    src->rate = tgt->rate = r->rate;
    src->on_partial = tgt->on_partial = partial_progress;
    src->on_partial_arg = tgt->on_partial_arg = r;
    r->partial[0] = &src->partial;
    r->partial[1] = &tgt->partial;
    src->err = tgt->err = err;
    src->errlen = tgt->errlen = errlen;
    r->bucket = b->name;
    ret = merge_join(site_step, src, tgt, visit, &v);
    if (ret != 0 && !(src->fetched && tgt->fetched))
        return CIO_EIO; /* a first page failed: the bucket list's view stands */
    b->on_source = src->exists;
    b->on_target = tgt->exists;
    if (ret != 0)
        return CIO_EIO;
    b->source_keys = src->keys;
    b->target_keys = tgt->keys;
    r->source_keys += src->keys;
    r->target_keys += tgt->keys;
    return 0;
}

/* ---- the bucket list ---- */

static int cmp_bucket(const void *x, const void *y)
{
    return strcmp(((const bucket_t *)x)->name, ((const bucket_t *)y)->name);
}

/* Adds the buckets of site s (GET /) to *list, marking which side has them. */
static int list_buckets(site_t *s, int is_source, bucket_t **list, size_t *n, size_t *cap, char *err, size_t errlen)
{
    const json_tok_t *arr, *b;
    long code;
    int ret;

    s->target.len = 0;
    s->target.err = 0;
    buf_puts(&s->target, s->url);
    buf_puts(&s->target, "/");
    json_free(&s->doc);
    json_init(&s->doc, DIFF_REPLY_MAX / 4, 16); /* a bucket is 9 values in about 80 bytes */
    ret = site_get(s, &code, err, errlen);
    if (ret != 0)
        return ret;
    if (code != 200)
        return http_error(s, code, err, errlen);
    arr = json_member(&s->doc, json_root(&s->doc), "buckets");
    if (arr == NULL || arr->type != JSON_ARRAY) {
        snprintf(err, errlen, "%s: %s: reply has no \"buckets\" array", s->role, s->target.data);
        return CIO_EPROTO;
    }
    for (b = json_first(&s->doc, arr); b != NULL; b = json_next(&s->doc, arr, b)) {
        bucket_t *nl = buf_grow_array(*list, cap, *n, sizeof(*nl), 16);
        if (nl == NULL) {
            snprintf(err, errlen, "out of memory");
            return CIO_ENOMEM;
        }
        *list = nl;
        bucket_t *e = &(*list)[*n];
        memset(e, 0, sizeof(*e));
        size_t len;
        if (json_str(&s->doc, json_member(&s->doc, b, "name"), e->name, sizeof(e->name), &len) != 0 || len == 0 ||
            memchr(e->name, '\0', len) != NULL) {
            snprintf(err, errlen, "%s: %s: a bucket without a valid \"name\"", s->role, s->target.data);
            return CIO_EPROTO;
        }
        e->on_source = is_source;
        e->on_target = !is_source;
        (*n)++;
    }
    return 0;
}

/* Sorts and merges the names the two sites reported into one list. */
static size_t merge_buckets(bucket_t *list, size_t n)
{
    size_t out = 0;
    if (n == 0)
        return 0; /* no bucket on either site: list may be NULL, which qsort must not be given */
    qsort(list, n, sizeof(*list), cmp_bucket);
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && strcmp(list[out - 1].name, list[i].name) == 0) {
            list[out - 1].on_source |= list[i].on_source;
            list[out - 1].on_target |= list[i].on_target;
        } else {
            list[out++] = list[i];
        }
    }
    return out;
}

/* ---- the summary ---- */

/* --deep's own line: the bytes read and the damage, which is not a difference between the sites. */
static void summary_deep(const report_t *r)
{
    if (!r->deep)
        return;
    printf("%.1f MB read and verified on the two sites; ", (double)r->bytes / 1e6);
    if (r->damaged_source + r->damaged_target == 0)
        printf("no damaged objects\n");
    else
        printf("damaged: %" PRIu64 " on source, %" PRIu64 " on target\n", r->damaged_source, r->damaged_target);
}

static void summary_text(const report_t *r, size_t nbuckets)
{
    uint64_t total = r->missing + r->extra + r->different + r->metadata + r->versions + r->content;
    uint64_t reported = total + r->damaged_source + r->damaged_target;
    printf("%" PRIu64 " keys in %zu bucket%s (source %" PRIu64 ", target %" PRIu64 "): ", r->keys, nbuckets,
           nbuckets == 1 ? "" : "s", r->source_keys, r->target_keys);
    if (total == 0) {
        printf("no differences\n");
        summary_deep(r);
        if (r->printed < reported)
            printf("(printed %" PRIu64 " of the %" PRIu64 " findings: --limit)\n", r->printed, reported);
        return;
    }
    printf("%" PRIu64 " missing on target, %" PRIu64 " extra on target, %" PRIu64 " different", r->missing, r->extra, r->different);
    if (r->metadata > 0) /* the same bytes with other metadata: only named when there are some */
        printf(", %" PRIu64 " with other metadata", r->metadata);
    if (r->versions > 0) /* the same bytes at another version: only named when there are some */
        printf(", %" PRIu64 " of another version", r->versions);
    if (r->content > 0) /* the same ETag over other bytes (--deep): only named when there are some */
        printf(", %" PRIu64 " with other content", r->content);
    putc('\n', stdout);
    summary_deep(r);
    if (r->printed < reported)
        printf("(printed %" PRIu64 " of the %" PRIu64 " %s: --limit)\n", r->printed, reported,
               reported == total ? "differences" : "findings");
}

static void summary_json(const report_t *r, const bucket_t *list, size_t nbuckets, const char *error)
{
    uint64_t total = r->missing + r->extra + r->different + r->metadata + r->versions + r->content;
    printf("%s],\"complete\":%s,", r->printed > 0 ? "\n" : "", error == NULL ? "true" : "false");
    if (error != NULL) {
        fputs("\"error\":", stdout);
        put_json(stdout, error, strlen(error));
        putc(',', stdout);
    }
    printf("\"printed\":%" PRIu64 ",\"counts\":{\"buckets\":%zu,\"keys\":%" PRIu64 ",\"source_keys\":%" PRIu64
           ",\"target_keys\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"extra\":%" PRIu64 ",\"different\":%" PRIu64
           ",\"metadata\":%" PRIu64 ",\"versions\":%" PRIu64 ",\"differences\":%" PRIu64,
           r->printed, nbuckets, r->keys, r->source_keys, r->target_keys, r->missing, r->extra, r->different, r->metadata,
           r->versions, total);
    if (r->deep)
        printf(",\"content\":%" PRIu64 ",\"damaged_source\":%" PRIu64 ",\"damaged_target\":%" PRIu64 ",\"bytes\":%" PRIu64,
               r->content, r->damaged_source, r->damaged_target, r->bytes);
    fputs("},\"buckets\":[", stdout);
    for (size_t i = 0; i < nbuckets; i++) {
        const bucket_t *b = &list[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
        put_json(stdout, b->name, strlen(b->name));
        printf(",\"on_source\":%s,\"on_target\":%s,\"source_keys\":%" PRIu64 ",\"target_keys\":%" PRIu64 ",\"missing\":%" PRIu64
               ",\"extra\":%" PRIu64 ",\"different\":%" PRIu64 ",\"metadata\":%" PRIu64 ",\"versions\":%" PRIu64,
               b->on_source ? "true" : "false", b->on_target ? "true" : "false", b->source_keys, b->target_keys, b->missing,
               b->extra, b->different, b->metadata, b->versions);
        if (r->deep)
            printf(",\"content\":%" PRIu64 ",\"damaged_source\":%" PRIu64 ",\"damaged_target\":%" PRIu64, b->content,
                   b->damaged_source, b->damaged_target);
        putc('}', stdout);
    }
    printf("]}\n");
}

int diff_main(int argc, char **argv)
{
    const char *source = NULL, *target = NULL, *bucket = NULL, *limit_arg = NULL, *page_arg = NULL, *timeout_arg = NULL;
    const char *token_arg = NULL, *token_file = NULL, *src_token_arg = NULL, *tgt_token_arg = NULL, *ca_file = NULL;
    const char *rate_arg = NULL;
    char token[CLI_HTTP_TOKEN_MAX], src_token[CLI_HTTP_TOKEN_MAX], tgt_token[CLI_HTTP_TOKEN_MAX], err[4096] = "";
    uint64_t timeout_ms = CLI_HTTP_DEFAULT_TIMEOUT_MS, v;
    bucket_t *list = NULL;
    size_t nbuckets = 0, cap = 0;
    site_t *src = NULL, *tgt = NULL;
    report_t r;
    int exit_status = EXIT_ERROR, failed = 0;

    memset(&r, 0, sizeof(r));
    r.limit = UINT64_MAX;
    r.page = DIFF_PAGE_MAX;
    for (int i = 1; i < argc; i++) {
        int k = 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_SAME;
        }
        if (strcmp(argv[i], "--json") == 0)
            r.json = 1, k = 1;
        else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            r.quiet = 1, k = 1;
        else if (strcmp(argv[i], "--no-versions") == 0)
            r.no_versions = 1, k = 1;
        else if (strcmp(argv[i], "--deep") == 0)
            r.deep = 1, k = 1;
        static const char *const names[] = {"--source",       "--target",       "--bucket",  "--limit",
                                            "--page-size",    "--timeout",      "--token",   "--token-file",
                                            "--source-token", "--target-token", "--ca-file", "--rate-limit"};
        const char **vals[] = {&source,    &target,     &bucket,        &limit_arg,     &page_arg, &timeout_arg,
                               &token_arg, &token_file, &src_token_arg, &tgt_token_arg, &ca_file,  &rate_arg};
        for (size_t j = 0; k == 0 && j < sizeof(names) / sizeof(names[0]); j++)
            k = cli_opt_value(argc, argv, &i, "diff", names[j], vals[j]);
        if (k < 0)
            return EXIT_USAGE;
        if (k == 0) {
            fprintf(stderr, "comio diff: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (source == NULL || target == NULL) {
        fprintf(stderr, "comio diff: --source and --target are both needed\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (r.json && r.quiet) {
        fprintf(stderr, "comio diff: --json and --quiet exclude each other\n");
        return EXIT_USAGE;
    }
    if (limit_arg != NULL && parse_count(limit_arg, UINT64_MAX - 1, &r.limit) != 0) {
        fprintf(stderr, "comio diff: --limit '%s' is not a count\n", limit_arg);
        return EXIT_USAGE;
    }
    if (page_arg != NULL) {
        if (parse_count(page_arg, DIFF_PAGE_MAX, &v) != 0 || v == 0) {
            fprintf(stderr, "comio diff: --page-size '%s' is not a count from 1 to %d\n", page_arg, DIFF_PAGE_MAX);
            return EXIT_USAGE;
        }
        r.page = (unsigned)v;
    }
    if (rate_arg != NULL && !r.deep) {
        fprintf(stderr, "comio diff: --rate-limit paces --deep's reads: it needs --deep\n");
        return EXIT_USAGE;
    }
    if (rate_arg != NULL && (units_parse_rate(rate_arg, &r.rate) != 0 || (r.rate > 0 && r.rate < DIFF_RATE_MIN))) {
        fprintf(stderr, "comio diff: --rate-limit '%s' is not a rate of at least 64KiB/s such as 50MB/s (or 0: no limit)\n",
                rate_arg);
        return EXIT_USAGE;
    }
    if (timeout_arg != NULL && (units_parse_duration(timeout_arg, &timeout_ms) != 0 || timeout_ms == 0)) {
        fprintf(stderr, "comio diff: --timeout '%s' is not a duration such as 30s or 500ms\n", timeout_arg);
        return EXIT_USAGE;
    }
    if (r.deep && timeout_arg == NULL)
        timeout_ms = DIFF_DEEP_TIMEOUT_MS; /* a deep page reads up to 16 MiB, or one object whole, before it answers */
    if (bucket != NULL && (bucket[0] == '\0' || strlen(bucket) > LIMIT_BUCKET_MAX)) {
        fprintf(stderr, "comio diff: --bucket '%s' is not a bucket name\n", bucket);
        return EXIT_USAGE;
    }
    if (cli_http_token(token_arg, token_file, token, err, sizeof(err)) != 0 ||
        cli_http_token(src_token_arg, NULL, src_token, err, sizeof(err)) != 0 ||
        cli_http_token(tgt_token_arg, NULL, tgt_token, err, sizeof(err)) != 0) {
        fprintf(stderr, "comio diff: %s\n", err);
        return EXIT_USAGE;
    }
    if ((src = calloc(1, sizeof(*src))) == NULL || (tgt = calloc(1, sizeof(*tgt))) == NULL) {
        fprintf(stderr, "comio diff: out of memory\n");
        goto done;
    }
    /* --source-token and --target-token win over the shared token (and $COMIO_TOKEN, which cli_http_token also read) */
    int rs = site_init(src, "source", source, src_token_arg ? src_token : token, ca_file, timeout_ms, r.page, err, sizeof(err));
    int rt =
        rs == 0 ? site_init(tgt, "target", target, tgt_token_arg ? tgt_token : token, ca_file, timeout_ms, r.page, err, sizeof(err))
                : 0;
    if (rs != 0 || rt != 0) {
        fprintf(stderr, "comio diff: %s\n", err);
        exit_status = rs == CIO_ECONFIG || rt == CIO_ECONFIG ? EXIT_USAGE : EXIT_ERROR;
        goto done;
    }

    if (r.json) {
        fputs("{\"source\":", stdout);
        put_json(stdout, src->url, strlen(src->url));
        fputs(",\"target\":", stdout);
        put_json(stdout, tgt->url, strlen(tgt->url));
        fputs(",\"differences\":[", stdout);
    }
    if (bucket != NULL) {
        if ((list = calloc(1, sizeof(*list))) == NULL) {
            snprintf(err, sizeof(err), "out of memory");
            failed = 1;
        } else {
            snprintf(list[0].name, sizeof(list[0].name), "%s", bucket);
            nbuckets = 1;
        }
    } else if (list_buckets(src, 1, &list, &nbuckets, &cap, err, sizeof(err)) != 0 ||
               list_buckets(tgt, 0, &list, &nbuckets, &cap, err, sizeof(err)) != 0) {
        failed = 1;
        nbuckets = 0;
    } else {
        nbuckets = merge_buckets(list, nbuckets);
        /* back to page-sized bounds for the listings */
        json_free(&src->doc);
        json_init(&src->doc, 64 * (size_t)r.page + 64, 16);
        json_free(&tgt->doc);
        json_init(&tgt->doc, 64 * (size_t)r.page + 64, 16);
        buf_free(&src->body);
        buf_free(&tgt->body);
    }

    r.progress = !r.quiet && isatty(2);
    r.started_ms = clock_mono_ms();
    for (size_t i = 0; i < nbuckets && !failed; i++)
        failed = diff_bucket(src, tgt, &list[i], &r, err, sizeof(err)) != 0;
    if (!failed && bucket != NULL && !list[0].on_source && !list[0].on_target) {
        snprintf(err, sizeof(err), "there is no bucket %s on either site", bucket);
        failed = 1;
    }
    progress_clear(&r);
    if (r.json)
        summary_json(&r, list, nbuckets, failed ? err : NULL);
    else if (!r.quiet && !failed)
        summary_text(&r, nbuckets);
    if (failed)
        fprintf(stderr, "comio diff: %s\n", err);
    else
        exit_status = r.damaged_source + r.damaged_target > 0                                       ? EXIT_DAMAGED
                      : r.missing + r.extra + r.different + r.metadata + r.versions + r.content > 0 ? EXIT_DIFFERENT
                                                                                                    : EXIT_SAME;
done:
    if (fflush(stdout) != 0) {
        fprintf(stderr, "comio diff: cannot write the output\n");
        exit_status = EXIT_ERROR;
    }
    if (src != NULL)
        site_free(src);
    if (tgt != NULL)
        site_free(tgt);
    free(src);
    free(tgt);
    free(list);
    return exit_status;
}
