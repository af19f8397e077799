/* repair_ask.h - asks this site's storaged to check an object that repld's
 * inline read found damaged, and to repair it from a peer.
 *
 * repld reads object bytes straight from the data store to inline them in a
 * batch; when a block fails its checksum (ship.c) the bytes are not shipped,
 * and repld POSTs /admin/scrub?bucket=B&key=K to storaged (server.public_url,
 * with server.access_token when set): storaged reads the object through its
 * own verified read and, if it is damaged, repairs it from a peer in the
 * background (storaged/repair.h, repair_check_ask). storaged answers 429
 * while the object's last repair failed a moment ago (its back-off): said
 * at info level, since every retry asks again. The event is retried as
 * usual and ships once the object is good again. */
#ifndef COMIO_REPLD_REPAIR_ASK_H
#define COMIO_REPLD_REPAIR_ASK_H

#include <stddef.h>
#include "common/conf.h"

#define REPAIR_ASK_TIMEOUT_MS 2000 /* the whole request: storaged only queues the check */

/* Asks storaged (conf's public_url; conf borrowed for the call) to check and
 * repair object (bucket, key) (not NUL-terminated). Blocks for at most
 * REPAIR_ASK_TIMEOUT_MS. Best effort: a failure is logged, never returned (the
 * event is retried and asks again; the scrub would find the damage too). */
void repair_ask(const conf_t *conf, const char *bucket, size_t blen, const char *key, size_t klen);

#endif
