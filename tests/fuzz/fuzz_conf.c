/* fuzz_conf.c - libFuzzer target for the configuration parser (common/conf.c).
 *
 * Input: one mode byte, then
 *   mode even: a YAML config file, loaded with conf_load_buffer;
 *   mode odd:  command-line arguments separated by NUL bytes (at most 32),
 *              given to conf_from_args.
 * conf.c is compiled into this file (like the unit tests do) with fopen
 * replaced: the *_token_file keys and --config then never touch the real
 * file system. A name "fuzz:TEXT" opens TEXT as the file's contents; any
 * other name does not exist. Invariants: a failure leaves one line of
 * printable text naming the config; a success leaves every setting inside
 * its documented range, and so does conf_finalize after it (a target then
 * holds every setting, inherited or its own); conf_free releases everything
 * (the leak checker watches). */
#include <errno.h>
#include <stdio.h>
#include "fuzz.h"

static FILE *fuzz_fopen(const char *path, const char *mode);
#define fopen fuzz_fopen
#include "../../common/conf.c"
#undef fopen

static FILE *fuzz_fopen(const char *path, const char *mode)
{
    if (strncmp(path, "fuzz:", 5) != 0) {
        errno = ENOENT;
        return NULL;
    }
    path += 5;
    /* fmemopen refuses an empty buffer: an empty file is the empty file. */
    if (*path == '\0')
        return fopen("/dev/null", mode);
    return fmemopen((void *)path, strlen(path), mode);
}

static void check_message(const char *err)
{
    size_t n = strlen(err);

    FUZZ_CHECK(n > 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
}

static void check_string(const char *s, int (*valid)(const char *))
{
    if (s == NULL)
        return;
    FUZZ_CHECK(s[0] != '\0' && strlen(s) <= CONF_VALUE_MAX);
    if (valid != NULL)
        FUZZ_CHECK(valid(s));
}

static void check_conf(const conf_t *c)
{
    check_string(c->site_id, conf_valid_site_id);
    FUZZ_CHECK(c->listen != NULL && c->socket_path != NULL && c->repl_mode != NULL &&
               (strcmp(c->repl_mode, "async") == 0 || strcmp(c->repl_mode, "sync") == 0));
    check_string(c->listen, NULL);
    check_string(c->storage_path, NULL);
    check_string(c->meta_path, NULL);
    check_string(c->public_url, conf_valid_url);
    check_string(c->remote_url, conf_valid_url);
    check_string(c->access_token, conf_valid_token);
    check_string(c->remote_token, conf_valid_token);
    check_string(c->accept_token, conf_valid_token);
    check_string(c->tls_cert, NULL);
    check_string(c->tls_key, NULL);
    check_string(c->ca_file, NULL);
    FUZZ_CHECK(c->port >= 1);
    FUZZ_CHECK(c->threads <= 256);
    FUZZ_CHECK(c->batch_size >= 1 && c->batch_size <= 10000);
    FUZZ_CHECK(c->retry_attempts <= 100);
    FUZZ_CHECK(c->workers >= 1 && c->workers <= 64);
    FUZZ_CHECK(c->repl_enabled == 0 || c->repl_enabled == 1);
    FUZZ_CHECK(c->log_json == 0 || c->log_json == 1);
    FUZZ_CHECK(c->log_level >= LOG_LVL_DEBUG && c->log_level <= LOG_LVL_ERROR);
}

/* replication.targets: a whole, valid list; after conf_finalize every setting is in range. */
static void check_targets(const conf_t *c, int finalized)
{
    FUZZ_CHECK(c->ntargets <= CONF_TARGETS_MAX && (c->ntargets == 0) == (c->targets == NULL));
    for (size_t i = 0; i < c->ntargets; i++) {
        const conf_target_t *t = &c->targets[i];
        FUZZ_CHECK(t->name != NULL && t->url != NULL);
        check_string(t->name, conf_valid_target_name);
        check_string(t->url, conf_valid_url);
        check_string(t->token, conf_valid_token);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(c->targets[j].name, t->name) != 0 && !conf_same_url(c->targets[j].url, t->url));
        if (!finalized)
            continue;
        FUZZ_CHECK(t->mode != NULL && (strcmp(t->mode, "async") == 0 || strcmp(t->mode, "sync") == 0));
        FUZZ_CHECK(t->batch_size >= 1 && t->batch_size <= 10000);
        FUZZ_CHECK(t->workers >= 1 && t->workers <= 64);
        FUZZ_CHECK(t->retry_attempts <= 100);
    }
}

static void fuzz_yaml(const uint8_t *data, size_t size)
{
    char err[256];
    conf_t c;
    int rc;

    FUZZ_CHECK(conf_init(&c) == 0);
    err[0] = '\0';
    rc = conf_load_buffer(&c, "fuzz.yaml", (const char *)data, size, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == CIO_ECONFIG || rc == CIO_ENOMEM);
    if (rc != 0) {
        check_message(err);
        FUZZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0);
    } else {
        check_conf(&c);
        check_targets(&c, 0);
        err[0] = '\0';
        rc = conf_finalize(&c, 0, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == CIO_ECONFIG || rc == CIO_ENOMEM);
        if (rc != 0)
            check_message(err);
        else
            check_targets(&c, 1);
    }
    conf_free(&c);
}

#define FUZZ_ARGS_MAX 32

static void fuzz_args(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size), *argv[FUZZ_ARGS_MAX + 2], err[256];
    int argc = 0;
    static const char *const extra[] = {"--status", NULL};
    conf_t c;
    int rc;

    argv[argc++] = (char *)"fuzz";
    for (size_t at = 0; at <= size && argc <= FUZZ_ARGS_MAX; at += strlen(text + at) + 1)
        argv[argc++] = text + at;
    argv[argc] = NULL;
    FUZZ_CHECK(conf_init(&c) == 0);
    err[0] = '\0';
    rc = conf_from_args(&c, argc, argv, extra, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == CIO_ECONFIG || rc == CIO_ENOMEM);
    if (rc != 0)
        check_message(err);
    else
        check_conf(&c);
    conf_free(&c);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0)
        fuzz_yaml(data + 1, size - 1);
    else
        fuzz_args(data + 1, size - 1);
    return 0;
}
