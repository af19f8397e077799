/* main.c - repld: the replication log shipper and its commands
 * (--status, --list-failed, --retry-failed, --resync, --cancel). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/bucket.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/ctl.h"
#include "common/syncctl.h"
#include "repld/failed.h"
#include "common/lockfile.h"
#include "common/log.h"
#include "common/meta.h"
#include "common/notify.h"
#include "repld/ship.h"

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return 1;
    return 0;
}

static int cmd_status(const conf_t *conf)
{
    buf_t out;
    int ret;

    buf_init(&out, CTL_REPLY_MAX);
    ret = ctl_query(conf->socket_path, "status", &out, 2000);
    if (ret != 0) {
        fprintf(stderr, "repld is not running (no answer on %s)%s\n", conf->socket_path,
                ret == CIO_EIO ? ": the socket did not answer in time" : "");
        buf_free(&out);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return 0;
}

/* Takes `FLAG VALUE` (or FLAG=VALUE; FLAG is "--target" or "--bucket") out
 * of argv: *value is NULL when absent. Returns 0, or -1 when the flag has no
 * value (a message is printed). */
static int take_value(int *argc, char **argv, const char *flag, const char *what, const char **value)
{
    size_t flen = strlen(flag);
    *value = NULL;
    for (int i = 1; i < *argc; i++) {
        int used = 0;
        if (strcmp(argv[i], flag) == 0) {
            if (i + 1 >= *argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "%s: expected %s\n", flag, what);
                return -1;
            }
            *value = argv[i + 1];
            used = 2;
        } else if (strncmp(argv[i], flag, flen) == 0 && argv[i][flen] == '=') {
            if (argv[i][flen + 1] == '\0') {
                fprintf(stderr, "%s: expected %s\n", flag, what);
                return -1;
            }
            *value = argv[i] + flen + 1;
            used = 1;
        }
        if (used > 0) {
            memmove(argv + i, argv + i + used, (size_t)(*argc - i - used + 1) * sizeof(*argv));
            *argc -= used;
            i--;
        }
    }
    return 0;
}

/* --resync / --cancel: asks the running repld (full syncs run in it) and
 * prints its answer. Exit 0 when it did what was asked. */
static int cmd_sync(const conf_t *conf, int cancel, const char *target, const char *bucket)
{
    syncctl_req_t req;
    syncctl_answer_t kind = SYNCCTL_ERROR;
    buf_t out;
    int ret;

    memset(&req, 0, sizeof(req));
    req.cmd = cancel ? SYNCCTL_CANCEL : SYNCCTL_RESYNC;
    snprintf(req.target, sizeof(req.target), "%s", target);
    snprintf(req.bucket, sizeof(req.bucket), "%s", bucket != NULL ? bucket : "");
    buf_init(&out, CTL_REPLY_MAX);
    ret = syncctl_send(conf->socket_path, &req, &out, &kind);
    if (ret != 0) {
        fprintf(stderr, "repld is not running (no answer on %s): start it; a full sync runs in the shipper\n", conf->socket_path);
        buf_free(&out);
        return 1;
    }
    fwrite(out.data, 1, out.len, kind == SYNCCTL_OK ? stdout : stderr);
    buf_free(&out);
    return kind == SYNCCTL_OK ? 0 : 1;
}

