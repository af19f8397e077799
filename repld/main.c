/* main.c - repld: the replication log shipper and its commands
 * (--status, --list-failed, --retry-failed). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/conf.h"
#include "common/ctl.h"
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

static int cmd_failed(const conf_t *conf, int retry)
{
    char err[1200];
    if (failed_command(conf, retry, stdout, err, sizeof(err)) != 0) {
        fprintf(stderr, "repld: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const extra[] = {"--list-failed", "--retry-failed", "--status", NULL};
    conf_t conf;
    meta_t meta;
    char err[1024] = "";
    int ret, status = has_flag(argc, argv, "--status");

    if (conf_init(&conf) != 0)
        return 1;
    if (conf_from_args(&conf, argc, argv, extra, err, sizeof(err)) != 0 ||
        (!conf.help && conf_finalize(&conf, !status, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s\n", err);
        conf_free(&conf);
        return 2;
    }
    if (conf.help) {
        conf_usage("repld");
        printf("\nrepld commands (instead of running the shipper):\n"
               "  --status        ask the running repld (over replication.socket) and print its status as JSON\n"
               "  --list-failed   print the events that failed after every attempt, one JSON object a line\n"
               "  --retry-failed  put the failed events back in line (works with or without a running repld)\n");
        conf_free(&conf);
        return 0;
    }
    log_init(conf.site_id, "repld", conf.log_level, conf.log_json);
    if (status) {
        ret = cmd_status(&conf);
        conf_free(&conf);
        return ret;
    }
    if (has_flag(argc, argv, "--list-failed") || has_flag(argc, argv, "--retry-failed")) {
        ret = cmd_failed(&conf, has_flag(argc, argv, "--retry-failed"));
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
    /* Until the shipper keeps a cursor per target, it ships to the first
     * target, given to it as the seed's single remote. */
    if (conf.remote_url == NULL && conf.ntargets > 0) {
        const conf_target_t *t = &conf.targets[0];
        if ((conf.remote_url = strdup(t->url)) == NULL || (t->token != NULL && (conf.remote_token = strdup(t->token)) == NULL)) {
            log_msg(LOG_LVL_ERROR, "out of memory", NULL);
            conf_free(&conf);
            return 1;
        }
        conf.batch_size = t->batch_size;
        conf.workers = t->workers;
        conf.retry_attempts = t->retry_attempts;
        conf.retry_delay_ms = t->retry_delay_ms;
        conf.inline_threshold = t->inline_threshold;
        if (conf.ntargets > 1)
            log_msg(LOG_LVL_WARN, "this repld ships to the first target only", "target", t->name, NULL);
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
