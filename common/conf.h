/* conf.h - ComIO configuration: YAML file (libyaml) plus command-line flags.
 *
 * One conf_t serves every binary. Flags override the file. Errors name the
 * file, the line and the key, e.g.
 *   config.yaml:3: unknown key 'server.storage_pth'
 *   config.yaml:5: server.port: expected an integer from 1 to 65535, got 'http'
 * All strings in conf_t are heap-allocated and owned by the conf_t (freed by
 * conf_free); a NULL string means "not set". */
#ifndef COMIO_CONF_H
#define COMIO_CONF_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/log.h"

#define CONF_TARGET_NAME_MAX 63 /* bytes of a target's name: [A-Za-z0-9._-] */
#define CONF_TARGETS_MAX 32     /* entries of replication.targets */

/* replication.compression: what batches and large-object fetches to a target are encoded with */
#define CONF_COMPRESSION_NONE 0
#define CONF_COMPRESSION_ZSTD 1

/* replication.sync_fallback: what a write to a sync target does once sync_timeout passed */
#define CONF_SYNC_FALLBACK_ASYNC 0 /* answered anyway (X-Comio-Replication: PENDING), replicating as in async mode */
#define CONF_SYNC_FALLBACK_WAIT 1  /* the reply waits until the target acknowledged it */

/* One remote site that repld ships to: an entry of replication.targets, or
 * the seed's replication.remote_url / remote_token as one target named after
 * the URL's host. conf_finalize fills every field: a setting a target does
 * not give comes from the replication.* key of the same name, whatever order
 * the keys stand in; a value the target gives, 0 included, is kept. */
typedef struct {
    char *name;  /* unique among the targets; names its cursor and state in the log (common/replog.h) */
    char *url;   /* base URL of the target's storaged */
    char *token; /* sent as the bearer token; NULL: none. A secret: conf_free wipes it */
    char *mode;  /* "async" or "sync": a sync target must acknowledge a write before storaged answers it (storaged/syncwait.h) */
    uint64_t sync_timeout_ms; /* sync: how long a write waits for this target before sync_fallback applies */
    int sync_fallback;        /* sync: CONF_SYNC_FALLBACK_ASYNC or _WAIT */
    uint32_t batch_size;
    uint32_t workers;
    uint32_t retry_attempts;
    uint64_t retry_delay_ms;
    uint64_t inline_threshold;
    int compression;            /* CONF_COMPRESSION_NONE or _ZSTD: batches and fetches to this target (common/zcodec.h) */
    uint32_t compression_level; /* zstd level, ZCODEC_LEVEL_MIN..MAX */
    uint64_t bandwidth_limit;   /* bytes/s shared by the batches to it and its fetches from us (common/bwlimit.h); 0: none */
    unsigned line;              /* the config file line of the target's mapping; 0 when derived from remote_url */
    uint32_t given;             /* private to conf.c: which settings the target gave itself (the others are inherited) */
} conf_target_t;

#define CONF_S3_CREDENTIALS_MAX 64 /* s3.credentials entries */
#define CONF_S3_DOMAINS_MAX 16     /* s3.domains entries */
#define CONF_S3_ACCESS_KEY_MAX 128 /* bytes of an access key id (common/sigv4.h: SIGV4_ACCESS_KEY_MAX) */
#define CONF_S3_REGION_MAX 64      /* bytes of s3.region (common/sigv4.h: SIGV4_REGION_MAX) */

/* One S3 access key (s3.credentials, docs/s3.md). */
typedef struct {
    char *access_key; /* printable ASCII, no spaces, unique among the credentials */
    char *secret_key; /* from secret_key or the first line of secret_key_file. A secret: conf_free wipes it */
} conf_s3_cred_t;

