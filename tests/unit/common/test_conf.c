/* test_conf.c - unit tests for common/conf.c: YAML keys and every error path, flags, derived defaults, usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/conf.h"
#include "testutil.h"

#define ERRLEN 512

static char tmpdir[] = "/tmp/comio-test-conf-XXXXXX";
static const char *created[64];
static int ncreated;

/* Writes `content` to `name` inside the test directory (the cwd). */
static void write_file(const char *name, const char *content)
{
    FILE *fp = fopen(name, "w");
    int known = 0;

    if (fp == NULL) {
        perror(name);
        exit(2);
    }
    fputs(content, fp);
    fclose(fp);
    for (int i = 0; i < ncreated; i++)
        known |= strcmp(created[i], name) == 0;
    if (!known && ncreated < 64)
        created[ncreated++] = name;
}

static int load(const char *yaml, conf_t *c, char *err)
{
    int rc;

    write_file("config.yaml", yaml);
    if (conf_init(c) != CIO_OK)
        return CIO_ENOMEM;
    err[0] = '\0';
    rc = conf_load_file(c, "config.yaml", err, ERRLEN);
    return rc;
}

static void expect_ok(const char *yaml)
{
    conf_t c;
    char err[ERRLEN];
    int rc = load(yaml, &c, err);

    if (rc != CIO_OK)
        fprintf(stderr, "  unexpected error: %s\n  for YAML:\n%s\n", err, yaml);
    CHECK_EQ_INT(rc, CIO_OK);
    conf_free(&c);
}

/* Loads yaml, expects CIO_ECONFIG and exactly `want` (one line) as the message. */
static void expect_err(const char *yaml, const char *want)
{
    conf_t c;
    char err[ERRLEN];
    int rc = load(yaml, &c, err);

    CHECK_EQ_INT(rc, CIO_ECONFIG);
    CHECK_EQ_STR(err, want);
    CHECK(strchr(err, '\n') == NULL);
    conf_free(&c);
}

/* Same, but only the start of the message is fixed (libyaml words the rest). */
static void expect_err_prefix(const char *yaml, const char *want)
{
    conf_t c;
    char err[ERRLEN];
    int rc = load(yaml, &c, err);

    CHECK_EQ_INT(rc, CIO_ECONFIG);
    if (strncmp(err, want, strlen(want)) != 0)
        fprintf(stderr, "  message '%s' does not start with '%s'\n", err, want);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    CHECK(strchr(err, '\n') == NULL);
    conf_free(&c);
}

/* Runs conf_from_args over a NULL-terminated list (argv[0] is added). */
static int run_args(conf_t *c, const char *const *extra, char *err, ...)
{
    char *argv[32];
    const char *a;
    int argc = 0, rc;
    va_list ap;

    argv[argc++] = strdup("prog");
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    rc = conf_from_args(c, argc, argv, extra, err, ERRLEN);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

/* ---- the defaults and the seed's files ---- */

static void test_init_defaults(void)
{
    conf_t c;

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK(c.site_id == NULL);
    CHECK_EQ_STR(c.listen, "0.0.0.0");
    CHECK_EQ_INT(c.port, 8080);
    CHECK(c.storage_path == NULL);
    CHECK(c.storage_size == 0);
    CHECK(c.meta_path == NULL);
    CHECK(c.public_url == NULL);
    CHECK(c.max_object_size == 1000000000ULL);
    CHECK(c.access_token == NULL);
    CHECK(c.tls_cert == NULL && c.tls_key == NULL);
    CHECK(c.meta_map_size == (16ULL << 30));
    CHECK_EQ_INT(c.threads, 0);
    CHECK_EQ_INT(c.repl_enabled, 0);
    CHECK_EQ_STR(c.repl_mode, "async");
    CHECK(c.remote_url == NULL && c.remote_token == NULL && c.accept_token == NULL);
    CHECK_EQ_INT(c.batch_size, 100);
    CHECK(c.batch_interval_ms == 1000);
    CHECK_EQ_INT(c.retry_attempts, 3);
    CHECK(c.retry_delay_ms == 5000);
    CHECK_EQ_INT(c.workers, 5);
    CHECK(c.inline_threshold == 1000000);
    CHECK_EQ_STR(c.socket_path, "/run/comio/repld.sock");
    CHECK(c.ca_file == NULL);
    CHECK(c.tombstone_ttl_ms == 7ULL * 24 * 3600 * 1000);
    CHECK(c.sync_rate_limit == 0); /* none */
    CHECK(c.conflict_ttl_ms == 7ULL * 24 * 3600 * 1000);
    CHECK_EQ_INT(c.log_level, LOG_LVL_INFO);
    CHECK_EQ_INT(c.log_json, 1);
    CHECK(c.config_path == NULL);
    CHECK_EQ_INT(c.help, 0);
    conf_free(&c);
    CHECK(c.listen == NULL); /* conf_free leaves it zeroed and reusable */
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    conf_free(&c);
    conf_free(&c); /* twice is harmless */
}

static void test_seed_primary(void)
{
    conf_t c;
    char err[ERRLEN];

    /* Verbatim from REPLICATION.md, "Site A (Primary) - config.yaml". */
    CHECK_EQ_INT(load("server:\n"
                      "  port: 8080\n"
                      "  storage_path: /dev/nvme0n1\n"
                      "  storage_size: 1TB\n"
                      "\n"
                      "replication:\n"
                      "  enabled: true\n"
                      "  mode: async\n"
                      "  remote_url: https://site-b.example.com\n"
                      "  remote_token: \"secret-token-xyz123\"\n"
                      "  batch_size: 100\n"
                      "  batch_interval: 1s\n"
                      "  retry_attempts: 3\n"
                      "  retry_delay: 5s\n",
                      &c, err),
                 CIO_OK);
    CHECK_EQ_INT(c.port, 8080);
    CHECK_EQ_STR(c.storage_path, "/dev/nvme0n1");
    CHECK(c.storage_size == 1000000000000ULL);
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_STR(c.repl_mode, "async");
    CHECK_EQ_STR(c.remote_url, "https://site-b.example.com");
    CHECK_EQ_STR(c.remote_token, "secret-token-xyz123");
    CHECK_EQ_INT(c.batch_size, 100);
    CHECK(c.batch_interval_ms == 1000);
    CHECK_EQ_INT(c.retry_attempts, 3);
    CHECK(c.retry_delay_ms == 5000);
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.meta_path, "/var/lib/comio/nvme0n1.meta"); /* not in /dev, which is a tmpfs */
    conf_free(&c);
}

static void test_seed_replica(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(load("server:\n"
                      "  port: 8080\n"
                      "  storage_path: /dev/nvme0n1\n"
                      "  storage_size: 1TB\n"
                      "\n"
                      "replication:\n"
                      "  enabled: false  # \xe2\x9a\xa0\xef\xb8\x8f IMPORTANT: disable to avoid loops!\n",
                      &c, err),
                 CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 0);
    CHECK(c.storage_size == 1000000000000ULL);
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_OK);
    conf_free(&c);

    /* The "Setup" section's two short files. */
    CHECK_EQ_INT(load("replication:\n"
                      "  enabled: true\n"
                      "  remote_url: https://site-b.example.com\n"
                      "  remote_token: \"abc123...\"\n",
                      &c, err),
                 CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_STR(c.remote_token, "abc123...");
    conf_free(&c);
    CHECK_EQ_INT(load("replication:\n  enabled: false\n", &c, err), CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 0);
    conf_free(&c);
}

static void test_seed_flags(void)
{
    conf_t c;
    char err[ERRLEN];

    /* REPLICATION.md "Complete Example"; the CLI hands over argv from "server" on. */
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--storage", "/dev/nvme0n1", "--size", "1TB", "--replication-enabled",
                          "--replication-remote", "https://site-b.example.com", "--replication-token", "abc123...", NULL),
                 CIO_OK);
    CHECK_EQ_STR(c.storage_path, "/dev/nvme0n1");
    CHECK(c.storage_size == 1000000000000ULL);
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_STR(c.remote_url, "https://site-b.example.com");
    CHECK_EQ_STR(c.remote_token, "abc123...");
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_OK);
    conf_free(&c);

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--storage", "/dev/nvme0n1", "--size", "1TB", NULL), CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 0);
    conf_free(&c);
}

static void test_every_key(void)
{
    conf_t c;
    char err[ERRLEN];

    write_file("remote.tok", "from-file-token\n");
    CHECK_EQ_INT(load("site:\n"
                      "  id: site-a\n"
                      "server:\n"
                      "  listen: 10.0.0.5\n"
                      "  port: 9000\n"
                      "  storage_path: /srv/comio/data\n"
                      "  storage_size: 1.5GiB\n"
                      "  meta_path: /srv/comio/meta\n"
                      "  public_url: https://a.example.com\n"
                      "  max_object_size: 5GB\n"
                      "  access_token: tok-123\n"
                      "  tls:\n"
                      "    cert: /etc/comio/cert.pem\n"
                      "    key: /etc/comio/key.pem\n"
                      "  meta_map_size: 64GiB\n"
                      "  threads: 4\n"
                      "replication:\n"
                      "  enabled: yes\n"
                      "  mode: async\n"
                      "  remote_url: https://b.example.com:8443\n"
                      "  remote_token_file: remote.tok\n"
                      "  accept_token: acc-456\n"
                      "  batch_size: 200\n"
                      "  batch_interval: 250ms\n"
                      "  retry_attempts: 0\n"
                      "  retry_delay: 1m\n"
                      "  workers: 10\n"
                      "  inline_threshold: 512KiB\n"
                      "  socket: /tmp/repld.sock\n"
                      "  ca_file: /etc/comio/ca.pem\n"
                      "  tombstone_ttl: 36h\n"
                      "logging:\n"
                      "  level: debug\n"
                      "  format: text\n",
                      &c, err),
                 CIO_OK);
    CHECK_EQ_STR(c.site_id, "site-a");
    CHECK_EQ_STR(c.listen, "10.0.0.5");
    CHECK_EQ_INT(c.port, 9000);
    CHECK_EQ_STR(c.storage_path, "/srv/comio/data");
    CHECK(c.storage_size == 1610612736ULL);
    CHECK_EQ_STR(c.meta_path, "/srv/comio/meta");
    CHECK_EQ_STR(c.public_url, "https://a.example.com");
    CHECK(c.max_object_size == 5000000000ULL);
    CHECK_EQ_STR(c.access_token, "tok-123");
    CHECK_EQ_STR(c.tls_cert, "/etc/comio/cert.pem");
    CHECK_EQ_STR(c.tls_key, "/etc/comio/key.pem");
    CHECK(c.meta_map_size == (64ULL << 30));
    CHECK_EQ_INT(c.threads, 4);
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_STR(c.repl_mode, "async");
    CHECK_EQ_STR(c.remote_url, "https://b.example.com:8443");
    CHECK_EQ_STR(c.remote_token, "from-file-token");
    CHECK_EQ_STR(c.accept_token, "acc-456");
    CHECK_EQ_INT(c.batch_size, 200);
    CHECK(c.batch_interval_ms == 250);
    CHECK_EQ_INT(c.retry_attempts, 0);
    CHECK(c.retry_delay_ms == 60000);
    CHECK_EQ_INT(c.workers, 10);
    CHECK(c.inline_threshold == 524288);
    CHECK_EQ_STR(c.socket_path, "/tmp/repld.sock");
    CHECK_EQ_STR(c.ca_file, "/etc/comio/ca.pem");
    CHECK(c.tombstone_ttl_ms == 36ULL * 3600 * 1000);
    CHECK_EQ_INT(c.log_level, LOG_LVL_DEBUG);
    CHECK_EQ_INT(c.log_json, 0);
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.public_url, "https://a.example.com"); /* explicit values are kept */
    CHECK_EQ_STR(c.meta_path, "/srv/comio/meta");
    conf_free(&c);
}

