/* scrub.h - "comio scrub": a site's background scrub (storaged/scrub.h)
 * through GET and POST /admin/scrub: its status, or a pass now, watched. */
#ifndef COMIO_CLI_SCRUB_H
#define COMIO_CLI_SCRUB_H

/* Exit statuses of comio scrub (docs/cli.md). */
#define SCRUB_EXIT_OK 0          /* the pass found no damage; without --now: no damaged object on record */
#define SCRUB_EXIT_DAMAGED 1     /* the pass found damage; without --now: damaged objects are on record */
#define SCRUB_EXIT_USAGE 2       /* bad arguments */
#define SCRUB_EXIT_UNREACHABLE 3 /* the site did not answer, or refused (401, checksums off) */
#define SCRUB_EXIT_BUSY 4        /* --now: a pass runs already; nothing changed */
#define SCRUB_EXIT_HELD 5        /* --object: not queued, the repair's back-off holds it (--force asks anyway) */

/* Runs "comio scrub" with argv[1..argc) (argv[0] is "scrub"); curl_global_init has run. */
int scrub_main(int argc, char **argv);

#endif