typedef struct conf {
    /* site */
    char *site_id; /* default: hostname */

    /* server */
    char *listen;             /* default "0.0.0.0" */
    uint16_t port;            /* default 8080 */
    char *storage_path;       /* no default: required by storaged */
    uint64_t storage_size;    /* 0 = unset (device: device size; file: required if the file does not exist or is empty) */
    char *meta_path;          /* default: "<storage_path>.meta"; for a block device (/dev/...):
                                 "/var/lib/comio/<device name>.meta", since /dev is a tmpfs */
    char *public_url;         /* default: "http://<listen or 127.0.0.1>:<port>" */
    uint64_t max_object_size; /* default 1GB (10^9) */
    char *access_token;       /* default NULL: no token needed */
    char *tls_cert;           /* default NULL: plain HTTP */
    char *tls_key;
    uint64_t meta_map_size; /* server.meta_map_size, LMDB map size; default 16GiB */
    uint32_t threads;       /* server.threads, event-loop threads; default 0 = one per core */

    /* storage */
    int checksums;               /* storage.checksums: block checksums computed and verified (common/blocksum.h); default 1. 0 is a
                                    benchmark and diagnosis knob: nothing computed, nothing verified */
    uint64_t scrub_rate;         /* storage.scrub_rate: bytes/s a scrub pass reads (storaged/scrub.h); default 4MB/s; 0 turns
                                    the scheduled passes off (a pass asked for runs unpaced) */
    uint64_t scrub_interval_ms;  /* storage.scrub_interval: from the end of a pass to the start of the next; default 7 days */
    conf_target_t *repair_peers; /* storage.repair_peers: sites a damaged object may be repaired from besides the
                                    replication.targets (storaged/repair.h), 0..CONF_TARGETS_MAX entries of name, url and
                                    token or token_file (the secret the request is signed with: the peer's target entry
                                    for this site carries it; default replication.accept_token). Only name, url and
                                    token are set */
    size_t nrepair_peers;
    uint64_t repair_timeout_ms; /* storage.repair_timeout: how long a GET waits for a repair; default 30 s */
    uint64_t repair_backoff_ms; /* storage.repair_backoff: the longest a failed repair's object is not tried again in the
                                   background (storaged/repair_backoff.h); default 5 min, 0: no back-off */

    /* replication */
    int repl_enabled;         /* default 0 */
    char *repl_mode;          /* default "async"; "async" or "sync": every target's default mode */
    uint64_t sync_timeout_ms; /* replication.sync_timeout: default 5 s */
    int sync_fallback;        /* replication.sync_fallback: default CONF_SYNC_FALLBACK_ASYNC */
    char *remote_url;         /* the seed's one target; with enabled, it or targets is required (checked by conf_finalize) */
    char *remote_token;
    char *accept_token;         /* default NULL: replica refuses every batch */
    uint32_t batch_size;        /* default 100, 1..10000 */
    uint64_t batch_interval_ms; /* default 1000 */
    uint32_t retry_attempts;    /* default 3 */
    uint64_t retry_delay_ms;    /* default 5000 */
    uint32_t workers;           /* default 5, 1..64 */
    uint64_t inline_threshold;  /* default 1MB (10^6) */
    int compression;            /* replication.compression: default CONF_COMPRESSION_NONE (a LAN needs no CPU spent on it) */
    uint32_t compression_level; /* replication.compression_level: default ZCODEC_LEVEL_DEFAULT (3), 1..19 */
    uint64_t bandwidth_limit;   /* replication.bandwidth_limit, bytes/s per target; default 0: none */
    char *socket_path;          /* default "/run/comio/repld.sock" */
    char *ca_file;              /* default NULL: system CAs */
    uint64_t tombstone_ttl_ms;  /* replica: how long a DELETE's tombstone is kept; default 7 days, 0 = forever */
    uint64_t conflict_ttl_ms;   /* how long a conflict's loser is kept; default 7 days, 0 = until removed */
    uint64_t sync_rate_limit;   /* replication.sync_rate_limit: bytes/s an automatic full sync may ship; default 0 = none */
    uint64_t max_clock_skew_ms; /* replication.max_clock_skew: a remote version further ahead of the local clock is counted; default
                                   60 s */
    conf_target_t *targets;     /* replication.targets, 1..CONF_TARGETS_MAX entries in file order; or, when replication is
                                   enabled and no list is given, the one target conf_finalize makes of remote_url. Nothing
                                   is shipped while repl_enabled is 0, whatever is listed */
    size_t ntargets;

    /* s3 (docs/s3.md) */
    conf_s3_cred_t *s3_credentials; /* s3.credentials, in file order; NULL (none): every S3 request is refused */
    size_t s3_ncredentials;
    char *s3_region;   /* s3.region: default "us-east-1" */
    char **s3_domains; /* s3.domains: host names (lower case) under which bucket.<domain> is virtual-hosted style */
    size_t s3_ndomains;
    uint64_t s3_multipart_ttl_ms; /* s3.multipart_ttl: a multipart upload left longer is removed; default 7 days, 0 = forever */

    /* logging */
    log_level_t log_level; /* default info */
    int log_json;          /* default 1 ("json"); "text" = 0 */
    char *log_file;        /* logging.file; default NULL: stderr as the daemon got it */

    /* set by conf_from_args */
    char *config_path; /* --config, NULL if none */
    int help;          /* --help or -h was given */
} conf_t;