static void test_empty_and_null(void)
{
    conf_t c;
    char err[ERRLEN];

    expect_ok("");
    expect_ok("# only a comment\n\n");
    expect_ok("---\n");
    expect_ok("---\n...\n");
    expect_ok("~\n");
    expect_ok("replication:\n# everything commented out\nlogging:\n");
    expect_ok("server: {}\n");

    /* Empty strings (and YAML nulls) unset optional strings. */
    CHECK_EQ_INT(load("server:\n"
                      "  access_token: \"\"\n"
                      "  tls:\n"
                      "    cert: \"\"\n"
                      "    key: ''\n"
                      "  storage_path: ~\n"
                      "  meta_path:\n"
                      "replication:\n"
                      "  ca_file: null\n",
                      &c, err),
                 CIO_OK);
    CHECK(c.access_token == NULL && c.tls_cert == NULL && c.tls_key == NULL);
    CHECK(c.storage_path == NULL && c.meta_path == NULL && c.ca_file == NULL);
    conf_free(&c);

    /* A later file that sets "" clears an earlier value. */
    CHECK_EQ_INT(load("server:\n  access_token: abc\n", &c, err), CIO_OK);
    CHECK_EQ_STR(c.access_token, "abc");
    write_file("config.yaml", "server:\n  access_token: \"\"\n");
    CHECK_EQ_INT(conf_load_file(&c, "config.yaml", err, ERRLEN), CIO_OK);
    CHECK(c.access_token == NULL);
    conf_free(&c);
}

static void test_flow_mapping_and_styles(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(load("server:\n  tls: {cert: a, key: b}\n  port: \"8081\"\n", &c, err), CIO_OK);
    CHECK_EQ_STR(c.tls_cert, "a");
    CHECK_EQ_STR(c.tls_key, "b");
    CHECK_EQ_INT(c.port, 8081);
    conf_free(&c);

    CHECK_EQ_INT(load("{server: {port: 1234, storage_path: '/data/x'}, replication: {enabled: ON, workers: 64}}\n", &c, err),
                 CIO_OK);
    CHECK_EQ_INT(c.port, 1234);
    CHECK_EQ_STR(c.storage_path, "/data/x");
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_INT(c.workers, 64);
    conf_free(&c);

    /* Booleans: true/false/yes/no/on/off in any case. */
    {
        static const char *const t[] = {"true", "TRUE", "Yes", "on", "On"}, *const f[] = {"false", "False", "NO", "off", "OFF"};
        char yaml[128];
        for (int i = 0; i < 5; i++) {
            snprintf(yaml, sizeof(yaml), "replication:\n  enabled: %s\n", t[i]);
            CHECK(load(yaml, &c, err) == CIO_OK && c.repl_enabled == 1);
            conf_free(&c);
            snprintf(yaml, sizeof(yaml), "replication:\n  enabled: %s\n", f[i]);
            CHECK(load(yaml, &c, err) == CIO_OK && c.repl_enabled == 0);
            conf_free(&c);
        }
    }

    /* Anchors alone are harmless; warn is an alias for the level. */
    CHECK_EQ_INT(load("logging:\n  level: &l warning\n", &c, err), CIO_OK);
    CHECK_EQ_INT(c.log_level, LOG_LVL_WARN);
    conf_free(&c);

    /* Range edges. */
    expect_ok("server:\n  port: 1\n  threads: 256\nreplication:\n  batch_size: 10000\n  workers: 1\n  retry_attempts: 100\n");
    expect_ok("server:\n  port: 65535\n  threads: 0\nreplication:\n  batch_size: 1\n  retry_delay: 0\n");
    /* 0 keeps conflict losers until removed */
    CHECK_EQ_INT(load("replication:\n  conflict_ttl: 0\n", &c, err), CIO_OK);
    CHECK(c.conflict_ttl_ms == 0);
    conf_free(&c);
    CHECK_EQ_INT(load("replication:\n  conflict_ttl: 36h\n", &c, err), CIO_OK);
    CHECK(c.conflict_ttl_ms == 36ULL * 3600 * 1000);
    conf_free(&c);
    /* 0 keeps tombstones forever; 168h is the default written out. */
    CHECK_EQ_INT(load("replication:\n  tombstone_ttl: 0\n", &c, err), CIO_OK);
    CHECK(c.tombstone_ttl_ms == 0);
    conf_free(&c);
    CHECK_EQ_INT(load("replication:\n  tombstone_ttl: 168h\n", &c, err), CIO_OK);
    CHECK(c.tombstone_ttl_ms == 7ULL * 24 * 3600 * 1000);
    conf_free(&c);
    expect_ok("server:\n  port: 08080\n");
}

/* ---- every error path of the file ---- */

