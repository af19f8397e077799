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

/* Takes `--target NAME` (or --target=NAME) out of argv, for the failed-event
 * commands: *target is NULL when absent. Returns 0, or -1 when the flag has
 * no value (a message is printed). */
static int take_target(int *argc, char **argv, const char **target)
{
    *target = NULL;
    for (int i = 1; i < *argc; i++) {
        int used = 0;
        if (strcmp(argv[i], "--target") == 0) {
            if (i + 1 >= *argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "--target: expected a target name\n");
                return -1;
            }
            *target = argv[i + 1];
            used = 2;
        } else if (strncmp(argv[i], "--target=", 9) == 0) {
            if (argv[i][9] == '\0') {
                fprintf(stderr, "--target: expected a target name\n");
                return -1;
            }
            *target = argv[i] + 9;
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
    static const char *const extra[] = {"--list-failed", "--retry-failed", "--status", NULL};
    conf_t conf;
    meta_t meta;
    char err[1024] = "";
    const char *target = NULL;
    int ret, status = has_flag(argc, argv, "--status");
    int failed_cmd = has_flag(argc, argv, "--list-failed") || has_flag(argc, argv, "--retry-failed");

    if (take_target(&argc, argv, &target) != 0)
        return 2;
    if (target != NULL && !failed_cmd) {
        fprintf(stderr, "--target goes with --list-failed or --retry-failed\n");
        return 2;
    }
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
               "  --retry-failed  put the failed events back in line (works with or without a running repld)\n"
               "  --target NAME   with --list-failed or --retry-failed: only the events that target refused\n");
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
