/* lockfile.c - an exclusive flock held until exit; see lockfile.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "common/lockfile.h"

int lockfile_take(const char *dir, const char *name, const char *who, char *err, size_t errlen)
{
    char path[4096];
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        snprintf(err, errlen, "%.900s: path too long for its lock file", dir);
        return -1;
    }
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
        snprintf(err, errlen, "%.900s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (lockfile_lock_fd(fd, dir, path, who, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int lockfile_lock_fd(int fd, const char *what, const char *held, const char *who, char *err, size_t errlen)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno == EWOULDBLOCK)
        snprintf(err, errlen, "%.400s: in use by another %.32s (it holds %.500s)", what, who, held != NULL ? held : what);
    else
        snprintf(err, errlen, "%.400s: cannot lock %.500s: %s", what, held != NULL ? held : "it", strerror(errno));
    return -1;
}
