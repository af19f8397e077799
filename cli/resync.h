/* resync.h - "comio resync": starts, watches and cancels a full sync of one
 * target, through the control socket of the local repld (common/syncctl.h). */
#ifndef COMIO_CLI_RESYNC_H
#define COMIO_CLI_RESYNC_H

/* Exit statuses of comio resync (docs/cli.md). */
#define RESYNC_EXIT_OK 0       /* started (--no-wait), or finished with nothing failed; cancel: cancelled */
#define RESYNC_EXIT_FAILED 1   /* finished with failed events, was cancelled while watched, or repld refused */
#define RESYNC_EXIT_USAGE 2    /* bad arguments */
#define RESYNC_EXIT_NO_REPLD 3 /* no repld answers on the control socket */
#define RESYNC_EXIT_BUSY 4     /* a sync of that target already runs (shown); nothing changed */
#define RESYNC_EXIT_IDLE 5     /* --cancel: no sync of that target runs */

/* Runs "comio resync" with argv[1..argc) (argv[0] is "resync"). */
int resync_main(int argc, char **argv);

#endif
