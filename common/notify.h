/* notify.h - the few lines of systemd's readiness protocol (sd_notify):
 * one datagram to the unix socket named by $NOTIFY_SOCKET. */
#ifndef COMIO_NOTIFY_H
#define COMIO_NOTIFY_H

/* Sends `state` (e.g. "READY=1", "STOPPING=1") when $NOTIFY_SOCKET is set;
 * does nothing otherwise. Returns 1 when sent, 0 when there is no socket,
 * -1 on error (logged). Never fails the caller's work. */
int notify_send(const char *state);

#endif