static void test_err_keys(void)
{
    expect_err("server:\n  port: 8080\n  storage_pth: /x\n", "config.yaml:3: unknown key 'server.storage_pth'");
    expect_err("serv:\n  port: 1\n", "config.yaml:1: unknown key 'serv'");
    expect_err("server:\n  tls:\n    certificate: x\n", "config.yaml:3: unknown key 'server.tls.certificate'");
    expect_err("replication:\n  queue_size: 10000\n", "config.yaml:2: unknown key 'replication.queue_size'");
    expect_err("server.port: 1\n", "config.yaml:1: unknown key 'server.port' (nest it: write each part on its own indented line)");
    expect_err("server:\n  port: 1\n  port: 2\n", "config.yaml:3: duplicate key 'server.port'");
    expect_err("server:\n  port: 1\nlogging:\n  level: info\nserver:\n  listen: x\n", "config.yaml:5: duplicate key 'server'");
    expect_err("server:\n  tls: {cert: a, cert: b}\n", "config.yaml:2: duplicate key 'server.tls.cert'");
    expect_err("? [a, b]\n: 1\n", "config.yaml:1: keys must be plain names");
    expect_err("server:\n  ? {a: 1}\n  : 1\n", "config.yaml:2: server: keys must be plain names");
    expect_err("server: &s\n  port: 1\nreplication: *s\n", "config.yaml:3: replication: aliases (*name) are not supported");
    expect_err("server:\n  *x : 1\n", "config.yaml:2: server: aliases (*name) are not supported");
    {
        char yaml[400], want[400];
        char longkey[200];
        memset(longkey, 'k', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = '\0';
        snprintf(yaml, sizeof(yaml), "server:\n  %s: 1\n", longkey);
        snprintf(want, sizeof(want), "config.yaml:2: unknown key 'server.%.64s...'", longkey);
        expect_err(yaml, want);
    }
}

static void test_err_types(void)
{
    expect_err("server:\n  port:\n    a: 1\n", "config.yaml:3: server.port: expected a single value, got a mapping");
    expect_err("server:\n  port: {a: 1}\n", "config.yaml:2: server.port: expected a single value, got a mapping");
    expect_err("server:\n  port: [1, 2]\n", "config.yaml:2: server.port: expected a single value, got a sequence");
    expect_err("server:\n  listen:\n    - a\n", "config.yaml:3: server.listen: expected a single value, got a sequence");
    expect_err("server: 8080\n", "config.yaml:1: server: expected a mapping, got '8080'");
    expect_err("server:\n  - port\n", "config.yaml:2: server: expected a mapping, got a sequence");
    expect_err("server:\n  tls: yes\n", "config.yaml:2: server.tls: expected a mapping, got 'yes'");
    expect_err("- a\n- b\n", "config.yaml:1: expected a mapping at the top level, got a sequence");
    expect_err("hello\n", "config.yaml:1: expected a mapping at the top level (site:, server:, replication:, logging:)");
    expect_err("server:\n  port: 1\n---\nserver:\n  port: 2\n", "config.yaml:3: only one YAML document is allowed");
}

static void test_err_values(void)
{
    expect_err("server:\n  storage_size: 1XB\n",
               "config.yaml:2: server.storage_size: expected a size such as 4096, 512MB or 2GiB, got '1XB'");
    expect_err("server:\n  max_object_size: -1MB\n",
               "config.yaml:2: server.max_object_size: expected a size such as 4096, 512MB or 2GiB, got '-1MB'");
    expect_err("server:\n  meta_map_size: 0.1B\n",
               "config.yaml:2: server.meta_map_size: expected a size such as 4096, 512MB or 2GiB, got '0.1B'");
    expect_err("replication:\n  inline_threshold:\n",
               "config.yaml:2: replication.inline_threshold: expected a size such as 4096, 512MB or 2GiB, got ''");
    expect_err("replication:\n  batch_interval: 1\n",
               "config.yaml:2: replication.batch_interval: expected a duration such as 500ms, 1s, 5m or 1h, got '1'");
    expect_err(
        "replication:\n  sync_rate_limit: fast\n",
        "config.yaml:2: replication.sync_rate_limit: expected a rate such as 100Mbit, 1Gbit or 20MB/s (0: no limit), got 'fast'");
    expect_err(
        "replication:\n  sync_rate_limit: 4096\n", /* bits or bytes? the unit must say */
        "config.yaml:2: replication.sync_rate_limit: expected a rate such as 100Mbit, 1Gbit or 20MB/s (0: no limit), got '4096'");
    expect_err("replication:\n  retry_delay: 0.5ms\n",
               "config.yaml:2: replication.retry_delay: expected a duration such as 500ms, 1s, 5m or 1h, got '0.5ms'");
    expect_err("replication:\n  conflict_ttl: a week\n",
               "config.yaml:2: replication.conflict_ttl: expected a duration such as 500ms, 1s, 5m or 1h, got 'a week'");
    expect_err("storage:\n  repair_timeout: 0\n",
               "config.yaml:2: storage.repair_timeout: expected a duration of at least 1ms, got '0'");
    expect_err("storage:\n  repair_timeout: 0s\n",
               "config.yaml:2: storage.repair_timeout: expected a duration of at least 1ms, got '0s'");
    expect_err("replication:\n  tombstone_ttl: forever\n",
               "config.yaml:2: replication.tombstone_ttl: expected a duration such as 500ms, 1s, 5m or 1h, got 'forever'");
    expect_err("replication:\n  enabled: maybe\n", "config.yaml:2: replication.enabled: expected true or false, got 'maybe'");
    expect_err("replication:\n  enabled: 1\n", "config.yaml:2: replication.enabled: expected true or false, got '1'");
    expect_err("replication:\n  enabled:\n", "config.yaml:2: replication.enabled: expected true or false, got ''");

    expect_err("server:\n  port: http\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got 'http'");
    expect_err("server:\n  port: 0\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '0'");
    expect_err("server:\n  port: 65536\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '65536'");
    expect_err("server:\n  port: -1\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '-1'");
    expect_err("server:\n  port: +80\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '+80'");
    expect_err("server:\n  port: 0x50\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '0x50'");
    expect_err("server:\n  port: 80.0\n", "config.yaml:2: server.port: expected an integer from 1 to 65535, got '80.0'");
    expect_err("server:\n  port: 99999999999999999999999\n",
               "config.yaml:2: server.port: expected an integer from 1 to 65535, got '99999999999999999999999'");
    expect_err("server:\n  threads: 257\n", "config.yaml:2: server.threads: expected an integer from 0 to 256, got '257'");
    expect_err("replication:\n  batch_size: 0\n",
               "config.yaml:2: replication.batch_size: expected an integer from 1 to 10000, got '0'");
    expect_err("replication:\n  batch_size: 10001\n",
               "config.yaml:2: replication.batch_size: expected an integer from 1 to 10000, got '10001'");
    expect_err("replication:\n  workers: 0\n", "config.yaml:2: replication.workers: expected an integer from 1 to 64, got '0'");
    expect_err("replication:\n  workers: 65\n", "config.yaml:2: replication.workers: expected an integer from 1 to 64, got '65'");
    expect_err("replication:\n  retry_attempts: 101\n",
               "config.yaml:2: replication.retry_attempts: expected an integer from 0 to 100, got '101'");

    expect_err("replication:\n  mode: semi\n", "config.yaml:2: replication.mode: expected sync or async, got 'semi'");
    expect_err("replication:\n  sync_fallback: never\n",
               "config.yaml:2: replication.sync_fallback: expected async or wait, got 'never'");
    expect_err("replication:\n  sync_timeout: soon\n",
               "config.yaml:2: replication.sync_timeout: expected a duration such as 500ms, 1s, 5m or 1h, got 'soon'");
    expect_err("logging:\n  level: loud\n", "config.yaml:2: logging.level: expected debug, info, warn or error, got 'loud'");
    expect_err("logging:\n  format: xml\n", "config.yaml:2: logging.format: expected json or text, got 'xml'");

    expect_err("server:\n  listen: \"\"\n", "config.yaml:2: server.listen: must not be empty");
    expect_err("replication:\n  socket:\n", "config.yaml:2: replication.socket: must not be empty");
    expect_err("replication:\n  remote_url: site-b.example.com\n",
               "config.yaml:2: replication.remote_url: expected an http:// or https:// URL, got 'site-b.example.com'");
    expect_err("server:\n  public_url: \"http://a b\"\n",
               "config.yaml:2: server.public_url: expected an http:// or https:// URL, got 'http://a b'");
    {
        /* 512 bytes is the longest URL; 513 is refused */
        char yaml[700], want[200];
        snprintf(yaml, sizeof(yaml), "server:\n  public_url: http://%0497d.example\n", 0);
        expect_ok(yaml);
        snprintf(yaml, sizeof(yaml), "server:\n  public_url: http://%0498d.example\n", 0);
        snprintf(want, sizeof(want), "config.yaml:2: server.public_url: at most 512 bytes, got 513");
        expect_err(yaml, want);
    }
    expect_err("site:\n  id: \"site a\"\n",
               "config.yaml:2: site.id: expected 1 to 64 letters, digits, '.', '_' or '-', got 'site a'");
    expect_err("site:\n  id: \"a\\0b\"\n", "config.yaml:2: site.id: value contains a NUL byte");
    expect_err("logging:\n  level: \"info\\nerror\"\n",
               "config.yaml:2: logging.level: expected debug, info, warn or error, got 'info?error'");

    /* A bad token is never echoed back. */
    expect_err("server:\n  access_token: \"secret with space\"\n",
               "config.yaml:2: server.access_token: must be printable ASCII without spaces");
    expect_err("replication:\n  remote_token: \"abc\\r\\nX-Injected: 1\"\n",
               "config.yaml:2: replication.remote_token: must be printable ASCII without spaces");
    /* Multi-line values report the line where the value starts. */
    expect_err("server:\n  port: 1\n  storage_size: >-\n    12\n    XB\n",
               "config.yaml:3: server.storage_size: expected a size such as 4096, 512MB or 2GiB, got '12 XB'");
}

static void test_err_caps(void)
{
    static char yaml[12000], want[256];
    char val[5001];
    conf_t c;
    char err[ERRLEN];

    memset(val, 'a', sizeof(val) - 1);
    val[4096] = '\0';
    snprintf(yaml, sizeof(yaml), "server:\n  access_token: %s\n", val);
    CHECK_EQ_INT(load(yaml, &c, err), CIO_OK); /* exactly at the cap */
    CHECK(c.access_token != NULL && strlen(c.access_token) == 4096);
    conf_free(&c);
    val[4096] = 'a';
    val[5000] = '\0';
    snprintf(yaml, sizeof(yaml), "server:\n  access_token: %s\n", val);
    expect_err(yaml, "config.yaml:2: server.access_token: value is longer than 4096 bytes");
    snprintf(yaml, sizeof(yaml), "server:\n  storage_path: %s\n", val);
    expect_err(yaml, "config.yaml:2: server.storage_path: value is longer than 4096 bytes");
    snprintf(yaml, sizeof(yaml), "server:\n  port: %s\n", val);
    expect_err(yaml, "config.yaml:2: server.port: value is longer than 4096 bytes");

    /* The file itself is capped. */
    {
        FILE *fp = fopen("big.yaml", "w");
        for (int i = 0; i < 20000; i++)
            fputs("# a comment line to make the file larger than one mebibyte ...........\n", fp);
        fclose(fp);
        created[ncreated++] = "big.yaml";
        CHECK_EQ_INT(conf_init(&c), CIO_OK);
        CHECK_EQ_INT(conf_load_file(&c, "big.yaml", err, ERRLEN), CIO_ECONFIG);
        snprintf(want, sizeof(want), "big.yaml: file is larger than %d bytes", 1024 * 1024);
        CHECK_EQ_STR(err, want);
        conf_free(&c);
    }
}

static void test_err_syntax(void)
{
    expect_err("server:\n  port: 8080\n  listen: \"abc\n",
               "config.yaml:4: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar at line 3)");
    expect_err("server:\n  port: 8080\n  listen: x\n bad: 1\n",
               "config.yaml:4: YAML syntax error: did not find expected key (while parsing a block mapping at line 1)");
    expect_err("server: a: b\n", "config.yaml:1: YAML syntax error: mapping values are not allowed in this context");
    expect_err_prefix("server:\n  port: 8080\n\tlisten: x\n", "config.yaml:3: YAML syntax error: ");
    expect_err_prefix("server:\n  port: 8080\n  listen: {a: 1\n", "config.yaml:4: YAML syntax error: ");
    expect_err_prefix("server:\n  port: 1\n  - x\n", "config.yaml:3: YAML syntax error: ");
    expect_err_prefix("server:\n  port: @x\n", "config.yaml:2: YAML syntax error: ");
    /* Invalid UTF-8 is found by the reader, which counts bytes, not lines. */
    expect_err("server:\n  port: 1\n  listen: \xff\xfe\n", "config.yaml:3: YAML syntax error: invalid leading UTF-8 octet");
}

static void test_err_open(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(conf_load_file(&c, "missing.yaml", err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "missing.yaml: cannot open: No such file or directory");
    CHECK_EQ_INT(conf_load_file(&c, ".", err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, ".: cannot open: Is a directory");
    CHECK_EQ_INT(conf_load_file(&c, "missing.yaml", NULL, 0), CIO_ECONFIG); /* no buffer: still fails cleanly */
    if (geteuid() != 0) {
        write_file("secret.yaml", "server:\n  port: 1\n");
        chmod("secret.yaml", 0);
        CHECK_EQ_INT(conf_load_file(&c, "secret.yaml", err, ERRLEN), CIO_ECONFIG);
        CHECK_EQ_STR(err, "secret.yaml: cannot open: Permission denied");
        chmod("secret.yaml", 0600);
    }
    conf_free(&c);
}

static void test_token_files(void)
{
    conf_t c;
    char err[ERRLEN];

    write_file("good.tok", "tok-abc   \r\nsecond line ignored\n");
    write_file("nonl.tok", "tok-no-newline");
    write_file("empty.tok", "");
    write_file("blank.tok", "  \n\n");
    write_file("space.tok", "two words\n");

    CHECK_EQ_INT(load("replication:\n  remote_token_file: good.tok\n  accept_token_file: nonl.tok\n", &c, err), CIO_OK);
    CHECK_EQ_STR(c.remote_token, "tok-abc");
    CHECK_EQ_STR(c.accept_token, "tok-no-newline");
    conf_free(&c);

    expect_err("replication:\n  remote_token_file: empty.tok\n",
               "config.yaml:2: replication.remote_token_file: file 'empty.tok' is empty");
    expect_err("replication:\n  accept_token_file: blank.tok\n",
               "config.yaml:2: replication.accept_token_file: file 'blank.tok' is empty");
    expect_err("replication:\n  remote_token_file: none.tok\n",
               "config.yaml:2: replication.remote_token_file: cannot open 'none.tok': No such file or directory");
    expect_err("replication:\n  remote_token_file: .\n",
               "config.yaml:2: replication.remote_token_file: cannot read '.': Is a directory");
    expect_err("replication:\n  remote_token_file: space.tok\n",
               "config.yaml:2: replication.remote_token_file: the token in 'space.tok' must be printable ASCII without spaces");
    expect_err("replication:\n  remote_token_file: \"\"\n", "config.yaml:2: replication.remote_token_file: expected a file name");
    expect_err("replication:\n  remote_token: a\n  remote_token_file: good.tok\n",
               "config.yaml:3: replication.remote_token_file: cannot be used together with replication.remote_token");
    expect_err("replication:\n  accept_token_file: good.tok\n  accept_token: a\n",
               "config.yaml:3: replication.accept_token: cannot be used together with replication.accept_token_file");
    {
        static char big[6000];
        memset(big, 't', sizeof(big) - 1);
        write_file("long.tok", big);
        expect_err("replication:\n  remote_token_file: long.tok\n",
                   "config.yaml:2: replication.remote_token_file: the token in 'long.tok' is longer than 4096 bytes");
    }
}

/* ---- flags ---- */

static void test_args_override(void)
{
    conf_t c;
    char err[ERRLEN];

    write_file("base.yaml", "server:\n  port: 8080\n  storage_path: /from/file\n  listen: 127.0.0.1\n"
                            "replication:\n  enabled: true\n  remote_url: https://b\n");
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    /* --config comes last but is loaded first; flags win wherever they stand. */
    CHECK_EQ_INT(run_args(&c, NULL, err, "--port", "9000", "--storage=/from/flag", "--config", "base.yaml", NULL), CIO_OK);
    CHECK_EQ_INT(c.port, 9000);
    CHECK_EQ_STR(c.storage_path, "/from/flag");
    CHECK_EQ_STR(c.listen, "127.0.0.1"); /* from the file, no flag */
    CHECK_EQ_STR(c.config_path, "base.yaml");
    CHECK_EQ_INT(c.repl_enabled, 1);
    conf_free(&c);

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--config=base.yaml", "--replication-enabled=false", "--port=1", "--port", "2", "--listen",
                          "::1", "--meta", "/m", "--accept-token", "acc", "--site-id", "site-b", "--log-level", "debug",
                          "--replication-remote", "http://c:1", "--replication-token=rt", "--size=2GiB", NULL),
                 CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 0);
    CHECK_EQ_INT(c.port, 2); /* the last one wins */
    CHECK_EQ_STR(c.listen, "::1");
    CHECK_EQ_STR(c.meta_path, "/m");
    CHECK_EQ_STR(c.accept_token, "acc");
    CHECK_EQ_STR(c.site_id, "site-b");
    CHECK_EQ_INT(c.log_level, LOG_LVL_DEBUG);
    CHECK_EQ_STR(c.remote_url, "http://c:1");
    CHECK_EQ_STR(c.remote_token, "rt");
    CHECK(c.storage_size == (2ULL << 30));
    conf_free(&c);

    /* No flags at all is fine. */
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, NULL), CIO_OK);
    CHECK(c.config_path == NULL);
    conf_free(&c);
}

