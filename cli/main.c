/* main.c - the comio command: runs a site ("comio server") and, later, inspects one. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERSION_STRING "0.1.0"

static void usage(FILE *out)
{
    fprintf(out, "usage: comio <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  server [flags]   run this site's object server (storaged); takes storaged's flags,\n"
                 "                   e.g. comio server --config config.yaml (see comio server --help)\n"
                 "  version          print the version\n"
                 "  help             print this text\n");
}

/* Runs `name` from the directory this binary lives in, with our arguments. */
static int exec_sibling(const char *name, int argc, char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char **args;

    if (n <= 0) {
        fprintf(stderr, "comio: cannot find my own path: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", self, name);
    if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL) {
        fprintf(stderr, "comio: out of memory\n");
        return 1;
    }
    args[0] = path;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    execv(path, args);
    fprintf(stderr, "comio: cannot run %s: %s\n", path, strerror(errno));
    free(args);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "server") == 0)
        return exec_sibling("storaged", argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("comio %s\n", VERSION_STRING);
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