static int cmd_failed(const conf_t *conf, int retry, const char *target)
{
    char err[1200];
    if (failed_command(conf, retry, target, stdout, err, sizeof(err)) != 0) {
        fprintf(stderr, "repld: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const extra[] = {"--list-failed", "--retry-failed", "--status", "--resync", "--cancel", NULL};
    conf_t conf;
    meta_t meta;
    char err[1024] = "";
    const char *target = NULL, *bucket = NULL;
    int ret, status = has_flag(argc, argv, "--status");
    int failed_cmd = has_flag(argc, argv, "--list-failed") || has_flag(argc, argv, "--retry-failed");
    int resync = has_flag(argc, argv, "--resync"), cancel = has_flag(argc, argv, "--cancel");

    if (take_value(&argc, argv, "--target", "a target name", &target) != 0 ||
        take_value(&argc, argv, "--bucket", "a bucket name", &bucket) != 0)
        return 2;
    if (target != NULL && !failed_cmd && !resync && !cancel) {
        fprintf(stderr, "--target goes with --list-failed or --retry-failed (or --resync, --cancel)\n");
        return 2;
    }
    if (bucket != NULL && !resync) {
        fprintf(stderr, "--bucket goes with --resync\n");
        return 2;
    }
    if ((resync || cancel) && (target == NULL || resync + cancel + failed_cmd + status > 1)) {
        fprintf(stderr, "%s: expected --target NAME (and nothing of --status, --list-failed, --retry-failed, --%s)\n",
                resync ? "--resync" : "--cancel", resync ? "cancel" : "resync");
        return 2;
    }
    if (bucket != NULL && (!bucket_name_valid(bucket, strlen(bucket)) || strchr(bucket, ' ') != NULL)) {
        fprintf(stderr, "--bucket: '%s' is not a valid bucket name\n", bucket);
        return 2;
    }
    if (conf_init(&conf) != 0)
        return 1;
    if (conf_from_args(&conf, argc, argv, extra, err, sizeof(err)) != 0 ||
        (!conf.help && conf_finalize(&conf, !status && !resync && !cancel, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s\n", err);
        conf_free(&conf);
        return 2;
    }
    if (!conf.help && (resync || cancel)) {
        ret = cmd_sync(&conf, cancel, target, bucket);
        conf_free(&conf);
        return ret;
    }
    if (conf.help) {
        conf_usage("repld");
        printf("\nrepld commands (instead of running the shipper):\n"
               "  --status        ask the running repld (over replication.socket) and print its status as JSON\n"
               "  --list-failed   print the events that failed after every attempt, one JSON object a line\n"
               "  --retry-failed  put the failed events back in line (works with or without a running repld)\n"
               "  --target NAME   with --list-failed or --retry-failed: only the events that target refused\n"
               "  --resync --target NAME [--bucket B]\n"
               "                  ask the running repld for a full sync of that target (all buckets, or B);\n"
               "                  if one runs, says which, since when and where it is\n"
               "  --cancel --target NAME\n"
               "                  stop that target's running full sync at its next batch\n");
        conf_free(&conf);
        return 0;
    }
    log_init(conf.site_id, "repld", conf.log_level, conf.log_json);
    if (status) {
        ret = cmd_status(&conf);
        conf_free(&conf);
        return ret;
    }
    if (failed_cmd) {
        ret = cmd_failed(&conf, has_flag(argc, argv, "--retry-failed"), target);
        conf_free(&conf);
        return ret;
    }
    /* only the daemon writes to the log file; the commands above answer on the terminal */
    if (conf.log_file != NULL && log_open_file(conf.log_file) != 0) {
        fprintf(stderr, "repld: logging.file: cannot open '%s': %s\n", conf.log_file, strerror(errno));
        conf_free(&conf);
        return 2;
    }
    if (!conf.repl_enabled) {
        log_msg(LOG_LVL_INFO, "replication.enabled is false: nothing to ship", NULL);
        notify_send("READY=1"); /* a clean, deliberate exit, not a failed start */
        conf_free(&conf);
        return 0;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_msg(LOG_LVL_ERROR, "curl_global_init failed", NULL);
        conf_free(&conf);
        return 1;
    }
    /* the environment is storaged's: repld opens it, never creates it */
    if (meta_open_env(&meta, conf.meta_path, conf.meta_map_size, 0, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the metadata", "error", err, NULL);
        conf_free(&conf);
        return 1;
    }
    /* one shipper per log: a second one would ship, persist the cursor and trim beside the first, and take its control socket */
    int lock = lockfile_take(conf.meta_path, "repld.lock", "repld", err, sizeof(err));
    if (lock == -1) {
        log_msg(LOG_LVL_ERROR, "cannot start", "error", err, NULL);
        meta_close(&meta);
        conf_free(&conf);
        return 1;
    }
    ret = ship_run(&conf, &meta);
    close(lock);
    meta_close(&meta);
    conf_free(&conf);
    return ret == 0 ? 0 : 1;
}
