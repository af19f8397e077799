/* main.c - the comio command: runs a site ("comio server") and inspects sites ("comio status", "comio diff"). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "cli/conflicts.h"
#include "cli/diff.h"
#include "cli/resync.h"
#include "cli/scrub.h"
#include "cli/server.h"
#include "cli/status.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: comio <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  server [flags]   run this site: storaged, and repld when replication is enabled;\n"
                 "                   restarts a daemon that dies, stops both on SIGTERM;\n"
                 "                   e.g. comio server --config config.yaml (see comio server --help)\n"
                 "  status [flags]   print a site's replication status; exit 1 when it needs attention\n"
                 "                   e.g. comio status --url http://site-a:8080 (see comio status --help)\n"
                 "  diff [flags]     compare the objects of two sites: keys, sizes, ETags\n"
                 "                   e.g. comio diff --source http://site-a:8080 --target http://site-b:8080\n"
                 "  conflicts [flags] list the losers of concurrent writes a site keeps\n"
                 "  resync [flags]   start, watch or cancel a full sync of a target by this site's repld\n"
                 "                   e.g. comio resync --target site-b --dry-run (see comio resync --help)\n"
                 "                   e.g. comio conflicts --url http://site-a:8080 --bucket photos\n"
                 "  scrub [flags]    show a site's background scrub, or run a pass now: comio scrub --now\n"
                 "  version          print the version\n"
                 "  help             print this text\n");
}

/* The directory this binary lives in: the daemons are installed beside it. */
static int bin_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0) {
        fprintf(stderr, "comio: cannot find my own path: %s\n", strerror(errno));
        return -1;
    }
    out[n] = '\0';
    *strrchr(out, '/') = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "server") == 0) {
        char dir[PATH_MAX];
        return bin_dir(dir, sizeof(dir)) == 0 ? server_main(dir, argc - 1, argv + 1) : 1;
    }
    if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "diff") == 0 || strcmp(argv[1], "conflicts") == 0 ||
        strcmp(argv[1], "scrub") == 0) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "comio: cannot initialise libcurl\n");
            return 3;
        }
        int status = strcmp(argv[1], "scrub") == 0 ? scrub_main(argc - 1, argv + 1)
                     : argv[1][0] == 's'           ? status_main(argc - 1, argv + 1)
                     : argv[1][0] == 'c'           ? conflicts_main(argc - 1, argv + 1)
                                                   : diff_main(argc - 1, argv + 1);
        curl_global_cleanup();
        return status;
    }
    if (strcmp(argv[1], "resync") == 0)
        return resync_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("comio %s\n", COMIO_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "comio: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
