/* conf.c - ComIO configuration: the YAML file (libyaml event API), command-line flags, derived defaults. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include "common/conf.h"
#include "common/zcodec.h"
#include "common/limits.h"
#include "common/units.h"

/* Caps on what grows from input: one scalar or flag value, the whole file,
 * a dotted key, and the slice of a bad value echoed back in a message. */
#define CONF_VALUE_MAX 4096
_Static_assert(CONF_VALUE_MAX <= LIMIT_TOKEN_MAX, "a token read from the config fits the buffers sized by LIMIT_TOKEN_MAX");
#define CONF_FILE_MAX (1024 * 1024)
#define CONF_KEY_MAX 128
#define CONF_SHOW_MAX 64
#define CONF_MSG_MAX 512

typedef enum {
    CONF_SECTION,    /* a mapping of further keys */
    CONF_STRING,     /* "" or null unsets it */
    CONF_STRING_SET, /* has a fixed default; may not be emptied */
    CONF_URL,        /* http:// or https://, "" unsets it */
    CONF_SITE_ID,
    CONF_TARGET_NAME, /* a target's name: like a site id, at most CONF_TARGET_NAME_MAX bytes */
    CONF_TOKEN,       /* printable ASCII, "" unsets it */
    CONF_TOKEN_FILE,  /* fills the CONF_TOKEN field at the same offset */
    CONF_INT,
    CONF_SIZE,
    CONF_DURATION,
    CONF_RATE, /* bytes per second (units_parse_rate) into a uint64_t; 0 is none */
    CONF_BOOL,
    CONF_MODE,
    CONF_COMPRESSION, /* zstd or none, into an int (CONF_COMPRESSION_*) */
    CONF_FALLBACK,    /* async or wait, into an int (CONF_SYNC_FALLBACK_*) */
    CONF_LEVEL,
    CONF_FORMAT,
    CONF_TARGETS,        /* replication.targets: a sequence of mappings read with conf_target_keys */
    CONF_S3_CREDENTIALS, /* s3.credentials: a sequence of {access_key, secret_key | secret_key_file} */
    CONF_HOSTS,          /* s3.domains: a sequence of host names */
    CONF_REGION,         /* s3.region: 1..CONF_S3_REGION_MAX of a-z 0-9 '-'; may not be emptied */
} conf_kind_t;

typedef struct {
    const char *key; /* full dotted YAML path; in conf_target_keys, the name inside a target */
    conf_kind_t kind;
    size_t off;          /* the field it sets: of conf_t, or of conf_target_t in conf_target_keys */
    unsigned width;      /* CONF_INT: size of that field */
    uint32_t min, max;   /* CONF_INT: accepted range (a target's override takes the range of `inherit`) */
    const char *partner; /* CONF_TOKEN(_FILE): the other way to set the same token */
    const char *inherit; /* conf_target_keys: the replication.* key a target that does not give it inherits */
    int required;        /* "" and null are refused, not "unset" */
} conf_key_t;

/* clang-format off */
#define CONF_SEC(k) {.key = (k), .kind = CONF_SECTION}
#define CONF_KEY(k, kd, field) {.key = (k), .kind = (kd), .off = offsetof(conf_t, field)}
#define CONF_INTKEY(k, field, lo, hi)                                                                                              \
    {.key = (k), .kind = CONF_INT, .off = offsetof(conf_t, field), .width = sizeof(((conf_t *)0)->field), .min = (lo), .max = (hi)}
/* a duration of at least lo_ms milliseconds (0 would mean "never wait") */
#define CONF_DURKEY(k, field, lo_ms) {.key = (k), .kind = CONF_DURATION, .off = offsetof(conf_t, field), .min = (lo_ms)}
#define CONF_TOKKEY(k, kd, field, other) {.key = (k), .kind = (kd), .off = offsetof(conf_t, field), .partner = (other)}
#define CONF_TGTKEY(k, kd, field, from) {.key = (k), .kind = (kd), .off = offsetof(conf_target_t, field), .inherit = (from)}
#define CONF_TGTINTKEY(k, field, from)                                                                                             \
    {.key = (k), .kind = CONF_INT, .off = offsetof(conf_target_t, field), .width = sizeof(((conf_target_t *)0)->field), .inherit = (from)}
/* clang-format on */

static const conf_key_t conf_keys[] = {
    CONF_SEC("site"),
    CONF_KEY("site.id", CONF_SITE_ID, site_id),
    CONF_SEC("server"),
    CONF_KEY("server.listen", CONF_STRING_SET, listen),
    CONF_INTKEY("server.port", port, 1, 65535),
    CONF_KEY("server.storage_path", CONF_STRING, storage_path),
    CONF_KEY("server.storage_size", CONF_SIZE, storage_size),
    CONF_KEY("server.meta_path", CONF_STRING, meta_path),
    CONF_KEY("server.public_url", CONF_URL, public_url),
    CONF_KEY("server.max_object_size", CONF_SIZE, max_object_size),
    CONF_TOKKEY("server.access_token", CONF_TOKEN, access_token, "server.access_token_file"),
    CONF_TOKKEY("server.access_token_file", CONF_TOKEN_FILE, access_token, "server.access_token"),
    CONF_SEC("server.tls"),
    CONF_KEY("server.tls.cert", CONF_STRING, tls_cert),
    CONF_KEY("server.tls.key", CONF_STRING, tls_key),
    CONF_KEY("server.meta_map_size", CONF_SIZE, meta_map_size),
    CONF_INTKEY("server.threads", threads, 0, 256),
    CONF_SEC("storage"),
    CONF_KEY("storage.checksums", CONF_BOOL, checksums),
    CONF_KEY("storage.scrub_rate", CONF_RATE, scrub_rate),
    CONF_KEY("storage.scrub_interval", CONF_DURATION, scrub_interval_ms),
    CONF_KEY("storage.repair_peers", CONF_TARGETS, repair_peers),
    CONF_DURKEY("storage.repair_timeout", repair_timeout_ms, 1),
    CONF_KEY("storage.repair_backoff", CONF_DURATION, repair_backoff_ms),
    CONF_SEC("replication"),
    CONF_KEY("replication.enabled", CONF_BOOL, repl_enabled),
    CONF_KEY("replication.mode", CONF_MODE, repl_mode),
    CONF_KEY("replication.sync_timeout", CONF_DURATION, sync_timeout_ms),
    CONF_KEY("replication.sync_fallback", CONF_FALLBACK, sync_fallback),
    CONF_KEY("replication.remote_url", CONF_URL, remote_url),
    CONF_TOKKEY("replication.remote_token", CONF_TOKEN, remote_token, "replication.remote_token_file"),
    CONF_TOKKEY("replication.remote_token_file", CONF_TOKEN_FILE, remote_token, "replication.remote_token"),
    CONF_TOKKEY("replication.accept_token", CONF_TOKEN, accept_token, "replication.accept_token_file"),
    CONF_TOKKEY("replication.accept_token_file", CONF_TOKEN_FILE, accept_token, "replication.accept_token"),
    CONF_INTKEY("replication.batch_size", batch_size, 1, 10000),
    CONF_KEY("replication.batch_interval", CONF_DURATION, batch_interval_ms),
    CONF_INTKEY("replication.retry_attempts", retry_attempts, 0, 100),
    CONF_KEY("replication.retry_delay", CONF_DURATION, retry_delay_ms),
    CONF_INTKEY("replication.workers", workers, 1, 64),
    CONF_KEY("replication.inline_threshold", CONF_SIZE, inline_threshold),
    CONF_KEY("replication.compression", CONF_COMPRESSION, compression),
    CONF_INTKEY("replication.compression_level", compression_level, ZCODEC_LEVEL_MIN, ZCODEC_LEVEL_MAX),
    CONF_KEY("replication.bandwidth_limit", CONF_RATE, bandwidth_limit),
    CONF_KEY("replication.socket", CONF_STRING_SET, socket_path),
    CONF_KEY("replication.ca_file", CONF_STRING, ca_file),
    CONF_KEY("replication.tombstone_ttl", CONF_DURATION, tombstone_ttl_ms),
    CONF_KEY("replication.conflict_ttl", CONF_DURATION, conflict_ttl_ms),
    CONF_KEY("replication.sync_rate_limit", CONF_RATE, sync_rate_limit),
    CONF_KEY("replication.max_clock_skew", CONF_DURATION, max_clock_skew_ms),
    CONF_KEY("replication.targets", CONF_TARGETS, targets),
    CONF_SEC("s3"),
    CONF_KEY("s3.credentials", CONF_S3_CREDENTIALS, s3_credentials),
    CONF_KEY("s3.region", CONF_REGION, s3_region),
    CONF_KEY("s3.domains", CONF_HOSTS, s3_domains),
    CONF_KEY("s3.multipart_ttl", CONF_DURATION, s3_multipart_ttl_ms),
    CONF_SEC("logging"),
    CONF_KEY("logging.level", CONF_LEVEL, log_level),
    CONF_KEY("logging.format", CONF_FORMAT, log_json),
    CONF_KEY("logging.file", CONF_STRING, log_file),
};

