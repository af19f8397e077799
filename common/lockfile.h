/* lockfile.h - one process per resource: an exclusive flock on a file, held
 * until the process exits.
 *
 * storaged and repld each take one in the metadata directory they serve, so
 * that a second copy started by hand beside the systemd unit refuses to run
 * instead of working on the same extents or the same log. flock is dropped by
 * the kernel with the process, whichever way it ends, so a crash never leaves
 * a stale lock behind. (LMDB's own lock.mdb uses fcntl record locks, which
 * closing any other descriptor of that file would release: these are separate
 * files.) */
#ifndef COMIO_LOCKFILE_H
#define COMIO_LOCKFILE_H

#include <stddef.h>

/* Opens (creating it, mode 0600) `dir`/`name` and locks it exclusively
 * without waiting. Returns the descriptor, to keep open for as long as the
 * lock must hold, or -1 with a one-line reason in err: "DIR: in use by
 * another WHO (it holds DIR/NAME)" when another process holds the lock. */
int lockfile_take(const char *dir, const char *name, const char *who, char *err, size_t errlen);

/* Locks the open file fd (named `what` in messages) the same way: returns 0,
 * or -1 with "WHAT: in use by another WHO (it holds HELD)" in err when
 * another process holds it (HELD is `what` when NULL), else
 * "WHAT: cannot lock HELD: reason".
 * The descriptor stays open either way. */
int lockfile_lock_fd(int fd, const char *what, const char *held, const char *who, char *err, size_t errlen);

#endif