static void test_args_extra_and_help(void)
{
    static const char *const extra[] = {"--list-failed", "--json", NULL};
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, extra, err, "--list-failed", "--port", "81", "--json", NULL), CIO_OK);
    CHECK_EQ_INT(c.port, 81);
    CHECK_EQ_INT(c.help, 0);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--list-failed", NULL), CIO_ECONFIG); /* not extra here */
    CHECK_EQ_STR(err, "unknown flag '--list-failed' (see --help)");
    conf_free(&c);

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--help", NULL), CIO_OK);
    CHECK_EQ_INT(c.help, 1);
    conf_free(&c);
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    /* -h wins over a bad value or a missing file: the caller prints usage. */
    CHECK_EQ_INT(run_args(&c, NULL, err, "--port", "x", "--config", "missing.yaml", "-h", NULL), CIO_OK);
    CHECK_EQ_INT(c.help, 1);
    conf_free(&c);
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--help=yes", NULL), CIO_ECONFIG);
    CHECK_EQ_STR(err, "--help: takes no value");
    conf_free(&c);
}

static void expect_args_err(const char *want, ...)
{
    char *argv[16];
    const char *a;
    int argc = 0;
    va_list ap;
    conf_t c;
    char err[ERRLEN];

    argv[argc++] = strdup("prog");
    va_start(ap, want);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 15)
        argv[argc++] = strdup(a);
    va_end(ap);
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    err[0] = '\0';
    CHECK_EQ_INT(conf_from_args(&c, argc, argv, NULL, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, want);
    conf_free(&c);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

static void test_args_errors(void)
{
    write_file("bad.yaml", "server:\n  prot: 1\n");
    expect_args_err("unknown flag '--foo' (see --help)", "--foo", NULL);
    expect_args_err("unknown flag '--foo' (see --help)", "--foo=bar", NULL);
    expect_args_err("unknown flag '-x' (see --help)", "-x", NULL);
    expect_args_err("unknown flag '--' (see --help)", "--", NULL);
    expect_args_err("unexpected argument 'server' (see --help)", "server", NULL);
    expect_args_err("unexpected argument 'extra' (see --help)", "--port", "80", "extra", NULL);
    expect_args_err("unexpected argument '-' (see --help)", "-", NULL);
    expect_args_err("--port: needs a value", "--port", NULL);
    expect_args_err("--storage: needs a value", "--storage", "--size", "1TB", NULL);
    expect_args_err("--config: needs a value", "--config", NULL);
    expect_args_err("--config: needs a value", "--config=", NULL);
    expect_args_err("--port: expected an integer from 1 to 65535, got 'x'", "--port", "x", NULL);
    expect_args_err("--port: expected an integer from 1 to 65535, got ''", "--port=", NULL);
    expect_args_err("--size: expected a size such as 4096, 512MB or 2GiB, got '1XB'", "--size", "1XB", NULL);
    expect_args_err("--log-level: expected debug, info, warn or error, got 'loud'", "--log-level", "loud", NULL);
    expect_args_err("--replication-enabled: expected true or false, got 'maybe'", "--replication-enabled=maybe", NULL);
    expect_args_err("--replication-remote: expected an http:// or https:// URL, got 'ftp://x'", "--replication-remote", "ftp://x",
                    NULL);
    expect_args_err("--replication-token: must be printable ASCII without spaces", "--replication-token", "a b", NULL);
    expect_args_err("--site-id: expected 1 to 64 letters, digits, '.', '_' or '-', got 'a/b'", "--site-id", "a/b", NULL);
    expect_args_err("--listen: must not be empty", "--listen=", NULL);
    expect_args_err("missing.yaml: cannot open: No such file or directory", "--config", "missing.yaml", NULL);
    expect_args_err("bad.yaml:2: unknown key 'server.prot'", "--port", "1", "--config", "bad.yaml", NULL);
    /* Syntax is checked before the file is read. */
    expect_args_err("unknown flag '--nope' (see --help)", "--config", "bad.yaml", "--nope", NULL);
}

/* Messages are one line whatever the input: control bytes become '?'. */
static void test_err_control_bytes(void)
{
    expect_args_err("unexpected argument '?' (see --help)", "\n", NULL);
    expect_args_err("unknown flag '--a?b' (see --help)", "--a\tb", NULL);
    expect_args_err("x?y.yaml: cannot open: No such file or directory", "--config", "x\ry.yaml", NULL);
}

/* s3: credentials (inline or from a file), region, domains, and their errors. */
static void test_s3(void)
{
    conf_t c;
    char err[ERRLEN], path[256];

    write_file("s3.secret", "file-secret\n");
    snprintf(path, sizeof(path), "%s/s3.secret", tmpdir);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "s3:\n  region: eu-west-1\n  domains: [s3.Example.com, s3.local]\n  credentials:\n"
             "    - access_key: AK1\n      secret_key: s1/+x\n    - {access_key: AK2, secret_key_file: %s}\n",
             path);
    CHECK_EQ_INT(load(yaml, &c, err), 0);
    CHECK_EQ_STR(c.s3_region, "eu-west-1");
    CHECK_EQ_INT(c.s3_ncredentials, 2);
    CHECK(c.s3_ncredentials == 2 && strcmp(c.s3_credentials[0].access_key, "AK1") == 0 &&
          strcmp(c.s3_credentials[0].secret_key, "s1/+x") == 0 && strcmp(c.s3_credentials[1].secret_key, "file-secret") == 0);
    CHECK(c.s3_ndomains == 2 && strcmp(c.s3_domains[0], "s3.example.com") == 0);
    conf_free(&c);
    CHECK_EQ_INT(load("server:\n  port: 1\n", &c, err), 0);
    CHECK(c.s3_ncredentials == 0 && c.s3_credentials == NULL && strcmp(c.s3_region, "us-east-1") == 0);
    conf_free(&c);
    expect_err("s3:\n  credentials:\n    - access_key: AK1\n",
               "config.yaml:3: s3.credentials[0]: needs access_key and secret_key (or secret_key_file)");
    expect_err("s3:\n  credentials:\n    - access_key: AK1\n      secret_key: a\n      secret_key_file: /x\n",
               "config.yaml:5: s3.credentials[0].secret_key_file: give one of secret_key and secret_key_file, once");
    expect_err("s3:\n  credentials:\n    - {access_key: A, secret_key: a}\n    - {access_key: A, secret_key: b}\n",
               "config.yaml:4: s3.credentials[1].access_key: already the access_key of s3.credentials[0]");
    expect_err("s3:\n  credentials:\n    - {access_key: A, secret: a}\n", "config.yaml:3: unknown key 's3.credentials[0].secret'");
    expect_err("s3:\n  credentials:\n    - {access_key: A B, secret_key: a}\n",
               "config.yaml:3: s3.credentials[0].access_key: must be printable ASCII without spaces");
    expect_err("s3:\n  credentials: AK\n", "config.yaml:2: s3.credentials: expected a list, got 'AK'");
    expect_err("s3:\n  credentials:\n    access_key: A\n",
               "config.yaml:3: s3.credentials: expected a list, got a mapping (write '- ' before each entry)");
    expect_err("s3:\n  domains: [bad_host]\n",
               "config.yaml:2: s3.domains[0]: expected a host name (letters, digits, '-' and '.'), got 'bad_host'");
    expect_err("s3:\n  region: \"\"\n", "config.yaml:2: s3.region: must not be empty");
    expect_err("s3:\n  region: EU West\n", "config.yaml:2: s3.region: expected 1 to 64 of a-z, 0-9 and '-', got 'EU West'");
    expect_err("s3:\n  credentials:\n    - {access_key: A, secret_key_file: /nonexistent/x}\n",
               "config.yaml:3: s3.credentials[0].secret_key_file: cannot open '/nonexistent/x': No such file or directory");
}

