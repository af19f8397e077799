/* notify.c - systemd readiness notification without libsystemd. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/log.h"
#include "common/notify.h"

int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    size_t plen;
    int fd, ret = -1;

    if (path == NULL || path[0] == '\0')
        return 0;
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
        log_msg(LOG_LVL_WARN, "NOTIFY_SOCKET is not a unix socket path", "path", path, NULL);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        goto done;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) == (ssize_t)strlen(state))
        ret = 1;
done:
    if (ret != 1)
        log_msg(LOG_LVL_WARN, "cannot notify systemd", "path", path, "error", strerror(errno), NULL);
    if (fd >= 0)
        close(fd);
    return ret;
}