#define CONF_NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))
/* Duplicate detection keeps one bit per key in a uint64_t. */
_Static_assert(CONF_NKEYS <= 64, "conf_keys outgrew the seen-bitmask");

/* The keys of one entry of replication.targets. A key with `inherit` overrides
 * that replication.* key for this target, with the same type and range; a
 * target that does not give it gets the replication.* value in conf_finalize. */
static const conf_key_t conf_target_keys[] = {
    {.key = "name", .kind = CONF_TARGET_NAME, .off = offsetof(conf_target_t, name), .required = 1},
    {.key = "url", .kind = CONF_URL, .off = offsetof(conf_target_t, url), .required = 1},
    {.key = "token", .kind = CONF_TOKEN, .off = offsetof(conf_target_t, token), .partner = "token_file"},
    {.key = "token_file", .kind = CONF_TOKEN_FILE, .off = offsetof(conf_target_t, token), .partner = "token"},
    CONF_TGTKEY("mode", CONF_MODE, mode, "replication.mode"),
    CONF_TGTKEY("sync_timeout", CONF_DURATION, sync_timeout_ms, "replication.sync_timeout"),
    CONF_TGTKEY("sync_fallback", CONF_FALLBACK, sync_fallback, "replication.sync_fallback"),
    CONF_TGTINTKEY("batch_size", batch_size, "replication.batch_size"),
    CONF_TGTINTKEY("workers", workers, "replication.workers"),
    CONF_TGTINTKEY("retry_attempts", retry_attempts, "replication.retry_attempts"),
    CONF_TGTKEY("retry_delay", CONF_DURATION, retry_delay_ms, "replication.retry_delay"),
    CONF_TGTKEY("inline_threshold", CONF_SIZE, inline_threshold, "replication.inline_threshold"),
    CONF_TGTKEY("compression", CONF_COMPRESSION, compression, "replication.compression"),
    CONF_TGTINTKEY("compression_level", compression_level, "replication.compression_level"),
    CONF_TGTKEY("bandwidth_limit", CONF_RATE, bandwidth_limit, "replication.bandwidth_limit"),
};

#define CONF_NTARGET_KEYS (sizeof(conf_target_keys) / sizeof(conf_target_keys[0]))

/* The keys of one entry of storage.repair_peers: the first four of a target's. */
#define CONF_NPEER_KEYS 4
_Static_assert(CONF_NPEER_KEYS <= CONF_NTARGET_KEYS, "a repair peer's keys are a target's first ones");
_Static_assert(CONF_NTARGET_KEYS <= 32, "conf_target_keys outgrew conf_target_t.given");
/* conf_finalize copies an inherited setting by its kind: the widths must agree. */
_Static_assert(sizeof(((conf_target_t *)0)->batch_size) == sizeof(uint32_t) &&
                   sizeof(((conf_t *)0)->batch_size) == sizeof(uint32_t) &&
                   sizeof(((conf_target_t *)0)->workers) == sizeof(uint32_t) &&
                   sizeof(((conf_t *)0)->workers) == sizeof(uint32_t) &&
                   sizeof(((conf_target_t *)0)->retry_attempts) == sizeof(uint32_t) &&
                   sizeof(((conf_t *)0)->retry_attempts) == sizeof(uint32_t) &&
                   sizeof(((conf_target_t *)0)->compression_level) == sizeof(uint32_t) &&
                   sizeof(((conf_t *)0)->compression_level) == sizeof(uint32_t),
               "a target's integer settings are uint32_t, as the replication.* ones");

/* Keys that one file may not give together (a token and its _file form are
 * the `partner` rule above): a list of targets replaces the seed's single
 * remote, and its tokens are per target. */
static const struct {
    const char *a, *b, *hint;
} conf_exclusive[] = {
    {"replication.targets", "replication.remote_url", "use one: list the remote site as a target"},
    {"replication.targets", "replication.remote_token", "give each target its token or token_file"},
    {"replication.targets", "replication.remote_token_file", "give each target its token or token_file"},
};

typedef struct {
    const char *flag;
    const char *key; /* the setting it overrides; NULL for --config and --help */
    const char *arg; /* NULL: takes no value */
    const char *help;
} conf_flag_t;

static const conf_flag_t conf_flags[] = {
    {"--config", NULL, "FILE", "read settings from this YAML file; flags override it"},
    {"--storage", "server.storage_path", "PATH", "data file or block device (required by the server)"},
    {"--size", "server.storage_size", "SIZE", "size of the data store, e.g. 1TB or 512GiB"},
    {"--port", "server.port", "PORT", "TCP port for HTTP (default 8080)"},
    {"--listen", "server.listen", "ADDR", "address to listen on (default 0.0.0.0)"},
    {"--meta", "server.meta_path", "PATH", "metadata database path (default <storage>.meta)"},
    {"--replication-enabled", "replication.enabled", NULL, "ship every change to the remote site"},
    {"--replication-remote", "replication.remote_url", "URL", "base URL of the replica site"},
    {"--replication-token", "replication.remote_token", "TOKEN", "token sent to the replica (prefer remote_token_file)"},
    {"--accept-token", "replication.accept_token", "TOKEN", "token a primary must present to this replica"},
    {"--site-id", "site.id", "ID", "name of this site in logs and records (default: hostname)"},
    {"--log-level", "logging.level", "LEVEL", "debug, info, warn or error (default info)"},
    {"--log-file", "logging.file", "PATH", "append log lines to this file, reopened on SIGHUP (default stderr)"},
    {"--help", NULL, NULL, "print this help and exit (also -h)"},
};

#define CONF_NFLAGS (sizeof(conf_flags) / sizeof(conf_flags[0]))

static void conf_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void conf_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* Messages echo names from the command line and the file (paths,
     * arguments): keep them one line of text whatever those hold. */
    for (char *p = err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static char *conf_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Returns a malloc'ed formatted string (caller frees) or NULL when out of memory. */
static char *conf_strfmt(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Copies a value for display in an error message: at most CONF_SHOW_MAX bytes,
 * control bytes replaced, so the message stays one short line. */
static const char *conf_show(const char *val, size_t len, char out[CONF_SHOW_MAX + 4])
{
    size_t n = len > CONF_SHOW_MAX ? CONF_SHOW_MAX : len, i;

    for (i = 0; i < n; i++)
        out[i] = (unsigned char)val[i] < 0x20 || val[i] == 0x7f ? '?' : val[i];
    if (len > n) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static const conf_key_t *conf_key_find(const char *key, size_t len)
{
    for (size_t i = 0; i < CONF_NKEYS; i++)
        if (strlen(conf_keys[i].key) == len && memcmp(conf_keys[i].key, key, len) == 0)
            return &conf_keys[i];
    return NULL;
}

static int conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return CIO_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return CIO_OK;
        }
    }
    return CIO_EINVAL;
}

/* Decimal digits only: no sign, no hex, no spaces; overflow-safe. */
static int conf_parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return CIO_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return CIO_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return CIO_EINVAL;
    }
    if (v < min)
        return CIO_EINVAL;
    *out = (uint32_t)v;
    return CIO_OK;
}

/* 1..max bytes of [A-Za-z0-9._-]: a site id, a target's name. */
static int conf_valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}

static int conf_valid_site_id(const char *s)
{
    return conf_valid_name(s, LIMIT_SITE_ID_MAX);
}

static int conf_valid_target_name(const char *s)
{
    return conf_valid_name(s, CONF_TARGET_NAME_MAX);
}

