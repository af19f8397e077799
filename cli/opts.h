/* opts.h - command-line option helpers shared by the comio subcommands. */
#ifndef COMIO_CLI_OPTS_H
#define COMIO_CLI_OPTS_H

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE". Returns 1 with
 * *val set (pointing into argv; *i moved past a separate value), 0 when
 * argv[*i] is another option, -1 when the value is missing (then
 * "comio CMD: --name needs a value" is printed on stderr). */
int cli_opt_value(int argc, char **argv, int *i, const char *cmd, const char *name, const char **val);

#endif
