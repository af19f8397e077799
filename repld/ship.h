/* ship.h - the shipper: tails the site's replication log (common/replog.h) and ships it.
 *
 * One dispatcher thread reads the log from the durable cursor into a bounded
 * window, groups ready events into batches (sent at once when a worker is
 * idle, so a lone PUT leaves in milliseconds), hands them to the workers
 * (sender.h), and applies the replies: acknowledged events advance the
 * cursor, which is persisted together with the trimming of the shipped
 * records; refused ones are retried and finally recorded as failed
 * (replog_fail); transport failures back off without consuming attempts. */
#ifndef COMIO_REPLD_SHIP_H
#define COMIO_REPLD_SHIP_H

#include "common/conf.h"
#include "common/err.h"
#include "common/meta.h"

/* Runs the shipper until SIGTERM or SIGINT (blocked by the caller and taken
 * here through a signalfd). Returns 0 after a clean stop, or an error. */
int ship_run(const conf_t *conf, meta_t *meta) CIO_MUST_CHECK;

#endif