/* Tokens end up in an HTTP header: refuse anything that could split it. */
static int conf_valid_token(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int conf_valid_url(const char *s)
{
    const char *rest;

    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return 0;
    if (*rest == '\0' || *rest == '/')
        return 0;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* Reads the first line of a token file into a malloc'ed string (*out, caller
 * frees), trailing whitespace stripped. */
static int conf_read_token_file(const char *name, const char *path, char **out, char *msg, size_t msglen)
{
    char line[CONF_VALUE_MAX + 2];
    FILE *fp;
    size_t n;
    int rc = CIO_ECONFIG;

    if ((fp = fopen(path, "r")) == NULL) {
        conf_err(msg, msglen, "%s: cannot open '%s': %s", name, path, strerror(errno));
        return CIO_ECONFIG;
    }
    if (fgets(line, sizeof(line), fp) == NULL) {
        if (ferror(fp))
            conf_err(msg, msglen, "%s: cannot read '%s': %s", name, path, strerror(errno));
        else
            conf_err(msg, msglen, "%s: file '%s' is empty", name, path);
        goto fail;
    }
    n = strlen(line);
    if (n > CONF_VALUE_MAX && line[n - 1] != '\n') {
        conf_err(msg, msglen, "%s: the token in '%s' is longer than %d bytes", name, path, CONF_VALUE_MAX);
        goto fail;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    if (n == 0) {
        conf_err(msg, msglen, "%s: file '%s' is empty", name, path);
        goto fail;
    }
    if (!conf_valid_token(line)) {
        conf_err(msg, msglen, "%s: the token in '%s' must be printable ASCII without spaces", name, path);
        goto fail;
    }
    if ((*out = strdup(line)) == NULL) {
        conf_err(msg, msglen, "out of memory");
        rc = CIO_ENOMEM;
        goto fail;
    }
    rc = CIO_OK;
fail:
    explicit_bzero(line, sizeof(line));
    fclose(fp);
    return rc;
}

/* Sets the field of `k` in `obj` (a conf_t, or a conf_target_t for
 * conf_target_keys) from val[0..len). `name` is what the message calls the
 * setting (the dotted key, or the flag). `is_null` marks a YAML null (~).
 * On failure writes one line into msg and returns CIO_ECONFIG or CIO_ENOMEM. */
static int conf_set(void *obj, const conf_key_t *k, const char *name, const char *val, size_t len, int is_null, char *msg,
                    size_t msglen)
{
    char *base = obj, shown[CONF_SHOW_MAX + 4], *s;
    char **strp = (char **)(void *)(base + k->off);
    int is_secret = k->kind == CONF_TOKEN;
    uint64_t u64;
    uint32_t u32;
    log_level_t lvl;
    int b;

    if (len > CONF_VALUE_MAX) {
        conf_err(msg, msglen, "%s: value is longer than %d bytes", name, CONF_VALUE_MAX);
        return CIO_ECONFIG;
    }
    if (memchr(val, '\0', len) != NULL) {
        conf_err(msg, msglen, "%s: value contains a NUL byte", name);
        return CIO_ECONFIG;
    }
    conf_show(is_secret ? "" : val, is_secret ? 0 : len, shown);

    switch (k->kind) {
    case CONF_SECTION:
        conf_err(msg, msglen, "%s: expected a mapping, got '%s'", name, shown);
        return CIO_ECONFIG;

    case CONF_S3_CREDENTIALS:
    case CONF_HOSTS:
        conf_err(msg, msglen, "%s: expected a list, got '%s'", name, shown);
        return CIO_ECONFIG;

    case CONF_TARGETS:
        if (is_null || len == 0)
            conf_err(msg, msglen, "%s: expected a list of targets, got an empty value", name);
        else
            conf_err(msg, msglen, "%s: expected a list of targets, got '%s'", name, shown);
        return CIO_ECONFIG;

    case CONF_STRING:
    case CONF_STRING_SET:
    case CONF_REGION:
    case CONF_URL:
    case CONF_SITE_ID:
    case CONF_TARGET_NAME:
    case CONF_TOKEN:
        if ((is_null || len == 0) && !k->required) {
            if (k->kind == CONF_STRING_SET || k->kind == CONF_REGION) {
                conf_err(msg, msglen, "%s: must not be empty", name);
                return CIO_ECONFIG;
            }
            free(*strp);
            *strp = NULL;
            return CIO_OK;
        }
        if (k->kind == CONF_URL && !conf_valid_url(val)) {
            conf_err(msg, msglen, "%s: expected an http:// or https:// URL, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        /* a presigned fetch URL is public_url plus up to ~3,300 bytes of path
         * and query, and must stay within a batch's 4 KiB URL limit */
        if (k->kind == CONF_URL && len > LIMIT_URL_MAX) {
            conf_err(msg, msglen, "%s: at most %d bytes, got %zu", name, LIMIT_URL_MAX, len);
            return CIO_ECONFIG;
        }
        if (k->kind == CONF_SITE_ID && !conf_valid_site_id(val)) {
            conf_err(msg, msglen, "%s: expected 1 to %d letters, digits, '.', '_' or '-', got '%s'", name, LIMIT_SITE_ID_MAX,
                     shown);
            return CIO_ECONFIG;
        }
        if (k->kind == CONF_TARGET_NAME && !conf_valid_target_name(val)) {
            conf_err(msg, msglen, "%s: expected 1 to %d letters, digits, '.', '_' or '-', got '%s'", name, CONF_TARGET_NAME_MAX,
                     shown);
            return CIO_ECONFIG;
        }
        if (k->kind == CONF_REGION && (len > CONF_S3_REGION_MAX || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)) {
            conf_err(msg, msglen, "%s: expected 1 to %d of a-z, 0-9 and '-', got '%s'", name, CONF_S3_REGION_MAX, shown);
            return CIO_ECONFIG;
        }
        if (k->kind == CONF_TOKEN && !conf_valid_token(val)) {
            conf_err(msg, msglen, "%s: must be printable ASCII without spaces", name);
            return CIO_ECONFIG;
        }
        if ((s = strndup(val, len)) == NULL)
            goto nomem;
        free(*strp);
        *strp = s;
        return CIO_OK;

    case CONF_TOKEN_FILE: {
        int rc;
        if (is_null || len == 0) {
            conf_err(msg, msglen, "%s: expected a file name", name);
            return CIO_ECONFIG;
        }
        if ((rc = conf_read_token_file(name, val, &s, msg, msglen)) != CIO_OK)
            return rc;
        free(*strp);
        *strp = s;
        return CIO_OK;
    }

    case CONF_INT:
        if (conf_parse_uint(val, k->min, k->max, &u32) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected an integer from %u to %u, got '%s'", name, k->min, k->max, shown);
            return CIO_ECONFIG;
        }
        if (k->width == sizeof(uint16_t))
            *(uint16_t *)(void *)(base + k->off) = (uint16_t)u32;
        else
            *(uint32_t *)(void *)(base + k->off) = u32;
        return CIO_OK;

    case CONF_SIZE:
        if (units_parse_size(val, &u64) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected a size such as 4096, 512MB or 2GiB, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        *(uint64_t *)(void *)(base + k->off) = u64;
        return CIO_OK;

    case CONF_DURATION:
        if (units_parse_duration(val, &u64) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected a duration such as 500ms, 1s, 5m or 1h, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        if (u64 < k->min) {
            conf_err(msg, msglen, "%s: expected a duration of at least %ums, got '%s'", name, (unsigned)k->min, shown);
            return CIO_ECONFIG;
        }
        *(uint64_t *)(void *)(base + k->off) = u64;
        return CIO_OK;

    case CONF_RATE:
        if (units_parse_rate(val, &u64) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected a rate such as 100Mbit, 1Gbit or 20MB/s (0: no limit), got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        *(uint64_t *)(void *)(base + k->off) = u64;
        return CIO_OK;

    case CONF_BOOL:
        if (conf_parse_bool(val, &b) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected true or false, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        *(int *)(void *)(base + k->off) = b;
        return CIO_OK;

    case CONF_MODE:
        if (strcmp(val, "async") != 0 && strcmp(val, "sync") != 0) {
            conf_err(msg, msglen, "%s: expected sync or async, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        if ((s = strdup(val)) == NULL)
            goto nomem;
        free(*strp);
        *strp = s;
        return CIO_OK;

    case CONF_COMPRESSION:
        if (strcmp(val, "zstd") == 0) {
            *(int *)(void *)(base + k->off) = CONF_COMPRESSION_ZSTD;
        } else if (strcmp(val, "none") == 0) {
            *(int *)(void *)(base + k->off) = CONF_COMPRESSION_NONE;
        } else {
            conf_err(msg, msglen, "%s: expected zstd or none, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        return CIO_OK;

    case CONF_FALLBACK:
        if (strcmp(val, "async") == 0) {
            *(int *)(void *)(base + k->off) = CONF_SYNC_FALLBACK_ASYNC;
        } else if (strcmp(val, "wait") == 0) {
            *(int *)(void *)(base + k->off) = CONF_SYNC_FALLBACK_WAIT;
        } else {
            conf_err(msg, msglen, "%s: expected async or wait, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        return CIO_OK;

    case CONF_LEVEL:
        if (log_parse_level(val, &lvl) != CIO_OK) {
            conf_err(msg, msglen, "%s: expected debug, info, warn or error, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        *(log_level_t *)(void *)(base + k->off) = lvl;
        return CIO_OK;

    case CONF_FORMAT:
        if (strcmp(val, "json") == 0) {
            *(int *)(void *)(base + k->off) = 1;
        } else if (strcmp(val, "text") == 0) {
            *(int *)(void *)(base + k->off) = 0;
        } else {
            conf_err(msg, msglen, "%s: expected json or text, got '%s'", name, shown);
            return CIO_ECONFIG;
        }
        return CIO_OK;
    }
    conf_err(msg, msglen, "%s: unsupported setting", name);
    return CIO_ECONFIG;

nomem:
    conf_err(msg, msglen, "out of memory");
    return CIO_ENOMEM;
}

/* Frees targets[0..n) and the array (NULL: nothing), wiping the tokens. */
static void conf_targets_free(conf_target_t *targets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        conf_target_t *t = &targets[i];
        if (t->token != NULL)
            explicit_bzero(t->token, strlen(t->token));
        free(t->name);
        free(t->url);
        free(t->token);
        free(t->mode);
    }
    free(targets);
}

/* Frees the S3 credentials (wiping the secrets) and domains. */
static void conf_s3_creds_free(conf_s3_cred_t *creds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (creds[i].secret_key != NULL)
            explicit_bzero(creds[i].secret_key, strlen(creds[i].secret_key));
        free(creds[i].access_key);
        free(creds[i].secret_key);
    }
    free(creds);
}

static void conf_hosts_free(char **hosts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(hosts[i]);
    free(hosts);
}

int conf_init(conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 8080;
    c->max_object_size = 1000000000ULL;
    c->meta_map_size = 16ULL << 30;
    c->threads = 0;
    c->checksums = 1;
    c->scrub_rate = 4000000;
    c->repair_timeout_ms = 30000;
    c->repair_backoff_ms = 5ULL * 60 * 1000;
    c->scrub_interval_ms = 7ULL * 24 * 3600 * 1000;
    c->repl_enabled = 0;
    c->batch_size = 100;
    c->batch_interval_ms = 1000;
    c->retry_attempts = 3;
    c->retry_delay_ms = 5000;
    c->workers = 5;
    c->inline_threshold = 1000000;
    c->compression = CONF_COMPRESSION_NONE;
    c->compression_level = ZCODEC_LEVEL_DEFAULT;
    c->tombstone_ttl_ms = 7ULL * 24 * 3600 * 1000;
    c->s3_multipart_ttl_ms = 7ULL * 24 * 3600 * 1000;
    c->conflict_ttl_ms = 7ULL * 24 * 3600 * 1000;
    c->max_clock_skew_ms = 60000;
    c->sync_timeout_ms = 5000;
    c->sync_fallback = CONF_SYNC_FALLBACK_ASYNC;
    c->log_level = LOG_LVL_INFO;
    c->log_json = 1;
    if ((c->listen = strdup("0.0.0.0")) == NULL || (c->repl_mode = strdup("async")) == NULL ||
        (c->socket_path = strdup("/run/comio/repld.sock")) == NULL || (c->s3_region = strdup("us-east-1")) == NULL)
        goto fail;
    return CIO_OK;
fail:
    conf_free(c);
    return CIO_ENOMEM;
}

void conf_free(conf_t *c)
{
    char **strs[] = {&c->site_id,     &c->listen,  &c->storage_path, &c->meta_path,  &c->public_url,   &c->access_token,
                     &c->tls_cert,    &c->tls_key, &c->repl_mode,    &c->remote_url, &c->remote_token, &c->accept_token,
                     &c->socket_path, &c->ca_file, &c->config_path,  &c->log_file,   &c->s3_region};

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        /* Tokens are secrets: wipe them before the memory goes back. */
        if (*strs[i] != NULL && (strs[i] == &c->access_token || strs[i] == &c->remote_token || strs[i] == &c->accept_token))
            explicit_bzero(*strs[i], strlen(*strs[i]));
        free(*strs[i]);
    }
    conf_targets_free(c->targets, c->ntargets);
    conf_targets_free(c->repair_peers, c->nrepair_peers);
    conf_s3_creds_free(c->s3_credentials, c->s3_ncredentials);
    conf_hosts_free(c->s3_domains, c->s3_ndomains);
    memset(c, 0, sizeof(*c));
}

/* ---- the YAML file ---- */

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev; /* the current event; one at a time, deleted by the next */
    int have_ev;
    const char *text; /* the whole file, len bytes (not NUL-terminated) */
    size_t len;
    uint64_t seen; /* bit i: conf_keys[i] was already given in this file */
    conf_t *c;
    const char *path;
    char *err;
    size_t errlen;
} conf_yaml_t;

static size_t conf_yaml_line(const yaml_event_t *ev)
{
    return ev->start_mark.line + 1;
}

/* Writes "<path>:<line>: <msg>" and returns CIO_ECONFIG. */
static int conf_yaml_fail(conf_yaml_t *y, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int conf_yaml_fail(conf_yaml_t *y, size_t line, const char *fmt, ...)
{
    char msg[CONF_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_err(y->err, y->errlen, "%s:%zu: %s", y->path, line, msg);
    return CIO_ECONFIG;
}

/* The reader (bad UTF-8, ...) reports a byte offset, not a line. */
static size_t conf_yaml_offset_line(const conf_yaml_t *y, size_t offset)
{
    size_t line = 1;

    for (size_t i = 0; i < offset && i < y->len; i++)
        if (y->text[i] == '\n')
            line++;
    return line;
}

/* Advances to the next event, deleting the current one. */
static int conf_yaml_next(conf_yaml_t *y)
{
    if (y->have_ev) {
        yaml_event_delete(&y->ev);
        y->have_ev = 0;
    }
    if (yaml_parser_parse(&y->parser, &y->ev)) {
        y->have_ev = 1;
        return CIO_OK;
    }
    switch (y->parser.error) {
    case YAML_MEMORY_ERROR:
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    case YAML_READER_ERROR:
        return conf_yaml_fail(y, conf_yaml_offset_line(y, y->parser.problem_offset), "YAML syntax error: %s",
                              y->parser.problem ? y->parser.problem : "unreadable input");
    default:
        if (y->parser.context != NULL)
            return conf_yaml_fail(y, y->parser.problem_mark.line + 1, "YAML syntax error: %s (%s at line %zu)",
                                  y->parser.problem ? y->parser.problem : "unknown problem", y->parser.context,
                                  y->parser.context_mark.line + 1);
        return conf_yaml_fail(y, y->parser.problem_mark.line + 1, "YAML syntax error: %s",
                              y->parser.problem ? y->parser.problem : "unknown problem");
    }
}

static int conf_yaml_is_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int conf_yaml_mapping(conf_yaml_t *y, const conf_key_t *section);
static int conf_yaml_targets(conf_yaml_t *y, const conf_key_t *k);
static int conf_yaml_s3_credentials(conf_yaml_t *y, const conf_key_t *k);
static int conf_yaml_hosts(conf_yaml_t *y, const conf_key_t *k);

/* Handles the value event of key `k` (already current). */
static int conf_yaml_value(conf_yaml_t *y, const conf_key_t *k)
{
    yaml_event_t *ev = &y->ev;
    size_t line = conf_yaml_line(ev);
    char msg[CONF_MSG_MAX];
    int rc;

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return conf_yaml_fail(y, line, "%s: aliases (*name) are not supported", k->key);
    case YAML_SEQUENCE_START_EVENT:
        if (k->kind == CONF_TARGETS)
            return conf_yaml_targets(y, k);
        if (k->kind == CONF_S3_CREDENTIALS)
            return conf_yaml_s3_credentials(y, k);
        if (k->kind == CONF_HOSTS)
            return conf_yaml_hosts(y, k);
        return conf_yaml_fail(y, line, "%s: expected %s, got a sequence", k->key,
                              k->kind == CONF_SECTION ? "a mapping" : "a single value");
    case YAML_MAPPING_START_EVENT:
        if (k->kind == CONF_TARGETS)
            return conf_yaml_fail(y, line, "%s: expected a list of targets, got a mapping (write '- ' before each target)", k->key);
        if (k->kind == CONF_S3_CREDENTIALS || k->kind == CONF_HOSTS)
            return conf_yaml_fail(y, line, "%s: expected a list, got a mapping (write '- ' before each entry)", k->key);
        if (k->kind != CONF_SECTION)
            return conf_yaml_fail(y, line, "%s: expected a single value, got a mapping", k->key);
        return conf_yaml_mapping(y, k);
    case YAML_SCALAR_EVENT:
        if (k->kind == CONF_SECTION && conf_yaml_is_null(ev))
            return CIO_OK; /* "replication:" with everything under it commented out */
        if (k->partner != NULL) {
            const conf_key_t *p = conf_key_find(k->partner, strlen(k->partner));
            if (p != NULL && (y->seen & (1ULL << (p - conf_keys))))
                return conf_yaml_fail(y, line, "%s: cannot be used together with %s", k->key, p->key);
        }
        rc = conf_set(y->c, k, k->key, (const char *)ev->data.scalar.value, ev->data.scalar.length, conf_yaml_is_null(ev), msg,
                      sizeof(msg));
        if (rc == CIO_ENOMEM) {
            conf_err(y->err, y->errlen, "%s: %s", y->path, msg);
            return rc;
        }
        if (rc != CIO_OK)
            return conf_yaml_fail(y, line, "%s", msg);
        return CIO_OK;
    default:
        return conf_yaml_fail(y, line, "%s: unexpected YAML event", k->key);
    }
}

/* Reads key/value pairs up to the end of the mapping whose start event was
 * just consumed. `section` is NULL at the top level. Depth is bounded: only
 * known sections recurse. */
static int conf_yaml_mapping(conf_yaml_t *y, const conf_key_t *section)
{
    char full[CONF_KEY_MAX], shown[CONF_SHOW_MAX + 4];
    const char *prefix = section != NULL ? section->key : "";
    const char *dot = section != NULL ? "." : "";
    const conf_key_t *k;
    size_t line, klen;
    const char *kstr;
    int rc;

    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            return CIO_OK;
        line = conf_yaml_line(&y->ev);
        if (y->ev.type == YAML_ALIAS_EVENT)
            return conf_yaml_fail(y, line, "%s%saliases (*name) are not supported", prefix, section ? ": " : "");
        if (y->ev.type != YAML_SCALAR_EVENT)
            return conf_yaml_fail(y, line, "%s%skeys must be plain names", prefix, section ? ": " : "");
        kstr = (const char *)y->ev.data.scalar.value;
        klen = y->ev.data.scalar.length;
        k = NULL;
        if (memchr(kstr, '\0', klen) == NULL && snprintf(full, sizeof(full), "%s%s%s", prefix, dot, kstr) < (int)sizeof(full))
            k = conf_key_find(full, strlen(full));
        /* A dotted key ("server.port: 1") would be a second spelling of a nested one: refuse it, with a hint. */
        if (k != NULL && memchr(kstr, '.', klen) != NULL)
            return conf_yaml_fail(y, line, "unknown key '%s' (nest it: write each part on its own indented line)", full);
        if (k == NULL)
            return conf_yaml_fail(y, line, "unknown key '%s%s%s'", prefix, dot, conf_show(kstr, klen, shown));
        if (y->seen & (1ULL << (k - conf_keys)))
            return conf_yaml_fail(y, line, "duplicate key '%s'", k->key);
        for (size_t i = 0; i < sizeof(conf_exclusive) / sizeof(conf_exclusive[0]); i++) {
            const char *other = strcmp(k->key, conf_exclusive[i].a) == 0   ? conf_exclusive[i].b
                                : strcmp(k->key, conf_exclusive[i].b) == 0 ? conf_exclusive[i].a
                                                                           : NULL;
            const conf_key_t *o = other != NULL ? conf_key_find(other, strlen(other)) : NULL;
            if (o != NULL && (y->seen & (1ULL << (o - conf_keys))))
                return conf_yaml_fail(y, line, "%s: cannot be used together with %s: %s", k->key, o->key, conf_exclusive[i].hint);
        }
        y->seen |= 1ULL << (k - conf_keys);

        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if ((rc = conf_yaml_value(y, k)) != CIO_OK)
            return rc;
    }
}

/* ---- replication.targets ---- */

/* Two URLs name the same site when they differ at most in case and in
 * trailing slashes. */
static int conf_same_url(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);

    while (na > 0 && a[na - 1] == '/')
        na--;
    while (nb > 0 && b[nb - 1] == '/')
        nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

/* Reads the value of key `k` of targets[index] (its event is current);
 * `name` is the full key for messages ("replication.targets[1].url"). */
static int conf_yaml_target_value(conf_yaml_t *y, conf_target_t *targets, size_t index, const conf_key_t *k, const char *name)
{
    yaml_event_t *ev = &y->ev;
    size_t line = conf_yaml_line(ev);
    conf_target_t *t = &targets[index];
    char msg[CONF_MSG_MAX], shown[CONF_SHOW_MAX + 4];
    conf_key_t key = *k;
    int rc;

    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return conf_yaml_fail(y, line, "%s: aliases (*name) are not supported", name);
    case YAML_SEQUENCE_START_EVENT:
        return conf_yaml_fail(y, line, "%s: expected a single value, got a sequence", name);
    case YAML_MAPPING_START_EVENT:
        return conf_yaml_fail(y, line, "%s: expected a single value, got a mapping", name);
    case YAML_SCALAR_EVENT:
        break;
    default:
        return conf_yaml_fail(y, line, "%s: unexpected YAML event", name);
    }
    if (key.kind == CONF_INT) { /* the range of the replication.* key it overrides */
        const conf_key_t *g = conf_key_find(key.inherit, strlen(key.inherit));
        key.min = g->min;
        key.max = g->max;
    }
    rc = conf_set(t, &key, name, (const char *)ev->data.scalar.value, ev->data.scalar.length, conf_yaml_is_null(ev), msg,
                  sizeof(msg));
    if (rc == CIO_ENOMEM) {
        conf_err(y->err, y->errlen, "%s: %s", y->path, msg);
        return rc;
    }
    if (rc != CIO_OK)
        return conf_yaml_fail(y, line, "%s", msg);
    for (size_t j = 0; j < index; j++) {
        if (key.off == offsetof(conf_target_t, name) && strcmp(targets[j].name, t->name) == 0)
            return conf_yaml_fail(y, line, "%s: '%s' is already the name of targets[%zu]", name,
                                  conf_show(t->name, strlen(t->name), shown), j);
        if (key.off == offsetof(conf_target_t, url) && conf_same_url(targets[j].url, t->url))
            return conf_yaml_fail(y, line, "%s: '%s' is already the url of targets[%zu]", name,
                                  conf_show(t->url, strlen(t->url), shown), j);
    }
    return CIO_OK;
}

/* Reads targets[index], whose mapping-start event (at `line`) was just
 * consumed. targets[0..index) are complete. */
static int conf_yaml_target(conf_yaml_t *y, const conf_key_t *list_key, conf_target_t *targets, size_t index, size_t line)
{
    /* storage.repair_peers takes a target's name, url and token only */
    size_t nkeys = list_key->off == offsetof(conf_t, repair_peers) ? CONF_NPEER_KEYS : CONF_NTARGET_KEYS;
    conf_target_t *t = &targets[index];
    char prefix[64], full[CONF_KEY_MAX], shown[CONF_SHOW_MAX + 4];
    const conf_key_t *k;
    uint32_t seen = 0;
    size_t kline, klen;
    const char *kstr;
    int rc;

    snprintf(prefix, sizeof(prefix), "%s[%zu]", list_key->key, index);
    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            break;
        kline = conf_yaml_line(&y->ev);
        if (y->ev.type == YAML_ALIAS_EVENT)
            return conf_yaml_fail(y, kline, "%s: aliases (*name) are not supported", prefix);
        if (y->ev.type != YAML_SCALAR_EVENT)
            return conf_yaml_fail(y, kline, "%s: keys must be plain names", prefix);
        kstr = (const char *)y->ev.data.scalar.value;
        klen = y->ev.data.scalar.length;
        k = NULL;
        for (size_t i = 0; i < nkeys && memchr(kstr, '\0', klen) == NULL; i++)
            if (strlen(conf_target_keys[i].key) == klen && memcmp(conf_target_keys[i].key, kstr, klen) == 0)
                k = &conf_target_keys[i];
        if (k == NULL)
            return conf_yaml_fail(y, kline, "unknown key '%s.%s'", prefix, conf_show(kstr, klen, shown));
        snprintf(full, sizeof(full), "%s.%s", prefix, k->key);
        if (seen & (1U << (k - conf_target_keys)))
            return conf_yaml_fail(y, kline, "duplicate key '%s'", full);
        for (size_t i = 0; k->partner != NULL && i < CONF_NTARGET_KEYS; i++)
            if (strcmp(conf_target_keys[i].key, k->partner) == 0 && (seen & (1U << i)))
                return conf_yaml_fail(y, kline, "%s: cannot be used together with %s.%s", full, prefix, k->partner);
        seen |= 1U << (k - conf_target_keys);
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if ((rc = conf_yaml_target_value(y, targets, index, k, full)) != CIO_OK)
            return rc;
    }
    t->line = (unsigned)line;
    t->given = seen;
    if (t->name == NULL)
        return conf_yaml_fail(y, line, "%s.name: missing (every target needs a name and a url)", prefix);
    if (t->url == NULL)
        return conf_yaml_fail(y, line, "%s.url: missing (every target needs a name and a url)", prefix);
    return CIO_OK;
}

/* Reads the list of replication.targets (key `k`), whose sequence-start
 * event is current, and replaces c->targets with it once it is whole. */
static int conf_yaml_targets(conf_yaml_t *y, const conf_key_t *k)
{
    conf_target_t *list;
    size_t n = 0, line = conf_yaml_line(&y->ev), iline;
    char shown[CONF_SHOW_MAX + 4];
    int rc;

    if ((list = calloc(CONF_TARGETS_MAX, sizeof(*list))) == NULL) {
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    }
    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            goto fail;
        if (y->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        iline = conf_yaml_line(&y->ev);
        rc = CIO_ECONFIG;
        if (n == CONF_TARGETS_MAX) {
            conf_yaml_fail(y, iline, "%s: at most %d targets", k->key, CONF_TARGETS_MAX);
            goto fail;
        }
        switch (y->ev.type) {
        case YAML_MAPPING_START_EVENT:
            break;
        case YAML_ALIAS_EVENT:
            conf_yaml_fail(y, iline, "%s[%zu]: aliases (*name) are not supported", k->key, n);
            goto fail;
        case YAML_SCALAR_EVENT:
            conf_yaml_fail(y, iline, "%s[%zu]: expected a mapping (name:, url:, ...), got '%s'", k->key, n,
                           conf_show((const char *)y->ev.data.scalar.value, y->ev.data.scalar.length, shown));
            goto fail;
        default:
            conf_yaml_fail(y, iline, "%s[%zu]: expected a mapping (name:, url:, ...), got a sequence", k->key, n);
            goto fail;
        }
        n++;
        if ((rc = conf_yaml_target(y, k, list, n - 1, iline)) != CIO_OK)
            goto fail;
    }
    if (n == 0) {
        rc = conf_yaml_fail(y, line, "%s: expected at least one target, got an empty list", k->key);
        goto fail;
    }
    if (k->off == offsetof(conf_t, repair_peers)) {
        conf_targets_free(y->c->repair_peers, y->c->nrepair_peers);
        y->c->repair_peers = list;
        y->c->nrepair_peers = n;
        return CIO_OK;
    }
    conf_targets_free(y->c->targets, y->c->ntargets);
    y->c->targets = list;
    y->c->ntargets = n;
    return CIO_OK;
fail:
    conf_targets_free(list, n);
    return rc;
}

/* ---- s3.credentials and s3.domains ---- */

/* Reads one scalar value of an s3.credentials entry (its event is current) into *out. */
static int conf_yaml_cred_value(conf_yaml_t *y, const char *name, int is_file, char **out)
{
    size_t line = conf_yaml_line(&y->ev), len;
    char msg[CONF_MSG_MAX], *v;
    int rc;

    if (y->ev.type != YAML_SCALAR_EVENT)
        return conf_yaml_fail(y, line, "%s: expected a single value", name);
    v = (char *)y->ev.data.scalar.value;
    len = y->ev.data.scalar.length;
    if (len == 0 || conf_yaml_is_null(&y->ev))
        return conf_yaml_fail(y, line, "%s: must not be empty", name);
    if (len > CONF_VALUE_MAX || memchr(v, '\0', len) != NULL)
        return conf_yaml_fail(y, line, "%s: longer than %d bytes or holds a NUL byte", name, CONF_VALUE_MAX);
    if (is_file) {
        if ((rc = conf_read_token_file(name, v, out, msg, sizeof(msg))) != CIO_OK)
            return rc == CIO_ENOMEM ? rc : conf_yaml_fail(y, line, "%s", msg);
        return CIO_OK;
    }
    if (!conf_valid_token(v))
        return conf_yaml_fail(y, line, "%s: must be printable ASCII without spaces", name);
    if ((*out = strndup(v, len)) == NULL) {
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    }
    return CIO_OK;
}

/* Reads creds[index], whose mapping-start event (at `line`) was just consumed. */
static int conf_yaml_s3_credential(conf_yaml_t *y, conf_s3_cred_t *creds, size_t index, size_t line)
{
    conf_s3_cred_t *c = &creds[index];
    char full[CONF_KEY_MAX], shown[CONF_SHOW_MAX + 4];
    int rc, secret_given = 0;

    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            break;
        size_t kline = conf_yaml_line(&y->ev);
        if (y->ev.type != YAML_SCALAR_EVENT)
            return conf_yaml_fail(y, kline, "s3.credentials[%zu]: keys must be plain names", index);
        const char *kstr = (const char *)y->ev.data.scalar.value;
        size_t klen = y->ev.data.scalar.length;
        static const char *const names[] = {"access_key", "secret_key", "secret_key_file"};
        int which = -1;
        for (int i = 0; i < 3; i++)
            if (klen == strlen(names[i]) && memcmp(kstr, names[i], klen) == 0)
                which = i;
        if (which < 0)
            return conf_yaml_fail(y, kline, "unknown key 's3.credentials[%zu].%s'", index, conf_show(kstr, klen, shown));
        snprintf(full, sizeof(full), "s3.credentials[%zu].%s", index, names[which]);
        if ((which == 0 && c->access_key != NULL) || (which > 0 && secret_given))
            return conf_yaml_fail(y, kline, "%s: %s", full,
                                  which == 0 ? "given twice" : "give one of secret_key and secret_key_file, once");
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
        if ((rc = conf_yaml_cred_value(y, full, which == 2, which == 0 ? &c->access_key : &c->secret_key)) != CIO_OK)
            return rc;
        if (which > 0)
            secret_given = 1;
        if (which == 0 && strlen(c->access_key) > CONF_S3_ACCESS_KEY_MAX)
            return conf_yaml_fail(y, kline, "%s: at most %d bytes", full, CONF_S3_ACCESS_KEY_MAX);
        for (size_t j = 0; which == 0 && j < index; j++)
            if (strcmp(creds[j].access_key, c->access_key) == 0)
                return conf_yaml_fail(y, kline, "%s: already the access_key of s3.credentials[%zu]", full, j);
    }
    if (c->access_key == NULL || c->secret_key == NULL)
        return conf_yaml_fail(y, line, "s3.credentials[%zu]: needs access_key and secret_key (or secret_key_file)", index);
    return CIO_OK;
}

static int conf_yaml_s3_credentials(conf_yaml_t *y, const conf_key_t *k)
{
    conf_s3_cred_t *list;
    size_t n = 0, iline;
    int rc;

    if ((list = calloc(CONF_S3_CREDENTIALS_MAX, sizeof(*list))) == NULL) {
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    }
    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            goto fail;
        if (y->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        iline = conf_yaml_line(&y->ev);
        rc = CIO_ECONFIG;
        if (n == CONF_S3_CREDENTIALS_MAX) {
            conf_yaml_fail(y, iline, "%s: at most %d credentials", k->key, CONF_S3_CREDENTIALS_MAX);
            goto fail;
        }
        if (y->ev.type != YAML_MAPPING_START_EVENT) {
            conf_yaml_fail(y, iline, "%s[%zu]: expected a mapping (access_key:, secret_key:)", k->key, n);
            goto fail;
        }
        n++;
        if ((rc = conf_yaml_s3_credential(y, list, n - 1, iline)) != CIO_OK)
            goto fail;
    }
    conf_s3_creds_free(y->c->s3_credentials, y->c->s3_ncredentials);
    y->c->s3_credentials = n > 0 ? list : NULL;
    y->c->s3_ncredentials = n;
    if (n == 0)
        free(list);
    return CIO_OK;
fail:
    conf_s3_creds_free(list, n);
    return rc;
}

/* A host name: letters, digits, '-' and '.', 1..253 bytes; lower-cased in place. */
static int conf_valid_host(char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
            return 0;
    }
    return 1;
}

static int conf_yaml_hosts(conf_yaml_t *y, const conf_key_t *k)
{
    char **list, shown[CONF_SHOW_MAX + 4];
    size_t n = 0, iline;
    int rc;

    if ((list = calloc(CONF_S3_DOMAINS_MAX, sizeof(*list))) == NULL) {
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    }
    for (;;) {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            goto fail;
        if (y->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        iline = conf_yaml_line(&y->ev);
        rc = CIO_ECONFIG;
        if (n == CONF_S3_DOMAINS_MAX) {
            conf_yaml_fail(y, iline, "%s: at most %d domains", k->key, CONF_S3_DOMAINS_MAX);
            goto fail;
        }
        if (y->ev.type != YAML_SCALAR_EVENT) {
            conf_yaml_fail(y, iline, "%s[%zu]: expected a host name", k->key, n);
            goto fail;
        }
        const char *v = (const char *)y->ev.data.scalar.value;
        size_t len = y->ev.data.scalar.length;
        if (len > 253 || memchr(v, '\0', len) != NULL || (list[n] = strndup(v, len)) == NULL || !conf_valid_host(list[n])) {
            if (len <= 253 && memchr(v, '\0', len) == NULL && list[n] == NULL) {
                conf_err(y->err, y->errlen, "%s: out of memory", y->path);
                rc = CIO_ENOMEM;
            } else {
                conf_yaml_fail(y, iline, "%s[%zu]: expected a host name (letters, digits, '-' and '.'), got '%s'", k->key, n,
                               conf_show(v, len, shown));
            }
            n += list[n] != NULL;
            goto fail;
        }
        n++;
    }
    conf_hosts_free(y->c->s3_domains, y->c->s3_ndomains);
    y->c->s3_domains = n > 0 ? list : NULL;
    y->c->s3_ndomains = n;
    if (n == 0)
        free(list);
    return CIO_OK;
fail:
    conf_hosts_free(list, n);
    return rc;
}

/* Starts a fresh parser over the text; the previous one, if any, is gone. */
static int conf_yaml_start(conf_yaml_t *y)
{
    if (!yaml_parser_initialize(&y->parser)) {
        conf_err(y->err, y->errlen, "%s: out of memory", y->path);
        return CIO_ENOMEM;
    }
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)y->text, y->len);
    return CIO_OK;
}

static void conf_yaml_stop(conf_yaml_t *y)
{
    if (y->have_ev)
        yaml_event_delete(&y->ev);
    y->have_ev = 0;
    yaml_parser_delete(&y->parser);
}

/* Pass 1: the whole stream must be valid YAML before any key is looked at,
 * so "server: a: b" reads as the syntax error it is, not as a bad value. */
static int conf_yaml_syntax(conf_yaml_t *y)
{
    int rc;

    do {
        if ((rc = conf_yaml_next(y)) != CIO_OK)
            return rc;
    } while (y->ev.type != YAML_STREAM_END_EVENT);
    return CIO_OK;
}

/* Pass 2: the keys and values. */
static int conf_yaml_document(conf_yaml_t *y)
{
    size_t line;
    int rc;

    if ((rc = conf_yaml_next(y)) != CIO_OK) /* STREAM-START */
        return rc;
    if ((rc = conf_yaml_next(y)) != CIO_OK)
        return rc;
    if (y->ev.type == YAML_STREAM_END_EVENT)
        return CIO_OK;                      /* an empty file, or only comments: all defaults */
    if ((rc = conf_yaml_next(y)) != CIO_OK) /* the root node, after DOCUMENT-START */
        return rc;
    line = conf_yaml_line(&y->ev);
    switch (y->ev.type) {
    case YAML_MAPPING_START_EVENT:
        if ((rc = conf_yaml_mapping(y, NULL)) != CIO_OK)
            return rc;
        break;
    case YAML_SCALAR_EVENT:
        if (conf_yaml_is_null(&y->ev))
            break; /* "---" alone */
        return conf_yaml_fail(y, line, "expected a mapping at the top level (site:, server:, replication:, logging:)");
    case YAML_SEQUENCE_START_EVENT:
        return conf_yaml_fail(y, line, "expected a mapping at the top level, got a sequence");
    default:
        return conf_yaml_fail(y, line, "expected a mapping at the top level");
    }
    if ((rc = conf_yaml_next(y)) != CIO_OK) /* DOCUMENT-END */
        return rc;
    if ((rc = conf_yaml_next(y)) != CIO_OK)
        return rc;
    if (y->ev.type != YAML_STREAM_END_EVENT)
        return conf_yaml_fail(y, conf_yaml_line(&y->ev), "only one YAML document is allowed");
    return CIO_OK;
}

/* Reads the whole file (at most CONF_FILE_MAX bytes) into a malloc'ed,
 * NUL-terminated buffer: *out, owned by the caller. Works for pipes too. */
static int conf_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *fp;
    struct stat st;
    char *buf = NULL;
    size_t n = 0, got;
    int rc = CIO_ECONFIG;

    if ((fp = fopen(path, "r")) == NULL) {
        conf_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return CIO_ECONFIG;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        conf_err(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        goto fail;
    }
    if ((buf = malloc(CONF_FILE_MAX + 2)) == NULL) {
        conf_err(err, errlen, "%s: out of memory", path);
        rc = CIO_ENOMEM;
        goto fail;
    }
    /* Ask for one byte more than the cap to tell "at the cap" from "over it". */
    while (n <= CONF_FILE_MAX && (got = fread(buf + n, 1, CONF_FILE_MAX + 1 - n, fp)) > 0)
        n += got;
    if (ferror(fp)) {
        conf_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (n > CONF_FILE_MAX) {
        conf_err(err, errlen, "%s: file is larger than %d bytes", path, CONF_FILE_MAX);
        goto fail;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    fclose(fp);
    return CIO_OK;
fail:
    free(buf);
    fclose(fp);
    return rc;
}

int conf_load_buffer(conf_t *c, const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    conf_yaml_t y;
    int rc;

    if (name == NULL)
        name = "<config>";
    if (text == NULL && len > 0) {
        conf_err(err, errlen, "%s: no text", name);
        return CIO_ECONFIG;
    }
    if (len > CONF_FILE_MAX) {
        conf_err(err, errlen, "%s: file is larger than %d bytes", name, CONF_FILE_MAX);
        return CIO_ECONFIG;
    }
    memset(&y, 0, sizeof(y));
    y.c = c;
    y.path = name;
    y.err = err;
    y.errlen = errlen;
    y.text = text != NULL ? text : "";
    y.len = len;
    if ((rc = conf_yaml_start(&y)) != CIO_OK)
        return rc;
    rc = conf_yaml_syntax(&y);
    conf_yaml_stop(&y);
    if (rc != CIO_OK || (rc = conf_yaml_start(&y)) != CIO_OK)
        return rc;
    rc = conf_yaml_document(&y);
    conf_yaml_stop(&y);
    return rc;
}

int conf_load_file(conf_t *c, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = conf_read_file(path, &text, &len, err, errlen)) != CIO_OK)
        return rc;
    rc = conf_load_buffer(c, path, text, len, err, errlen);
    explicit_bzero(text, len); /* it may hold tokens */
    free(text);
    return rc;
}

/* ---- command-line flags ---- */

typedef struct {
    const conf_flag_t *flag; /* NULL for one of the caller's `extra` flags */
    const char *value;       /* NULL when the flag came without one */
} conf_arg_t;

/* Reads the flag at argv[*i] (and its value) and advances *i past them. */
static int conf_next_arg(int argc, char **argv, int *i, const char *const *extra, conf_arg_t *out, char *err, size_t errlen)
{
    const char *arg = argv[*i], *eq;
    size_t namelen;

    out->flag = NULL;
    out->value = NULL;
    if (arg[0] != '-' || arg[1] == '\0') {
        conf_err(err, errlen, "unexpected argument '%s' (see --help)", arg);
        return CIO_ECONFIG;
    }
    eq = strchr(arg, '=');
    namelen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    for (size_t e = 0; extra != NULL && extra[e] != NULL; e++) {
        if (strlen(extra[e]) == namelen && strncmp(extra[e], arg, namelen) == 0) {
            (*i)++;
            return CIO_OK;
        }
    }
    for (size_t f = 0; f < CONF_NFLAGS; f++) {
        const char *name = conf_flags[f].flag;
        if (strcmp(name, "--help") == 0 && namelen == 2 && strncmp(arg, "-h", 2) == 0)
            out->flag = &conf_flags[f]; /* the one short flag */
        else if (strlen(name) == namelen && strncmp(name, arg, namelen) == 0)
            out->flag = &conf_flags[f];
    }
    if (out->flag == NULL) {
        conf_err(err, errlen, "unknown flag '%.*s' (see --help)", (int)(namelen > 64 ? 64 : namelen), arg);
        return CIO_ECONFIG;
    }
    if (out->flag->arg == NULL) {
        if (eq != NULL && out->flag->key == NULL) {
            conf_err(err, errlen, "%s: takes no value", out->flag->flag);
            return CIO_ECONFIG;
        }
        out->value = eq != NULL ? eq + 1 : NULL;
        (*i)++;
        return CIO_OK;
    }
    if (eq != NULL) {
        out->value = eq + 1;
        (*i)++;
        return CIO_OK;
    }
    /* "--storage --size 1TB" is a forgotten value, not a path named "--size". */
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
        conf_err(err, errlen, "%s: needs a value", out->flag->flag);
        return CIO_ECONFIG;
    }
    out->value = argv[*i + 1];
    *i += 2;
    return CIO_OK;
}

int conf_from_args(conf_t *c, int argc, char **argv, const char *const *extra, char *err, size_t errlen)
{
    const char *config = NULL;
    char msg[CONF_MSG_MAX];
    conf_arg_t a;
    int i, rc;

    /* Pass 1: check the syntax of every flag and find --config, so the file
     * is loaded first and the flags can override it wherever they stand. */
    for (i = 1; i < argc;) {
        if ((rc = conf_next_arg(argc, argv, &i, extra, &a, err, errlen)) != CIO_OK)
            return rc;
        if (a.flag == NULL)
            continue;
        if (strcmp(a.flag->flag, "--help") == 0)
            c->help = 1;
        else if (strcmp(a.flag->flag, "--config") == 0)
            config = a.value;
    }
    if (c->help)
        return CIO_OK;
    if (config != NULL) {
        char *p;
        if (config[0] == '\0') {
            conf_err(err, errlen, "--config: needs a value");
            return CIO_ECONFIG;
        }
        if ((p = strdup(config)) == NULL) {
            conf_err(err, errlen, "out of memory");
            return CIO_ENOMEM;
        }
        free(c->config_path);
        c->config_path = p;
        if ((rc = conf_load_file(c, config, err, errlen)) != CIO_OK)
            return rc;
    }

    /* Pass 2: apply the flags on top, left to right (the last one wins). */
    for (i = 1; i < argc;) {
        const conf_key_t *k;
        if ((rc = conf_next_arg(argc, argv, &i, extra, &a, err, errlen)) != CIO_OK)
            return rc;
        if (a.flag == NULL || a.flag->key == NULL)
            continue;
        k = conf_key_find(a.flag->key, strlen(a.flag->key));
        if (k->kind == CONF_BOOL && a.value == NULL) {
            *(int *)(void *)((char *)c + k->off) = 1;
            continue;
        }
        if ((rc = conf_set(c, k, a.flag->flag, a.value, strlen(a.value), 0, msg, sizeof(msg))) != CIO_OK) {
            conf_err(err, errlen, "%s", msg);
            return rc;
        }
    }
    return CIO_OK;
}

/* ---- derived defaults ---- */

/* A block device lives under /dev, which is a tmpfs: metadata next to it
 * would vanish at reboot, so it goes to /var/lib/comio instead. */
static int conf_is_block_device(const char *path)
{
    struct stat st;

    if (strncmp(path, "/dev/", 5) == 0)
        return 1;
    return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* The name of the target that remote_url becomes: the URL's host, with
 * characters a name may not hold turned into '-'. */
static char *conf_target_name_from_url(const char *url)
{
    const char *h = strstr(url, "://"), *end;
    char name[CONF_TARGET_NAME_MAX + 1];
    size_t n = 0;

    h = h != NULL ? h + 3 : url;
    if (*h == '[') { /* an IPv6 literal */
        h++;
        end = strchr(h, ']');
    } else {
        end = h + strcspn(h, ":/?#");
    }
    if (end == NULL)
        end = h + strlen(h);
    for (const char *p = h; p < end && n < CONF_TARGET_NAME_MAX; p++)
        name[n++] = (char)(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-' ? *p : '-');
    if (n == 0)
        name[n++] = '-';
    name[n] = '\0';
    return strdup(name);
}

/* Gives target t the value of the replication.* key `g` for its setting `k`. */
static int conf_target_inherit(const conf_t *c, conf_target_t *t, const conf_key_t *k, const conf_key_t *g)
{
    const char *from = (const char *)c + g->off;
    char *to = (char *)t + k->off, *s;

    switch (k->kind) {
    case CONF_MODE:
        if ((s = strdup(*(char *const *)(const void *)from)) == NULL)
            return CIO_ENOMEM;
        free(*(char **)(void *)to);
        *(char **)(void *)to = s;
        return CIO_OK;
    case CONF_INT:
        *(uint32_t *)(void *)to = *(const uint32_t *)(const void *)from;
        return CIO_OK;
    case CONF_COMPRESSION:
    case CONF_FALLBACK:
        *(int *)(void *)to = *(const int *)(const void *)from;
        return CIO_OK;
    default: /* CONF_SIZE, CONF_DURATION, CONF_RATE */
        *(uint64_t *)(void *)to = *(const uint64_t *)(const void *)from;
        return CIO_OK;
    }
}

/* Makes remote_url the one target when no replication.targets were given
 * (only when replication is enabled), and gives every target the
 * replication.* value of each setting it does not give itself. */
static int conf_targets_finalize(conf_t *c, char *err, size_t errlen)
{
    if (c->ntargets == 0 && c->remote_url != NULL && c->repl_enabled) {
        conf_target_t *t = calloc(1, sizeof(*t));
        if (t == NULL)
            goto nomem;
        c->targets = t;
        c->ntargets = 1;
        if ((t->name = conf_target_name_from_url(c->remote_url)) == NULL || (t->url = strdup(c->remote_url)) == NULL ||
            (c->remote_token != NULL && (t->token = strdup(c->remote_token)) == NULL))
            goto nomem;
    }
    for (size_t i = 0; i < c->ntargets; i++) {
        conf_target_t *t = &c->targets[i];
        for (size_t j = 0; j < CONF_NTARGET_KEYS; j++) {
            const conf_key_t *k = &conf_target_keys[j];
            if (k->inherit == NULL || (t->given & (1U << j)))
                continue;
            if (conf_target_inherit(c, t, k, conf_key_find(k->inherit, strlen(k->inherit))) != CIO_OK)
                goto nomem;
        }
    }
    return CIO_OK;
nomem:
    conf_err(err, errlen, "out of memory");
    return CIO_ENOMEM;
}

int conf_finalize(conf_t *c, int need_storage, char *err, size_t errlen)
{
    int ret;

    if (c->site_id == NULL) {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0) {
            conf_err(err, errlen, "cannot determine the hostname for site.id: %s (set site.id or --site-id)", strerror(errno));
            return CIO_ECONFIG;
        }
        host[sizeof(host) - 1] = '\0';
        if (!conf_valid_site_id(host)) {
            char shown[CONF_SHOW_MAX + 4];
            conf_err(err, errlen, "site.id: the hostname '%s' is not a valid site id (set site.id or --site-id)",
                     conf_show(host, strlen(host), shown));
            return CIO_ECONFIG;
        }
        if ((c->site_id = strdup(host)) == NULL)
            goto nomem;
    }
    if (need_storage && c->storage_path == NULL) {
        conf_err(err, errlen, "server.storage_path is required (set it in the config file or with --storage)");
        return CIO_ECONFIG;
    }
    if (c->storage_path != NULL && c->meta_path == NULL) {
        if (conf_is_block_device(c->storage_path)) {
            const char *slash = strrchr(c->storage_path, '/');
            c->meta_path = conf_strfmt("/var/lib/comio/%s.meta", slash != NULL ? slash + 1 : c->storage_path);
        } else {
            c->meta_path = conf_strfmt("%s.meta", c->storage_path);
        }
        if (c->meta_path == NULL)
            goto nomem;
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        conf_err(err, errlen, "server.tls.cert and server.tls.key must be set together");
        return CIO_ECONFIG;
    }
    /* A listed target has the line of its mapping; the one made of remote_url by an earlier call has 0. */
    if (c->ntargets > 0 && c->targets[0].line != 0) {
        if (c->remote_url != NULL) {
            conf_err(err, errlen,
                     "replication.targets and replication.remote_url (--replication-remote) cannot both be set: use one");
            return CIO_ECONFIG;
        }
        if (c->remote_token != NULL) {
            conf_err(err, errlen,
                     "replication.remote_token (--replication-token) cannot be used with replication.targets: "
                     "give each target its token or token_file");
            return CIO_ECONFIG;
        }
    }
    if (c->repl_enabled && c->remote_url == NULL && c->ntargets == 0) {
        conf_err(err, errlen,
                 "replication.targets or replication.remote_url is required when replication.enabled is true "
                 "(list the sites to ship to in the config file, or give one with --replication-remote)");
        return CIO_ECONFIG;
    }
    if ((ret = conf_targets_finalize(c, err, errlen)) != 0)
        return ret;
    if (c->public_url == NULL) {
        const char *host = c->listen;
        const char *scheme = c->tls_cert != NULL ? "https" : "http";
        if (host == NULL || host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0)
            host = "127.0.0.1";
        if (strchr(host, ':') != NULL && host[0] != '[') /* an IPv6 literal */
            c->public_url = conf_strfmt("%s://[%s]:%u", scheme, host, (unsigned)c->port);
        else
            c->public_url = conf_strfmt("%s://%s:%u", scheme, host, (unsigned)c->port);
        if (c->public_url == NULL)
            goto nomem;
    }
    /* A copied config that still names its own site as a target would ship every write back to itself. */
    for (size_t i = 0; i < c->ntargets; i++) {
        char shown[CONF_SHOW_MAX + 4];
        if (c->targets[i].line != 0 && conf_same_url(c->targets[i].url, c->public_url)) {
            conf_err(err, errlen,
                     "replication.targets[%zu].url: '%s' is this site's own public_url: a site does not ship to itself", i,
                     conf_show(c->targets[i].url, strlen(c->targets[i].url), shown));
            return CIO_ECONFIG;
        }
    }
    return CIO_OK;

nomem:
    conf_err(err, errlen, "out of memory");
    return CIO_ENOMEM;
}

void conf_usage(const char *prog)
{
    printf("Usage: %s [flags]\n\n", prog != NULL ? prog : "comio");
    printf("Flags override the same setting in the --config file (see docs/configuration.md).\n");
    printf("Both \"--flag value\" and \"--flag=value\" work.\n\n");
    for (size_t f = 0; f < CONF_NFLAGS; f++) {
        char lhs[64];
        const conf_flag_t *fl = &conf_flags[f];
        snprintf(lhs, sizeof(lhs), "%s%s%s", fl->flag, fl->arg ? " " : "", fl->arg ? fl->arg : "");
        printf("  %-28s %s\n", lhs, fl->help);
        if (fl->key != NULL)
            printf("  %-28s   config key: %s\n", "", fl->key);
    }
    printf("\nSIZE is a number with an optional unit: B, KB/MB/GB/TB/PB (x1000), KiB/MiB/GiB/TiB/PiB (x1024).\n");
    printf("Tokens given as flags are visible to other local users (ps); prefer the *_token_file keys.\n");
}