/* conf_load_buffer: the same parser without a file; the name stands in the messages. */
static void test_load_buffer(void)
{
    static const char good[] = "server:\n  port: 8081\n  storage_path: /tmp/x.img\n";
    static const char bad[] = "server:\n  port: 8081\n  prot: 1\n";
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(conf_load_buffer(&c, "inline", good, sizeof(good) - 1, err, sizeof(err)), CIO_OK);
    CHECK_EQ_INT(c.port, 8081);
    CHECK_EQ_STR(c.storage_path, "/tmp/x.img");
    conf_free(&c);

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    err[0] = '\0';
    CHECK_EQ_INT(conf_load_buffer(&c, "inline", bad, sizeof(bad) - 1, err, sizeof(err)), CIO_ECONFIG);
    CHECK_EQ_STR(err, "inline:3: unknown key 'server.prot'");
    conf_free(&c);

    /* the length is what counts, not a terminating NUL */
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(conf_load_buffer(&c, "inline", "server: {port: 9}\nxxx", 18, err, sizeof(err)), CIO_OK);
    CHECK_EQ_INT(c.port, 9);
    conf_free(&c);
}

static void test_args_bool_and_empty(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    /* --replication-enabled takes no value: the next argument stays a flag. */
    CHECK_EQ_INT(run_args(&c, NULL, err, "--replication-enabled", "--port", "82", NULL), CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 1);
    CHECK_EQ_INT(c.port, 82);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--replication-enabled=off", NULL), CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 0);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--replication-enabled=yes", NULL), CIO_OK);
    CHECK_EQ_INT(c.repl_enabled, 1);
    /* An empty value unsets an optional string; "=" inside a value is kept. */
    CHECK_EQ_INT(run_args(&c, NULL, err, "--accept-token", "x=y", "--meta", "/m", NULL), CIO_OK);
    CHECK_EQ_STR(c.accept_token, "x=y");
    CHECK_EQ_INT(run_args(&c, NULL, err, "--accept-token=", "--meta=", NULL), CIO_OK);
    CHECK(c.accept_token == NULL && c.meta_path == NULL);
    /* A value may begin with a single dash. */
    CHECK_EQ_INT(run_args(&c, NULL, err, "--storage", "-odd-name", NULL), CIO_OK);
    CHECK_EQ_STR(c.storage_path, "-odd-name");
    conf_free(&c);
}

/* ---- conf_finalize ---- */

