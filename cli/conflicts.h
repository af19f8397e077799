/* conflicts.h - "comio conflicts": the losers of concurrent writes a site keeps. */
#ifndef COMIO_CLI_CONFLICTS_H
#define COMIO_CLI_CONFLICTS_H

/* Runs "comio conflicts" with argv[1..argc) (argv[0] is "conflicts"): every
 * page of GET {url}/admin/conflicts[?bucket=B], one line per kept loser, or
 * as one JSON document (--json). Returns the exit status: 0 the list was
 * printed (empty or not), 2 usage error, 3 the list could not be had. See
 * docs/cli.md. */
int conflicts_main(int argc, char **argv);

#endif
