/* server.h - "comio server": supervise a site's storaged and repld. */
#ifndef COMIO_CLI_SERVER_H
#define COMIO_CLI_SERVER_H

/* Runs the daemons found in `bindir` with argv[1..argc) (the seed's flags),
 * until SIGTERM or SIGINT. Returns the process exit status. */
int server_main(const char *bindir, int argc, char **argv);

#endif