static void test_finalize_defaults(void)
{
    conf_t c;
    char err[ERRLEN], host[256];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    CHECK_EQ_STR(c.site_id, host);
    CHECK(c.meta_path == NULL); /* no storage, nothing to derive from */
    CHECK_EQ_STR(c.public_url, "http://127.0.0.1:8080");
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK); /* idempotent */
    CHECK_EQ_STR(c.public_url, "http://127.0.0.1:8080");
    conf_free(&c);

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(
        run_args(&c, NULL, err, "--storage", "/srv/data.img", "--listen", "10.1.2.3", "--port", "9001", "--site-id", "dc1", NULL),
        CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.site_id, "dc1");
    CHECK_EQ_STR(c.meta_path, "/srv/data.img.meta");
    CHECK_EQ_STR(c.public_url, "http://10.1.2.3:9001");
    conf_free(&c);

    {
        static const char *const cases[][2] = {
            {"::", "http://127.0.0.1:8080"}, {"[::]", "http://127.0.0.1:8080"},      {"::1", "http://[::1]:8080"},
            {"[::1]", "http://[::1]:8080"},  {"localhost", "http://localhost:8080"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            CHECK_EQ_INT(conf_init(&c), CIO_OK);
            CHECK_EQ_INT(run_args(&c, NULL, err, "--listen", cases[i][0], NULL), CIO_OK);
            CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
            CHECK_EQ_STR(c.public_url, cases[i][1]);
            conf_free(&c);
        }
    }

    /* TLS turns the derived URL into https. */
    CHECK_EQ_INT(load("server:\n  port: 8443\n  tls: {cert: c.pem, key: k.pem}\n", &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.public_url, "https://127.0.0.1:8443");
    conf_free(&c);
}

static void test_finalize_errors(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 1, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "server.storage_path is required (set it in the config file or with --storage)");
    conf_free(&c);

    CHECK_EQ_INT(load("replication:\n  enabled: true\n", &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "replication.targets or replication.remote_url is required when replication.enabled is true "
                      "(list the sites to ship to in the config file, or give one with --replication-remote)");
    conf_free(&c);

    CHECK_EQ_INT(load("server:\n  tls:\n    cert: c.pem\n", &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "server.tls.cert and server.tls.key must be set together");
    conf_free(&c);

    CHECK_EQ_INT(load("server:\n  tls:\n    key: k.pem\n", &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "server.tls.cert and server.tls.key must be set together");
    conf_free(&c);
}

/* ---- replication.targets ---- */

/* Loads yaml and finalizes it (no storage needed); expects both to succeed. */
static void load_final(const char *yaml, conf_t *c)
{
    char err[ERRLEN];
    int rc = load(yaml, c, err);

    if (rc == CIO_OK)
        rc = conf_finalize(c, 0, err, ERRLEN);
    if (rc != CIO_OK)
        fprintf(stderr, "  unexpected error: %s\n  for YAML:\n%s\n", err, yaml);
    CHECK_EQ_INT(rc, CIO_OK);
}

/* Loads yaml (which must load) and expects conf_finalize to fail with `want`. */
static void expect_finalize_err(const char *yaml, const char *want)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(load(yaml, &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, want);
    conf_free(&c);
}

static void test_targets_block_and_flow(void)
{
    conf_t c;
    const char *const yamls[] = {
        /* block style */
        "replication:\n"
        "  enabled: true\n"
        "  targets:\n"
        "    - name: site-b\n"
        "      url: https://b.example.com\n"
        "      token: tok-b\n"
        "    - name: site_c.dc2\n"
        "      url: http://10.0.0.7:8080/\n"
        "      token_file: c.tok\n"
        "      mode: async\n"
        "      batch_size: 50\n"
        "      workers: 2\n"
        "      retry_attempts: 7\n"
        "      retry_delay: 250ms\n"
        "      inline_threshold: 64KiB\n",
        /* flow style, the same list */
        "replication: {enabled: true, targets: [{name: site-b, url: 'https://b.example.com', token: tok-b},\n"
        "  {name: site_c.dc2, url: 'http://10.0.0.7:8080/', token_file: c.tok, mode: async, batch_size: 50, workers: 2,\n"
        "   retry_attempts: 7, retry_delay: 250ms, inline_threshold: 64KiB}]}\n",
        /* block list of flow mappings, the list not indented under its key */
        "replication:\n"
        "  enabled: true\n"
        "  targets:\n"
        "  - {name: site-b, url: 'https://b.example.com', token: tok-b}\n"
        "  - {name: site_c.dc2, url: 'http://10.0.0.7:8080/', token_file: c.tok, mode: async, batch_size: 50, workers: 2,\n"
        "     retry_attempts: 7, retry_delay: 250ms, inline_threshold: 64KiB}\n",
    };
    const unsigned lines[][2] = {{4, 7}, {1, 2}, {4, 5}};

    write_file("c.tok", "tok-c-from-file\n");
    for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
        load_final(yamls[i], &c);
        CHECK(c.remote_url == NULL && c.remote_token == NULL);
        CHECK_EQ_INT(c.ntargets, 2);
        if (c.ntargets != 2) {
            conf_free(&c);
            continue;
        }
        CHECK_EQ_STR(c.targets[0].name, "site-b");
        CHECK_EQ_STR(c.targets[0].url, "https://b.example.com");
        CHECK_EQ_STR(c.targets[0].token, "tok-b");
        CHECK_EQ_INT(c.targets[0].line, lines[i][0]);
        /* what it does not set comes from the replication.* defaults */
        CHECK_EQ_STR(c.targets[0].mode, "async");
        CHECK_EQ_INT(c.targets[0].batch_size, 100);
        CHECK_EQ_INT(c.targets[0].workers, 5);
        CHECK_EQ_INT(c.targets[0].retry_attempts, 3);
        CHECK(c.targets[0].retry_delay_ms == 5000);
        CHECK(c.targets[0].inline_threshold == 1000000);
        CHECK_EQ_STR(c.targets[1].name, "site_c.dc2");
        CHECK_EQ_STR(c.targets[1].url, "http://10.0.0.7:8080/");
        CHECK_EQ_STR(c.targets[1].token, "tok-c-from-file");
        CHECK_EQ_INT(c.targets[1].line, lines[i][1]);
        CHECK_EQ_STR(c.targets[1].mode, "async");
        CHECK_EQ_INT(c.targets[1].batch_size, 50);
        CHECK_EQ_INT(c.targets[1].workers, 2);
        CHECK_EQ_INT(c.targets[1].retry_attempts, 7);
        CHECK(c.targets[1].retry_delay_ms == 250);
        CHECK(c.targets[1].inline_threshold == 65536);
        conf_free(&c);
    }

    /* A target without a token sends none; a name of exactly CONF_TARGET_NAME_MAX bytes is fine. */
    {
        char yaml[512], name[CONF_TARGET_NAME_MAX + 1];
        memset(name, 'n', CONF_TARGET_NAME_MAX);
        name[CONF_TARGET_NAME_MAX] = '\0';
        snprintf(yaml, sizeof(yaml), "replication:\n  targets:\n    - {name: %s, url: 'http://b'}\n", name);
        load_final(yaml, &c);
        CHECK_EQ_INT(c.ntargets, 1);
        CHECK(c.ntargets == 1 && c.targets[0].token == NULL);
        CHECK(c.ntargets == 1 && strcmp(c.targets[0].name, name) == 0);
        conf_free(&c);
    }

    /* "token: ''" is no token, as for remote_token */
    load_final("replication:\n  targets:\n    - {name: b, url: 'http://b', token: ''}\n", &c);
    CHECK(c.ntargets == 1 && c.targets[0].token == NULL);
    conf_free(&c);
}

static void test_targets_inherit(void)
{
    conf_t c;
    char err[ERRLEN];

    /* The replication.* values are every target's defaults, even when they come after the list. */
    load_final("replication:\n"
               "  targets:\n"
               "    - {name: b, url: 'http://b'}\n"
               "    - {name: c, url: 'http://c', retry_attempts: 0, retry_delay: 0, inline_threshold: 0, workers: 1,\n"
               "       batch_size: 1}\n"
               "    - {name: d, url: 'http://d', retry_attempts: 100, batch_size: 10000, workers: 64}\n"
               "  enabled: true\n"
               "  batch_size: 200\n"
               "  workers: 9\n"
               "  retry_attempts: 4\n"
               "  retry_delay: 2s\n"
               "  inline_threshold: 2MB\n",
               &c);
    CHECK_EQ_INT(c.ntargets, 3);
    if (c.ntargets == 3) {
        CHECK_EQ_INT(c.targets[0].batch_size, 200);
        CHECK_EQ_INT(c.targets[0].workers, 9);
        CHECK_EQ_INT(c.targets[0].retry_attempts, 4);
        CHECK(c.targets[0].retry_delay_ms == 2000);
        CHECK(c.targets[0].inline_threshold == 2000000);
        /* a 0 the target gives is its value, not "inherit" */
        CHECK_EQ_INT(c.targets[1].retry_attempts, 0);
        CHECK(c.targets[1].retry_delay_ms == 0);
        CHECK(c.targets[1].inline_threshold == 0);
        CHECK_EQ_INT(c.targets[1].workers, 1);
        CHECK_EQ_INT(c.targets[1].batch_size, 1);
        CHECK_EQ_INT(c.targets[2].retry_attempts, 100);
        CHECK_EQ_INT(c.targets[2].batch_size, 10000);
        CHECK_EQ_INT(c.targets[2].workers, 64);
        CHECK(c.targets[2].retry_delay_ms == 2000);
        /* conf_finalize again changes nothing */
        CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
        CHECK_EQ_INT(c.targets[1].retry_attempts, 0);
        CHECK_EQ_INT(c.targets[0].retry_attempts, 4);
        CHECK_EQ_STR(c.targets[0].mode, "async");
        CHECK_EQ_INT(c.ntargets, 3);
    }
    conf_free(&c);

    /* A global retry_attempts of 0 is inherited as 0. */
    load_final("replication:\n  retry_attempts: 0\n  targets: [{name: b, url: 'http://b'}, {name: c, url: 'http://c', "
               "retry_attempts: 2}]\n",
               &c);
    CHECK(c.ntargets == 2 && c.targets[0].retry_attempts == 0 && c.targets[1].retry_attempts == 2);
    conf_free(&c);

    /* Listed targets are complete even while replication is disabled. */
    load_final("replication:\n  enabled: false\n  targets: [{name: b, url: 'http://b'}]\n", &c);
    CHECK(c.ntargets == 1 && c.targets[0].batch_size == 100 && c.targets[0].mode != NULL);
    conf_free(&c);
}

/* replication.compression and compression_level: a default for every target, overridden per target. */
static void test_targets_compression(void)
{
    conf_t c;

    load_final("replication:\n"
               "  targets:\n"
               "    - {name: b, url: 'http://b'}\n"
               "    - {name: c, url: 'http://c', compression: none}\n"
               "    - {name: d, url: 'http://d', compression_level: 19}\n"
               "  compression: zstd\n"
               "  compression_level: 1\n",
               &c);
    CHECK_EQ_INT(c.ntargets, 3);
    if (c.ntargets == 3) {
        CHECK_EQ_INT(c.targets[0].compression, CONF_COMPRESSION_ZSTD);
        CHECK_EQ_INT(c.targets[0].compression_level, 1);
        CHECK_EQ_INT(c.targets[1].compression, CONF_COMPRESSION_NONE);
        CHECK_EQ_INT(c.targets[1].compression_level, 1);
        CHECK_EQ_INT(c.targets[2].compression, CONF_COMPRESSION_ZSTD);
        CHECK_EQ_INT(c.targets[2].compression_level, 19);
    }
    conf_free(&c);
    /* the defaults: none, at zstd's level 3 when a target turns it on */
    load_final("replication:\n  targets:\n    - {name: b, url: 'http://b', compression: zstd}\n", &c);
    CHECK_EQ_INT(c.compression, CONF_COMPRESSION_NONE);
    CHECK(c.ntargets == 1 && c.targets[0].compression == CONF_COMPRESSION_ZSTD && c.targets[0].compression_level == 3);
    conf_free(&c);

    expect_err("replication:\n  compression: gzip\n", "config.yaml:2: replication.compression: expected zstd or none, got 'gzip'");
    expect_err("replication:\n  compression:\n", "config.yaml:2: replication.compression: expected zstd or none, got ''");
    expect_err("replication:\n  compression_level: 0\n",
               "config.yaml:2: replication.compression_level: expected an integer from 1 to 19, got '0'");
    expect_err("replication:\n  compression_level: 22\n",
               "config.yaml:2: replication.compression_level: expected an integer from 1 to 19, got '22'");
    expect_err("replication:\n  targets:\n    - name: b\n      url: 'http://b'\n      compression: ZSTD\n",
               "config.yaml:5: replication.targets[0].compression: expected zstd or none, got 'ZSTD'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', compression_level: fast}\n",
               "config.yaml:3: replication.targets[0].compression_level: expected an integer from 1 to 19, got 'fast'");
}

/* replication.bandwidth_limit: a default for every target, overridden per target; 0 is none. */
static void test_targets_bandwidth_limit(void)
{
    conf_t c;

    load_final("replication:\n"
               "  targets:\n"
               "    - {name: b, url: 'http://b'}\n"
               "    - {name: c, url: 'http://c', bandwidth_limit: 20MB/s}\n"
               "    - {name: d, url: 'http://d', bandwidth_limit: 0}\n"
               "  bandwidth_limit: 100Mbit\n",
               &c);
    CHECK_EQ_INT(c.ntargets, 3);
    if (c.ntargets == 3) {
        CHECK(c.targets[0].bandwidth_limit == 12500000);
        CHECK(c.targets[1].bandwidth_limit == 20000000);
        CHECK(c.targets[2].bandwidth_limit == 0);
    }
    conf_free(&c);
    load_final("replication:\n  targets:\n    - {name: b, url: 'http://b'}\n", &c);
    CHECK(c.ntargets == 1 && c.targets[0].bandwidth_limit == 0); /* the default: none */
    conf_free(&c);

    expect_err(
        "replication:\n  bandwidth_limit: 100\n",
        "config.yaml:2: replication.bandwidth_limit: expected a rate such as 100Mbit, 1Gbit or 20MB/s (0: no limit), got '100'");
    expect_err("replication:\n  targets:\n    - name: b\n      url: 'http://b'\n      bandwidth_limit: fast\n",
               "config.yaml:5: replication.targets[0].bandwidth_limit: expected a rate such as 100Mbit, 1Gbit or 20MB/s (0: no "
               "limit), got 'fast'");
}

static void test_targets_legacy(void)
{
    conf_t c;
    char err[ERRLEN];
    static const char *const cases[][2] = {
        {"https://site-b.example.com", "site-b.example.com"},
        {"http://10.0.0.7:8080/", "10.0.0.7"},
        {"http://[::1]:9000", "--1"},
        {"http://user@b:1/x?y#z", "user-b"},
    };

    /* remote_url and remote_token are the one target, named after the host, with every replication.* value. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "replication:\n  enabled: true\n  remote_url: '%s'\n  remote_token: tok\n  retry_attempts: 0\n  workers: 3\n",
                 cases[i][0]);
        load_final(yaml, &c);
        CHECK_EQ_INT(c.ntargets, 1);
        if (c.ntargets == 1) {
            CHECK_EQ_STR(c.targets[0].name, cases[i][1]);
            CHECK_EQ_STR(c.targets[0].url, cases[i][0]);
            CHECK_EQ_STR(c.targets[0].token, "tok");
            CHECK_EQ_INT(c.targets[0].line, 0);
            CHECK_EQ_INT(c.targets[0].retry_attempts, 0);
            CHECK_EQ_INT(c.targets[0].workers, 3);
            CHECK_EQ_INT(c.targets[0].batch_size, 100);
            CHECK_EQ_STR(c.targets[0].mode, "async");
        }
        CHECK_EQ_STR(c.remote_url, cases[i][0]);                 /* kept, for what still reads it */
        CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK); /* idempotent: still one target */
        CHECK_EQ_INT(c.ntargets, 1);
        conf_free(&c);
    }

    /* The seed's flags. */
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(
        run_args(&c, NULL, err, "--replication-enabled", "--replication-remote", "http://b:8080", "--replication-token", "t", NULL),
        CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    CHECK(c.ntargets == 1 && strcmp(c.targets[0].name, "b") == 0 && strcmp(c.targets[0].token, "t") == 0);
    conf_free(&c);

    /* Replication disabled: remote_url ships nowhere and makes no target. */
    load_final("replication:\n  enabled: false\n  remote_url: http://b\n", &c);
    CHECK_EQ_INT(c.ntargets, 0);
    conf_free(&c);
}

static void test_targets_replaced_by_a_later_file(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(load("replication:\n  targets: [{name: b, url: 'http://b', token: x}, {name: c, url: 'http://c'}]\n", &c, err),
                 CIO_OK);
    write_file("second.yaml", "replication:\n  targets: [{name: d, url: 'http://d'}]\n");
    CHECK_EQ_INT(conf_load_file(&c, "second.yaml", err, ERRLEN), CIO_OK);
    CHECK(c.ntargets == 1 && strcmp(c.targets[0].name, "d") == 0);
    /* a bad list leaves the one held */
    write_file("third.yaml", "replication:\n  targets: [{name: e, url: 'http://e'}, {name: f}]\n");
    CHECK_EQ_INT(conf_load_file(&c, "third.yaml", err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "third.yaml:2: replication.targets[1].url: missing (every target needs a name and a url)");
    CHECK(c.ntargets == 1 && strcmp(c.targets[0].name, "d") == 0);
    conf_free(&c);
}

static void test_targets_errors(void)
{
    char yaml[4096];
    size_t n;

    write_file("t.tok", "tok\n");
    write_file("empty.tok", "");
    /* the list itself */
    expect_err("replication:\n  targets: []\n",
               "config.yaml:2: replication.targets: expected at least one target, got an empty list");
    expect_err("replication:\n  targets:\n", "config.yaml:2: replication.targets: expected a list of targets, got an empty value");
    expect_err("replication:\n  targets: ~\n",
               "config.yaml:2: replication.targets: expected a list of targets, got an empty value");
    expect_err("replication:\n  targets: http://b\n",
               "config.yaml:2: replication.targets: expected a list of targets, got 'http://b'");
    expect_err("replication:\n  targets:\n    name: b\n    url: http://b\n",
               "config.yaml:3: replication.targets: expected a list of targets, got a mapping (write '- ' before each target)");
    expect_err("replication:\n  targets:\n    - http://b\n",
               "config.yaml:3: replication.targets[0]: expected a mapping (name:, url:, ...), got 'http://b'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b'}\n    - [c, 'http://c']\n",
               "config.yaml:4: replication.targets[1]: expected a mapping (name:, url:, ...), got a sequence");
    expect_err("replication:\n  targets:\n    - &t {name: b, url: 'http://b'}\n    - *t\n",
               "config.yaml:4: replication.targets[1]: aliases (*name) are not supported");
    expect_err("replication:\n  targets: [{name: b, url: 'http://b'}]\n  targets: [{name: c, url: 'http://c'}]\n",
               "config.yaml:3: duplicate key 'replication.targets'");
    n = (size_t)snprintf(yaml, sizeof(yaml), "replication:\n  targets:\n");
    for (int i = 0; i <= CONF_TARGETS_MAX; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "    - {name: t%d, url: 'http://h%d'}\n", i, i);
    expect_err(yaml, "config.yaml:35: replication.targets: at most 32 targets");
    yaml[strlen(yaml) - strlen("    - {name: t32, url: 'http://h32'}\n")] = '\0';
    expect_ok(yaml); /* 32 is fine */

    /* keys of a target */
    expect_err("replication:\n  targets:\n    - name: b\n      url: http://b\n      tokn: x\n",
               "config.yaml:5: unknown key 'replication.targets[0].tokn'");
    expect_err("replication:\n  targets:\n    - name: b\n      url: http://b\n      enabled: true\n",
               "config.yaml:5: unknown key 'replication.targets[0].enabled'");
    expect_err("replication:\n  targets:\n    - name: b\n      url: http://b\n      name: c\n",
               "config.yaml:5: duplicate key 'replication.targets[0].name'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', ? [x] : y}\n",
               "config.yaml:3: replication.targets[0]: keys must be plain names");
    expect_err("replication:\n  targets:\n    - name: b\n      url:\n        host: b\n",
               "config.yaml:5: replication.targets[0].url: expected a single value, got a mapping");
    expect_err("replication:\n  targets:\n    - name: [b]\n      url: http://b\n",
               "config.yaml:3: replication.targets[0].name: expected a single value, got a sequence");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', token: t, token_file: t.tok}\n",
               "config.yaml:3: replication.targets[0].token_file: cannot be used together with replication.targets[0].token");
    expect_err("replication:\n  targets:\n    - token_file: t.tok\n      name: b\n      url: http://b\n      token: t\n",
               "config.yaml:6: replication.targets[0].token: cannot be used together with replication.targets[0].token_file");

    /* required keys: the line of the target's mapping */
    expect_err("replication:\n  targets:\n    - name: b\n      url: http://b\n    - url: http://c\n      token: t\n",
               "config.yaml:5: replication.targets[1].name: missing (every target needs a name and a url)");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b'}\n    -\n      name: c\n",
               "config.yaml:5: replication.targets[1].url: missing (every target needs a name and a url)");
    expect_err("replication:\n  targets:\n    - {}\n",
               "config.yaml:3: replication.targets[0].name: missing (every target needs a name and a url)");
    expect_err("replication:\n  targets:\n    - {name: '', url: 'http://b'}\n",
               "config.yaml:3: replication.targets[0].name: expected 1 to 63 letters, digits, '.', '_' or '-', got ''");
    expect_err("replication:\n  targets:\n    - {name: b, url: ~}\n",
               "config.yaml:3: replication.targets[0].url: expected an http:// or https:// URL, got '~'");

    /* values */
    expect_err("replication:\n  targets:\n    - name: b\n      url: http://b\n    - name: c\n      url: x\n",
               "config.yaml:6: replication.targets[1].url: expected an http:// or https:// URL, got 'x'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'ftp://b'}\n",
               "config.yaml:3: replication.targets[0].url: expected an http:// or https:// URL, got 'ftp://b'");
    expect_err("replication:\n  targets:\n    - {name: 'b c', url: 'http://b'}\n",
               "config.yaml:3: replication.targets[0].name: expected 1 to 63 letters, digits, '.', '_' or '-', got 'b c'");
    expect_err("replication:\n  targets:\n    - {name: b/c, url: 'http://b'}\n",
               "config.yaml:3: replication.targets[0].name: expected 1 to 63 letters, digits, '.', '_' or '-', got 'b/c'");
    expect_err("replication:\n  targets:\n    - {name: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, url: "
               "'http://b'}\n",
               "config.yaml:3: replication.targets[0].name: expected 1 to 63 letters, digits, '.', '_' or '-', got "
               "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'");
    expect_err("replication:\n"
               "  targets:\n"
               "    - name: b\n"
               "      url: http://b\n"
               "    - name: c\n"
               "      url: http://c\n"
               "    - url: http://d\n"
               "      token: t\n"
               "      name: b\n",
               "config.yaml:9: replication.targets[2].name: 'b' is already the name of targets[0]");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://B:8080/'}\n    - {name: c, url: 'http://b:8080'}\n",
               "config.yaml:4: replication.targets[1].url: 'http://b:8080' is already the url of targets[0]");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', mode: semi}\n",
               "config.yaml:3: replication.targets[0].mode: expected sync or async, got 'semi'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', sync_fallback: x}\n",
               "config.yaml:3: replication.targets[0].sync_fallback: expected async or wait, got 'x'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', batch_size: 0}\n",
               "config.yaml:3: replication.targets[0].batch_size: expected an integer from 1 to 10000, got '0'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', batch_size: 10001}\n",
               "config.yaml:3: replication.targets[0].batch_size: expected an integer from 1 to 10000, got '10001'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', workers: 65}\n",
               "config.yaml:3: replication.targets[0].workers: expected an integer from 1 to 64, got '65'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', workers: 0}\n",
               "config.yaml:3: replication.targets[0].workers: expected an integer from 1 to 64, got '0'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', retry_attempts: 101}\n",
               "config.yaml:3: replication.targets[0].retry_attempts: expected an integer from 0 to 100, got '101'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', retry_attempts: -1}\n",
               "config.yaml:3: replication.targets[0].retry_attempts: expected an integer from 0 to 100, got '-1'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', retry_delay: 5}\n",
               "config.yaml:3: replication.targets[0].retry_delay: expected a duration such as 500ms, 1s, 5m or 1h, got '5'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', inline_threshold: 1XB}\n",
               "config.yaml:3: replication.targets[0].inline_threshold: expected a size such as 4096, 512MB or 2GiB, got '1XB'");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', token_file: empty.tok}\n",
               "config.yaml:3: replication.targets[0].token_file: file 'empty.tok' is empty");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', token_file: ''}\n",
               "config.yaml:3: replication.targets[0].token_file: expected a file name");

    /* a token is never repeated in a message */
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', token: 'sec ret'}\n",
               "config.yaml:3: replication.targets[0].token: must be printable ASCII without spaces");
    expect_err("replication:\n  targets:\n    - {name: b, url: 'http://b', token: [secret]}\n",
               "config.yaml:3: replication.targets[0].token: expected a single value, got a sequence");
}

