/* opts.c - command-line option helpers shared by the comio subcommands. */
#include <stdio.h>
#include <string.h>
#include "cli/opts.h"

int cli_opt_value(int argc, char **argv, int *i, const char *cmd, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "comio %s: %s needs a value\n", cmd, name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}