/* Fills `c` with the defaults above (strings that have a fixed default are
 * strdup'ed). Returns 0 or CIO_ENOMEM. */
int conf_init(conf_t *c) CIO_MUST_CHECK;

/* Releases every string; `c` may then be conf_init'ed again. */
void conf_free(conf_t *c);

/* Reads the YAML file at `path` into `c`, overriding what it sets. Keys are the
 * nested names shown in docs/configuration.md (site.id, server.port, ...);
 * flow mappings such as `tls: {cert: a, key: b}` work. Unknown keys, wrong
 * types (a mapping where a scalar belongs, ...) and bad values fail.
 * On failure returns CIO_ECONFIG (CIO_ENOMEM when out of memory) and writes
 * one line (no newline) into err naming file:line and key; `c` may be partly
 * updated. replication.{remote,accept}_token_file read the token from the
 * first line of that file into remote_token/accept_token.
 * replication.targets is a sequence of mappings (name, url, token or
 * token_file, and overrides of mode, sync_timeout, sync_fallback, batch_size, workers, retry_attempts,
 * retry_delay, inline_threshold, compression, compression_level, bandwidth_limit); messages name the entry, as in
 *   config.yaml:12: replication.targets[1].url: expected an http:// or https:// URL, got 'x'
 * A list read whole replaces the one `c` held; a file may not give it
 * together with replication.remote_url or remote_token(_file). */
int conf_load_file(conf_t *c, const char *path, char *err, size_t errlen) CIO_MUST_CHECK;

/* Like conf_load_file, on YAML text already in memory: text[0..len) (need not
 * be NUL-terminated, at most 1 MiB; text may be NULL when len is 0) is parsed
 * with the same rules, and messages name `name` (NULL: "<config>") where
 * conf_load_file names the file. The text is only read during the call; the
 * caller wipes it if it holds tokens. Token files named in it are opened
 * relative to the working directory. Returns 0, CIO_ECONFIG or CIO_ENOMEM. */
int conf_load_buffer(conf_t *c, const char *name, const char *text, size_t len, char *err, size_t errlen) CIO_MUST_CHECK;

/* Parses argv[1..argc). Finds --config FILE first and loads it, then applies
 * the other flags on top: --config, --storage, --size, --port, --listen,
 * --meta, --replication-enabled (no value), --replication-remote,
 * --replication-token, --accept-token, --site-id, --log-level, --help/-h.
 * Both "--flag value" and "--flag=value" work. Flags listed in `extra`
 * (NULL-terminated array of names like "--list-failed", may be NULL) are
 * boolean flags the caller handles: they are skipped here. Positional
 * arguments are refused. On failure returns CIO_ECONFIG with one line in err
 * (for flags: "--port: expected an integer from 1 to 65535, got 'x'"). */
int conf_from_args(conf_t *c, int argc, char **argv, const char *const *extra, char *err, size_t errlen) CIO_MUST_CHECK;

/* Derives the remaining defaults (site_id from the hostname, meta_path from
 * storage_path, public_url from listen/port) and checks cross-key rules:
 * storage_path set when `need_storage`; replication.targets or remote_url set
 * when replication is enabled; not both targets and remote_url (or
 * remote_token), which flags may have added to a file's list; no listed
 * target at this site's own public_url; tls cert and key both or neither.
 * With replication enabled and no replication.targets, remote_url and
 * remote_token become the one target, named after the URL's host
 * (characters other than [A-Za-z0-9._-] become '-'); every target then gets
 * the replication.* value of each setting it does not give, whatever order
 * the file gave them in. May be called again: the result is the same.
 * CIO_ECONFIG with a message; CIO_ENOMEM. */
int conf_finalize(conf_t *c, int need_storage, char *err, size_t errlen) CIO_MUST_CHECK;

/* Writes the usage text for the shared flags of `prog` to stdout. */
void conf_usage(const char *prog);

#endif