static void test_targets_exclusive(void)
{
    conf_t c;
    char err[ERRLEN];

    /* in one file, whichever comes first */
    expect_err("replication:\n  remote_url: http://b\n  targets: [{name: c, url: 'http://c'}]\n",
               "config.yaml:3: replication.targets: cannot be used together with replication.remote_url: use one: list the "
               "remote site as a target");
    expect_err("replication:\n  targets: [{name: c, url: 'http://c'}]\n  remote_url: http://b\n",
               "config.yaml:3: replication.remote_url: cannot be used together with replication.targets: use one: list the "
               "remote site as a target");
    expect_err("replication:\n  targets: [{name: c, url: 'http://c'}]\n  remote_token: t\n",
               "config.yaml:3: replication.remote_token: cannot be used together with replication.targets: give each target "
               "its token or token_file");
    write_file("t.tok", "tok\n");
    expect_err("replication:\n  remote_token_file: t.tok\n  targets: [{name: c, url: 'http://c'}]\n",
               "config.yaml:3: replication.targets: cannot be used together with replication.remote_token_file: give each "
               "target its token or token_file");
    /* accept_token, for the sites that ship here, goes with a list */
    expect_ok("replication:\n  targets: [{name: c, url: 'http://c'}]\n  accept_token: a\n");

    /* a flag on top of a file's list */
    write_file("list.yaml", "replication:\n  enabled: true\n  targets: [{name: c, url: 'http://c', token: t}]\n");
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--config", "list.yaml", "--replication-remote", "http://b", NULL), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "replication.targets and replication.remote_url (--replication-remote) cannot both be set: use one");
    conf_free(&c);
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--config", "list.yaml", "--replication-token", "x", NULL), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_ECONFIG);
    CHECK_EQ_STR(err, "replication.remote_token (--replication-token) cannot be used with replication.targets: give each "
                      "target its token or token_file");
    conf_free(&c);
    /* --replication-enabled with a file's list is what it should be */
    write_file("list-off.yaml", "replication:\n  targets: [{name: c, url: 'http://c', token: t}]\n");
    CHECK_EQ_INT(conf_init(&c), CIO_OK);
    CHECK_EQ_INT(run_args(&c, NULL, err, "--config", "list-off.yaml", "--replication-enabled", NULL), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    CHECK(c.repl_enabled == 1 && c.ntargets == 1 && strcmp(c.targets[0].token, "t") == 0);
    conf_free(&c);

    /* a target that is this very site, by its explicit or derived public_url */
    expect_finalize_err("server: {public_url: 'https://a.example.com'}\n"
                        "replication:\n  targets: [{name: b, url: 'http://b'}, {name: a, url: 'https://A.example.com/'}]\n",
                        "replication.targets[1].url: 'https://A.example.com/' is this site's own public_url: a site does not "
                        "ship to itself");
    expect_finalize_err("server: {port: 9100}\nreplication:\n  targets: [{name: a, url: 'http://127.0.0.1:9100'}]\n",
                        "replication.targets[0].url: 'http://127.0.0.1:9100' is this site's own public_url: a site does not "
                        "ship to itself");
    load_final("server: {port: 9100}\nreplication:\n  targets: [{name: b, url: 'http://127.0.0.1:9101'}]\n", &c);
    conf_free(&c);

    /* enabled with neither */
    expect_finalize_err("replication:\n  enabled: true\n  accept_token: a\n",
                        "replication.targets or replication.remote_url is required when replication.enabled is true "
                        "(list the sites to ship to in the config file, or give one with --replication-remote)");
}

static void test_usage(void)
{
    static const char *const flags[] = {"--config",
                                        "--storage",
                                        "--size",
                                        "--port",
                                        "--listen",
                                        "--meta",
                                        "--replication-enabled",
                                        "--replication-remote",
                                        "--replication-token",
                                        "--accept-token",
                                        "--site-id",
                                        "--log-level",
                                        "--help",
                                        "-h"};
    static const char *const keys[] = {"server.storage_path",
                                       "server.storage_size",
                                       "server.port",
                                       "server.listen",
                                       "server.meta_path",
                                       "replication.enabled",
                                       "replication.remote_url",
                                       "replication.remote_token",
                                       "replication.accept_token",
                                       "site.id",
                                       "logging.level"};
    static char out[16384];
    int saved, fd;
    ssize_t n;

    fflush(stdout);
    fd = open("usage.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
    created[ncreated++] = "usage.txt";
    saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    conf_usage("storaged");
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, sizeof(out) - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    CHECK(strncmp(out, "Usage: storaged", 15) == 0);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        CHECK(strstr(out, flags[i]) != NULL);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK(strstr(out, keys[i]) != NULL);
}

/* mode, sync_timeout and sync_fallback: defaults, the seed's replication.mode as every target's default, per-target overrides */
static void test_targets_sync(void)
{
    conf_t c;
    char err[ERRLEN];

    CHECK_EQ_INT(load("replication:\n  enabled: true\n  targets:\n    - {name: b, url: 'http://b'}\n", &c, err), CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.targets[0].mode, "async");
    CHECK(c.targets[0].sync_timeout_ms == 5000);
    CHECK_EQ_INT(c.targets[0].sync_fallback, CONF_SYNC_FALLBACK_ASYNC);
    conf_free(&c);

    CHECK_EQ_INT(load("replication:\n  enabled: true\n  targets:\n    - {name: b, url: 'http://b'}\n"
                      "    - {name: c, url: 'http://c', mode: async, sync_timeout: 250ms, sync_fallback: async}\n"
                      "  mode: sync\n  sync_timeout: 2s\n  sync_fallback: wait\n",
                      &c, err),
                 CIO_OK);
    CHECK_EQ_INT(conf_finalize(&c, 0, err, ERRLEN), CIO_OK);
    CHECK_EQ_STR(c.targets[0].mode, "sync");
    CHECK(c.targets[0].sync_timeout_ms == 2000);
    CHECK_EQ_INT(c.targets[0].sync_fallback, CONF_SYNC_FALLBACK_WAIT);
    CHECK_EQ_STR(c.targets[1].mode, "async");
    CHECK(c.targets[1].sync_timeout_ms == 250);
    CHECK_EQ_INT(c.targets[1].sync_fallback, CONF_SYNC_FALLBACK_ASYNC);
    conf_free(&c);
}

/* storage.repair_peers: a target's name, url and token only; errors name file:line:key. */
static void test_repair_peers(void)
{
    conf_t c;
    char err[ERRLEN];

    write_file("peer.tok", "peer-token\n");
    CHECK_EQ_INT(load("storage:\n"
                      "  repair_timeout: 5s\n"
                      "  repair_peers:\n"
                      "    - name: site-a\n"
                      "      url: https://a.example.com\n"
                      "    - name: site-c\n"
                      "      url: http://c.example.com:8080\n"
                      "      token_file: peer.tok\n",
                      &c, err),
                 CIO_OK);
    CHECK(c.nrepair_peers == 2 && c.ntargets == 0 && c.repair_timeout_ms == 5000);
    CHECK_EQ_STR(c.repair_peers[0].name, "site-a");
    CHECK_EQ_STR(c.repair_peers[0].url, "https://a.example.com");
    CHECK(c.repair_peers[0].token == NULL);
    CHECK_EQ_STR(c.repair_peers[1].token, "peer-token");
    conf_free(&c);
    CHECK_EQ_INT(load("site:\n  id: x\n", &c, err), CIO_OK);
    CHECK(c.nrepair_peers == 0 && c.repair_peers == NULL && c.repair_timeout_ms == 30000);
    CHECK(c.repair_backoff_ms == 5 * 60 * 1000);
    conf_free(&c);
    CHECK_EQ_INT(load("storage:\n  repair_backoff: 0\n", &c, err), CIO_OK); /* 0: no back-off */
    CHECK(c.repair_backoff_ms == 0);
    conf_free(&c);
    CHECK_EQ_INT(load("storage:\n  repair_backoff: 90s\n", &c, err), CIO_OK);
    CHECK(c.repair_backoff_ms == 90000);
    conf_free(&c);

    expect_err("storage:\n  repair_peers:\n    - name: a\n      url: ftp://a\n",
               "config.yaml:4: storage.repair_peers[0].url: expected an http:// or https:// URL, got 'ftp://a'");
    expect_err("storage:\n  repair_peers:\n    - name: a\n      url: http://a\n      mode: sync\n",
               "config.yaml:5: unknown key 'storage.repair_peers[0].mode'");
    expect_err("storage:\n  repair_peers:\n    - url: http://a\n",
               "config.yaml:3: storage.repair_peers[0].name: missing (every target needs a name and a url)");
    expect_err("storage:\n  repair_peers: http://a\n",
               "config.yaml:2: storage.repair_peers: expected a list of targets, got 'http://a'");
    expect_err("storage:\n  repair_peers:\n    - name: a\n      url: http://a\n    - name: a\n      url: http://b\n",
               "config.yaml:5: storage.repair_peers[1].name: 'a' is already the name of targets[0]");
}

int main(void)
{
    char cwd[4096];

    if (getcwd(cwd, sizeof(cwd)) == NULL || mkdtemp(tmpdir) == NULL || chdir(tmpdir) != 0) {
        perror("test setup");
        return 2;
    }
    RUN(test_init_defaults);
    RUN(test_seed_primary);
    RUN(test_seed_replica);
    RUN(test_seed_flags);
    RUN(test_every_key);
    RUN(test_empty_and_null);
    RUN(test_flow_mapping_and_styles);
    RUN(test_err_keys);
    RUN(test_err_types);
    RUN(test_err_values);
    RUN(test_err_caps);
    RUN(test_err_syntax);
    RUN(test_err_open);
    RUN(test_token_files);
    RUN(test_args_override);
    RUN(test_args_extra_and_help);
    RUN(test_args_errors);
    RUN(test_err_control_bytes);
    RUN(test_load_buffer);
    RUN(test_args_bool_and_empty);
    RUN(test_finalize_defaults);
    RUN(test_finalize_errors);
    RUN(test_targets_block_and_flow);
    RUN(test_targets_inherit);
    RUN(test_targets_compression);
    RUN(test_targets_sync);
    RUN(test_targets_bandwidth_limit);
    RUN(test_targets_legacy);
    RUN(test_targets_replaced_by_a_later_file);
    RUN(test_targets_errors);
    RUN(test_targets_exclusive);
    RUN(test_repair_peers);
    RUN(test_usage);
    RUN(test_s3);

    for (int i = 0; i < ncreated; i++)
        unlink(created[i]);
    if (chdir(cwd) != 0 || rmdir(tmpdir) != 0)
        perror("test cleanup");
    return TEST_SUMMARY();
}
