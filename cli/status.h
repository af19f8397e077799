/* status.h - "comio status": a site's replication status, for people and for alerting. */
#ifndef COMIO_CLI_STATUS_H
#define COMIO_CLI_STATUS_H

/* Runs "comio status" with argv[1..argc) (argv[0] is "status"). Prints the
 * status of GET {url}/admin/replication/status on stdout, readable or as the
 * site's JSON (--json). Returns the exit status: 0 all is well, 1 the site
 * reports a problem worth an alert, 2 usage error, 3 the status could not be
 * had (unreachable, HTTP error, unexpected reply). See docs/cli.md. */
int status_main(int argc, char **argv);

#endif
