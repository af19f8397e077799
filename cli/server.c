/* server.c - "comio server": runs a site's daemons (storaged, and repld when
 * replication is enabled) as children, restarts one that dies, forwards
 * SIGTERM and SIGINT, and exits when both are gone. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/conf.h"
#include "common/clock.h"
#include "cli/server.h"

#define RESTART_MIN_MS 500
#define RESTART_MAX_MS 30000
#define STABLE_MS 10000 /* a child that ran this long restarts at once */
#define STOP_WAIT_MS 20000

typedef struct {
    const char *name;
    char path[PATH_MAX + 32];
    pid_t pid;
    int64_t started_ms;
    int64_t restart_at_ms; /* 0: not waiting */
    unsigned delay_ms;
} child_t;

static int got_signal; /* SIGTERM or SIGINT received: stop the children */

static void say(const char *what, const char *name, long value)
{
    fprintf(stderr, "{\"level\":\"%s\",\"msg\":\"%s\",\"component\":\"comio\",\"child\":\"%s\",\"value\":%ld}\n",
            strcmp(what, "child started") == 0 ? "info" : "warn", what, name, value);
}

static int spawn(child_t *c, char **args)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        args[0] = c->path;
        execv(c->path, args);
        fprintf(stderr, "comio: cannot run %s: %s\n", c->path, strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    c->started_ms = clock_mono_ms();
    c->restart_at_ms = 0;
    say("child started", c->name, (long)pid);
    return 0;
}

/* Waits until storaged has created its metadata, so repld finds the log. */
static void wait_for_meta(const conf_t *conf, child_t *storaged)
{
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof(path), "%s/data.mdb", conf->meta_path);
    for (int i = 0; i < 200 && stat(path, &st) != 0 && storaged->pid > 0; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int server_main(const char *bindir, int argc, char **argv)
{
    conf_t conf;
    char err[1024] = "";
    child_t kids[2];
    size_t nkids = 1;
    char **args;
    sigset_t block, old;
    int exit_status = 0;

    if (conf_init(&conf) != 0)
        return 1;
    if (conf_from_args(&conf, argc, argv, NULL, err, sizeof(err)) != 0 ||
        (!conf.help && conf_finalize(&conf, 1, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s\n", err);
        conf_free(&conf);
        return 2;
    }
    if (conf.help) {
        conf_usage("comio server");
        printf("\ncomio server runs storaged and, when replication is enabled, repld, with these flags.\n");
        conf_free(&conf);
        return 0;
    }
    memset(kids, 0, sizeof(kids));
    kids[0].name = "storaged";
    kids[1].name = "repld";
    if (conf.repl_enabled)
        nkids = 2;
    for (size_t i = 0; i < 2; i++) {
        snprintf(kids[i].path, sizeof(kids[i].path), "%s/%s", bindir, kids[i].name);
        kids[i].delay_ms = RESTART_MIN_MS;
    }
    if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
        return 1;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);

    if (spawn(&kids[0], args) != 0) {
        fprintf(stderr, "comio: fork: %s\n", strerror(errno));
        return 1;
    }
    if (nkids == 2) {
        wait_for_meta(&conf, &kids[0]);
        if (spawn(&kids[1], args) != 0)
            kids[1].restart_at_ms = clock_mono_ms() + RESTART_MIN_MS;
    }

    for (;;) {
        int status;
        pid_t pid;
        /* reap */
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (size_t i = 0; i < nkids; i++) {
                child_t *c = &kids[i];
                if (c->pid != pid)
                    continue;
                c->pid = 0;
                long code = WIFEXITED(status) ? WEXITSTATUS(status) : -(long)WTERMSIG(status);
                if (got_signal)
                    break;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
                    say("child refused its configuration; not restarting", c->name, code);
                    got_signal = SIGTERM;
                    exit_status = 2;
                    break;
                }
                if (clock_mono_ms() - c->started_ms >= STABLE_MS)
                    c->delay_ms = RESTART_MIN_MS;
                say("child exited; restarting", c->name, code);
                c->restart_at_ms = clock_mono_ms() + c->delay_ms;
                c->delay_ms = c->delay_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : c->delay_ms * 2;
            }
        }
        if (got_signal)
            break;
        int64_t now = clock_mono_ms(), wake = now + 1000;
        for (size_t i = 0; i < nkids; i++) {
            child_t *c = &kids[i];
            if (c->pid == 0 && c->restart_at_ms != 0 && c->restart_at_ms <= now && spawn(c, args) != 0)
                c->restart_at_ms = now + RESTART_MAX_MS;
            if (c->pid == 0 && c->restart_at_ms != 0 && c->restart_at_ms < wake)
                wake = c->restart_at_ms;
        }
        struct timespec ts = {(time_t)((wake - now) / 1000), (long)((wake - now) % 1000) * 1000000L};
        int sig = sigtimedwait(&block, NULL, &ts); /* SIGCHLD, SIGTERM, SIGINT or the timer */
        if (sig == SIGTERM || sig == SIGINT)
            got_signal = sig;
    }

    /* forward and wait, bounded */
    for (size_t i = nkids; i-- > 0;)
        if (kids[i].pid > 0)
            kill(kids[i].pid, SIGTERM);
    int64_t deadline = clock_mono_ms() + STOP_WAIT_MS;
    for (;;) {
        int alive = 0, status;
        for (size_t i = 0; i < nkids; i++)
            if (kids[i].pid > 0) {
                pid_t r = waitpid(kids[i].pid, &status, WNOHANG);
                if (r == kids[i].pid)
                    kids[i].pid = 0;
                else
                    alive = 1;
            }
        if (!alive)
            break;
        if (clock_mono_ms() >= deadline) {
            for (size_t i = 0; i < nkids; i++)
                if (kids[i].pid > 0)
                    kill(kids[i].pid, SIGKILL);
            deadline = clock_mono_ms() + 5000;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(args);
    conf_free(&conf);
    return exit_status;
}
